//! The vendored htmx is the unmodified upstream file of the pinned version.

mod common;

use sha2::{Digest, Sha256};

/// Pinned in static/fetch-htmx.sh; change both together.
const HTMX_VERSION: &str = "2.0.11";
const HTMX_SHA256: &str = "d6fdc75f204e6bdefa99b69bf1e6d4ac69b8a364f77929f45c13476b4000f717";

fn sha256(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[test]
fn the_vendored_htmx_is_the_pinned_upstream_release() {
    let file = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/static/htmx.min.js")).unwrap();
    assert_eq!(
        sha256(&file),
        HTMX_SHA256,
        "static/htmx.min.js was modified or replaced"
    );
    let script =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/static/fetch-htmx.sh"))
            .unwrap();
    assert!(
        script.contains(&format!("VERSION={HTMX_VERSION}\n")),
        "fetch-htmx.sh pins another version"
    );
}

#[tokio::test]
async fn the_server_serves_exactly_that_file() {
    let app = common::spawn_app().await;
    let response = app.get("/static/htmx.min.js").await;
    assert_eq!(response.status(), 200);
    assert!(response.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/javascript"));
    assert_eq!(sha256(&response.bytes().await.unwrap()), HTMX_SHA256);
}
