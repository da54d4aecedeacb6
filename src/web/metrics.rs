//! `/metrics` in Prometheus' text format, computed from the current state at
//! each scrape (the inventory cache, the contact table, the job queue).

use actix_web::{web, HttpResponse};
use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;

use super::errors::PageError;
use crate::janitor::Janitor;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/metrics", web::get().to(metrics));
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DaemonLabel {
    daemon: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StatusLabel {
    daemon: String,
    status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TriggerLabel {
    trigger: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct JobLabel {
    trigger: String,
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ActiveLabel {
    status: String,
}

type IntGauge = Family<DaemonLabel, Gauge>;
type FloatGauge = Family<DaemonLabel, Gauge<f64, AtomicU64>>;

async fn metrics(app: web::Data<Janitor>) -> Result<HttpResponse, PageError> {
    // Everything is read before anything is registered: a scrape that
    // fails half-way answers with an error, not with half the metrics.
    let daemons = DaemonGauges::read(&app).await?;
    let cleanups = CleanupCounters::read(&app).await?;
    let schedule = crate::settings::load(&app.store)
        .await
        .map_err(PageError::internal)?;

    let mut registry = Registry::with_prefix("exapp_janitor");
    daemons.register(&mut registry);
    cleanups.register(&mut registry);
    if let Some(at) = schedule.next_run_at {
        let next_run = Gauge::<i64>::default();
        next_run.set(at);
        registry.register(
            "next_scheduled_run_timestamp_seconds",
            "When the next scheduled cleanup runs (unix time); absent when off",
            next_run,
        );
    }

    let mut body = String::new();
    encode(&mut body, &registry).map_err(PageError::internal)?;
    Ok(HttpResponse::Ok()
        .content_type("application/openmetrics-text; version=1.0.0; charset=utf-8")
        .body(body))
}

/// Each daemon's contact and last scan.
#[derive(Default)]
struct DaemonGauges {
    up: IntGauge,
    images: IntGauge,
    bytes: Family<StatusLabel, Gauge>,
    reclaimable: IntGauge,
    scan_seconds: FloatGauge,
    scan_time: IntGauge,
}

impl DaemonGauges {
    async fn read(app: &Janitor) -> Result<Self, PageError> {
        let reads = app.reads().await.map_err(PageError::internal)?;
        let scans = app.scans_of(&reads).await.map_err(PageError::internal)?;
        // The reclaimable bytes as the overview has them: computed once per
        // inventory and policy, not per scrape.
        let report = app.report_of(&reads, &scans).await;
        let daemons = &reads.daemons;
        let g = Self::default();
        for d in daemons {
            let label = DaemonLabel {
                daemon: d.name.to_string(),
            };
            g.up.get_or_create(&label)
                .set(i64::from(d.contact.reachable));
            let Some(cached) = scans.get(&d.id) else {
                continue;
            };
            if let Some(ms) = cached.duration_ms {
                g.scan_seconds.get_or_create(&label).set(ms as f64 / 1000.0);
            }
            if let Some(at) = cached.scanned_at {
                g.scan_time.get_or_create(&label).set(at);
            }
            let Some(scan) = &cached.inventory else {
                continue;
            };
            g.images
                .get_or_create(&label)
                .set(scan.totals.images as i64);
            for (status, n) in &scan.totals.bytes_by_status {
                let l = StatusLabel {
                    daemon: label.daemon.clone(),
                    status: status.as_str().to_owned(),
                };
                g.bytes
                    .get_or_create(&l)
                    .set(i64::try_from(*n).unwrap_or(i64::MAX));
            }
            // What a cleanup now would free: the removable set, decided as
            // a run would decide it.
            if let Some(f) = report.figures(d.id) {
                g.reclaimable
                    .get_or_create(&label)
                    .set(i64::try_from(f.removable_bytes).unwrap_or(i64::MAX));
            }
        }
        Ok(g)
    }

    fn register(self, registry: &mut Registry) {
        registry.register(
            "daemon_up",
            "Whether the daemon answered the last contact (1) or not (0)",
            self.up,
        );
        registry.register(
            "images",
            "Images on the daemon at the last scan",
            self.images,
        );
        registry.register(
            "image_bytes",
            "Disk used by images, each layer counted once under the most-needed status using it",
            self.bytes,
        );
        registry.register(
            "reclaimable_bytes",
            "What a cleanup now would free",
            self.reclaimable,
        );
        registry.register(
            "last_scan_duration_seconds",
            "How long the last successful scan took",
            self.scan_seconds,
        );
        registry.register(
            "last_scan_timestamp_seconds",
            "When the last successful scan ended (unix time)",
            self.scan_time,
        );
    }
}

/// The cleanup runs and jobs of all time, from the store.
#[derive(Default)]
struct CleanupCounters {
    runs: Family<TriggerLabel, Counter>,
    jobs: Family<JobLabel, Counter>,
    active_jobs: Family<ActiveLabel, Gauge>,
    freed: Counter<u64>,
}

impl CleanupCounters {
    async fn read(app: &Janitor) -> Result<Self, PageError> {
        let c = Self::default();
        for (trigger, count) in app.store.run_totals().await.map_err(PageError::internal)? {
            c.runs
                .get_or_create(&TriggerLabel { trigger })
                .inc_by(u64::try_from(count).unwrap_or(0));
        }
        let mut freed_total = 0u64;
        for (trigger, outcome, count, bytes_freed) in
            app.store.job_totals().await.map_err(PageError::internal)?
        {
            // Queued and running go down again: a gauge. Only ended jobs count up.
            if matches!(outcome.as_str(), "queued" | "running") {
                c.active_jobs
                    .get_or_create(&ActiveLabel { status: outcome })
                    .inc_by(count);
            } else {
                c.jobs
                    .get_or_create(&JobLabel { trigger, outcome })
                    .inc_by(u64::try_from(count).unwrap_or(0));
            }
            freed_total += u64::try_from(bytes_freed).unwrap_or(0);
        }
        c.freed.inc_by(freed_total);
        Ok(c)
    }

    fn register(self, registry: &mut Registry) {
        registry.register("cleanup_runs", "Cleanup runs by trigger", self.runs);
        registry.register(
            "cleanup_jobs",
            "Cleanup jobs that ended, by trigger and outcome (succeeded, skipped, failed, cancelled)",
            self.jobs,
        );
        registry.register(
            "cleanup_jobs_active",
            "Cleanup jobs queued or running now",
            self.active_jobs,
        );
        registry.register("freed_bytes", "Bytes freed by all cleanup jobs", self.freed);
    }
}
