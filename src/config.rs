//! Settings that come from flags and the environment (`EXAPP_JANITOR_*`).
//! Parsed by clap into typed values; nothing here talks to anything.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use crate::domain::{PublicUrl, TrustedProxy};

/// Options every command shares.
#[derive(Debug, Clone, Args)]
pub struct GlobalConfig {
    /// Directory that holds the SQLite database (created when missing).
    #[arg(
        long,
        global = true,
        env = "EXAPP_JANITOR_DATA_DIR",
        default_value = "./data"
    )]
    pub data_dir: PathBuf,

    /// Seconds to wait for one daemon before reporting it unreachable.
    #[arg(
        long,
        global = true,
        env = "EXAPP_JANITOR_DAEMON_TIMEOUT_SECS",
        default_value_t = 5,
        value_parser = clap::value_parser!(u64).range(1..=300)
    )]
    pub daemon_timeout_secs: u64,

    /// Seconds a whole scan of one daemon may take (thousands of new images
    /// need one lookup each the first time).
    #[arg(
        long,
        global = true,
        env = "EXAPP_JANITOR_SCAN_TIMEOUT_SECS",
        default_value_t = 300,
        value_parser = clap::value_parser!(u64).range(1..=3600)
    )]
    pub scan_timeout_secs: u64,

    /// Daemons scanned at once (1–64; by default one per CPU, 2 to 16).
    /// Without a bound, a fleet of 100 daemons would hold 100 inventories
    /// in memory at once, and local Engines would take every CPU.
    #[arg(
        long,
        global = true,
        env = "EXAPP_JANITOR_SCAN_CONCURRENCY",
        default_value_t = crate::scan::default_scan_concurrency() as u64,
        value_parser = clap::value_parser!(u64).range(1..=crate::scan::MAX_SCAN_CONCURRENCY as u64)
    )]
    pub scan_concurrency: u64,

    /// Seconds a claimed cleanup job stays claimed without a heartbeat; after
    /// a crash its job returns to the queue this long after the last one.
    #[arg(
        long,
        global = true,
        env = "EXAPP_JANITOR_JOB_LEASE_SECS",
        default_value_t = 30,
        value_parser = clap::value_parser!(u64).range(3..=3600)
    )]
    pub job_lease_secs: u64,

    /// Seconds one image removal may take: deleting a large image's layers
    /// takes far longer than any other Engine call.
    #[arg(
        long,
        global = true,
        env = "EXAPP_JANITOR_REMOVAL_TIMEOUT_SECS",
        default_value_t = 600,
        value_parser = clap::value_parser!(u64).range(1..=86400)
    )]
    pub removal_timeout_secs: u64,

    /// Attempts a cleanup job gets (transient daemon errors, or a worker that
    /// died while holding it) before it ends `failed` with the last error.
    #[arg(
        long,
        global = true,
        env = "EXAPP_JANITOR_JOB_MAX_ATTEMPTS",
        default_value_t = 8,
        value_parser = clap::value_parser!(u64).range(1..=100)
    )]
    pub job_max_attempts: u64,
}

impl GlobalConfig {
    pub fn daemon_timeout(&self) -> Duration {
        Duration::from_secs(self.daemon_timeout_secs)
    }

    pub fn scan_timeout(&self) -> Duration {
        Duration::from_secs(self.scan_timeout_secs)
    }

    /// How many daemons are scanned at once (clap checked the range).
    pub fn scan_concurrency(&self) -> usize {
        usize::try_from(self.scan_concurrency)
            .unwrap_or_else(|_| crate::scan::default_scan_concurrency())
    }

    pub fn job_lease(&self) -> Duration {
        Duration::from_secs(self.job_lease_secs)
    }

    pub fn removal_timeout(&self) -> Duration {
        Duration::from_secs(self.removal_timeout_secs)
    }

    pub fn job_max_attempts(&self) -> i64 {
        i64::try_from(self.job_max_attempts).unwrap_or(8)
    }
}

