//! Config problems: each names the key, says what is wrong and what to do. They are collected,
//! never raised one at a time, so `validate` can list all of them.

use std::fmt;

/// How bad a problem is: errors stop the daemon, warnings are listed but do not.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    /// Listed, but the configuration is still usable (e.g. a directory systemd will create).
    Warning,
    /// The configuration cannot be used.
    Error,
}

/// One problem in a configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigProblem {
    /// Dotted key path (`sync.page_size`), or the source (`file`, `env`) for a whole-file issue.
    pub key: String,
    /// Whether this problem makes the configuration unusable.
    pub severity: Severity,
    /// What is wrong.
    pub message: String,
    /// What to do about it.
    pub hint: String,
}

impl ConfigProblem {
    /// An error-level problem.
    pub fn error(
        key: impl Into<String>,
        message: impl Into<String>,
        hint: impl Into<String>,
    ) -> Self {
        ConfigProblem {
            key: key.into(),
            severity: Severity::Error,
            message: message.into(),
            hint: hint.into(),
        }
    }

    /// A warning-level problem.
    pub fn warning(
        key: impl Into<String>,
        message: impl Into<String>,
        hint: impl Into<String>,
    ) -> Self {
        ConfigProblem {
            severity: Severity::Warning,
            ..ConfigProblem::error(key, message, hint)
        }
    }

    /// True for error-level problems.
    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

impl fmt::Display for ConfigProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let level = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        write!(f, "{level}: {}: {} ({})", self.key, self.message, self.hint)
    }
}

/// The configuration could not be used; holds every problem found (errors and warnings).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid configuration ({} problem(s)):\n{}", .problems.len(), render(.problems))]
pub struct ConfigErrors {
    /// Every problem found, in the order found.
    pub problems: Vec<ConfigProblem>,
}

fn render(problems: &[ConfigProblem]) -> String {
    problems
        .iter()
        .map(|p| format!("  {p}"))
        .collect::<Vec<_>>()
        .join("\n")
}
