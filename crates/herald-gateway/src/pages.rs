//! The browser pages: the dashboard (`GET /`) and the notification demo
//! (`GET /demo/notifications`), with their scripts and style sheet under `/assets/`.
//!
//! The files live in `crates/herald-gateway/assets/` and are compiled into the binary
//! (`include_str!`): no build step, no CDN, nothing to install. The pages themselves hold
//! no data and need no token; everything they show comes from the token-checked API
//! routes. Every page is sent with a strict Content-Security-Policy: scripts and
//! connections from this origin only.

use axum::extract::Path;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::error::RequestError;

/// Content-Security-Policy of every page.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

/// One embedded file.
struct Asset {
    name: &'static str,
    content_type: &'static str,
    body: &'static str,
}

const ASSETS: &[Asset] = &[
    Asset {
        name: "herald.css",
        content_type: "text/css; charset=utf-8",
        body: include_str!("../assets/herald.css"),
    },
    Asset {
        name: "common.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_str!("../assets/common.js"),
    },
    Asset {
        name: "dashboard.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_str!("../assets/dashboard.js"),
    },
    Asset {
        name: "notifications.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_str!("../assets/notifications.js"),
    },
];

const DASHBOARD_HTML: &str = include_str!("../assets/dashboard.html");
const NOTIFICATIONS_HTML: &str = include_str!("../assets/notifications.html");

fn respond(content_type: &'static str, body: &'static str) -> Response {
    let mut response = (StatusCode::OK, body).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    response
}

/// `GET /`: the dashboard.
pub async fn dashboard() -> Response {
    respond("text/html; charset=utf-8", DASHBOARD_HTML)
}

/// `GET /demo/notifications`: the notification demo.
pub async fn notifications() -> Response {
    respond("text/html; charset=utf-8", NOTIFICATIONS_HTML)
}

/// `GET /assets/{name}`.
pub async fn asset(Path(name): Path<String>) -> Response {
    match ASSETS.iter().find(|asset| asset.name == name) {
        Some(asset) => respond(asset.content_type, asset.body),
        None => RequestError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no asset '{name}'"),
        )
        .into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_reference_only_assets_that_exist() {
        for page in [DASHBOARD_HTML, NOTIFICATIONS_HTML] {
            for reference in page.split("/assets/").skip(1) {
                let name: String = reference
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
                    .collect();
                assert!(
                    ASSETS.iter().any(|asset| asset.name == name),
                    "missing asset {name}"
                );
            }
            // The CSP forbids inline scripts: a page with one would break silently.
            assert!(!page.contains("<script>"), "inline script in a page");
            assert!(!page.contains(" onclick="), "inline handler in a page");
        }
    }
}
