//! Security, round two (issue 13): attacks that worked against a release
//! build, each replayed here against the real server.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::server::{start_server_env, TOKEN};
use common::*;
use exapp_janitor::domain::TrustedProxies;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn no_redirects() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(120))
        .build()
        .unwrap()
}

async fn post_login(client: &reqwest::Client, url: &str, password: &str) -> u16 {
    client
        .post(url)
        .form(&[("password", password), ("next", "/")])
        .send()
        .await
        .map(|r| r.status().as_u16())
        .unwrap_or(0)
}

// ---------------------------------------------------------------- logins

#[tokio::test]
async fn a_burst_of_parallel_wrong_guesses_never_lets_the_right_one_in() {
    let app = spawn_app().await;
    let url = app.url("/login");
    let client = no_redirects();
    let (answered, mut answers) = tokio::sync::mpsc::unbounded_channel();
    let guesses: Vec<_> = (0..100)
        .map(|n| {
            let (client, url, answered) = (client.clone(), url.clone(), answered.clone());
            tokio::spawn(async move {
                let status = post_login(&client, &url, &format!("wrong guess {n}")).await;
                let _ = answered.send(status);
                status
            })
        })
        .collect();
    drop(answered);
    // The right guess arrives once the first wrong ones locked the client
    // out, while the rest of the burst is still being verified.
    while let Some(status) = answers.recv().await {
        if status == 429 {
            break;
        }
    }
    let right = post_login(&client, &url, TEST_PASSWORD).await;
    let mut statuses = Vec::new();
    for guess in guesses {
        statuses.push(guess.await.unwrap());
    }
    assert_ne!(right, 303, "the right password got in during a burst");
    assert_eq!(right, 429, "the burst locked the client out");
    assert!(!statuses.contains(&303));
    let wrong = statuses.iter().filter(|s| **s == 401).count();
    assert!(
        wrong <= 8,
        "{wrong} wrong guesses were verified; the lock-out allows 8"
    );
}

/// Peak resident memory of a process, from the kernel.
fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM in /proc/<pid>/status")
}

#[tokio::test]
async fn a_burst_of_400_logins_from_400_clients_stays_under_64_mib() {
    let dir = tempfile::tempdir().unwrap();
    // Behind a trusted proxy every guess is a different client, so the
    // per-client lock-out does not help: only the global bound does.
    let server = start_server_env(
        dir.path(),
        None,
        Some(TEST_PASSWORD),
        &[("EXAPP_JANITOR_TRUSTED_PROXIES", "127.0.0.1")],
    );
    let pid = server.child.id();
    let before = peak_rss_kib(pid);
    let url = format!("{}/login", server.address);
    let client = no_redirects();
    let started = Instant::now();
    let guesses: Vec<_> = (0..400u32)
        .map(|n| {
            let (client, url) = (client.clone(), url.clone());
            let from = format!("198.51.{}.{}", n / 250, n % 250 + 1);
            tokio::spawn(async move {
                client
                    .post(&url)
                    .header("X-Forwarded-For", from)
                    .form(&[("password", "wrong guess!"), ("next", "/")])
                    .send()
                    .await
                    .map(|r| r.status().as_u16())
                    .unwrap_or(0)
            })
        })
        .collect();
    let mut statuses = std::collections::BTreeMap::<u16, usize>::new();
    for guess in guesses {
        *statuses.entry(guess.await.unwrap()).or_default() += 1;
    }
    let peak = peak_rss_kib(pid);
    eprintln!(
        "peak RSS {before} KiB before, {peak} KiB after 400 parallel logins ({:?}); statuses {statuses:?}",
        started.elapsed()
    );
    assert!(
        peak < 64 * 1024,
        "peak RSS {} MiB during the burst",
        peak / 1024
    );
    assert!(!statuses.contains_key(&303) && !statuses.contains_key(&500));
    // Afterwards the admin still gets in.
    let status = client
        .post(&url)
        .header("X-Forwarded-For", "192.0.2.200")
        .form(&[("password", TEST_PASSWORD), ("next", "/")])
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, 303);
}

// ---------------------------------------------------- path classification

