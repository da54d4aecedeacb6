//! Scanning: a daemon's snapshot plus the stored history and layer cache
//! become its inventory, and what the scan observed is recorded. Daemons are
//! scanned concurrently, at most `ScanLimit` at once in a process, each
//! within its own timeout.
//!
//! The types along the way, in the order a scan makes them:
//!
//! 1. `inventory::Snapshot`: what the daemon said (its images with their
//!    layers, its containers), by listing or, behind HaRP, by inspecting;
//!    `inventory::History`: what the janitor remembers of the daemon.
//! 2. `inventory::classify` turns both into a `inventory::Classification`:
//!    every image as a `ClassifiedImage` (owner, status, reason, unique
//!    bytes: DESIGN.md's words), the `Totals` of disk use, and the
//!    `Observations` this scan records in the history.
//! 3. `DaemonInventory`: the images and totals (and notes for the admin) of
//!    one successful scan, stored as JSON in the daemon's scan row.
//! 4. `CachedScan`: one daemon's scan row as the pages read it: when the last
//!    scan ran and how long it took, the last attempt's error, and the
//!    `inventory` of the last scan that succeeded.
//! 5. `InventoryCache` (the janitor's `inventory`, read through
//!    `Janitor::last_scans`): every daemon's `CachedScan`, kept in memory and
//!    reloaded when any process scanned since.
//!
//! From there, `policy::decide` says which classified images are removable,
//! and `report` makes the API's image objects of both.

pub mod by_inspect;
mod cache;
mod memo;

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::{future::join_all, stream, StreamExt};
use serde::{Deserialize, Serialize};

pub use cache::{CachedScan, InventoryCache};
pub use memo::ScanMemo;

use crate::backend::Backend;
use crate::docker::{DockerError, ListedContainer};
use crate::domain::{AppId, ImageId, ProtectedPattern};
use crate::inventory::{
    self, layers, ClassifiedImage, ContainerInfo, ExAppContainer, History, ImageInfo, Layer,
    Snapshot, Totals,
};
use crate::nextcloud::AppApiSnapshot;
use crate::store::{CurrentRow, HistoryRows, SameScanStored, Store, StoreError, StoredDaemon};

/// Engine lookups (layers of new images, ExApp containers), at most this many at once.
const LAYER_FETCH_CONCURRENCY: usize = 8;

/// Daemons scanned at once unless `--scan-concurrency` says otherwise: one
/// per CPU, at least 2 and at most 16. An Engine on this host answers a
/// listing of 1,000 images with more CPU than the janitor spends on it, so
/// more scans than CPUs only make requests wait behind the Engines (on 2
/// CPUs, 8 at once doubled the p99 of every page during a rescan of 100
/// daemons; BENCHMARKS.md). Remote Engines are waited for, not computed.
pub fn default_scan_concurrency() -> usize {
    scan_concurrency_for(std::thread::available_parallelism().map_or(1, |n| n.get()))
}

fn scan_concurrency_for(cpus: usize) -> usize {
    cpus.clamp(2, 16)
}
/// The most `--scan-concurrency` accepts.
pub const MAX_SCAN_CONCURRENCY: usize = 64;

