//! Load benchmark (not a test): the server (release build) with two daemons
//! holding 2,000 images in all, under 32 concurrent clients for 30 s each on
//! `GET /api/v1/images` and on the Images page, driven by `wrk`. Prints p50,
//! p99, throughput and errors, and the server's peak RSS. Goals: p99 under
//! 100 ms, no errors, peak RSS under 64 MiB through all of it (adding the
//! daemons, the first scan, both loads, then a cleanup preview and a rescan).
//!
//! `tests/harness/bench.sh` runs it after the scan benchmark has loaded the
//! two halves of its fixture (1,000 images and 100 containers each, 20
//! ExApps apiece) into engines A and B.
//! `EXAPP_JANITOR_BENCH_ENGINES`: the engines' sockets, comma-separated.
//! `EXAPP_JANITOR_BENCH_LOAD_SECS`: seconds per endpoint (30).

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const TOKEN: &str = "load-bench-token-0123456789abcdef";
const PASSWORD: &str = "load bench password";

fn fail(message: impl std::fmt::Display) -> ! {
    eprintln!("load bench: error: {message}");
    std::process::exit(1);
}

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// What wrk reported.
struct Load {
    p50_ms: f64,
    p99_ms: f64,
    requests_per_sec: f64,
    errors: u64,
}

fn millis(text: &str) -> f64 {
    let (number, unit) =
        text.split_at(text.find(|c: char| c.is_alphabetic()).unwrap_or(text.len()));
    let n: f64 = number.parse().unwrap_or(f64::NAN);
    match unit {
        "us" => n / 1000.0,
        "ms" => n,
        "s" => n * 1000.0,
        _ => f64::NAN,
    }
}

fn wrk(url: &str, header: &str, secs: u64) -> Load {
    let out = Command::new("wrk")
        .args([
            "-t2",
            "-c32",
            &format!("-d{secs}s"),
            "--latency",
            "-H",
            header,
            url,
        ])
        .output()
        .unwrap_or_else(|e| fail(format!("wrk (Debian's wrk package): {e}")));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let field = |prefix: &str| {
        text.lines()
            .map(str::trim)
            .find(|l| l.starts_with(prefix))
            .map(|l| l[prefix.len()..].trim().to_owned())
    };
    let errors = field("Non-2xx or 3xx responses:")
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(0)
        + field("Socket errors:")
            .map(|v| {
                v.split(',')
                    .filter_map(|p| p.split_whitespace().last()?.parse::<u64>().ok())
                    .sum()
            })
            .unwrap_or(0);
    Load {
        p50_ms: field("50%").map(|v| millis(&v)).unwrap_or(f64::NAN),
        p99_ms: field("99%").map(|v| millis(&v)).unwrap_or(f64::NAN),
        requests_per_sec: field("Requests/sec:")
            .and_then(|v| v.parse().ok())
            .unwrap_or(f64::NAN),
        errors,
    }
}

