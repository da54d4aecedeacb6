//! One truth under concurrency: scans of one daemon, the scheduler and the
//! settings across tasks and processes, and a worker that does not spin.

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::server::start_server;
use common::*;
use exapp_janitor::store::{NewJob, NewRun};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A TCP relay in front of a real engine that records the path of every
/// request the janitor sends through it (without the query).
async fn recording_relay(upstream: &str) -> (String, Arc<Mutex<Vec<String>>>) {
    let upstream = upstream.trim_start_matches("tcp://").to_owned();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("tcp://{}", listener.local_addr().unwrap());
    let paths = Arc::new(Mutex::new(Vec::new()));
    let recorded = paths.clone();
    tokio::spawn(async move {
        loop {
            let Ok((client, _)) = listener.accept().await else {
                return;
            };
            let (upstream, recorded) = (upstream.clone(), recorded.clone());
            tokio::spawn(async move {
                let Ok(server) = TcpStream::connect(&upstream).await else {
                    return;
                };
                let (mut client_read, mut client_write) = client.into_split();
                let (mut server_read, mut server_write) = server.into_split();
                let up = async move {
                    let mut buf = vec![0u8; 16 * 1024];
                    // Bytes of a line not yet ended by CRLF.
                    let mut pending = Vec::new();
                    loop {
                        let n = match client_read.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => n,
                        };
                        pending.extend_from_slice(&buf[..n]);
                        while let Some(end) = pending.windows(2).position(|w| w == b"\r\n") {
                            let line = String::from_utf8_lossy(&pending[..end]).into_owned();
                            pending.drain(..end + 2);
                            let mut words = line.split(' ');
                            if let (Some("GET" | "POST" | "DELETE" | "HEAD"), Some(target)) =
                                (words.next(), words.next())
                            {
                                let path = target.split('?').next().unwrap_or(target);
                                recorded.lock().unwrap().push(path.to_owned());
                            }
                        }
                        if server_write.write_all(&buf[..n]).await.is_err() {
                            return;
                        }
                    }
                };
                let down = async move {
                    let _ = tokio::io::copy(&mut server_read, &mut client_write).await;
                };
                tokio::join!(up, down);
            });
        }
    });
    (endpoint, paths)
}

/// How many recorded paths `keep` keeps.
fn count(paths: &Mutex<Vec<String>>, keep: impl Fn(&str) -> bool) -> usize {
    paths.lock().unwrap().iter().filter(|p| keep(p)).count()
}

/// A manual run as the API would make it, for queue tests on the store.
fn a_manual_run() -> NewRun<'static> {
    NewRun {
        trigger: "manual",
        requested_by: "test",
        daemon: None,
        min_age_hours: 0,
        bytes_predicted: 0,
        unless_run_since: None,
        approved: None,
        left_out: "[]",
    }
}

#[tokio::test]
async fn fifty_scans_of_one_daemon_at_once_cost_at_most_two_listings() {
    let (endpoint, paths) = recording_relay(&engine_a_tcp()).await;
    let app = spawn_app_with_daemons(&[("relayed", endpoint)]).await;
    // Adding the daemon contacted it; count from here.
    paths.lock().unwrap().clear();
    let empty = json!({});
    let scans = (0..50).map(|_| app.post_json("/api/v1/scan", &empty));
    for (status, body) in futures_util::future::join_all(scans).await {
        assert_eq!(status, 200, "{body}");
        assert_eq!(body[0]["ok"], true, "{body}");
    }
    let sent = count(&paths, |p| p.ends_with("/images/json"));
    assert!(
        (1..=2).contains(&sent),
        "{sent} image listings for 50 scans at once"
    );
}

