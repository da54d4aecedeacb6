//! The Settings page. For now: the API token, generated and shown once.

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use askama::Template;

use super::errors::{html, PageError};
use super::guard::CurrentSession;
use super::layout::Layout;
use crate::app::App;
use crate::auth::{self, ApiTokenSource};
use crate::store::CredentialKind;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/settings", web::get().to(settings_page))
        .route("/settings/api-token", web::post().to(rotate_token));
}

pub enum TokenState {
    FromEnv,
    Missing,
    SetAt(String),
    JustGenerated(String),
}

impl TokenState {
    fn can_rotate(&self) -> bool {
        !matches!(self, TokenState::FromEnv)
    }

    fn exists(&self) -> bool {
        !matches!(self, TokenState::Missing)
    }
}

#[derive(Template)]
#[template(path = "settings.html")]
struct SettingsPage {
    layout: Layout,
    token: TokenState,
}

async fn token_state(app: &App) -> Result<TokenState, PageError> {
    if let ApiTokenSource::Env { .. } = app.api_token {
        return Ok(TokenState::FromEnv);
    }
    let stored = app
        .store
        .credential(CredentialKind::ApiToken)
        .await
        .map_err(PageError::internal)?;
    Ok(match stored {
        None => TokenState::Missing,
        Some((_, at)) => TokenState::SetAt(crate::daemons::rfc3339_secs(at)),
    })
}

async fn settings_page(
    app: web::Data<App>,
    session: CurrentSession,
) -> Result<HttpResponse, PageError> {
    let page = SettingsPage {
        layout: Layout::page("settings", &session),
        token: token_state(&app).await?,
    };
    Ok(html(StatusCode::OK, &page))
}

async fn rotate_token(
    app: web::Data<App>,
    session: CurrentSession,
) -> Result<HttpResponse, PageError> {
    let token = match app.api_token {
        ApiTokenSource::Env { .. } => TokenState::FromEnv,
        ApiTokenSource::Stored => {
            let token = auth::rotate_api_token(&app.store)
                .await
                .map_err(PageError::internal)?;
            tracing::info!("API token rotated");
            TokenState::JustGenerated(token)
        }
    };
    let status = if matches!(token, TokenState::FromEnv) {
        StatusCode::CONFLICT
    } else {
        StatusCode::OK
    };
    Ok(html(
        status,
        &SettingsPage {
            layout: Layout::page("settings", &session),
            token,
        },
    ))
}
