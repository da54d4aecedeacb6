//! The JSON API under `/api/v1`. Shapes are DESIGN.md's public contract.

use actix_web::error::JsonPayloadError;
use actix_web::{delete, get, patch, post, web, HttpRequest, HttpResponse};
use utoipa::ToSchema;
use utoipa_actix_web::service_config::ServiceConfig;

use super::errors::{ApiError, ApiErrorBody};
use super::json_body::{self, Kind};
use super::shared_body::shared_body;
use super::BODY_LIMIT;
use crate::daemons::{self, DaemonSummary};
use crate::domain::SettingsChange;
use crate::domain::{FieldErrors, NewDaemonInput, Settings};
use crate::janitor::Janitor;
use crate::jobs::{
    self, CancelError, CleanupError, CleanupRequest, CleanupRequestInput, JobView, Preview,
    RunView, Trigger,
};
use crate::report::{ImageFilter, ImageFilterInput, ImageObject, PageInput, PageRequest};
use crate::scan;
use crate::settings::{self, SettingsError, SettingsView};

/// Every endpoint, registered through utoipa's `ServiceConfig`: registering
/// a handler is what puts it into the OpenAPI document (`super::openapi`),
/// so the document and the routes cannot differ.
pub fn routes(cfg: &mut ServiceConfig) {
    cfg.service(super::openapi::document_json)
        .service(health)
        .service(list_daemons)
        .service(add_daemon)
        .service(remove_daemon)
        .service(change_exapps)
        .service(scan_now)
        .service(images)
        .service(get_settings)
        .service(patch_settings)
        .service(cleanup_preview)
        .service(cleanup_start)
        .service(cleanup_runs)
        .service(cleanup_run)
        .service(cleanup_cancel)
        .configure(super::nextcloud_api::routes)
        .default_service(web::to(|| async {
            Err::<HttpResponse, _>(ApiError::NotFound("no such API endpoint".into()))
        }));
}

/// Malformed JSON, a wrong type, an unknown field or an oversized body: a
/// JSON error with a clear sentence, never a change.
pub fn json_config() -> web::JsonConfig {
    web::JsonConfig::default()
        .limit(BODY_LIMIT)
        .error_handler(|err, _req| {
            let api = match &err {
                JsonPayloadError::Overflow { .. }
                | JsonPayloadError::OverflowKnownLength { .. } => {
                    ApiError::TooLarge { limit: BODY_LIMIT }
                }
                JsonPayloadError::ContentType => ApiError::BadRequest(
                    "expected a JSON body (Content-Type: application/json)".into(),
                ),
                JsonPayloadError::Deserialize(e) => {
                    ApiError::BadRequest(format!("invalid JSON body: {e}"))
                }
                other => ApiError::BadRequest(format!("cannot read the request body: {other}")),
            };
            api.into()
        })
}

/// `GET /api/v1/health`'s answer.
#[derive(serde::Serialize, ToSchema)]
pub struct Health {
    /// `ok`, or `database unavailable`.
    status: &'static str,
    /// Cargo's version, e.g. `0.1.0`.
    version: &'static str,
    /// The git commit the server was built from (12 hex digits), or null
    /// when it was built outside a checkout.
    commit: Option<&'static str>,
}

/// Whether the server and its database answer. Needs no token.
#[utoipa::path(
    tag = "server",
    security(()),
    responses(
        (status = 200, description = "The server and its database answer", body = Health),
        (status = 503, description = "The database does not answer", body = Health),
    )
)]
#[get("/health")]
async fn health(app: web::Data<Janitor>) -> HttpResponse {
    let db_ok = sqlx::query("SELECT 1")
        .execute(app.store.pool())
        .await
        .is_ok();
    let body = Health {
        status: if db_ok { "ok" } else { "database unavailable" },
        version: crate::version::NUMBER,
        commit: crate::version::COMMIT,
    };
    if db_ok {
        HttpResponse::Ok().json(body)
    } else {
        HttpResponse::ServiceUnavailable().json(body)
    }
}

/// Every daemon, checked now.
#[utoipa::path(
    tag = "daemons",
    responses((status = 200, description = "The daemons, each contacted now", body = Vec<DaemonSummary>))
)]
#[get("/daemons")]
async fn list_daemons(app: web::Data<Janitor>) -> Result<HttpResponse, ApiError> {
    let checked = daemons::check_all(&app.store, app.daemon_timeout).await?;
    let body: Vec<DaemonSummary> = checked.iter().map(DaemonSummary::from).collect();
    Ok(HttpResponse::Ok().json(body))
}

