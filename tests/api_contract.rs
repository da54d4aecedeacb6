//! The JSON API as a documented contract: the OpenAPI document at
//! `/api/v1/openapi.json` lists exactly the operations the server routes,
//! and schemathesis, fuzzing every operation against that document on a
//! server with two real daemons, finds no server error and no answer the
//! document does not describe.

mod common;

use std::collections::BTreeSet;
use std::process::Stdio;
use std::time::Duration;

use common::fixtures::Fixtures;
use common::*;
use serde_json::{json, Value};

/// Every operation of DESIGN.md's API, as `METHOD path`.
const OPERATIONS: [&str; 22] = [
    "GET /api/v1/health",
    "GET /api/v1/openapi.json",
    "GET /api/v1/daemons",
    "POST /api/v1/daemons",
    "DELETE /api/v1/daemons/{name}",
    "POST /api/v1/daemons/{name}/exapps",
    "POST /api/v1/scan",
    "GET /api/v1/images",
    "GET /api/v1/settings",
    "PATCH /api/v1/settings",
    "POST /api/v1/cleanup/preview",
    "GET /api/v1/cleanup/runs",
    "POST /api/v1/cleanup/runs",
    "GET /api/v1/cleanup/runs/{id}",
    "POST /api/v1/cleanup/jobs/{id}/cancel",
    "GET /api/v1/nextcloud",
    "PUT /api/v1/nextcloud",
    "DELETE /api/v1/nextcloud",
    "POST /api/v1/nextcloud/test",
    "POST /api/v1/nextcloud/refresh",
    "POST /api/v1/nextcloud/proposals/{daemon}/accept",
    "POST /api/v1/nextcloud/proposals/{daemon}/refuse",
];

/// `METHOD path` of every operation the document lists.
fn documented(doc: &Value) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for method in item.as_object().unwrap().keys() {
            out.insert(format!("{} {path}", method.to_uppercase()));
        }
    }
    out
}

