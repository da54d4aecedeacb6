//! "Clean now": the preview, the confirmation that enqueues a run, the Runs
//! page and a run's page, which follows its jobs live. Nothing here deletes:
//! it enqueues, and the worker does the rest.

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use askama::Template;
use askama_web::WebTemplate;
use serde::Deserialize;

use super::charts;
use super::errors::{html, PageError};
use super::format;
use super::guard::CurrentSession;
use super::layout::Layout;
use crate::app::App;
use crate::domain::FieldErrors;
use crate::jobs::{self, CleanupError, CleanupRequest, CleanupRequestInput, RunView, Trigger};
use crate::report::ImageObject;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/cleanup", web::get().to(preview_page))
        .route("/cleanup/runs", web::post().to(start_run))
        .route("/runs", web::get().to(runs_page))
        .route("/runs/{id}", web::get().to(run_page))
        .route("/runs/{id}/live", web::get().to(run_live));
}

/// The query or form of a cleanup: strings, as a browser sends them.
#[derive(Debug, Default, Deserialize)]
struct CleanupForm {
    #[serde(default)]
    daemon: String,
    #[serde(default)]
    min_age_hours: String,
}

fn parse_form(form: &CleanupForm) -> Result<CleanupRequest, FieldErrors> {
    let min_age_hours = match form.min_age_hours.trim() {
        "" => None,
        raw => Some(
            raw.parse::<i64>()
                .map_err(|_| FieldErrors::single("min_age_hours", "a whole number of hours"))?,
        ),
    };
    CleanupRequest::parse(&CleanupRequestInput {
        daemon: Some(form.daemon.clone()),
        min_age_hours,
    })
}

struct PreviewRow {
    daemon: String,
    reference: String,
    short_id: String,
    owner: String,
    reason: String,
    unique: String,
}

impl From<&ImageObject> for PreviewRow {
    fn from(i: &ImageObject) -> Self {
        Self {
            daemon: i.daemon.clone(),
            reference: i
                .repo_tags
                .first()
                .or(i.repo_digests.first())
                .cloned()
                .unwrap_or_else(|| "<none>".into()),
            short_id: i.short_id().to_owned(),
            owner: i.owner.clone().unwrap_or_default(),
            reason: i.reason.clone(),
            unique: format::bytes(i.unique_bytes),
        }
    }
}

#[derive(Template)]
#[template(path = "cleanup_preview.html")]
struct PreviewPage {
    layout: Layout,
    scope: String,
    daemon: String,
    min_age_hours: String,
    rows: Vec<PreviewRow>,
    total: String,
    errors: FieldErrors,
}

async fn preview_page(
    app: web::Data<App>,
    session: CurrentSession,
    query: web::Query<CleanupForm>,
) -> Result<HttpResponse, PageError> {
    let mut page = PreviewPage {
        layout: Layout::page("overview", &session),
        scope: if query.daemon.is_empty() {
            "all daemons".into()
        } else {
            format!("daemon {}", query.daemon)
        },
        daemon: query.daemon.clone(),
        min_age_hours: query.min_age_hours.clone(),
        rows: Vec::new(),
        total: format::bytes(0),
        errors: FieldErrors::new(),
    };
    let request = match parse_form(&query) {
        Ok(r) => r,
        Err(errors) => {
            page.errors = errors;
            return Ok(html(StatusCode::UNPROCESSABLE_ENTITY, &page));
        }
    };
    match jobs::preview(&app, &request, app.policy().await).await {
        Ok(preview) => {
            page.rows = preview.images.iter().map(PreviewRow::from).collect();
            page.total = format::bytes(preview.bytes_reclaimable);
            Ok(html(StatusCode::OK, &page))
        }
        Err(e @ CleanupError::UnknownDaemon(_)) => {
            page.errors = FieldErrors::single("daemon", e.to_string());
            Ok(html(StatusCode::UNPROCESSABLE_ENTITY, &page))
        }
        Err(e) => Err(PageError::internal(e)),
    }
}

async fn start_run(
    app: web::Data<App>,
    form: web::Form<CleanupForm>,
) -> Result<HttpResponse, PageError> {
    let request = parse_form(&form).map_err(|e| PageError::BadRequest(e.to_string()))?;
    let run = jobs::start_run(&app, Trigger::Manual, "web", &request, app.policy().await)
        .await
        .map_err(|e| match e {
            CleanupError::UnknownDaemon(_) => PageError::BadRequest(e.to_string()),
            other => PageError::internal(other),
        })?;
    Ok(HttpResponse::SeeOther()
        .insert_header(("Location", format!("/runs/{}", run.id)))
        .finish())
}