/// A daemon's inventory: what one successful scan found there, every image
/// classified; stored as JSON.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DaemonInventory {
    pub images: Vec<ClassifiedImage>,
    pub totals: Totals,
    /// What the admin should know of this scan (a HaRP daemon's ExApp that
    /// has no container there, say).
    #[serde(default)]
    pub notes: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ScanError {
    #[error("{0}")]
    Docker(#[from] DockerError),
    #[error("the scan took longer than {} s", .0.as_secs())]
    Timeout(Duration),
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The scan this caller waited for failed (its error, as text).
    #[error("{0}")]
    Shared(String),
}

#[derive(Debug, Clone)]
pub struct ScanOptions {
    /// For each Engine call.
    pub call_timeout: Duration,
    /// For the whole scan of one daemon.
    pub scan_timeout: Duration,
    pub protected: Vec<ProtectedPattern>,
    /// Connections kept between scans (None: connect every time).
    pub clients: Option<Arc<ClientCache>>,
    /// One scan per daemon at a time in this process (None: no limit).
    pub gate: Option<Arc<ScanGate>>,
    /// How many daemons this process scans at once, whoever asks.
    pub limit: ScanLimit,
    /// The process's multi-threaded runtime, where `scan_each` runs each
    /// daemon's scan as a task of its own: parsing, classifying and storing
    /// 100 inventories then use every CPU, and a scan asked for by a request
    /// does not hold up the web worker thread it came in on. None: the
    /// caller's task polls every scan (tests on a current-thread runtime).
    pub runtime: Option<tokio::runtime::Handle>,
    /// The process's inventory cache, whose memo holds the last
    /// classification of each daemon, taken again while a rescan finds
    /// nothing new (None: always classify; the benchmarks).
    pub inventory: Option<Arc<InventoryCache>>,
}

/// At most this many daemon scans at once in a process (`--scan-concurrency`),
/// shared by every caller: `scan_all`, a cleanup's preview, the watcher and
/// the worker. A scan waits for a permit before its timeout starts, and
/// waiters get permits in the order they asked (tokio's semaphore is fair),
/// so `scan_all` starts the daemons in about their order.
#[derive(Debug, Clone)]
pub struct ScanLimit {
    permits: Arc<tokio::sync::Semaphore>,
    max: usize,
}

impl ScanLimit {
    /// `max` at least 1 (0 would never scan).
    pub fn new(max: usize) -> Self {
        let max = max.max(1);
        Self {
            permits: Arc::new(tokio::sync::Semaphore::new(max)),
            max,
        }
    }

    pub fn max(&self) -> usize {
        self.max
    }

    /// Runs `work` once a permit is free.
    pub async fn run<F: std::future::Future>(&self, work: F) -> F::Output {
        let _permit = self
            .permits
            .acquire()
            .await
            .expect("the semaphore is never closed");
        work.await
    }
}

impl Default for ScanLimit {
    fn default() -> Self {
        Self::new(default_scan_concurrency())
    }
}

/// One scan per daemon at a time. A caller that arrives while a scan runs
/// waits for it, and then takes the result of the next scan that started
/// after it arrived (or makes that scan): a burst of callers costs at most
/// two scans, and each gets a snapshot taken after it asked.
#[derive(Debug, Default)]
pub struct ScanGate(Mutex<HashMap<i64, Arc<tokio::sync::Mutex<Option<LastScan>>>>>);

#[derive(Debug)]
struct LastScan {
    /// The monotonic timer, not the clock: this orders a caller and a scan
    /// in this process, which a test's clock standing still could not tell apart.
    started: Instant,
    /// Kept only while callers that arrived before it started wait for it
    /// (they hold the slot): kept for nobody, 100 daemons' inventories
    /// were 30 MB of a fleet server's memory. Shared, not copied.
    result: Option<Result<Arc<DaemonInventory>, String>>,
}

impl ScanGate {
    fn slot(&self, daemon_id: i64) -> Arc<tokio::sync::Mutex<Option<LastScan>>> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(daemon_id)
            .or_default()
            .clone()
    }
}

/// One negotiated client per daemon, kept between scans so a rescan does not
/// ask for the API version again. Dropped on any error and when the
/// daemon's endpoint changes.
#[derive(Debug, Default)]
pub struct ClientCache(Mutex<HashMap<i64, (String, Backend)>>);

impl ClientCache {
    fn get(&self, daemon: &StoredDaemon) -> Option<Backend> {
        let clients = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let (endpoint, client) = clients.get(&daemon.id)?;
        (*endpoint == daemon.endpoint.to_string()).then(|| client.clone())
    }

    fn put(&self, daemon: &StoredDaemon, client: &Backend) {
        let mut clients = self.0.lock().unwrap_or_else(|p| p.into_inner());
        clients.insert(daemon.id, (daemon.endpoint.to_string(), client.clone()));
    }

    fn forget(&self, daemon_id: i64) {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&daemon_id);
    }
}

