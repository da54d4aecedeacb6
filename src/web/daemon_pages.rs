//! The Daemons page: add (with inline errors), test the connection, remove.

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use askama::Template;
use askama_web::WebTemplate;
use serde::Deserialize;

use super::errors::{html, PageError};
use super::guard::CurrentSession;
use super::layout::Layout;
use crate::daemons::{self, DaemonError, DaemonSummary};
use crate::domain::{FieldErrors, NewDaemonInput};
use crate::janitor::Janitor;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/daemons", web::get().to(daemons_page))
        .route("/daemons", web::post().to(add_daemon))
        .route("/daemons/{name}/test", web::post().to(test_daemon))
        .route("/daemons/{name}/exapps", web::post().to(set_exapps))
        .route("/daemons/{name}/remove", web::get().to(confirm_remove))
        .route("/daemons/{name}/remove", web::post().to(remove_daemon));
}

#[derive(Template, WebTemplate)]
#[template(path = "fragments/daemon_status.html")]
struct DaemonStatus {
    d: DaemonSummary,
    refresh: bool,
}

async fn test_daemon(
    app: web::Data<Janitor>,
    name: web::Path<String>,
) -> Result<DaemonStatus, PageError> {
    let daemon = daemons::get(&app.store, &name).await?;
    let checked = daemons::check(&app.store, daemon, app.daemon_timeout).await;
    Ok(DaemonStatus {
        d: DaemonSummary::from(&checked),
        refresh: false,
    })
}

/// One input of the add form, with what was typed and its error.
struct FormField {
    name: &'static str,
    /// The input's type: `text`, or `password` for a secret.
    kind: &'static str,
    label: &'static str,
    placeholder: &'static str,
    help: &'static str,
    value: String,
    error: Option<String>,
}

#[derive(Template)]
#[template(path = "daemons.html")]
struct DaemonsPage {
    layout: Layout,
    daemons: Vec<DaemonSummary>,
    fields: Vec<FormField>,
    /// The add form's errors, summarised above it.
    errors: FieldErrors,
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
    #[serde(default)]
    harp_key: String,
    #[serde(default)]
    harp_docker_port: String,
    #[serde(default)]
    exapps: String,
}

/// ExApp IDs as a person types them: separated by commas, spaces or lines.
fn exapp_list(raw: &str) -> Vec<String> {
    raw.split(|c: char| c == ',' || c.is_whitespace())
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

fn add_form_fields(form: &DaemonForm, errors: &FieldErrors) -> Vec<FormField> {
    let field = |name, label, placeholder, help, value: &str| FormField {
        name,
        kind: "text",
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
        // The key itself is never shown back either.
        FormField {
            kind: "password",
            ..field(
                "harp_key",
                "HaRP shared key",
                "",
                "harp+http:// only: AppAPI's daemon setting \"HaRP shared key\" (HP_SHARED_KEY). Stored, never shown again.",
                "",
            )
        },
        field(
            "harp_docker_port",
            "HaRP docker-engine-port",
            "24000",
            "harp+http:// only: the Docker host's port in AppAPI's daemon settings (default 24000).",
            &form.harp_docker_port,
        ),
        field(
            "exapps",
            "ExApps (HaRP)",
            "context_chat_backend, llm2",
            "harp+http:// only: the ExApp IDs deployed there, separated by commas; HaRP lists nothing, so the janitor looks only for these.",
            &form.exapps,
        ),
    ]
}

async fn render_daemons_page(
    app: &Janitor,
    session: &CurrentSession,
    status: StatusCode,
    form: &DaemonForm,
    errors: &FieldErrors,
) -> Result<HttpResponse, PageError> {
    let daemons = daemons::list(&app.store).await?;
    Ok(html(
        status,
        &DaemonsPage {
            layout: Layout::page("daemons", session),
            daemons: daemons.iter().map(DaemonSummary::from).collect(),
            fields: add_form_fields(form, errors),
            errors: errors.clone(),
            refresh: false,
        },
    ))
}

async fn daemons_page(
    app: web::Data<Janitor>,
    session: CurrentSession,
) -> Result<HttpResponse, PageError> {
    render_daemons_page(
        &app,
        &session,
        StatusCode::OK,
        &DaemonForm::default(),
        &FieldErrors::new(),
    )
    .await
}

async fn add_daemon(
    app: web::Data<Janitor>,
    session: CurrentSession,
    form: web::Form<DaemonForm>,
) -> Result<HttpResponse, PageError> {
    let optional = |v: &str| Some(v.to_owned()).filter(|v| !v.trim().is_empty());
    let harp_docker_port = match form.harp_docker_port.trim() {
        "" => None,
        port => Some(port.parse::<i64>().unwrap_or(-1)),
    };
    let exapps = exapp_list(&form.exapps);
    let input = NewDaemonInput {
        harp_key: optional(&form.harp_key),
        harp_docker_port,
        exapps: (!exapps.is_empty()).then_some(exapps),
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
            render_daemons_page(
                &app,
                &session,
                StatusCode::UNPROCESSABLE_ENTITY,
                &form,
                &errors,
            )
            .await
        }
        Err(e) => Err(e.into()),
    }
}

#[derive(Debug, Deserialize)]
struct ExappsForm {
    #[serde(default)]
    exapps: String,
}

/// The ExApps of a HaRP daemon, as the page's field lists them now.
async fn set_exapps(
    app: web::Data<Janitor>,
    session: CurrentSession,
    name: web::Path<String>,
    form: web::Form<ExappsForm>,
) -> Result<HttpResponse, PageError> {
    let daemon = daemons::get(&app.store, &name).await?;
    let wanted = exapp_list(&form.exapps);
    let current: Vec<String> = daemon
        .harp
        .iter()
        .flat_map(|h| h.exapps.iter().map(ToString::to_string))
        .collect();
    let remove: Vec<String> = current
        .iter()
        .filter(|c| !wanted.contains(c))
        .cloned()
        .collect();
    match daemons::change_exapps(&app.store, &name, &wanted, &remove).await {
        Ok(_) => Ok(see_other("/daemons")),
        Err(DaemonError::Invalid(errors)) => {
            render_daemons_page(
                &app,
                &session,
                StatusCode::UNPROCESSABLE_ENTITY,
                &DaemonForm::default(),
                &errors,
            )
            .await
        }
        Err(e) => Err(e.into()),
    }
}

#[derive(Template)]
#[template(path = "daemon_remove.html")]
struct ConfirmRemove {
    layout: Layout,
    d: DaemonSummary,
}

async fn confirm_remove(
    app: web::Data<Janitor>,
    session: CurrentSession,
    name: web::Path<String>,
) -> Result<HttpResponse, PageError> {
    let daemon = daemons::get(&app.store, &name).await?;
    Ok(html(
        StatusCode::OK,
        &ConfirmRemove {
            layout: Layout::page("daemons", &session),
            d: DaemonSummary::from(&daemon),
        },
    ))
}

async fn remove_daemon(
    app: web::Data<Janitor>,
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