/// Options of `serve`.
#[derive(Debug, Clone, Args)]
pub struct ServeConfig {
    /// Address to listen on. Keep it on loopback and put a TLS reverse proxy in front.
    #[arg(long, env = "EXAPP_JANITOR_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,

    /// Minutes without a request after which a browser session ends.
    #[arg(
        long,
        env = "EXAPP_JANITOR_SESSION_IDLE_MINUTES",
        default_value_t = 30,
        value_parser = clap::value_parser!(u64).range(1..=10080)
    )]
    pub session_idle_minutes: u64,

    /// Hours after a login at which its browser session ends, however busy.
    #[arg(
        long,
        env = "EXAPP_JANITOR_SESSION_MAX_HOURS",
        default_value_t = 12,
        value_parser = clap::value_parser!(u64).range(1..=720)
    )]
    pub session_max_hours: u64,

    /// Seconds between scans of every daemon (the first runs at start).
    #[arg(
        long,
        env = "EXAPP_JANITOR_RESCAN_INTERVAL_SECS",
        default_value_t = 300,
        value_parser = clap::value_parser!(u64).range(10..=86400)
    )]
    pub rescan_interval_secs: u64,

    /// Seconds between looks at a HaRP daemon's ExApp containers (HaRP has
    /// no event stream): how soon an update behind HaRP is noticed.
    #[arg(
        long,
        env = "EXAPP_JANITOR_HARP_POLL_SECS",
        default_value_t = 60,
        value_parser = clap::value_parser!(u64).range(5..=86400)
    )]
    pub harp_poll_secs: u64,

    /// Seconds an updated ExApp's new container must run (and be healthy, if
    /// it has a healthcheck) before cleanup on update removes its old images.
    #[arg(
        long,
        env = "EXAPP_JANITOR_UPDATE_SETTLE_SECS",
        default_value_t = 60,
        value_parser = clap::value_parser!(u64).range(0..=3600)
    )]
    pub update_settle_secs: u64,

    /// Serve /metrics without the API token (for a Prometheus on a trusted network).
    #[arg(long, env = "EXAPP_JANITOR_METRICS_PUBLIC")]
    pub metrics_public: bool,

    /// A reverse proxy (address or network) whose X-Forwarded-For names the
    /// client, so that failed logins are counted per client and not per proxy,
    /// and whose X-Forwarded-Proto/-Host (or Forwarded) name the scheme and
    /// host the browser used. From anyone else these headers are ignored.
    /// Repeat the flag, or separate with commas in the environment variable.
    #[arg(
        long = "trusted-proxy",
        value_name = "ADDRESS[/BITS]",
        env = "EXAPP_JANITOR_TRUSTED_PROXIES",
        value_delimiter = ','
    )]
    pub trusted_proxies: Vec<TrustedProxy>,

    /// The URL people use to reach the janitor (https://janitor.example.org):
    /// the only Host and Origin it then answers. Without it, only IP
    /// addresses and localhost are served, which DNS rebinding cannot reach.
    #[arg(long, value_name = "URL", env = "EXAPP_JANITOR_PUBLIC_URL")]
    pub public_url: Option<PublicUrl>,
}

/// Options of `health`: where the server listens, read from the same flag,
/// variable and file key as `serve`'s, so one setting serves both.
#[derive(Debug, Clone, Args)]
pub struct HealthConfig {
    /// Address the server listens on (0.0.0.0 and [::] are asked on loopback).
    #[arg(long, env = "EXAPP_JANITOR_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
}

impl ServeConfig {
    pub fn update_settle(&self) -> Duration {
        Duration::from_secs(self.update_settle_secs)
    }

    pub fn rescan_interval(&self) -> Duration {
        Duration::from_secs(self.rescan_interval_secs)
    }

    pub fn harp_poll(&self) -> Duration {
        Duration::from_secs(self.harp_poll_secs)
    }

    pub fn session_idle(&self) -> Duration {
        Duration::from_secs(self.session_idle_minutes * 60)
    }

    pub fn session_max_age(&self) -> Duration {
        Duration::from_secs(self.session_max_hours * 3600)
    }
}
