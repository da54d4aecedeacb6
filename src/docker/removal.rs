//! What removing an image needs from the daemon: a live look at the image
//! and at who uses it, and untag/delete calls. There is deliberately no way
//! to pass `force`: a removal Docker refuses stays refused.

use bollard::query_parameters::RemoveImageOptions;

use super::{within, DaemonClient, DockerError};
use crate::domain::ImageId;

/// An image's references as the daemon has them now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveImage {
    pub repo_tags: Vec<String>,
    pub repo_digests: Vec<String>,
}

/// One line of Docker's answer to a removal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Removed {
    /// A reference went away.
    Untagged(String),
    /// An image or a layer (chain ID) was deleted.
    Deleted(String),
}

impl DaemonClient {
    /// The image now, or None if the daemon no longer has it.
    pub async fn live_image(&self, id: &ImageId) -> Result<Option<LiveImage>, DockerError> {
        match within(self.timeout(), self.docker().inspect_image(id.as_str())).await {
            Ok(image) => {
                let real = |refs: Option<Vec<String>>| {
                    refs.unwrap_or_default()
                        .into_iter()
                        .filter(|r| !r.starts_with("<none>"))
                        .collect()
                };
                Ok(Some(LiveImage {
                    repo_tags: real(image.repo_tags),
                    repo_digests: real(image.repo_digests),
                }))
            }
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Containers in any state that use the image: (name, state). Lists
    /// all and compares IDs (the `ancestor` filter also matches descendants).
    pub async fn containers_using(
        &self,
        id: &ImageId,
    ) -> Result<Vec<(String, String)>, DockerError> {
        Ok(self
            .list_containers()
            .await?
            .into_iter()
            .filter(|c| &c.image_id == id)
            .map(|c| (c.name, c.state))
            .collect())
    }

    /// `DELETE /images/{reference}` without force (untagged parents that
    /// nothing else needs go too, as `docker rmi` does).
    pub async fn remove_reference(&self, reference: &str) -> Result<Vec<Removed>, DockerError> {
        let options = RemoveImageOptions {
            force: false,
            noprune: false,
            ..Default::default()
        };
        let answer = within(
            self.timeout(),
            self.docker().remove_image(reference, Some(options), None),
        )
        .await?;
        Ok(answer
            .into_iter()
            .flat_map(|item| {
                item.untagged
                    .map(Removed::Untagged)
                    .into_iter()
                    .chain(item.deleted.map(Removed::Deleted))
            })
            .collect())
    }
}