/// Scans one daemon and stores the result (or the error); with a gate, one
/// scan per daemon at a time, merged as `ScanGate` says.
pub async fn scan_daemon(
    store: &Store,
    daemon: &StoredDaemon,
    options: &ScanOptions,
) -> Result<Arc<DaemonInventory>, ScanError> {
    let Some(gate) = &options.gate else {
        return scan_daemon_now(store, daemon, options).await;
    };
    let arrived = Instant::now();
    let slot = gate.slot(daemon.id);
    let mut last = slot.lock().await;
    // The slot's holders: the gate's map, this caller, and those waiting.
    let others_wait = |slot: &Arc<_>| Arc::strong_count(slot) > 2;
    if let Some(done) = last.as_mut().filter(|l| l.started >= arrived) {
        let shared = if others_wait(&slot) {
            done.result.clone()
        } else {
            done.result.take()
        };
        if let Some(result) = shared {
            return result.map_err(ScanError::Shared);
        }
    }
    let started = Instant::now();
    let result = scan_daemon_now(store, daemon, options).await;
    *last = Some(LastScan {
        started,
        result: others_wait(&slot)
            .then(|| result.as_ref().map(Arc::clone).map_err(ToString::to_string)),
    });
    result
}

async fn scan_daemon_now(
    store: &Store,
    daemon: &StoredDaemon,
    options: &ScanOptions,
) -> Result<Arc<DaemonInventory>, ScanError> {
    options
        .limit
        .run(scan_daemon_limited(store, daemon, options))
        .await
}

async fn scan_daemon_limited(
    store: &Store,
    daemon: &StoredDaemon,
    options: &ScanOptions,
) -> Result<Arc<DaemonInventory>, ScanError> {
    // The scan's duration is the daemon's (monotonic); its time stamps are the clock's.
    let started = Instant::now();
    let snapshot_started_ms = store.clock().now_ms();
    let outcome = match tokio::time::timeout(
        options.scan_timeout,
        scan_inner(store, daemon, options),
    )
    .await
    {
        Ok(result) => result,
        Err(_) => Err(ScanError::Timeout(options.scan_timeout)),
    };
    let now = store.clock().now_unix();
    match outcome {
        Ok(found) => {
            let ms = i64::try_from(started.elapsed().as_millis()).unwrap_or(i64::MAX);
            let (saved, digest, same) =
                save(store, daemon, &found, now, ms, snapshot_started_ms).await?;
            if saved {
                tracing::info!(daemon = %daemon.name, images = found.inventory.images.len(), ms, reused = found.digest.is_some(), "scanned");
                if let Some(cache) = &options.inventory {
                    if let Some(fresh) = found.fresh {
                        let remembered = memo::Remembered {
                            inventory: found.inventory.clone(),
                            digest,
                            current: fresh.current,
                        };
                        cache
                            .memo()
                            .remember(daemon.id, fresh.reusable_for, remembered);
                    }
                    // The memo holds it: the cache lets go of its own copy.
                    cache.adopt(daemon.id, &digest, &found.inventory);
                    if let Some(same) = same {
                        cache.took_own_times(daemon.id, now, ms, same).await;
                    }
                }
            } else {
                tracing::info!(daemon = %daemon.name, ms, "scanned, but a newer scan is stored already: not saved");
            }
            Ok(found.inventory)
        }
        Err(e) => {
            tracing::warn!(daemon = %daemon.name, error = %e, "scan failed");
            store
                .save_scan_error(daemon.id, now, &e.to_string())
                .await?;
            Err(e)
        }
    }
}

/// Stores what a scan found: a classification taken again by its digest
/// alone when the stored text is still its own, anything else as text.
/// Returns whether it was stored (not when a newer scan is), the digest of
/// the text, and what storing only the times stored.
async fn save(
    store: &Store,
    daemon: &StoredDaemon,
    found: &Found,
    now: i64,
    ms: i64,
    snapshot_started_ms: i64,
) -> Result<(bool, [u8; 32], Option<SameScanStored>), StoreError> {
    if let Some(digest) = found.digest {
        if let Some(same) = store
            .save_same_scan(daemon.id, now, ms, &digest, snapshot_started_ms)
            .await?
        {
            return Ok((true, digest, Some(same)));
        }
    }
    let json = serde_json::to_string(&*found.inventory).expect("an inventory serialises");
    let digest = crate::store::inventory_digest(&json);
    let saved = store
        .save_scan(daemon.id, now, ms, &json, snapshot_started_ms)
        .await?;
    Ok((saved, digest, None))
}

