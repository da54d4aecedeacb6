//! The container image and compose.yaml, tested as admins use them.
//!
//! The image is built from the Dockerfile on engine A with the classic
//! builder. No registry can be reached, so its build stage (which pulls the
//! Rust image and compiles) is replaced by one that holds what that stage
//! makes — the static release binary of `packaging/build-static.sh`, the
//! CA certificates and the empty data dir — and the image stage is taken
//! from the Dockerfile as it is. Containers then run on engine A with
//! engine B's socket as their Docker socket, a named volume as `/data`,
//! `--read-only`, as the image's user with the socket's group added, on the
//! host network at a free loopback port.

mod common;

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;
use std::time::Duration;

use common::fixtures::Fixtures;
use common::packaging::{is_static_elf, mb, repo, scratch_dir, static_binary, version_of};
use common::*;
use serde_json::Value;

/// The goal of issue 19: an image a Nextcloud admin pulls without noticing.
const IMAGE_LIMIT_BYTES: u64 = 25_000_000;
/// A container's server starting, a healthcheck turning healthy, a cleanup
/// of one image on vfs: each well within this.
const LIMIT: Duration = Duration::from_secs(90);
/// The image stage's user (the Dockerfile's `USER`).
const IMAGE_UID: u32 = 10001;

/// Engine A builds and runs the images (Engine 20.10, the oldest we serve).
fn build_host() -> String {
    engine_a_sock()
}

/// The engine the janitor in the container looks after: engine B's socket
/// is mounted as the container's /var/run/docker.sock.
fn socket_path() -> String {
    engine_b_sock().trim_start_matches("unix://").to_owned()
}

/// The socket's group, which the container's user gets (`--group-add`).
fn socket_gid() -> u32 {
    std::fs::metadata(socket_path()).unwrap().gid()
}

fn docker_on(host: &str, args: &[&str]) -> Output {
    Command::new("docker")
        .arg("-H")
        .arg(host)
        .args(args)
        .env("DOCKER_BUILDKIT", "0")
        .env("DOCKER_CLI_HINTS", "false")
        .output()
        .expect("the docker CLI is installed")
}

