//! The `nextcloud` table (the one connection, its last contact and AppAPI
//! snapshot) and `nextcloud_proposals` (the admin's answers).

use time::OffsetDateTime;

use super::{Store, StoreError};
use crate::domain::{AppPassword, NextcloudLogin, NextcloudUrl, NextcloudUser};

/// The stored connection and what the last contacts learned.
#[derive(Debug, Clone)]
pub struct StoredNextcloud {
    pub login: NextcloudLogin,
    pub connected_at: OffsetDateTime,
    pub checked_at: Option<OffsetDateTime>,
    /// The last contact's error in words; `None` when it worked.
    pub check_error: Option<String>,
    pub nextcloud_version: Option<String>,
    pub app_api_version: Option<String>,
    /// The last good snapshot (JSON) and when it was taken.
    pub snapshot: Option<String>,
    pub snapshot_at: Option<OffsetDateTime>,
}

/// An answer to a proposal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredDecision {
    pub appapi_daemon: String,
    pub accepted: bool,
    pub janitor_daemon: Option<String>,
    pub decided_at: OffsetDateTime,
}

fn timestamp(secs: i64) -> Result<OffsetDateTime, StoreError> {
    OffsetDateTime::from_unix_timestamp(secs).map_err(|e| StoreError::Corrupt(e.to_string()))
}

impl Store {
    pub async fn nextcloud(&self) -> Result<Option<StoredNextcloud>, StoreError> {
        let row = sqlx::query!(
            r#"SELECT url, user_name, app_password, connected_at, checked_at, check_error,
                      nextcloud_version, app_api_version, snapshot, snapshot_at
               FROM nextcloud WHERE id = 1"#
        )
        .fetch_optional(self.pool())
        .await?;
        let Some(row) = row else { return Ok(None) };
        let corrupt = |e: String| StoreError::Corrupt(format!("nextcloud: {e}"));
        let login = NextcloudLogin {
            url: NextcloudUrl::parse(&row.url).map_err(corrupt)?,
            user: NextcloudUser::parse(&row.user_name).map_err(corrupt)?,
            password: AppPassword::parse(&row.app_password).map_err(corrupt)?,
        };
        Ok(Some(StoredNextcloud {
            login,
            connected_at: timestamp(row.connected_at)?,
            checked_at: row.checked_at.map(timestamp).transpose()?,
            check_error: row.check_error,
            nextcloud_version: row.nextcloud_version,
            app_api_version: row.app_api_version,
            snapshot: row.snapshot,
            snapshot_at: row.snapshot_at.map(timestamp).transpose()?,
        }))
    }

    /// Stores a tested connection with its versions, replacing any other
    /// (its snapshot and answers too: another Nextcloud's daemons are not
    /// this one's).
    pub async fn connect_nextcloud(
        &self,
        login: &NextcloudLogin,
        nextcloud_version: &str,
        app_api_version: &str,
    ) -> Result<(), StoreError> {
        let now = self.clock.now_unix();
        let url = login.url.to_string();
        let user = login.user.as_str();
        let password = login.password.expose();
        let mut tx = self.pool().begin().await?;
        let previous = sqlx::query_scalar!("SELECT url FROM nextcloud WHERE id = 1")
            .fetch_optional(&mut *tx)
            .await?;
        if previous.as_deref() != Some(url.as_str()) {
            sqlx::query!("DELETE FROM nextcloud_proposals")
                .execute(&mut *tx)
                .await?;
        }
        sqlx::query!(
            "INSERT INTO nextcloud (id, url, user_name, app_password, connected_at, checked_at,
                                    check_error, nextcloud_version, app_api_version)
             VALUES (1, ?, ?, ?, ?, ?, NULL, ?, ?)
             ON CONFLICT (id) DO UPDATE SET
                 url = excluded.url, user_name = excluded.user_name,
                 app_password = excluded.app_password, connected_at = excluded.connected_at,
                 checked_at = excluded.checked_at, check_error = NULL,
                 nextcloud_version = excluded.nextcloud_version,
                 app_api_version = excluded.app_api_version,
                 snapshot = CASE WHEN nextcloud.url = excluded.url THEN nextcloud.snapshot END,
                 snapshot_at = CASE WHEN nextcloud.url = excluded.url THEN nextcloud.snapshot_at END",
            url,
            user,
            password,
            now,
            now,
            nextcloud_version,
            app_api_version
        )
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Forgets the connection, its snapshot and the answers; false when
    /// there was none.
    pub async fn disconnect_nextcloud(&self) -> Result<bool, StoreError> {
        let mut tx = self.pool().begin().await?;
        let done = sqlx::query!("DELETE FROM nextcloud")
            .execute(&mut *tx)
            .await?;
        sqlx::query!("DELETE FROM nextcloud_proposals")
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(done.rows_affected() == 1)
    }

