//! The last scan of every daemon, kept in memory and refreshed from the
//! store when any process (server or CLI) scanned since: pages and the API
//! read it without parsing every inventory on every request.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use sha2::{Digest, Sha256};

use super::{DaemonInventory, ScanMemo};
use crate::store::{SameScanStored, Store, StoreError};

/// One daemon's last scan as stored.
#[derive(Debug, Clone)]
pub struct CachedScan {
    pub scanned_at: Option<i64>,
    pub duration_ms: Option<i64>,
    pub error: Option<String>,
    pub error_at: Option<i64>,
    pub attempted_at: i64,
    /// Changes with every stored scan.
    pub generation: i64,
    /// Changes only when the inventory does: the generation that stored it.
    /// A rescan that finds nothing new keeps it, and so the reports built
    /// on it (`report::ReportCache`).
    pub inventory_generation: i64,
    /// sha256 of the stored inventory text, to see that it did not change.
    pub(crate) inventory_digest: Option<[u8; 32]>,
    /// The last successful inventory; None before the first success.
    pub inventory: Option<Arc<DaemonInventory>>,
}

impl CachedScan {
    /// The last attempt failed (the inventory, if any, is older).
    pub fn failed_last(&self) -> bool {
        matches!((self.error_at, self.scanned_at), (Some(e), Some(s)) if e > s)
            || (self.error_at.is_some() && self.scanned_at.is_none())
    }
}

#[derive(Debug, Default)]
pub struct InventoryCache {
    held: Mutex<Held>,
    /// Held while entries are changed: during a rescan every request finds
    /// the daemon just stored stale, and without it each of 32 concurrent
    /// requests read and parsed the same inventory. Every change is made
    /// under it, from versions read under it, so no change is undone by one
    /// made from older versions.
    loading: tokio::sync::Mutex<()>,
    /// What this process's scans classified: an inventory stored from here
    /// is taken from it, not read and parsed (and not held twice).
    memo: Arc<ScanMemo>,
}

#[derive(Debug, Default)]
struct Held {
    entries: HashMap<i64, Arc<CachedScan>>,
    /// The store's scans counter (`ChangeCount::scans`) as of which the
    /// entries are known to be the stored scans: while it stands still,
    /// they are returned without reading anything.
    verified_at: Option<i64>,
}

impl InventoryCache {
    /// The memo this process's scans remember their classifications in.
    pub fn memo(&self) -> Arc<ScanMemo> {
        self.memo.clone()
    }

    /// Called by a scan that stored `inventory` (with the digest of its
    /// text) and left it in the memo: the copy held here, equal or older,
    /// is let go now rather than at the next request, which on a server
    /// nobody looks at may be long after the next scheduled rescan.
    pub(crate) fn adopt(
        &self,
        daemon_id: i64,
        digest: &[u8; 32],
        inventory: &Arc<DaemonInventory>,
    ) {
        let mut held = self.lock();
        let Some(entry) = held.entries.get(&daemon_id) else {
            return;
        };
        if entry.inventory_digest.as_ref() == Some(digest) {
            if entry
                .inventory
                .as_ref()
                .is_some_and(|i| !Arc::ptr_eq(i, inventory))
            {
                // The same text: what was built on it stays (same inventory
                // generation); the times are read at the next request.
                let mut shared = CachedScan::clone(entry);
                shared.inventory = Some(inventory.clone());
                held.entries.insert(daemon_id, Arc::new(shared));
            }
        } else {
            // Another inventory: the next request reads it (from the memo).
            held.entries.remove(&daemon_id);
            held.verified_at = None;
        }
    }

    /// A scan of this process stored only its times (`Store::save_same_scan`),
    /// moving the scans counter on by one to `stored.scans_count`. When the
    /// entries are verified at the count just before, that was the only
    /// change since: the daemon's entry takes the new times in place and
    /// the entries count as verified at the new count, so no request reads
    /// the scans again for this process's own rescan (100 rescans in a few
    /// seconds made requests wait for a reload 20 times a second).
    /// Otherwise the next request reads them, as after any other change.
    pub(crate) async fn took_own_times(
        &self,
        daemon_id: i64,
        at: i64,
        duration_ms: i64,
        stored: SameScanStored,
    ) {
        // Under the loading lock: a reload that read older versions must
        // not put them back over these times.
        let _loading = self.loading.lock().await;
        let mut held = self.lock();
        if held.verified_at != Some(stored.scans_count - 1) {
            return;
        }
        let Some(entry) = held
            .entries
            .get(&daemon_id)
            .filter(|e| e.generation + 1 == stored.generation)
        else {
            return;
        };
        let mut updated = CachedScan::clone(entry);
        updated.scanned_at = Some(at);
        updated.duration_ms = Some(duration_ms);
        updated.attempted_at = at;
        updated.generation = stored.generation;
        held.entries.insert(daemon_id, Arc::new(updated));
        held.verified_at = Some(stored.scans_count);
    }

