//! Cleanup right after an ExApp update, on real engines with real running
//! containers: AppAPI removes the container and runs the new image; the
//! janitor notices from the daemon itself. One test at a time: a watcher
//! sees every ExApp on its engine, other tests' too.

mod common;

use std::time::Duration;

use common::fixtures::{self, Fixtures};
use common::*;
use serde_json::{json, Value};
use tokio::sync::Mutex;

static ONE_AT_A_TIME: Mutex<()> = Mutex::const_new(());

/// The settle time of the tests on the system clock.
const SETTLE: Duration = Duration::from_secs(2);
/// The settle time of the tests on a manual clock: it passes only when the
/// test advances the clock (well within the watcher's one-hour limit).
const CLOCK_SETTLE: Duration = Duration::from_secs(600);
/// How far the daemon's stamp of a container's start (real time) may lie
/// from the test's clock, caught up just before the update.
const START_SLACK: Duration = Duration::from_secs(60);
/// Real time for a settle task that woke to look at the container and do
/// what it does (nothing, in the tests that use it).
const ACT: Duration = Duration::from_secs(3);

struct ExApp {
    fx: Fixtures,
    container: String,
    v1: String,
    v2: String,
}

/// An ExApp running v1 (busybox, so it really runs), with v2 ready to pull.
fn exapp(engine: &str, name: &str) -> ExApp {
    let fx = Fixtures::new(engine);
    let base = fx.unique("busybox:1");
    fx.busybox(&base);
    let repo = format!("ghcr.io/{}/{name}", fx.unique("nc"));
    let (v1, v2) = (format!("{repo}:1.0.0"), format!("{repo}:2.0.0"));
    fx.build(&v1, &base, 3000);
    fx.build(&v2, &base, 4000);
    let container = format!("nc_app_{}", fx.unique(name).replace('-', "_"));
    fx.run(&container, &v1);
    ExApp {
        fx,
        container,
        v1,
        v2,
    }
}

impl ExApp {
    /// What AppAPI does on update: remove the container, run the new image.
    fn update(&self, command: &[&str]) {
        self.fx.docker(&["rm", "-f", &self.container]);
        let mut args = fixtures::RUN.to_vec();
        args.extend(["--name", &self.container, &self.v2]);
        args.extend_from_slice(command);
        self.fx.docker(&args);
    }

    fn has(&self, reference: &str) -> bool {
        self.fx.has(reference)
    }
}

async fn watched(daemon: &str, engine: &str, cleanup_on_update: bool) -> TestApp {
    watch_with(spawn_app().await, daemon, engine, cleanup_on_update, SETTLE).await
}

/// `watched` on a manual clock, with `CLOCK_SETTLE`.
async fn watched_on_manual_clock(daemon: &str, engine: &str, cleanup_on_update: bool) -> TestApp {
    let app = spawn_app_on_manual_clock().await;
    watch_with(app, daemon, engine, cleanup_on_update, CLOCK_SETTLE).await
}