    /// A contact that worked: its versions, and (when it read AppAPI's
    /// lists) the new snapshot.
    pub async fn nextcloud_contact_ok(
        &self,
        versions: Option<(&str, &str)>,
        snapshot: Option<&str>,
    ) -> Result<(), StoreError> {
        let now = self.clock.now_unix();
        let (nc, app_api) = versions.unzip();
        sqlx::query!(
            "UPDATE nextcloud SET checked_at = ?, check_error = NULL,
                 nextcloud_version = COALESCE(?, nextcloud_version),
                 app_api_version = COALESCE(?, app_api_version),
                 snapshot = COALESCE(?, snapshot),
                 snapshot_at = CASE WHEN ? IS NULL THEN snapshot_at ELSE ? END
             WHERE id = 1",
            now,
            nc,
            app_api,
            snapshot,
            snapshot,
            now
        )
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// A contact that failed: the error is remembered, the snapshot kept.
    pub async fn nextcloud_contact_failed(&self, error: &str) -> Result<(), StoreError> {
        let now = self.clock.now_unix();
        sqlx::query!(
            "UPDATE nextcloud SET checked_at = ?, check_error = ? WHERE id = 1",
            now,
            error
        )
        .execute(self.pool())
        .await?;
        Ok(())
    }

    pub async fn nextcloud_decisions(&self) -> Result<Vec<StoredDecision>, StoreError> {
        let rows = sqlx::query!(
            r#"SELECT appapi_daemon AS "appapi_daemon!", decision, janitor_daemon, decided_at
             FROM nextcloud_proposals ORDER BY appapi_daemon"#
        )
        .fetch_all(self.pool())
        .await?;
        rows.into_iter()
            .map(|r| {
                Ok(StoredDecision {
                    appapi_daemon: r.appapi_daemon,
                    accepted: r.decision == "accepted",
                    janitor_daemon: r.janitor_daemon,
                    decided_at: timestamp(r.decided_at)?,
                })
            })
            .collect()
    }

    /// Records the admin's answer; false when the daemon was answered already.
    pub async fn decide_nextcloud_proposal(
        &self,
        appapi_daemon: &str,
        janitor_daemon: Option<&str>,
    ) -> Result<bool, StoreError> {
        let now = self.clock.now_unix();
        let decision = if janitor_daemon.is_some() {
            "accepted"
        } else {
            "refused"
        };
        let done = sqlx::query!(
            "INSERT INTO nextcloud_proposals (appapi_daemon, decision, janitor_daemon, decided_at)
             VALUES (?, ?, ?, ?) ON CONFLICT (appapi_daemon) DO NOTHING",
            appapi_daemon,
            decision,
            janitor_daemon,
            now
        )
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Takes back an answer, so the daemon is proposed again.
    pub async fn forget_nextcloud_decision(&self, appapi_daemon: &str) -> Result<bool, StoreError> {
        let done = sqlx::query!(
            "DELETE FROM nextcloud_proposals WHERE appapi_daemon = ?",
            appapi_daemon
        )
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected() == 1)
    }
}