#[tokio::test]
async fn a_scan_older_than_the_stored_one_is_never_saved() {
    let (_hole, endpoint) = black_hole();
    let app = spawn_app_with_daemons(&[("d", endpoint)]).await;
    let store = &app.app.store;
    let id = store.list_daemons().await.unwrap()[0].id;
    // The newer snapshot (its listing started at 2000) lands first.
    assert!(store
        .save_scan(id, 1, 5, r#"{"newer":1}"#, 2000)
        .await
        .unwrap());
    assert!(!store
        .save_scan(id, 2, 5, r#"{"older":1}"#, 1000)
        .await
        .unwrap());
    let row = store.load_scan(id).await.unwrap().unwrap();
    assert_eq!(row.inventory.as_deref(), Some(r#"{"newer":1}"#));
}

#[tokio::test]
async fn the_server_s_scheduler_sees_an_interval_the_cli_set() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let server = start_server(&data_dir, None);
    // With the default week, the scheduler sleeps; then the CLI sets an
    // hour, set (as far as the schedule knows) two hours ago.
    let output = run(cli(&data_dir).args(["settings", "set", "interval_hours=1"]));
    assert!(output.status.success(), "{}", stderr(&output));
    let db = format!("sqlite:{}", data_dir.join("exapp-janitor.db").display());
    let pool = sqlx::SqlitePool::connect(&db).await.unwrap();
    sqlx::query("UPDATE settings SET interval_set_at = interval_set_at - 7200")
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;
    let started = Instant::now();
    loop {
        let runs = server.api("/api/v1/cleanup/runs").await;
        if runs
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["trigger"] == "schedule")
        {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the scheduler never saw the change: {runs}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[tokio::test]
async fn a_worker_waits_for_another_processs_lease_instead_of_claiming_again_and_again() {
    let (_hole, endpoint) = black_hole();
    let app = spawn_app_with_daemons(&[("d", endpoint)]).await;
    let store = &app.app.store;
    let daemon_id = store.list_daemons().await.unwrap()[0].id;
    let job = |n: u8| NewJob {
        daemon_id,
        image_id: format!("sha256:{}", format!("{n:02x}").repeat(32)),
        image_refs: "[]".into(),
        owner: None,
    };
    let run = a_manual_run();
    let now = now_ms();
    store
        .create_run(&run, &[job(1), job(2)], now - 1000)
        .await
        .unwrap();
    // Another process holds the daemon's first job for 30 s.
    let lease_until = now + 30_000;
    store
        .claim_job(daemon_id, None, "another-process", now, 30_000)
        .await
        .unwrap()
        .expect("claimed");
    assert_eq!(
        store.daemons_with_ready_jobs(now, None).await.unwrap(),
        Vec::<i64>::new(),
        "a claim there can only fail"
    );
    let next = store.next_job_event(now).await.unwrap().unwrap();
    assert!(
        next >= lease_until,
        "the worker would wake at {next}, before the lease ends at {lease_until}"
    );
}

#[tokio::test]
async fn two_settings_changes_at_once_both_apply() {
    let app = spawn_app().await;
    for round in 1..=15 {
        let (keep, age) = (
            json!({"keep_previous": round}),
            json!({"min_age_hours": round}),
        );
        let (a, b) = tokio::join!(app.patch_settings(&keep), app.patch_settings(&age));
        assert_eq!((a.0, b.0), (200, 200), "{a:?} {b:?}");
        let now = app.get_json("/api/v1/settings").await;
        assert_eq!(
            (now["keep_previous"].clone(), now["min_age_hours"].clone()),
            (json!(round), json!(round)),
            "a change was lost in round {round}: {now}"
        );
    }
}

#[tokio::test]
async fn the_settings_page_does_not_overwrite_a_change_made_since_it_was_shown() {
    let app = spawn_app().await;
    let (_, page) = app.get_text("/settings").await;
    let marker = r#"name="version" value=""#;
    let at = page.find(marker).expect("the page carries its version") + marker.len();
    let shown = page[at..].split('"').next().unwrap().to_owned();
    // Meanwhile, through the API:
    let (status, _) = app.patch_settings(&json!({"keep_previous": 3})).await;
    assert_eq!(status, 200);
    let response = app
        .post_form(
            "/settings",
            &[
                ("interval_hours", "168"),
                ("keep_previous", "0"),
                ("min_age_hours", "24"),
                ("protected_patterns", ""),
                ("version", &shown),
            ],
        )
        .await;
    assert_eq!(response.status(), 409);
    let page = response.text().await.unwrap();
    assert!(
        page.contains("changed elsewhere")
            && page.contains(r#"name="keep_previous" inputmode="numeric" value="3""#),
        "the current values are shown: {page}"
    );
    let now = app.get_json("/api/v1/settings").await;
    assert_eq!(now["keep_previous"], 3, "{now}");
    // An API change naming a stale version is refused the same way.
    let (status, body) = app
        .patch_settings(&json!({"version": 1, "keep_previous": 0}))
        .await;
    assert_eq!(status, 409, "{body}");
}

#[tokio::test]
async fn reading_the_settings_needs_no_write_lock() {
    let app = spawn_app().await;
    let db = format!("sqlite:{}", app.data_dir.join("exapp-janitor.db").display());
    // Another process holds the database's write lock.
    let mut writer = <sqlx::SqliteConnection as sqlx::Connection>::connect(&db)
        .await
        .unwrap();
    sqlx::query("BEGIN IMMEDIATE")
        .execute(&mut writer)
        .await
        .unwrap();
    for _ in 0..3 {
        let started = Instant::now();
        // The token alone: no session cookie whose last use would be recorded.
        let response = app
            .anon
            .get(app.url("/api/v1/settings"))
            .bearer_auth(&app.api_token)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "a settings read waited {:?} for the write lock",
            started.elapsed()
        );
    }
    sqlx::query("ROLLBACK").execute(&mut writer).await.unwrap();
}

#[tokio::test]
async fn a_removed_daemons_runs_and_jobs_stay_in_the_history_and_the_totals() {
    let engine = engine_a_sock();
    let app = spawn_app_with_daemons(&[("goes", engine.clone())]).await;
    let fx = common::fixtures::Fixtures::new(&engine);
    let (_, old) = exapp(&fx, "history", 1);
    app.start_worker();
    let (status, run) = app
        .post_json(
            "/api/v1/cleanup/runs",
            &json!({"min_age_hours": 0, "owner": appid(&fx, "history")}),
        )
        .await;
    assert_eq!(status, 202, "{run}");
    let run = app
        .wait_for_run(run["id"].as_i64().unwrap(), Duration::from_secs(60))
        .await;
    let metrics = |app: &TestApp| {
        let request = app
            .anon
            .get(app.url("/metrics"))
            .bearer_auth(&app.api_token);
        async move { request.send().await.unwrap().text().await.unwrap() }
    };
    let succeeded = |text: &str| {
        text.lines()
            .find(|l| {
                l.starts_with(
                    r#"exapp_janitor_cleanup_jobs_total{trigger="manual",outcome="succeeded"}"#,
                )
            })
            .map(str::to_owned)
    };
    let before = succeeded(&metrics(&app).await).expect("a total of succeeded jobs");
    assert_eq!(app.api_delete("/api/v1/daemons/goes").await.status(), 204);
    let kept = app
        .get_json(&format!("/api/v1/cleanup/runs/{}", run["id"]))
        .await;
    let job = job_for(&kept, &old[0]);
    assert_eq!(
        (job["daemon"].clone(), job["status"].clone()),
        (json!("goes"), json!("succeeded")),
        "{kept}"
    );
    assert_eq!(
        succeeded(&metrics(&app).await),
        Some(before),
        "a total went backwards"
    );
}

#[tokio::test]
async fn a_daemon_with_queued_jobs_is_not_removed_until_they_are_cancelled() {
    let (_hole, endpoint) = black_hole();
    let app = spawn_app_with_daemons(&[("busy", endpoint)]).await;
    let store = &app.app.store;
    let daemon_id = store.list_daemons().await.unwrap()[0].id;
    let run = a_manual_run();
    let job = NewJob {
        daemon_id,
        image_id: format!("sha256:{}", "ab".repeat(32)),
        image_refs: "[]".into(),
        owner: None,
    };
    let (run_id, _) = store
        .create_run(&run, &[job], now_ms())
        .await
        .unwrap()
        .unwrap();
    let response = app.api_delete("/api/v1/daemons/busy").await;
    assert_eq!(response.status(), 409);
    assert!(response.text().await.unwrap().contains("queued or running"));
    assert_eq!(app.daemon_names().await, ["busy"]);
    let job_id = app
        .get_json(&format!("/api/v1/cleanup/runs/{run_id}"))
        .await["jobs"][0]["id"]
        .as_i64()
        .unwrap();
    let (status, _) = app
        .post_json(&format!("/api/v1/cleanup/jobs/{job_id}/cancel"), &json!({}))
        .await;
    assert_eq!(status, 200);
    assert_eq!(app.api_delete("/api/v1/daemons/busy").await.status(), 204);
}

#[tokio::test]
async fn a_rescan_inspects_no_exapp_container_whose_reference_still_names_its_image() {
    let engine = engine_a_sock();
    let fx = common::fixtures::Fixtures::new(&engine);
    let (current, _) = exapp(&fx, "noinspect", 1);
    let (endpoint, paths) = recording_relay(&engine_a_tcp()).await;
    let app = spawn_app_with_daemons(&[("relayed", endpoint)]).await;
    paths.lock().unwrap().clear();
    let (status, body) = app.post_json("/api/v1/scan", &json!({})).await;
    assert_eq!(
        (status, body[0]["ok"].clone()),
        (200, json!(true)),
        "{body}"
    );
    let inspects = count(&paths, |p| {
        p.contains("/containers/") && p.ends_with("/json") && !p.ends_with("/containers/json")
    });
    assert_eq!(
        inspects,
        0,
        "container inspects: {:?}",
        paths.lock().unwrap()
    );
    // And the ExApp is still known by the reference it was created from.
    let images = app
        .get_json(&format!("/api/v1/images?owner={}", appid(&fx, "noinspect")))
        .await;
    let image = images
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["repo_tags"][0] == current.as_str())
        .unwrap_or_else(|| panic!("{images}"));
    assert_eq!(image["status"], "current", "{image}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_cli_rescan_of_an_unchanged_daemon_costs_the_two_list_calls() {
    let engine = engine_a_sock();
    let fx = common::fixtures::Fixtures::new(&engine);
    exapp(&fx, "twocalls", 1);
    let (endpoint, paths) = recording_relay(&engine_a_tcp()).await;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let cli_run = |args: &[&str]| {
        let mut command = tokio::process::Command::from({
            let mut c = cli(&data);
            c.args(args);
            c
        });
        async move { command.output().await.unwrap() }
    };
    assert!(cli_run(&["daemon", "add", "relayed", &endpoint])
        .await
        .status
        .success());
    // The first scan looks up the layers of every image it has not seen.
    assert!(cli_run(&["scan", "--json"]).await.status.success());
    let known: Vec<String> = paths.lock().unwrap().clone();

    paths.lock().unwrap().clear();
    let out = cli_run(&["scan", "--json"]).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut calls: Vec<String> = paths
        .lock()
        .unwrap()
        .iter()
        // An ExApp container whose tag moved since is inspected: other
        // tests' containers on this shared engine may be such.
        .filter(|p| {
            !(p.contains("/containers/")
                && p.ends_with("/json")
                && !p.ends_with("/containers/json"))
        })
        // Other tests on this shared engine make images meanwhile: a new
        // image is looked up once. One the first scan saw is not again.
        .filter(|p| !p.contains("/images/sha256:") || known.contains(p))
        .map(|p| {
            p.rsplit_once("/v1.").map_or(p.clone(), |(_, rest)| {
                rest.split_once('/')
                    .map_or(rest.to_owned(), |(_, path)| format!("/{path}"))
            })
        })
        .collect();
    calls.sort();
    assert_eq!(
        calls,
        ["/containers/json", "/images/json"],
        "no version negotiation, no image lookup: {:?}",
        paths.lock().unwrap()
    );
}

#[tokio::test]
async fn a_daemon_that_refuses_the_stored_api_version_is_negotiated_with_again() {
    let app = spawn_app_with_daemons(&[("old", engine_a_sock())]).await;
    // As if engine A had spoken 1.45 before and was downgraded since (20.10 speaks 1.41).
    let name = exapp_janitor::domain::DaemonName::parse("old").unwrap();
    app.app
        .store
        .record_contact_ok(&name, "26.1.5", "1.45")
        .await
        .unwrap();
    let (status, body) = app.post_json("/api/v1/scan", &json!({})).await;
    assert_eq!(
        (status, body[0]["ok"].clone()),
        (200, json!(true)),
        "{body}"
    );
    let daemons = app.get_json("/api/v1/daemons").await;
    assert_eq!(daemons[0]["api_version"], "1.41", "{daemons}");
}
