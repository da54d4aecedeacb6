//! How failures look to a browser (an HTML page) and to an API client (JSON).
//! The person gets one sentence; the log gets the whole chain.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use askama::Template;

use super::layout::Layout;
use crate::daemons::DaemonError;
use crate::domain::FieldErrors;

/// Renders a template with a status, or a plain 500 if rendering fails.
/// (`Cache-Control: no-store` comes from the security headers.)
pub fn html(status: StatusCode, template: &impl Template) -> HttpResponse {
    match template.render() {
        Ok(body) => HttpResponse::build(status)
            .content_type("text/html; charset=utf-8")
            .body(body),
        Err(e) => {
            tracing::error!(error = %e, "template rendering failed");
            HttpResponse::InternalServerError().body("internal error")
        }
    }
}

fn log_chain(error: &(dyn std::error::Error + 'static)) {
    tracing::error!(error = %crate::domain::error_chain(error), "request failed");
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage<'a> {
    layout: Layout,
    title: &'a str,
    message: &'a str,
}

/// An error on a page request.
#[derive(Debug, thiserror::Error)]
pub enum PageError {
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    BadRequest(String),
    #[error("something went wrong; the server log has the details")]
    Internal(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl PageError {
    pub fn internal(error: impl std::error::Error + Send + Sync + 'static) -> Self {
        PageError::Internal(Box::new(error))
    }
}

impl From<DaemonError> for PageError {
    fn from(e: DaemonError) -> Self {
        match e {
            DaemonError::NotFound(_) => PageError::NotFound(e.to_string()),
            DaemonError::Busy { .. } => PageError::BadRequest(e.to_string()),
            other => PageError::Internal(Box::new(other)),
        }
    }
}

impl ResponseError for PageError {
    fn status_code(&self) -> StatusCode {
        match self {
            PageError::NotFound(_) => StatusCode::NOT_FOUND,
            PageError::BadRequest(_) => StatusCode::UNPROCESSABLE_ENTITY,
            PageError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        if let PageError::Internal(source) = self {
            log_chain(source.as_ref());
        }
        let title = match self {
            PageError::NotFound(_) => "Not found",
            PageError::BadRequest(_) => "Invalid request",
            PageError::Internal(_) => "Error",
        };
        html(
            self.status_code(),
            &ErrorPage {
                layout: Layout::public(),
                title,
                message: &self.to_string(),
            },
        )
    }
}

/// The body of every API error: one sentence, and for invalid input a
/// message per field.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct ApiErrorBody {
    pub error: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<std::collections::BTreeMap<String, String>>)]
    pub fields: Option<FieldErrors>,
}

impl ApiErrorBody {
    pub fn new(error: impl Into<String>) -> Self {
        Self {
            error: error.into(),
            fields: None,
        }
    }
}

/// An error on an API request: `{"error": "...", "fields": {...}}`.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("the request body is larger than {limit} bytes")]
    TooLarge { limit: usize },
    #[error("invalid input")]
    Invalid(FieldErrors),
    /// A daemon the request needs could not be reached (502).
    #[error("{0}")]
    BadGateway(String),
    /// Nothing can be done until something is repaired (503).
    #[error("{0}")]
    Unavailable(String),
    #[error("internal error; the server log has the details")]
    Internal(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl From<DaemonError> for ApiError {
    fn from(e: DaemonError) -> Self {
        match e {
            DaemonError::Invalid(fields) => ApiError::Invalid(fields),
            DaemonError::NotFound(_) => ApiError::NotFound(e.to_string()),
            DaemonError::Busy { .. } => ApiError::Conflict(e.to_string()),
            other => ApiError::Internal(Box::new(other)),
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::Invalid(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::BadGateway(_) => StatusCode::BAD_GATEWAY,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let mut body = ApiErrorBody::new(self.to_string());
        match self {
            ApiError::Invalid(fields) => body.fields = Some(fields.clone()),
            ApiError::Internal(source) => log_chain(source.as_ref()),
            _ => {}
        }
        HttpResponse::build(self.status_code()).json(body)
    }
}
