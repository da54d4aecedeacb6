//! Test support: the isolated Docker engines the harness started, the real
//! HaRP in front of two of them (`harp`), a server spawned in-process on a
//! fresh data dir, the CLI binary, and fixtures.
//!
//! A test about time passing (the schedule, minimum ages, leases, the settle
//! time) runs its server on a manual clock (`spawn_app_on_manual_clock`) and
//! advances it, once the task it drives waits on it (`until_asleep`).
//!
//! Every test that needs an engine fails loudly when the harness is not
//! running: run the suite with `tests/harness/run-tests.sh`.
#![allow(dead_code)]

pub mod fixtures;
pub mod harp;
pub mod nextcloud;
pub mod packaging;
pub mod server;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use exapp_janitor::auth;
pub use exapp_janitor::clock::Clock;
use exapp_janitor::config::GlobalConfig;
use exapp_janitor::janitor::Janitor;
use serde_json::Value;

/// Reads a variable the harness exports, or stops the test with a clear message.
pub fn harness_var(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!(
            "{name} is not set: the integration tests need the isolated Docker engines. \
             Run them with tests/harness/run-tests.sh (the README's test command)."
        )
    })
}

/// Engine A: Debian 12's Engine 20.10 (API 1.41).
/// `127.0.0.1:PORT` of the harness's registry: pushed images get the digest
/// references a pull gives them.
pub fn registry() -> String {
    harness_var("EXAPP_JANITOR_TEST_REGISTRY")
}

pub fn engine_a_sock() -> String {
    harness_var("EXAPP_JANITOR_TEST_ENGINE_A_SOCK")
}
pub fn engine_a_tcp() -> String {
    harness_var("EXAPP_JANITOR_TEST_ENGINE_A_TCP")
}
/// Engine B: Debian 13's Engine 26.1 (API 1.45).
pub fn engine_b_sock() -> String {
    harness_var("EXAPP_JANITOR_TEST_ENGINE_B_SOCK")
}

pub struct TlsEndpoint {
    pub url: String,
    pub ca: String,
    pub cert: String,
    pub key: String,
}

/// Engine B over TCP with TLS client certificates.
pub fn engine_b_tls() -> TlsEndpoint {
    TlsEndpoint {
        url: harness_var("EXAPP_JANITOR_TEST_ENGINE_B_TLS"),
        ca: harness_var("EXAPP_JANITOR_TEST_TLS_CA"),
        cert: harness_var("EXAPP_JANITOR_TEST_TLS_CERT"),
        key: harness_var("EXAPP_JANITOR_TEST_TLS_KEY"),
    }
}

/// Engine C: a spare engine that tests may stop (and bring back).
pub struct SpareEngine;

impl SpareEngine {
    pub fn sock() -> String {
        harness_var("EXAPP_JANITOR_TEST_ENGINE_C_SOCK")
    }

    /// Stops engine C, off the test's runtime (an in-process server, worker
    /// or watcher keeps going meanwhile). It starts again when the guard is
    /// restarted or dropped, so a failing test never leaves it down for the
    /// next one — a stop that itself fails included.
    pub async fn stop() -> StoppedSpare {
        let stopped = StoppedSpare { armed: true };
        off_runtime(Self::stop_now).await;
        stopped
    }

