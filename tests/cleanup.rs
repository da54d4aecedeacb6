//! The cleanup engine on real engines: preview, runs, the job queue and the
//! removal protocol, and the safety invariants. Tests whose runs are limited
//! to their own ExApp share the engines; a test whose run covers whole
//! daemons, or that stops engine C, has them alone.

mod common;

use std::time::Duration;

use common::fixtures::Fixtures;
use common::*;
use serde_json::{json, Value};
use tokio::sync::RwLock;

static ENGINES: RwLock<()> = RwLock::const_new(());

const RUN_LIMIT: Duration = Duration::from_secs(60);

/// A run at min age 0 of this test's ExApp `name` only.
async fn start_own(app: &TestApp, fx: &Fixtures, name: &str) -> Value {
    start(app, json!({"min_age_hours": 0, "owner": appid(fx, name)})).await
}

async fn start(app: &TestApp, body: Value) -> Value {
    let (status, run) = app.post_json("/api/v1/cleanup/runs", &body).await;
    assert_eq!(status, 202, "{run}");
    run
}

fn jobs(run: &Value) -> &Vec<Value> {
    run["jobs"].as_array().unwrap()
}

#[tokio::test]
async fn a_run_removes_exactly_the_previewed_images_and_nothing_else() {
    let _alone = ENGINES.write().await; // its run covers the whole daemon
    for engine in [engine_a_sock(), engine_b_sock()] {
        let app = spawn_app_with_daemons(&[("d", engine.clone())]).await;
        app.start_worker();
        let fx = Fixtures::new(&engine);
        let (current, old) = exapp(&fx, "exact", 3);
        let foreign = fx.unique("postgres:16");
        fx.import(&foreign, &[("pg", 3000)]);
        // An old version a backup container still uses (stopped).
        fx.create(&fx.unique("backup"), &old[0]);

        // Default policy: outdated for less than 24 h, so nothing yet.
        let (_, preview) = app.post_json("/api/v1/cleanup/preview", &json!({})).await;
        assert!(
            !preview["images"]
                .as_array()
                .unwrap()
                .iter()
                .any(|i| old.contains(&i["repo_tags"][0].as_str().unwrap().to_owned())),
            "{preview}"
        );

        let (status, preview) = app
            .post_json("/api/v1/cleanup/preview", &json!({"min_age_hours": 0}))
            .await;
        assert_eq!(status, 200, "{preview}");
        let previewed: Vec<String> = preview["images"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["id"].as_str().unwrap().to_owned())
            .collect();
        let tags: Vec<&str> = preview["images"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|i| i["repo_tags"][0].as_str())
            .collect();
        for t in &old[1..] {
            assert!(
                tags.contains(&t.as_str()),
                "{t} should be removable: {preview}"
            );
        }
        for keep in [&old[0], &current, &foreign] {
            assert!(
                !tags.contains(&keep.as_str()),
                "{keep} must not be removable"
            );
        }

        let run = start(&app, json!({"min_age_hours": 0})).await;
        assert_eq!(run["trigger"], "manual");
        let run = app
            .wait_for_run(run["id"].as_i64().unwrap(), RUN_LIMIT)
            .await;
        let removed: Vec<String> = jobs(&run)
            .iter()
            .map(|j| j["image_id"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(removed, previewed, "the run is the preview");
        for j in jobs(&run) {
            assert_eq!(j["status"], "succeeded", "{j}");
        }
        for t in &old[1..] {
            assert!(!fx.has(t), "{t} is still there");
        }
        for keep in [&old[0], &current, &foreign] {
            assert!(fx.has(keep), "{keep} was removed");
        }
    }
}

#[tokio::test]
async fn a_container_created_from_a_queued_image_skips_its_job() {
    let _shared = ENGINES.read().await;
    let engine = engine_b_sock();
    let app = spawn_app_with_daemons(&[("d", engine.clone())]).await;
    let fx = Fixtures::new(&engine);
    let (_, old) = exapp(&fx, "raced", 1);
    let run = start_own(&app, &fx, "raced").await;
    job_for(&run, &old[0]);
    // Between the preview and the removal, someone starts using the image.
    let user = fx.unique("late_user");
    fx.create(&user, &old[0]);
    app.start_worker();
    let run = app
        .wait_for_run(run["id"].as_i64().unwrap(), RUN_LIMIT)
        .await;
    let job = job_for(&run, &old[0]);
    assert_eq!(job["status"], "skipped", "{job}");
    assert!(
        job["error"]
            .as_str()
            .unwrap()
            .contains(&format!("in use now by container {user}")),
        "{job}"
    );
    assert!(fx.has(&old[0]));
}

#[tokio::test]
async fn clean_now_twice_at_once_queues_each_image_once() {
    let _shared = ENGINES.read().await;
    let engine = engine_a_sock();
    let app = spawn_app_with_daemons(&[("d", engine.clone())]).await;
    let fx = Fixtures::new(&engine);
    let (_, old) = exapp(&fx, "twice", 2);
    let body = json!({"min_age_hours": 0, "owner": appid(&fx, "twice")});
    let (a, b) = tokio::join!(
        app.post_json("/api/v1/cleanup/runs", &body),
        app.post_json("/api/v1/cleanup/runs", &body)
    );
    assert_eq!((a.0, b.0), (202, 202));
    for tag in &old {
        let queued: usize = [&a.1, &b.1]
            .iter()
            .map(|run| {
                jobs(run)
                    .iter()
                    .filter(|j| j["image_refs"].as_array().unwrap().iter().any(|r| r == tag))
                    .count()
            })
            .sum();
        assert_eq!(queued, 1, "{tag} queued {queued} times");
    }
    app.start_worker();
    for run in [&a.1, &b.1] {
        app.wait_for_run(run["id"].as_i64().unwrap(), RUN_LIMIT)
            .await;
    }
    assert!(old.iter().all(|t| !fx.has(t)));
}

#[tokio::test]
async fn an_image_with_two_tags_is_removed_whole_and_a_tag_another_image_took_is_left_alone() {
    let _shared = ENGINES.read().await;
    let engine = engine_b_sock();
    let app = spawn_app_with_daemons(&[("d", engine.clone())]).await;
    let fx = Fixtures::new(&engine);
    let (current, old) = exapp(&fx, "tags", 2);
    let second_tag = format!("{}-cpu", old[0]);
    fx.docker(&["tag", &old[0], &second_tag]);
    let run = start_own(&app, &fx, "tags").await;
    // Before the job runs, the tag of the other outdated image moves to the current image.
    let old1_id = fx.docker(&["images", "-q", "--no-trunc", &old[1]]);
    fx.docker(&["tag", &current, &old[1]]);
    app.start_worker();
    let run = app
        .wait_for_run(run["id"].as_i64().unwrap(), RUN_LIMIT)
        .await;
    for j in jobs(&run) {
        assert_eq!(j["status"], "succeeded", "{j}");
    }
    assert!(
        !fx.has(&old[0]) && !fx.has(&second_tag),
        "both tags and the image are gone"
    );
    assert!(
        fx.docker(&["images", "-q", "--no-trunc", &old1_id])
            .is_empty(),
        "the old image itself is gone"
    );
    let moved = fx.docker(&["image", "inspect", "-f", "{{.Id}}", &old[1]]);
    let current_id = fx.docker(&["image", "inspect", "-f", "{{.Id}}", &current]);
    assert_eq!(
        moved, current_id,
        "the moved tag still names the current image"
    );
}

#[tokio::test]
async fn a_queued_job_can_be_cancelled_and_then_nothing_happens_to_its_image() {
    let _shared = ENGINES.read().await;
    let engine = engine_a_sock();
    let app = spawn_app_with_daemons(&[("d", engine.clone())]).await;
    let fx = Fixtures::new(&engine);
    let (_, old) = exapp(&fx, "cancel", 1);
    let run = start_own(&app, &fx, "cancel").await;
    let job_id = job_for(&run, &old[0])["id"].as_i64().unwrap();
    let (status, job) = app
        .post_json(&format!("/api/v1/cleanup/jobs/{job_id}/cancel"), &json!({}))
        .await;
    assert_eq!(
        (status, job["status"].as_str()),
        (200, Some("cancelled")),
        "{job}"
    );
    let (status, _) = app
        .post_json(&format!("/api/v1/cleanup/jobs/{job_id}/cancel"), &json!({}))
        .await;
    assert_eq!(status, 409, "only a queued job can be cancelled");
    app.start_worker();
    app.wait_for_run(run["id"].as_i64().unwrap(), RUN_LIMIT)
        .await;
    assert!(fx.has(&old[0]));
    let (status, _) = app
        .post_json("/api/v1/cleanup/jobs/999999/cancel", &json!({}))
        .await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn a_stopped_daemon_retries_its_jobs_without_holding_up_the_other() {
    let _alone = ENGINES.write().await; // it stops engine C
    let (app, steady, spare) = steady_and_spare().await;
    let (_, steady_old) = exapp(&steady, "steady", 1);
    let (_, spare_old) = exapp(&spare, "spare", 1);
    let run = start(&app, json!({"min_age_hours": 0})).await;
    let run_id = run["id"].as_i64().unwrap();
    job_for(&run, &spare_old[0]);
    let stopped = SpareEngine::stop().await;
    app.start_worker();

    // The steady daemon's job finishes while the spare one is down.
    let started = std::time::Instant::now();
    loop {
        let run = app
            .get_json(&format!("/api/v1/cleanup/runs/{run_id}"))
            .await;
        if job_for(&run, &steady_old[0])["status"] == "succeeded" {
            let spare_job = job_for(&run, &spare_old[0]);
            assert!(
                matches!(spare_job["status"].as_str(), Some("queued" | "running")),
                "{spare_job}"
            );
            break;
        }
        assert!(
            started.elapsed() < RUN_LIMIT,
            "the steady daemon was held up: {run}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // The spare daemon's job has tried, failed and waits for its retry.
    let started = std::time::Instant::now();
    loop {
        let run = app
            .get_json(&format!("/api/v1/cleanup/runs/{run_id}"))
            .await;
        let spare_job = job_for(&run, &spare_old[0]).clone();
        if spare_job["attempts"].as_i64().unwrap() >= 1 && spare_job["error"].is_string() {
            break;
        }
        assert!(started.elapsed() < RUN_LIMIT, "it never tried: {spare_job}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    stopped.restart().await;
    let run = app.wait_for_run(run_id, RUN_LIMIT).await;
    let spare_job = job_for(&run, &spare_old[0]);
    assert_eq!(spare_job["status"], "succeeded", "{spare_job}");
    assert!(spare_job["attempts"].as_i64().unwrap() >= 2, "{spare_job}");
    assert!(!spare.has(&spare_old[0]));
}

#[tokio::test]
async fn an_exapp_image_replaced_under_its_own_tag_is_removed_by_its_digest() {
    let _shared = ENGINES.read().await;
    let fx = Fixtures::new(&engine_a_sock());
    let app = spawn_app_with_daemons(&[("d", engine_a_sock())]).await;
    let tag = format!("{}/{}/app:1.0", registry(), fx.unique("nc"));
    let container = format!("nc_app_{}", fx.unique("digest").replace('-', "_"));
    // 1.0 as first published: a tag and, from the registry, a digest.
    let old_id = fx.import(&tag, &[("v", 3000)]);
    fx.docker(&["push", "-q", &tag]);
    fx.create(&container, &tag);
    app.post_json("/api/v1/scan", &json!({})).await;
    // 1.0 republished and updated in place: the tag moves, the old image
    // keeps only its digest reference (`<none>` in `docker images`).
    fx.docker(&["rm", &container]);
    let new_id = fx.import(&tag, &[("v", 4000)]);
    fx.docker(&["push", "-q", &tag]);
    fx.create(&container, &tag);
    let old_digest = fx.docker(&[
        "image",
        "inspect",
        "-f",
        "{{index .RepoDigests 0}}",
        &old_id,
    ]);

    let (_, preview) = app
        .post_json("/api/v1/cleanup/preview", &json!({"min_age_hours": 0}))
        .await;
    let old = preview["images"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["id"] == old_id.as_str())
        .unwrap_or_else(|| panic!("the old image is not removable: {preview}"));
    assert_eq!(old["status"], "outdated", "{old}");
    assert_eq!(old["repo_tags"], json!([]), "{old}");
    assert_eq!(old["repo_digests"], json!([old_digest]), "{old}");
    let predicted = old["unique_bytes"].as_i64().unwrap();

    let run = start_own(&app, &fx, "digest").await;
    app.start_worker();
    let run = app
        .wait_for_run(run["id"].as_i64().unwrap(), RUN_LIMIT)
        .await;
    let job = job_for(&run, &old_digest);
    assert_eq!(job["status"], "succeeded", "{job}");
    assert_eq!(job["bytes_freed"].as_i64(), Some(predicted), "{job}");
    assert!(!fx.has_id(&old_id), "the old image is gone");
    assert!(
        fx.has_id(&new_id) && fx.has(&tag),
        "the current image is intact"
    );
}

#[tokio::test]
async fn bad_cleanup_requests_are_refused_and_queue_nothing() {
    let _shared = ENGINES.read().await;
    let app = spawn_app_with_daemons(&[("d", engine_a_sock())]).await;
    for (body, field) in [
        (json!({"min_age_hours": -1}), "min_age_hours"),
        (json!({"min_age_hours": 87601}), "min_age_hours"),
        (json!({"daemon": "ghost"}), "daemon"),
        (json!({"daemon": "bad name"}), "daemon"),
        // A number is a JSON number (one rule for the whole API).
        (json!({"min_age_hours": "soon"}), "min_age_hours"),
    ] {
        let (status, answer) = app.post_json("/api/v1/cleanup/runs", &body).await;
        assert_eq!(status, 422, "{body}: {answer}");
        assert!(answer["fields"][field].is_string(), "{answer}");
    }
    for raw in [
        &b"{"[..],
        br#"{"min_age_hours": 1, "min_age_hours": 2}"#,
        br#"{"force": true}"#,
    ] {
        let response = app
            .http
            .post(app.url("/api/v1/cleanup/runs"))
            .bearer_auth(&app.api_token)
            .header("Content-Type", "application/json")
            .body(raw.to_vec())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 400, "{}", String::from_utf8_lossy(raw));
    }
    assert_eq!(app.get_json("/api/v1/cleanup/runs").await, json!([]));
}

#[tokio::test]
async fn clean_now_in_the_browser_previews_confirms_and_follows_the_run() {
    let _shared = ENGINES.read().await;
    let engine = engine_b_sock();
    let app = spawn_app_with_daemons(&[("d", engine.clone())]).await;
    app.start_worker();
    let fx = Fixtures::new(&engine);
    let (_, old) = exapp(&fx, "browser", 1);
    let owner = appid(&fx, "browser");
    let (status, page) = app
        .get_text(&format!("/cleanup?daemon=d&min_age_hours=0&owner={owner}"))
        .await;
    assert_eq!(status, 200);
    assert!(
        page.contains(&old[0]) && page.contains(r#"id="confirm-cleanup""#),
        "{page}"
    );
    let images = confirmed_images_in(&page);
    let mut form = vec![("daemon", "d"), ("min_age_hours", "0"), ("owner", &owner)];
    form.extend(images.iter().map(|id| ("images", id.as_str())));
    let response = app.post_form("/cleanup/runs", &form).await;
    assert_eq!(response.status(), 303);
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    let run_id: i64 = location.trim_start_matches("/runs/").parse().unwrap();
    let (_, live) = app.get_text(&format!("/runs/{run_id}/live")).await;
    assert!(live.contains(r#"id="run-live""#));
    app.wait_for_run(run_id, RUN_LIMIT).await;
    let (_, live) = app.get_text(&format!("/runs/{run_id}/live")).await;
    assert!(
        live.contains("<strong>finished</strong>") && !live.contains("hx-trigger"),
        "stops polling: {live}"
    );
    let (_, runs) = app.get_text("/runs").await;
    assert!(
        runs.contains(&format!(r#"href="/runs/{run_id}""#)) && runs.contains("web"),
        "{runs}"
    );
    let (status, _) = app.get_text("/cleanup?min_age_hours=-5").await;
    assert_eq!(status, 422);
}

#[tokio::test]
async fn protected_images_are_never_removed_even_if_protected_after_the_preview() {
    let _shared = ENGINES.read().await;
    let engine = engine_b_sock();
    let app = spawn_app_with_daemons(&[("d", engine.clone())]).await;
    let fx = Fixtures::new(&engine);
    let (_, old) = exapp(&fx, "protected", 2);
    let (status, _) = app
        .patch_settings(&json!({"protected_patterns": [format!("{}*", &old[0])]}))
        .await;
    assert_eq!(status, 200);
    let (_, preview) = app
        .post_json("/api/v1/cleanup/preview", &json!({"min_age_hours": 0}))
        .await;
    let tags: Vec<&str> = preview["images"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|i| i["repo_tags"][0].as_str())
        .collect();
    assert!(
        !tags.contains(&old[0].as_str()) && tags.contains(&old[1].as_str()),
        "{preview}"
    );
    let images = app.get_json("/api/v1/images?status=protected").await;
    assert!(
        images
            .as_array()
            .unwrap()
            .iter()
            .any(|i| i["repo_tags"][0] == old[0].as_str()),
        "{images}"
    );

    // Enqueued while unprotected, protected before its job runs: skipped.
    let run = start_own(&app, &fx, "protected").await;
    job_for(&run, &old[1]);
    app.patch_settings(&json!({"protected_patterns": [format!("{}*", &old[1])]}))
        .await;
    app.start_worker();
    let run = app
        .wait_for_run(run["id"].as_i64().unwrap(), RUN_LIMIT)
        .await;
    let job = job_for(&run, &old[1]);
    assert_eq!(job["status"], "skipped", "{job}");
    assert!(
        job["error"]
            .as_str()
            .unwrap()
            .starts_with("protected now by pattern"),
        "{job}"
    );
    assert!(fx.has(&old[0]) && fx.has(&old[1]));
}

#[tokio::test]
async fn an_outdated_image_becomes_removable_after_min_age_hours_of_clock_time() {
    let _alone = ENGINES.write().await; // its manual clock must not stall the others
    let engine = engine_a_sock();
    let fx = Fixtures::new(&engine);
    let (current, old) = exapp(&fx, "aging", 1);
    let app = spawn_app_on_manual_clock().await;
    let clock = app.clock().clone();
    add_daemon(&app, "d", &engine).await;
    // The first scan sees the old version outdated from now on.
    app.post_json("/api/v1/scan", &json!({})).await;
    let waiting = image(&app, &old[0]).await;
    assert_eq!(
        (&waiting["status"], &waiting["removable"]),
        (&json!("outdated"), &json!(false)),
        "{waiting}"
    );
    assert!(
        waiting["reason"]
            .as_str()
            .unwrap()
            .ends_with("(min_age_hours = 24)"),
        "{waiting}"
    );

    clock.advance(Duration::from_secs(24 * 3600 - 1));
    let waiting = image(&app, &old[0]).await;
    assert_eq!(waiting["removable"], false, "a second early: {waiting}");
    clock.advance(Duration::from_secs(1));
    let ready = image(&app, &old[0]).await;
    assert_eq!(ready["removable"], true, "24 h outdated: {ready}");
    assert!(
        ready["reason"]
            .as_str()
            .unwrap()
            .ends_with("removable: outdated for at least 24 h"),
        "{ready}"
    );

    // A run under the policy in force (24 h) removes it now, and only it.
    app.start_worker();
    let run = start(&app, json!({"owner": appid(&fx, "aging")})).await;
    let run = app
        .wait_for_run(run["id"].as_i64().unwrap(), RUN_LIMIT)
        .await;
    let jobs = jobs(&run);
    assert_eq!(jobs.len(), 1, "{run}");
    assert_eq!(job_for(&run, &old[0])["status"], "succeeded", "{run}");
    assert!(!fx.has(&old[0]));
    assert!(fx.has(&current));
}