/// What a scan of several daemons says of each that it scanned: not the
/// inventory, which is stored (and read through `InventoryCache`). Holding
/// 100 inventories until the last daemon is done would keep them all in
/// memory at once, however few scans run at a time.
#[derive(Debug, Clone)]
pub struct Scanned {
    pub images: usize,
    pub totals: Totals,
    pub notes: Vec<String>,
}

impl Scanned {
    fn of(inventory: Arc<DaemonInventory>) -> Self {
        Self {
            images: inventory.images.len(),
            totals: inventory.totals.clone(),
            notes: inventory.notes.clone(),
        }
    }
}

/// Scans every daemon, `options.limit` at a time, results in the daemons'
/// order; one daemon's failure is only its own.
pub async fn scan_all(
    store: &Store,
    options: &ScanOptions,
) -> Result<Vec<(StoredDaemon, Result<Scanned, ScanError>)>, StoreError> {
    let daemons = store.list_daemons().await?;
    let results = scan_each(store, &daemons, options).await;
    Ok(daemons.into_iter().zip(results).collect())
}

/// Scans these daemons (`scan_daemon` each), `options.limit` at a time,
/// each on `options.runtime` when there is one; results in their order.
pub async fn scan_each(
    store: &Store,
    daemons: &[StoredDaemon],
    options: &ScanOptions,
) -> Vec<Result<Scanned, ScanError>> {
    let Some(runtime) = &options.runtime else {
        return join_all(
            daemons
                .iter()
                .map(|d| async { scan_daemon(store, d, options).await.map(Scanned::of) }),
        )
        .await;
    };
    let tasks: Vec<_> = daemons
        .iter()
        .map(|d| {
            let (store, daemon, options) = (store.clone(), d.clone(), options.clone());
            // A caller that goes away (a request whose client hung up) leaves
            // the scan to finish: it is stored, and the gate hands it on.
            runtime.spawn(async move {
                scan_daemon(&store, &daemon, &options)
                    .await
                    .map(Scanned::of)
            })
        })
        .collect();
    let mut results = Vec::with_capacity(tasks.len());
    for task in tasks {
        results.push(
            task.await
                .unwrap_or_else(|e| Err(ScanError::Shared(format!("the scan stopped: {e}")))),
        );
    }
    results
}

async fn scan_inner(
    store: &Store,
    daemon: &StoredDaemon,
    options: &ScanOptions,
) -> Result<Found, ScanError> {
    let cache = options.clients.as_deref();
    if let Some(client) = cache.and_then(|c| c.get(daemon)) {
        let result = scan_with(store, daemon, options, &client).await;
        if result.is_err() {
            // Reconnect (and negotiate) next time: the daemon may have changed.
            cache
                .expect("a cached client came from it")
                .forget(daemon.id);
        }
        return result;
    }
    if let Some(client) = Backend::with_stored_version(daemon, options.call_timeout) {
        match scan_with(store, daemon, options, &client).await {
            Err(ScanError::Docker(e)) if e.is_version_error() => {
                tracing::info!(daemon = %daemon.name, "the daemon refused the stored API version; negotiating again");
            }
            Err(ScanError::Docker(e)) => {
                // As a failed connection is: the daemon shows it at once.
                store
                    .record_contact_error(&daemon.name, &e.to_string())
                    .await?;
                return Err(e.into());
            }
            result => {
                if let (Some(cache), Ok(_)) = (cache, &result) {
                    cache.put(daemon, &client);
                }
                return result;
            }
        }
    }
    let client = Backend::connect(daemon, options.call_timeout).await;
    let client = match client {
        Ok(c) => {
            let e = c.engine();
            store
                .record_contact_ok(&daemon.name, &e.engine_version, &e.api_version)
                .await?;
            c
        }
        Err(e) => {
            store
                .record_contact_error(&daemon.name, &e.to_string())
                .await?;
            return Err(e.into());
        }
    };
    let result = scan_with(store, daemon, options, &client).await;
    if let (Some(cache), Ok(_)) = (cache, &result) {
        cache.put(daemon, &client);
    }
    result
}