#[tokio::test]
async fn a_percent_encoded_api_path_needs_the_token_not_a_session() {
    let app = spawn_app().await;
    for path in [
        "/%61pi/v1/settings",
        "/%61%70%69/v1/daemons",
        "/api/v1/%73ettings",
    ] {
        let response = app.http.get(app.url(path)).send().await.unwrap();
        assert_ne!(
            response.status(),
            200,
            "{path} answered the API to a session cookie"
        );
        let with_token = app
            .anon
            .get(app.url(path))
            .bearer_auth(&app.api_token)
            .send()
            .await
            .unwrap();
        assert!(
            [200, 400].contains(&with_token.status().as_u16()),
            "{path} with the token: {}",
            with_token.status()
        );
    }
}

// ------------------------------------------------------------ login `next`

async fn login_location(app: &TestApp, next: &str) -> (u16, String) {
    let response = app
        .anon
        .post(app.url("/login"))
        .form(&[("password", TEST_PASSWORD), ("next", next)])
        .send()
        .await
        .unwrap();
    let location = response
        .headers()
        .get("location")
        .map(|l| String::from_utf8_lossy(l.as_bytes()).into_owned())
        .unwrap_or_default();
    (response.status().as_u16(), location)
}

#[tokio::test]
async fn after_login_next_leads_only_to_a_path_on_this_site() {
    let app = spawn_app().await;
    for foreign in [
        "/%09/evil.example",
        "/%2F/evil.example",
        "/%5Cevil.example",
        "/\t/evil.example",
        "/ /evil.example",
        "//evil.example",
        "/\\evil.example",
        "https://evil.example/",
        "/daemons\r\nSet-Cookie: x=1",
        "/daemons\n",
        "/%0d%0aSet-Cookie:%20x=1",
    ] {
        let (status, location) = login_location(&app, foreign).await;
        assert_eq!((status, location.as_str()), (303, "/"), "next={foreign:?}");
    }
    assert_eq!(
        login_location(&app, "/daemons?x=1").await,
        (303, "/daemons?x=1".to_owned())
    );
    let (_, page) = {
        let r = app
            .anon
            .get(app.url("/login?next=%2F%2509%2Fevil.example"))
            .send()
            .await
            .unwrap();
        (r.status(), r.text().await.unwrap())
    };
    assert!(
        !page.contains("evil.example"),
        "the login page kept a foreign next"
    );
}

// ------------------------------------------------------------- API tokens

#[tokio::test]
async fn repeated_wrong_api_tokens_lock_the_client_out_of_the_api() {
    let app = spawn_app_with(|app| {
        app.trusted_proxies = TrustedProxies::new(vec!["127.0.0.1".parse().unwrap()]);
    })
    .await;
    let guesses: Vec<_> = (0..60)
        .map(|n| {
            let (client, url) = (app.anon.clone(), app.url("/api/v1/settings"));
            tokio::spawn(async move {
                client
                    .get(url)
                    .header("X-Forwarded-For", "203.0.113.9")
                    .bearer_auth(format!("wrong-token-{n}"))
                    .send()
                    .await
                    .unwrap()
                    .status()
                    .as_u16()
            })
        })
        .collect();
    let mut statuses = Vec::new();
    for guess in guesses {
        statuses.push(guess.await.unwrap());
    }
    // A token is checked by one hash comparison, so failures are counted as
    // they are answered: a burst is answered 401 (or 429 once the count is
    // reached), never 200, and the client is locked out after it.
    assert!(
        statuses.iter().all(|s| *s == 401 || *s == 429),
        "{statuses:?}"
    );
    let locked = app
        .anon
        .get(app.url("/api/v1/settings"))
        .header("X-Forwarded-For", "203.0.113.9")
        .bearer_auth(&app.api_token)
        .send()
        .await
        .unwrap();
    assert_eq!(locked.status(), 429, "the guessing client is locked out");
    assert!(locked.headers().contains_key("retry-after"));
    let other = app
        .anon
        .get(app.url("/api/v1/settings"))
        .header("X-Forwarded-For", "203.0.113.10")
        .bearer_auth(&app.api_token)
        .send()
        .await
        .unwrap();
    assert_eq!(other.status(), 200, "another client is not");
}

