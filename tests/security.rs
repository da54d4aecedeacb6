//! Only the admin gets in, and no request can change what it should not.

mod common;

use std::io::{Read, Write};
use std::net::TcpListener;

use common::*;
use exapp_janitor::domain::TrustedProxies;
use serde_json::{json, Value};

/// Every page route, with the method it answers to.
const PAGES: &[(&str, &str)] = &[
    ("GET", "/"),
    ("GET", "/daemons"),
    ("GET", "/settings"),
    ("GET", "/images"),
    ("GET", "/exapps"),
    ("GET", "/cleanup"),
    ("GET", "/runs"),
    ("GET", "/runs/1"),
    ("GET", "/runs/1/live"),
    ("GET", "/daemons/x/card"),
    ("GET", "/daemons/x/remove"),
    ("POST", "/daemons"),
    ("POST", "/daemons/x/test"),
    ("POST", "/daemons/x/remove"),
    ("POST", "/settings/api-token"),
    ("POST", "/scan"),
    ("POST", "/cleanup/runs"),
    ("POST", "/settings"),
    ("POST", "/logout"),
];

/// Every API route but the open health check.
const API: &[(&str, &str)] = &[
    ("GET", "/api/v1/daemons"),
    ("POST", "/api/v1/daemons"),
    ("DELETE", "/api/v1/daemons/x"),
    ("POST", "/api/v1/scan"),
    ("GET", "/api/v1/images"),
    ("POST", "/api/v1/cleanup/preview"),
    ("POST", "/api/v1/cleanup/runs"),
    ("GET", "/api/v1/cleanup/runs"),
    ("GET", "/api/v1/cleanup/runs/1"),
    ("POST", "/api/v1/cleanup/jobs/1/cancel"),
    ("GET", "/api/v1/settings"),
    ("PATCH", "/api/v1/settings"),
    ("GET", "/metrics"),
];

fn method(name: &str) -> reqwest::Method {
    name.parse().unwrap()
}

#[tokio::test]
async fn every_page_sends_a_stranger_to_the_login_page() {
    let app = spawn_app().await;
    for (verb, path) in PAGES {
        let response = app
            .anon
            .request(method(verb), app.url(path))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 303, "{verb} {path}");
        let location = response.headers()["location"].to_str().unwrap();
        assert!(
            location.starts_with("/login?next="),
            "{verb} {path} → {location}"
        );
    }
}

#[tokio::test]
async fn an_htmx_request_without_a_session_is_told_to_go_to_the_login_page() {
    let app = spawn_app().await;
    let response = app
        .anon
        .get(app.url("/daemons/x/card"))
        .header("HX-Request", "true")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    assert!(response.headers()["hx-redirect"]
        .to_str()
        .unwrap()
        .starts_with("/login"));
}