async fn scan_with(
    store: &Store,
    daemon: &StoredDaemon,
    options: &ScanOptions,
    client: &Backend,
) -> Result<Found, ScanError> {
    if !client.capabilities().listing {
        let history = history_from(store.load_history(daemon.id).await?);
        let exapps = daemon.harp.as_ref().map_or(&[][..], |h| &h.exapps[..]);
        let found = by_inspect::snapshot(client, exapps, &history).await?;
        let appapi = appapi_view(store, daemon).await?;
        let made = classify_and_record(
            store,
            daemon,
            options,
            &found.snapshot,
            &history,
            appapi.as_ref(),
        )
        .await?;
        return Ok(Found {
            inventory: Arc::new(DaemonInventory {
                notes: found.notes,
                ..made.inventory
            }),
            digest: None,
            fresh: Some(Fresh {
                current: made.current,
                reusable_for: None,
            }),
        });
    }
    let memo = options.inventory.as_ref().map(|c| c.memo());
    // What the store holds for the scan is read while the engine answers the
    // list calls, which take most of a scan's time: a process that scans
    // once (the CLI) pays for opening SQLite and reading there in the same
    // milliseconds. The stored layers are read ahead only when the scan
    // will classify for certain (nothing to reuse), as a process's first.
    let listing = async {
        let (images, containers) = tokio::try_join!(client.image_list(), client.list_containers())?;
        let containers = with_exapp_references(client, containers).await?;
        Ok::<_, ScanError>((images, containers))
    };
    let classifies = memo.as_ref().is_none_or(|m| !m.may_reuse(daemon.id));
    let stored = async {
        let history = history_from(store.load_history(daemon.id).await?);
        let appapi = appapi_view(store, daemon).await?;
        let layers = match classifies {
            true => Some(stored_layers(store, daemon.id).await?),
            false => None,
        };
        Ok::<_, ScanError>((history, appapi, layers))
    };
    let ((image_list, containers), (history, appapi, known_layers)) =
        tokio::try_join!(listing, stored)?;
    // An image list of the same entries as the last one parsed (in any
    // order) lists the same images: their digest is known, and the list is
    // parsed only if the scan classifies. Anything else is parsed now (and
    // fails the scan here if it cannot be read).
    let body = memo.as_ref().and_then(|_| image_list.body_digest());
    let seen = memo
        .as_ref()
        .zip(body.as_ref())
        .and_then(|(memo, body)| memo.images_of_body(daemon.id, body));
    let (unparsed, parsed) = match seen {
        Some(_) => (Some(image_list), None),
        None => (None, Some(image_list.parse()?)),
    };
    let inputs = memo.as_ref().map(|memo| {
        let images = seen.unwrap_or_else(|| {
            let parsed = parsed.as_deref().expect("parsed unless seen");
            let images = memo::images_digest(parsed);
            if let Some(body) = body {
                memo.parsed_body(daemon.id, body, images);
            }
            images
        });
        memo::Inputs::of(
            images,
            &containers,
            &history,
            &options.protected,
            appapi.as_ref(),
        )
    });
    let hit = memo
        .as_ref()
        .zip(inputs.as_ref())
        .and_then(|(memo, inputs)| memo.reuse(daemon.id, inputs));
    if let Some(hit) = hit {
        // The same observations as the classification's own scan: only the
        // current images' "last seen" moves.
        let now = store.clock().now_unix();
        store
            .record_history(daemon.id, now, &hit.current, &[], &[])
            .await?;
        return Ok(Found {
            inventory: hit.inventory,
            digest: Some(hit.digest),
            fresh: None,
        });
    }
    let images = match parsed {
        Some(images) => images,
        None => unparsed.expect("unparsed unless parsed").parse()?,
    };
    let known_layers = match known_layers {
        Some(known) => known,
        None => stored_layers(store, daemon.id).await?,
    };
    let layers = layers_of(store, daemon.id, client, &images, known_layers).await?;
    let snapshot = Snapshot {
        images: images
            .into_iter()
            .filter(|i| !layers.vanished.contains(&i.id))
            .map(|i| ImageInfo {
                layers: layers.layers.get(&i.id).cloned().unwrap_or_default(),
                id: i.id,
                repo_tags: i.repo_tags,
                repo_digests: i.repo_digests,
                created: i.created,
                size: i.size,
            })
            .collect(),
        containers,
    };
    let made =
        classify_and_record(store, daemon, options, &snapshot, &history, appapi.as_ref()).await?;
    store.delete_layers(daemon.id, &layers.stale).await?;
    // Taken again only where the same inputs give the same inventory: not
    // when it stamped images outdated with this moment, nor when images
    // went missing between the listing and their layers.
    let reusable_for = inputs.filter(|_| made.timeless && layers.vanished.is_empty());
    Ok(Found {
        inventory: Arc::new(made.inventory),
        digest: None,
        fresh: Some(Fresh {
            current: made.current,
            reusable_for,
        }),
    })
}

