//! The worker: claims jobs and carries out their removal. One job at a
//! time per daemon, daemons in parallel. It wakes when work is enqueued in
//! this process, and otherwise when the next job is due (a retry's backoff,
//! a lease running out, work another process enqueued).

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::now_ms;
use super::remove::{self, Outcome};
use crate::app::App;
use crate::docker::DaemonClient;
use crate::domain::ImageId;
use crate::inventory::Layer;
use crate::scan;
use crate::store::{JobEnd, StoredDaemon};

/// Attempts before a job that keeps hitting transient errors fails.
pub const MAX_ATTEMPTS: i64 = 8;
/// Longest wait between two attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(60);
/// How often the worker looks for work enqueued by another process.
const IDLE_TICK: Duration = Duration::from_secs(2);

#[derive(Clone)]
pub struct Worker {
    app: App,
    /// Unique per worker: a lease names its holder.
    owner: Arc<str>,
    busy: Arc<Mutex<HashSet<i64>>>,
}

impl Worker {
    pub fn new(app: App) -> Self {
        let owner = format!("{}-{}", std::process::id(), crate::auth::random_token());
        Self {
            app,
            owner: owner.into(),
            busy: Arc::default(),
        }
    }

    /// Runs until the process ends.
    pub fn spawn(self) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            loop {
                if let Err(e) = self.tick().await {
                    tracing::error!(error = %e, "the job worker hit an error; retrying");
                }
                let wakeup = self.app.jobs_wakeup.notified();
                let sleep = self.idle_sleep().await;
                tokio::select! {
                    _ = wakeup => {}
                    _ = tokio::time::sleep(sleep) => {}
                }
            }
        })
    }

    /// Requeues jobs of dead workers and starts a task for each daemon that
    /// has ready jobs and none running here.
    pub async fn tick(&self) -> Result<(), crate::store::StoreError> {
        let store = &self.app.store;
        let requeued = store.requeue_expired(now_ms()).await?;
        if requeued > 0 {
            tracing::warn!(requeued, "jobs whose worker stopped went back to the queue");
        }
        for daemon_id in store.daemons_with_ready_jobs(now_ms()).await? {
            if self
                .busy
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(daemon_id)
            {
                let worker = self.clone();
                tokio::spawn(async move {
                    worker.drain_daemon(daemon_id).await;
                    worker
                        .busy
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .remove(&daemon_id);
                    // More may have become ready meanwhile.
                    worker.app.jobs_wakeup.notify_waiters();
                });
            }
        }
        Ok(())
    }

    async fn idle_sleep(&self) -> Duration {
        match self.app.store.next_job_event().await {
            Ok(Some(at)) => Duration::from_millis(u64::try_from(at - now_ms()).unwrap_or(0))
                .clamp(Duration::from_millis(50), IDLE_TICK),
            _ => IDLE_TICK,
        }
    }

    /// Runs the daemon's ready jobs one after another, then rescans it so
    /// the pages show what is gone. The connection and the protected patterns
    /// are set up once for the batch.
    async fn drain_daemon(&self, daemon_id: i64) {
        let daemon = match self.daemon(daemon_id).await {
            Ok(d) => d,
            Err(e) => {
                tracing::error!(error = %e, "cannot read the daemon of queued jobs");
                return;
            }
        };
        let mut batch = Batch {
            daemon,
            client: None,
            protected: self.app.protected_patterns().await,
        };
        let mut did_work = false;
        loop {
            let lease_ms = i64::try_from(self.app.job_lease.as_millis()).unwrap_or(30_000);
            let claimed = match self
                .app
                .store
                .claim_job(daemon_id, &self.owner, now_ms(), lease_ms)
                .await
            {
                Ok(Some(job_id)) => job_id,
                Ok(None) => break,
                Err(e) => {
                    tracing::error!(error = %e, "cannot claim a job");
                    break;
                }
            };
            did_work = true;
            self.run_job(claimed, &mut batch).await;
        }
        if let (true, Some(daemon)) = (did_work, &batch.daemon) {
            let _ =
                scan::scan_daemon(&self.app.store, daemon, &self.app.scan_options().await).await;
        }
    }

    async fn daemon(
        &self,
        daemon_id: i64,
    ) -> Result<Option<StoredDaemon>, crate::store::StoreError> {
        Ok(self
            .app
            .store
            .list_daemons()
            .await?
            .into_iter()
            .find(|d| d.id == daemon_id))
    }

    async fn run_job(&self, job_id: i64, batch: &mut Batch) {
        let heartbeat = self.keep_lease(job_id);
        let outcome = self.attempt(job_id, batch).await;
        if matches!(outcome, Ok((_, Outcome::Retry(_)))) {
            // The connection may be what failed: the next job connects anew.
            batch.client = None;
        }
        heartbeat.abort();
        let store = &self.app.store;
        let owner = &self.owner;
        let recorded = match &outcome {
            Ok((attempts, Outcome::Retry(error))) if *attempts < MAX_ATTEMPTS => {
                let backoff = Duration::from_secs(1u64 << (*attempts).clamp(0, 6)).min(MAX_BACKOFF);
                tracing::warn!(job_id, attempts, error, ?backoff, "removal will be retried");
                store
                    .retry_job(
                        job_id,
                        owner,
                        error,
                        now_ms() + i64::try_from(backoff.as_millis()).unwrap_or(60_000),
                    )
                    .await
            }
            Ok((attempts, Outcome::Retry(error))) => {
                let error = format!("gave up after {attempts} attempts: {error}");
                store
                    .finish_job(job_id, owner, JobEnd::Failed, Some(&error), 0)
                    .await
            }
            Ok((_, Outcome::Succeeded { bytes_freed, note })) => {
                store
                    .finish_job(
                        job_id,
                        owner,
                        JobEnd::Succeeded,
                        note.as_deref(),
                        to_i64(*bytes_freed),
                    )
                    .await
            }
            Ok((
                _,
                Outcome::Skipped {
                    reason,
                    bytes_freed,
                },
            )) => {
                store
                    .finish_job(
                        job_id,
                        owner,
                        JobEnd::Skipped,
                        Some(reason),
                        to_i64(*bytes_freed),
                    )
                    .await
            }
            Ok((_, Outcome::Failed(error))) => {
                store
                    .finish_job(job_id, owner, JobEnd::Failed, Some(error), 0)
                    .await
            }
            Err(error) => {
                store
                    .finish_job(job_id, owner, JobEnd::Failed, Some(error), 0)
                    .await
            }
        };
        match recorded {
            Ok(true) => tracing::info!(job_id, outcome = ?outcome, "job done"),
            Ok(false) => tracing::warn!(
                job_id,
                "the job's lease was lost before it ended; its new holder decides"
            ),
            Err(e) => {
                tracing::error!(job_id, error = %e, "cannot record the job's end; its lease will expire and it will run again")
            }
        }
    }

    /// One attempt; returns the attempt number and the outcome.
    async fn attempt(&self, job_id: i64, batch: &mut Batch) -> Result<(i64, Outcome), String> {
        let store = &self.app.store;
        let job = store
            .job(job_id)
            .await
            .map_err(|e| e.to_string())?
            .ok_or("the job vanished")?;
        let image = ImageId::parse(&job.image_id)?;
        let Some(daemon) = &batch.daemon else {
            return Ok((
                job.attempts,
                Outcome::Failed("its daemon was removed".into()),
            ));
        };
        if batch.client.is_none() {
            match DaemonClient::connect(&daemon.endpoint, self.app.daemon_timeout).await {
                Ok(c) => batch.client = Some(c),
                Err(e) => {
                    let outcome = if e.is_transient() {
                        Outcome::Retry(e.to_string())
                    } else {
                        Outcome::Failed(e.to_string())
                    };
                    return Ok((job.attempts, outcome));
                }
            }
        }
        let client = batch.client.as_ref().expect("connected above");
        let sizes = layer_sizes(&self.app, client, job.daemon_id, &image).await;
        Ok((
            job.attempts,
            remove::remove(client, &image, &batch.protected, &sizes).await,
        ))
    }

    /// Renews the lease while the job runs, so only a dead worker loses it.
    fn keep_lease(&self, job_id: i64) -> tokio::task::JoinHandle<()> {
        let (store, owner, lease) = (
            self.app.store.clone(),
            self.owner.clone(),
            self.app.job_lease,
        );
        tokio::spawn(async move {
            let mut every = tokio::time::interval(lease / 3);
            every.tick().await;
            loop {
                every.tick().await;
                let until = now_ms() + i64::try_from(lease.as_millis()).unwrap_or(30_000);
                if !matches!(store.extend_lease(job_id, &owner, until).await, Ok(true)) {
                    break;
                }
            }
        })
    }
}

/// What the jobs of one daemon share while the worker drains its queue.
struct Batch {
    /// None when the daemon was removed meanwhile.
    daemon: Option<StoredDaemon>,
    client: Option<DaemonClient>,
    protected: Vec<crate::domain::ProtectedPattern>,
}

/// Chain ID → size for the image, from the layer cache, or asked of the
/// daemon when the cache does not have it.
async fn layer_sizes(
    app: &App,
    client: &DaemonClient,
    daemon_id: i64,
    image: &ImageId,
) -> HashMap<String, u64> {
    let cached = app
        .store
        .cached_layers_of(daemon_id, image.as_str())
        .await
        .ok()
        .flatten()
        .and_then(|json| serde_json::from_str::<Vec<Layer>>(&json).ok());
    let layers = match cached {
        Some(layers) => layers,
        None => match client.layer_data(image).await {
            Ok(d) => crate::inventory::layers::layers(&d.diff_ids, &d.history_sizes)
                .unwrap_or_else(|| {
                    crate::inventory::layers::layers_in_order(&d.diff_ids, &d.history_sizes)
                }),
            Err(_) => Vec::new(),
        },
    };
    layers.into_iter().map(|l| (l.chain_id, l.size)).collect()
}

fn to_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}
