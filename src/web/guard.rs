//! Who may do what, decided once for every request before any handler runs:
//! only the janitor's own host is served (DNS rebinding), the API needs its
//! bearer token, pages need a session, and every state-changing page request
//! must come from our own pages (Origin and Sec-Fetch-Site) and carry the
//! session's CSRF token (header or form field).

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::http::{header, Method, StatusCode};
use actix_web::middleware::Next;
use actix_web::{web, Error, FromRequest, HttpMessage, HttpRequest, HttpResponse};
use askama::Template;
use futures_util::StreamExt;
use serde_json::json;

use super::errors::html;
use super::layout::Layout;
use super::origin::RequestOrigin;
use super::throttle::{Throttles, Verdict};
use super::BODY_LIMIT;
use crate::auth::{self, Session};
use crate::domain::{is_address_or_localhost, PublicUrl};
use crate::janitor::Janitor;

pub const SESSION_COOKIE: &str = "exapp_janitor_session";
pub const CSRF_HEADER: &str = "X-CSRF-Token";
pub const CSRF_FIELD: &str = "csrf_token";

const HEALTH: &str = "/api/v1/health";
const OPENAPI: &str = "/api/v1/openapi.json";

/// Reachable without logging in.
fn is_public(method: &Method, path: &str) -> bool {
    path.starts_with("/static/")
        || path == "/favicon.ico"
        || path == HEALTH
        || (path == OPENAPI && method == Method::GET)
        || (path == "/login" && (method == Method::GET || method == Method::POST))
}

