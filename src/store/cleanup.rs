//! The job queue: cleanup runs and their jobs. Claims are single UPDATE
//! statements, so two workers (server and CLI) never get the same job; a
//! claim carries a lease that an unfinished job loses when its worker dies.

use super::{Store, StoreError};

/// A job to enqueue.
#[derive(Debug, Clone)]
pub struct NewJob {
    pub daemon_id: i64,
    pub image_id: String,
    /// JSON array of the references the preview showed.
    pub image_refs: String,
    pub owner: Option<String>,
}

#[derive(Debug, Clone)]
pub struct NewRun<'a> {
    pub trigger: &'a str,
    pub requested_by: &'a str,
    pub daemon: Option<&'a str>,
    pub min_age_hours: i64,
    pub bytes_predicted: i64,
    /// Create the run only if no run of this trigger was created at or after
    /// this time (unix seconds): a scheduled run due then is made once, however
    /// many processes share the file and see it due.
    pub unless_run_since: Option<i64>,
    /// How many images the admin approved in the preview; None: the run
    /// takes whatever is removable now (schedule, update, or no list given).
    pub approved: Option<i64>,
    /// JSON array of what was approved or expected and not queued, and why.
    pub left_out: &'a str,
}

#[derive(Debug, Clone)]
pub struct RunRow {
    pub id: i64,
    pub trigger: String,
    pub requested_by: String,
    pub daemon: Option<String>,
    pub min_age_hours: i64,
    pub bytes_predicted: i64,
    pub created_at: i64,
    pub approved: Option<i64>,
    pub left_out: String,
}

#[derive(Debug, Clone)]
pub struct JobRow {
    pub id: i64,
    pub run_id: i64,
    /// None once the daemon was removed (the job is history then).
    pub daemon_id: Option<i64>,
    pub daemon_name: String,
    pub image_id: String,
    pub image_refs: String,
    pub owner: Option<String>,
    pub status: String,
    pub attempts: i64,
    pub error: Option<String>,
    pub bytes_freed: Option<i64>,
    pub started_at: Option<i64>,
    pub finished_at: Option<i64>,
    /// A removal call went out in an earlier attempt (its answer may be
    /// lost): the image's layers then, JSON `[{chain_id, size}]`.
    pub removal_layers: Option<String>,
}

/// How a job ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobEnd {
    Succeeded,
    Skipped,
    Failed,
}

impl JobEnd {
    fn as_str(self) -> &'static str {
        match self {
            JobEnd::Succeeded => "succeeded",
            JobEnd::Skipped => "skipped",
            JobEnd::Failed => "failed",
        }
    }
}

const JOB_COLUMNS: &str =
    "j.id, j.run_id, j.daemon_id, j.daemon_name, j.image_id, j.image_refs, j.owner, \
     j.status, j.attempts, j.error, j.bytes_freed, j.started_at, j.finished_at, j.removal_layers";

