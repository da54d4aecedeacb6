//! The Settings page: the cleanup settings (with inline errors), the
//! schedule, and the API token (generated and shown once).

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use askama::Template;
use serde::Deserialize;
use serde_json::{Map, Value};

use super::errors::{html, PageError};
use super::format;
use super::guard::CurrentSession;
use super::layout::Layout;
use crate::auth::{self, ApiTokenSource};
use crate::domain::FieldErrors;
use crate::janitor::Janitor;
use crate::settings::{self, SettingsError, SettingsView};
use crate::store::CredentialKind;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/settings", web::get().to(settings_page))
        .route("/settings", web::post().to(save_settings))
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

/// The form's values as typed (strings), so a refused form shows them again.
#[derive(Debug, Clone, Default, Deserialize)]
struct SettingsForm {
    #[serde(default)]
    interval_hours: String,
    #[serde(default)]
    cleanup_on_update: Option<String>,
    #[serde(default)]
    keep_previous: String,
    #[serde(default)]
    min_age_hours: String,
    #[serde(default)]
    remove_dangling: Option<String>,
    #[serde(default)]
    protected_patterns: String,
    /// The settings version the page showed: a change made elsewhere since
    /// is not overwritten (409, the current values shown).
    #[serde(default)]
    version: String,
}

impl SettingsForm {
    fn from_view(v: &SettingsView) -> Self {
        let on = |b: bool| b.then(|| "on".to_owned());
        Self {
            interval_hours: v.interval_hours.to_string(),
            cleanup_on_update: on(v.cleanup_on_update),
            keep_previous: v.keep_previous.to_string(),
            min_age_hours: v.min_age_hours.to_string(),
            remove_dangling: on(v.remove_dangling),
            protected_patterns: v
                .protected_patterns
                .iter()
                .map(|p| p.as_str())
                .collect::<Vec<_>>()
                .join("\n"),
            version: v.version.to_string(),
        }
    }

    /// The version the page showed; None when the form carries none.
    fn seen(&self) -> Result<Option<i64>, FieldErrors> {
        match self.version.trim() {
            "" => Ok(None),
            raw => raw
                .parse::<i64>()
                .ok()
                .filter(|v| *v >= 0)
                .map(Some)
                .ok_or_else(|| FieldErrors::single("version", "the page's settings version")),
        }
    }

    /// The change, as the API would send it: an unchecked box is false,
    /// patterns one per line.
    fn change(&self) -> Map<String, Value> {
        let mut change = Map::new();
        change.insert(
            "interval_hours".into(),
            Value::String(self.interval_hours.clone()),
        );
        change.insert(
            "keep_previous".into(),
            Value::String(self.keep_previous.clone()),
        );
        change.insert(
            "min_age_hours".into(),
            Value::String(self.min_age_hours.clone()),
        );
        change.insert(
            "cleanup_on_update".into(),
            Value::Bool(self.cleanup_on_update.is_some()),
        );
        change.insert(
            "remove_dangling".into(),
            Value::Bool(self.remove_dangling.is_some()),
        );
        let patterns = self
            .protected_patterns
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(|l| Value::String(l.to_owned()))
            .collect();
        change.insert("protected_patterns".into(), Value::Array(patterns));
        change
    }
}

#[derive(Template)]
#[template(path = "settings.html")]
struct SettingsPage {
    layout: Layout,
    form: SettingsForm,
    errors: FieldErrors,
    saved: bool,
    next_run: String,
    last_run: String,
    token: TokenState,
    /// The stored settings cannot be read: why, shown above the form (which
    /// then holds the defaults; saving it replaces what is stored).
    problem: Option<String>,
}

async fn token_state(app: &Janitor) -> Result<TokenState, PageError> {
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
        Some((_, at)) => TokenState::SetAt(format::datetime(at)),
    })
}

fn schedule_text(view: &SettingsView) -> (String, String) {
    let next = match (view.interval_hours, view.next_run_at) {
        (0, _) | (_, None) => "never: scheduled cleanup is off (interval 0)".to_owned(),
        (_, Some(t)) => format::datetime(t),
    };
    let last = view
        .last_run_at
        .map(format::datetime)
        .unwrap_or_else(|| "never".into());
    (next, last)
}

async fn page(
    app: &Janitor,
    session: &CurrentSession,
    form: Option<SettingsForm>,
    errors: FieldErrors,
    saved: bool,
    token: Option<TokenState>,
) -> Result<SettingsPage, PageError> {
    let (view, problem) = match settings::load(&app.store).await {
        Ok(view) => (view, None),
        Err(e @ SettingsError::Unreadable(_)) => {
            let d = crate::domain::Settings::default();
            let view = SettingsView {
                interval_hours: d.interval_hours,
                cleanup_on_update: d.cleanup_on_update,
                keep_previous: d.keep_previous,
                min_age_hours: d.min_age_hours,
                remove_dangling: d.remove_dangling,
                protected_patterns: d.protected_patterns,
                next_run_at: None,
                last_run_at: None,
                version: app
                    .store
                    .settings_row()
                    .await
                    .ok()
                    .flatten()
                    .map_or(0, |r| r.version),
            };
            (view, Some(e.to_string()))
        }
        Err(e) => return Err(PageError::internal(e)),
    };
    let (next_run, last_run) = schedule_text(&view);
    Ok(SettingsPage {
        problem,
        layout: Layout::page("settings", session),
        form: form.unwrap_or_else(|| SettingsForm::from_view(&view)),
        errors,
        saved,
        next_run,
        last_run,
        token: match token {
            Some(t) => t,
            None => token_state(app).await?,
        },
    })
}

#[derive(Deserialize)]
struct SavedQuery {
    saved: Option<String>,
}

async fn settings_page(
    app: web::Data<Janitor>,
    session: CurrentSession,
    query: web::Query<SavedQuery>,
) -> Result<HttpResponse, PageError> {
    let p = page(
        &app,
        &session,
        None,
        FieldErrors::new(),
        query.saved.is_some(),
        None,
    )
    .await?;
    Ok(html(StatusCode::OK, &p))
}

async fn save_settings(
    app: web::Data<Janitor>,
    session: CurrentSession,
    form: web::Form<SettingsForm>,
) -> Result<HttpResponse, PageError> {
    let seen = match form.seen() {
        Ok(seen) => seen,
        Err(errors) => {
            let p = page(&app, &session, Some(form.into_inner()), errors, false, None).await?;
            return Ok(html(StatusCode::UNPROCESSABLE_ENTITY, &p));
        }
    };
    match app.change_settings(&form.change(), seen).await {
        Ok(_) => Ok(HttpResponse::SeeOther()
            .insert_header(("Location", "/settings?saved=1"))
            .finish()),
        Err(SettingsError::Invalid(errors)) => {
            let p = page(&app, &session, Some(form.into_inner()), errors, false, None).await?;
            Ok(html(StatusCode::UNPROCESSABLE_ENTITY, &p))
        }
        Err(SettingsError::Conflict { current, .. }) => {
            // Show what is stored now; the admin decides again.
            let errors = FieldErrors::single(
                "settings",
                "they were changed elsewhere since this page was opened; these are the current values, nothing was saved",
            );
            let form = SettingsForm::from_view(&current);
            let p = page(&app, &session, Some(form), errors, false, None).await?;
            Ok(html(StatusCode::CONFLICT, &p))
        }
        Err(e) => Err(PageError::internal(e)),
    }
}

async fn rotate_token(
    app: web::Data<Janitor>,
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
    let p = page(&app, &session, None, FieldErrors::new(), false, Some(token)).await?;
    Ok(html(status, &p))
}
