//! Key/value facts about this installation.

use super::{Store, StoreError};

impl Store {
    /// Sets `key` only if it has no value yet; true when this call set it.
    /// Lets two processes agree on who does a one-time step.
    pub async fn meta_set_once(&self, key: &str, value: &str) -> Result<bool, StoreError> {
        let done = sqlx::query!(
            "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO NOTHING",
            key,
            value
        )
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected() == 1)
    }
}
