//! The `daemons` table: configured endpoints and their last contact.

use std::path::PathBuf;

use time::OffsetDateTime;

use super::{Store, StoreError};
use crate::domain::{
    AppId, DaemonName, Endpoint, HarpAccess, HarpKey, NewDaemon, OneLine, TlsFiles, ERROR_MAX_CHARS,
};

/// A configured daemon with what the last contact attempt learned.
#[derive(Debug, Clone)]
pub struct StoredDaemon {
    /// The row's key; what other tables refer to.
    pub id: i64,
    pub name: DaemonName,
    pub endpoint: Endpoint,
    /// For a HaRP daemon: its shared key and the ExApps to look for.
    pub harp: Option<HarpAccess>,
    pub created_at: OffsetDateTime,
    pub contact: DaemonContact,
}

/// The outcome of contacting a daemon, as remembered between contacts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DaemonContact {
    pub checked_at: Option<OffsetDateTime>,
    pub reachable: bool,
    pub engine_version: Option<String>,
    pub api_version: Option<String>,
    pub last_error: Option<String>,
    pub last_error_at: Option<OffsetDateTime>,
}

struct Row {
    id: i64,
    name: String,
    endpoint: String,
    tls_ca: Option<String>,
    tls_cert: Option<String>,
    tls_key: Option<String>,
    created_at: i64,
    checked_at: Option<i64>,
    reachable: i64,
    engine_version: Option<String>,
    api_version: Option<String>,
    last_error: Option<String>,
    last_error_at: Option<i64>,
    harp_key: Option<String>,
    harp_docker_port: Option<i64>,
    exapps: String,
}

fn timestamp(secs: i64) -> Result<OffsetDateTime, StoreError> {
    OffsetDateTime::from_unix_timestamp(secs).map_err(|e| StoreError::Corrupt(e.to_string()))
}

#[cfg(test)]
impl StoredDaemon {
    /// A daemon named `name` on a socket nobody listens on, never contacted:
    /// for unit tests of what is built from daemons.
    pub fn for_tests(id: i64, name: &str) -> Self {
        Self {
            id,
            name: DaemonName::parse(name).unwrap(),
            endpoint: Endpoint::parse("unix:///run/test.sock", None).unwrap(),
            harp: None,
            created_at: OffsetDateTime::UNIX_EPOCH,
            contact: DaemonContact::default(),
        }
    }
}

impl TryFrom<Row> for StoredDaemon {
    type Error = StoreError;

    fn try_from(row: Row) -> Result<Self, StoreError> {
        let corrupt =
            |what: &str, why: String| StoreError::Corrupt(format!("daemon {what}: {why}"));
        let name = DaemonName::parse(&row.name).map_err(|e| corrupt(&row.name, e))?;
        let harp_ca = row.tls_ca.clone();
        let tls = match (row.tls_ca, row.tls_cert, row.tls_key) {
            (Some(ca), Some(cert), Some(key)) => Some(TlsFiles::from_stored(
                PathBuf::from(ca),
                PathBuf::from(cert),
                PathBuf::from(key),
            )),
            _ => None,
        };
        let mut endpoint =
            Endpoint::parse(&row.endpoint, tls).map_err(|e| corrupt(&row.name, e))?;
        let harp = match &mut endpoint {
            Endpoint::Harp(address) => {
                let port = row
                    .harp_docker_port
                    .and_then(|p| u16::try_from(p).ok())
                    .ok_or_else(|| corrupt(&row.name, "no docker-engine-port".into()))?;
                address.docker_port = port;
                // A harp+https:// daemon keeps its CA (alone) in tls_ca.
                address.tls_ca = harp_ca.map(PathBuf::from);
                let key = HarpKey::parse(row.harp_key.as_deref().unwrap_or_default())
                    .map_err(|e| corrupt(&row.name, e))?;
                let exapps: Vec<AppId> = serde_json::from_str(&row.exapps)
                    .map_err(|e| corrupt(&row.name, e.to_string()))?;
                Some(HarpAccess::new(key, exapps))
            }
            _ => None,
        };
        Ok(Self {
            id: row.id,
            name,
            endpoint,
            harp,
            created_at: timestamp(row.created_at)?,
            contact: DaemonContact {
                checked_at: row.checked_at.map(timestamp).transpose()?,
                reachable: row.reachable != 0,
                engine_version: row.engine_version,
                api_version: row.api_version,
                // One line even if it was stored before errors were made so.
                last_error: row.last_error.map(|e| OneLine::error(&e).into_string()),
                last_error_at: row.last_error_at.map(timestamp).transpose()?,
            },
        })
    }
}

