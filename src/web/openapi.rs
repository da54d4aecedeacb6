//! The JSON API's OpenAPI 3.1 document, served at `/api/v1/openapi.json`.
//! It is collected from the handlers as `api::routes` registers them, with
//! their request and answer types: never written by hand, so a route cannot
//! exist without its entry, nor an entry without its route.

use std::sync::OnceLock;

use actix_web::{get, HttpResponse};
use utoipa::openapi::path::Operation;
use utoipa::openapi::response::ResponseBuilder;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::openapi::Required;
use utoipa::openapi::{Content, OpenApi as Document, Ref};
use utoipa::{Modify, OpenApi};
use utoipa_actix_web::AppExt;

use super::errors::ApiErrorBody;

/// Where the API lives; the document's paths are under it.
pub const API_BASE: &str = "/api/v1";

/// The document's name of the bearer token scheme.
const TOKEN: &str = "token";

#[derive(OpenApi)]
#[openapi(
    info(
        title = "exapp-janitor",
        description = "Removes outdated Nextcloud ExApp images from the Docker daemons AppAPI deploys to. \
                       Every operation but the health check and this document needs the API token \
                       (`Authorization: Bearer <token>`)."
    ),
    components(schemas(ApiErrorBody)),
    security(("token" = [])),
    modifiers(&BearerToken)
)]
struct ApiDoc;

struct BearerToken;

impl Modify for BearerToken {
    fn modify(&self, doc: &mut Document) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            TOKEN,
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
    }
}

/// Operations whose body may be left out (it then means `{}`); sent, it must
/// be a JSON object like every other body.
const OPTIONAL_BODIES: [&str; 2] = ["/api/v1/cleanup/preview", "/api/v1/cleanup/runs"];

/// Marks the bodies of `OPTIONAL_BODIES` as not required (utoipa marks a
/// body required unless its type is an `Option`, which would also allow `null`).
fn mark_optional_bodies(doc: &mut Document) {
    for path in OPTIONAL_BODIES {
        let body = doc
            .paths
            .paths
            .get_mut(path)
            .and_then(|item| item.post.as_mut())
            .and_then(|op| op.request_body.as_mut());
        if let Some(body) = body {
            body.required = Some(Required::False);
        }
    }
}

/// Answers the guard and the body limits give before a handler runs: they
/// apply to every operation, so they are added here rather than to each.
fn add_common_answers(doc: &mut Document) {
    let error = |description: &str| {
        ResponseBuilder::new()
            .description(description)
            .content(
                "application/json",
                Content::new(Some(Ref::from_schema_name("ApiErrorBody"))),
            )
            .build()
    };
    for item in doc.paths.paths.values_mut() {
        let operations: [&mut Option<Operation>; 5] = [
            &mut item.get,
            &mut item.post,
            &mut item.put,
            &mut item.patch,
            &mut item.delete,
        ];
        for operation in operations.into_iter().flatten() {
            let public = operation
                .security
                .as_ref()
                .is_some_and(|s| s.iter().any(|r| r == &Default::default()));
            let responses = &mut operation.responses.responses;
            if !public {
                responses.insert(
                    "401".into(),
                    error("No valid API token (`Authorization: Bearer <token>`)").into(),
                );
                responses.insert(
                    "429".into(),
                    error("Too many wrong tokens from this address; see `Retry-After`").into(),
                );
            }
            if operation.request_body.is_some() {
                responses.insert(
                    "413".into(),
                    error("The request body is larger than 64 KiB").into(),
                );
                responses.insert(
                    "408".into(),
                    error("The request body was not sent in time").into(),
                );
            }
        }
    }
}

/// The whole document: the handlers `api::routes` registers, under `/api/v1`.
pub fn document() -> Document {
    let (_, mut doc) = actix_web::App::new()
        .into_utoipa_app()
        .openapi(ApiDoc::openapi())
        .service(utoipa_actix_web::scope(API_BASE).configure(super::api::routes))
        .split_for_parts();
    add_common_answers(&mut doc);
    mark_optional_bodies(&mut doc);
    doc
}

/// The document as JSON, made once.
fn document_text() -> &'static str {
    static TEXT: OnceLock<String> = OnceLock::new();
    TEXT.get_or_init(|| {
        document()
            .to_pretty_json()
            .expect("the OpenAPI document serialises")
    })
}

/// This document. Needs no token: it describes the API, it holds no data.
#[utoipa::path(
    tag = "server",
    security(()),
    responses((status = 200, description = "The OpenAPI 3.1 document of this API", content_type = "application/json"))
)]
#[get("/openapi.json")]
pub async fn document_json() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .body(document_text())
}
