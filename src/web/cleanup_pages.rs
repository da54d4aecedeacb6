//! "Clean now": the preview, the confirmation that enqueues a run, the Runs
//! page and a run's page, which follows its jobs live. Nothing here deletes:
//! it enqueues, and the worker does the rest.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
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
        .route("/runs/{id}/live", web::get().to(run_live))
        .route("/runs/{run}/jobs/{job}/cancel", web::post().to(cancel_job));
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

/// What a cleanup form or address carries: the form's fields, one
/// `images` per image (repeated keys, which `web::Form` and `web::Query`
/// cannot read), and whether it came from the Images page's selection.
struct CleanupFields {
    form: CleanupForm,
    images: Vec<String>,
    selection: bool,
}

impl CleanupFields {
    fn read(fields: Vec<(String, String)>) -> Self {
        let mut out = Self {
            form: CleanupForm::default(),
            images: Vec::new(),
            selection: false,
        };
        for (key, value) in fields {
            match key.as_str() {
                "daemon" => out.form.daemon = value,
                "min_age_hours" => out.form.min_age_hours = value,
                // Carried so the run is limited as the preview was, even if
                // the form's image list were changed on the way.
                "owner" => out.form.owner = value,
                "images" => out.images.push(value),
                "selection" => out.selection = true,
                _ => {}
            }
        }
        out
    }
}

