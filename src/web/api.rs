//! The JSON API under `/api/v1`. Shapes are DESIGN.md's public contract.

use actix_web::error::JsonPayloadError;
use actix_web::{web, HttpResponse};
use serde_json::json;

use super::errors::ApiError;
use super::BODY_LIMIT;
use crate::app::App;
use crate::daemons::{self, DaemonSummary};
use crate::domain::NewDaemonInput;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/health", web::get().to(health))
        .route("/daemons", web::get().to(list_daemons))
        .route("/daemons", web::post().to(add_daemon))
        .route("/daemons/{name}", web::delete().to(remove_daemon))
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
