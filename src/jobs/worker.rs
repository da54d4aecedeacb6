//! The worker: claims jobs and carries out their removal. One job at a
//! time per daemon, daemons in parallel. It wakes when work is enqueued in
//! this process, and otherwise when the next job is due (a retry's backoff,
//! a lease running out, work another process enqueued).
//!
//! A job's lease is renewed while it runs; a renewal that fails is retried
//! until the lease would run out. A worker that lost the lease sends no
//! further removal call: the job is its new holder's.
//!
//! Leases, backoffs and when a job is due are times of the janitor's clock,
//! and the worker waits for them on it (a test advances it past a lease).
//! Looking for work another process enqueued, and retrying a failing
//! database, are polls on tokio's timer: no time of day decides them.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::task::JoinSet;

use super::remove::{self, Approved, Guard, Outcome};
use crate::backend::Backend;
use crate::clock::Clock;
use crate::domain::ImageId;
use crate::inventory::Layer;
use crate::janitor::Janitor;
use crate::scan;
use crate::store::{JobEnd, Store, StoredDaemon};

/// Longest wait between two attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(60);
/// How often the worker looks for work enqueued by another process.
const IDLE_TICK: Duration = Duration::from_secs(2);
/// The shortest wait between two passes, when a job is due already (its
/// daemon's jobs are being worked here): no busy loop.
const MIN_WAIT: Duration = Duration::from_millis(50);
/// A lease is treated as lost this long before it runs out, so that no
/// removal call starts at the very end of it.
const LEASE_MARGIN_MS: i64 = 1000;

#[derive(Clone)]
pub struct Worker {
    app: Janitor,
    /// Unique per worker: a lease names its holder.
    owner: Arc<str>,
    busy: Arc<Mutex<HashSet<i64>>>,
    /// Only this run's jobs (the CLI's `clean` works its own run only).
    only_run: Option<i64>,
    stopping: Arc<AtomicBool>,
    stop: Arc<Notify>,
}

/// A running worker. Dropping it leaves the worker running.
pub struct WorkerHandle {
    stopping: Arc<AtomicBool>,
    stop: Arc<Notify>,
    task: tokio::task::JoinHandle<()>,
}

impl WorkerHandle {
    /// Stops claiming jobs, lets the jobs in hand end, and waits for every
    /// task of the worker: after this nothing of it touches the store.
    pub async fn stop(self) {
        self.stopping.store(true, Ordering::SeqCst);
        self.stop.notify_waiters();
        let _ = self.task.await;
    }

    /// Stops at once, jobs in hand too (their leases run out and they run again).
    pub fn abort(&self) {
        self.task.abort();
    }
}

/// How a pass over the queue ended.
enum Pass {
    Worked,
    /// The settings cannot be read: nothing runs until they can.
    Halted,
}

impl Worker {
    pub fn new(app: Janitor) -> Self {
        let owner = format!("{}-{}", std::process::id(), crate::auth::random_token());
        Self {
            app,
            owner: owner.into(),
            busy: Arc::default(),
            only_run: None,
            stopping: Arc::default(),
            stop: Arc::default(),
        }
    }

    /// A worker for one run's jobs only.
    pub fn for_run(app: Janitor, run_id: i64) -> Self {
        Self {
            only_run: Some(run_id),
            ..Self::new(app)
        }
    }

