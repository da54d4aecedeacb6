//! Prometheus metrics and the server-drawn charts.

mod common;

use std::time::Duration;

use common::fixtures::Fixtures;
use common::*;
use serde_json::json;

async fn with_a_cleaned_exapp() -> TestApp {
    let app = spawn_app().await;
    app.post_json(
        "/api/v1/daemons",
        &json!({"name": "b", "endpoint": engine_b_sock()}),
    )
    .await;
    app.start_worker();
    let fx = Fixtures::new(&engine_b_sock());
    let base = fx.unique("busybox:1");
    fx.busybox(&base);
    let repo = format!("ghcr.io/{}/metrics", fx.unique("nc"));
    for (tag, size) in [("1", 1000), ("2", 2000), ("3", 3000)] {
        fx.build(&format!("{repo}:{tag}"), &base, size);
    }
    fx.run(
        &format!("nc_app_{}", fx.unique("metrics").replace('-', "_")),
        &format!("{repo}:3"),
    );
    let (_, run) = app
        .post_json(
            "/api/v1/cleanup/runs",
            &json!({"daemon": "b", "min_age_hours": 0, "owner": appid(&fx, "metrics")}),
        )
        .await;
    app.wait_for_run(run["id"].as_i64().unwrap(), Duration::from_secs(60))
        .await;
    app
}

#[tokio::test]
async fn metrics_need_the_api_token() {
    let app = spawn_app().await;
    assert_eq!(
        app.anon
            .get(app.url("/metrics"))
            .send()
            .await
            .unwrap()
            .status(),
        401
    );
    assert_eq!(
        app.get_text("/metrics").await.0,
        401,
        "a session is no token"
    );
    let response = app
        .anon
        .get(app.url("/metrics"))
        .bearer_auth(&app.api_token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn metrics_can_be_public() {
    let app = spawn_app_with(|a| a.metrics_public = true).await;
    assert_eq!(
        app.anon
            .get(app.url("/metrics"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        app.anon
            .get(app.url("/api/v1/daemons"))
            .send()
            .await
            .unwrap()
            .status(),
        401,
        "only /metrics"
    );
}

#[tokio::test]
async fn metrics_report_daemons_disk_runs_and_the_schedule() {
    let app = with_a_cleaned_exapp().await;
    let text = app
        .anon
        .get(app.url("/metrics"))
        .bearer_auth(&app.api_token)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for line in [
        r#"exapp_janitor_daemon_up{daemon="b"} 1"#,
        r#"exapp_janitor_images{daemon="b"}"#,
        r#"exapp_janitor_image_bytes{daemon="b",status="current"}"#,
        r#"exapp_janitor_reclaimable_bytes{daemon="b"}"#,
        r#"exapp_janitor_last_scan_duration_seconds{daemon="b"}"#,
        r#"exapp_janitor_last_scan_timestamp_seconds{daemon="b"}"#,
        r#"exapp_janitor_cleanup_runs_total{trigger="manual"} 1"#,
        r#"exapp_janitor_cleanup_jobs_total{trigger="manual",outcome="succeeded"}"#,
        "exapp_janitor_freed_bytes_total ",
        "exapp_janitor_next_scheduled_run_timestamp_seconds ",
    ] {
        assert!(text.contains(line), "{line} missing in\n{text}");
    }
}

#[tokio::test]
async fn the_overview_draws_each_daemons_disk_with_its_numbers() {
    let app = with_a_cleaned_exapp().await;
    app.htmx_post("/scan").await;
    let (_, page) = app.get_text("/").await;
    assert!(page.contains(r#"<figure class="disk-bar">"#), "{page}");
    assert!(
        page.contains(r#"role="img" aria-label="Disk by status: current "#),
        "{page}"
    );
    for label in [
        "current <strong>",
        "outdated, removable <strong>",
        // An outdated image is either waiting out min_age_hours or kept by
        // keep_previous; "kept" never stands for both.
        "waiting (min age) <strong>",
        "kept (keep_previous) <strong>",
        "in use <strong>",
    ] {
        assert!(page.contains(label), "{label} missing");
    }
}

#[tokio::test]
async fn every_disk_bar_fills_from_patterns_the_page_defines_once() {
    let app = spawn_app_with_daemons(&[("a", engine_a_sock()), ("b", engine_b_sock())]).await;
    let (status, body) = app.post_json("/api/v1/scan", &json!({})).await;
    assert_eq!(status, 200, "{body}");
    let (_, page) = app.get_text("/").await;
    assert_eq!(
        page.matches(r#"<figure class="disk-bar">"#).count(),
        2,
        "{page}"
    );
    let mut ids: Vec<&str> = page
        .split(" id=\"")
        .skip(1)
        .map(|rest| rest.split('"').next().unwrap())
        .collect();
    let all = ids.len();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), all, "an id is used twice in {page}");
    for fill in [
        "url(#pat-in-use)",
        "url(#pat-waiting)",
        "url(#pat-kept)",
        "url(#pat-removable)",
    ] {
        let id = &fill[5..fill.len() - 1];
        assert!(page.contains(fill), "{fill} missing");
        assert!(ids.contains(&id), "{id} is not defined in the page");
    }
}

#[tokio::test]
async fn the_runs_page_charts_bytes_freed_per_run() {
    let app = with_a_cleaned_exapp().await;
    let (_, page) = app.get_text("/runs").await;
    assert!(page.contains(r#"<figure class="runs-chart">"#), "{page}");
    assert!(page.contains("freed</title></rect>"), "{page}");
}