impl Store {
    /// Stores a new daemon; false when the name is already taken (nothing changed).
    pub async fn insert_daemon(&self, daemon: &NewDaemon) -> Result<bool, StoreError> {
        let name = daemon.name.as_str();
        let endpoint = daemon.endpoint.to_string();
        let tls = daemon.endpoint.tls_files();
        let path = |p: &PathBuf| p.to_string_lossy().into_owned();
        let (ca, cert, key) = (
            tls.map(|t| path(&t.ca)).or_else(|| {
                let harp_ca = daemon.endpoint.harp().and_then(|h| h.tls_ca.as_ref());
                harp_ca.map(path)
            }),
            tls.map(|t| path(&t.cert)),
            tls.map(|t| path(&t.key)),
        );
        let harp_key = daemon.harp.as_ref().map(|h| h.key.expose());
        let docker_port = daemon.endpoint.harp().map(|h| i64::from(h.docker_port));
        let exapps = exapps_json(daemon.harp.as_ref());
        let now = self.clock.now_unix();
        let done = sqlx::query!(
            "INSERT INTO daemons (name, endpoint, tls_ca, tls_cert, tls_key, harp_key, harp_docker_port, exapps, created_at)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (name) DO NOTHING",
            name,
            endpoint,
            ca,
            cert,
            key,
            harp_key,
            docker_port,
            exapps,
            now
        )
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    pub async fn list_daemons(&self) -> Result<Vec<StoredDaemon>, StoreError> {
        // The error is cut in SQL too: a row written before errors were
        // bounded may hold hundreds of MB, read with every page otherwise.
        let max = ERROR_MAX_CHARS as i64;
        sqlx::query_as!(
            Row,
            "SELECT id AS \"id!\", name, endpoint, tls_ca, tls_cert, tls_key, created_at, checked_at, reachable,
                    engine_version, api_version, substr(last_error, 1, ?) AS \"last_error?: String\", last_error_at,
                    harp_key, harp_docker_port, exapps
             FROM daemons ORDER BY name",
            max
        )
        .fetch_all(self.pool())
        .await?
        .into_iter()
        .map(StoredDaemon::try_from)
        .collect()
    }

    pub async fn get_daemon(&self, name: &DaemonName) -> Result<Option<StoredDaemon>, StoreError> {
        let (name, max) = (name.as_str(), ERROR_MAX_CHARS as i64);
        sqlx::query_as!(
            Row,
            "SELECT id AS \"id!\", name, endpoint, tls_ca, tls_cert, tls_key, created_at, checked_at, reachable,
                    engine_version, api_version, substr(last_error, 1, ?) AS \"last_error?: String\", last_error_at,
                    harp_key, harp_docker_port, exapps
             FROM daemons WHERE name = ?",
            max,
            name
        )
        .fetch_optional(self.pool())
        .await?
        .map(StoredDaemon::try_from)
        .transpose()
    }

    /// Sets the ExApps a HaRP daemon is searched for; false when there is
    /// no HaRP daemon of that name.
    pub async fn set_daemon_exapps(
        &self,
        name: &DaemonName,
        exapps: &[AppId],
    ) -> Result<bool, StoreError> {
        let name = name.as_str();
        let exapps = serde_json::to_string(exapps).expect("app IDs serialise");
        let done = sqlx::query!(
            "UPDATE daemons SET exapps = ? WHERE name = ? AND harp_key IS NOT NULL",
            exapps,
            name
        )
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Removes a daemon; false when there was none of that name.
    pub async fn remove_daemon(&self, name: &DaemonName) -> Result<bool, StoreError> {
        let name = name.as_str();
        let done = sqlx::query!("DELETE FROM daemons WHERE name = ?", name)
            .execute(self.pool())
            .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Records a successful contact. The last error is kept: the admin still
    /// sees what went wrong last and when.
    pub async fn record_contact_ok(
        &self,
        name: &DaemonName,
        engine_version: &str,
        api_version: &str,
    ) -> Result<(), StoreError> {
        let (name, now) = (name.as_str(), self.clock.now_unix());
        sqlx::query!(
            "UPDATE daemons SET checked_at = ?, reachable = 1, engine_version = ?, api_version = ?
             WHERE name = ?",
            now,
            engine_version,
            api_version,
            name
        )
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Records a failed contact. The error is stored as one line of at most
    /// [`ERROR_MAX_CHARS`]: it may quote the daemon, and it is sent with
    /// every page and listing that shows the daemon.
    pub async fn record_contact_error(
        &self,
        name: &DaemonName,
        error: &str,
    ) -> Result<(), StoreError> {
        let error = OneLine::error(error);
        let (name, now, error) = (name.as_str(), self.clock.now_unix(), error.as_str());
        sqlx::query!(
            "UPDATE daemons SET checked_at = ?, reachable = 0, last_error = ?, last_error_at = ?
             WHERE name = ?",
            now,
            error,
            now,
            name
        )
        .execute(self.pool())
        .await?;
        Ok(())
    }
}

fn exapps_json(harp: Option<&HarpAccess>) -> String {
    serde_json::to_string(&harp.map(|h| h.exapps.as_slice()).unwrap_or_default())
        .expect("app IDs serialise")
}
