//! The `settings` row: the settings as JSON, when the interval was set, and
//! a version bumped by every change.

use super::{Store, StoreError};

#[derive(Debug, Clone)]
pub struct SettingsRow {
    pub settings: String,
    pub interval_set_at: i64,
    pub version: i64,
}

impl Store {
    /// The stored settings, if any were ever saved. A read only.
    pub async fn settings_row(&self) -> Result<Option<SettingsRow>, StoreError> {
        Ok(sqlx::query_as!(
            SettingsRow,
            "SELECT settings, interval_set_at, version FROM settings WHERE id = 1"
        )
        .fetch_optional(self.pool())
        .await?)
    }

    /// Saves the settings if the stored version is still `seen` (None: no
    /// row was there); `interval_changed` restarts the schedule's clock.
    /// False (nothing written) when another change came first.
    pub async fn save_settings(
        &self,
        json: &str,
        interval_changed: bool,
        seen: Option<i64>,
    ) -> Result<bool, StoreError> {
        let now = self.clock.now_unix();
        let done = match seen {
            Some(version) => sqlx::query!(
                "UPDATE settings SET settings = ?, updated_at = ?, version = version + 1,
                     interval_set_at = CASE WHEN ? THEN ? ELSE interval_set_at END
                 WHERE id = 1 AND version = ?",
                json,
                now,
                interval_changed,
                now,
                version
            )
            .execute(self.pool())
            .await?,
            None => sqlx::query!(
                "INSERT INTO settings (id, settings, interval_set_at, updated_at) VALUES (1, ?, ?, ?)
                 ON CONFLICT (id) DO NOTHING",
                json,
                now,
                now
            )
            .execute(self.pool())
            .await?,
        };
        Ok(done.rows_affected() == 1)
    }

    /// Writes the defaults if no settings row exists yet: the schedule's
    /// clock starts with the first start of the server.
    pub async fn ensure_settings(&self, default_json: &str) -> Result<(), StoreError> {
        self.save_settings(default_json, false, None).await?;
        Ok(())
    }
}
