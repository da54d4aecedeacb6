//! PURE: the overview's answer to "what can I free, and from which ExApp?",
//! across every daemon's last scan.
//!
//! Bytes are what removing a set frees (`layers::reclaimable`: each layer
//! once, and only layers no image outside the set needs), computed per
//! daemon — layers are never shared across daemons — and summed. So the
//! headline's "can be freed now" is what "Clean now" on all daemons
//! previews, and an ExApp's "removable now" is what "Clean up this ExApp"
//! previews. The ExApps' figures may add up to less than the headline: a
//! layer shared only by two ExApps' removable images is freed only when both
//! go.

use std::collections::{BTreeMap, BTreeSet};

use crate::inventory::{layers, ClassifiedImage, Status};
use crate::policy::{self, Decision, Policy};

/// Every figure of the overview's headline and its per-ExApp table.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Summary {
    /// What a cleanup of all daemons frees now.
    pub removable_bytes: u64,
    pub removable_images: usize,
    /// ExApps owning at least one removable image.
    pub removable_exapps: usize,
    /// Removable images no ExApp owns (dangling, with `remove_dangling` on).
    pub removable_unowned: usize,
    /// What the images now waiting out `min_age_hours` free on top of the
    /// removable ones, once they have waited (if nothing else changes).
    pub waiting_bytes: u64,
    pub waiting_images: usize,
    /// When the first waiting image becomes removable.
    pub waiting_from: Option<i64>,
    /// ExApps with at least one outdated image: most to free now first.
    pub exapps: Vec<ExAppFigures>,
}

/// One ExApp's outdated images, across daemons.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExAppFigures {
    pub owner: String,
    pub outdated_images: usize,
    /// What removing all its outdated images would free.
    pub outdated_bytes: u64,
    pub removable_images: usize,
    /// What "Clean up this ExApp" frees now.
    pub removable_bytes: u64,
    /// Outdated images waiting out `min_age_hours`.
    pub waiting_images: usize,
    /// When the first of them becomes removable.
    pub waiting_from: Option<i64>,
    /// Outdated images `keep_previous` keeps.
    pub kept_images: usize,
}

/// The figures for these daemons' images (one slice per daemon) under
/// `policy` at `now` (unix seconds).
pub fn summarize<'a>(
    daemons: impl IntoIterator<Item = &'a [ClassifiedImage]>,
    policy: &Policy,
    now: i64,
) -> Summary {
    let shares: Vec<DaemonShare> = daemons
        .into_iter()
        .map(|images| DaemonShare::of(images, &policy::decide(policy, images, now)))
        .collect();
    merge(&shares)
}

/// One daemon's part of the summary, kept with the daemon's image objects
/// (`report::ReportCache`), so that a rescan of one daemon recomputes only
/// its share and the headline is a sum.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DaemonShare {
    /// This daemon's figures; `removable_exapps` and the ExApps' order are
    /// only known across daemons (`merge`).
    figures: Summary,
    /// ExApps owning a removable image here.
    removable_owners: BTreeSet<String>,
}

impl DaemonShare {
    /// This daemon's own figures (before `merge`).
    pub fn figures(&self) -> &Summary {
        &self.figures
    }

    /// The share of a daemon's images, given the policy's decisions on them.
    pub fn of(images: &[ClassifiedImage], decisions: &[Decision]) -> Self {
        let mut s = Summary::default();
        let mut removable_owners = BTreeSet::new();
        // What a set of this daemon's images frees together.
        let uses = layers::LayerUse::of(images.iter().map(|i| i.info.layers.as_slice()));
        let frees = |in_set: &dyn Fn(&ClassifiedImage, &Decision) -> bool| {
            uses.reclaimable(
                images
                    .iter()
                    .zip(decisions)
                    .filter(|(i, d)| in_set(i, d))
                    .map(|(i, _)| i.info.layers.as_slice()),
            )
        };
        let now_bytes = frees(&|_, d| d.removable);
        s.removable_bytes = now_bytes;
        s.waiting_bytes =
            frees(&|_, d| d.removable || d.waits_until.is_some()).saturating_sub(now_bytes);
        for (image, decision) in images.iter().zip(decisions) {
            if decision.removable {
                s.removable_images += 1;
                match &image.owner {
                    Some(owner) => {
                        removable_owners.insert(owner.as_str().to_owned());
                    }
                    None => s.removable_unowned += 1,
                }
            }
            if let Some(at) = decision.waits_until {
                s.waiting_images += 1;
                s.waiting_from = earliest(s.waiting_from, at);
            }
        }
        let outdated_owners: BTreeSet<&str> = images
            .iter()
            .filter(|i| i.status == Status::Outdated)
            .filter_map(|i| i.owner.as_ref().map(|o| o.as_str()))
            .collect();
        for owner in outdated_owners {
            let of_owner =
                |i: &ClassifiedImage| i.owner.as_ref().is_some_and(|o| o.as_str() == owner);
            let mut app = ExAppFigures {
                owner: owner.to_owned(),
                ..ExAppFigures::default()
            };
            app.outdated_bytes = frees(&|i, _| of_owner(i) && i.status == Status::Outdated);
            app.removable_bytes = frees(&|i, d| of_owner(i) && d.removable);
            for (image, decision) in images.iter().zip(decisions).filter(|(i, _)| of_owner(i)) {
                app.outdated_images += usize::from(image.status == Status::Outdated);
                app.removable_images += usize::from(decision.removable);
                app.kept_images += usize::from(decision.kept_previous);
                if let Some(at) = decision.waits_until {
                    app.waiting_images += 1;
                    app.waiting_from = earliest(app.waiting_from, at);
                }
            }
            s.exapps.push(app);
        }
        Self {
            figures: s,
            removable_owners,
        }
    }
}

