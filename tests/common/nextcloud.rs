//! A Nextcloud stand-in: Nextcloud cannot run on these machines, so the
//! tests talk to this small server instead. It answers only the five
//! addresses the janitor reads, with bodies in the shapes of Nextcloud's
//! and AppAPI's own sources (see `src/nextcloud/appapi.rs` for the files):
//! the OCS envelope and its statuscodes, 401/997 for a wrong password, 403
//! "Logged in account must be an admin" for a non-admin, 404/998 for a route
//! AppAPI would add when it is not installed. It records every request's
//! method, so a test can show the janitor never writes.

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::sync::{Arc, Mutex};

use actix_web::dev::ServerHandle;
use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use base64::Engine;
use serde_json::{json, Value};

pub const NC_VERSION: &str = "31.0.2";
pub const APP_API_VERSION: &str = "31.0.0";
pub const ADMIN: &str = "admin";
/// An app password in Nextcloud's format (five groups of five).
pub const ADMIN_PASSWORD: &str = "Xq7Lp-2WvNc-9TzRb-K4mYs-Hd8Fj";
pub const USER: &str = "alice";
pub const USER_PASSWORD: &str = "Ab3De-Fg5Hi-Jk7Lm-No9Pq-Rs2Tu";

#[derive(Debug, Clone)]
pub struct State {
    /// login → (app password, admin)
    pub users: BTreeMap<String, (String, bool)>,
    pub app_api: bool,
    /// AppAPI's daemons, as `DaemonConfig::jsonSerialize` plus `exAppsCount`.
    pub daemons: Vec<Value>,
    /// (appid, name, version, enabled, daemon name)
    pub exapps: Vec<(String, String, String, bool, String)>,
    /// `METHOD path` of every request received.
    pub requests: Vec<String>,
}

impl Default for State {
    fn default() -> Self {
        let mut users = BTreeMap::new();
        users.insert(ADMIN.to_owned(), (ADMIN_PASSWORD.to_owned(), true));
        users.insert(USER.to_owned(), (USER_PASSWORD.to_owned(), false));
        Self {
            users,
            app_api: true,
            daemons: vec![
                harp_daemon("harp_proxy_docker", 24001),
                json!({"id": 2, "name": "docker_socket_proxy", "display_name": "Docker Socket Proxy",
                       "accepts_deploy_id": "docker-install", "protocol": "http",
                       "host": "nextcloud-appapi-dsp:2375",
                       "deploy_config": {"net": "bridge", "nextcloud_url": "https://cloud.example.org",
                                         "haproxy_password": "dummySecret123", "computeDevice": {"id": "cpu", "label": "CPU", "value": "cpu"}},
                       "exAppsCount": 0}),
                json!({"id": 3, "name": "manual_install", "display_name": "Manual install",
                       "accepts_deploy_id": "manual-install", "protocol": "http", "host": "host.docker.internal",
                       "deploy_config": {"net": "host", "nextcloud_url": "https://cloud.example.org"},
                       "exAppsCount": 0}),
                json!({"id": 4, "name": "k8s", "display_name": "Kubernetes",
                       "accepts_deploy_id": "kubernetes-install", "protocol": "http", "host": "harp.k8s:8780",
                       "deploy_config": {"net": "", "nextcloud_url": "https://cloud.example.org",
                                         "harp": {"frp_address": "", "docker_socket_port": 24000, "exapp_direct": true}},
                       "exAppsCount": 0}),
            ],
            exapps: vec![
                exapp(
                    "llm2",
                    "Local large language model",
                    "2.1.0",
                    "harp_proxy_docker",
                ),
                exapp(
                    "context_chat_backend",
                    "Context Chat Backend",
                    "4.3.0",
                    "harp_proxy_docker",
                ),
            ],
            requests: vec![],
        }
    }
}