    /// Runs until stopped (or the process ends). The per-daemon tasks belong
    /// to the worker's task: aborting it aborts them, stopping it waits for them.
    pub fn spawn(self) -> WorkerHandle {
        let (stopping, stop) = (self.stopping.clone(), self.stop.clone());
        let task = tokio::spawn(async move {
            let mut tasks = JoinSet::new();
            let clock = self.app.clock().clone();
            while !self.stopping.load(Ordering::SeqCst) {
                let next_event = match self.tick(&mut tasks).await {
                    Ok(Pass::Worked) => self.next_job_event().await,
                    Ok(Pass::Halted) => None,
                    Err(e) => {
                        tracing::error!(error = %e, "the job worker hit an error; retrying");
                        None
                    }
                };
                let (poll, due_at) = idle_wait(next_event, clock.now_ms());
                let wakeup = self.app.jobs_wakeup.notified();
                let stop = self.stop.notified();
                tokio::select! {
                    _ = wakeup => {}
                    _ = stop => {}
                    _ = tokio::time::sleep(poll) => {}
                    _ = sleep_until(&clock, due_at) => {}
                }
                while tasks.try_join_next().is_some() {}
            }
            while tasks.join_next().await.is_some() {}
        });
        WorkerHandle {
            stopping,
            stop,
            task,
        }
    }

