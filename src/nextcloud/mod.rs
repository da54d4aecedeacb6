//! EDGE: the Nextcloud client. Read-only by construction: it can only send
//! `GET` requests, to the five addresses below, so the janitor never writes
//! anything to Nextcloud. Imports only `domain`.
//!
//! It speaks HTTP/1.1 over the same hyper, rustls (ring) and tokio-rustls
//! the Docker transport uses (`docker::transport`), with the system's CA
//! certificates, rather than pulling in a second HTTP stack.

pub mod appapi;

use std::sync::Arc;
use std::time::Duration;

use http_body_util::{BodyExt, Empty, Limited};
use hyper::body::Bytes;
use hyper::Request;
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

pub use appapi::{AppApiDaemon, AppApiExApp, AppApiSnapshot, DeployMethod, RegistryMap, Versions};

use crate::domain::{NextcloudLogin, OneLine};
use appapi::Refused;

/// How a Nextcloud call failed, in one sentence an admin can act on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NextcloudError {
    #[error("wrong app password: Nextcloud refused this user and app password")]
    WrongPassword,
    #[error("this user is not an admin: AppAPI's lists need a Nextcloud admin's app password")]
    NotAdmin,
    #[error("AppAPI is not installed (or not enabled) on this Nextcloud")]
    AppApiMissing,
    #[error("TLS problem: {0}")]
    Tls(String),
    #[error("Nextcloud did not answer: {0}")]
    NoAnswer(String),
    #[error("this is not a Nextcloud: {0}")]
    NotNextcloud(String),
    #[error("Nextcloud is in maintenance mode; try again when it is back")]
    Maintenance,
    #[error("Nextcloud answered with a redirect to {0}; connect to that URL instead")]
    Redirect(String),
    #[error("Nextcloud answered something unexpected: {0}")]
    Unexpected(String),
}

impl NextcloudError {
    /// A failure of the login itself (the password was revoked or the user
    /// lost admin rights): the admin must act, a retry will not help.
    pub fn is_login(&self) -> bool {
        matches!(self, Self::WrongPassword | Self::NotAdmin)
    }
}

/// Longest answer read: `apps/list` carries the app store's data of every
/// ExApp, a few MiB on a large installation.
const BODY_LIMIT: usize = 32 * 1024 * 1024;

/// Nextcloud's addresses the janitor reads (and the only ones it calls).
pub mod paths {
    pub const STATUS: &str = "/status.php";
    pub const CAPABILITIES: &str = "/ocs/v2.php/cloud/capabilities?format=json";
    pub const DAEMONS: &str = "/index.php/apps/app_api/daemons";
    pub const EXAPPS: &str = "/ocs/v2.php/apps/app_api/api/v1/ex-app/all?format=json";
    pub const APPS_LIST: &str = "/index.php/apps/app_api/apps/list";
}

#[derive(Clone)]
pub struct NextcloudClient {
    login: NextcloudLogin,
    timeout: Duration,
    tls: Arc<rustls::ClientConfig>,
}

impl std::fmt::Debug for NextcloudClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NextcloudClient")
            .field("url", &self.login.url.to_string())
            .field("user", &self.login.user.as_str())
            .finish_non_exhaustive()
    }
}

trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

impl NextcloudClient {
    pub fn new(login: NextcloudLogin, timeout: Duration) -> Self {
        Self {
            login,
            timeout,
            tls: Arc::new(system_tls_config()),
        }
    }

    /// Checks the URL, the password, admin rights and AppAPI: what the
    /// "Test" button shows.
    pub async fn test(&self) -> Result<Versions, NextcloudError> {
        let (_, body) = self.get(paths::STATUS, false).await?;
        let status = appapi::parse_status(&body)
            .map_err(|e| NextcloudError::NotNextcloud(format!("{} answered {e}", paths::STATUS)))?;
        if !status.installed {
            return Err(NextcloudError::NotNextcloud(
                "it is not installed yet".into(),
            ));
        }
        if status.maintenance {
            return Err(NextcloudError::Maintenance);
        }
        let caps = self.get_ok(paths::CAPABILITIES).await?;
        let data = appapi::ocs_data(&caps).map_err(NextcloudError::Unexpected)?;
        let app_api = appapi::app_api_version(&data).ok_or(NextcloudError::AppApiMissing)?;
        // The daemons list needs an admin: this is where a non-admin shows.
        let daemons = self.get_ok(paths::DAEMONS).await?;
        appapi::parse_daemons(&daemons).map_err(NextcloudError::Unexpected)?;
        Ok(Versions {
            nextcloud: status.version,
            app_api,
        })
    }

