//! The Settings page's Nextcloud section: connect (tested first), Test,
//! read AppAPI's lists, disconnect, and answer the daemon proposals. The
//! section is an htmx fragment; without JavaScript the same forms answer
//! with a page holding just the section. The app password field is never
//! filled back.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;
use serde::Deserialize;

use super::errors::{html, PageError};
use super::format;
use super::guard::CurrentSession;
use super::layout::Layout;
use crate::domain::FieldErrors;
use crate::janitor::Janitor;
use crate::nextcloud_link::{
    self as link, AcceptInput, ConnectInput, LinkError, NextcloudView, Proposal, ProposalState,
};

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/settings/nextcloud", web::get().to(show))
        .route("/settings/nextcloud", web::post().to(connect))
        .route("/settings/nextcloud/test", web::post().to(test))
        .route("/settings/nextcloud/refresh", web::post().to(refresh))
        .route("/settings/nextcloud/disconnect", web::post().to(disconnect))
        .route(
            "/settings/nextcloud/proposals/{daemon}/accept",
            web::post().to(accept),
        )
        .route(
            "/settings/nextcloud/proposals/{daemon}/refuse",
            web::post().to(refuse),
        );
}

#[derive(Template)]
#[template(path = "fragments/nextcloud.html")]
struct Section {
    csrf: String,
    view: NextcloudView,
    stale: Option<String>,
    snapshot_at: Option<String>,
    message: Option<String>,
    error: Option<String>,
    fields: FieldErrors,
    form_url: String,
    form_user: String,
}

impl Section {
    fn state_words(&self, p: &Proposal) -> &'static str {
        match p.state {
            ProposalState::Proposed => "proposed",
            ProposalState::Accepted => "accepted",
            ProposalState::Refused => "refused",
            ProposalState::NotManaged => "not managed",
        }
    }
}

#[derive(Template)]
#[template(path = "nextcloud.html")]
struct Page {
    layout: Layout,
    section: String,
}

/// What happened, for the section's message lines.
#[derive(Default)]
struct Outcome {
    message: Option<String>,
    error: Option<String>,
    fields: FieldErrors,
    form: Option<(String, String)>,
}

impl Outcome {
    fn from_error(e: LinkError) -> Result<Self, PageError> {
        match e {
            LinkError::Invalid(fields) => Ok(Self {
                fields,
                ..Default::default()
            }),
            LinkError::Store(s) => Err(PageError::internal(s)),
            other => Ok(Self {
                error: Some(other.to_string()),
                ..Default::default()
            }),
        }
    }
}

async fn respond(
    app: &Janitor,
    req: &HttpRequest,
    session: &CurrentSession,
    outcome: Outcome,
) -> Result<HttpResponse, PageError> {
    let view = link::status(&app.store)
        .await
        .map_err(PageError::internal)?;
    let (form_url, form_user) = outcome.form.unwrap_or_else(|| {
        (
            view.url.clone().unwrap_or_default(),
            view.user.clone().unwrap_or_default(),
        )
    });
    let section = Section {
        csrf: session.0.csrf_token.clone(),
        stale: view.stale_note(),
        snapshot_at: view
            .snapshot_at
            .map(|t| format::datetime(t.unix_timestamp())),
        view,
        message: outcome.message,
        error: outcome.error,
        fields: outcome.fields,
        form_url,
        form_user,
    };
    if req.headers().contains_key("HX-Request") {
        return Ok(html(StatusCode::OK, &section));
    }
    let section = section.render().map_err(PageError::internal)?;
    Ok(html(
        StatusCode::OK,
        &Page {
            layout: Layout::page("settings", session),
            section,
        },
    ))
}

async fn show(
    app: web::Data<Janitor>,
    req: HttpRequest,
    session: CurrentSession,
) -> Result<HttpResponse, PageError> {
    respond(&app, &req, &session, Outcome::default()).await
}

#[derive(Deserialize)]
struct ConnectForm {
    #[serde(default)]
    url: String,
    #[serde(default)]
    user: String,
    #[serde(default)]
    app_password: String,
}

