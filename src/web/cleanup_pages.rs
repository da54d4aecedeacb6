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
use crate::domain::{short_id, FieldErrors};
use crate::janitor::Janitor;
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
    /// Only this ExApp's images ("Clean up this ExApp" on the overview).
    #[serde(default)]
    owner: String,
}

fn parse_form(
    form: &CleanupForm,
    images: Option<Vec<String>>,
) -> Result<CleanupRequest, FieldErrors> {
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
        images,
        owner: Some(form.owner.clone()),
    })
}

/// The confirmation form: `daemon`, `owner`, `min_age_hours` and one `images` field per
/// image the preview showed (repeated keys, which `web::Form` cannot read).
fn parse_confirmation(body: &[u8]) -> Result<CleanupRequest, FieldErrors> {
    let fields: Vec<(String, String)> = serde_urlencoded::from_bytes(body)
        .map_err(|_| FieldErrors::single("form", "cannot read the form"))?;
    let mut form = CleanupForm::default();
    let mut images = Vec::new();
    for (key, value) in fields {
        match key.as_str() {
            "daemon" => form.daemon = value,
            "min_age_hours" => form.min_age_hours = value,
            // Carried so the run is limited as the preview was, even if the
            // form's image list were changed on the way.
            "owner" => form.owner = value,
            "images" => images.push(value),
            _ => {}
        }
    }
    // A form without images confirms nothing: there is no "everything" here.
    if images.is_empty() {
        return Err(FieldErrors::single(
            "images",
            "the confirmation names no image; open the preview again",
        ));
    }
    parse_form(&form, Some(images))
}

struct PreviewRow {
    id: String,
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
            id: i.id.clone(),
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
            unique: format::bytes(i.frees()),
        }
    }
}

#[derive(Template)]
#[template(path = "cleanup_preview.html")]
struct PreviewPage {
    layout: Layout,
    scope: String,
    daemon: String,
    owner: String,
    min_age_hours: String,
    rows: Vec<PreviewRow>,
    total: String,
    errors: FieldErrors,
    /// Daemons left out of the preview: (name, error).
    daemon_errors: Vec<(String, String)>,
}

/// What a preview covers, in the page's title.
fn scope(form: &CleanupForm) -> String {
    let daemons = if form.daemon.is_empty() {
        "all daemons".to_owned()
    } else {
        format!("daemon {}", form.daemon)
    };
    if form.owner.is_empty() {
        daemons
    } else {
        format!("ExApp {} on {daemons}", form.owner)
    }
}

async fn preview_page(
    app: web::Data<Janitor>,
    session: CurrentSession,
    query: web::Query<CleanupForm>,
) -> Result<HttpResponse, PageError> {
    let mut page = PreviewPage {
        layout: Layout::page("overview", &session),
        scope: scope(&query),
        daemon: query.daemon.clone(),
        owner: query.owner.clone(),
        min_age_hours: query.min_age_hours.clone(),
        rows: Vec::new(),
        total: format::bytes(0),
        errors: FieldErrors::new(),
        daemon_errors: Vec::new(),
    };
    let request = match parse_form(&query, None) {
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
            page.daemon_errors = preview
                .daemon_errors
                .into_iter()
                .map(|f| (f.daemon, f.error))
                .collect();
            Ok(html(StatusCode::OK, &page))
        }
        Err(e @ CleanupError::UnknownDaemon(_)) => {
            page.errors = FieldErrors::single("daemon", e.to_string());
            Ok(html(StatusCode::UNPROCESSABLE_ENTITY, &page))
        }
        Err(e @ CleanupError::DaemonDown { .. }) => {
            page.errors = FieldErrors::single("daemon", e.to_string());
            Ok(html(StatusCode::BAD_GATEWAY, &page))
        }
        Err(e @ CleanupError::SettingsUnreadable) => {
            page.errors = FieldErrors::single("settings", e.to_string());
            Ok(html(StatusCode::SERVICE_UNAVAILABLE, &page))
        }
        Err(e) => Err(PageError::internal(e)),
    }
}

