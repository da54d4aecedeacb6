//! HaRP daemons against the real HaRP v0.4.4 the harness runs in front of
//! engines A (Engine 20.10) and B (Engine 26.1): the inventory through what
//! HaRP allows (inspects, and the janitor's own history), removal through
//! `image_remove` and nothing else, Docker's own refusal of an image in use,
//! cleanup on update by polling, a wrong key asked once, a HaRP that is down.
//!
//! Each test owns its ExApp (its own repository and container) and limits
//! runs to it (`owner`).

mod common;

use std::time::Duration;

use common::fixtures::Fixtures;
use common::harp::{harp, Harp};
use common::*;
use serde_json::{json, Value};

/// HaRP's agent answers every call in Python, after HAProxy asked it whether
/// the call is allowed: with fifteen tests building images at once, one
/// call may take longer than the suite's usual 2 s. A fresh-clone CI run
/// saw one call go unanswered for 15 s (the run's scan of
/// `a_run_removes_the_old_image_through_image_remove_and_nothing_else`), so
/// the tests give it 30 s; what they check is never how fast HaRP answers.
const HARP_CALL_TIMEOUT: Duration = Duration::from_secs(30);

async fn spawn_harp_app() -> TestApp {
    spawn_app_with(|app| app.daemon_timeout = HARP_CALL_TIMEOUT).await
}

/// An ExApp on an engine: a container `nc_app_<appid>` on `v1`, and `v2`
/// pulled for its next update (same repository).
struct HarpExApp {
    appid: String,
    container: String,
    v1: String,
    v2: String,
}

fn harp_exapp(fx: &Fixtures, name: &str) -> HarpExApp {
    let base = fx.unique("busybox:1");
    fx.busybox(&base);
    let repo = format!("ghcr.io/{}/{name}", fx.unique("nc"));
    let (v1, v2) = (format!("{repo}:1.0.0"), format!("{repo}:2.0.0"));
    fx.build(&v1, &base, 3000);
    fx.build(&v2, &base, 4000);
    let appid = appid(fx, name);
    let container = format!("nc_app_{appid}");
    fx.run(&container, &v1);
    HarpExApp {
        appid,
        container,
        v1,
        v2,
    }
}

/// AppAPI's update, made outside the janitor: the container recreated on v2.
fn update(fx: &Fixtures, exapp: &HarpExApp) {
    fx.docker(&["rm", "-f", &exapp.container]);
    fx.run(&exapp.container, &exapp.v2);
}

fn image_id(fx: &Fixtures, reference: &str) -> String {
    fx.docker(&["image", "inspect", "-f", "{{.Id}}", reference])
        .trim()
        .to_owned()
}

/// Adds a HaRP daemon through the API; its answer.
async fn add_harp(
    app: &TestApp,
    name: &str,
    h: &Harp,
    key: &str,
    port: u16,
    exapps: &[&str],
) -> (u16, Value) {
    app.post_json(
        "/api/v1/daemons",
        &json!({
            "name": name,
            "endpoint": format!("harp+{}", h.url),
            "harp_key": key,
            "harp_docker_port": port,
            "exapps": exapps,
        }),
    )
    .await
}

/// A HaRP daemon `h` in front of engine A looking for one ExApp, which the
/// janitor saw on v1 and which was then updated to v2 outside it.
async fn updated_behind_harp(app: &TestApp, h: &Harp, name: &str) -> (Fixtures, HarpExApp) {
    let fx = Fixtures::new(&engine_a_sock());
    let exapp = harp_exapp(&fx, name);
    let (status, body) = add_harp(app, "h", h, &h.key, h.port_a, &[&exapp.appid]).await;
    assert_eq!(status, 201, "{body}");
    owned(app, "h", &exapp.appid).await;
    update(&fx, &exapp);
    (fx, exapp)
}

/// Starts a worker, waits for the run to end, stops the worker: the run.
async fn run_to_the_end(app: &TestApp, run: &Value) -> Value {
    let worker = app.start_worker();
    let run = app
        .wait_for_run(run["id"].as_i64().unwrap(), Duration::from_secs(60))
        .await;
    worker.stop().await;
    run
}

/// The image objects of `daemon` owned by `appid`, by ID.
async fn owned(app: &TestApp, daemon: &str, appid: &str) -> Vec<Value> {
    let (status, scans) = app.post_json("/api/v1/scan", &json!({})).await;
    assert_eq!(status, 200, "{scans}");
    // A failed scan keeps the last inventory: say so rather than compare it.
    for scan in scans.as_array().unwrap() {
        assert_eq!(scan["ok"], true, "the scan failed: {scan}");
    }
    let images = app
        .get_json(&format!("/api/v1/images?daemon={daemon}&owner={appid}"))
        .await;
    images.as_array().unwrap().clone()
}

