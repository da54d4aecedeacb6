//! Scan benchmark (not a test), for issue #8. Two modes:
//!
//! * Part (`EXAPP_JANITOR_BENCH_PART=a` or `b`): the engine holds one half of
//!   the fixture (1,000 images, 100 containers; the other half goes to the
//!   other engine). Times a cold scan (empty store, so one inspect and one
//!   history call per image), a warm rescan (the same store again) and, in
//!   the same run, `docker system df -v` against the same daemon. Goal: a
//!   warm rescan takes less than half of `docker system df -v`.
//! * Scaling (`EXAPP_JANITOR_BENCH_SCALE=250,500,1000,2000`): on one engine,
//!   step by step, grows the fixture to the first N of its 2,000 images (a
//!   miniature of the whole at each step) and measures the same at each size.
//!   Prints how scan time grows with the number of images: the slope of
//!   log(time) over log(images), 1.0 being linear. Goal: linear or better.
//!
//! ```sh
//! EXAPP_JANITOR_BENCH_ENGINE=unix:///tmp/engines/a/docker.sock EXAPP_JANITOR_BENCH_PART=a \
//!     SQLX_OFFLINE=true cargo bench --bench scan
//! EXAPP_JANITOR_BENCH_ENGINE=unix:///tmp/engines/c/docker.sock \
//!     EXAPP_JANITOR_BENCH_SCALE=250,500,1000,2000 SQLX_OFFLINE=true cargo bench --bench scan
//! ```
//!
//! `tests/harness/bench.sh` starts isolated engines and runs both modes. The
//! fixture (`tests/harness/bench_fixture.py`: one `docker load` of the images
//! missing, then a `docker create` per missing container) is built on the
//! engine when missing and left there, so a second run measures at once.
//! The scaling mode needs an engine holding nothing but the fixture's first
//! step (or less): it checks that at each step. Optional:
//! `EXAPP_JANITOR_BENCH_RUNS` (warm rescans and `df -v` runs, default 10),
//! `EXAPP_JANITOR_BENCH_COLD_RUNS` (cold scans, each on a fresh store, default 3).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use exapp_janitor::daemons;
use exapp_janitor::domain::NewDaemonInput;
use exapp_janitor::scan::{self, ClientCache, DaemonInventory, ScanLimit, ScanOptions};
use exapp_janitor::store::{Store, StoredDaemon};
use serde::Deserialize;

const ENGINE_VAR: &str = "EXAPP_JANITOR_BENCH_ENGINE";
const PART_VAR: &str = "EXAPP_JANITOR_BENCH_PART";
const SCALE_VAR: &str = "EXAPP_JANITOR_BENCH_SCALE";
/// The whole fixture; the largest scaling step.
const FIXTURE_IMAGES: usize = 2000;
/// The scaling goal: linear, with a margin for noise between the steps.
const MAX_SLOPE: f64 = 1.1;

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

enum Mode {
    /// `a` or `b`: one half of the fixture, as one of two daemons.
    Part(String),
    /// Image counts, ascending: the fixture grown step by step on one daemon.
    Scale(Vec<usize>),
}

/// The scaling mode when its variable is set (the part is then not needed),
/// else the part mode.
fn mode() -> Mode {
    if let Ok(steps) = std::env::var(SCALE_VAR) {
        return Mode::Scale(parse_steps(&steps));
    }
    match std::env::var(PART_VAR).as_deref() {
        Ok(part @ ("a" | "b")) => Mode::Part(part.to_owned()),
        Ok(other) => fail(format!("{PART_VAR} must be a or b, not {other:?}")),
        Err(_) => fail(format!(
            "{PART_VAR} is not set. It says which half of the fixture the engine holds: a \
             (app00..app19 and half of the other images) or b (the rest); tests/harness/bench.sh \
             gives engine A part a and engine B part b. Or set {SCALE_VAR} (e.g. \
             250,500,1000,2000) to measure how the scan grows with the number of images."
        )),
    }
}