impl Store {
    /// Creates a run and its jobs at once. An image that already has an
    /// active job is not queued again; returns the run ID and how many jobs
    /// were queued.
    /// The new run's ID and how many jobs were queued; None when
    /// `unless_run_since` found a run already made (nothing is written).
    pub async fn create_run(
        &self,
        run: &NewRun<'_>,
        jobs: &[NewJob],
        now_ms: i64,
    ) -> Result<Option<(i64, usize)>, StoreError> {
        let mut tx = self.pool().begin().await?;
        let created_at = self.clock.now_unix();
        // One statement checks and inserts: SQLite runs it under the write
        // lock, so two processes cannot both see "no run yet".
        let run_id = sqlx::query_scalar!(
            "INSERT INTO cleanup_runs (trigger, requested_by, daemon, min_age_hours, bytes_predicted, created_at, approved, left_out)
             SELECT ?, ?, ?, ?, ?, ?, ?, ?
             WHERE ? IS NULL
                OR NOT EXISTS (SELECT 1 FROM cleanup_runs WHERE trigger = ? AND created_at >= ?)
             RETURNING id",
            run.trigger,
            run.requested_by,
            run.daemon,
            run.min_age_hours,
            run.bytes_predicted,
            created_at,
            run.approved,
            run.left_out,
            run.unless_run_since,
            run.trigger,
            run.unless_run_since
        )
        .fetch_optional(&mut *tx)
        .await?;
        let Some(run_id) = run_id else {
            return Ok(None);
        };
        let mut queued = 0;
        for job in jobs {
            let done = sqlx::query!(
                "INSERT INTO cleanup_jobs (run_id, daemon_id, daemon_name, image_id, image_refs, owner, not_before)
                 VALUES (?, ?, (SELECT name FROM daemons WHERE id = ?), ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                run_id,
                job.daemon_id,
                job.daemon_id,
                job.image_id,
                job.image_refs,
                job.owner,
                now_ms
            )
            .execute(&mut *tx)
            .await?;
            if done.rows_affected() == 1 {
                queued += 1;
            } else {
                // The image has an active job of another run: say so on this one.
                sqlx::query!(
                    "UPDATE cleanup_runs SET left_out = json_insert(left_out, '$[#]', json_object(
                         'daemon', (SELECT name FROM daemons WHERE id = ?), 'image_id', ?,
                         'reason', 'already queued by another run'))
                     WHERE id = ?",
                    job.daemon_id,
                    job.image_id,
                    run_id
                )
                .execute(&mut *tx)
                .await?;
            }
        }
        tx.commit().await?;
        Ok(Some((run_id, queued)))
    }

    /// Claims the oldest ready job of a daemon for `owner` (of run `only_run`
    /// when given), unless a job of that daemon is already running under a
    /// live lease (one at a time per daemon, across processes). One
    /// statement: atomic.
    pub async fn claim_job(
        &self,
        daemon_id: i64,
        only_run: Option<i64>,
        owner: &str,
        now_ms: i64,
        lease_ms: i64,
    ) -> Result<Option<i64>, StoreError> {
        let expires = now_ms + lease_ms;
        let started = self.clock.now_unix();
        let claimed = sqlx::query_scalar!(
            r#"UPDATE cleanup_jobs
               SET status = 'running', lease_owner = ?, lease_expires_at = ?, attempts = attempts + 1,
                   started_at = COALESCE(started_at, ?)
               WHERE id = (SELECT id FROM cleanup_jobs
                           WHERE daemon_id = ? AND status = 'queued' AND not_before <= ?
                             AND (? IS NULL OR run_id = ?)
                           ORDER BY id LIMIT 1)
                 AND NOT EXISTS (SELECT 1 FROM cleanup_jobs
                                 WHERE daemon_id = ? AND status = 'running' AND lease_expires_at > ?)
               RETURNING id AS "id!""#,
            owner,
            expires,
            started,
            daemon_id,
            now_ms,
            only_run,
            only_run,
            daemon_id,
            now_ms
        )
        .fetch_optional(self.pool())
        .await?;
        Ok(claimed)
    }

    /// Extends a lease this owner still holds; false when it was lost.
    pub async fn extend_lease(
        &self,
        job_id: i64,
        owner: &str,
        until_ms: i64,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query!(
            "UPDATE cleanup_jobs SET lease_expires_at = ? WHERE id = ? AND lease_owner = ? AND status = 'running'",
            until_ms,
            job_id,
            owner
        )
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Ends a job this owner holds. False (and nothing changed) when the
    /// lease was lost meanwhile: the job then belongs to someone else.
    pub async fn finish_job(
        &self,
        job_id: i64,
        owner: &str,
        end: JobEnd,
        error: Option<&str>,
        bytes_freed: i64,
    ) -> Result<bool, StoreError> {
        let (status, now) = (end.as_str(), self.clock.now_unix());
        let done = sqlx::query!(
            "UPDATE cleanup_jobs SET status = ?, error = ?, bytes_freed = ?, finished_at = ?,
                 lease_owner = NULL, lease_expires_at = NULL
             WHERE id = ? AND lease_owner = ? AND status = 'running'",
            status,
            error,
            bytes_freed,
            now,
            job_id,
            owner
        )
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Puts a job this owner holds back in the queue until `not_before_ms`.
    pub async fn retry_job(
        &self,
        job_id: i64,
        owner: &str,
        error: &str,
        not_before_ms: i64,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query!(
            "UPDATE cleanup_jobs SET status = 'queued', error = ?, not_before = ?, lease_owner = NULL, lease_expires_at = NULL
             WHERE id = ? AND lease_owner = ? AND status = 'running'",
            error,
            not_before_ms,
            job_id,
            owner
        )
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Jobs whose worker died (lease expired) go back to the queue, or end
    /// `failed` when they have had `max_attempts` (a job that crashes its
    /// process every time is not retried without end). Returns (requeued, failed).
    pub async fn requeue_expired(
        &self,
        now_ms: i64,
        max_attempts: i64,
    ) -> Result<(u64, u64), StoreError> {
        // A read first: most ticks find nothing, and need no write lock.
        let expired = sqlx::query_scalar!(
            r#"SELECT EXISTS (SELECT 1 FROM cleanup_jobs WHERE status = 'running' AND lease_expires_at <= ?) AS "e!: bool""#,
            now_ms
        )
        .fetch_one(self.pool())
        .await?;
        if !expired {
            return Ok((0, 0));
        }
        let now = self.clock.now_unix();
        let mut tx = self.pool().begin().await?;
        let failed = sqlx::query!(
            "UPDATE cleanup_jobs SET status = 'failed', lease_owner = NULL, lease_expires_at = NULL, finished_at = ?,
                 error = 'gave up after ' || attempts || ' attempts: its worker stopped while holding it each time'
                         || COALESCE(' (last error: ' || error || ')', ''),
                 bytes_freed = 0
             WHERE status = 'running' AND lease_expires_at <= ? AND attempts >= ?",
            now,
            now_ms,
            max_attempts
        )
        .execute(&mut *tx)
        .await?;
        let requeued = sqlx::query!(
            "UPDATE cleanup_jobs SET status = 'queued', lease_owner = NULL, lease_expires_at = NULL
             WHERE status = 'running' AND lease_expires_at <= ?",
            now_ms
        )
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok((requeued.rows_affected(), failed.rows_affected()))
    }

    /// Gives a claimed job back without counting the attempt (the worker
    /// could not start it, e.g. the settings cannot be read).
    pub async fn release_job(&self, job_id: i64, owner: &str) -> Result<bool, StoreError> {
        let done = sqlx::query!(
            "UPDATE cleanup_jobs SET status = 'queued', attempts = MAX(attempts - 1, 0), lease_owner = NULL, lease_expires_at = NULL
             WHERE id = ? AND lease_owner = ? AND status = 'running'",
            job_id,
            owner
        )
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Records that this job's removal call is about to go out, with the
    /// image's layers (JSON), if `owner` still holds a live lease on it;
    /// false (and nothing may be sent) when the lease was lost.
    pub async fn mark_removal_sent(
        &self,
        job_id: i64,
        owner: &str,
        now_ms: i64,
        layers_json: &str,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query!(
            "UPDATE cleanup_jobs SET removal_layers = COALESCE(removal_layers, ?)
             WHERE id = ? AND lease_owner = ? AND status = 'running' AND lease_expires_at > ?",
            layers_json,
            job_id,
            owner,
            now_ms
        )
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Queued or running jobs of a daemon: while there are any, it stays.
    pub async fn active_jobs_of_daemon(&self, daemon_id: i64) -> Result<i64, StoreError> {
        Ok(sqlx::query_scalar!(
            r#"SELECT COUNT(*) AS "n!: i64" FROM cleanup_jobs WHERE daemon_id = ? AND status IN ('queued', 'running')"#,
            daemon_id
        )
        .fetch_one(self.pool())
        .await?)
    }

    /// Cancels a queued job; false if it is not queued (running or ended).
    pub async fn cancel_job(&self, job_id: i64) -> Result<bool, StoreError> {
        let now = self.clock.now_unix();
        let done = sqlx::query!(
            "UPDATE cleanup_jobs SET status = 'cancelled', finished_at = ?, error = 'cancelled by the admin'
             WHERE id = ? AND status = 'queued'",
            now,
            job_id
        )
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Daemons with a job ready to run now (of run `only_run` when given),
    /// leaving out those whose running job another worker holds under a live
    /// lease: a claim there could only fail.
    pub async fn daemons_with_ready_jobs(
        &self,
        now_ms: i64,
        only_run: Option<i64>,
    ) -> Result<Vec<i64>, StoreError> {
        Ok(sqlx::query_scalar!(
            r#"SELECT DISTINCT q.daemon_id AS "daemon_id!" FROM cleanup_jobs q
             WHERE q.status = 'queued' AND q.not_before <= ? AND (? IS NULL OR q.run_id = ?)
               AND NOT EXISTS (SELECT 1 FROM cleanup_jobs r
                               WHERE r.daemon_id = q.daemon_id AND r.status = 'running' AND r.lease_expires_at > ?)
               AND q.daemon_id IS NOT NULL"#,
            now_ms,
            only_run,
            only_run,
            now_ms
        )
        .fetch_all(self.pool())
        .await?)
    }

    /// When the next queued job can be claimed (it is ready and its daemon
    /// has no job running under a live lease) or a lease runs out (unix ms):
    /// how long a worker may sleep. A queued job behind another worker's live
    /// lease waits for that lease, not for its own `not_before`.
    pub async fn next_job_event(&self, now_ms: i64) -> Result<Option<i64>, StoreError> {
        Ok(sqlx::query_scalar!(
            r#"SELECT MIN(t) AS "t: i64" FROM (
                 SELECT MAX(q.not_before,
                            COALESCE((SELECT MAX(r.lease_expires_at) FROM cleanup_jobs r
                                      WHERE r.daemon_id = q.daemon_id AND r.status = 'running'
                                        AND r.lease_expires_at > ?), 0)) AS t
                 FROM cleanup_jobs q WHERE q.status = 'queued'
                 UNION ALL
                 SELECT MIN(lease_expires_at) FROM cleanup_jobs WHERE status = 'running')"#,
            now_ms
        )
        .fetch_one(self.pool())
        .await?)
    }

    pub async fn job(&self, job_id: i64) -> Result<Option<JobRow>, StoreError> {
        let sql = format!("SELECT {JOB_COLUMNS} FROM cleanup_jobs j WHERE j.id = ?");
        Ok(sqlx::query_as::<_, JobRowSql>(&sql)
            .bind(job_id)
            .fetch_optional(self.pool())
            .await?
            .map(Into::into))
    }

    pub async fn jobs_of_run(&self, run_id: i64) -> Result<Vec<JobRow>, StoreError> {
        let sql =
            format!("SELECT {JOB_COLUMNS} FROM cleanup_jobs j WHERE j.run_id = ? ORDER BY j.id");
        Ok(sqlx::query_as::<_, JobRowSql>(&sql)
            .bind(run_id)
            .fetch_all(self.pool())
            .await?
            .into_iter()
            .map(Into::into)
            .collect())
    }

    pub async fn run(&self, run_id: i64) -> Result<Option<RunRow>, StoreError> {
        Ok(sqlx::query_as!(
            RunRow,
            "SELECT id, trigger, requested_by, daemon, min_age_hours, bytes_predicted, created_at, approved, left_out
             FROM cleanup_runs WHERE id = ?",
            run_id
        )
        .fetch_optional(self.pool())
        .await?)
    }

    /// The newest runs first.
    pub async fn runs(&self, limit: i64) -> Result<Vec<RunRow>, StoreError> {
        Ok(sqlx::query_as!(
            RunRow,
            "SELECT id, trigger, requested_by, daemon, min_age_hours, bytes_predicted, created_at, approved, left_out
             FROM cleanup_runs ORDER BY id DESC LIMIT ?",
            limit
        )
        .fetch_all(self.pool())
        .await?)
    }

    /// (trigger, job status, count, bytes freed) over all runs: for metrics.
    pub async fn job_totals(&self) -> Result<Vec<(String, String, i64, i64)>, StoreError> {
        Ok(sqlx::query!(
            r#"SELECT r.trigger, j.status, COUNT(*) AS "count!: i64", COALESCE(SUM(j.bytes_freed), 0) AS "bytes!: i64"
               FROM cleanup_jobs j JOIN cleanup_runs r ON r.id = j.run_id
               GROUP BY r.trigger, j.status"#
        )
        .fetch_all(self.pool())
        .await?
        .into_iter()
        .map(|r| (r.trigger, r.status, r.count, r.bytes))
        .collect())
    }

    /// What every cleanup freed so far, and in how many runs: one read for
    /// the overview's line (per request), not the metrics' two breakdowns.
    pub async fn freed_so_far(&self) -> Result<(u64, u64), StoreError> {
        let row = sqlx::query!(
            r#"SELECT (SELECT COALESCE(SUM(bytes_freed), 0) FROM cleanup_jobs) AS "bytes!: i64",
                      (SELECT COUNT(*) FROM cleanup_runs) AS "runs!: i64""#
        )
        .fetch_one(self.pool())
        .await?;
        let count = |n: i64| u64::try_from(n).unwrap_or(0);
        Ok((count(row.bytes), count(row.runs)))
    }

    /// Runs per trigger.
    pub async fn run_totals(&self) -> Result<Vec<(String, i64)>, StoreError> {
        Ok(sqlx::query!(
            r#"SELECT trigger, COUNT(*) AS "count!: i64" FROM cleanup_runs GROUP BY trigger"#
        )
        .fetch_all(self.pool())
        .await?
        .into_iter()
        .map(|r| (r.trigger, r.count))
        .collect())
    }

    /// The start of the newest run with this trigger (unix seconds).
    pub async fn last_run_at(&self, trigger: &str) -> Result<Option<i64>, StoreError> {
        Ok(sqlx::query_scalar!(
            r#"SELECT MAX(created_at) AS "at: i64" FROM cleanup_runs WHERE trigger = ?"#,
            trigger
        )
        .fetch_one(self.pool())
        .await?)
    }
}

/// The row as SQL returns it (the join's column list is shared, so these
/// queries are checked at run time, not compile time).
#[derive(sqlx::FromRow)]
struct JobRowSql {
    id: i64,
    run_id: i64,
    daemon_id: Option<i64>,
    daemon_name: String,
    image_id: String,
    image_refs: String,
    owner: Option<String>,
    status: String,
    attempts: i64,
    error: Option<String>,
    bytes_freed: Option<i64>,
    started_at: Option<i64>,
    finished_at: Option<i64>,
    removal_layers: Option<String>,
}

impl From<JobRowSql> for JobRow {
    fn from(r: JobRowSql) -> Self {
        Self {
            id: r.id,
            run_id: r.run_id,
            daemon_id: r.daemon_id,
            daemon_name: r.daemon_name,
            image_id: r.image_id,
            image_refs: r.image_refs,
            owner: r.owner,
            status: r.status,
            attempts: r.attempts,
            error: r.error,
            bytes_freed: r.bytes_freed,
            started_at: r.started_at,
            finished_at: r.finished_at,
            removal_layers: r.removal_layers,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::store::with_one_daemon as store_with_daemon;

    /// A run of one job per `freed`, each job ended with what it freed.
    async fn run_freeing(store: &Store, daemon_id: i64, freed: &[(JobEnd, i64)]) {
        let jobs: Vec<NewJob> = (0..freed.len())
            .map(|n| NewJob {
                daemon_id,
                image_id: format!("sha256:{n:064x}"),
                image_refs: "[]".into(),
                owner: None,
            })
            .collect();
        let run = NewRun {
            trigger: "manual",
            requested_by: "test",
            daemon: None,
            min_age_hours: 0,
            bytes_predicted: 0,
            unless_run_since: None,
            approved: None,
            left_out: "[]",
        };
        store.create_run(&run, &jobs, 0).await.unwrap().unwrap();
        for (end, bytes) in freed {
            let job = store
                .claim_job(daemon_id, None, "worker", 0, 60_000)
                .await
                .unwrap()
                .expect("a job is ready");
            assert!(store
                .finish_job(job, "worker", *end, None, *bytes)
                .await
                .unwrap());
        }
    }

    #[tokio::test]
    async fn nothing_is_freed_before_any_run() {
        let (_dir, store, _) = store_with_daemon().await;
        assert_eq!(store.freed_so_far().await.unwrap(), (0, 0));
    }

    #[tokio::test]
    async fn freed_so_far_sums_every_jobs_bytes_and_counts_every_run() {
        let (_dir, store, daemon) = store_with_daemon().await;
        run_freeing(
            &store,
            daemon,
            &[(JobEnd::Succeeded, 1_000), (JobEnd::Succeeded, 200)],
        )
        .await;
        run_freeing(
            &store,
            daemon,
            &[(JobEnd::Skipped, 0), (JobEnd::Succeeded, 30)],
        )
        .await;
        assert_eq!(store.freed_so_far().await.unwrap(), (1_230, 2));
    }
}