fn with_id<'a>(images: &'a [Value], id: &str) -> &'a Value {
    images
        .iter()
        .find(|i| i["id"] == id)
        .unwrap_or_else(|| panic!("no image {id} in {images:?}"))
}

async fn inventory_before_and_after_an_update(engine_sock: String, port: u16) {
    let h = harp();
    let app = spawn_harp_app().await;
    let fx = Fixtures::new(&engine_sock);
    let exapp = harp_exapp(&fx, "harp_inv");
    let (status, body) = add_harp(&app, "h", &h, &h.key, port, &[&exapp.appid]).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["kind"], "harp");
    assert_eq!(body["reachable"], true, "{body}");
    assert!(
        body["engine_version"]
            .as_str()
            .unwrap()
            .contains("through HaRP 0.4.4"),
        "{body}"
    );

    let before = owned(&app, "h", &exapp.appid).await;
    assert_eq!(
        before.len(),
        1,
        "only the current image is known yet: {before:?}"
    );
    let current = with_id(&before, &image_id(&fx, &exapp.v1));
    assert_eq!(current["status"], "current");
    assert_eq!(
        current["unique_bytes"],
        Value::Null,
        "no listing, no exact bytes"
    );
    assert!(current["size_bytes"].as_u64().unwrap() > 0);

    update(&fx, &exapp);
    let after = owned(&app, "h", &exapp.appid).await;
    assert_eq!(
        with_id(&after, &image_id(&fx, &exapp.v2))["status"],
        "current"
    );
    let old = with_id(&after, &image_id(&fx, &exapp.v1));
    assert_eq!(old["status"], "outdated", "{old}");
    assert_eq!(old["owner"], exapp.appid.as_str());
    assert!(
        old["reason"].as_str().unwrap().contains("not subtracted"),
        "the reason says the size is an upper bound: {old}"
    );
}

#[tokio::test]
async fn the_inventory_through_harp_follows_an_update_on_engine_20_10() {
    inventory_before_and_after_an_update(engine_a_sock(), harp().port_a).await;
}

#[tokio::test]
async fn the_inventory_through_harp_follows_an_update_on_engine_26_1() {
    inventory_before_and_after_an_update(engine_b_sock(), harp().port_b).await;
}

#[tokio::test]
async fn one_exapp_seen_through_harp_and_through_the_socket_has_the_same_statuses_and_owners() {
    let h = harp();
    let app = spawn_harp_app().await;
    add_daemon(&app, "direct", &engine_a_sock()).await;
    let fx = Fixtures::new(&engine_a_sock());
    let exapp = harp_exapp(&fx, "harp_same");
    let (status, body) = add_harp(&app, "h", &h, &h.key, h.port_a, &[&exapp.appid]).await;
    assert_eq!(status, 201, "{body}");
    owned(&app, "h", &exapp.appid).await;
    update(&fx, &exapp);

    let view = |images: Vec<Value>| {
        let mut v: Vec<(String, String, String)> = images
            .iter()
            .map(|i| {
                (
                    i["id"].as_str().unwrap().to_owned(),
                    i["status"].as_str().unwrap().to_owned(),
                    i["owner"].as_str().unwrap_or_default().to_owned(),
                )
            })
            .collect();
        v.sort();
        v
    };
    let through_harp = view(owned(&app, "h", &exapp.appid).await);
    let direct = view(owned(&app, "direct", &exapp.appid).await);
    assert_eq!(through_harp, direct);
    assert_eq!(through_harp.len(), 2, "{through_harp:?}");
}

