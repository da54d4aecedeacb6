//! PURE: Nextcloud's and AppAPI's answers, parsed into what the janitor
//! uses. The shapes are AppAPI's own (files of github.com/nextcloud/app_api
//! and nextcloud/server, as read for issue #20):
//!
//! - the OCS envelope `{"ocs": {"meta": {"status", "statuscode", "message"},
//!   "data": …}}`; on `/ocs/v2.php` the HTTP status mirrors `statuscode`,
//!   and a failed login is statuscode 997 → HTTP 401
//!   (server: `ocs/v1.php` catches `LoginException` with
//!   `RESPOND_UNAUTHORISED`; `lib/private/AppFramework/OCS/V1Response.php`
//!   and `V2Response.php` map 997 to 401); a non-admin on an admin route gets
//!   403 with "Logged in account must be an admin" (server:
//!   `SecurityMiddleware`, `NotAdminException`), as JSON `{"message": …}`
//!   on `index.php` routes;
//! - `GET /status.php` (server `status.php`): `{"installed", "maintenance",
//!   "needsDbUpgrade", "version", "versionstring", "edition", "productname"}`;
//! - `GET /ocs/v2.php/cloud/capabilities`: `data.version.string` and, when
//!   AppAPI is enabled, `data.capabilities.app_api.version`
//!   (app_api `lib/Capabilities.php`);
//! - `GET /index.php/apps/app_api/daemons` (app_api `appinfo/routes.php`,
//!   `lib/Controller/DaemonConfigController.php::getAllDaemonConfigs`,
//!   `lib/Service/DaemonConfigService.php::getDaemonConfigsWithAppsCount`,
//!   `lib/Db/DaemonConfig.php::jsonSerialize`): plain JSON, no envelope,
//!   `{"daemons": [{"id", "accepts_deploy_id", "name", "display_name",
//!   "protocol", "host", "deploy_config": {"net", "nextcloud_url",
//!   "computeDevice", "harp": {"frp_address", "docker_socket_port",
//!   "exapp_direct"}, "haproxy_password" (masked), "registries": [{"from",
//!   "to"}]}, "exAppsCount"}], "default_daemon_config"}`;
//! - `GET /ocs/v2.php/apps/app_api/api/v1/ex-app/all` (app_api
//!   `lib/Controller/OCSExAppController.php::getExAppsList`,
//!   `lib/Service/ExAppService.php::formatExAppInfo`): OCS data
//!   `[{"id", "name", "version", "enabled", "status"}]`, no daemon;
//! - `GET /index.php/apps/app_api/apps/list` (app_api
//!   `lib/Controller/ExAppsPageController.php::listApps`): `{"apps": [{"id",
//!   "installed", "name", "version", "active", "daemon": DaemonConfig|null,
//!   …}], "status"}` — the list that carries each installed ExApp's daemon.
//!
//! Deploy IDs: `docker-install` (`DockerActions::DEPLOY_ID`; HaRP daemons
//! are `docker-install` with `deploy_config.harp`), `manual-install`
//! (`ManualActions`), `kubernetes-install` (`KubernetesActions`, through HaRP).

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::domain::AppId;
use crate::inventory::{AppApiView, RegistryMirror};

/// What the test found: Nextcloud's version and AppAPI's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Versions {
    /// Like `31.0.2`.
    pub nextcloud: String,
    /// Like `31.0.0`.
    pub app_api: String,
}

/// How AppAPI deploys ExApps on a daemon.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DeployMethod {
    /// `docker-install` straight to a Docker Engine or a socket proxy.
    Docker,
    /// `docker-install` through HaRP.
    Harp,
    /// `manual-install`: the admin runs the ExApp; no Docker host to clean.
    Manual,
    /// `kubernetes-install`: images live on the cluster's nodes.
    Kubernetes,
    /// A deploy ID this version does not know.
    Other,
}

/// One of AppAPI's registry mappings (`deploy_config.registries`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RegistryMap {
    pub from: String,
    pub to: String,
}