    fn stop_now() {
        let pid = std::fs::read_to_string(harness_var("EXAPP_JANITOR_TEST_ENGINE_C_PIDFILE"))
            .expect("engine C's pid file");
        let status = Command::new("kill").arg(pid.trim()).status().unwrap();
        assert!(status.success(), "could not stop engine C");
        let sock = Self::sock().replacen("unix://", "", 1);
        for _ in 0..300 {
            if !Path::new(&sock).exists() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("engine C did not stop within 30 s");
    }

    fn restart() -> Result<(), String> {
        let root = harness_var("EXAPP_JANITOR_TEST_ROOT");
        let status = Command::new("bash")
            .args([
                &harness_var("EXAPP_JANITOR_TEST_HARNESS"),
                "restart-spare",
                &root,
            ])
            .status()
            .map_err(|e| e.to_string())?;
        if status.success() {
            Ok(())
        } else {
            Err(format!("engines.sh restart-spare: {status}"))
        }
    }
}

/// Engine C while a test has it stopped.
#[must_use = "engine C starts again when this is dropped"]
pub struct StoppedSpare {
    armed: bool,
}

impl StoppedSpare {
    /// Starts engine C again now (off the test's runtime).
    pub async fn restart(mut self) {
        self.armed = false;
        off_runtime(|| SpareEngine::restart().expect("could not restart engine C")).await;
    }
}

impl Drop for StoppedSpare {
    fn drop(&mut self) {
        if self.armed {
            // Mostly while a failed test unwinds: say so rather than panic again.
            if let Err(e) = SpareEngine::restart() {
                eprintln!("could not restart engine C: {e}");
            }
        }
    }
}

/// Runs a blocking call (the docker CLI, a process, an engine's stop) on
/// tokio's blocking pool, so the test's runtime and whatever the test runs
/// in-process on it keep going; a panic in it is the test's.
pub async fn off_runtime<T: Send + 'static>(call: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(call)
        .await
        .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()))
}

/// How often the waiting helpers look again.
pub const POLL: Duration = Duration::from_millis(100);

/// Waits until `condition` holds, looking every `POLL`; fails, naming
/// `what`, when it does not within `limit`.
pub async fn eventually(limit: Duration, what: &str, mut condition: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !condition().await {
        assert!(Instant::now() < deadline, "{what}: not within {limit:?}");
        tokio::time::sleep(POLL).await;
    }
}

/// "Nothing happens": `holds` stays true for all of `period`, looked at every
/// `POLL`. Only meaningful once the task that could break it has shown it is
/// alive (it reacted to a control event): then `period` bounds the wait.
pub async fn stays(period: Duration, what: &str, mut holds: impl AsyncFnMut() -> bool) {
    let until = Instant::now() + period;
    loop {
        assert!(holds().await, "{what}");
        if Instant::now() >= until {
            return;
        }
        tokio::time::sleep(POLL).await;
    }
}

/// A server running in this process on a fresh data dir, with an admin
/// logged in (`http` carries the session cookie) and an API token.
pub struct TestApp {
    pub address: String,
    pub app: Janitor,
    pub data_dir: PathBuf,
    /// Logged in: sends the session cookie.
    pub http: reqwest::Client,
    /// Nobody: no cookie, no token.
    pub anon: reqwest::Client,
    pub api_token: String,
    pub csrf: String,
    _dir: tempfile::TempDir,
}

pub const TEST_DAEMON_TIMEOUT: Duration = Duration::from_secs(2);
/// How often the tests' watcher looks at a HaRP daemon.
pub const HARP_POLL: Duration = Duration::from_secs(1);
pub const TEST_PASSWORD: &str = "correct horse battery staple";

fn client(cookies: bool) -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .cookie_store(cookies)
        // A kept-alive connection may be closed by the server just as it is
        // reused (its keep-alive ends while fixtures are built): no pooling.
        .pool_max_idle_per_host(0)
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap()
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

/// `spawn_app` on a clock that stands still until the test advances it
/// (`TestApp::clock`).
pub async fn spawn_app_on_manual_clock() -> TestApp {
    spawn_app_with(|app| app.set_clock(Clock::manual())).await
}

/// `spawn_app` with the app's settings changed before the server starts.
pub async fn spawn_app_with(configure: impl FnOnce(&mut Janitor)) -> TestApp {
    let mut test_app = spawn_unlogged_with(configure).await;
    let response = test_app.login(&test_app.http, TEST_PASSWORD).await;
    assert_eq!(response.status(), 303, "test login failed");
    let (_, page) = test_app.get_text("/settings").await;
    test_app.csrf = csrf_token_in(&page).expect("a CSRF token on the page");
    test_app
}