fn is_safe(method: &Method) -> bool {
    matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

pub async fn guard(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, Error> {
    let app = req
        .app_data::<web::Data<Janitor>>()
        .expect("Janitor is registered")
        .clone();
    // The path the router matches: percent-encoded unreserved characters
    // decoded (`/%61pi/…` is `/api/…`). Classified by the raw path, such a
    // request was a page request that a session cookie let into the API.
    let path = req.match_info().as_str().to_owned();
    let origin = RequestOrigin::of(req.request(), &app.trusted_proxies);

    // The health check answers any Host: load balancers, container
    // healthchecks and monitoring ask by address or by a service name
    // (`exapp-janitor:8080`), and it tells a rebinding page nothing but
    // the version, which is no secret.
    if path != HEALTH && !host_accepted(app.public_url.as_ref(), &origin.host) {
        tracing::warn!(host = ?origin.host, "refused a request for a host that is not ours");
        let response = wrong_host(&path, app.public_url.as_ref(), &origin);
        return Ok(req.into_response(response));
    }
    if !is_safe(req.method())
        && !path.starts_with("/api/")
        && !same_origin(req.request(), app.public_url.as_ref(), &origin)
    {
        return Ok(req.into_response(forbidden(
            "This request did not come from exapp-janitor's own pages.",
        )));
    }
    if is_public(req.method(), &path) {
        return Ok(next.call(req).await?.map_into_boxed_body());
    }
    if path.starts_with("/api/") || path == "/metrics" {
        if path == "/metrics" && app.metrics_public {
            return Ok(next.call(req).await?.map_into_boxed_body());
        }
        let Some(token) = bearer_token(req.request()) else {
            return Ok(req.into_response(unauthorized_api()));
        };
        // Wrong tokens are throttled per client like failed logins. Unlike a
        // password, a token is checked by one hash comparison, so a failure
        // is counted after the check: counting every request before it (as
        // logins do, against parallel Argon2 work) would lock out a client
        // that sends many requests at once with the right token.
        let throttles = req
            .app_data::<web::Data<Throttles>>()
            .expect("Throttles are registered")
            .clone();
        let ip = super::client_ip(req.request(), &app);
        if let Verdict::Locked { retry_after } = throttles.api_tokens.check(ip) {
            return Ok(req.into_response(api_locked(retry_after)));
        }
        let ok = app.accepts_api_token(&token).await.unwrap_or_else(|e| {
            tracing::error!(error = %e, "cannot check the API token");
            false
        });
        if !ok {
            tracing::warn!(client = %ip, "wrong API token");
            let delay = throttles.api_tokens.failed(ip);
            tokio::time::sleep(delay).await;
            return Ok(req.into_response(unauthorized_api()));
        }
        throttles.api_tokens.succeeded(ip);
        return Ok(next.call(req).await?.map_into_boxed_body());
    }

    let session = match req.cookie(SESSION_COOKIE) {
        Some(cookie) => auth::find_session(&app.store, cookie.value(), app.sessions)
            .await
            .unwrap_or_else(|e| {
                tracing::error!(error = %e, "cannot look up the session");
                None
            }),
        None => None,
    };
    let Some(session) = session else {
        let response = login_required(req.request());
        return Ok(req.into_response(response));
    };

    let req = if is_safe(req.method()) {
        req
    } else {
        match check_csrf(req, &session).await? {
            Ok(req) => req,
            Err(req) => {
                return Ok(req.into_response(forbidden(
                    "This form has expired or was not sent by exapp-janitor. Reload the page and try again.",
                )))
            }
        }
    };
    req.extensions_mut().insert(session);
    Ok(next.call(req).await?.map_into_boxed_body())
}

/// A DNS-rebinding page reaches us under its own domain name, which the
/// browser sends as `Host`: only the pinned public URL's host, or without
/// one an IP address or a `localhost` name (which cannot be rebound), is ours.
fn host_accepted(public_url: Option<&PublicUrl>, host: &str) -> bool {
    match public_url {
        Some(url) => url.matches_host(host),
        None => is_address_or_localhost(host),
    }
}

#[derive(Template)]
#[template(path = "wrong_host.html")]
struct WrongHostPage<'a> {
    layout: Layout,
    host: &'a str,
    public_url: Option<String>,
    suggestion: String,
}

/// 421 Misdirected Request: this server does not answer for that host. A
/// page (or, for the API, a JSON error) that says how to make it answer.
fn wrong_host(path: &str, public_url: Option<&PublicUrl>, origin: &RequestOrigin) -> HttpResponse {
    let host: String = origin.host.chars().take(255).collect();
    let scheme = if origin.https { "https" } else { "http" };
    let suggestion = format!("{scheme}://{host}");
    if path.starts_with("/api/") {
        let error = match public_url {
            Some(url) => format!(
                "this server answers only at {url} (--public-url), not at {host:?}"
            ),
            None => format!(
                "this server answers at IP addresses and localhost only; to use the name {host:?}, start it with --public-url {suggestion} (or EXAPP_JANITOR_PUBLIC_URL)"
            ),
        };
        return HttpResponse::build(StatusCode::MISDIRECTED_REQUEST)
            .json(json!({ "error": error }));
    }
    html(
        StatusCode::MISDIRECTED_REQUEST,
        &WrongHostPage {
            layout: Layout::public(),
            host: &host,
            public_url: public_url.map(PublicUrl::to_string),
            suggestion,
        },
    )
}

/// Cross-site requests are refused: the browser tells us where a request
/// came from in `Sec-Fetch-Site` (modern browsers) or `Origin`. The Origin
/// must be the pinned public URL's, or have the request's own host (as
/// the peer sent it, or a trusted proxy forwarded it).
fn same_origin(req: &HttpRequest, public_url: Option<&PublicUrl>, own: &RequestOrigin) -> bool {
    if let Some(site) = req.headers().get("Sec-Fetch-Site") {
        return site.as_bytes() == b"same-origin";
    }
    match req
        .headers()
        .get(header::ORIGIN)
        .and_then(|o| o.to_str().ok())
    {
        None => true, // not a browser, or a browser too old to say; CSRF token still required
        Some(origin) => match public_url {
            Some(url) => url.matches_origin(origin),
            None => origin
                .split_once("://")
                .is_some_and(|(_, rest)| rest.eq_ignore_ascii_case(&own.host)),
        },
    }
}

fn bearer_token(req: &HttpRequest) -> Option<String> {
    let value = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    (scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty())
        .then(|| token.trim().to_owned())
}

/// The CSRF token from the header (htmx) or, for a plain form post, from the
/// form body, which is read here and handed on unchanged to the handler.
async fn check_csrf(
    mut req: ServiceRequest,
    session: &Session,
) -> Result<Result<ServiceRequest, ServiceRequest>, Error> {
    if let Some(token) = req.headers().get(CSRF_HEADER).and_then(|v| v.to_str().ok()) {
        let ok = auth::csrf_matches(session, token);
        return Ok(if ok { Ok(req) } else { Err(req) });
    }
    let is_form = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("application/x-www-form-urlencoded"));
    if !is_form {
        return Ok(Err(req));
    }
    let mut body = web::BytesMut::new();
    let mut payload = req.take_payload();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk?;
        if body.len() + chunk.len() > BODY_LIMIT {
            return Err(actix_web::error::ErrorPayloadTooLarge(
                "the request body is too large",
            ));
        }
        body.extend_from_slice(&chunk);
    }
    let body = body.freeze();
    let presented = form_urlencoded_field(&body, CSRF_FIELD);
    let ok = presented.is_some_and(|token| auth::csrf_matches(session, &token));
    let (http, _) = req.into_parts();
    let req = ServiceRequest::from_parts(http, Payload::from(body));
    Ok(if ok { Ok(req) } else { Err(req) })
}

