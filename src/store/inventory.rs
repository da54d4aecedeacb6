//! The tables behind the inventory: the layer cache, the image history and
//! each daemon's last scan. Values the inventory computes are stored as
//! plain strings (IDs, JSON); the scan turns them back into types.

use super::{Store, StoreError};

/// What the janitor remembers of one daemon (see `inventory::History`).
#[derive(Debug, Clone, Default)]
pub struct HistoryRows {
    /// (appid, image_id, last_seen_at)
    pub images: Vec<(String, String, i64)>,
    /// (appid, repository)
    pub repositories: Vec<(String, String)>,
    /// (image_id, since)
    pub outdated: Vec<(String, i64)>,
}

/// One ExApp's current image as a scan saw it.
#[derive(Debug, Clone)]
pub struct CurrentRow {
    pub appid: String,
    pub image_id: String,
    pub repositories: Vec<String>,
}

/// What `save_same_scan` stored: the scan's generation, and the scans
/// counter (`ChangeCount::scans`) that its update moved on by one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SameScanStored {
    pub generation: i64,
    pub scans_count: i64,
}

/// The last scan of one daemon.
#[derive(Debug, Clone)]
pub struct ScanRow {
    pub daemon_id: i64,
    pub scanned_at: Option<i64>,
    pub duration_ms: Option<i64>,
    pub inventory: Option<String>,
    pub error: Option<String>,
    pub error_at: Option<i64>,
    pub attempted_at: i64,
    pub generation: i64,
}

impl Store {
    /// Cached layer lists (JSON) of a daemon's images, by image ID.
    pub async fn cached_layers(&self, daemon_id: i64) -> Result<Vec<(String, String)>, StoreError> {
        let rows = sqlx::query!(
            "SELECT image_id, layers FROM image_layers WHERE daemon_id = ?",
            daemon_id
        )
        .fetch_all(self.pool())
        .await?;
        Ok(rows.into_iter().map(|r| (r.image_id, r.layers)).collect())
    }

    /// The cached layer list (JSON) of one image.
    pub async fn cached_layers_of(
        &self,
        daemon_id: i64,
        image_id: &str,
    ) -> Result<Option<String>, StoreError> {
        Ok(sqlx::query_scalar!(
            "SELECT layers FROM image_layers WHERE daemon_id = ? AND image_id = ?",
            daemon_id,
            image_id
        )
        .fetch_optional(self.pool())
        .await?)
    }

