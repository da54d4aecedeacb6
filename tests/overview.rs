//! The overview answers first: what can be freed now, from which ExApps,
//! what waits for its minimum age, and a cleanup limited to one ExApp.
//!
//! Engine B is shared with other tests, so every assertion is about this
//! test's own ExApps (their rows, their preview), never about totals — except
//! where a fresh data dir makes the total certain: with the default 24 h
//! minimum age, every outdated image it sees has just become outdated, so
//! nothing at all is removable yet.

mod common;

use common::fixtures::Fixtures;
use common::*;
use serde_json::json;
use std::time::Duration;

/// The part of `page` from `start` up to the first `end` after it.
fn element<'a>(page: &'a str, start: &str, end: &str) -> &'a str {
    let at = page
        .find(start)
        .unwrap_or_else(|| panic!("no {start} in {page}"));
    let rest = &page[at..];
    &rest[..rest.find(end).unwrap()]
}

/// The `<tr>` of `appid` in the overview's per-ExApp table.
fn exapp_row<'a>(page: &'a str, appid: &str) -> &'a str {
    element(page, &format!(r#"<tr id="owner-{appid}""#), "</tr>")
}

/// The number in `data-{name}="…"` of an element.
fn data(fragment: &str, name: &str) -> u64 {
    let marker = format!(r#"data-{name}=""#);
    let at = fragment
        .find(&marker)
        .unwrap_or_else(|| panic!("no data-{name} in {fragment}"))
        + marker.len();
    fragment[at..].split('"').next().unwrap().parse().unwrap()
}

#[tokio::test]
async fn an_exapp_waiting_out_the_minimum_age_is_listed_and_clean_now_says_why_it_is_off() {
    let app = spawn_app_with_daemons(&[("b", engine_b_sock())]).await;
    let fx = Fixtures::new(&engine_b_sock());
    exapp(&fx, "ovw_wait", 2);
    let appid = appid(&fx, "ovw_wait");
    app.htmx_post("/scan").await;

    let (status, page) = app.get_text("/").await;
    assert_eq!(status, 200);
    let row = exapp_row(&page, &appid);
    assert_eq!(data(row, "outdated"), 2, "{row}");
    assert_eq!(data(row, "removable"), 0, "{row}");
    assert!(
        row.contains(r#"2 wait until <time datetime="20"#),
        "when it becomes removable: {row}"
    );

    let headline = page.split(r#"id="headline""#).nth(1).expect("a headline");
    assert!(
        headline.contains("Nothing can be freed now"),
        "a fresh data dir has seen every outdated image just now: {headline}"
    );
    assert!(
        headline.contains(r#"after the 24 h minimum age, from <time datetime="20"#),
        "{headline}"
    );
    assert!(
        page.contains(r#"id="clean-now" disabled"#) && page.contains(r#"id="clean-now-why""#),
        "Clean now is off, with the reason: {page}"
    );

    // The daemon card says what the outdated bytes are doing.
    let card = page.split(r#"id="daemon-b""#).nth(1).unwrap();
    assert!(card.contains("waiting (min age)"), "{card}");
    assert!(!card.contains("outdated, kept"), "{card}");
}

#[tokio::test]
async fn the_overview_counts_an_exapps_removable_bytes_as_its_own_preview_does() {
    let app = spawn_app_with_daemons(&[("b", engine_b_sock())]).await;
    let (status, body) = app.patch_settings(&json!({"min_age_hours": 0})).await;
    assert_eq!(status, 200, "{body}");
    let fx = Fixtures::new(&engine_b_sock());
    exapp(&fx, "ovw_now", 2);
    let appid = appid(&fx, "ovw_now");
    let (_, preview) = app
        .post_json("/api/v1/cleanup/preview", &json!({"owner": appid}))
        .await;
    assert_eq!(preview["images"].as_array().unwrap().len(), 2, "{preview}");
    app.htmx_post("/scan").await;

    let (_, page) = app.get_text("/").await;
    let row = exapp_row(&page, &appid);
    assert_eq!(data(row, "outdated"), 2, "{row}");
    assert_eq!(data(row, "removable"), 2, "{row}");
    assert_eq!(
        data(row, "removable-bytes"),
        preview["bytes_reclaimable"].as_u64().unwrap(),
        "{row}"
    );
    assert!(
        row.contains(&format!(r#"href="/cleanup?owner={appid}""#)),
        "Clean up this ExApp: {row}"
    );
    let headline = page.split(r#"id="headline""#).nth(1).unwrap();
    assert!(headline.contains("can be freed now from"), "{headline}");
    assert!(
        page.contains(r#"href="/cleanup" id="clean-now""#),
        "Clean now is on: {page}"
    );
}

#[tokio::test]
async fn the_preview_page_for_one_exapp_shows_and_confirms_only_its_images() {
    let app = spawn_app_with_daemons(&[("b", engine_b_sock())]).await;
    let fx = Fixtures::new(&engine_b_sock());
    let (_, mine) = exapp(&fx, "ovw_mine", 2);
    let (_, theirs) = exapp(&fx, "ovw_theirs", 1);
    let (a, b) = (appid(&fx, "ovw_mine"), appid(&fx, "ovw_theirs"));

    let (status, page) = app
        .get_text(&format!("/cleanup?owner={a}&min_age_hours=0"))
        .await;
    assert_eq!(status, 200, "{page}");
    assert!(mine.iter().all(|t| page.contains(t.as_str())), "{page}");
    assert!(!page.contains(theirs[0].as_str()), "{page}");
    assert!(
        page.contains(&format!(r#"name="owner" value="{a}""#)),
        "the confirmation carries the ExApp: {page}"
    );
    assert!(page.contains(&format!("ExApp {a}")), "the title says so");

    // A confirmation naming another ExApp's image too removes only this ExApp's.
    let (_, other) = app
        .get_text(&format!("/cleanup?owner={b}&min_age_hours=0"))
        .await;
    let mut ids = confirmed_images_in(&page);
    assert_eq!(ids.len(), 2);
    let their_ids = confirmed_images_in(&other);
    assert_eq!(their_ids.len(), 1);
    ids.extend(their_ids.iter().cloned());
    let mut form: Vec<(&str, &str)> = vec![("owner", &a), ("min_age_hours", "0")];
    form.extend(ids.iter().map(|id| ("images", id.as_str())));
    let response = app.post_form("/cleanup/runs", &form).await;
    assert_eq!(response.status(), 303);
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    let run_id = location.trim_start_matches("/runs/");
    let run = app
        .get_json(&format!("/api/v1/cleanup/runs/{run_id}"))
        .await;
    let owners: Vec<&str> = run["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["owner"].as_str().unwrap())
        .collect();
    assert_eq!(owners, [a.as_str(), a.as_str()], "{run}");
}

#[tokio::test]
async fn a_bad_exapp_in_the_preview_address_is_a_clear_error() {
    let app = spawn_app_with_daemons(&[("b", engine_b_sock())]).await;
    let (status, page) = app.get_text("/cleanup?owner=no%20such%20app").await;
    assert_eq!(status, 422);
    assert!(page.contains("owner: an ExApp ID"), "{page}");
}

/// The card of daemon `name` on the overview.
fn card<'a>(page: &'a str, name: &str) -> &'a str {
    element(page, &format!(r#"id="daemon-{name}""#), "</article>")
}

#[tokio::test]
async fn the_cards_show_a_scan_and_a_new_daemon_made_in_the_same_second() {
    // The clock stands still: every view below is of one second, the one
    // the cards are kept rendered for.
    let app = spawn_app_on_manual_clock().await;
    catch_up(app.clock());
    add_daemon(&app, "b", &engine_b_sock()).await;
    let (_, first) = app.get_text("/").await;
    assert!(card(&first, "b").contains("Not scanned yet"), "{first}");

    app.htmx_post("/scan").await;
    let (_, scanned) = app.get_text("/").await;
    let b = card(&scanned, "b");
    assert!(
        !b.contains("Not scanned yet") && b.contains("scanned <time"),
        "{b}"
    );

    add_daemon(&app, "a", &engine_a_sock()).await;
    let (_, added) = app.get_text("/").await;
    assert!(card(&added, "a").contains("Not scanned yet"), "{added}");
}

#[tokio::test]
async fn a_rescan_in_the_second_of_the_last_view_shows_its_time_on_the_card() {
    let app = spawn_app_on_manual_clock().await;
    catch_up(app.clock());
    add_daemon(&app, "b", &engine_b_sock()).await;
    app.htmx_post("/scan").await;
    app.clock().advance(Duration::from_secs(60));
    let scanned = |page: &str| {
        let b = card(page, "b");
        b[b.find("scanned <time").expect("a scan time")..].to_owned()
    };
    let (_, before) = app.get_text("/").await;

    // Nothing new on the daemon: only the scan's time changes.
    app.htmx_post("/scan").await;
    let (_, after) = app.get_text("/").await;
    assert_ne!(scanned(&before), scanned(&after), "{after}");
}