/// The docker CLI on engine A; panics with its words on failure.
fn docker(args: &[&str]) -> String {
    let output = docker_on(&build_host(), args);
    assert!(
        output.status.success(),
        "docker {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

fn inspect(what: &str) -> Value {
    let json: Value = serde_json::from_str(&docker(&["inspect", what])).unwrap();
    json[0].clone()
}

/// The image stage of the Dockerfile: from its last `FROM` to the end.
fn image_stage() -> String {
    let dockerfile = std::fs::read_to_string(repo().join("Dockerfile")).unwrap();
    let lines: Vec<&str> = dockerfile.lines().collect();
    let from = lines
        .iter()
        .rposition(|l| l.starts_with("FROM "))
        .expect("the Dockerfile has stages");
    assert_eq!(
        lines[from], "FROM scratch",
        "the image stage starts from scratch"
    );
    lines[from..].join("\n") + "\n"
}

/// What the Dockerfile's build stage leaves for the image stage, made
/// here instead: /out/exapp-janitor, /out/state/data (0700), and the CA
/// certificates. An image stage that takes anything else fails to build.
const BUILD_STAGE: &str = "\
FROM scratch AS build
COPY out/ /out/
COPY ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
";

/// The image, built once per run of this binary (classic builder, as
/// Debian's Engine does without BuildKit) and removed when it ends.
struct Image {
    tag: String,
    /// Every image the build made: the classic builder keeps the stand-in
    /// build stage's result as an untagged image of its own.
    made: Vec<String>,
}

fn image() -> &'static Image {
    static IMAGE: OnceLock<Image> = OnceLock::new();
    IMAGE.get_or_init(|| {
        let context = scratch_dir("image-context");
        let out = context.path().join("out");
        std::fs::create_dir_all(out.join("state/data")).unwrap();
        std::fs::set_permissions(
            out.join("state/data"),
            std::os::unix::fs::PermissionsExt::from_mode(0o700),
        )
        .unwrap();
        std::fs::copy(static_binary(), out.join("exapp-janitor")).unwrap();
        std::fs::copy(
            "/etc/ssl/certs/ca-certificates.crt",
            context.path().join("ca-certificates.crt"),
        )
        .expect("ca-certificates is installed");
        std::fs::write(
            context.path().join("Dockerfile"),
            format!("{BUILD_STAGE}\n{}", image_stage()),
        )
        .unwrap();
        let tag = format!("exapp-janitor-test:{}", std::process::id());
        let log = docker(&["build", "-t", &tag, &context.path().to_string_lossy()]);
        let made = log
            .lines()
            .filter_map(|l| l.trim().strip_prefix("---> "))
            .filter(|id| id.len() == 12 && id.bytes().all(|b| b.is_ascii_hexdigit()))
            .map(str::to_owned)
            .collect();
        // The test binary's last act: the images go with it.
        extern "C" fn remove_images() {
            if let Some(image) = IMAGE.get() {
                let _ = docker_on(&build_host(), &["rmi", &image.tag]);
                for id in image.made.iter().rev() {
                    let _ = docker_on(&build_host(), &["rmi", id]);
                }
            }
        }
        // SAFETY: registers a plain function to run at exit; nothing else.
        unsafe { libc::atexit(remove_images) };
        Image { tag, made }
    })
}

/// A free TCP port on loopback (for the container on the host network).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A janitor container, run as the README says; removed with its volume
/// when dropped.
struct Container {
    name: String,
    volume: String,
    address: String,
}

/// Names unique to this test process and call.
fn unique(what: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    format!("ej-{what}-{}x{n}", std::process::id())
}

impl Container {
    /// `docker run` of the image: engine B's socket as the Docker socket, a
    /// new named volume as /data, a read-only root, the image's user with
    /// the socket's group, the host network on a free loopback port.
    fn run(extra: &[&str]) -> Self {
        let name = unique("janitor");
        let volume = unique("data");
        let port = free_port();
        let listen = format!("EXAPP_JANITOR_LISTEN=127.0.0.1:{port}");
        let gid = socket_gid().to_string();
        let socket = format!("{}:/var/run/docker.sock", socket_path());
        let data = format!("{volume}:/data");
        let mut args = vec![
            "run",
            "-d",
            "--name",
            &name,
            "--read-only",
            "--network",
            "host",
            "--group-add",
            &gid,
            "-v",
            &socket,
            "-v",
            &data,
            "-e",
            &listen,
            "--stop-timeout",
            "10",
        ];
        args.extend(extra);
        args.push(&image().tag);
        docker(&args);
        Self {
            name,
            volume,
            address: format!("http://127.0.0.1:{port}"),
        }
    }

    /// What the janitor wrote so far (its log is on stderr).
    fn logs(&self) -> String {
        let output = docker_on(&build_host(), &["logs", &self.name]);
        format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )
    }

    /// Waits until the server answers its health check.
    async fn until_serving(&self) {
        let url = format!("{}/api/v1/health", self.address);
        let client = reqwest::Client::new();
        let deadline = std::time::Instant::now() + LIMIT;
        loop {
            if let Ok(r) = client.get(&url).send().await {
                if r.status() == 200 {
                    return;
                }
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the janitor in {} did not answer {url} within {LIMIT:?}; its log:\n{}",
                self.name,
                self.logs()
            );
            tokio::time::sleep(POLL).await;
        }
    }

    /// Every admin password the log shows (one per generation).
    fn passwords(&self) -> Vec<String> {
        passwords_in(&self.logs())
    }

    /// Logged in with the password the first start printed.
    async fn log_in(&self) -> Browser {
        self.until_serving().await;
        let passwords = self.passwords();
        assert_eq!(
            passwords.len(),
            1,
            "one generated password: {}",
            self.logs()
        );
        Browser::log_in(&self.address, &passwords[0]).await
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        let _ = docker_on(&build_host(), &["rm", "-f", "-v", &self.name]);
        let _ = docker_on(&build_host(), &["volume", "rm", &self.volume]);
    }
}

