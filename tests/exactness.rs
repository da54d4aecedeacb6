//! Deletion exactness on real engines: what the admin (or the policy in
//! force) approved is all that can go, and only if it is still true on the
//! live daemon right before the call.
//!
//! Tests share the engines when their runs are limited to their own ExApp
//! (`start_own`, approved image lists); a test whose run covers a whole
//! daemon, that measures a whole engine's disk use, or that stops engine C
//! has the engines alone.

mod common;

use std::time::{Duration, Instant};

use common::fixtures::Fixtures;
use common::*;
use serde_json::{json, Value};
use tokio::sync::RwLock;

static ENGINES: RwLock<()> = RwLock::const_new(());

const RUN_LIMIT: Duration = Duration::from_secs(60);

/// A server whose jobs stop right before their first removal call until
/// `hold` lets them go, with one daemon `d` on `engine`.
async fn app_with_hold(engine: &str, hold: &RemovalHold) -> TestApp {
    let dir = hold.path();
    let app = spawn_app_with(move |app| app.removal_hold = Some(dir)).await;
    add_daemon(&app, "d", engine).await;
    app
}

async fn start(app: &TestApp, body: Value) -> Value {
    let (status, run) = app.post_json("/api/v1/cleanup/runs", &body).await;
    assert_eq!(status, 202, "{run}");
    run
}

/// A run at min age 0 of this test's ExApp `name` only.
async fn start_own(app: &TestApp, fx: &Fixtures, name: &str) -> Value {
    start(app, json!({"min_age_hours": 0, "owner": appid(fx, name)})).await
}

async fn preview(app: &TestApp, body: Value) -> Value {
    let (status, preview) = app.post_json("/api/v1/cleanup/preview", &body).await;
    assert_eq!(status, 200, "{preview}");
    preview
}

fn ids(images: &Value) -> Vec<String> {
    images
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_str().unwrap().to_owned())
        .collect()
}

fn id_of(fx: &Fixtures, reference: &str) -> String {
    fx.docker(&["image", "inspect", "-f", "{{.Id}}", reference])
}

fn tags_of(fx: &Fixtures, id: &str) -> Vec<String> {
    let mut tags: Vec<String> = fx
        .docker(&["image", "inspect", "-f", "{{join .RepoTags \" \"}}", id])
        .split_whitespace()
        .map(str::to_owned)
        .collect();
    tags.sort();
    tags
}

fn job_id(run: &Value, tag: &str) -> i64 {
    job_for(run, tag)["id"].as_i64().unwrap()
}

// ---- 1. pending: pulled for an update, not used yet ----

/// `pend:2` runs; `pend:1` is an older version; `pend:3` was pulled after
/// `pend:2` and no container uses it yet. Returns (v1, v2, v3).
fn update_in_progress(fx: &Fixtures) -> (String, String, String) {
    let base = fx.unique("busybox:1");
    fx.busybox(&base);
    let repo = format!("ghcr.io/{}/pend", fx.unique("nc"));
    let v: Vec<String> = (1..=3).map(|i| format!("{repo}:{i}")).collect();
    for (i, tag) in v.iter().enumerate() {
        next_second();
        fx.build(tag, &base, 1000 + i);
    }
    fx.run(
        &format!("nc_app_{}", fx.unique("pend").replace('-', "_")),
        &v[1],
    );
    (v[0].clone(), v[1].clone(), v[2].clone())
}

#[tokio::test]
async fn a_freshly_pulled_image_is_pending_and_a_manual_run_at_min_age_0_leaves_it() {
    let _shared = ENGINES.read().await;
    let engine = engine_b_sock();
    let app = spawn_app_with_daemons(&[("d", engine.clone())]).await;
    let fx = Fixtures::new(&engine);
    let (v1, _v2, v3) = update_in_progress(&fx);
    app.post_json("/api/v1/scan", &json!({})).await;

    let pulled = image(&app, &v3).await;
    assert_eq!(pulled["status"], "pending", "{pulled}");
    assert_eq!(pulled["removable"], false, "{pulled}");
    assert!(
        pulled["reason"].as_str().unwrap().contains("not used yet"),
        "{pulled}"
    );
    let pending = app
        .get_json(&format!(
            "/api/v1/images?status=pending&owner={}",
            appid(&fx, "pend")
        ))
        .await;
    assert_eq!(ids(&pending), [pulled["id"].as_str().unwrap()]);

    let previewed = preview(&app, json!({"min_age_hours": 0})).await;
    assert!(
        !ids(&previewed["images"]).contains(&pulled["id"].as_str().unwrap().to_owned()),
        "{previewed}"
    );
    app.start_worker();
    let run = start_own(&app, &fx, "pend").await;
    let run = app
        .wait_for_run(run["id"].as_i64().unwrap(), RUN_LIMIT)
        .await;
    assert_eq!(job_for(&run, &v1)["status"], "succeeded", "{run}");
    assert!(fx.has(&v3), "the pending image was removed");
    assert!(!fx.has(&v1));
}

