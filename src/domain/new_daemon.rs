use serde::Deserialize;

use std::fmt;

use super::{parse_exapps, DaemonName, Endpoint, FieldErrors, HarpAccess, HarpKey, TlsFiles};

/// A daemon as a person typed it: CLI flags, a form or a JSON body.
/// Untrusted; `NewDaemon::parse` turns it into something storable.
#[derive(Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewDaemonInput {
    #[serde(default)]
    #[schema(required = true, pattern = "^[A-Za-z0-9_.-]{1,64}$", example = "gpu1")]
    pub name: String,
    /// `unix:///path`, `tcp://host:port`, `http://host:port`, or
    /// `https://host:port` with the three TLS files.
    #[serde(default)]
    #[schema(required = true, example = "unix:///var/run/docker.sock")]
    pub endpoint: String,
    #[serde(default)]
    pub tls_ca: Option<String>,
    #[serde(default)]
    pub tls_cert: Option<String>,
    #[serde(default)]
    pub tls_key: Option<String>,
    /// A `harp+http://` daemon's shared key (never shown again).
    #[serde(default)]
    pub harp_key: Option<String>,
    /// A `harp+http://` daemon's docker-engine-port (default 24000).
    #[serde(default)]
    #[schema(minimum = 1, maximum = 65535)]
    pub harp_docker_port: Option<i64>,
    /// The ExApp IDs to look for on a `harp+http://` daemon (HaRP lists nothing).
    #[serde(default)]
    pub exapps: Option<Vec<String>>,
}

/// Without the HaRP key, which nothing prints.
impl fmt::Debug for NewDaemonInput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NewDaemonInput")
            .field("name", &self.name)
            .field("endpoint", &self.endpoint)
            .field("tls", &self.tls_ca.is_some())
            .field("harp_key", &self.harp_key.as_ref().map(|_| "redacted"))
            .field("harp_docker_port", &self.harp_docker_port)
            .field("exapps", &self.exapps)
            .finish()
    }
}

/// A daemon that passed every check and can be stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewDaemon {
    pub name: DaemonName,
    pub endpoint: Endpoint,
    /// For a HaRP daemon (and only for one).
    pub harp: Option<HarpAccess>,
}