pub fn harp_daemon(name: &str, docker_port: u16) -> Value {
    json!({"id": 1, "name": name, "display_name": "HaRP Proxy (Docker)",
           "accepts_deploy_id": "docker-install", "protocol": "http", "host": "appapi-harp:8780",
           "deploy_config": {"net": "host", "nextcloud_url": "https://cloud.example.org",
                             "haproxy_password": "dummySecret123",
                             "harp": {"frp_address": "appapi-harp:8782", "docker_socket_port": docker_port, "exapp_direct": false},
                             "computeDevice": {"id": "cpu", "label": "CPU", "value": "cpu"},
                             "registries": [{"from": "ghcr.io", "to": "mirror.example.org:5000"}]},
           "exAppsCount": 2})
}

pub fn exapp(
    id: &str,
    name: &str,
    version: &str,
    daemon: &str,
) -> (String, String, String, bool, String) {
    (id.into(), name.into(), version.into(), true, daemon.into())
}

pub struct Nextcloud {
    pub url: String,
    pub state: Arc<Mutex<State>>,
    handle: ServerHandle,
}

impl Nextcloud {
    pub async fn start() -> Self {
        Self::start_with(State::default()).await
    }

    pub async fn start_with(state: State) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let state = Arc::new(Mutex::new(state));
        let shared = state.clone();
        let server = HttpServer::new(move || {
            App::new()
                .app_data(web::Data::new(shared.clone()))
                .default_service(web::to(answer))
        })
        .workers(1)
        .listen(listener)
        .unwrap()
        .run();
        let handle = server.handle();
        tokio::spawn(server);
        // The server starts its workers when first polled: wait until it
        // answers, so a test that then blocks (running the CLI) finds it up.
        let status = format!("{url}/status.php");
        super::eventually(
            std::time::Duration::from_secs(10),
            "the Nextcloud stand-in answers",
            async || reqwest::get(&status).await.is_ok_and(|r| r.status() == 200),
        )
        .await;
        state.lock().unwrap().requests.clear();
        Self { url, state, handle }
    }

    /// Nextcloud goes away: its port refuses connections from now on.
    pub async fn stop(&self) {
        self.handle.stop(false).await;
    }

    pub fn change(&self, f: impl FnOnce(&mut State)) {
        f(&mut self.state.lock().unwrap());
    }

    pub fn requests(&self) -> Vec<String> {
        self.state.lock().unwrap().requests.clone()
    }
}

fn ocs(status: u16, statuscode: u16, message: &str, data: Value) -> HttpResponse {
    let ok = (200..300).contains(&status);
    HttpResponse::build(actix_web::http::StatusCode::from_u16(status).unwrap()).json(json!({
        "ocs": {
            "meta": {"status": if ok { "ok" } else { "failure" }, "statuscode": statuscode,
                     "message": message, "totalitems": "", "itemsperpage": ""},
            "data": data,
        }
    }))
}

enum Who {
    Nobody,
    Wrong,
    User { admin: bool },
}

fn who(req: &HttpRequest, state: &State) -> Who {
    let Some(header) = req
        .headers()
        .get("authorization")
        .and_then(|h| h.to_str().ok())
    else {
        return Who::Nobody;
    };
    let Some(encoded) = header.strip_prefix("Basic ") else {
        return Who::Wrong;
    };
    let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(encoded) else {
        return Who::Wrong;
    };
    let decoded = String::from_utf8_lossy(&decoded).into_owned();
    let Some((user, password)) = decoded.split_once(':') else {
        return Who::Wrong;
    };
    match state.users.get(user) {
        Some((p, admin)) if p == password => Who::User { admin: *admin },
        _ => Who::Wrong,
    }
}

