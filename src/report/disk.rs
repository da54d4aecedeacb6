//! PURE: how a daemon's disk divides into parts (the overview's disk bar),
//! as data; the words and colours are the web layer's.

use std::collections::HashMap;

use crate::inventory::{ClassifiedImage, Status};
use crate::policy::Decision;

/// The parts of a daemon's disk, most needed first. An outdated image that
/// is not removable is either kept by `keep_previous` or waiting out
/// `min_age_hours`: two different reasons, so two parts — the admin acts on
/// one with a setting and on the other by waiting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Part {
    Current,
    InUse,
    Other,
    Kept,
    Waiting,
    Removable,
}

impl Part {
    pub const ALL: [Part; 6] = [
        Part::Current,
        Part::InUse,
        Part::Other,
        Part::Kept,
        Part::Waiting,
        Part::Removable,
    ];

    pub fn of(image: &ClassifiedImage, decision: &Decision) -> Self {
        match image.status {
            _ if decision.removable => Part::Removable,
            Status::Current => Part::Current,
            Status::InUse => Part::InUse,
            Status::Outdated if decision.kept_previous => Part::Kept,
            Status::Outdated if decision.waits_until.is_some() => Part::Waiting,
            // An outdated image while the settings cannot be read is neither.
            Status::Outdated
            | Status::Protected
            | Status::Pending
            | Status::Foreign
            | Status::Dangling => Part::Other,
        }
    }
}

/// Bytes per part: each layer once, under the most-needed image using it
/// (a layer the current image needs is "current" even if old images share it).
pub fn disk_parts(images: &[ClassifiedImage], decisions: &[Decision]) -> Vec<(Part, u64)> {
    let mut owner: HashMap<&str, (Part, u64)> = HashMap::new();
    for (image, decision) in images.iter().zip(decisions) {
        let part = Part::of(image, decision);
        for layer in &image.info.layers {
            let entry = owner
                .entry(layer.chain_id.as_str())
                .or_insert((part, layer.size));
            entry.0 = entry.0.min(part);
        }
    }
    Part::ALL
        .iter()
        .map(|p| {
            (
                *p,
                owner.values().filter(|(q, _)| q == p).map(|(_, s)| s).sum(),
            )
        })
        .collect()
}
