//! The overview cards, the Images page and the ExApps page after a scan.

mod common;

use common::fixtures::Fixtures;
use common::*;
use serde_json::json;

/// A server with engine B as daemon "b", and an ExApp with a current and
/// an outdated image on it. Returns (app, appid, current tag, outdated tag).
async fn with_exapp() -> (TestApp, Fixtures, String, String, String) {
    let app = spawn_app().await;
    app.post_json(
        "/api/v1/daemons",
        &json!({"name": "b", "endpoint": engine_b_sock()}),
    )
    .await;
    let fx = Fixtures::new(&engine_b_sock());
    let base = fx.unique("busybox:1");
    fx.busybox(&base);
    let repo = format!("ghcr.io/{}/pages", fx.unique("nc"));
    let (old, new) = (format!("{repo}:1.0.0"), format!("{repo}:2.0.0"));
    fx.build(&old, &base, 4000);
    fx.build(&new, &base, 5000);
    let appid = fx.unique("pages").replace('-', "_");
    fx.run(&format!("nc_app_{appid}"), &new);
    (app, fx, appid, new, old)
}

async fn htmx_get(app: &TestApp, path: &str, target: &str) -> (u16, String) {
    let response = app
        .http
        .get(app.url(path))
        .header("HX-Request", "true")
        .header("HX-Target", target)
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

#[tokio::test]
async fn rescan_fills_the_daemon_card_with_disk_use() {
    let (app, ..) = with_exapp().await;
    let (_, before) = app.get_text("/").await;
    assert!(before.contains("Not scanned yet."), "{before}");
    let response = app.htmx_post("/scan").await;
    assert_eq!(response.status(), 200);
    let cards = response.text().await.unwrap();
    assert!(
        cards.starts_with(r#"<div class="cards" id="cards">"#),
        "a fragment: {cards}"
    );
    for figure in [
        "<dt>Images</dt>",
        "<dt>Disk</dt>",
        "<dt>Outdated</dt>",
        "<dt>Removable now</dt>",
        "scanned <time datetime=\"20",
    ] {
        assert!(cards.contains(figure), "{figure} missing in {cards}");
    }
    let (_, after) = app.get_text("/").await;
    assert!(after.contains("<dt>Outdated</dt>") && !after.contains("Not scanned yet."));
}

#[tokio::test]
async fn a_plain_form_rescan_returns_to_the_overview() {
    let (app, ..) = with_exapp().await;
    let response = app.post_form("/scan", &[]).await;
    assert_eq!(response.status(), 303);
    assert_eq!(response.headers()["location"], "/");
}

#[tokio::test]
async fn the_images_page_filters_by_owner_and_status_in_place() {
    let (app, _, appid, new, old) = with_exapp().await;
    app.htmx_post("/scan").await;
    let (status, page) = app.get_text("/images").await;
    assert_eq!(status, 200);
    assert!(page.contains(&new) && page.contains(&old) && page.contains(r#"id="results""#));

    let (status, fragment) = htmx_get(
        &app,
        &format!("/images?owner={appid}&status=outdated"),
        "results",
    )
    .await;
    assert_eq!(status, 200);
    assert!(
        fragment.starts_with(r#"<div id="results">"#),
        "only the results are sent: {fragment}"
    );
    assert!(
        fragment.contains(&old) && !fragment.contains(&new),
        "{fragment}"
    );
    assert!(fragment.contains("1 image<"), "{fragment}");
}

#[tokio::test]
async fn the_images_page_searches_and_sorts() {
    let (app, _, _, new, old) = with_exapp().await;
    app.htmx_post("/scan").await;
    let (_, found) = htmx_get(
        &app,
        &format!("/images?q={}", &new[new.len() - 12..]),
        "results",
    )
    .await;
    assert!(found.contains(&new) && !found.contains(&old), "{found}");

    let repo = new.rsplit_once(':').unwrap().0;
    let order = |page: &str| page.find(&new).unwrap() < page.find(&old).unwrap();
    let (_, asc) = htmx_get(
        &app,
        &format!("/images?q={repo}&sort=size&dir=asc"),
        "results",
    )
    .await;
    let (_, desc) = htmx_get(
        &app,
        &format!("/images?q={repo}&sort=size&dir=desc"),
        "results",
    )
    .await;
    assert!(
        !order(&asc) && order(&desc),
        "the bigger (new) image comes last, then first"
    );
    assert!(desc.contains(r#"aria-sort="descending""#));
}

#[tokio::test]
async fn bad_filters_are_422_with_the_reason() {
    let (app, ..) = with_exapp().await;
    let (status, page) = app.get_text("/images?status=everything&sort=colour").await;
    assert_eq!(status, 422);
    assert!(
        page.contains("status: one of current") && page.contains("sort: unknown column"),
        "{page}"
    );
}

#[tokio::test]
async fn more_rows_come_as_rows_only() {
    let (app, ..) = with_exapp().await;
    app.htmx_post("/scan").await;
    let (status, rows) = htmx_get(&app, "/images?offset=1", "more").await;
    assert_eq!(status, 200);
    assert!(rows.trim_start().starts_with("<tr"), "{rows}");
    assert!(!rows.contains("<table"));
}

#[tokio::test]
async fn the_exapps_page_shows_current_and_earlier_images() {
    let (app, _, appid, new, old) = with_exapp().await;
    app.htmx_post("/scan").await;
    let (status, page) = app.get_text("/exapps").await;
    assert_eq!(status, 200);
    let section = page
        .split(&format!(r#"id="exapp-b-{appid}""#))
        .nth(1)
        .expect("a section for the ExApp");
    let section = section.split("</section>").next().unwrap();
    assert!(
        section.find(&new).unwrap() < section.find(&old).unwrap(),
        "current first: {section}"
    );
    assert!(section.contains("badge-current") && section.contains("badge-outdated"));
    assert!(section.contains("1 earlier image"), "{section}");
}

#[tokio::test]
async fn the_images_page_filters_what_is_removable_now() {
    let (app, _, appid, new, old) = with_exapp().await;
    app.htmx_post("/scan").await;
    let (_, page) = app.get_text("/images").await;
    assert!(
        page.contains(r#"<option value="removable">removable now</option>"#),
        "{page}"
    );
    // Outdated just now: it waits out the 24 h minimum age.
    let path = format!("/images?owner={appid}&status=removable");
    let (status, waiting) = htmx_get(&app, &path, "results").await;
    assert_eq!(status, 200, "{waiting}");
    assert!(waiting.contains("0 images<"), "{waiting}");

    let (status, body) = app.patch_settings(&json!({"min_age_hours": 0})).await;
    assert_eq!(status, 200, "{body}");
    let (_, now) = htmx_get(&app, &path, "results").await;
    assert!(now.contains(&old) && !now.contains(&new), "{now}");
    assert!(now.contains("1 image<"), "{now}");
}
