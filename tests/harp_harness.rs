//! The harness's real HaRP v0.4.4 works: it answers as that version, sends
//! Docker calls to engine A or B by `docker-engine-port`, runs its own Docker
//! actions on the engine that port names, and refuses listings. These are the
//! assumptions a HaRP daemon backend of the janitor builds on.

mod common;

use common::fixtures::Fixtures;
use common::harp::{harp, Harp, DOCKER_API};
use reqwest::Method;
use serde_json::{json, Value};

const ENGINE_A_API: &str = "1.41";
const ENGINE_B_API: &str = "1.45";

/// `GET /v1.41/images/{id}/json` through HaRP on `port`: (status, body).
async fn inspect_image(harp: &Harp, port: u16, id: &str) -> (u16, Value) {
    let response = harp
        .engine_request(port, Method::GET, &format!("{DOCKER_API}/images/{id}/json"))
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// Through `port`, the ping reaches an engine of API `api`, and an image this
/// test imports into that engine (by `sock`) is there, and not behind `other`.
async fn port_reaches_engine(port: u16, other: u16, api: &str, sock: &str) {
    let harp = harp();
    let response = harp
        .engine_request(port, Method::GET, &format!("{DOCKER_API}/_ping"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "ping through HaRP, port {port}");
    assert_eq!(
        response.headers()["api-version"],
        api,
        "port {port} reaches another engine"
    );
    assert_eq!(response.text().await.unwrap(), "OK");

    let fx = Fixtures::new(sock);
    let reference = format!("ghcr.io/{}/harp:1", fx.unique("nc"));
    let id = fx.import(&reference, &[("payload", 4096)]);
    let (status, image) = inspect_image(&harp, port, &id).await;
    assert_eq!(status, 200, "{image}");
    assert_eq!(image["Id"], id.as_str());
    assert_eq!(image["RepoTags"], json!([reference]));
    let (status, _) = inspect_image(&harp, port, &reference).await;
    assert_eq!(status, 200, "inspect by reference");
    let (status, body) = inspect_image(&harp, other, &id).await;
    assert_eq!(status, 404, "the image is on one engine only: {body}");
}

#[tokio::test]
async fn info_answers_as_harp_0_4_4() {
    let response = harp().request(Method::GET, "/info").send().await.unwrap();
    assert_eq!(response.status(), 200);
    let info: Value = response.json().await.unwrap();
    assert_eq!(info["version"], "0.4.4", "{info}");
    assert_eq!(info["docker"], true, "{info}");
}

#[tokio::test]
async fn port_a_is_engine_a() {
    let harp = harp();
    port_reaches_engine(
        harp.port_a,
        harp.port_b,
        ENGINE_A_API,
        &common::engine_a_sock(),
    )
    .await;
}

#[tokio::test]
async fn port_b_is_engine_b_through_the_bridge() {
    let harp = harp();
    port_reaches_engine(
        harp.port_b,
        harp.port_a,
        ENGINE_B_API,
        &common::engine_b_sock(),
    )
    .await;
}

/// The agent's own Docker actions (`/docker/exapp/…`, which the agent runs
/// itself rather than passing on) reach the engine `docker-engine-port` names.
#[tokio::test]
async fn harp_actions_run_on_the_engine_of_the_port() {
    let harp = harp();
    let fx = Fixtures::new(&common::engine_b_sock());
    let reference = format!("ghcr.io/{}/harp:2", fx.unique("nc"));
    fx.import(&reference, &[("payload", 1024)]);
    let name = fx.unique("harp").replace('-', "_");
    fx.create(&format!("nc_app_{name}"), &reference);

    let exists = |port: u16| {
        harp.engine_request(port, Method::POST, "/docker/exapp/exists")
            .json(&json!({"name": name, "instance_id": "", "role_suffix": ""}))
            .send()
    };
    let response = exists(harp.port_b).await.unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body, json!({"exists": true, "image_ref": reference}));

    let response = exists(harp.port_a).await.unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body, json!({"exists": false}), "engine A has no such ExApp");
}

/// No listing through HaRP: a HaRP backend must work from names it knows.
#[tokio::test]
async fn listings_are_forbidden() {
    let harp = harp();
    for path in ["/images/json", "/containers/json"] {
        let response = harp
            .engine_request(harp.port_a, Method::GET, &format!("{DOCKER_API}{path}"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 403, "GET {path}");
    }
}

/// The suite's only wrong-key request (HaRP counts them towards a ban).
#[tokio::test]
async fn a_wrong_key_is_refused() {
    let harp = harp();
    let response = Harp::client()
        .get(harp.app_api("/info"))
        .header("harp-shared-key", format!("{}-wrong", harp.key))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
}
