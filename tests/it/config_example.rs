//! `config/retailcrm-sync.toml` is the documented example: it must hold every key of
//! `Settings`, with exactly the defaults in code.

use retailcrm_sync::config::Settings;

const EXAMPLE: &str = include_str!("../../config/retailcrm-sync.toml");

#[test]
fn example_equals_defaults() {
    let parsed: Settings = toml::from_str(EXAMPLE).expect("example parses");
    assert_eq!(parsed, Settings::default());
}

#[test]
fn example_lists_every_key_and_nothing_else() {
    let example: toml::Table = toml::from_str(EXAMPLE).unwrap();
    let defaults = toml::Value::try_from(Settings::default()).unwrap();
    let defaults = defaults.as_table().unwrap();
    assert_eq!(
        example.keys().collect::<Vec<_>>(),
        defaults.keys().collect::<Vec<_>>(),
        "sections"
    );
    for (section, value) in defaults {
        let want: Vec<_> = value.as_table().unwrap().keys().collect();
        let got: Vec<_> = example[section].as_table().unwrap().keys().collect();
        assert_eq!(got, want, "keys of [{section}]");
    }
}

#[test]
fn example_loads_without_errors() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config/retailcrm-sync.toml");
    let (settings, problems) = Settings::load_with_env(&path, true, &[]);
    assert_eq!(settings, Some(Settings::default()));
    assert!(problems.iter().all(|p| !p.is_error()), "{problems:?}");
}
