//! The overview and the Daemons page, as a browser sees them over HTTP.

mod common;

use common::*;

#[tokio::test]
async fn the_overview_has_one_card_per_daemon_each_refreshing_itself() {
    let app = spawn_app().await;
    add_daemon(&app, "alpha", &engine_a_sock()).await;
    add_daemon(&app, "beta", &engine_b_sock()).await;
    let (status, page) = app.get_text("/").await;
    assert_eq!(status, 200);
    for name in ["alpha", "beta"] {
        assert!(page.contains(&format!(r#"id="daemon-{name}""#)), "{page}");
        assert!(
            page.contains(&format!(r#"hx-get="/daemons/{name}/card""#)),
            "{page}"
        );
    }
    assert!(page.contains(r#"<script src="/static/htmx.min.js" defer></script>"#));
}

#[tokio::test]
async fn a_card_shows_the_engine_and_api_version_or_the_error() {
    let app = spawn_app().await;
    add_daemon(&app, "alpha", &engine_a_sock()).await;
    add_daemon(&app, "gone", "unix:///nonexistent/docker.sock").await;
    let (status, card) = app.get_text("/daemons/alpha/card").await;
    assert_eq!(status, 200);
    assert!(
        card.contains("Reachable")
            && card.contains("Docker Engine 20.10")
            && card.contains("API 1.41"),
        "{card}"
    );
    assert!(
        !card.contains("hx-trigger"),
        "a refreshed card must not refresh again: {card}"
    );
    let (_, card) = app.get_text("/daemons/gone/card").await;
    assert!(
        card.contains("Unreachable") && card.contains("no socket at /nonexistent/docker.sock"),
        "{card}"
    );
}

#[tokio::test]
async fn the_overview_invites_to_add_a_daemon_when_there_is_none() {
    let app = spawn_app().await;
    let (status, page) = app.get_text("/").await;
    assert_eq!(status, 200);
    assert!(
        page.contains("No Docker daemon is configured yet"),
        "{page}"
    );
}

#[tokio::test]
async fn the_add_form_shows_errors_next_to_the_fields_and_keeps_the_input() {
    let app = spawn_app().await;
    let response = app
        .post_form(
            "/daemons",
            &[
                ("name", "bad name!"),
                ("endpoint", "tcp://host-without-port"),
            ],
        )
        .await;
    assert_eq!(response.status(), 422);
    let page = response.text().await.unwrap();
    assert!(
        page.contains(r#"<p class="field-error" id="name-error">only letters"#),
        "{page}"
    );
    assert!(
        page.contains(r#"<p class="field-error" id="endpoint-error">expected host:port"#),
        "{page}"
    );
    assert!(
        page.contains(r#"value="tcp://host-without-port""#),
        "{page}"
    );
    assert!(app.daemon_names().await.is_empty());
}

#[tokio::test]
async fn the_add_form_stores_a_daemon_and_shows_it() {
    let app = spawn_app().await;
    let tls = engine_b_tls();
    let response = app
        .post_form(
            "/daemons",
            &[
                ("name", "remote"),
                ("endpoint", &tls.url),
                ("tls_ca", &tls.ca),
                ("tls_cert", &tls.cert),
                ("tls_key", &tls.key),
            ],
        )
        .await;
    assert_eq!(response.status(), 303);
    assert_eq!(response.headers()["location"], "/daemons");
    let (_, page) = app.get_text("/daemons").await;
    assert!(
        page.contains("remote") && page.contains("Docker Engine 26.1") && page.contains("TLS"),
        "{page}"
    );
    assert!(!page.contains(&tls.key), "the key path must never be shown");
}

#[tokio::test]
async fn test_connection_reports_the_live_state() {
    let app = spawn_app().await;
    add_daemon(&app, "alpha", &engine_a_sock()).await;
    let (_, page) = app.get_text("/daemons").await;
    assert!(page.contains(r#"hx-post="/daemons/alpha/test""#), "{page}");
    let response = app.htmx_post("/daemons/alpha/test").await;
    assert_eq!(response.status(), 200);
    let fragment = response.text().await.unwrap();
    assert!(
        fragment.contains("Reachable") && fragment.contains("API 1.41"),
        "{fragment}"
    );
    assert!(!fragment.contains("<html"), "a fragment, not a page");
}

#[tokio::test]
async fn removing_asks_for_confirmation_first() {
    let app = spawn_app().await;
    add_daemon(&app, "alpha", &engine_a_sock()).await;
    let (status, confirm) = app.get_text("/daemons/alpha/remove").await;
    assert_eq!(status, 200);
    assert!(confirm.contains("Remove daemon alpha?"), "{confirm}");
    assert_eq!(
        app.daemon_names().await,
        ["alpha"],
        "asking removes nothing"
    );
    let response = app.post_form("/daemons/alpha/remove", &[]).await;
    assert_eq!(response.status(), 303);
    assert!(app.daemon_names().await.is_empty());
}

#[tokio::test]
async fn an_unknown_daemon_page_is_404() {
    let app = spawn_app().await;
    assert_eq!(app.get("/daemons/ghost/remove").await.status(), 404);
    assert_eq!(app.get("/daemons/ghost/card").await.status(), 404);
    assert_eq!(app.get("/no/such/page").await.status(), 404);
}

#[tokio::test]
async fn pages_forbid_inline_script_and_framing() {
    let app = spawn_app().await;
    let response = app.get("/").await;
    let csp = response.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"),
        "{csp}"
    );
    assert!(csp.contains("frame-ancestors 'none'"));
    assert_eq!(response.headers()["x-content-type-options"], "nosniff");
    assert_eq!(response.headers()["cache-control"], "no-store");
    let page = response.text().await.unwrap();
    assert!(
        !page.contains("<script>") && !page.contains(" style="),
        "inline script or style in {page}"
    );
}
