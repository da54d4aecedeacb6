//! The last scan of every daemon, kept in memory and refreshed from the
//! store when any process (server or CLI) scanned since: pages and the API
//! read it without parsing every inventory on every request.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use super::DaemonScan;
use crate::store::{Store, StoreError};

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
    /// The last successful inventory; None before the first success.
    pub scan: Option<Arc<DaemonScan>>,
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
    entries: Mutex<HashMap<i64, Arc<CachedScan>>>,
}

impl InventoryCache {
    /// Every daemon's last scan, by daemon ID; reloads only what changed.
    pub async fn current(
        &self,
        store: &Store,
    ) -> Result<HashMap<i64, Arc<CachedScan>>, StoreError> {
        let versions = store.scan_versions().await?;
        let stale: Vec<i64> = {
            let entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
            versions
                .iter()
                .filter(|(id, generation)| {
                    entries.get(id).is_none_or(|c| c.generation != *generation)
                })
                .map(|(id, _)| *id)
                .collect()
        };
        let mut loaded = Vec::with_capacity(stale.len());
        for daemon_id in stale {
            if let Some(row) = store.load_scan(daemon_id).await? {
                let scan = match row
                    .inventory
                    .as_deref()
                    .map(serde_json::from_str::<DaemonScan>)
                {
                    Some(Ok(scan)) => Some(Arc::new(scan)),
                    Some(Err(e)) => {
                        tracing::warn!(daemon_id, error = %e, "a stored inventory could not be read; rescan to replace it");
                        None
                    }
                    None => None,
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
                        scan,
                    }),
                ));
            }
        }
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        entries.extend(loaded);
        let live: std::collections::HashSet<i64> = versions.iter().map(|(id, _)| *id).collect();
        entries.retain(|id, _| live.contains(id));
        Ok(entries.clone())
    }
}
