//! The Nextcloud connection as the janitor uses it: connect (tested first,
//! so a wrong password changes nothing), test, read AppAPI's lists into the
//! last good snapshot, and propose AppAPI's daemons as janitor daemons for
//! the admin to accept or refuse. Nothing is ever written to Nextcloud (the
//! client can only `GET`), and nothing is added to the janitor silently.
//!
//! When Nextcloud does not answer, or refuses the password, the last good
//! snapshot stays as it was and the failure is remembered in words: "no
//! answer" is never read as "AppAPI has no ExApps".

use std::time::Duration;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::daemons::{self, DaemonError};
use crate::domain::{
    AppPassword, DaemonName, FieldErrors, HarpAccess, NewDaemonInput, NextcloudLogin, NextcloudUrl,
    NextcloudUser,
};
use crate::nextcloud::{
    AppApiDaemon, AppApiExApp, AppApiSnapshot, DeployMethod, NextcloudClient, NextcloudError,
    Versions,
};
use crate::store::{Store, StoreError, StoredDecision, StoredNextcloud};

/// How long one call to Nextcloud may take.
pub const TIMEOUT: Duration = Duration::from_secs(20);

/// How often a running server reads AppAPI's lists again.
pub const REFRESH_EVERY: Duration = Duration::from_secs(3600);

#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    #[error("invalid input")]
    Invalid(FieldErrors),
    #[error(
        "the janitor is not connected to Nextcloud; connect it first \
         (exapp-janitor nextcloud connect URL --user USER --app-password-file FILE)"
    )]
    NotConnected,
    #[error("{0}")]
    Nextcloud(#[from] NextcloudError),
    #[error("AppAPI has no daemon named {0:?} (as of the last time Nextcloud answered)")]
    NoSuchDaemon(String),
    #[error("{0}")]
    NotManaged(String),
    #[error("the AppAPI daemon {0:?} was answered already")]
    AlreadyDecided(String),
    #[error(transparent)]
    Daemon(#[from] DaemonError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// `nextcloud connect` / `PUT /api/v1/nextcloud` / the Settings form.
#[derive(Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConnectInput {
    #[serde(default)]
    #[schema(required = true, example = "https://cloud.example.org")]
    pub url: String,
    /// A Nextcloud admin's login name.
    #[serde(default)]
    #[schema(required = true, example = "admin")]
    pub user: String,
    /// An app password of that admin (never shown again).
    #[serde(default)]
    #[schema(required = true)]
    pub app_password: String,
}

/// Without the app password, which nothing prints.
impl std::fmt::Debug for ConnectInput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnectInput")
            .field("url", &self.url)
            .field("user", &self.user)
            .field("app_password", &"redacted")
            .finish()
    }
}

pub fn parse_login(input: &ConnectInput) -> Result<NextcloudLogin, FieldErrors> {
    let mut errors = FieldErrors::new();
    let url = NextcloudUrl::parse(&input.url).map_err(|m| errors.add("url", m));
    let user = NextcloudUser::parse(&input.user).map_err(|m| errors.add("user", m));
    let password =
        AppPassword::parse(&input.app_password).map_err(|m| errors.add("app_password", m));
    match (url, user, password) {
        (Ok(url), Ok(user), Ok(password)) => Ok(NextcloudLogin {
            url,
            user,
            password,
        }),
        _ => Err(errors),
    }
}

/// What a proposal stands at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ProposalState {
    /// Waiting for the admin's answer.
    Proposed,
    Accepted,
    Refused,
    /// A deploy method the janitor cannot clean (manual, Kubernetes).
    NotManaged,
}

/// One AppAPI daemon, proposed as a janitor daemon.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Proposal {
    /// AppAPI's daemon name.
    pub appapi_daemon: String,
    pub display_name: String,
    pub method: DeployMethod,
    /// AppAPI's host value for it.
    pub host: String,
    pub state: ProposalState,
    /// The janitor daemon it would become (or became): its name and
    /// endpoint, when they can be derived from AppAPI's settings.
    pub janitor_daemon: Option<String>,
    pub endpoint: Option<String>,
    pub harp_docker_port: Option<u16>,
    /// What the admin must give to accept it, or why it is not managed.
    pub note: String,
    /// The ExApps AppAPI deployed there.
    pub exapps: Vec<String>,
}

