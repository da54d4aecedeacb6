//! What the janitor needs to talk to Nextcloud: its address, an admin's
//! login name and an app password (a secret). Each is parsed once, at the
//! boundary (a flag, a form, a JSON body, a database row).

use std::fmt;

/// Nextcloud's base URL, like `https://cloud.example.org` or
/// `https://example.org/nextcloud` (a Nextcloud under a path).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NextcloudUrl {
    https: bool,
    /// Lower case; an IPv6 address keeps its brackets.
    host: String,
    port: u16,
    /// Empty, or `/path` without a trailing slash.
    path: String,
}

impl NextcloudUrl {
    pub const MAX_LEN: usize = 512;

    pub fn parse(raw: &str) -> Result<Self, String> {
        let raw = raw.trim();
        let example = "(like https://cloud.example.org)";
        if raw.is_empty() {
            return Err(format!("the Nextcloud URL is empty {example}"));
        }
        if raw.len() > Self::MAX_LEN {
            return Err(format!(
                "a Nextcloud URL has at most {} characters",
                Self::MAX_LEN
            ));
        }
        let lower = raw.to_ascii_lowercase();
        let (https, rest) = if lower.starts_with("https://") {
            (true, &raw[8..])
        } else if lower.starts_with("http://") {
            (false, &raw[7..])
        } else {
            return Err(format!(
                "the Nextcloud URL must start with https:// or http:// {example}"
            ));
        };
        if rest.contains(['?', '#']) {
            return Err("the Nextcloud URL must not have a query or fragment".into());
        }
        if !rest.bytes().all(|b| b.is_ascii_graphic()) {
            return Err("the Nextcloud URL has only visible ASCII characters".into());
        }
        let (authority, path) = match rest.find('/') {
            Some(i) => rest.split_at(i),
            None => (rest, ""),
        };
        if authority.contains('@') {
            return Err(
                "give the user and app password separately, not in the Nextcloud URL".into(),
            );
        }
        let (host, port) = split_host_port(authority)
            .ok_or_else(|| format!("the Nextcloud URL has no valid host and port {example}"))?;
        let port = port.unwrap_or(if https { 443 } else { 80 });
        let path = path.trim_end_matches('/');
        // `index.php` is Nextcloud's, not part of its base address.
        let path = path
            .strip_suffix("/index.php")
            .unwrap_or(path)
            .trim_end_matches('/');
        Ok(Self {
            https,
            host: host.to_ascii_lowercase(),
            port,
            path: path.to_owned(),
        })
    }

    pub fn https(&self) -> bool {
        self.https
    }

    /// For the TCP connection: a bracketed IPv6 address loses its brackets.
    pub fn connect_host(&self) -> &str {
        self.host.trim_start_matches('[').trim_end_matches(']')
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The `Host` header's value.
    pub fn authority(&self) -> String {
        let default = if self.https { 443 } else { 80 };
        if self.port == default {
            self.host.clone()
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    /// The request target for `path` (which starts with `/`) under this base.
    pub fn target(&self, path: &str) -> String {
        format!("{}{path}", self.path)
    }
}

impl fmt::Display for NextcloudUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = if self.https { "https" } else { "http" };
        write!(f, "{scheme}://{}{}", self.authority(), self.path)
    }
}

fn split_host_port(authority: &str) -> Option<(&str, Option<u16>)> {
    let (host, port) = if authority.starts_with('[') {
        let end = authority.find(']')?;
        let (host, rest) = authority.split_at(end + 1);
        match rest {
            "" => (host, None),
            _ => (host, Some(rest.strip_prefix(':')?)),
        }
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        }
    };
    let valid_host = !host.is_empty()
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._[]:".contains(&b));
    if !valid_host {
        return None;
    }
    let port = match port {
        None => None,
        Some(p) => Some(p.parse::<u16>().ok().filter(|p| *p > 0)?),
    };
    Some((host, port))
}

/// A Nextcloud login name: what Basic auth carries before the `:`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NextcloudUser(String);

impl NextcloudUser {
    pub const MAX_LEN: usize = 64;

    pub fn parse(raw: &str) -> Result<Self, String> {
        let user = raw.trim();
        if user.is_empty() {
            return Err("the Nextcloud user is empty".into());
        }
        if user.chars().count() > Self::MAX_LEN {
            return Err(format!(
                "a Nextcloud user name has at most {} characters",
                Self::MAX_LEN
            ));
        }
        if user.contains(':') || user.chars().any(char::is_control) {
            return Err("a Nextcloud user name has no ':' and no control characters".into());
        }
        Ok(Self(user.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for NextcloudUser {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An app password ("Personal settings → Security → Devices & sessions").
/// It acts as its admin everywhere in Nextcloud, so nothing prints it: no
/// `Display`, and `Debug` shows only that there is one.
#[derive(Clone, PartialEq, Eq)]
pub struct AppPassword(String);

impl AppPassword {
    pub const MAX_LEN: usize = 256;

    /// As read from a file or a form: surrounding whitespace (the file's
    /// final newline) is not part of it.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let password = raw.trim();
        if password.is_empty() {
            return Err("the app password is empty".into());
        }
        if password.len() > Self::MAX_LEN {
            return Err(format!(
                "an app password has at most {} characters",
                Self::MAX_LEN
            ));
        }
        if !password.bytes().all(|b| b.is_ascii_graphic()) {
            return Err("an app password has only visible ASCII characters (no spaces)".into());
        }
        Ok(Self(password.to_owned()))
    }

    /// The password itself: for the one header that carries it, and the store.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for AppPassword {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AppPassword(redacted)")
    }
}

/// Everything needed to call Nextcloud as its admin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NextcloudLogin {
    pub url: NextcloudUrl,
    pub user: NextcloudUser,
    pub password: AppPassword,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_url_keeps_its_path_and_drops_a_trailing_slash_and_index_php() {
        let url = NextcloudUrl::parse(" https://Cloud.Example.org/nextcloud/index.php/ ").unwrap();
        assert_eq!(url.to_string(), "https://cloud.example.org/nextcloud");
        assert_eq!(url.target("/status.php"), "/nextcloud/status.php");
        assert_eq!(url.port(), 443);
        let plain = NextcloudUrl::parse("http://127.0.0.1:8081").unwrap();
        assert_eq!(plain.authority(), "127.0.0.1:8081");
        assert_eq!(plain.target("/status.php"), "/status.php");
    }

    #[test]
    fn a_url_with_credentials_query_or_another_scheme_is_refused() {
        for bad in [
            "",
            "cloud.example.org",
            "ftp://cloud.example.org",
            "https://admin:pw@cloud.example.org",
            "https://cloud.example.org/?x=1",
            "https://cloud.example.org:0",
            "https://cloud.example.org:99999",
            "https://",
            "https://exa mple.org",
        ] {
            assert!(NextcloudUrl::parse(bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn an_app_password_is_never_shown_by_debug() {
        let p = AppPassword::parse("abcde-fghij-klmno\n").unwrap();
        assert_eq!(p.expose(), "abcde-fghij-klmno");
        assert_eq!(format!("{p:?}"), "AppPassword(redacted)");
        assert!(AppPassword::parse("  ").is_err());
        assert!(AppPassword::parse("with space").is_err());
    }

    #[test]
    fn a_user_name_has_no_colon() {
        assert!(NextcloudUser::parse("admin").is_ok());
        assert!(NextcloudUser::parse("ad:min").is_err());
        assert!(NextcloudUser::parse("").is_err());
    }
}
