//! Security, round three (issue 13, what rounds one and two left): who may
//! say which scheme and host a request used, which hosts are served at all
//! (DNS rebinding), and one strict reading of JSON bodies for the whole API.

mod common;

use std::time::Duration;

use common::*;
use exapp_janitor::domain::TrustedProxies;
use exapp_janitor::janitor::Janitor;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use serde_json::{json, Value};

/// No cookie store: each test carries the session cookie itself, because a
/// `Secure` cookie is never sent back over the plain HTTP the tests speak.
fn plain_client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .pool_max_idle_per_host(0)
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap()
}

fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
    pairs
        .iter()
        .map(|(k, v)| {
            (
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            )
        })
        .collect()
}

/// A server in this process, configured before it starts, nobody logged in
/// (`spawn_app` logs in as `127.0.0.1`, which a pinned public URL refuses).
struct Bare {
    address: String,
    api_token: String,
    /// Keeps the server's data dir.
    _app: TestApp,
}

async fn spawn_bare(configure: impl FnOnce(&mut Janitor)) -> Bare {
    let app = spawn_unlogged_with(configure).await;
    Bare {
        address: app.address.clone(),
        api_token: app.api_token.clone(),
        _app: app,
    }
}

impl Bare {
    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    /// Logs in with these extra headers: (status, the session's Set-Cookie).
    async fn login(&self, extra: &[(&str, &str)]) -> (u16, Option<String>) {
        let response = plain_client()
            .post(self.url("/login"))
            .headers(headers(extra))
            .form(&[("password", TEST_PASSWORD), ("next", "/")])
            .send()
            .await
            .unwrap();
        let cookie = response
            .headers()
            .get_all("set-cookie")
            .iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .find(|c| c.starts_with("exapp_janitor_session="));
        (response.status().as_u16(), cookie)
    }

    async fn get(&self, path: &str, extra: &[(&str, &str)]) -> (u16, String) {
        let response = plain_client()
            .get(self.url(path))
            .headers(headers(extra))
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (status, response.text().await.unwrap())
    }

    /// A logged-in session's `Cookie` header and CSRF token, as seen
    /// through `extra` (a Host, forwarding headers).
    async fn session(&self, extra: &[(&str, &str)]) -> (String, String) {
        let (status, set_cookie) = self.login(extra).await;
        assert_eq!(status, 303, "login through {extra:?}");
        let cookie = set_cookie.unwrap().split(';').next().unwrap().to_owned();
        let mut with_cookie = extra.to_vec();
        with_cookie.push(("Cookie", &cookie));
        let (status, page) = self.get("/settings", &with_cookie).await;
        assert_eq!(status, 200, "{page}");
        (cookie, csrf_token_in(&page).unwrap())
    }

    /// A form post that logs the session out: a state change whose only
    /// effect is visible in the status (303 done, 403 refused).
    async fn logout(&self, cookie: &str, csrf: &str, extra: &[(&str, &str)]) -> u16 {
        let mut all = extra.to_vec();
        all.push(("Cookie", cookie));
        plain_client()
            .post(self.url("/logout"))
            .headers(headers(&all))
            .form(&[("csrf_token", csrf)])
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    }
}

fn trust_loopback(app: &mut Janitor) {
    app.trusted_proxies = TrustedProxies::new(vec!["127.0.0.1".parse().unwrap()]);
}

fn is_secure(set_cookie: &str) -> bool {
    set_cookie
        .split(';')
        .any(|attr| attr.trim().eq_ignore_ascii_case("secure"))
}

// ------------------------------------------------ forwarding headers (1)

#[tokio::test]
async fn a_client_that_is_no_trusted_proxy_cannot_claim_https_for_the_cookie() {
    let app = spawn_bare(|_| {}).await;
    for claim in [
        [("X-Forwarded-Proto", "https")],
        [("Forwarded", "proto=https")],
    ] {
        let (status, cookie) = app.login(&claim).await;
        assert_eq!(status, 303);
        let cookie = cookie.unwrap();
        assert!(!is_secure(&cookie), "{claim:?} made the cookie {cookie}");
    }
}

