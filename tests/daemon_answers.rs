//! What a daemon's answer may do to the janitor: every body read from a
//! daemon is bounded, only an Engine's own error message is ever shown, and
//! nothing a daemon sends can forge a log line. The hostile "daemons" here
//! are tiny TCP listeners that answer fixed bytes (that is the attack: any
//! HTTP server at a `tcp://` endpoint); the real engines show that Docker's
//! own answers still read well.

mod common;

use std::time::Duration;

use common::fixtures::Fixtures;
use common::server::{start_server, Server};
use common::*;
use exapp_janitor::docker::DaemonClient;
use exapp_janitor::domain::{Endpoint, ImageId};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const MIB: usize = 1024 * 1024;

/// What a hostile server's body is made of: text an internal service might
/// hold, HTML, a newline that starts a forged log line, and ANSI escapes.
const HOSTILE_TEXT: &[u8] =
    b"INTERNAL-SECRET <b>admin panel</b>\n2030-01-01T00:00:00Z  INFO FORGED-LINE: admin logged in\x1b[2J\x1b[31m\r\n";

/// One answer of a hostile server: the status line and headers, then `len`
/// bytes of `pattern` over and over.
struct Answer {
    head: String,
    pattern: Vec<u8>,
    len: usize,
}

impl Answer {
    /// `status` with a Content-Length, as the 404 was sent.
    fn sized(status: &str, content_type: &str, pattern: &[u8], len: usize) -> Self {
        Self {
            head: format!(
                "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {len}\r\nConnection: close\r\n\r\n"
            ),
            pattern: pattern.to_vec(),
            len,
        }
    }

    /// `status` with no length: the body runs until the connection closes,
    /// so only counting what arrives can stop it.
    fn until_close(status: &str, pattern: &[u8], len: usize) -> Self {
        Self {
            head: format!(
                "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n"
            ),
            pattern: pattern.to_vec(),
            len,
        }
    }

    /// A small, complete JSON answer.
    fn json(status: &str, body: &Value) -> Self {
        let body = body.to_string();
        Self::sized(status, "application/json", body.as_bytes(), body.len())
    }
}

/// What a real Engine answers to `GET /version`, enough to pass as one.
fn engine_version() -> Answer {
    Answer::json(
        "200 OK",
        &json!({"Version": "26.1.5", "ApiVersion": "1.45", "MinAPIVersion": "1.24", "Os": "linux"}),
    )
}

/// Starts a hostile server on loopback; `answer` picks the answer from the
/// request's path. Returns its `tcp://` endpoint. It stops writing when the
/// client hangs up.
async fn hostile(answer: fn(&str) -> Answer) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("tcp://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        loop {
            let Ok((mut socket, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let mut request = Vec::new();
                let mut buf = [0u8; 4096];
                while !request.windows(4).any(|w| w == b"\r\n\r\n") && request.len() < 65536 {
                    match socket.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => request.extend_from_slice(&buf[..n]),
                    }
                }
                let line = String::from_utf8_lossy(&request);
                let path = line.split_whitespace().nth(1).unwrap_or("/").to_owned();
                let answer = answer(&path);
                if socket.write_all(answer.head.as_bytes()).await.is_err() {
                    return;
                }
                let block: Vec<u8> = answer
                    .pattern
                    .iter()
                    .copied()
                    .cycle()
                    .take(answer.len.min(256 * 1024))
                    .collect();
                let mut left = answer.len;
                while left > 0 {
                    let n = left.min(block.len());
                    if socket.write_all(&block[..n]).await.is_err() {
                        return;
                    }
                    left -= n;
                }
                let _ = socket.shutdown().await;
            });
        }
    });
    url
}

/// The process's peak resident memory (VmHWM), in bytes.
fn peak_rss(pid: u32) -> usize {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .expect("VmHWM in /proc/PID/status");
    let kib: usize = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kib * 1024
}

