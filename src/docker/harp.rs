//! A Docker Engine reached through HaRP, Nextcloud's AppAPI proxy: HaRP's
//! own endpoints (`/info`, `/docker/exapp/image_remove`) and the few Docker
//! calls it passes through to the Engine behind a `docker-engine-port`
//! (`/_ping`, image inspects, `nc_app_*` container inspects). HaRP forbids
//! every listing, so nothing here lists; what HaRP answers was observed
//! against HaRP v0.4.4 (tests/third_party/README.md).

use std::time::Duration;

use bollard::ClientVersion;
use hyper::http::{HeaderValue, Method, StatusCode};
use serde::Deserialize;

use super::transport::Connector;
use super::{
    api_tuple, connect_at, DaemonClient, DockerError, EngineInfo, ENGINE_VERSION_MAX_CHARS,
};
use crate::domain::{Endpoint, HarpAddress, HarpKey, OneLine};
use bollard::API_DEFAULT_VERSION;

/// HaRP's answers to its own endpoints are a few hundred bytes.
const ANSWER_LIMIT: u64 = 64 * 1024;

const KEY_HEADER: &str = "harp-shared-key";
const PORT_HEADER: &str = "docker-engine-port";

/// One Engine behind one HaRP.
#[derive(Debug, Clone)]
pub struct HarpClient {
    /// bollard over HaRP's passthrough: the inspects.
    engine: DaemonClient,
    connector: Connector,
    key: HeaderValue,
    port: HeaderValue,
    timeout: Duration,
    /// HaRP's own version, as `/info` gives it.
    version: String,
    /// `image_remove` exists (HaRP 0.4.1 and later).
    removes: bool,
}

/// HaRP's answer to `image_remove`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HarpRemoval {
    /// Docker removed the reference (an untag, or the image deleted).
    Removed,
    /// The reference was not there (any more).
    NotFound,
    /// Docker refused: a container uses the image.
    InUse,
}

#[derive(Deserialize)]
struct Info {
    version: serde_json::Value,
}

#[derive(Deserialize)]
struct RemoveAnswer {
    deleted: bool,
    #[serde(default)]
    reason: Option<String>,
}

/// `image_remove` exists from HaRP 0.4.1: `/info`'s version is a float (0.4)
/// up to 0.4.2 and a semver string from 0.4.3.
fn can_remove(version: &serde_json::Value) -> bool {
    let parts: Vec<u64> = match version {
        serde_json::Value::Number(n) => return n.as_f64().is_some_and(|v| v >= 0.4),
        serde_json::Value::String(s) => s
            .trim_start_matches('v')
            .split('.')
            .map_while(|p| p.parse().ok())
            .collect(),
        _ => return false,
    };
    let at = |i: usize| parts.get(i).copied().unwrap_or(0);
    (at(0), at(1), at(2)) >= (0, 4, 1)
}

/// Whether a HaRP of this `/info` version (as the janitor shows it) has `image_remove`.
pub fn harp_removes(version: &str) -> bool {
    // 0.4.1 and 0.4.2 say `0.4` (a float); later ones a semver string.
    if version.matches('.').count() == 1 {
        if let Ok(n) = version.parse::<f64>() {
            return can_remove(&serde_json::json!(n));
        }
    }
    can_remove(&serde_json::Value::String(version.to_owned()))
}

fn header(value: &str) -> Result<HeaderValue, DockerError> {
    HeaderValue::from_str(value).map_err(|_| DockerError::invalid("a header value"))
}

