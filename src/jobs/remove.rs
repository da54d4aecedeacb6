//! The removal protocol of one job, against the live daemon:
//! decide again (the image may be gone, used or protected by now), then
//! untag each reference it has now, then remove the ID if it is still there.
//! Docker's 404 means already removed; its 409 means in use now (skipped,
//! in Docker's own words). Bytes freed are counted from the layers Docker
//! reports deleting.

use std::collections::HashMap;

use crate::docker::{DaemonClient, DockerError, Removed};
use crate::domain::{ImageId, ProtectedPattern};
use crate::inventory::reference;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Succeeded {
        bytes_freed: u64,
        note: Option<String>,
    },
    Skipped {
        reason: String,
        bytes_freed: u64,
    },
    /// Worth another attempt later (daemon unreachable, timeout, 5xx).
    Retry(String),
    Failed(String),
}

/// Runs the protocol. `layer_sizes` maps the image's chain IDs to sizes.
pub async fn remove(
    client: &DaemonClient,
    image: &ImageId,
    protected: &[ProtectedPattern],
    layer_sizes: &HashMap<String, u64>,
) -> Outcome {
    let mut freed = Freed::new(layer_sizes);
    let live = match client.live_image(image).await {
        Ok(Some(live)) => live,
        Ok(None) => {
            return Outcome::Succeeded {
                bytes_freed: 0,
                note: Some("already removed".into()),
            }
        }
        Err(e) => return error_outcome(&e),
    };
    match client.containers_using(image).await {
        Ok(users) if !users.is_empty() => {
            let who: Vec<String> = users
                .iter()
                .map(|(name, state)| format!("{name} ({state})"))
                .collect();
            return Outcome::Skipped {
                reason: format!("in use now by container {}", who.join(", ")),
                bytes_freed: 0,
            };
        }
        Ok(_) => {}
        Err(e) => return error_outcome(&e),
    }
    let references: Vec<String> = live
        .repo_tags
        .iter()
        .chain(&live.repo_digests)
        .cloned()
        .collect();
    if let Some(pattern) = protected.iter().find(|p| {
        references
            .iter()
            .any(|r| p.matches(r) || reference::normalized(r).is_some_and(|n| p.matches(&n)))
    }) {
        return Outcome::Skipped {
            reason: format!("protected now by pattern {pattern}"),
            bytes_freed: 0,
        };
    }

    // Only the references this image has now: one that moved to another
    // image since the preview is that image's business.
    for r in &references {
        match client.remove_reference(r).await {
            Ok(removed) => freed.add(&removed),
            Err(e) if e.is_not_found() => {}
            Err(e) => return freed.stop(&e),
        }
    }
    if freed.deleted(image) {
        return Outcome::Succeeded {
            bytes_freed: freed.bytes,
            note: None,
        };
    }
    match client.live_image(image).await {
        Ok(None) => {}
        Ok(Some(_)) => match client.remove_reference(image.as_str()).await {
            Ok(removed) => freed.add(&removed),
            Err(e) if e.is_not_found() => {}
            Err(e) => return freed.stop(&e),
        },
        Err(e) => return freed.stop(&e),
    }
    Outcome::Succeeded {
        bytes_freed: freed.bytes,
        note: None,
    }
}

/// Bytes of the layers Docker reported deleting.
struct Freed<'a> {
    sizes: &'a HashMap<String, u64>,
    bytes: u64,
    deleted: Vec<String>,
}

impl<'a> Freed<'a> {
    fn new(sizes: &'a HashMap<String, u64>) -> Self {
        Self {
            sizes,
            bytes: 0,
            deleted: Vec::new(),
        }
    }

    fn add(&mut self, removed: &[Removed]) {
        for r in removed {
            if let Removed::Deleted(id) = r {
                self.bytes += self.sizes.get(id).copied().unwrap_or(0);
                self.deleted.push(id.clone());
            }
        }
    }

    /// Docker said it deleted this image (no need to look again).
    fn deleted(&self, image: &ImageId) -> bool {
        self.deleted.iter().any(|d| d == image.as_str())
    }

    /// An error part-way: a 409 is Docker refusing (in use now).
    fn stop(&self, e: &DockerError) -> Outcome {
        if e.is_conflict() {
            Outcome::Skipped {
                reason: e.daemon_message().unwrap_or("conflict").to_owned(),
                bytes_freed: self.bytes,
            }
        } else {
            error_outcome(e)
        }
    }
}

fn error_outcome(e: &DockerError) -> Outcome {
    if e.is_transient() {
        Outcome::Retry(e.to_string())
    } else if e.is_conflict() {
        Outcome::Skipped {
            reason: e.daemon_message().unwrap_or("conflict").to_owned(),
            bytes_freed: 0,
        }
    } else {
        Outcome::Failed(e.to_string())
    }
}
