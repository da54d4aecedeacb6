//! The image objects of every daemon, built once and shared by every request
//! until something they depend on changes: a daemon's inventory (not just
//! its scan generation: a rescan that found nothing new changes nothing), the
//! daemons themselves, the policy, or the moment a waiting outdated image
//! comes of age. Under load every request of the Images page and
//! `GET /api/v1/images` then reads the same objects, and the API's
//! unfiltered first page is one shared buffer instead of a fresh copy per
//! client.
//!
//! A report is assembled from one part per daemon, each built once per
//! (daemon, inventory generation, policy, names): a rescan of all daemons
//! stores them one by one, and each store rebuilds 1 % of a fleet of 100,
//! not all of it, while requests wait on the cache. A part holds, next to
//! its image objects, the overview's figures for that daemon and its share
//! of the headline, so the overview too costs a sum per request. The API's
//! order, (daemon name, image ID), is each part's images sorted by ID once,
//! parts taken by name, so a page after a cursor is found by binary search.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, OnceLock};

use bytes::Bytes;

use super::disk::{disk_parts, Part};
use super::page::{Cursor, PageRequest, DEFAULT_LIMIT};
use super::summary::{self, DaemonShare, Summary};
use super::{ImageFilter, ImageObject, OwnerNames};
use crate::inventory::Status;
use crate::policy::{self, Policy};
use crate::recent::Recent;
use crate::scan::{CachedScan, DaemonInventory};
use crate::store::StoredDaemon;

/// What a report was built from; a report answers only for the same key.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Key {
    /// Daemon ID, name and inventory generation (None: never scanned), in
    /// daemon order. A rescan that changed nothing keeps the report.
    daemons: Vec<(i64, String, Option<i64>)>,
    policy: Policy,
    /// AppAPI's ExApp names and versions (Nextcloud connection, issue #20).
    names: Arc<OwnerNames>,
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
            names: Arc::new(names),
        }
    }
}

/// What one daemon's part was built from.
#[derive(Debug, Clone, PartialEq, Eq)]
struct PartKey {
    name: String,
    /// Not a HaRP daemon: shared layers are known.
    sizes_exact: bool,
    inventory_generation: i64,
    policy: Policy,
    names: Arc<OwnerNames>,
}

/// The overview's figures for one daemon's last inventory, the policy
/// applied: pure data (the web layer words them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DaemonFigures {
    pub images: usize,
    pub total_bytes: u64,
    pub outdated_images: usize,
    /// What removing every outdated image would free.
    pub outdated_bytes: u64,
    pub removable_images: usize,
    /// What a cleanup of this daemon frees now.
    pub removable_bytes: u64,
    /// The disk bar: bytes per part, each layer once.
    pub disk: Vec<(Part, u64)>,
    /// This daemon's share of the headline.
    pub share: DaemonShare,
}

impl DaemonFigures {
    /// The figures of `scan` under `decisions` (the policy's, on its images).
    pub fn of(scan: &DaemonInventory, decisions: &[policy::Decision]) -> Self {
        // The share has already counted what is removable now.
        let share = DaemonShare::of(&scan.images, decisions);
        Self {
            images: scan.totals.images,
            total_bytes: scan.totals.total_bytes,
            outdated_images: scan
                .images
                .iter()
                .filter(|i| i.status == Status::Outdated)
                .count(),
            outdated_bytes: scan.totals.outdated_reclaimable,
            removable_images: share.figures().removable_images,
            removable_bytes: share.figures().removable_bytes,
            disk: disk_parts(&scan.images, decisions),
            share,
        }
    }
}

/// One daemon's image objects and figures, as of one moment.
#[derive(Debug)]
pub struct DaemonPart {
    daemon_id: i64,
    key: PartKey,
    /// In inventory order.
    images: Vec<ImageObject>,
    /// Indices into `images`, by image ID (the API's order within a daemon).
    by_id: Vec<u32>,
    owners: BTreeSet<String>,
    pub figures: DaemonFigures,
    built_at: i64,
    /// When a decision would change with time alone (see `policy::next_change`).
    valid_until: Option<i64>,
    /// `GET /api/v1/images?daemon=<this>`'s first page at the default limit,
    /// serialised once: what every client of one daemon asks first.
    head_json: OnceLock<Bytes>,
}

