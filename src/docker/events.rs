//! Following a daemon: its container event stream, and the state of one
//! ExApp container (running? since when? healthy?).

use std::collections::HashMap;

use bollard::query_parameters::EventsOptions;
use futures_util::{Stream, StreamExt};

use super::{within, DaemonClient, DockerError};
use crate::clock::parse_rfc3339;
use crate::domain::ImageId;

/// A container event: what happened, to which container (by name).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerEvent {
    pub action: String,
    pub name: String,
}

/// A container's state as an update check needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunState {
    pub image_id: ImageId,
    pub running: bool,
    /// Unix seconds; None when never started.
    pub started_at: Option<i64>,
    /// `starting`, `healthy`, `unhealthy`; None without a healthcheck.
    pub health: Option<String>,
}

impl DaemonClient {
    /// Container events from now on. The stream ends when the connection does.
    /// The request goes out only at the first poll, after the caller's
    /// rescan: `since` (a second back, the API counts whole seconds) makes
    /// the events of that gap part of the stream, so none falls between the
    /// rescan and the subscription.
    pub fn container_events(
        &self,
    ) -> impl Stream<Item = Result<ContainerEvent, DockerError>> + Unpin {
        let filters = HashMap::from([("type".to_owned(), vec!["container".to_owned()])]);
        // The system time, not the janitor's clock: `since` is read by the
        // daemon against its own clock, which a test's clock does not move.
        let since = time::OffsetDateTime::now_utc().unix_timestamp() - 1;
        let options = EventsOptions {
            filters: Some(filters),
            since: Some(since.to_string()),
            ..Default::default()
        };
        Box::pin(self.docker().events(Some(options)).map(|event| {
            let event = event?;
            Ok(ContainerEvent {
                action: event.action.unwrap_or_default(),
                name: event
                    .actor
                    .and_then(|a| a.attributes)
                    .and_then(|mut attrs| attrs.remove("name"))
                    .unwrap_or_default(),
            })
        }))
    }

    /// The state of a container by name; None if there is none.
    pub async fn run_state(&self, name: &str) -> Result<Option<RunState>, DockerError> {
        let inspected =
            match within(self.timeout(), self.docker().inspect_container(name, None)).await {
                Ok(c) => c,
                Err(e) if e.is_not_found() => return Ok(None),
                Err(e) => return Err(e),
            };
        let image_id = ImageId::parse(inspected.image.as_deref().unwrap_or_default())
            .map_err(|e| DockerError::invalid(&e))?;
        let state = inspected.state.unwrap_or_default();
        let started_at = state
            .started_at
            .as_deref()
            .and_then(parse_rfc3339)
            .filter(|t| *t > 0);
        Ok(Some(RunState {
            image_id,
            running: state.running.unwrap_or(false),
            started_at,
            health: state.health.and_then(|h| h.status).map(|s| s.to_string()),
        }))
    }
}
