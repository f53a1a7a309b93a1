//! Secrets. An API key is wrapped so it cannot reach a log line, an error, `status` output or a
//! panic message by accident: `Debug` and `Display` print a mask, and the only way to the raw
//! value is the explicit [`ApiKey::expose`], used where the key goes onto the wire or into the
//! database.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A RetailCRM API key.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ApiKey(String);

impl ApiKey {
    /// Wraps a key, trimming surrounding whitespace (keys pasted from files end with `\n`).
    pub fn new(raw: impl Into<String>) -> Self {
        let raw = raw.into();
        let trimmed = raw.trim();
        if trimmed.len() == raw.len() {
            ApiKey(raw)
        } else {
            ApiKey(trimmed.to_string())
        }
    }

    /// The raw key. Call only to put it on the wire (`X-API-KEY`) or into the database.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// True when the key is empty after trimming.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// A mask safe to show people: the last 4 characters of a long key, nothing of a short one.
    pub fn masked(&self) -> String {
        let n = self.0.chars().count();
        if n >= 16 {
            let tail: String = self.0.chars().skip(n - 4).collect();
            format!("****{tail}")
        } else {
            "****".to_string()
        }
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ApiKey({})", self.masked())
    }
}

impl fmt::Display for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.masked())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_never_prints() {
        let key = ApiKey::new(" sEcReT0123456789abcdef\n");
        assert_eq!(key.expose(), "sEcReT0123456789abcdef");
        for shown in [format!("{key:?}"), format!("{key}"), key.masked()] {
            assert!(!shown.contains("sEcReT"), "{shown}");
        }
        assert_eq!(key.masked(), "****cdef");
        assert_eq!(ApiKey::new("short").masked(), "****");
        assert!(ApiKey::new("  ").is_empty());
    }
}
