//! The JSON API under `/api/v1`. Shapes are DESIGN.md's public contract.

use actix_web::error::JsonPayloadError;
use actix_web::{web, HttpResponse};
use serde_json::json;

use super::errors::ApiError;
use super::BODY_LIMIT;
use crate::app::App;
use crate::daemons::{self, DaemonSummary};
use crate::domain::NewDaemonInput;
use crate::report::{self, ImageFilter, ImageFilterInput};
use crate::scan;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/health", web::get().to(health))
        .route("/daemons", web::get().to(list_daemons))
        .route("/daemons", web::post().to(add_daemon))
        .route("/daemons/{name}", web::delete().to(remove_daemon))
        .route("/scan", web::post().to(scan))
        .route("/images", web::get().to(images))
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

async fn health(app: web::Data<App>) -> HttpResponse {
    let db_ok = sqlx::query("SELECT 1")
        .execute(app.store.pool())
        .await
        .is_ok();
    let body = json!({
        "status": if db_ok { "ok" } else { "database unavailable" },
        "version": env!("CARGO_PKG_VERSION"),
    });
    if db_ok {
        HttpResponse::Ok().json(body)
    } else {
        HttpResponse::ServiceUnavailable().json(body)
    }
}

async fn list_daemons(app: web::Data<App>) -> Result<HttpResponse, ApiError> {
    let checked = daemons::check_all(&app.store, app.daemon_timeout).await?;
    let body: Vec<DaemonSummary> = checked.iter().map(DaemonSummary::from).collect();
    Ok(HttpResponse::Ok().json(body))
}

async fn add_daemon(
    app: web::Data<App>,
    input: web::Json<NewDaemonInput>,
) -> Result<HttpResponse, ApiError> {
    let added = daemons::add(&app.store, &input).await?;
    let checked = daemons::check(&app.store, added, app.daemon_timeout).await;
    Ok(HttpResponse::Created().json(DaemonSummary::from(&checked)))
}

async fn remove_daemon(
    app: web::Data<App>,
    name: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    daemons::remove(&app.store, &name).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// One daemon's outcome of `POST /api/v1/scan`.
#[derive(serde::Serialize)]
struct ScanSummary {
    daemon: String,
    ok: bool,
    error: Option<String>,
    images: usize,
    total_bytes: u64,
}

async fn scan(app: web::Data<App>) -> Result<HttpResponse, ApiError> {
    let results = scan::scan_all(&app.store, &app.scan_options())
        .await
        .map_err(|e| ApiError::Internal(Box::new(e)))?;
    let body: Vec<ScanSummary> = results
        .iter()
        .map(|(daemon, result)| match result {
            Ok(scan) => ScanSummary {
                daemon: daemon.name.to_string(),
                ok: true,
                error: None,
                images: scan.images.len(),
                total_bytes: scan.totals.total_bytes,
            },
            Err(e) => ScanSummary {
                daemon: daemon.name.to_string(),
                ok: false,
                error: Some(e.to_string()),
                images: 0,
                total_bytes: 0,
            },
        })
        .collect();
    Ok(HttpResponse::Ok().json(body))
}

async fn images(
    app: web::Data<App>,
    query: web::Query<ImageFilterInput>,
) -> Result<HttpResponse, ApiError> {
    let filter = ImageFilter::parse(&query).map_err(ApiError::Invalid)?;
    let daemons = daemons::list(&app.store).await?;
    let scans = app
        .inventory
        .current(&app.store)
        .await
        .map_err(|e| ApiError::Internal(Box::new(e)))?;
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    Ok(HttpResponse::Ok().json(report::image_objects(
        &daemons,
        &scans,
        &app.policy(),
        &filter,
        now,
    )))
}