/// The generated passwords in a log: the last word of each such line.
fn passwords_in(log: &str) -> Vec<String> {
    log.lines()
        .filter(|l| l.contains("generated the admin password"))
        .map(|l| l.split_whitespace().last().unwrap().to_owned())
        .collect()
}

/// A browser session on the janitor: its cookie and CSRF token.
struct Browser {
    address: String,
    http: reqwest::Client,
    csrf: String,
}

impl Browser {
    async fn log_in(address: &str, password: &str) -> Self {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .cookie_store(true)
            .pool_max_idle_per_host(0)
            .timeout(Duration::from_secs(60))
            .build()
            .unwrap();
        let response = http
            .post(format!("{address}/login"))
            .form(&[("password", password), ("next", "/")])
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 303, "logged in with {password:?}");
        let mut browser = Self {
            address: address.to_owned(),
            http,
            csrf: String::new(),
        };
        let (status, page) = browser.get("/settings").await;
        assert_eq!(status, 200);
        browser.csrf = csrf_token_in(&page).expect("a CSRF token on the page");
        browser
    }

    async fn get(&self, path: &str) -> (u16, String) {
        let response = self
            .http
            .get(format!("{}{path}", self.address))
            .send()
            .await
            .unwrap();
        (response.status().as_u16(), response.text().await.unwrap())
    }

    /// A form post from the janitor's own page (with the CSRF token).
    async fn post_form(&self, path: &str, form: &[(&str, &str)]) -> reqwest::Response {
        let mut fields = form.to_vec();
        fields.push(("csrf_token", &self.csrf));
        self.http
            .post(format!("{}{path}", self.address))
            .form(&fields)
            .send()
            .await
            .unwrap()
    }

    /// A button that htmx posts (the CSRF token in a header).
    async fn htmx_post(&self, path: &str) -> u16 {
        self.http
            .post(format!("{}{path}", self.address))
            .header("HX-Request", "true")
            .header("X-CSRF-Token", &self.csrf)
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    }
}

#[tokio::test]
async fn the_image_holds_one_static_binary_and_stays_under_25_mb() {
    let image = off_runtime(image).await;
    let binary = static_binary();
    let binary_bytes = std::fs::metadata(binary).unwrap().len();
    let image_bytes = inspect(&image.tag)["Size"].as_u64().unwrap();
    // The figures the README gives.
    println!(
        "image {}: {} ({image_bytes} bytes); static binary: {} ({binary_bytes} bytes)",
        image.tag,
        mb(image_bytes),
        mb(binary_bytes)
    );
    assert!(is_static_elf(binary), "{} is not static", binary.display());
    assert!(
        image_bytes < IMAGE_LIMIT_BYTES,
        "the image is {}, over {}",
        mb(image_bytes),
        mb(IMAGE_LIMIT_BYTES)
    );
    let version = docker(&["run", "--rm", "--network", "none", &image.tag, "--version"]);
    assert_eq!(version, version_of(binary));
}