/// The server of `spawn_app_with`, nobody logged in yet (no session cookie,
/// no CSRF token): for tests whose requests must not come from 127.0.0.1's session.
pub async fn spawn_unlogged_with(configure: impl FnOnce(&mut Janitor)) -> TestApp {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let config = GlobalConfig {
        data_dir: data_dir.clone(),
        daemon_timeout_secs: TEST_DAEMON_TIMEOUT.as_secs(),
        scan_timeout_secs: 60,
        scan_concurrency: 8,
        job_lease_secs: 5,
        removal_timeout_secs: 600,
        job_max_attempts: 8,
    };
    let mut app = Janitor::open(&config).await.expect("open the store");
    // As `serve` does at its start.
    exapp_janitor::settings::ensure_stored(&app.store)
        .await
        .unwrap();
    configure(&mut app);
    auth::reset_admin_password(&app.store, &auth::Password::parse(TEST_PASSWORD).unwrap())
        .await
        .unwrap();
    let api_token = auth::rotate_api_token(&app.store).await.unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = format!("http://{}", listener.local_addr().unwrap());
    let server = exapp_janitor::web::server(app.clone(), listener).unwrap();
    tokio::spawn(server);
    TestApp {
        address,
        app,
        data_dir,
        http: client(true),
        anon: client(false),
        api_token,
        csrf: String::new(),
        _dir: dir,
    }
}

/// The CSRF token a page carries in its forms.
pub fn csrf_token_in(page: &str) -> Option<String> {
    let marker = r#"name="csrf_token" value=""#;
    let start = page.find(marker)? + marker.len();
    Some(page[start..].split('"').next()?.to_owned())
}

