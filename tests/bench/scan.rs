//! Scan benchmark (not a test): scans one daemon holding 1,000 images and
//! 100 containers, cold (empty store, so one inspect and one history call per
//! image) and warm (the same store again), and in the same run times
//! `docker system df -v` against the same daemon. Goal: a warm rescan takes
//! less than half of `docker system df -v`.
//!
//! ```sh
//! EXAPP_JANITOR_BENCH_ENGINE=unix:///tmp/engines/a/docker.sock \
//!     SQLX_OFFLINE=true cargo bench --bench scan
//! ```
//!
//! `tests/harness/bench.sh` starts isolated engines and runs this against
//! each. The fixture (`tests/harness/bench_fixture.py`: one `docker load`
//! plus 100 `docker create`) is built on the engine when missing and left
//! there, so a second run measures at once. Optional:
//! `EXAPP_JANITOR_BENCH_RUNS` (warm rescans and `df -v` runs, default 10),
//! `EXAPP_JANITOR_BENCH_COLD_RUNS` (cold scans, each on a fresh store, default 3).

use std::collections::{HashMap, HashSet};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use exapp_janitor::daemons;
use exapp_janitor::domain::NewDaemonInput;
use exapp_janitor::scan::{self, ClientCache, DaemonScan, ScanOptions};
use exapp_janitor::store::{Store, StoredDaemon};
use serde::Deserialize;

const ENGINE_VAR: &str = "EXAPP_JANITOR_BENCH_ENGINE";

fn fail(message: impl std::fmt::Display) -> ! {
    eprintln!("scan bench: error: {message}");
    std::process::exit(1);
}

fn env_count(name: &str, default: usize) -> usize {
    match std::env::var(name) {
        Ok(v) => v
            .parse()
            .ok()
            .filter(|n| *n > 0)
            .unwrap_or_else(|| fail(format!("{name} must be a positive number, not {v:?}"))),
        Err(_) => default,
    }
}

fn main() {
    // `cargo bench` passes --bench; `cargo test --all-targets` only checks that it runs.
    if !std::env::args().any(|a| a == "--bench") {
        println!("scan benchmark: run it with `cargo bench --bench scan` (tests/harness/bench.sh)");
        return;
    }
    let engine = match std::env::var(ENGINE_VAR) {
        Ok(e) if e.starts_with("unix:///") => e,
        Ok(e) => fail(format!(
            "{ENGINE_VAR}={e:?} is not a unix:///…/docker.sock URL"
        )),
        Err(_) => fail(format!(
            "{ENGINE_VAR} is not set. It names the Docker Engine to benchmark, as a \
             unix:///…/docker.sock URL; tests/harness/bench.sh starts isolated engines and \
             sets it. Never point it at a daemon you care about: the benchmark loads 1,000 \
             images and creates 100 containers there."
        )),
    };
    let runs = env_count("EXAPP_JANITOR_BENCH_RUNS", 10);
    let cold_runs = env_count("EXAPP_JANITOR_BENCH_COLD_RUNS", 3);

    let docker = DockerCli {
        host: engine.clone(),
    };
    let version = docker.run(&[
        "version",
        "-f",
        "{{.Server.Version}} (API {{.Server.APIVersion}})",
    ]);
    println!("scan benchmark against {engine}");
    println!("engine: {}", version.trim());
    ensure_fixture(&docker);
    let containers = docker.run(&["ps", "-aq"]).lines().count();

    let runtime = tokio::runtime::Runtime::new().unwrap_or_else(|e| fail(e));
    runtime.block_on(bench(&docker, containers, runs, cold_runs));
}

// ---------------------------------------------------------------------------
// The fixture

#[derive(Debug, Deserialize)]
struct Plan {
    label: String,
    label_value: String,
    images: Vec<String>,
    containers: Vec<PlannedContainer>,
}

#[derive(Debug, Deserialize)]
struct PlannedContainer {
    name: String,
    image: String,
}

fn fixture_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/harness/bench_fixture.py")
}

fn python(args: &[&str]) -> Plan {
    let output = Command::new("python3")
        .arg(fixture_script())
        .args(args)
        .stderr(Stdio::inherit())
        .output()
        .unwrap_or_else(|e| fail(format!("cannot run python3: {e}")));
    if !output.status.success() {
        fail(format!("bench_fixture.py {args:?} failed"));
    }
    serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|e| fail(format!("bench_fixture.py printed no plan: {e}")))
}