impl DaemonPart {
    fn build(daemon: &StoredDaemon, key: PartKey, scan: &DaemonInventory, now: i64) -> Self {
        let decisions = policy::decide(&key.policy, &scan.images, now);
        let mut images: Vec<ImageObject> = scan
            .images
            .iter()
            .zip(&decisions)
            .map(|(image, decision)| {
                ImageObject::new(&daemon.name, key.sizes_exact, image, decision)
            })
            .collect();
        super::name_owners(&mut images, &key.names);
        let owners = images.iter().filter_map(|i| i.owner.clone()).collect();
        let mut by_id: Vec<u32> = (0..images.len() as u32).collect();
        by_id.sort_unstable_by(|&a, &b| images[a as usize].id.cmp(&images[b as usize].id));
        Self {
            daemon_id: daemon.id,
            figures: DaemonFigures::of(scan, &decisions),
            valid_until: policy::next_change(&key.policy, &scan.images, now),
            key,
            images,
            by_id,
            owners,
            built_at: now,
            head_json: OnceLock::new(),
        }
    }

    /// The first page of its images in the API's order at the default limit.
    fn head(&self) -> Page {
        let json = self.head_json.get_or_init(|| {
            let head: Vec<&ImageObject> = self.after_id(None).take(DEFAULT_LIMIT).collect();
            Bytes::from(serde_json::to_vec(&head).expect("image objects serialise"))
        });
        let next = (self.by_id.len() > DEFAULT_LIMIT)
            .then(|| Cursor::after(&self.images[self.by_id[DEFAULT_LIMIT - 1] as usize]));
        Page {
            json: json.clone(),
            next,
        }
    }

    fn answers(&self, key: &PartKey, now: i64) -> bool {
        self.key == *key && now >= self.built_at && self.valid_until.is_none_or(|t| now < t)
    }

    fn name(&self) -> &str {
        &self.key.name
    }

    /// Its images in the API's order from just after image ID `after`.
    fn after_id<'a>(&'a self, after: Option<&str>) -> impl Iterator<Item = &'a ImageObject> + 'a {
        let start = after.map_or(0, |id| {
            self.by_id
                .partition_point(|&i| self.images[i as usize].id.as_str() <= id)
        });
        self.by_id[start..]
            .iter()
            .map(|&i| &self.images[i as usize])
    }
}

/// Every daemon's image objects, daemon by daemon (daemon order, then
/// inventory order).
#[derive(Debug, Default)]
pub struct ImageObjects {
    parts: Vec<Arc<DaemonPart>>,
    len: usize,
}