    pub async fn put_layers(
        &self,
        daemon_id: i64,
        entries: &[(String, String)],
    ) -> Result<(), StoreError> {
        let mut tx = self.pool().begin().await?;
        for (image_id, layers) in entries {
            sqlx::query!(
                "INSERT INTO image_layers (daemon_id, image_id, layers) VALUES (?, ?, ?)
                 ON CONFLICT (daemon_id, image_id) DO UPDATE SET layers = excluded.layers",
                daemon_id,
                image_id,
                layers
            )
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Forgets the cached layers of these images (gone from the daemon).
    pub async fn delete_layers(
        &self,
        daemon_id: i64,
        image_ids: &[String],
    ) -> Result<(), StoreError> {
        if image_ids.is_empty() {
            return Ok(());
        }
        let mut tx = self.pool().begin().await?;
        for image_id in image_ids {
            sqlx::query!(
                "DELETE FROM image_layers WHERE daemon_id = ? AND image_id = ?",
                daemon_id,
                image_id
            )
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    pub async fn load_history(&self, daemon_id: i64) -> Result<HistoryRows, StoreError> {
        // One statement, and one row: a rescan of 100 daemons reads the
        // history 100 times, and each statement, and each row of one, is a
        // message from SQLite's thread (a few hundred rows a daemon were a
        // fifth of the server's CPU in a rescan). SQLite builds the JSON.
        let history = sqlx::query_scalar!(
            r#"SELECT json_group_array(json_array(kind, appid, item, at) ORDER BY kind, at) AS "history!: String"
               FROM (SELECT 0 AS kind, appid, image_id AS item, last_seen_at AS at
                       FROM exapp_images WHERE daemon_id = ?1
                     UNION ALL
                     SELECT 1, appid, repository, 0 FROM exapp_repositories WHERE daemon_id = ?1
                     UNION ALL
                     SELECT 2, '', image_id, since FROM outdated_images WHERE daemon_id = ?1)"#,
            daemon_id
        )
        .fetch_one(self.pool())
        .await?;
        let rows: Vec<(u8, String, String, i64)> = serde_json::from_str(&history)
            .map_err(|e| StoreError::Corrupt(format!("history: {e}")))?;
        let (mut images, mut repositories, mut outdated) = (Vec::new(), Vec::new(), Vec::new());
        for (kind, appid, item, at) in rows {
            match kind {
                0 => images.push((appid, item, at)),
                1 => repositories.push((appid, item)),
                _ => outdated.push((item, at)),
            }
        }
        Ok(HistoryRows {
            images,
            repositories,
            outdated,
        })
    }

    /// Records what a scan observed, all or nothing.
    pub async fn record_history(
        &self,
        daemon_id: i64,
        now: i64,
        current: &[CurrentRow],
        newly_outdated: &[String],
        no_longer_outdated: &[String],
    ) -> Result<(), StoreError> {
        // One statement per table, whatever the number of ExApps: each
        // statement is a round trip to SQLite's thread. Rows go in the
        // order given (json_each keeps it), as they did one by one.
        let images = serde_json::to_string(
            &current
                .iter()
                .map(|c| [&c.appid, &c.image_id])
                .collect::<Vec<_>>(),
        )
        .expect("strings serialise");
        let repositories = serde_json::to_string(
            &current
                .iter()
                .flat_map(|c| c.repositories.iter().map(move |r| [&c.appid, r]))
                .collect::<Vec<_>>(),
        )
        .expect("strings serialise");
        let mut tx = self.pool().begin().await?;
        sqlx::query!(
            "INSERT INTO exapp_images (daemon_id, appid, image_id, first_seen_at, last_seen_at)
             SELECT ?, json_extract(value, '$[0]'), json_extract(value, '$[1]'), ?, ?
             FROM json_each(?) WHERE true
             ON CONFLICT (daemon_id, appid, image_id) DO UPDATE SET last_seen_at = excluded.last_seen_at",
            daemon_id,
            now,
            now,
            images
        )
        .execute(&mut *tx)
        .await?;
        sqlx::query!(
            "INSERT INTO exapp_repositories (daemon_id, appid, repository, first_seen_at, last_seen_at)
             SELECT ?, json_extract(value, '$[0]'), json_extract(value, '$[1]'), ?, ?
             FROM json_each(?) WHERE true
             ON CONFLICT (daemon_id, appid, repository) DO UPDATE SET last_seen_at = excluded.last_seen_at",
            daemon_id,
            now,
            now,
            repositories
        )
        .execute(&mut *tx)
        .await?;
        for image_id in newly_outdated {
            sqlx::query!(
                "INSERT INTO outdated_images (daemon_id, image_id, since) VALUES (?, ?, ?)
                 ON CONFLICT (daemon_id, image_id) DO NOTHING",
                daemon_id,
                image_id,
                now
            )
            .execute(&mut *tx)
            .await?;
        }
        for image_id in no_longer_outdated {
            sqlx::query!(
                "DELETE FROM outdated_images WHERE daemon_id = ? AND image_id = ?",
                daemon_id,
                image_id
            )
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Saves a scan's inventory unless the stored one comes from a snapshot
    /// that started later (newest wins, across processes: the comparison is
    /// part of the statement). Returns whether it was saved.
    pub async fn save_scan(
        &self,
        daemon_id: i64,
        at: i64,
        duration_ms: i64,
        inventory: &str,
        snapshot_started_ms: i64,
    ) -> Result<bool, StoreError> {
        let digest = inventory_digest(inventory);
        if self
            .save_same_scan(daemon_id, at, duration_ms, &digest, snapshot_started_ms)
            .await?
            .is_some()
        {
            return Ok(true);
        }
        let sha = hex(&digest);
        // One transaction: the times and the inventory they belong to are
        // stored together or not at all.
        let mut tx = self.pool().begin().await?;
        let done = sqlx::query!(
            "INSERT INTO daemon_scans (daemon_id, scanned_at, duration_ms, attempted_at, snapshot_started_ms, inventory_sha256)
             VALUES (?, ?, ?, ?, ?, ?)
             ON CONFLICT (daemon_id) DO UPDATE SET scanned_at = excluded.scanned_at,
                 duration_ms = excluded.duration_ms,
                 attempted_at = excluded.attempted_at, generation = generation + 1,
                 snapshot_started_ms = excluded.snapshot_started_ms,
                 inventory_sha256 = excluded.inventory_sha256
             WHERE daemon_scans.snapshot_started_ms IS NULL
                OR daemon_scans.snapshot_started_ms <= excluded.snapshot_started_ms",
            daemon_id,
            at,
            duration_ms,
            at,
            snapshot_started_ms,
            sha
        )
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() != 1 {
            return Ok(false);
        }
        sqlx::query!(
            "INSERT INTO daemon_inventories (daemon_id, inventory) VALUES (?, ?)
             ON CONFLICT (daemon_id) DO UPDATE SET inventory = excluded.inventory",
            daemon_id,
            inventory
        )
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Saves a scan whose inventory is the stored one, known by the digest
    /// of its text (`inventory_digest`): only the times are written (SQLite
    /// rewrites only the pages that change), and caches see by the digest
    /// that they need not read the inventory again. None when the stored
    /// inventory is another, or comes from a snapshot that started later.
    pub async fn save_same_scan(
        &self,
        daemon_id: i64,
        at: i64,
        duration_ms: i64,
        digest: &[u8; 32],
        snapshot_started_ms: i64,
    ) -> Result<Option<SameScanStored>, StoreError> {
        let sha = hex(digest);
        // One transaction: the scans counter read back is the one this
        // update moved, no other writer between.
        let mut tx = self.pool().begin().await?;
        let same = sqlx::query!(
            "UPDATE daemon_scans SET scanned_at = ?, duration_ms = ?, attempted_at = ?,
                 snapshot_started_ms = ?,
                 generation = generation + 1
             WHERE daemon_id = ? AND inventory_sha256 = ?
               AND (snapshot_started_ms IS NULL OR snapshot_started_ms <= ?)",
            at,
            duration_ms,
            at,
            snapshot_started_ms,
            daemon_id,
            sha,
            snapshot_started_ms
        )
        .execute(&mut *tx)
        .await?;
        if same.rows_affected() != 1 {
            return Ok(None);
        }
        let stored = sqlx::query!(
            r#"SELECT s.generation AS "generation!", c.scans AS "scans!"
               FROM daemon_scans s, change_counter c WHERE s.daemon_id = ? AND c.id = 1"#,
            daemon_id
        )
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(Some(SameScanStored {
            generation: stored.generation,
            scans_count: stored.scans,
        }))
    }

    /// Records a failed scan; the last good inventory stays.
    pub async fn save_scan_error(
        &self,
        daemon_id: i64,
        at: i64,
        error: &str,
    ) -> Result<(), StoreError> {
        sqlx::query!(
            "INSERT INTO daemon_scans (daemon_id, error, error_at, attempted_at) VALUES (?, ?, ?, ?)
             ON CONFLICT (daemon_id) DO UPDATE SET error = excluded.error, error_at = excluded.error_at,
                 attempted_at = excluded.attempted_at, generation = generation + 1",
            daemon_id,
            error,
            at,
            at
        )
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// (daemon_id, generation, sha256 of the inventory) of every daemon's
    /// last scan: cheap, to see whether a cached inventory is still the latest.
    pub async fn scan_versions(&self) -> Result<Vec<(i64, i64, Option<String>)>, StoreError> {
        Ok(sqlx::query!(
            r#"SELECT daemon_id AS "daemon_id!", generation, inventory_sha256 FROM daemon_scans"#
        )
        .fetch_all(self.pool())
        .await?
        .into_iter()
        .map(|r| (r.daemon_id, r.generation, r.inventory_sha256))
        .collect())
    }

    /// The last scan without its inventory (`inventory` None): for a cache
    /// that holds that inventory already.
    pub async fn load_scan_times(&self, daemon_id: i64) -> Result<Option<ScanRow>, StoreError> {
        Ok(sqlx::query_as!(
            ScanRow,
            r#"SELECT daemon_id, scanned_at, duration_ms, NULL AS "inventory?: String", error, error_at, attempted_at, generation
             FROM daemon_scans WHERE daemon_id = ?"#,
            daemon_id
        )
        .fetch_optional(self.pool())
        .await?)
    }

    pub async fn load_scan(&self, daemon_id: i64) -> Result<Option<ScanRow>, StoreError> {
        Ok(sqlx::query_as!(
            ScanRow,
            r#"SELECT s.daemon_id, s.scanned_at, s.duration_ms, i.inventory AS "inventory?", s.error, s.error_at,
                    s.attempted_at, s.generation
             FROM daemon_scans s LEFT JOIN daemon_inventories i USING (daemon_id)
             WHERE s.daemon_id = ?"#,
            daemon_id
        )
        .fetch_optional(self.pool())
        .await?)
    }
}

/// sha256 of an inventory's stored text (`daemon_inventories`), as
/// `daemon_scans.inventory_sha256` keeps it (in hex).
pub fn inventory_digest(text: &str) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(text.as_bytes()).into()
}

fn hex(digest: &[u8; 32]) -> String {
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::store::with_one_daemon as store_with_daemon;

    fn current(appid: &str, image_id: &str, repositories: &[&str]) -> CurrentRow {
        CurrentRow {
            appid: appid.into(),
            image_id: image_id.into(),
            repositories: repositories.iter().map(|r| r.to_string()).collect(),
        }
    }

    #[tokio::test]
    async fn history_keeps_every_current_image_and_repository_a_scan_saw() {
        let (_dir, store, daemon) = store_with_daemon().await;
        let seen = [
            current("app_a", "sha256:a1", &["ghcr.io/x/a"]),
            current("app_b", "sha256:b1", &["ghcr.io/x/b", "docker.io/x/b"]),
            current("app_c", "sha256:c1", &[]),
        ];
        store
            .record_history(daemon, 100, &seen, &[], &[])
            .await
            .unwrap();
        let rows = store.load_history(daemon).await.unwrap();
        let mut images = rows.images.clone();
        images.sort();
        assert_eq!(
            images,
            [
                ("app_a".into(), "sha256:a1".into(), 100),
                ("app_b".into(), "sha256:b1".into(), 100),
                ("app_c".into(), "sha256:c1".into(), 100),
            ]
        );
        let mut repositories = rows.repositories.clone();
        repositories.sort();
        assert_eq!(
            repositories,
            [
                ("app_a".into(), "ghcr.io/x/a".into()),
                ("app_b".into(), "docker.io/x/b".into()),
                ("app_b".into(), "ghcr.io/x/b".into()),
            ]
        );
    }

    #[tokio::test]
    async fn a_later_scan_moves_only_the_last_seen_of_what_it_saw() {
        let (_dir, store, daemon) = store_with_daemon().await;
        let first = [
            current("app_a", "sha256:a1", &["ghcr.io/x/a"]),
            current("app_b", "sha256:b1", &["ghcr.io/x/b"]),
        ];
        store
            .record_history(daemon, 100, &first, &[], &[])
            .await
            .unwrap();
        // app_a was updated: a new image, the same repository.
        let second = [current("app_a", "sha256:a2", &["ghcr.io/x/a"])];
        store
            .record_history(daemon, 200, &second, &[], &[])
            .await
            .unwrap();
        let rows = store.load_history(daemon).await.unwrap();
        // Oldest first: what was seen last comes last; the rest keep theirs.
        assert_eq!(
            rows.images.last(),
            Some(&("app_a".into(), "sha256:a2".into(), 200))
        );
        let mut earlier = rows.images[..2].to_vec();
        earlier.sort();
        assert_eq!(
            earlier,
            [
                ("app_a".into(), "sha256:a1".into(), 100),
                ("app_b".into(), "sha256:b1".into(), 100),
            ]
        );
        assert_eq!(rows.repositories.len(), 2, "{:?}", rows.repositories);
    }

    #[tokio::test]
    async fn history_holds_the_images_outdated_on_its_own_daemon_until_no_longer() {
        let (_dir, store, daemon) = store_with_daemon().await;
        let other = crate::store::add_daemon(&store, "other").await;
        let seen = [current("app_a", "sha256:a2", &["ghcr.io/x/a"])];
        let outdated = ["sha256:a0".to_owned(), "sha256:a1".to_owned()];
        store
            .record_history(daemon, 100, &seen, &outdated, &[])
            .await
            .unwrap();
        store
            .record_history(other, 150, &[], &["sha256:o1".to_owned()], &[])
            .await
            .unwrap();
        store
            .record_history(daemon, 200, &seen, &[], &outdated[..1])
            .await
            .unwrap();
        let rows = store.load_history(daemon).await.unwrap();
        assert_eq!(rows.outdated, [("sha256:a1".to_owned(), 100)]);
        assert_eq!(
            rows.images,
            [("app_a".into(), "sha256:a2".into(), 200)],
            "one row per image seen, however often"
        );
        assert_eq!(rows.repositories, [("app_a".into(), "ghcr.io/x/a".into())]);
        let rows = store.load_history(other).await.unwrap();
        assert_eq!(rows.outdated, [("sha256:o1".to_owned(), 150)]);
        assert!(rows.images.is_empty() && rows.repositories.is_empty());
    }

    #[tokio::test]
    async fn a_scan_that_saw_no_exapp_records_nothing() {
        let (_dir, store, daemon) = store_with_daemon().await;
        store
            .record_history(daemon, 100, &[], &[], &[])
            .await
            .unwrap();
        let rows = store.load_history(daemon).await.unwrap();
        assert!(rows.images.is_empty() && rows.repositories.is_empty());
    }

    /// A big inventory's text, as 1,000 images make it (some 750 KB).
    fn big_inventory() -> String {
        format!(
            "{{\"images\":[{}]}}",
            vec!["\"sha256:0123456789abcdef\""; 40_000].join(",")
        )
    }

    fn wal_bytes(dir: &std::path::Path) -> u64 {
        std::fs::metadata(dir.join(format!("{}-wal", crate::store::DB_FILE)))
            .map(|m| m.len())
            .unwrap_or(0)
    }

    #[tokio::test]
    async fn a_rescan_storing_only_its_times_does_not_write_the_inventory_again() {
        let (dir, store, id) = store_with_daemon().await;
        let inventory = big_inventory();
        assert!(store.save_scan(id, 1, 1, &inventory, 1).await.unwrap());
        sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
            .execute(store.pool())
            .await
            .unwrap();
        assert_eq!(wal_bytes(dir.path()), 0, "the checkpoint emptied the WAL");

        let digest = inventory_digest(&inventory);
        let same = store.save_same_scan(id, 2, 1, &digest, 2).await.unwrap();
        assert!(same.is_some(), "the same inventory: only the times stored");
        assert!(
            wal_bytes(dir.path()) < 64 * 1024,
            "storing the times wrote {} bytes for a {} byte inventory",
            wal_bytes(dir.path()),
            inventory.len()
        );
        let row = store.load_scan(id).await.unwrap().unwrap();
        assert_eq!(row.scanned_at, Some(2));
        assert_eq!(row.inventory.as_deref(), Some(inventory.as_str()));
    }

    #[tokio::test]
    async fn an_inventory_stored_before_it_had_a_table_of_its_own_is_kept() {
        // A database as the version before the inventory moved left it.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(crate::store::DB_FILE);
        let options = sqlx::sqlite::SqliteConnectOptions::new()
            .filename(&path)
            .create_if_missing(true);
        let pool = sqlx::SqlitePool::connect_with(options).await.unwrap();
        let before = sqlx::migrate::Migrator {
            migrations: std::borrow::Cow::Owned(
                crate::store::MIGRATOR
                    .iter()
                    .filter(|m| m.version < 20261204000200)
                    .cloned()
                    .collect(),
            ),
            ..sqlx::migrate::Migrator::DEFAULT
        };
        before.run(&pool).await.unwrap();
        sqlx::query("INSERT INTO daemons (name, endpoint, created_at) VALUES ('old', 'unix:///run/old.sock', 1)")
            .execute(&pool)
            .await
            .unwrap();
        sqlx::query(
            "INSERT INTO daemon_scans (daemon_id, scanned_at, inventory, attempted_at, inventory_sha256)
             SELECT id, 5, '{\"images\":[]}', 5, 'abc' FROM daemons",
        )
        .execute(&pool)
        .await
        .unwrap();
        pool.close().await;

        let store = Store::open(dir.path()).await.unwrap();
        let id = store.list_daemons().await.unwrap()[0].id;
        let row = store.load_scan(id).await.unwrap().unwrap();
        assert_eq!(row.scanned_at, Some(5));
        assert_eq!(row.inventory.as_deref(), Some("{\"images\":[]}"));
    }
}