#[tokio::test]
async fn a_run_removes_the_old_image_through_image_remove_and_nothing_else() {
    let h = harp();
    let app = spawn_harp_app().await;
    let (fx, exapp) = updated_behind_harp(&app, &h, "harp_run").await;
    let (v1, v2) = (image_id(&fx, &exapp.v1), image_id(&fx, &exapp.v2));

    let request = json!({"daemon": "h", "owner": exapp.appid, "min_age_hours": 0});
    let (status, preview) = app.post_json("/api/v1/cleanup/preview", &request).await;
    assert_eq!(status, 200, "{preview}");
    let ids: Vec<&str> = preview["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [v1.as_str()], "only the old image: {preview}");

    let mut run_request = request.clone();
    run_request["images"] = json!([v1]);
    let (status, run) = app.post_json("/api/v1/cleanup/runs", &run_request).await;
    assert_eq!(status, 202, "{run}");
    let run = run_to_the_end(&app, &run).await;
    let job = &run["jobs"][0];
    assert_eq!(job["status"], "succeeded", "{run}");
    assert!(job["bytes_freed"].as_i64().unwrap() > 0, "{job}");
    assert!(!fx.has_id(&v1), "the old image is gone");
    assert!(fx.has_id(&v2), "the current image stays");
    assert!(fx.has(&exapp.v2));
}

#[tokio::test]
async fn an_old_image_another_container_uses_is_skipped_in_harps_words_and_stays() {
    let h = harp();
    let app = spawn_harp_app().await;
    let (fx, exapp) = updated_behind_harp(&app, &h, "harp_inuse").await;
    // A container HaRP cannot show the janitor keeps the old image in use.
    fx.create(&fx.unique("other"), &exapp.v1);
    let v1 = image_id(&fx, &exapp.v1);

    let request = json!({"daemon": "h", "owner": exapp.appid, "min_age_hours": 0, "images": [v1]});
    let (status, run) = app.post_json("/api/v1/cleanup/runs", &request).await;
    assert_eq!(status, 202, "{run}");
    let run = run_to_the_end(&app, &run).await;
    let job = &run["jobs"][0];
    assert_eq!(job["status"], "skipped", "{run}");
    assert!(job["error"].as_str().unwrap().contains("in_use"), "{job}");
    assert_eq!(job["attempts"], 1, "Docker's refusal is not retried: {job}");
    assert!(fx.has(&exapp.v1), "the image and its tag stay");
}

#[tokio::test]
async fn cleanup_on_update_works_behind_harp_by_polling() {
    let h = harp();
    let app = spawn_harp_app().await;
    let fx = Fixtures::new(&engine_b_sock());
    let exapp = harp_exapp(&fx, "harp_update");
    add_harp(&app, "h", &h, &h.key, h.port_b, &[&exapp.appid]).await;
    let (status, body) = app
        .patch_settings(&json!({"cleanup_on_update": true, "min_age_hours": 0}))
        .await;
    assert_eq!(status, 200, "{body}");
    let worker = app.start_worker();
    let watch = app.start_watch(Duration::from_secs(1));
    let v1 = image_id(&fx, &exapp.v1);
    // The watcher has seen the ExApp on v1 before the update.
    wait_until(Duration::from_secs(30), || async {
        app.get_json(&format!("/api/v1/images?daemon=h&owner={}", exapp.appid))
            .await
            .as_array()
            .is_some_and(|a| a.iter().any(|i| i["id"] == v1.as_str()))
    })
    .await;

    update(&fx, &exapp);
    wait_until(Duration::from_secs(60), || async { !fx.has_id(&v1) }).await;
    watch.abort();
    worker.stop().await;
    let runs = app.get_json("/api/v1/cleanup/runs").await;
    let run = runs
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["trigger"] == "update")
        .unwrap_or_else(|| panic!("a run started by the update: {runs}"));
    assert_eq!(run["jobs"][0]["image_id"], v1.as_str(), "{run}");
    assert!(fx.has(&exapp.v2));
}

/// A port on which nothing listens.
fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// A daemon just added that could not be reached, for the reason `why`.
fn assert_added_unreachable(status: u16, body: &Value, why: &str) {
    assert_eq!(status, 201, "added all the same: {body}");
    assert_eq!(body["reachable"], false, "{body}");
    assert!(body["last_error"].as_str().unwrap().contains(why), "{body}");
}

/// Lines of HaRP's agent log that count a wrong key against an address.
fn harp_key_failures() -> usize {
    let log = format!("{}/harp/agent.log", harness_var("EXAPP_JANITOR_TEST_ROOT"));
    std::fs::read_to_string(&log)
        .unwrap_or_else(|e| panic!("{log}: {e}"))
        .lines()
        .filter(|l| l.contains("Recorded failure for IP"))
        .count()
}

#[tokio::test]
async fn a_wrong_key_is_reported_in_words_and_not_sent_again() {
    let h = harp();
    let app = spawn_harp_app().await;
    let before = harp_key_failures();
    let (status, body) =
        add_harp(&app, "wrongkey", &h, "not-the-key", h.port_a, &["whatever"]).await;
    assert_added_unreachable(status, &body, "wrong HaRP shared key");
    assert!(
        !body.to_string().contains("not-the-key"),
        "the key is never shown: {body}"
    );
    for _ in 0..3 {
        app.post_json("/api/v1/scan", &json!({})).await;
        app.get_json("/api/v1/daemons").await;
    }
    // HaRP logs a failure as it answers 401; give the last one time to land.
    wait_until(Duration::from_secs(5), || async {
        harp_key_failures() > before
    })
    .await;
    assert_eq!(
        harp_key_failures() - before,
        1,
        "one wrong key was sent, then no more (HaRP bans after ten)"
    );
}

