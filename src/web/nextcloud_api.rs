//! `/api/v1/nextcloud`: the Nextcloud connection, AppAPI's lists and the
//! daemon proposals. The app password goes in (PUT) and never comes out.

use actix_web::{delete, get, post, put, web, HttpResponse};
use utoipa_actix_web::service_config::ServiceConfig;

use super::errors::{ApiError, ApiErrorBody};
use super::json_body::{self, Kind};
use crate::janitor::Janitor;
use crate::nextcloud::Versions;
use crate::nextcloud_link::{self as link, AcceptInput, ConnectInput, LinkError, NextcloudView};

pub fn routes(cfg: &mut ServiceConfig) {
    cfg.service(get_nextcloud)
        .service(connect)
        .service(disconnect)
        .service(test)
        .service(refresh)
        .service(accept)
        .service(refuse);
}

impl From<LinkError> for ApiError {
    fn from(e: LinkError) -> Self {
        match e {
            LinkError::Invalid(fields) => ApiError::Invalid(fields),
            LinkError::NotConnected | LinkError::NoSuchDaemon(_) => {
                ApiError::NotFound(e.to_string())
            }
            LinkError::NotManaged(_) | LinkError::AlreadyDecided(_) => {
                ApiError::Conflict(e.to_string())
            }
            // Nextcloud's answer (or its silence), in words: a gateway error.
            LinkError::Nextcloud(n) => ApiError::BadGateway(n.to_string()),
            LinkError::Daemon(d) => d.into(),
            LinkError::Store(s) => ApiError::Internal(Box::new(s)),
        }
    }
}

/// The connection (never its password), AppAPI's ExApps and the proposals,
/// as of the last time Nextcloud answered.
#[utoipa::path(
    tag = "nextcloud",
    responses((status = 200, description = "The connection; `connected` is false when there is none", body = NextcloudView))
)]
#[get("/nextcloud")]
async fn get_nextcloud(app: web::Data<Janitor>) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(link::status(&app.store).await?))
}

/// Tests the URL, user and app password, and only when they work stores
/// them (replacing any connection) and reads AppAPI's lists.
#[utoipa::path(
    tag = "nextcloud",
    request_body = ConnectInput,
    responses(
        (status = 200, description = "Connected", body = NextcloudView),
        (status = 400, description = "Not a JSON object, or a duplicate key", body = ApiErrorBody),
        (status = 422, description = "A field is invalid", body = ApiErrorBody),
        (status = 502, description = "Nextcloud refused or did not answer; nothing changed", body = ApiErrorBody),
    )
)]
#[put("/nextcloud")]
async fn connect(app: web::Data<Janitor>, body: web::Bytes) -> Result<HttpResponse, ApiError> {
    let body = json_body::object(&body, false)?;
    json_body::check_types(
        &body,
        &[
            ("url", Kind::Text),
            ("user", Kind::Text),
            ("app_password", Kind::Text),
        ],
        &[],
    )
    .map_err(ApiError::Invalid)?;
    let input: ConnectInput = serde_json::from_value(serde_json::Value::Object(body))
        .map_err(|e| ApiError::BadRequest(format!("invalid JSON body: {e}")))?;
    let view = link::connect(&app.store, &input, link::TIMEOUT).await?;
    app.rescan_soon();
    Ok(HttpResponse::Ok().json(view))
}

/// Forgets the connection, AppAPI's lists and the answers to proposals
/// (the daemons already added stay).
#[utoipa::path(
    tag = "nextcloud",
    responses(
        (status = 204, description = "Disconnected"),
        (status = 404, description = "Not connected", body = ApiErrorBody),
    )
)]
#[delete("/nextcloud")]
async fn disconnect(app: web::Data<Janitor>) -> Result<HttpResponse, ApiError> {
    link::disconnect(&app.store).await?;
    app.rescan_soon();
    Ok(HttpResponse::NoContent().finish())
}

/// Tests the stored connection: Nextcloud's and AppAPI's versions.
#[utoipa::path(
    tag = "nextcloud",
    responses(
        (status = 200, description = "It works", body = Versions),
        (status = 404, description = "Not connected", body = ApiErrorBody),
        (status = 502, description = "Nextcloud refused or did not answer, in words", body = ApiErrorBody),
    )
)]
#[post("/nextcloud/test")]
async fn test(app: web::Data<Janitor>) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(link::test(&app.store, link::TIMEOUT).await?))
}

/// Reads AppAPI's daemons and ExApps now. On failure the last lists stay.
#[utoipa::path(
    tag = "nextcloud",
    responses(
        (status = 200, description = "Read", body = NextcloudView),
        (status = 404, description = "Not connected", body = ApiErrorBody),
        (status = 502, description = "Nextcloud refused or did not answer; the last lists are kept", body = ApiErrorBody),
    )
)]
#[post("/nextcloud/refresh")]
async fn refresh(app: web::Data<Janitor>) -> Result<HttpResponse, ApiError> {
    let view = link::refresh(&app.store, link::TIMEOUT).await?;
    app.rescan_soon();
    Ok(HttpResponse::Ok().json(view))
}

/// Accepts an AppAPI daemon: adds the janitor daemon it describes, with
/// what the admin gives (a Docker daemon's Engine endpoint; HaRP's key).
#[utoipa::path(
    tag = "nextcloud",
    params(("daemon" = String, Path, description = "AppAPI's daemon name")),
    request_body = AcceptInput,
    responses(
        (status = 200, description = "Added", body = NextcloudView),
        (status = 400, description = "Not a JSON object, or a duplicate key", body = ApiErrorBody),
        (status = 404, description = "Not connected, or AppAPI has no such daemon", body = ApiErrorBody),
        (status = 409, description = "Answered already, or not managed", body = ApiErrorBody),
        (status = 422, description = "A field is invalid", body = ApiErrorBody),
    )
)]
#[post("/nextcloud/proposals/{daemon}/accept")]
async fn accept(
    app: web::Data<Janitor>,
    daemon: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let body = json_body::object(&body, true)?;
    json_body::check_types(
        &body,
        &[
            ("name", Kind::Text),
            ("endpoint", Kind::Text),
            ("tls_ca", Kind::Text),
            ("tls_cert", Kind::Text),
            ("tls_key", Kind::Text),
            ("harp_key", Kind::Text),
        ],
        &[
            "name", "endpoint", "tls_ca", "tls_cert", "tls_key", "harp_key",
        ],
    )
    .map_err(ApiError::Invalid)?;
    let input: AcceptInput = serde_json::from_value(serde_json::Value::Object(body))
        .map_err(|e| ApiError::BadRequest(format!("invalid JSON body: {e}")))?;
    Ok(HttpResponse::Ok().json(link::accept(&app.store, &daemon, &input).await?))
}

/// Refuses an AppAPI daemon: the janitor will not look after it.
#[utoipa::path(
    tag = "nextcloud",
    params(("daemon" = String, Path, description = "AppAPI's daemon name")),
    responses(
        (status = 200, description = "Refused", body = NextcloudView),
        (status = 404, description = "Not connected, or AppAPI has no such daemon", body = ApiErrorBody),
        (status = 409, description = "Answered already, or not managed", body = ApiErrorBody),
    )
)]
#[post("/nextcloud/proposals/{daemon}/refuse")]
async fn refuse(
    app: web::Data<Janitor>,
    daemon: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(link::refuse(&app.store, &daemon).await?))
}