async fn connect(
    app: web::Data<Janitor>,
    req: HttpRequest,
    session: CurrentSession,
    form: web::Form<ConnectForm>,
) -> Result<HttpResponse, PageError> {
    let form = form.into_inner();
    let input = ConnectInput {
        url: form.url.clone(),
        user: form.user.clone(),
        app_password: form.app_password,
    };
    let outcome = match link::connect(&app.store, &input, link::TIMEOUT).await {
        Ok(v) => Outcome {
            message: Some(format!(
                "Connected: Nextcloud {}, AppAPI {}.",
                v.nextcloud_version.as_deref().unwrap_or("?"),
                v.app_api_version.as_deref().unwrap_or("?")
            )),
            ..Default::default()
        },
        Err(e) => Outcome {
            form: Some((form.url, form.user)),
            ..Outcome::from_error(e)?
        },
    };
    if outcome.error.is_none() && outcome.fields.is_empty() {
        // Statuses follow what AppAPI lists (or no longer says).
        app.rescan_soon();
    }
    respond(&app, &req, &session, outcome).await
}

async fn test(
    app: web::Data<Janitor>,
    req: HttpRequest,
    session: CurrentSession,
) -> Result<HttpResponse, PageError> {
    let outcome = match link::test(&app.store, link::TIMEOUT).await {
        Ok(v) => Outcome {
            message: Some(format!(
                "It works: Nextcloud {}, AppAPI {}.",
                v.nextcloud, v.app_api
            )),
            ..Default::default()
        },
        Err(e) => Outcome::from_error(e)?,
    };
    respond(&app, &req, &session, outcome).await
}

async fn refresh(
    app: web::Data<Janitor>,
    req: HttpRequest,
    session: CurrentSession,
) -> Result<HttpResponse, PageError> {
    let outcome = match link::refresh(&app.store, link::TIMEOUT).await {
        Ok(_) => Outcome {
            message: Some("Read AppAPI's daemons and ExApps.".into()),
            ..Default::default()
        },
        Err(e) => Outcome::from_error(e)?,
    };
    if outcome.error.is_none() && outcome.fields.is_empty() {
        // Statuses follow what AppAPI lists (or no longer says).
        app.rescan_soon();
    }
    respond(&app, &req, &session, outcome).await
}

async fn disconnect(
    app: web::Data<Janitor>,
    req: HttpRequest,
    session: CurrentSession,
) -> Result<HttpResponse, PageError> {
    let outcome = match link::disconnect(&app.store).await {
        Ok(()) => Outcome {
            message: Some("Disconnected from Nextcloud.".into()),
            ..Default::default()
        },
        Err(e) => Outcome::from_error(e)?,
    };
    if outcome.error.is_none() && outcome.fields.is_empty() {
        // Statuses follow what AppAPI lists (or no longer says).
        app.rescan_soon();
    }
    respond(&app, &req, &session, outcome).await
}

#[derive(Deserialize)]
struct AcceptForm {
    #[serde(default)]
    name: String,
    #[serde(default)]
    endpoint: String,
    #[serde(default)]
    harp_key: String,
}

async fn accept(
    app: web::Data<Janitor>,
    req: HttpRequest,
    session: CurrentSession,
    daemon: web::Path<String>,
    form: web::Form<AcceptForm>,
) -> Result<HttpResponse, PageError> {
    let form = form.into_inner();
    let some = |s: String| (!s.trim().is_empty()).then_some(s);
    let input = AcceptInput {
        name: some(form.name),
        endpoint: some(form.endpoint),
        harp_key: some(form.harp_key),
        ..Default::default()
    };
    let outcome = match link::accept(&app.store, &daemon, &input).await {
        Ok(_) => Outcome {
            message: Some(format!(
                "Accepted {daemon}: the janitor looks after it now."
            )),
            ..Default::default()
        },
        Err(LinkError::Daemon(crate::daemons::DaemonError::Invalid(fields))) => Outcome {
            error: Some(
                fields
                    .iter()
                    .map(|(f, m)| format!("{f}: {m}"))
                    .collect::<Vec<_>>()
                    .join("; "),
            ),
            ..Default::default()
        },
        Err(LinkError::Invalid(fields)) => Outcome {
            error: Some(
                fields
                    .iter()
                    .map(|(f, m)| format!("{f}: {m}"))
                    .collect::<Vec<_>>()
                    .join("; "),
            ),
            ..Default::default()
        },
        Err(e) => Outcome::from_error(e)?,
    };
    respond(&app, &req, &session, outcome).await
}

async fn refuse(
    app: web::Data<Janitor>,
    req: HttpRequest,
    session: CurrentSession,
    daemon: web::Path<String>,
) -> Result<HttpResponse, PageError> {
    let outcome = match link::refuse(&app.store, &daemon).await {
        Ok(_) => Outcome {
            message: Some(format!("Refused {daemon}.")),
            ..Default::default()
        },
        Err(e) => Outcome::from_error(e)?,
    };
    respond(&app, &req, &session, outcome).await
}
