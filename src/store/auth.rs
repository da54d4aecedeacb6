//! The `credentials` and `sessions` tables. Only hashes are stored.

use super::{Store, StoreError};

/// Which secret a credential row holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CredentialKind {
    AdminPassword,
    ApiToken,
}

impl CredentialKind {
    fn as_str(self) -> &'static str {
        match self {
            CredentialKind::AdminPassword => "admin_password",
            CredentialKind::ApiToken => "api_token",
        }
    }
}

/// A stored session: its CSRF token, when it began and when it was last used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredSession {
    pub csrf_token: String,
    pub created_at: i64,
    pub last_seen_at: i64,
}

impl Store {
    /// The stored hash of a credential and when it was set.
    pub async fn credential(
        &self,
        kind: CredentialKind,
    ) -> Result<Option<(String, i64)>, StoreError> {
        let kind = kind.as_str();
        let row = sqlx::query!("SELECT hash, set_at FROM credentials WHERE kind = ?", kind)
            .fetch_optional(self.pool())
            .await?;
        Ok(row.map(|r| (r.hash, r.set_at)))
    }

    pub async fn set_credential(&self, kind: CredentialKind, hash: &str) -> Result<(), StoreError> {
        let (kind, now) = (kind.as_str(), self.clock.now_unix());
        sqlx::query!(
            "INSERT INTO credentials (kind, hash, set_at) VALUES (?, ?, ?)
             ON CONFLICT (kind) DO UPDATE SET hash = excluded.hash, set_at = excluded.set_at",
            kind,
            hash,
            now
        )
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Stores `hash` only if no credential of that kind exists; true when stored.
    pub async fn set_credential_if_absent(
        &self,
        kind: CredentialKind,
        hash: &str,
    ) -> Result<bool, StoreError> {
        let (kind, now) = (kind.as_str(), self.clock.now_unix());
        let done = sqlx::query!(
            "INSERT INTO credentials (kind, hash, set_at) VALUES (?, ?, ?) ON CONFLICT (kind) DO NOTHING",
            kind,
            hash,
            now
        )
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    pub async fn insert_session(
        &self,
        token_hash: &str,
        csrf_token: &str,
    ) -> Result<(), StoreError> {
        let now = self.clock.now_unix();
        sqlx::query!(
            "INSERT INTO sessions (token_hash, csrf_token, created_at, last_seen_at) VALUES (?, ?, ?, ?)",
            token_hash,
            csrf_token,
            now,
            now
        )
        .execute(self.pool())
        .await?;
        Ok(())
    }

    pub async fn session(&self, token_hash: &str) -> Result<Option<StoredSession>, StoreError> {
        Ok(sqlx::query_as!(
            StoredSession,
            "SELECT csrf_token, created_at, last_seen_at FROM sessions WHERE token_hash = ?",
            token_hash
        )
        .fetch_optional(self.pool())
        .await?)
    }

    pub async fn touch_session(&self, token_hash: &str) -> Result<(), StoreError> {
        let now = self.clock.now_unix();
        sqlx::query!(
            "UPDATE sessions SET last_seen_at = ? WHERE token_hash = ?",
            now,
            token_hash
        )
        .execute(self.pool())
        .await?;
        Ok(())
    }

    pub async fn delete_session(&self, token_hash: &str) -> Result<(), StoreError> {
        sqlx::query!("DELETE FROM sessions WHERE token_hash = ?", token_hash)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// Ends every session, e.g. after a password change.
    pub async fn delete_all_sessions(&self) -> Result<(), StoreError> {
        sqlx::query!("DELETE FROM sessions")
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// Drops sessions idle since before `idle_cutoff` or begun before
    /// `created_cutoff` (unix seconds); how many went.
    pub async fn delete_expired_sessions(
        &self,
        idle_cutoff: i64,
        created_cutoff: i64,
    ) -> Result<u64, StoreError> {
        let done = sqlx::query!(
            "DELETE FROM sessions WHERE last_seen_at < ? OR created_at < ?",
            idle_cutoff,
            created_cutoff
        )
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected())
    }
}
