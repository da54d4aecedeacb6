//! What nearly every request reads from the store — the daemons, the
//! settings, AppAPI's ExApp names, the API token's hash — read again only
//! when the store's change counter moved (`Store::change_count`, moved by
//! triggers). With 100 daemons those reads took half of the server's CPU
//! under load; now a request that finds nothing changed reads one row.
//! Scans move a counter of their own, which this row also carries for the
//! inventory cache: a rescan of every daemon does not make requests read
//! all of this again, once per daemon stored.
//!
//! A change made by any process moves the counter, so a change the CLI
//! makes applies at the server's next request, as it did before. What a
//! job removes is still decided on settings it reads itself.

use std::ops::Deref;
use std::sync::{Arc, Mutex, Weak};

use crate::domain::Settings;
use crate::nextcloud_link::{LinkError, NextcloudView};
use crate::report::OwnerNames;
use crate::settings::{self, SettingsError};
use crate::store::{CredentialKind, Store, StoreError, StoredDaemon};

/// The store's state as of one value of the change counter.
#[derive(Debug)]
pub struct Reads {
    /// The counter's value (`ChangeCount::reads`) these were read at (or after).
    pub count: i64,
    /// Every daemon, by name.
    pub daemons: Vec<StoredDaemon>,
    /// The settings, or why the stored ones cannot be read.
    settings: Result<Settings, String>,
    /// AppAPI's ExApp names and versions; empty when not connected.
    pub names: OwnerNames,
    /// The stored API token's hash; None before one is set.
    pub api_token_hash: Option<String>,
    /// The Nextcloud link as the overview shows it (its tables move the
    /// same counter).
    pub nextcloud: NextcloudView,
}

impl Reads {
    /// Read after `count` was: what they hold is at least that new.
    async fn load(store: &Store, count: i64) -> Result<Self, StoreError> {
        let settings = match settings::in_force(store).await {
            Ok(settings) => Ok(settings),
            Err(SettingsError::Store(e)) => return Err(e),
            Err(SettingsError::Unreadable(why)) => Err(why),
            Err(other) => Err(other.to_string()),
        };
        // One read of the link gives the overview's line and the names.
        let nextcloud = match crate::nextcloud_link::status(store).await {
            Ok(view) => view,
            Err(LinkError::Store(e)) => return Err(e),
            // It only reads the store; anything else is shown as no link.
            Err(e) => {
                tracing::error!(error = %e, "cannot read the Nextcloud link");
                NextcloudView::disconnected()
            }
        };
        Ok(Self {
            count,
            names: nextcloud
                .exapps
                .iter()
                .map(|e| (e.id.to_string(), (e.name.clone(), e.version.clone())))
                .collect(),
            daemons: store.list_daemons().await?,
            settings,
            api_token_hash: store
                .credential(CredentialKind::ApiToken)
                .await?
                .map(|(hash, _)| hash),
            nextcloud,
        })
    }

    /// The settings in force (`settings::in_force`'s answer).
    pub fn settings(&self) -> Result<Settings, SettingsError> {
        self.settings.clone().map_err(SettingsError::Unreadable)
    }
}

/// What one request reads: the shared `Reads`, and the scans counter as
/// of this request (the inventory cache is checked against it).
#[derive(Debug, Clone)]
pub struct Current {
    reads: Arc<Reads>,
    pub scans_count: i64,
}

impl Current {
    /// These reads, held weakly: a render keyed by them (`web::render_memo`)
    /// is taken again only while they are the very same reads.
    pub fn weak(&self) -> Weak<Reads> {
        Arc::downgrade(&self.reads)
    }
}

impl Deref for Current {
    type Target = Reads;
    fn deref(&self) -> &Reads {
        &self.reads
    }
}

/// The last `Reads`, shared by every request of one process.
#[derive(Debug, Default)]
pub struct ReadCache {
    current: Mutex<Option<Arc<Reads>>>,
    /// One request reads what changed; the others wait, then find it.
    loading: tokio::sync::Mutex<()>,
}

