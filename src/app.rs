//! The composition root: `exapp-janitor serve` builds the janitor, starts
//! its background tasks (watcher, worker, scheduler, session purge, report
//! warmer) and the web server, and wires them together. Only the CLI
//! imports this module.

use std::net::TcpListener;
use std::path::Path;
use std::time::Duration;

use crate::auth::{self, ApiTokenSource, AuthError, SessionLimits};
use crate::config::{GlobalConfig, ServeConfig};
use crate::daemons;
use crate::domain::TrustedProxies;
use crate::janitor::Janitor;
use crate::store::StoreError;

/// How often expired sessions are deleted while the server runs.
const SESSION_PURGE_INTERVAL: Duration = Duration::from_secs(15 * 60);

/// Deletes expired sessions at start and then every quarter of an hour
/// (housekeeping on the timer; which sessions expired is the clock's to say).
fn spawn_session_purge(app: Janitor) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut every = tokio::time::interval(SESSION_PURGE_INTERVAL);
        loop {
            every.tick().await;
            match auth::purge_sessions(&app.store, app.sessions).await {
                Ok(0) => {}
                Ok(n) => tracing::debug!(sessions = n, "deleted expired sessions"),
                Err(e) => tracing::warn!(error = %e, "cannot delete expired sessions"),
            }
        }
    })
}

/// Reads AppAPI's lists at start and then hourly while connected. A failure
/// is remembered (and shown) by `nextcloud_link`; the last lists stay.
fn spawn_nextcloud_refresh(app: Janitor) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut every = tokio::time::interval(crate::nextcloud_link::REFRESH_EVERY);
        loop {
            every.tick().await;
            match app.store.nextcloud().await {
                Ok(Some(_)) => {
                    let refreshed =
                        crate::nextcloud_link::refresh(&app.store, crate::nextcloud_link::TIMEOUT)
                            .await;
                    if refreshed.is_ok() {
                        // Statuses follow what AppAPI lists now.
                        app.rescan_soon();
                    }
                }
                Ok(None) => {}
                Err(e) => tracing::warn!(error = %e, "cannot read the Nextcloud connection"),
            }
        }
    })
}

/// How often the server looks whether the report must be built again.
const REPORT_WARM_INTERVAL: Duration = Duration::from_secs(2);

/// Builds the report (image objects, overview figures) soon after a scan
/// changed an inventory, so that no request waits for it: at 100 daemons of
/// 1,000 images the first build takes seconds, and every request that
/// arrived meanwhile waited for it. An unchanged report costs a few reads.
fn spawn_report_warmer(app: Janitor) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut every = tokio::time::interval(REPORT_WARM_INTERVAL);
        let mut last: Option<std::sync::Arc<crate::report::Report>> = None;
        loop {
            every.tick().await;
            let started = std::time::Instant::now();
            match app.report().await {
                Ok(report)
                    if last
                        .as_ref()
                        .is_none_or(|l| !std::sync::Arc::ptr_eq(l, &report)) =>
                {
                    tracing::debug!(
                        daemons = report.daemon_names().count(),
                        images = report.images.len(),
                        ms = started.elapsed().as_millis() as u64,
                        "report ready"
                    );
                    last = Some(report);
                }
                Ok(_) => {}
                Err(e) => tracing::debug!(error = %e, "cannot build the report ahead of requests"),
            }
        }
    })
}

/// The scan threads' nice value: above the request threads' 0.
const SCAN_NICE: libc::c_int = 10;

/// The runtime the server's scans run on: threads of their own, at a lower
/// CPU priority. A janitor often shares its CPUs with the engines it scans;
/// measured with 100 daemons on 2 CPUs, a rescan of all left the pages one
/// tenth of their throughput. Requests are served first, and a rescan takes
/// the CPU time they leave (when nothing else wants it, as fast as before).
fn scan_runtime() -> std::io::Result<ScanThreads> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .thread_name("exapp-janitor-scan")
        .enable_all()
        .on_thread_start(|| {
            // SAFETY: plain calls on this thread's own ID. Linux gives each
            // thread its own nice value; a failure keeps the normal one.
            let rc = unsafe {
                libc::setpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t, SCAN_NICE)
            };
            if rc != 0 {
                tracing::debug!("cannot lower a scan thread's priority");
            }
        })
        .build()?;
    Ok(ScanThreads(Some(runtime)))
}

