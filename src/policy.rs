//! PURE: which images a cleanup removes now, and why each other one stays.
//! Removable: `outdated` images outdated for at least `min_age_hours` and
//! not among the `keep_previous` most recently outdated of their ExApp, plus
//! `dangling` images when `remove_dangling` is on. Nothing else, ever:
//! not `pending` images (pulled for an update, not used yet), and nothing at
//! all while the settings cannot be read (fail closed).

use std::collections::HashMap;

use crate::clock::rfc3339;
use crate::domain::AppId;
use crate::inventory::{ClassifiedImage, Status};

/// The settings the policy reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    pub keep_previous: u32,
    pub min_age_hours: u32,
    pub remove_dangling: bool,
    /// The settings could not be read: nothing is removable until they can.
    pub halted: bool,
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            keep_previous: 0,
            min_age_hours: 24,
            remove_dangling: false,
            halted: false,
        }
    }
}

impl Policy {
    /// What applies while the settings cannot be read: nothing is removed.
    pub const HALTED: Policy = Policy {
        keep_previous: 0,
        min_age_hours: 0,
        remove_dangling: false,
        halted: true,
    };
}

/// Why nothing is removable while the settings cannot be read.
pub const HALTED_WHY: &str =
    "not removed: the settings cannot be read, so nothing is removed until they can";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub removable: bool,
    /// Why it is (not) removable, for the admin.
    pub why: String,
    /// Not removable yet only because it has not been outdated for
    /// `min_age_hours`: the moment it will be (time alone changes this).
    pub waits_until: Option<i64>,
    /// Not removable because `keep_previous` keeps it (only a settings
    /// change or a newer outdated image changes this).
    pub kept_previous: bool,
}

impl Decision {
    fn new(removable: bool, why: impl Into<String>) -> Self {
        Self {
            removable,
            why: why.into(),
            waits_until: None,
            kept_previous: false,
        }
    }
}

/// One decision per image, in the inventory's order. `now` is unix seconds.
pub fn decide(policy: &Policy, images: &[ClassifiedImage], now: i64) -> Vec<Decision> {
    let kept = kept_previous(policy.keep_previous, images);
    images
        .iter()
        .enumerate()
        .map(|(i, image)| match image.status {
            Status::Current | Status::InUse | Status::Protected | Status::Foreign => {
                Decision::new(false, "never removed")
            }
            Status::Pending => Decision::new(
                false,
                "never removed: not used yet (it becomes current or outdated first)",
            ),
            Status::Dangling | Status::Outdated if policy.halted => {
                Decision::new(false, HALTED_WHY)
            }
            Status::Dangling if policy.remove_dangling => Decision::new(
                true,
                "removable: dangling images are removed (remove_dangling is on)",
            ),
            Status::Dangling => Decision::new(false, "kept: remove_dangling is off"),
            Status::Outdated if kept[i] => Decision {
                kept_previous: true,
                ..Decision::new(
                    false,
                    format!(
                        "kept: one of the {} most recently outdated images of {} (keep_previous)",
                        policy.keep_previous,
                        image.owner.as_ref().map(AppId::as_str).unwrap_or("?")
                    ),
                )
            },
            Status::Outdated => {
                let ready_at = ready_at(policy, image.outdated_since.unwrap_or(now));
                if now >= ready_at {
                    Decision::new(
                        true,
                        format!(
                            "removable: outdated for at least {} h",
                            policy.min_age_hours
                        ),
                    )
                } else {
                    Decision {
                        waits_until: Some(ready_at),
                        ..Decision::new(
                            false,
                            format!(
                                "not yet: removable from {} (min_age_hours = {})",
                                rfc3339(ready_at),
                                policy.min_age_hours
                            ),
                        )
                    }
                }
            }
        })
        .collect()
}

/// When the first of `decide`'s answers would change with time alone: the
/// earliest moment after `now` at which a waiting outdated image becomes
/// removable. None when no decision depends on time, so a result computed at
/// `now` stays right until the images or the policy change.
pub fn next_change(policy: &Policy, images: &[ClassifiedImage], now: i64) -> Option<i64> {
    if policy.halted {
        return None;
    }
    let kept = kept_previous(policy.keep_previous, images);
    images
        .iter()
        .zip(kept)
        .filter(|(image, kept)| image.status == Status::Outdated && !kept)
        .filter_map(|(image, _)| match image.outdated_since {
            // `decide` counts such an image from `now`: its text moves every second.
            None => Some(now + 1),
            Some(since) => Some(ready_at(policy, since)).filter(|t| *t > now),
        })
        .min()
}

