//! How bytes reach bollard from a daemon, with every answer bounded.
//!
//! Why a transport of our own: bollard reads each answer whole. A success is
//! `collect()`ed before it is parsed, and the body of any other status is
//! read whole into the error's message, verbatim when it is not JSON. So
//! anything listening at a daemon's address could make the janitor hold
//! (and store, and show) as many bytes as it cares to send, and the bodies
//! of internal HTTP services would be shown to whoever can add a daemon.
//!
//! bollard's own transports cannot be wrapped: they are built inside it on
//! hyper connectors we never see, and a `CustomTransport` must hand back
//! hyper's `Incoming` body, which only hyper can make (a request modifier
//! sees only requests). What we can own is the connection: this transport
//! opens one per request (unix socket, TCP, or TLS with the daemon's client
//! certificate), runs hyper's HTTP/1 client over it, and counts every byte
//! read from the socket against a budget chosen for that call. A daemon that
//! sends more than a Docker Engine ever sends for the call gets a read error,
//! which ends bollard's `collect()` with nothing more held than the budget.
//! Before bollard sees an answer that is not a success, the transport reads
//! at most a few KiB of it itself and turns it into the error: Docker's
//! `message` when the body is an Engine's JSON error, otherwise only the
//! status. No pooling is lost that mattered: bollard already opened a fresh
//! TLS connection per request, and a unix socket or loopback connection is
//! cheap next to the Engine's work.

use std::fmt;
use std::io;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use bollard::errors::Error as BollardError;
use bollard::{BollardRequest, ClientVersion, Docker};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::http::{header, HeaderValue, Method, Response, StatusCode, Uri};
use hyper_util::rt::TokioIo;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::domain::{Endpoint, HarpAddress, OneLine, TlsFiles};

const KIB: u64 = 1024;
const MIB: u64 = 1024 * KIB;

/// What is read of an answer that is not a success: an Engine's error is a
/// short JSON object; anything longer is not one.
const ERROR_BODY_LIMIT: u64 = 8 * KIB;

/// At most this much of Docker's `message` is kept.
pub const MESSAGE_MAX_CHARS: usize = 512;

/// Room for the status line and headers on top of a body's budget (hyper
/// refuses a head larger than its own buffer long before this is reached
/// for real engines, whose heads are a few hundred bytes).
const HEAD_ALLOWANCE: u64 = 64 * KIB;

/// Why the transport refused an answer. It travels inside bollard's error
/// (as an I/O error) and `DockerError` finds it there.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error(
        "the daemon's answer to {what} is larger than {limit}, more than a Docker Engine sends"
    )]
    TooLarge { what: &'static str, limit: Size },
    #[error("not a Docker Engine (HTTP {status})")]
    NotAnEngine { status: u16 },
}

/// A byte count shown the way the limits are chosen: `64 MiB`, `8 KiB`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Size(pub u64);

impl fmt::Display for Size {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            n if n >= MIB && n % MIB == 0 => write!(f, "{} MiB", n / MIB),
            n if n >= KIB && n % KIB == 0 => write!(f, "{} KiB", n / KIB),
            n => write!(f, "{n} bytes"),
        }
    }
}

/// The most a real Engine sends for one call, by what the call is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Budget {
    what: &'static str,
    body: u64,
}

impl Budget {
    /// Generous for real engines, small enough that a hostile one cannot
    /// hurt: a list of 10,000 images is about 10 MiB; a version, an inspect,
    /// a history or a removal answer is a few KiB. The event stream is one
    /// long answer: after this much the stream breaks, and the watcher
    /// reconnects and rescans as after any break.
    fn for_call(method: &Method, path: &str) -> Self {
        let path = without_api_version(path);
        let (what, body) = match (method, path) {
            (&Method::GET, "/_ping" | "/version") => ("the version request", MIB),
            (&Method::GET, "/images/json") => ("an image list", 64 * MIB),
            (&Method::GET, "/containers/json") => ("a container list", 64 * MIB),
            (&Method::GET, "/system/df") => ("a disk-usage report", 64 * MIB),
            (&Method::GET, "/events") => ("the event stream", 64 * MIB),
            (&Method::DELETE, _) => ("a removal", 4 * MIB),
            (&Method::GET, p) if p.ends_with("/history") => ("an image history", 4 * MIB),
            (&Method::GET, p) if p.ends_with("/json") => ("an inspect", 4 * MIB),
            _ => ("a request", 4 * MIB),
        };
        Self { what, body }
    }