/// The scan runtime, shut down without waiting when the server ends:
/// dropping a runtime waits for its threads, which an async context must not.
struct ScanThreads(Option<tokio::runtime::Runtime>);

impl ScanThreads {
    fn handle(&self) -> &tokio::runtime::Handle {
        self.0.as_ref().expect("held until dropped").handle()
    }
}

impl Drop for ScanThreads {
    fn drop(&mut self) {
        if let Some(runtime) = self.0.take() {
            runtime.shutdown_background();
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Daemons(#[from] daemons::DaemonError),
    #[error(transparent)]
    ApiToken(AuthError),
    #[error("EXAPP_JANITOR_ADMIN_PASSWORD: {0}")]
    Auth(#[from] AuthError),
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: std::net::SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("the web server stopped: {0}")]
    Server(#[source] std::io::Error),
    #[error("cannot start the scan threads: {0}")]
    ScanThreads(#[source] std::io::Error),
}

/// `exapp-janitor serve`: open the store, adopt the local Docker daemon on
/// the very first start, and serve the pages and the API until stopped.
pub async fn serve(global: &GlobalConfig, config: &ServeConfig) -> Result<(), ServeError> {
    // Refused before anything is created or opened: bad input changes nothing.
    let api_token =
        ApiTokenSource::from_env(std::env::var("EXAPP_JANITOR_API_TOKEN").ok().as_deref())
            .map_err(ServeError::ApiToken)?;
    let mut app = Janitor::open(global).await?;
    app.api_token = api_token;
    app.sessions = SessionLimits {
        idle: config.session_idle(),
        max_age: config.session_max_age(),
    };
    app.metrics_public = config.metrics_public;
    app.trusted_proxies = TrustedProxies::new(config.trusted_proxies.clone());
    app.public_url = config.public_url.clone();
    let scans = scan_runtime().map_err(ServeError::ScanThreads)?;
    app.runtime = Some(scans.handle().clone());
    let env_password = std::env::var("EXAPP_JANITOR_ADMIN_PASSWORD")
        .ok()
        .filter(|p| !p.is_empty());
    if let Some(generated) =
        auth::ensure_admin_password(&app.store, env_password.as_deref()).await?
    {
        // The one and only time this password is shown: only its hash is kept.
        tracing::warn!(
            "generated the admin password (shown only this once; change it with `exapp-janitor admin reset-password`): {}",
            generated.expose()
        );
    }
    // The schedule's clock starts with the first start of the server.
    crate::settings::ensure_stored(&app.store).await?;
    let candidate = daemons::local_daemon_input(
        std::env::var("DOCKER_HOST").ok().as_deref(),
        std::env::var("DOCKER_TLS_VERIFY").is_ok_and(|v| !v.is_empty() && v != "0"),
        std::env::var_os("DOCKER_CERT_PATH")
            .as_deref()
            .map(Path::new),
        Path::new("/var/run/docker.sock"),
    );
    if let Some(name) = daemons::add_local_on_first_start(&app.store, candidate).await? {
        tracing::info!(daemon = %name, "first start: added the local Docker daemon");
    }
    crate::watch::spawn(
        app.clone(),
        crate::watch::WatchConfig {
            settle: config.update_settle(),
            rescan_interval: config.rescan_interval(),
            harp_poll: config.harp_poll(),
        },
    );
    crate::jobs::Worker::new(app.clone()).spawn();
    crate::scheduler::spawn(app.clone());
    spawn_session_purge(app.clone());
    spawn_nextcloud_refresh(app.clone());
    spawn_report_warmer(app.clone());
    let listener = TcpListener::bind(config.listen).map_err(|source| ServeError::Listen {
        addr: config.listen,
        source,
    })?;
    let server = crate::web::server(app, listener).map_err(ServeError::Server)?;
    let stopped = server.await.map_err(ServeError::Server);
    drop(scans);
    stopped
}