/// One AppAPI deploy daemon, as AppAPI describes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AppApiDaemon {
    pub name: String,
    pub display_name: String,
    /// AppAPI's `accepts_deploy_id`, as given.
    pub deploy_id: String,
    pub method: DeployMethod,
    /// `http` or `https`.
    pub protocol: String,
    /// AppAPI's `host`: a socket path, `host:port` of the Engine or of a
    /// socket proxy, or HaRP's `host:port`.
    pub host: String,
    /// HaRP's `docker_socket_port` (the docker-engine-port), for HaRP daemons.
    pub harp_docker_port: Option<u16>,
    pub compute_device: Option<String>,
    pub registries: Vec<RegistryMap>,
}

/// One installed ExApp.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AppApiExApp {
    #[schema(value_type = String)]
    pub id: AppId,
    pub name: String,
    pub version: String,
    pub enabled: bool,
    /// The daemon AppAPI deployed it to, when the apps list named one.
    pub daemon: Option<String>,
}

/// What AppAPI knew at one moment: every daemon and every installed ExApp.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AppApiSnapshot {
    pub daemons: Vec<AppApiDaemon>,
    pub exapps: Vec<AppApiExApp>,
}

impl AppApiSnapshot {
    /// What this snapshot says about one janitor daemon, for classifying
    /// its images. `linked` is the AppAPI daemon it was accepted as. An
    /// unlinked daemon, or one AppAPI no longer lists, counts every ExApp
    /// AppAPI lists anywhere as installed and uses no mirrors: it may
    /// well be an AppAPI daemon the admin added by hand, and "installed"
    /// is the side that keeps images. An ExApp whose daemon the apps list
    /// did not name counts as installed on every daemon, for the same reason.
    pub fn view_for(&self, linked: Option<&str>) -> AppApiView {
        let daemon = linked.and_then(|name| self.daemons.iter().find(|d| d.name == name));
        let installed = self
            .exapps
            .iter()
            .filter(|e| match (daemon, e.daemon.as_deref()) {
                (Some(d), Some(on)) => on == d.name,
                _ => true,
            })
            .map(|e| e.id.clone())
            .collect();
        let mirrors = daemon
            .map(|d| {
                d.registries
                    .iter()
                    .map(|r| RegistryMirror {
                        from: r.from.clone(),
                        to: r.to.clone(),
                    })
                    .collect()
            })
            .unwrap_or_default();
        AppApiView { installed, mirrors }
    }

    /// The ExApps AppAPI deployed to `daemon`, sorted.
    pub fn exapps_on(&self, daemon: &str) -> Vec<AppId> {
        let mut ids: Vec<AppId> = self
            .exapps
            .iter()
            .filter(|e| e.daemon.as_deref() == Some(daemon))
            .map(|e| e.id.clone())
            .collect();
        ids.sort();
        ids
    }
}

/// How an answer failed, before the client turns it into words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refused {
    /// 401, or OCS statuscode 997.
    Login,
    /// 403 (OCS or not): the user is no admin.
    NotAdmin,
    /// 404, or OCS statuscode 998: the route does not exist.
    NotFound,
    /// Anything else: the status and a short reason.
    Other(String),
}

/// The HTTP status (and, for OCS, the envelope's statuscode) as a refusal,
/// or `None` when the call succeeded.
pub fn refusal(status: u16, body: &[u8]) -> Option<Refused> {
    let ocs_code = serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| v.pointer("/ocs/meta/statuscode").and_then(Value::as_i64));
    match (status, ocs_code) {
        (401, _) | (_, Some(997)) => Some(Refused::Login),
        (403, _) | (_, Some(403)) => Some(Refused::NotAdmin),
        (404, _) | (_, Some(998)) | (_, Some(404)) => Some(Refused::NotFound),
        (200..=299, None | Some(100) | Some(200)) => None,
        (s, code) => Some(Refused::Other(match code {
            Some(c) => format!("HTTP {s}, OCS status {c}"),
            None => format!("HTTP {s}"),
        })),
    }
}

/// `/status.php`: whether this is an installed Nextcloud, and its version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    pub installed: bool,
    pub maintenance: bool,
    /// `versionstring` (like `31.0.2`), else `version`.
    pub version: String,
}