/// The summary of every daemon from their shares: bytes add up (layers are
/// never shared across daemons), an ExApp's figures add up across daemons.
pub fn merge<'a>(shares: impl IntoIterator<Item = &'a DaemonShare>) -> Summary {
    let mut s = Summary::default();
    let mut apps: BTreeMap<&str, ExAppFigures> = BTreeMap::new();
    let mut removable_owners: BTreeSet<&str> = BTreeSet::new();
    for share in shares {
        let f = &share.figures;
        s.removable_bytes += f.removable_bytes;
        s.removable_images += f.removable_images;
        s.removable_unowned += f.removable_unowned;
        s.waiting_bytes += f.waiting_bytes;
        s.waiting_images += f.waiting_images;
        if let Some(at) = f.waiting_from {
            s.waiting_from = earliest(s.waiting_from, at);
        }
        removable_owners.extend(share.removable_owners.iter().map(String::as_str));
        for x in &f.exapps {
            let app = apps
                .entry(x.owner.as_str())
                .or_insert_with(|| ExAppFigures {
                    owner: x.owner.clone(),
                    ..ExAppFigures::default()
                });
            app.outdated_images += x.outdated_images;
            app.outdated_bytes += x.outdated_bytes;
            app.removable_images += x.removable_images;
            app.removable_bytes += x.removable_bytes;
            app.waiting_images += x.waiting_images;
            app.kept_images += x.kept_images;
            if let Some(at) = x.waiting_from {
                app.waiting_from = earliest(app.waiting_from, at);
            }
        }
    }
    s.removable_exapps = removable_owners.len();
    s.exapps = apps.into_values().collect();
    // Most to free now first, then most outdated bytes; ties by name (stable).
    s.exapps.sort_by(|a, b| {
        (b.removable_bytes, b.outdated_bytes)
            .cmp(&(a.removable_bytes, a.outdated_bytes))
            .then_with(|| a.owner.cmp(&b.owner))
    });
    s
}

