//! Faults at realistic scale, bounded in time and requests, loopback only:
//! a server killed again and again mid-run, a daemon dying under a scan and a
//! run, server and CLI on one SQLite file, and a flood of malformed requests.
//! One test at a time (runs remove across a whole engine).

mod common;

use std::collections::HashMap;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::fixtures::Fixtures;
use common::server::{start_server_env, Server};
use common::*;
use serde_json::{json, Value};
use tokio::sync::Mutex;

static ONE_AT_A_TIME: Mutex<()> = Mutex::const_new(());

/// A small, seeded generator: a failing run can be replayed with its seed.
struct Rng(u64);

impl Rng {
    fn from_time() -> Self {
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64
            | 1;
        eprintln!("random seed: {seed}");
        Rng(seed)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// An ExApp running on `engine` with `outdated` earlier images of its
/// repository (imported: quick to make, distinct IDs), made before the
/// current one as real versions are (an owned image newer than the current
/// one is `pending`, not outdated). Returns (current, old).
fn exapp_with_history(fx: &Fixtures, name: &str, outdated: usize) -> (String, Vec<String>) {
    let repo = format!("ghcr.io/{}/{name}", fx.unique("nc"));
    let old: Vec<String> = (0..outdated).map(|i| format!("{repo}:0.{i}")).collect();
    for (i, tag) in old.iter().enumerate() {
        fx.import(tag, &[("v", 200 + i)]);
    }
    let current = format!("{repo}:9.0");
    fx.busybox(&current);
    fx.run(
        &format!("nc_app_{}", fx.unique(name).replace('-', "_")),
        &current,
    );
    (current, old)
}

async fn run_of(server: &Server, id: i64) -> Value {
    server.api(&format!("/api/v1/cleanup/runs/{id}")).await
}

#[tokio::test]
async fn a_100_job_run_survives_five_kills_in_a_row() {
    let _one = ONE_AT_A_TIME.lock().await;
    let engine = engine_b_sock();
    let fx = Fixtures::new(&engine);
    let (current, old) = exapp_with_history(&fx, "killed", 100);
    let bystander = fx.unique("bystander:1");
    fx.import(&bystander, &[("x", 10)]);

    let dir = tempfile::tempdir().unwrap();
    let env = [("EXAPP_JANITOR_JOB_LEASE_SECS", "3")];
    let mut server = start_server_env(dir.path(), None, Some(TEST_PASSWORD), &env);
    server
        .api_post("/api/v1/daemons", &json!({"name": "d", "endpoint": engine}))
        .await;
    let (status, run) = server
        .api_post(
            "/api/v1/cleanup/runs",
            &json!({"daemon": "d", "min_age_hours": 0, "owner": appid(&fx, "killed")}),
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
    assert!(queued.len() >= 100, "{} jobs", queued.len());

    let mut rng = Rng::from_time();
    for kill in 0..5 {
        // Kill after a random number of further jobs have ended (or a random short time).
        let ended = |run: &Value| {
            ["succeeded", "skipped", "failed"]
                .iter()
                .map(|s| run["counts"][s].as_u64().unwrap())
                .sum::<u64>()
        };
        let target = ended(&run_of(&server, run_id).await) + 1 + rng.below(12);
        let started = Instant::now();
        loop {
            let run = run_of(&server, run_id).await;
            if ended(&run) >= target
                || run["status"] == "finished"
                || started.elapsed() > Duration::from_secs(30)
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(rng.below(40) + 5)).await;
        }
        server.kill_hard();
        eprintln!("kill {} done", kill + 1);
        server = start_server_env(dir.path(), None, Some(TEST_PASSWORD), &env);
    }

    let run = server.wait_for_run(run_id, Duration::from_secs(180)).await;
    let jobs = jobs_exactly(&run, &queued);
    let mut outcomes: HashMap<&str, usize> = HashMap::new();
    for j in jobs {
        *outcomes.entry(j["status"].as_str().unwrap()).or_default() += 1;
        assert!(matches!(j["status"].as_str(), Some("succeeded")), "{j}");
    }
    eprintln!("outcomes: {outcomes:?}");
    for tag in &old {
        assert!(!fx.has(tag), "{tag} survived");
    }
    assert!(
        fx.has(&current) && fx.has(&bystander),
        "nothing outside the run was touched"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dying_daemon_only_affects_its_own_rows_and_comes_back() {
    let _one = ONE_AT_A_TIME.lock().await;
    let (app, _, spare) = steady_and_spare().await;
    let (spare_current, _) = exapp_with_history(&spare, "dying", 0);
    let (_, body) = app.post_json("/api/v1/scan", &json!({})).await;
    assert!(
        body.as_array().unwrap().iter().all(|d| d["ok"] == true),
        "{body}"
    );

    // The daemon dies while a scan is under way.
    let empty = json!({});
    let scan = app.post_json("/api/v1/scan", &empty);
    let ((_, body), stopped) = tokio::join!(scan, SpareEngine::stop());
    let steady = body
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["daemon"] == "steady")
        .unwrap();
    assert_eq!(steady["ok"], true, "{body}");
    let (_, body) = app.post_json("/api/v1/scan", &json!({})).await;
    let spare_row = body
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["daemon"] == "spare")
        .unwrap();
    assert_eq!(spare_row["ok"], false, "{body}");

    // Pages and the API still serve; the last good inventory of the dead daemon stays.
    for path in ["/", "/images", "/exapps", "/runs", "/daemons"] {
        assert_eq!(app.get(path).await.status(), 200, "{path}");
    }
    let (_, card) = app.get_text("/daemons/spare/card").await;
    assert!(card.contains("Unreachable"), "{card}");
    assert!(!app
        .get_json("/api/v1/images?daemon=steady")
        .await
        .as_array()
        .unwrap()
        .is_empty());
    assert!(
        app.get_json("/api/v1/images?daemon=spare")
            .await
            .as_array()
            .unwrap()
            .iter()
            .any(|i| i["repo_tags"][0] == spare_current.as_str()),
        "the last inventory of the dead daemon is kept"
    );

    stopped.restart().await;
    let (_, body) = app.post_json("/api/v1/scan", &json!({})).await;
    assert!(
        body.as_array().unwrap().iter().all(|d| d["ok"] == true),
        "back: {body}"
    );
    let (_, card) = app.get_text("/daemons/spare/card").await;
    assert!(card.contains("Reachable"), "{card}");
}

/// The jobs of `run` whose image carries one of `tags`, by tag.
fn jobs_by_tag<'a>(run: &'a Value, tags: &[String]) -> Vec<&'a Value> {
    tags.iter().map(|tag| job_for(run, tag)).collect()
}

