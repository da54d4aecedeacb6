//! `exapp-janitor health`: asks a running server whether it and its
//! database answer, for a container's `HEALTHCHECK` or a monitor — which
//! then needs no shell or curl. Exit 0 when `/api/v1/health` says `ok`, 1
//! otherwise.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use http_body_util::{BodyExt, Empty, Limited};
use hyper::http::{header, Request, StatusCode};
use hyper_util::rt::TokioIo;

/// The whole check, connection to last byte.
pub const TIMEOUT: Duration = Duration::from_secs(5);
/// The health answer is a few dozen bytes; anything much longer is not ours.
const BODY_LIMIT: usize = 4096;
const PATH: &str = "/api/v1/health";

#[derive(Debug, thiserror::Error)]
pub enum HealthError {
    #[error("no answer from http://{addr}{PATH} within {}s", TIMEOUT.as_secs())]
    Timeout { addr: SocketAddr },
    #[error("cannot reach http://{addr}{PATH}: {message}")]
    Unreachable { addr: SocketAddr, message: String },
    #[error("http://{addr}{PATH} answered HTTP {status}: {said}")]
    Unhealthy {
        addr: SocketAddr,
        status: StatusCode,
        said: String,
    },
}

/// What a healthy server said.
#[derive(Debug, serde::Deserialize)]
pub struct Healthy {
    pub status: String,
    pub version: String,
    #[serde(default)]
    pub commit: Option<String>,
}

/// Where to ask a server listening on `listen`: an unspecified address
/// (`0.0.0.0`, `[::]`) is reached on the loopback address of its family.
pub fn target(listen: SocketAddr) -> SocketAddr {
    let ip = match listen.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    SocketAddr::new(ip, listen.port())
}

/// Asks the server listening on `listen` for its health.
pub async fn check(listen: SocketAddr) -> Result<Healthy, HealthError> {
    let addr = target(listen);
    tokio::time::timeout(TIMEOUT, ask(addr))
        .await
        .unwrap_or(Err(HealthError::Timeout { addr }))
}

async fn ask(addr: SocketAddr) -> Result<Healthy, HealthError> {
    let unreachable = |e: &dyn std::fmt::Display| HealthError::Unreachable {
        addr,
        message: e.to_string(),
    };
    let stream = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| unreachable(&e))?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| unreachable(&e))?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    let request = Request::get(PATH)
        .header(header::HOST, addr.to_string())
        .body(Empty::<bytes::Bytes>::new())
        .map_err(|e| unreachable(&e))?;
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| unreachable(&e))?;
    let status = response.status();
    let body = Limited::new(response.into_body(), BODY_LIMIT)
        .collect()
        .await
        .map_err(|e| unreachable(&e))?
        .to_bytes();
    let answer = serde_json::from_slice::<Healthy>(&body);
    match answer {
        Ok(healthy) if status == StatusCode::OK && healthy.status == "ok" => Ok(healthy),
        Ok(other) => Err(HealthError::Unhealthy {
            addr,
            status,
            said: other.status,
        }),
        Err(_) => Err(HealthError::Unhealthy {
            addr,
            status,
            said: "not exapp-janitor's health answer".into(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unspecified_listen_address_is_asked_on_loopback() {
        let cases = [
            ("0.0.0.0:8080", "127.0.0.1:8080"),
            ("[::]:8080", "[::1]:8080"),
            ("192.168.1.5:9000", "192.168.1.5:9000"),
        ];
        for (listen, asked) in cases {
            assert_eq!(target(listen.parse().unwrap()).to_string(), asked);
        }
    }
}