/// The confirmation form: `daemon`, `owner`, `min_age_hours` and one
/// `images` field per image the preview showed.
fn parse_confirmation(body: &[u8]) -> Result<CleanupRequest, FieldErrors> {
    let fields: Vec<(String, String)> = serde_urlencoded::from_bytes(body)
        .map_err(|_| FieldErrors::single("form", "cannot read the form"))?;
    let CleanupFields { form, images, .. } = CleanupFields::read(fields);
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
    reference: format::Reference,
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
            reference: format::Reference::new(
                i.repo_tags
                    .first()
                    .or(i.repo_digests.first())
                    .map_or("<none>", String::as_str),
            ),
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
    /// How many images were ticked on the Images page, for "Remove selected".
    selected: Option<usize>,
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

/// The preview's query: the form's fields, and one `images` per image ticked
/// on the Images page ("Remove selected"; repeated keys, which
/// `web::Query` cannot read). `selection` marks a query from that form, so
/// one with no image ticked is an error, not "everything".
fn parse_preview_query(query: &str) -> Result<(CleanupForm, Option<Vec<String>>), FieldErrors> {
    let fields: Vec<(String, String)> = serde_urlencoded::from_str(query)
        .map_err(|_| FieldErrors::single("query", "cannot read the address"))?;
    let CleanupFields {
        form,
        images,
        selection,
    } = CleanupFields::read(fields);
    if selection && images.is_empty() {
        return Err(FieldErrors::single(
            "images",
            "no image is ticked; tick the removable images to remove on the Images page",
        ));
    }
    Ok((form, (!images.is_empty()).then_some(images)))
}

async fn preview_page(
    app: web::Data<Janitor>,
    session: CurrentSession,
    req: HttpRequest,
) -> Result<HttpResponse, PageError> {
    let (form, images) = match parse_preview_query(req.query_string()) {
        Ok((form, images)) => (form, Ok(images)),
        Err(errors) => (CleanupForm::default(), Err(errors)),
    };
    let mut page = PreviewPage {
        layout: Layout::page("overview", &session),
        scope: scope(&form),
        daemon: form.daemon.clone(),
        owner: form.owner.clone(),
        min_age_hours: form.min_age_hours.clone(),
        selected: images.as_ref().ok().and_then(|i| i.as_ref().map(Vec::len)),
        rows: Vec::new(),
        total: format::bytes(0),
        errors: FieldErrors::new(),
        daemon_errors: Vec::new(),
    };
    let request = match images.and_then(|images| parse_form(&form, images)) {
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
    /// "Started from the web page", "Scheduled", "After the update of llm2".
    pub origin: String,
    pub scope: String,
    pub created: format::When,
    pub status: &'static str,
    pub predicted: String,
    pub freed: String,
    pub predicted_bytes: i64,
    pub freed_bytes: i64,
    /// Jobs that ended, of all.
    pub done: usize,
    pub total: usize,
    /// "1 removed · 2 skipped": only the counts that are not 0.
    pub counts: String,
    /// How long it took (or has taken so far), and when it finished.
    pub duration: String,
    pub finished: Option<format::When>,
    /// Why freed differs from predicted, once the run has finished.
    pub difference: Option<String>,
    /// Daemons whose jobs wait for an answer: "gpu-host: no answer for 15 s, retrying (…)".
    pub waiting_on: Vec<String>,
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
    pub reference: format::Reference,
    pub short_id: String,
    pub owner: String,
    pub status: String,
    pub attempts: i64,
    pub error: String,
    pub freed: String,
}

/// Who started a run, in words.
fn origin(trigger: &str, requested_by: &str) -> String {
    match (trigger, requested_by) {
        ("manual", "web") => "Started from the web page".to_owned(),
        ("manual", "api") => "Started through the API".to_owned(),
        ("manual", "cli") => "Started from the command line".to_owned(),
        ("schedule", _) => "Scheduled".to_owned(),
        ("update", by) => match by.strip_prefix("update of ") {
            Some(app) => format!("After the update of {app}"),
            None => "After an ExApp update".to_owned(),
        },
        (t, by) => format!("{t}, by {by}"),
    }
}

/// Why a finished run freed other than it predicted. PURE.
fn difference(r: &RunView) -> Option<String> {
    if !r.finished() || r.bytes_freed == r.bytes_predicted {
        return None;
    }
    let already = r
        .jobs
        .iter()
        .filter(|j| j.status == "succeeded" && j.error.as_deref() == Some("already removed"))
        .count();
    let mut why = Vec::new();
    if already > 0 {
        why.push(format!(
            "{} already removed by someone else",
            format::count(already, "image was", "images were")
        ));
    }
    for (n, what) in [
        (
            r.counts.skipped,
            "skipped (in use, or changed since the preview)",
        ),
        (r.counts.failed, "failed"),
        (r.counts.cancelled, "cancelled"),
    ] {
        if n > 0 {
            why.push(format!("{} {what}", format::count(n, "image", "images")));
        }
    }
    if why.is_empty() {
        why.push(if r.bytes_freed > r.bytes_predicted {
            "untagged parent images no other image needed went too".to_owned()
        } else {
            "some layers are now shared with images that arrived since the preview".to_owned()
        });
    }
    Some(format!(
        "Freed {} of the {} predicted: {}.",
        format::bytes(u64::try_from(r.bytes_freed).unwrap_or(0)),
        format::bytes(u64::try_from(r.bytes_predicted).unwrap_or(0)),
        why.join("; ")
    ))
}

/// Daemons the run's queued jobs wait on: their last attempt got no answer.
fn waiting_on(r: &RunView, now: i64) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for j in r
        .jobs
        .iter()
        .filter(|j| j.status == "queued" && j.attempts > 0 && j.error.is_some())
    {
        if !seen.insert(j.daemon.as_str()) {
            continue;
        }
        let since = j
            .started_at
            .as_deref()
            .and_then(crate::clock::parse_rfc3339)
            .map(|at| format!(" for {}", format::duration(now - at)))
            .unwrap_or_default();
        out.push(format!(
            "{}: no answer{since}, retrying ({}; {})",
            j.daemon,
            format::count(
                usize::try_from(j.attempts).unwrap_or(0),
                "attempt",
                "attempts"
            ),
            j.error.as_deref().unwrap_or_default()
        ));
    }
    out
}

impl PrintedRun {
    pub fn new(r: &RunView, now: i64) -> Self {
        let bytes = |n: i64| format::bytes(u64::try_from(n).unwrap_or(0));
        let created = crate::clock::parse_rfc3339(&r.created_at).unwrap_or(now);
        let finished_at = r.finished().then(|| {
            r.jobs
                .iter()
                .filter_map(|j| {
                    j.finished_at
                        .as_deref()
                        .and_then(crate::clock::parse_rfc3339)
                })
                .max()
                .unwrap_or(created)
        });
        let done = r.counts.succeeded + r.counts.skipped + r.counts.failed + r.counts.cancelled;
        let mut counts = Vec::new();
        for (n, one, many) in [
            (r.counts.succeeded, "removed", "removed"),
            (r.counts.skipped, "skipped", "skipped"),
            (r.counts.failed, "failed", "failed"),
            (r.counts.cancelled, "cancelled", "cancelled"),
            (r.counts.queued + r.counts.running, "to go", "to go"),
        ] {
            if n > 0 {
                counts.push(format::count(n, one, many));
            }
        }
        Self {
            id: r.id,
            origin: origin(&r.trigger, &r.requested_by),
            scope: r.daemon.clone().unwrap_or_else(|| "all daemons".into()),
            created: format::When::at(created, now),
            status: r.status,
            predicted: bytes(r.bytes_predicted),
            freed: bytes(r.bytes_freed),
            predicted_bytes: r.bytes_predicted.max(0),
            freed_bytes: r.bytes_freed.clamp(0, r.bytes_predicted.max(r.bytes_freed)),
            done,
            total: r.jobs.len(),
            counts: if counts.is_empty() {
                "no image".to_owned()
            } else {
                counts.join(" · ")
            },
            duration: format::duration(finished_at.unwrap_or(now) - created),
            finished: finished_at.map(|at| format::When::at(at, now)),
            difference: difference(r),
            waiting_on: waiting_on(r, now),
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
                    reference: format::Reference::new(
                        j.image_refs.first().map_or("<none>", String::as_str),
                    ),
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

/// How the Runs page may be sorted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RunSort {
    Run,
    Freed,
    Predicted,
    Status,
}

impl RunSort {
    const ALL: [(RunSort, &'static str); 4] = [
        (RunSort::Run, "run"),
        (RunSort::Status, "status"),
        (RunSort::Predicted, "predicted"),
        (RunSort::Freed, "freed"),
    ];
}

#[derive(Debug, Default, Deserialize)]
struct RunsQuery {
    sort: Option<String>,
    dir: Option<String>,
}

/// A sortable header of the Runs page.
pub struct RunColumn {
    pub key: &'static str,
    pub href: String,
    pub aria_sort: &'static str,
}

#[derive(Template)]
#[template(path = "runs.html")]
struct RunsPage {
    layout: Layout,
    runs: Vec<PrintedRun>,
    chart: charts::RunsChart,
    columns: Vec<RunColumn>,
    errors: FieldErrors,
}

impl RunsPage {
    fn column(&self, key: &str) -> Option<&RunColumn> {
        self.columns.iter().find(|c| c.key == key)
    }
}

async fn runs_page(
    app: web::Data<Janitor>,
    session: CurrentSession,
    query: web::Query<RunsQuery>,
) -> Result<HttpResponse, PageError> {
    let mut errors = FieldErrors::new();
    let sort = match query.sort.as_deref().filter(|s| !s.is_empty()) {
        None => RunSort::Run,
        Some(raw) => RunSort::ALL
            .iter()
            .find(|(_, n)| *n == raw)
            .map(|(k, _)| *k)
            .unwrap_or_else(|| {
                errors.add("sort", "run, status, predicted or freed");
                RunSort::Run
            }),
    };
    let descending = match query.dir.as_deref() {
        None | Some("") | Some("desc") => true,
        Some("asc") => false,
        Some(_) => {
            errors.add("dir", "asc or desc");
            true
        }
    };
    let runs = jobs::run_views(&app.store, 100)
        .await
        .map_err(PageError::internal)?;
    let now = app.clock().now_unix();
    // The chart: oldest first, left to right, whatever the table's order.
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
    let mut printed: Vec<PrintedRun> = runs.iter().map(|r| PrintedRun::new(r, now)).collect();
    printed.sort_by(|a, b| {
        let order = match sort {
            RunSort::Run => a.id.cmp(&b.id),
            RunSort::Freed => a.freed_bytes.cmp(&b.freed_bytes),
            RunSort::Predicted => a.predicted_bytes.cmp(&b.predicted_bytes),
            RunSort::Status => a.status.cmp(b.status),
        };
        let order = if descending { order.reverse() } else { order };
        order.then_with(|| b.id.cmp(&a.id))
    });
    let columns = RunSort::ALL
        .iter()
        .map(|(key, name)| {
            let active = *key == sort;
            RunColumn {
                key: name,
                href: format!(
                    "/runs?sort={name}&dir={}",
                    if active && descending { "asc" } else { "desc" }
                ),
                aria_sort: match (active, descending) {
                    (false, _) => "none",
                    (true, true) => "descending",
                    (true, false) => "ascending",
                },
            }
        })
        .collect();
    let status = if errors.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::UNPROCESSABLE_ENTITY
    };
    let page = RunsPage {
        layout: Layout::page("runs", &session),
        runs: printed,
        chart: charts::freed_per_run(&points),
        columns,
        errors,
    };
    Ok(html(status, &page))
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
    csrf: String,
}

async fn load_run(app: &Janitor, id: &str) -> Result<PrintedRun, PageError> {
    let not_found = || PageError::NotFound(format!("There is no run {id}."));
    let run_id: i64 = id.parse().map_err(|_| not_found())?;
    let run = jobs::run_view(&app.store, run_id)
        .await
        .map_err(PageError::internal)?
        .ok_or_else(not_found)?;
    Ok(PrintedRun::new(&run, app.clock().now_unix()))
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

async fn run_live(
    app: web::Data<Janitor>,
    session: CurrentSession,
    id: web::Path<String>,
) -> Result<RunLive, PageError> {
    Ok(RunLive {
        r: load_run(&app, &id).await?,
        csrf: session.0.csrf_token.clone(),
    })
}

/// "Cancel" on a queued job of a run's page: through the same path as the
/// API's cancel; back to the run's page.
async fn cancel_job(
    app: web::Data<Janitor>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, PageError> {
    let (run, job) = path.into_inner();
    let not_found = || PageError::NotFound(format!("There is no job {job} in run {run}."));
    let run_id: i64 = run.parse().map_err(|_| not_found())?;
    let job_id: i64 = job.parse().map_err(|_| not_found())?;
    let view = jobs::run_view(&app.store, run_id)
        .await
        .map_err(PageError::internal)?
        .ok_or_else(not_found)?;
    if !view.jobs.iter().any(|j| j.id == job_id) {
        return Err(not_found());
    }
    match jobs::cancel_job(&app.store, job_id).await {
        // A job that started meanwhile is no longer queued: the run's page
        // shows what it became.
        Ok(_) | Err(jobs::CancelError::NotQueued { .. }) => {}
        Err(jobs::CancelError::NotFound(_)) => return Err(not_found()),
        Err(e) => return Err(PageError::internal(e)),
    }
    Ok(HttpResponse::SeeOther()
        .insert_header(("Location", format!("/runs/{run_id}")))
        .finish())
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

    fn run(status_of_jobs: &[(&str, Option<&str>)], predicted: i64, freed: i64) -> RunView {
        let jobs: Vec<jobs::JobView> = status_of_jobs
            .iter()
            .enumerate()
            .map(|(i, (status, error))| jobs::JobView {
                id: i as i64,
                daemon: "gpu-host".into(),
                image_id: format!("sha256:{}", "ab".repeat(32)),
                image_refs: vec![],
                owner: None,
                status: (*status).into(),
                attempts: 1,
                error: error.map(str::to_owned),
                bytes_freed: None,
                started_at: Some(crate::clock::rfc3339(1_800_000_000)),
                finished_at: None,
            })
            .collect();
        let mut counts = jobs::JobCounts::default();
        for j in &jobs {
            match j.status.as_str() {
                "queued" => counts.queued += 1,
                "succeeded" => counts.succeeded += 1,
                "skipped" => counts.skipped += 1,
                _ => counts.failed += 1,
            }
        }
        RunView {
            id: 1,
            trigger: "manual".into(),
            status: if counts.queued > 0 {
                "running"
            } else {
                "finished"
            },
            requested_by: "web".into(),
            daemon: None,
            min_age_hours: 24,
            created_at: crate::clock::rfc3339(1_800_000_000),
            bytes_predicted: predicted,
            bytes_freed: freed,
            counts,
            approved: None,
            left_out: vec![],
            jobs,
        }
    }

    #[test]
    fn a_run_that_freed_less_says_which_images_made_the_difference() {
        let r = run(
            &[
                ("succeeded", Some("already removed")),
                ("succeeded", None),
                ("skipped", Some("in use")),
            ],
            3_000_000,
            1_000_000,
        );
        assert_eq!(
            difference(&r).unwrap(),
            "Freed 1.00 MB of the 3.00 MB predicted: 1 image was already removed by someone else; 1 image skipped (in use, or changed since the preview)."
        );
        assert_eq!(difference(&run(&[("succeeded", None)], 5, 5)), None);
        assert_eq!(
            difference(&run(&[("queued", None)], 5, 0)),
            None,
            "only a finished run is explained"
        );
    }

    #[test]
    fn a_daemon_that_does_not_answer_is_named_with_how_long_and_why() {
        let r = run(&[("queued", Some("connection refused: is the Docker daemon running, and listening at this address?"))], 5, 0);
        assert_eq!(
            waiting_on(&r, 1_800_000_015),
            vec!["gpu-host: no answer for 15 s, retrying (1 attempt; connection refused: is the Docker daemon running, and listening at this address?)".to_owned()]
        );
    }

    #[test]
    fn who_started_a_run_reads_as_words() {
        assert_eq!(origin("manual", "web"), "Started from the web page");
        assert_eq!(
            origin("update", "update of llm2"),
            "After the update of llm2"
        );
        assert_eq!(origin("schedule", "schedule"), "Scheduled");
    }
}
