//! The change counters (migrations `change_counter`, `scan_counter`):
//! moved on by triggers, from any process. `reads` moves whenever the
//! daemons, the settings, the credentials or the Nextcloud link change;
//! `scans` whenever a daemon's stored scan does.

use super::{Store, StoreError};

/// Both counters, read in one row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChangeCount {
    /// Guards what `read_cache::ReadCache` holds.
    pub reads: i64,
    /// Guards the inventory cache (`scan::InventoryCache`).
    pub scans: i64,
}

impl Store {
    /// The counters' values now. Read them before what they guard: what is
    /// read after is at least as new, and a change after moves them on.
    pub async fn change_count(&self) -> Result<ChangeCount, StoreError> {
        let row = sqlx::query!("SELECT value, scans FROM change_counter WHERE id = 1")
            .fetch_one(self.pool())
            .await?;
        Ok(ChangeCount {
            reads: row.value,
            scans: row.scans,
        })
    }
}
