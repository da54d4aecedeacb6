//! Reading a daemon: images, containers (every state), the `nc_app_*`
//! containers' references, and each image's layers. Everything a daemon
//! says is untrusted: IDs are parsed, and a listing that cannot be trusted
//! fails as a whole rather than leaving an image looking unused.

use bollard::models::ContainerSummaryStateEnum;
use bollard::query_parameters::{ListContainersOptions, ListImagesOptions};
use serde::Deserialize;

use super::{within, DaemonClient, DockerError};
use crate::clock::parse_rfc3339;
use crate::domain::{is_placeholder_reference, AppId, ImageId, EXAPP_CONTAINER_PREFIX};

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ListedImage {
    pub id: ImageId,
    /// Without Engine 20.10's `<none>:<none>` / `<none>@<none>` placeholders.
    pub repo_tags: Vec<String>,
    pub repo_digests: Vec<String>,
    pub created: i64,
    pub size: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedContainer {
    pub id: String,
    /// Without the leading `/`.
    pub name: String,
    pub image_id: ImageId,
    pub state: String,
    /// The list's `Image`: the reference the container was created from
    /// while that reference still names its image, else the image ID.
    pub image: String,
}

/// What building an image's layer list needs: diff IDs (base first) and the
/// sizes of its history steps (newest first).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerData {
    pub diff_ids: Vec<String>,
    pub history_sizes: Vec<i64>,
}

fn invalid(what: String) -> DockerError {
    DockerError::invalid(&what)
}

/// A listing's or an inspect's references without placeholders.
pub(super) fn real_references(refs: Vec<String>) -> Vec<String> {
    refs.into_iter()
        .filter(|r| !is_placeholder_reference(r))
        .collect()
}

/// What the janitor reads of an image in `GET /images/json`; the rest of
/// each entry (labels, other sizes, manifests) is skipped, never built.
#[derive(Deserialize)]
struct ImageRow {
    #[serde(rename = "Id")]
    id: String,
    /// null for an untagged image on some engines.
    #[serde(rename = "RepoTags", default)]
    repo_tags: Option<Vec<String>>,
    #[serde(rename = "RepoDigests", default)]
    repo_digests: Option<Vec<String>>,
    #[serde(rename = "Created")]
    created: i64,
    #[serde(rename = "Size")]
    size: i64,
}

/// What the janitor reads of a container in `GET /containers/json`.
#[derive(Deserialize)]
struct ContainerRow {
    #[serde(rename = "Id")]
    id: Option<String>,
    #[serde(rename = "Names")]
    names: Option<Vec<String>>,
    #[serde(rename = "Image")]
    image: Option<String>,
    #[serde(rename = "ImageID")]
    image_id: Option<String>,
    /// Only the states an Engine has: anything else fails the list, as
    /// bollard's own parsing did.
    #[serde(rename = "State")]
    state: Option<ContainerSummaryStateEnum>,
}

/// A list's body, parsed; not JSON of that shape fails it whole.
fn parsed<T: serde::de::DeserializeOwned>(
    what: &str,
    body: bytes::Bytes,
) -> Result<Vec<T>, DockerError> {
    serde_json::from_slice(&body)
        .map_err(|e| invalid(format!("a {what} list that cannot be read: {e}")))
}

fn listed_container(c: ContainerRow) -> Result<ListedContainer, DockerError> {
    let id =
        c.id.ok_or_else(|| invalid("a container without an ID".into()))?;
    let name = c
        .names
        .and_then(|n| n.into_iter().next())
        .map(|n| n.trim_start_matches('/').to_owned())
        .unwrap_or_else(|| id.clone());
    let image_id = c
        .image_id
        .as_deref()
        .ok_or_else(|| invalid(format!("container {name} has no image ID")))
        .and_then(|i| ImageId::parse(i).map_err(invalid))?;
    let state = c
        .state
        .map(|s| s.to_string())
        .unwrap_or_else(|| "unknown".into());
    Ok(ListedContainer {
        id,
        name,
        image_id,
        state,
        image: c.image.unwrap_or_default(),
    })
}

/// An image list as the daemon sent it. A direct daemon's body is parsed
/// only when asked: a rescan that gets the same entries as the last parse
/// needs no parse to know it lists the same images. Through bollard
/// (HaRP's passthrough) it comes parsed.
#[derive(Debug)]
pub enum ImageList {
    Body(bytes::Bytes),
    Parsed(Vec<ListedImage>),
}

impl ImageList {
    /// A digest of the body's entries as sent, whatever their order: the
    /// sha256 of their sha256s, sorted. The Engine lists the images of one
    /// second in another order on every call; the same entries in any
    /// order parse to the same images. None when it came parsed, or is
    /// not a JSON array (which `parse` then refuses).
    pub fn body_digest(&self) -> Option<[u8; 32]> {
        use sha2::{Digest, Sha256};
        let ImageList::Body(body) = self else {
            return None;
        };
        // Each entry's text, found without building it.
        let entries: Vec<&serde_json::value::RawValue> = serde_json::from_slice(body).ok()?;
        let mut digests: Vec<[u8; 32]> = entries
            .iter()
            .map(|e| Sha256::digest(e.get()).into())
            .collect();
        digests.sort_unstable();
        let mut all = Sha256::new();
        for d in &digests {
            all.update(d);
        }
        Some(all.finalize().into())
    }

