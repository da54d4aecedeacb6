//! Following each daemon: its event stream (reconnecting with backoff), a
//! rescan after every ExApp container event, after each reconnect and
//! periodically, so every update path is seen — AppAPI's or anyone's. When
//! an ExApp's container comes back on another image, the old image is
//! outdated from that moment; with `cleanup_on_update` on, once the new
//! container has run (and, with a healthcheck, been healthy) for the settle
//! time, a run with trigger `update` removes what the policy no longer keeps
//! of that ExApp.
//!
//! The settle time is time of day: the janitor's clock (a test advances it).
//! Every other wait here — reconnect backoffs, the periodic rescan, the
//! pause that merges a remove-then-create, asking a daemon again — is about
//! a peer, and stays on tokio's timer.

use std::collections::HashMap;
use std::time::Duration;

use futures_util::StreamExt;

use crate::backend::Backend;
use crate::clock::Clock;
use crate::domain::{AppId, DaemonName, ImageId, EXAPP_CONTAINER_PREFIX};
use crate::inventory::Status;
use crate::janitor::Janitor;
use crate::jobs::{self, CleanupRequest, Trigger};
use crate::scan::{self, DaemonInventory};
use crate::store::StoredDaemon;

#[derive(Debug, Clone, Copy)]
pub struct WatchConfig {
    /// How long a new ExApp container must run before its update is cleaned up.
    pub settle: Duration,
    /// Rescan every daemon this often, events or not.
    pub rescan_interval: Duration,
    /// Look at a HaRP daemon's ExApp containers this often (no events there).
    pub harp_poll: Duration,
}

const MAX_BACKOFF: Duration = Duration::from_secs(60);
/// How often the supervisor looks for added or removed daemons.
const DAEMON_POLL: Duration = Duration::from_secs(10);
/// How long an update waits at most for its container to settle.
const SETTLE_LIMIT: Duration = Duration::from_secs(3600);

/// Watches every configured daemon, starting and stopping watchers as
/// daemons are added and removed.
pub fn spawn(app: Janitor, config: WatchConfig) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut watchers: HashMap<i64, tokio::task::JoinHandle<()>> = HashMap::new();
        loop {
            match app.store.list_daemons().await {
                Ok(daemons) => {
                    watchers.retain(|id, handle| {
                        let keep = daemons.iter().any(|d| d.id == *id);
                        if !keep {
                            handle.abort();
                        }
                        keep
                    });
                    for daemon in daemons {
                        watchers.entry(daemon.id).or_insert_with(|| {
                            tokio::spawn(watch_daemon(app.clone(), daemon, config))
                        });
                    }
                }
                Err(e) => tracing::error!(error = %e, "cannot list the daemons to watch"),
            }
            tokio::time::sleep(DAEMON_POLL.min(config.rescan_interval)).await;
        }
    })
}

/// The image each ExApp ran on when last seen, from the image history.
async fn last_known_images(app: &Janitor, daemon_id: i64) -> HashMap<AppId, ImageId> {
    let mut known = HashMap::new();
    if let Ok(history) = app.store.load_history(daemon_id).await {
        // Oldest first: the latest sighting wins.
        for (appid, image_id, _) in history.images {
            if let (Ok(a), Ok(i)) = (AppId::parse(&appid), ImageId::parse(&image_id)) {
                known.insert(a, i);
            }
        }
    }
    known
}

async fn watch_daemon(app: Janitor, daemon: StoredDaemon, config: WatchConfig) {
    let mut known = last_known_images(&app, daemon.id).await;
    let mut backoff = Duration::from_secs(1);
    loop {
        let client = match Backend::connect(&daemon, app.daemon_timeout).await {
            Ok(c) => c,
            Err(e @ crate::docker::DockerError::WrongHarpKey) => {
                // Asking again would get this address banned by HaRP.
                tracing::warn!(daemon = %daemon.name, error = %e, "not watching the daemon");
                let _ = app
                    .store
                    .record_contact_error(&daemon.name, &e.to_string())
                    .await;
                return;
            }
            Err(e) => {
                tracing::debug!(daemon = %daemon.name, error = %e, ?backoff, "daemon unreachable; retrying");
                let _ = app
                    .store
                    .record_contact_error(&daemon.name, &e.to_string())
                    .await;
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
                continue;
            }
        };
        backoff = Duration::from_secs(1);
        if !client.capabilities().events {
            poll(&app, &daemon, &mut known, config).await;
            tokio::time::sleep(backoff).await;
            continue;
        }
        let mut events = client.container_events();
        // Rescan after (re)connecting: catches what happened while disconnected.
        rescan(&app, &daemon, &mut known, config).await;
        let mut tick = tokio::time::interval(config.rescan_interval);
        tick.tick().await;
        loop {
            tokio::select! {
                event = events.next() => match event {
                    Some(Ok(e)) if is_exapp_change(&e.action, &e.name) => {
                        // Let a remove-then-create settle into one rescan.
                        tokio::time::sleep(Duration::from_millis(300)).await;
                        rescan(&app, &daemon, &mut known, config).await;
                    }
                    Some(Ok(_)) => {}
                    Some(Err(e)) => {
                        tracing::warn!(daemon = %daemon.name, error = %e, "event stream broke; reconnecting");
                        break;
                    }
                    None => {
                        tracing::warn!(daemon = %daemon.name, "event stream ended; reconnecting");
                        break;
                    }
                },
                _ = tick.tick() => rescan(&app, &daemon, &mut known, config).await,
            }
        }
        tokio::time::sleep(backoff).await;
    }
}