impl ReadCache {
    /// The store's reads as of now: the held ones while the counter stands
    /// still, else read again. A store error is returned, never held.
    pub async fn get(&self, store: &Store) -> Result<Current, StoreError> {
        let count = store.change_count().await?;
        let current = |reads| Current {
            reads,
            scans_count: count.scans,
        };
        if let Some(reads) = self.held(count.reads) {
            return Ok(current(reads));
        }
        let _one = self.loading.lock().await;
        // Another request may have read them while this one waited: read
        // after `count` was, they are at least as new. (Asking the store
        // again here made a burst of requests pass the lock one query at a
        // time.)
        if let Some(reads) = self.newer_than(count.reads) {
            return Ok(current(reads));
        }
        let now = store.change_count().await?;
        let reads = Arc::new(Reads::load(store, now.reads).await?);
        *self.current.lock().unwrap_or_else(|p| p.into_inner()) = Some(reads.clone());
        Ok(Current {
            reads,
            scans_count: now.scans,
        })
    }

    fn newer_than(&self, count: i64) -> Option<Arc<Reads>> {
        self.current
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .filter(|r| r.count >= count)
            .cloned()
    }

    fn held(&self, count: i64) -> Option<Arc<Reads>> {
        self.current
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .filter(|r| r.count == count)
            .cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{NewDaemon, NewDaemonInput};
    use crate::store::ChangeCount;

    /// Two handles on one file: the server's, and another process's (the CLI).
    async fn two_processes() -> (tempfile::TempDir, Store, Store) {
        let dir = tempfile::tempdir().unwrap();
        let server = Store::open(dir.path()).await.unwrap();
        let cli = Store::open(dir.path()).await.unwrap();
        (dir, server, cli)
    }

    async fn add_daemon(store: &Store, name: &str) {
        let daemon = NewDaemon::parse(&NewDaemonInput {
            name: name.into(),
            endpoint: "unix:///run/test.sock".into(),
            ..Default::default()
        })
        .unwrap();
        assert!(store.insert_daemon(&daemon).await.unwrap());
    }

    #[tokio::test]
    async fn the_reads_are_shared_while_the_store_does_not_change() {
        let (_dir, server, _cli) = two_processes().await;
        let cache = ReadCache::default();
        let first = cache.get(&server).await.unwrap();
        let again = cache.get(&server).await.unwrap();
        assert!(Arc::ptr_eq(&first.reads, &again.reads));
    }

    #[tokio::test]
    async fn a_stored_scan_moves_only_the_scans_counter_and_the_reads_stay() {
        let (_dir, server, cli) = two_processes().await;
        add_daemon(&cli, "d").await;
        let cache = ReadCache::default();
        let first = cache.get(&server).await.unwrap();
        let id = first.daemons[0].id;
        cli.save_scan(id, 1, 1, "{}", 1).await.unwrap();
        let again = cache.get(&server).await.unwrap();
        assert!(
            Arc::ptr_eq(&first.reads, &again.reads),
            "a scan made requests read the daemons and settings again"
        );
        assert!(again.scans_count > first.scans_count);
    }

    #[tokio::test]
    async fn a_settings_change_by_another_process_is_read_at_the_next_request() {
        let (_dir, server, cli) = two_processes().await;
        let cache = ReadCache::default();
        let before = cache.get(&server).await.unwrap().settings().unwrap();
        let change = serde_json::json!({"keep_previous": before.keep_previous + 1});
        crate::settings::update(&cli, change.as_object().unwrap(), None)
            .await
            .unwrap();
        let after = cache.get(&server).await.unwrap().settings().unwrap();
        assert_eq!(after.keep_previous, before.keep_previous + 1);
    }

    #[tokio::test]
    async fn a_daemon_added_or_removed_by_another_process_is_read_at_the_next_request() {
        let (_dir, server, cli) = two_processes().await;
        let cache = ReadCache::default();
        assert!(cache.get(&server).await.unwrap().daemons.is_empty());
        add_daemon(&cli, "added-by-the-cli").await;
        let reads = cache.get(&server).await.unwrap();
        assert_eq!(reads.daemons.len(), 1);
        assert_eq!(reads.daemons[0].name.to_string(), "added-by-the-cli");
        let name = crate::domain::DaemonName::parse("added-by-the-cli").unwrap();
        assert!(cli.remove_daemon(&name).await.unwrap());
        assert!(cache.get(&server).await.unwrap().daemons.is_empty());
    }

    #[tokio::test]
    async fn a_new_api_token_is_read_at_the_next_request() {
        let (_dir, server, cli) = two_processes().await;
        let cache = ReadCache::default();
        assert_eq!(cache.get(&server).await.unwrap().api_token_hash, None);
        cli.set_credential(CredentialKind::ApiToken, "first-hash")
            .await
            .unwrap();
        let reads = cache.get(&server).await.unwrap();
        assert_eq!(reads.api_token_hash.as_deref(), Some("first-hash"));
        cli.set_credential(CredentialKind::ApiToken, "second-hash")
            .await
            .unwrap();
        let reads = cache.get(&server).await.unwrap();
        assert_eq!(reads.api_token_hash.as_deref(), Some("second-hash"));
    }

    #[tokio::test]
    async fn unreadable_stored_settings_stay_an_error_and_halt() {
        let (_dir, server, cli) = two_processes().await;
        let cache = ReadCache::default();
        // By hand, as a damaged file would have them.
        sqlx::query(
            "INSERT INTO settings (id, settings, interval_set_at, updated_at) VALUES (1, 'not json', 0, 0)
             ON CONFLICT (id) DO UPDATE SET settings = 'not json'",
        )
            .execute(cli.pool())
            .await
            .unwrap();
        let reads = cache.get(&server).await.unwrap();
        assert!(matches!(
            reads.settings(),
            Err(SettingsError::Unreadable(_))
        ));
    }

    #[tokio::test]
    async fn every_counted_table_moves_the_counter() {
        let (_dir, store, _cli) = two_processes().await;
        let mut last = store.change_count().await.unwrap();
        let mut moved = |now: ChangeCount, what: &str| {
            assert!(
                now.reads + now.scans > last.reads + last.scans,
                "{what} did not move a change counter"
            );
            last = now;
        };
        add_daemon(&store, "d").await;
        moved(store.change_count().await.unwrap(), "adding a daemon");
        let id = store.list_daemons().await.unwrap()[0].id;
        store.save_scan(id, 1, 1, "{}", 1).await.unwrap();
        moved(store.change_count().await.unwrap(), "a stored scan");
        store.save_scan(id, 2, 1, "{}", 2).await.unwrap();
        moved(
            store.change_count().await.unwrap(),
            "a rescan of the same inventory",
        );
        let change = serde_json::json!({"min_age_hours": 3});
        crate::settings::update(&store, change.as_object().unwrap(), None)
            .await
            .unwrap();
        moved(store.change_count().await.unwrap(), "a settings change");
        store
            .set_credential(CredentialKind::ApiToken, "h")
            .await
            .unwrap();
        moved(store.change_count().await.unwrap(), "a new token");
        let login = crate::domain::NextcloudLogin {
            url: crate::domain::NextcloudUrl::parse("https://cloud.example.com").unwrap(),
            user: crate::domain::NextcloudUser::parse("admin").unwrap(),
            password: crate::domain::AppPassword::parse(
                "aaaaa-bbbbb-ccccc-ddddd-eeeee-aaaaa-bbbbb-ccccc-ddddd-eeeee-aaaaa-bbbbb",
            )
            .unwrap(),
        };
        store.connect_nextcloud(&login, "31", "4").await.unwrap();
        moved(store.change_count().await.unwrap(), "connecting Nextcloud");
        assert!(store
            .decide_nextcloud_proposal("docker_local", None)
            .await
            .unwrap());
        moved(
            store.change_count().await.unwrap(),
            "refusing a proposed daemon",
        );
        assert!(store
            .forget_nextcloud_decision("docker_local")
            .await
            .unwrap());
        moved(store.change_count().await.unwrap(), "taking an answer back");
        assert!(store.disconnect_nextcloud().await.unwrap());
        moved(
            store.change_count().await.unwrap(),
            "disconnecting Nextcloud",
        );
        let name = crate::domain::DaemonName::parse("d").unwrap();
        assert!(store.remove_daemon(&name).await.unwrap());
        moved(store.change_count().await.unwrap(), "removing a daemon");
    }
}
