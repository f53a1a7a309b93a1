//! Response envelopes and body parsing for the RetailCRM client: the `{success, ...}` wrappers
//! with their items kept raw, the per-item tolerant decoding of lists, history pages and
//! dictionaries, the error-body reading (message, `errors` object or list, HTML pages), and URL
//! helpers. Split from `client` so the HTTP plumbing and the wire format each read on their own;
//! the `parse_*` functions decode a saved body without any HTTP (tests, fixtures).

use std::collections::HashMap;

use reqwest::Url;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::value::RawValue;

use tracing::warn;

use super::decode::{decode_items, lenient_opt_i64, lenient_opt_string, seq_or_map};
use super::error::CrmError;
use super::types::{
    Credentials, Customer, CustomerHistoryRecord, HistoryPage, Order, OrderHistoryRecord, Page,
    Pagination, Status,
};

/// Page sizes RetailCRM accepts on lists and history.
pub const ALLOWED_LIMITS: [u32; 3] = [20, 50, 100];
/// Most ids one `filter[ids][]` call may carry (one page of 100).
pub const MAX_IDS_PER_CALL: usize = 100;

pub(super) fn yes() -> bool {
    true
}

/// A list envelope with the items kept raw.
#[derive(Deserialize)]
pub(super) struct ListEnvelope<'a> {
    #[serde(default = "yes")]
    pub(super) success: bool,
    #[serde(default)]
    pub(super) pagination: Pagination,
    #[serde(borrow, default)]
    pub(super) orders: Option<RawItems<'a>>,
    #[serde(borrow, default)]
    pub(super) customers: Option<RawItems<'a>>,
    #[serde(borrow, default)]
    pub(super) history: Option<RawItems<'a>>,
    #[serde(
        default,
        rename = "generatedAt",
        deserialize_with = "lenient_opt_string"
    )]
    pub(super) generated_at: Option<String>,
}

/// A list of raw items: an array, or an object (PHP) whose values are the items.
#[derive(Deserialize)]
#[serde(transparent)]
pub(super) struct RawItems<'a>(#[serde(borrow, deserialize_with = "seq_or_map")] Vec<&'a RawValue>);

/// A dictionary envelope (`statuses`, `statusGroups`, `sites`) with values kept raw.
#[derive(Deserialize)]
pub(super) struct DictEnvelope<'a> {
    #[serde(default = "yes")]
    pub(super) success: bool,
    #[serde(borrow, default)]
    pub(super) statuses: Option<&'a RawValue>,
    #[serde(borrow, default, rename = "statusGroups")]
    pub(super) status_groups: Option<&'a RawValue>,
    #[serde(borrow, default)]
    pub(super) sites: Option<&'a RawValue>,
}

#[derive(Deserialize)]
pub(super) struct VersionsEnvelope {
    #[serde(default = "yes")]
    pub(super) success: bool,
    #[serde(default, deserialize_with = "seq_or_map")]
    pub(super) versions: Vec<String>,
}

#[derive(Deserialize)]
pub(super) struct CredentialsEnvelope {
    #[serde(default = "yes")]
    pub(super) success: bool,
    #[serde(flatten)]
    pub(super) credentials: Credentials,
}

#[derive(Deserialize)]
pub(super) struct SettingValue {
    #[serde(default, deserialize_with = "lenient_opt_string")]
    pub(super) value: Option<String>,
}

#[derive(Deserialize)]
pub(super) struct SettingsBody {
    #[serde(default)]
    pub(super) timezone: Option<SettingValue>,
    #[serde(default, alias = "defaultCurrency")]
    pub(super) default_currency: Option<SettingValue>,
}

#[derive(Deserialize)]
pub(super) struct SettingsEnvelope {
    #[serde(default = "yes")]
    pub(super) success: bool,
    #[serde(default)]
    pub(super) settings: Option<SettingsBody>,
}

#[derive(Deserialize)]
pub(super) struct IdEnvelope {
    #[serde(default = "yes")]
    pub(super) success: bool,
    #[serde(default, deserialize_with = "lenient_opt_i64")]
    pub(super) id: Option<i64>,
}

/// The parts of an error body we read.
#[derive(Deserialize)]
pub(super) struct ErrorBody {
    #[serde(default, rename = "errorMsg", deserialize_with = "lenient_opt_string")]
    pub(super) error_msg: Option<String>,
    #[serde(default)]
    pub(super) errors: serde_json::Value,
}

/// `errors` as readable lines: an object gives `field: message`, a list gives its items.
pub(super) fn error_lines(errors: &serde_json::Value) -> Vec<String> {
    fn text(v: &serde_json::Value) -> String {
        match v {
            serde_json::Value::String(s) => s.clone(),
            other => other.to_string(),
        }
    }
    match errors {
        serde_json::Value::Object(map) => map
            .iter()
            .map(|(k, v)| format!("{k}: {}", text(v)))
            .collect(),
        serde_json::Value::Array(items) => items.iter().map(text).collect(),
        serde_json::Value::Null => Vec::new(),
        other => vec![text(other)],
    }
}

