//! The daemon registry: add, list, remove and check daemons. The CLI, the JSON
//! API and the Daemons page all go through these functions, so the three
//! agree on every rule and message.

use std::path::Path;
use std::time::Duration;

use futures_util::future::join_all;
use serde::Serialize;

use crate::backend::Backend;
use crate::docker::EngineInfo;
use crate::domain::{
    parse_exapps, DaemonName, Endpoint, FieldErrors, NewDaemon, NewDaemonInput, TlsFiles,
};
use crate::store::{DaemonContact, Store, StoreError, StoredDaemon};

#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error("invalid daemon: {0}")]
    Invalid(FieldErrors),
    #[error("there is no daemon named {0:?}")]
    NotFound(String),
    /// Removing it would leave queued or running jobs without their daemon.
    #[error("daemon {name} has {active} queued or running cleanup job(s): cancel the queued ones (or let them finish) first")]
    Busy { name: String, active: i64 },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Validates and stores a daemon. An unreachable daemon is stored all the
/// same (it may come up later); a taken name is a field error.
pub async fn add(store: &Store, input: &NewDaemonInput) -> Result<StoredDaemon, DaemonError> {
    let daemon = NewDaemon::parse(input).map_err(DaemonError::Invalid)?;
    if !store.insert_daemon(&daemon).await? {
        return Err(DaemonError::Invalid(FieldErrors::single(
            "name",
            format!("a daemon named {} already exists", daemon.name),
        )));
    }
    get(store, daemon.name.as_str()).await
}

pub async fn get(store: &Store, name: &str) -> Result<StoredDaemon, DaemonError> {
    let not_found = || DaemonError::NotFound(name.to_owned());
    let parsed = DaemonName::parse(name).map_err(|_| not_found())?;
    store.get_daemon(&parsed).await?.ok_or_else(not_found)
}

/// Removes a daemon (no image on it is touched). Its past runs and jobs stay
/// as history; while it has queued or running jobs it is not removed.
pub async fn remove(store: &Store, name: &str) -> Result<(), DaemonError> {
    let daemon = get(store, name).await?;
    let active = store.active_jobs_of_daemon(daemon.id).await?;
    if active > 0 {
        return Err(DaemonError::Busy {
            name: daemon.name.to_string(),
            active,
        });
    }
    if store.remove_daemon(&daemon.name).await? {
        Ok(())
    } else {
        Err(DaemonError::NotFound(name.to_owned()))
    }
}

/// Adds ExApps to (and removes them from) what the janitor looks for on a
/// HaRP daemon. All of it or, on one bad ID, nothing.
pub async fn change_exapps(
    store: &Store,
    name: &str,
    add: &[String],
    remove: &[String],
) -> Result<StoredDaemon, DaemonError> {
    let daemon = get(store, name).await?;
    let Some(harp) = &daemon.harp else {
        return Err(DaemonError::Invalid(FieldErrors::single(
            "exapps",
            format!(
                "{} is not a HaRP daemon: on a Docker Engine the janitor finds every ExApp itself",
                daemon.name
            ),
        )));
    };
    let invalid = |m: String| DaemonError::Invalid(FieldErrors::single("exapps", m));
    let add = parse_exapps(add.iter().map(String::as_str)).map_err(invalid)?;
    let remove = parse_exapps(remove.iter().map(String::as_str)).map_err(invalid)?;
    let mut exapps: Vec<_> = harp
        .exapps
        .iter()
        .filter(|a| !remove.contains(a))
        .cloned()
        .chain(add)
        .collect();
    exapps.sort();
    exapps.dedup();
    if exapps.len() > crate::domain::HarpAccess::MAX_EXAPPS {
        return Err(invalid(format!(
            "at most {} ExApps",
            crate::domain::HarpAccess::MAX_EXAPPS
        )));
    }
    if !store.set_daemon_exapps(&daemon.name, &exapps).await? {
        return Err(DaemonError::NotFound(name.to_owned()));
    }
    get(store, name).await
}

pub async fn list(store: &Store) -> Result<Vec<StoredDaemon>, DaemonError> {
    Ok(store.list_daemons().await?)
}

