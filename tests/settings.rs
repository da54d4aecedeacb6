//! Settings through the API and the page, and the schedule they drive.

mod common;

use std::time::Duration;

use common::*;
use serde_json::{json, Value};

const HOUR: Duration = Duration::from_secs(3600);

fn rfc3339_secs(v: &Value) -> i64 {
    time::OffsetDateTime::parse(
        v.as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap()
    .unix_timestamp()
}

async fn runs_by(app: &TestApp, trigger: &str) -> usize {
    app.get_json("/api/v1/cleanup/runs")
        .await
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["trigger"] == trigger)
        .count()
}

#[tokio::test]
async fn the_defaults_and_the_schedule_are_shown() {
    let app = spawn_app().await;
    let s = app.get_json("/api/v1/settings").await;
    assert_eq!(
        (
            &s["interval_hours"],
            &s["cleanup_on_update"],
            &s["keep_previous"],
            &s["min_age_hours"],
            &s["remove_dangling"]
        ),
        (
            &json!(168),
            &json!(false),
            &json!(0),
            &json!(24),
            &json!(false)
        )
    );
    assert_eq!(s["protected_patterns"], json!([]));
    assert_eq!(s["last_run_at"], Value::Null);
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let next = rfc3339_secs(&s["next_run_at"]);
    assert!((next - (now + 168 * 3600)).abs() < 60, "{s}");
}

#[tokio::test]
async fn a_patch_changes_only_what_it_names() {
    let app = spawn_app().await;
    let (status, s) = app
        .patch_settings(
            &json!({"keep_previous": 2, "protected_patterns": ["ghcr.io/nextcloud/llm2:*"]}),
        )
        .await;
    assert_eq!(status, 200, "{s}");
    assert_eq!(
        (s["keep_previous"].as_i64(), s["min_age_hours"].as_i64()),
        (Some(2), Some(24))
    );
    assert_eq!(s["protected_patterns"], json!(["ghcr.io/nextcloud/llm2:*"]));
    assert_eq!(app.get_json("/api/v1/settings").await, s);
}

#[tokio::test]
async fn every_invalid_value_is_named_and_nothing_changes() {
    let app = spawn_app().await;
    let before = app.get_json("/api/v1/settings").await;
    let cases = [
        (json!({"interval_hours": -1}), "interval_hours"),
        (json!({"interval_hours": 87_601}), "interval_hours"),
        (json!({"interval_hours": "weekly"}), "interval_hours"),
        (json!({"min_age_hours": 1e12}), "min_age_hours"),
        (json!({"keep_previous": 1001}), "keep_previous"),
        (json!({"cleanup_on_update": "perhaps"}), "cleanup_on_update"),
        (json!({"remove_dangling": 3}), "remove_dangling"),
        (
            json!({"protected_patterns": "ghcr.io/*"}),
            "protected_patterns",
        ),
        (
            json!({"protected_patterns": ["ghcr.io/[unclosed"]}),
            "protected_patterns",
        ),
        (
            json!({"protected_patterns": ["x".repeat(10_000)]}),
            "protected_patterns",
        ),
        (
            json!({"keep_previous": 1, "delete_everything": true}),
            "delete_everything",
        ),
    ];
    for (body, field) in cases {
        let (status, answer) = app.patch_settings(&body).await;
        assert_eq!(status, 422, "{body}: {answer}");
        assert!(answer["fields"][field].is_string(), "{field}: {answer}");
    }
    let (status, _) = app
        .patch_settings(&json!({"protected_patterns": ["x".repeat(100_000)]}))
        .await;
    assert_eq!(status, 413, "a 100 KB value is refused whole");
    for raw in [&b"[1, 2]"[..], b"not json", b"{\"interval_hours\": 1,}"] {
        let response = app
            .http
            .patch(app.url("/api/v1/settings"))
            .bearer_auth(&app.api_token)
            .header("Content-Type", "application/json")
            .body(raw.to_vec())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 400);
    }
    assert_eq!(app.get_json("/api/v1/settings").await, before);
}