/// PURE: AppAPI's daemons with the admin's answers, as proposals.
pub fn proposals(snapshot: &AppApiSnapshot, decisions: &[StoredDecision]) -> Vec<Proposal> {
    snapshot
        .daemons
        .iter()
        .map(|d| {
            let decision = decisions.iter().find(|x| x.appapi_daemon == d.name);
            let (state, note, endpoint) = describe(d);
            let state = match (state, decision) {
                (ProposalState::NotManaged, _) => ProposalState::NotManaged,
                (_, Some(x)) if x.accepted => ProposalState::Accepted,
                (_, Some(_)) => ProposalState::Refused,
                (s, None) => s,
            };
            let janitor_daemon = decision.and_then(|x| x.janitor_daemon.clone()).or_else(|| {
                (state == ProposalState::Proposed)
                    .then(|| DaemonName::parse(&d.name).ok().map(|n| n.to_string()))
                    .flatten()
            });
            Proposal {
                appapi_daemon: d.name.clone(),
                display_name: d.display_name.clone(),
                method: d.method.clone(),
                host: d.host.clone(),
                state,
                janitor_daemon,
                endpoint,
                harp_docker_port: d.harp_docker_port,
                note,
                exapps: snapshot
                    .exapps_on(&d.name)
                    .iter()
                    .map(|a| a.to_string())
                    .collect(),
            }
        })
        .collect()
}

/// The proposal's starting state, its note, and the endpoint AppAPI's
/// settings give (HaRP only: a direct host is not trusted to list images).
fn describe(d: &AppApiDaemon) -> (ProposalState, String, Option<String>) {
    match d.method {
        DeployMethod::Harp => {
            let scheme = if d.protocol == "https" {
                "harp+https"
            } else {
                "harp+http"
            };
            (
                ProposalState::Proposed,
                "a HaRP daemon: give HaRP's shared key (AppAPI never reveals it); its ExApp \
                 list follows AppAPI's"
                    .into(),
                Some(format!("{scheme}://{}", d.host)),
            )
        }
        DeployMethod::Docker => (
            ProposalState::Proposed,
            format!(
                "a Docker daemon: give the Engine's own endpoint (unix://, tcp:// or https://). \
                 AppAPI's host value {:?} is often a Docker Socket Proxy, which cannot list \
                 images, so it is not used as it is",
                d.host
            ),
            None,
        ),
        DeployMethod::Manual => (
            ProposalState::NotManaged,
            "not managed: a manual-install daemon runs ExApps the admin deployed by hand, \
             with no Docker host AppAPI controls"
                .into(),
            None,
        ),
        DeployMethod::Kubernetes => (
            ProposalState::NotManaged,
            "not managed: on Kubernetes the images live on the cluster's nodes, which the \
             kubelet's image garbage collection cleans"
                .into(),
            None,
        ),
        DeployMethod::Other => (
            ProposalState::NotManaged,
            format!(
                "not managed: the deploy method {:?} is unknown to this version",
                d.deploy_id
            ),
            None,
        ),
    }
}

/// The connection as shown (never with its password).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct NextcloudView {
    pub connected: bool,
    pub url: Option<String>,
    pub user: Option<String>,
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>)]
    pub connected_at: Option<OffsetDateTime>,
    /// The last contact with Nextcloud.
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>)]
    pub checked_at: Option<OffsetDateTime>,
    /// The last contact's error in words; null when it worked.
    pub error: Option<String>,
    pub nextcloud_version: Option<String>,
    pub app_api_version: Option<String>,
    /// When AppAPI's lists were last read; what follows is from then.
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>)]
    pub snapshot_at: Option<OffsetDateTime>,
    pub exapps: Vec<AppApiExApp>,
    pub proposals: Vec<Proposal>,
}

impl NextcloudView {
    pub fn disconnected() -> Self {
        Self {
            connected: false,
            url: None,
            user: None,
            connected_at: None,
            checked_at: None,
            error: None,
            nextcloud_version: None,
            app_api_version: None,
            snapshot_at: None,
            exapps: vec![],
            proposals: vec![],
        }
    }