    /// The images; a body that is not an image list fails whole.
    pub fn parse(self) -> Result<Vec<ListedImage>, DockerError> {
        let body = match self {
            ImageList::Body(body) => body,
            ImageList::Parsed(images) => return Ok(images),
        };
        parsed::<ImageRow>("image", body)?
            .into_iter()
            .map(listed_image)
            .collect()
    }
}

fn listed_image(i: ImageRow) -> Result<ListedImage, DockerError> {
    Ok(ListedImage {
        id: ImageId::parse(&i.id).map_err(invalid)?,
        repo_tags: real_references(i.repo_tags.unwrap_or_default()),
        repo_digests: real_references(i.repo_digests.unwrap_or_default()),
        created: i.created,
        size: u64::try_from(i.size).unwrap_or(0),
    })
}

impl DaemonClient {
    /// `GET /images/json`: tagged and dangling images (not untagged parents,
    /// whose layers are always a prefix of a listed child's).
    pub async fn list_images(&self) -> Result<Vec<ListedImage>, DockerError> {
        self.image_list().await?.parse()
    }

    /// `list_images`, unparsed where it came from our own transport.
    pub async fn image_list(&self) -> Result<ImageList, DockerError> {
        if let Some(direct) = self.direct() {
            let body = within(self.timeout(), direct.get("images/json")).await?;
            return Ok(ImageList::Body(body));
        }
        let options = ListImagesOptions {
            all: false,
            ..Default::default()
        };
        within(self.timeout(), self.docker().list_images(Some(options)))
            .await?
            .into_iter()
            .map(|i| {
                listed_image(ImageRow {
                    id: i.id,
                    repo_tags: Some(i.repo_tags),
                    repo_digests: Some(i.repo_digests),
                    created: i.created,
                    size: i.size,
                })
            })
            .collect::<Result<_, _>>()
            .map(ImageList::Parsed)
    }

    /// `GET /containers/json?all=1`: every container in every state.
    pub async fn list_containers(&self) -> Result<Vec<ListedContainer>, DockerError> {
        match self.direct() {
            Some(direct) => {
                let body = within(self.timeout(), direct.get("containers/json?all=1")).await?;
                parsed("container", body)?
                    .into_iter()
                    .map(listed_container)
                    .collect()
            }
            None => self.list_containers_where(None).await,
        }
    }

    /// `list_containers` with Docker's `filters` (e.g. `ancestor`).
    pub(super) async fn list_containers_where(
        &self,
        filters: Option<std::collections::HashMap<String, Vec<String>>>,
    ) -> Result<Vec<ListedContainer>, DockerError> {
        let options = ListContainersOptions {
            all: true,
            filters,
            ..Default::default()
        };
        let listed = within(self.timeout(), self.docker().list_containers(Some(options))).await?;
        listed
            .into_iter()
            .map(|c| {
                listed_container(ContainerRow {
                    id: c.id,
                    names: c.names,
                    image: c.image,
                    image_id: c.image_id,
                    state: c.state,
                })
            })
            .collect()
    }

    /// `Config.Image` of an ExApp container: the reference AppAPI created it from.
    pub async fn exapp_config_image(
        &self,
        container: &ListedContainer,
    ) -> Result<Option<String>, DockerError> {
        debug_assert!(container.name.starts_with(EXAPP_CONTAINER_PREFIX));
        let inspected = within(
            self.timeout(),
            self.docker().inspect_container(&container.id, None),
        )
        .await?;
        Ok(inspected.config.and_then(|c| c.image))
    }

    /// `GET /images/{id}/json` and `/history`: immutable per image ID.
    pub async fn layer_data(&self, id: &ImageId) -> Result<LayerData, DockerError> {
        let docker = self.docker();
        let (inspect, history) = tokio::try_join!(
            within(self.timeout(), docker.inspect_image(id.as_str())),
            within(self.timeout(), docker.image_history(id.as_str())),
        )?;
        let diff_ids = inspect.root_fs.and_then(|r| r.layers).unwrap_or_default();
        Ok(LayerData {
            diff_ids,
            history_sizes: history.into_iter().map(|h| h.size).collect(),
        })
    }

    /// One ExApp's container by name (`nc_app_<appid>`), as a listing would
    /// show it: for daemons that cannot list (HaRP). None when there is none.
    pub async fn exapp_container(
        &self,
        appid: &AppId,
    ) -> Result<Option<ListedContainer>, DockerError> {
        let name = format!("{EXAPP_CONTAINER_PREFIX}{appid}");
        let inspected =
            match within(self.timeout(), self.docker().inspect_container(&name, None)).await {
                Ok(c) => c,
                Err(e) if e.is_not_found() => return Ok(None),
                Err(e) => return Err(e),
            };
        let image_id = ImageId::parse(inspected.image.as_deref().unwrap_or_default())
            .map_err(|e| invalid(format!("container {name}: {e}")))?;
        Ok(Some(ListedContainer {
            id: inspected.id.unwrap_or_default(),
            name,
            image_id,
            state: inspected
                .state
                .and_then(|s| s.status)
                .map(|s| s.to_string())
                .unwrap_or_default(),
            image: inspected.config.and_then(|c| c.image).unwrap_or_default(),
        }))
    }