/// Adds a daemon, then contacts it once.
#[utoipa::path(
    tag = "daemons",
    request_body = NewDaemonInput,
    responses(
        (status = 201, description = "Added (reachable or not: see `reachable`)", body = DaemonSummary),
        (status = 400, description = "Not a JSON object, or a duplicate key", body = ApiErrorBody),
        (status = 422, description = "A field is invalid, or the name is taken", body = ApiErrorBody),
    )
)]
#[post("/daemons")]
async fn add_daemon(app: web::Data<Janitor>, body: web::Bytes) -> Result<HttpResponse, ApiError> {
    let body = json_body::object(&body, false)?;
    json_body::check_types(
        &body,
        &[
            ("name", Kind::Text),
            ("endpoint", Kind::Text),
            ("tls_ca", Kind::Text),
            ("tls_cert", Kind::Text),
            ("tls_key", Kind::Text),
            ("harp_key", Kind::Text),
            ("harp_docker_port", Kind::Integer),
            ("exapps", Kind::TextList),
        ],
        &[
            "tls_ca",
            "tls_cert",
            "tls_key",
            "harp_key",
            "harp_docker_port",
            "exapps",
        ],
    )
    .map_err(ApiError::Invalid)?;
    let input: NewDaemonInput = serde_json::from_value(serde_json::Value::Object(body))
        .map_err(|e| ApiError::BadRequest(format!("invalid JSON body: {e}")))?;
    let added = daemons::add(&app.store, &input).await?;
    let checked = daemons::check(&app.store, added, app.daemon_timeout).await;
    Ok(HttpResponse::Created().json(DaemonSummary::from(&checked)))
}

/// Removes a daemon; its runs and jobs stay in the history.
#[utoipa::path(
    tag = "daemons",
    params(("name" = String, Path, description = "The daemon's name")),
    responses(
        (status = 204, description = "Removed"),
        (status = 404, description = "No daemon has this name", body = ApiErrorBody),
        (status = 409, description = "A cleanup job of it is running", body = ApiErrorBody),
    )
)]
#[delete("/daemons/{name}")]
async fn remove_daemon(
    app: web::Data<Janitor>,
    name: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    daemons::remove(&app.store, &name).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// `POST /api/v1/daemons/{name}/exapps`: ExApps to look for on a HaRP daemon.
#[derive(serde::Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ExappsChange {
    /// ExApp IDs to look for too.
    #[serde(default)]
    add: Vec<String>,
    /// ExApp IDs to stop looking for.
    #[serde(default)]
    remove: Vec<String>,
}

/// Changes which ExApps the janitor looks for on a HaRP daemon (HaRP lists
/// nothing, so it cannot find them itself).
#[utoipa::path(
    tag = "daemons",
    params(("name" = String, Path, description = "The HaRP daemon's name")),
    request_body = ExappsChange,
    responses(
        (status = 200, description = "The daemon with its ExApps", body = DaemonSummary),
        (status = 400, description = "Not a JSON object, or a duplicate key", body = ApiErrorBody),
        (status = 404, description = "No daemon has this name", body = ApiErrorBody),
        (status = 422, description = "An ExApp ID is invalid, or the daemon is not a HaRP daemon", body = ApiErrorBody),
    )
)]
#[post("/daemons/{name}/exapps")]
async fn change_exapps(
    app: web::Data<Janitor>,
    name: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let body = json_body::object(&body, true)?;
    json_body::check_types(
        &body,
        &[("add", Kind::TextList), ("remove", Kind::TextList)],
        &[],
    )
    .map_err(ApiError::Invalid)?;
    let change: ExappsChange = serde_json::from_value(serde_json::Value::Object(body))
        .map_err(|e| ApiError::BadRequest(format!("invalid JSON body: {e}")))?;
    let daemon = daemons::change_exapps(&app.store, &name, &change.add, &change.remove).await?;
    Ok(HttpResponse::Ok().json(DaemonSummary::from(&daemon)))
}