/// What a scan found, and what storing it takes.
struct Found {
    inventory: Arc<DaemonInventory>,
    /// The digest of its stored text, for a classification taken again.
    digest: Option<[u8; 32]>,
    /// A classification made by this scan (None: taken again).
    fresh: Option<Fresh>,
}

/// What the memo keeps of a new classification once it is stored: it is
/// held either way (the inventory cache takes it rather than read back the
/// text), and taken again by a rescan only for the inputs in `reusable_for`.
struct Fresh {
    current: Arc<[CurrentRow]>,
    reusable_for: Option<memo::Inputs>,
}

/// A snapshot classified, and its observations recorded in the history.
struct Made {
    inventory: DaemonInventory,
    /// The ExApps' current images as recorded.
    current: Arc<[CurrentRow]>,
    /// No image was stamped outdated with this scan's moment: the same
    /// inputs classify the same at any time.
    timeless: bool,
}

async fn classify_and_record(
    store: &Store,
    daemon: &StoredDaemon,
    options: &ScanOptions,
    snapshot: &Snapshot,
    history: &History,
    appapi: Option<&inventory::AppApiView>,
) -> Result<Made, ScanError> {
    // Outdated images are stamped with this time: minimum ages count from it.
    let now = store.clock().now_unix();
    let result = inventory::classify_with(snapshot, history, &options.protected, appapi, now);
    let obs = &result.observations;
    let current: Arc<[CurrentRow]> = obs
        .current
        .iter()
        .map(|c| CurrentRow {
            appid: c.appid.to_string(),
            image_id: c.image_id.to_string(),
            repositories: c.repositories.iter().cloned().collect(),
        })
        .collect();
    let ids = |v: &[ImageId]| v.iter().map(ToString::to_string).collect::<Vec<_>>();
    store
        .record_history(
            daemon.id,
            now,
            &current,
            &ids(&obs.newly_outdated),
            &ids(&obs.no_longer_outdated),
        )
        .await?;
    Ok(Made {
        timeless: obs.newly_outdated.is_empty(),
        current,
        inventory: DaemonInventory {
            notes: Vec::new(),
            images: result.images,
            totals: result.totals,
        },
    })
}

/// What AppAPI's last complete answer says about `daemon`; None when the
/// janitor is not connected to Nextcloud or Nextcloud never answered. A
/// refresh that failed leaves the last good answer in place, so "no
/// answer" is never read as "every ExApp was uninstalled".
async fn appapi_view(
    store: &Store,
    daemon: &StoredDaemon,
) -> Result<Option<inventory::AppApiView>, ScanError> {
    let Some(snapshot) = store
        .nextcloud()
        .await?
        .and_then(|n| n.snapshot)
        .and_then(|json| serde_json::from_str::<AppApiSnapshot>(&json).ok())
    else {
        return Ok(None);
    };
    let decisions = store.nextcloud_decisions().await?;
    let linked = decisions
        .iter()
        .find(|d| d.accepted && d.janitor_daemon.as_deref() == Some(daemon.name.as_str()))
        .map(|d| d.appapi_daemon.as_str());
    Ok(Some(snapshot.view_for(linked)))
}

