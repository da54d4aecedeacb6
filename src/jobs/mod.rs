//! Cleanup: the preview, runs and their jobs (a queue in SQLite), and the
//! worker that carries them out. Everything that deletes goes through here;
//! the web layer only enqueues.

mod remove;
mod worker;

use std::collections::{BTreeSet, HashMap};

use serde::{Deserialize, Serialize};

pub use remove::Outcome;
pub use worker::{Worker, WorkerHandle};

use crate::clock::rfc3339;
use crate::domain::{AppId, DaemonName, FieldErrors, ImageId, MAX_HOURS};
use crate::inventory::layers;
use crate::janitor::Janitor;
use crate::policy::Policy;
use crate::report::{self, ImageFilter, ImageObject};
use crate::scan::{self, ScanError};
use crate::store::{JobRow, NewJob, NewRun, RunRow, Store, StoreError};

/// What started a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Trigger {
    Manual,
    Schedule,
    Update,
}

impl Trigger {
    pub fn as_str(self) -> &'static str {
        match self {
            Trigger::Manual => "manual",
            Trigger::Schedule => "schedule",
            Trigger::Update => "update",
        }
    }
}

/// `{"daemon"?, "min_age_hours"?, "images"?}` as a client sent it.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CleanupRequestInput {
    #[serde(default)]
    pub daemon: Option<String>,
    #[serde(default)]
    #[schema(minimum = 0, maximum = 87_600)]
    pub min_age_hours: Option<i64>,
    /// Full image IDs the admin approved in the preview.
    #[serde(default)]
    pub images: Option<Vec<String>>,
    /// Only this ExApp's images.
    #[serde(default)]
    pub owner: Option<String>,
}

/// A valid cleanup request: which daemon (all when None), a
/// `min_age_hours` for this one preview or run, and, for a run the admin
/// confirmed, the images they approved.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CleanupRequest {
    pub daemon: Option<DaemonName>,
    pub min_age_hours: Option<u32>,
    /// Only this ExApp's images (cleanup right after its update).
    pub owner: Option<AppId>,
    /// Only these images, and only those still removable when the run is
    /// made. None: everything removable then.
    pub images: Option<BTreeSet<ImageId>>,
}

/// More image IDs than any preview a person confirms would hold.
pub const MAX_APPROVED_IMAGES: usize = 10_000;

impl CleanupRequest {
    pub fn parse(input: &CleanupRequestInput) -> Result<Self, FieldErrors> {
        let mut errors = FieldErrors::new();
        let daemon = input
            .daemon
            .as_deref()
            .map(str::trim)
            .filter(|d| !d.is_empty())
            .and_then(|d| {
                DaemonName::parse(d)
                    .map_err(|e| errors.add("daemon", e))
                    .ok()
            });
        let min_age_hours = input.min_age_hours.and_then(|h| match u32::try_from(h) {
            Ok(h) if h <= MAX_HOURS => Some(h),
            _ => {
                errors.add(
                    "min_age_hours",
                    format!("a number of hours from 0 to {MAX_HOURS}"),
                );
                None
            }
        });
        let images = input.images.as_ref().and_then(|ids| {
            if ids.is_empty() {
                errors.add(
                    "images",
                    "an empty list approves nothing; leave it out to remove everything removable",
                );
                return None;
            }
            if ids.len() > MAX_APPROVED_IMAGES {
                errors.add("images", format!("at most {MAX_APPROVED_IMAGES} image IDs"));
                return None;
            }
            let parsed: Result<BTreeSet<ImageId>, String> =
                ids.iter().map(|id| ImageId::parse(id.trim())).collect();
            parsed
                .map_err(|_| {
                    errors.add(
                        "images",
                        "full image IDs as the preview lists them (sha256: and 64 hex digits)",
                    )
                })
                .ok()
        });
        let owner = input
            .owner
            .as_deref()
            .map(str::trim)
            .filter(|o| !o.is_empty())
            .and_then(|o| {
                AppId::parse(o)
                    .map_err(|_| errors.add("owner", "an ExApp ID (letters, digits, _ - .)"))
                    .ok()
            });
        errors.into_result(|| Self {
            daemon,
            min_age_hours,
            owner,
            images,
        })
    }

