//! Static files, embedded in the binary so a release is one file.

use actix_web::http::header::{CacheControl, CacheDirective, ContentType};
use actix_web::{web, HttpResponse};

const HTMX: &[u8] = include_bytes!("../../static/htmx.min.js");
const CSS: &[u8] = include_bytes!("../../static/app.css");

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route(
        "/static/htmx.min.js",
        web::get().to(|| asset(HTMX, "text/javascript; charset=utf-8")),
    )
    .route(
        "/static/app.css",
        web::get().to(|| asset(CSS, "text/css; charset=utf-8")),
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
