//! The Nextcloud connection (issue #20) against a Nextcloud stand-in
//! (`common::nextcloud`; Nextcloud cannot run here) that answers in AppAPI's
//! documented shapes. Everything else is real: the server, SQLite, the CLI
//! binary, and the harness's Docker engine for an accepted Docker daemon.

mod common;

use std::time::Duration;

use common::nextcloud::{self as nc, Nextcloud};
use common::*;
use serde_json::{json, Value};

async fn put_nextcloud(app: &TestApp, body: &Value) -> (u16, Value) {
    app.put_json("/api/v1/nextcloud", body).await
}

/// The proposal of AppAPI's daemon `name` in a view of the connection.
fn proposal<'a>(view: &'a Value, name: &str) -> &'a Value {
    view["proposals"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["appapi_daemon"] == name)
        .unwrap_or_else(|| panic!("no proposal for {name} in {view}"))
}

/// `value` is a text starting with `start` (an error in words).
#[track_caller]
fn starts_with(value: &Value, start: &str) {
    assert!(
        value.as_str().is_some_and(|text| text.starts_with(start)),
        "{value} does not start with {start:?}"
    );
}

fn login(nextcloud: &Nextcloud, user: &str, password: &str) -> Value {
    json!({"url": nextcloud.url, "user": user, "app_password": password})
}

/// The app connected as the stand-in's admin.
async fn connected() -> (TestApp, Nextcloud) {
    let nextcloud = Nextcloud::start().await;
    let app = spawn_app().await;
    let (status, body) =
        put_nextcloud(&app, &login(&nextcloud, nc::ADMIN, nc::ADMIN_PASSWORD)).await;
    assert_eq!(status, 200, "connect: {body}");
    (app, nextcloud)
}

async fn accept_harp(app: &TestApp) -> Value {
    let (status, body) = app
        .post_json(
            "/api/v1/nextcloud/proposals/harp_proxy_docker/accept",
            &json!({"harp_key": "the-harp-shared-key"}),
        )
        .await;
    assert_eq!(status, 200, "accept: {body}");
    body
}

async fn harp_exapps(app: &TestApp) -> Vec<String> {
    let daemon = app
        .app
        .store
        .list_daemons()
        .await
        .unwrap()
        .into_iter()
        .find(|d| d.name.as_str() == "harp_proxy_docker")
        .expect("the accepted HaRP daemon");
    daemon
        .harp
        .expect("a HaRP daemon")
        .exapps
        .iter()
        .map(|a| a.to_string())
        .collect()
}