    /// One sentence for the overview when the janitor works from an older
    /// snapshot because Nextcloud failed to answer.
    pub fn stale_note(&self) -> Option<String> {
        let error = self.error.as_ref()?;
        Some(match self.snapshot_at {
            Some(at) => format!(
                "{error}. The janitor goes on with AppAPI's lists as read at {}.",
                at.format(&time::format_description::well_known::Rfc3339)
                    .unwrap_or_default()
            ),
            None => format!("{error}. AppAPI's lists have not been read yet."),
        })
    }
}

fn snapshot_of(stored: &StoredNextcloud) -> AppApiSnapshot {
    stored
        .snapshot
        .as_deref()
        .and_then(|s| serde_json::from_str(s).ok())
        .unwrap_or_default()
}

/// ExApp names and versions by app ID from the last snapshot; empty when
/// not connected (names are cosmetic: a failure here fails nothing).
pub async fn owner_names(store: &Store) -> crate::report::OwnerNames {
    match store.nextcloud().await {
        Ok(Some(stored)) => snapshot_of(&stored)
            .exapps
            .into_iter()
            .map(|e| (e.id.to_string(), (e.name, e.version)))
            .collect(),
        Ok(None) => Default::default(),
        Err(e) => {
            tracing::warn!(error = %e, "cannot read AppAPI's ExApp names");
            Default::default()
        }
    }
}

pub async fn status(store: &Store) -> Result<NextcloudView, LinkError> {
    let Some(stored) = store.nextcloud().await? else {
        return Ok(NextcloudView::disconnected());
    };
    let snapshot = snapshot_of(&stored);
    let decisions = store.nextcloud_decisions().await?;
    Ok(NextcloudView {
        connected: true,
        url: Some(stored.login.url.to_string()),
        user: Some(stored.login.user.to_string()),
        connected_at: Some(stored.connected_at),
        checked_at: stored.checked_at,
        error: stored.check_error.clone(),
        nextcloud_version: stored.nextcloud_version.clone(),
        app_api_version: stored.app_api_version.clone(),
        snapshot_at: stored.snapshot_at,
        proposals: proposals(&snapshot, &decisions),
        exapps: snapshot.exapps,
    })
}

/// Tests the login and, when it works, stores it and reads AppAPI's lists.
/// A failed test changes nothing.
pub async fn connect(
    store: &Store,
    input: &ConnectInput,
    timeout: Duration,
) -> Result<NextcloudView, LinkError> {
    let login = parse_login(input).map_err(LinkError::Invalid)?;
    let client = NextcloudClient::new(login.clone(), timeout);
    let versions = client.test().await?;
    store
        .connect_nextcloud(&login, &versions.nextcloud, &versions.app_api)
        .await?;
    tracing::info!(url = %login.url, user = %login.user, "connected to Nextcloud");
    // The lists are read now; if that fails, the failure is shown with the
    // connection (which stays: the password did work a moment ago).
    let _ = refresh(store, timeout).await;
    status(store).await
}

pub async fn disconnect(store: &Store) -> Result<(), LinkError> {
    if store.disconnect_nextcloud().await? {
        Ok(())
    } else {
        Err(LinkError::NotConnected)
    }
}

async fn stored(store: &Store) -> Result<StoredNextcloud, LinkError> {
    store.nextcloud().await?.ok_or(LinkError::NotConnected)
}

/// Tests the stored connection and remembers the outcome.
pub async fn test(store: &Store, timeout: Duration) -> Result<Versions, LinkError> {
    let stored = stored(store).await?;
    let result = NextcloudClient::new(stored.login, timeout).test().await;
    match &result {
        Ok(v) => {
            store
                .nextcloud_contact_ok(Some((&v.nextcloud, &v.app_api)), None)
                .await?
        }
        Err(e) => store.nextcloud_contact_failed(&e.to_string()).await?,
    }
    Ok(result?)
}