    fn too_large(&self) -> Refusal {
        Refusal::TooLarge {
            what: self.what,
            limit: Size(self.body),
        }
    }
}

/// `/v1.45/images/json` → `/images/json`.
fn without_api_version(path: &str) -> &str {
    let Some(rest) = path.strip_prefix("/v") else {
        return path;
    };
    let version_end = rest.find('/').unwrap_or(rest.len());
    if !rest[..version_end].is_empty()
        && rest[..version_end]
            .chars()
            .all(|c| c.is_ascii_digit() || c == '.')
    {
        &rest[version_end..]
    } else {
        path
    }
}

/// Where and how to open a connection to one daemon.
#[derive(Clone)]
pub struct Connector {
    target: Target,
    /// The `Host` header: Docker (Go's HTTP server) refuses HTTP/1.1 without one.
    host: HeaderValue,
}

#[derive(Clone)]
enum Target {
    Unix(PathBuf),
    Tcp {
        host: String,
        port: u16,
    },
    Tls {
        host: String,
        port: u16,
        server_name: ServerName<'static>,
        config: Arc<rustls::ClientConfig>,
    },
}

impl fmt::Debug for Connector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self.target {
            Target::Unix(_) => "Connector(unix)",
            Target::Tcp { .. } => "Connector(tcp)",
            Target::Tls { .. } => "Connector(tls)",
        })
    }
}

/// The TLS files could not be used.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct TlsSetupError(String);

impl Connector {
    pub fn new(endpoint: &Endpoint) -> Result<Self, TlsSetupError> {
        let authority = |host: &str, port: u16| {
            if host.contains(':') {
                format!("[{host}]:{port}")
            } else {
                format!("{host}:{port}")
            }
        };
        let (target, host) = match endpoint {
            // What the Docker CLI sends over a socket.
            Endpoint::Unix(path) => (Target::Unix(path.clone()), "api.moby.localhost".into()),
            // HaRP is reached over plain HTTP at its own address.
            Endpoint::Harp(HarpAddress {
                addr,
                https: true,
                tls_ca,
                ..
            }) => {
                let server_name = ServerName::try_from(addr.host().to_owned()).map_err(|e| {
                    TlsSetupError(format!("{} is not a TLS server name: {e}", addr.host()))
                })?;
                let ca = tls_ca
                    .clone()
                    .unwrap_or_else(|| HarpAddress::SYSTEM_CA_BUNDLE.into());
                (
                    Target::Tls {
                        host: addr.host().to_owned(),
                        port: addr.port(),
                        server_name,
                        config: Arc::new(server_only_tls_config(&ca)?),
                    },
                    authority(addr.host(), addr.port()),
                )
            }
            Endpoint::Tcp(addr) | Endpoint::Harp(HarpAddress { addr, .. }) => (
                Target::Tcp {
                    host: addr.host().to_owned(),
                    port: addr.port(),
                },
                authority(addr.host(), addr.port()),
            ),
            Endpoint::Tls { addr, files } => {
                let server_name = ServerName::try_from(addr.host().to_owned()).map_err(|e| {
                    TlsSetupError(format!("{} is not a TLS server name: {e}", addr.host()))
                })?;
                (
                    Target::Tls {
                        host: addr.host().to_owned(),
                        port: addr.port(),
                        server_name,
                        config: Arc::new(tls_config(files)?),
                    },
                    authority(addr.host(), addr.port()),
                )
            }
        };
        let host = HeaderValue::from_str(&host)
            .map_err(|_| TlsSetupError(format!("{host} is not a valid host")))?;
        Ok(Self { target, host })
    }