    fn policy(&self, base: Policy) -> Policy {
        Policy {
            min_age_hours: self.min_age_hours.unwrap_or(base.min_age_hours),
            ..base
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CleanupError {
    #[error("there is no daemon named {0:?}")]
    UnknownDaemon(String),
    /// The one daemon asked for could not be scanned: nothing to decide on.
    #[error("daemon {daemon} could not be scanned: {error}")]
    DaemonDown { daemon: String, error: String },
    /// Fail closed: no preview and no run while the settings cannot be read.
    #[error("the settings cannot be read, so nothing is removed until they are saved again")]
    SettingsUnreadable,
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Scan(#[from] ScanError),
}

/// What a cleanup would remove now, and what that frees.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Preview {
    pub images: Vec<ImageObject>,
    /// Layers used only by these images, each counted once.
    pub bytes_reclaimable: u64,
    /// Daemons that could not be scanned, so nothing of theirs is in it.
    pub daemon_errors: Vec<DaemonFailure>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct DaemonFailure {
    pub daemon: String,
    pub error: String,
}

/// Rescans the daemons concerned, then applies the policy. A daemon that
/// cannot be scanned is left out and named in `daemon_errors`; when it is the
/// one daemon asked for, that is an error. Nothing is previewed while the
/// settings cannot be read.
pub async fn preview(
    app: &Janitor,
    request: &CleanupRequest,
    policy: Policy,
) -> Result<Preview, CleanupError> {
    if policy.halted {
        return Err(CleanupError::SettingsUnreadable);
    }
    let daemons = app.store.list_daemons().await?;
    if let Some(name) = &request.daemon {
        if !daemons.iter().any(|d| &d.name == name) {
            return Err(CleanupError::UnknownDaemon(name.to_string()));
        }
    }
    let chosen: Vec<_> = daemons
        .iter()
        .filter(|d| request.daemon.as_ref().is_none_or(|n| &d.name == n))
        .cloned()
        .collect();
    let options = app.scan_options().await;
    let scanned = scan::scan_each(&app.store, &chosen, &options).await;
    let mut ok = Vec::new();
    let mut daemon_errors = Vec::new();
    for (daemon, result) in chosen.into_iter().zip(scanned) {
        match result {
            Ok(_) => ok.push(daemon),
            Err(e) => daemon_errors.push(DaemonFailure {
                daemon: daemon.name.to_string(),
                error: e.to_string(),
            }),
        }
    }
    if let (Some(_), Some(failure)) = (&request.daemon, daemon_errors.first()) {
        return Err(CleanupError::DaemonDown {
            daemon: failure.daemon.clone(),
            error: failure.error.clone(),
        });
    }
    let scans = app.last_scans().await?;
    let policy = request.policy(policy);
    let now = app.clock().now_unix();
    let filter = ImageFilter::default();
    let mut images = Vec::new();
    let mut bytes = 0;
    for daemon in &ok {
        let objects: Vec<ImageObject> =
            report::image_objects(std::slice::from_ref(daemon), &scans, &policy, &filter, now)
                .into_iter()
                .filter(|i| i.removable)
                // Cleanup after an update touches only that ExApp's images.
                .filter(|i| {
                    request
                        .owner
                        .as_ref()
                        .is_none_or(|o| i.owner.as_deref() == Some(o.as_str()))
                })
                // A confirmed run: only what the admin approved.
                .filter(|i| {
                    request.images.as_ref().is_none_or(|approved| {
                        ImageId::parse(&i.id).is_ok_and(|id| approved.contains(&id))
                    })
                })
                .collect();
        if let Some(scan) = scans.get(&daemon.id).and_then(|c| c.inventory.clone()) {
            bytes += layers::reclaimable(scan.images.iter().map(|i| {
                let in_set = objects.iter().any(|o| o.id == i.info.id.as_str());
                (i.info.layers.as_slice(), in_set)
            }));
        }
        images.extend(objects);
    }
    Ok(Preview {
        images,
        bytes_reclaimable: bytes,
        daemon_errors,
    })
}

/// Previews and enqueues one job per removable image; wakes the worker.
pub async fn start_run(
    app: &Janitor,
    trigger: Trigger,
    requested_by: &str,
    request: &CleanupRequest,
    policy: Policy,
) -> Result<RunView, CleanupError> {
    let run = start_run_unless(app, trigger, requested_by, request, policy, None).await?;
    Ok(run.expect("a run without a condition is always created"))
}

/// The scheduled run due at `due` (unix seconds), unless some process made
/// it already: then None.
pub async fn start_scheduled_run(
    app: &Janitor,
    due: i64,
    policy: Policy,
) -> Result<Option<RunView>, CleanupError> {
    let request = CleanupRequest::default();
    start_run_unless(
        app,
        Trigger::Schedule,
        "schedule",
        &request,
        policy,
        Some(due),
    )
    .await
}

async fn start_run_unless(
    app: &Janitor,
    trigger: Trigger,
    requested_by: &str,
    request: &CleanupRequest,
    policy: Policy,
    unless_run_since: Option<i64>,
) -> Result<Option<RunView>, CleanupError> {
    let preview = preview(app, request, policy).await?;
    let left_out = left_out(app, request, &preview).await?;
    let daemons = app.store.list_daemons().await?;
    let daemon_ids: HashMap<&str, i64> = daemons.iter().map(|d| (d.name.as_str(), d.id)).collect();
    let jobs: Vec<NewJob> = preview
        .images
        .iter()
        .filter_map(|i| {
            Some(NewJob {
                daemon_id: *daemon_ids.get(i.daemon.as_str())?,
                image_id: i.id.clone(),
                image_refs: serde_json::to_string(
                    &i.repo_tags
                        .iter()
                        .chain(&i.repo_digests)
                        .collect::<Vec<_>>(),
                )
                .ok()?,
                owner: i.owner.clone(),
            })
        })
        .collect();
    let min_age = i64::from(request.min_age_hours.unwrap_or(policy.min_age_hours));
    let run = NewRun {
        trigger: trigger.as_str(),
        requested_by,
        daemon: request.daemon.as_ref().map(DaemonName::as_str),
        min_age_hours: min_age,
        bytes_predicted: i64::try_from(preview.bytes_reclaimable).unwrap_or(i64::MAX),
        unless_run_since,
        approved: request
            .images
            .as_ref()
            .map(|i| i64::try_from(i.len()).unwrap_or(i64::MAX)),
        left_out: &serde_json::to_string(&left_out).expect("left-out entries serialise"),
    };
    let Some((run_id, queued)) = app
        .store
        .create_run(&run, &jobs, app.clock().now_ms())
        .await?
    else {
        return Ok(None);
    };
    tracing::info!(
        run_id,
        trigger = trigger.as_str(),
        requested_by,
        queued,
        "cleanup run enqueued"
    );
    app.jobs_wakeup.notify_waiters();
    Ok(Some(
        run_view(&app.store, run_id)
            .await?
            .expect("the run was just created"),
    ))
}

/// What a run did not take of what was approved or expected, and why.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct LeftOut {
    pub daemon: Option<String>,
    pub image_id: Option<String>,
    pub reason: String,
}

/// The approved images the run will not remove (each with why, from the
/// inventory just scanned), and the daemons that could not be scanned.
async fn left_out(
    app: &Janitor,
    request: &CleanupRequest,
    preview: &Preview,
) -> Result<Vec<LeftOut>, CleanupError> {
    let mut out: Vec<LeftOut> = preview
        .daemon_errors
        .iter()
        .map(|f| LeftOut {
            daemon: Some(f.daemon.clone()),
            image_id: None,
            reason: format!("could not be scanned: {}", f.error),
        })
        .collect();
    let Some(approved) = &request.images else {
        return Ok(out);
    };
    let queued: BTreeSet<&str> = preview.images.iter().map(|i| i.id.as_str()).collect();
    let missing: Vec<&ImageId> = approved
        .iter()
        .filter(|id| !queued.contains(id.as_str()))
        .collect();
    if missing.is_empty() {
        return Ok(out);
    }
    let report = app.report().await?;
    for id in missing {
        let now = report.images.iter().find(|i| {
            i.id == id.as_str()
                && request
                    .daemon
                    .as_ref()
                    .is_none_or(|d| i.daemon == d.as_str())
        });
        out.push(match now {
            Some(image) => LeftOut {
                daemon: Some(image.daemon.clone()),
                image_id: Some(id.to_string()),
                reason: format!(
                    "no longer removable: {} ({})",
                    image.status.as_str(),
                    image.reason
                ),
            },
            None => LeftOut {
                daemon: None,
                image_id: Some(id.to_string()),
                reason: "no longer on the daemon (removed meanwhile), or its daemon could not be scanned".into(),
            },
        });
    }
    Ok(out)
}

/// A job as the API shows it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct JobView {
    pub id: i64,
    pub daemon: String,
    pub image_id: String,
    pub image_refs: Vec<String>,
    pub owner: Option<String>,
    pub status: String,
    pub attempts: i64,
    pub error: Option<String>,
    pub bytes_freed: Option<i64>,
    /// When its first attempt began.
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
}

impl From<JobRow> for JobView {
    fn from(j: JobRow) -> Self {
        Self {
            id: j.id,
            daemon: j.daemon_name,
            image_id: j.image_id,
            image_refs: serde_json::from_str(&j.image_refs).unwrap_or_default(),
            owner: j.owner,
            status: j.status,
            attempts: j.attempts,
            error: j.error,
            bytes_freed: j.bytes_freed,
            started_at: j.started_at.map(rfc3339),
            finished_at: j.finished_at.map(rfc3339),
        }
    }
}

/// A run as the API shows it (DESIGN.md's run object, plus who and when).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct RunView {
    pub id: i64,
    pub trigger: String,
    /// `queued`, `running` or `finished`.
    pub status: &'static str,
    pub requested_by: String,
    pub daemon: Option<String>,
    pub min_age_hours: i64,
    pub created_at: String,
    pub bytes_predicted: i64,
    pub bytes_freed: i64,
    pub counts: JobCounts,
    /// How many images the admin approved in the preview; null when the run
    /// took everything removable (schedule, update, or no list given).
    pub approved: Option<i64>,
    /// What was approved (or expected) and not queued, and why.
    pub left_out: Vec<LeftOut>,
    pub jobs: Vec<JobView>,
}

#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct JobCounts {
    pub queued: usize,
    pub running: usize,
    pub succeeded: usize,
    pub skipped: usize,
    pub failed: usize,
    pub cancelled: usize,
}

