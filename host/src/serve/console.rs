//! `GET /console`: the operator's page, and its scripts and styles. Every file is
//! embedded in the binary (no build step, nothing fetched from another origin; the
//! Content-Security-Policy says so to the browser too). The page draws what the
//! `/admin/*` JSON endpoints answer; it holds no state of its own.

use axum::{
    extract::Path,
    http::{header, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
};

/// uPlot 1.6.32 (MIT, `host/console/vendor/uplot-1.6.32/LICENSE`), from the npm registry.
const UPLOT_JS: &str = include_str!("../../console/vendor/uplot-1.6.32/uPlot.iife.min.js");
const UPLOT_CSS: &str = include_str!("../../console/vendor/uplot-1.6.32/uPlot.min.css");
const UPLOT_LICENSE: &str = include_str!("../../console/vendor/uplot-1.6.32/LICENSE");
const PAGE: &str = include_str!("../../console/index.html");
const SCRIPT: &str = include_str!("../../console/console.js");
const STYLE: &str = include_str!("../../console/console.css");

/// Only this origin, for everything; no inline script or style, no framing.
const POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// The page.
pub async fn page() -> Response {
    asset("text/html; charset=utf-8", PAGE)
}

/// One of the page's files, by name.
pub async fn file(Path(name): Path<String>) -> Response {
    let (kind, body) = match name.as_str() {
        "console.js" => ("text/javascript; charset=utf-8", SCRIPT),
        "console.css" => ("text/css; charset=utf-8", STYLE),
        "uPlot.iife.min.js" => ("text/javascript; charset=utf-8", UPLOT_JS),
        "uPlot.min.css" => ("text/css; charset=utf-8", UPLOT_CSS),
        "uPlot.LICENSE.txt" => ("text/plain; charset=utf-8", UPLOT_LICENSE),
        _ => {
            return super::error::ApiError {
                status: StatusCode::NOT_FOUND,
                kind: "invalid_request_error",
                code: "unknown_url",
                message: format!("the console has no file `{name}`: open /console"),
                param: None,
            }
            .into_response()
        }
    };
    asset(kind, body)
}

fn asset(kind: &'static str, body: &'static str) -> Response {
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(kind));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(POLICY),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    // Behind the admin key: no shared cache may keep it.
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, no-cache"),
    );
    response
}