/// One daemon's outcome of `POST /api/v1/scan`.
#[derive(serde::Serialize, ToSchema)]
struct ScanSummary {
    daemon: String,
    ok: bool,
    error: Option<String>,
    images: usize,
    total_bytes: u64,
    /// What the admin should know of this daemon's scan.
    notes: Vec<String>,
}

/// Scans every daemon now (a scan already running is joined, not repeated).
#[utoipa::path(
    tag = "images",
    responses((status = 200, description = "One entry per daemon", body = Vec<ScanSummary>))
)]
#[post("/scan")]
async fn scan_now(app: web::Data<Janitor>) -> Result<HttpResponse, ApiError> {
    let results = scan::scan_all(&app.store, &app.scan_options().await)
        .await
        .map_err(|e| ApiError::Internal(Box::new(e)))?;
    let body: Vec<ScanSummary> = results
        .iter()
        .map(|(daemon, result)| match result {
            Ok(scan) => ScanSummary {
                daemon: daemon.name.to_string(),
                ok: true,
                error: None,
                images: scan.images,
                total_bytes: scan.totals.total_bytes,
                notes: scan.notes.clone(),
            },
            Err(e) => ScanSummary {
                daemon: daemon.name.to_string(),
                ok: false,
                error: Some(e.to_string()),
                images: 0,
                total_bytes: 0,
                notes: Vec::new(),
            },
        })
        .collect();
    Ok(HttpResponse::Ok().json(body))
}

/// The images of the last scan of each daemon, filtered, one page at a time
/// in the order of daemon name then image ID. The `Link` header (`rel="next"`)
/// and `X-Next-Cursor` say how to get the next page; the last page has neither.
#[utoipa::path(
    tag = "images",
    params(ImageFilterInput, PageInput),
    responses(
        (
            status = 200,
            description = "A page of the matching images, ordered by daemon name then image ID",
            body = Vec<ImageObject>,
            headers(
                ("Link" = String, description = "`</api/v1/images?…&cursor=…>; rel=\"next\"`: the next page, \
                    with the request's other query parameters. Absent on the last page."),
                ("X-Next-Cursor" = String, description = "The `cursor` of the next page. Absent on the last page."),
            ),
        ),
        (status = 400, description = "The query string cannot be read", body = ApiErrorBody),
        (status = 422, description = "A filter value, the limit or the cursor is invalid", body = ApiErrorBody),
    )
)]
#[get("/images")]
async fn images(app: web::Data<Janitor>, request: HttpRequest) -> Result<HttpResponse, ApiError> {
    // Read here rather than by extractors, whose refusal (a parameter given
    // twice, say) would be actix's plain text instead of the API's JSON.
    let unreadable = |e: serde_urlencoded::de::Error| {
        ApiError::BadRequest(format!("cannot read the query string: {e}"))
    };
    let query: ImageFilterInput =
        serde_urlencoded::from_str(request.query_string()).map_err(unreadable)?;
    let paging: PageInput =
        serde_urlencoded::from_str(request.query_string()).map_err(unreadable)?;
    let (filter, paging) = match (ImageFilter::parse(&query), PageRequest::parse(&paging)) {
        (Ok(filter), Ok(paging)) => (filter, paging),
        (filter, paging) => {
            let mut errors = FieldErrors::new();
            for found in [filter.err(), paging.err()].into_iter().flatten() {
                for (field, message) in found.iter() {
                    errors.add(field, message);
                }
            }
            return Err(ApiError::Invalid(errors));
        }
    };
    let report = app
        .report()
        .await
        .map_err(|e| ApiError::Internal(Box::new(e)))?;
    let page = report.page(&filter, &paging);
    let mut response = HttpResponse::Ok();
    response.content_type(actix_web::http::header::ContentType::json());
    if let Some(next) = &page.next {
        let cursor = next.encode();
        response.insert_header((
            actix_web::http::header::LINK,
            next_link(request.path(), request.query_string(), &cursor),
        ));
        response.insert_header(("X-Next-Cursor", cursor));
    }
    // A shared first page is sent in slices of it: actix copies a body
    // chunk into the connection's write buffer, so one 1 MB chunk would be
    // copied once per client in flight.
    Ok(response.body(shared_body(page.json)))
}