    /// A bollard client whose every request goes through this connector.
    pub fn docker(&self, timeout_secs: u64, version: &ClientVersion) -> Docker {
        let connector = Arc::new(self.clone());
        let transport = move |request: BollardRequest| {
            let connector = connector.clone();
            async move { connector.exchange(request).await }
        };
        // The address only shapes the URI bollard builds; `exchange` sends
        // the path alone, to the connector's own target.
        Docker::connect_with_custom_transport(
            transport,
            Some("http://docker.invalid"),
            timeout_secs,
            version,
        )
        .expect("a custom transport needs no setup")
    }

    /// One request to an HTTP API that is not the Engine's (HaRP's own
    /// endpoints), on a fresh connection: the status, the headers and at most
    /// `limit` bytes of body (more is an error, as for the Engine's answers).
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        headers: &[(&'static str, HeaderValue)],
        body: Option<Vec<u8>>,
        limit: u64,
    ) -> io::Result<(StatusCode, hyper::HeaderMap, bytes::Bytes)> {
        let mut request = hyper::Request::builder()
            .method(method)
            .uri(path)
            .header(header::HOST, self.host.clone());
        for (name, value) in headers {
            request = request.header(*name, value.clone());
        }
        if body.is_some() {
            request = request.header(header::CONTENT_TYPE, "application/json");
        }
        let request = request
            .body(http_body_util::Full::new(bytes::Bytes::from(
                body.unwrap_or_default(),
            )))
            .map_err(io::Error::other)?;
        let budget = Budget {
            what: "a HaRP answer",
            body: limit,
        };
        let stream = Capped::new(self.connect().await.map_err(io::Error::other)?, budget);
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(io::Error::other)?;
        tokio::spawn(async move {
            let _ = connection.await;
        });
        let response = sender
            .send_request(request)
            .await
            .map_err(io::Error::other)?;
        let (head, body) = response.into_parts();
        let body = Limited::new(body, usize::try_from(limit).unwrap_or(usize::MAX))
            .collect()
            .await
            .map_err(io::Error::other)?
            .to_bytes();
        Ok((head.status, head.headers, body))
    }

    /// `GET path` on the Engine, as bollard's calls go (the same budget,
    /// the same errors), the body read whole: for the lists, which the
    /// caller parses into only what it keeps.
    pub async fn get(&self, path: &str) -> Result<bytes::Bytes, BollardError> {
        let request = hyper::Request::get(path)
            .body(bollard::body_full(bytes::Bytes::new()))
            .map_err(io::Error::other)?;
        let response = self.exchange(request).await?;
        Ok(response.into_body().collect().await?.to_bytes())
    }

    async fn connect(&self) -> Result<Box<dyn Stream>, BollardError> {
        Ok(match &self.target {
            Target::Unix(path) => match tokio::net::UnixStream::connect(path).await {
                Ok(stream) => Box::new(stream),
                // As bollard's own transport says it: the daemon is not running.
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    return Err(BollardError::SocketNotFoundError(
                        path.to_string_lossy().into_owned(),
                    ))
                }
                Err(e) => return Err(e.into()),
            },
            Target::Tcp { host, port } => {
                let stream = tokio::net::TcpStream::connect((host.as_str(), *port)).await?;
                stream.set_nodelay(true)?;
                Box::new(stream)
            }
            Target::Tls {
                host,
                port,
                server_name,
                config,
            } => {
                let stream = tokio::net::TcpStream::connect((host.as_str(), *port)).await?;
                stream.set_nodelay(true)?;
                let tls = tokio_rustls::TlsConnector::from(config.clone())
                    .connect(server_name.clone(), stream)
                    .await?;
                Box::new(tls)
            }
        })
    }

