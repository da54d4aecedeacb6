//! The change counter (migration `change_counter`): moved on by triggers
//! whenever the daemons, their scans, the settings, the credentials or the
//! Nextcloud link change, from any process.

use super::{Store, StoreError};

impl Store {
    /// The counter's value now. Read it before what it guards: what is read
    /// after it is at least as new, and a change after it moves it on.
    pub async fn change_count(&self) -> Result<i64, StoreError> {
        Ok(
            sqlx::query_scalar!("SELECT value FROM change_counter WHERE id = 1")
                .fetch_one(self.pool())
                .await?,
        )
    }
}
