//! Logging in and out.

use actix_web::cookie::{Cookie, SameSite};
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;
use serde::Deserialize;

use super::errors::{html, PageError};
use super::guard::{CurrentSession, SESSION_COOKIE};
use super::layout::Layout;
use super::throttle::{Admission, Throttles, Verdict};
use crate::auth;
use crate::janitor::Janitor;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/login", web::get().to(login_page))
        .route("/login", web::post().to(login))
        .route("/logout", web::post().to(logout));
}

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage {
    layout: Layout,
    next: String,
    error: Option<String>,
}

#[derive(Deserialize)]
struct NextQuery {
    next: Option<String>,
}

#[derive(Deserialize)]
struct LoginForm {
    #[serde(default)]
    password: String,
    #[serde(default)]
    next: String,
}

/// Only a path on this site: exactly one `/`, then neither `/` nor `\`,
/// and no whitespace or control character anywhere, before or after
/// percent-decoding. Browsers drop tabs and newlines from a `Location` and
/// read `\` as `/`, so `/%09/evil.example` would become `//evil.example`;
/// CR or LF would not even fit in the header. Anything else goes to `/`.
fn safe_next(next: &str) -> String {
    let acceptable = |path: &[u8]| {
        let path = String::from_utf8_lossy(path);
        path.starts_with('/')
            && !path[1..].starts_with('/')
            && !path.contains('\\')
            && !path.chars().any(|c| c.is_whitespace() || c.is_control())
    };
    let raw = next.as_bytes();
    if next.len() <= 2048 && acceptable(raw) && acceptable(&percent_decode(raw)) {
        next.to_owned()
    } else {
        "/".to_owned()
    }
}

/// `%XX` decoded once; anything else kept as it is.
fn percent_decode(raw: &[u8]) -> Vec<u8> {
    let hex = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        if raw[i] == b'%' && i + 2 < raw.len() {
            if let (Some(h), Some(l)) = (hex(raw[i + 1]), hex(raw[i + 2])) {
                out.push(h << 4 | l);
                i += 3;
                continue;
            }
        }
        out.push(raw[i]);
        i += 1;
    }
    out
}

async fn login_page(query: web::Query<NextQuery>) -> HttpResponse {
    let page = LoginPage {
        layout: Layout::public(),
        next: safe_next(query.next.as_deref().unwrap_or("/")),
        error: None,
    };
    html(StatusCode::OK, &page)
}

async fn login(
    req: HttpRequest,
    app: web::Data<Janitor>,
    throttles: web::Data<Throttles>,
    form: web::Form<LoginForm>,
) -> Result<HttpResponse, PageError> {
    let peer = req
        .peer_addr()
        .map(|a| a.ip())
        .unwrap_or([0, 0, 0, 0].into());
    let ip = super::client_ip(&req, &app);
    let page = |error: String| LoginPage {
        layout: Layout::public(),
        next: safe_next(&form.next),
        error: Some(error),
    };
    let locked = |retry_after: std::time::Duration| {
        let minutes = retry_after.as_secs().div_ceil(60);
        too_many(
            page(format!(
                "Too many failed logins from your address. Try again in {minutes} min."
            )),
            retry_after,
        )
    };
    // A locked-out client is refused before it takes a verification slot.
    if let Verdict::Locked { retry_after } = throttles.logins.check(ip) {
        return Ok(locked(retry_after));
    }
    let Some(slot) = throttles.verifications.acquire().await else {
        return Ok(too_many(
            page("The server is busy checking other logins. Try again in a few seconds.".into()),
            std::time::Duration::from_secs(5),
        ));
    };
    // Counted now, before the verification: parallel guesses cannot all
    // pass the check while none of them has failed yet.
    let delay_if_wrong = match throttles.logins.admit(ip) {
        Admission::Locked { retry_after } => return Ok(locked(retry_after)),
        Admission::Admitted { delay_if_wrong } => delay_if_wrong,
    };
    if !auth::check_password_holding(&app.store, &form.password, slot)
        .await
        .map_err(PageError::internal)?
    {
        tracing::warn!(client = %ip, %peer, "failed login");
        tokio::time::sleep(delay_if_wrong).await;
        return Ok(html(
            StatusCode::UNAUTHORIZED,
            &page("Wrong password.".into()),
        ));
    }
    throttles.logins.succeeded(ip);
    let location = safe_next(&form.next);
    // Logins are rare and the table small: a good moment to tidy it.
    if let Err(e) = auth::purge_sessions(&app.store, app.sessions).await {
        tracing::warn!(error = %e, "cannot delete expired sessions");
    }
    let (cookie_value, _) = auth::start_session(&app.store)
        .await
        .map_err(PageError::internal)?;
    let cookie = Cookie::build(SESSION_COOKIE, cookie_value)
        .path("/")
        .http_only(true)
        .same_site(SameSite::Strict)
        // Over HTTPS as a trusted proxy says, or as the public URL promises
        // (a forwarding header from anyone else proves nothing).
        .secure(
            super::origin::RequestOrigin::of(&req, &app.trusted_proxies).https
                || app.public_url.as_ref().is_some_and(|u| u.is_https()),
        )
        .finish();
    Ok(HttpResponse::SeeOther()
        .cookie(cookie)
        .insert_header(("Location", location))
        .finish())
}

/// 429 with the page and `Retry-After`.
fn too_many(page: LoginPage, retry_after: std::time::Duration) -> HttpResponse {
    let mut response = html(StatusCode::TOO_MANY_REQUESTS, &page);
    response.headers_mut().insert(
        actix_web::http::header::RETRY_AFTER,
        retry_after.as_secs().max(1).into(),
    );
    response
}

async fn logout(
    app: web::Data<Janitor>,
    session: CurrentSession,
) -> Result<HttpResponse, PageError> {
    auth::end_session(&app.store, &session.0)
        .await
        .map_err(PageError::internal)?;
    let mut removal = Cookie::build(SESSION_COOKIE, "").path("/").finish();
    removal.make_removal();
    Ok(HttpResponse::SeeOther()
        .cookie(removal)
        .insert_header(("Location", "/login"))
        .finish())
}

#[cfg(test)]
mod tests {
    use super::safe_next;

    #[test]
    fn next_stays_on_this_site() {
        assert_eq!(safe_next("/daemons?x=1"), "/daemons?x=1");
        assert_eq!(safe_next("/images?q=%41"), "/images?q=%41");
        assert_eq!(safe_next("/%"), "/%");
        for foreign in [
            "//evil.example/",
            "https://evil.example/",
            "/\\evil.example",
            "daemons",
            "",
            "/%09/evil.example",
            "/%2f/evil.example",
            "/%5Cevil.example",
            "/a\tb",
            "/a b",
            "/a\r\nSet-Cookie: x=1",
            "/%0d%0a",
            "/a\u{85}b",
        ] {
            assert_eq!(safe_next(foreign), "/", "{foreign}");
        }
    }
}