    /// Every daemon's last scan, by daemon ID; reloads only what changed.
    pub async fn current(
        &self,
        store: &Store,
    ) -> Result<HashMap<i64, Arc<CachedScan>>, StoreError> {
        let count = store.change_count().await?;
        self.current_at(store, count.scans).await
    }

    /// `current`, with the change count read before this call.
    pub async fn current_at(
        &self,
        store: &Store,
        count: i64,
    ) -> Result<HashMap<i64, Arc<CachedScan>>, StoreError> {
        {
            let held = self.lock();
            if held.verified_at == Some(count) {
                return Ok(held.entries.clone());
            }
        }
        let versions = store.scan_versions().await?;
        if self.stale(&versions).is_some() {
            let _loading = self.loading.lock().await;
            // Read again under the lock: a scan may have stored since, and
            // another request may have loaded what this one found stale.
            let versions = store.scan_versions().await?;
            if let Some(stale_ids) = self.stale(&versions) {
                let loaded = self.load(store, stale_ids).await?;
                let live: HashSet<i64> = versions.iter().map(|(id, _, _)| *id).collect();
                let mut held = self.lock();
                held.entries.extend(loaded);
                held.entries.retain(|id, _| live.contains(id));
                self.memo.retain(&live);
            }
        }
        let mut held = self.lock();
        // The entries are the scans stored as of `count` or later (any
        // change since was made from versions read later still).
        if held.verified_at.is_none_or(|v| v < count) {
            held.verified_at = Some(count);
        }
        Ok(held.entries.clone())
    }

    /// The daemons whose held scan is not the stored one, with the stored
    /// inventory's digest; None when the entries are the stored scans (no
    /// daemon stale, none held that is gone).
    fn stale(&self, versions: &[(i64, i64, Option<String>)]) -> Option<Vec<(i64, Option<String>)>> {
        let held = self.lock();
        let stale: Vec<_> = versions
            .iter()
            .filter(|(id, generation, _)| {
                held.entries
                    .get(id)
                    .is_none_or(|c| c.generation != *generation)
            })
            .map(|(id, _, sha)| (*id, sha.clone()))
            .collect();
        // With none stale every stored daemon is held: more held are gone.
        let gone = stale.is_empty() && held.entries.len() > versions.len();
        (!stale.is_empty() || gone).then_some(stale)
    }