fn form_urlencoded_field(body: &[u8], name: &str) -> Option<String> {
    serde_urlencoded::from_bytes::<Vec<(String, String)>>(body)
        .ok()?
        .into_iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v)
}

fn api_locked(retry_after: std::time::Duration) -> HttpResponse {
    let minutes = retry_after.as_secs().div_ceil(60);
    HttpResponse::TooManyRequests()
        .insert_header((header::RETRY_AFTER, retry_after.as_secs().max(1)))
        .json(json!({
            "error": format!("too many wrong API tokens from your address; try again in {minutes} min")
        }))
}

fn unauthorized_api() -> HttpResponse {
    HttpResponse::Unauthorized()
        .insert_header((header::WWW_AUTHENTICATE, "Bearer"))
        .json(json!({ "error": "a valid API token is required (Authorization: Bearer <token>)" }))
}

/// Browsers go to the login page; htmx swaps are told to navigate there.
fn login_required(req: &HttpRequest) -> HttpResponse {
    let target = if is_safe(req.method()) {
        req.uri()
            .path_and_query()
            .map(|p| p.as_str())
            .unwrap_or("/")
    } else {
        "/"
    };
    let location = format!("/login?next={}", urlencode(target));
    if req.headers().contains_key("HX-Request") {
        HttpResponse::Unauthorized()
            .insert_header(("HX-Redirect", location))
            .finish()
    } else {
        HttpResponse::SeeOther()
            .insert_header((header::LOCATION, location))
            .finish()
    }
}

fn forbidden(message: &str) -> HttpResponse {
    HttpResponse::build(StatusCode::FORBIDDEN)
        .content_type("text/plain; charset=utf-8")
        .body(message.to_owned())
}

fn urlencode(value: &str) -> String {
    serde_urlencoded::to_string([("", value)])
        .map(|s| s[1..].to_owned())
        .unwrap_or_default()
}

/// The session of the current request; present on every page handler's
/// request because the guard put it there.
#[derive(Debug, Clone)]
pub struct CurrentSession(pub Session);

impl FromRequest for CurrentSession {
    type Error = Error;
    type Future = std::future::Ready<Result<Self, Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        std::future::ready(
            req.extensions()
                .get::<Session>()
                .cloned()
                .map(CurrentSession)
                .ok_or_else(|| actix_web::error::ErrorUnauthorized("login required")),
        )
    }
}