#[tokio::test]
async fn every_api_route_needs_the_right_token() {
    let app = spawn_app().await;
    for (verb, path) in API {
        for token in [None, Some("wrong-token"), Some("")] {
            let mut request = app
                .anon
                .request(method(verb), app.url(path))
                .json(&json!({}));
            if let Some(token) = token {
                request = request.header("Authorization", format!("Bearer {token}"));
            }
            let response = request.send().await.unwrap();
            assert_eq!(response.status(), 401, "{verb} {path} with {token:?}");
            assert_eq!(response.headers()["www-authenticate"], "Bearer");
        }
    }
    // A session cookie is no API token.
    let response = app
        .http
        .get(app.url("/api/v1/daemons"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    // Health stays open for monitoring.
    assert_eq!(
        app.anon
            .get(app.url("/api/v1/health"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
}

#[tokio::test]
async fn a_form_without_or_with_a_wrong_csrf_token_is_403_and_changes_nothing() {
    let app = spawn_app().await;
    app.post_json(
        "/api/v1/daemons",
        &json!({"name": "keep", "endpoint": "unix:///x.sock"}),
    )
    .await;
    for token in [None, Some("forged")] {
        let mut add = vec![("name", "new"), ("endpoint", "unix:///y.sock")];
        let mut remove = vec![];
        if let Some(token) = token {
            add.push(("csrf_token", token));
            remove.push(("csrf_token", token));
        }
        let response = app
            .http
            .post(app.url("/daemons"))
            .form(&add)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 403, "add with {token:?}");
        let response = app
            .http
            .post(app.url("/daemons/keep/remove"))
            .form(&remove)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 403, "remove with {token:?}");
        let response = app
            .http
            .post(app.url("/settings/api-token"))
            .form(&remove)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 403, "rotate with {token:?}");
        let response = app
            .http
            .post(app.url("/daemons/keep/test"))
            .header("X-CSRF-Token", token.unwrap_or(""))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 403, "htmx post with {token:?}");
    }
    assert_eq!(app.daemon_names().await, ["keep"]);
    assert_eq!(
        app.get("/api/v1/daemons").await.status(),
        200,
        "the API token was not rotated"
    );
}

#[tokio::test]
async fn a_cross_site_post_is_refused_even_with_the_token() {
    let app = spawn_app().await;
    let form = [
        ("name", "new"),
        ("endpoint", "unix:///y.sock"),
        ("csrf_token", app.csrf.as_str()),
    ];
    let cross_site = app
        .http
        .post(app.url("/daemons"))
        .header("Sec-Fetch-Site", "cross-site")
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(cross_site.status(), 403);
    let foreign_origin = app
        .http
        .post(app.url("/daemons"))
        .header("Origin", "http://evil.example")
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(foreign_origin.status(), 403);
    assert!(app.daemon_names().await.is_empty());
    let own_origin = app
        .http
        .post(app.url("/daemons"))
        .header("Origin", app.address.clone())
        .header("Sec-Fetch-Site", "same-origin")
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(own_origin.status(), 303);
}

#[tokio::test]
async fn oversized_bodies_are_413_and_change_nothing() {
    let app = spawn_app().await;
    let huge = "a".repeat(200_000);
    let response = app
        .http
        .post(app.url("/daemons"))
        .form(&[
            ("csrf_token", app.csrf.as_str()),
            ("name", "x"),
            ("endpoint", huge.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 413);
    let (status, _) = app
        .post_json("/api/v1/daemons", &json!({"name": "x", "endpoint": huge}))
        .await;
    assert_eq!(status, 413);
    let response = app
        .anon
        .post(app.url("/login"))
        .form(&[("password", huge.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 413);
    assert!(app.daemon_names().await.is_empty());
}

/// A "daemon" that answers every request with a 500 whose message is markup.
fn hostile_daemon(message: &str) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("tcp://{}", listener.local_addr().unwrap());
    let body = json!({ "message": message }).to_string();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten().take(50) {
            let mut stream = stream;
            let mut buf = [0u8; 4096];
            let _ = stream.read(&mut buf);
            let _ = write!(
                stream,
                "HTTP/1.1 500 Internal Server Error\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{}",
                body.len(),
                body
            );
        }
    });
    url
}

#[tokio::test]
async fn markup_from_a_daemon_or_a_form_is_shown_as_text() {
    let app = spawn_app().await;
    let evil = r#"<script>alert(1)</script>"><img src=x onerror=alert(2)>"#;
    let endpoint = hostile_daemon(evil);
    app.post_json(
        "/api/v1/daemons",
        &json!({"name": "hostile", "endpoint": endpoint}),
    )
    .await;

    let (_, card) = app.get_text("/daemons/hostile/card").await;
    assert!(card.contains("the daemon answered 500"), "{card}");
    for page in [card, app.get_text("/daemons").await.1] {
        assert!(!page.contains("<script>alert"), "{page}");
        assert!(!page.contains("<img src=x"), "{page}");
        assert!(
            page.contains("&#60;script&#62;alert(1)&#60;/script&#62;"),
            "{page}"
        );
    }

    let response = app
        .post_form("/daemons", &[("name", evil), ("endpoint", evil)])
        .await;
    assert_eq!(response.status(), 422);
    let page = response.text().await.unwrap();
    assert!(
        !page.contains(r#""><img"#) && !page.contains("<script>alert"),
        "{page}"
    );
    assert!(
        page.contains(r#"value="&#60;script&#62;alert(1)&#60;/script&#62;&#34;&#62;&#60;img"#),
        "{page}"
    );
}

#[tokio::test]
async fn repeated_failed_logins_are_slowed_then_refused_for_a_while() {
    let app = spawn_app().await;
    let mut statuses = Vec::new();
    for _ in 0..8 {
        statuses.push(
            app.login(&app.anon, "wrong password!")
                .await
                .status()
                .as_u16(),
        );
    }
    assert_eq!(statuses, [401; 8]);
    let locked = app.login(&app.anon, TEST_PASSWORD).await;
    assert_eq!(
        locked.status(),
        429,
        "even the right password waits out the lock"
    );
    assert!(
        locked.headers()["retry-after"]
            .to_str()
            .unwrap()
            .parse::<u64>()
            .unwrap()
            > 60
    );
    assert!(locked
        .text()
        .await
        .unwrap()
        .contains("Too many failed logins"));
}

/// A login posted through a proxy on loopback that says the client is `from`.
async fn login_via_proxy(app: &TestApp, password: &str, from: &str) -> u16 {
    app.anon
        .post(app.url("/login"))
        .header("X-Forwarded-For", from)
        .form(&[("password", password), ("next", "/")])
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

async fn fail_logins_until_locked(app: &TestApp, from: &str) {
    for _ in 0..8 {
        assert_eq!(login_via_proxy(app, "wrong password!", from).await, 401);
    }
    assert_eq!(login_via_proxy(app, TEST_PASSWORD, from).await, 429);
}

#[tokio::test]
async fn behind_a_trusted_proxy_a_lock_out_holds_only_the_client_that_failed() {
    let app = spawn_app_with(|app| {
        app.trusted_proxies = TrustedProxies::new(vec!["127.0.0.1".parse().unwrap()]);
    })
    .await;
    fail_logins_until_locked(&app, "203.0.113.7").await;

    assert_eq!(
        login_via_proxy(&app, TEST_PASSWORD, "203.0.113.8").await,
        303
    );
    // Forged entries left of the proxy's own are not believed.
    assert_eq!(
        login_via_proxy(&app, TEST_PASSWORD, "203.0.113.8, 203.0.113.7").await,
        429
    );
}

#[tokio::test]
async fn forwarded_addresses_are_ignored_unless_the_proxy_is_trusted() {
    let app = spawn_app().await;
    fail_logins_until_locked(&app, "203.0.113.7").await;

    assert_eq!(
        login_via_proxy(&app, TEST_PASSWORD, "203.0.113.8").await,
        429,
        "a client cannot escape the lock by naming another address"
    );
}

#[tokio::test]
async fn the_session_cookie_is_http_only_and_same_site_strict() {
    let app = spawn_app().await;
    let plain = app.login(&app.anon, TEST_PASSWORD).await;
    let cookie = plain.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    assert!(
        !cookie.contains("Secure"),
        "no Secure over plain HTTP: {cookie}"
    );
    // Behind a TLS proxy, and only a trusted one (tests/security_round3.rs
    // shows that anyone else claiming HTTPS does not count).
    let proxied = spawn_app_with(|app| {
        app.trusted_proxies =
            exapp_janitor::domain::TrustedProxies::new(vec!["127.0.0.1".parse().unwrap()]);
    })
    .await;
    let behind_tls = proxied
        .anon
        .post(proxied.url("/login"))
        .header("X-Forwarded-Proto", "https")
        .form(&[("password", TEST_PASSWORD)])
        .send()
        .await
        .unwrap();
    let cookie = behind_tls.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(cookie.contains("Secure"), "{cookie}");
}

#[tokio::test]
async fn logout_ends_the_session() {
    let app = spawn_app().await;
    let response = app.post_form("/logout", &[]).await;
    assert_eq!(response.status(), 303);
    assert_eq!(
        app.get("/").await.status(),
        303,
        "the old cookie no longer works"
    );
}

#[tokio::test]
async fn an_idle_session_expires() {
    let app = spawn_app_on_manual_clock().await;
    assert_eq!(app.get("/settings").await.status(), 200, "logged in");
    app.clock().advance(std::time::Duration::from_secs(31 * 60));
    let response = app.get("/").await;
    assert_eq!(response.status(), 303);
    assert!(response.headers()["location"]
        .to_str()
        .unwrap()
        .starts_with("/login"));
}

#[tokio::test]
async fn a_wrong_password_is_refused_with_an_inline_error() {
    let app = spawn_app().await;
    let response = app.login(&app.anon, "not the password").await;
    assert_eq!(response.status(), 401);
    assert!(response
        .text()
        .await
        .unwrap()
        .contains(r#"id="password-error">Wrong password."#));
}

#[tokio::test]
async fn the_api_token_is_shown_once_and_rotating_it_retires_the_old_one() {
    let app = spawn_app().await;
    let response = app.post_form("/settings/api-token", &[]).await;
    assert_eq!(response.status(), 200);
    let page = response.text().await.unwrap();
    let marker = r#"id="new-api-token">"#;
    let start = page.find(marker).expect("the new token is shown") + marker.len();
    let token = page[start..].split('<').next().unwrap().to_owned();

    let with = |token: String| {
        let app = &app;
        async move {
            app.anon
                .get(app.url("/api/v1/daemons"))
                .bearer_auth(token)
                .send()
                .await
                .unwrap()
                .status()
        }
    };
    assert_eq!(with(token.clone()).await, 200);
    assert_eq!(
        with(app.api_token.clone()).await,
        401,
        "the old token is retired"
    );
    let (_, settings) = app.get_text("/settings").await;
    assert!(!settings.contains(&token), "shown only once");
    assert!(settings.contains("cannot be shown again"));
}

#[tokio::test]
async fn secrets_never_appear_in_pages_or_api_answers() {
    let app = spawn_app().await;
    let tls = engine_b_tls();
    app.post_json(
        "/api/v1/daemons",
        &json!({"name": "remote", "endpoint": tls.url, "tls_ca": tls.ca, "tls_cert": tls.cert, "tls_key": tls.key}),
    )
    .await;
    let hash: String =
        sqlx::query_scalar("SELECT hash FROM credentials WHERE kind = 'admin_password'")
            .fetch_one(app.app.store.pool())
            .await
            .unwrap();
    let mut seen = String::new();
    for path in [
        "/",
        "/daemons",
        "/settings",
        "/daemons/remote/card",
        "/daemons/remote/remove",
    ] {
        seen.push_str(&app.get_text(path).await.1);
    }
    let api: Value = app.get_json("/api/v1/daemons").await;
    seen.push_str(&api.to_string());
    for secret in [&app.api_token, &hash, &tls.key, &TEST_PASSWORD.to_owned()] {
        assert!(!seen.contains(secret.as_str()), "{secret} leaked");
    }
}