fn status_kib(pid: u32, key: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with(key)).map(|l| l.to_owned()))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        .unwrap_or(0)
}

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        println!("load benchmark: run it with tests/harness/bench.sh");
        return;
    }
    let engines: Vec<String> = std::env::var("EXAPP_JANITOR_BENCH_ENGINES")
        .unwrap_or_else(|_| {
            fail(
                "set EXAPP_JANITOR_BENCH_ENGINES to the isolated engines' sockets, comma-separated",
            )
        })
        .split(',')
        .map(str::to_owned)
        .collect();
    let secs: u64 = std::env::var("EXAPP_JANITOR_BENCH_LOAD_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(30);
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let base = format!("http://127.0.0.1:{port}");
    let child = Command::new(env!("CARGO_BIN_EXE_exapp-janitor"))
        .args([
            "--data-dir",
            dir.path().to_str().unwrap(),
            "serve",
            "--listen",
            &format!("127.0.0.1:{port}"),
        ])
        .env("EXAPP_JANITOR_API_TOKEN", TOKEN)
        .env("EXAPP_JANITOR_ADMIN_PASSWORD", PASSWORD)
        .env("EXAPP_JANITOR_LOG", "warn")
        .env_remove("DOCKER_HOST")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| fail(e));
    let server = Server(child);
    let pid = server.0.id();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (images, scan_time, cookie) = runtime.block_on(async {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        let started = Instant::now();
        while http
            .get(format!("{base}/api/v1/health"))
            .send()
            .await
            .is_err()
        {
            if started.elapsed() > Duration::from_secs(30) {
                fail("the server did not start");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        for (i, engine) in engines.iter().enumerate() {
            let body = serde_json::json!({"name": format!("daemon{i}"), "endpoint": engine});
            let r = http
                .post(format!("{base}/api/v1/daemons"))
                .bearer_auth(TOKEN)
                .json(&body)
                .send()
                .await
                .unwrap();
            if r.status() != 201 {
                fail(format!("adding {engine}: {}", r.status()));
            }
        }
        let started = Instant::now();
        http.post(format!("{base}/api/v1/scan"))
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap();
        let scan_time = started.elapsed();
        // Every image: the default page holds 500.
        let images: Vec<serde_json::Value> = http
            .get(format!("{base}/api/v1/images?limit=5000"))
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let login = http
            .post(format!("{base}/login"))
            .form(&[("password", PASSWORD)])
            .send()
            .await
            .unwrap();
        let cookie = login
            .headers()
            .get("set-cookie")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .unwrap_or_else(|| fail("no session cookie"))
            .to_owned();
        (images.len(), scan_time, cookie)
    });

    println!("server: release build, {} daemons, {images} images; first full scan through the API {:.0} ms", engines.len(), scan_time.as_secs_f64() * 1000.0);
    println!("load: wrk, 2 threads, 32 connections, {secs} s per endpoint");
    println!();
    println!(
        "{:<28} {:>9} {:>9} {:>10} {:>7}",
        "endpoint", "p50 ms", "p99 ms", "req/s", "errors"
    );
    let rss_scanned = status_kib(pid, "VmRSS:");
    let mut goals = true;
    for (name, url, header) in [
        (
            "GET /api/v1/images",
            format!("{base}/api/v1/images"),
            format!("Authorization: Bearer {TOKEN}"),
        ),
        (
            "GET /images (page)",
            format!("{base}/images"),
            format!("Cookie: {cookie}"),
        ),
    ] {
        let l = wrk(&url, &header, secs);
        println!(
            "{:<28} {:>9.1} {:>9.1} {:>10.1} {:>7}",
            name, l.p50_ms, l.p99_ms, l.requests_per_sec, l.errors
        );
        goals &= l.p99_ms < 100.0 && l.errors == 0;
    }
    let rss_loaded = status_kib(pid, "VmRSS:");
    // The rest of what a server does with this inventory: a cleanup preview
    // (a rescan of both daemons and the removable set) and another rescan.
    let started = Instant::now();
    runtime.block_on(async {
        let http = reqwest::Client::new();
        for path in ["/api/v1/cleanup/preview", "/api/v1/scan"] {
            let r = http
                .post(format!("{base}{path}"))
                .bearer_auth(TOKEN)
                .header("content-type", "application/json")
                .body("{}")
                .send()
                .await
                .unwrap_or_else(|e| fail(e));
            if !r.status().is_success() {
                fail(format!("POST {path}: {}", r.status()));
            }
        }
    });
    let mib = |kib: u64| kib as f64 / 1024.0;
    println!();
    println!(
        "preview + rescan after the load: {:.0} ms",
        started.elapsed().as_secs_f64() * 1000.0
    );
    let peak = status_kib(pid, "VmHWM:");
    let now = status_kib(pid, "VmRSS:");
    println!(
        "server RSS: after the first scan {:.1} MiB, after the load {:.1} MiB, now {:.1} MiB; peak {:.1} MiB",
        mib(rss_scanned),
        mib(rss_loaded),
        mib(now),
        mib(peak)
    );
    println!(
        "goal p99 < 100 ms and no errors: {}",
        if goals { "MET" } else { "NOT MET" }
    );
    println!(
        "goal peak RSS < 64 MiB: {}",
        if peak < 64 * 1024 { "MET" } else { "NOT MET" }
    );
}