/// `<path?query>; rel="next"`: the request's query parameters but `cursor`,
/// in their order, then the next page's cursor.
fn next_link(path: &str, query: &str, cursor: &str) -> String {
    let mut pairs: Vec<(String, String)> = serde_urlencoded::from_str(query).unwrap_or_default();
    pairs.retain(|(name, _)| name != "cursor");
    pairs.push(("cursor".into(), cursor.into()));
    let query = serde_urlencoded::to_string(&pairs).expect("text pairs encode");
    format!("<{path}?{query}>; rel=\"next\"")
}

/// `{"daemon"?, "min_age_hours"?, "images"?}`; an empty body means `{}`.
fn cleanup_request(body: &[u8]) -> Result<CleanupRequest, ApiError> {
    let body = json_body::object(body, true)?;
    json_body::check_types(
        &body,
        &[
            ("daemon", Kind::Text),
            ("min_age_hours", Kind::Integer),
            ("images", Kind::TextList),
            ("owner", Kind::Text),
        ],
        &["daemon", "min_age_hours", "images", "owner"],
    )
    .map_err(ApiError::Invalid)?;
    let input: CleanupRequestInput = serde_json::from_value(serde_json::Value::Object(body))
        .map_err(|e| ApiError::BadRequest(format!("invalid JSON body: {e}")))?;
    CleanupRequest::parse(&input).map_err(ApiError::Invalid)
}

fn cleanup_error(e: CleanupError) -> ApiError {
    match e {
        CleanupError::UnknownDaemon(_) => {
            ApiError::Invalid(FieldErrors::single("daemon", e.to_string()))
        }
        CleanupError::DaemonDown { .. } => ApiError::BadGateway(e.to_string()),
        CleanupError::SettingsUnreadable => ApiError::Unavailable(e.to_string()),
        other => ApiError::Internal(Box::new(other)),
    }
}

/// What a cleanup would remove now, and what that frees. Removes nothing.
#[utoipa::path(
    tag = "cleanup",
    request_body(content = CleanupRequestInput, description = "Optional: no body is `{}`, every daemon"),
    responses(
        (status = 200, description = "The images a run would remove now", body = Preview),
        (status = 400, description = "Not a JSON object, or a duplicate key", body = ApiErrorBody),
        (status = 422, description = "A field is invalid", body = ApiErrorBody),
        (status = 502, description = "The one daemon asked for cannot be scanned", body = ApiErrorBody),
        (status = 503, description = "The settings cannot be read: nothing is removed", body = ApiErrorBody),
    )
)]
#[post("/cleanup/preview")]
async fn cleanup_preview(
    app: web::Data<Janitor>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let request = cleanup_request(&body)?;
    let preview = jobs::preview(&app, &request, app.policy().await)
        .await
        .map_err(cleanup_error)?;
    Ok(HttpResponse::Ok().json(preview))
}

/// Queues a cleanup run: with `images`, only those of them still removable.
#[utoipa::path(
    tag = "cleanup",
    request_body(content = CleanupRequestInput, description = "Optional: no body is `{}`, everything removable on every daemon"),
    responses(
        (status = 202, description = "The run, queued", body = RunView),
        (status = 400, description = "Not a JSON object, or a duplicate key", body = ApiErrorBody),
        (status = 422, description = "A field is invalid", body = ApiErrorBody),
        (status = 502, description = "The one daemon asked for cannot be scanned", body = ApiErrorBody),
        (status = 503, description = "The settings cannot be read: nothing is removed", body = ApiErrorBody),
    )
)]
#[post("/cleanup/runs")]
async fn cleanup_start(
    app: web::Data<Janitor>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let request = cleanup_request(&body)?;
    let run = jobs::start_run(&app, Trigger::Manual, "api", &request, app.policy().await)
        .await
        .map_err(cleanup_error)?;
    Ok(HttpResponse::Accepted().json(run))
}

/// The last 50 runs, newest first.
#[utoipa::path(
    tag = "cleanup",
    responses((status = 200, description = "The runs with their jobs", body = Vec<RunView>))
)]
#[get("/cleanup/runs")]
async fn cleanup_runs(app: web::Data<Janitor>) -> Result<HttpResponse, ApiError> {
    let runs = jobs::run_views(&app.store, 50)
        .await
        .map_err(|e| ApiError::Internal(Box::new(e)))?;
    Ok(HttpResponse::Ok().json(runs))
}