#[tokio::test]
async fn a_scheduled_run_leaves_a_pending_image() {
    let _alone = ENGINES.write().await; // a scheduled run covers the whole daemon
    let engine = engine_b_sock();
    let app = spawn_app_with_daemons(&[("d", engine.clone())]).await;
    let fx = Fixtures::new(&engine);
    let (v1, _v2, v3) = update_in_progress(&fx);
    let (status, body) = app
        .patch_settings(&json!({"interval_hours": 1, "min_age_hours": 0}))
        .await;
    assert_eq!(status, 200, "{body}");
    // The interval was set two hours ago: the scheduled run is due now.
    sqlx::query("UPDATE settings SET interval_set_at = interval_set_at - 7200")
        .execute(app.app.store.pool())
        .await
        .unwrap();
    app.start_worker();
    app.start_scheduler();
    let started = Instant::now();
    let run = loop {
        let runs = app.get_json("/api/v1/cleanup/runs").await;
        if let Some(run) = runs
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["trigger"] == "schedule")
        {
            break run.clone();
        }
        assert!(started.elapsed() < RUN_LIMIT, "no scheduled run: {runs}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let run = app
        .wait_for_run(run["id"].as_i64().unwrap(), RUN_LIMIT)
        .await;
    assert_eq!(job_for(&run, &v1)["status"], "succeeded", "{run}");
    assert!(
        !run["jobs"]
            .as_array()
            .unwrap()
            .iter()
            .any(|j| j["image_refs"]
                .as_array()
                .unwrap()
                .iter()
                .any(|r| r == v3.as_str())),
        "{run}"
    );
    assert!(fx.has(&v3));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cleanup_after_an_update_leaves_an_image_pulled_for_the_next_one() {
    let _shared = ENGINES.read().await;
    let engine = engine_b_sock();
    let fx = Fixtures::new(&engine);
    let (v1, v2, v3) = update_in_progress(&fx);
    let container = format!("nc_app_{}", fx.unique("pend").replace('-', "_"));
    // The ExApp runs :1 first; the watcher learns it.
    fx.docker(&["rm", "-f", &container]);
    fx.run(&container, &v1);
    let app = spawn_app_with_daemons(&[("d", engine.clone())]).await;
    app.patch_settings(&json!({"cleanup_on_update": true}))
        .await;
    // The watcher starts from the last scan: :1 is the ExApp's image.
    app.post_json("/api/v1/scan", &json!({})).await;
    app.start_worker();
    app.start_watch(Duration::from_secs(1));
    // AppAPI updates it to :2; :3 is already there (pulled for a later update).
    fx.docker(&["rm", "-f", &container]);
    fx.run(&container, &v2);
    eventually(RUN_LIMIT, &format!("{v1} is removed"), async || {
        !fx.has(&v1)
    })
    .await;
    let runs = app.get_json("/api/v1/cleanup/runs").await;
    let run = runs
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["trigger"] == "update")
        .cloned()
        .unwrap_or_else(|| panic!("no update run: {runs}"));
    let run = app
        .wait_for_run(run["id"].as_i64().unwrap(), RUN_LIMIT)
        .await;
    assert_eq!(
        run["jobs"].as_array().unwrap().len(),
        1,
        "only :1 goes: {run}"
    );
    assert!(
        fx.has(&v3),
        "the image pulled for the next update was removed"
    );
    assert!(fx.has(&v2));
}

// ---- 2. a run removes the images the admin approved, no others ----

#[tokio::test]
async fn a_run_with_approved_images_removes_only_those_still_removable_and_says_why_not() {
    let _shared = ENGINES.read().await;
    let engine = engine_a_sock();
    let app = spawn_app_with_daemons(&[("d", engine.clone())]).await;
    let fx = Fixtures::new(&engine);
    let (_, old) = exapp(&fx, "approved", 3);
    let previewed = preview(&app, json!({"min_age_hours": 0})).await;
    let (a, b, c) = (
        id_of(&fx, &old[0]),
        id_of(&fx, &old[1]),
        id_of(&fx, &old[2]),
    );
    for id in [&a, &b, &c] {
        assert!(ids(&previewed["images"]).contains(id), "{previewed}");
    }
    // The admin approves a and b, not c; after the preview b gains a user.
    let approved = vec![a.clone(), b.clone()];
    let user = fx.unique("late_user");
    fx.create(&user, &old[1]);

    app.start_worker();
    let run = start(&app, json!({"min_age_hours": 0, "images": approved})).await;
    let queued: Vec<&str> = run["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["image_id"].as_str().unwrap())
        .collect();
    assert_eq!(queued, [a.as_str()], "{run}");
    assert_eq!(run["approved"], approved.len(), "{run}");
    let left_out = run["left_out"].as_array().unwrap();
    let why_b = left_out
        .iter()
        .find(|l| l["image_id"] == b.as_str())
        .unwrap_or_else(|| panic!("{run}"));
    assert!(
        why_b["reason"].as_str().unwrap().contains("in_use")
            && why_b["reason"].as_str().unwrap().contains(&user),
        "{why_b}"
    );
    app.wait_for_run(run["id"].as_i64().unwrap(), RUN_LIMIT)
        .await;
    assert!(!fx.has_id(&a));
    assert!(fx.has(&old[2]), "an image nobody approved was removed");
    assert!(fx.has(&old[1]));
}

#[tokio::test]
async fn the_confirm_form_posts_the_previewed_images_and_the_run_page_says_what_was_left_out() {
    let _alone = ENGINES.write().await; // the form confirms every image of the daemon
    let engine = engine_b_sock();
    let app = spawn_app_with_daemons(&[("d", engine.clone())]).await;
    let fx = Fixtures::new(&engine);
    let (_, old) = exapp(&fx, "form", 2);
    let (status, page) = app.get_text("/cleanup?daemon=d&min_age_hours=0").await;
    assert_eq!(status, 200, "{page}");
    let shown = confirmed_images_in(&page);
    let (a, b) = (id_of(&fx, &old[0]), id_of(&fx, &old[1]));
    assert!(shown.contains(&a) && shown.contains(&b), "{page}");
    // Between the preview and the click, b starts being used.
    fx.create(&fx.unique("late_user"), &old[1]);
    let mut form: Vec<(&str, &str)> = vec![("daemon", "d"), ("min_age_hours", "0")];
    form.extend(shown.iter().map(|id| ("images", id.as_str())));
    let response = app.post_form("/cleanup/runs", &form).await;
    assert_eq!(response.status(), 303);
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    let run_id: i64 = location.trim_start_matches("/runs/").parse().unwrap();
    let run = app
        .get_json(&format!("/api/v1/cleanup/runs/{run_id}"))
        .await;
    let queued: Vec<&str> = run["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["image_id"].as_str().unwrap())
        .collect();
    assert!(
        queued.contains(&a.as_str()) && !queued.contains(&b.as_str()),
        "{run}"
    );
    let (_, run_page) = app.get_text(&location).await;
    assert!(
        run_page.contains(&format!(
            "1 of the {} previewed images was left out",
            shown.len()
        )),
        "{run_page}"
    );
}

#[tokio::test]
async fn a_run_request_with_bad_image_ids_is_refused_and_creates_nothing() {
    let _shared = ENGINES.read().await;
    let app = spawn_app_with_daemons(&[("d", engine_a_sock())]).await;
    for images in [
        json!([]),
        json!(["nope"]),
        json!(["sha256:12"]),
        json!("sha256:x"),
    ] {
        let (status, body) = app
            .post_json("/api/v1/cleanup/runs", &json!({"images": images}))
            .await;
        assert!(status == 422 || status == 400, "{images}: {status} {body}");
    }
    let runs = app.get_json("/api/v1/cleanup/runs").await;
    assert_eq!(runs, json!([]));
    // A confirmation form without images confirms nothing.
    let response = app.post_form("/cleanup/runs", &[("daemon", "d")]).await;
    assert_eq!(response.status(), 422);
    assert_eq!(app.get_json("/api/v1/cleanup/runs").await, json!([]));
}

// ---- 3. and 4. the live re-check, and no half-finished untagging ----

#[tokio::test]
async fn an_image_tagged_since_the_preview_is_skipped_and_nothing_is_untagged() {
    let _shared = ENGINES.read().await;
    let engine = engine_b_sock();
    let hold = RemovalHold::new();
    let app = app_with_hold(&engine, &hold).await;
    let fx = Fixtures::new(&engine);
    let (_, old) = exapp(&fx, "gained", 1);
    let run = start_own(&app, &fx, "gained").await;
    let job = job_id(&run, &old[0]);
    let id = id_of(&fx, &old[0]);
    let gained = fx.unique("someone-elses:keep");
    fx.docker(&["tag", &old[0], &gained]);
    app.start_worker();
    hold.release(job);
    let run = app
        .wait_for_run(run["id"].as_i64().unwrap(), RUN_LIMIT)
        .await;
    let j = job_for(&run, &old[0]);
    assert_eq!(j["status"], "skipped", "{j}");
    let error = j["error"].as_str().unwrap();
    assert!(
        error.contains(&format!("tagged {gained}")) && error.contains("since the preview"),
        "{j}"
    );
    let mut expected = vec![old[0].clone(), gained.clone()];
    expected.sort();
    assert_eq!(tags_of(&fx, &id), expected, "every tag is still there");
}

#[tokio::test]
async fn a_parent_of_another_image_is_skipped_before_any_tag_is_taken_off() {
    let _shared = ENGINES.read().await;
    let engine = engine_a_sock();
    let app = spawn_app_with_daemons(&[("d", engine.clone())]).await;
    let fx = Fixtures::new(&engine);
    let base = fx.unique("busybox:1");
    fx.busybox(&base);
    let repo = format!("ghcr.io/{}/parent", fx.unique("nc"));
    let (old, current) = (format!("{repo}:1"), format!("{repo}:2"));
    fx.build(&old, &base, 1000);
    fx.build(&current, &old, 2000);
    let container = format!("nc_app_{}", appid(&fx, "parent"));
    fx.run(&container, &current);
    let run = start(
        &app,
        json!({"min_age_hours": 0, "daemon": "d", "owner": appid(&fx, "parent")}),
    )
    .await;
    job_for(&run, &old);
    app.start_worker();
    let run = app
        .wait_for_run(run["id"].as_i64().unwrap(), RUN_LIMIT)
        .await;
    let j = job_for(&run, &old);
    assert_eq!(j["status"], "skipped", "{j}");
    assert!(
        j["error"]
            .as_str()
            .unwrap()
            .contains("is built on it, so Docker would refuse"),
        "{j}"
    );
    assert!(fx.has(&old), "the parent lost its tag");
    // Leave no parent behind for later tests' runs (Docker would refuse it).
    fx.docker(&["rm", "-f", &container]);
    fx.docker(&["rmi", &current, &old]);
}

#[tokio::test]
async fn a_parent_whose_child_the_same_run_removed_first_is_removed_too() {
    let _shared = ENGINES.read().await;
    let engine = engine_a_sock();
    let app = spawn_app_with_daemons(&[("d", engine.clone())]).await;
    let fx = Fixtures::new(&engine);
    let base = fx.unique("busybox:1");
    fx.busybox(&base);
    let repo = format!("ghcr.io/{}/family", fx.unique("nc"));
    let (parent, child, current) = (
        format!("{repo}:1"),
        format!("{repo}:2"),
        format!("{repo}:3"),
    );
    fx.build(&parent, &base, 1000);
    fx.build(&child, &parent, 2000);
    fx.build(&current, &base, 3000);
    let container = format!("nc_app_{}", appid(&fx, "family"));
    fx.run(&container, &current);
    let run = start(
        &app,
        json!({"min_age_hours": 0, "daemon": "d", "owner": appid(&fx, "family")}),
    )
    .await;
    // The child's job comes first (newest first): when the parent's job
    // looks, the batch's listing of who is built on whom is out of date.
    assert!(job_id(&run, &child) < job_id(&run, &parent), "{run}");
    app.start_worker();
    let run = app
        .wait_for_run(run["id"].as_i64().unwrap(), RUN_LIMIT)
        .await;
    for tag in [&child, &parent] {
        let j = job_for(&run, tag);
        assert_eq!(j["status"], "succeeded", "{j}");
        assert!(!fx.has(tag), "{tag} is still there");
    }
    assert!(fx.has(&current));
    fx.docker(&["rm", "-f", &container]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refusal_after_untagging_puts_the_tags_back() {
    let _shared = ENGINES.read().await;
    let engine = engine_a_sock();
    let hold = RemovalHold::new();
    let app = app_with_hold(&engine, &hold).await;
    let fx = Fixtures::new(&engine);
    let (_, old) = exapp(&fx, "retag", 1);
    let second = format!("{}-cpu", old[0]);
    fx.docker(&["tag", &old[0], &second]);
    let id = id_of(&fx, &old[0]);
    let run = start_own(&app, &fx, "retag").await;
    let job = job_id(&run, &old[0]);
    app.start_worker();
    hold.reached(job).await;
    // Right after the re-check, a container starts using the image: Docker
    // lets the first tag go and refuses the last one.
    fx.create(&fx.unique("late_user"), &id);
    hold.release(job);
    let run = app
        .wait_for_run(run["id"].as_i64().unwrap(), RUN_LIMIT)
        .await;
    let j = job_for(&run, &old[0]);
    assert_eq!(j["status"], "skipped", "{j}");
    let error = j["error"].as_str().unwrap();
    assert!(
        error.contains("conflict") && error.contains("put back"),
        "Docker's words, and what was put back: {j}"
    );
    let mut expected = vec![old[0].clone(), second];
    expected.sort();
    assert_eq!(tags_of(&fx, &id), expected, "the image is as it was");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_force_docker_refuses_an_image_an_exited_container_took_after_the_recheck() {
    let _shared = ENGINES.read().await;
    for engine in [engine_a_sock(), engine_b_sock()] {
        let hold = RemovalHold::new();
        let app = app_with_hold(&engine, &hold).await;
        let fx = Fixtures::new(&engine);
        let (_, old) = exapp(&fx, "noforce", 1);
        let run = start_own(&app, &fx, "noforce").await;
        let job = job_id(&run, &old[0]);
        app.start_worker();
        hold.reached(job).await;
        // A container that really ran and exited, created after the re-check.
        let user = fx.unique("ran_and_exited");
        fx.docker(&["run", "--network", "none", "--name", &user, &old[0], "true"]);
        assert_eq!(
            fx.docker(&["inspect", "-f", "{{.State.Status}}", &user]),
            "exited"
        );
        hold.release(job);
        let run = app
            .wait_for_run(run["id"].as_i64().unwrap(), RUN_LIMIT)
            .await;
        let j = job_for(&run, &old[0]);
        assert_eq!(j["status"], "skipped", "{j}");
        assert!(
            j["error"].as_str().unwrap().contains("conflict"),
            "Docker's own words: {j}"
        );
        assert!(fx.has(&old[0]), "removed with force, or half untagged");
    }
}

// ---- 5. settings fail closed ----

async fn break_settings(app: &TestApp) {
    app.patch_settings(&json!({"keep_previous": 1})).await;
    sqlx::query("UPDATE settings SET settings = '{\"keep_previous\": \"lots\"'")
        .execute(app.app.store.pool())
        .await
        .unwrap();
}

#[tokio::test]
async fn unreadable_settings_stop_every_removal_until_they_are_saved_again() {
    let _shared = ENGINES.read().await;
    let engine = engine_b_sock();
    let app = spawn_app_with_daemons(&[("d", engine.clone())]).await;
    let fx = Fixtures::new(&engine);
    let (_, old) = exapp(&fx, "failclosed", 1);
    let run = start_own(&app, &fx, "failclosed").await;
    job_for(&run, &old[0]);
    break_settings(&app).await;

    let (status, body) = app
        .post_json("/api/v1/cleanup/runs", &json!({"min_age_hours": 0}))
        .await;
    assert_eq!(
        status, 503,
        "no run while the settings are unreadable: {body}"
    );
    let (status, _) = app
        .post_json("/api/v1/cleanup/preview", &json!({"min_age_hours": 0}))
        .await;
    assert_eq!(status, 503);
    let (_, overview) = app.get_text("/").await;
    assert!(overview.contains(r#"id="halted""#), "{overview}");
    let images = app.get_json("/api/v1/images?limit=5000").await;
    assert!(
        images
            .as_array()
            .unwrap()
            .iter()
            .all(|i| i["removable"] == false),
        "{images}"
    );

    // The queued job waits. A halted worker shows nothing to wait for: it
    // looks at once and then every 2 s, so this covers two of its passes
    // (that it is alive shows below, when the repaired settings let it run).
    app.start_worker();
    let run_path = format!("/api/v1/cleanup/runs/{}", run["id"]);
    stays(
        Duration::from_millis(2500),
        "the job waits, unattempted",
        async || {
            let waiting = app.get_json(&run_path).await;
            let j = job_for(&waiting, &old[0]);
            j["status"] == "queued" && j["attempts"] == 0
        },
    )
    .await;
    assert!(fx.has(&old[0]));

    // Saving the settings repairs them; the job then runs.
    let (status, body) = app.patch_settings(&json!({"keep_previous": 0})).await;
    assert_eq!(status, 200, "{body}");
    let run = app
        .wait_for_run(run["id"].as_i64().unwrap(), RUN_LIMIT)
        .await;
    assert_eq!(job_for(&run, &old[0])["status"], "succeeded", "{run}");
}

#[tokio::test]
async fn a_pattern_protected_while_a_run_is_in_progress_protects_its_jobs_not_yet_started() {
    let _shared = ENGINES.read().await;
    let engine = engine_b_sock();
    let hold = RemovalHold::new();
    let app = app_with_hold(&engine, &hold).await;
    let fx = Fixtures::new(&engine);
    let (_, old) = exapp(&fx, "midrun", 2);
    let run = start_own(&app, &fx, "midrun").await;
    let first = run["jobs"][0]["id"].as_i64().unwrap();
    let second = run["jobs"][1]["id"].as_i64().unwrap();
    let second_tag = run["jobs"][1]["image_refs"][0].as_str().unwrap().to_owned();
    app.start_worker();
    hold.reached(first).await;
    let (status, _) = app
        .patch_settings(&json!({"protected_patterns": [second_tag]}))
        .await;
    assert_eq!(status, 200);
    hold.release(first);
    hold.release(second);
    let run = app
        .wait_for_run(run["id"].as_i64().unwrap(), RUN_LIMIT)
        .await;
    assert_eq!(run["jobs"][0]["status"], "succeeded", "{run}");
    assert_eq!(run["jobs"][1]["status"], "skipped", "{run}");
    assert!(fx.has(&second_tag));
    assert!(old.iter().any(|t| !fx.has(t)));
}

// ---- 6. a job never runs twice, or forever ----

/// The generation of the stored scan of the app's one daemon: it grows
/// with every scan saved.
async fn scans_saved(app: &TestApp) -> i64 {
    let daemon_id = app.app.store.list_daemons().await.unwrap()[0].id;
    let scan = app.app.store.load_scan(daemon_id).await.unwrap();
    scan.expect("the daemon was scanned").generation
}

#[tokio::test]
async fn a_worker_that_lost_its_lease_sends_no_removal() {
    let _shared = ENGINES.read().await;
    let engine = engine_a_sock();
    let hold = RemovalHold::new();
    let app = app_with_hold(&engine, &hold).await;
    let fx = Fixtures::new(&engine);
    let (_, old) = exapp(&fx, "stolen", 1);
    let run = start_own(&app, &fx, "stolen").await;
    let job = job_id(&run, &old[0]);
    app.start_worker();
    hold.reached(job).await;
    // Meanwhile its lease ran out and another worker took the job.
    sqlx::query("UPDATE cleanup_jobs SET lease_owner = 'another-worker', lease_expires_at = lease_expires_at + 3600000 WHERE id = ?")
        .bind(job)
        .execute(app.app.store.pool())
        .await
        .unwrap();
    // The worker is done with the job once it has rescanned the daemon, as
    // it does after every batch of jobs.
    let before = scans_saved(&app).await;
    hold.release(job);
    eventually(RUN_LIMIT, "the worker's rescan after its job", async || {
        scans_saved(&app).await > before
    })
    .await;
    // It sent nothing and recorded nothing.
    let now = app
        .get_json(&format!("/api/v1/cleanup/runs/{}", run["id"]))
        .await;
    let j = job_for(&now, &old[0]);
    assert_eq!(j["status"], "running", "the new holder decides: {j}");
    assert!(
        fx.has(&old[0]),
        "a worker without the lease removed the image"
    );
}

#[tokio::test]
async fn a_job_whose_worker_stopped_returns_to_the_queue_when_its_lease_runs_out_by_the_clock() {
    let _alone = ENGINES.write().await; // its manual clock must not stall the others' leases
    let engine = engine_a_sock();
    let fx = Fixtures::new(&engine);
    let (_, old) = exapp(&fx, "abandoned", 1);
    let app = spawn_app_on_manual_clock().await;
    let clock = app.clock().clone();
    add_daemon(&app, "d", &engine).await;
    let run = start_own(&app, &fx, "abandoned").await;
    let job = job_id(&run, &old[0]);
    let store = &app.app.store;
    let daemon_id = store.list_daemons().await.unwrap()[0].id;
    let lease = app.app.job_lease;
    // A worker (of another process) claimed the job and stopped: nothing
    // renews its lease.
    let claimed = store
        .claim_job(
            daemon_id,
            None,
            "stopped-worker",
            clock.now_ms(),
            lease.as_millis() as i64,
        )
        .await
        .unwrap();
    assert_eq!(claimed, Some(job));
    app.start_worker();
    // The worker here saw the lease and waits on the clock for it to run out.
    until_asleep(&clock, 1).await;
    let path = format!("/api/v1/cleanup/runs/{}", run["id"]);
    let held = app.get_json(&path).await;
    let j = job_for(&held, &old[0]);
    assert_eq!(
        (&j["status"], &j["attempts"]),
        (&json!("running"), &json!(1)),
        "{j}"
    );
    clock.advance(lease - Duration::from_secs(1));
    until_asleep(&clock, 1).await;
    let held = app.get_json(&path).await;
    let j = job_for(&held, &old[0]);
    assert_eq!(
        j["status"], "running",
        "a second before the lease ends: {j}"
    );
    assert!(fx.has(&old[0]));

    clock.advance(Duration::from_secs(1));
    let done = app
        .wait_for_run(run["id"].as_i64().unwrap(), RUN_LIMIT)
        .await;
    let j = job_for(&done, &old[0]);
    assert_eq!(
        (&j["status"], &j["attempts"]),
        (&json!("succeeded"), &json!(2)),
        "{j}"
    );
    assert!(!fx.has(&old[0]));
}

#[tokio::test]
async fn a_job_whose_worker_dies_at_every_attempt_fails_at_the_limit_with_the_reason() {
    let _shared = ENGINES.read().await;
    let engine = engine_a_sock();
    let app = spawn_app_with(|app| app.job_max_attempts = 3).await;
    add_daemon(&app, "d", &engine).await;
    let fx = Fixtures::new(&engine);
    let (_, old) = exapp(&fx, "crashloop", 1);
    let run = start_own(&app, &fx, "crashloop").await;
    let daemon_id = app.app.store.list_daemons().await.unwrap()[0].id;
    let store = &app.app.store;
    // A worker claims it and dies, three times over.
    for attempt in 1..=3 {
        let now = now_ms();
        let claimed = store
            .claim_job(daemon_id, None, "dies", now, 1)
            .await
            .unwrap();
        assert!(claimed.is_some(), "attempt {attempt}");
        let (requeued, failed) = store.requeue_expired(now + 10, 3).await.unwrap();
        assert_eq!(
            (requeued, failed),
            if attempt < 3 { (1, 0) } else { (0, 1) }
        );
    }
    let run = app
        .get_json(&format!("/api/v1/cleanup/runs/{}", run["id"]))
        .await;
    let j = job_for(&run, &old[0]);
    assert_eq!(j["status"], "failed", "{j}");
    assert_eq!(j["attempts"], 3);
    assert!(
        j["error"]
            .as_str()
            .unwrap()
            .starts_with("gave up after 3 attempts"),
        "{j}"
    );
    assert!(fx.has(&old[0]));
}

#[tokio::test]
async fn a_job_that_fails_every_attempt_ends_failed_with_the_last_error() {
    let _alone = ENGINES.write().await; // it stops engine C
    let app = spawn_app_with(|app| app.job_max_attempts = 2).await;
    add_daemon(&app, "spare", &SpareEngine::sock()).await;
    let fx = Fixtures::new(&SpareEngine::sock());
    let (_, old) = exapp(&fx, "always_down", 1);
    let run = start_own(&app, &fx, "always_down").await;
    job_for(&run, &old[0]);
    let stopped = SpareEngine::stop().await;
    app.start_worker();
    let done = app
        .wait_for_run(run["id"].as_i64().unwrap(), RUN_LIMIT)
        .await;
    stopped.restart().await;
    let j = job_for(&done, &old[0]);
    assert_eq!(j["status"], "failed", "{j}");
    let error = j["error"].as_str().unwrap();
    assert!(
        error.starts_with("gave up after 2 attempts") && error.contains("docker.sock"),
        "the last error: {j}"
    );
    assert!(fx.has(&old[0]));
}

// ---- 7. the CLI's clean ----

#[tokio::test]
async fn clean_works_its_own_run_and_leaves_other_runs_to_their_server() {
    let _shared = ENGINES.read().await;
    let engine = engine_a_sock();
    let app = spawn_app_with_daemons(&[("d", engine.clone())]).await;
    let fx = Fixtures::new(&engine);
    let (_, old) = exapp(&fx, "own_run", 2);
    // The server's run (its worker is not running) has queued jobs.
    let theirs = start_own(&app, &fx, "own_run").await;
    for tag in &old {
        job_for(&theirs, tag);
    }
    let output = run(cli(&app.data_dir).args([
        "clean",
        "--daemon",
        "d",
        "--min-age-hours",
        "0",
        "--owner",
        &appid(&fx, "own_run"),
        "--json",
    ]));
    assert!(output.status.success(), "{}", stderr(&output));
    let ours: Value = serde_json::from_slice(&output.stdout).unwrap();
    for j in ours["jobs"].as_array().unwrap() {
        assert!(
            !old.iter().any(|t| j["image_refs"]
                .as_array()
                .unwrap()
                .iter()
                .any(|r| r == t.as_str())),
            "queued twice: {ours}"
        );
    }
    assert!(
        ours["left_out"]
            .as_array()
            .unwrap()
            .iter()
            .any(|l| l["reason"] == "already queued by another run"),
        "{ours}"
    );
    let theirs = app
        .get_json(&format!("/api/v1/cleanup/runs/{}", theirs["id"]))
        .await;
    for j in theirs["jobs"].as_array().unwrap() {
        assert_eq!(j["status"], "queued", "the CLI took another run's job: {j}");
    }
    assert!(old.iter().all(|t| fx.has(t)));
}

#[tokio::test]
async fn clean_of_a_daemon_that_cannot_be_scanned_exits_1_and_the_api_answers_502() {
    let _shared = ENGINES.read().await;
    let app = spawn_app_with_daemons(&[("gone", "unix:///nonexistent/docker.sock".into())]).await;
    let output = run(cli(&app.data_dir).args(["clean", "--daemon", "gone"]));
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("daemon gone could not be scanned")
            && stderr(&output).contains("/nonexistent/docker.sock"),
        "{}",
        stderr(&output)
    );
    let (status, body) = app
        .post_json("/api/v1/cleanup/runs", &json!({"daemon": "gone"}))
        .await;
    assert_eq!(status, 502, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("could not be scanned"),
        "{body}"
    );
    assert_eq!(app.get_json("/api/v1/cleanup/runs").await, json!([]));
}

// ---- 8. an answer lost to a timeout ----

#[tokio::test]
async fn a_removal_whose_answer_was_lost_counts_the_bytes_its_layers_freed() {
    let _alone = ENGINES.write().await; // it measures the engine's LayersSize
    let engine = engine_b_sock();
    let app = spawn_app_with_daemons(&[("d", engine.clone())]).await;
    let fx = Fixtures::new(&engine);
    let (_, old) = exapp(&fx, "lost_answer", 1);
    let run = start_own(&app, &fx, "lost_answer").await;
    let job = job_id(&run, &old[0]);
    let id = id_of(&fx, &old[0]);
    // What a first attempt leaves behind when the daemon removed the image
    // but its answer never arrived: the layers recorded as the call went out.
    let daemon_id = app.app.store.list_daemons().await.unwrap()[0].id;
    let layers = app
        .app
        .store
        .cached_layers_of(daemon_id, &id)
        .await
        .unwrap()
        .unwrap();
    sqlx::query("UPDATE cleanup_jobs SET removal_layers = ?, attempts = 1 WHERE id = ?")
        .bind(&layers)
        .bind(job)
        .execute(app.app.store.pool())
        .await
        .unwrap();
    let before = fx.layers_size();
    fx.docker(&["rmi", &old[0]]);
    let freed = before - fx.layers_size();
    assert!(freed > 0);
    app.start_worker();
    let run = app
        .wait_for_run(run["id"].as_i64().unwrap(), RUN_LIMIT)
        .await;
    let j = job_for(&run, &old[0]);
    assert_eq!(j["status"], "succeeded", "{j}");
    assert_eq!(j["bytes_freed"], freed, "{j}");
    assert!(
        j["error"].as_str().unwrap().contains("answer was lost"),
        "{j}"
    );
}

#[tokio::test]
async fn clean_exits_1_when_a_job_fails_every_attempt() {
    let _alone = ENGINES.write().await; // it stops engine C
    let app = spawn_app_with_daemons(&[("spare", SpareEngine::sock())]).await;
    let fx = Fixtures::new(&SpareEngine::sock());
    let (_, old) = exapp(&fx, "cli_down", 1);
    let hold = RemovalHold::new();
    let clean = cli(&app.data_dir)
        .args([
            "--job-max-attempts",
            "1",
            "clean",
            "--owner",
            &appid(&fx, "cli_down"),
            "--daemon",
            "spare",
            "--min-age-hours",
            "0",
        ])
        .env("EXAPP_JANITOR_TEST_REMOVAL_HOLD", hold.path())
        .stderr(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // The run's one job is checked and about to remove: the daemon goes away.
    let job = {
        let started = Instant::now();
        loop {
            let ready = std::fs::read_dir(hold.path())
                .unwrap()
                .filter_map(|e| e.ok()?.file_name().into_string().ok())
                .find_map(|n| n.strip_suffix(".ready")?.parse::<i64>().ok());
            if let Some(job) = ready {
                break job;
            }
            assert!(
                started.elapsed() < RUN_LIMIT,
                "the CLI's job never reached its removal"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    let stopped = SpareEngine::stop().await;
    hold.release(job);
    let output = off_runtime(move || clean.wait_with_output().unwrap()).await;
    stopped.restart().await;
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("1 job(s) of run") && stderr(&output).contains("failed"),
        "{}",
        stderr(&output)
    );
    let runs = app.get_json("/api/v1/cleanup/runs").await;
    let j = job_for(&runs[0], &old[0]);
    assert_eq!(j["status"], "failed", "{j}");
    assert!(
        j["error"]
            .as_str()
            .unwrap()
            .starts_with("gave up after 1 attempts"),
        "the last error: {j}"
    );
    assert!(fx.has(&old[0]));
}
