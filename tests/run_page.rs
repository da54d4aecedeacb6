//! "Remove selected" on the Images page, a run's page (progress, who
//! started it, Cancel on a queued job) and a daemon's error in words, over
//! HTTP against a real server, real engines and a real SQLite file.

mod common;

use common::fixtures::Fixtures;
use common::*;
use serde_json::json;

/// A server with engine B as daemon "b" and an ExApp with two outdated
/// images, both removable now (min age 0). Returns (app, fixtures, appid,
/// the outdated images' IDs).
async fn with_two_removable() -> (TestApp, Fixtures, String, Vec<String>) {
    let app = spawn_app_with_daemons(&[("b", engine_b_sock())]).await;
    let fx = Fixtures::new(&engine_b_sock());
    let (_, old) = exapp(&fx, "sel", 2);
    let appid = appid(&fx, "sel");
    assert_eq!(
        app.patch_settings(&json!({"min_age_hours": 0})).await.0,
        200
    );
    app.post_json("/api/v1/scan", &json!({})).await;
    let ids = old
        .iter()
        .map(|tag| fx.docker(&["image", "inspect", "-f", "{{.Id}}", tag]))
        .collect();
    (app, fx, appid, ids)
}

fn confirmed_images(page: &str) -> Vec<&str> {
    page.split(r#"<input type="hidden" name="images" value=""#)
        .skip(1)
        .map(|rest| rest.split('"').next().unwrap())
        .collect()
}

#[tokio::test]
async fn remove_selected_previews_exactly_the_ticked_images() {
    let (app, _fx, appid, ids) = with_two_removable().await;
    let (status, images_page) = app
        .get_text(&format!("/images?owner={appid}&status=removable"))
        .await;
    assert_eq!(status, 200);
    for id in &ids {
        assert!(
            images_page.contains(&format!(r#"name="images" value="{id}" form="selection""#)),
            "a checkbox for {id}"
        );
    }
    let (status, preview) = app
        .get_text(&format!("/cleanup?selection=1&images={}", ids[0]))
        .await;
    assert_eq!(status, 200, "{preview}");
    assert_eq!(confirmed_images(&preview), vec![ids[0].as_str()]);
    assert!(
        preview.contains(r#"id="confirm-cleanup">Remove 1 image "#),
        "{preview}"
    );
}

#[tokio::test]
async fn remove_selected_with_nothing_ticked_is_an_error_not_everything() {
    let (app, ..) = with_two_removable().await;
    let (status, page) = app.get_text("/cleanup?selection=1").await;
    assert_eq!(status, 422);
    assert!(page.contains("no image is ticked"), "{page}");
    assert!(page.contains(r#"id="error-summary""#));
    assert!(confirmed_images(&page).is_empty() && !page.contains("confirm-cleanup"));
}

#[tokio::test]
async fn a_ticked_image_that_is_no_longer_removable_is_said_to_be_left_out() {
    let (app, fx, _, ids) = with_two_removable().await;
    let other = format!("sha256:{}", "0".repeat(64));
    let (status, preview) = app
        .get_text(&format!(
            "/cleanup?selection=1&images={}&images={other}",
            ids[1]
        ))
        .await;
    assert_eq!(status, 200, "{preview}");
    assert!(
        preview.contains("You ticked 2 images; 1 of them is still removable"),
        "{preview}"
    );
    assert_eq!(confirmed_images(&preview), vec![ids[1].as_str()]);
    drop(fx);
}

#[tokio::test]
async fn a_queued_job_is_cancelled_from_its_runs_page() {
    // No worker: the run's jobs stay queued.
    let (app, _fx, appid, _) = with_two_removable().await;
    let (status, run) = app
        .post_json("/api/v1/cleanup/runs", &json!({"owner": appid}))
        .await;
    assert_eq!(status, 202, "{run}");
    let (run_id, job_id) = (
        run["id"].as_i64().unwrap(),
        run["jobs"][0]["id"].as_i64().unwrap(),
    );
    let (_, page) = app.get_text(&format!("/runs/{run_id}")).await;
    let action = format!(r#"action="/runs/{run_id}/jobs/{job_id}/cancel""#);
    assert!(page.contains(&action), "a Cancel form: {page}");
    assert!(page.contains("Started through the API"), "{page}");
    assert!(
        page.contains(r#"<progress id="progress-jobs" value="0" max="2">"#),
        "{page}"
    );

    let response = app
        .post_form(&format!("/runs/{run_id}/jobs/{job_id}/cancel"), &[])
        .await;
    assert_eq!(response.status(), 303);
    assert_eq!(
        response.headers()["location"],
        format!("/runs/{run_id}").as_str()
    );
    let run = app
        .get_json(&format!("/api/v1/cleanup/runs/{run_id}"))
        .await;
    let job = run["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|j| j["id"] == job_id)
        .unwrap();
    assert_eq!(job["status"], "cancelled");
    let (_, page) = app.get_text(&format!("/runs/{run_id}")).await;
    assert!(!page.contains(&action), "a cancelled job has no Cancel");
    assert!(
        page.contains(r#"<progress id="progress-jobs" value="1" max="2">"#),
        "{page}"
    );
}

#[tokio::test]
async fn a_cancel_without_the_csrf_token_is_refused_and_cancels_nothing() {
    let (app, _fx, appid, _) = with_two_removable().await;
    let (_, run) = app
        .post_json("/api/v1/cleanup/runs", &json!({"owner": appid}))
        .await;
    let (run_id, job_id) = (
        run["id"].as_i64().unwrap(),
        run["jobs"][0]["id"].as_i64().unwrap(),
    );
    let response = app
        .http
        .post(app.url(&format!("/runs/{run_id}/jobs/{job_id}/cancel")))
        .form(&[("csrf_token", "wrong")])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 403);
    let run = app
        .get_json(&format!("/api/v1/cleanup/runs/{run_id}"))
        .await;
    assert!(run["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .all(|j| j["status"] == "queued"));
}

#[tokio::test]
async fn a_missing_socket_is_said_in_words_and_forgotten_once_the_daemon_answers() {
    let app = spawn_app().await;
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("docker.sock");
    let (status, _) = app
        .post_json(
            "/api/v1/daemons",
            &json!({"name": "later", "endpoint": format!("unix://{}", socket.display())}),
        )
        .await;
    assert_eq!(status, 201);
    let (_, card) = app.get_text("/daemons/later/card").await;
    assert!(
        card.contains(&format!(
            "no socket at {}: is the Docker daemon running",
            socket.display()
        )),
        "{card}"
    );
    assert!(!card.contains("os error"), "{card}");

    // The daemon comes up at that path.
    std::os::unix::fs::symlink(engine_b_sock().trim_start_matches("unix://"), &socket).unwrap();
    let (_, card) = app.get_text("/daemons/later/card").await;
    assert!(card.contains("Reachable"), "{card}");
    assert!(!card.contains("no socket"), "the old error is gone: {card}");
}
