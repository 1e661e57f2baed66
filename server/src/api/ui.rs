//! `GET /ui`: the web UI, one HTML file embedded in the binary (works offline). It reads the
//! same JSON API as every other client: `/registry`, `/registry/history`, `/freshness`,
//! `/get-online-features`; with auth on, it asks for a token and sends it as a bearer token.

use axum::http::header;
use axum::response::IntoResponse;

const INDEX: &str = include_str!("../../ui/index.html");

/// The UI's page.
pub async fn index() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], INDEX)
}
