use std::fmt;
use std::net::Ipv6Addr;
use std::path::{Path, PathBuf};

/// How to reach one Docker Engine. The three kinds Docker itself offers to
/// remote clients; anything else is refused when parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// `unix:///absolute/path.sock`
    Unix(PathBuf),
    /// `tcp://host:port`, plain HTTP.
    Tcp(HostPort),
    /// `https://host:port` with a client certificate (Docker's `--tlsverify`).
    Tls { addr: HostPort, files: TlsFiles },
    /// `harp+http://host:port`: Nextcloud's AppAPI proxy (HaRP), which
    /// forwards a few Docker calls to the Engine behind `docker_port`.
    Harp(HarpAddress),
}

/// Where a HaRP is and which Docker Engine behind it is meant. HaRP serves
/// AppAPI under the fixed base path `/exapps/app_api` of its address; it
/// forwards Docker calls to `127.0.0.1:docker_port` on its own host (in
/// production an FRP tunnel to the Docker host: AppAPI's daemon setting
/// "docker-engine-port").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HarpAddress {
    pub addr: HostPort,
    pub docker_port: u16,
    /// `harp+https://`: HaRP's HTTPS frontend, its certificate checked
    /// against this CA bundle (the system's when not given).
    pub tls_ca: Option<PathBuf>,
    pub https: bool,
}

impl HarpAddress {
    /// HaRP's default address port (`HP_EXAPPS_ADDRESS`).
    pub const DEFAULT_PORT: u16 = 8780;
    /// AppAPI's default docker-engine-port of a HaRP daemon.
    pub const DEFAULT_DOCKER_PORT: u16 = 24000;
    /// The path under which HaRP serves AppAPI.
    pub const BASE_PATH: &'static str = "/exapps/app_api";
    /// The CA bundle of Debian's ca-certificates: what `harp+https://`
    /// trusts when no CA is given.
    pub const SYSTEM_CA_BUNDLE: &'static str = "/etc/ssl/certs/ca-certificates.crt";

    fn parse(rest: &str, https: bool) -> Result<Self, String> {
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        let rest = rest.strip_suffix(Self::BASE_PATH).unwrap_or(rest);
        let with_port = if rest.starts_with('[') || rest.contains(':') {
            rest.to_owned()
        } else {
            format!("{rest}:{}", Self::DEFAULT_PORT)
        };
        Ok(Self {
            addr: HostPort::parse(&with_port)?,
            docker_port: Self::DEFAULT_DOCKER_PORT,
            tls_ca: None,
            https,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPort {
    host: String,
    port: u16,
}

/// The three files of Docker's `--tlsverify` setup, as absolute paths.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

const MAX_ENDPOINT_LEN: usize = 1024;

impl Endpoint {
    /// Parses an endpoint URL. `tls` must be given exactly for `https://`.
    pub fn parse(raw: &str, tls: Option<TlsFiles>) -> Result<Self, String> {
        let raw = raw.trim();
        if raw.is_empty() {
            return Err("an endpoint is required".into());
        }
        if raw.len() > MAX_ENDPOINT_LEN {
            return Err(format!("at most {MAX_ENDPOINT_LEN} characters"));
        }
        if raw.chars().any(char::is_control) {
            return Err("must not contain control characters".into());
        }
        let (scheme, rest) = raw.split_once("://").ok_or_else(|| {
            "expected unix:///path.sock, tcp://host:port or https://host:port".to_string()
        })?;
        let endpoint = match scheme {
            "unix" => {
                let path = Path::new(rest);
                if !path.is_absolute() {
                    return Err(
                        "a unix socket needs an absolute path: unix:///path/docker.sock".into(),
                    );
                }
                Endpoint::Unix(path.to_path_buf())
            }
            "tcp" => Endpoint::Tcp(HostPort::parse(rest)?),
            "https" => {
                let addr = HostPort::parse(rest)?;
                let files = tls.clone().ok_or_else(|| {
                    "an https:// endpoint needs a TLS CA, certificate and key".to_string()
                })?;
                Endpoint::Tls { addr, files }
            }
            "http" => {
                return Err("use tcp://host:port for plain HTTP, as Docker does".into());
            }
            "harp+http" => Endpoint::Harp(HarpAddress::parse(rest, false)?),
            "harp+https" => Endpoint::Harp(HarpAddress::parse(rest, true)?),
            other => {
                return Err(format!(
                    "unsupported scheme {other:?}: use unix://, tcp://, https:// or harp+http://"
                ))
            }
        };
        if tls.is_some() && !matches!(endpoint, Endpoint::Tls { .. }) {
            return Err("TLS files apply only to https:// endpoints".into());
        }
        Ok(endpoint)
    }

    pub fn tls_files(&self) -> Option<&TlsFiles> {
        match self {
            Endpoint::Tls { files, .. } => Some(files),
            _ => None,
        }
    }

    pub fn harp(&self) -> Option<&HarpAddress> {
        match self {
            Endpoint::Harp(harp) => Some(harp),
            _ => None,
        }
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Endpoint::Unix(path) => write!(f, "unix://{}", path.display()),
            Endpoint::Tcp(addr) => write!(f, "tcp://{addr}"),
            Endpoint::Tls { addr, .. } => write!(f, "https://{addr}"),
            Endpoint::Harp(harp) if harp.https => write!(f, "harp+https://{}", harp.addr),
            Endpoint::Harp(harp) => write!(f, "harp+http://{}", harp.addr),
        }
    }
}

impl HostPort {
    fn parse(raw: &str) -> Result<Self, String> {
        let raw = raw.strip_suffix('/').unwrap_or(raw);
        let (host, port) = if let Some(v6) = raw.strip_prefix('[') {
            let (addr, port) = v6
                .split_once("]:")
                .ok_or("expected [ipv6]:port".to_string())?;
            addr.parse::<Ipv6Addr>()
                .map_err(|_| format!("{addr:?} is not an IPv6 address"))?;
            (format!("[{addr}]"), port)
        } else {
            let (host, port) = raw
                .rsplit_once(':')
                .ok_or("expected host:port (the port is required)".to_string())?;
            let valid_host = !host.is_empty()
                && host.len() <= 253
                && host
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-');
            if !valid_host {
                return Err(format!("{host:?} is not a host name or IP address"));
            }
            (host.to_owned(), port)
        };
        let port: u16 = port
            .parse()
            .ok()
            .filter(|p| *p != 0)
            .ok_or_else(|| format!("{port:?} is not a port (1-65535)"))?;
        Ok(Self { host, port })
    }

    pub fn host(&self) -> &str {
        &self.host
    }

    pub fn port(&self) -> u16 {
        self.port
    }
}

impl fmt::Display for HostPort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.host, self.port)
    }
}