async fn answer(req: HttpRequest, state: web::Data<Arc<Mutex<State>>>) -> HttpResponse {
    let mut state = state.lock().unwrap();
    state
        .requests
        .push(format!("{} {}", req.method(), req.uri()));
    let state = state.clone();
    if req.method() != actix_web::http::Method::GET {
        return HttpResponse::MethodNotAllowed().finish();
    }
    let path = req.path();
    let is_ocs = path.starts_with("/ocs/");
    // Nextcloud checks the login before routing: a wrong password is 401
    // everywhere (OCS: statuscode 997, "Current user is not logged in").
    let who = who(&req, &state);
    if path != "/status.php" {
        if let Who::Wrong = who {
            return if is_ocs {
                ocs(401, 997, "Current user is not logged in", json!([]))
            } else {
                HttpResponse::Unauthorized()
                    .json(json!({"message": "Current user is not logged in"}))
            };
        }
    }
    let admin_only = |admin: bool| -> Option<HttpResponse> {
        if admin {
            return None;
        }
        Some(if is_ocs {
            ocs(403, 403, "Logged in account must be an admin", json!([]))
        } else {
            HttpResponse::Forbidden().json(json!({"message": "Logged in account must be an admin"}))
        })
    };
    let app_route = path.contains("/apps/app_api/");
    if app_route && !state.app_api {
        return if is_ocs {
            ocs(404, 998, "Invalid query, please check the syntax. API specifications are here: http://www.freedesktop.org/wiki/Specifications/open-collaboration-services.", json!([]))
        } else {
            HttpResponse::NotFound().body("<html><body>Page not found</body></html>")
        };
    }
    let admin = match who {
        Who::User { admin } => admin,
        _ => false,
    };
    let logged_in = matches!(who, Who::User { .. });
    match path {
        "/status.php" => HttpResponse::Ok().json(json!({
            "installed": true, "maintenance": false, "needsDbUpgrade": false,
            "version": format!("{NC_VERSION}.1"), "versionstring": NC_VERSION,
            "edition": "", "productname": "Nextcloud", "extendedSupport": false
        })),
        "/ocs/v2.php/cloud/capabilities" => {
            let mut caps = json!({"core": {"pollinterval": 60, "webdav-root": "remote.php/webdav"}});
            if state.app_api {
                caps["app_api"] = json!({"loglevel": 2, "version": APP_API_VERSION});
            }
            ocs(200, 200, "OK", json!({
                "version": {"major": 31, "minor": 0, "micro": 2, "string": NC_VERSION, "edition": "", "extendedSupport": false},
                "capabilities": caps
            }))
        }
        _ if !logged_in => {
            if is_ocs {
                ocs(401, 997, "Current user is not logged in", json!([]))
            } else {
                HttpResponse::Unauthorized().json(json!({"message": "Current user is not logged in"}))
            }
        }
        "/index.php/apps/app_api/daemons" => admin_only(admin).unwrap_or_else(|| {
            HttpResponse::Ok().json(json!({
                "daemons": state.daemons,
                "default_daemon_config": "harp_proxy_docker"
            }))
        }),
        "/ocs/v2.php/apps/app_api/api/v1/ex-app/all" => admin_only(admin).unwrap_or_else(|| {
            let list: Vec<Value> = state
                .exapps
                .iter()
                .map(|(id, name, version, enabled, _)| {
                    json!({"id": id, "name": name, "version": version, "enabled": enabled,
                           "status": {"deploy": 100, "init": 100, "action": "", "type": "", "error": ""}})
                })
                .collect();
            ocs(200, 200, "OK", Value::Array(list))
        }),
        "/index.php/apps/app_api/apps/list" => admin_only(admin).unwrap_or_else(|| {
            let apps: Vec<Value> = state
                .exapps
                .iter()
                .map(|(id, name, version, enabled, daemon)| {
                    let d = state.daemons.iter().find(|d| d["name"] == json!(daemon)).cloned();
                    json!({"id": id, "app_api": true, "installed": true, "name": name,
                           "version": version, "active": enabled, "daemon": d,
                           "status": {"deploy": 100, "init": 100}, "error": ""})
                })
                .chain(std::iter::once(json!({"id": "not_installed_app", "app_api": true,
                    "installed": false, "name": "Not installed", "version": "1.0.0",
                    "active": false, "daemon": null, "status": [], "error": ""})))
                .collect();
            HttpResponse::Ok().json(json!({"apps": apps, "status": "success"}))
        }),
        _ if is_ocs => ocs(404, 998, "Invalid query", json!([])),
        _ => HttpResponse::NotFound().finish(),
    }
}