/// Contacts one daemon (bounded by `timeout`), remembers the outcome and
/// returns the daemon with its fresh contact.
pub async fn check(store: &Store, mut daemon: StoredDaemon, timeout: Duration) -> StoredDaemon {
    let outcome = Backend::connect(&daemon, timeout)
        .await
        .map(|client| client.engine().clone())
        .map_err(|e| e.to_string());
    let recorded = match &outcome {
        Ok(info) => {
            store
                .record_contact_ok(&daemon.name, &info.engine_version, &info.api_version)
                .await
        }
        Err(error) => store.record_contact_error(&daemon.name, error).await,
    };
    if let Err(e) = recorded {
        tracing::warn!(daemon = %daemon.name, error = %e, "could not record the daemon's contact");
    }
    apply_contact(&mut daemon.contact, outcome, store.clock().now());
    daemon
}

/// Checks every daemon at once: the slowest is bounded by `timeout`, and one
/// daemon's failure shows only on its own row.
pub async fn check_all(store: &Store, timeout: Duration) -> Result<Vec<StoredDaemon>, DaemonError> {
    let daemons = list(store).await?;
    Ok(join_all(daemons.into_iter().map(|d| check(store, d, timeout))).await)
}

fn apply_contact(
    contact: &mut DaemonContact,
    outcome: Result<EngineInfo, String>,
    now: time::OffsetDateTime,
) {
    let now = now.replace_nanosecond(0).ok();
    contact.checked_at = now;
    match outcome {
        Ok(info) => {
            contact.reachable = true;
            contact.engine_version = Some(info.engine_version);
            contact.api_version = Some(info.api_version);
        }
        Err(error) => {
            contact.reachable = false;
            contact.last_error = Some(error);
            contact.last_error_at = now;
        }
    }
}

/// The daemon to add as `local` on the very first start, when no daemon is
/// configured: `DOCKER_HOST` (with Docker's `DOCKER_TLS_VERIFY` and
/// `DOCKER_CERT_PATH` for TLS), else the default socket if it exists.
pub fn local_daemon_input(
    docker_host: Option<&str>,
    docker_tls_verify: bool,
    docker_cert_path: Option<&Path>,
    default_socket: &Path,
) -> Option<NewDaemonInput> {
    let mut input = NewDaemonInput {
        name: "local".into(),
        ..Default::default()
    };
    match docker_host.map(str::trim).filter(|h| !h.is_empty()) {
        Some(host) if docker_tls_verify => {
            let certs = docker_cert_path?;
            let file = |f: &str| Some(certs.join(f).to_string_lossy().into_owned());
            input.endpoint = host.replacen("tcp://", "https://", 1);
            input.tls_ca = file("ca.pem");
            input.tls_cert = file("cert.pem");
            input.tls_key = file("key.pem");
        }
        Some(host) => input.endpoint = host.to_owned(),
        None if default_socket.exists() => {
            input.endpoint = format!("unix://{}", default_socket.display())
        }
        None => return None,
    }
    Some(input)
}

const FIRST_START_KEY: &str = "first_start_done";

