//! Wiring: what a running janitor holds (the store and its settings), built
//! once and shared by the web server and the CLI commands.

use std::net::TcpListener;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;

use crate::auth::{self, ApiTokenSource, AuthError, SessionLimits};
use crate::config::{GlobalConfig, ServeConfig};
use crate::daemons;
use crate::domain::{PublicUrl, Settings, TrustedProxies};
use crate::policy::Policy;
use crate::report::{Report, ReportCache};
use crate::scan::{ClientCache, InventoryCache, ScanGate, ScanOptions};
use crate::settings::SettingsError;
use crate::store::{Store, StoreError};

/// Everything a request handler or command needs.
#[derive(Clone, Debug)]
pub struct App {
    pub store: Store,
    pub daemon_timeout: Duration,
    /// Where the API's bearer token comes from.
    pub api_token: ApiTokenSource,
    /// A browser session ends after this long without a request, or this
    /// long after the login.
    pub sessions: SessionLimits,
    /// For the whole scan of one daemon.
    pub scan_timeout: Duration,
    /// Every daemon's last scan, shared by pages and API.
    pub inventory: Arc<InventoryCache>,
    /// Wakes this process's job worker when work is enqueued.
    pub jobs_wakeup: Arc<Notify>,
    /// How long a claimed job stays claimed without a heartbeat.
    pub job_lease: Duration,
    /// Attempts before a job fails (transient errors, or a worker that died).
    pub job_max_attempts: i64,
    /// How long one removal call may take (large images take long).
    pub removal_timeout: Duration,
    /// Test hook (debug builds only): before its first removal call, a job
    /// writes `<dir>/<job id>.ready` and waits for `<dir>/<job id>.go`, so a
    /// test can change the daemon right between the re-check and the removal.
    pub removal_hold: Option<std::path::PathBuf>,
    /// Wakes the scheduler when the settings change.
    pub settings_changed: Arc<Notify>,
    /// Serve `/metrics` without the API token.
    pub metrics_public: bool,
    /// Negotiated daemon connections, kept between scans.
    pub clients: Arc<ClientCache>,
    /// One scan per daemon at a time in this process.
    pub scans: Arc<ScanGate>,
    /// Every daemon's image objects, shared until an input changes.
    pub reports: Arc<ReportCache>,
    /// Proxies whose forwarding headers are believed: the client's address
    /// (throttles), the scheme (`Secure` cookie) and host (Host and Origin checks).
    pub trusted_proxies: TrustedProxies,
    /// The address the janitor is reached at (`--public-url`): the only
    /// `Host` and `Origin` accepted. None: IP addresses and `localhost`.
    pub public_url: Option<PublicUrl>,
}

pub const DEFAULT_SESSION_IDLE: Duration = Duration::from_secs(30 * 60);
pub const DEFAULT_SESSION_MAX_AGE: Duration = Duration::from_secs(12 * 3600);

/// How often expired sessions are deleted while the server runs.
const SESSION_PURGE_INTERVAL: Duration = Duration::from_secs(15 * 60);

impl App {
    pub async fn open(config: &GlobalConfig) -> Result<Self, StoreError> {
        Ok(Self {
            store: Store::open(&config.data_dir).await?,
            daemon_timeout: config.daemon_timeout(),
            api_token: ApiTokenSource::Stored,
            sessions: SessionLimits {
                idle: DEFAULT_SESSION_IDLE,
                max_age: DEFAULT_SESSION_MAX_AGE,
            },
            scan_timeout: config.scan_timeout(),
            inventory: Arc::default(),
            jobs_wakeup: Arc::default(),
            job_lease: config.job_lease(),
            job_max_attempts: config.job_max_attempts(),
            removal_timeout: config.removal_timeout(),
            removal_hold: removal_hold_from_env(),
            settings_changed: Arc::default(),
            metrics_public: false,
            clients: Arc::default(),
            scans: Arc::default(),
            reports: Arc::default(),
            trusted_proxies: TrustedProxies::default(),
            public_url: None,
        })
    }

    /// Protected patterns in force, for showing statuses (none while the
    /// settings cannot be read: the policy is halted then, and every job
    /// reads the settings itself before it removes anything).
    pub async fn protected_patterns(&self) -> Vec<crate::domain::ProtectedPattern> {
        self.current_settings()
            .await
            .map(|s| s.protected_patterns)
            .unwrap_or_default()
    }

    pub async fn scan_options(&self) -> ScanOptions {
        ScanOptions {
            call_timeout: self.daemon_timeout,
            scan_timeout: self.scan_timeout,
            protected: self.protected_patterns().await,
            clients: Some(self.clients.clone()),
            gate: Some(self.scans.clone()),
        }
    }

    /// The settings in force. Never the defaults in place of settings that
    /// cannot be read: a caller that removes anything must stop on the error.
    pub async fn current_settings(&self) -> Result<Settings, SettingsError> {
        crate::settings::in_force(&self.store).await
    }

    /// Every daemon's image objects as of now, the policy in force applied.
    pub async fn report(&self) -> Result<Arc<Report>, StoreError> {
        let daemons = self.store.list_daemons().await?;
        let scans = self.inventory.current(&self.store).await?;
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        Ok(self
            .reports
            .get(&daemons, &scans, self.policy().await, now)
            .await)
    }

    /// The removal policy from the settings in force; `Policy::HALTED`
    /// (nothing removable) while they cannot be read.
    pub async fn policy(&self) -> Policy {
        match self.current_settings().await {
            Ok(s) => Policy {
                keep_previous: s.keep_previous,
                min_age_hours: s.min_age_hours,
                remove_dangling: s.remove_dangling,
                halted: false,
            },
            Err(e) => {
                tracing::error!(error = %e, "cannot read the settings; nothing is removed");
                Policy::HALTED
            }
        }
    }
}

/// `EXAPP_JANITOR_TEST_REMOVAL_HOLD`: only in debug builds (the test suite's);
/// a release build has no such hook.
fn removal_hold_from_env() -> Option<std::path::PathBuf> {
    if cfg!(debug_assertions) {
        std::env::var_os("EXAPP_JANITOR_TEST_REMOVAL_HOLD").map(Into::into)
    } else {
        None
    }
}

/// Deletes expired sessions at start and then every quarter of an hour.
fn spawn_session_purge(app: App) -> tokio::task::JoinHandle<()> {
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
}

/// `exapp-janitor serve`: open the store, adopt the local Docker daemon on
/// the very first start, and serve the pages and the API until stopped.
pub async fn serve(global: &GlobalConfig, config: &ServeConfig) -> Result<(), ServeError> {
    // Refused before anything is created or opened: bad input changes nothing.
    let api_token =
        ApiTokenSource::from_env(std::env::var("EXAPP_JANITOR_API_TOKEN").ok().as_deref())
            .map_err(ServeError::ApiToken)?;
    let mut app = App::open(global).await?;
    app.api_token = api_token;
    app.sessions = SessionLimits {
        idle: config.session_idle(),
        max_age: config.session_max_age(),
    };
    app.metrics_public = config.metrics_public;
    app.trusted_proxies = TrustedProxies::new(config.trusted_proxies.clone());
    app.public_url = config.public_url.clone();
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
        },
    );
    crate::jobs::Worker::new(app.clone()).spawn();
    crate::schedule::spawn(app.clone());
    spawn_session_purge(app.clone());
    let listener = TcpListener::bind(config.listen).map_err(|source| ServeError::Listen {
        addr: config.listen,
        source,
    })?;
    let server = crate::web::server(app, listener).map_err(ServeError::Server)?;
    server.await.map_err(ServeError::Server)
}