#[tokio::test]
async fn the_image_runs_serve_as_an_unprivileged_user_with_data_as_volume_on_port_8080() {
    let image = off_runtime(image).await;
    let config = &inspect(&image.tag)["Config"];
    assert_eq!(config["User"], format!("{IMAGE_UID}:{IMAGE_UID}"));
    assert_eq!(
        config["Entrypoint"],
        serde_json::json!(["/usr/local/bin/exapp-janitor"])
    );
    assert_eq!(config["Cmd"], serde_json::json!(["serve"]));
    assert!(config["Volumes"]["/data"].is_object(), "{config}");
    assert!(config["ExposedPorts"]["8080/tcp"].is_object(), "{config}");
    let env: Vec<&str> = config["Env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e.as_str().unwrap())
        .collect();
    for expected in [
        "EXAPP_JANITOR_DATA_DIR=/data",
        "EXAPP_JANITOR_LISTEN=0.0.0.0:8080",
    ] {
        assert!(env.contains(&expected), "{expected} in {env:?}");
    }
    assert_eq!(
        config["Healthcheck"]["Test"],
        serde_json::json!(["CMD", "/usr/local/bin/exapp-janitor", "health"])
    );
}

#[tokio::test]
async fn the_image_is_labelled_with_its_source_version_and_licence() {
    let image = off_runtime(image).await;
    let labels = &inspect(&image.tag)["Config"]["Labels"];
    assert_eq!(
        labels["org.opencontainers.image.source"],
        env!("CARGO_PKG_REPOSITORY")
    );
    assert_eq!(
        labels["org.opencontainers.image.version"],
        env!("CARGO_PKG_VERSION")
    );
    assert_eq!(
        labels["org.opencontainers.image.licenses"],
        env!("CARGO_PKG_LICENSE")
    );
}

#[tokio::test]
async fn the_first_password_is_in_docker_logs_and_logs_in() {
    off_runtime(image).await;
    let container = off_runtime(|| Container::run(&[])).await;
    let browser = container.log_in().await;
    let (status, overview) = browser.get("/").await;
    assert_eq!(status, 200);
    assert!(
        overview.contains("local"),
        "the socket's engine: {overview}"
    );
}

#[tokio::test]
async fn the_janitor_runs_as_the_image_user_with_the_socket_group_on_a_read_only_root() {
    off_runtime(image).await;
    let container = off_runtime(|| Container::run(&[])).await;
    container.until_serving().await;
    let state = inspect(&container.name);
    assert_eq!(state["HostConfig"]["ReadonlyRootfs"], true);
    let pid = state["State"]["Pid"].as_u64().unwrap();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .unwrap_or_else(|| panic!("{name} in {status}"))
            .split_whitespace()
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };
    assert!(field("Uid:").iter().all(|id| *id == IMAGE_UID.to_string()));
    assert!(field("Gid:").iter().all(|id| *id == IMAGE_UID.to_string()));
    assert!(field("Groups:").contains(&socket_gid().to_string()));
}