impl RunView {
    fn new(run: RunRow, jobs: Vec<JobRow>) -> Self {
        let mut counts = JobCounts::default();
        for j in &jobs {
            match j.status.as_str() {
                "queued" => counts.queued += 1,
                "running" => counts.running += 1,
                "succeeded" => counts.succeeded += 1,
                "skipped" => counts.skipped += 1,
                "failed" => counts.failed += 1,
                _ => counts.cancelled += 1,
            }
        }
        let active = counts.queued + counts.running;
        let status = if active == 0 {
            "finished"
        } else if active == jobs.len()
            && counts.running == 0
            && jobs.iter().all(|j| j.attempts == 0)
        {
            "queued"
        } else {
            "running"
        };
        Self {
            id: run.id,
            trigger: run.trigger,
            status,
            requested_by: run.requested_by,
            daemon: run.daemon,
            min_age_hours: run.min_age_hours,
            created_at: rfc3339(run.created_at),
            bytes_predicted: run.bytes_predicted,
            bytes_freed: jobs.iter().filter_map(|j| j.bytes_freed).sum(),
            counts,
            approved: run.approved,
            left_out: serde_json::from_str(&run.left_out).unwrap_or_default(),
            jobs: jobs.into_iter().map(JobView::from).collect(),
        }
    }