impl TlsFiles {
    /// Resolves each path to an absolute one and checks that it is a readable
    /// file now, so a typo is reported when the daemon is added, not at 3 a.m.
    /// Errors are keyed by the field names `tls_ca`, `tls_cert`, `tls_key`.
    pub fn resolve(ca: &str, cert: &str, key: &str) -> Result<Self, Vec<(&'static str, String)>> {
        let mut errors = Vec::new();
        let mut check = |field: &'static str, raw: &str| match readable_file(raw) {
            Ok(path) => Some(path),
            Err(message) => {
                errors.push((field, message));
                None
            }
        };
        let (ca, cert, key) = (
            check("tls_ca", ca),
            check("tls_cert", cert),
            check("tls_key", key),
        );
        match (ca, cert, key) {
            (Some(ca), Some(cert), Some(key)) if errors.is_empty() => Ok(Self { ca, cert, key }),
            _ => Err(errors),
        }
    }

    /// Paths read back from the store: they were checked when stored; if a
    /// file went away since, connecting reports it.
    pub fn from_stored(ca: PathBuf, cert: PathBuf, key: PathBuf) -> Self {
        Self { ca, cert, key }
    }
}

/// An absolute path to a file that can be read now.
pub fn readable_file(raw: &str) -> Result<PathBuf, String> {
    if raw.len() > 4096 || raw.chars().any(char::is_control) {
        return Err("not a valid path".into());
    }
    let path = std::fs::canonicalize(raw).map_err(|e| format!("{raw}: {}", io_reason(&e)))?;
    if !path.is_file() {
        return Err(format!("{raw}: not a regular file"));
    }
    std::fs::File::open(&path).map_err(|e| format!("{raw}: {}", io_reason(&e)))?;
    Ok(path)
}

fn io_reason(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound => "no such file".into(),
        std::io::ErrorKind::PermissionDenied => "not readable (permission denied)".into(),
        _ => e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tls() -> TlsFiles {
        TlsFiles::from_stored("/ca".into(), "/cert".into(), "/key".into())
    }

    #[test]
    fn parses_the_three_kinds_and_prints_them_back() {
        for raw in [
            "unix:///var/run/docker.sock",
            "tcp://10.0.0.5:2375",
            "tcp://[::1]:2375",
        ] {
            assert_eq!(Endpoint::parse(raw, None).unwrap().to_string(), raw);
        }
        let e = Endpoint::parse("https://docker.example:2376", Some(tls())).unwrap();
        assert_eq!(e.to_string(), "https://docker.example:2376");
        assert_eq!(e.tls_files(), Some(&tls()));
    }

    #[test]
    fn refuses_other_schemes_and_malformed_addresses() {
        for raw in [
            "",
            "docker.sock",
            "ssh://host",
            "http://host:2375",
            "npipe:////./pipe/docker_engine",
            "unix://relative.sock",
            "tcp://host",
            "tcp://host:0",
            "tcp://host:70000",
            "tcp://:2375",
            "tcp://ho st:2375",
            "tcp://[zz]:1",
            "tcp://ho\nst:2375",
        ] {
            assert!(Endpoint::parse(raw, None).is_err(), "{raw:?} was accepted");
        }
    }

    #[test]
    fn https_needs_tls_files_and_only_https_takes_them() {
        assert!(Endpoint::parse("https://host:2376", None).is_err());
        assert!(Endpoint::parse("tcp://host:2375", Some(tls())).is_err());
        assert!(Endpoint::parse("unix:///s.sock", Some(tls())).is_err());
    }

    #[test]
    fn tls_files_must_exist_and_be_files() {
        let dir = std::env::temp_dir();
        let errors = TlsFiles::resolve("/no/such/ca.pem", dir.to_str().unwrap(), "").unwrap_err();
        let fields: Vec<_> = errors.iter().map(|(f, _)| *f).collect();
        assert_eq!(fields, ["tls_ca", "tls_cert", "tls_key"]);
    }
}
