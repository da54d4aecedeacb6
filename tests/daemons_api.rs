//! `/api/v1/daemons` and `/api/v1/health` on a running server.

mod common;

use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};

#[tokio::test]
async fn health_answers_with_an_empty_data_dir() {
    let app = spawn_app().await;
    let response = app.get("/api/v1/health").await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.json::<Value>().await.unwrap()["status"], "ok");
}

#[tokio::test]
async fn a_tls_daemon_is_added_listed_and_removed() {
    let app = spawn_app().await;
    let tls = engine_b_tls();
    let body = json!({"name": "remote", "endpoint": tls.url, "tls_ca": tls.ca, "tls_cert": tls.cert, "tls_key": tls.key});
    let (status, created) = app.post_json("/api/v1/daemons", &body).await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(
        (
            created["reachable"].as_bool(),
            created["api_version"].as_str()
        ),
        (Some(true), Some("1.45"))
    );
    assert!(created["engine_version"]
        .as_str()
        .unwrap()
        .starts_with("26.1"));

    let listed = app.get_json("/api/v1/daemons").await;
    assert_eq!(listed.as_array().unwrap().len(), 1);
    assert!(
        !listed.to_string().contains(&tls.key),
        "the key path leaked: {listed}"
    );

    let response = app.api_delete("/api/v1/daemons/remote").await;
    assert_eq!(response.status(), 204);
    assert!(app.daemon_names().await.is_empty());
}

#[tokio::test]
async fn an_invalid_daemon_is_422_naming_each_field_and_nothing_is_stored() {
    let app = spawn_app().await;
    let cases = [
        (json!({"name": "a b", "endpoint": "unix:///x.sock"}), "name"),
        (
            json!({"name": "x".repeat(65), "endpoint": "unix:///x.sock"}),
            "name",
        ),
        (
            json!({"name": "ok", "endpoint": "gopher://x:1"}),
            "endpoint",
        ),
        (json!({"name": "ok", "endpoint": ""}), "endpoint"),
        (
            json!({"name": "ok", "endpoint": "https://h:2376", "tls_ca": "/no/ca.pem", "tls_cert": "/no/c.pem", "tls_key": "/no/k.pem"}),
            "tls_key",
        ),
    ];
    for (body, field) in cases {
        let (status, answer) = app.post_json("/api/v1/daemons", &body).await;
        assert_eq!(status, 422, "{body}: {answer}");
        assert!(answer["fields"][field].is_string(), "{body}: {answer}");
    }
    app.post_json(
        "/api/v1/daemons",
        &json!({"name": "taken", "endpoint": "unix:///x.sock"}),
    )
    .await;
    let (status, answer) = app
        .post_json(
            "/api/v1/daemons",
            &json!({"name": "taken", "endpoint": "unix:///y.sock"}),
        )
        .await;
    assert_eq!(status, 422);
    assert!(answer["fields"]["name"]
        .as_str()
        .unwrap()
        .contains("already exists"));
    assert_eq!(app.daemon_names().await, ["taken"]);
}

#[tokio::test]
async fn malformed_bodies_are_400_with_a_json_error() {
    let app = spawn_app().await;
    let bodies: [&[u8]; 5] = [
        b"{not json",
        br#"{"name": "x", "name": "y", "endpoint": "unix:///x.sock"}"#,
        br#"{"name": "x", "endpoint": "unix:///x.sock", "force": true}"#,
        b"\xff\xfe\x00garbage",
        br#""a string""#,
    ];
    for body in bodies {
        let response = app
            .http
            .post(app.url("/api/v1/daemons"))
            .bearer_auth(&app.api_token)
            .header("Content-Type", "application/json")
            .body(body.to_vec())
            .send()
            .await
            .unwrap();
        assert_eq!(
            response.status(),
            400,
            "{:?}",
            String::from_utf8_lossy(body)
        );
        let answer: Value = response.json().await.unwrap();
        assert!(answer["error"].is_string());
    }
    assert!(app.daemon_names().await.is_empty());
}

#[tokio::test]
async fn an_oversized_body_is_413() {
    let app = spawn_app().await;
    let body = json!({"name": "x", "endpoint": format!("unix:///{}", "a".repeat(100_000))});
    let (status, _) = app.post_json("/api/v1/daemons", &body).await;
    assert_eq!(status, 413);
    assert!(app.daemon_names().await.is_empty());
}

#[tokio::test]
async fn removing_an_unknown_daemon_is_404() {
    let app = spawn_app().await;
    let response = app.api_delete("/api/v1/daemons/ghost").await;
    assert_eq!(response.status(), 404);
}

#[tokio::test]
async fn hung_daemons_are_checked_at_once_and_never_delay_the_others() {
    let app = spawn_app().await;
    let holes: Vec<_> = (0..3).map(|_| black_hole()).collect();
    for (i, (_, url)) in holes.iter().enumerate() {
        app.post_json(
            "/api/v1/daemons",
            &json!({"name": format!("hung{i}"), "endpoint": url}),
        )
        .await;
    }
    app.post_json(
        "/api/v1/daemons",
        &json!({"name": "good", "endpoint": engine_a_sock()}),
    )
    .await;

    let started = Instant::now();
    let listed = app.get_json("/api/v1/daemons").await;
    // Three hung daemons checked one after another would take 3 timeouts.
    assert!(
        started.elapsed() < TEST_DAEMON_TIMEOUT * 2 + Duration::from_millis(500),
        "{:?}",
        started.elapsed()
    );
    for d in listed.as_array().unwrap() {
        let hung = d["name"].as_str().unwrap().starts_with("hung");
        assert_eq!(d["reachable"], !hung, "{d}");
        if hung {
            assert!(
                d["last_error"]
                    .as_str()
                    .unwrap()
                    .contains("no answer within"),
                "{d}"
            );
        }
    }
}

#[tokio::test]
async fn a_stopped_daemon_is_unreachable_while_the_other_still_answers() {
    let app = spawn_app().await;
    app.post_json(
        "/api/v1/daemons",
        &json!({"name": "spare", "endpoint": SpareEngine::sock()}),
    )
    .await;
    app.post_json(
        "/api/v1/daemons",
        &json!({"name": "steady", "endpoint": engine_b_sock()}),
    )
    .await;
    let stopped = SpareEngine::stop().await;
    let listed = app.get_json("/api/v1/daemons").await;
    stopped.restart().await;

    let by_name = |n: &str| {
        listed
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["name"] == n)
            .unwrap()
            .clone()
    };
    let (spare, steady) = (by_name("spare"), by_name("steady"));
    assert_eq!(spare["reachable"], false, "{spare}");
    assert!(
        spare["last_error"].as_str().unwrap().contains("no socket"),
        "{spare}"
    );
    assert_eq!(
        spare["engine_version"]
            .as_str()
            .map(|v| v.starts_with("20.10")),
        Some(true),
        "last known engine kept"
    );
    assert_eq!(steady["reachable"], true, "{steady}");

    // Back up: reachable again, and the last error is still on record.
    let listed = app.get_json("/api/v1/daemons").await;
    let spare = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["name"] == "spare")
        .unwrap();
    assert_eq!(spare["reachable"], true, "{spare}");
    assert!(spare["last_error"].is_string());
}
