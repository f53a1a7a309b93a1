//! Loading: defaults, then the TOML file, then `RETAILCRM_SYNC__SECTION__KEY` variables, layered
//! with the `config` crate. The `config` crate stops at the first bad value, so the file and the
//! environment are first checked key by key here: an unknown key or a value that does not fit
//! its field is reported and left out, and the remaining values are layered. The semantic
//! checks of [`super::check`] then run on the result, so one run lists every problem.

use std::collections::HashMap;
use std::path::Path;

use serde::Deserialize;

use super::problem::{ConfigErrors, ConfigProblem};
use super::sections::Settings;
use super::{ENV_PREFIX, ENV_SEPARATOR};

impl Settings {
    /// Loads settings from `path` (skipped when absent unless `must_exist`) and the process
    /// environment, and checks them. `Err` holds every problem when any is an error; warnings
    /// alone do not fail the load (they are logged).
    pub fn load(path: &Path, must_exist: bool) -> Result<Settings, ConfigErrors> {
        let env: Vec<(String, String)> = std::env::vars().collect();
        let (settings, problems) = Settings::load_with_env(path, must_exist, &env);
        match settings {
            Some(s) if !problems.iter().any(ConfigProblem::is_error) => {
                for p in &problems {
                    tracing::warn!(key = %p.key, "config: {}: {}", p.message, p.hint);
                }
                Ok(s)
            }
            _ => Err(ConfigErrors { problems }),
        }
    }

    /// Loads like [`Settings::load`] with an explicit environment, returning the settings it
    /// could build (with bad values left at their defaults) and every problem, warnings included.
    pub fn load_with_env(
        path: &Path,
        must_exist: bool,
        env: &[(String, String)],
    ) -> (Option<Settings>, Vec<ConfigProblem>) {
        let mut problems = Vec::new();
        let schema = match toml::Value::try_from(Settings::default()) {
            Ok(toml::Value::Table(t)) => t,
            _ => {
                problems.push(ConfigProblem::error(
                    "defaults",
                    "built-in defaults do not serialise",
                    "this is a bug; report it",
                ));
                return (None, problems);
            }
        };

        let file_table = read_file(path, must_exist, &mut problems);
        let clean_file = file_table
            .map(|t| sanitize_table(&schema, t, &mut problems))
            .unwrap_or_default();
        let clean_env = sanitize_env(&schema, env, &mut problems);

        let settings = match layer(&clean_file, clean_env) {
            Ok(s) => Some(s),
            Err(e) => {
                problems.push(ConfigProblem::error(
                    "config",
                    format!("could not combine file and environment: {e}"),
                    "fix the value named in the message",
                ));
                None
            }
        };
        if let Some(s) = &settings {
            problems.extend(s.validate());
        }
        (settings, problems)
    }
}

/// Reads and parses the TOML file; `None` when absent (and allowed) or unreadable.
fn read_file(
    path: &Path,
    must_exist: bool,
    problems: &mut Vec<ConfigProblem>,
) -> Option<toml::Table> {
    let shown = path.display().to_string();
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !must_exist => return None,
        Err(e) => {
            problems.push(ConfigProblem::error(
                shown,
                format!("cannot read the config file: {e}"),
                "check the path given with --config and its permissions",
            ));
            return None;
        }
    };
    match text.parse::<toml::Table>() {
        Ok(t) => Some(t),
        Err(e) => {
            problems.push(ConfigProblem::error(
                shown,
                format!("not valid TOML: {}", e.to_string().trim()),
                "fix the syntax at the position shown",
            ));
            None
        }
    }
}

/// Keeps the keys of `table` that exist in `schema` and fit their field; reports the rest.
fn sanitize_table(
    schema: &toml::Table,
    table: toml::Table,
    problems: &mut Vec<ConfigProblem>,
) -> toml::Table {
    let mut clean = toml::Table::new();
    for (section, value) in table {
        let Some(toml::Value::Table(section_schema)) = schema.get(&section) else {
            problems.push(ConfigProblem::error(
                section.clone(),
                format!("unknown section `[{section}]`"),
                format!("remove it; known sections: {}", keys(schema)),
            ));
            continue;
        };
        let toml::Value::Table(entries) = value else {
            problems.push(ConfigProblem::error(
                section.clone(),
                format!("`{section}` must be a section (`[{section}]`), not a single value"),
                "write it as a [section] with keys",
            ));
            continue;
        };
        for (key, value) in entries {
            let path = format!("{section}.{key}");
            if !section_schema.contains_key(&key) {
                problems.push(ConfigProblem::error(
                    path,
                    format!("unknown key `{key}` in [{section}]"),
                    format!(
                        "remove it or fix the spelling; known keys: {}",
                        keys(section_schema)
                    ),
                ));
                continue;
            }
            match probe(schema, &section, &key, value.clone()) {
                Ok(()) => {
                    let entry = clean
                        .entry(section.clone())
                        .or_insert_with(|| toml::Value::Table(toml::Table::new()));
                    if let toml::Value::Table(t) = entry {
                        t.insert(key, value);
                    }
                }
                Err(msg) => problems.push(ConfigProblem::error(
                    path,
                    format!("invalid value {value}: {msg}"),
                    format!(
                        "use a value like the default, {}",
                        section_schema
                            .get(&key)
                            .map(ToString::to_string)
                            .unwrap_or_default()
                    ),
                )),
            }
        }
    }
    clean
}