#[tokio::test]
async fn a_trusted_proxy_that_says_https_gets_a_secure_cookie() {
    let app = spawn_bare(trust_loopback).await;
    for claim in [
        [("X-Forwarded-Proto", "https")],
        [("Forwarded", "for=203.0.113.7;proto=https")],
    ] {
        let (status, cookie) = app.login(&claim).await;
        assert_eq!(status, 303);
        assert!(is_secure(&cookie.unwrap()), "{claim:?}");
    }
    let (_, cookie) = app.login(&[]).await;
    assert!(!is_secure(&cookie.unwrap()), "plain HTTP from the proxy");
}

#[tokio::test]
async fn a_forged_forwarded_host_does_not_make_a_foreign_origin_ours() {
    // The Origin check compared the Origin with the forwarded host, which
    // anyone could send: a cross-site form post naming both passed it.
    for forged in [
        [("X-Forwarded-Host", "evil.example")],
        [("Forwarded", "host=evil.example")],
    ] {
        let app = spawn_bare(|_| {}).await;
        let (cookie, csrf) = app.session(&[]).await;
        let mut request = forged.to_vec();
        request.push(("Origin", "http://evil.example"));
        let status = app.logout(&cookie, &csrf, &request).await;
        assert_eq!(status, 403, "{forged:?}");
        // Our own origin still passes.
        let own = app.address.clone();
        assert_eq!(app.logout(&cookie, &csrf, &[("Origin", &own)]).await, 303);
    }
}

// ------------------------------------------------------ Host check (2)