#[tokio::test]
async fn the_settings_page_shows_errors_inline_then_saves() {
    let app = spawn_app().await;
    let form = |interval: &str| {
        vec![
            ("interval_hours", interval.to_owned()),
            ("min_age_hours", "12".to_owned()),
            ("keep_previous", "1".to_owned()),
            ("cleanup_on_update", "on".to_owned()),
            (
                "protected_patterns",
                "ghcr.io/nextcloud/llm2:*\n\n".to_owned(),
            ),
        ]
    };
    let as_refs = |f: &Vec<(&'static str, String)>| {
        f.iter().map(|(k, v)| (*k, v.clone())).collect::<Vec<_>>()
    };
    let bad = as_refs(&form("-5"));
    let bad: Vec<(&str, &str)> = bad.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let response = app.post_form("/settings", &bad).await;
    assert_eq!(response.status(), 422);
    let page = response.text().await.unwrap();
    assert!(
        page.contains(
            r#"<p class="field-error" id="interval_hours-error">a whole number of hours"#
        ),
        "{page}"
    );
    assert!(
        page.contains(r#"value="-5""#),
        "what was typed stays: {page}"
    );
    assert_eq!(
        app.get_json("/api/v1/settings").await["min_age_hours"],
        24,
        "nothing saved"
    );

    let good = as_refs(&form("48"));
    let good: Vec<(&str, &str)> = good.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let response = app.post_form("/settings", &good).await;
    assert_eq!(response.status(), 303);
    let s = app.get_json("/api/v1/settings").await;
    assert_eq!(
        (
            s["interval_hours"].as_i64(),
            s["min_age_hours"].as_i64(),
            s["keep_previous"].as_i64()
        ),
        (Some(48), Some(12), Some(1))
    );
    assert_eq!(
        (&s["cleanup_on_update"], &s["remove_dangling"]),
        (&json!(true), &json!(false)),
        "an unchecked box is off"
    );
    assert_eq!(s["protected_patterns"], json!(["ghcr.io/nextcloud/llm2:*"]));
    let (_, page) = app.get_text("/settings?saved=1").await;
    assert!(page.contains("Settings saved.") && page.contains(r#"id="next-run""#));
}

#[tokio::test]
async fn changing_the_interval_moves_the_next_run_at_once() {
    let app = spawn_app().await;
    let (_, s) = app.patch_settings(&json!({"interval_hours": 24})).await;
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    assert!(
        (rfc3339_secs(&s["next_run_at"]) - (now + 24 * 3600)).abs() < 60,
        "{s}"
    );
    let (_, s) = app.patch_settings(&json!({"interval_hours": 0})).await;
    assert_eq!(s["next_run_at"], Value::Null, "interval 0: never");
}

/// Waits until `count` scheduled runs exist (or fails after 15 s of real time).
async fn wait_for_scheduled_runs(app: &TestApp, count: usize) {
    eventually(
        Duration::from_secs(15),
        &format!("scheduled run #{count}"),
        async || runs_by(app, "schedule").await >= count,
    )
    .await;
}

/// Moves the schedule's clock back, as if the interval had been set `hours` ago.
async fn backdate_interval(app: &TestApp, hours: i64) {
    sqlx::query("UPDATE settings SET interval_set_at = interval_set_at - ?")
        .bind(hours * 3600)
        .execute(app.app.store.pool())
        .await
        .unwrap();
}

#[tokio::test]
async fn a_scheduled_run_starts_when_the_clock_passes_next_run_at() {
    let app = spawn_app_on_manual_clock().await;
    let clock = app.clock().clone();
    let (_, s) = app.patch_settings(&json!({"interval_hours": 1})).await;
    assert_eq!(
        rfc3339_secs(&s["next_run_at"]),
        clock.now_unix() + 3600,
        "{s}"
    );
    app.start_scheduler();
    // The scheduler read the schedule and waits for the next run on the clock.
    until_asleep(&clock, 1).await;
    assert_eq!(runs_by(&app, "schedule").await, 0, "no time passed");
    clock.advance(Duration::from_secs(3599));
    until_asleep(&clock, 1).await;
    assert_eq!(runs_by(&app, "schedule").await, 0, "a second early");
    clock.advance(Duration::from_secs(1));
    wait_for_scheduled_runs(&app, 1).await;
    // The next one is an hour after this one, by the clock again.
    until_asleep(&clock, 1).await;
    assert_eq!(runs_by(&app, "schedule").await, 1);
    clock.advance(HOUR);
    wait_for_scheduled_runs(&app, 2).await;
}

#[tokio::test]
async fn a_service_that_was_down_past_the_next_run_makes_one_catch_up_run() {
    let app = spawn_app_on_manual_clock().await;
    let clock = app.clock().clone();
    app.patch_settings(&json!({"interval_hours": 1})).await;
    // Five hours pass with no scheduler running.
    clock.advance(5 * HOUR);
    app.start_scheduler();
    wait_for_scheduled_runs(&app, 1).await;
    // It made the catch-up run and now waits for the next one on the clock.
    until_asleep(&clock, 1).await;
    assert_eq!(
        runs_by(&app, "schedule").await,
        1,
        "one catch-up run, not five"
    );
    let s = app.get_json("/api/v1/settings").await;
    assert_eq!(
        rfc3339_secs(&s["next_run_at"]) - rfc3339_secs(&s["last_run_at"]),
        3600,
        "{s}"
    );
}

#[tokio::test]
async fn a_change_that_makes_the_next_run_past_runs_now_without_a_restart() {
    let app = spawn_app_on_manual_clock().await;
    app.get_json("/api/v1/settings").await; // the settings row exists from here on
    app.start_scheduler();
    // The scheduler read its next run (168 h away) and sleeps until then, so
    // the change below happens behind its back.
    until_asleep(app.clock(), 1).await;
    backdate_interval(&app, 200).await;
    assert_eq!(
        runs_by(&app, "schedule").await,
        0,
        "168 h had not passed for the scheduler yet"
    );
    // Any change wakes the scheduler; the next run (set 200 h ago + 168 h) is past.
    app.patch_settings(&json!({"keep_previous": 1})).await;
    wait_for_scheduled_runs(&app, 1).await;
}

#[tokio::test]
async fn two_servers_on_one_data_dir_make_one_scheduled_run() {
    let app = spawn_app_on_manual_clock().await;
    app.get_json("/api/v1/settings").await; // the settings row exists from here on
    backdate_interval(&app, 200).await; // the weekly run is due
    let config = exapp_janitor::config::GlobalConfig {
        data_dir: app.data_dir.clone(),
        daemon_timeout_secs: TEST_DAEMON_TIMEOUT.as_secs(),
        scan_timeout_secs: 60,
        scan_concurrency: 8,
        job_lease_secs: 5,
        removal_timeout_secs: 600,
        job_max_attempts: 8,
    };
    let mut other = exapp_janitor::janitor::Janitor::open(&config)
        .await
        .unwrap();
    other.set_clock(app.clock().clone());
    app.start_scheduler();
    exapp_janitor::scheduler::spawn(other);
    wait_for_scheduled_runs(&app, 1).await;
    // Both schedulers saw the run due, and both now wait for the next one.
    until_asleep(app.clock(), 2).await;
    assert_eq!(
        runs_by(&app, "schedule").await,
        1,
        "one run for one due time"
    );
}

#[tokio::test]
async fn interval_zero_means_no_scheduled_run() {
    let app = spawn_app_on_manual_clock().await;
    let clock = app.clock().clone();
    // First prove the scheduler is alive: an hourly schedule runs after an hour.
    app.patch_settings(&json!({"interval_hours": 1})).await;
    app.start_scheduler();
    clock.advance(HOUR);
    wait_for_scheduled_runs(&app, 1).await;
    // Then interval 0, and 100,000 hours pass.
    app.patch_settings(&json!({"interval_hours": 0})).await;
    clock.advance(100_000 * HOUR);
    app.patch_settings(&json!({"keep_previous": 3})).await;
    // No time to wait for any more: nothing waits on the clock. Give the
    // scheduler (woken by both changes) real time to do what it would.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        clock.sleepers(),
        0,
        "the scheduler waits for no time of day"
    );
    assert_eq!(runs_by(&app, "schedule").await, 1, "a run with interval 0");
    assert_eq!(
        app.get_json("/api/v1/settings").await["next_run_at"],
        Value::Null
    );
}

#[tokio::test]
async fn the_cli_shows_and_sets_settings_all_or_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(cli(dir.path()).args([
        "settings",
        "set",
        "interval_hours=12",
        r#"protected_patterns=["a/b:*"]"#,
    ]));
    assert!(out.status.success(), "{}", stderr(&out));
    let out = run(cli(dir.path()).args(["settings", "set", "keep_previous=3", "min_age_hours=-1"]));
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("min_age_hours:"), "{}", stderr(&out));
    let out = run(cli(dir.path()).args(["settings", "set", "oops"]));
    assert_eq!(out.status.code(), Some(2));
    let shown: Value = serde_json::from_str(&stdout(&run(
        cli(dir.path()).args(["settings", "show", "--json"])
    )))
    .unwrap();
    assert_eq!(
        (
            shown["interval_hours"].as_i64(),
            shown["keep_previous"].as_i64()
        ),
        (Some(12), Some(0))
    );
    assert_eq!(shown["protected_patterns"], json!(["a/b:*"]));
}
