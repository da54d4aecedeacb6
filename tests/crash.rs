//! A server killed with SIGKILL in the middle of a run: after a restart,
//! every job ends exactly once and nothing outside the run is touched.

mod common;

use std::time::{Duration, Instant};

use common::fixtures::Fixtures;
use common::server::start_server_env;
use common::*;
use serde_json::json;

#[tokio::test]
async fn a_run_survives_a_killed_server() {
    let engine = engine_a_sock();
    let fx = Fixtures::new(&engine);
    let repo = format!("ghcr.io/{}/crash", fx.unique("nc"));
    // Imported, not built: a tenth of the time, and shared layers play no
    // part here. Made before the current version, as real versions are.
    let old: Vec<String> = (0..24).map(|i| format!("{repo}:0.{i}")).collect();
    for (i, tag) in old.iter().enumerate() {
        fx.import(tag, &[("v", 500 + i)]);
    }
    let current = format!("{repo}:1.0");
    fx.busybox(&current);
    fx.run(
        &format!("nc_app_{}", fx.unique("crash").replace('-', "_")),
        &current,
    );
    let bystander = fx.unique("bystander:1");
    fx.import(&bystander, &[("x", 100)]);

    let dir = tempfile::tempdir().unwrap();
    let env = [("EXAPP_JANITOR_JOB_LEASE_SECS", "3")];
    let mut server = start_server_env(dir.path(), None, Some(TEST_PASSWORD), &env);
    let (status, body) = server
        .api_post("/api/v1/daemons", &json!({"name": "d", "endpoint": engine}))
        .await;
    assert_eq!(status, 201, "{body}");
    let (status, run) = server
        .api_post(
            "/api/v1/cleanup/runs",
            &json!({"min_age_hours": 0, "daemon": "d", "owner": appid(&fx, "crash")}),
        )
        .await;
    assert_eq!(status, 202, "{run}");
    let run_id = run["id"].as_i64().unwrap();
    let queued: Vec<String> = run["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["image_id"].as_str().unwrap().to_owned())
        .collect();

    // Kill it once the first removals are done and the rest are not.
    let started = Instant::now();
    loop {
        let run = server.api(&format!("/api/v1/cleanup/runs/{run_id}")).await;
        let done = run["counts"]["succeeded"].as_u64().unwrap();
        if done >= 1 {
            assert!(
                run["status"] != "finished",
                "the run finished before the kill; make it bigger"
            );
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "no job ran: {run}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    server.kill_hard();

    let server = start_server_env(dir.path(), None, Some(TEST_PASSWORD), &env);
    let run = server.wait_for_run(run_id, Duration::from_secs(90)).await;

    let jobs = jobs_exactly(&run, &queued);
    for job in jobs {
        assert_eq!(job["status"], "succeeded", "{job}");
        assert!(job["attempts"].as_i64().unwrap() <= 2, "{job}");
    }
    for tag in &old {
        assert!(!fx.has(tag), "{tag} is still there");
    }
    assert!(
        fx.has(&current) && fx.has(&bystander),
        "nothing outside the run was touched"
    );
}
