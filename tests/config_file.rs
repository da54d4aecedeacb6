//! `--config FILE`: a TOML file with the flags' settings, under flags and
//! the environment.

mod common;

use std::path::Path;
use std::process::Command;

use common::server::{start_server_env, Server};
use common::*;

/// The binary with nothing from this test process's environment.
fn janitor() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_exapp-janitor"));
    for var in [
        "EXAPP_JANITOR_DATA_DIR",
        "EXAPP_JANITOR_CONFIG",
        "DOCKER_HOST",
    ] {
        command.env_remove(var);
    }
    command
}

fn write_config(dir: &Path, text: &str) -> std::path::PathBuf {
    let path = dir.join("janitor.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// `serve` with this config file. The harness's `--data-dir` and `--listen`
/// flags beat the file's, keeping the server in `dir` and on a free port.
fn serve_with_config(dir: &Path, text: &str) -> Server {
    let config = write_config(dir, text);
    start_server_env(
        &dir.join("data"),
        None,
        Some(TEST_PASSWORD),
        &[("EXAPP_JANITOR_CONFIG", config.to_str().unwrap())],
    )
}

fn has_database(dir: &Path) -> bool {
    dir.join("exapp-janitor.db").exists()
}

#[test]
fn a_cli_command_uses_the_data_dir_the_file_names() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("from-file");
    let config = write_config(dir.path(), &format!("data_dir = {:?}\n", data));

    let out =
        run(janitor()
            .arg("--config")
            .arg(&config)
            .args(["settings", "set", "keep_previous=2"]));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));

    let shown = run(cli(&data).args(["settings", "show", "--json"]));
    let settings: serde_json::Value = serde_json::from_slice(&shown.stdout).unwrap();
    assert_eq!(settings["keep_previous"], 2);
}

#[test]
fn the_environment_beats_the_file_and_a_flag_beats_both() {
    let dir = tempfile::tempdir().unwrap();
    let [file_dir, env_dir, flag_dir] = ["file", "env", "flag"].map(|d| dir.path().join(d));
    let config = write_config(dir.path(), &format!("data_dir = {:?}\n", file_dir));

    let out = run(janitor()
        .env("EXAPP_JANITOR_CONFIG", &config)
        .env("EXAPP_JANITOR_DATA_DIR", &env_dir)
        .args(["daemon", "list"]));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(has_database(&env_dir) && !has_database(&file_dir));

    let out = run(janitor()
        .env("EXAPP_JANITOR_CONFIG", &config)
        .env("EXAPP_JANITOR_DATA_DIR", &env_dir)
        .arg("--data-dir")
        .arg(&flag_dir)
        .args(["daemon", "list"]));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(has_database(&flag_dir) && !has_database(&file_dir));
}

#[test]
fn an_unknown_key_is_bad_input_naming_the_file_and_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let config = write_config(
        dir.path(),
        &format!("data_dir = {:?}\nlisten_port = 8080\n", data),
    );
    let out = run(janitor()
        .arg("--config")
        .arg(&config)
        .args(["daemon", "list"]));
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(
        err.contains(&format!(
            "{}: `listen_port` is not a setting",
            config.display()
        )),
        "{err}"
    );
    assert!(err.contains("listen, "), "the known keys are listed: {err}");
    assert!(!has_database(&data), "nothing created on bad input");
}

#[test]
fn a_value_outside_its_flags_limits_is_bad_input() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), "daemon_timeout_secs = 0\n");
    let out = run(cli(&dir.path().join("data"))
        .env_remove("EXAPP_JANITOR_DAEMON_TIMEOUT_SECS")
        .arg("--config")
        .arg(&config)
        .args(["daemon", "list"]));
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(
        err.contains("`daemon_timeout_secs`") && err.contains("0 is not in 1..=300"),
        "{err}"
    );
    assert!(!has_database(&dir.path().join("data")));
}

#[test]
fn scan_concurrency_outside_1_to_64_is_bad_input_from_a_flag_the_environment_or_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    for bad in ["0", "65", "-1", "many"] {
        let flag = run(cli(&data)
            .env_remove("EXAPP_JANITOR_SCAN_CONCURRENCY")
            .arg(format!("--scan-concurrency={bad}"))
            .args(["daemon", "list"]));
        let env = run(cli(&data)
            .env("EXAPP_JANITOR_SCAN_CONCURRENCY", bad)
            .args(["daemon", "list"]));
        for (how, out) in [("flag", flag), ("environment", env)] {
            assert_eq!(out.status.code(), Some(2), "{how} {bad}: {}", stderr(&out));
            let err = stderr(&out);
            assert!(
                err.contains(&format!("invalid value '{bad}'"))
                    && err.contains("--scan-concurrency"),
                "{how} {bad}: {err}"
            );
        }
    }
    let config = write_config(dir.path(), "scan_concurrency = 65\n");
    let out = run(cli(&data)
        .env_remove("EXAPP_JANITOR_SCAN_CONCURRENCY")
        .arg("--config")
        .arg(&config)
        .args(["daemon", "list"]));
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(
        err.contains("`scan_concurrency`") && err.contains("65 is not in 1..=64"),
        "{err}"
    );
    assert!(!has_database(&data), "nothing created on bad input");

    // The limits themselves are accepted, from the file too.
    let config = write_config(dir.path(), "scan_concurrency = 64\n");
    for args in [
        &["--scan-concurrency", "1", "daemon", "list"][..],
        &["--config", config.to_str().unwrap(), "daemon", "list"][..],
    ] {
        let out = run(cli(&data)
            .env_remove("EXAPP_JANITOR_SCAN_CONCURRENCY")
            .args(args));
        assert_eq!(out.status.code(), Some(0), "{args:?}: {}", stderr(&out));
    }
}

#[test]
fn a_missing_or_broken_file_is_bad_input_with_its_line() {
    let dir = tempfile::tempdir().unwrap();
    let out =
        run(janitor()
            .current_dir(dir.path())
            .args(["--config", "nowhere.toml", "daemon", "list"]));
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("cannot read the config file nowhere.toml"),
        "{}",
        stderr(&out)
    );

    let config = write_config(dir.path(), "listen = \"127.0.0.1:1\"\nmetrics_public\n");
    let out = run(janitor()
        .current_dir(dir.path())
        .arg("--config")
        .arg(&config)
        .args(["daemon", "list"]));
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("is not valid TOML: line 2:"),
        "{}",
        stderr(&out)
    );
    assert!(!has_database(&dir.path().join("data")));
}

#[tokio::test]
async fn serve_takes_its_settings_from_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let server = serve_with_config(
        dir.path(),
        "trusted_proxies = [\"10.0.0.0/8\", \"127.0.0.1\"]\nmetrics_public = true\n",
    );

    let metrics = reqwest::get(format!("{}/metrics", server.address))
        .await
        .unwrap();
    assert_eq!(metrics.status(), 200, "metrics_public from the file");

    let lines = server.fail_login_via_proxy("203.0.113.7").await;
    assert!(
        lines.len() == 1 && lines[0].contains("client=203.0.113.7"),
        "trusted_proxies from the file: {lines:?}"
    );
}

#[tokio::test]
async fn the_readmes_example_file_starts_the_server() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let example = readme
        .split("```toml\n")
        .nth(1)
        .and_then(|rest| rest.split("```").next())
        .expect("README.md has a ```toml example");
    let dir = tempfile::tempdir().unwrap();
    let server = serve_with_config(dir.path(), example);
    let health = reqwest::get(format!("{}/api/v1/health", server.address))
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
}
