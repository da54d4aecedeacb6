//! The image objects of every daemon, built once and shared by every request
//! until something they depend on changes: a daemon's inventory (not just
//! its scan generation: a rescan that found nothing new changes nothing), the daemons themselves, the policy, or the moment a waiting
//! outdated image comes of age. Under load every request of the Images page
//! and `GET /api/v1/images` then reads the same objects, and the API's
//! unfiltered answer is one shared buffer instead of a fresh copy per client.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, OnceLock};

use bytes::Bytes;

use super::{image_objects, name_owners, ImageFilter, ImageObject, OwnerNames};
use crate::policy::{self, Policy};
use crate::scan::CachedScan;
use crate::store::StoredDaemon;

/// What a report was built from; a report answers only for the same key.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Key {
    /// Daemon ID, name and inventory generation (None: never scanned), in
    /// daemon order. A rescan that changed nothing keeps the report.
    daemons: Vec<(i64, String, Option<i64>)>,
    policy: Policy,
    /// AppAPI's ExApp names and versions (Nextcloud connection, issue #20).
    names: OwnerNames,
}

impl Key {
    fn of(
        daemons: &[StoredDaemon],
        scans: &HashMap<i64, Arc<CachedScan>>,
        policy: Policy,
        names: OwnerNames,
    ) -> Self {
        Self {
            daemons: daemons
                .iter()
                .map(|d| {
                    let generation = scans.get(&d.id).map(|c| c.inventory_generation);
                    (d.id, d.name.to_string(), generation)
                })
                .collect(),
            policy,
            names,
        }
    }
}

/// Every daemon's image objects, the policy applied, as of one moment.
#[derive(Debug)]
pub struct Report {
    /// All image objects, in daemon order then inventory order.
    pub images: Vec<ImageObject>,
    /// Every ExApp that owns an image, sorted.
    pub owners: Vec<String>,
    key: Key,
    built_at: i64,
    /// When a decision would change with time alone (see `policy::next_change`).
    valid_until: Option<i64>,
    json: OnceLock<Bytes>,
}

impl Report {
    fn build(
        key: Key,
        daemons: &[StoredDaemon],
        scans: &HashMap<i64, Arc<CachedScan>>,
        now: i64,
    ) -> Self {
        let mut images = image_objects(daemons, scans, &key.policy, &ImageFilter::default(), now);
        name_owners(&mut images, &key.names);
        let owners: BTreeSet<&String> = images.iter().filter_map(|i| i.owner.as_ref()).collect();
        let owners = owners.into_iter().cloned().collect();
        let valid_until = daemons
            .iter()
            .filter_map(|d| scans.get(&d.id).and_then(|c| c.inventory.as_ref()))
            .filter_map(|scan| policy::next_change(&key.policy, &scan.images, now))
            .min();
        Self {
            images,
            owners,
            key,
            built_at: now,
            valid_until,
            json: OnceLock::new(),
        }
    }

    /// Still the right answer for `key` at `now`? (A clock set back also
    /// rebuilds: decisions are only known from `built_at` on.)
    fn answers(&self, key: &Key, now: i64) -> bool {
        self.key == *key && now >= self.built_at && self.valid_until.is_none_or(|t| now < t)
    }

    /// The daemons' names, in daemon order (scanned or not).
    pub fn daemon_names(&self) -> impl Iterator<Item = &str> {
        self.key.daemons.iter().map(|(_, name, _)| name.as_str())
    }

    /// The image objects that pass `filter`, in report order.
    pub fn matching<'a>(
        &'a self,
        filter: &'a ImageFilter,
    ) -> impl Iterator<Item = &'a ImageObject> + 'a {
        self.images.iter().filter(move |i| filter.matches(i))
    }

    /// Every image object as the API's JSON array, serialised once.
    pub fn json(&self) -> Bytes {
        self.json
            .get_or_init(|| {
                Bytes::from(serde_json::to_vec(&self.images).expect("image objects serialise"))
            })
            .clone()
    }
}

/// The latest report, rebuilt when it no longer answers.
#[derive(Debug, Default)]
pub struct ReportCache {
    // A tokio mutex: requests arriving during a rebuild wait for it instead
    // of building the same report again.
    current: tokio::sync::Mutex<Option<Arc<Report>>>,
}

impl ReportCache {
    /// The report for these daemons, their last scans and `policy` at `now`.
    pub async fn get(
        &self,
        daemons: &[StoredDaemon],
        scans: &HashMap<i64, Arc<CachedScan>>,
        policy: Policy,
        now: i64,
    ) -> Arc<Report> {
        self.get_named(daemons, scans, policy, OwnerNames::new(), now)
            .await
    }