/// One run with its jobs.
#[utoipa::path(
    tag = "cleanup",
    params(("id" = String, Path, description = "The run's number")),
    responses(
        (status = 200, description = "The run", body = RunView),
        (status = 404, description = "There is no such run", body = ApiErrorBody),
    )
)]
#[get("/cleanup/runs/{id}")]
async fn cleanup_run(
    app: web::Data<Janitor>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let not_found = || ApiError::NotFound(format!("there is no run {id}"));
    let run_id: i64 = id.parse().map_err(|_| not_found())?;
    match jobs::run_view(&app.store, run_id)
        .await
        .map_err(|e| ApiError::Internal(Box::new(e)))?
    {
        Some(run) => Ok(HttpResponse::Ok().json(run)),
        None => Err(not_found()),
    }
}

/// Cancels a job that has not started.
#[utoipa::path(
    tag = "cleanup",
    params(("id" = String, Path, description = "The job's number")),
    responses(
        (status = 200, description = "The job, cancelled", body = JobView),
        (status = 404, description = "There is no such job", body = ApiErrorBody),
        (status = 409, description = "The job is running or has ended", body = ApiErrorBody),
    )
)]
#[post("/cleanup/jobs/{id}/cancel")]
async fn cleanup_cancel(
    app: web::Data<Janitor>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let job_id: i64 = id
        .parse()
        .map_err(|_| ApiError::NotFound(format!("there is no job {id}")))?;
    match jobs::cancel_job(&app.store, job_id).await {
        Ok(job) => Ok(HttpResponse::Ok().json(job)),
        Err(e @ CancelError::NotFound(_)) => Err(ApiError::NotFound(e.to_string())),
        Err(e @ CancelError::NotQueued { .. }) => Err(ApiError::Conflict(e.to_string())),
        Err(CancelError::Store(e)) => Err(ApiError::Internal(Box::new(e))),
    }
}

/// The settings and the schedule.
#[utoipa::path(
    tag = "settings",
    responses(
        (status = 200, description = "The settings", body = SettingsView),
        (status = 503, description = "The stored settings cannot be read", body = ApiErrorBody),
    )
)]
#[get("/settings")]
async fn get_settings(app: web::Data<Janitor>) -> Result<HttpResponse, ApiError> {
    let view = settings::load(&app.store).await.map_err(settings_error)?;
    Ok(HttpResponse::Ok().json(view))
}

/// Any subset of the settings; one bad value and nothing changes (422 with
/// a message per field).
#[utoipa::path(
    tag = "settings",
    request_body = SettingsChange,
    responses(
        (status = 200, description = "The settings after the change", body = SettingsView),
        (status = 400, description = "Not a JSON object, or a duplicate key", body = ApiErrorBody),
        (status = 409, description = "The settings changed since `version`", body = ApiErrorBody),
        (status = 422, description = "A value is invalid: nothing changed", body = ApiErrorBody),
        (status = 503, description = "The stored settings cannot be read", body = ApiErrorBody),
    )
)]
#[patch("/settings")]
async fn patch_settings(
    app: web::Data<Janitor>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let mut change = json_body::object(&body, false)?;
    // `"version": N` applies the change only to that version (409 otherwise).
    let seen = match change.remove("version") {
        None => None,
        Some(v) => Some(v.as_i64().filter(|v| *v >= 0).ok_or_else(|| {
            ApiError::Invalid(FieldErrors::single(
                "version",
                "the settings version the change was made from (a whole number)",
            ))
        })?),
    };
    // Numbers as numbers: the form's leniency (text) is not the API's. A
    // type error is reported with every other invalid value at once.
    if let Err(mut errors) = Settings::check_json_types(&change) {
        if let Err(others) = Settings::default().apply(&change) {
            for (field, message) in others.iter() {
                errors.add(field, message);
            }
        }
        return Err(ApiError::Invalid(errors));
    }
    match app.change_settings(&change, seen).await {
        Ok(view) => Ok(HttpResponse::Ok().json(view)),
        Err(e) => Err(settings_error(e)),
    }
}

fn settings_error(e: SettingsError) -> ApiError {
    match e {
        SettingsError::Invalid(fields) => ApiError::Invalid(fields),
        SettingsError::Unreadable(_) => ApiError::Unavailable(e.to_string()),
        SettingsError::Conflict { .. } => ApiError::Conflict(e.to_string()),
        SettingsError::Store(e) => ApiError::Internal(Box::new(e)),
    }
}