    pub fn finished(&self) -> bool {
        self.status == "finished"
    }
}

pub async fn run_view(store: &Store, run_id: i64) -> Result<Option<RunView>, StoreError> {
    let Some(run) = store.run(run_id).await? else {
        return Ok(None);
    };
    Ok(Some(RunView::new(run, store.jobs_of_run(run_id).await?)))
}

/// The newest runs first.
pub async fn run_views(store: &Store, limit: i64) -> Result<Vec<RunView>, StoreError> {
    let mut views = Vec::new();
    for run in store.runs(limit).await? {
        let jobs = store.jobs_of_run(run.id).await?;
        views.push(RunView::new(run, jobs));
    }
    Ok(views)
}

#[derive(Debug, thiserror::Error)]
pub enum CancelError {
    #[error("there is no job {0}")]
    NotFound(i64),
    #[error("job {id} is {status}; only a queued job can be cancelled")]
    NotQueued { id: i64, status: String },
    #[error(transparent)]
    Store(#[from] StoreError),
}

pub async fn cancel_job(store: &Store, job_id: i64) -> Result<JobView, CancelError> {
    if !store.cancel_job(job_id).await? {
        return match store.job(job_id).await? {
            None => Err(CancelError::NotFound(job_id)),
            Some(job) => Err(CancelError::NotQueued {
                id: job_id,
                status: job.status,
            }),
        };
    }
    let job = store
        .job(job_id)
        .await?
        .ok_or(CancelError::NotFound(job_id))?;
    Ok(job.into())
}
