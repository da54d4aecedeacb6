//! Which `Host` a request may name: the one `--public-url` pins, or, without
//! it, an IP address or a `localhost` name. A DNS-rebinding attack makes a
//! browser send the attacker's own domain name as `Host` to our address, so
//! a name we were not told about is refused; an IP literal cannot be
//! rebound (the browser's origin is then the address itself).

use std::fmt;
use std::net::{IpAddr, Ipv6Addr};
use std::str::FromStr;

/// The address people (and the reverse proxy) use for the janitor, like
/// `https://janitor.example.org` or `http://janitor.lan:8080`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicUrl {
    https: bool,
    /// Lower case, an IPv6 address in brackets, no trailing dot.
    host: String,
    /// Only when it is not the scheme's default.
    port: Option<u16>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PublicUrlError {
    #[error("{0:?} must start with http:// or https:// (like https://janitor.example.org)")]
    Scheme(String),
    #[error("{0:?} has no host name (like https://janitor.example.org)")]
    NoHost(String),
    #[error("{0:?}: the host must be a plain name or address, without user or password")]
    BadHost(String),
    #[error("{0:?}: the port must be a number from 1 to 65535")]
    BadPort(String),
    #[error(
        "{0:?}: the janitor is served at the root; give the URL without a path, query or fragment"
    )]
    Path(String),
}

impl FromStr for PublicUrl {
    type Err = PublicUrlError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let raw = s.trim();
        let (https, rest) = if let Some(rest) = strip_prefix_ignore_case(raw, "https://") {
            (true, rest)
        } else if let Some(rest) = strip_prefix_ignore_case(raw, "http://") {
            (false, rest)
        } else {
            return Err(PublicUrlError::Scheme(raw.to_owned()));
        };
        // A trailing `/` is the root; anything after it is a path we do not serve.
        let (authority, path) = match rest.find(['/', '?', '#']) {
            Some(i) => rest.split_at(i),
            None => (rest, ""),
        };
        if !path.is_empty() && path != "/" {
            return Err(PublicUrlError::Path(raw.to_owned()));
        }
        if authority.is_empty() {
            return Err(PublicUrlError::NoHost(raw.to_owned()));
        }
        if authority.contains('@') {
            return Err(PublicUrlError::BadHost(raw.to_owned()));
        }
        let Some((host, port)) = split_host_port(authority) else {
            return Err(PublicUrlError::BadPort(raw.to_owned()));
        };
        let host = normalise_host(host).ok_or_else(|| PublicUrlError::BadHost(raw.to_owned()))?;
        if port == Some(0) {
            return Err(PublicUrlError::BadPort(raw.to_owned()));
        }
        let default = if https { 443 } else { 80 };
        Ok(Self {
            https,
            host,
            port: port.filter(|p| *p != default),
        })
    }
}

impl fmt::Display for PublicUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.origin())
    }
}

impl PublicUrl {
    pub fn is_https(&self) -> bool {
        self.https
    }

    /// `scheme://host[:port]`, as a browser writes it in `Origin`.
    pub fn origin(&self) -> String {
        let scheme = if self.https { "https" } else { "http" };
        match self.port {
            Some(port) => format!("{scheme}://{}:{port}", self.host),
            None => format!("{scheme}://{}", self.host),
        }
    }

    /// Whether a `Host` (or forwarded host) names this URL's host and port;
    /// the default port may be written or left out.
    pub fn matches_host(&self, host: &str) -> bool {
        let Some((name, port)) = split_host_port(host) else {
            return false;
        };
        let default = if self.https { 443 } else { 80 };
        normalise_host(name).is_some_and(|n| n == self.host)
            && port.filter(|p| *p != default) == self.port
    }

    /// Whether an `Origin` header is exactly this URL's origin.
    pub fn matches_origin(&self, origin: &str) -> bool {
        origin
            .parse::<PublicUrl>()
            .is_ok_and(|o| o == *self && !origin.trim_end().ends_with('/'))
    }
}

/// Without `--public-url`: an IP address (v4, or v6 in brackets), with or
/// without a port, or `localhost` and its subdomains (RFC 6761 keeps them on
/// the loopback interface, so they cannot be rebound to us from outside).
pub fn is_address_or_localhost(host: &str) -> bool {
    let Some((name, _)) = split_host_port(host) else {
        return false;
    };
    let name = name.strip_suffix('.').unwrap_or(name).to_ascii_lowercase();
    if name == "localhost" || name.ends_with(".localhost") {
        return true;
    }
    match name.strip_prefix('[').and_then(|n| n.strip_suffix(']')) {
        Some(v6) => v6.parse::<Ipv6Addr>().is_ok(),
        None => name.parse::<IpAddr>().is_ok(),
    }
}

