//! A rescan that finds nothing new takes the last classification again
//! (`scan::ScanMemo`), on real engines: and only then. A test that needs
//! "nothing new" has an engine to itself while this binary runs (cargo runs
//! test binaries one at a time).

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::fixtures::Fixtures;
use common::*;
use exapp_janitor::scan::{self, DaemonInventory};
use serde_json::json;

async fn app_on(engine: &str) -> TestApp {
    app_with_daemon(spawn_app().await, engine).await
}

async fn app_with_daemon(app: TestApp, engine: &str) -> TestApp {
    let (status, body) = app
        .post_json("/api/v1/daemons", &json!({"name": "d", "endpoint": engine}))
        .await;
    assert_eq!(status, 201, "{body}");
    app
}

/// One scan of the app's daemon, as the server runs it.
async fn scan_once(app: &TestApp) -> Arc<DaemonInventory> {
    let daemon = app.app.store.list_daemons().await.unwrap().remove(0);
    scan::scan_daemon(&app.app.store, &daemon, &app.app.scan_options().await)
        .await
        .expect("the scan succeeds")
}

/// The inventory the server's cache holds for the app's daemon (what its
/// pages and API read).
async fn held_by_server(app: &TestApp) -> Arc<DaemonInventory> {
    let held = app.app.last_scans().await.unwrap();
    let daemon_id = app.app.store.list_daemons().await.unwrap()[0].id;
    held[&daemon_id]
        .inventory
        .clone()
        .expect("an inventory is held")
}

fn tagged<'a>(
    inventory: &'a DaemonInventory,
    tag: &str,
) -> &'a exapp_janitor::inventory::ClassifiedImage {
    inventory
        .images
        .iter()
        .find(|i| i.info.repo_tags.iter().any(|t| t == tag))
        .unwrap_or_else(|| panic!("no image tagged {tag}"))
}

#[tokio::test]
async fn a_rescan_that_finds_nothing_new_takes_the_last_classification_again() {
    let app = app_on(&engine_a_sock()).await;
    let fx = Fixtures::new(&engine_a_sock());
    fx.import(&fx.unique("memo:1"), &[("f", 64)]);
    // The first scan records in the history what it saw of the ExApps
    // (other tests' on this engine): the second classifies over that.
    scan_once(&app).await;
    let first = scan_once(&app).await;
    let second = scan_once(&app).await;
    assert!(
        Arc::ptr_eq(&first, &second),
        "the same listing over the same history was classified again"
    );
    // And the server reads it from there, not from its stored text.
    assert!(
        Arc::ptr_eq(&held_by_server(&app).await, &second),
        "the server holds a second copy"
    );
}

#[tokio::test]
async fn a_rescan_after_a_container_was_created_classifies_again() {
    let app = app_on(&engine_b_sock()).await;
    let fx = Fixtures::new(&engine_b_sock());
    let tag = fx.unique("memo:2");
    fx.import(&tag, &[("f", 64)]);
    let first = scan_once(&app).await;
    assert_eq!(tagged(&first, &tag).status.as_str(), "foreign");
    let name = fx.unique("memo-user");
    fx.create(&name, &tag);
    let second = scan_once(&app).await;
    assert!(!Arc::ptr_eq(&first, &second));
    let image = tagged(&second, &tag);
    assert_eq!(
        (image.status.as_str(), image.containers.clone()),
        ("in_use", vec![name])
    );
}

#[tokio::test]
async fn a_rescan_after_an_image_was_tagged_sees_the_new_tag() {
    let app = app_on(&engine_b_sock()).await;
    let fx = Fixtures::new(&engine_b_sock());
    let tag = fx.unique("memo:3");
    fx.import(&tag, &[("f", 64)]);
    // Twice: the second scan gets an image list like one parsed before,
    // and takes what that listed without parsing it again.
    scan_once(&app).await;
    scan_once(&app).await;
    let more = fx.unique("memo:4");
    fx.docker(&["tag", &tag, &more]);
    let after = scan_once(&app).await;
    assert_eq!(tagged(&after, &more).info.id, tagged(&after, &tag).info.id);
}

/// An ExApp running its new image, its old one left behind; the old one's tag.
fn exapp_with_an_old_image(fx: &Fixtures) -> String {
    let base = fx.unique("busybox:1");
    fx.busybox(&base);
    let repo = format!("ghcr.io/{}/memo", fx.unique("nc"));
    let (old, new) = (format!("{repo}:1.0.0"), format!("{repo}:2.0.0"));
    fx.build(&old, &base, 1000);
    fx.build(&new, &base, 2000);
    fx.run(
        &format!("nc_app_{}", fx.unique("memo").replace('-', "_")),
        &new,
    );
    old
}

#[tokio::test]
async fn the_server_holds_the_inventory_its_scan_made_even_one_not_to_be_taken_again() {
    let app = app_on(&engine_b_sock()).await;
    let fx = Fixtures::new(&engine_b_sock());
    let old = exapp_with_an_old_image(&fx);
    // The first scan sees the old image outdated and stamps it with its
    // own moment: a rescan classifies again, but the text it stored is
    // this inventory, which the server need not read back.
    let stamped = scan_once(&app).await;
    assert!(tagged(&stamped, &old).outdated_since.is_some());
    assert!(
        Arc::ptr_eq(&held_by_server(&app).await, &stamped),
        "the server read back a second copy of what it classified"
    );
}

#[tokio::test]
async fn an_image_seen_outdated_anew_is_stamped_with_that_scan_even_on_the_same_listing() {
    let engine = SpareEngine::sock();
    let app = app_with_daemon(spawn_app_on_manual_clock().await, &engine).await;
    let fx = Fixtures::new(&engine);
    let old = exapp_with_an_old_image(&fx);
    // The history forgets the old image's time (as when it stopped being
    // outdated for a while): the same listing over the same history as the
    // scan before, which stamped it with its own moment.
    let forget = || async {
        sqlx::query("DELETE FROM outdated_images")
            .execute(app.app.store.pool())
            .await
            .unwrap();
        app.clock().advance(Duration::from_secs(7_200));
    };
    // The first scan records the ExApp's current image in the history.
    scan_once(&app).await;
    forget().await;
    let stamped = scan_once(&app).await;
    let first_seen = app.app.clock().now_unix();
    assert_eq!(tagged(&stamped, &old).outdated_since, Some(first_seen));
    forget().await;
    let again = scan_once(&app).await;
    assert_eq!(
        tagged(&again, &old).outdated_since,
        Some(first_seen + 7_200),
        "the last scan's moment was taken again: its minimum age would end early"
    );
}