impl HarpClient {
    /// Asks HaRP who it is (`/info`, which checks the key), then the Engine
    /// behind the port (`/_ping`, whose headers name its API and version).
    pub async fn connect(
        address: &HarpAddress,
        key: &HarpKey,
        timeout: Duration,
    ) -> Result<Self, DockerError> {
        let connector = Connector::new(&Endpoint::Harp(address.clone()))
            .map_err(|e| DockerError::Tls(e.to_string()))?;
        let mut client = Self {
            engine: DaemonClient::through(
                connect_at(&connector, timeout, API_DEFAULT_VERSION),
                timeout,
                EngineInfo {
                    engine_version: String::new(),
                    api_version: String::new(),
                },
            ),
            connector,
            key: header(key.expose())?,
            port: header(&address.docker_port.to_string())?,
            timeout,
            version: String::new(),
            removes: false,
        };
        let (_, body) = client.call(Method::GET, "/info", false, None).await?;
        let info: Info = serde_json::from_slice(&body)
            .map_err(|_| DockerError::Harp(OneLine::error("/info did not answer as HaRP does")))?;
        client.removes = can_remove(&info.version);
        client.version = OneLine::new(
            &match &info.version {
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            },
            ENGINE_VERSION_MAX_CHARS,
        )
        .into_string();

        // HaRP answered: what fails now is the Engine behind the port.
        let (headers, _) = client.call_engine("/_ping").await.map_err(|e| match e {
            DockerError::Harp(_) | DockerError::Timeout(_) => {
                DockerError::Harp(OneLine::error(&format!(
                    "no Docker Engine answers behind docker-engine-port {} ({e})",
                    address.docker_port
                )))
            }
            other => other,
        })?;
        let text = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let server_api = text("api-version")
            .as_deref()
            .and_then(super::parse_api_version)
            .ok_or(DockerError::NoApiVersion)?;
        let api = server_api.min(api_tuple(API_DEFAULT_VERSION));
        let engine_version = text("server")
            .and_then(|s| {
                s.strip_prefix("Docker/")
                    .map(|v| v.split(' ').next().unwrap_or(v).to_owned())
            })
            .unwrap_or_else(|| "unknown".into());
        let version = ClientVersion {
            major_version: api.0,
            minor_version: api.1,
        };
        let (key, port) = (client.key.clone(), client.port.clone());
        let docker = connect_at(&client.connector, timeout, &version).with_request_modifier(
            move |mut request: bollard::BollardRequest| {
                let path = request
                    .uri()
                    .path_and_query()
                    .map_or_else(|| "/".to_owned(), |p| p.as_str().to_owned());
                if let Ok(uri) =
                    format!("http://docker.invalid{}{path}", HarpAddress::BASE_PATH).parse()
                {
                    *request.uri_mut() = uri;
                }
                request.headers_mut().insert(KEY_HEADER, key.clone());
                request.headers_mut().insert(PORT_HEADER, port.clone());
                request
            },
        );
        client.engine = DaemonClient::through(
            docker,
            timeout,
            EngineInfo {
                engine_version: OneLine::new(
                    &format!("{engine_version} through HaRP {}", client.version),
                    ENGINE_VERSION_MAX_CHARS,
                )
                .into_string(),
                api_version: format!("{}.{}", api.0, api.1),
            },
        );
        Ok(client)
    }

    /// The Engine behind HaRP, for the calls HaRP passes through.
    pub fn engine(&self) -> &DaemonClient {
        &self.engine
    }

    pub fn version(&self) -> &str {
        &self.version
    }

    /// Whether this HaRP can remove images (`image_remove`, from 0.4.1).
    pub fn removes(&self) -> bool {
        self.removes
    }

    /// `POST /docker/exapp/image_remove`: Docker's removal of one reference,
    /// never forced (HaRP sends no `force`). HaRP answers 200 for an image in
    /// use too, with `deleted: false`.
    pub async fn image_remove(
        &self,
        reference: &str,
        timeout: Duration,
    ) -> Result<HarpRemoval, DockerError> {
        if !self.removes {
            return Err(DockerError::Unsupported(
                "this HaRP is older than 0.4.1 and cannot remove images",
            ));
        }
        let body = serde_json::to_vec(&serde_json::json!({ "image_ref": reference }))
            .expect("a JSON object serialises");
        let call = self.call(Method::POST, "/docker/exapp/image_remove", true, Some(body));
        let (_, answer) = tokio::time::timeout(timeout, call)
            .await
            .map_err(|_| DockerError::Timeout(timeout))??;
        let answer: RemoveAnswer = serde_json::from_slice(&answer).map_err(|_| {
            DockerError::Harp(OneLine::error("image_remove did not answer as HaRP does"))
        })?;
        Ok(match (answer.deleted, answer.reason.as_deref()) {
            (true, Some("not_found")) => HarpRemoval::NotFound,
            (true, _) => HarpRemoval::Removed,
            (false, Some("in_use")) => HarpRemoval::InUse,
            (false, other) => {
                return Err(DockerError::Harp(OneLine::error(&format!(
                    "image_remove did not remove {reference} ({})",
                    other.unwrap_or("no reason given")
                ))))
            }
        })
    }