#[tokio::test]
async fn the_janitor_in_the_container_resolves_host_names() {
    // A static glibc has its NSS "files" and "dns" built in; what it cannot
    // load (other modules) it does without: a daemon by name still answers.
    off_runtime(image).await;
    let token = "container-test-token-0123456789abcdefghij";
    let env = format!("EXAPP_JANITOR_API_TOKEN={token}");
    let container = off_runtime(move || Container::run(&["-e", &env])).await;
    container.until_serving().await;
    let port = engine_a_tcp().rsplit(':').next().unwrap().to_owned();
    let answer = reqwest::Client::new()
        .post(format!("{}/api/v1/daemons", container.address))
        .bearer_auth(token)
        .json(
            &serde_json::json!({"name": "by-name", "endpoint": format!("tcp://localhost:{port}")}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 201);
    let daemon: Value = answer.json().await.unwrap();
    assert_eq!(daemon["reachable"], true, "{daemon}");
}

#[tokio::test]
async fn a_cleanup_through_the_container_removes_the_outdated_image_from_the_socket_engine() {
    off_runtime(image).await;
    let exapp = off_runtime(|| ExApp::new("packaged")).await;
    let (current, old, owner, fx) = (&exapp.current, &exapp.old, &exapp.owner, &exapp.fx);
    let container = off_runtime(|| Container::run(&[])).await;
    let browser = container.log_in().await;
    assert_eq!(browser.htmx_post("/scan").await, 200, "Rescan");
    let (status, preview) = browser
        .get(&format!("/cleanup?owner={owner}&min_age_hours=0"))
        .await;
    assert_eq!(status, 200, "{preview}");
    let images = confirmed_images_in(&preview);
    assert!(
        images.len() == 1 && preview.contains(&old[0]),
        "the outdated image alone: {preview}"
    );
    let mut form = vec![("owner", owner.as_str()), ("min_age_hours", "0")];
    form.extend(images.iter().map(|id| ("images", id.as_str())));
    let response = browser.post_form("/cleanup/runs", &form).await;
    assert_eq!(response.status(), 303, "the run starts");
    eventually(LIMIT, "the outdated image is removed", async || {
        let fx = Fixtures::new(&engine_b_sock());
        let id = images[0].clone();
        !off_runtime(move || fx.has_id(&id)).await
    })
    .await;
    assert!(!fx.has(&old[0]), "{} is gone", old[0]);
    assert!(fx.has(current), "the current image stays");
}

/// An ExApp on engine B (`common::exapp`: its container runs the current
/// image, one outdated image beside it), removed with its images when dropped.
struct ExApp {
    fx: Fixtures,
    current: String,
    old: Vec<String>,
    owner: String,
}

impl ExApp {
    fn new(name: &str) -> Self {
        let fx = Fixtures::new(&engine_b_sock());
        let (current, old) = exapp(&fx, name, 1);
        let owner = appid(&fx, name);
        Self {
            fx,
            current,
            old,
            owner,
        }
    }
}

impl Drop for ExApp {
    fn drop(&mut self) {
        let host = engine_b_sock();
        let container = format!("nc_app_{}", self.owner);
        let _ = docker_on(&host, &["rm", "-f", &container]);
        let base = self.fx.unique("busybox:1");
        let mut images = vec![self.current.as_str(), base.as_str()];
        images.extend(self.old.iter().map(String::as_str));
        for image in images {
            let _ = docker_on(&host, &["rmi", image]);
        }
    }
}

#[tokio::test]
async fn a_restarted_container_finds_its_data_in_the_volume() {
    off_runtime(image).await;
    let container = off_runtime(|| Container::run(&[])).await;
    let before = container.log_in().await;
    let (status, _) = before.get("/").await;
    assert_eq!(status, 200);
    let name = container.name.clone();
    off_runtime(move || docker(&["restart", &name])).await;
    container.until_serving().await;
    // No new password: the database, with the first one's hash, is still there.
    assert_eq!(container.passwords().len(), 1, "{}", container.logs());
    let after = container.log_in().await;
    let (status, _) = after.get("/").await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn the_healthcheck_turns_healthy() {
    off_runtime(image).await;
    // The image checks every 30 s; the test does not wait that long.
    let container = off_runtime(|| Container::run(&["--health-interval", "1s"])).await;
    eventually(LIMIT, "the container is healthy", async || {
        let name = container.name.clone();
        let health =
            off_runtime(move || docker(&["inspect", "-f", "{{.State.Health.Status}}", &name]))
                .await;
        assert_ne!(health, "unhealthy", "{}", container.logs());
        health == "healthy"
    })
    .await;
    let health = inspect(&container.name)["State"]["Health"].clone();
    let last = health["Log"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["ExitCode"], 0, "{last}");
}

// ---- compose.yaml ----------------------------------------------------------

/// Debian's docker-compose (1.29), as an admin on Debian 12 runs it, on
/// engine A, with the settings compose.yaml reads from the environment.
fn compose(file: &Path, project: &str, env: &[(&str, &str)], args: &[&str]) -> Output {
    let mut command = Command::new("docker-compose");
    command
        .arg("-f")
        .arg(file)
        .args(["-p", project])
        .args(args)
        .env("DOCKER_HOST", build_host())
        .env_remove("DOCKER_GID")
        .env_remove("DOCKER_SOCKET")
        .env_remove("EXAPP_JANITOR_IMAGE")
        .env_remove("EXAPP_JANITOR_PUBLISH")
        .envs(env.iter().copied());
    command.output().expect(
        "docker-compose is installed (Debian's docker-compose; tests/harness/engines.sh install)",
    )
}

fn compose_yaml() -> std::path::PathBuf {
    repo().join("compose.yaml")
}

/// compose.yaml with its `#AIO ` lines uncommented, as its header says.
fn aio_compose_yaml(dir: &Path) -> std::path::PathBuf {
    let text = std::fs::read_to_string(compose_yaml()).unwrap();
    assert!(text.contains("#AIO "), "compose.yaml has AIO lines");
    let path = dir.join("compose.yaml");
    std::fs::write(&path, text.replace("#AIO ", "")).unwrap();
    path
}

/// The configuration `docker-compose config` resolved (its normalised YAML).
fn resolved(output: &Output) -> String {
    assert!(
        output.status.success(),
        "docker-compose config: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn compose_file_is_valid_for_a_plain_docker_host() {
    let gid = socket_gid().to_string();
    let output = compose(
        &compose_yaml(),
        "ej-config",
        &[("DOCKER_GID", &gid)],
        &["config"],
    );
    let text = resolved(&output);
    for expected in [
        "read_only: true".to_owned(),
        format!("- '{gid}'"),
        "/var/run/docker.sock:/var/run/docker.sock".to_owned(),
        "data:/data".to_owned(),
        "127.0.0.1:8080:8080/tcp".to_owned(),
    ] {
        assert!(text.contains(&expected), "{expected} in:\n{text}");
    }
    assert!(!text.contains("nextcloud-aio"), "{text}");
}

#[test]
fn compose_file_refuses_to_start_without_the_socket_group() {
    let output = compose(&compose_yaml(), "ej-config", &[], &["config"]);
    assert!(!output.status.success());
    let said = String::from_utf8_lossy(&output.stderr);
    assert!(
        said.contains("set DOCKER_GID to the group of the Docker socket"),
        "{said}"
    );
}

#[test]
fn compose_file_is_valid_for_nextcloud_aio_once_its_lines_are_uncommented() {
    let dir = scratch_dir("compose-aio");
    let file = aio_compose_yaml(dir.path());
    let output = compose(&file, "ej-config", &[("DOCKER_GID", "999")], &["config"]);
    let text = resolved(&output);
    for expected in [
        "nextcloud-aio:\n    external: true",
        "EXAPP_JANITOR_PUBLIC_URL: https://janitor.example.org",
        "/var/run/docker.sock:/var/run/docker.sock",
    ] {
        assert!(text.contains(expected), "{expected} in:\n{text}");
    }
}

#[tokio::test]
async fn compose_up_runs_the_janitor_on_the_socket() {
    let image = off_runtime(image).await;
    let project = unique("compose").replace('-', "");
    let port = free_port();
    let gid = socket_gid().to_string();
    let publish = format!("127.0.0.1:{port}");
    let socket = socket_path();
    let env = [
        ("DOCKER_GID", gid.as_str()),
        ("DOCKER_SOCKET", socket.as_str()),
        ("EXAPP_JANITOR_IMAGE", image.tag.as_str()),
        ("EXAPP_JANITOR_PUBLISH", publish.as_str()),
    ];
    struct Down<'a>(&'a str, &'a [(&'a str, &'a str)]);
    impl Drop for Down<'_> {
        fn drop(&mut self) {
            let output = compose(&compose_yaml(), self.0, self.1, &["down", "-v"]);
            if !output.status.success() {
                eprintln!(
                    "docker-compose down: {}",
                    String::from_utf8_lossy(&output.stderr)
                );
            }
        }
    }
    let up = compose(&compose_yaml(), &project, &env, &["up", "-d", "--no-build"]);
    let _down = Down(&project, &env);
    assert!(
        up.status.success(),
        "docker-compose up: {}",
        String::from_utf8_lossy(&up.stderr)
    );
    let logs = || {
        let output = compose(&compose_yaml(), &project, &env, &["logs", "--no-color"]);
        String::from_utf8_lossy(&output.stdout).into_owned()
    };
    let address = format!("http://{publish}");
    eventually(
        LIMIT,
        "the janitor answers at the published port",
        async || match reqwest::get(format!("{address}/api/v1/health")).await {
            Ok(r) => r.status() == 200,
            Err(_) => false,
        },
    )
    .await;
    eventually(LIMIT, "the first password in the log", async || {
        !passwords_in(&logs()).is_empty()
    })
    .await;
    let password = passwords_in(&logs())[0].clone();
    let browser = Browser::log_in(&address, &password).await;
    let (status, daemons) = browser.get("/daemons").await;
    assert_eq!(status, 200);
    assert!(
        daemons.contains("unix:///var/run/docker.sock"),
        "the socket was added as the local daemon: {daemons}"
    );
}
