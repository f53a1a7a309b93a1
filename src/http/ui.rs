//! The monitoring page at `/`: one HTML page, a style sheet and a script, embedded in the
//! binary (`src/http/ui/`), with no build step. The script is a small vanilla JS front over the
//! JSON API: the overview and project views read `/api/v1/overview`, `/projects/{id}`,
//! `/jobs`, `/runs` and `/dead_records` ([`super::api_history`]), and every action is a POST of
//! the API with `Authorization: Bearer` (never a cookie, never a GET).
//!
//! Data never reaches the page as markup: the script builds the DOM with `textContent` and
//! `createElement` only (a unit test refuses `innerHTML` and its kin), and the
//! Content-Security-Policy allows scripts and styles from this origin only, so a project named
//! `<script>alert(1)</script>` is shown as text and could not run even if it were parsed.

use axum::Router;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;

/// The page.
pub const INDEX_HTML: &str = include_str!("ui/index.html");
/// Its script.
pub const APP_JS: &str = include_str!("ui/app.js");
/// Its style sheet.
pub const APP_CSS: &str = include_str!("ui/app.css");
/// Its icon.
pub const FAVICON_SVG: &str = include_str!("ui/favicon.svg");

/// What every answer of the page carries: scripts, styles, images and fetches from this
/// origin only, no framing, no referrer, no MIME sniffing.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; img-src 'self'; connect-src 'self'; base-uri 'none'; \
     form-action 'none'; frame-ancestors 'none'";

/// The page's routes (no state, no auth: the page holds no data; the API it calls does).
pub fn routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route(
            "/",
            get(|| async { asset("text/html; charset=utf-8", INDEX_HTML) }),
        )
        .route(
            "/ui/app.js",
            get(|| async { asset("text/javascript; charset=utf-8", APP_JS) }),
        )
        .route(
            "/ui/app.css",
            get(|| async { asset("text/css; charset=utf-8", APP_CSS) }),
        )
        .route(
            "/ui/favicon.svg",
            get(|| async { asset("image/svg+xml", FAVICON_SVG) }),
        )
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::X_FRAME_OPTIONS, "DENY"),
            (header::REFERRER_POLICY, "no-referrer"),
            // Small and embedded: revalidate each load so an upgrade shows at once.
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_script_never_turns_data_into_markup() {
        for sink in [
            "innerHTML",
            "outerHTML",
            "insertAdjacentHTML",
            "document.write",
            "eval(",
            "new Function",
            "createContextualFragment",
            "setTimeout('",
            "setTimeout(\"",
        ] {
            assert!(!APP_JS.contains(sink), "app.js uses {sink}");
        }
        // The one place attributes are set refuses event handlers and foreign links.
        assert!(APP_JS.contains("refusing attribute"));
    }

    #[test]
    fn the_page_loads_only_its_own_files() {
        assert!(INDEX_HTML.contains(r#"src="/ui/app.js""#));
        assert!(INDEX_HTML.contains(r#"href="/ui/app.css""#));
        assert!(!INDEX_HTML.contains("<script>"), "no inline script");
        assert!(!INDEX_HTML.contains("style="), "no inline style");
        assert!(!INDEX_HTML.contains("http://") && !INDEX_HTML.contains("https://"));
    }

    #[test]
    fn every_asset_carries_the_policy() {
        let r = asset("text/html; charset=utf-8", INDEX_HTML);
        let h = r.headers();
        assert_eq!(h[header::CONTENT_SECURITY_POLICY], CONTENT_SECURITY_POLICY);
        assert_eq!(h[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
        assert!(CONTENT_SECURITY_POLICY.contains("script-src 'self';"));
        assert!(!CONTENT_SECURITY_POLICY.contains("unsafe"));
    }
}