/// Containers as the inventory sees them; `nc_app_*` ones with the
/// reference they were created from (one inspect each).
async fn with_exapp_references(
    client: &Backend,
    listed: Vec<ListedContainer>,
) -> Result<Vec<ContainerInfo>, DockerError> {
    // The inspects run a few at a time: hosts run dozens of ExApps.
    let inspected: Vec<Result<ContainerInfo, DockerError>> = stream::iter(listed)
        .map(|c| {
            let client = client.clone();
            async move {
                let exapp = match AppId::from_container_name(&c.name) {
                    Some(appid) => {
                        // The list already names the reference while it still
                        // points at the container's image (Docker keeps the
                        // original reference then); only an ID there (the
                        // tag moved) needs an inspect for `Config.Image`.
                        let config_image = if names_a_reference(&c.image) {
                            c.image.clone()
                        } else {
                            // A container removed since the listing keeps its
                            // image current for this scan: the safe side.
                            match client.exapp_config_image(&c).await {
                                Ok(image) => image.unwrap_or_default(),
                                Err(e) if e.is_not_found() => String::new(),
                                Err(e) => return Err(e),
                            }
                        };
                        Some(ExAppContainer {
                            appid,
                            config_image,
                        })
                    }
                    None => None,
                };
                Ok(ContainerInfo {
                    name: c.name,
                    image_id: c.image_id,
                    state: c.state,
                    exapp,
                })
            }
        })
        .buffered(LAYER_FETCH_CONCURRENCY)
        .collect()
        .await;
    inspected.into_iter().collect()
}

/// Whether a container list's `Image` is a reference (not an image ID, full
/// or short, which Docker shows once the reference names another image).
fn names_a_reference(image: &str) -> bool {
    let bare = image.strip_prefix("sha256:").unwrap_or(image);
    let looks_like_id = bare.len() >= 12 && bare.chars().all(|c| c.is_ascii_hexdigit());
    !image.is_empty() && !image.starts_with("sha256:") && !looks_like_id
}

/// The layers of a listing's images, and what the cache holds no longer.
struct ListingLayers {
    layers: HashMap<ImageId, Vec<Layer>>,
    /// Removed between the listing and the lookup of its layers.
    vanished: HashSet<ImageId>,
    /// Cached for images the daemon no longer has.
    stale: Vec<String>,
}

/// Layers of every listed image: from the cache, or fetched (and cached)
/// for images seen for the first time.
/// The layers the store knows of a daemon's images.
type KnownLayers = HashMap<ImageId, Vec<Layer>>;

async fn stored_layers(store: &Store, daemon_id: i64) -> Result<KnownLayers, ScanError> {
    // Equal layers (a base under most images) share their ID as soon as
    // read: eight scans at once held each image's copies until the end.
    let mut shared = crate::inventory::SharedChainIds::default();
    Ok(store
        .cached_layers(daemon_id)
        .await?
        .into_iter()
        .filter_map(|(id, json)| {
            let mut layers: Vec<Layer> = serde_json::from_str(&json).ok()?;
            shared.share(&mut layers);
            Some((ImageId::parse(&id).ok()?, layers))
        })
        .collect())
}