fn parse_steps(text: &str) -> Vec<usize> {
    let steps: Vec<usize> = text
        .split(',')
        .map(|s| {
            s.trim()
                .parse()
                .ok()
                .filter(|n| (1..=FIXTURE_IMAGES).contains(n))
                .unwrap_or_else(|| {
                    fail(format!(
                        "{SCALE_VAR}: {s:?} is not an image count from 1 to {FIXTURE_IMAGES}"
                    ))
                })
        })
        .collect();
    // Each step only adds to the engine, so the steps must grow.
    if steps.windows(2).any(|w| w[0] >= w[1]) {
        fail(format!("{SCALE_VAR}={text:?} must be ascending"));
    }
    steps
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
             sets it. Never point it at a daemon you care about: the benchmark loads up to \
             2,000 images and creates up to 200 containers there."
        )),
    };
    let mode = mode();
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
    let runtime = tokio::runtime::Runtime::new().unwrap_or_else(|e| fail(e));
    match mode {
        Mode::Part(part) => {
            println!("scan benchmark against {engine}, fixture part {part}");
            println!("engine: {}", version.trim());
            ensure_fixture(&docker, &part);
            let containers = docker.run(&["ps", "-aq"]).lines().count();
            let m = runtime.block_on(measure(&docker, runs, cold_runs, true));
            print_part(&m, containers);
        }
        Mode::Scale(steps) => {
            println!("scan benchmark, scaling, against {engine}");
            println!("engine: {}", version.trim());
            let rows = steps
                .iter()
                .map(|&n| runtime.block_on(scale_step(&docker, n, runs, cold_runs)))
                .collect::<Vec<_>>();
            print_scaling(&rows);
        }
    }
}

// ---------------------------------------------------------------------------
// The fixture

#[derive(Debug, Deserialize)]
struct Plan {
    label: String,
    label_value: String,
    /// One reference per image.
    images: Vec<String>,
    /// The other tags of images that have two.
    extra_tags: BTreeMap<String, Vec<String>>,
    containers: Vec<PlannedContainer>,
}

impl Plan {
    /// Every reference the engine must list: each image's tags.
    fn references(&self) -> HashSet<&str> {
        self.images
            .iter()
            .chain(self.extra_tags.values().flatten())
            .map(String::as_str)
            .collect()
    }
}

#[derive(Debug, Deserialize)]
struct PlannedContainer {
    name: String,
    image: String,
}

fn fixture_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/harness/bench_fixture.py")
}

/// Runs bench_fixture.py, giving it `stdin` if any; the plan it prints.
fn python(args: &[&str], stdin: Option<&[u8]>) -> Plan {
    let mut child = Command::new("python3")
        .arg(fixture_script())
        .args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap_or_else(|e| fail(format!("cannot run python3: {e}")));
    if let Some(bytes) = stdin {
        // No deadlock: the script reads all of stdin before it prints.
        let mut input = child.stdin.take().expect("piped stdin");
        input.write_all(bytes).unwrap_or_else(|e| fail(e));
    }
    let output = child.wait_with_output().unwrap_or_else(|e| fail(e));
    if !output.status.success() {
        fail(format!("bench_fixture.py {args:?} failed"));
    }
    serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|e| fail(format!("bench_fixture.py printed no plan: {e}")))
}

/// Loads the images and creates the containers the plan for `spec` names,
/// unless the engine has them already (images are recognised by the
/// fixture's label). Returns the plan.
fn ensure_fixture(docker: &DockerCli, spec: &str) -> Plan {
    let plan = python(&["plan", spec], None);
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
    let wanted = plan.references();
    let present = loaded();
    let missing = wanted.iter().filter(|r| !present.contains(**r)).count();
    if missing > 0 {
        println!(
            "fixture {spec}: {missing} of {} references missing; writing and loading the archive",
            wanted.len()
        );
        let dir = tempfile::tempdir().unwrap_or_else(|e| fail(e));
        let archive = dir.path().join("bench-images.tar");
        let started = Instant::now();
        // The images the engine holds stay out of the archive: a scaling
        // step loads only what it adds.
        let present_json = serde_json::to_vec(&present).expect("references serialise");
        python(
            &["write", spec, &archive.to_string_lossy()],
            Some(&present_json),
        );
        docker.run(&["load", "-q", "-i", &archive.to_string_lossy()]);
        println!(
            "fixture {spec}: loaded in {:.1} s",
            started.elapsed().as_secs_f64()
        );
        let now = loaded();
        if let Some(r) = wanted.iter().find(|r| !now.contains(**r)) {
            fail(format!("{r} is still missing after docker load"));
        }
    }
    create_containers(docker, &plan.containers, spec);
    plan
}

