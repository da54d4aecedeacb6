//! Talking to one Docker Engine over bollard: connecting to any of the three
//! endpoint kinds and negotiating the API version, then reading and
//! removing. Imports only `domain`.

mod events;
mod harp;
mod listing;
mod removal;
mod transport;

pub use events::{ContainerEvent, RunState};
pub use harp::{harp_error, harp_removes, HarpClient, HarpRemoval};
pub use listing::{ImageList, LayerData, ListedContainer, ListedImage};
pub use removal::{Children, LiveImage, Removed};
pub use transport::{Size, MESSAGE_MAX_CHARS};

use std::time::Duration;

use bollard::{ClientVersion, Docker, API_DEFAULT_VERSION};

use crate::domain::{Endpoint, OneLine};
use transport::{Connector, Refusal};

/// A real Engine's version is like `26.1.5+dfsg1`.
pub(crate) const ENGINE_VERSION_MAX_CHARS: usize = 64;

/// A connection to one daemon, speaking the highest API version both sides know.
#[derive(Debug, Clone)]
pub struct DaemonClient {
    docker: Docker,
    timeout: Duration,
    engine: EngineInfo,
    /// The Engine itself, for the lists; None through HaRP's passthrough.
    direct: Option<std::sync::Arc<Direct>>,
}

/// GETs straight to the Engine, at the client's API version: the lists are
/// parsed into only what the janitor keeps (`listing`), not bollard's whole
/// summaries (labels, networks, mounts): in a rescan of 100 daemons, those
/// took a third of the server's CPU.
#[derive(Debug, Clone)]
pub(crate) struct Direct {
    connector: Connector,
    /// `/v1.45`.
    version: String,
}

impl Direct {
    fn new(connector: &Connector, version: &ClientVersion) -> Self {
        Self {
            connector: connector.clone(),
            version: format!("/v{}.{}", version.major_version, version.minor_version),
        }
    }

