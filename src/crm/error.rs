//! Errors of the RetailCRM client and how the job layer should treat them.
//!
//! Every variant says what went wrong and what to do. [`CrmError::class`] tells the caller
//! whether retrying can help: a wrong key, a missing scope or a wrong account URL never heal on
//! their own (permanent); timeouts, connection failures, 5xx and truncated bodies usually do
//! (transient); rate limiting is its own class because it must not spend a job attempt.
//!
//! No variant ever holds the API key: the client sends it only as a header and never copies it
//! into a message.

use std::time::Duration;

/// How the caller should react to an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorClass {
    /// Retrying will not help until a person fixes something (key, scopes, URL, request).
    Permanent,
    /// Likely to succeed on a later attempt.
    Transient,
    /// RetailCRM kept answering 503/429 for the whole wait budget; retry later without
    /// counting it as a failed attempt.
    RateLimited,
}

/// An error talking to RetailCRM.
#[derive(Debug, thiserror::Error)]
pub enum CrmError {
    /// The configured account URL cannot be used.
    #[error(
        "invalid RetailCRM URL `{url}`: {reason}; set api_url to the account address, e.g. https://shop.retailcrm.ru"
    )]
    InvalidUrl {
        /// The URL as configured.
        url: String,
        /// Why it was refused.
        reason: String,
    },
    /// The HTTP client could not be built (TLS backend).
    #[error("could not set up the HTTP client: {0}")]
    Setup(String),
    /// The configured API key cannot be sent at all (empty, or not valid in an HTTP header).
    #[error(
        "the configured RetailCRM API key is unusable: {reason}; set a valid api_key for this integration in retailcrm_integrations"
    )]
    UnusableKey {
        /// What is wrong with it (never the key itself).
        reason: String,
    },
    /// The API key was rejected (`Wrong "apiKey" value.`, `"apiKey" is missing.`, 401/403).
    #[error(
        "RetailCRM rejected the API key ({message}, HTTP {status} on {endpoint}); check the integration's api_key in retailcrm_integrations and that the key is still active in RetailCRM (Settings > Integration > API access keys)"
    )]
    InvalidKey {
        /// Endpoint path.
        endpoint: String,
        /// HTTP status.
        status: u16,
        /// RetailCRM's `errorMsg`.
        message: String,
    },
    /// The key lacks a scope or store needed for this method (`Access denied.`).
    #[error(
        "RetailCRM denied access to {endpoint} ({message}); give the API key the scope this method needs (order_read, customer_read, reference_read, order_write, customer_write) and access to the store"
    )]
    AccessDenied {
        /// Endpoint path.
        endpoint: String,
        /// RetailCRM's `errorMsg`.
        message: String,
    },
    /// `test_connection` found scopes missing from the key.
    #[error("the API key lacks the scope(s) {}; add them to the key in RetailCRM (Settings > Integration > API access keys) or disable the streams that need them", missing.join(", "))]
    MissingScopes {
        /// Scopes needed but not granted.
        missing: Vec<String>,
    },
    /// The URL does not point at a RetailCRM account (HTML page, `Account does not exist.`).
    #[error(
        "no RetailCRM account answers at {base_url} (HTTP {status} on {endpoint}: {detail}); check api_url in retailcrm_integrations"
    )]
    AccountNotFound {
        /// The account base URL.
        base_url: String,
        /// Endpoint path.
        endpoint: String,
        /// HTTP status.
        status: u16,
        /// What was seen (message or "HTML page").
        detail: String,
    },
    /// The account does not offer API v5.
    #[error("RetailCRM at {base_url} does not list API version 5.0 (it lists {}); this daemon needs API v5", versions.join(", "))]
    UnsupportedVersion {
        /// The account base URL.
        base_url: String,
        /// Versions it lists.
        versions: Vec<String>,
    },
    /// RetailCRM refused the request (`{success:false, errorMsg, errors}` with a 4xx).
    #[error(
        "RetailCRM refused {endpoint} (HTTP {status}): {message}{}",
        format_details(errors)
    )]
    Api {
        /// Endpoint path.
        endpoint: String,
        /// HTTP status.
        status: u16,
        /// `errorMsg`.
        message: String,
        /// `errors`, as `field: message` or plain messages.
        errors: Vec<String>,
    },
    /// RetailCRM failed on its side (5xx other than 503, or `success:false` with a 5xx).
    #[error(
        "RetailCRM failed on {endpoint} (HTTP {status}): {message}; this is usually temporary, the job will be retried"
    )]
    Server {
        /// Endpoint path.
        endpoint: String,
        /// HTTP status.
        status: u16,
        /// `errorMsg` or a short excerpt of the body.
        message: String,
    },
    /// 503/429 for longer than the rate-limit budget.
    #[error(
        "RetailCRM kept rate limiting {endpoint} (HTTP 503/429) for {waited:?} over {attempts} attempts; lower requests_per_second for this integration or retry later"
    )]
    RateLimited {
        /// Endpoint path.
        endpoint: String,
        /// Time spent waiting.
        waited: Duration,
        /// Requests sent.
        attempts: u32,
    },
    /// No answer in time.
    #[error(
        "RetailCRM did not answer {endpoint} within {timeout:?}; the job will be retried (check the account's availability if this repeats)"
    )]
    Timeout {
        /// Endpoint path.
        endpoint: String,
        /// The configured timeout.
        timeout: Duration,
    },
    /// Connection or transfer failure.
    #[error(
        "could not talk to RetailCRM on {endpoint}: {reason}; check network access to the account, the job will be retried"
    )]
    Network {
        /// Endpoint path.
        endpoint: String,
        /// reqwest's description (never contains the key: it travels only in a header).
        reason: String,
    },
    /// The body was not the JSON we expect (truncated, garbage, wrong envelope).
    #[error(
        "unreadable response from RetailCRM on {endpoint} (HTTP {status}): {reason}; usually a cut-off transfer, the job will be retried"
    )]
    Decode {
        /// Endpoint path.
        endpoint: String,
        /// HTTP status.
        status: u16,
        /// What did not parse.
        reason: String,
    },
    /// The caller asked for something the API cannot do (e.g. more than 100 ids).
    #[error("invalid request to RetailCRM: {0}")]
    InvalidRequest(String),
}

fn format_details(errors: &[String]) -> String {
    if errors.is_empty() {
        String::new()
    } else {
        format!(" ({})", errors.join("; "))
    }
}

impl CrmError {
    /// Whether retrying can help.
    pub fn class(&self) -> ErrorClass {
        match self {
            CrmError::InvalidUrl { .. }
            | CrmError::Setup(_)
            | CrmError::UnusableKey { .. }
            | CrmError::InvalidKey { .. }
            | CrmError::AccessDenied { .. }
            | CrmError::MissingScopes { .. }
            | CrmError::AccountNotFound { .. }
            | CrmError::UnsupportedVersion { .. }
            | CrmError::InvalidRequest(_) => ErrorClass::Permanent,
            CrmError::Api { status, .. } => {
                // 408/409/423/425 are worth another try; other 4xx are our request's fault.
                if matches!(status, 408 | 409 | 423 | 425) {
                    ErrorClass::Transient
                } else {
                    ErrorClass::Permanent
                }
            }
            CrmError::Server { .. }
            | CrmError::Timeout { .. }
            | CrmError::Network { .. }
            | CrmError::Decode { .. } => ErrorClass::Transient,
            CrmError::RateLimited { .. } => ErrorClass::RateLimited,
        }
    }

    /// True for [`ErrorClass::Permanent`].
    pub fn is_permanent(&self) -> bool {
        self.class() == ErrorClass::Permanent
    }
}