/// When an image outdated since `since` has waited `min_age_hours`.
fn ready_at(policy: &Policy, since: i64) -> i64 {
    since + i64::from(policy.min_age_hours) * 3600
}

/// Marks the `keep` most recently outdated images of each ExApp.
fn kept_previous(keep: u32, images: &[ClassifiedImage]) -> Vec<bool> {
    let mut by_app: HashMap<&AppId, Vec<usize>> = HashMap::new();
    for (i, image) in images.iter().enumerate() {
        if let (Status::Outdated, Some(owner)) = (image.status, &image.owner) {
            by_app.entry(owner).or_default().push(i);
        }
    }
    let mut kept = vec![false; images.len()];
    for indices in by_app.values_mut() {
        // Most recently outdated first; ties by newest image, then by ID so the choice is stable.
        indices.sort_by(|&a, &b| {
            let key = |i: usize| {
                (
                    images[i].outdated_since,
                    images[i].info.created,
                    images[i].info.id.clone(),
                )
            };
            key(b).cmp(&key(a))
        });
        for &i in indices.iter().take(keep as usize) {
            kept[i] = true;
        }
    }
    kept
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::ImageId;
    use crate::inventory::ImageInfo;

    const NOW: i64 = 1_800_000_000;
    const HOUR: i64 = 3600;

    fn image(
        n: u8,
        status: Status,
        owner: Option<&str>,
        outdated_hours_ago: Option<i64>,
    ) -> ClassifiedImage {
        ClassifiedImage {
            info: ImageInfo {
                id: ImageId::parse(&format!("sha256:{}", format!("{n:02x}").repeat(32))).unwrap(),
                repo_tags: vec![],
                repo_digests: vec![],
                created: NOW - 100 * HOUR + i64::from(n),
                size: 1,
                layers: vec![],
            },
            owner: owner.map(|o| AppId::parse(o).unwrap()),
            status,
            reason: String::new(),
            containers: vec![],
            outdated_since: outdated_hours_ago.map(|h| NOW - h * HOUR),
            unique_bytes: 1,
        }
    }

    fn removable(policy: Policy, images: &[ClassifiedImage]) -> Vec<bool> {
        decide(&policy, images, NOW)
            .into_iter()
            .map(|d| d.removable)
            .collect()
    }

    #[test]
    fn only_outdated_and_opted_in_dangling_images_are_ever_removable() {
        let images = [
            image(1, Status::Current, Some("a"), None),
            image(2, Status::InUse, Some("a"), None),
            image(3, Status::Protected, Some("a"), None),
            image(4, Status::Foreign, None, None),
            image(5, Status::Dangling, None, None),
            image(6, Status::Outdated, Some("a"), Some(100)),
            image(7, Status::Pending, Some("a"), None),
        ];
        let all_on = Policy {
            keep_previous: 0,
            min_age_hours: 0,
            remove_dangling: true,
            halted: false,
        };
        assert_eq!(
            removable(all_on, &images),
            [false, false, false, false, true, true, false]
        );
        assert_eq!(
            removable(Policy::default(), &images),
            [false, false, false, false, false, true, false]
        );
    }

    #[test]
    fn nothing_is_removable_while_the_settings_cannot_be_read() {
        let images = [
            image(1, Status::Outdated, Some("a"), Some(1000)),
            image(2, Status::Dangling, None, None),
        ];
        let decisions = decide(&Policy::HALTED, &images, NOW);
        assert!(decisions
            .iter()
            .all(|d| !d.removable && d.why == HALTED_WHY));
        assert_eq!(next_change(&Policy::HALTED, &images, NOW), None);
    }

    #[test]
    fn a_pending_image_never_takes_a_keep_previous_slot() {
        let images = [
            image(1, Status::Outdated, Some("a"), Some(300)),
            image(2, Status::Outdated, Some("a"), Some(200)),
            image(3, Status::Pending, Some("a"), None),
        ];
        let keep_one = Policy {
            keep_previous: 1,
            ..Policy::default()
        };
        // Image 2 is the one kept; the pending image neither counts nor goes.
        assert_eq!(removable(keep_one, &images), [true, false, false]);
    }

    #[test]
    fn images_outdated_for_less_than_min_age_wait() {
        let images = [
            image(1, Status::Outdated, Some("a"), Some(23)),
            image(2, Status::Outdated, Some("a"), Some(24)),
        ];
        let decisions = decide(&Policy::default(), &images, NOW);
        assert!(!decisions[0].removable && decisions[0].why.starts_with("not yet: removable from"));
        assert!(decisions[1].removable);
        let lowered = Policy {
            min_age_hours: 1,
            ..Policy::default()
        };
        assert_eq!(removable(lowered, &images), [true, true]);
    }

    #[test]
    fn decisions_change_next_when_the_first_waiting_image_comes_of_age() {
        let images = [
            image(1, Status::Outdated, Some("a"), Some(23)),
            image(2, Status::Outdated, Some("a"), Some(20)),
            image(3, Status::Outdated, Some("a"), Some(30)),
            image(4, Status::Current, Some("a"), None),
        ];
        let ready_at = NOW + HOUR; // image 1: outdated 23 h ago, min_age 24 h
        assert_eq!(
            next_change(&Policy::default(), &images, NOW),
            Some(ready_at)
        );
        let before = decide(&Policy::default(), &images, ready_at - 1);
        let at = decide(&Policy::default(), &images, ready_at);
        assert!(!before[0].removable && at[0].removable);
        assert_eq!(before[1..], at[1..], "nothing else changes at that moment");
    }

    #[test]
    fn a_decision_says_whether_an_image_waits_for_its_age_or_is_kept() {
        let images = [
            image(1, Status::Outdated, Some("a"), Some(30)),
            image(2, Status::Outdated, Some("a"), Some(23)),
            image(3, Status::Outdated, Some("a"), Some(1)),
        ];
        let keep_one = Policy {
            keep_previous: 1,
            ..Policy::default()
        };
        let d = decide(&keep_one, &images, NOW);
        assert_eq!(
            d.iter()
                .map(|d| (d.removable, d.waits_until, d.kept_previous))
                .collect::<Vec<_>>(),
            [
                (true, None, false),
                (false, Some(NOW + HOUR), false),
                (false, None, true),
            ]
        );
        let halted = decide(&Policy::HALTED, &images, NOW);
        assert!(halted
            .iter()
            .all(|d| d.waits_until.is_none() && !d.kept_previous));
    }

    #[test]
    fn decisions_never_change_with_time_when_nothing_waits() {
        let images = [
            image(1, Status::Outdated, Some("a"), Some(30)), // removable already
            image(2, Status::InUse, Some("a"), None),
            image(3, Status::Dangling, None, None),
        ];
        assert_eq!(next_change(&Policy::default(), &images, NOW), None);
    }

    #[test]
    fn an_image_kept_by_keep_previous_does_not_wait_for_its_age() {
        let images = [image(1, Status::Outdated, Some("a"), Some(1))];
        let keep_one = Policy {
            keep_previous: 1,
            ..Policy::default()
        };
        assert_eq!(next_change(&keep_one, &images, NOW), None);
        assert_eq!(
            next_change(&Policy::default(), &images, NOW),
            Some(NOW + 23 * HOUR)
        );
    }

    #[test]
    fn keep_previous_keeps_the_most_recently_outdated_per_exapp() {
        let images = [
            image(1, Status::Outdated, Some("a"), Some(300)),
            image(2, Status::Outdated, Some("a"), Some(200)),
            image(3, Status::Outdated, Some("a"), Some(100)),
            image(4, Status::Outdated, Some("b"), Some(300)),
        ];
        let keep_one = Policy {
            keep_previous: 1,
            ..Policy::default()
        };
        assert_eq!(removable(keep_one, &images), [true, true, false, false]);
        let keep_five = Policy {
            keep_previous: 5,
            ..Policy::default()
        };
        assert_eq!(removable(keep_five, &images), [false; 4]);
        let why = &decide(&keep_one, &images, NOW)[2].why;
        assert_eq!(
            why,
            "kept: one of the 1 most recently outdated images of a (keep_previous)"
        );
    }
}
