//! Configuration: the typed [`Settings`], how they are loaded (defaults, then a TOML file, then
//! `RETAILCRM_SYNC__SECTION__KEY` environment variables, layered with the `config` crate) and
//! how they are checked so that an operator sees **every** problem in one run.
//!
//! Layout: [`sections`] holds the typed sections and their defaults, [`load`] the layering and
//! the raw checks of the file and environment, [`check`] the semantic checks of loaded values,
//! [`problem`] the error types and [`url`] the API URL rule shared with the integration CLI.

pub mod check;
pub mod load;
pub mod problem;
pub mod sections;
pub mod url;

pub use problem::{ConfigErrors, ConfigProblem, Severity};
pub use sections::{
    ControlSettings, DaemonSettings, DatabaseSettings, HttpSettings, LogFormat, LogSettings,
    RedisSettings, Settings, ShutdownSettings, SyncSettings,
};
pub use url::validate_api_url;

/// Prefix of the environment variables that override the file (`RETAILCRM_SYNC__LOG__LEVEL`).
pub const ENV_PREFIX: &str = "RETAILCRM_SYNC";
/// Separator between prefix, section and key in environment variable names.
pub const ENV_SEPARATOR: &str = "__";
