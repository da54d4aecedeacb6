//! Connecting to real engines: every endpoint kind, both API versions, and
//! the failures an admin meets (wrong CA, a daemon that hangs).

mod common;

use std::time::{Duration, Instant};

use common::fixtures::Fixtures;
use common::*;
use exapp_janitor::docker::DaemonClient;
use exapp_janitor::domain::{Endpoint, TlsFiles};

fn endpoint(raw: &str) -> Endpoint {
    Endpoint::parse(raw, None).unwrap()
}

fn tls_endpoint(tls: &TlsEndpoint, ca: &str) -> Endpoint {
    let files = TlsFiles::resolve(ca, &tls.cert, &tls.key).unwrap();
    Endpoint::parse(&tls.url, Some(files)).unwrap()
}

#[tokio::test]
async fn engine_20_10_over_a_unix_socket_negotiates_api_1_41() {
    let client = DaemonClient::connect(&endpoint(&engine_a_sock()), TEST_DAEMON_TIMEOUT)
        .await
        .unwrap();
    assert!(
        client.engine().engine_version.starts_with("20.10"),
        "{:?}",
        client.engine()
    );
    assert_eq!(client.engine().api_version, "1.41");
}

#[tokio::test]
async fn engine_26_1_over_a_unix_socket_negotiates_api_1_45() {
    let client = DaemonClient::connect(&endpoint(&engine_b_sock()), TEST_DAEMON_TIMEOUT)
        .await
        .unwrap();
    assert!(
        client.engine().engine_version.starts_with("26.1"),
        "{:?}",
        client.engine()
    );
    assert_eq!(client.engine().api_version, "1.45");
}

#[tokio::test]
async fn negotiated_client_can_make_versioned_calls() {
    for sock in [engine_a_sock(), engine_b_sock()] {
        let client = DaemonClient::connect(&endpoint(&sock), TEST_DAEMON_TIMEOUT)
            .await
            .unwrap();
        let info = client
            .docker()
            .info()
            .await
            .expect("a versioned call at the negotiated version");
        assert!(info.images.is_some());
    }
}

#[tokio::test]
async fn plain_tcp_reaches_the_engine() {
    let client = DaemonClient::connect(&endpoint(&engine_a_tcp()), TEST_DAEMON_TIMEOUT)
        .await
        .unwrap();
    assert_eq!(client.engine().api_version, "1.41");
}

#[tokio::test]
async fn tls_with_a_client_certificate_reaches_the_engine() {
    let tls = engine_b_tls();
    let client = DaemonClient::connect(&tls_endpoint(&tls, &tls.ca), TEST_DAEMON_TIMEOUT)
        .await
        .unwrap();
    assert_eq!(client.engine().api_version, "1.45");
}

#[tokio::test]
async fn tls_with_the_wrong_ca_is_refused_with_a_certificate_error() {
    let tls = engine_b_tls();
    // The client certificate is no CA of the daemon's certificate.
    let error = DaemonClient::connect(&tls_endpoint(&tls, &tls.cert), TEST_DAEMON_TIMEOUT)
        .await
        .unwrap_err()
        .to_string();
    assert!(error.to_lowercase().contains("certificate"), "{error}");
}

#[tokio::test]
async fn a_daemon_that_never_answers_times_out_within_the_bound() {
    let (_listener, url) = black_hole();
    let started = Instant::now();
    let error = DaemonClient::connect(&endpoint(&url), Duration::from_millis(500))
        .await
        .unwrap_err();
    assert!(error.to_string().contains("no answer within"), "{error}");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "took {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_missing_socket_says_so() {
    let error = DaemonClient::connect(
        &endpoint("unix:///nonexistent/docker.sock"),
        TEST_DAEMON_TIMEOUT,
    )
    .await
    .unwrap_err();
    assert!(
        error
            .to_string()
            .contains("no socket at /nonexistent/docker.sock"),
        "{error}"
    );
}

#[test]
fn fixtures_make_shared_layer_images_and_real_running_containers() {
    for host in [engine_a_sock(), engine_b_sock()] {
        let fx = Fixtures::new(&host);
        let base = fx.unique("base:1");
        let base_id = fx.import(&base, &[("etc/base.txt", 4096)]);
        let app_id = fx.build(&fx.unique("app:1"), &base, 8192);
        assert_ne!(base_id, app_id);
        let layers =
            |id: &str| fx.docker(&["image", "inspect", "-f", "{{len .RootFS.Layers}}", id]);
        assert_eq!(
            (layers(&base_id).as_str(), layers(&app_id).as_str()),
            ("1", "2")
        );

        let busybox = fx.unique("busybox:1");
        fx.busybox(&busybox);
        let name = fx.unique("nc_app_fixture");
        fx.run(&name, &busybox);
        assert_eq!(
            fx.docker(&["inspect", "-f", "{{.State.Running}}", &name]),
            "true"
        );
        fx.docker(&["rm", "-f", &name]);
    }
}
