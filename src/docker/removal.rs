//! What removing an image needs from the daemon: a live look at the image
//! and at who uses it, and untag/delete calls. There is deliberately no way
//! to pass `force`: a removal Docker refuses stays refused.

use std::time::Duration;

use bollard::query_parameters::{ListImagesOptions, RemoveImageOptions, TagImageOptions};

use super::listing::real_references;
use super::{within, DaemonClient, DockerError};
use crate::domain::{short_id, ImageId};

/// An image's references as the daemon has them now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveImage {
    pub repo_tags: Vec<String>,
    pub repo_digests: Vec<String>,
}

/// Images built on others: parent image ID → a reference (or short ID) of
/// each child.
pub type Children = std::collections::HashMap<String, Vec<String>>;

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
            Ok(image) => Ok(Some(LiveImage {
                repo_tags: real_references(image.repo_tags.unwrap_or_default()),
                repo_digests: real_references(image.repo_digests.unwrap_or_default()),
            })),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Containers in any state that use the image: (name, state). Docker's
    /// `ancestor` filter narrows the list to the image's containers and its
    /// descendants' (a tenth of the time of listing every container on a
    /// host with a hundred); the IDs are then compared exactly.
    pub async fn containers_using(
        &self,
        id: &ImageId,
    ) -> Result<Vec<(String, String)>, DockerError> {
        let ancestor = std::collections::HashMap::from([(
            "ancestor".to_owned(),
            vec![id.as_str().to_owned()],
        )]);
        Ok(self
            .list_containers_where(Some(ancestor))
            .await?
            .into_iter()
            .filter(|c| &c.image_id == id)
            .map(|c| (c.name, c.state))
            .collect())
    }

    /// Every image that has a parent (`ParentId` in an `all=1` listing), by
    /// parent: Docker refuses to delete an image that has children. One
    /// listing of every image, so a batch of removals shares it
    /// (`jobs::remove::Family`).
    pub async fn children_by_parent(&self) -> Result<Children, DockerError> {
        let options = ListImagesOptions {
            all: true,
            ..Default::default()
        };
        let listed = within(self.timeout(), self.docker().list_images(Some(options))).await?;
        let mut children = Children::new();
        for image in listed.into_iter().filter(|i| !i.parent_id.is_empty()) {
            let label = real_references(image.repo_tags)
                .into_iter()
                .next()
                .unwrap_or_else(|| format!("{} (untagged)", short_id(&image.id)));
            children.entry(image.parent_id).or_default().push(label);
        }
        Ok(children)
    }

    /// `POST /images/{id}/tag`: puts a tag (`repo:tag`) back on an image.
    pub async fn tag(&self, id: &ImageId, reference: &str) -> Result<(), DockerError> {
        let (repo, tag) = split_tag(reference)
            .ok_or_else(|| DockerError::invalid(&format!("{reference} is not a tag")))?;
        let options = TagImageOptions {
            repo: Some(repo.to_owned()),
            tag: Some(tag.to_owned()),
        };
        within(
            self.timeout(),
            self.docker().tag_image(id.as_str(), Some(options)),
        )
        .await
    }

    /// `DELETE /images/{reference}` without force (untagged parents that
    /// nothing else needs go too, as `docker rmi` does). `timeout` is the
    /// removal timeout: deleting a large image's layers takes long.
    pub async fn remove_reference(
        &self,
        reference: &str,
        timeout: Duration,
    ) -> Result<Vec<Removed>, DockerError> {
        let options = RemoveImageOptions {
            force: false,
            noprune: false,
            ..Default::default()
        };
        // bollard's own per-request timeout is only a backstop behind `within`.
        let docker = self
            .docker()
            .clone()
            .with_timeout(timeout + Duration::from_secs(2));
        let answer = within(timeout, docker.remove_image(reference, Some(options), None)).await?;
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

/// `repo:tag` → (`repo`, `tag`); None for a digest reference or no tag. The
/// tag is after the last `:` that follows the last `/` (a registry port is not a tag).
fn split_tag(reference: &str) -> Option<(&str, &str)> {
    if reference.contains('@') {
        return None;
    }
    let name_start = reference.rfind('/').map_or(0, |i| i + 1);
    let colon = name_start + reference[name_start..].rfind(':')?;
    Some((&reference[..colon], &reference[colon + 1..]))
        .filter(|(r, t)| !r.is_empty() && !t.is_empty())
}

#[cfg(test)]
mod tests {
    use super::split_tag;

    #[test]
    fn a_tag_is_split_after_the_last_colon_of_the_name_not_the_registry_port() {
        assert_eq!(
            split_tag("127.0.0.1:5000/nc/llm2:1.2.0-cuda"),
            Some(("127.0.0.1:5000/nc/llm2", "1.2.0-cuda"))
        );
        assert_eq!(split_tag("nginx:1"), Some(("nginx", "1")));
        assert_eq!(split_tag("127.0.0.1:5000/nc/llm2"), None);
        assert_eq!(split_tag("ghcr.io/nc/llm2@sha256:abcd"), None);
    }
}
