//! The HTTP edge: pages (askama + htmx), the JSON API and static assets.
//! Every request passes the guard (login, API token, CSRF) first. The web
//! layer reads and records; it never deletes an image itself.

mod api;
mod assets;
mod charts;
mod cleanup_pages;
mod daemon_pages;
mod deadline;
mod errors;
mod format;
mod guard;
mod image_pages;
mod json_body;
mod layout;
mod login;
mod metrics;
mod nextcloud_api;
mod nextcloud_page;
pub mod openapi;
mod origin;
mod overview;
mod render_memo;
mod settings;
mod shared_body;
pub mod throttle;

use std::net::TcpListener;

use actix_web::dev::Server;
use actix_web::middleware::{from_fn, DefaultHeaders, Logger};
use actix_web::{web, HttpServer};

use crate::janitor::Janitor;
use errors::PageError;
use throttle::{ThrottlePolicy, Throttles};

/// Largest request body any endpoint accepts; larger ones get 413.
pub const BODY_LIMIT: usize = 64 * 1024;

/// Builds the server on an already bound listener (tests bind port 0).
pub fn server(app: Janitor, listener: TcpListener) -> std::io::Result<Server> {
    server_with(app, listener, ThrottlePolicy::default())
}

pub fn server_with(
    app: Janitor,
    listener: TcpListener,
    throttle: ThrottlePolicy,
) -> std::io::Result<Server> {
    if let Ok(addr) = listener.local_addr() {
        tracing::info!("listening on http://{addr}");
    }
    let data = web::Data::new(app);
    let throttle = web::Data::new(Throttles::new(throttle));
    let server = HttpServer::new(move || {
        actix_web::App::new()
            .app_data(data.clone())
            .app_data(throttle.clone())
            .app_data(api::json_config())
            .app_data(form_config())
            .app_data(web::PayloadConfig::new(BODY_LIMIT))
            .wrap(from_fn(guard::guard))
            .wrap(from_fn(deadline::limit_body_time))
            .wrap(security_headers())
            .wrap(Logger::new("%a \"%r\" %s %Dms").log_target("exapp_janitor::http"))
            .configure(routes)
    })
    .listen(listener)?
    .run();
    Ok(server)
}

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.configure(assets::routes)
        .service(web::scope(openapi::API_BASE).configure(|cfg| {
            api::routes(&mut utoipa_actix_web::service_config::ServiceConfig::new(
                cfg,
            ))
        }))
        .configure(login::routes)
        .configure(metrics::routes)
        .configure(overview::routes)
        .configure(daemon_pages::routes)
        .configure(image_pages::routes)
        .configure(cleanup_pages::routes)
        .configure(settings::routes)
        .configure(nextcloud_page::routes)
        .default_service(web::to(not_found));
}

/// The client a request comes from, for the throttles: the peer, or the
/// client a trusted proxy names in `X-Forwarded-For`.
pub(crate) fn client_ip(req: &actix_web::HttpRequest, app: &Janitor) -> std::net::IpAddr {
    let peer = req
        .peer_addr()
        .map(|a| a.ip())
        .unwrap_or([0, 0, 0, 0].into());
    // Several header lines are one list, in order (RFC 9110, 5.3). Bytes a
    // client forged stay unreadable entries, which stop the walk without
    // hiding the entries the proxies appended to their right.
    let forwarded_for: Vec<String> = req
        .headers()
        .get_all("x-forwarded-for")
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        .collect();
    let forwarded_for = (!forwarded_for.is_empty()).then(|| forwarded_for.join(","));
    app.trusted_proxies
        .client_ip(peer, forwarded_for.as_deref())
}

fn form_config() -> web::FormConfig {
    web::FormConfig::default()
        .limit(BODY_LIMIT)
        .error_handler(|err, _req| {
            use actix_web::error::UrlencodedError;
            match err {
                UrlencodedError::Overflow { .. } => {
                    actix_web::error::ErrorPayloadTooLarge("the form is too large")
                }
                other => {
                    actix_web::error::ErrorBadRequest(format!("cannot read the form: {other}"))
                }
            }
        })
}

async fn not_found() -> Result<actix_web::HttpResponse, PageError> {
    Err(PageError::NotFound(
        "There is no page at this address.".into(),
    ))
}

/// No inline script or style anywhere, so the policy can forbid both.
/// Responses that show data are never cached; static assets set their own.
fn security_headers() -> DefaultHeaders {
    DefaultHeaders::new()
        .add((
            "Content-Security-Policy",
            "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
             connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'",
        ))
        .add(("X-Content-Type-Options", "nosniff"))
        .add(("X-Frame-Options", "DENY"))
        .add(("Referrer-Policy", "same-origin"))
        .add(("Cache-Control", "no-store"))
}
