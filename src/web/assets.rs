//! Static files, embedded in the binary so a release is one file.

use actix_web::http::header::{CacheControl, CacheDirective, ContentType};
use actix_web::{web, HttpResponse};

const HTMX: &[u8] = include_bytes!("../../static/htmx.min.js");
const CSS: &[u8] = include_bytes!("../../static/app.css");
const JS: &[u8] = include_bytes!("../../static/app.js");
const FAVICON: &[u8] = include_bytes!("../../static/favicon.svg");

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route(
        "/static/htmx.min.js",
        web::get().to(|| asset(HTMX, "text/javascript; charset=utf-8")),
    )
    .route(
        "/static/app.css",
        web::get().to(|| asset(CSS, "text/css; charset=utf-8")),
    )
    .route(
        "/static/app.js",
        web::get().to(|| asset(JS, "text/javascript; charset=utf-8")),
    )
    .route(
        "/static/favicon.svg",
        web::get().to(|| asset(FAVICON, "image/svg+xml")),
    )
    // Browsers ask for /favicon.ico on their own, before reading the page.
    .route(
        "/favicon.ico",
        web::get().to(|| async {
            HttpResponse::MovedPermanently()
                .insert_header(("Location", "/static/favicon.svg"))
                .finish()
        }),
    );
}

async fn asset(body: &'static [u8], content_type: &'static str) -> HttpResponse {
    HttpResponse::Ok()
        .content_type(ContentType(content_type.parse().expect("valid mime")))
        .insert_header(CacheControl(vec![
            CacheDirective::Public,
            CacheDirective::MaxAge(3600),
        ]))
        .body(body)
}