    /// One request on a fresh connection whose reads are counted against
    /// the call's budget.
    async fn exchange(
        &self,
        mut request: BollardRequest,
    ) -> Result<Response<Incoming>, BollardError> {
        let budget = Budget::for_call(request.method(), request.uri().path());
        let origin_form: Uri = request
            .uri()
            .path_and_query()
            .map_or("/", |p| p.as_str())
            .parse()
            .map_err(|e: hyper::http::uri::InvalidUri| io::Error::other(e))?;
        *request.uri_mut() = origin_form;
        request
            .headers_mut()
            .insert(header::HOST, self.host.clone());

        let stream = Capped::new(self.connect().await?, budget);
        let (mut sender, connection) =
            hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        // Drives the connection until the answer is read or dropped; it ends
        // on its own then, as no second request is ever sent on it.
        tokio::spawn(async move {
            let _ = connection.with_upgrades().await;
        });
        let response = sender.send_request(request).await?;
        let status = response.status();
        if status.is_success()
            || status == StatusCode::NOT_MODIFIED
            || status == StatusCode::SWITCHING_PROTOCOLS
        {
            if content_length(&response).is_some_and(|n| n > budget.body) {
                return Err(io::Error::other(budget.too_large()).into());
            }
            return Ok(response);
        }
        Err(refusal(status, response.into_body()).await)
    }
}

/// What any connection is: a byte stream both ways.
trait Stream: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> Stream for T {}

fn content_length(response: &Response<Incoming>) -> Option<u64> {
    response
        .headers()
        .get(header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .parse()
        .ok()
}

/// The error bollard returns for an answer that is not a success: Docker's
/// status and `message` (one line, capped) when the body is an Engine's JSON
/// error, else only that this is not a Docker Engine, with its status. The
/// body itself is never passed on: it may be any internal service's page.
async fn refusal(status: StatusCode, body: Incoming) -> BollardError {
    let read = Limited::new(body, ERROR_BODY_LIMIT as usize)
        .collect()
        .await;
    let message = read
        .ok()
        .and_then(|body| serde_json::from_slice::<serde_json::Value>(&body.to_bytes()).ok())
        .and_then(|json| json.get("message")?.as_str().map(str::to_owned));
    match message {
        Some(message) => BollardError::DockerResponseServerError {
            status_code: status.as_u16(),
            message: OneLine::new(&message, MESSAGE_MAX_CHARS).into_string(),
        },
        None => io::Error::other(Refusal::NotAnEngine {
            status: status.as_u16(),
        })
        .into(),
    }
}

/// HTTPS to a server (HaRP's frontend) whose certificate chains to a CA in
/// `ca` (a file of one or more PEM certificates); no client certificate.
fn server_only_tls_config(ca: &std::path::Path) -> Result<rustls::ClientConfig, TlsSetupError> {
    let mut roots = rustls::RootCertStore::empty();
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(ca)
        .and_then(|certs| certs.collect())
        .map_err(|e| TlsSetupError(format!("cannot read the TLS CA {}: {e}", ca.display())))?;
    let (added, _) = roots.add_parsable_certificates(certs);
    if added == 0 {
        return Err(TlsSetupError(format!(
            "no CA certificate in {}",
            ca.display()
        )));
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsSetupError(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

/// Docker's `--tlsverify` on the client side: the daemon's certificate must
/// chain to the configured CA (only to it, as with `docker --tlscacert`), and
/// the janitor presents its client certificate.
fn tls_config(files: &TlsFiles) -> Result<rustls::ClientConfig, TlsSetupError> {
    let unreadable = |what: &str, path: &std::path::Path, e: &dyn fmt::Display| {
        TlsSetupError(format!(
            "cannot read the TLS {what} {}: {e}",
            path.display()
        ))
    };
    let mut roots = rustls::RootCertStore::empty();
    let ca: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&files.ca)
        .and_then(|certs| certs.collect())
        .map_err(|e| unreadable("CA", &files.ca, &e))?;
    let (added, _) = roots.add_parsable_certificates(ca);
    if added == 0 {
        return Err(TlsSetupError(format!(
            "no CA certificate in {}",
            files.ca.display()
        )));
    }
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&files.cert)
        .and_then(|certs| certs.collect())
        .map_err(|e| unreadable("certificate", &files.cert, &e))?;
    let key =
        PrivateKeyDer::from_pem_file(&files.key).map_err(|e| unreadable("key", &files.key, &e))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsSetupError(e.to_string()))?
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key)
        .map_err(|e| {
            TlsSetupError(format!(
                "the TLS certificate and key do not go together: {e}"
            ))
        })
}