/// Reads AppAPI's lists into the snapshot; HaRP daemons the admin accepted
/// then look for exactly the ExApps AppAPI deployed there. On failure the
/// last snapshot, and every daemon's ExApp list, stay as they were.
pub async fn refresh(store: &Store, timeout: Duration) -> Result<NextcloudView, LinkError> {
    let stored = stored(store).await?;
    let snapshot = match NextcloudClient::new(stored.login, timeout).snapshot().await {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, "AppAPI's lists could not be read; the last ones are kept");
            store.nextcloud_contact_failed(&e.to_string()).await?;
            return Err(e.into());
        }
    };
    let json = serde_json::to_string(&snapshot).expect("a snapshot serialises");
    store.nextcloud_contact_ok(None, Some(&json)).await?;
    follow_appapi(store, &snapshot).await?;
    status(store).await
}

/// Sets each accepted HaRP daemon's ExApps to AppAPI's list for it.
async fn follow_appapi(store: &Store, snapshot: &AppApiSnapshot) -> Result<(), LinkError> {
    for decision in store.nextcloud_decisions().await? {
        let (true, Some(name)) = (decision.accepted, &decision.janitor_daemon) else {
            continue;
        };
        if !snapshot
            .daemons
            .iter()
            .any(|d| d.name == decision.appapi_daemon)
        {
            // AppAPI no longer lists the daemon: its ExApps are left as they were.
            continue;
        }
        let Ok(name) = DaemonName::parse(name) else {
            continue;
        };
        let exapps = snapshot.exapps_on(&decision.appapi_daemon);
        if exapps.len() <= HarpAccess::MAX_EXAPPS {
            store.set_daemon_exapps(&name, &exapps).await?;
        }
    }
    Ok(())
}

/// What the admin gives to accept a proposal.
#[derive(Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AcceptInput {
    /// The janitor daemon's name (default: AppAPI's daemon name).
    #[serde(default)]
    pub name: Option<String>,
    /// Docker daemons: the Engine's own endpoint. HaRP daemons: overrides
    /// the `harp+http://host:port` derived from AppAPI's settings.
    #[serde(default)]
    pub endpoint: Option<String>,
    #[serde(default)]
    pub tls_ca: Option<String>,
    #[serde(default)]
    pub tls_cert: Option<String>,
    #[serde(default)]
    pub tls_key: Option<String>,
    /// HaRP daemons: HaRP's shared key (never shown again).
    #[serde(default)]
    pub harp_key: Option<String>,
}

impl std::fmt::Debug for AcceptInput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AcceptInput")
            .field("name", &self.name)
            .field("endpoint", &self.endpoint)
            .field("harp_key", &self.harp_key.as_ref().map(|_| "redacted"))
            .finish_non_exhaustive()
    }
}

async fn proposal(
    store: &Store,
    appapi_daemon: &str,
) -> Result<(Proposal, AppApiSnapshot), LinkError> {
    let stored = stored(store).await?;
    let snapshot = snapshot_of(&stored);
    let decisions = store.nextcloud_decisions().await?;
    let found = proposals(&snapshot, &decisions)
        .into_iter()
        .find(|p| p.appapi_daemon == appapi_daemon)
        .ok_or_else(|| LinkError::NoSuchDaemon(appapi_daemon.to_owned()))?;
    Ok((found, snapshot))
}