#[tokio::test]
async fn a_harp_that_is_down_is_that_daemons_problem_only() {
    let app = spawn_app_with_daemons(&[("direct", engine_a_sock())]).await;
    let closed = closed_port();
    let (status, body) = app
        .post_json(
            "/api/v1/daemons",
            &json!({"name": "down", "endpoint": format!("harp+http://127.0.0.1:{closed}"),
                    "harp_key": "k", "exapps": ["llm2"]}),
        )
        .await;
    assert_added_unreachable(status, &body, "cannot reach HaRP");
    let (status, scans) = app.post_json("/api/v1/scan", &json!({})).await;
    assert_eq!(status, 200);
    let by_name = |name: &str| {
        scans
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["daemon"] == name)
            .unwrap()
            .clone()
    };
    assert_eq!(by_name("down")["ok"], false, "{scans}");
    assert_eq!(by_name("direct")["ok"], true, "{scans}");
}

#[tokio::test]
async fn a_docker_engine_port_with_no_engine_behind_is_said_so() {
    let h = harp();
    let app = spawn_app().await; // the short timeout: HAProxy waits 30 s for a port with nothing behind it
    let closed = closed_port();
    let (status, body) = add_harp(&app, "noengine", &h, &h.key, closed, &["llm2"]).await;
    assert_added_unreachable(status, &body, &format!("docker-engine-port {closed}"));
}

#[tokio::test]
async fn harp_fields_are_checked_and_a_bad_one_adds_nothing() {
    let h = harp();
    let app = spawn_harp_app().await;
    for (body, field) in [
        (
            json!({"name": "x", "endpoint": format!("harp+{}", h.url), "exapps": ["llm2"]}),
            "harp_key",
        ),
        (
            json!({"name": "x", "endpoint": format!("harp+{}", h.url), "harp_key": "k", "exapps": ["llm2; rm -rf /"]}),
            "exapps",
        ),
        (
            json!({"name": "x", "endpoint": format!("harp+{}", h.url), "harp_key": "k", "harp_docker_port": 70000}),
            "harp_docker_port",
        ),
        (
            json!({"name": "x", "endpoint": "tcp://127.0.0.1:2375", "harp_key": "k"}),
            "harp_key",
        ),
    ] {
        let (status, answer) = app.post_json("/api/v1/daemons", &body).await;
        assert_eq!(status, 422, "{body}: {answer}");
        assert!(answer["fields"][field].is_string(), "{body}: {answer}");
    }
    assert!(app.daemon_names().await.is_empty());
}

#[tokio::test]
async fn the_cli_adds_a_harp_daemon_with_its_key_from_a_file_and_changes_its_exapps() {
    let h = harp();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let endpoint = format!("harp+{}", h.url);
    let port = h.port_a.to_string();
    let out = run(cli(&data).args([
        "daemon",
        "add",
        "h",
        &endpoint,
        "--harp-key-file",
        &h.key_file,
        "--harp-docker-port",
        &port,
        "--exapp",
        "llm2",
    ]));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("through HaRP 0.4.4"), "{stdout}");

    let out = run(cli(&data).args([
        "daemon",
        "exapps",
        "h",
        "--add",
        "translate2",
        "--remove",
        "llm2",
    ]));
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("looks for translate2"));

    let out = run(cli(&data).args(["daemon", "list", "--json"]));
    let listed = String::from_utf8_lossy(&out.stdout);
    assert!(!listed.contains(&h.key), "the key is never shown: {listed}");
    let listed: Value = serde_json::from_str(&listed).unwrap();
    assert_eq!(listed[0]["exapps"], json!(["translate2"]));
    assert_eq!(listed[0]["harp_docker_port"], h.port_a);
}