/// Checks that `value` deserialises into the field `section.key` (all else at defaults).
fn probe(schema: &toml::Table, section: &str, key: &str, value: toml::Value) -> Result<(), String> {
    let mut trial = schema.clone();
    if let Some(toml::Value::Table(t)) = trial.get_mut(section) {
        t.insert(key.to_string(), value);
    }
    Settings::deserialize(toml::Value::Table(trial))
        .map(|_| ())
        .map_err(|e| e.message().trim().to_string())
}

/// Picks the `RETAILCRM_SYNC__SECTION__KEY` variables that name a known key with a value that
/// fits; reports the rest. Returns them in the form the `config` crate's env source expects.
fn sanitize_env(
    schema: &toml::Table,
    env: &[(String, String)],
    problems: &mut Vec<ConfigProblem>,
) -> HashMap<String, String> {
    let prefix = format!("{ENV_PREFIX}{ENV_SEPARATOR}");
    let mut clean = HashMap::new();
    for (name, raw) in env {
        let Some(rest) = name.strip_prefix(&prefix) else {
            continue;
        };
        let lower = rest.to_lowercase();
        let Some((section, key)) = lower.split_once(ENV_SEPARATOR) else {
            problems.push(ConfigProblem::error(
                name.clone(),
                "environment variable does not name a section and a key",
                format!(
                    "use {prefix}SECTION{ENV_SEPARATOR}KEY, e.g. {prefix}LOG{ENV_SEPARATOR}LEVEL"
                ),
            ));
            continue;
        };
        let known =
            matches!(schema.get(section), Some(toml::Value::Table(t)) if t.contains_key(key));
        if !known {
            problems.push(ConfigProblem::error(
                name.clone(),
                format!("environment variable names unknown key `{section}.{key}`"),
                "unset it or fix the spelling",
            ));
            continue;
        }
        match probe(schema, section, key, env_value(schema, section, key, raw)) {
            Ok(()) => {
                clean.insert(name.clone(), raw.clone());
            }
            Err(msg) => problems.push(ConfigProblem::error(
                name.clone(),
                format!("invalid value `{raw}` for `{section}.{key}`: {msg}"),
                "set a value of the right type or unset it",
            )),
        }
    }
    clean
}

/// Interprets an env string the way the field's type needs it (the `config` crate does the
/// same with `try_parsing`, and string fields keep the text as is).
fn env_value(schema: &toml::Table, section: &str, key: &str, raw: &str) -> toml::Value {
    let default = match schema.get(section) {
        Some(toml::Value::Table(t)) => t.get(key),
        _ => None,
    };
    match default {
        Some(toml::Value::Integer(_)) => raw
            .trim()
            .parse::<i64>()
            .map(toml::Value::Integer)
            .unwrap_or_else(|_| toml::Value::String(raw.to_string())),
        Some(toml::Value::Float(_)) => raw
            .trim()
            .parse::<f64>()
            .map(toml::Value::Float)
            .unwrap_or_else(|_| toml::Value::String(raw.to_string())),
        Some(toml::Value::Boolean(_)) => raw
            .trim()
            .parse::<bool>()
            .map(toml::Value::Boolean)
            .unwrap_or_else(|_| toml::Value::String(raw.to_string())),
        _ => toml::Value::String(raw.to_string()),
    }
}

/// Layers defaults, the checked file and the checked environment with the `config` crate.
fn layer(file: &toml::Table, env: HashMap<String, String>) -> Result<Settings, String> {
    let file_text = toml::to_string(file).map_err(|e| e.to_string())?;
    let defaults = config::Config::try_from(&Settings::default()).map_err(|e| e.to_string())?;
    config::Config::builder()
        .add_source(defaults)
        .add_source(config::File::from_str(&file_text, config::FileFormat::Toml))
        .add_source(
            config::Environment::with_prefix(ENV_PREFIX)
                .prefix_separator(ENV_SEPARATOR)
                .separator(ENV_SEPARATOR)
                .try_parsing(true)
                .source(Some(env.into_iter().collect())),
        )
        .build()
        .and_then(config::Config::try_deserialize)
        .map_err(|e| e.to_string())
}

fn keys(table: &toml::Table) -> String {
    table.keys().cloned().collect::<Vec<_>>().join(", ")
}