/// A blank form field means "not given".
fn given(value: &Option<String>) -> Option<&str> {
    value.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

impl NewDaemon {
    pub fn parse(input: &NewDaemonInput) -> Result<Self, FieldErrors> {
        let mut errors = FieldErrors::new();
        let name = DaemonName::parse(input.name.trim())
            .map_err(|m| errors.add("name", m))
            .ok();

        let (ca, cert, key) = (
            given(&input.tls_ca),
            given(&input.tls_cert),
            given(&input.tls_key),
        );
        let wants_tls = input.endpoint.trim_start().starts_with("https://");
        // A HaRP's TLS (harp+https://) takes a CA only: see `harp_access`.
        let is_harp = input.endpoint.trim_start().starts_with("harp+");
        let tls = match (ca, cert, key) {
            _ if is_harp => None,
            (None, None, None) => None,
            _ if !wants_tls => {
                errors.add("endpoint", "TLS files apply only to https:// endpoints");
                None
            }
            (ca, cert, key) => {
                let missing = "required for an https:// endpoint";
                for (field, value) in [("tls_ca", ca), ("tls_cert", cert), ("tls_key", key)] {
                    if value.is_none() {
                        errors.add(field, missing);
                    }
                }
                match TlsFiles::resolve(ca.unwrap_or(""), cert.unwrap_or(""), key.unwrap_or("")) {
                    Ok(files) => Some(files),
                    Err(problems) => {
                        for (field, message) in problems {
                            errors.add(field, message);
                        }
                        None
                    }
                }
            }
        };
        let mut endpoint = if wants_tls && tls.is_none() && (ca, cert, key) != (None, None, None) {
            None // the TLS fields already carry the error
        } else {
            Endpoint::parse(&input.endpoint, tls)
                .map_err(|m| errors.add("endpoint", m))
                .ok()
        };
        let harp = endpoint
            .as_mut()
            .and_then(|e| harp_access(input, e, &mut errors));
        match (name, endpoint) {
            (Some(name), Some(endpoint)) if errors.is_empty() => Ok(Self {
                name,
                endpoint,
                harp,
            }),
            _ => Err(errors),
        }
    }
}

/// The HaRP fields: required (the key) and allowed only for a HaRP endpoint.
fn harp_access(
    input: &NewDaemonInput,
    endpoint: &mut Endpoint,
    errors: &mut FieldErrors,
) -> Option<HarpAccess> {
    let Endpoint::Harp(address) = endpoint else {
        return not_harp(input, errors);
    };
    if given(&input.tls_cert).is_some() || given(&input.tls_key).is_some() {
        errors.add(
            "tls_cert",
            "a HaRP daemon takes no client certificate: HaRP checks its shared key",
        );
    }
    match given(&input.tls_ca) {
        Some(_) if !address.https => {
            errors.add("tls_ca", "applies only to harp+https:// endpoints")
        }
        Some(ca) => match super::endpoint::readable_file(ca) {
            Ok(path) => address.tls_ca = Some(path),
            Err(message) => errors.add("tls_ca", message),
        },
        None => {}
    }
    harp_fields(input, address, errors)
}

/// The HaRP fields on an endpoint that is not HaRP's: each is an error.
fn not_harp(input: &NewDaemonInput, errors: &mut FieldErrors) -> Option<HarpAccess> {
    for (field, given) in [
        ("harp_key", input.harp_key.is_some()),
        ("harp_docker_port", input.harp_docker_port.is_some()),
        ("exapps", input.exapps.is_some()),
    ] {
        if given {
            errors.add(field, "applies only to harp+http(s):// endpoints");
        }
    }
    None
}

/// Port, key and ExApps of a HaRP daemon.
fn harp_fields(
    input: &NewDaemonInput,
    address: &mut super::HarpAddress,
    errors: &mut FieldErrors,
) -> Option<HarpAccess> {
    if let Some(port) = input.harp_docker_port {
        match u16::try_from(port).ok().filter(|p| *p != 0) {
            Some(port) => address.docker_port = port,
            None => errors.add("harp_docker_port", "a port (1-65535)"),
        }
    }
    let key = match given(&input.harp_key) {
        None => {
            errors.add(
                "harp_key",
                "a HaRP daemon needs its shared key (AppAPI's daemon settings, \"HaRP shared key\")",
            );
            None
        }
        Some(raw) => HarpKey::parse(raw)
            .map_err(|m| errors.add("harp_key", m))
            .ok(),
    };
    let exapps = parse_exapps(input.exapps.iter().flatten().map(String::as_str))
        .map_err(|m| errors.add("exapps", m))
        .ok();
    Some(HarpAccess::new(key?, exapps?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(name: &str, endpoint: &str) -> NewDaemonInput {
        NewDaemonInput {
            name: name.into(),
            endpoint: endpoint.into(),
            ..Default::default()
        }
    }

    #[test]
    fn a_valid_unix_daemon_parses() {
        let d = NewDaemon::parse(&input("local", "unix:///run/docker.sock")).unwrap();
        assert_eq!(d.name.as_str(), "local");
        assert_eq!(d.endpoint.to_string(), "unix:///run/docker.sock");
    }

    #[test]
    fn every_bad_field_is_reported_at_once() {
        let errors = NewDaemon::parse(&input("bad name", "ftp://x")).unwrap_err();
        assert!(errors.get("name").is_some());
        assert!(errors.get("endpoint").is_some());
    }

    #[test]
    fn https_without_tls_files_is_an_endpoint_error() {
        let errors = NewDaemon::parse(&input("remote", "https://h:2376")).unwrap_err();
        assert!(errors.get("endpoint").unwrap().contains("TLS"));
    }

    #[test]
    fn partial_tls_files_name_the_missing_ones() {
        let mut i = input("remote", "https://h:2376");
        i.tls_ca = Some("/no/such/ca.pem".into());
        let errors = NewDaemon::parse(&i).unwrap_err();
        assert!(errors.get("tls_ca").unwrap().contains("no such file"));
        assert_eq!(
            errors.get("tls_cert"),
            Some("required for an https:// endpoint")
        );
        assert_eq!(
            errors.get("tls_key"),
            Some("required for an https:// endpoint")
        );
    }

    #[test]
    fn tls_files_on_a_plain_endpoint_are_refused() {
        let mut i = input("remote", "tcp://h:2375");
        i.tls_ca = Some("/etc/hostname".into());
        assert!(NewDaemon::parse(&i).unwrap_err().get("endpoint").is_some());
    }
}