fn exapp_ids(view: &Value) -> Vec<String> {
    view["exapps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn connect_and_test_show_the_nextcloud_and_app_api_versions() {
    let (app, _nextcloud) = connected().await;
    let view = app.get_json("/api/v1/nextcloud").await;
    assert_eq!(view["connected"], true, "{view}");
    assert_eq!(view["nextcloud_version"], nc::NC_VERSION, "{view}");
    assert_eq!(view["app_api_version"], nc::APP_API_VERSION, "{view}");
    assert_eq!(
        exapp_ids(&view),
        ["context_chat_backend", "llm2"],
        "AppAPI's ExApps were read on connect: {view}"
    );
    let (_, overview) = app.get_text("/").await;
    assert!(
        overview.contains("accept or refuse them"),
        "the overview points to the proposals: {overview}"
    );
    let (status, versions) = app.post_json("/api/v1/nextcloud/test", &json!({})).await;
    assert_eq!(status, 200, "{versions}");
    assert_eq!(
        versions,
        json!({"nextcloud": nc::NC_VERSION, "app_api": nc::APP_API_VERSION})
    );
}

#[tokio::test]
async fn a_wrong_password_is_refused_in_words_and_changes_nothing() {
    let nextcloud = Nextcloud::start().await;
    let app = spawn_app().await;
    let (status, body) = put_nextcloud(
        &app,
        &login(&nextcloud, nc::ADMIN, "wrong-wrong-wrong-wrong-wrong"),
    )
    .await;
    assert_eq!(status, 502, "{body}");
    starts_with(&body["error"], "wrong app password");
    let view = app.get_json("/api/v1/nextcloud").await;
    assert_eq!(view["connected"], false, "nothing was stored: {view}");
}

#[tokio::test]
async fn a_user_who_is_not_an_admin_is_refused_in_words() {
    let nextcloud = Nextcloud::start().await;
    let app = spawn_app().await;
    let (status, body) = put_nextcloud(&app, &login(&nextcloud, nc::USER, nc::USER_PASSWORD)).await;
    assert_eq!(status, 502, "{body}");
    starts_with(&body["error"], "this user is not an admin");
    assert_eq!(app.get_json("/api/v1/nextcloud").await["connected"], false);
}

#[tokio::test]
async fn a_nextcloud_without_app_api_is_refused_in_words() {
    let nextcloud = Nextcloud::start_with(nc::State {
        app_api: false,
        ..Default::default()
    })
    .await;
    let app = spawn_app().await;
    let (status, body) =
        put_nextcloud(&app, &login(&nextcloud, nc::ADMIN, nc::ADMIN_PASSWORD)).await;
    assert_eq!(status, 502, "{body}");
    starts_with(&body["error"], "AppAPI is not installed");
}

#[tokio::test]
async fn https_to_a_plain_http_nextcloud_is_a_tls_problem_in_words() {
    let nextcloud = Nextcloud::start().await;
    let app = spawn_app().await;
    let url = nextcloud.url.replace("http://", "https://");
    let (status, body) = put_nextcloud(
        &app,
        &json!({"url": url, "user": nc::ADMIN, "app_password": nc::ADMIN_PASSWORD}),
    )
    .await;
    assert_eq!(status, 502, "{body}");
    assert!(
        body["error"].as_str().unwrap().starts_with("TLS problem: "),
        "{body}"
    );
}

#[tokio::test]
async fn nextcloud_down_keeps_the_last_snapshot_and_says_so() {
    let (app, nextcloud) = connected().await;
    accept_harp(&app).await;
    let before = harp_exapps(&app).await;
    assert_eq!(before, ["context_chat_backend", "llm2"]);

    nextcloud.stop().await;
    let (status, body) = app.post_json("/api/v1/nextcloud/refresh", &json!({})).await;
    assert_eq!(status, 502, "{body}");
    starts_with(&body["error"], "Nextcloud did not answer");
    let view = app.get_json("/api/v1/nextcloud").await;
    assert_eq!(
        exapp_ids(&view),
        ["context_chat_backend", "llm2"],
        "no answer is not 'no ExApps': {view}"
    );
    starts_with(&view["error"], "Nextcloud did not answer");
    assert_eq!(
        harp_exapps(&app).await,
        before,
        "the HaRP daemon still looks for the ExApps it knew"
    );
    let (_, page) = app.get_text("/settings/nextcloud").await;
    assert!(
        page.contains("goes on with AppAPI") && page.contains("Nextcloud did not answer"),
        "the Settings section says so: {page}"
    );
    let (_, overview) = app.get_text("/").await;
    assert!(
        overview.contains("id=\"nextcloud-stale\"") && overview.contains("goes on with AppAPI"),
        "the overview says so: {overview}"
    );
}

#[tokio::test]
async fn a_revoked_password_keeps_the_last_snapshot_and_says_so() {
    let (app, nextcloud) = connected().await;
    nextcloud.change(|s| {
        s.users.remove(nc::ADMIN);
    });
    let (status, body) = app.post_json("/api/v1/nextcloud/refresh", &json!({})).await;
    assert_eq!(status, 502, "{body}");
    starts_with(&body["error"], "wrong app password");
    let view = app.get_json("/api/v1/nextcloud").await;
    assert_eq!(exapp_ids(&view), ["context_chat_backend", "llm2"], "{view}");
    starts_with(&view["error"], "wrong app password");
    let (status, body) = app.post_json("/api/v1/nextcloud/test", &json!({})).await;
    assert_eq!(status, 502, "{body}");
}

#[tokio::test]
async fn an_accepted_harp_proposal_adds_a_harp_daemon_whose_exapps_follow_app_api() {
    let (app, nextcloud) = connected().await;
    let view = accept_harp(&app).await;
    let proposal = proposal(&view, "harp_proxy_docker");
    assert_eq!(proposal["state"], "accepted", "{proposal}");
    let daemons = app.get_json("/api/v1/daemons").await;
    let harp = daemons
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["name"] == "harp_proxy_docker")
        .unwrap_or_else(|| panic!("no HaRP daemon in {daemons}"));
    starts_with(&harp["endpoint"], "harp+http://appapi-harp:8780");
    assert_eq!(
        harp["harp_docker_port"], 24001,
        "from AppAPI's settings: {harp}"
    );

    nextcloud.change(|s| {
        s.exapps.retain(|e| e.0 != "context_chat_backend");
        s.exapps.push(nc::exapp(
            "stt_whisper2",
            "Whisper",
            "1.0.0",
            "harp_proxy_docker",
        ));
    });
    let (status, body) = app.post_json("/api/v1/nextcloud/refresh", &json!({})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(harp_exapps(&app).await, ["llm2", "stt_whisper2"]);
}

/// An accepted HaRP proposal against the harness's real HaRP: AppAPI's
/// HaRP address and docker-engine-port, the key the admin gives, and the
/// ExApps AppAPI deployed there are all the janitor needs to see the images.
#[tokio::test]
async fn an_accepted_harp_proposal_sees_the_exapps_images_through_the_real_harp() {
    let h = common::harp::harp();
    let fx = fixtures::Fixtures::new(&engine_a_sock());
    let (current, _) = exapp(&fx, "behind_harp", 0);
    let id = appid(&fx, "behind_harp");
    let mut daemon = nc::harp_daemon("harp_proxy_docker", h.port_a);
    daemon["host"] = json!(h.url.trim_start_matches("http://"));
    let state = nc::State {
        daemons: vec![daemon],
        exapps: vec![nc::exapp(&id, "Behind HaRP", "1.0.0", "harp_proxy_docker")],
        ..Default::default()
    };
    let nextcloud = Nextcloud::start_with(state).await;
    // As tests/harp.rs: HaRP's Python agent can be slow under the suite's load.
    let app = spawn_app_with(|app| app.daemon_timeout = Duration::from_secs(30)).await;
    let (status, body) =
        put_nextcloud(&app, &login(&nextcloud, nc::ADMIN, nc::ADMIN_PASSWORD)).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = app
        .post_json(
            "/api/v1/nextcloud/proposals/harp_proxy_docker/accept",
            &json!({"harp_key": h.key}),
        )
        .await;
    assert_eq!(status, 200, "accept: {body}");
    let (status, body) = app.post_json("/api/v1/scan", &json!({})).await;
    assert_eq!(status, 200, "{body}");
    let images = app
        .get_json(&format!(
            "/api/v1/images?daemon=harp_proxy_docker&owner={id}"
        ))
        .await;
    let status_of = |reference: &str| {
        tagged(&images, reference).map(|i| (i["status"].clone(), i["owner_name"].clone()))
    };
    assert_eq!(
        status_of(&current),
        Some((json!("current"), json!("Behind HaRP"))),
        "{images}"
    );
}

#[tokio::test]
async fn an_accepted_docker_proposal_adds_the_engine_the_admin_gave() {
    let (app, _nextcloud) = connected().await;
    let (status, body) = app
        .post_json(
            "/api/v1/nextcloud/proposals/docker_socket_proxy/accept",
            &json!({}),
        )
        .await;
    assert_eq!(status, 422, "an endpoint is needed: {body}");
    assert!(
        body["fields"]["endpoint"]
            .as_str()
            .unwrap()
            .contains("Docker Socket Proxy"),
        "{body}"
    );
    let (status, body) = app
        .post_json(
            "/api/v1/nextcloud/proposals/docker_socket_proxy/accept",
            &json!({"name": "dsp-host", "endpoint": engine_a_sock()}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let daemons = app.get_json("/api/v1/daemons").await;
    let added = daemons
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["name"] == "dsp-host")
        .unwrap_or_else(|| panic!("no daemon dsp-host in {daemons}"));
    assert_eq!(added["reachable"], true, "the real engine answers: {added}");
}

#[tokio::test]
async fn a_refused_proposal_adds_nothing_and_stays_refused() {
    let (app, _nextcloud) = connected().await;
    let before = app.daemon_names().await;
    let (status, body) = app
        .post_json(
            "/api/v1/nextcloud/proposals/harp_proxy_docker/refuse",
            &json!({}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(app.daemon_names().await, before, "nothing was added");
    let view = app.get_json("/api/v1/nextcloud").await;
    let p = proposal(&view, "harp_proxy_docker");
    assert_eq!(p["state"], "refused", "{p}");
    let (status, body) = app
        .post_json(
            "/api/v1/nextcloud/proposals/harp_proxy_docker/accept",
            &json!({"harp_key": "k"}),
        )
        .await;
    assert_eq!(status, 409, "answered already: {body}");
}

#[tokio::test]
async fn manual_and_kubernetes_daemons_are_shown_as_not_managed_with_the_reason() {
    let (app, _nextcloud) = connected().await;
    let view = app.get_json("/api/v1/nextcloud").await;
    for name in ["manual_install", "k8s"] {
        let p = proposal(&view, name);
        assert_eq!(p["state"], "not_managed", "{p}");
        assert!(
            p["note"].as_str().unwrap().starts_with("not managed: "),
            "{p}"
        );
        let (status, _) = app
            .post_json(
                &format!("/api/v1/nextcloud/proposals/{name}/accept"),
                &json!({"endpoint": "unix:///var/run/docker.sock"}),
            )
            .await;
        assert_eq!(status, 409, "{name} cannot be accepted");
    }
}

#[tokio::test]
async fn the_janitor_only_reads_from_nextcloud() {
    let (app, nextcloud) = connected().await;
    accept_harp(&app).await;
    let (status, _) = app.post_json("/api/v1/nextcloud/refresh", &json!({})).await;
    assert_eq!(status, 200);
    let requests = nextcloud.requests();
    assert!(!requests.is_empty());
    for r in &requests {
        assert!(
            r.starts_with("GET "),
            "a write to Nextcloud: {r} in {requests:?}"
        );
    }
}

#[tokio::test]
async fn the_app_password_never_appears_in_an_answer_a_page_or_a_log() {
    let (app, nextcloud) = connected().await;
    let mut seen = Vec::new();
    for path in [
        "/api/v1/nextcloud",
        "/api/v1/daemons",
        "/settings",
        "/settings/nextcloud",
        "/api/v1/openapi.json",
    ] {
        seen.push((path.to_owned(), app.get_text(path).await.1));
    }
    let (_, body) = app.post_json("/api/v1/nextcloud/test", &json!({})).await;
    seen.push(("POST test".into(), body.to_string()));
    let section = app
        .post_form(
            "/settings/nextcloud",
            &[
                ("url", nextcloud.url.as_str()),
                ("user", nc::ADMIN),
                ("app_password", nc::ADMIN_PASSWORD),
            ],
        )
        .await
        .text()
        .await
        .unwrap();
    assert!(section.contains("Connected: Nextcloud"), "{section}");
    seen.push(("POST /settings/nextcloud".into(), section));

    // The CLI, with every debug log line on.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("app-password");
    std::fs::write(&file, format!("{}\n", nc::ADMIN_PASSWORD)).unwrap();
    let data = dir.path().join("data");
    for args in [
        vec![
            "nextcloud",
            "connect",
            nextcloud.url.as_str(),
            "--user",
            nc::ADMIN,
            "--app-password-file",
            file.to_str().unwrap(),
        ],
        vec!["nextcloud", "test"],
        vec!["nextcloud", "status", "--json"],
        vec!["nextcloud", "status"],
    ] {
        let out = run(cli(&data).env("EXAPP_JANITOR_LOG", "debug").args(&args));
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
        seen.push((format!("{args:?}"), stdout(&out) + &stderr(&out)));
    }
    for (what, text) in &seen {
        assert!(
            !text.contains(nc::ADMIN_PASSWORD),
            "the app password shows in {what}: {text}"
        );
    }
}

#[tokio::test]
async fn the_cli_refuses_an_app_password_on_the_command_line_and_a_wrong_one_in_words() {
    let nextcloud = Nextcloud::start().await;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let out = run(cli(&data).args([
        "nextcloud",
        "connect",
        &nextcloud.url,
        "--user",
        nc::ADMIN,
        "--app-password",
        nc::ADMIN_PASSWORD,
    ]));
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let file = dir.path().join("pw");
    std::fs::write(&file, "Wrong-Wrong-Wrong-Wrong-Wrong").unwrap();
    let out = run(cli(&data).args([
        "nextcloud",
        "connect",
        &nextcloud.url,
        "--user",
        nc::ADMIN,
        "--app-password-file",
        file.to_str().unwrap(),
    ]));
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("wrong app password"),
        "{}",
        stderr(&out)
    );
    let out = run(cli(&data).args(["nextcloud", "status"]));
    assert!(stdout(&out).contains("not connected"), "{}", stdout(&out));
}

#[tokio::test]
async fn the_settings_test_button_shows_the_versions_or_the_error_in_words() {
    let (app, nextcloud) = connected().await;
    let section = app
        .post_form("/settings/nextcloud/test", &[])
        .await
        .text()
        .await
        .unwrap();
    assert!(
        section.contains(&format!(
            "Nextcloud {}, AppAPI {}",
            nc::NC_VERSION,
            nc::APP_API_VERSION
        )),
        "{section}"
    );
    nextcloud.stop().await;
    eventually(Duration::from_secs(10), "the error in words", async || {
        let section = app
            .post_form("/settings/nextcloud/test", &[])
            .await
            .text()
            .await
            .unwrap();
        section.contains("Nextcloud did not answer")
    })
    .await;
}

#[tokio::test]
async fn the_settings_form_refuses_a_wrong_password_in_words_and_never_fills_it_back() {
    let nextcloud = Nextcloud::start().await;
    let app = spawn_app().await;
    let wrong = "Wrong-Wrong-Wrong-Wrong-Wrong";
    let section = app
        .post_form(
            "/settings/nextcloud",
            &[
                ("url", nextcloud.url.as_str()),
                ("user", nc::ADMIN),
                ("app_password", wrong),
            ],
        )
        .await
        .text()
        .await
        .unwrap();
    assert!(section.contains("wrong app password"), "{section}");
    assert!(
        section.contains(&nextcloud.url),
        "the URL typed is shown again: {section}"
    );
    assert!(
        !section.contains(wrong),
        "the password is never filled back: {section}"
    );
    assert!(
        section.contains(r#"name="app_password" type="password" value="""#),
        "{section}"
    );
    assert_eq!(app.get_json("/api/v1/nextcloud").await["connected"], false);
}

#[tokio::test]
async fn image_objects_carry_the_owners_name_and_version_from_app_api() {
    let fx = fixtures::Fixtures::new(&engine_a_sock());
    exapp(&fx, "named", 1);
    let id = appid(&fx, "named");
    let mut state = nc::State::default();
    state.exapps.push(nc::exapp(
        &id,
        "A named ExApp",
        "3.2.1",
        "docker_socket_proxy",
    ));
    let nextcloud = Nextcloud::start_with(state).await;
    let app = spawn_app().await;
    let (status, body) =
        put_nextcloud(&app, &login(&nextcloud, nc::ADMIN, nc::ADMIN_PASSWORD)).await;
    assert_eq!(status, 200, "{body}");
    add_daemon(&app, "a", &engine_a_sock()).await;
    let (status, _) = app.post_json("/api/v1/scan", &json!({})).await;
    assert_eq!(status, 200);
    let images = app.get_json(&format!("/api/v1/images?owner={id}")).await;
    let images = images.as_array().unwrap();
    assert_eq!(
        images.len(),
        2,
        "the current and the outdated image: {images:?}"
    );
    for image in images {
        assert_eq!(image["owner_name"], "A named ExApp", "{image}");
        assert_eq!(image["owner_version"], "3.2.1", "{image}");
    }
    // Not connected: the names are null, nothing else changes.
    assert_eq!(app.api_delete("/api/v1/nextcloud").await.status(), 204);
    let images = app.get_json(&format!("/api/v1/images?owner={id}")).await;
    for image in images.as_array().unwrap() {
        assert_eq!(image["owner_name"], Value::Null, "{image}");
    }
}

#[tokio::test]
async fn the_pages_show_the_exapps_name_and_version_from_app_api() {
    let listed = ListedExApp::start("labelled").await;
    let label = "An ExApp 1.0.0";
    for page in [
        "/".to_owned(),
        "/exapps".to_owned(),
        format!("/images?owner={}", listed.id),
    ] {
        let (status, body) = listed.app.get_text(&page).await;
        assert_eq!(status, 200, "{page}");
        assert!(body.contains(label), "{page} names the ExApp: {body}");
    }
}

#[tokio::test]
async fn serve_reads_app_apis_lists_at_start_and_never_logs_the_app_password() {
    let nextcloud = Nextcloud::start().await;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let file = dir.path().join("app-password");
    std::fs::write(&file, nc::ADMIN_PASSWORD).unwrap();
    let out = run(cli(&data).args([
        "nextcloud",
        "connect",
        &nextcloud.url,
        "--user",
        nc::ADMIN,
        "--app-password-file",
        file.to_str().unwrap(),
    ]));
    assert!(out.status.success(), "{}", stderr(&out));
    // AppAPI installs an ExApp while the janitor is not running.
    nextcloud.change(|s| {
        s.exapps.push(nc::exapp(
            "stt_whisper2",
            "Whisper",
            "1.0.0",
            "harp_proxy_docker",
        ))
    });
    let server = common::server::start_server_env(
        &data,
        None,
        Some(TEST_PASSWORD),
        &[("EXAPP_JANITOR_LOG", "debug")],
    );
    eventually(
        Duration::from_secs(30),
        "serve reads AppAPI's lists at start",
        async || {
            let view = server.api("/api/v1/nextcloud").await;
            exapp_ids(&view).contains(&"stt_whisper2".to_owned())
        },
    )
    .await;
    let leaked = server.log_lines_containing(nc::ADMIN_PASSWORD);
    assert!(leaked.is_empty(), "the app password in the log: {leaked:?}");
}

/// An ExApp running on engine A with one outdated image, listed by AppAPI;
/// the janitor connected to Nextcloud and scanning engine A (a daemon
/// added by hand, so every ExApp AppAPI lists counts as installed on it).
struct ListedExApp {
    app: TestApp,
    nextcloud: Nextcloud,
    fx: fixtures::Fixtures,
    id: String,
    current: String,
}

impl ListedExApp {
    async fn start(name: &str) -> Self {
        let fx = fixtures::Fixtures::new(&engine_a_sock());
        let (current, _old) = exapp(&fx, name, 1);
        let id = appid(&fx, name);
        let mut state = nc::State::default();
        state
            .exapps
            .push(nc::exapp(&id, "An ExApp", "1.0.0", "docker_socket_proxy"));
        let nextcloud = Nextcloud::start_with(state).await;
        let app = spawn_app().await;
        let (status, body) =
            put_nextcloud(&app, &login(&nextcloud, nc::ADMIN, nc::ADMIN_PASSWORD)).await;
        assert_eq!(status, 200, "{body}");
        add_daemon(&app, "a", &engine_a_sock()).await;
        let listed = Self {
            app,
            nextcloud,
            fx,
            id,
            current,
        };
        assert_eq!(listed.status_of_current().await.0, "current");
        listed
    }

    /// AppAPI removes the container (an update, or an uninstall).
    fn remove_container(&self) {
        self.fx
            .docker(&["rm", "-f", &format!("nc_app_{}", self.id)]);
    }

    /// After a scan: the status and reason of the image the ExApp ran.
    async fn status_of_current(&self) -> (String, String) {
        let (status, body) = self.app.post_json("/api/v1/scan", &json!({})).await;
        assert_eq!(status, 200, "{body}");
        self.listed_status().await
    }

    /// Without a scan: what the inventory says now.
    async fn listed_status(&self) -> (String, String) {
        let images = self
            .app
            .get_json(&format!("/api/v1/images?daemon=a&owner={}", self.id))
            .await;
        let image = tagged(&images, &self.current)
            .unwrap_or_else(|| panic!("{} in {images}", self.current));
        (
            image["status"].as_str().unwrap().to_owned(),
            image["reason"].as_str().unwrap().to_owned(),
        )
    }
}

#[tokio::test]
async fn an_exapp_app_api_lists_keeps_its_image_while_its_container_is_gone() {
    let listed = ListedExApp::start("updating").await;
    listed.remove_container();
    let (status, reason) = listed.status_of_current().await;
    assert_eq!(status, "current", "{reason}");
    assert!(reason.contains("as AppAPI lists it"), "{reason}");
    let removable = listed
        .app
        .get_json(&format!(
            "/api/v1/images?status=removable&owner={}",
            listed.id
        ))
        .await;
    assert!(
        !removable.to_string().contains(&listed.current),
        "{removable}"
    );
}

#[tokio::test]
async fn an_exapp_app_api_no_longer_lists_has_its_images_outdated_as_uninstalled() {
    let listed = ListedExApp::start("uninstalled").await;
    listed.remove_container();
    let id = listed.id.clone();
    listed.nextcloud.change(|s| s.exapps.retain(|e| e.0 != id));
    let (status, body) = listed
        .app
        .post_json("/api/v1/nextcloud/refresh", &json!({}))
        .await;
    assert_eq!(status, 200, "{body}");
    // The refresh rescans by itself: the statuses follow without a scan asked.
    eventually(
        Duration::from_secs(20),
        "the rescan after the refresh",
        async || listed.listed_status().await.0 == "outdated",
    )
    .await;
    let (_, reason) = listed.listed_status().await;
    assert!(
        reason.contains(&format!(
            "uninstalled from Nextcloud (AppAPI no longer lists {id})"
        )),
        "{reason}"
    );
}

#[tokio::test]
async fn nextcloud_down_never_turns_a_listed_exapp_into_an_uninstalled_one() {
    let listed = ListedExApp::start("unanswered").await;
    listed.remove_container();
    listed.nextcloud.stop().await;
    let (status, body) = listed
        .app
        .post_json("/api/v1/nextcloud/refresh", &json!({}))
        .await;
    assert_eq!(status, 502, "{body}");
    let (status, reason) = listed.status_of_current().await;
    assert_eq!(
        status, "current",
        "the last good list still holds: {reason}"
    );
}