    /// `get`, with the owners' names and versions AppAPI lists.
    pub async fn get_named(
        &self,
        daemons: &[StoredDaemon],
        scans: &HashMap<i64, Arc<CachedScan>>,
        policy: Policy,
        names: OwnerNames,
        now: i64,
    ) -> Arc<Report> {
        let key = Key::of(daemons, scans, policy, names);
        let mut current = self.current.lock().await;
        if let Some(report) = current.as_ref().filter(|r| r.answers(&key, now)) {
            return report.clone();
        }
        let report = Arc::new(Report::build(key, daemons, scans, now));
        *current = Some(report.clone());
        report
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{AppId, DaemonName, Endpoint, ImageId};
    use crate::inventory::{ClassifiedImage, ImageInfo, Status};
    use crate::scan::DaemonInventory;
    use crate::store::DaemonContact;

    const NOW: i64 = 1_800_000_000;
    const HOUR: i64 = 3600;

    fn daemon(id: i64, name: &str) -> StoredDaemon {
        StoredDaemon {
            id,
            name: DaemonName::parse(name).unwrap(),
            endpoint: Endpoint::parse("unix:///run/test.sock", None).unwrap(),
            harp: None,
            created_at: time::OffsetDateTime::UNIX_EPOCH,
            contact: DaemonContact::default(),
        }
    }

    fn image(n: u8, status: Status, outdated_hours_ago: Option<i64>) -> ClassifiedImage {
        ClassifiedImage {
            info: ImageInfo {
                id: ImageId::parse(&format!("sha256:{}", format!("{n:02x}").repeat(32))).unwrap(),
                repo_tags: vec![format!("ghcr.io/nc/app:{n}")],
                repo_digests: vec![],
                created: NOW - 100 * HOUR,
                size: 10,
                layers: vec![],
            },
            owner: Some(AppId::parse("app").unwrap()),
            status,
            reason: String::new(),
            containers: vec![],
            outdated_since: outdated_hours_ago.map(|h| NOW - h * HOUR),
            unique_bytes: 10,
        }
    }

    fn scans(generation: i64, images: Vec<ClassifiedImage>) -> HashMap<i64, Arc<CachedScan>> {
        let scan = DaemonInventory {
            notes: Vec::new(),
            images,
            totals: Default::default(),
        };
        let cached = CachedScan {
            scanned_at: Some(NOW),
            duration_ms: Some(1),
            error: None,
            error_at: None,
            attempted_at: NOW,
            generation,
            inventory_generation: generation,
            inventory_digest: None,
            inventory: Some(Arc::new(scan)),
        };
        HashMap::from([(1, Arc::new(cached))])
    }

    #[tokio::test]
    async fn one_report_serves_every_request_until_a_scan_changes() {
        let cache = ReportCache::default();
        let daemons = [daemon(1, "local")];
        let first = scans(1, vec![image(1, Status::Current, None)]);
        let a = cache.get(&daemons, &first, Policy::default(), NOW).await;
        let b = cache
            .get(&daemons, &first, Policy::default(), NOW + 5)
            .await;
        assert!(Arc::ptr_eq(&a, &b));

        let second = scans(
            2,
            vec![
                image(1, Status::Current, None),
                image(2, Status::InUse, None),
            ],
        );
        let c = cache
            .get(&daemons, &second, Policy::default(), NOW + 6)
            .await;
        assert_eq!(c.images.len(), 2);
    }

    #[tokio::test]
    async fn a_new_policy_or_daemon_builds_a_new_report() {
        let cache = ReportCache::default();
        let inventory = scans(1, vec![image(1, Status::Outdated, Some(2))]);
        let one = [daemon(1, "local")];
        let a = cache.get(&one, &inventory, Policy::default(), NOW).await;
        assert!(!a.images[0].removable);
        let no_wait = Policy {
            min_age_hours: 0,
            ..Policy::default()
        };
        let b = cache.get(&one, &inventory, no_wait, NOW).await;
        assert!(b.images[0].removable);
        let renamed = [daemon(1, "gpu")];
        let c = cache.get(&renamed, &inventory, no_wait, NOW).await;
        assert_eq!(c.images[0].daemon, "gpu");
    }

    #[tokio::test]
    async fn a_report_ends_when_a_waiting_image_comes_of_age() {
        let cache = ReportCache::default();
        let daemons = [daemon(1, "local")];
        // Outdated 23 h ago: removable one hour from NOW (min_age_hours 24).
        let inventory = scans(1, vec![image(1, Status::Outdated, Some(23))]);
        let before = cache
            .get(&daemons, &inventory, Policy::default(), NOW + HOUR - 1)
            .await;
        assert!(!before.images[0].removable);
        let after = cache
            .get(&daemons, &inventory, Policy::default(), NOW + HOUR)
            .await;
        assert!(after.images[0].removable);
    }

    #[tokio::test]
    async fn the_json_is_every_image_object() {
        let cache = ReportCache::default();
        let daemons = [daemon(1, "local")];
        let inventory = scans(
            1,
            vec![
                image(1, Status::Current, None),
                image(2, Status::Outdated, Some(1)),
            ],
        );
        let report = cache
            .get(&daemons, &inventory, Policy::default(), NOW)
            .await;
        let parsed: serde_json::Value = serde_json::from_slice(&report.json()).unwrap();
        assert_eq!(parsed, serde_json::to_value(&report.images).unwrap());
        assert_eq!(report.owners, ["app"]);
    }
}