fn count_status(jobs: &[&Value], status: &str) -> usize {
    jobs.iter().filter(|j| j["status"] == status).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_daemon_dying_mid_run_holds_up_only_its_own_jobs_which_finish_when_it_returns() {
    let _one = ONE_AT_A_TIME.lock().await;
    let (app, steady, spare) = steady_and_spare().await;
    let (steady_current, steady_old) = exapp_with_history(&steady, "steadyrun", 20);
    // Enough that the spare daemon is still busy when it dies.
    let (spare_current, spare_old) = exapp_with_history(&spare, "sparerun", 40);
    let (status, run) = app
        .post_json("/api/v1/cleanup/runs", &json!({"min_age_hours": 0}))
        .await;
    assert_eq!(status, 202, "{run}");
    let run_id = run["id"].as_i64().unwrap();
    let run_path = format!("/api/v1/cleanup/runs/{run_id}");
    app.start_worker();

    // The spare daemon dies once its first removals are done.
    let limit = Instant::now() + Duration::from_secs(60);
    loop {
        let run = app.get_json(&run_path).await;
        if count_status(&jobs_by_tag(&run, &spare_old), "succeeded") >= 3 {
            break;
        }
        assert!(
            Instant::now() < limit,
            "the spare daemon's jobs never started: {run}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let stopped = SpareEngine::stop().await;

    // The steady daemon's jobs all finish while the spare one is down.
    let run = loop {
        let run = app.get_json(&run_path).await;
        if count_status(&jobs_by_tag(&run, &steady_old), "succeeded") == steady_old.len() {
            break run;
        }
        assert!(
            Instant::now() < limit,
            "the steady daemon was held up: {run}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let waiting = jobs_by_tag(&run, &spare_old)
        .into_iter()
        .filter(|j| j["status"] != "succeeded")
        .count();
    eprintln!(
        "spare jobs waiting for their daemon: {waiting} of {}",
        spare_old.len()
    );
    assert!(
        waiting > 0,
        "the spare daemon finished before it died; the test proved nothing"
    );
    assert_ne!(run["status"], "finished", "{run}");
    // Pages keep serving while a daemon is down mid-run.
    for path in ["/", "/images", &format!("/runs/{run_id}")] {
        assert_eq!(app.get(path).await.status(), 200, "{path}");
    }

    stopped.restart().await;
    let run = app.wait_for_run(run_id, Duration::from_secs(120)).await;
    let spare_jobs = jobs_by_tag(&run, &spare_old);
    assert_eq!(
        count_status(&spare_jobs, "succeeded"),
        spare_old.len(),
        "{run}"
    );
    assert!(
        spare_jobs
            .iter()
            .any(|j| j["attempts"].as_i64().unwrap() >= 2),
        "some job met the dead daemon and was retried: {run}"
    );
    assert!(spare_old.iter().all(|tag| !spare.has(tag)));
    assert!(steady_old.iter().all(|tag| !steady.has(tag)));
    assert!(spare.has(&spare_current) && steady.has(&steady_current));
}

#[tokio::test]
async fn server_and_cli_clean_on_one_database_without_lock_errors_or_double_runs() {
    let _one = ONE_AT_A_TIME.lock().await;
    let engine = engine_a_sock();
    let fx = Fixtures::new(&engine);
    let (current, old) = exapp_with_history(&fx, "shared", 40);
    let owner = appid(&fx, "shared");
    let dir = tempfile::tempdir().unwrap();
    let server = start_server_env(dir.path(), None, Some(TEST_PASSWORD), &[]);
    server
        .api_post("/api/v1/daemons", &json!({"name": "d", "endpoint": engine}))
        .await;

    // The CLI enqueues and works the queue; the server's worker claims from it too.
    let cli_run = std::thread::spawn({
        let dir = dir.path().to_owned();
        let owner = owner.clone();
        move || {
            cli(&dir)
                .args([
                    "clean",
                    "--daemon",
                    "d",
                    "--min-age-hours",
                    "0",
                    "--json",
                    "--owner",
                ])
                .arg(&owner)
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .output()
                .unwrap()
        }
    });
    // Meanwhile the server is busy too.
    for _ in 0..20 {
        server.api("/api/v1/images").await;
        server.api("/api/v1/cleanup/runs").await;
    }
    let out = cli_run.join().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        !stderr(&out).to_lowercase().contains("locked"),
        "{}",
        stderr(&out)
    );
    assert!(
        server.log_lines_containing("locked").is_empty(),
        "{:?}",
        server.log_lines_containing("locked")
    );
    let run: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(run["status"], "finished");
    let jobs = run["jobs"].as_array().unwrap();
    assert!(jobs.len() >= 40);
    for j in jobs {
        assert_eq!(j["status"], "succeeded", "{j}");
        assert_eq!(j["attempts"], 1, "each job ran once: {j}");
    }
    assert!(old.iter().all(|t| !fx.has(t)) && fx.has(&current));
}

/// Request bodies and queries no valid request looks like.
fn malformed(rng: &mut Rng) -> (reqwest::Method, &'static str, Vec<u8>) {
    let n = rng.next();
    let huge = format!("{}{}", n, "9".repeat(40));
    let bodies: Vec<Vec<u8>> = vec![
        b"{".to_vec(),
        b"{\"interval_hours\": }".to_vec(),
        format!("{{\"interval_hours\": {huge}}}").into_bytes(),
        format!("{{\"min_age_hours\": -{}}}", n % 1000 + 1).into_bytes(),
        format!("{{\"keep_previous\": \"{n}x\"}}").into_bytes(),
        b"{\"remove_dangling\": \"maybe\"}".to_vec(),
        b"{\"protected_patterns\": [\"[\"]}".to_vec(),
        format!("{{\"unknown_{}\": true}}", n % 97).into_bytes(),
        vec![0xff, 0xfe, b'{', 0x80, b'}'],
        b"[]".to_vec(),
        b"null".to_vec(),
        format!("{{\"name\": {n}, \"endpoint\": []}}").into_bytes(),
        b"{\"name\": \"x y\", \"endpoint\": \"gopher://x\"}".to_vec(),
        format!("{{\"daemon\": \"no such {n}\"}}").into_bytes(),
        format!("{{\"min_age_hours\": {huge}}}").into_bytes(),
    ];
    let body = bodies[rng.below(bodies.len() as u64) as usize].clone();
    match rng.below(5) {
        0 => (reqwest::Method::PATCH, "/api/v1/settings", body),
        1 => (reqwest::Method::POST, "/api/v1/daemons", body),
        2 => (reqwest::Method::POST, "/api/v1/cleanup/preview", body),
        3 => (reqwest::Method::POST, "/api/v1/cleanup/runs", body),
        _ => {
            let queries = [
                "/api/v1/images?status=everything",
                "/api/v1/images?daemon=%ff%fe",
                "/api/v1/images?daemon=a%20b",
                "/api/v1/cleanup/runs/abc",
                "/api/v1/cleanup/jobs/-1/cancel",
            ];
            let q = queries[rng.below(queries.len() as u64) as usize];
            let method = if q.ends_with("cancel") {
                reqwest::Method::POST
            } else {
                reqwest::Method::GET
            };
            (method, q, Vec::new())
        }
    }
}

#[tokio::test]
async fn ten_thousand_malformed_requests_get_4xx_and_change_nothing() {
    let _one = ONE_AT_A_TIME.lock().await;
    let app = spawn_app().await;
    let settings_before = app.get_json("/api/v1/settings").await;
    let mut rng = Rng::from_time();
    let requests: Vec<_> = (0..10_000).map(|_| malformed(&mut rng)).collect();
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let statuses: Vec<(u16, String)> = futures_util::stream::iter(requests)
        .map(|(method, path, body)| {
            let body_copy = body.clone();
            let request = client
                .request(method.clone(), app.url(path))
                .bearer_auth(&app.api_token)
                .header("Content-Type", "application/json")
                .body(body);
            let shown = String::from_utf8_lossy(&body_copy).into_owned();
            async move {
                (
                    request
                        .send()
                        .await
                        .map(|r| r.status().as_u16())
                        .unwrap_or(0),
                    format!("{method} {path} {shown}"),
                )
            }
        })
        .buffer_unordered(16)
        .collect()
        .await;
    let mut by_status: HashMap<u16, usize> = HashMap::new();
    for (status, what) in &statuses {
        *by_status.entry(*status).or_default() += 1;
        assert!((400..500).contains(status), "{what} got {status}");
    }
    eprintln!("statuses: {by_status:?}");
    assert_eq!(
        app.get("/api/v1/health").await.status(),
        200,
        "still serving"
    );
    assert_eq!(
        app.get_json("/api/v1/settings").await,
        settings_before,
        "settings unchanged"
    );
    assert!(app.daemon_names().await.is_empty(), "no daemon added");
    assert_eq!(
        app.get_json("/api/v1/cleanup/runs").await,
        json!([]),
        "no run started"
    );
}

use futures_util::StreamExt;
