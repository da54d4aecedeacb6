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
    harp_error, Children, ContainerEvent, DaemonClient, DockerError, EngineInfo, HarpClient,
    HarpRemoval, ImageList, LayerData, ListedContainer, ListedImage, LiveImage, Removed, RunState,
};
use crate::domain::{AppId, Endpoint, ImageId};
use crate::store::StoredDaemon;

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
    /// Removes images at all (a HaRP older than 0.4.1 cannot).
    pub removal: bool,
}

/// How `DockerError::WrongHarpKey` begins, as the store keeps it.
const WRONG_KEY_PREFIX: &str = "wrong HaRP shared key";

/// Why HaRP daemons answer `Unsupported`: it forbids every listing.
const HARP_LISTS_NOTHING: &str = "HaRP lists nothing: the janitor looks up the ExApps it was given";

/// A connection to one daemon.
#[derive(Debug, Clone)]
pub enum Backend {
    /// A Docker Engine's API: unix socket, TCP, or TCP with TLS.
    Engine(DaemonClient),
    /// An Engine behind HaRP: inspects pass through, removal is HaRP's own.
    Harp(Box<HarpClient>),
}

impl Backend {
    /// Connects to a daemon (and negotiates its API). A HaRP that refused
    /// the daemon's key is not asked again: HaRP bans an address after ten
    /// wrong keys, so the janitor stops at the first (the key is fixed by
    /// adding the daemon again).
    pub async fn connect(daemon: &StoredDaemon, timeout: Duration) -> Result<Self, DockerError> {
        match (&daemon.endpoint, &daemon.harp) {
            (Endpoint::Harp(address), Some(access)) => {
                let refused_before = !daemon.contact.reachable
                    && daemon
                        .contact
                        .last_error
                        .as_deref()
                        .is_some_and(|e| e.starts_with(WRONG_KEY_PREFIX));
                if refused_before {
                    return Err(DockerError::WrongHarpKey);
                }
                HarpClient::connect(address, &access.key, timeout)
                    .await
                    .map(|c| Backend::Harp(Box::new(c)))
            }
            (Endpoint::Harp(_), None) => Err(DockerError::Unsupported(
                "a HaRP daemon without its shared key",
            )),
            (endpoint, _) => DaemonClient::connect(endpoint, timeout)
                .await
                .map(Backend::Engine),
        }
    }

    /// An Engine daemon that answered before, spoken to with the API
    /// version then negotiated, without a call now (None: connect). A
    /// version error on it means: connect and negotiate again.
    pub fn with_stored_version(daemon: &StoredDaemon, timeout: Duration) -> Option<Self> {
        if daemon.harp.is_some() || !daemon.contact.reachable {
            return None;
        }
        let engine = EngineInfo {
            engine_version: daemon.contact.engine_version.clone()?,
            api_version: daemon.contact.api_version.clone()?,
        };
        DaemonClient::with_known_version(&daemon.endpoint, timeout, engine).map(Backend::Engine)
    }

    pub fn capabilities(&self) -> Capabilities {
        match self {
            Backend::Engine(_) => Capabilities {
                listing: true,
                events: true,
                tagging: true,
                removal: true,
            },
            Backend::Harp(c) => Capabilities {
                listing: false,
                events: false,
                tagging: false,
                removal: c.removes(),
            },
        }
    }

    /// What the daemon said it is when connected.
    pub fn engine(&self) -> &EngineInfo {
        match self {
            Backend::Engine(c) => c.engine(),
            Backend::Harp(c) => c.engine().engine(),
        }
    }

    /// The Engine's API over this connection: all of it, or what HaRP passes.
    fn inspects(&self) -> &DaemonClient {
        match self {
            Backend::Engine(c) => c,
            Backend::Harp(c) => c.engine(),
        }
    }

    /// One ExApp's container (for daemons that cannot list).
    pub async fn exapp_container(
        &self,
        appid: &AppId,
    ) -> Result<Option<ListedContainer>, DockerError> {
        self.inspects()
            .exapp_container(appid)
            .await
            .map_err(harp_error)
    }

    /// One image and its layers' diff IDs (for daemons that cannot list).
    pub async fn image(
        &self,
        id: &ImageId,
    ) -> Result<Option<(ListedImage, Vec<String>)>, DockerError> {
        self.inspects().image(id.as_str()).await.map_err(harp_error)
    }