    /// Requeues jobs of dead workers and starts a task for each daemon that
    /// has ready jobs and none running here.
    async fn tick(&self, tasks: &mut JoinSet<()>) -> Result<Pass, crate::store::StoreError> {
        if let Err(e) = self.app.current_settings().await {
            tracing::error!(error = %e, "no job runs while the settings cannot be read");
            return Ok(Pass::Halted);
        }
        let store = &self.app.store;
        let (requeued, failed) = store
            .requeue_expired(self.app.clock().now_ms(), self.app.job_max_attempts)
            .await?;
        if requeued > 0 {
            tracing::warn!(requeued, "jobs whose worker stopped went back to the queue");
        }
        if failed > 0 {
            tracing::error!(
                failed,
                "jobs whose worker stopped at every attempt ended failed"
            );
        }
        for daemon_id in store
            .daemons_with_ready_jobs(self.app.clock().now_ms(), self.only_run)
            .await?
        {
            if self
                .busy
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(daemon_id)
            {
                let worker = self.clone();
                tasks.spawn(async move {
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
        Ok(Pass::Worked)
    }

    /// When the next job is due (unix ms): a retry's backoff or a lease
    /// running out; None when nothing is waiting for time.
    async fn next_job_event(&self) -> Option<i64> {
        let now = self.app.clock().now_ms();
        self.app.store.next_job_event(now).await.ok().flatten()
    }

    /// Runs the daemon's ready jobs one after another, then rescans it so
    /// the pages show what is gone. The connection is set up once for the
    /// batch; the settings are read for every job.
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
            family: remove::Family::default(),
        };
        let mut did_work = false;
        while !self.stopping.load(Ordering::SeqCst) {
            let lease_ms = i64::try_from(self.app.job_lease.as_millis()).unwrap_or(30_000);
            let claimed = match self
                .app
                .store
                .claim_job(
                    daemon_id,
                    self.only_run,
                    &self.owner,
                    self.app.clock().now_ms(),
                    lease_ms,
                )
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
            if !self.run_job(claimed, &mut batch).await {
                break;
            }
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

    /// Runs one claimed job to its next state; false when the batch must stop
    /// (the settings cannot be read).
    async fn run_job(&self, job_id: i64, batch: &mut Batch) -> bool {
        let lease = Lease::start(&self.app, &self.owner, job_id);
        let outcome = self.attempt(job_id, batch, &lease).await;
        lease.stop();
        if matches!(outcome, Ok((_, Outcome::Retry(_)))) {
            // The connection may be what failed: the next job connects anew.
            batch.client = None;
        }
        let store = &self.app.store;
        let owner = &self.owner;
        let recorded = match &outcome {
            Err(Halt::SettingsUnreadable(e)) => {
                tracing::error!(job_id, error = %e, "the job waits: the settings cannot be read");
                let _ = store.release_job(job_id, owner).await;
                return false;
            }
            Ok((_, Outcome::LeaseLost)) => Ok(false),
            Ok((attempts, Outcome::Retry(error))) if *attempts < self.app.job_max_attempts => {
                let backoff = Duration::from_secs(1u64 << (*attempts).clamp(0, 6)).min(MAX_BACKOFF);
                tracing::warn!(job_id, attempts, error, ?backoff, "removal will be retried");
                store
                    .retry_job(
                        job_id,
                        owner,
                        error,
                        self.app.clock().now_ms()
                            + i64::try_from(backoff.as_millis()).unwrap_or(60_000),
                    )
                    .await
            }
            Ok((attempts, Outcome::Retry(error))) => {
                let error = format!("gave up after {attempts} attempts: {error}");
                store
                    .finish_job(job_id, owner, JobEnd::Failed, Some(&error), 0)
                    .await
            }
            Ok((_, Outcome::AlreadyRemoved)) => {
                store
                    .finish_job(job_id, owner, JobEnd::Succeeded, Some("already removed"), 0)
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
            Ok((_, Outcome::Failed(error))) | Err(Halt::Failed(error)) => {
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
        true
    }

    /// One attempt; returns the attempt number and the outcome.
    async fn attempt(
        &self,
        job_id: i64,
        batch: &mut Batch,
        lease: &Lease,
    ) -> Result<(i64, Outcome), Halt> {
        let store = &self.app.store;
        let job = store
            .job(job_id)
            .await
            .map_err(|e| Halt::Failed(e.to_string()))?
            .ok_or_else(|| Halt::Failed("the job vanished".into()))?;
        // Read for every job, from the store itself: a pattern added while a
        // run is in progress protects the jobs not yet started.
        let settings = crate::settings::in_force(&self.app.store)
            .await
            .map_err(|e| Halt::SettingsUnreadable(e.to_string()))?;
        let image = ImageId::parse(&job.image_id).map_err(Halt::Failed)?;
        let references: Vec<String> = serde_json::from_str(&job.image_refs)
            .map_err(|e| Halt::Failed(format!("the previewed references cannot be read: {e}")))?;
        let Some(daemon) = &batch.daemon else {
            return Ok((
                job.attempts,
                Outcome::Failed("its daemon was removed".into()),
            ));
        };
        if batch.client.is_none() {
            match Backend::connect(daemon, self.app.daemon_timeout).await {
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
        let layers = layers_of(&self.app, client, daemon.id, &image).await;
        let guard = SendGuard {
            lease,
            layers: &layers,
            hold: self.app.removal_hold.as_deref(),
        };
        let sizes: HashMap<String, u64> = layers
            .iter()
            .map(|l| (l.chain_id.to_string(), l.size))
            .collect();
        let outcome = remove::remove(
            client,
            Approved {
                image: &image,
                references: &references,
            },
            &settings.protected_patterns,
            &sizes,
            self.app.removal_timeout,
            &mut batch.family,
            &guard,
        )
        .await;
        let outcome = match (outcome, &job.removal_layers) {
            // An earlier attempt sent the removal and lost the answer (a
            // timeout): what it freed is what is gone of the layers it had.
            (Outcome::AlreadyRemoved, Some(sent)) => {
                match bytes_gone(&self.app, daemon, sent).await {
                    Ok(bytes) => Outcome::Succeeded {
                        bytes_freed: bytes,
                        note: Some(
                            "removed by an earlier attempt whose answer was lost; bytes counted from its layers gone since".into(),
                        ),
                    },
                    Err(e) => Outcome::Retry(e),
                }
            }
            (outcome, _) => outcome,
        };
        Ok((job.attempts, outcome))
    }
}

/// Why an attempt did not reach the daemon.
#[derive(Debug)]
enum Halt {
    /// The job waits (not counted as an attempt) until the settings can be read.
    SettingsUnreadable(String),
    Failed(String),
}

/// What the jobs of one daemon share while the worker drains its queue.
struct Batch {
    /// None when the daemon was removed meanwhile.
    daemon: Option<StoredDaemon>,
    client: Option<Backend>,
    /// Which images are built on which, shared by the batch's jobs.
    family: remove::Family,
}

/// A claimed job's lease, renewed in the background while the job runs.
struct Lease {
    store: Store,
    clock: Clock,
    owner: Arc<str>,
    job_id: i64,
    /// Unix ms until which the lease is known to be held.
    valid_until: Arc<AtomicI64>,
    lost: Arc<AtomicBool>,
    heartbeat: tokio::task::JoinHandle<()>,
}

impl Lease {
    /// Starts renewing the lease just claimed (it runs `job_lease` from now).
    fn start(app: &Janitor, owner: &Arc<str>, job_id: i64) -> Self {
        let clock = app.clock().clone();
        let lease_ms = i64::try_from(app.job_lease.as_millis()).unwrap_or(30_000);
        let valid_until = Arc::new(AtomicI64::new(clock.now_ms() + lease_ms));
        let lost = Arc::new(AtomicBool::new(false));
        let heartbeat = {
            let (store, owner, lease) = (app.store.clone(), owner.clone(), app.job_lease);
            let (valid_until, lost, clock) = (valid_until.clone(), lost.clone(), clock.clone());
            tokio::spawn(async move {
                // A third of the lease by the clock (what the lease is
                // counted in); a retry after a database error by the timer.
                let mut retrying = false;
                loop {
                    if retrying {
                        tokio::time::sleep(Duration::from_millis(250)).await;
                    } else {
                        clock.sleep(lease / 3).await;
                    }
                    let until = clock.now_ms() + lease_ms;
                    match store.extend_lease(job_id, &owner, until).await {
                        Ok(true) => {
                            valid_until.store(until, Ordering::SeqCst);
                            retrying = false;
                        }
                        Ok(false) => {
                            tracing::warn!(job_id, "the job's lease went to another worker");
                            lost.store(true, Ordering::SeqCst);
                            return;
                        }
                        Err(e)
                            if clock.now_ms() + LEASE_MARGIN_MS
                                < valid_until.load(Ordering::SeqCst) =>
                        {
                            // A busy or briefly failing database: try again soon.
                            tracing::warn!(job_id, error = %e, "cannot renew the job's lease; retrying");
                            retrying = true;
                        }
                        Err(e) => {
                            tracing::error!(job_id, error = %e, "the job's lease ran out: no removal call is sent");
                            lost.store(true, Ordering::SeqCst);
                            return;
                        }
                    }
                }
            })
        };
        Self {
            store: app.store.clone(),
            clock,
            owner: owner.clone(),
            job_id,
            valid_until,
            lost,
            heartbeat,
        }
    }

    fn held(&self) -> bool {
        !self.lost.load(Ordering::SeqCst)
            && self.clock.now_ms() + LEASE_MARGIN_MS < self.valid_until.load(Ordering::SeqCst)
    }

    fn stop(self) {
        self.heartbeat.abort();
    }
}

/// The lease as the removal protocol sees it; records the layers when the
/// first removal call goes out.
struct SendGuard<'a> {
    lease: &'a Lease,
    layers: &'a [Layer],
    hold: Option<&'a std::path::Path>,
}

impl Guard for SendGuard<'_> {
    async fn may_send(&self) -> bool {
        if let Some(dir) = self.hold {
            hold_for_test(dir, self.lease.job_id).await;
        }
        if !self.lease.held() {
            return false;
        }
        let layers = serde_json::to_string(self.layers).expect("layers serialise");
        match self
            .lease
            .store
            .mark_removal_sent(
                self.lease.job_id,
                &self.lease.owner,
                self.lease.clock.now_ms(),
                &layers,
            )
            .await
        {
            Ok(true) => true,
            Ok(false) => false,
            Err(e) => {
                tracing::error!(job_id = self.lease.job_id, error = %e, "cannot record the removal; nothing is sent");
                false
            }
        }
    }

    fn still_held(&self) -> bool {
        self.lease.held()
    }
}

/// The test hook (`Janitor::removal_hold`): `<dir>/<job>.ready`, then wait for `<dir>/<job>.go`.
async fn hold_for_test(dir: &std::path::Path, job_id: i64) {
    let _ = tokio::fs::write(dir.join(format!("{job_id}.ready")), b"").await;
    let go = dir.join(format!("{job_id}.go"));
    for _ in 0..6000 {
        if tokio::fs::try_exists(&go).await.unwrap_or(false) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The image's layers from the layer cache, or asked of the daemon when the
/// cache does not have them.
async fn layers_of(app: &Janitor, client: &Backend, daemon_id: i64, image: &ImageId) -> Vec<Layer> {
    let cached = app
        .store
        .cached_layers_of(daemon_id, image.as_str())
        .await
        .ok()
        .flatten()
        .and_then(|json| serde_json::from_str::<Vec<Layer>>(&json).ok());
    match cached {
        Some(layers) => layers,
        // Without a listing (HaRP), the image is one layer of its whole size.
        None if !client.capabilities().listing => match client.image(image).await {
            Ok(Some((found, _))) => vec![Layer {
                chain_id: crate::scan::by_inspect::whole_image_layer(image).into(),
                size: found.size,
            }],
            _ => Vec::new(),
        },
        None => match client.layer_data(image).await {
            Ok(d) => crate::inventory::layers::layers(&d.diff_ids, &d.history_sizes)
                .unwrap_or_else(|| {
                    crate::inventory::layers::layers_in_order(&d.diff_ids, &d.history_sizes)
                }),
            Err(_) => Vec::new(),
        },
    }
}

/// Bytes of `sent` (the layers an image had when its removal went out) that
/// no image on the daemon has now.
async fn bytes_gone(app: &Janitor, daemon: &StoredDaemon, sent: &str) -> Result<u64, String> {
    let sent: Vec<Layer> = serde_json::from_str(sent)
        .map_err(|e| format!("the recorded layers cannot be read: {e}"))?;
    let now = scan::scan_daemon(&app.store, daemon, &app.scan_options().await)
        .await
        .map_err(|e| e.to_string())?;
    let present: HashSet<&str> = now
        .images
        .iter()
        .flat_map(|i| i.info.layers.iter().map(|l| l.chain_id.as_str()))
        .collect();
    Ok(sent
        .iter()
        .filter(|l| !present.contains(l.chain_id.as_str()))
        .map(|l| l.size)
        .sum())
}

fn to_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// How long the worker waits after a pass: at most `IDLE_TICK` of real time
/// (to see work other processes enqueued), and until `next_event` (unix ms)
/// by the clock. A job due already waits `MIN_WAIT`. Returns (the timer's
/// wait, the clock's deadline).
fn idle_wait(next_event: Option<i64>, now_ms: i64) -> (Duration, Option<i64>) {
    let min_wait = i64::try_from(MIN_WAIT.as_millis()).unwrap_or(50);
    match next_event {
        Some(at) if at - now_ms < min_wait => (MIN_WAIT, None),
        Some(at) => (IDLE_TICK, Some(at)),
        None => (IDLE_TICK, None),
    }
}

/// Until the clock reads `at` (unix ms); never without one.
async fn sleep_until(clock: &Clock, at: Option<i64>) {
    match at {
        Some(at) => clock.sleep_until_ms(at).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_worker_waits_for_the_next_job_event_by_the_clock_and_polls_by_the_timer() {
        const NOW: i64 = 1_800_000_000_000;
        assert_eq!(idle_wait(None, NOW), (IDLE_TICK, None));
        assert_eq!(
            idle_wait(Some(NOW + 30_000), NOW),
            (IDLE_TICK, Some(NOW + 30_000)),
            "a lease running out in 30 s: whichever comes first"
        );
        assert_eq!(
            idle_wait(Some(NOW + 10), NOW),
            (MIN_WAIT, None),
            "due now: no busy loop"
        );
        assert_eq!(idle_wait(Some(NOW - 5_000), NOW), (MIN_WAIT, None));
    }
}