#[tokio::test]
async fn a_host_name_nobody_configured_gets_a_page_that_says_how_to_set_the_public_url() {
    let app = spawn_bare(|_| {}).await;
    let (status, page) = app
        .get("/login", &[("Host", "rebind.evil.example:8080")])
        .await;
    assert_eq!(status, 421, "{page}");
    assert!(page.contains("--public-url"), "{page}");
    assert!(page.contains("EXAPP_JANITOR_PUBLIC_URL"), "{page}");
    assert!(!page.contains("password"), "no login form: {page}");
    // The login itself and the API are refused the same way.
    let (status, _) = app.login(&[("Host", "rebind.evil.example:8080")]).await;
    assert_eq!(status, 421);
    let response = plain_client()
        .get(app.url("/api/v1/settings"))
        .bearer_auth(&app.api_token)
        .header("Host", "rebind.evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 421);
    let answer: Value = response.json().await.unwrap();
    assert!(answer["error"].as_str().unwrap().contains("--public-url"));
}

#[tokio::test]
async fn ip_addresses_and_localhost_are_served_without_a_public_url() {
    let app = spawn_bare(|_| {}).await;
    for host in [
        "192.168.1.5:8080",
        "192.168.1.5",
        "[::1]:8080",
        "[2001:db8::1]",
        "localhost",
        "localhost:8080",
        "janitor.localhost:8080",
    ] {
        let (status, page) = app.get("/login", &[("Host", host)]).await;
        assert_eq!(status, 200, "{host}: {page}");
    }
}

#[tokio::test]
async fn the_health_check_answers_whatever_host_it_is_asked_by() {
    let app =
        spawn_bare(|app| app.public_url = Some("https://janitor.example.org".parse().unwrap()))
            .await;
    for host in ["rebind.evil.example", "127.0.0.1", "exapp-janitor:8080"] {
        let (status, body) = app.get("/api/v1/health", &[("Host", host)]).await;
        assert_eq!(status, 200, "{host}: {body}");
    }
}

#[tokio::test]
async fn with_a_public_url_only_its_host_is_served() {
    let app =
        spawn_bare(|app| app.public_url = Some("http://janitor.lan:8080".parse().unwrap())).await;
    for host in ["janitor.lan:8080", "JANITOR.LAN:8080"] {
        let (status, _) = app.get("/login", &[("Host", host)]).await;
        assert_eq!(status, 200, "{host}");
    }
    let own = app.address.trim_start_matches("http://").to_owned();
    for host in [
        "janitor.lan",
        "janitor.lan:8081",
        own.as_str(),
        "rebind.evil.example",
    ] {
        let (status, page) = app.get("/login", &[("Host", host)]).await;
        assert_eq!(status, 421, "{host}");
        assert!(
            page.contains("http://janitor.lan:8080"),
            "names the public URL: {page}"
        );
    }
}

#[tokio::test]
async fn with_a_public_url_the_origin_must_be_exactly_its_origin() {
    let app =
        spawn_bare(|app| app.public_url = Some("https://janitor.example.org".parse().unwrap()))
            .await;
    let host = [("Host", "janitor.example.org")];
    let (status, cookie) = app.login(&host).await;
    assert_eq!(status, 303);
    assert!(
        is_secure(&cookie.unwrap()),
        "an https public URL makes the cookie Secure"
    );
    let (cookie, csrf) = app.session(&host).await;
    for origin in [
        "http://janitor.example.org",
        "https://janitor.example.org:8443",
    ] {
        let status = app
            .logout(&cookie, &csrf, &[host[0], ("Origin", origin)])
            .await;
        assert_eq!(status, 403, "{origin}");
    }
    let status = app
        .logout(
            &cookie,
            &csrf,
            &[host[0], ("Origin", "https://janitor.example.org")],
        )
        .await;
    assert_eq!(status, 303);
}

#[tokio::test]
async fn behind_a_trusted_proxy_the_forwarded_host_and_scheme_are_the_public_ones() {
    // The proxy passes its own upstream address as Host (nginx without
    // `proxy_set_header Host`), and the client's in X-Forwarded-Host.
    let forwarded = [
        ("X-Forwarded-Host", "janitor.example.org"),
        ("X-Forwarded-Proto", "https"),
    ];
    let pinned =
        |app: &mut Janitor| app.public_url = Some("https://janitor.example.org".parse().unwrap());
    let proxied = spawn_bare(|app| {
        pinned(app);
        trust_loopback(app);
    })
    .await;
    let (status, cookie) = proxied.login(&forwarded).await;
    assert_eq!(status, 303);
    assert!(is_secure(&cookie.unwrap()));
    let (cookie, csrf) = proxied.session(&forwarded).await;
    let mut cross_site = forwarded.to_vec();
    cross_site.push(("Origin", "https://evil.example"));
    assert_eq!(proxied.logout(&cookie, &csrf, &cross_site).await, 403);
    let mut same_site = forwarded.to_vec();
    same_site.push(("Origin", "https://janitor.example.org"));
    assert_eq!(proxied.logout(&cookie, &csrf, &same_site).await, 303);

    // The same headers from a peer that is no trusted proxy name nothing:
    // the Host (an address here) is not the pinned one.
    let direct = spawn_bare(pinned).await;
    let (status, _) = direct.login(&forwarded).await;
    assert_eq!(status, 421);
}

#[test]
fn serve_refuses_a_public_url_it_cannot_serve_as_bad_input() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = cli(dir.path())
        .args(["serve", "--listen", "127.0.0.1:0"])
        .env(
            "EXAPP_JANITOR_PUBLIC_URL",
            "https://janitor.example.org/janitor/",
        )
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // A server that ignored the setting would run for ever: give it 30 s.
    let started = std::time::Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > Duration::from_secs(30) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("serve started with a public URL that has a path");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
    assert_eq!(status.code(), Some(2), "{err}");
    assert!(err.contains("without a path"), "{err}");
}

#[tokio::test]
async fn serve_pins_the_host_from_the_environment_or_the_config_file() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("janitor.toml");
    std::fs::write(&config, "public_url = \"http://janitor.lan:8080\"\n").unwrap();
    for env in [
        [("EXAPP_JANITOR_PUBLIC_URL", "http://janitor.lan:8080")],
        [("EXAPP_JANITOR_CONFIG", config.to_str().unwrap())],
    ] {
        let data = tempfile::tempdir().unwrap();
        let server = common::server::start_server_env(data.path(), None, Some(TEST_PASSWORD), &env);
        let get = |host: &'static str| {
            plain_client()
                .get(format!("{}/login", server.address))
                .header("Host", host)
                .send()
        };
        assert_eq!(
            get("janitor.lan:8080").await.unwrap().status(),
            200,
            "{env:?}"
        );
        assert_eq!(get("127.0.0.1").await.unwrap().status(), 421, "{env:?}");
    }
}

