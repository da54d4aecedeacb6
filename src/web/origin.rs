//! The scheme and host a request was made with, as the browser saw them:
//! what the `Secure` cookie flag, the Origin check and the Host check use.
//!
//! `X-Forwarded-Proto`, `X-Forwarded-Host` and `Forwarded` are believed only
//! from a `--trusted-proxy` peer. From anyone else they are words the client
//! wrote itself: believed, a forged `X-Forwarded-Host` made a cross-site
//! Origin look like our own, and a forged `Forwarded: proto=https` decided
//! the cookie's flags. (actix's `ConnectionInfo` believes them from anyone,
//! so it is not used.)

use actix_web::http::header;
use actix_web::HttpRequest;

use crate::domain::TrustedProxies;

/// The scheme and host of one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestOrigin {
    pub https: bool,
    /// `host[:port]` as the browser wrote it; empty when none was sent.
    pub host: String,
}

impl RequestOrigin {
    pub fn of(req: &HttpRequest, trusted: &TrustedProxies) -> Self {
        let direct = Self {
            // The server itself speaks plain HTTP only; TLS ends at a proxy.
            https: req.app_config().secure(),
            host: req
                .headers()
                .get(header::HOST)
                .and_then(|h| h.to_str().ok())
                .map(str::to_owned)
                .or_else(|| req.uri().authority().map(|a| a.as_str().to_owned()))
                .unwrap_or_default(),
        };
        let from_proxy = req
            .peer_addr()
            .is_some_and(|peer| trusted.contains(peer.ip()));
        if !from_proxy {
            return direct;
        }
        let forwarded = nearest_forwarded(&joined(req, "forwarded"));
        let proto = nearest(&joined(req, "x-forwarded-proto")).or(forwarded.proto);
        let host = nearest(&joined(req, "x-forwarded-host")).or(forwarded.host);
        Self {
            https: proto.map_or(direct.https, |p| p.eq_ignore_ascii_case("https")),
            host: host.unwrap_or(direct.host),
        }
    }
}

/// Every line of a header as one list (RFC 9110, 5.3).
fn joined(req: &HttpRequest, name: &str) -> String {
    req.headers()
        .get_all(name)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        .collect::<Vec<_>>()
        .join(",")
}

/// The right-most entry: the one the trusted proxy itself wrote. Entries
/// to its left may have come from the client, which a proxy that appends
/// rather than replaces passes on.
fn nearest(list: &str) -> Option<String> {
    list.rsplit(',')
        .map(str::trim)
        .find(|v| !v.is_empty())
        .map(str::to_owned)
}

#[derive(Debug, Default, PartialEq, Eq)]
struct ForwardedElement {
    proto: Option<String>,
    host: Option<String>,
}

/// `proto` and `host` of the right-most `Forwarded` element (RFC 7239):
/// `for=192.0.2.1;proto=https;host="janitor.example.org", for=…`.
fn nearest_forwarded(list: &str) -> ForwardedElement {
    let Some(element) = split_outside_quotes(list, ',')
        .into_iter()
        .rev()
        .find(|e| !e.trim().is_empty())
    else {
        return ForwardedElement::default();
    };
    let mut found = ForwardedElement::default();
    for pair in split_outside_quotes(element, ';') {
        let Some((key, value)) = pair.split_once('=') else {
            continue;
        };
        let value = value.trim();
        let value = value
            .strip_prefix('"')
            .and_then(|v| v.strip_suffix('"'))
            .unwrap_or(value)
            .replace("\\\"", "\"");
        match key.trim().to_ascii_lowercase().as_str() {
            "proto" => found.proto = Some(value),
            "host" => found.host = Some(value),
            _ => {}
        }
    }
    found
}