impl ImageObjects {
    pub fn iter(&self) -> impl Iterator<Item = &ImageObject> {
        self.parts.iter().flat_map(|p| p.images.iter())
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// Every daemon's image objects, the policy applied, as of one moment.
#[derive(Debug)]
pub struct Report {
    /// All image objects, in daemon order then inventory order.
    pub images: ImageObjects,
    /// Indices into `images.parts` by daemon name (the API's order).
    by_name: Vec<u32>,
    /// Every ExApp that owns an image, sorted.
    pub owners: Vec<String>,
    key: Key,
    built_at: i64,
    /// The earliest of its parts' ends.
    valid_until: Option<i64>,
    /// The API's unfiltered first page at the default limit, serialised once.
    head_json: OnceLock<Bytes>,
    /// The overview's headline figures, summed once from the parts.
    summary: OnceLock<Summary>,
    /// The last views asked of it (`Report::view`), most recent last.
    views: Recent<String, View>,
}

/// Where an image object is in a report: its part, then its place there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImageAt {
    part: u32,
    index: u32,
}

/// The image objects of one filter in one order, as places in the report.
pub type View = Arc<[ImageAt]>;

/// One page of `GET /api/v1/images`.
#[derive(Debug)]
pub struct Page {
    /// The JSON array of the page's image objects.
    pub json: Bytes,
    /// Where the next page starts; None on the last page.
    pub next: Option<Cursor>,
}

impl Report {
    /// Assembles the report for `key` from the daemons' parts: those in
    /// `parts` that still answer are kept, the others built (and put there).
    fn assemble(
        key: Key,
        daemons: &[StoredDaemon],
        scans: &HashMap<i64, Arc<CachedScan>>,
        parts: &mut HashMap<i64, Arc<DaemonPart>>,
        now: i64,
    ) -> Self {
        let mut kept = Vec::new();
        for daemon in daemons {
            let Some(cached) = scans.get(&daemon.id) else {
                continue;
            };
            let Some(scan) = cached.inventory.as_ref() else {
                continue;
            };
            let part_key = PartKey {
                name: daemon.name.to_string(),
                // Without a listing (HaRP), shared layers are unknown.
                sizes_exact: daemon.endpoint.harp().is_none(),
                inventory_generation: cached.inventory_generation,
                policy: key.policy,
                names: key.names.clone(),
            };
            let part = match parts.get(&daemon.id).filter(|p| p.answers(&part_key, now)) {
                Some(part) => part.clone(),
                None => Arc::new(DaemonPart::build(daemon, part_key, scan, now)),
            };
            kept.push(part);
        }
        *parts = kept.iter().map(|p| (p.daemon_id, p.clone())).collect();
        let owners: BTreeSet<&String> = kept.iter().flat_map(|p| &p.owners).collect();
        let owners = owners.into_iter().cloned().collect();
        let valid_until = kept.iter().filter_map(|p| p.valid_until).min();
        let mut by_name: Vec<u32> = (0..kept.len() as u32).collect();
        by_name.sort_unstable_by(|&a, &b| kept[a as usize].name().cmp(kept[b as usize].name()));
        let len = kept.iter().map(|p| p.images.len()).sum();
        Self {
            images: ImageObjects { parts: kept, len },
            by_name,
            owners,
            key,
            built_at: now,
            valid_until,
            head_json: OnceLock::new(),
            summary: OnceLock::new(),
            views: Recent::default(),
        }
    }