/// `serve` that is expected to refuse to start: its exit code and stderr,
/// or None when it was still running after 20 s (then it is killed).
fn serve_refusal(data_dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Option<(i32, String)> {
    let mut child = cli(data_dir)
        .args(["serve", "--listen", "127.0.0.1:0"])
        .args(args)
        .envs(env.iter().copied())
        .env("EXAPP_JANITOR_ADMIN_PASSWORD", TEST_PASSWORD)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(20) {
        if let Some(status) = child.try_wait().unwrap() {
            let mut stderr = String::new();
            std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut stderr).unwrap();
            return Some((status.code().unwrap_or(-1), stderr));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = child.kill();
    let _ = child.wait();
    None
}

#[test]
fn a_configured_api_token_under_32_characters_is_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let short = "x".repeat(31);
    let (code, stderr) = serve_refusal(
        dir.path(),
        &[],
        &[("EXAPP_JANITOR_API_TOKEN", short.as_str())],
    )
    .expect("serve started with a 31-character API token");
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("EXAPP_JANITOR_API_TOKEN"), "{stderr}");
    assert!(stderr.contains("32 characters"), "{stderr}");
    assert!(!stderr.contains(&short), "the token was echoed: {stderr}");
}

// --------------------------------------------------------------- sessions

#[tokio::test]
async fn a_session_ends_after_its_absolute_lifetime_even_when_busy() {
    let app = spawn_app().await;
    assert_eq!(app.get("/").await.status(), 200);
    sqlx::query("UPDATE sessions SET created_at = created_at - 12 * 3600 - 60")
        .execute(app.app.store.pool())
        .await
        .unwrap();
    let response = app.get("/").await;
    assert_eq!(response.status(), 303, "a 12 h old session still works");
    assert!(response.headers()["location"]
        .to_str()
        .unwrap()
        .starts_with("/login"));
}

#[tokio::test]
async fn expired_sessions_are_purged_when_someone_logs_in() {
    let app = spawn_app().await;
    let other = reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    assert_eq!(app.login(&other, TEST_PASSWORD).await.status(), 303);
    // Both sessions are abandoned: one idle, one too old.
    sqlx::query(
        "UPDATE sessions SET last_seen_at = last_seen_at - 31 * 60
         WHERE rowid = (SELECT MIN(rowid) FROM sessions)",
    )
    .execute(app.app.store.pool())
    .await
    .unwrap();
    sqlx::query(
        "UPDATE sessions SET created_at = created_at - 13 * 3600
         WHERE rowid = (SELECT MAX(rowid) FROM sessions)",
    )
    .execute(app.app.store.pool())
    .await
    .unwrap();
    let third = no_redirects();
    assert_eq!(
        post_login(&third, &app.url("/login"), TEST_PASSWORD).await,
        303
    );
    let left: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM sessions")
        .fetch_one(app.app.store.pool())
        .await
        .unwrap();
    assert_eq!(left, 1, "only the new session is left");
}

#[test]
fn the_session_lifetime_is_set_by_flag_or_environment_within_1_to_720_hours() {
    let dir = tempfile::tempdir().unwrap();
    for bad in ["0", "721", "twelve"] {
        let (code, stderr) = serve_refusal(
            dir.path(),
            &[],
            &[
                ("EXAPP_JANITOR_SESSION_MAX_HOURS", bad),
                ("EXAPP_JANITOR_API_TOKEN", TOKEN),
            ],
        )
        .unwrap_or_else(|| panic!("serve started with EXAPP_JANITOR_SESSION_MAX_HOURS={bad}"));
        assert_eq!(code, 2, "{bad}: {stderr}");
    }
    let server = start_server_env(
        dir.path(),
        None,
        Some(TEST_PASSWORD),
        &[("EXAPP_JANITOR_SESSION_MAX_HOURS", "720")],
    );
    drop(server);
    let (code, stderr) = serve_refusal(
        dir.path(),
        &["--session-max-hours", "0"],
        &[("EXAPP_JANITOR_API_TOKEN", TOKEN)],
    )
    .expect("serve started with --session-max-hours 0");
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("session-max-hours"), "{stderr}");
}

