//! HTML pages and the htmx fragments they swap in.

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use askama::Template;
use serde::Deserialize;

use super::errors::{html, PageError};
use super::BODY_LIMIT;
use crate::app::App;
use crate::daemons::{self, DaemonError, DaemonSummary};
use crate::domain::{FieldErrors, NewDaemonInput};

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/", web::get().to(overview))
        .route("/daemons", web::get().to(daemons_page))
        .route("/daemons", web::post().to(add_daemon))
        .route("/daemons/{name}/card", web::get().to(daemon_card))
        .route("/daemons/{name}/test", web::post().to(test_daemon))
        .route("/daemons/{name}/remove", web::get().to(confirm_remove))
        .route("/daemons/{name}/remove", web::post().to(remove_daemon));
}

pub fn form_config() -> web::FormConfig {
    web::FormConfig::default().limit(BODY_LIMIT)
}

pub async fn not_found() -> Result<HttpResponse, PageError> {
    Err(PageError::NotFound(
        "There is no page at this address.".into(),
    ))
}

#[derive(Template)]
#[template(path = "overview.html")]
struct Overview {
    nav: &'static str,
    daemons: Vec<DaemonSummary>,
    /// Cards render the last known state at once and then refresh
    /// themselves one by one, so a slow daemon never holds up the page.
    refresh: bool,
}

async fn overview(app: web::Data<App>) -> Result<HttpResponse, PageError> {
    let daemons = daemons::list(&app.store).await?;
    Ok(html(
        StatusCode::OK,
        &Overview {
            nav: "overview",
            daemons: daemons.iter().map(DaemonSummary::from).collect(),
            refresh: true,
        },
    ))
}

#[derive(Template)]
#[template(path = "fragments/daemon_card.html")]
struct DaemonCard {
    d: DaemonSummary,
    refresh: bool,
}

async fn daemon_card(
    app: web::Data<App>,
    name: web::Path<String>,
) -> Result<HttpResponse, PageError> {
    let daemon = daemons::get(&app.store, &name).await?;
    let checked = daemons::check(&app.store, daemon, app.daemon_timeout).await;
    Ok(html(
        StatusCode::OK,
        &DaemonCard {
            d: DaemonSummary::from(&checked),
            refresh: false,
        },
    ))
}

#[derive(Template)]
#[template(path = "fragments/daemon_status.html")]
struct DaemonStatus {
    d: DaemonSummary,
    refresh: bool,
}

async fn test_daemon(
    app: web::Data<App>,
    name: web::Path<String>,
) -> Result<HttpResponse, PageError> {
    let daemon = daemons::get(&app.store, &name).await?;
    let checked = daemons::check(&app.store, daemon, app.daemon_timeout).await;
    Ok(html(
        StatusCode::OK,
        &DaemonStatus {
            d: DaemonSummary::from(&checked),
            refresh: false,
        },
    ))
}

/// One input of the add form, with what was typed and its error.
struct FormField {
    name: &'static str,
    label: &'static str,
    placeholder: &'static str,
    help: &'static str,
    value: String,
    error: Option<String>,
}

#[derive(Template)]
#[template(path = "daemons.html")]
struct DaemonsPage {
    nav: &'static str,
    daemons: Vec<DaemonSummary>,
    fields: Vec<FormField>,
    refresh: bool,
}

/// The add form as posted. Fields the form does not have are ignored.
#[derive(Debug, Default, Deserialize)]
struct DaemonForm {
    #[serde(default)]
    name: String,
    #[serde(default)]
    endpoint: String,
    #[serde(default)]
    tls_ca: String,
    #[serde(default)]
    tls_cert: String,
    #[serde(default)]
    tls_key: String,
}

fn add_form_fields(form: &DaemonForm, errors: &FieldErrors) -> Vec<FormField> {
    let field = |name, label, placeholder, help, value: &str| FormField {
        name,
        label,
        placeholder,
        help,
        value: value.to_owned(),
        error: errors.get(name).map(str::to_owned),
    };
    vec![
        field(
            "name",
            "Name",
            "gpu-host",
            "Letters, digits, '_', '.' and '-'; at most 64.",
            &form.name,
        ),
        field(
            "endpoint",
            "Endpoint",
            "unix:///var/run/docker.sock",
            "unix:///path.sock, tcp://host:port (plain) or https://host:port (TLS).",
            &form.endpoint,
        ),
        field(
            "tls_ca",
            "TLS CA certificate",
            "/etc/exapp-janitor/gpu-host/ca.pem",
            "https:// only: path on this server.",
            &form.tls_ca,
        ),
        field(
            "tls_cert",
            "TLS client certificate",
            "/etc/exapp-janitor/gpu-host/cert.pem",
            "https:// only.",
            &form.tls_cert,
        ),
        // The key path is never shown back, not even after a failed submit.
        field(
            "tls_key",
            "TLS client key",
            "/etc/exapp-janitor/gpu-host/key.pem",
            "https:// only.",
            "",
        ),
    ]
}

async fn render_daemons_page(
    app: &App,
    status: StatusCode,
    form: &DaemonForm,
    errors: &FieldErrors,
) -> Result<HttpResponse, PageError> {
    let daemons = daemons::list(&app.store).await?;
    Ok(html(
        status,
        &DaemonsPage {
            nav: "daemons",
            daemons: daemons.iter().map(DaemonSummary::from).collect(),
            fields: add_form_fields(form, errors),
            refresh: false,
        },
    ))
}

async fn daemons_page(app: web::Data<App>) -> Result<HttpResponse, PageError> {
    render_daemons_page(
        &app,
        StatusCode::OK,
        &DaemonForm::default(),
        &FieldErrors::new(),
    )
    .await
}

async fn add_daemon(
    app: web::Data<App>,
    form: web::Form<DaemonForm>,
) -> Result<HttpResponse, PageError> {
    let optional = |v: &str| Some(v.to_owned()).filter(|v| !v.trim().is_empty());
    let input = NewDaemonInput {
        name: form.name.clone(),
        endpoint: form.endpoint.clone(),
        tls_ca: optional(&form.tls_ca),
        tls_cert: optional(&form.tls_cert),
        tls_key: optional(&form.tls_key),
    };
    match daemons::add(&app.store, &input).await {
        Ok(added) => {
            daemons::check(&app.store, added, app.daemon_timeout).await;
            Ok(see_other("/daemons"))
        }
        Err(DaemonError::Invalid(errors)) => {
            render_daemons_page(&app, StatusCode::UNPROCESSABLE_ENTITY, &form, &errors).await
        }
        Err(e) => Err(e.into()),
    }
}

#[derive(Template)]
#[template(path = "daemon_remove.html")]
struct ConfirmRemove {
    nav: &'static str,
    d: DaemonSummary,
}

async fn confirm_remove(
    app: web::Data<App>,
    name: web::Path<String>,
) -> Result<HttpResponse, PageError> {
    let daemon = daemons::get(&app.store, &name).await?;
    Ok(html(
        StatusCode::OK,
        &ConfirmRemove {
            nav: "daemons",
            d: DaemonSummary::from(&daemon),
        },
    ))
}

async fn remove_daemon(
    app: web::Data<App>,
    name: web::Path<String>,
) -> Result<HttpResponse, PageError> {
    daemons::remove(&app.store, &name).await?;
    Ok(see_other("/daemons"))
}

fn see_other(location: &str) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header(("Location", location))
        .finish()
}