    /// Everything AppAPI knows: its daemons and its installed ExApps, each
    /// with its daemon. All three lists or an error: a partial answer is
    /// never taken for the whole.
    pub async fn snapshot(&self) -> Result<AppApiSnapshot, NextcloudError> {
        let daemons = self.get_ok(paths::DAEMONS).await?;
        let daemons = appapi::parse_daemons(&daemons).map_err(NextcloudError::Unexpected)?;
        let exapps = self.get_ok(paths::EXAPPS).await?;
        let data = appapi::ocs_data(&exapps).map_err(NextcloudError::Unexpected)?;
        let exapps = appapi::parse_exapps(&data).map_err(NextcloudError::Unexpected)?;
        let apps = self.get_ok(paths::APPS_LIST).await?;
        let exapps = appapi::with_daemons(exapps, &apps).map_err(NextcloudError::Unexpected)?;
        Ok(AppApiSnapshot { daemons, exapps })
    }

    /// A `GET` with the login, whose answer must be a success.
    async fn get_ok(&self, path: &str) -> Result<Bytes, NextcloudError> {
        let (status, body) = self.get(path, true).await?;
        match appapi::refusal(status, &body) {
            None => Ok(body),
            Some(Refused::Login) => Err(NextcloudError::WrongPassword),
            Some(Refused::NotAdmin) => Err(NextcloudError::NotAdmin),
            Some(Refused::NotFound) if path.contains("app_api") => {
                Err(NextcloudError::AppApiMissing)
            }
            Some(Refused::NotFound) => Err(NextcloudError::NotNextcloud(format!(
                "{path} does not exist there"
            ))),
            Some(Refused::Other(what)) => Err(NextcloudError::Unexpected(format!(
                "{path} answered {what}"
            ))),
        }
    }

    async fn get(&self, path: &str, auth: bool) -> Result<(u16, Bytes), NextcloudError> {
        tokio::time::timeout(self.timeout, self.exchange(path, auth))
            .await
            .unwrap_or_else(|_| {
                Err(NextcloudError::NoAnswer(format!(
                    "no answer within {} s",
                    self.timeout.as_secs()
                )))
            })
    }

    async fn exchange(&self, path: &str, auth: bool) -> Result<(u16, Bytes), NextcloudError> {
        let url = &self.login.url;
        let tcp = TcpStream::connect((url.connect_host(), url.port()))
            .await
            .map_err(|e| NextcloudError::NoAnswer(e.to_string()))?;
        let stream: Box<dyn Stream> = if url.https() {
            let name = ServerName::try_from(url.connect_host().to_owned())
                .map_err(|e| NextcloudError::Tls(e.to_string()))?;
            let tls = tokio_rustls::TlsConnector::from(self.tls.clone())
                .connect(name, tcp)
                .await
                .map_err(|e| NextcloudError::Tls(tls_words(&e)))?;
            Box::new(tls)
        } else {
            Box::new(tcp)
        };
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| NextcloudError::NoAnswer(e.to_string()))?;
        tokio::spawn(async move {
            let _ = connection.await;
        });
        let mut request = Request::get(url.target(path))
            .header(hyper::header::HOST, url.authority())
            .header(hyper::header::ACCEPT, "application/json")
            .header("OCS-APIRequest", "true")
            .header(
                hyper::header::USER_AGENT,
                concat!("exapp-janitor/", env!("CARGO_PKG_VERSION")),
            );
        if auth {
            use base64::Engine;
            let pair = format!(
                "{}:{}",
                self.login.user.as_str(),
                self.login.password.expose()
            );
            let value = format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(pair)
            );
            let mut value = hyper::header::HeaderValue::from_str(&value)
                .map_err(|_| NextcloudError::WrongPassword)?;
            // Kept out of any debug output of the request.
            value.set_sensitive(true);
            request = request.header(hyper::header::AUTHORIZATION, value);
        }
        let request = request
            .body(Empty::<Bytes>::new())
            .map_err(|e| NextcloudError::Unexpected(e.to_string()))?;
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| NextcloudError::NoAnswer(e.to_string()))?;
        let status = response.status();
        if status.is_redirection() {
            let to = response
                .headers()
                .get(hyper::header::LOCATION)
                .and_then(|l| l.to_str().ok())
                .unwrap_or("another address");
            return Err(NextcloudError::Redirect(
                OneLine::new(to, 200).into_string(),
            ));
        }
        let body = Limited::new(response.into_body(), BODY_LIMIT)
            .collect()
            .await
            .map_err(|e| NextcloudError::NoAnswer(format!("the answer broke off: {e}")))?
            .to_bytes();
        Ok((status.as_u16(), body))
    }
}

/// rustls's words for the usual certificate problems, without the chain.
fn tls_words(e: &std::io::Error) -> String {
    let text = e.to_string();
    OneLine::new(&text, 300).into_string()
}

/// The system's CA certificates (Debian's `ca-certificates`), checked the
/// way every browser does; the janitor never skips verification.
fn system_tls_config() -> rustls::ClientConfig {
    let mut roots = rustls::RootCertStore::empty();
    let found = rustls_native_certs::load_native_certs();
    for cert in found.certs {
        let _ = roots.add(cert);
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("ring supports the default protocol versions")
        .with_root_certificates(roots)
        .with_no_client_auth()
}
