//! What a scan, a cleanup job and the watcher may ask of a daemon, whichever
//! way the janitor reaches it. One variant per way: a Docker Engine's own
//! API (`docker/`) today. A HaRP daemon (AppAPI's proxy, which lists
//! nothing, inspects a few things and removes through its own endpoint) is a
//! second variant with its own `Capabilities`: `scan/`, `jobs/` and `watch`
//! ask for capabilities, never for a kind of daemon.

use std::time::Duration;

use futures_util::stream::BoxStream;
use futures_util::StreamExt;

use crate::docker::{
    ContainerEvent, DaemonClient, DockerError, EngineInfo, LayerData, ListedContainer, ListedImage,
    LiveImage, Removed, RunState,
};
use crate::domain::{Endpoint, ImageId};

/// What a daemon can be asked beyond looking at one image or container.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capabilities {
    /// Lists every image and container: a full inventory, exact sizes, and
    /// the live checks of who uses an image before a removal.
    pub listing: bool,
    /// Streams container events, so an update is noticed at once (without
    /// it, the ExApp containers are polled).
    pub events: bool,
    /// Tags an image: a removal untags one reference at a time and puts the
    /// tags back when Docker refuses the last one.
    pub tagging: bool,
}

/// A connection to one daemon.
#[derive(Debug, Clone)]
pub enum Backend {
    /// A Docker Engine's API: unix socket, TCP, or TCP with TLS.
    Engine(DaemonClient),
}

impl Backend {
    /// Connects to the daemon an endpoint names (and negotiates its API).
    pub async fn connect(endpoint: &Endpoint, timeout: Duration) -> Result<Self, DockerError> {
        DaemonClient::connect(endpoint, timeout)
            .await
            .map(Backend::Engine)
    }

    pub fn capabilities(&self) -> Capabilities {
        match self {
            Backend::Engine(_) => Capabilities {
                listing: true,
                events: true,
                tagging: true,
            },
        }
    }

    /// What the daemon said it is when connected.
    pub fn engine(&self) -> &EngineInfo {
        match self {
            Backend::Engine(c) => c.engine(),
        }
    }

    /// Every image (`listing`).
    pub async fn list_images(&self) -> Result<Vec<ListedImage>, DockerError> {
        match self {
            Backend::Engine(c) => c.list_images().await,
        }
    }

    /// Every container, in any state (`listing`).
    pub async fn list_containers(&self) -> Result<Vec<ListedContainer>, DockerError> {
        match self {
            Backend::Engine(c) => c.list_containers().await,
        }
    }

    /// The reference an ExApp container was created from.
    pub async fn exapp_config_image(
        &self,
        container: &ListedContainer,
    ) -> Result<Option<String>, DockerError> {
        match self {
            Backend::Engine(c) => c.exapp_config_image(container).await,
        }
    }

    /// An image's layers and their sizes (immutable per image ID).
    pub async fn layer_data(&self, id: &ImageId) -> Result<LayerData, DockerError> {
        match self {
            Backend::Engine(c) => c.layer_data(id).await,
        }
    }

    /// The image's references now, or None when it is gone.
    pub async fn live_image(&self, id: &ImageId) -> Result<Option<LiveImage>, DockerError> {
        match self {
            Backend::Engine(c) => c.live_image(id).await,
        }
    }

    /// `(name, state)` of every container that uses the image (`listing`).
    pub async fn containers_using(
        &self,
        id: &ImageId,
    ) -> Result<Vec<(String, String)>, DockerError> {
        match self {
            Backend::Engine(c) => c.containers_using(id).await,
        }
    }

    /// Images built on top of this one (`listing`).
    pub async fn children_of(&self, id: &ImageId) -> Result<Vec<String>, DockerError> {
        match self {
            Backend::Engine(c) => c.children_of(id).await,
        }
    }

    /// Puts a tag (back) on an image (`tagging`).
    pub async fn tag(&self, id: &ImageId, reference: &str) -> Result<(), DockerError> {
        match self {
            Backend::Engine(c) => c.tag(id, reference).await,
        }
    }

    /// Removes one reference, never with force: what Docker refuses stays.
    pub async fn remove_reference(
        &self,
        reference: &str,
        timeout: Duration,
    ) -> Result<Vec<Removed>, DockerError> {
        match self {
            Backend::Engine(c) => c.remove_reference(reference, timeout).await,
        }
    }

    /// Container events from now on (`events`).
    pub fn container_events(&self) -> BoxStream<'static, Result<ContainerEvent, DockerError>> {
        match self {
            Backend::Engine(c) => c.container_events().boxed(),
        }
    }

    /// The state of one container by name, or None when there is none.
    pub async fn run_state(&self, name: &str) -> Result<Option<RunState>, DockerError> {
        match self {
            Backend::Engine(c) => c.run_state(name).await,
        }
    }
}
