//! `exapp-janitor daemon add|list|remove` against the real engines.

mod common;

use common::*;
use serde_json::Value;

fn list_json(data: &std::path::Path) -> Vec<Value> {
    let out = run(cli(data).args(["daemon", "list", "--json"]));
    assert!(out.status.success(), "{}", stderr(&out));
    serde_json::from_str::<Value>(&stdout(&out))
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

#[test]
fn add_list_and_remove_a_unix_and_a_tls_daemon() {
    let dir = tempfile::tempdir().unwrap();
    let tls = engine_b_tls();
    let out = run(cli(dir.path()).args(["daemon", "add", "old-engine", &engine_a_sock()]));
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("Docker Engine 20.10"),
        "{}",
        stdout(&out)
    );
    let out = run(cli(dir.path()).args([
        "daemon",
        "add",
        "gpu.host_2",
        &tls.url,
        "--tls-ca",
        &tls.ca,
        "--tls-cert",
        &tls.cert,
        "--tls-key",
        &tls.key,
    ]));
    assert!(out.status.success(), "{}", stderr(&out));

    let listed = list_json(dir.path());
    let summary: Vec<(&str, bool, &str, bool)> = listed
        .iter()
        .map(|d| {
            (
                d["name"].as_str().unwrap(),
                d["reachable"].as_bool().unwrap(),
                d["api_version"].as_str().unwrap(),
                d["tls"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            ("gpu.host_2", true, "1.45", true),
            ("old-engine", true, "1.41", false)
        ]
    );
    assert!(!stdout(&run(cli(dir.path()).args(["daemon", "list", "--json"]))).contains(&tls.key));

    let table = stdout(&run(cli(dir.path()).args(["daemon", "list"])));
    assert!(
        table.contains("old-engine") && table.contains("(API 1.41)") && table.contains("up"),
        "{table}"
    );

    let out = run(cli(dir.path()).args(["daemon", "remove", "old-engine"]));
    assert!(out.status.success(), "{}", stderr(&out));
    let names: Vec<Value> = list_json(dir.path())
        .iter()
        .map(|d| d["name"].clone())
        .collect();
    assert_eq!(names, ["gpu.host_2"]);
}

#[test]
fn an_unreachable_daemon_is_stored_and_listed_with_its_error() {
    let dir = tempfile::tempdir().unwrap();
    let out =
        run(cli(dir.path()).args(["daemon", "add", "later", "unix:///run/not-yet/docker.sock"]));
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("does not answer now"),
        "{}",
        stdout(&out)
    );
    let listed = list_json(dir.path());
    assert_eq!(listed[0]["reachable"], false);
    assert!(listed[0]["last_error"]
        .as_str()
        .unwrap()
        .contains("/run/not-yet/docker.sock"));
}

#[test]
fn bad_input_exits_2_with_the_reason_and_stores_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let tls = engine_b_tls();
    let long = "x".repeat(65);
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["bad name", "unix:///x.sock"], "name:"),
        (vec!["<script>", "unix:///x.sock"], "name:"),
        (vec![&long, "unix:///x.sock"], "at most 64"),
        (vec!["x", "ssh://host"], "unsupported scheme"),
        (vec!["x", "tcp://host"], "port"),
        (vec!["x", "not an endpoint"], "endpoint:"),
        (vec!["x", "https://127.0.0.1:2376"], "TLS"),
        (
            vec![
                "x",
                &tls.url,
                "--tls-ca",
                "/no/such/ca.pem",
                "--tls-cert",
                &tls.cert,
                "--tls-key",
                &tls.key,
            ],
            "tls_ca: /no/such/ca.pem: no such file",
        ),
        (
            vec![
                "x",
                &tls.url,
                "--tls-ca",
                "/tmp",
                "--tls-cert",
                &tls.cert,
                "--tls-key",
                &tls.key,
            ],
            "not a regular file",
        ),
        (
            vec!["x", &tls.url, "--tls-ca", &tls.ca],
            "tls_cert: required",
        ),
        (
            vec!["x", "tcp://127.0.0.1:2375", "--tls-ca", &tls.ca],
            "only to https://",
        ),
    ];
    for (args, expected) in cases {
        let out = run(cli(dir.path()).args(["daemon", "add"]).args(&args));
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert!(
            stderr(&out).contains(expected),
            "{args:?}: {}",
            stderr(&out)
        );
    }
    assert!(list_json(dir.path()).is_empty());
}

#[test]
fn a_duplicate_name_exits_2_and_keeps_the_first() {
    let dir = tempfile::tempdir().unwrap();
    assert!(
        run(cli(dir.path()).args(["daemon", "add", "a", &engine_a_sock()]))
            .status
            .success()
    );
    let out = run(cli(dir.path()).args(["daemon", "add", "a", &engine_b_sock()]));
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("already exists"));
    assert_eq!(list_json(dir.path())[0]["endpoint"], engine_a_sock());
}

#[test]
fn removing_an_unknown_daemon_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(cli(dir.path()).args(["daemon", "remove", "ghost"]));
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("no daemon named \"ghost\""),
        "{}",
        stderr(&out)
    );
}

#[test]
fn an_unknown_flag_is_bad_input() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(cli(dir.path()).args(["daemon", "add", "x", "unix:///x.sock", "--force"]));
    assert_eq!(out.status.code(), Some(2));
}