/// A run ready to print.
pub struct RunRow {
    pub id: i64,
    pub trigger: String,
    pub requested_by: String,
    pub scope: String,
    pub created: String,
    pub status: &'static str,
    pub predicted: String,
    pub freed: String,
    pub succeeded: usize,
    pub skipped: usize,
    pub failed: usize,
    pub cancelled: usize,
    pub active: usize,
    pub jobs: Vec<JobRow>,
}

pub struct JobRow {
    pub id: i64,
    pub daemon: String,
    pub reference: String,
    pub short_id: String,
    pub owner: String,
    pub status: String,
    pub attempts: i64,
    pub error: String,
    pub freed: String,
}

impl From<&RunView> for RunRow {
    fn from(r: &RunView) -> Self {
        let bytes = |n: i64| format::bytes(u64::try_from(n).unwrap_or(0));
        Self {
            id: r.id,
            trigger: r.trigger.clone(),
            requested_by: r.requested_by.clone(),
            scope: r.daemon.clone().unwrap_or_else(|| "all daemons".into()),
            created: format::datetime_text(&r.created_at),
            status: r.status,
            predicted: bytes(r.bytes_predicted),
            freed: bytes(r.bytes_freed),
            succeeded: r.counts.succeeded,
            skipped: r.counts.skipped,
            failed: r.counts.failed,
            cancelled: r.counts.cancelled,
            active: r.counts.queued + r.counts.running,
            jobs: r
                .jobs
                .iter()
                .map(|j| JobRow {
                    id: j.id,
                    daemon: j.daemon.clone(),
                    reference: j
                        .image_refs
                        .first()
                        .cloned()
                        .unwrap_or_else(|| "<none>".into()),
                    short_id: j.image_id.get(7..19).unwrap_or(&j.image_id).to_owned(),
                    owner: j.owner.clone().unwrap_or_default(),
                    status: j.status.clone(),
                    attempts: j.attempts,
                    error: j.error.clone().unwrap_or_default(),
                    freed: j.bytes_freed.map(bytes).unwrap_or_default(),
                })
                .collect(),
        }
    }
}

#[derive(Template)]
#[template(path = "runs.html")]
struct RunsPage {
    layout: Layout,
    runs: Vec<RunRow>,
    chart: Vec<charts::RunBar>,
}

async fn runs_page(
    app: web::Data<App>,
    session: CurrentSession,
) -> Result<HttpResponse, PageError> {
    let runs = jobs::run_views(&app.store, 100)
        .await
        .map_err(PageError::internal)?;
    // Oldest first, left to right.
    let points: Vec<(i64, String, i64)> = runs
        .iter()
        .rev()
        .map(|r| {
            (
                r.id,
                format!("#{} {}", r.id, format::datetime_text(&r.created_at)),
                r.bytes_freed,
            )
        })
        .collect();
    let page = RunsPage {
        layout: Layout::page("runs", &session),
        runs: runs.iter().map(RunRow::from).collect(),
        chart: charts::freed_per_run(&points),
    };
    Ok(html(StatusCode::OK, &page))
}

#[derive(Template)]
#[template(path = "run.html")]
struct RunPage {
    layout: Layout,
    r: RunRow,
}

/// The live part of a run's page; it asks again every second until the run
/// has finished.
#[derive(Template, WebTemplate)]
#[template(path = "fragments/run_live_alone.html")]
struct RunLive {
    r: RunRow,
}

async fn load_run(app: &App, id: &str) -> Result<RunRow, PageError> {
    let not_found = || PageError::NotFound(format!("There is no run {id}."));
    let run_id: i64 = id.parse().map_err(|_| not_found())?;
    let run = jobs::run_view(&app.store, run_id)
        .await
        .map_err(PageError::internal)?
        .ok_or_else(not_found)?;
    Ok(RunRow::from(&run))
}

async fn run_page(
    app: web::Data<App>,
    session: CurrentSession,
    id: web::Path<String>,
) -> Result<HttpResponse, PageError> {
    let page = RunPage {
        layout: Layout::page("runs", &session),
        r: load_run(&app, &id).await?,
    };
    Ok(html(StatusCode::OK, &page))
}

async fn run_live(app: web::Data<App>, id: web::Path<String>) -> Result<RunLive, PageError> {
    Ok(RunLive {
        r: load_run(&app, &id).await?,
    })
}
