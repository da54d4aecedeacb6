//! The `settings` row: the settings as JSON and when the interval was set.

use super::{now_unix, Store, StoreError};

#[derive(Debug, Clone)]
pub struct SettingsRow {
    pub settings: String,
    pub interval_set_at: i64,
}

impl Store {
    /// The stored settings, if any were ever saved.
    pub async fn settings_row(&self) -> Result<Option<SettingsRow>, StoreError> {
        Ok(sqlx::query_as!(
            SettingsRow,
            "SELECT settings, interval_set_at FROM settings WHERE id = 1"
        )
        .fetch_optional(self.pool())
        .await?)
    }

    /// Saves the settings; `interval_changed` restarts the schedule's clock.
    pub async fn save_settings(
        &self,
        json: &str,
        interval_changed: bool,
    ) -> Result<(), StoreError> {
        let now = now_unix();
        sqlx::query!(
            "INSERT INTO settings (id, settings, interval_set_at, updated_at) VALUES (1, ?, ?, ?)
             ON CONFLICT (id) DO UPDATE SET settings = excluded.settings, updated_at = excluded.updated_at,
                 interval_set_at = CASE WHEN ? THEN excluded.interval_set_at ELSE interval_set_at END",
            json,
            now,
            now,
            interval_changed
        )
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// When the settings row was first written, or None: the schedule's
    /// clock starts with the first start of the janitor.
    pub async fn ensure_settings(&self, default_json: &str) -> Result<(), StoreError> {
        let now = now_unix();
        sqlx::query!(
            "INSERT INTO settings (id, settings, interval_set_at, updated_at) VALUES (1, ?, ?, ?)
             ON CONFLICT (id) DO NOTHING",
            default_json,
            now,
            now
        )
        .execute(self.pool())
        .await?;
        Ok(())
    }
}