async fn layers_of(
    store: &Store,
    daemon_id: i64,
    client: &Backend,
    images: &[crate::docker::ListedImage],
    mut known: KnownLayers,
) -> Result<ListingLayers, ScanError> {
    let listed: HashSet<&ImageId> = images.iter().map(|i| &i.id).collect();
    let stale: Vec<String> = known
        .keys()
        .filter(|id| !listed.contains(id))
        .map(ToString::to_string)
        .collect();
    let missing: Vec<ImageId> = images
        .iter()
        .map(|i| i.id.clone())
        .filter(|id| !known.contains_key(id))
        .collect();
    // Owned values in the closure: a borrowing one trips the compiler's
    // proof that the scan future is Send.
    let fetched: Vec<(ImageId, Result<Vec<Layer>, DockerError>)> = stream::iter(missing)
        .map(|id| {
            let client = client.clone();
            async move {
                let layers = client.layer_data(&id).await.map(|d| {
                    layers::layers(&d.diff_ids, &d.history_sizes).unwrap_or_else(|| {
                        tracing::warn!(image = %id, "history sizes do not line up with the layers; counting them in order");
                        layers::layers_in_order(&d.diff_ids, &d.history_sizes)
                    })
                });
                (id, layers)
            }
        })
        .buffer_unordered(LAYER_FETCH_CONCURRENCY)
        .collect()
        .await;
    let mut to_cache = Vec::with_capacity(fetched.len());
    let mut vanished = HashSet::new();
    for (id, layers) in fetched {
        let layers = match layers {
            Ok(layers) => layers,
            // Removed since the listing (a cleanup, an update): it is gone.
            Err(e) if e.is_not_found() => {
                vanished.insert(id);
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        to_cache.push((
            id.to_string(),
            serde_json::to_string(&layers).expect("layers serialise"),
        ));
        known.insert(id, layers);
    }
    if !to_cache.is_empty() {
        store.put_layers(daemon_id, &to_cache).await?;
    }
    Ok(ListingLayers {
        layers: known,
        vanished,
        stale,
    })
}

fn history_from(rows: HistoryRows) -> History {
    let mut history = History::default();
    // Rows come oldest first, so the latest ExApp to run an image wins,
    // and the latest image an ExApp ran is its latest current image.
    for (appid, image_id, _) in rows.images {
        if let (Ok(app), Ok(id)) = (AppId::parse(&appid), ImageId::parse(&image_id)) {
            history.latest_current.insert(app.clone(), id.clone());
            history.image_owners.insert(id, app);
        }
    }
    for (appid, repository) in rows.repositories {
        if let Ok(app) = AppId::parse(&appid) {
            history
                .repo_owners
                .entry(repository)
                .or_insert_with(BTreeSet::new)
                .insert(app);
        }
    }
    for (image_id, since) in rows.outdated {
        if let Ok(id) = ImageId::parse(&image_id) {
            history.outdated_since.insert(id, since);
        }
    }
    history
}

#[cfg(test)]
mod reference_tests {
    use super::names_a_reference;

    #[test]
    fn a_container_lists_image_is_a_reference_unless_docker_shows_an_id() {
        assert!(names_a_reference("ghcr.io/nextcloud/llm2:1.2.0-cuda"));
        assert!(names_a_reference("nginx"));
        assert!(!names_a_reference(&format!("sha256:{}", "ab".repeat(32))));
        assert!(!names_a_reference("0123456789ab"));
        assert!(!names_a_reference(""));
    }
}

#[cfg(test)]
mod limit_tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::time::Duration;

    use super::{scan_concurrency_for, ScanLimit};

    #[test]
    fn the_default_scans_one_daemon_per_cpu_between_2_and_16() {
        assert_eq!(scan_concurrency_for(1), 2);
        assert_eq!(scan_concurrency_for(2), 2);
        assert_eq!(scan_concurrency_for(6), 6);
        assert_eq!(scan_concurrency_for(64), 16);
    }

    /// Twenty "scans" through a limit of 3, each holding its permit a
    /// while: never more than 3 run, 3 do run together, and the results
    /// come back in the order asked.
    #[tokio::test]
    async fn no_more_scans_run_at_once_than_the_limit() {
        for max in [1, 3, 8] {
            let limit = ScanLimit::new(max);
            let running = Arc::new(AtomicUsize::new(0));
            let most = Arc::new(AtomicUsize::new(0));
            let work = (0..20).map(|i| {
                let (limit, running, most) = (limit.clone(), running.clone(), most.clone());
                async move {
                    limit
                        .run(async {
                            let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                            most.fetch_max(now, Ordering::SeqCst);
                            tokio::time::sleep(Duration::from_millis(5)).await;
                            running.fetch_sub(1, Ordering::SeqCst);
                            i
                        })
                        .await
                }
            });
            let order = futures_util::future::join_all(work).await;
            assert_eq!(order, (0..20).collect::<Vec<_>>());
            assert_eq!(most.load(Ordering::SeqCst), max, "limit {max}");
        }
    }

    /// Callers on other tasks share the one limit (the watcher, the worker
    /// and `scan_all` each ask on their own).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_limit_holds_across_tasks() {
        let limit = ScanLimit::new(2);
        let running = Arc::new(AtomicUsize::new(0));
        let most = Arc::new(AtomicUsize::new(0));
        let tasks: Vec<_> = (0..10)
            .map(|_| {
                let (limit, running, most) = (limit.clone(), running.clone(), most.clone());
                tokio::spawn(async move {
                    limit
                        .run(async {
                            let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                            most.fetch_max(now, Ordering::SeqCst);
                            tokio::time::sleep(Duration::from_millis(5)).await;
                            running.fetch_sub(1, Ordering::SeqCst);
                        })
                        .await
                })
            })
            .collect();
        for task in tasks {
            task.await.unwrap();
        }
        assert_eq!(most.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn a_limit_of_zero_is_one() {
        assert_eq!(ScanLimit::new(0).max(), 1);
    }
}
