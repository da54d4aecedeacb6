//! Cleanup benchmark (not a test): a run removing N outdated images of one
//! ExApp (default 300), against a shell loop of `docker rmi` (one per image)
//! and against one `docker rmi` naming every reference, each over an
//! identical fixture on the same engine, in the same run, repeated
//! (`EXAPP_JANITOR_BENCH_CLEANUP_REPS`, default 3) in rotated order. Prints
//! median, min and max of each and the ratios. Goal: the run is no slower
//! than the loop (ratio of medians ≤ 1.1).
//!
//! ```sh
//! EXAPP_JANITOR_BENCH_ENGINE=unix:///tmp/engines/a/docker.sock \
//!     SQLX_OFFLINE=true cargo bench --bench cleanup
//! ```
//! `EXAPP_JANITOR_BENCH_IMAGES` sets N; `EXAPP_JANITOR_BENCH_IMAGE_MB` gives
//! every image a layer of that many MB (default 0: a few KB; realistic
//! ExApp versions are tens of MB each, e.g. N=30 with 50 MB). `tests/harness/bench.sh` runs it
//! against both test engines.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use exapp_janitor::config::GlobalConfig;
use exapp_janitor::daemons;
use exapp_janitor::domain::NewDaemonInput;
use exapp_janitor::janitor::Janitor;
use exapp_janitor::jobs::{self, CleanupRequest, Trigger, Worker};

fn fail(message: impl std::fmt::Display) -> ! {
    eprintln!("cleanup bench: error: {message}");
    std::process::exit(1);
}

