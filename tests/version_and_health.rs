//! What a build says it is (`--version`, `/api/v1/health`, the pages'
//! footer: Cargo's version and the git commit of a checkout), what
//! `build.rs` says outside a checkout, and `exapp-janitor health`, the
//! container's healthcheck.

mod common;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::packaging::{repo, scratch_dir, target_dir};
use common::server::start_server;
use common::*;
use exapp_janitor::version;
use serde_json::{json, Value};

/// The commit the suite was built from, as `git` says it: a checkout of
/// this repository (CI's fresh clone is one), or none outside it.
fn checked_out_commit() -> Option<String> {
    let git = |args: &[&str]| {
        let output = Command::new("git")
            .arg("-C")
            .arg(repo())
            .args(args)
            .output()
            .ok()?;
        output
            .status
            .success()
            .then(|| String::from_utf8_lossy(&output.stdout).trim().to_owned())
    };
    let top = git(&["rev-parse", "--show-toplevel"])?;
    (Path::new(&top).canonicalize().ok()? == repo().canonicalize().ok()?)
        .then(|| git(&["rev-parse", "--short=12", "HEAD"]))
        .flatten()
}

#[test]
fn version_names_cargos_version_and_the_commit_it_was_built_from() {
    let output = run(Command::new(env!("CARGO_BIN_EXE_exapp-janitor")).arg("--version"));
    assert!(output.status.success());
    let expected = match checked_out_commit() {
        Some(commit) => format!("exapp-janitor {} (git {commit})", env!("CARGO_PKG_VERSION")),
        None => format!("exapp-janitor {}", env!("CARGO_PKG_VERSION")),
    };
    assert_eq!(stdout(&output).trim(), expected);
}

#[tokio::test]
async fn the_health_check_says_the_version_and_the_commit() {
    let app = spawn_app().await;
    let health: Value = app
        .anon
        .get(app.url("/api/v1/health"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        health,
        json!({"status": "ok", "version": env!("CARGO_PKG_VERSION"), "commit": checked_out_commit()})
    );
}

#[tokio::test]
async fn every_page_says_the_version_in_its_footer() {
    let app = spawn_app().await;
    let footer = format!(
        r#"<footer class="version">exapp-janitor {}</footer>"#,
        version::VERSION
    );
    let (_, overview) = app.get_text("/").await;
    assert!(overview.contains(&footer), "{overview}");
    let login = app.anon.get(app.url("/login")).send().await.unwrap();
    let login = login.text().await.unwrap();
    assert!(login.contains(&footer), "also before a login: {login}");
}

/// The compiled `build.rs` of the test suite's own build (the newest, if
/// cargo kept several).
fn build_script() -> PathBuf {
    let dir = target_dir().join("debug/build");
    std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| {
            let path = e.ok()?.path().join("build-script-build");
            let name = path.parent()?.file_name()?.to_str()?.to_owned();
            (name.starts_with("exapp-janitor-") && path.is_file()).then_some(path)
        })
        .max_by_key(|p| std::fs::metadata(p).unwrap().modified().unwrap())
        .unwrap_or_else(|| panic!("no build script of exapp-janitor in {}", dir.display()))
}

/// The `cargo:rustc-env=` lines of the build script run on `dir`.
fn build_env(dir: &Path, commit_override: Option<&str>) -> Vec<String> {
    let mut command = Command::new(build_script());
    command
        .env("CARGO_MANIFEST_DIR", dir)
        .env("CARGO_PKG_VERSION", "9.8.7")
        .env_remove("EXAPP_JANITOR_GIT_COMMIT");
    if let Some(commit) = commit_override {
        command.env("EXAPP_JANITOR_GIT_COMMIT", commit);
    }
    let output = run(&mut command);
    assert!(output.status.success(), "{}", stderr(&output));
    stdout(&output)
        .lines()
        .filter_map(|l| l.strip_prefix("cargo:rustc-env="))
        .map(str::to_owned)
        .collect()
}

#[test]
fn a_build_outside_a_checkout_says_cargos_version_alone() {
    // A tarball unpacked on its own, and one unpacked inside another
    // repository (this one's target dir), whose commit is not its own.
    let outside = tempfile::tempdir().unwrap();
    let inside = scratch_dir("tarball");
    for dir in [outside.path(), inside.path()] {
        assert_eq!(
            build_env(dir, None),
            vec!["EXAPP_JANITOR_VERSION=9.8.7"],
            "{}",
            dir.display()
        );
    }
}

#[test]
fn a_packager_can_name_the_commit_of_a_tarball() {
    let tarball = tempfile::tempdir().unwrap();
    assert_eq!(
        build_env(tarball.path(), Some("0123456789ab")),
        vec![
            "EXAPP_JANITOR_COMMIT=0123456789ab",
            "EXAPP_JANITOR_VERSION=9.8.7 (git 0123456789ab)"
        ]
    );
}

/// `exapp-janitor health` with these arguments, outside any data dir.
fn health(args: &[&str]) -> std::process::Output {
    let dir = tempfile::tempdir().unwrap();
    let mut command = cli(&dir.path().join("data"));
    command
        .arg("health")
        .args(args)
        .env_remove("EXAPP_JANITOR_LISTEN");
    let output = run(&mut command);
    assert!(
        !dir.path().join("data").exists(),
        "the check opens no data dir"
    );
    output
}

#[tokio::test]
async fn health_exits_0_and_says_the_version_when_the_server_answers() {
    let dir = tempfile::tempdir().unwrap();
    let server = start_server(dir.path(), None);
    let listen = server.address.trim_start_matches("http://").to_owned();
    let output = off_runtime(move || health(&["--listen", &listen])).await;
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert_eq!(
        stdout(&output).trim(),
        format!(
            "ok: exapp-janitor {} at {}",
            version::VERSION,
            server.address
        )
    );
}

#[test]
fn health_exits_1_when_nothing_answers() {
    let closed = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = closed.local_addr().unwrap().to_string();
    drop(closed);
    let output = health(&["--listen", &address]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains(&format!("cannot reach http://{address}/api/v1/health")),
        "{}",
        stderr(&output)
    );
}

#[test]
fn health_exits_1_when_something_else_answers() {
    // A port that answers HTTP, but not as the janitor does.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        use std::io::{Read, Write};
        let (mut stream, _) = listener.accept().unwrap();
        let mut request = [0u8; 1024];
        let _ = stream.read(&mut request);
        let _ = stream.write_all(
            b"HTTP/1.1 404 Not Found\r\ncontent-length: 9\r\nconnection: close\r\n\r\nnot found",
        );
    });
    let output = health(&["--listen", &address]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("answered HTTP 404"),
        "{}",
        stderr(&output)
    );
}

#[tokio::test]
async fn health_reads_the_listen_address_from_the_config_file() {
    let dir = tempfile::tempdir().unwrap();
    let server = start_server(dir.path(), None);
    let config = dir.path().join("exapp-janitor.toml");
    let listen = server.address.trim_start_matches("http://").to_owned();
    std::fs::write(&config, format!("listen = \"{listen}\"\n")).unwrap();
    let output = off_runtime(move || health(&["--config", &config.to_string_lossy()])).await;
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
}
