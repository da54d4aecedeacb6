//! The real HaRP (Nextcloud's AppAPI proxy, v0.4.4) that the harness runs in
//! front of engines A and B (tests/harness/engines.sh, "HaRP").
//!
//! HaRP's AppAPI side lives under [`BASE_PATH`] on [`Harp::url`]; every
//! request carries `harp-shared-key: KEY`, and a Docker call also
//! `docker-engine-port: P`, the port HaRP forwards it to on its own
//! 127.0.0.1 (in production an FRP tunnel to a Docker host):
//!
//! | port | engine |
//! |---|---|
//! | [`Harp::port_a`] | A (Engine 20.10, API 1.41): its plain TCP port |
//! | [`Harp::port_b`] | B (Engine 26.1, API 1.45): its unix socket through tests/harness/uds-bridge.py |
//!
//! HaRP passes `GET /_ping`, `GET /images/…/json`, `GET /containers/nc_app_…/json`
//! and `/logs`, and `POST /images/create` to the engine and answers 403 to
//! anything else there (no listing); its own Docker actions are `POST
//! /docker/exapp/…` (`exists`, `image_remove`, …). What it answers is in
//! tests/third_party/README.md.
//!
//! The harness's HaRP drops a client only after 1000 failed requests (a wrong
//! key, say) in 300 s, not upstream's 10, and the whole suite shares it: keep
//! wrong-key tests few all the same.

use std::time::Duration;

/// The path under which HaRP serves AppAPI: fixed by HaRP, never configured
/// (AppAPI's daemon settings hold only HaRP's address).
pub const BASE_PATH: &str = "/exapps/app_api";

/// The Docker API version for calls through HaRP: engine A (20.10) refuses
/// anything newer than 1.41 (AppAPI itself sends 1.44), engine B takes it too.
pub const DOCKER_API: &str = "/v1.41";

/// What the harness's HaRP is: its address, shared key and engine ports.
#[derive(Clone, Debug)]
pub struct Harp {
    /// `http://127.0.0.1:PORT`, without [`BASE_PATH`] (`EXAPP_JANITOR_TEST_HARP_URL`).
    pub url: String,
    /// HaRP's own HTTPS frontend, `https://127.0.0.1:PORT`, its certificate
    /// signed by the harness's CA (`EXAPP_JANITOR_TEST_HARP_HTTPS_URL`).
    pub https_url: String,
    /// The file holding the shared key, 0600 (`EXAPP_JANITOR_TEST_HARP_KEY_FILE`).
    pub key_file: String,
    /// The shared key, read from `key_file`.
    pub key: String,
    /// `docker-engine-port` for engine A (`EXAPP_JANITOR_TEST_HARP_PORT_A`).
    pub port_a: u16,
    /// `docker-engine-port` for engine B (`EXAPP_JANITOR_TEST_HARP_PORT_B`).
    pub port_b: u16,
}

/// A variable of the harness's HaRP, or a panic that says how to get it:
/// tests against HaRP never skip.
fn harp_var(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!(
            "{name} is not set: this test needs the real HaRP the harness runs. \
             Run the tests with tests/harness/run-tests.sh, or start the harness with \
             `tests/harness/engines.sh start DIR` (this version of it, without \
             EXAPP_JANITOR_HARNESS_HARP=0) and `. DIR/env` first."
        )
    })
}

fn port_var(name: &str) -> u16 {
    let value = harp_var(name);
    value
        .parse()
        .unwrap_or_else(|_| panic!("{name} is {value:?}, not a port"))
}

/// The harness's HaRP; panics naming the missing variable when it is not running.
pub fn harp() -> Harp {
    let key_file = harp_var("EXAPP_JANITOR_TEST_HARP_KEY_FILE");
    let key = std::fs::read_to_string(&key_file)
        .unwrap_or_else(|e| {
            panic!("EXAPP_JANITOR_TEST_HARP_KEY_FILE: cannot read {key_file}: {e} (is the harness still running?)")
        })
        .trim()
        .to_owned();
    assert!(!key.is_empty(), "{key_file} holds no key");
    Harp {
        url: harp_var("EXAPP_JANITOR_TEST_HARP_URL")
            .trim_end_matches('/')
            .to_owned(),
        https_url: harp_var("EXAPP_JANITOR_TEST_HARP_HTTPS_URL")
            .trim_end_matches('/')
            .to_owned(),
        key_file,
        key,
        port_a: port_var("EXAPP_JANITOR_TEST_HARP_PORT_A"),
        port_b: port_var("EXAPP_JANITOR_TEST_HARP_PORT_B"),
    }
}

impl Harp {
    /// The full URL of `path` under [`BASE_PATH`], e.g. `app_api("/info")`.
    pub fn app_api(&self, path: &str) -> String {
        format!("{}{BASE_PATH}{path}", self.url)
    }

    /// A client for HaRP: no pooled connections (each test's requests stand
    /// alone) and a timeout, since a client HaRP has banned gets no answer at all.
    pub fn client() -> reqwest::Client {
        reqwest::Client::builder()
            .pool_max_idle_per_host(0)
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap()
    }

    /// A request to HaRP itself (`/info`, `/docker/exapp/…`) with the key.
    pub fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        Self::client()
            .request(method, self.app_api(path))
            .header("harp-shared-key", &self.key)
    }

    /// A request with the key and `docker-engine-port: port`: a Docker call
    /// (`/v1.41/…`) HaRP passes to that engine, or one of HaRP's own Docker
    /// actions (`/docker/exapp/…`) on it.
    pub fn engine_request(
        &self,
        port: u16,
        method: reqwest::Method,
        path: &str,
    ) -> reqwest::RequestBuilder {
        self.request(method, path)
            .header("docker-engine-port", port.to_string())
    }
}
