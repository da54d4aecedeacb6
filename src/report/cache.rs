//! The image objects of every daemon, built once and shared by every request
//! until something they depend on changes: a daemon's inventory (not just
//! its scan generation: a rescan that found nothing new changes nothing), the daemons themselves, the policy, or the moment a waiting
//! outdated image comes of age. Under load every request of the Images page
//! and `GET /api/v1/images` then reads the same objects, and the API's
//! unfiltered first page is one shared buffer instead of a fresh copy per
//! client. The API's order, (daemon name, image ID), is sorted once here, so
//! a page after a cursor is found by binary search, not by a sort or a scan
//! of every image per request.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, OnceLock};

use bytes::Bytes;

use super::page::{Cursor, PageRequest, DEFAULT_LIMIT};
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
    /// Indices into `images` in the API's order: by daemon name, then image ID.
    api_order: Vec<u32>,
    /// Every ExApp that owns an image, sorted.
    pub owners: Vec<String>,
    key: Key,
    built_at: i64,
    /// When a decision would change with time alone (see `policy::next_change`).
    valid_until: Option<i64>,
    /// The API's unfiltered first page at the default limit, serialised once.
    head_json: OnceLock<Bytes>,
}

/// One page of `GET /api/v1/images`.
#[derive(Debug)]
pub struct Page {
    /// The JSON array of the page's image objects.
    pub json: Bytes,
    /// Where the next page starts; None on the last page.
    pub next: Option<Cursor>,
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
        let mut api_order: Vec<u32> = (0..images.len() as u32).collect();
        api_order.sort_unstable_by(|&a, &b| {
            api_key(&images[a as usize]).cmp(&api_key(&images[b as usize]))
        });
        Self {
            images,
            api_order,
            owners,
            key,
            built_at: now,
            valid_until,
            head_json: OnceLock::new(),
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

    /// The image objects in the API's order, by daemon name then image ID.
    pub fn in_api_order(&self) -> impl ExactSizeIterator<Item = &ImageObject> {
        self.api_order.iter().map(|&i| &self.images[i as usize])
    }

    /// The page of the image objects that pass `filter`, in the API's order,
    /// strictly after the request's cursor: every image of the page's
    /// daemon range is looked at only from the cursor's position on (found
    /// by binary search, whether or not its image still exists), and only
    /// the page is serialised, except for the unfiltered first page at the
    /// default limit, which every client shares.
    pub fn page(&self, filter: &ImageFilter, request: &PageRequest) -> Page {
        let limit = request.limit.get();
        let total = self.api_order.len();
        if *filter == ImageFilter::default()
            && request.after.is_none()
            && total.min(limit) == total.min(DEFAULT_LIMIT)
        {
            let next = (total > limit).then(|| Cursor::after(self.at(limit - 1)));
            return Page {
                json: self.head_json().clone(),
                next,
            };
        }
        let mut range = &self.api_order[..];
        if let Some(daemon) = &filter.daemon {
            let daemon = daemon.as_str();
            let start =
                range.partition_point(|&i| self.images[i as usize].daemon.as_str() < daemon);
            let end = range.partition_point(|&i| self.images[i as usize].daemon.as_str() <= daemon);
            range = &range[start..end];
        }
        if let Some(after) = &request.after {
            let start =
                range.partition_point(|&i| api_key(&self.images[i as usize]) <= after.key());
            range = &range[start..];
        }
        let mut matching = range
            .iter()
            .map(|&i| &self.images[i as usize])
            .filter(|image| filter.matches(image));
        let page: Vec<&ImageObject> = matching.by_ref().take(limit).collect();
        let next = match page.last() {
            Some(last) if page.len() == limit && matching.next().is_some() => {
                Some(Cursor::after(last))
            }
            _ => None,
        };
        Page {
            json: Bytes::from(serde_json::to_vec(&page).expect("image objects serialise")),
            next,
        }
    }

    fn at(&self, position: usize) -> &ImageObject {
        &self.images[self.api_order[position] as usize]
    }

    fn head_json(&self) -> &Bytes {
        self.head_json.get_or_init(|| {
            let head: Vec<&ImageObject> = self.in_api_order().take(DEFAULT_LIMIT).collect();
            Bytes::from(serde_json::to_vec(&head).expect("image objects serialise"))
        })
    }
}

/// The API's order of image objects.
fn api_key(image: &ImageObject) -> (&str, &str) {
    (&image.daemon, &image.id)
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

    fn first_page(report: &Report, request: &PageRequest) -> (Vec<String>, Option<Cursor>) {
        let page = report.page(&ImageFilter::default(), request);
        let json: serde_json::Value = serde_json::from_slice(&page.json).unwrap();
        let ids = json
            .as_array()
            .unwrap()
            .iter()
            .map(|i| {
                format!(
                    "{}/{}",
                    i["daemon"].as_str().unwrap(),
                    i["id"].as_str().unwrap()
                )
            })
            .collect();
        (ids, page.next)
    }

    /// Two daemons named against their ID order, images against inventory order.
    async fn two_daemons(cache: &ReportCache) -> Arc<Report> {
        let daemons = [daemon(1, "zeta"), daemon(2, "alpha")];
        let mut inventories = scans(
            1,
            vec![
                image(3, Status::Current, None),
                image(1, Status::Current, None),
            ],
        );
        let other = scans(1, vec![image(2, Status::Current, None)]);
        inventories.insert(2, other[&1].clone());
        cache
            .get(&daemons, &inventories, Policy::default(), NOW)
            .await
    }

    fn id(n: u8) -> String {
        format!("sha256:{}", format!("{n:02x}").repeat(32))
    }

    #[tokio::test]
    async fn the_api_orders_by_daemon_name_then_image_id() {
        let cache = ReportCache::default();
        let report = two_daemons(&cache).await;
        let (ids, next) = first_page(&report, &PageRequest::default());
        assert_eq!(
            ids,
            [
                format!("alpha/{}", id(2)),
                format!("zeta/{}", id(1)),
                format!("zeta/{}", id(3))
            ]
        );
        assert_eq!(next, None, "one page holds all three");
        assert_eq!(report.owners, ["app"]);
    }

    #[tokio::test]
    async fn a_page_ends_with_a_cursor_to_the_image_after_it() {
        let cache = ReportCache::default();
        let report = two_daemons(&cache).await;
        let two = PageRequest {
            limit: crate::report::PageLimit::parse("2").unwrap(),
            after: None,
        };
        let (ids, next) = first_page(&report, &two);
        assert_eq!(ids.len(), 2);
        let next = next.expect("a third image follows");
        assert_eq!(next.key(), ("zeta", id(1).as_str()));
        let (rest, end) = first_page(
            &report,
            &PageRequest {
                after: Some(next),
                ..two
            },
        );
        assert_eq!(rest, [format!("zeta/{}", id(3))]);
        assert_eq!(end, None);
    }

    #[tokio::test]
    async fn a_cursor_whose_image_is_gone_starts_after_where_it_was() {
        let cache = ReportCache::default();
        let report = two_daemons(&cache).await;
        // `zeta/02` never existed: the page starts at the next key, `zeta/03`.
        let gone = crate::report::Cursor::parse(
            &crate::report::Cursor::after(&ImageObject {
                daemon: "zeta".into(),
                id: id(2),
                ..report.images[0].clone()
            })
            .encode(),
        )
        .unwrap();
        let request = PageRequest {
            after: Some(gone),
            ..PageRequest::default()
        };
        assert_eq!(first_page(&report, &request).0, [format!("zeta/{}", id(3))]);
    }

    #[tokio::test]
    async fn a_daemon_filter_pages_within_its_daemon() {
        let cache = ReportCache::default();
        let report = two_daemons(&cache).await;
        let filter = ImageFilter {
            daemon: Some(DaemonName::parse("zeta").unwrap()),
            ..ImageFilter::default()
        };
        let one = PageRequest {
            limit: crate::report::PageLimit::parse("1").unwrap(),
            after: None,
        };
        let first = report.page(&filter, &one);
        let next = first.next.expect("zeta has two images");
        let second = report.page(
            &filter,
            &PageRequest {
                after: Some(next),
                ..one
            },
        );
        let json: serde_json::Value = serde_json::from_slice(&second.json).unwrap();
        assert_eq!(json[0]["id"], id(3));
        assert!(second.next.is_none(), "alpha's image is not zeta's");
    }
}
