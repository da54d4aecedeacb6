//! Logging in and out.

use actix_web::cookie::{Cookie, SameSite};
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;
use serde::Deserialize;

use super::errors::{html, PageError};
use super::guard::{CurrentSession, SESSION_COOKIE};
use super::layout::Layout;
use super::throttle::{LoginThrottle, Verdict};
use crate::app::App;
use crate::auth;

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

/// Only a path on this site: never `//other.site` or `https://…`.
fn safe_next(next: &str) -> String {
    let local = next.starts_with('/') && !next.starts_with("//") && !next.contains('\\');
    if local && next.len() <= 2048 {
        next.to_owned()
    } else {
        "/".to_owned()
    }
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
    app: web::Data<App>,
    throttle: web::Data<LoginThrottle>,
    form: web::Form<LoginForm>,
) -> Result<HttpResponse, PageError> {
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
    let ip = app
        .trusted_proxies
        .client_ip(peer, forwarded_for.as_deref());
    let page = |error: String| LoginPage {
        layout: Layout::public(),
        next: safe_next(&form.next),
        error: Some(error),
    };
    if let Verdict::Locked { retry_after } = throttle.check(ip) {
        let minutes = retry_after.as_secs().div_ceil(60);
        let mut response = html(
            StatusCode::TOO_MANY_REQUESTS,
            &page(format!(
                "Too many failed logins from your address. Try again in {minutes} min."
            )),
        );
        response.headers_mut().insert(
            actix_web::http::header::RETRY_AFTER,
            retry_after.as_secs().max(1).into(),
        );
        return Ok(response);
    }
    if !auth::check_password(&app.store, &form.password)
        .await
        .map_err(PageError::internal)?
    {
        let delay = throttle.failed(ip);
        tracing::warn!(client = %ip, %peer, "failed login");
        tokio::time::sleep(delay).await;
        return Ok(html(
            StatusCode::UNAUTHORIZED,
            &page("Wrong password.".into()),
        ));
    }
    throttle.succeeded(ip);
    let (cookie_value, _) = auth::start_session(&app.store)
        .await
        .map_err(PageError::internal)?;
    let cookie = Cookie::build(SESSION_COOKIE, cookie_value)
        .path("/")
        .http_only(true)
        .same_site(SameSite::Strict)
        .secure(req.connection_info().scheme() == "https")
        .finish();
    Ok(HttpResponse::SeeOther()
        .cookie(cookie)
        .insert_header(("Location", safe_next(&form.next)))
        .finish())
}

async fn logout(app: web::Data<App>, session: CurrentSession) -> Result<HttpResponse, PageError> {
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
        for foreign in [
            "//evil.example/",
            "https://evil.example/",
            "/\\evil.example",
            "daemons",
            "",
        ] {
            assert_eq!(safe_next(foreign), "/", "{foreign}");
        }
    }
}