fn docker(engine: &str, args: &[&str], stdin: Option<&[u8]>) -> String {
    use std::io::Write;
    let mut child = Command::new("docker")
        .arg("-H")
        .arg(engine)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| fail(format!("docker CLI: {e}")));
    if let Some(bytes) = stdin {
        child.stdin.take().unwrap().write_all(bytes).unwrap();
    }
    drop(child.stdin.take());
    let out = child.wait_with_output().unwrap();
    if !out.status.success() {
        fail(format!(
            "docker {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// A tar holding one small file that differs per `seed`: a distinct image.
/// With `mb` > 0, also `mb` MB of data in files of 1 MB (what an ExApp
/// version's own layer holds: tens of MB, in many files).
fn tarball(seed: &str, mb: usize) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("version"),
        format!("{seed}\n{}", "x".repeat(4096)),
    )
    .unwrap();
    let block: Vec<u8> = (0..1 << 20)
        .map(|i: u32| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    for i in 0..mb {
        std::fs::write(dir.path().join(format!("data-{i:03}")), &block).unwrap();
    }
    let out = Command::new("tar")
        .arg("-C")
        .arg(dir.path())
        .args(["-c", "."])
        .output()
        .unwrap();
    out.stdout
}

/// An ExApp (a created `nc_app_*` container on the current version) and `n`
/// outdated versions of its repository, each `mb` MB. Returns the outdated
/// references.
fn fixture(engine: &str, name: &str, n: usize, mb: usize) -> Vec<String> {
    let repo = format!("ghcr.io/bench-cleanup/{name}");
    let current = format!("{repo}:current");
    let container = format!("nc_app_{name}");
    let _ = Command::new("docker")
        .args(["-H", engine, "rm", "-f", &container])
        .output();
    let refs: Vec<String> = (0..n).map(|i| format!("{repo}:0.{i}")).collect();
    // Four importers at a time: the fixture is not what is measured.
    std::thread::scope(|s| {
        for chunk in refs.chunks(n.div_ceil(4).max(1)) {
            s.spawn(move || {
                for r in chunk {
                    docker(engine, &["import", "-", r], Some(&tarball(r, mb)));
                }
            });
        }
    });
    // The current version last: an image created after the ExApp's current
    // one is a pending update ("pulled, not used yet"), never outdated.
    docker(
        engine,
        &["import", "-", &current],
        Some(&tarball(&current, mb)),
    );
    docker(
        engine,
        &[
            "create",
            "--network",
            "none",
            "--name",
            &container,
            &current,
            "sleep",
            "1",
        ],
        None,
    );
    refs
}

fn main() {
    // `cargo bench` passes --bench; `cargo test --all-targets` only checks that it runs.
    if !std::env::args().any(|a| a == "--bench") {
        println!(
            "cleanup benchmark: run it with `cargo bench --bench cleanup` (tests/harness/bench.sh)"
        );
        return;
    }
    let engine = match std::env::var("EXAPP_JANITOR_BENCH_ENGINE") {
        Ok(e) if e.starts_with("unix:///") => e,
        Ok(e) => fail(format!("EXAPP_JANITOR_BENCH_ENGINE must be a unix:/// socket, not {e:?}")),
        Err(_) => fail("set EXAPP_JANITOR_BENCH_ENGINE to an isolated engine's socket (tests/harness/bench.sh does)"),
    };
    let n: usize = std::env::var("EXAPP_JANITOR_BENCH_IMAGES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(300);
    // Realistic sizes (issue 18): each image's own layer this many MB.
    let mb: usize = std::env::var("EXAPP_JANITOR_BENCH_IMAGE_MB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let version = docker(
        &engine,
        &[
            "version",
            "-f",
            "{{.Server.Version}} (API {{.Server.APIVersion}})",
        ],
        None,
    );
    println!("engine: Docker Engine {version}");
    let reps: usize = std::env::var("EXAPP_JANITOR_BENCH_CLEANUP_REPS")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|r| *r > 0)
        .unwrap_or(3);
    println!(
        "removing {n} outdated images of one ExApp ({}), three ways, {reps} times each, \
         interleaved (an identical fixture for every removal)",
        if mb == 0 {
            "a few KB each".to_owned()
        } else {
            format!("a layer of {mb} MB each")
        }
    );

    let runtime = tokio::runtime::Runtime::new().unwrap();
    let mut times: [Vec<Duration>; 3] = Default::default();
    let mut bytes = Vec::new();
    for rep in 0..reps {
        // Rotated, so no way always goes first (after a fixture build) or last.
        for k in 0..3 {
            let way = (rep + k) % 3;
            let t = match way {
                0 => time_loop(&engine, &fixture(&engine, "rmi_loop", n, mb)),
                1 => time_one_rmi(&engine, &fixture(&engine, "rmi_all", n, mb)),
                _ => {
                    let refs = fixture(&engine, "janitor_run", n, mb);
                    let (t, freed, predicted) = runtime.block_on(time_run(&engine, &refs, n));
                    bytes.push((freed, predicted));
                    t
                }
            };
            times[way].push(t);
        }
    }

    let [loop_t, one_t, run_t] = times.map(|t| stats(&t));
    println!();
    println!(
        "{:<36} {:>9} {:>9} {:>9} {:>11}",
        "seconds", "median", "min", "max", "per image"
    );
    for (what, st) in [
        ("docker rmi loop (one per image)", &loop_t),
        ("docker rmi with all references", &one_t),
        ("janitor run (preview+queue+jobs)", &run_t),
    ] {
        println!(
            "{:<36} {:>9.2} {:>9.2} {:>9.2} {:>8.1} ms",
            what,
            st.median,
            st.min,
            st.max,
            st.median * 1000.0 / n as f64
        );
    }
    let ratio = run_t.median / loop_t.median;
    let ratio_one = run_t.median / one_t.median;
    println!();
    println!(
        "ratio run / loop: {ratio:.2} (medians; goal ≤ 1.10: {})",
        if ratio <= 1.1 { "met" } else { "NOT met" }
    );
    println!(
        "ratio run / one docker rmi with all references: {ratio_one:.2} (medians; no goal: \
         the floor, one CLI process and one connection)"
    );
    let equal = bytes.iter().all(|(f, p)| f == p);
    println!(
        "bytes freed {:?}, predicted {:?}: {}",
        bytes.iter().map(|b| b.0).collect::<Vec<_>>(),
        bytes.iter().map(|b| b.1).collect::<Vec<_>>(),
        if equal { "equal" } else { "DIFFERENT" }
    );
}

struct Stats {
    median: f64,
    min: f64,
    max: f64,
}

fn stats(samples: &[Duration]) -> Stats {
    let mut s: Vec<f64> = samples.iter().map(Duration::as_secs_f64).collect();
    s.sort_by(f64::total_cmp);
    let mid = s.len() / 2;
    let median = if s.len() % 2 == 0 {
        (s[mid - 1] + s[mid]) / 2.0
    } else {
        s[mid]
    };
    Stats {
        median,
        min: s[0],
        max: s[s.len() - 1],
    }
}

/// The loop an admin would write: one `docker rmi` per image.
fn time_loop(engine: &str, refs: &[String]) -> Duration {
    let started = Instant::now();
    let script = refs
        .iter()
        .map(|r| format!("docker -H '{engine}' rmi '{r}' >/dev/null"))
        .collect::<Vec<_>>()
        .join("\n");
    let status = Command::new("bash")
        .args(["-e", "-c", &script])
        .status()
        .unwrap();
    let t = started.elapsed();
    if !status.success() {
        fail("the docker rmi loop failed");
    }
    t
}

/// One `docker rmi` naming every reference: one CLI process, one connection.
fn time_one_rmi(engine: &str, refs: &[String]) -> Duration {
    let started = Instant::now();
    let status = Command::new("docker")
        .args(["-H", engine, "rmi"])
        .args(refs)
        .stdout(Stdio::null())
        .status()
        .unwrap();
    let t = started.elapsed();
    if !status.success() {
        fail("docker rmi with all references failed");
    }
    t
}

/// The janitor: preview (a scan), enqueue, and the worker until finished.
/// Returns the time, the bytes freed and the bytes predicted.
async fn time_run(engine: &str, refs: &[String], n: usize) -> (Duration, i64, i64) {
    let dir = tempfile::tempdir().unwrap();
    let config = GlobalConfig {
        data_dir: dir.path().to_owned(),
        daemon_timeout_secs: 30,
        scan_timeout_secs: 600,
        scan_concurrency: 8,
        job_lease_secs: 30,
        removal_timeout_secs: 600,
        job_max_attempts: 8,
    };
    let app = Janitor::open(&config).await.unwrap_or_else(|e| fail(e));
    let input = NewDaemonInput {
        name: "bench".into(),
        endpoint: engine.to_owned(),
        ..Default::default()
    };
    daemons::add(&app.store, &input)
        .await
        .unwrap_or_else(|e| fail(e));
    // A first scan, as the server would have done long before: the
    // layer cache is warm, as it is for an admin pressing "Clean now".
    exapp_janitor::scan::scan_all(&app.store, &app.scan_options().await)
        .await
        .unwrap_or_else(|e| fail(e));
    let request = CleanupRequest {
        min_age_hours: Some(0),
        owner: Some(exapp_janitor::domain::AppId::parse("janitor_run").unwrap()),
        ..Default::default()
    };
    let worker = Worker::new(app.clone()).spawn();
    let started = Instant::now();
    let run = jobs::start_run(&app, Trigger::Manual, "bench", &request, app.policy().await)
        .await
        .unwrap_or_else(|e| fail(e));
    let run = loop {
        let view = jobs::run_view(&app.store, run.id).await.unwrap().unwrap();
        if view.finished() {
            break view;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let elapsed = started.elapsed();
    worker.abort();
    let removed = run.counts.succeeded;
    let left = refs
        .iter()
        .filter(|r| !docker(engine, &["images", "-q", r], None).is_empty())
        .count();
    // (Older outdated images of the fixture's ExApp, left by an interrupted
    // earlier run, may be removed too.)
    if removed < n || left != 0 {
        let reasons: Vec<&str> = run.left_out.iter().map(|l| l.reason.as_str()).collect();
        fail(format!(
            "the run removed {removed} images for {n}; {left} are left; jobs {:?}; left out: {reasons:?}; job errors: {:?}",
            run.counts,
            run.jobs.iter().filter_map(|j| j.error.as_deref()).take(3).collect::<Vec<_>>()
        ));
    }
    (elapsed, run.bytes_freed, run.bytes_predicted)
}