    /// `GET /v…/{path}`, its body whole.
    pub(crate) async fn get(&self, path: &str) -> Result<bytes::Bytes, bollard::errors::Error> {
        self.connector
            .get(&format!("{}/{path}", self.version))
            .await
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineInfo {
    /// The Engine's own version, e.g. `26.1.5+dfsg1`.
    pub engine_version: String,
    /// The API version this client speaks with it, e.g. `1.45`.
    pub api_version: String,
}

/// What went wrong talking to a daemon. Every text in it that a daemon could
/// have written is one line and bounded ([`OneLine`]), so it can be stored,
/// shown and logged as it is.
#[derive(Debug, thiserror::Error)]
pub enum DockerError {
    #[error("no answer within {} s", .0.as_secs_f64())]
    Timeout(Duration),
    #[error("{message}")]
    Engine {
        /// One sentence for the admin: the deepest cause, which is the useful part.
        message: OneLine,
        /// Kept to classify the error, deliberately not as its `source()`: its
        /// text may quote the daemon unbounded, and error chains get logged.
        cause: bollard::errors::Error,
    },
    /// Something answered that is not a Docker Engine; its body is not shown.
    #[error("not a Docker Engine (HTTP {status})")]
    NotAnEngine { status: u16 },
    /// The answer was larger than a Docker Engine ever sends for the call.
    #[error(
        "the daemon's answer to {what} is larger than {limit}, more than a Docker Engine sends"
    )]
    TooLarge { what: &'static str, limit: Size },
    #[error("the daemon answered without an API version")]
    NoApiVersion,
    #[error("the daemon sent something invalid: {0}")]
    Invalid(OneLine),
    #[error("cannot use the TLS files: {0}")]
    Tls(String),
    /// HaRP refused the shared key. Not retried: after ten wrong keys in
    /// five minutes HaRP bans the address and answers nothing any more.
    #[error("wrong HaRP shared key (HaRP answered 401); nothing more is sent to it until the daemon is added again with the right key")]
    WrongHarpKey,
    /// HaRP (not the Engine behind it) answered something else than asked.
    #[error("HaRP: {0}")]
    Harp(OneLine),
    /// A call this kind of daemon does not offer.
    #[error("{0}")]
    Unsupported(&'static str),
}

impl DockerError {
    /// Docker's 404: the thing is gone.
    pub fn is_not_found(&self) -> bool {
        self.status_code() == Some(404)
    }

    /// Docker's 409: a conflict, e.g. the image is in use.
    pub fn is_conflict(&self) -> bool {
        self.status_code() == Some(409)
    }

    /// The status of a Docker Engine's refusal. None for anything that is
    /// not an Engine: its 404 does not mean that an image is gone.
    pub fn status_code(&self) -> Option<u16> {
        match self {
            DockerError::Engine {
                cause: bollard::errors::Error::DockerResponseServerError { status_code, .. },
                ..
            } => Some(*status_code),
            _ => None,
        }
    }

    /// The Engine's own words for a refused request (its `message`, one
    /// line, at most [`MESSAGE_MAX_CHARS`]), if it gave any.
    pub fn daemon_message(&self) -> Option<&str> {
        match self {
            DockerError::Engine {
                cause: bollard::errors::Error::DockerResponseServerError { message, .. },
                ..
            } => Some(message),
            _ => None,
        }
    }

    /// The Engine refused the API version it was spoken to with (it was
    /// downgraded since the version was negotiated): negotiate again.
    pub fn is_version_error(&self) -> bool {
        self.status_code() == Some(400)
            && self
                .daemon_message()
                .is_some_and(|m| m.contains("client version"))
    }

    /// An invalid answer, described in `what` (which may quote the daemon).
    pub fn invalid(what: &str) -> Self {
        DockerError::Invalid(OneLine::error(what))
    }

    /// Worth retrying: the daemon could not be reached or had a bad moment.
    pub fn is_transient(&self) -> bool {
        match self {
            DockerError::Timeout(_) => true,
            DockerError::NotAnEngine { status } => *status >= 500,
            DockerError::Engine { cause, .. } => match cause {
                bollard::errors::Error::DockerResponseServerError { status_code, .. } => {
                    *status_code >= 500
                }
                bollard::errors::Error::SocketNotFoundError(_)
                | bollard::errors::Error::RequestTimeoutError
                | bollard::errors::Error::HyperResponseError { .. }
                | bollard::errors::Error::HyperLegacyError { .. }
                | bollard::errors::Error::IOError { .. } => true,
                _ => false,
            },
            DockerError::TooLarge { .. }
            | DockerError::NoApiVersion
            | DockerError::Invalid(_)
            | DockerError::Tls(_)
            | DockerError::WrongHarpKey
            | DockerError::Unsupported(_) => false,
            // HaRP's 503s: its agent starting, or no Engine behind the port yet.
            DockerError::Harp(_) => true,
        }
    }
}

impl From<bollard::errors::Error> for DockerError {
    fn from(cause: bollard::errors::Error) -> Self {
        match transport::refusal_in(&cause) {
            Some(Refusal::NotAnEngine { status }) => {
                return DockerError::NotAnEngine { status: *status }
            }
            Some(Refusal::TooLarge { what, limit }) => {
                return DockerError::TooLarge {
                    what,
                    limit: *limit,
                }
            }
            None => {}
        }
        let message = match &cause {
            // The transport made `message` one capped line of Docker's own words.
            bollard::errors::Error::DockerResponseServerError {
                status_code,
                message,
            } if message.trim().is_empty() => format!("the daemon answered {status_code}"),
            bollard::errors::Error::DockerResponseServerError {
                status_code,
                message,
            } => format!("the daemon answered {status_code}: {message}"),
            bollard::errors::Error::RequestTimeoutError => "no answer in time".to_string(),
            bollard::errors::Error::SocketNotFoundError(path) => {
                format!(
                    "no socket at {path}: is the Docker daemon running, and is this its socket?"
                )
            }
            // May quote the daemon (a JSON error names the value it choked
            // on; a TLS error the names in its certificate).
            other => deepest_cause(other),
        };
        DockerError::Engine {
            message: OneLine::error(&message),
            cause,
        }
    }
}

/// The deepest cause in words an admin can act on: a system error becomes
/// what it means for a Docker daemon ("connection refused: is the Docker
/// daemon running …?"), never "os error 111", and never a bare colon at the end.
fn deepest_cause(error: &(dyn std::error::Error + 'static)) -> String {
    let mut current = error;
    let mut io = None;
    loop {
        if let Some(e) = current.downcast_ref::<std::io::Error>() {
            io = Some(e.kind());
        }
        match current.source() {
            Some(next) => current = next,
            None => break,
        }
    }
    if let Some(words) = io.and_then(io_in_words) {
        return words.to_owned();
    }
    without_os_error(&current.to_string())
}

/// What a failed connection means, for the kinds an admin meets.
fn io_in_words(kind: std::io::ErrorKind) -> Option<&'static str> {
    use std::io::ErrorKind::*;
    Some(match kind {
        ConnectionRefused => {
            "connection refused: is the Docker daemon running, and listening at this address?"
        }
        NotFound => "no socket at this path: is the Docker daemon running, and is this its socket?",
        PermissionDenied => {
            "permission denied: the janitor's user may not use this socket (add it to the socket's group, e.g. docker)"
        }
        ConnectionReset | ConnectionAborted | BrokenPipe => {
            "the daemon closed the connection: is this a Docker daemon, and does it expect TLS?"
        }
        TimedOut => "no answer in time: is the host up, and is the port open?",
        HostUnreachable | NetworkUnreachable => "the host cannot be reached from here",
        AddrNotAvailable => "the address is not available from here",
        _ => return None,
    })
}

/// `text` without a trailing " (os error N)" and without a dangling colon.
fn without_os_error(text: &str) -> String {
    let text = match text.rfind(" (os error ") {
        Some(i) if text.ends_with(')') => &text[..i],
        _ => text,
    };
    text.trim_end_matches([':', ' ']).to_owned()
}

impl DaemonClient {
    /// Connects and negotiates: asks the daemon (unversioned) which API it
    /// speaks, then uses the lower of that and what bollard knows. A versioned
    /// request above the daemon's maximum would be refused by older engines.
    pub async fn connect(endpoint: &Endpoint, timeout: Duration) -> Result<Self, DockerError> {
        let connector = Connector::new(endpoint).map_err(|e| DockerError::Tls(e.to_string()))?;
        let probe = connect_at(&connector, timeout, API_DEFAULT_VERSION)
            .with_request_modifier(strip_api_version_prefix);
        let version = within(timeout, probe.version()).await?;
        let server_api = version
            .api_version
            .as_deref()
            .and_then(parse_api_version)
            .ok_or(DockerError::NoApiVersion)?;
        let api = server_api.min(api_tuple(API_DEFAULT_VERSION));
        let client_version = ClientVersion {
            major_version: api.0,
            minor_version: api.1,
        };
        Ok(Self {
            docker: connect_at(&connector, timeout, &client_version),
            direct: Some(std::sync::Arc::new(Direct::new(
                &connector,
                &client_version,
            ))),
            timeout,
            engine: EngineInfo {
                // Stored and shown: one short line, whatever the daemon sent.
                engine_version: version.version.map_or_else(
                    || "unknown".into(),
                    |v| OneLine::new(&v, ENGINE_VERSION_MAX_CHARS).into_string(),
                ),
                api_version: format!("{}.{}", api.0, api.1),
            },
        })
    }

    /// A client speaking an API version negotiated earlier, without asking
    /// the daemon again: a CLI command is a new process each time, and the
    /// negotiation is a round trip that an unchanged daemon need not cost.
    pub fn with_known_version(
        endpoint: &Endpoint,
        timeout: Duration,
        engine: EngineInfo,
    ) -> Option<Self> {
        let (major_version, minor_version) = parse_api_version(&engine.api_version)?;
        let known = (major_version, minor_version);
        if known > api_tuple(API_DEFAULT_VERSION) {
            return None;
        }
        let connector = Connector::new(endpoint).ok()?;
        let version = ClientVersion {
            major_version,
            minor_version,
        };
        Some(Self {
            docker: connect_at(&connector, timeout, &version),
            direct: Some(std::sync::Arc::new(Direct::new(&connector, &version))),
            timeout,
            engine,
        })
    }

    /// A client over a bollard connection made elsewhere (HaRP's passthrough).
    pub(crate) fn through(docker: Docker, timeout: Duration, engine: EngineInfo) -> Self {
        Self {
            docker,
            timeout,
            engine,
            direct: None,
        }
    }

    pub fn engine(&self) -> &EngineInfo {
        &self.engine
    }

    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// The bollard client, for the modules that list and remove things.
    pub fn docker(&self) -> &Docker {
        &self.docker
    }

    /// The Engine itself, when not reached through HaRP.
    pub(crate) fn direct(&self) -> Option<&Direct> {
        self.direct.as_deref()
    }
}

/// Runs one Engine call with the daemon's timeout, so a daemon that accepts
/// the connection but never answers cannot hold anything up.
pub async fn within<T>(
    timeout: Duration,
    call: impl std::future::Future<Output = Result<T, bollard::errors::Error>>,
) -> Result<T, DockerError> {
    match tokio::time::timeout(timeout, call).await {
        Ok(result) => Ok(result?),
        Err(_) => Err(DockerError::Timeout(timeout)),
    }
}

pub(crate) fn connect_at(
    connector: &Connector,
    timeout: Duration,
    version: &ClientVersion,
) -> Docker {
    // bollard's own timeout is whole seconds; `within` enforces the precise
    // one, so bollard's is only a backstop that never fires first.
    connector.docker(timeout.as_secs() + 2, version)
}

/// `/v1.53/version` → `/version`: the unversioned path every engine answers.
fn strip_api_version_prefix(mut request: bollard::BollardRequest) -> bollard::BollardRequest {
    let uri = request.uri().to_string();
    let prefix = format!(
        "/v{}.{}/",
        API_DEFAULT_VERSION.major_version, API_DEFAULT_VERSION.minor_version
    );
    if let Ok(stripped) = uri.replacen(&prefix, "/", 1).parse() {
        *request.uri_mut() = stripped;
    }
    request
}

pub(crate) fn api_tuple(v: &ClientVersion) -> (usize, usize) {
    (v.major_version, v.minor_version)
}

pub(crate) fn parse_api_version(raw: &str) -> Option<(usize, usize)> {
    let (major, minor) = raw.split_once('.')?;
    Some((major.parse().ok()?, minor.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_versions_compare_numerically_not_as_text() {
        assert!(parse_api_version("1.9").unwrap() < parse_api_version("1.41").unwrap());
        assert_eq!(parse_api_version("1.45"), Some((1, 45)));
        assert_eq!(parse_api_version("v1"), None);
    }

    #[test]
    fn a_system_error_reads_as_what_it_means_for_a_daemon() {
        #[derive(Debug, thiserror::Error)]
        #[error("client error (Connect):")]
        struct Wrapper(#[source] std::io::Error);
        let refused = Wrapper(std::io::Error::from(std::io::ErrorKind::ConnectionRefused));
        let words = deepest_cause(&refused);
        assert!(
            words.starts_with("connection refused: is the Docker daemon running"),
            "{words}"
        );
        assert!(!words.contains("os error"));
        let odd = std::io::Error::other("weird thing (os error 99)");
        assert_eq!(deepest_cause(&odd), "weird thing");
        assert_eq!(without_os_error("tls handshake eof:"), "tls handshake eof");
    }
}