pub(super) fn excerpt(body: &[u8]) -> String {
    let s = String::from_utf8_lossy(body);
    let t: String = s.trim().chars().take(120).collect();
    if t.is_empty() {
        "empty body".to_string()
    } else {
        t
    }
}

pub(super) fn looks_like_html(body: &[u8]) -> bool {
    body.iter()
        .find(|b| !b.is_ascii_whitespace())
        .is_some_and(|b| *b == b'<')
}

/// Decodes a history body (`{success, generatedAt, history, pagination}`).
/// `Err(None)` means a `success:false` body.
pub(super) fn decode_history<T: DeserializeOwned>(
    path: &str,
    status: u16,
    body: &[u8],
) -> Result<HistoryPage<T>, Option<CrmError>> {
    let env: ListEnvelope = parse_envelope(path, status, body)?;
    if !env.success {
        return Err(None);
    }
    let raws = env
        .history
        .ok_or_else(|| Some(decode_err(path, status, "no `history` in the response")))?;
    Ok(HistoryPage {
        items: decode_items(&raws.0),
        pagination: env.pagination,
        generated_at: env.generated_at,
    })
}

/// Decodes a list body, picking the list with `pick`.
pub(super) fn decode_list<T, F>(
    path: &str,
    status: u16,
    body: &[u8],
    pick: &F,
) -> Result<Page<T>, Option<CrmError>>
where
    T: DeserializeOwned,
    F: for<'a> Fn(ListEnvelope<'a>) -> Option<RawItems<'a>>,
{
    let env: ListEnvelope = parse_envelope(path, status, body)?;
    if !env.success {
        return Err(None);
    }
    let pagination = env.pagination;
    let raws = pick(env).ok_or_else(|| {
        Some(decode_err(
            path,
            status,
            "the list is missing from the response",
        ))
    })?;
    Ok(Page {
        items: decode_items(&raws.0),
        pagination,
    })
}

/// Decodes a reference dictionary; entries that do not decode are skipped with a warning.
pub(super) fn decode_dictionary<T, F>(
    path: &str,
    status: u16,
    body: &[u8],
    pick: &F,
) -> Result<HashMap<String, T>, Option<CrmError>>
where
    T: DeserializeOwned,
    F: for<'a> Fn(DictEnvelope<'a>) -> Option<&'a RawValue>,
{
    let env: DictEnvelope = parse_envelope(path, status, body)?;
    if !env.success {
        return Err(None);
    }
    let raw = pick(env).ok_or_else(|| {
        Some(decode_err(
            path,
            status,
            "the dictionary is missing from the response",
        ))
    })?;
    let entries: HashMap<String, &RawValue> =
        super::decode::map_or_empty(&mut serde_json::Deserializer::from_str(raw.get()))
            .map_err(|e| Some(decode_err(path, status, &e.to_string())))?;
    let mut out = HashMap::with_capacity(entries.len());
    for (code, value) in entries {
        match serde_json::from_str::<T>(value.get()) {
            Ok(v) => {
                out.insert(code, v);
            }
            Err(e) => {
                warn!(endpoint = path, code = %code, error = %e, "skipping a reference entry that does not decode")
            }
        }
    }
    Ok(out)
}

pub(super) fn body_error(path: &str, r: Option<CrmError>) -> CrmError {
    r.unwrap_or_else(|| decode_err(path, 200, "the body says success: false"))
}

/// Decodes a recorded `/api/v5/orders` body (for tests and tools; the client does the same).
pub fn parse_orders_page(body: &[u8]) -> Result<Page<Order>, CrmError> {
    decode_list("/api/v5/orders", 200, body, &|e: ListEnvelope<'_>| e.orders)
        .map_err(|r| body_error("/api/v5/orders", r))
}

/// Decodes a recorded `/api/v5/customers` body.
pub fn parse_customers_page(body: &[u8]) -> Result<Page<Customer>, CrmError> {
    decode_list("/api/v5/customers", 200, body, &|e: ListEnvelope<'_>| {
        e.customers
    })
    .map_err(|r| body_error("/api/v5/customers", r))
}

/// Decodes a recorded `/api/v5/orders/history` body.
pub fn parse_orders_history(body: &[u8]) -> Result<HistoryPage<OrderHistoryRecord>, CrmError> {
    decode_history("/api/v5/orders/history", 200, body)
        .map_err(|r| body_error("/api/v5/orders/history", r))
}

/// Decodes a recorded `/api/v5/customers/history` body.
pub fn parse_customers_history(
    body: &[u8],
) -> Result<HistoryPage<CustomerHistoryRecord>, CrmError> {
    decode_history("/api/v5/customers/history", 200, body)
        .map_err(|r| body_error("/api/v5/customers/history", r))
}

