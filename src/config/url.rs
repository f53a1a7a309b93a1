//! The RetailCRM API URL rule (DESIGN.md 8): http(s) with a host, and https unless the host is
//! loopback (the mock and tests run on 127.0.0.1).

use std::net::IpAddr;

pub use reqwest::Url;

/// Checks a RetailCRM API URL; the error says what is wrong and what to do.
pub fn validate_api_url(raw: &str) -> Result<Url, String> {
    let url = Url::parse(raw.trim())
        .map_err(|e| format!("`{raw}` is not a URL ({e}); use e.g. https://shop.retailcrm.ru"))?;
    let host = match url.host_str() {
        Some(h) if !h.is_empty() => h.to_string(),
        _ => {
            return Err(format!(
                "`{raw}` has no host; use e.g. https://shop.retailcrm.ru"
            ));
        }
    };
    match url.scheme() {
        "https" => Ok(url),
        "http" if is_loopback(&host) => Ok(url),
        "http" => Err(format!(
            "`{raw}` is plain http to a non-loopback host; use https (http is allowed only for \
             127.0.0.0/8, ::1 and localhost)"
        )),
        other => Err(format!("`{raw}` has scheme `{other}`; use https")),
    }
}

/// True for `localhost`, 127.0.0.0/8 and ::1.
pub fn is_loopback(host: &str) -> bool {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    if bare.eq_ignore_ascii_case("localhost") {
        return true;
    }
    bare.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn https_always_http_only_loopback() {
        assert!(validate_api_url("https://shop.retailcrm.ru").is_ok());
        assert!(validate_api_url("http://127.0.0.1:8080").is_ok());
        assert!(validate_api_url("http://127.3.4.5").is_ok());
        assert!(validate_api_url("http://[::1]:9000/").is_ok());
        assert!(validate_api_url("http://localhost:1").is_ok());
        assert!(validate_api_url("http://shop.retailcrm.ru").is_err());
        assert!(validate_api_url("http://128.0.0.1").is_err());
        assert!(validate_api_url("ftp://shop.retailcrm.ru").is_err());
        assert!(validate_api_url("shop.retailcrm.ru").is_err());
        assert!(validate_api_url("").is_err());
    }
}