fn create_containers(docker: &DockerCli, containers: &[PlannedContainer], spec: &str) {
    let existing: HashMap<String, String> = docker
        .run(&["ps", "-a", "--format", "{{.Names}}\t{{.Image}}"])
        .lines()
        .filter_map(|l| l.split_once('\t'))
        .map(|(n, i)| (n.to_owned(), i.to_owned()))
        .collect();
    let started = Instant::now();
    let mut created = 0;
    for c in containers {
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
            "fixture {spec}: created {created} containers in {:.1} s",
            started.elapsed().as_secs_f64()
        );
    }
}

/// A scaling step measures what the engine holds, so it must hold that
/// step's fixture and nothing else (an engine left at a larger step, or
/// holding other images, would give the wrong sizes).
fn check_only_fixture(docker: &DockerCli, plan: &Plan, spec: &str) {
    let wanted = plan.references();
    // Counted by ID: an image with two tags is one image.
    let extra_images = docker
        .run(&["images", "--format", "{{.ID}} {{.Repository}}:{{.Tag}}"])
        .lines()
        .filter_map(|l| l.split_once(' '))
        .filter(|(_, r)| !wanted.contains(r))
        .map(|(id, _)| id)
        .collect::<HashSet<_>>()
        .len();
    let names: HashSet<&str> = plan.containers.iter().map(|c| c.name.as_str()).collect();
    let extra_containers = docker
        .run(&["ps", "-a", "--format", "{{.Names}}"])
        .lines()
        .filter(|n| !names.contains(n))
        .count();
    if extra_images + extra_containers > 0 {
        fail(format!(
            "the engine holds {extra_images} images and {extra_containers} containers besides \
             the fixture's {spec}; the scaling mode needs an engine holding no more than its \
             first step (tests/harness/engines.sh start DIR gives fresh engines)"
        ));
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
        // Every measured scan is a scan of its own.
        gate: None,
        limit: ScanLimit::default(),
        runtime: None,
        inventory: None,
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
) -> (Duration, Arc<DaemonInventory>) {
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

/// One engine's numbers: what the scan saw, and the times (ms).
struct Measurement {
    images: usize,
    by_status: BTreeMap<&'static str, usize>,
    inventory_bytes: usize,
    cold: Stats,
    warm: Stats,
    df: Stats,
    /// `GET /system/df` on the socket, when asked for.
    raw_df: Option<Stats>,
}

async fn measure(
    docker: &DockerCli,
    runs: usize,
    cold_runs: usize,
    with_raw_df: bool,
) -> Measurement {
    let engine = docker.host.as_str();
    let socket = PathBuf::from(engine.trim_start_matches("unix://"));

    // Cold: every scan on a fresh store, so every image's layers are fetched.
    let mut cold = Vec::new();
    let mut last: Option<(_, Store, _, Arc<DaemonInventory>, _)> = None;
    for _ in 0..cold_runs {
        if let Some((_, old_store, _, _, _)) = last.take() {
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
    let mut by_status = BTreeMap::new();
    for image in &cold_scan.images {
        *by_status.entry(image.status.as_str()).or_default() += 1;
    }
    let inventory_bytes = serde_json::to_string(&cold_scan)
        .expect("an inventory serialises")
        .len();

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
        if with_raw_df {
            raw_df.push(time_raw_df(&socket));
        }
    }
    store.close().await;
    Measurement {
        images,
        by_status,
        inventory_bytes,
        cold: stats(&cold),
        warm: stats(&warm),
        df: stats(&df),
        raw_df: with_raw_df.then(|| stats(&raw_df)),
    }
}

fn statuses(m: &Measurement) -> String {
    let parts: Vec<String> = m
        .by_status
        .iter()
        .map(|(s, n)| format!("{s} {n}"))
        .collect();
    parts.join(", ")
}

/// The part mode's report (it goes into BENCHMARKS.md).
fn print_part(m: &Measurement, containers: usize) {
    println!();
    println!(
        "images {}, containers {containers} (scan of one daemon; times in ms)",
        m.images
    );
    println!("statuses: {}", statuses(m));
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
    row("cold scan (empty store)", &m.cold);
    row("warm rescan", &m.warm);
    row("docker system df -v", &m.df);
    if let Some(raw_df) = &m.raw_df {
        row("GET /system/df (socket, no CLI)", raw_df);
    }
    let (cold, warm, df) = (&m.cold, &m.warm, &m.df);
    println!();
    println!("warm / df -v = {:.2} (medians)", warm.median / df.median);
    println!("cold / df -v = {:.2} (medians)", cold.median / df.median);
    println!(
        "warm / df -v = {:.2} (fastest of each: the least disturbed by other load)",
        warm.min / df.min
    );
    if let Some(raw_df) = &m.raw_df {
        println!(
            "warm / GET /system/df = {:.2} (medians; the Engine's own work, without the CLI)",
            warm.median / raw_df.median
        );
    }
    let met = warm.median < 0.5 * df.median;
    println!(
        "goal warm < 0.5 x df -v ({:.1} ms): {}",
        0.5 * df.median,
        if met { "MET" } else { "NOT MET" }
    );
    println!("stored inventory: {} bytes of JSON", m.inventory_bytes);
}

// ---------------------------------------------------------------------------
// Scaling

/// One scaling step's row.
struct Step {
    containers: usize,
    m: Measurement,
}

/// Grows the engine to the fixture's first `n` images, checks it holds
/// nothing else, and measures.
async fn scale_step(docker: &DockerCli, n: usize, runs: usize, cold_runs: usize) -> Step {
    let spec = format!("scale:{n}");
    println!();
    let plan = ensure_fixture(docker, &spec);
    check_only_fixture(docker, &plan, &spec);
    let m = measure(docker, runs, cold_runs, false).await;
    // The fixture's images are all the engine holds, so the scan sees them all.
    if m.images != plan.images.len() {
        fail(format!(
            "{spec}: the scan saw {} images, not {}",
            m.images,
            plan.images.len()
        ));
    }
    println!(
        "{spec}: {} images, {} containers; statuses: {}",
        m.images,
        plan.containers.len(),
        statuses(&m)
    );
    Step {
        containers: plan.containers.len(),
        m,
    }
}

/// Least-squares slope of log(y) over log(x): the exponent k in y ~ x^k
/// (1.0: linear).
fn log_log_slope(points: &[(f64, f64)]) -> f64 {
    let logs: Vec<(f64, f64)> = points.iter().map(|(x, y)| (x.ln(), y.ln())).collect();
    let n = logs.len() as f64;
    let mean_x = logs.iter().map(|p| p.0).sum::<f64>() / n;
    let mean_y = logs.iter().map(|p| p.1).sum::<f64>() / n;
    let covariance: f64 = logs.iter().map(|(x, y)| (x - mean_x) * (y - mean_y)).sum();
    let variance: f64 = logs.iter().map(|(x, _)| (x - mean_x).powi(2)).sum();
    covariance / variance
}

fn print_scaling(steps: &[Step]) {
    println!();
    println!(
        "scaling (one daemon; medians: {} cold scans, {} warm rescans and df -v runs per step)",
        steps[0].m.cold.n, steps[0].m.warm.n
    );
    println!();
    println!(
        "{:>6} {:>10} {:>9} {:>9} {:>9} {:>8} {:>11} {:>11}",
        "images",
        "containers",
        "cold ms",
        "warm ms",
        "df -v ms",
        "warm/df",
        "warm µs/img",
        "cold µs/img"
    );
    for s in steps {
        let m = &s.m;
        let per_image = |ms: f64| ms * 1000.0 / m.images as f64;
        println!(
            "{:>6} {:>10} {:>9.1} {:>9.1} {:>9.1} {:>8.2} {:>11.1} {:>11.1}",
            m.images,
            s.containers,
            m.cold.median,
            m.warm.median,
            m.df.median,
            m.warm.median / m.df.median,
            per_image(m.warm.median),
            per_image(m.cold.median)
        );
    }
    if steps.len() < 2 {
        println!();
        println!("growth: needs two steps or more");
        return;
    }
    println!();
    print_growth("warm", steps, |m| m.warm.median);
    print_growth("cold", steps, |m| m.cold.median);
}

/// How `time` grows from the first step to the last, against the goal.
fn print_growth(name: &str, steps: &[Step], time: fn(&Measurement) -> f64) {
    let (first, last) = (&steps[0].m, &steps[steps.len() - 1].m);
    let points: Vec<(f64, f64)> = steps
        .iter()
        .map(|s| (s.m.images as f64, time(&s.m)))
        .collect();
    let slope = log_log_slope(&points);
    println!(
        "{name}: slope of log(time) over log(images) {slope:.2} (1.0 = linear); \
         t({})/t({}) = {:.2} for {:.1}x the images",
        last.images,
        first.images,
        time(last) / time(first),
        last.images as f64 / first.images as f64
    );
    println!(
        "{name}: goal linear or better (slope ≤ {MAX_SLOPE}, allowing for noise): {}",
        if slope <= MAX_SLOPE { "MET" } else { "NOT MET" }
    );
}