    /// The image objects `filter` keeps, each with its place.
    pub fn matching_at<'a>(
        &'a self,
        filter: &'a ImageFilter,
    ) -> impl Iterator<Item = (ImageAt, &'a ImageObject)> + 'a {
        self.images
            .parts
            .iter()
            .enumerate()
            .filter(move |(_, p)| {
                filter
                    .daemon
                    .as_ref()
                    .is_none_or(|d| d.as_str() == p.name())
            })
            .flat_map(|(part, p)| {
                p.images.iter().enumerate().map(move |(index, image)| {
                    let at = ImageAt {
                        part: part as u32,
                        index: index as u32,
                    };
                    (at, image)
                })
            })
            .filter(move |(_, i)| filter.matches(i))
    }

    /// The image object at `at`, a place this report gave.
    pub fn at(&self, at: ImageAt) -> &ImageObject {
        &self.images.parts[at.part as usize].images[at.index as usize]
    }

    /// The view named `key` (a filter and an order: the Images page's
    /// query without its offset), built by `build` the first time it is
    /// asked of this report and kept with it: the same table asked again,
    /// its "Show more" or another admin's request read no other image.
    /// Requests that ask for it while it is built wait for it.
    pub fn view(&self, key: String, build: impl FnOnce(&Self) -> Vec<ImageAt>) -> View {
        self.views.get_or_build(key, || build(self).into())
    }

    /// Still the right answer for `key` at `now`? (A clock set back also
    /// rebuilds: decisions are only known from `built_at` on.)
    fn answers(&self, key: &Key, now: i64) -> bool {
        self.key == *key && now >= self.built_at && self.valid_until.is_none_or(|t| now < t)
    }

    /// The policy its decisions were made under: what a page shows next to
    /// them (a minimum age's wait) must be the same one, and costs no read.
    pub fn policy(&self) -> Policy {
        self.key.policy
    }

    /// The daemons' names, in daemon order (scanned or not).
    pub fn daemon_names(&self) -> impl Iterator<Item = &str> {
        self.key.daemons.iter().map(|(_, name, _)| name.as_str())
    }

    /// The overview's figures for a daemon; None when it has no inventory.
    pub fn figures(&self, daemon_id: i64) -> Option<&DaemonFigures> {
        self.images
            .parts
            .iter()
            .find(|p| p.daemon_id == daemon_id)
            .map(|p| &p.figures)
    }

    /// The headline's figures across every daemon (as `summary::summarize`).
    pub fn summary(&self) -> &Summary {
        self.summary
            .get_or_init(|| summary::merge(self.images.parts.iter().map(|p| &p.figures.share)))
    }

    /// The image objects in the API's order, by daemon name then image ID.
    pub fn in_api_order(&self) -> impl Iterator<Item = &ImageObject> {
        self.api_from(None, None)
    }

    /// The API's order, only daemon `daemon` if given, strictly after the
    /// key `after`: the parts and the start within a part are found by
    /// binary search, whether or not the cursor's image still exists.
    fn api_from<'a>(
        &'a self,
        daemon: Option<&'a str>,
        after: Option<(&'a str, &'a str)>,
    ) -> impl Iterator<Item = &'a ImageObject> + 'a {
        let parts = &self.images.parts;
        let name = |i: &u32| parts[*i as usize].name();
        let (mut start, mut end) = (0, self.by_name.len());
        if let Some(d) = daemon {
            start = self.by_name.partition_point(|i| name(i) < d);
            end = self.by_name.partition_point(|i| name(i) <= d);
        }
        if let Some((d, _)) = after {
            start = start.max(self.by_name.partition_point(|i| name(i) < d));
        }
        self.by_name[start..end.max(start)]
            .iter()
            .flat_map(move |&i| {
                let part = &parts[i as usize];
                let from = after.filter(|(d, _)| *d == part.name()).map(|(_, id)| id);
                part.after_id(from)
            })
    }

    /// The page of the image objects that pass `filter`, in the API's order,
    /// strictly after the request's cursor; only the page is serialised,
    /// except for the unfiltered first page at the default limit, which
    /// every client shares.
    pub fn page(&self, filter: &ImageFilter, request: &PageRequest) -> Page {
        let limit = request.limit.get();
        let total = self.images.len();
        if *filter == ImageFilter::default()
            && request.after.is_none()
            && total.min(limit) == total.min(DEFAULT_LIMIT)
        {
            let next = (total > limit).then(|| {
                Cursor::after(self.in_api_order().nth(limit - 1).expect("more than limit"))
            });
            return Page {
                json: self.head_json().clone(),
                next,
            };
        }
        let daemon = filter.daemon.as_ref().map(|d| d.as_str());
        if let (Some(name), None) = (daemon, &request.after) {
            let only_daemon = ImageFilter {
                daemon: filter.daemon.clone(),
                ..ImageFilter::default()
            };
            if let Some(part) = self.part_named(name).filter(|p| {
                *filter == only_daemon
                    && p.by_id.len().min(limit) == p.by_id.len().min(DEFAULT_LIMIT)
            }) {
                return part.head();
            }
        }
        let after = request.after.as_ref().map(Cursor::key);
        let mut matching = self
            .api_from(daemon, after)
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

    /// The part of the daemon called `name`, if it has an inventory.
    fn part_named(&self, name: &str) -> Option<&DaemonPart> {
        let parts = &self.images.parts;
        let at = self
            .by_name
            .partition_point(|&i| parts[i as usize].name() < name);
        self.by_name
            .get(at)
            .map(|&i| &*parts[i as usize])
            .filter(|p| p.name() == name)
    }

    fn head_json(&self) -> &Bytes {
        self.head_json.get_or_init(|| {
            let head: Vec<&ImageObject> = self.in_api_order().take(DEFAULT_LIMIT).collect();
            Bytes::from(serde_json::to_vec(&head).expect("image objects serialise"))
        })
    }
}

/// The latest report and the daemons' parts it was assembled from, rebuilt
/// when it no longer answers.
#[derive(Debug, Default)]
pub struct ReportCache {
    // A tokio mutex: requests arriving during a rebuild wait for it instead
    // of building the same report again (a rebuild builds only the parts
    // that changed).
    current: tokio::sync::Mutex<Cached>,
}

#[derive(Debug, Default)]
struct Cached {
    report: Option<Arc<Report>>,
    parts: HashMap<i64, Arc<DaemonPart>>,
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
        let mut key = Key::of(daemons, scans, policy, names);
        let mut current = self.current.lock().await;
        if let Some(report) = current.report.as_ref() {
            if report.answers(&key, now) {
                return report.clone();
            }
            // The same names as before: the parts compare them by pointer
            // first, so unchanged parts are not compared map by map.
            if report.key.names == key.names {
                key.names = report.key.names.clone();
            }
        }
        let cached = &mut *current;
        let report = Arc::new(Report::assemble(
            key,
            daemons,
            scans,
            &mut cached.parts,
            now,
        ));
        cached.report = Some(report.clone());
        report
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{AppId, DaemonName, ImageId};
    use crate::inventory::{ClassifiedImage, ImageInfo, Status};
    use crate::scan::DaemonInventory;

