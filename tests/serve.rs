//! `exapp-janitor serve` as an admin starts it.

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use common::*;
use serde_json::Value;

/// A `serve` process; killed when dropped.
struct Server {
    child: Child,
    address: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_server(data_dir: &Path, docker_host: Option<&str>) -> Server {
    let mut command = cli(data_dir);
    command
        .args(["serve", "--listen", "127.0.0.1:0"])
        .stderr(Stdio::piped())
        .stdout(Stdio::null());
    if let Some(host) = docker_host {
        command.env("DOCKER_HOST", host);
    }
    let mut child = command.spawn().unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some((_, addr)) = line.split_once("listening on ") {
                let _ = tx.send(addr.trim().to_owned());
            }
        }
    });
    let address = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("serve did not start listening");
    Server { child, address }
}

#[tokio::test]
async fn serve_on_an_empty_data_dir_creates_the_database_and_answers() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = start_server(&data, None);
    assert!(data.join("exapp-janitor.db").is_file());
    let overview = reqwest::get(format!("{}/", server.address)).await.unwrap();
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
    let daemons: Value = reqwest::get(format!("{}/api/v1/daemons", server.address))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(daemons[0]["name"], "local");
    assert_eq!(daemons[0]["endpoint"], engine_a_sock());
    assert_eq!(daemons[0]["reachable"], true);
    drop(server);

    let out = run(cli(dir.path()).args(["daemon", "remove", "local"]));
    assert!(out.status.success(), "{}", stderr(&out));
    let server = start_server(dir.path(), Some(&engine_a_sock()));
    let daemons: Value = reqwest::get(format!("{}/api/v1/daemons", server.address))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
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