/// Decodes a recorded `/api/v5/reference/statuses` body.
pub fn parse_statuses(body: &[u8]) -> Result<HashMap<String, Status>, CrmError> {
    decode_dictionary(
        "/api/v5/reference/statuses",
        200,
        body,
        &|e: DictEnvelope<'_>| e.statuses,
    )
    .map_err(|r| body_error("/api/v5/reference/statuses", r))
}

pub(super) fn decode_err(path: &str, status: u16, reason: &str) -> CrmError {
    CrmError::Decode {
        endpoint: path.to_string(),
        status,
        reason: reason.chars().take(300).collect(),
    }
}

/// Parses an envelope; a body that is not the JSON we expect is a (transient) decode error.
pub(super) fn parse_envelope<'a, T: Deserialize<'a>>(
    path: &str,
    status: u16,
    body: &'a [u8],
) -> Result<T, Option<CrmError>> {
    serde_json::from_slice::<T>(body).map_err(|e| Some(decode_err(path, status, &e.to_string())))
}

pub(super) fn check_limit(limit: u32) -> Result<(), CrmError> {
    if ALLOWED_LIMITS.contains(&limit) {
        Ok(())
    } else {
        Err(CrmError::InvalidRequest(format!(
            "page size {limit} is not accepted by RetailCRM; use 20, 50 or 100"
        )))
    }
}

pub(super) fn ids_query(ids: &[i64]) -> Result<Option<Vec<(String, String)>>, CrmError> {
    if ids.is_empty() {
        return Ok(None);
    }
    if ids.len() > MAX_IDS_PER_CALL {
        return Err(CrmError::InvalidRequest(format!(
            "{} ids in one call; RetailCRM returns at most {MAX_IDS_PER_CALL} per page, split the batch",
            ids.len()
        )));
    }
    let mut q = Vec::with_capacity(ids.len() + 2);
    for id in ids {
        q.push(("filter[ids][]".to_string(), id.to_string()));
    }
    q.push(("limit".into(), "100".into()));
    q.push(("page".into(), "1".into()));
    Ok(Some(q))
}

pub(super) fn empty_page<T>() -> Page<T> {
    Page {
        items: Vec::new(),
        pagination: Pagination {
            limit: 100,
            total_count: 0,
            current_page: 1,
            total_page_count: 0,
        },
    }
}

/// The URL as safe to show: no query, fragment or user-info (a key may have been pasted there).
pub(super) fn redact_url(raw: &str) -> String {
    let mut s = raw.trim();
    if let Some(i) = s.find(['?', '#']) {
        s = &s[..i];
    }
    let (scheme, rest) = s.split_once("://").unwrap_or(("", s));
    let rest = match rest.split_once('/') {
        Some((authority, path)) => {
            let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
            format!("{host}/{path}")
        }
        None => rest.rsplit_once('@').map_or(rest, |(_, h)| h).to_string(),
    };
    let shown = if scheme.is_empty() {
        rest
    } else {
        format!("{scheme}://{rest}")
    };
    let mut out: String = shown.chars().take(200).collect();
    if s.len() < raw.trim().len() {
        out.push_str("?…");
    }
    out
}

/// Checks and normalises the account URL: scheme + host (+ port), no credentials, query or
/// fragment; a trailing `/`, `/api` or `/api/v5` is dropped. Plain `http` only on loopback.
pub(super) fn normalise_base_url(api_url: &str) -> Result<String, CrmError> {
    let bad = |reason: &str| CrmError::InvalidUrl {
        url: redact_url(api_url),
        reason: reason.to_string(),
    };
    let url = Url::parse(api_url.trim()).map_err(|e| bad(&e.to_string()))?;
    let host = url.host_str().ok_or_else(|| bad("no host"))?.to_string();
    match url.scheme() {
        "https" => {}
        "http" => {
            let loopback = host == "localhost"
                || host
                    .trim_matches(|c| c == '[' || c == ']')
                    .parse::<std::net::IpAddr>()
                    .is_ok_and(|ip| ip.is_loopback());
            if !loopback {
                return Err(bad(
                    "RetailCRM is served over https only (plain http is accepted for loopback test servers)",
                ));
            }
        }
        other => return Err(bad(&format!("unsupported scheme `{other}`"))),
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(bad(
            "credentials in the URL are not allowed; the API key is configured separately",
        ));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(bad(
            "the URL must not have a query or fragment (never put apiKey in the URL)",
        ));
    }
    let mut path = url.path().trim_end_matches('/').to_string();
    for suffix in ["/api/v5", "/api"] {
        if let Some(p) = path.strip_suffix(suffix) {
            path = p.to_string();
            break;
        }
    }
    let port = url.port().map(|p| format!(":{p}")).unwrap_or_default();
    let host = if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]")
    } else {
        host
    };
    Ok(format!("{}://{}{}{}", url.scheme(), host, port, path))
}
