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

/// The custom properties (`--name:#rrggbb`) of the first `:root { … }` after `from` in app.css.
fn palette(css: &str, from: &str) -> std::collections::HashMap<String, [f64; 3]> {
    let start = css.find(from).expect("the block") + from.len();
    let block = &css[start..];
    let block = &block[block.find(":root {").expect(":root") + 7..];
    let block = &block[..block.find('}').unwrap()];
    block
        .split(';')
        .filter_map(|decl| {
            let (name, value) = decl.trim().split_once(':')?;
            let hex = value.trim().strip_prefix('#')?;
            let hex = if hex.len() == 3 {
                hex.chars().flat_map(|c| [c, c]).collect::<String>()
            } else {
                hex.to_owned()
            };
            let channel = |i: usize| f64::from(u8::from_str_radix(&hex[i..i + 2], 16).unwrap());
            Some((
                name.trim().trim_start_matches("--").to_owned(),
                [channel(0), channel(2), channel(4)],
            ))
        })
        .collect()
}

/// WCAG 2's contrast ratio of two sRGB colours.
fn contrast(a: [f64; 3], b: [f64; 3]) -> f64 {
    let luminance = |c: [f64; 3]| {
        let lin = |v: f64| {
            let v = v / 255.0;
            if v <= 0.03928 {
                v / 12.92
            } else {
                ((v + 0.055) / 1.055).powf(2.4)
            }
        };
        0.2126 * lin(c[0]) + 0.7152 * lin(c[1]) + 0.0722 * lin(c[2])
    };
    let (x, y) = (luminance(a), luminance(b));
    (x.max(y) + 0.05) / (x.min(y) + 0.05)
}

#[test]
fn every_text_colour_has_at_least_4_5_to_1_contrast_in_both_themes() {
    let css =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/static/app.css")).unwrap();
    // (text, background) as the stylesheet pairs them.
    let pairs = [
        ("fg", "bg"),
        ("fg", "card"),
        ("muted", "bg"),
        ("muted", "card"),
        ("up", "card"),
        ("down", "card"),
        ("down", "bg"),
        ("accent", "card"),
        ("accent", "bg"),
        ("warn", "card"),
        ("protected", "card"),
        ("on-accent", "accent"),
        ("on-accent", "down"),
        ("head-fg", "head-bg"),
        ("fg", "notice-bg"),
        ("fg", "code-bg"),
    ];
    for (theme, from) in [("light", ""), ("dark", "prefers-color-scheme: dark")] {
        let colours = palette(&css, from);
        for (text, background) in pairs {
            let (t, b) = (
                colours
                    .get(text)
                    .unwrap_or_else(|| panic!("{theme}: no --{text}")),
                colours
                    .get(background)
                    .unwrap_or_else(|| panic!("{theme}: no --{background}")),
            );
            let ratio = contrast(*t, *b);
            assert!(
                ratio >= 4.5,
                "{theme}: --{text} on --{background} has contrast {ratio:.2}:1, below 4.5:1"
            );
        }
    }
}

#[tokio::test]
async fn the_favicon_and_the_page_script_are_served_without_a_login() {
    let app = common::spawn_app().await;
    for (path, kind) in [
        ("/static/favicon.svg", "image/svg+xml"),
        ("/static/app.js", "text/javascript"),
    ] {
        let response = app.anon.get(app.url(path)).send().await.unwrap();
        assert_eq!(response.status(), 200, "{path}");
        assert!(response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with(kind));
    }
    let ico = app.anon.get(app.url("/favicon.ico")).send().await.unwrap();
    assert_eq!(ico.status(), 301);
    assert_eq!(ico.headers()["location"], "/static/favicon.svg");
}