/// `name`, `name:port`, `[v6]`, `[v6]:port` (and a bare IPv6 address, which
/// no browser sends but which cannot be a DNS name either). None when the
/// port is not a number.
fn split_host_port(authority: &str) -> Option<(&str, Option<u16>)> {
    if authority.starts_with('[') {
        let end = authority.find(']')?;
        let (host, rest) = authority.split_at(end + 1);
        return match rest {
            "" => Some((host, None)),
            _ => Some((host, Some(port(rest.strip_prefix(':')?)?))),
        };
    }
    if authority.matches(':').count() > 1 {
        return authority
            .parse::<Ipv6Addr>()
            .is_ok()
            .then_some((authority, None));
    }
    match authority.split_once(':') {
        None => Some((authority, None)),
        Some((host, p)) => Some((host, Some(port(p)?))),
    }
}

fn port(digits: &str) -> Option<u16> {
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// Lower case, without a trailing dot; None for what cannot be a host name
/// (user info, spaces, an empty name).
fn normalise_host(host: &str) -> Option<String> {
    let host = host.strip_suffix('.').unwrap_or(host);
    let ok = !host.is_empty()
        && host.bytes().all(|b| {
            b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_' | b'[' | b']' | b':')
        });
    ok.then(|| host.to_ascii_lowercase())
}

fn strip_prefix_ignore_case<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    (s.len() >= prefix.len() && s[..prefix.len()].eq_ignore_ascii_case(prefix))
        .then(|| &s[prefix.len()..])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(s: &str) -> PublicUrl {
        s.parse().unwrap()
    }

    #[test]
    fn a_public_url_is_a_scheme_a_host_and_maybe_a_port() {
        assert_eq!(
            url("https://Janitor.Example.org/").origin(),
            "https://janitor.example.org"
        );
        assert_eq!(
            url("http://janitor.lan:8080").origin(),
            "http://janitor.lan:8080"
        );
        assert_eq!(
            url("https://janitor.lan:443").origin(),
            "https://janitor.lan"
        );
        assert_eq!(
            url("http://[2001:db8::1]:81").origin(),
            "http://[2001:db8::1]:81"
        );
        assert!(url("https://x.example").is_https());
        assert!(!url("http://x.example").is_https());
    }

    #[test]
    fn anything_but_a_root_http_url_is_refused_with_a_reason() {
        for (bad, why) in [
            ("janitor.lan", "must start with http"),
            ("ftp://janitor.lan", "must start with http"),
            ("https://", "no host"),
            ("https://janitor.lan/janitor/", "without a path"),
            ("https://janitor.lan?x=1", "without a path"),
            ("https://admin:pw@janitor.lan", "without user"),
            ("https://janitor.lan:http", "port must be a number"),
            ("https://janitor.lan:0", "port must be a number"),
            ("https://janitor.lan:70000", "port must be a number"),
        ] {
            let err = bad.parse::<PublicUrl>().unwrap_err().to_string();
            assert!(err.contains(why), "{bad}: {err}");
        }
    }

    #[test]
    fn the_pinned_host_matches_with_or_without_its_default_port() {
        let https = url("https://janitor.example.org");
        assert!(https.matches_host("janitor.example.org"));
        assert!(https.matches_host("JANITOR.example.org:443"));
        assert!(https.matches_host("janitor.example.org."));
        assert!(!https.matches_host("janitor.example.org:8443"));
        assert!(!https.matches_host("evil.example"));
        assert!(!https.matches_host("127.0.0.1"));
        assert!(!https.matches_host(""));
        let lan = url("http://janitor.lan:8080");
        assert!(lan.matches_host("janitor.lan:8080"));
        assert!(!lan.matches_host("janitor.lan"));
    }

    #[test]
    fn the_pinned_origin_is_scheme_host_and_port_exactly() {
        let https = url("https://janitor.example.org");
        assert!(https.matches_origin("https://janitor.example.org"));
        assert!(https.matches_origin("https://janitor.example.org:443"));
        assert!(!https.matches_origin("http://janitor.example.org"));
        assert!(!https.matches_origin("https://janitor.example.org:8443"));
        assert!(!https.matches_origin("https://evil.example"));
        assert!(!https.matches_origin("null"));
    }

    #[test]
    fn ip_literals_and_localhost_names_are_hosts_that_cannot_be_rebound() {
        for ok in [
            "192.168.1.5",
            "192.168.1.5:8080",
            "127.0.0.1:80",
            "[::1]",
            "[::1]:8080",
            "[2001:db8::1]:443",
            "::1",
            "localhost",
            "LOCALHOST:8080",
            "localhost.",
            "janitor.localhost:8080",
        ] {
            assert!(is_address_or_localhost(ok), "{ok}");
        }
        for name in [
            "",
            "janitor.lan",
            "evil.example:8080",
            "localhost.evil.example",
            "192.168.1.5.nip.io",
            "0x7f.1",
            "127.1",
            "[::1]x",
            "192.168.1.5:http",
            "[janitor.lan]",
        ] {
            assert!(!is_address_or_localhost(name), "{name}");
        }
    }
}