// ------------------------------------------------------------- data dir

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[tokio::test]
async fn the_data_dir_is_private_and_the_database_files_are_owner_only_at_every_start() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("fresh");
    let store = exapp_janitor::store::Store::open(&data).await.unwrap();
    assert_eq!(mode(&data), 0o700, "a new data dir");
    store.close().await;

    // A database from before: left readable by everyone, journals included.
    let db = data.join(exapp_janitor::store::DB_FILE);
    let store = exapp_janitor::store::Store::open(&data).await.unwrap();
    sqlx::query("CREATE TABLE IF NOT EXISTS keep_wal (x)")
        .execute(store.pool())
        .await
        .unwrap();
    let journals = [
        db.with_file_name(format!("{}-wal", exapp_janitor::store::DB_FILE)),
        db.with_file_name(format!("{}-shm", exapp_janitor::store::DB_FILE)),
    ];
    for file in std::iter::once(&db).chain(&journals) {
        std::fs::set_permissions(file, std::fs::Permissions::from_mode(0o644)).unwrap();
    }
    let again = exapp_janitor::store::Store::open(&data).await.unwrap();
    for file in std::iter::once(&db).chain(&journals) {
        assert_eq!(mode(file), 0o600, "{}", file.display());
    }
    again.close().await;
    store.close().await;
}

#[tokio::test]
async fn serve_warns_when_the_data_dir_is_readable_by_others() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let server = start_server_env(dir.path(), None, Some(TEST_PASSWORD), &[]);
    let warned = server.log_lines_containing("readable by other users");
    assert_eq!(warned.len(), 1, "{warned:?}");
    assert!(warned[0].contains("chmod 700"), "{warned:?}");
    drop(server);

    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
    let server = start_server_env(dir.path(), None, Some(TEST_PASSWORD), &[]);
    assert!(server
        .log_lines_containing("readable by other users")
        .is_empty());
}

// ------------------------------------------------------------- slow bodies

/// Sends a request whose body trickles in at one byte a second; how long
/// the server kept the connection (None: still open after `limit`).
async fn trickle(address: &str, head: String, limit: Duration) -> Option<(Duration, String)> {
    let host = address.trim_start_matches("http://");
    let stream = tokio::net::TcpStream::connect(host).await.unwrap();
    let (mut reader, mut writer) = stream.into_split();
    writer.write_all(head.as_bytes()).await.unwrap();
    let started = Instant::now();
    let writing = tokio::spawn(async move {
        for _ in 0..120 {
            if writer.write_all(b"a").await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    });
    let mut answer = Vec::new();
    let read = tokio::time::timeout(limit, reader.read_to_end(&mut answer)).await;
    writing.abort();
    read.ok().map(|_| {
        (
            started.elapsed(),
            String::from_utf8_lossy(&answer).into_owned(),
        )
    })
}

#[tokio::test]
async fn a_body_sent_at_one_byte_a_second_is_cut_off_after_about_10_seconds() {
    let app = spawn_app().await;
    let host = app.address.trim_start_matches("http://").to_owned();
    let login = format!(
        "POST /login HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/x-www-form-urlencoded\r\n\
         Content-Length: 1000\r\n\r\n"
    );
    let api = format!(
        "PATCH /api/v1/settings HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {}\r\n\
         Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n",
        app.api_token
    );
    let limit = Duration::from_secs(25);
    let (login, api) = tokio::join!(
        trickle(&app.address, login, limit),
        trickle(&app.address, api, limit)
    );
    for (route, result) in [("POST /login", login), ("PATCH /api/v1/settings", api)] {
        let (held, answer) =
            result.unwrap_or_else(|| panic!("{route}: the connection was held for over {limit:?}"));
        assert!(held < Duration::from_secs(15), "{route}: held for {held:?}");
        assert!(
            answer.is_empty() || answer.starts_with("HTTP/1.1 408"),
            "{route}: {answer}"
        );
    }
}

#[tokio::test]
async fn many_parallel_requests_with_the_right_token_are_never_throttled() {
    let app = spawn_app().await;
    let requests = (0..100).map(|_| {
        app.anon
            .get(app.url("/api/v1/settings"))
            .bearer_auth(&app.api_token)
            .send()
    });
    for response in futures_util::future::join_all(requests).await {
        assert_eq!(response.unwrap().status(), 200);
    }
}