    /// One image by ID or reference, as a listing would show it, with its
    /// layers' diff IDs: for daemons that cannot list (HaRP). None when gone.
    pub async fn image(
        &self,
        id_or_ref: &str,
    ) -> Result<Option<(ListedImage, Vec<String>)>, DockerError> {
        let inspected = match within(self.timeout(), self.docker().inspect_image(id_or_ref)).await {
            Ok(i) => i,
            Err(e) if e.is_not_found() => return Ok(None),
            Err(e) => return Err(e),
        };
        let id = ImageId::parse(inspected.id.as_deref().unwrap_or_default())
            .map_err(|e| invalid(format!("image {id_or_ref}: {e}")))?;
        let created = inspected
            .created
            .as_deref()
            .and_then(parse_rfc3339)
            .unwrap_or(0);
        let size = u64::try_from(inspected.size.unwrap_or(0)).unwrap_or(0);
        let diff_ids = inspected.root_fs.and_then(|r| r.layers).unwrap_or_default();
        Ok(Some((
            ListedImage {
                id,
                repo_tags: real_references(inspected.repo_tags.unwrap_or_default()),
                repo_digests: real_references(inspected.repo_digests.unwrap_or_default()),
                created,
                size,
            },
            diff_ids,
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "sha256:d7dd8ee139e5dfc1a117e160e6c36ef32afbace4beb9569940838904737a1ce6";

    fn body(json: serde_json::Value) -> bytes::Bytes {
        bytes::Bytes::from(json.to_string())
    }

    fn digest(json: serde_json::Value) -> Option<[u8; 32]> {
        ImageList::Body(body(json)).body_digest()
    }

    #[test]
    fn an_image_list_has_the_same_digest_in_any_order_and_no_other_for_other_entries() {
        let a = serde_json::json!({"Id": ID, "RepoTags": ["a:1"], "Created": 1, "Size": 2});
        let b = serde_json::json!({"Id": ID, "RepoTags": ["b:1"], "Created": 1, "Size": 2});
        let c = serde_json::json!({"Id": ID, "RepoTags": ["b:1"], "Created": 1, "Size": 3});
        let listed = digest(serde_json::json!([a, b])).expect("an array has a digest");
        assert_eq!(digest(serde_json::json!([b, a])), Some(listed));
        for other in [
            serde_json::json!([a]),
            serde_json::json!([a, c]),
            serde_json::json!([a, b, b]),
            serde_json::json!([]),
        ] {
            assert_ne!(digest(other.clone()), Some(listed), "{other}");
        }
        assert_eq!(digest(serde_json::json!({"Id": ID})), None, "not a list");
        assert_eq!(ImageList::Parsed(vec![]).body_digest(), None);
    }

    #[test]
    fn an_image_list_keeps_the_id_references_time_and_size_and_skips_the_rest() {
        let rows: Vec<ImageRow> = parsed(
            "image",
            body(serde_json::json!([
                {"Id": ID, "ParentId": "", "RepoTags": ["ghcr.io/nextcloud/app:1"],
                 "RepoDigests": null, "Created": 1_700_000_000, "Size": 42,
                 "SharedSize": -1, "Containers": -1, "Labels": {"a": "b"}},
                {"Id": ID, "RepoTags": null, "RepoDigests": ["x@sha256:00"],
                 "Created": 1, "Size": 0, "Labels": null}
            ])),
        )
        .unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].id, ID);
        assert_eq!(
            rows[0].repo_tags.as_deref(),
            Some(&["ghcr.io/nextcloud/app:1".to_owned()][..])
        );
        assert_eq!(rows[0].repo_digests, None);
        assert_eq!((rows[0].created, rows[0].size), (1_700_000_000, 42));
        assert_eq!(rows[1].repo_tags, None);
    }

    #[test]
    fn an_image_without_its_size_fails_the_whole_list() {
        let e = parsed::<ImageRow>("image", body(serde_json::json!([{"Id": ID, "Created": 1}])))
            .err()
            .expect("refused");
        assert!(e.to_string().contains("image list"), "{e}");
    }

    #[test]
    fn a_container_in_a_state_no_engine_has_fails_the_whole_list() {
        let row = |state: &str| {
            serde_json::json!([{"Id": "c1", "Names": ["/nc_app_x"],
            "Image": "app:1", "ImageID": ID, "State": state}])
        };
        let ok: Vec<ContainerRow> = parsed("container", body(row("running"))).unwrap();
        let listed = listed_container(ok.into_iter().next().unwrap()).unwrap();
        assert_eq!(
            (listed.name.as_str(), listed.state.as_str()),
            ("nc_app_x", "running")
        );
        assert!(parsed::<ContainerRow>("container", body(row("sleeping"))).is_err());
    }
}