/// "Remove N images": a run of exactly the images the preview showed that
/// are still removable now.
async fn start_run(app: web::Data<Janitor>, body: web::Bytes) -> Result<HttpResponse, PageError> {
    let request = parse_confirmation(&body).map_err(|e| PageError::BadRequest(e.to_string()))?;
    let run = jobs::start_run(&app, Trigger::Manual, "web", &request, app.policy().await)
        .await
        .map_err(|e| match e {
            CleanupError::UnknownDaemon(_)
            | CleanupError::DaemonDown { .. }
            | CleanupError::SettingsUnreadable => PageError::BadRequest(e.to_string()),
            other => PageError::internal(other),
        })?;
    Ok(HttpResponse::SeeOther()
        .insert_header(("Location", format!("/runs/{}", run.id)))
        .finish())
}

/// A run as the runs page and a run's page print it: a `jobs::RunView` (the
/// API's run, itself built from the store's `RunRow` and `JobRow`s) with
/// its figures formatted for reading.
pub struct PrintedRun {
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
    pub approved: Option<i64>,
    /// How many of `left_out` are images (not daemons).
    pub left_out_images: usize,
    pub left_out: Vec<PrintedLeftOut>,
    pub jobs: Vec<PrintedJob>,
}

/// A line of a printed run's "left out" list.
pub struct PrintedLeftOut {
    /// The image (short ID and daemon) or the daemon it is about.
    pub what: String,
    pub reason: String,
}

/// A job as a run's page prints it (from a `jobs::JobView`).
pub struct PrintedJob {
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

impl From<&RunView> for PrintedRun {
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
            approved: r.approved,
            left_out_images: r.left_out.iter().filter(|l| l.image_id.is_some()).count(),
            left_out: r
                .left_out
                .iter()
                .map(|l| PrintedLeftOut {
                    what: match (&l.image_id, &l.daemon) {
                        (Some(id), Some(d)) => format!("{} on {d}", short_id(id)),
                        (Some(id), None) => short_id(id).to_owned(),
                        (None, Some(d)) => format!("daemon {d}"),
                        (None, None) => String::new(),
                    },
                    reason: l.reason.clone(),
                })
                .collect(),
            jobs: r
                .jobs
                .iter()
                .map(|j| PrintedJob {
                    id: j.id,
                    daemon: j.daemon.clone(),
                    reference: j
                        .image_refs
                        .first()
                        .cloned()
                        .unwrap_or_else(|| "<none>".into()),
                    short_id: short_id(&j.image_id).to_owned(),
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
    runs: Vec<PrintedRun>,
    chart: Vec<charts::RunBar>,
}

async fn runs_page(
    app: web::Data<Janitor>,
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
        runs: runs.iter().map(PrintedRun::from).collect(),
        chart: charts::freed_per_run(&points),
    };
    Ok(html(StatusCode::OK, &page))
}

#[derive(Template)]
#[template(path = "run.html")]
struct RunPage {
    layout: Layout,
    r: PrintedRun,
}

/// The live part of a run's page; it asks again every second until the run
/// has finished.
#[derive(Template, WebTemplate)]
#[template(path = "fragments/run_live_alone.html")]
struct RunLive {
    r: PrintedRun,
}

async fn load_run(app: &Janitor, id: &str) -> Result<PrintedRun, PageError> {
    let not_found = || PageError::NotFound(format!("There is no run {id}."));
    let run_id: i64 = id.parse().map_err(|_| not_found())?;
    let run = jobs::run_view(&app.store, run_id)
        .await
        .map_err(PageError::internal)?
        .ok_or_else(not_found)?;
    Ok(PrintedRun::from(&run))
}

async fn run_page(
    app: web::Data<Janitor>,
    session: CurrentSession,
    id: web::Path<String>,
) -> Result<HttpResponse, PageError> {
    let page = RunPage {
        layout: Layout::page("runs", &session),
        r: load_run(&app, &id).await?,
    };
    Ok(html(StatusCode::OK, &page))
}

async fn run_live(app: web::Data<Janitor>, id: web::Path<String>) -> Result<RunLive, PageError> {
    Ok(RunLive {
        r: load_run(&app, &id).await?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_confirmation_stays_limited_to_the_exapp_it_previewed() {
        let id = format!("sha256:{}", "ab".repeat(32));
        let body = format!("owner=llm2&min_age_hours=0&images={id}&csrf_token=x");
        let request = parse_confirmation(body.as_bytes()).unwrap();
        assert_eq!(request.owner.as_ref().map(|o| o.as_str()), Some("llm2"));
        assert_eq!(request.images.unwrap().len(), 1);
        let everyone = parse_confirmation(format!("owner=&images={id}").as_bytes()).unwrap();
        assert_eq!(everyone.owner, None, "an empty owner is no limit");
    }
}