#[tokio::test]
async fn the_daemons_page_adds_a_harp_daemon_shows_its_limits_and_never_its_key() {
    let h = harp();
    let app = spawn_harp_app().await;
    let endpoint = format!("harp+{}", h.url);
    let port = h.port_a.to_string();
    let response = app
        .post_form(
            "/daemons",
            &[
                ("name", "hpage"),
                ("endpoint", &endpoint),
                ("harp_key", &h.key),
                ("harp_docker_port", &port),
                ("exapps", "llm2, translate2"),
            ],
        )
        .await;
    assert_eq!(response.status(), 303);

    let response = app
        .post_form(
            "/daemons/hpage/exapps",
            &[("exapps", "llm2 context_chat_backend")],
        )
        .await;
    assert_eq!(response.status(), 303);

    let (status, page) = app.get_text("/daemons").await;
    assert_eq!(status, 200);
    assert!(!page.contains(&h.key), "the key is never on a page");
    assert!(page.contains(r#"<span class="tag">HaRP</span>"#), "{page}");
    assert!(page.contains("context_chat_backend, llm2"), "{page}");
    assert!(page.contains("through HaRP 0.4.4"), "{page}");
    assert!(page.contains("sizes are upper bounds"), "{page}");
}

#[tokio::test]
async fn an_image_removed_by_someone_else_right_before_image_remove_is_not_counted_as_freed() {
    let h = harp();
    let hold = RemovalHold::new();
    let path = hold.path();
    let app = spawn_app_with(move |app| {
        app.removal_hold = Some(path);
        app.daemon_timeout = HARP_CALL_TIMEOUT;
    })
    .await;
    let (fx, exapp) = updated_behind_harp(&app, &h, "harp_race").await;
    let v1 = image_id(&fx, &exapp.v1);
    let request = json!({"daemon": "h", "owner": exapp.appid, "min_age_hours": 0, "images": [v1]});
    let (status, run) = app.post_json("/api/v1/cleanup/runs", &request).await;
    assert_eq!(status, 202, "{run}");
    let job = run["jobs"][0]["id"].as_i64().unwrap();
    let worker = app.start_worker();
    hold.reached(job).await;
    // Between the janitor's last look and its image_remove, the image goes.
    fx.docker(&["rmi", &exapp.v1]);
    hold.release(job);
    let run = app
        .wait_for_run(run["id"].as_i64().unwrap(), Duration::from_secs(60))
        .await;
    worker.stop().await;
    let job = &run["jobs"][0];
    assert_eq!(job["bytes_freed"].as_i64().unwrap_or(0), 0, "{job}");
    assert_ne!(job["status"], "failed", "{job}");
}

#[tokio::test]
async fn harp_over_https_is_reached_with_its_certificate_checked_against_the_ca_given() {
    let h = harp();
    let app = spawn_harp_app().await;
    let fx = Fixtures::new(&engine_a_sock());
    let exapp = harp_exapp(&fx, "harp_tls");
    let endpoint = h.https_url.replacen("https://", "harp+https://", 1);
    let body = |ca: Option<&str>| {
        let mut body = json!({"name": "tls", "endpoint": endpoint, "harp_key": h.key,
                              "harp_docker_port": h.port_a, "exapps": [exapp.appid]});
        if let Some(ca) = ca {
            body["tls_ca"] = json!(ca);
        }
        body
    };
    let (status, daemon) = app
        .post_json("/api/v1/daemons", &body(Some(&engine_b_tls().ca)))
        .await;
    assert_eq!(status, 201, "{daemon}");
    assert_eq!(daemon["reachable"], true, "{daemon}");
    assert!(daemon["endpoint"]
        .as_str()
        .unwrap()
        .starts_with("harp+https://"));
    let images = owned(&app, "tls", &exapp.appid).await;
    assert_eq!(
        with_id(&images, &image_id(&fx, &exapp.v1))["status"],
        "current"
    );

    // Without the CA, the system's CAs do not vouch for the harness's certificate.
    app.api_delete("/api/v1/daemons/tls").await;
    let (status, daemon) = app.post_json("/api/v1/daemons", &body(None)).await;
    assert_eq!(status, 201, "{daemon}");
    assert_eq!(daemon["reachable"], false, "{daemon}");
}

#[tokio::test]
async fn an_exapp_with_no_container_behind_harp_is_named_in_that_daemons_scan() {
    let h = harp();
    let app = spawn_harp_app().await;
    let fx = Fixtures::new(&engine_a_sock());
    let missing = appid(&fx, "harp_nowhere");
    let (status, body) = add_harp(&app, "h", &h, &h.key, h.port_a, &[&missing]).await;
    assert_eq!(status, 201, "{body}");
    let (status, scans) = app.post_json("/api/v1/scan", &json!({})).await;
    assert_eq!(status, 200);
    let scan = &scans[0];
    assert_eq!(scan["ok"], true, "{scans}");
    assert!(
        scan["notes"][0].as_str().unwrap().contains(&missing),
        "{scans}"
    );
}
