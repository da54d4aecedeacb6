//! The HTTP edge: pages (askama + htmx), the JSON API and static assets.
//! It reads and records through `daemons` and the store; it never deletes an
//! image itself.

mod api;
mod assets;
mod errors;
mod pages;

use std::net::TcpListener;

use actix_web::dev::Server;
use actix_web::middleware::{DefaultHeaders, Logger};
use actix_web::{web, HttpServer};

use crate::app::App;

/// Largest request body any endpoint accepts; larger ones get 413.
pub const BODY_LIMIT: usize = 64 * 1024;

/// Builds the server on an already bound listener (tests bind port 0).
pub fn server(app: App, listener: TcpListener) -> std::io::Result<Server> {
    if let Ok(addr) = listener.local_addr() {
        tracing::info!("listening on http://{addr}");
    }
    let data = web::Data::new(app);
    let server = HttpServer::new(move || {
        actix_web::App::new()
            .app_data(data.clone())
            .app_data(api::json_config())
            .app_data(pages::form_config())
            .app_data(web::PayloadConfig::new(BODY_LIMIT))
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
        .service(web::scope("/api/v1").configure(api::routes))
        .configure(pages::routes)
        .default_service(web::to(pages::not_found));
}

/// No inline script or style anywhere, so the policy can forbid both.
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
}