    const NOW: i64 = 1_800_000_000;
    const HOUR: i64 = 3600;

    fn daemon(id: i64, name: &str) -> StoredDaemon {
        StoredDaemon::for_tests(id, name)
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
    async fn a_view_asked_again_of_the_same_report_is_not_built_again() {
        let cache = ReportCache::default();
        let images = vec![
            image(1, Status::Current, None),
            image(2, Status::InUse, None),
        ];
        let report = cache
            .get(
                &[daemon(1, "local")],
                &scans(1, images),
                Policy::default(),
                NOW,
            )
            .await;
        let builds = std::sync::atomic::AtomicUsize::new(0);
        let in_use = |report: &Report| {
            builds.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let filter = ImageFilter {
                status: Some(Status::InUse),
                ..Default::default()
            };
            report.matching_at(&filter).map(|(at, _)| at).collect()
        };
        let first = report.view("in use".into(), in_use);
        let again = report.view("in use".into(), in_use);
        assert!(Arc::ptr_eq(&first, &again));
        assert_eq!(builds.load(std::sync::atomic::Ordering::Relaxed), 1);
        assert_eq!(first.len(), 1);
        assert_eq!(report.at(first[0]).status, Status::InUse);
    }

    #[tokio::test]
    async fn a_report_keeps_only_its_most_recent_views() {
        let cache = ReportCache::default();
        let report = cache
            .get(
                &[daemon(1, "local")],
                &scans(1, vec![]),
                Policy::default(),
                NOW,
            )
            .await;
        let builds = std::sync::atomic::AtomicUsize::new(0);
        let build = |_: &Report| {
            builds.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            Vec::new()
        };
        report.view("oldest".into(), build);
        for n in 0..crate::recent::KEPT {
            report.view(format!("view {n}"), build);
        }
        // The newest are still there; the oldest went.
        report.view(format!("view {}", crate::recent::KEPT - 1), build);
        assert_eq!(
            builds.load(std::sync::atomic::Ordering::Relaxed),
            crate::recent::KEPT + 1
        );
        report.view("oldest".into(), build);
        assert_eq!(
            builds.load(std::sync::atomic::Ordering::Relaxed),
            crate::recent::KEPT + 2
        );
    }

    #[tokio::test]
    async fn a_new_policy_or_daemon_builds_a_new_report() {
        let cache = ReportCache::default();
        let inventory = scans(1, vec![image(1, Status::Outdated, Some(2))]);
        let one = [daemon(1, "local")];
        let a = cache.get(&one, &inventory, Policy::default(), NOW).await;
        assert!(!a.images.iter().next().unwrap().removable);
        let no_wait = Policy {
            min_age_hours: 0,
            ..Policy::default()
        };
        let b = cache.get(&one, &inventory, no_wait, NOW).await;
        assert!(b.images.iter().next().unwrap().removable);
        let renamed = [daemon(1, "gpu")];
        let c = cache.get(&renamed, &inventory, no_wait, NOW).await;
        assert_eq!(c.images.iter().next().unwrap().daemon, "gpu");
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
        assert!(!before.images.iter().next().unwrap().removable);
        let after = cache
            .get(&daemons, &inventory, Policy::default(), NOW + HOUR)
            .await;
        assert!(after.images.iter().next().unwrap().removable);
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
                ..report.images.iter().next().unwrap().clone()
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

    #[tokio::test]
    async fn a_daemons_first_page_is_serialised_once_and_shared() {
        let cache = ReportCache::default();
        let report = two_daemons(&cache).await;
        let zeta = ImageFilter {
            daemon: Some(DaemonName::parse("zeta").unwrap()),
            ..ImageFilter::default()
        };
        let a = report.page(&zeta, &PageRequest::default());
        let b = report.page(&zeta, &PageRequest::default());
        assert_eq!(
            a.json.as_ptr(),
            b.json.as_ptr(),
            "one buffer for every client"
        );
        let json: serde_json::Value = serde_json::from_slice(&a.json).unwrap();
        let ids: Vec<&str> = json
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["id"].as_str().unwrap())
            .collect();
        assert_eq!(ids, [id(1), id(3)]);
        assert!(a.next.is_none());
        let narrower = ImageFilter {
            search: Some(id(3)),
            ..zeta
        };
        let c = report.page(&narrower, &PageRequest::default());
        assert_ne!(c.json, a.json, "another filter is not the shared page");
    }

    #[tokio::test]
    async fn a_daemons_shared_first_page_ends_with_the_cursor_a_computed_page_would_have() {
        let cache = ReportCache::default();
        let many: Vec<ClassifiedImage> = (0..DEFAULT_LIMIT as u32 + 7)
            .map(|n| {
                let mut i = image(1, Status::Current, None);
                i.info.id = ImageId::parse(&format!("sha256:{:064x}", n * 7919 % 1009)).unwrap();
                i
            })
            .collect();
        let report = cache
            .get(&[daemon(1, "big")], &scans(1, many), Policy::default(), NOW)
            .await;
        let big = ImageFilter {
            daemon: Some(DaemonName::parse("big").unwrap()),
            ..ImageFilter::default()
        };
        let shared = report.page(&big, &PageRequest::default());
        // The same request without the shared path: every daemon's images, filtered.
        let computed = report.page(
            &ImageFilter {
                search: Some("sha256:".into()),
                ..big.clone()
            },
            &PageRequest::default(),
        );
        assert_eq!(shared.json, computed.json);
        assert_eq!(shared.next, computed.next);
        assert!(
            shared.next.is_some(),
            "{} images, one page of {DEFAULT_LIMIT}",
            DEFAULT_LIMIT + 7
        );
    }

    /// Daemon 1 and 2 with their own inventories at `generations`.
    fn fleet(generations: [i64; 2]) -> HashMap<i64, Arc<CachedScan>> {
        let mut all = HashMap::new();
        for (id, generation) in [1, 2].into_iter().zip(generations) {
            let one = scans(
                generation,
                vec![
                    image(id as u8, Status::Current, None),
                    image(10 + generation as u8, Status::Outdated, Some(30)),
                ],
            );
            all.insert(id, one[&1].clone());
        }
        all
    }

    fn part(report: &Report, daemon_id: i64) -> Arc<DaemonPart> {
        report
            .images
            .parts
            .iter()
            .find(|p| p.daemon_id == daemon_id)
            .unwrap()
            .clone()
    }

    #[tokio::test]
    async fn a_rescan_of_one_daemon_rebuilds_only_that_daemons_part() {
        let cache = ReportCache::default();
        let daemons = [daemon(1, "one"), daemon(2, "two")];
        let before = cache
            .get(&daemons, &fleet([1, 1]), Policy::default(), NOW)
            .await;
        let after = cache
            .get(&daemons, &fleet([1, 2]), Policy::default(), NOW + 1)
            .await;
        assert!(!Arc::ptr_eq(&before, &after), "a new report");
        assert!(Arc::ptr_eq(&part(&before, 1), &part(&after, 1)));
        assert!(!Arc::ptr_eq(&part(&before, 2), &part(&after, 2)));
        assert_eq!(after.images.len(), 4);
        assert!(after.images.iter().any(|i| i.id == id(12)));
    }

    #[tokio::test]
    async fn a_new_policy_rebuilds_every_part() {
        let cache = ReportCache::default();
        let daemons = [daemon(1, "one"), daemon(2, "two")];
        let inventories = fleet([1, 1]);
        let before = cache
            .get(&daemons, &inventories, Policy::default(), NOW)
            .await;
        let no_wait = Policy {
            min_age_hours: 0,
            ..Policy::default()
        };
        let after = cache.get(&daemons, &inventories, no_wait, NOW).await;
        for daemon_id in [1, 2] {
            assert!(!Arc::ptr_eq(
                &part(&before, daemon_id),
                &part(&after, daemon_id)
            ));
        }
        assert_eq!(after.summary().removable_images, 2);
    }

    #[tokio::test]
    async fn the_overview_figures_equal_those_computed_directly() {
        let cache = ReportCache::default();
        let daemons = [daemon(1, "one"), daemon(2, "two")];
        let inventories = fleet([1, 3]);
        let policy = Policy {
            min_age_hours: 0,
            ..Policy::default()
        };
        let report = cache.get(&daemons, &inventories, policy, NOW).await;
        let scans: Vec<&DaemonInventory> = [1, 2]
            .iter()
            .map(|id| inventories[id].inventory.as_deref().unwrap())
            .collect();
        assert_eq!(
            *report.summary(),
            summary::summarize(scans.iter().map(|s| s.images.as_slice()), &policy, NOW)
        );
        for (daemon_id, scan) in [1, 2].into_iter().zip(scans) {
            let decisions = policy::decide(&policy, &scan.images, NOW);
            let f = report.figures(daemon_id).unwrap();
            assert_eq!(f.disk, disk_parts(&scan.images, &decisions));
            assert_eq!(f.removable_images, 1);
            assert_eq!(
                f.removable_bytes,
                crate::inventory::layers::reclaimable(
                    scan.images
                        .iter()
                        .zip(&decisions)
                        .map(|(i, d)| (i.info.layers.as_slice(), d.removable))
                )
            );
            assert_eq!(f.outdated_images, 1);
        }
    }

    #[tokio::test]
    async fn pages_run_across_parts_in_daemon_name_order() {
        let cache = ReportCache::default();
        // IDs against names: the API still goes by name.
        let daemons = [daemon(1, "zeta"), daemon(2, "alpha")];
        let report = cache
            .get(&daemons, &fleet([1, 1]), Policy::default(), NOW)
            .await;
        let one = PageRequest {
            limit: crate::report::PageLimit::parse("1").unwrap(),
            after: None,
        };
        let mut seen = Vec::new();
        let mut request = one.clone();
        loop {
            let (ids, next) = first_page(&report, &request);
            seen.extend(ids);
            match next {
                Some(cursor) => {
                    request = PageRequest {
                        after: Some(cursor),
                        ..one.clone()
                    }
                }
                None => break,
            }
        }
        assert_eq!(
            seen,
            [
                format!("alpha/{}", id(2)),
                format!("alpha/{}", id(11)),
                format!("zeta/{}", id(1)),
                format!("zeta/{}", id(11)),
            ]
        );
    }
}