/// A daemon without events (HaRP): its ExApps are looked at every
/// `harp_poll`, with the daemon read again each time (its list of ExApps may
/// change). Returns when the daemon is gone.
async fn poll(
    app: &Janitor,
    daemon: &StoredDaemon,
    known: &mut HashMap<AppId, ImageId>,
    config: WatchConfig,
) {
    loop {
        let daemon = match app.store.get_daemon(&daemon.name).await {
            Ok(Some(d)) => d,
            Ok(None) => return,
            Err(e) => {
                tracing::warn!(daemon = %daemon.name, error = %e, "cannot read the daemon");
                daemon.clone()
            }
        };
        rescan(app, &daemon, known, config).await;
        tokio::time::sleep(config.harp_poll).await;
    }
}

fn is_exapp_change(action: &str, name: &str) -> bool {
    name.trim_start_matches('/')
        .starts_with(EXAPP_CONTAINER_PREFIX)
        && matches!(
            action,
            "create" | "start" | "destroy" | "die" | "rename" | "health_status: healthy"
        )
}

/// The image of each ExApp with a container now.
fn current_images(scan: &DaemonInventory) -> HashMap<AppId, ImageId> {
    scan.images
        .iter()
        .filter(|i| i.status == Status::Current)
        .flat_map(|i| {
            i.containers
                .iter()
                .filter_map(|c| AppId::from_container_name(c))
                .map(|a| (a, i.info.id.clone()))
        })
        .collect()
}

/// The ExApps whose image changed since they were last seen: (app, old, new).
pub fn updates(
    known: &HashMap<AppId, ImageId>,
    now: &HashMap<AppId, ImageId>,
) -> Vec<(AppId, ImageId, ImageId)> {
    let mut out: Vec<_> = now
        .iter()
        .filter_map(|(app, new)| match known.get(app) {
            Some(old) if old != new => Some((app.clone(), old.clone(), new.clone())),
            _ => None,
        })
        .collect();
    out.sort();
    out
}

async fn rescan(
    app: &Janitor,
    daemon: &StoredDaemon,
    known: &mut HashMap<AppId, ImageId>,
    config: WatchConfig,
) {
    let scan = match scan::scan_daemon(&app.store, daemon, &app.scan_options().await).await {
        Ok(scan) => scan,
        Err(e) => {
            tracing::warn!(daemon = %daemon.name, error = %e, "rescan failed");
            return;
        }
    };
    let now = current_images(&scan);
    for (appid, old, new) in updates(known, &now) {
        tracing::info!(daemon = %daemon.name, %appid, old = old.short(), new = new.short(), "ExApp updated");
        tokio::spawn(settle_then_clean(
            app.clone(),
            daemon.clone(),
            appid,
            new,
            config.settle,
        ));
    }
    known.extend(now);
}

/// What the settle loop waits for before it looks at the container again.
#[derive(Debug, Clone, Copy)]
enum Wait {
    /// Time of day to pass (the settle time, or what a restart left of it).
    Clock(Duration),
    /// A daemon that did not answer, or a healthcheck still starting: asking
    /// again is polling a peer.
    Poll(Duration),
}

impl Wait {
    async fn wait(self, clock: &Clock) {
        match self {
            Wait::Clock(d) => clock.sleep(d).await,
            Wait::Poll(d) => tokio::time::sleep(d).await,
        }
    }
}

/// Waits until the updated container has run for `settle` (and is healthy,
/// if it has a healthcheck), then cleans up that ExApp's old images if
/// `cleanup_on_update` is on. A container that does not stay up, or that was
/// replaced again meanwhile, removes nothing.
async fn settle_then_clean(
    app: Janitor,
    daemon: StoredDaemon,
    appid: AppId,
    image: ImageId,
    settle: Duration,
) {
    if settled(&app, &daemon, &appid, &image, settle).await {
        clean_after_update(&app, &daemon, &appid).await;
    }
}