    /// A passthrough call answered by the Engine (its headers and body).
    async fn call_engine(
        &self,
        path: &str,
    ) -> Result<(hyper::HeaderMap, bytes::Bytes), DockerError> {
        let (status, headers, body) = self.exchange(Method::GET, path, true, None).await?;
        if status == StatusCode::OK {
            Ok((headers, body))
        } else {
            Err(refused(status))
        }
    }

    /// One call to HaRP's own API; anything but 200 is an error in words.
    async fn call(
        &self,
        method: Method,
        path: &str,
        with_port: bool,
        body: Option<Vec<u8>>,
    ) -> Result<(hyper::HeaderMap, bytes::Bytes), DockerError> {
        let (status, headers, body) = self.exchange(method, path, with_port, body).await?;
        if status == StatusCode::OK {
            Ok((headers, body))
        } else {
            Err(refused(status))
        }
    }

    async fn exchange(
        &self,
        method: Method,
        path: &str,
        with_port: bool,
        body: Option<Vec<u8>>,
    ) -> Result<(StatusCode, hyper::HeaderMap, bytes::Bytes), DockerError> {
        let mut headers = vec![(KEY_HEADER, self.key.clone())];
        if with_port {
            headers.push((PORT_HEADER, self.port.clone()));
        }
        let path = format!("{}{path}", HarpAddress::BASE_PATH);
        let call = self
            .connector
            .call(method, &path, &headers, body, ANSWER_LIMIT);
        match tokio::time::timeout(self.timeout, call).await {
            Err(_) => Err(DockerError::Timeout(self.timeout)),
            Ok(Err(e)) => Err(DockerError::Harp(OneLine::error(&format!(
                "cannot reach HaRP: {e}"
            )))),
            Ok(Ok(answer)) => Ok(answer),
        }
    }
}

/// HaRP's refusals in words; its bodies are not shown (HTML from HAProxy,
/// Python tracebacks, pydantic dumps).
fn refused(status: StatusCode) -> DockerError {
    match status.as_u16() {
        401 => DockerError::WrongHarpKey,
        403 => DockerError::Harp(OneLine::error("HaRP forbids this call (HTTP 403)")),
        503 => DockerError::Harp(OneLine::error(
            "HaRP or the Engine behind it is not ready (HTTP 503)",
        )),
        other => DockerError::Harp(OneLine::error(&format!("HaRP answered HTTP {other}"))),
    }
}

/// A passthrough call's refusal that means the key (HaRP answers before the
/// Engine sees anything).
pub fn harp_error(e: DockerError) -> DockerError {
    match e {
        DockerError::NotAnEngine { status: 401 } => DockerError::WrongHarpKey,
        DockerError::NotAnEngine { status: 403 } => {
            DockerError::Harp(OneLine::error("HaRP forbids this call (HTTP 403)"))
        }
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn image_remove_exists_from_harp_0_4_1() {
        assert!(!can_remove(&json!("0.4.0")));
        assert!(can_remove(&json!("0.4.1")));
        assert!(can_remove(&json!("0.4.4")));
        assert!(can_remove(&json!("v1.0")));
        assert!(can_remove(&json!(0.4)));
        assert!(!can_remove(&json!(0.3)));
        assert!(!can_remove(&json!(null)));
    }

    #[test]
    fn the_version_as_shown_tells_whether_harp_removes() {
        assert!(harp_removes("0.4.4"));
        assert!(harp_removes("0.4"));
        assert!(!harp_removes("0.3"));
        assert!(!harp_removes("0.4.0"));
    }
}
