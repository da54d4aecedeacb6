//! `exapp-janitor serve` as an admin starts it.

mod common;

use std::process::Stdio;
use std::time::Duration;

use common::*;
use serde_json::Value;

use common::fixtures::Fixtures;
use common::server::{start_server, start_server_env, start_server_with};

#[tokio::test]
async fn serve_on_an_empty_data_dir_creates_the_database_and_answers() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = start_server(&data, None);
    assert!(data.join("exapp-janitor.db").is_file());
    let browser = reqwest::Client::builder()
        .cookie_store(true)
        .build()
        .unwrap();
    let login = browser
        .get(format!("{}/", server.address))
        .send()
        .await
        .unwrap();
    assert_eq!(login.url().path(), "/login", "the overview needs a login");
    let overview = browser
        .post(format!("{}/login", server.address))
        .form(&[("password", TEST_PASSWORD), ("next", "/")])
        .send()
        .await
        .unwrap();
    assert_eq!(overview.status(), 200);
    assert!(overview.text().await.unwrap().contains("<h1>Overview</h1>"));
    let health: Value = reqwest::get(format!("{}/api/v1/health", server.address))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(health["status"], "ok");
}

#[tokio::test]
async fn the_first_start_adds_docker_host_as_local_and_only_once() {
    let dir = tempfile::tempdir().unwrap();
    let server = start_server(dir.path(), Some(&engine_a_sock()));
    let daemons = server.api("/api/v1/daemons").await;
    assert_eq!(daemons[0]["name"], "local");
    assert_eq!(daemons[0]["endpoint"], engine_a_sock());
    assert_eq!(daemons[0]["reachable"], true);
    drop(server);

    let out = run(cli(dir.path()).args(["daemon", "remove", "local"]));
    assert!(out.status.success(), "{}", stderr(&out));
    let server = start_server(dir.path(), Some(&engine_a_sock()));
    let daemons = server.api("/api/v1/daemons").await;
    assert_eq!(
        daemons,
        serde_json::json!([]),
        "a removed local daemon does not come back"
    );
}

#[test]
fn serve_on_a_database_that_is_not_sqlite_exits_1_with_one_sentence() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("exapp-janitor.db"), "not a database").unwrap();
    let out = run(cli(dir.path()).args(["serve", "--listen", "127.0.0.1:0"]));
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("is not an SQLite database"), "{err}");
}

#[test]
fn serve_with_an_unparsable_listen_address_is_bad_input() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(cli(dir.path()).args(["serve", "--listen", "localhost"]));
    assert_eq!(out.status.code(), Some(2));
    assert!(
        !dir.path().join("exapp-janitor.db").exists(),
        "nothing created on bad input"
    );
}

#[test]
fn a_trusted_proxy_that_is_not_an_address_is_bad_input() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(cli(dir.path())
        .args(["serve", "--listen", "127.0.0.1:0"])
        .env("EXAPP_JANITOR_TRUSTED_PROXIES", "127.0.0.1,localhost"));
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(err.contains(r#""localhost" is not an IP address"#), "{err}");
    assert!(!dir.path().join("exapp-janitor.db").exists());
}

#[tokio::test]
async fn behind_a_trusted_proxy_a_failed_login_is_logged_with_the_forwarded_client() {
    let dir = tempfile::tempdir().unwrap();
    let server = start_server_env(
        dir.path(),
        None,
        Some(TEST_PASSWORD),
        &[("EXAPP_JANITOR_TRUSTED_PROXIES", "10.0.0.0/8,127.0.0.1")],
    );
    let lines = server.fail_login_via_proxy("203.0.113.7").await;
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(
        lines[0].contains("client=203.0.113.7") && lines[0].contains("peer=127.0.0.1"),
        "{}",
        lines[0]
    );
}

#[tokio::test]
async fn a_generated_admin_password_is_logged_once_and_works() {
    let dir = tempfile::tempdir().unwrap();
    let server = start_server_with(dir.path(), None, None);
    let lines = server.log_lines_containing("generated the admin password");
    assert_eq!(lines.len(), 1, "{lines:?}");
    let password = lines[0].rsplit(": ").next().unwrap().trim().to_owned();
    assert!(password.len() >= 12, "{password:?}");

    let browser = reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let answer = browser
        .post(format!("{}/login", server.address))
        .form(&[("password", password.as_str()), ("next", "/daemons")])
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 303);
    assert_eq!(answer.headers()["location"], "/daemons");
    assert_eq!(
        browser
            .get(format!("{}/daemons", server.address))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    drop(server);

    let again = start_server_with(dir.path(), None, None);
    assert!(again
        .log_lines_containing("generated the admin password")
        .is_empty());
    let db = std::fs::read(dir.path().join("exapp-janitor.db")).unwrap();
    assert!(
        !db.windows(password.len()).any(|w| w == password.as_bytes()),
        "the plain password is in the database"
    );
}

#[test]
fn a_too_short_admin_password_is_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(cli(dir.path())
        .args(["serve", "--listen", "127.0.0.1:0"])
        .env("EXAPP_JANITOR_ADMIN_PASSWORD", "short"));
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("at least") || stderr(&out).contains("characters"),
        "{}",
        stderr(&out)
    );
}