/// Loads the images and creates the containers the plan names, unless the
/// engine has them already (images are recognised by the fixture's label).
fn ensure_fixture(docker: &DockerCli) {
    let plan = python(&["plan"]);
    let filter = format!("label={}={}", plan.label, plan.label_value);
    let loaded = || -> HashSet<String> {
        docker
            .run(&[
                "images",
                "--filter",
                &filter,
                "--format",
                "{{.Repository}}:{{.Tag}}",
            ])
            .lines()
            .map(str::to_owned)
            .collect()
    };
    let present = loaded();
    let missing = plan.images.iter().filter(|r| !present.contains(*r)).count();
    if missing > 0 {
        println!(
            "fixture: {missing} of {} images missing; writing and loading the archive",
            plan.images.len()
        );
        let dir = tempfile::tempdir().unwrap_or_else(|e| fail(e));
        let archive = dir.path().join("bench-images.tar");
        let started = Instant::now();
        python(&["write", &archive.to_string_lossy()]);
        docker.run(&["load", "-q", "-i", &archive.to_string_lossy()]);
        println!(
            "fixture: loaded in {:.1} s",
            started.elapsed().as_secs_f64()
        );
        let now = loaded();
        if let Some(r) = plan.images.iter().find(|r| !now.contains(*r)) {
            fail(format!("{r} is still missing after docker load"));
        }
    }

    let existing: HashMap<String, String> = docker
        .run(&["ps", "-a", "--format", "{{.Names}}\t{{.Image}}"])
        .lines()
        .filter_map(|l| l.split_once('\t'))
        .map(|(n, i)| (n.to_owned(), i.to_owned()))
        .collect();
    let started = Instant::now();
    let mut created = 0;
    for c in &plan.containers {
        match existing.get(&c.name) {
            Some(image) if *image == c.image => {}
            Some(image) => fail(format!(
                "container {} exists with image {image}, not {}; use a fresh engine",
                c.name, c.image
            )),
            None => {
                docker.run(&[
                    "create",
                    "--network",
                    "none",
                    "--name",
                    &c.name,
                    &c.image,
                    "sleep",
                    "1",
                ]);
                created += 1;
            }
        }
    }
    if created > 0 {
        println!(
            "fixture: created {created} containers in {:.1} s",
            started.elapsed().as_secs_f64()
        );
    }
}

struct DockerCli {
    host: String,
}