impl TestApp {
    /// The server's clock: the system time, or a manual one to advance.
    pub fn clock(&self) -> &Clock {
        self.app.clock()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.address, path)
    }

    pub async fn login(&self, client: &reqwest::Client, password: &str) -> reqwest::Response {
        client
            .post(self.url("/login"))
            .form(&[("password", password), ("next", "/")])
            .send()
            .await
            .unwrap()
    }

    /// GET as the logged-in admin (pages) or with the API token (`/api/`).
    pub async fn get(&self, path: &str) -> reqwest::Response {
        let mut request = self.http.get(self.url(path));
        if path.starts_with("/api/") {
            request = request.bearer_auth(&self.api_token);
        }
        request.send().await.unwrap()
    }

    pub async fn get_text(&self, path: &str) -> (u16, String) {
        let response = self.get(path).await;
        (response.status().as_u16(), response.text().await.unwrap())
    }

    pub async fn get_json(&self, path: &str) -> Value {
        let response = self.get(path).await;
        assert_eq!(response.status(), 200, "GET {path}");
        response.json().await.unwrap()
    }

    /// POST a JSON body to the API with the token.
    pub async fn post_json(&self, path: &str, body: &Value) -> (u16, Value) {
        self.send_json(reqwest::Method::POST, path, body).await
    }

    pub async fn put_json(&self, path: &str, body: &Value) -> (u16, Value) {
        self.send_json(reqwest::Method::PUT, path, body).await
    }

    /// A JSON request with the API token: the status and the JSON answer
    /// (null when there is none).
    pub async fn send_json(
        &self,
        method: reqwest::Method,
        path: &str,
        body: &Value,
    ) -> (u16, Value) {
        let response = self
            .http
            .request(method, self.url(path))
            .bearer_auth(&self.api_token)
            .json(body)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    pub async fn api_delete(&self, path: &str) -> reqwest::Response {
        self.http
            .delete(self.url(path))
            .bearer_auth(&self.api_token)
            .send()
            .await
            .unwrap()
    }

    /// A form post from our own page: with the session and its CSRF token.
    pub async fn post_form(&self, path: &str, form: &[(&str, &str)]) -> reqwest::Response {
        let mut fields = form.to_vec();
        fields.push(("csrf_token", &self.csrf));
        self.http
            .post(self.url(path))
            .form(&fields)
            .send()
            .await
            .unwrap()
    }

    /// A POST as htmx sends it: the CSRF token in a header.
    pub async fn htmx_post(&self, path: &str) -> reqwest::Response {
        self.http
            .post(self.url(path))
            .header("HX-Request", "true")
            .header("X-CSRF-Token", &self.csrf)
            .send()
            .await
            .unwrap()
    }

    /// Starts a job worker in this process (the server alone only enqueues).
    pub fn start_worker(&self) -> exapp_janitor::jobs::WorkerHandle {
        exapp_janitor::jobs::Worker::new(self.app.clone()).spawn()
    }

    /// Starts the scheduler in this process.
    pub fn start_scheduler(&self) -> tokio::task::JoinHandle<()> {
        exapp_janitor::scheduler::spawn(self.app.clone())
    }

    /// Starts watching every daemon (events, reconnects, cleanup on update).
    pub fn start_watch(&self, settle: Duration) -> tokio::task::JoinHandle<()> {
        exapp_janitor::watch::spawn(
            self.app.clone(),
            exapp_janitor::watch::WatchConfig {
                settle,
                rescan_interval: Duration::from_secs(600),
                harp_poll: HARP_POLL,
            },
        )
    }

    pub async fn patch_settings(&self, body: &Value) -> (u16, Value) {
        self.send_json(reqwest::Method::PATCH, "/api/v1/settings", body)
            .await
    }

    /// Polls a run until it has finished (or panics after `limit`).
    pub async fn wait_for_run(&self, run_id: i64, limit: Duration) -> Value {
        let started = std::time::Instant::now();
        loop {
            let run = self
                .get_json(&format!("/api/v1/cleanup/runs/{run_id}"))
                .await;
            if run["status"] == "finished" {
                return run;
            }
            assert!(
                started.elapsed() < limit,
                "run {run_id} did not finish within {limit:?}: {run}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    pub async fn daemon_names(&self) -> Vec<String> {
        self.app
            .store
            .list_daemons()
            .await
            .unwrap()
            .into_iter()
            .map(|d| d.name.to_string())
            .collect()
    }
}

/// The `exapp-janitor` binary with a data dir, outside any Docker setting of
/// the host.
pub fn cli(data_dir: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_exapp-janitor"));
    command
        .arg("--data-dir")
        .arg(data_dir)
        .env("EXAPP_JANITOR_DAEMON_TIMEOUT_SECS", "2")
        .env_remove("DOCKER_HOST")
        .env_remove("EXAPP_JANITOR_DATA_DIR");
    command
}

pub fn run(command: &mut Command) -> Output {
    command.output().expect("run exapp-janitor")
}

pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// A TCP port that accepts connections and never answers: a hung daemon.
pub fn black_hole() -> (TcpListener, String) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("tcp://{}", listener.local_addr().unwrap());
    (listener, url)
}

/// An app with two daemons: "steady" on engine A and "spare" on engine C,
/// which the fault tests stop and restart; with a fixture builder for each.
pub async fn steady_and_spare() -> (TestApp, fixtures::Fixtures, fixtures::Fixtures) {
    let app =
        spawn_app_with_daemons(&[("steady", engine_a_sock()), ("spare", SpareEngine::sock())])
            .await;
    let steady = fixtures::Fixtures::new(&engine_a_sock());
    let spare = fixtures::Fixtures::new(&SpareEngine::sock());
    (app, steady, spare)
}

/// `spawn_app` with these daemons (name, endpoint) added through the API.
pub async fn spawn_app_with_daemons(daemons: &[(&str, String)]) -> TestApp {
    let app = spawn_app().await;
    for (name, endpoint) in daemons {
        add_daemon(&app, name, endpoint).await;
    }
    app
}

/// The job of `run` whose image carries the reference `tag`.
pub fn job_for<'a>(run: &'a Value, tag: &str) -> &'a Value {
    run["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|j| j["image_refs"].as_array().unwrap().iter().any(|r| r == tag))
        .unwrap_or_else(|| panic!("no job for {tag}: {run}"))
}

/// The jobs of a finished run, checked to be exactly the jobs queued, each once.
pub fn jobs_exactly<'a>(run: &'a Value, queued: &[String]) -> &'a Vec<Value> {
    let jobs = run["jobs"].as_array().unwrap();
    let ids: Vec<&str> = jobs
        .iter()
        .map(|j| j["image_id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        queued.iter().map(String::as_str).collect::<Vec<_>>(),
        "the same jobs, each once"
    );
    jobs
}