async fn api_text(server: &Server, path: &str) -> String {
    reqwest::Client::new()
        .get(format!("{}{path}", server.address))
        .bearer_auth(common::server::TOKEN)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// Adds the hostile daemon to a real server process, lists the daemons (each
/// listing contacts it), scans, and returns the server's peak memory and the
/// last listing. The server's own memory is what the attack aimed at.
async fn serve_against(endpoint: &str) -> (usize, String, Server, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let server = start_server(dir.path(), None);
    let (status, body) = server
        .api_post(
            "/api/v1/daemons",
            &json!({"name": "hostile", "endpoint": endpoint}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let mut listing = String::new();
    for _ in 0..3 {
        listing = api_text(&server, "/api/v1/daemons").await;
    }
    server.api_post("/api/v1/scan", &json!({})).await;
    let peak = peak_rss(server.child.id());
    (peak, listing, server, dir)
}

const SERVER_PEAK_LIMIT: usize = 100 * MIB;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_daemon_answering_404_with_200_mib_leaves_the_server_small() {
    let endpoint =
        hostile(|_| Answer::sized("404 Not Found", "text/html", HOSTILE_TEXT, 200 * MIB)).await;
    let (peak, listing, _server, _dir) = serve_against(&endpoint).await;
    eprintln!("peak RSS with a 200 MiB 404: {} MiB", peak / MIB);
    assert!(
        peak < SERVER_PEAK_LIMIT,
        "the server peaked at {} MiB",
        peak / MIB
    );
    assert!(listing.len() < 16 * 1024, "{} bytes", listing.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_daemon_answering_200_with_an_endless_version_leaves_the_server_small() {
    let endpoint = hostile(|_| Answer::until_close("200 OK", HOSTILE_TEXT, 200 * MIB)).await;
    let (peak, listing, _server, _dir) = serve_against(&endpoint).await;
    eprintln!("peak RSS with a 200 MiB version: {} MiB", peak / MIB);
    assert!(
        peak < SERVER_PEAK_LIMIT,
        "the server peaked at {} MiB",
        peak / MIB
    );
    assert!(listing.len() < 16 * 1024, "{} bytes", listing.len());
}

/// An image list is the largest answer a real Engine sends, so its budget
/// (64 MiB) is the one a hostile daemon can fill. Two scans of it may run at
/// once here (the watcher's on connecting and the API's), each holding at
/// most one list: the server stays under two budgets and its own needs,
/// less than the one answer the daemon sends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_engine_lookalike_with_an_endless_image_list_holds_at_most_its_budget() {
    let endpoint = hostile(|path| {
        if path.ends_with("/version") {
            engine_version()
        } else if path.contains("/containers/json") {
            Answer::json("200 OK", &json!([]))
        } else {
            Answer::until_close("200 OK", b"[{\"Id\":\"sha256:00\"},", 200 * MIB)
        }
    })
    .await;
    let (peak, _, _server, _dir) = serve_against(&endpoint).await;
    eprintln!("peak RSS with a 200 MiB image list: {} MiB", peak / MIB);
    assert!(
        peak < 2 * 64 * MIB + 40 * MIB,
        "the server peaked at {} MiB",
        peak / MIB
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_daemons_newlines_and_escapes_never_forge_a_log_line() {
    let endpoint = hostile(|path| {
        if path.ends_with("/version") {
            engine_version()
        } else {
            // An Engine-shaped error whose message tries to start a new line.
            Answer::json(
                "500 Internal Server Error",
                &json!({"message": String::from_utf8_lossy(HOSTILE_TEXT)}),
            )
        }
    })
    .await;
    let (_, _, server, _dir) = serve_against(&endpoint).await;
    let failed = server.log_lines_containing("scan failed");
    assert!(!failed.is_empty(), "the failed scan is logged");
    assert!(
        server
            .log_lines_containing("FORGED-LINE")
            .iter()
            .all(|l| !l.starts_with("2030")),
        "{:?}",
        server.log_lines_containing("FORGED-LINE")
    );
    assert!(
        server.log_lines_containing("\x1b").is_empty(),
        "{:?}",
        server.log_lines_containing("\x1b")
    );
}

/// The hostile daemon's row in `GET /api/v1/daemons`.
fn hostile_row(listing: &Value) -> Value {
    listing
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["name"] == "hostile")
        .expect("the hostile daemon is listed")
        .clone()
}

/// The one line every stored or shown daemon error must be.
fn assert_one_short_line(error: &str) {
    assert!(error.chars().count() <= 1024, "{} chars", error.len());
    assert!(
        !error.chars().any(char::is_control),
        "control characters in {error:?}"
    );
}

#[tokio::test]
async fn a_non_engine_answer_shows_its_status_and_never_its_body() {
    let endpoint =
        hostile(|_| Answer::sized("404 Not Found", "text/html", HOSTILE_TEXT, 4 * MIB)).await;
    let app = spawn_app_with_daemons(&[("hostile", endpoint)]).await;

    let response = app.get("/api/v1/daemons").await;
    let listing = response.text().await.unwrap();
    assert!(listing.len() < 16 * 1024, "{} bytes", listing.len());
    let row = hostile_row(&serde_json::from_str(&listing).unwrap());
    let error = row["last_error"].as_str().unwrap();
    assert!(error.contains("not a Docker Engine (HTTP 404)"), "{error}");
    assert!(!error.contains("SECRET"), "{error}");
    assert_one_short_line(error);

    let stored = app.app.store.list_daemons().await.unwrap();
    let stored = stored[0].contact.last_error.as_deref().unwrap();
    assert_one_short_line(stored);
    assert!(!stored.contains("SECRET"), "{stored}");

    for page in ["/", "/daemons", "/daemons/hostile/card"] {
        let (status, html) = app.get_text(page).await;
        assert_eq!(status, 200, "{page}");
        assert!(!html.contains("SECRET"), "{page} shows the body");
        assert!(html.len() < 256 * 1024, "{page}: {} bytes", html.len());
    }
}

#[tokio::test]
async fn an_engine_error_shows_its_status_and_message_on_one_capped_line() {
    let endpoint = hostile(|_| {
        let mut message = String::from_utf8_lossy(HOSTILE_TEXT).into_owned();
        message.push_str(&"x".repeat(3000));
        Answer::json("500 Internal Server Error", &json!({"message": message}))
    })
    .await;
    let app = spawn_app_with_daemons(&[("hostile", endpoint)]).await;
    let row = hostile_row(&app.get_json("/api/v1/daemons").await);
    let error = row["last_error"].as_str().unwrap();
    assert!(error.contains("500"), "{error}");
    assert!(
        error.contains("INTERNAL-SECRET <b>admin panel</b>"),
        "{error}"
    );
    assert_one_short_line(error);
}

#[tokio::test]
async fn a_json_answer_larger_than_an_engine_sends_fails_that_daemon_only() {
    let endpoint = hostile(|path| {
        if path.ends_with("/version") {
            engine_version()
        } else {
            Answer::until_close("200 OK", b"[{\"Id\":\"sha256:00\"},", 80 * MIB)
        }
    })
    .await;
    let app = spawn_app_with_daemons(&[("hostile", endpoint), ("good", engine_a_sock())]).await;
    let (status, scans) = app.post_json("/api/v1/scan", &json!({})).await;
    assert_eq!(status, 200, "{scans}");
    let by_name = |n: &str| {
        scans
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["daemon"] == n)
            .unwrap()
            .clone()
    };
    assert_eq!(by_name("good")["ok"], true, "{scans}");
    let error = by_name("hostile")["error"].as_str().unwrap().to_owned();
    assert!(error.contains("larger than 64 MiB"), "{error}");
    assert_one_short_line(&error);
}

#[tokio::test]
async fn real_engines_refusals_keep_dockers_words() {
    let fx = Fixtures::new(&engine_a_sock());
    let image = fx.import(&fx.unique("busy:1"), &[("a", 64)]);
    fx.create(&fx.unique("user"), &image);

    for endpoint in [engine_a_sock(), engine_a_tcp()] {
        let endpoint = Endpoint::parse(&endpoint, None).unwrap();
        let client = DaemonClient::connect(&endpoint, Duration::from_secs(5))
            .await
            .unwrap();
        assert!(!client.list_images().await.unwrap().is_empty());

        // A 404 is still "gone", not "not a Docker Engine".
        let missing = ImageId::parse(&format!("sha256:{}", "0".repeat(64))).unwrap();
        assert_eq!(client.live_image(&missing).await.unwrap(), None);

        // A 409 is still Docker's own words, for the job's outcome.
        let refused = client
            .remove_reference(&image, Duration::from_secs(10))
            .await
            .unwrap_err();
        assert!(refused.is_conflict(), "{refused}");
        let words = refused.daemon_message().unwrap();
        assert!(words.contains("conflict"), "{words}");
        assert!(refused.to_string().contains("409"), "{refused}");
    }
    fx.docker(&["rm", &fx.unique("user")]);
    fx.docker(&["rmi", &image]);
}

#[tokio::test]
async fn an_engine_lookalikes_version_is_stored_as_one_short_line() {
    let endpoint = hostile(|_| {
        let mut version = String::from_utf8_lossy(HOSTILE_TEXT).into_owned();
        version.push_str(&"9".repeat(5000));
        Answer::json("200 OK", &json!({"Version": version, "ApiVersion": "1.45"}))
    })
    .await;
    let app = spawn_app_with_daemons(&[("hostile", endpoint)]).await;
    let row = hostile_row(&app.get_json("/api/v1/daemons").await);
    let version = row["engine_version"].as_str().unwrap();
    assert!(version.chars().count() <= 64, "{version}");
    assert!(!version.chars().any(char::is_control), "{version:?}");
    assert_eq!(row["api_version"], "1.45");
}

#[tokio::test]
async fn a_declared_length_over_the_budget_is_refused_before_it_is_read() {
    let endpoint =
        hostile(|_| Answer::sized("200 OK", "application/json", HOSTILE_TEXT, 200 * MIB)).await;
    let app = spawn_app().await;
    let started = std::time::Instant::now();
    let (status, created) = app
        .post_json(
            "/api/v1/daemons",
            &json!({"name": "hostile", "endpoint": endpoint}),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let error = created["last_error"].as_str().unwrap();
    assert!(
        error.contains("the version request is larger than 1 MiB"),
        "{error}"
    );
    assert!(!error.contains("SECRET"), "{error}");
    assert!(
        started.elapsed() < TEST_DAEMON_TIMEOUT,
        "{:?}",
        started.elapsed()
    );
}