fn split_outside_quotes(s: &str, sep: char) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut start, mut quoted, mut escaped) = (0, false, false);
    for (i, c) in s.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            c if c == sep && !quoted => {
                parts.push(&s[start..i]);
                start = i + c.len_utf8();
            }
            _ => {}
        }
    }
    parts.push(&s[start..]);
    parts
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test::TestRequest;

    fn trusted(list: &[&str]) -> TrustedProxies {
        TrustedProxies::new(list.iter().map(|s| s.parse().unwrap()).collect())
    }

    fn from(peer: &str) -> TestRequest {
        TestRequest::default()
            .peer_addr(format!("{peer}:40000").parse().unwrap())
            .insert_header(("Host", "127.0.0.1:8080"))
    }

    const FORGED: [(&str, &str); 3] = [
        ("X-Forwarded-Proto", "https"),
        ("X-Forwarded-Host", "evil.example"),
        ("Forwarded", "proto=https;host=evil.example"),
    ];

    #[test]
    fn forwarding_headers_from_an_untrusted_peer_are_ignored() {
        for (name, value) in FORGED {
            let req = from("198.51.100.9")
                .insert_header((name, value))
                .to_http_request();
            let origin = RequestOrigin::of(&req, &trusted(&["127.0.0.1"]));
            assert_eq!(
                origin,
                RequestOrigin {
                    https: false,
                    host: "127.0.0.1:8080".into()
                },
                "{name}"
            );
        }
        // No trusted proxy at all: not even loopback is believed.
        let req = from("127.0.0.1").insert_header(FORGED[0]).to_http_request();
        assert!(!RequestOrigin::of(&req, &TrustedProxies::default()).https);
    }

    #[test]
    fn a_trusted_proxy_names_the_scheme_and_host() {
        for (headers, host) in [
            (
                vec![
                    ("X-Forwarded-Proto", "https"),
                    ("X-Forwarded-Host", "janitor.example.org"),
                ],
                "janitor.example.org",
            ),
            (
                vec![(
                    "Forwarded",
                    r#"for=203.0.113.7;proto=https;host="janitor.example.org""#,
                )],
                "janitor.example.org",
            ),
            (
                vec![("Forwarded", "for=203.0.113.7;proto=HTTPS")],
                "127.0.0.1:8080",
            ),
        ] {
            let mut req = from("127.0.0.1");
            for h in &headers {
                req = req.insert_header(*h);
            }
            let origin = RequestOrigin::of(&req.to_http_request(), &trusted(&["127.0.0.1"]));
            assert_eq!(
                origin,
                RequestOrigin {
                    https: true,
                    host: host.into()
                },
                "{headers:?}"
            );
        }
    }

    #[test]
    fn only_the_entry_the_proxy_wrote_counts_not_what_the_client_sent_before_it() {
        let req = from("127.0.0.1")
            .insert_header(("X-Forwarded-Proto", "https, http"))
            .insert_header(("X-Forwarded-Host", "evil.example, janitor.example.org"))
            .to_http_request();
        let origin = RequestOrigin::of(&req, &trusted(&["127.0.0.1"]));
        assert!(!origin.https);
        assert_eq!(origin.host, "janitor.example.org");
        assert_eq!(
            nearest_forwarded(
                r#"host=evil.example;proto=https, for="[::1]:1";host="a,b";proto=http"#
            ),
            ForwardedElement {
                proto: Some("http".into()),
                host: Some("a,b".into())
            }
        );
    }

    #[test]
    fn the_x_forwarded_headers_win_over_forwarded() {
        // The README's nginx example sets (replaces) X-Forwarded-Proto and
        // X-Forwarded-Host; a `Forwarded` it passes on came from the client.
        let req = from("127.0.0.1")
            .insert_header(("Forwarded", "proto=http;host=evil.example"))
            .insert_header(("X-Forwarded-Proto", "https"))
            .insert_header(("X-Forwarded-Host", "janitor.example.org"))
            .to_http_request();
        let origin = RequestOrigin::of(&req, &trusted(&["127.0.0.1"]));
        assert_eq!(
            origin,
            RequestOrigin {
                https: true,
                host: "janitor.example.org".into()
            }
        );
    }
}