/// A connection whose reads stop at a budget: once `left` bytes have been
/// read, one more byte from the daemon is an error (the end of the stream is
/// not: an answer that fits exactly is fine).
struct Capped {
    inner: Box<dyn Stream>,
    left: u64,
    budget: Budget,
}

impl Capped {
    fn new(inner: Box<dyn Stream>, budget: Budget) -> Self {
        Self {
            inner,
            left: budget.body + HEAD_ALLOWANCE,
            budget,
        }
    }
}

impl AsyncRead for Capped {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.left == 0 {
            let mut probe = [0u8; 1];
            let mut probe = ReadBuf::new(&mut probe);
            ready!(Pin::new(&mut this.inner).poll_read(cx, &mut probe))?;
            return Poll::Ready(if probe.filled().is_empty() {
                Ok(())
            } else {
                Err(io::Error::other(this.budget.too_large()))
            });
        }
        let room = usize::try_from(this.left)
            .unwrap_or(usize::MAX)
            .min(buf.remaining());
        let mut limited = ReadBuf::new(buf.initialize_unfilled_to(room));
        ready!(Pin::new(&mut this.inner).poll_read(cx, &mut limited))?;
        let read = limited.filled().len();
        buf.advance(read);
        this.left -= read as u64;
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for Capped {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, data)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

/// The transport's refusal inside a bollard error, wherever it is in the
/// chain. Looked for by hand: bollard's I/O and hyper variants are
/// `transparent` (their `source()` skips the error they wrap), and an I/O
/// error hides its inner error from `source()` too.
pub fn refusal_in(error: &BollardError) -> Option<&Refusal> {
    let mut current: Option<&(dyn std::error::Error + 'static)> = Some(match error {
        BollardError::IOError { err } => err,
        BollardError::HyperResponseError { err } => err,
        other => other,
    });
    while let Some(e) = current {
        if let Some(refusal) = e.downcast_ref::<Refusal>() {
            return Some(refusal);
        }
        current = match e.downcast_ref::<io::Error>().and_then(io::Error::get_ref) {
            Some(inner) => Some(inner as &(dyn std::error::Error + 'static)),
            None => e.source(),
        };
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_call_gets_the_budget_of_what_it_asks_for() {
        let get = |p| Budget::for_call(&Method::GET, p).body;
        assert_eq!(get("/version"), MIB);
        assert_eq!(get("/v1.45/images/json"), 64 * MIB);
        assert_eq!(get("/v1.41/containers/json"), 64 * MIB);
        assert_eq!(get("/v1.45/images/sha256:abc/json"), 4 * MIB);
        assert_eq!(get("/v1.45/images/sha256:abc/history"), 4 * MIB);
        assert_eq!(
            Budget::for_call(&Method::DELETE, "/v1.45/images/x").body,
            4 * MIB
        );
        // A path that only looks versioned is not stripped.
        assert_eq!(without_api_version("/version"), "/version");
        assert_eq!(without_api_version("/v1.45/version"), "/version");
    }

    #[test]
    fn limits_read_as_people_write_them() {
        assert_eq!(Size(64 * MIB).to_string(), "64 MiB");
        assert_eq!(Size(8 * KIB).to_string(), "8 KiB");
        assert_eq!(Size(1000).to_string(), "1000 bytes");
    }

    #[test]
    fn a_refusal_is_found_inside_io_and_hyper_style_wrappers() {
        let refusal = Refusal::NotAnEngine { status: 404 };
        let wrapped: BollardError = io::Error::other(io::Error::other(refusal.clone())).into();
        assert_eq!(refusal_in(&wrapped), Some(&refusal));
        let plain: BollardError = io::Error::other("refused").into();
        assert_eq!(refusal_in(&plain), None);
    }
}