pub fn parse_status(body: &[u8]) -> Result<Status, String> {
    let v: Value = serde_json::from_slice(body).map_err(|_| "not JSON".to_owned())?;
    let installed = v.get("installed").and_then(Value::as_bool);
    let version = v
        .get("versionstring")
        .or_else(|| v.get("version"))
        .and_then(Value::as_str);
    match (installed, version) {
        (Some(installed), Some(version)) => Ok(Status {
            installed,
            maintenance: v
                .get("maintenance")
                .and_then(Value::as_bool)
                .unwrap_or(false),
            version: version.to_owned(),
        }),
        _ => Err("no \"installed\" and \"version\"".into()),
    }
}

/// The OCS envelope's `data`.
pub fn ocs_data(body: &[u8]) -> Result<Value, String> {
    let mut v: Value = serde_json::from_slice(body).map_err(|_| "not JSON".to_owned())?;
    v.pointer_mut("/ocs/data")
        .map(Value::take)
        .ok_or_else(|| "no OCS envelope (ocs.data)".into())
}

/// AppAPI's version from the capabilities' `data`; `None` when AppAPI is
/// not installed or not enabled (it then adds no `app_api` capability).
pub fn app_api_version(capabilities: &Value) -> Option<String> {
    capabilities
        .pointer("/capabilities/app_api/version")
        .and_then(Value::as_str)
        .filter(|v| !v.is_empty())
        .map(str::to_owned)
}

pub fn parse_daemons(body: &[u8]) -> Result<Vec<AppApiDaemon>, String> {
    let v: Value = serde_json::from_slice(body).map_err(|_| "not JSON".to_owned())?;
    let list = v
        .get("daemons")
        .and_then(Value::as_array)
        .ok_or("no \"daemons\" list")?;
    list.iter().map(parse_daemon).collect()
}

fn text(v: &Value, key: &str) -> Option<String> {
    v.get(key).and_then(|x| match x {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    })
}