    /// One image by reference (for daemons that cannot list).
    pub async fn image_by_reference(
        &self,
        reference: &str,
    ) -> Result<Option<(ListedImage, Vec<String>)>, DockerError> {
        self.inspects().image(reference).await.map_err(harp_error)
    }

    /// Removes one reference through HaRP's `image_remove` (`removal`
    /// without `tagging`): Docker's own refusal of an image in use is the
    /// guard, as HaRP allows no listing to check first.
    pub async fn remove_through_harp(
        &self,
        reference: &str,
        timeout: Duration,
    ) -> Result<HarpRemoval, DockerError> {
        match self {
            Backend::Harp(c) => c.image_remove(reference, timeout).await,
            Backend::Engine(_) => Err(DockerError::Unsupported(
                "only a HaRP daemon removes through HaRP",
            )),
        }
    }

    /// Every image, unparsed where the transport allows (`listing`).
    pub async fn image_list(&self) -> Result<ImageList, DockerError> {
        match self {
            Backend::Engine(c) => c.image_list().await,
            Backend::Harp(_) => Err(DockerError::Unsupported(HARP_LISTS_NOTHING)),
        }
    }

    /// Every container, in any state (`listing`).
    pub async fn list_containers(&self) -> Result<Vec<ListedContainer>, DockerError> {
        match self {
            Backend::Engine(c) => c.list_containers().await,
            Backend::Harp(_) => Err(DockerError::Unsupported(HARP_LISTS_NOTHING)),
        }
    }

    /// The reference an ExApp container was created from.
    pub async fn exapp_config_image(
        &self,
        container: &ListedContainer,
    ) -> Result<Option<String>, DockerError> {
        match self {
            Backend::Engine(c) => c.exapp_config_image(container).await,
            Backend::Harp(_) => Err(DockerError::Unsupported(HARP_LISTS_NOTHING)),
        }
    }

    /// An image's layers and their sizes (immutable per image ID).
    pub async fn layer_data(&self, id: &ImageId) -> Result<LayerData, DockerError> {
        match self {
            Backend::Engine(c) => c.layer_data(id).await,
            Backend::Harp(_) => Err(DockerError::Unsupported(HARP_LISTS_NOTHING)),
        }
    }

    /// The image's references now, or None when it is gone.
    pub async fn live_image(&self, id: &ImageId) -> Result<Option<LiveImage>, DockerError> {
        match self {
            Backend::Engine(c) => c.live_image(id).await,
            Backend::Harp(c) => c.engine().live_image(id).await.map_err(harp_error),
        }
    }

    /// `(name, state)` of every container that uses the image (`listing`).
    pub async fn containers_using(
        &self,
        id: &ImageId,
    ) -> Result<Vec<(String, String)>, DockerError> {
        match self {
            Backend::Engine(c) => c.containers_using(id).await,
            Backend::Harp(_) => Err(DockerError::Unsupported(HARP_LISTS_NOTHING)),
        }
    }

    /// Every image built on another, by parent (`listing`).
    pub async fn children_by_parent(&self) -> Result<Children, DockerError> {
        match self {
            Backend::Engine(c) => c.children_by_parent().await,
            Backend::Harp(_) => Err(DockerError::Unsupported(HARP_LISTS_NOTHING)),
        }
    }

    /// Puts a tag (back) on an image (`tagging`).
    pub async fn tag(&self, id: &ImageId, reference: &str) -> Result<(), DockerError> {
        match self {
            Backend::Engine(c) => c.tag(id, reference).await,
            Backend::Harp(_) => Err(DockerError::Unsupported(HARP_LISTS_NOTHING)),
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
            Backend::Harp(_) => Err(DockerError::Unsupported(HARP_LISTS_NOTHING)),
        }
    }

    /// Container events from now on (`events`).
    pub fn container_events(&self) -> BoxStream<'static, Result<ContainerEvent, DockerError>> {
        match self {
            Backend::Engine(c) => c.container_events().boxed(),
            Backend::Harp(_) => futures_util::stream::once(async {
                Err(DockerError::Unsupported(HARP_LISTS_NOTHING))
            })
            .boxed(),
        }
    }

    /// The state of one container by name, or None when there is none.
    pub async fn run_state(&self, name: &str) -> Result<Option<RunState>, DockerError> {
        match self {
            Backend::Engine(c) => c.run_state(name).await,
            Backend::Harp(c) => c.engine().run_state(name).await.map_err(harp_error),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stored_wrong_key_error_is_recognised() {
        assert!(DockerError::WrongHarpKey
            .to_string()
            .starts_with(WRONG_KEY_PREFIX));
    }
}