/// What one look at the updated container says.
enum Look {
    /// It has run on the new image for the settle time, healthy if it can tell.
    Settled,
    /// Not yet, or the daemon did not answer: look again after this.
    Again(Wait),
    /// It will not settle on this image (gone, stopped, unhealthy, replaced
    /// again): no cleanup, and the log says why.
    NoCleanup,
}

/// Looks at the container until it settled (true), or until it is clear it
/// will not, or `SETTLE_LIMIT` passed (false).
async fn settled(
    app: &Janitor,
    daemon: &StoredDaemon,
    appid: &AppId,
    image: &ImageId,
    settle: Duration,
) -> bool {
    let clock = app.clock();
    let give_up_at = clock.now_ms() + i64::try_from(SETTLE_LIMIT.as_millis()).unwrap_or(0);
    let mut wait = Wait::Clock(settle);
    loop {
        wait.wait(clock).await;
        if clock.now_ms() > give_up_at {
            tracing::warn!(daemon = %daemon.name, %appid, "the updated container never settled; no cleanup");
            return false;
        }
        match look_at(app, daemon, appid, image, settle).await {
            Look::Settled => return true,
            Look::Again(next) => wait = next,
            Look::NoCleanup => return false,
        }
    }
}

async fn look_at(
    app: &Janitor,
    daemon: &StoredDaemon,
    appid: &AppId,
    image: &ImageId,
    settle: Duration,
) -> Look {
    let unanswered = Look::Again(Wait::Poll(Duration::from_secs(5)));
    let Ok(client) = Backend::connect(daemon, app.daemon_timeout).await else {
        return unanswered;
    };
    let name = format!("{EXAPP_CONTAINER_PREFIX}{appid}");
    let state = match client.run_state(&name).await {
        Ok(Some(s)) => s,
        Ok(None) => {
            tracing::info!(daemon = %daemon.name, %appid, "the updated container is gone; no cleanup");
            return Look::NoCleanup;
        }
        Err(_) => return unanswered,
    };
    if state.image_id != *image {
        tracing::info!(daemon = %daemon.name, %appid, "the container changed image again; that update decides");
        return Look::NoCleanup;
    }
    if !state.running {
        tracing::info!(daemon = %daemon.name, %appid, "the updated container did not stay running; no cleanup");
        return Look::NoCleanup;
    }
    match state.health.as_deref() {
        Some("unhealthy") => {
            tracing::info!(daemon = %daemon.name, %appid, "the updated container is unhealthy; no cleanup");
            return Look::NoCleanup;
        }
        Some("starting") => return Look::Again(Wait::Poll(Duration::from_secs(2))),
        _ => {}
    }
    // The start is the daemon's clock, read against ours (as every
    // timestamp of a daemon is: they are assumed to agree).
    let up_for = state
        .started_at
        .map(|t| app.clock().now_unix() - t)
        .unwrap_or(0);
    let up_for = Duration::from_secs(u64::try_from(up_for).unwrap_or(0));
    if up_for + Duration::from_secs(1) < settle {
        // Restarted meanwhile: it must run for the whole settle time.
        return Look::Again(Wait::Clock(settle - up_for));
    }
    Look::Settled
}

/// A run of trigger `update` on that ExApp's images on that daemon, if the
/// settings in force want one: `min_age_hours` is ignored, as the README
/// promises; `keep_previous` and the protected patterns still apply.
async fn clean_after_update(app: &Janitor, daemon: &StoredDaemon, appid: &AppId) {
    let settings = match app.current_settings().await {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(daemon = %daemon.name, %appid, error = %e, "no cleanup after the update");
            return;
        }
    };
    if !settings.cleanup_on_update {
        tracing::debug!(daemon = %daemon.name, %appid, "cleanup on update is off");
        return;
    }
    let request = CleanupRequest {
        daemon: Some(DaemonName::clone(&daemon.name)),
        min_age_hours: Some(0),
        owner: Some(appid.clone()),
        images: None,
    };
    let requested_by = format!("update of {appid}");
    match jobs::start_run(
        app,
        Trigger::Update,
        &requested_by,
        &request,
        app.policy().await,
    )
    .await
    {
        Ok(run) => {
            tracing::info!(run_id = run.id, %appid, jobs = run.jobs.len(), "cleanup after update started")
        }
        Err(e) => tracing::error!(%appid, error = %e, "cleanup after update could not start"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u8) -> ImageId {
        ImageId::parse(&format!("sha256:{}", format!("{n:02x}").repeat(32))).unwrap()
    }

    #[test]
    fn an_update_is_a_known_exapp_on_another_image() {
        let app = |s: &str| AppId::parse(s).unwrap();
        let known = HashMap::from([(app("a"), id(1)), (app("b"), id(2)), (app("gone"), id(3))]);
        let now = HashMap::from([(app("a"), id(4)), (app("b"), id(2)), (app("new"), id(5))]);
        assert_eq!(updates(&known, &now), [(app("a"), id(1), id(4))]);
    }
}