// --------------------------------------------------- strict JSON (3)

#[tokio::test]
async fn the_api_takes_numbers_only_as_numbers_and_names_the_field() {
    let app = spawn_app().await;
    let before = app.get_json("/api/v1/settings").await;
    for (body, field) in [
        (json!({"keep_previous": "2"}), "keep_previous"),
        (json!({"interval_hours": "5"}), "interval_hours"),
        (json!({"min_age_hours": " 5 "}), "min_age_hours"),
        (json!({"remove_dangling": "on"}), "remove_dangling"),
        (json!({"cleanup_on_update": "true"}), "cleanup_on_update"),
    ] {
        let (status, answer) = app.patch_settings(&body).await;
        assert_eq!(status, 422, "{body}: {answer}");
        assert!(answer["fields"][field].is_string(), "{body}: {answer}");
    }
    assert_eq!(app.get_json("/api/v1/settings").await, before);
    for path in ["/api/v1/cleanup/preview", "/api/v1/cleanup/runs"] {
        for (body, field) in [
            (json!({"min_age_hours": "5"}), "min_age_hours"),
            (json!({"daemon": 5}), "daemon"),
            (json!({"images": "sha256:x"}), "images"),
        ] {
            let (status, answer) = app.post_json(path, &body).await;
            assert_eq!(status, 422, "{path} {body}: {answer}");
            assert!(
                answer["fields"][field].is_string(),
                "{path} {body}: {answer}"
            );
        }
    }
    let (status, answer) = app
        .post_json(
            "/api/v1/daemons",
            &json!({"name": 5, "endpoint": "unix:///x.sock"}),
        )
        .await;
    assert_eq!(status, 422, "{answer}");
    assert!(answer["fields"]["name"].is_string(), "{answer}");
    assert_eq!(app.get_json("/api/v1/cleanup/runs").await, json!([]));
    assert!(app.daemon_names().await.is_empty());
}

#[tokio::test]
async fn a_duplicate_key_is_400_on_every_json_route() {
    let app = spawn_app().await;
    let before = app.get_json("/api/v1/settings").await;
    for (method, path, body) in [
        (
            reqwest::Method::PATCH,
            "/api/v1/settings",
            r#"{"keep_previous": 1, "keep_previous": 2}"#,
        ),
        (
            reqwest::Method::PATCH,
            "/api/v1/settings",
            r#"{"version": 1, "version": 1}"#,
        ),
        (
            reqwest::Method::POST,
            "/api/v1/cleanup/preview",
            r#"{"min_age_hours": 1, "min_age_hours": 2}"#,
        ),
        (
            reqwest::Method::POST,
            "/api/v1/cleanup/runs",
            r#"{"daemon": "a", "daemon": "b"}"#,
        ),
        (
            reqwest::Method::POST,
            "/api/v1/daemons",
            r#"{"name": "a", "name": "b", "endpoint": "unix:///x.sock"}"#,
        ),
    ] {
        let response = app
            .http
            .request(method.clone(), app.url(path))
            .bearer_auth(&app.api_token)
            .header("Content-Type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        let answer: Value = response.json().await.unwrap_or(Value::Null);
        assert_eq!(status, 400, "{method} {path} {body}: {answer}");
        assert!(
            answer["error"].as_str().unwrap_or("").contains("duplicate"),
            "{answer}"
        );
    }
    assert_eq!(app.get_json("/api/v1/settings").await, before);
    assert_eq!(app.get_json("/api/v1/cleanup/runs").await, json!([]));
    assert!(app.daemon_names().await.is_empty());
}
