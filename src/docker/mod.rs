//! Talking to one Docker Engine over bollard: connecting to any of the three
//! endpoint kinds and negotiating the API version, then reading and
//! removing. Imports only `domain`.

mod events;
mod listing;
mod removal;

pub use events::{ContainerEvent, RunState};
pub use listing::{LayerData, ListedContainer, ListedImage};
pub use removal::{LiveImage, Removed};

use std::time::Duration;

use bollard::{ClientVersion, Docker, API_DEFAULT_VERSION};

use crate::domain::Endpoint;

/// A connection to one daemon, speaking the highest API version both sides know.
#[derive(Debug, Clone)]
pub struct DaemonClient {
    docker: Docker,
    timeout: Duration,
    engine: EngineInfo,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineInfo {
    /// The Engine's own version, e.g. `26.1.5+dfsg1`.
    pub engine_version: String,
    /// The API version this client speaks with it, e.g. `1.45`.
    pub api_version: String,
}

#[derive(Debug, thiserror::Error)]
pub enum DockerError {
    #[error("no answer within {} s", .0.as_secs_f64())]
    Timeout(Duration),
    #[error("{message}")]
    Engine {
        /// One sentence for the admin: the deepest cause, which is the useful part.
        message: String,
        #[source]
        source: bollard::errors::Error,
    },
    #[error("the daemon answered without an API version")]
    NoApiVersion,
    #[error("the daemon sent something invalid: {0}")]
    Invalid(String),
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

    pub fn status_code(&self) -> Option<u16> {
        match self {
            DockerError::Engine {
                source: bollard::errors::Error::DockerResponseServerError { status_code, .. },
                ..
            } => Some(*status_code),
            _ => None,
        }
    }

    /// The daemon's own words for a refused request, if it gave any.
    pub fn daemon_message(&self) -> Option<&str> {
        match self {
            DockerError::Engine {
                source: bollard::errors::Error::DockerResponseServerError { message, .. },
                ..
            } => Some(message),
            _ => None,
        }
    }

    /// Worth retrying: the daemon could not be reached or had a bad moment.
    pub fn is_transient(&self) -> bool {
        match self {
            DockerError::Timeout(_) => true,
            DockerError::Engine { source, .. } => match source {
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
            DockerError::NoApiVersion | DockerError::Invalid(_) => false,
        }
    }
}

impl From<bollard::errors::Error> for DockerError {
    fn from(source: bollard::errors::Error) -> Self {
        let message = match &source {
            bollard::errors::Error::DockerResponseServerError {
                status_code,
                message,
            } => format!("the daemon answered {status_code}: {message}"),
            bollard::errors::Error::RequestTimeoutError => "no answer in time".to_string(),
            bollard::errors::Error::SocketNotFoundError(path) => {
                format!("no socket at {path} (is the daemon running?)")
            }
            other => deepest_cause(other),
        };
        DockerError::Engine { message, source }
    }
}

fn deepest_cause(error: &(dyn std::error::Error + 'static)) -> String {
    let mut current = error;
    while let Some(next) = current.source() {
        current = next;
    }
    current.to_string()
}

impl DaemonClient {
    /// Connects and negotiates: asks the daemon (unversioned) which API it
    /// speaks, then uses the lower of that and what bollard knows. A versioned
    /// request above the daemon's maximum would be refused by older engines.
    pub async fn connect(endpoint: &Endpoint, timeout: Duration) -> Result<Self, DockerError> {
        let probe = connect_at(endpoint, timeout, API_DEFAULT_VERSION)?
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
            docker: connect_at(endpoint, timeout, &client_version)?,
            timeout,
            engine: EngineInfo {
                engine_version: version.version.unwrap_or_else(|| "unknown".into()),
                api_version: format!("{}.{}", api.0, api.1),
            },
        })
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

fn connect_at(
    endpoint: &Endpoint,
    timeout: Duration,
    version: &ClientVersion,
) -> Result<Docker, DockerError> {
    // bollard's own timeout is whole seconds; `within` enforces the precise
    // one, so bollard's is only a backstop that never fires first.
    let secs = timeout.as_secs() + 2;
    let docker = match endpoint {
        Endpoint::Unix(path) => Docker::connect_with_unix(&path.to_string_lossy(), secs, version)?,
        Endpoint::Tcp(addr) => Docker::connect_with_http(&format!("tcp://{addr}"), secs, version)?,
        Endpoint::Tls { addr, files } => Docker::connect_with_ssl(
            &format!("https://{addr}"),
            &files.key,
            &files.cert,
            &files.ca,
            secs,
            version,
        )?,
    };
    Ok(docker)
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

fn api_tuple(v: &ClientVersion) -> (usize, usize) {
    (v.major_version, v.minor_version)
}

fn parse_api_version(raw: &str) -> Option<(usize, usize)> {
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
}