async fn watch_with(
    app: TestApp,
    daemon: &str,
    engine: &str,
    cleanup_on_update: bool,
    settle: Duration,
) -> TestApp {
    let (status, body) = app
        .post_json(
            "/api/v1/daemons",
            &json!({"name": daemon, "endpoint": engine}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let (status, body) = app
        .patch_settings(&json!({"cleanup_on_update": cleanup_on_update}))
        .await;
    assert_eq!(status, 200, "{body}");
    app.start_worker();
    app.start_watch(settle);
    // The watcher's first scan: it learns the ExApps' current images.
    let daemon_id = app.app.store.list_daemons().await.unwrap()[0].id;
    let store = &app.app.store;
    eventually(
        Duration::from_secs(30),
        "the watcher's first scan",
        async || {
            let scan = store.load_scan(daemon_id).await.unwrap();
            scan.is_some_and(|s| s.scanned_at.is_some())
        },
    )
    .await;
    app
}

async fn update_runs(app: &TestApp) -> Vec<Value> {
    app.get_json("/api/v1/cleanup/runs")
        .await
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["trigger"] == "update")
        .cloned()
        .collect()
}

async fn wait_until_gone(x: &ExApp, reference: &str, limit: Duration) {
    eventually(limit, &format!("{reference} is removed"), async || {
        !x.has(reference)
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_cleanup_on_update_the_old_image_goes_after_the_settle_time() {
    let _one = ONE_AT_A_TIME.lock().await;
    let engine = engine_b_sock();
    let x = exapp(&engine, "upd");
    let app = watched_on_manual_clock("b", &engine, true).await;
    let clock = app.clock().clone();
    catch_up(&clock);
    x.update(&[]);
    // The watcher saw the update: its settle time runs on the clock.
    until_asleep(&clock, 1).await;
    assert!(update_runs(&app).await.is_empty());
    clock.advance(CLOCK_SETTLE - START_SLACK);
    until_asleep(&clock, 1).await;
    assert!(
        x.has(&x.v1) && update_runs(&app).await.is_empty(),
        "removed before the new container settled"
    );
    clock.advance(2 * START_SLACK);
    wait_until_gone(&x, &x.v1, Duration::from_secs(30)).await;
    assert!(x.has(&x.v2));
    let runs = update_runs(&app).await;
    assert_eq!(runs.len(), 1, "{runs:?}");
    assert_eq!(
        runs[0]["requested_by"],
        format!("update of {}", &x.container[7..])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_cleanup_on_update_the_old_image_stays_and_is_outdated() {
    let _one = ONE_AT_A_TIME.lock().await;
    let engine = engine_a_sock();
    let x = exapp(&engine, "keep");
    let app = watched_on_manual_clock("a", &engine, false).await;
    let clock = app.clock().clone();
    catch_up(&clock);
    x.update(&[]);
    until_asleep(&clock, 1).await;
    clock.advance(CLOCK_SETTLE + START_SLACK);
    tokio::time::sleep(ACT).await;
    assert_eq!(clock.sleepers(), 0, "the settle task waits no more");
    assert!(x.has(&x.v1));
    assert!(update_runs(&app).await.is_empty());
    let images = app.get_json("/api/v1/images?status=outdated").await;
    let old = images
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["repo_tags"][0] == x.v1.as_str())
        .expect("v1 is listed as outdated");
    assert!(
        old["reason"]
            .as_str()
            .unwrap()
            .starts_with("previous image of"),
        "{old}"
    );
    assert!(old["outdated_since"].is_string());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_update_whose_container_exits_at_once_removes_nothing() {
    let _one = ONE_AT_A_TIME.lock().await;
    let engine = engine_b_sock();
    let x = exapp(&engine, "crashy");
    let app = watched_on_manual_clock("b", &engine, true).await;
    let clock = app.clock().clone();
    catch_up(&clock);
    x.update(&["false"]);
    until_asleep(&clock, 1).await;
    clock.advance(CLOCK_SETTLE + START_SLACK);
    tokio::time::sleep(ACT).await;
    assert_eq!(clock.sleepers(), 0, "the settle task waits no more");
    assert!(x.has(&x.v1), "the previous image is kept for a rollback");
    assert!(update_runs(&app).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_update_made_while_the_event_stream_was_down_is_still_noticed() {
    let _one = ONE_AT_A_TIME.lock().await;
    let engine = SpareEngine::sock();
    let x = exapp(&engine, "restarted");
    let app = watched("c", &engine, true).await;
    let stopped = SpareEngine::stop().await;
    stopped.restart().await;
    // The update happens as soon as the daemon is back: the watcher may not
    // have reconnected yet. The reconnect's rescan must catch it.
    x.update(&[]);
    wait_until_gone(&x, &x.v1, SETTLE + Duration::from_secs(60)).await;
    assert_eq!(update_runs(&app).await.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cleanup_after_an_update_leaves_other_exapps_images_alone() {
    let _one = ONE_AT_A_TIME.lock().await;
    let engine = engine_b_sock();
    let updated = exapp(&engine, "mine");
    let bystander = exapp(&engine, "theirs");
    // The bystander was updated a moment ago, before the watcher started:
    // its v1 is outdated, but younger than min_age_hours, and no update of
    // its own will clean it.
    bystander.update(&[]);
    let app = watched("b", &engine, true).await;
    updated.update(&[]);
    wait_until_gone(&updated, &updated.v1, SETTLE + Duration::from_secs(20)).await;
    let runs = update_runs(&app).await;
    assert_eq!(runs.len(), 1, "{runs:?}");
    let run = app
        .wait_for_run(runs[0]["id"].as_i64().unwrap(), Duration::from_secs(60))
        .await;
    for job in run["jobs"].as_array().unwrap() {
        assert_eq!(job["owner"], &updated.container[7..], "{job}");
    }
    assert!(
        bystander.has(&bystander.v1),
        "another ExApp's recent old image was removed"
    );
}