    async fn load(
        &self,
        store: &Store,
        stale_ids: Vec<(i64, Option<String>)>,
    ) -> Result<Vec<(i64, Arc<CachedScan>)>, StoreError> {
        let mut loaded = Vec::with_capacity(stale_ids.len());
        for (daemon_id, sha) in stale_ids {
            let previous = self.get(daemon_id);
            let stored = sha.as_deref().and_then(unhex);
            // This process classified the stored inventory: it is taken
            // from the memo, and the one held (equal, parsed) let go.
            let classified = stored.and_then(|d| self.memo.inventory_with(daemon_id, &d));
            // The stored digest says whether the inventory this cache holds
            // is still the stored one.
            let held = previous
                .as_ref()
                .filter(|p| p.inventory.is_some())
                .and_then(|p| p.inventory_digest)
                .filter(|d| stored == Some(*d));
            // Either way only the times are read.
            let known = classified.is_some() || held.is_some();
            let row = match known {
                true => store.load_scan_times(daemon_id).await?,
                false => store.load_scan(daemon_id).await?,
            };
            if let Some(row) = row {
                let digest = match known {
                    true => stored,
                    false => row
                        .inventory
                        .as_deref()
                        .map(|text| <[u8; 32]>::from(Sha256::digest(text.as_bytes()))),
                };
                let unchanged = previous.as_ref().filter(|p| {
                    p.inventory.is_some() && digest.is_some() && p.inventory_digest == digest
                });
                // Same text: nothing built on it needs building again.
                let inventory_generation =
                    unchanged.map_or(row.generation, |p| p.inventory_generation);
                let inventory = match (classified, unchanged) {
                    (Some(classified), _) => Some(classified),
                    (None, Some(p)) => p.inventory.clone(),
                    (None, None) => parse(daemon_id, row.inventory.as_deref()),
                };
                loaded.push((
                    daemon_id,
                    Arc::new(CachedScan {
                        scanned_at: row.scanned_at,
                        duration_ms: row.duration_ms,
                        error: row.error,
                        error_at: row.error_at,
                        attempted_at: row.attempted_at,
                        generation: row.generation,
                        inventory_generation,
                        inventory_digest: digest,
                        inventory,
                    }),
                ));
            }
        }
        Ok(loaded)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Held> {
        self.held.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn get(&self, daemon_id: i64) -> Option<Arc<CachedScan>> {
        self.lock().entries.get(&daemon_id).cloned()
    }
}

/// A stored digest (64 hex digits) as bytes; None for anything else.
fn unhex(text: &str) -> Option<[u8; 32]> {
    let mut digest = [0u8; 32];
    if text.len() != 64 {
        return None;
    }
    for (byte, pair) in digest.iter_mut().zip(text.as_bytes().chunks(2)) {
        *byte = u8::from_str_radix(std::str::from_utf8(pair).ok()?, 16).ok()?;
    }
    Some(digest)
}

fn parse(daemon_id: i64, inventory: Option<&str>) -> Option<Arc<DaemonInventory>> {
    match serde_json::from_str::<DaemonInventory>(inventory?) {
        Ok(mut scan) => {
            // Held until the next change: equal layers share their ID.
            crate::inventory::share_chain_ids(
                scan.images
                    .iter_mut()
                    .flat_map(|i| i.info.layers.iter_mut()),
            );
            Some(Arc::new(scan))
        }
        Err(e) => {
            tracing::warn!(daemon_id, error = %e, "a stored inventory could not be read; rescan to replace it");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::store::with_one_daemon as store_with_daemon;

    fn inventory(total_images: usize) -> String {
        serde_json::to_string(&DaemonInventory {
            notes: Vec::new(),
            images: vec![],
            totals: crate::inventory::Totals {
                images: total_images,
                ..Default::default()
            },
        })
        .unwrap()
    }

    /// A daemon scanned once, the server's store and another process's
    /// (the CLI's) on the same file, and the server's cache.
    async fn scanned_with_two_processes() -> (tempfile::TempDir, Store, Store, i64, InventoryCache)
    {
        let (dir, store, id) = store_with_daemon().await;
        let cli = Store::open(dir.path()).await.unwrap();
        store
            .save_scan(id, 100, 5, &inventory(3), 100)
            .await
            .unwrap();
        (dir, store, cli, id, InventoryCache::default())
    }

    /// A scan stored and read into the cache (parsed), and the same
    /// inventory as a rescan classified it, with the digest of its text.
    struct HeldAndClassified {
        _dir: tempfile::TempDir,
        store: Store,
        id: i64,
        cache: InventoryCache,
        parsed: Arc<CachedScan>,
        classified: Arc<DaemonInventory>,
        digest: [u8; 32],
    }

    async fn held_and_classified() -> HeldAndClassified {
        let (dir, store, id) = store_with_daemon().await;
        let cache = InventoryCache::default();
        let text = inventory(3);
        store.save_scan(id, 100, 5, &text, 100).await.unwrap();
        let parsed = cache.current(&store).await.unwrap()[&id].clone();
        HeldAndClassified {
            _dir: dir,
            store,
            id,
            cache,
            parsed,
            classified: Arc::new(serde_json::from_str(&text).unwrap()),
            digest: crate::store::inventory_digest(&text),
        }
    }

    #[tokio::test]
    async fn an_inventory_this_process_classified_is_taken_from_the_memo_not_held_twice() {
        let h = held_and_classified().await;
        let (store, id, cache) = (&h.store, h.id, &h.cache);
        // A rescan classified the same inventory and stored only its times.
        let inputs = super::super::memo::Inputs::of(
            super::super::memo::images_digest(&[]),
            &[],
            &Default::default(),
            &[],
            None,
        );
        cache.memo().remember(
            id,
            Some(inputs),
            super::super::memo::Remembered {
                inventory: h.classified.clone(),
                digest: h.digest,
                current: Arc::from(Vec::new()),
            },
        );
        assert!(store
            .save_same_scan(id, 200, 5, &h.digest, 200)
            .await
            .unwrap()
            .is_some());
        let now = cache.current(store).await.unwrap()[&id].clone();
        assert!(Arc::ptr_eq(now.inventory.as_ref().unwrap(), &h.classified));
        assert_eq!(
            now.inventory_generation, h.parsed.inventory_generation,
            "the same inventory: nothing built on it is built again"
        );
        assert_eq!(now.scanned_at, Some(200));
    }

    /// This process's rescan at 200 s, 7 ms, finding the same inventory:
    /// stored as the scan does it, and told to the cache.
    async fn rescan_here(
        store: &Store,
        cache: &InventoryCache,
        id: i64,
        digest: &[u8; 32],
    ) -> SameScanStored {
        let stored = store
            .save_same_scan(id, 200, 7, digest, 200)
            .await
            .unwrap()
            .expect("the same inventory is stored as its times");
        cache.took_own_times(id, 200, 7, stored).await;
        stored
    }

    #[tokio::test]
    async fn this_process_s_own_rescan_is_taken_in_place_without_reading_the_scans_again() {
        let h = held_and_classified().await;
        let (store, id, cache) = (&h.store, h.id, &h.cache);
        let stored = rescan_here(store, cache, id, &h.digest).await;
        assert_eq!(
            cache.lock().verified_at,
            Some(stored.scans_count),
            "a request would read the scans again"
        );
        let held = cache.get(id).unwrap();
        assert_eq!(
            (held.scanned_at, held.duration_ms, held.attempted_at),
            (Some(200), Some(7), 200)
        );
        assert_eq!(held.generation, stored.generation);
        assert_eq!(held.inventory_generation, h.parsed.inventory_generation);
        // And it is what the store holds: a reload finds the same.
        let reloaded = InventoryCache::default().current(store).await.unwrap()[&id].clone();
        assert_eq!(
            (reloaded.scanned_at, reloaded.generation),
            (held.scanned_at, held.generation)
        );
    }

    #[tokio::test]
    async fn a_change_by_another_process_in_between_is_still_read_at_the_next_request() {
        let (_dir, store, cli, id, cache) = scanned_with_two_processes().await;
        let first = cache.current(&store).await.unwrap()[&id].clone();
        let digest = first.inventory_digest.unwrap();
        // The CLI stores a scan of the same daemon, then this process does.
        cli.save_same_scan(id, 150, 5, &digest, 150).await.unwrap();
        let stored = rescan_here(&store, &cache, id, &digest).await;
        assert_ne!(
            cache.lock().verified_at,
            Some(stored.scans_count),
            "the other process's change would never be read"
        );
        let now = cache.current(&store).await.unwrap()[&id].clone();
        assert_eq!(
            (now.scanned_at, now.generation),
            (Some(200), stored.generation)
        );
    }

    #[tokio::test]
    async fn a_scan_that_leaves_its_inventory_in_the_memo_frees_the_cached_copy_at_once() {
        let h = held_and_classified().await;
        let (store, id, cache) = (&h.store, h.id, &h.cache);
        cache.adopt(id, &h.digest, &h.classified);
        let held = cache.get(id).unwrap();
        assert!(Arc::ptr_eq(held.inventory.as_ref().unwrap(), &h.classified));
        assert_eq!(held.inventory_generation, h.parsed.inventory_generation);
        // Another inventory: nothing of the old one is kept for it.
        let other = Arc::new(serde_json::from_str::<DaemonInventory>(&inventory(4)).unwrap());
        cache.adopt(id, &crate::store::inventory_digest(&inventory(4)), &other);
        assert!(cache.get(id).is_none());
        // And the next call reads what is stored.
        assert_eq!(
            cache.current(store).await.unwrap()[&id]
                .inventory
                .as_ref()
                .unwrap()
                .totals
                .images,
            3
        );
    }

    #[test]
    fn a_stored_digest_reads_as_the_bytes_it_was_written_from() {
        let digest = crate::store::inventory_digest("{}");
        let text: String = digest.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(unhex(&text), Some(digest));
        assert_eq!(unhex(&text[1..]), None);
        assert_eq!(unhex(&"zz".repeat(32)), None);
    }

    #[tokio::test]
    async fn a_scan_stored_by_another_process_is_read_at_the_next_call() {
        let (_dir, store, cli, id, cache) = scanned_with_two_processes().await;
        assert_eq!(
            cache.current(&store).await.unwrap()[&id].scanned_at,
            Some(100)
        );
        // Held as of this count: the same again without a change.
        assert_eq!(
            cache.current(&store).await.unwrap()[&id].scanned_at,
            Some(100)
        );
        cli.save_scan(id, 200, 5, &inventory(4), 200).await.unwrap();
        let now = cache.current(&store).await.unwrap()[&id].clone();
        assert_eq!(now.scanned_at, Some(200));
        assert_eq!(now.inventory.as_ref().unwrap().totals.images, 4);
    }

    #[tokio::test]
    async fn a_daemon_removed_by_another_process_is_dropped_at_the_next_call() {
        let (_dir, store, cli, id, cache) = scanned_with_two_processes().await;
        assert!(cache.current(&store).await.unwrap().contains_key(&id));
        let name = crate::domain::DaemonName::parse("local").unwrap();
        assert!(cli.remove_daemon(&name).await.unwrap());
        assert!(cache.current(&store).await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn a_rescan_that_stored_the_same_inventory_keeps_the_parsed_one() {
        let (_dir, store, id) = store_with_daemon().await;
        let cache = InventoryCache::default();
        store
            .save_scan(id, 100, 5, &inventory(3), 100)
            .await
            .unwrap();
        let first = cache.current(&store).await.unwrap()[&id].clone();

        store
            .save_scan(id, 200, 6, &inventory(3), 200)
            .await
            .unwrap();
        let again = cache.current(&store).await.unwrap()[&id].clone();

        assert_ne!(again.generation, first.generation);
        assert_eq!(again.scanned_at, Some(200), "the scan's own facts are new");
        assert_eq!(again.inventory_generation, first.inventory_generation);
        assert!(Arc::ptr_eq(
            again.inventory.as_ref().unwrap(),
            first.inventory.as_ref().unwrap()
        ));
    }

    #[tokio::test]
    async fn the_same_inventory_from_an_older_snapshot_changes_nothing() {
        let (_dir, store, id) = store_with_daemon().await;
        assert!(store
            .save_scan(id, 100, 5, &inventory(3), 100)
            .await
            .unwrap());
        assert!(
            store
                .save_scan(id, 300, 5, &inventory(3), 300)
                .await
                .unwrap(),
            "a newer snapshot of the same inventory records its time"
        );
        assert!(
            !store
                .save_scan(id, 400, 5, &inventory(3), 200)
                .await
                .unwrap(),
            "an older snapshot is never saved, same inventory or not"
        );
        let row = store.load_scan(id).await.unwrap().unwrap();
        assert_eq!(row.scanned_at, Some(300));
    }

    #[tokio::test]
    async fn a_rescan_that_stored_another_inventory_replaces_it() {
        let (_dir, store, id) = store_with_daemon().await;
        let cache = InventoryCache::default();
        store
            .save_scan(id, 100, 5, &inventory(3), 100)
            .await
            .unwrap();
        let first = cache.current(&store).await.unwrap()[&id].clone();

        store
            .save_scan(id, 200, 6, &inventory(4), 200)
            .await
            .unwrap();
        let changed = cache.current(&store).await.unwrap()[&id].clone();

        assert_ne!(changed.inventory_generation, first.inventory_generation);
        assert_eq!(changed.inventory.as_ref().unwrap().totals.images, 4);
    }

    #[tokio::test]
    async fn a_failed_scan_keeps_the_inventory_and_its_generation() {
        let (_dir, store, id) = store_with_daemon().await;
        let cache = InventoryCache::default();
        store
            .save_scan(id, 100, 5, &inventory(3), 100)
            .await
            .unwrap();
        let first = cache.current(&store).await.unwrap()[&id].clone();

        store.save_scan_error(id, 200, "daemon down").await.unwrap();
        let failed = cache.current(&store).await.unwrap()[&id].clone();

        assert!(failed.failed_last());
        assert_eq!(failed.inventory_generation, first.inventory_generation);
        assert_eq!(failed.inventory.as_ref().unwrap().totals.images, 3);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_requests_parse_a_changed_inventory_once() {
        let (_dir, store, id) = store_with_daemon().await;
        let cache = Arc::new(InventoryCache::default());
        store
            .save_scan(id, 100, 5, &inventory(3), 100)
            .await
            .unwrap();
        let requests: Vec<_> = (0..16)
            .map(|_| {
                let (cache, store) = (cache.clone(), store.clone());
                tokio::spawn(async move { cache.current(&store).await.unwrap()[&id].clone() })
            })
            .collect();
        let mut seen = Vec::new();
        for request in requests {
            seen.push(request.await.unwrap());
        }
        let first = seen[0].inventory.as_ref().unwrap();
        for scan in &seen {
            assert!(
                Arc::ptr_eq(scan.inventory.as_ref().unwrap(), first),
                "every request got the one parsed inventory"
            );
        }
    }
}