fn parse_daemon(v: &Value) -> Result<AppApiDaemon, String> {
    let name = text(v, "name").ok_or("a daemon without a name")?;
    let deploy_id = text(v, "accepts_deploy_id").unwrap_or_default();
    let config = v.get("deploy_config").cloned().unwrap_or(Value::Null);
    // `harp` is an object on HaRP daemons; older versions stored `false`.
    let harp = config.get("harp").filter(|h| h.is_object());
    let harp_docker_port = harp
        .and_then(|h| h.get("docker_socket_port"))
        .and_then(|p| match p {
            Value::Number(n) => n.as_u64(),
            Value::String(s) => s.trim().parse().ok(),
            _ => None,
        })
        .and_then(|p| u16::try_from(p).ok());
    let method = match deploy_id.as_str() {
        "docker-install" if harp.is_some() => DeployMethod::Harp,
        "docker-install" => DeployMethod::Docker,
        "manual-install" => DeployMethod::Manual,
        "kubernetes-install" => DeployMethod::Kubernetes,
        _ => DeployMethod::Other,
    };
    let registries = config
        .get("registries")
        .and_then(Value::as_array)
        .map(|list| {
            list.iter()
                .filter_map(|r| {
                    Some(RegistryMap {
                        from: text(r, "from")?,
                        to: text(r, "to")?,
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    Ok(AppApiDaemon {
        display_name: text(v, "display_name").unwrap_or_else(|| name.clone()),
        name,
        deploy_id,
        method,
        protocol: text(v, "protocol").unwrap_or_default(),
        host: text(v, "host").unwrap_or_default(),
        harp_docker_port,
        compute_device: text(&config, "computeDevice"),
        registries,
    })
}

/// The OCS `data` of `ex-app/all`; daemons are filled in by `with_daemons`.
pub fn parse_exapps(data: &Value) -> Result<Vec<AppApiExApp>, String> {
    let list = data.as_array().ok_or("the ExApps list is not a list")?;
    list.iter()
        .map(|e| {
            let raw = text(e, "id").ok_or("an ExApp without an id")?;
            let id = AppId::parse(&raw).map_err(|_| format!("{raw:?} is not an ExApp ID"))?;
            Ok(AppApiExApp {
                name: text(e, "name").unwrap_or_else(|| raw.clone()),
                id,
                version: text(e, "version").unwrap_or_default(),
                enabled: e.get("enabled").and_then(Value::as_bool).unwrap_or(false),
                daemon: None,
            })
        })
        .collect()
}

/// Each ExApp's daemon, from `apps/list` (`apps[].daemon.name` of installed apps).
pub fn with_daemons(
    mut exapps: Vec<AppApiExApp>,
    apps_list: &[u8],
) -> Result<Vec<AppApiExApp>, String> {
    let v: Value = serde_json::from_slice(apps_list).map_err(|_| "not JSON".to_owned())?;
    let apps = v
        .get("apps")
        .and_then(Value::as_array)
        .ok_or("no \"apps\" list")?;
    for exapp in &mut exapps {
        exapp.daemon = apps
            .iter()
            .find(|a| text(a, "id").as_deref() == Some(exapp.id.as_str()))
            .and_then(|a| a.get("daemon"))
            .and_then(|d| text(d, "name"));
    }
    exapps.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(exapps)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn ocs_failures_are_told_apart() {
        let env = |code: i64| {
            json!({"ocs": {"meta": {"status": "failure", "statuscode": code, "message": ""}, "data": []}})
                .to_string()
        };
        assert_eq!(refusal(401, env(997).as_bytes()), Some(Refused::Login));
        assert_eq!(refusal(200, env(997).as_bytes()), Some(Refused::Login));
        assert_eq!(refusal(403, env(403).as_bytes()), Some(Refused::NotAdmin));
        assert_eq!(
            refusal(403, br#"{"message":"Logged in account must be an admin"}"#),
            Some(Refused::NotAdmin)
        );
        assert_eq!(refusal(404, env(998).as_bytes()), Some(Refused::NotFound));
        assert_eq!(refusal(200, br#"{"daemons":[]}"#), None);
        let ok = json!({"ocs": {"meta": {"status": "ok", "statuscode": 200}, "data": []}});
        assert_eq!(refusal(200, ok.to_string().as_bytes()), None);
        assert!(matches!(refusal(500, b"oops"), Some(Refused::Other(_))));
    }

    #[test]
    fn a_harp_daemon_and_a_socket_proxy_and_a_manual_one_are_recognised() {
        let body = json!({"daemons": [
            {"id": 1, "name": "harp_proxy_docker", "display_name": "HaRP", "accepts_deploy_id": "docker-install",
             "protocol": "http", "host": "appapi-harp:8780",
             "deploy_config": {"net": "host", "nextcloud_url": "https://c", "harp": {"frp_address": "appapi-harp:8782", "docker_socket_port": 24001, "exapp_direct": false},
                               "haproxy_password": "dummySecret123", "computeDevice": {"id": "cpu", "label": "CPU"},
                               "registries": [{"from": "ghcr.io", "to": "mirror.local:5000"}]},
             "exAppsCount": 2},
            {"id": 2, "name": "docker_socket_proxy", "display_name": "DSP", "accepts_deploy_id": "docker-install",
             "protocol": "http", "host": "nextcloud-appapi-dsp:2375", "deploy_config": {"net": "bridge"}},
            {"id": 3, "name": "manual", "display_name": "Manual", "accepts_deploy_id": "manual-install",
             "protocol": "http", "host": "localhost", "deploy_config": {}},
            {"id": 4, "name": "k8s", "display_name": "K8s", "accepts_deploy_id": "kubernetes-install",
             "protocol": "http", "host": "harp:8780", "deploy_config": {"harp": {"docker_socket_port": 24000}}}
        ], "default_daemon_config": "harp_proxy_docker"});
        let daemons = parse_daemons(body.to_string().as_bytes()).unwrap();
        assert_eq!(daemons[0].method, DeployMethod::Harp);
        assert_eq!(daemons[0].harp_docker_port, Some(24001));
        assert_eq!(daemons[0].registries.len(), 1);
        assert_eq!(daemons[1].method, DeployMethod::Docker);
        assert_eq!(daemons[1].harp_docker_port, None);
        assert_eq!(daemons[2].method, DeployMethod::Manual);
        assert_eq!(daemons[3].method, DeployMethod::Kubernetes);
    }

    #[test]
    fn exapps_get_their_daemon_from_the_apps_list() {
        let data = json!([
            {"id": "llm2", "name": "Local LLM", "version": "2.1.0", "enabled": true, "status": {}},
            {"id": "context_chat_backend", "name": "CCB", "version": "4.0.0", "enabled": false, "status": {}}
        ]);
        let apps = json!({"apps": [
            {"id": "llm2", "installed": true, "daemon": {"name": "harp_proxy_docker"}},
            {"id": "other", "installed": false, "daemon": null}
        ], "status": "success"});
        let exapps =
            with_daemons(parse_exapps(&data).unwrap(), apps.to_string().as_bytes()).unwrap();
        assert_eq!(exapps[0].id.as_str(), "context_chat_backend");
        assert_eq!(exapps[0].daemon, None);
        assert_eq!(exapps[1].daemon.as_deref(), Some("harp_proxy_docker"));
        let snapshot = AppApiSnapshot {
            daemons: vec![],
            exapps,
        };
        assert_eq!(snapshot.exapps_on("harp_proxy_docker").len(), 1);
    }

    #[test]
    fn status_and_capabilities_give_the_versions() {
        let s = parse_status(br#"{"installed":true,"maintenance":false,"needsDbUpgrade":false,"version":"31.0.2.1","versionstring":"31.0.2","edition":"","productname":"Nextcloud","extendedSupport":false}"#).unwrap();
        assert_eq!(s.version, "31.0.2");
        assert!(parse_status(b"<html>").is_err());
        let caps = json!({"version": {"string": "31.0.2"}, "capabilities": {"app_api": {"loglevel": 2, "version": "31.0.0"}}});
        assert_eq!(app_api_version(&caps).as_deref(), Some("31.0.0"));
        assert_eq!(app_api_version(&json!({"capabilities": {}})), None);
    }
    fn two_daemons() -> AppApiSnapshot {
        let daemon = |name: &str, mirror: Option<(&str, &str)>| AppApiDaemon {
            name: name.into(),
            display_name: name.into(),
            deploy_id: "docker-install".into(),
            method: DeployMethod::Docker,
            protocol: "http".into(),
            host: "/var/run/docker.sock".into(),
            harp_docker_port: None,
            compute_device: None,
            registries: mirror
                .map(|(from, to)| RegistryMap {
                    from: from.into(),
                    to: to.into(),
                })
                .into_iter()
                .collect(),
        };
        let exapp = |id: &str, on: Option<&str>| AppApiExApp {
            id: AppId::parse(id).unwrap(),
            name: id.into(),
            version: "1.0.0".into(),
            enabled: true,
            daemon: on.map(Into::into),
        };
        AppApiSnapshot {
            daemons: vec![
                daemon("cpu", None),
                daemon("gpu", Some(("ghcr.io", "mirror.local:5000"))),
            ],
            exapps: vec![
                exapp("translate2", Some("cpu")),
                exapp("llm2", Some("gpu")),
                exapp("unplaced", None),
            ],
        }
    }

    fn installed(view: &AppApiView) -> Vec<&str> {
        view.installed.iter().map(AppId::as_str).collect()
    }

    #[test]
    fn a_linked_daemon_sees_its_own_exapps_and_mirrors_and_the_unplaced_ones() {
        let view = two_daemons().view_for(Some("gpu"));
        assert_eq!(installed(&view), ["llm2", "unplaced"]);
        assert_eq!(view.mirrors.len(), 1);
        assert_eq!(view.mirrors[0].to, "mirror.local:5000");
    }

    #[test]
    fn an_unlinked_daemon_counts_every_listed_exapp_as_installed_and_has_no_mirrors() {
        for linked in [None, Some("gone-from-appapi")] {
            let view = two_daemons().view_for(linked);
            assert_eq!(installed(&view), ["llm2", "translate2", "unplaced"]);
            assert!(view.mirrors.is_empty());
        }
    }
}