#[tokio::test]
async fn the_openapi_document_is_served_without_a_token() {
    let app = spawn_app().await;
    let response = app
        .anon
        .get(app.url("/api/v1/openapi.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let doc: Value = response.json().await.unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    assert_eq!(
        doc["components"]["securitySchemes"]["token"]["scheme"], "bearer",
        "the token scheme is described: {doc}"
    );
}

#[tokio::test]
async fn the_document_lists_exactly_the_operations_of_the_api() {
    let app = spawn_app().await;
    let doc = app.get_json("/api/v1/openapi.json").await;
    let expected: BTreeSet<String> = OPERATIONS.iter().map(|s| s.to_string()).collect();
    assert_eq!(documented(&doc), expected);
}

#[tokio::test]
async fn every_documented_operation_reaches_its_handler() {
    let app = spawn_app().await;
    let doc = app.get_json("/api/v1/openapi.json").await;
    let http = reqwest::Client::new();
    for operation in documented(&doc) {
        let (method, path) = operation.split_once(' ').unwrap();
        let path = path
            .replace("{name}", "no-such-daemon")
            .replace("{id}", "999999");
        let method: reqwest::Method = method.parse().unwrap();
        let mut request = http
            .request(method.clone(), app.url(&path))
            .bearer_auth(&app.api_token);
        if method != reqwest::Method::GET && method != reqwest::Method::DELETE {
            request = request
                .header("content-type", "application/json")
                .body("{}");
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let body = response.text().await.unwrap();
        assert!(
            status != 405 && !body.contains("no such API endpoint"),
            "{operation} is documented but not routed: {status} {body}"
        );
        // An operation that needs the token really refuses a request without it.
        if !path.ends_with("/health") && !path.ends_with("/openapi.json") {
            let anon = app
                .anon
                .request(method, app.url(&path))
                .send()
                .await
                .unwrap();
            assert_eq!(anon.status(), 401, "{operation} without a token");
        }
    }
}

/// The schemathesis executable the harness installed.
fn schemathesis() -> String {
    harness_var("EXAPP_JANITOR_TEST_SCHEMATHESIS")
}

#[tokio::test]
async fn schemathesis_finds_no_server_error_and_no_answer_outside_the_document() {
    // A daemon that does not answer in time is a 502 by design; under a
    // loaded CI the suite's 2 s would make that a matter of luck.
    let app = spawn_app_with(|app| app.daemon_timeout = Duration::from_secs(20)).await;
    add_daemon(&app, "a", &engine_a_sock()).await;
    let tls = engine_b_tls();
    let (status, body) = app
        .post_json(
            "/api/v1/daemons",
            &json!({"name": "b", "endpoint": tls.url, "tls_ca": tls.ca, "tls_cert": tls.cert, "tls_key": tls.key}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    // Real content for the answers to be checked against: on each daemon an
    // ExApp with outdated images. No worker runs, so the runs schemathesis
    // starts stay queued and nothing is removed from the shared engines.
    exapp(&Fixtures::new(&engine_a_sock()), "contract_a", 2);
    exapp(&Fixtures::new(&engine_b_sock()), "contract_b", 1);
    let (status, _) = app.post_json("/api/v1/scan", &json!({})).await;
    assert_eq!(status, 200);

    let seed =
        std::env::var("EXAPP_JANITOR_TEST_SCHEMATHESIS_SEED").unwrap_or_else(|_| "20261203".into());
    // schemathesis keeps a cache of crashes under its working directory:
    // a scratch one, so a test run never changes a file of the repository.
    let scratch = tempfile::tempdir().unwrap();
    let output = tokio::process::Command::new(schemathesis())
        .current_dir(scratch.path())
        .arg("run")
        .arg(app.url("/api/v1/openapi.json"))
        .args([
            "--header",
            &format!("Authorization: Bearer {}", app.api_token),
        ])
        // Every check but two that ask more than a contract can promise:
        // `positive_data_acceptance` expects a 2xx for any value the schema
        // allows, but a daemon endpoint or a glob can be well-formed and
        // still refused (422); `unsupported_method` expects 405 where the
        // API answers 404 for a method it does not have.
        .args(["--checks", "all"])
        .args([
            "--exclude-checks",
            "positive_data_acceptance,unsupported_method",
        ])
        .args(["--max-examples", "40", "--seed", &seed])
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .output()
        .await
        .expect("run schemathesis");
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        output.status.success(),
        "schemathesis found answers outside the document (each with the curl that reproduces it):\n{report}"
    );
    let cases = generated_cases(&report);
    assert!(
        cases >= 300,
        "at least a few hundred cases, not {cases}:\n{report}"
    );
    println!("{report}");
}

/// `N` of schemathesis's "Test cases: N generated, …".
fn generated_cases(report: &str) -> u64 {
    let line = report
        .lines()
        .find(|l| l.contains(" generated,"))
        .unwrap_or_else(|| panic!("no count of test cases in:\n{report}"));
    line.split_whitespace()
        .find_map(|w| w.parse().ok())
        .unwrap_or_else(|| panic!("no number in {line:?}"))
}

#[tokio::test]
async fn a_cleanup_body_may_be_left_out_but_is_never_null() {
    let app = spawn_app().await;
    let doc = app.get_json("/api/v1/openapi.json").await;
    for path in ["/api/v1/cleanup/preview", "/api/v1/cleanup/runs"] {
        let body = &doc["paths"][path]["post"]["requestBody"];
        assert_eq!(body["required"], false, "{path}: {body}");
        let schema = &body["content"]["application/json"]["schema"];
        assert!(!schema.to_string().contains("null"), "{path}: {schema}");
        let (status, answer) = app.post_json(path, &Value::Null).await;
        assert_eq!(status, 400, "{path}: null is not a JSON object: {answer}");
    }
}
