//! The snapshot of a daemon that cannot list (a HaRP daemon): the
//! containers of the ExApps it was given, and the images the janitor can
//! name — each ExApp's current image, what its reference points at now (an
//! update pulled but not switched to yet), and every image the history says
//! was once an ExApp's current one — each looked up by inspect. Images of
//! other workloads are never seen, so never touched.
//!
//! Without a listing, shared layers cannot be told apart: each image counts
//! as one layer of its whole size, so every sum over such images is an
//! upper bound (the report says so).

use std::collections::BTreeSet;

use futures_util::{stream, StreamExt};

use super::LAYER_FETCH_CONCURRENCY;
use crate::backend::Backend;
use crate::docker::DockerError;
use crate::domain::{AppId, ImageId};
use crate::inventory::{ContainerInfo, ExAppContainer, History, ImageInfo, Layer, Snapshot};

/// The layer ID standing for an image's whole size: no two images share it.
pub fn whole_image_layer(id: &ImageId) -> String {
    format!("{id}#whole")
}

/// The snapshot, and what the admin should know of it.
pub struct Found {
    pub snapshot: Snapshot,
    pub notes: Vec<String>,
}

pub async fn snapshot(
    client: &Backend,
    exapps: &[AppId],
    history: &History,
) -> Result<Found, DockerError> {
    let found: Vec<Result<Option<(AppId, crate::docker::ListedContainer)>, DockerError>> =
        stream::iter(exapps.iter().cloned())
            .map(|appid| async move {
                Ok(client
                    .exapp_container(&appid)
                    .await?
                    .map(|c| (appid, c)))
            })
            .buffered(LAYER_FETCH_CONCURRENCY)
            .collect()
            .await;
    let mut containers = Vec::new();
    let mut wanted: BTreeSet<String> = BTreeSet::new();
    let mut missing = Vec::new();
    for (appid, found) in exapps.iter().zip(found) {
        let Some((appid, c)) = found? else {
            missing.push(appid.to_string());
            continue;
        };
        wanted.insert(c.image_id.to_string());
        if !c.image.is_empty() {
            // The reference may name a newer image now (an update pulled).
            wanted.insert(c.image.clone());
        }
        containers.push(ContainerInfo {
            name: c.name,
            image_id: c.image_id,
            state: c.state,
            exapp: Some(ExAppContainer {
                appid,
                config_image: c.image,
            }),
        });
    }
    // Only the listed ExApps' history: an ExApp taken off the list is not
    // looked at (its running image would look outdated without its container).
    wanted.extend(
        history
            .image_owners
            .iter()
            .filter(|(_, owner)| exapps.contains(owner))
            .map(|(id, _)| id.to_string()),
    );

    let looked_up: Vec<Result<Option<ImageInfo>, DockerError>> = stream::iter(wanted)
        .map(|wanted| async move {
            let Ok(id) = ImageId::parse(&wanted) else {
                return image_by_reference(client, &wanted).await;
            };
            Ok(client.image(&id).await?.map(|(image, _)| info(image)))
        })
        .buffered(LAYER_FETCH_CONCURRENCY)
        .collect()
        .await;
    let mut seen = BTreeSet::new();
    let mut images = Vec::new();
    for image in looked_up {
        if let Some(image) = image? {
            if seen.insert(image.id.clone()) {
                images.push(image);
            }
        }
    }
    let notes = if missing.is_empty() {
        Vec::new()
    } else {
        vec![format!(
            "no container nc_app_<id> for {} on this host: not deployed here, or a typo",
            missing.join(", ")
        )]
    };
    Ok(Found {
        snapshot: Snapshot { images, containers },
        notes,
    })
}

/// An image by reference: inspects by reference work through HaRP too.
async fn image_by_reference(
    client: &Backend,
    reference: &str,
) -> Result<Option<ImageInfo>, DockerError> {
    match client.image_by_reference(reference).await {
        Ok(found) => Ok(found.map(|(image, _)| info(image))),
        // A reference that cannot be looked up leaves nothing to see.
        Err(e) if !e.is_transient() => Ok(None),
        Err(e) => Err(e),
    }
}

fn info(image: crate::docker::ListedImage) -> ImageInfo {
    ImageInfo {
        layers: vec![Layer {
            chain_id: whole_image_layer(&image.id).into(),
            size: image.size,
        }],
        id: image.id,
        repo_tags: image.repo_tags,
        repo_digests: image.repo_digests,
        created: image.created,
        size: image.size,
    }
}