/// An ExApp on `engine`: a running container on `current`, and `outdated`
/// earlier versions of the same repository. Returns (current tag, outdated tags).
pub fn exapp(fx: &fixtures::Fixtures, name: &str, outdated: usize) -> (String, Vec<String>) {
    let base = fx.unique("busybox:1");
    fx.busybox(&base);
    let repo = format!("ghcr.io/{}/{name}", fx.unique("nc"));
    let old: Vec<String> = (0..outdated).map(|i| format!("{repo}:0.{i}.0")).collect();
    for (i, tag) in old.iter().enumerate() {
        fx.build(tag, &base, 1000 + i);
    }
    let current = format!("{repo}:1.0.0");
    fx.build(&current, &base, 2000);
    fx.run(
        &format!("nc_app_{}", fx.unique(name).replace('-', "_")),
        &current,
    );
    (current, old)
}

/// The app ID of the ExApp `exapp(fx, name, …)` made: runs limited to it
/// (`"owner"`) touch only this test's images.
pub fn appid(fx: &fixtures::Fixtures, name: &str) -> String {
    fx.unique(name).replace('-', "_")
}

/// The test hook of `Janitor::removal_hold`: a job stops right before its first
/// removal call until the test lets it go.
pub struct RemovalHold {
    dir: tempfile::TempDir,
}

impl RemovalHold {
    pub fn new() -> Self {
        Self {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    pub fn path(&self) -> std::path::PathBuf {
        self.dir.path().to_owned()
    }

    /// Waits until job `job_id` has been re-checked and holds before removing.
    pub async fn reached(&self, job_id: i64) {
        let ready = self.dir.path().join(format!("{job_id}.ready"));
        let started = std::time::Instant::now();
        while !ready.exists() {
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "job {job_id} never reached its removal"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Lets job `job_id` go on to its removal calls.
    pub fn release(&self, job_id: i64) {
        std::fs::write(self.dir.path().join(format!("{job_id}.go")), b"").unwrap();
    }
}

impl Default for RemovalHold {
    fn default() -> Self {
        Self::new()
    }
}

/// Waits until the wall clock's second changes, so the next image built has
/// a later `Created` than the last one (Docker keeps whole seconds).
pub fn next_second() {
    let now = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
    };
    let start = now();
    while now() == start {
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The image IDs the preview page's confirm form posts.
pub fn confirmed_images_in(page: &str) -> Vec<String> {
    let marker = r#"name="images" value=""#;
    page.match_indices(marker)
        .map(|(at, _)| {
            page[at + marker.len()..]
                .split('"')
                .next()
                .unwrap()
                .to_owned()
        })
        .collect()
}

/// Adds a daemon through the API; it must be accepted.
pub async fn add_daemon(app: &TestApp, name: &str, endpoint: &str) {
    let (status, body) = app
        .post_json(
            "/api/v1/daemons",
            &serde_json::json!({"name": name, "endpoint": endpoint}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
}

/// Waits (up to 30 s of real time) until at least `n` tasks wait on the
/// manual `clock`: the task a test drives has made its decision and waits for
/// time to pass, so an advance from here on is one it sees.
pub async fn until_asleep(clock: &Clock, n: usize) {
    let started = std::time::Instant::now();
    while clock.sleepers() < n {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "{} of {n} tasks wait on the clock",
            clock.sleepers()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Moves a manual clock up to the system time, for a test whose daemon
/// stamps something it reads (a container's start) with the real time.
pub fn catch_up(clock: &Clock) {
    let behind = now_ms() - clock.now_ms();
    if behind > 0 {
        clock.advance(Duration::from_millis(behind as u64));
    }
}

/// Unix milliseconds of the system time (the clock of a server not on a
/// manual one), as the job queue counts time.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// Waits until `condition` holds, checking every 100 ms; panics after `limit`.
pub async fn wait_until<F, Fut>(limit: Duration, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + limit;
    while !condition().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the condition did not hold within {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The image object tagged `reference` in an array of image objects.
pub fn tagged<'a>(images: &'a Value, reference: &str) -> Option<&'a Value> {
    images.as_array().unwrap().iter().find(|i| {
        i["repo_tags"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t == reference)
    })
}

/// The image object of `reference` in `GET /api/v1/images`.
pub async fn image(app: &TestApp, reference: &str) -> Value {
    let images = app.get_json("/api/v1/images?limit=5000").await;
    tagged(&images, reference)
        .cloned()
        .unwrap_or_else(|| panic!("no image {reference}: {images}"))
}
