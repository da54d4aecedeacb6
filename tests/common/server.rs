//! `exapp-janitor serve` as a separate process, for tests that start,
//! stop and kill it.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::Value;

use super::{cli, TEST_PASSWORD};

pub const TOKEN: &str = "serve-test-token-0123456789abcdefghij";

/// A `serve` process; killed when dropped.
pub struct Server {
    pub child: Child,
    pub address: String,
    /// Every log line so far.
    log: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl Server {
    /// POSTs JSON to the API; (status, body).
    pub async fn api_post(&self, path: &str, body: &Value) -> (u16, Value) {
        let response = reqwest::Client::new()
            .post(format!("{}{path}", self.address))
            .bearer_auth(TOKEN)
            .json(body)
            .send()
            .await
            .unwrap();
        (
            response.status().as_u16(),
            response.json().await.unwrap_or(Value::Null),
        )
    }

    /// Polls a run until it has finished (or panics after `limit`).
    pub async fn wait_for_run(&self, run_id: i64, limit: Duration) -> Value {
        let started = std::time::Instant::now();
        loop {
            let run = self.api(&format!("/api/v1/cleanup/runs/{run_id}")).await;
            if run["status"] == "finished" {
                return run;
            }
            assert!(
                started.elapsed() < limit,
                "run {run_id} did not finish within {limit:?}: {}",
                run["counts"]
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Kills the process the hard way (SIGKILL), as a crash would.
    pub fn kill_hard(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub async fn api(&self, path: &str) -> Value {
        reqwest::Client::new()
            .get(format!("{}{path}", self.address))
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// A wrong password posted through a proxy that names `client` in
    /// `X-Forwarded-For`; the log lines the failure wrote.
    pub async fn fail_login_via_proxy(&self, client: &str) -> Vec<String> {
        let answer = reqwest::Client::new()
            .post(format!("{}/login", self.address))
            .header("X-Forwarded-For", client)
            .form(&[("password", "wrong password!"), ("next", "/")])
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 401);
        self.log_lines_containing("failed login")
    }

    pub fn log_lines_containing(&self, needle: &str) -> Vec<String> {
        let log = self.log.lock().unwrap();
        log.iter().filter(|l| l.contains(needle)).cloned().collect()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn start_server(data_dir: &Path, docker_host: Option<&str>) -> Server {
    start_server_with(data_dir, docker_host, Some(TEST_PASSWORD))
}

pub fn start_server_with(
    data_dir: &Path,
    docker_host: Option<&str>,
    password: Option<&str>,
) -> Server {
    start_server_env(data_dir, docker_host, password, &[])
}

/// `serve` with extra environment variables.
pub fn start_server_env(
    data_dir: &Path,
    docker_host: Option<&str>,
    password: Option<&str>,
    env: &[(&str, &str)],
) -> Server {
    let mut command = cli(data_dir);
    command.envs(env.iter().copied());
    command
        .args(["serve", "--listen", "127.0.0.1:0"])
        .env("EXAPP_JANITOR_API_TOKEN", TOKEN)
        .env_remove("EXAPP_JANITOR_ADMIN_PASSWORD")
        .stderr(Stdio::piped())
        .stdout(Stdio::null());
    if let Some(password) = password {
        command.env("EXAPP_JANITOR_ADMIN_PASSWORD", password);
    }
    if let Some(host) = docker_host {
        command.env("DOCKER_HOST", host);
    }
    let mut child = command.spawn().unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = mpsc::channel();
    let log = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let sink = log.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            sink.lock().unwrap().push(line.clone());
            if let Some((_, addr)) = line.split_once("listening on ") {
                let _ = tx.send(addr.trim().to_owned());
            }
        }
    });
    let address = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("serve did not start listening");
    Server {
        child,
        address,
        log,
    }
}
