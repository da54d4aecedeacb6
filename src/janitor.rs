//! The running janitor: its store, the caches shared by every part of one
//! process, and the limits it was started with. Built once by `app` (the
//! composition root) and handed to the worker, the watcher, the scheduler,
//! the pages and the API.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Map, Value};
use tokio::sync::Notify;

use crate::auth::{ApiTokenSource, SessionLimits};
use crate::clock::Clock;
use crate::config::GlobalConfig;
use crate::domain::{PublicUrl, Settings, TrustedProxies};
use crate::policy::Policy;
use crate::read_cache::{Current, ReadCache, Reads};
use crate::report::{Report, ReportCache};
use crate::scan::{CachedScan, ClientCache, InventoryCache, ScanGate, ScanLimit, ScanOptions};
use crate::settings::{self, SettingsError, SettingsView};
use crate::store::{Store, StoreError};

/// Everything a request handler or command needs.
#[derive(Clone, Debug)]
pub struct Janitor {
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
    /// At most this many daemons scanned at once in this process (`--scan-concurrency`).
    pub scan_limit: ScanLimit,
    /// The multi-threaded runtime the janitor was opened on, for scans
    /// (`ScanOptions::runtime`); None on a current-thread runtime.
    pub runtime: Option<tokio::runtime::Handle>,
    /// Every daemon's image objects, shared until an input changes.
    pub reports: Arc<ReportCache>,
    /// The daemons, settings, names and token hash every request reads,
    /// shared until the store changes.
    pub reads: Arc<ReadCache>,
    /// Proxies whose forwarding headers are believed: the client's address
    /// (throttles), the scheme (`Secure` cookie) and host (Host and Origin checks).
    pub trusted_proxies: TrustedProxies,
    /// The address the janitor is reached at (`--public-url`): the only
    /// `Host` and `Origin` accepted. None: IP addresses and `localhost`.
    pub public_url: Option<PublicUrl>,
}

pub const DEFAULT_SESSION_IDLE: Duration = Duration::from_secs(30 * 60);
pub const DEFAULT_SESSION_MAX_AGE: Duration = Duration::from_secs(12 * 3600);

impl Janitor {
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
            scan_limit: ScanLimit::new(config.scan_concurrency()),
            runtime: tokio::runtime::Handle::try_current()
                .ok()
                .filter(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread),
            reports: Arc::default(),
            reads: Arc::default(),
            trusted_proxies: TrustedProxies::default(),
            public_url: None,
        })
    }

    /// The process's one clock (the store's): whatever time decides — the
    /// schedule, minimum ages, leases, the settle time, sessions, row
    /// timestamps — reads it, and waits for the time of day on it.
    pub fn clock(&self) -> &Clock {
        self.store.clock()
    }

    /// Runs the janitor on another clock (tests: `Clock::manual()`). Before
    /// the janitor is cloned for its tasks: a clone keeps the clock it had.
    pub fn set_clock(&mut self, clock: Clock) {
        self.store.set_clock(clock);
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
            limit: self.scan_limit.clone(),
            runtime: self.runtime.clone(),
            // Also in the CLI: its output is read through the inventory
            // cache, which then takes what the scan classified instead of
            // reading it back from the file and parsing it.
            inventory: Some(self.inventory.clone()),
        }
    }

    /// Changes the settings (`settings::update`), then wakes this process's
    /// scheduler so a new interval applies at once, and rescans when the
    /// protected patterns changed so statuses show them as soon as possible.
    pub async fn change_settings(
        &self,
        change: &Map<String, Value>,
        seen: Option<i64>,
    ) -> Result<SettingsView, SettingsError> {
        let updated = settings::update(&self.store, change, seen).await?;
        self.settings_changed.notify_waiters();
        if updated.patterns_changed {
            self.rescan_soon();
        }
        Ok(updated.view)
    }

    /// Rescans every daemon in the background, so statuses follow a change
    /// they depend on (protected patterns, what AppAPI lists). A daemon's
    /// failure is recorded with its scan, as any scan's is.
    pub fn rescan_soon(&self) {
        let janitor = self.clone();
        tokio::spawn(async move {
            let options = janitor.scan_options().await;
            let _ = crate::scan::scan_all(&janitor.store, &options).await;
        });
    }

    /// The settings in force. Never the defaults in place of settings that
    /// cannot be read: a caller that removes anything must stop on the error.
    pub async fn current_settings(&self) -> Result<Settings, SettingsError> {
        self.reads().await?.settings()
    }

    /// Whether `presented` is the API token (`ApiTokenSource::accepts`).
    pub async fn accepts_api_token(&self, presented: &str) -> Result<bool, StoreError> {
        let stored = match &self.api_token {
            ApiTokenSource::Env { .. } => None,
            ApiTokenSource::Stored => self.reads().await?.api_token_hash.clone(),
        };
        Ok(self.api_token.accepts(stored.as_deref(), presented))
    }

    /// What requests read from the store, as of now (`read_cache`).
    pub async fn reads(&self) -> Result<Current, StoreError> {
        self.reads.get(&self.store).await
    }

    /// Every daemon's last scan, by daemon ID: from the inventory cache,
    /// which reloads what any process scanned since.
    pub async fn last_scans(&self) -> Result<HashMap<i64, Arc<CachedScan>>, StoreError> {
        self.inventory.current(&self.store).await
    }

    /// The daemons of `reads` and their last scans, as of the same count.
    pub async fn scans_of(
        &self,
        reads: &Current,
    ) -> Result<HashMap<i64, Arc<CachedScan>>, StoreError> {
        self.inventory
            .current_at(&self.store, reads.scans_count)
            .await
    }

    /// Every daemon's image objects as of now, the policy in force applied.
    pub async fn report(&self) -> Result<Arc<Report>, StoreError> {
        let reads = self.reads().await?;
        let scans = self.scans_of(&reads).await?;
        Ok(self.report_of(&reads, &scans).await)
    }

    /// The report of exactly these reads and scans (the overview shows the
    /// scans' times and errors next to the report's figures).
    pub async fn report_of(
        &self,
        reads: &Reads,
        scans: &HashMap<i64, Arc<CachedScan>>,
    ) -> Arc<Report> {
        let now = self.clock().now_unix();
        self.reports
            .get_named(
                &reads.daemons,
                scans,
                policy_of(&reads.settings()),
                reads.names.clone(),
                now,
            )
            .await
    }

    /// The removal policy from the settings in force; `Policy::HALTED`
    /// (nothing removable) while they cannot be read.
    pub async fn policy(&self) -> Policy {
        policy_of(&self.current_settings().await)
    }
}

/// The removal policy of these settings; `Policy::HALTED` (nothing
/// removable) when they cannot be read.
fn policy_of(settings: &Result<Settings, SettingsError>) -> Policy {
    match settings {
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

/// `EXAPP_JANITOR_TEST_REMOVAL_HOLD`: only in debug builds (the test suite's);
/// a release build has no such hook.
fn removal_hold_from_env() -> Option<std::path::PathBuf> {
    if cfg!(debug_assertions) {
        std::env::var_os("EXAPP_JANITOR_TEST_REMOVAL_HOLD").map(Into::into)
    } else {
        None
    }
}