/// Runs once per data dir: adds the local daemon if there is one and no
/// daemon is configured yet. Removing `local` later does not bring it back.
pub async fn add_local_on_first_start(
    store: &Store,
    candidate: Option<NewDaemonInput>,
) -> Result<Option<DaemonName>, DaemonError> {
    if !store.meta_set_once(FIRST_START_KEY, "1").await? || !list(store).await?.is_empty() {
        return Ok(None);
    }
    let Some(input) = candidate else {
        return Ok(None);
    };
    match add(store, &input).await {
        Ok(daemon) => Ok(Some(daemon.name)),
        Err(DaemonError::Invalid(errors)) => {
            tracing::warn!(endpoint = %input.endpoint, %errors, "not adding the local Docker daemon");
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

/// What a person sees of an endpoint: its URL, never the TLS key path.
pub fn describe_endpoint(endpoint: &Endpoint) -> String {
    match endpoint.tls_files() {
        Some(TlsFiles { .. }) => format!("{endpoint} (TLS client certificate)"),
        None => endpoint.to_string(),
    }
}

/// A daemon as the CLI and the API show it. Never includes TLS file paths.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct DaemonSummary {
    pub name: String,
    /// `engine` (the Engine's own API) or `harp` (through HaRP).
    pub kind: &'static str,
    pub endpoint: String,
    /// A HaRP daemon's docker-engine-port.
    pub harp_docker_port: Option<u16>,
    /// The ExApps looked for on a HaRP daemon (HaRP lists nothing).
    pub exapps: Option<Vec<String>>,
    /// What the janitor cannot know or do on this daemon, in words.
    pub limits: Vec<String>,
    pub tls: bool,
    pub reachable: bool,
    pub engine_version: Option<String>,
    pub api_version: Option<String>,
    pub checked_at: Option<String>,
    pub last_error: Option<String>,
    pub last_error_at: Option<String>,
}

/// A HaRP daemon's limits, in words for the admin.
fn limits(d: &StoredDaemon) -> Vec<String> {
    let Some(harp) = &d.harp else {
        return Vec::new();
    };
    let mut out = vec![
        format!(
            "HaRP lists nothing: only the {} ExApp(s) named here are looked at; other images on that host are never seen or touched",
            harp.exapps.len()
        ),
        "sizes are upper bounds: layers shared with images the janitor cannot see are not subtracted".to_owned(),
        "updates are noticed by looking at the ExApp containers every --harp-poll-secs, not by events".to_owned(),
        "before a removal nobody may ask which containers use an image: Docker's own refusal (never forced) keeps an image in use".to_owned(),
    ];
    let harp_version = d
        .contact
        .engine_version
        .as_deref()
        .and_then(|v| v.split("through HaRP ").nth(1));
    if let Some(version) = harp_version.filter(|v| !crate::docker::harp_removes(v)) {
        out.push(format!(
            "HaRP {version} is older than 0.4.1: the janitor lists but cannot remove images there; update HaRP"
        ));
    }
    out
}

/// A contact's time (whole seconds, UTC) as the API prints times.
fn rfc3339(t: Option<time::OffsetDateTime>) -> Option<String> {
    t.map(|t| crate::clock::rfc3339(t.unix_timestamp()))
}

impl From<&StoredDaemon> for DaemonSummary {
    fn from(d: &StoredDaemon) -> Self {
        Self {
            name: d.name.to_string(),
            kind: if d.harp.is_some() { "harp" } else { "engine" },
            endpoint: d.endpoint.to_string(),
            harp_docker_port: d.endpoint.harp().map(|h| h.docker_port),
            exapps: d
                .harp
                .as_ref()
                .map(|h| h.exapps.iter().map(ToString::to_string).collect()),
            limits: limits(d),
            tls: d.endpoint.tls_files().is_some(),
            reachable: d.contact.reachable,
            engine_version: d.contact.engine_version.clone(),
            api_version: d.contact.api_version.clone(),
            checked_at: rfc3339(d.contact.checked_at),
            last_error: d.contact.last_error.clone(),
            last_error_at: rfc3339(d.contact.last_error_at),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_daemon_prefers_docker_host() {
        let input = local_daemon_input(
            Some("tcp://10.0.0.2:2375"),
            false,
            None,
            Path::new("/nonexistent"),
        )
        .unwrap();
        assert_eq!(
            (input.name.as_str(), input.endpoint.as_str()),
            ("local", "tcp://10.0.0.2:2375")
        );
    }

    #[test]
    fn local_daemon_uses_docker_tls_settings_like_the_docker_cli() {
        let input = local_daemon_input(
            Some("tcp://h:2376"),
            true,
            Some(Path::new("/certs")),
            Path::new("/x"),
        )
        .unwrap();
        assert_eq!(input.endpoint, "https://h:2376");
        assert_eq!(input.tls_key.as_deref(), Some("/certs/key.pem"));
    }

    #[test]
    fn local_daemon_falls_back_to_an_existing_default_socket_only() {
        assert!(local_daemon_input(None, false, None, Path::new("/nonexistent.sock")).is_none());
        let existing = std::env::temp_dir();
        let input = local_daemon_input(Some(""), false, None, &existing).unwrap();
        assert_eq!(input.endpoint, format!("unix://{}", existing.display()));
    }
}