impl DockerCli {
    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new("docker");
        command
            .arg("-H")
            .arg(&self.host)
            .args(args)
            .env("DOCKER_CLI_HINTS", "false")
            .stdin(Stdio::null());
        command
    }

    /// Runs the docker CLI; its stdout, or the end of the benchmark.
    fn run(&self, args: &[&str]) -> String {
        let output = self
            .command(args)
            .output()
            .unwrap_or_else(|e| fail(format!("cannot run the docker CLI: {e}")));
        if !output.status.success() {
            fail(format!(
                "docker {}: {}",
                args.join(" "),
                String::from_utf8_lossy(&output.stderr).trim()
            ));
        }
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// `docker system df -v`, output discarded; how long it took.
    fn time_df(&self) -> Duration {
        let started = Instant::now();
        let status = self
            .command(&["system", "df", "-v"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .unwrap_or_else(|e| fail(format!("cannot run the docker CLI: {e}")));
        let elapsed = started.elapsed();
        if !status.success() {
            fail("docker system df -v failed");
        }
        elapsed
    }
}

/// `GET /system/df` straight on the socket (no CLI start, no formatting):
/// how much of `docker system df -v` is the Engine's own work.
fn time_raw_df(socket: &Path) -> Duration {
    let started = Instant::now();
    let mut stream = std::os::unix::net::UnixStream::connect(socket)
        .unwrap_or_else(|e| fail(format!("cannot connect to {}: {e}", socket.display())));
    stream
        .write_all(b"GET /system/df HTTP/1.0\r\nHost: docker\r\n\r\n")
        .unwrap_or_else(|e| fail(e));
    let mut response = Vec::new();
    stream
        .read_to_end(&mut response)
        .unwrap_or_else(|e| fail(e));
    let elapsed = started.elapsed();
    if !response.starts_with(b"HTTP/1.0 200") && !response.starts_with(b"HTTP/1.1 200") {
        fail("GET /system/df did not answer 200");
    }
    elapsed
}

// ---------------------------------------------------------------------------
// Measuring

/// As the server scans: one client cache per store, so a cold scan connects
/// and negotiates and the warm rescans after it reuse the connection.
fn options(clients: &Arc<ClientCache>) -> ScanOptions {
    ScanOptions {
        call_timeout: Duration::from_secs(30),
        scan_timeout: Duration::from_secs(600),
        protected: vec![],
        clients: Some(clients.clone()),
    }
}

async fn fresh_store(engine: &str) -> (tempfile::TempDir, Store, StoredDaemon) {
    let dir = tempfile::tempdir().unwrap_or_else(|e| fail(e));
    let store = Store::open(dir.path()).await.unwrap_or_else(|e| fail(e));
    let daemon = daemons::add(
        &store,
        &NewDaemonInput {
            name: "bench".into(),
            endpoint: engine.to_owned(),
            ..Default::default()
        },
    )
    .await
    .unwrap_or_else(|e| fail(e));
    (dir, store, daemon)
}

async fn timed_scan(
    store: &Store,
    daemon: &StoredDaemon,
    clients: &Arc<ClientCache>,
) -> (Duration, DaemonScan) {
    let started = Instant::now();
    let result = scan::scan_daemon(store, daemon, &options(clients)).await;
    let elapsed = started.elapsed();
    match result {
        Ok(scan) => (elapsed, scan),
        Err(e) => fail(format!("the scan failed: {e}")),
    }
}

#[derive(Debug, Clone)]
struct Stats {
    median: f64,
    min: f64,
    max: f64,
    n: usize,
}

fn stats(samples: &[Duration]) -> Stats {
    let mut ms: Vec<f64> = samples.iter().map(|d| d.as_secs_f64() * 1000.0).collect();
    ms.sort_by(f64::total_cmp);
    let n = ms.len();
    let median = if n % 2 == 1 {
        ms[n / 2]
    } else {
        (ms[n / 2 - 1] + ms[n / 2]) / 2.0
    };
    Stats {
        median,
        min: ms[0],
        max: ms[n - 1],
        n,
    }
}

async fn bench(docker: &DockerCli, containers: usize, runs: usize, cold_runs: usize) {
    let engine = docker.host.as_str();
    let socket = PathBuf::from(engine.trim_start_matches("unix://"));

    // Cold: every scan on a fresh store, so every image's layers are fetched.
    let mut cold = Vec::new();
    let mut last = None;
    for _ in 0..cold_runs {
        if let Some((_, old_store, _, _, _)) = last.take() {
            let old_store: Store = old_store;
            old_store.close().await;
        }
        let (dir, store, daemon) = fresh_store(engine).await;
        let clients = Arc::new(ClientCache::default());
        let (elapsed, scan) = timed_scan(&store, &daemon, &clients).await;
        cold.push(elapsed);
        last = Some((dir, store, daemon, scan, clients));
    }
    // The warm rescans use the last cold run's store.
    let (_dir, store, daemon, cold_scan, clients) = last.expect("at least one cold run");
    let images = cold_scan.images.len();
    let mut by_status: std::collections::BTreeMap<&str, usize> = Default::default();
    for image in &cold_scan.images {
        *by_status.entry(image.status.as_str()).or_default() += 1;
    }
    let inventory_json = serde_json::to_string(&cold_scan).expect("an inventory serialises");

    // Warm rescans and `df -v`, interleaved so that load from other work on
    // the machine falls on both alike. One untimed `df -v` first.
    docker.time_df();
    let (mut warm, mut df, mut raw_df) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..runs {
        let (elapsed, scan) = timed_scan(&store, &daemon, &clients).await;
        if scan.images.len() != images {
            fail("a rescan saw another number of images");
        }
        warm.push(elapsed);
        df.push(docker.time_df());
        raw_df.push(time_raw_df(&socket));
    }
    let (cold, warm, df, raw_df) = (stats(&cold), stats(&warm), stats(&df), stats(&raw_df));

    println!();
    println!("images {images}, containers {containers} (scan of one daemon; times in ms)");
    let statuses: Vec<String> = by_status.iter().map(|(s, n)| format!("{s} {n}")).collect();
    println!("statuses: {}", statuses.join(", "));
    println!();
    println!(
        "{:<36} {:>9} {:>9} {:>9} {:>5}",
        "", "median", "min", "max", "runs"
    );
    let row = |name: &str, s: &Stats| {
        println!(
            "{name:<36} {:>9.1} {:>9.1} {:>9.1} {:>5}",
            s.median, s.min, s.max, s.n
        );
    };
    row("cold scan (empty store)", &cold);
    row("warm rescan", &warm);
    row("docker system df -v", &df);
    row("GET /system/df (socket, no CLI)", &raw_df);
    println!();
    println!("warm / df -v = {:.2} (medians)", warm.median / df.median);
    println!("cold / df -v = {:.2} (medians)", cold.median / df.median);
    println!(
        "warm / df -v = {:.2} (fastest of each: the least disturbed by other load)",
        warm.min / df.min
    );
    println!(
        "warm / GET /system/df = {:.2} (medians; the Engine's own work, without the CLI)",
        warm.median / raw_df.median
    );
    let met = warm.median < 0.5 * df.median;
    println!(
        "goal warm < 0.5 x df -v ({:.1} ms): {}",
        0.5 * df.median,
        if met { "MET" } else { "NOT MET" }
    );
    println!("stored inventory: {} bytes of JSON", inventory_json.len());

    store.close().await;
}