/// Adds the janitor daemon a proposal describes, with what the admin gave.
pub async fn accept(
    store: &Store,
    appapi_daemon: &str,
    input: &AcceptInput,
) -> Result<NextcloudView, LinkError> {
    let (p, snapshot) = proposal(store, appapi_daemon).await?;
    match p.state {
        ProposalState::NotManaged => return Err(LinkError::NotManaged(p.note)),
        ProposalState::Accepted | ProposalState::Refused => {
            return Err(LinkError::AlreadyDecided(p.appapi_daemon))
        }
        ProposalState::Proposed => {}
    }
    let given = |v: &Option<String>| {
        v.as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
    };
    let name = given(&input.name)
        .or(p.janitor_daemon.clone())
        .unwrap_or_default();
    let daemon_input = match p.method {
        DeployMethod::Harp => NewDaemonInput {
            name,
            endpoint: given(&input.endpoint)
                .or(p.endpoint.clone())
                .unwrap_or_default(),
            tls_ca: given(&input.tls_ca),
            harp_key: Some(input.harp_key.clone().unwrap_or_default()),
            harp_docker_port: p.harp_docker_port.map(i64::from),
            exapps: Some(
                snapshot
                    .exapps_on(appapi_daemon)
                    .iter()
                    .map(|a| a.to_string())
                    .collect(),
            ),
            ..Default::default()
        },
        _ => {
            let Some(endpoint) = given(&input.endpoint) else {
                return Err(LinkError::Invalid(FieldErrors::single(
                    "endpoint",
                    format!(
                        "give the Docker Engine's own endpoint (unix://, tcp:// or https://); \
                         AppAPI's host value {:?} is often a Docker Socket Proxy, which cannot \
                         list images",
                        p.host
                    ),
                )));
            };
            NewDaemonInput {
                name,
                endpoint,
                tls_ca: given(&input.tls_ca),
                tls_cert: given(&input.tls_cert),
                tls_key: given(&input.tls_key),
                ..Default::default()
            }
        }
    };
    let added = daemons::add(store, &daemon_input).await?;
    if !store
        .decide_nextcloud_proposal(appapi_daemon, Some(added.name.as_str()))
        .await?
    {
        return Err(LinkError::AlreadyDecided(appapi_daemon.to_owned()));
    }
    tracing::info!(appapi_daemon, daemon = %added.name, "AppAPI daemon accepted");
    status(store).await
}

/// Records that the admin does not want the janitor to look after it.
pub async fn refuse(store: &Store, appapi_daemon: &str) -> Result<NextcloudView, LinkError> {
    let (p, _) = proposal(store, appapi_daemon).await?;
    match p.state {
        ProposalState::NotManaged => return Err(LinkError::NotManaged(p.note)),
        ProposalState::Accepted | ProposalState::Refused => {
            return Err(LinkError::AlreadyDecided(p.appapi_daemon))
        }
        ProposalState::Proposed => {}
    }
    if !store.decide_nextcloud_proposal(appapi_daemon, None).await? {
        return Err(LinkError::AlreadyDecided(appapi_daemon.to_owned()));
    }
    status(store).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nextcloud::RegistryMap;

    fn daemon(name: &str, method: DeployMethod) -> AppApiDaemon {
        AppApiDaemon {
            name: name.into(),
            display_name: name.into(),
            deploy_id: "docker-install".into(),
            method,
            protocol: "http".into(),
            host: "harp:8780".into(),
            harp_docker_port: Some(24001),
            compute_device: None,
            registries: Vec::<RegistryMap>::new(),
        }
    }

    #[test]
    fn harp_is_proposed_with_its_endpoint_and_manual_is_not_managed() {
        let snapshot = AppApiSnapshot {
            daemons: vec![
                daemon("harp_proxy", DeployMethod::Harp),
                daemon("dsp", DeployMethod::Docker),
                daemon("manual_install", DeployMethod::Manual),
                daemon("k8s", DeployMethod::Kubernetes),
            ],
            exapps: vec![],
        };
        let refused = StoredDecision {
            appapi_daemon: "dsp".into(),
            accepted: false,
            janitor_daemon: None,
            decided_at: OffsetDateTime::UNIX_EPOCH,
        };
        let p = proposals(&snapshot, &[refused]);
        assert_eq!(p[0].state, ProposalState::Proposed);
        assert_eq!(p[0].endpoint.as_deref(), Some("harp+http://harp:8780"));
        assert_eq!(p[1].state, ProposalState::Refused);
        assert!(p[1].note.contains("Socket Proxy"), "{}", p[1].note);
        assert_eq!(p[2].state, ProposalState::NotManaged);
        assert!(p[2].note.starts_with("not managed"), "{}", p[2].note);
        assert_eq!(p[3].state, ProposalState::NotManaged);
    }

    #[test]
    fn a_failed_contact_says_the_last_lists_are_kept() {
        let mut view = NextcloudView::disconnected();
        assert_eq!(view.stale_note(), None);
        view.error = Some("Nextcloud did not answer: connection refused".into());
        view.snapshot_at = Some(OffsetDateTime::UNIX_EPOCH);
        let note = view.stale_note().unwrap();
        assert!(note.contains("goes on with AppAPI's lists"), "{note}");
    }
}