#[tokio::test]
async fn reset_password_replaces_the_password_and_logs_everyone_out() {
    let dir = tempfile::tempdir().unwrap();
    let server = start_server_with(dir.path(), None, None);
    let out = run(cli(dir.path()).args(["admin", "reset-password"]));
    assert!(out.status.success(), "{}", stderr(&out));
    let password = stdout(&out).trim().rsplit(": ").next().unwrap().to_owned();
    let browser = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let answer = browser
        .post(format!("{}/login", server.address))
        .form(&[("password", password.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 303, "the new password works");

    let mut stdin_reset = cli(dir.path());
    stdin_reset
        .args(["admin", "reset-password", "--password-stdin"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = stdin_reset.spawn().unwrap();
    use std::io::Write;
    child.stdin.take().unwrap().write_all(b"tiny\n").unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(2), "a weak password is bad input");
    let answer = browser
        .post(format!("{}/login", server.address))
        .form(&[("password", password.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 303, "nothing changed");
}

#[tokio::test]
async fn the_server_builds_the_report_after_a_scan_before_any_page_asks_for_it() {
    let fx = Fixtures::new(&engine_a_sock());
    fx.busybox(&fx.unique("busybox:1"));
    let dir = tempfile::tempdir().unwrap();
    let server = start_server_env(
        dir.path(),
        Some(&engine_a_sock()),
        Some(TEST_PASSWORD),
        &[("EXAPP_JANITOR_LOG", "exapp_janitor=debug")],
    );
    // No request: the start's scan of `local`, then the warmer.
    eventually(
        Duration::from_secs(60),
        "the report built ahead",
        async || {
            server
                .log_lines_containing("report ready")
                .iter()
                .any(|l| l.contains("daemons=1") && !l.contains("images=0"))
        },
    )
    .await;
}

/// (thread name, nice value) of every thread of `pid`, from /proc.
fn threads_and_nice(pid: u32) -> Vec<(String, i64)> {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .filter_map(|task| {
            let dir = task.ok()?.path();
            let name = std::fs::read_to_string(dir.join("comm")).ok()?;
            let stat = std::fs::read_to_string(dir.join("stat")).ok()?;
            // Fields after the name's closing parenthesis; nice is the 19th
            // field of the line, the 17th after it.
            let rest = &stat[stat.rfind(')')? + 2..];
            let nice = rest.split_whitespace().nth(16)?.parse().ok()?;
            Some((name.trim().to_owned(), nice))
        })
        .collect()
}

#[tokio::test]
async fn the_server_scans_on_threads_of_lower_priority_than_its_requests() {
    let dir = tempfile::tempdir().unwrap();
    let server = start_server_env(dir.path(), Some(&engine_a_sock()), Some(TEST_PASSWORD), &[]);
    let pid = server.child.id();
    // Linux shows 15 characters of a thread's name.
    let named = |threads: &[(String, i64)], prefix: &str| -> Vec<i64> {
        threads
            .iter()
            .filter(|(name, _)| name.starts_with(prefix))
            .map(|(_, nice)| *nice)
            .collect()
    };
    // The request threads may start just after the log says "listening".
    eventually(
        Duration::from_secs(30),
        "scan and request threads",
        async || {
            let threads = threads_and_nice(pid);
            !named(&threads, "exapp-janitor-s").is_empty()
                && !named(&threads, "actix-server").is_empty()
        },
    )
    .await;
    let threads = threads_and_nice(pid);
    assert!(
        named(&threads, "exapp-janitor-s").iter().all(|n| *n == 10),
        "{threads:?}"
    );
    assert!(
        named(&threads, "actix-server").iter().all(|n| *n == 0),
        "{threads:?}"
    );
}