fn earliest(current: Option<i64>, at: i64) -> Option<i64> {
    Some(current.map_or(at, |c| c.min(at)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{AppId, ImageId};
    use crate::inventory::{ImageInfo, Layer};

    const NOW: i64 = 1_800_000_000;
    const HOUR: i64 = 3600;

    /// An image of `owner` with its own layer of `own` bytes on a shared
    /// `base` layer of 1000 bytes.
    fn image(
        n: u8,
        status: Status,
        owner: Option<&str>,
        outdated_hours_ago: Option<i64>,
        own: u64,
    ) -> ClassifiedImage {
        ClassifiedImage {
            info: ImageInfo {
                id: ImageId::parse(&format!("sha256:{}", format!("{n:02x}").repeat(32))).unwrap(),
                repo_tags: vec![],
                repo_digests: vec![],
                created: NOW - 1000 * HOUR + i64::from(n),
                size: 1000 + own,
                layers: vec![
                    Layer {
                        chain_id: "base".into(),
                        size: 1000,
                    },
                    Layer {
                        chain_id: format!("own-{n}").into(),
                        size: own,
                    },
                ],
            },
            owner: owner.map(|o| AppId::parse(o).unwrap()),
            status,
            reason: String::new(),
            containers: vec![],
            outdated_since: outdated_hours_ago.map(|h| NOW - h * HOUR),
            unique_bytes: own,
        }
    }

    fn outdated(n: u8, owner: &str, hours_ago: i64, own: u64) -> ClassifiedImage {
        image(n, Status::Outdated, Some(owner), Some(hours_ago), own)
    }

    fn current(n: u8, owner: &str) -> ClassifiedImage {
        image(n, Status::Current, Some(owner), None, 5)
    }

    #[test]
    fn the_headline_counts_what_goes_now_and_what_follows_after_the_minimum_age() {
        let gpu = [
            current(1, "llm2"),
            outdated(2, "llm2", 100, 300),
            outdated(3, "llm2", 30, 200),
            outdated(4, "llm2", 20, 50), // waits: 4 h left
        ];
        let cpu = [
            current(5, "translate2"),
            outdated(6, "translate2", 48, 70),
            outdated(7, "translate2", 2, 9), // waits: 22 h left
        ];
        let s = summarize([&gpu[..], &cpu[..]], &Policy::default(), NOW);
        assert_eq!(
            (s.removable_images, s.removable_exapps, s.removable_bytes),
            (3, 2, 300 + 200 + 70),
            "the base layer stays: the current images need it"
        );
        assert_eq!(
            (s.waiting_images, s.waiting_bytes, s.waiting_from),
            (2, 50 + 9, Some(NOW + 4 * HOUR))
        );
        assert_eq!(s.removable_unowned, 0);
    }

    #[test]
    fn each_exapp_gets_its_outdated_removable_and_waiting_images_most_to_free_first() {
        let images = [
            current(1, "llm2"),
            outdated(2, "llm2", 100, 300),
            outdated(3, "llm2", 1, 50),
            current(4, "translate2"),
            outdated(5, "translate2", 100, 700),
            current(6, "visionatrix"),
        ];
        let s = summarize([&images[..]], &Policy::default(), NOW);
        assert_eq!(
            s.exapps,
            [
                ExAppFigures {
                    owner: "translate2".into(),
                    outdated_images: 1,
                    outdated_bytes: 700,
                    removable_images: 1,
                    removable_bytes: 700,
                    waiting_images: 0,
                    waiting_from: None,
                    kept_images: 0,
                },
                ExAppFigures {
                    owner: "llm2".into(),
                    outdated_images: 2,
                    outdated_bytes: 350,
                    removable_images: 1,
                    removable_bytes: 300,
                    waiting_images: 1,
                    waiting_from: Some(NOW + 23 * HOUR),
                    kept_images: 0,
                },
            ],
            "visionatrix has nothing outdated, so no row"
        );
    }

    #[test]
    fn layers_shared_only_by_removable_images_count_once_in_the_headline() {
        // Nothing current: the base layer goes with the last image using it.
        let images = [outdated(1, "a", 100, 10), outdated(2, "b", 100, 20)];
        let s = summarize([&images[..]], &Policy::default(), NOW);
        assert_eq!(s.removable_bytes, 1000 + 10 + 20);
        // Each ExApp alone cannot free the base the other still uses.
        let alone: Vec<u64> = s.exapps.iter().map(|x| x.removable_bytes).collect();
        assert_eq!(alone, [20, 10]);
    }

    #[test]
    fn images_kept_by_keep_previous_neither_go_now_nor_wait() {
        let images = [
            current(1, "llm2"),
            outdated(2, "llm2", 100, 300),
            outdated(3, "llm2", 50, 200),
        ];
        let keep_one = Policy {
            keep_previous: 1,
            ..Policy::default()
        };
        let s = summarize([&images[..]], &keep_one, NOW);
        assert_eq!((s.removable_images, s.removable_bytes), (1, 300));
        assert_eq!((s.waiting_images, s.waiting_from), (0, None));
        assert_eq!(s.exapps[0].kept_images, 1);
    }

    #[test]
    fn removable_dangling_images_count_without_an_exapp() {
        let images = [
            image(1, Status::Dangling, None, None, 40),
            outdated(2, "llm2", 100, 300),
        ];
        let with_dangling = Policy {
            remove_dangling: true,
            ..Policy::default()
        };
        let s = summarize([&images[..]], &with_dangling, NOW);
        assert_eq!(
            (s.removable_images, s.removable_exapps, s.removable_unowned),
            (2, 1, 1)
        );
    }

    #[test]
    fn nothing_is_removable_or_waiting_while_the_settings_cannot_be_read() {
        let images = [outdated(1, "llm2", 100, 300), outdated(2, "llm2", 1, 30)];
        let s = summarize([&images[..]], &Policy::HALTED, NOW);
        assert_eq!(
            (s.removable_images, s.removable_bytes, s.waiting_images),
            (0, 0, 0)
        );
        assert_eq!(s.exapps[0].outdated_images, 2, "still listed");
    }
}
