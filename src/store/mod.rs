//! The SQLite file in the data dir: opening it safely, migrations, and one
//! module per table group. Imports only `domain` and `clock` (every row
//! timestamp comes from the store's clock).

mod auth;
mod changes;
pub use changes::ChangeCount;
mod cleanup;
mod daemons;
mod inventory;
mod meta;
mod nextcloud;
mod settings;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::SqlitePool;

use crate::clock::Clock;

pub use auth::{CredentialKind, StoredSession};
pub use cleanup::{JobEnd, JobRow, NewJob, NewRun, RunRow};
pub use daemons::{DaemonContact, StoredDaemon};
pub use inventory::{inventory_digest, CurrentRow, HistoryRows, SameScanStored, ScanRow};
pub use nextcloud::{StoredDecision, StoredNextcloud};
pub use settings::SettingsRow;

pub const DB_FILE: &str = "exapp-janitor.db";

/// How long a statement waits for another process (server and CLI share the
/// file) before SQLite reports "database is locked".
const BUSY_TIMEOUT: Duration = Duration::from_secs(30);

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("the data directory {path} cannot be written: {source}")]
    DataDirNotWritable {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is not an SQLite database; move it away or choose another --data-dir")]
    NotSqlite { path: PathBuf },
    #[error(
        "{path} belongs to {owner}, not to the user running this command; run it as that user \
         (sudo -u {owner} exapp-janitor …) so that the database and its journal files keep one owner"
    )]
    OtherOwner { path: PathBuf, owner: String },
    #[error(
        "{path} was migrated by a newer exapp-janitor (schema {found}, this version knows up to {known}); \
         run the newer version or restore a backup"
    )]
    NewerSchema {
        path: PathBuf,
        found: i64,
        known: i64,
    },
    #[error("cannot open the database {path}: {source}")]
    Open {
        path: PathBuf,
        #[source]
        source: sqlx::Error,
    },
    #[error("cannot update the database schema: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("database error: {0}")]
    Query(#[from] sqlx::Error),
    #[error("the database holds an invalid value: {0}")]
    Corrupt(String),
}

#[derive(Clone, Debug)]
pub struct Store {
    pool: SqlitePool,
    /// The process's one clock: row timestamps here, and (through
    /// `Janitor::clock`) the schedule, minimum ages, leases and settle times.
    clock: Clock,
}

impl Store {
    /// Opens (creating when missing) the database in `data_dir` and brings its
    /// schema up to date. Refuses, leaving the file as it was, when the
    /// directory is not writable, the file is not SQLite, or a newer version
    /// migrated it.
    pub async fn open(data_dir: &Path) -> Result<Self, StoreError> {
        let not_writable = |source| StoreError::DataDirNotWritable {
            path: data_dir.to_path_buf(),
            source,
        };
        create_private_dir(data_dir).map_err(not_writable)?;
        probe_writable(data_dir).map_err(not_writable)?;

        let path = data_dir.join(DB_FILE);
        create_private_or_check_header(&path)?;

        let options = SqliteConnectOptions::new()
            .filename(&path)
            .create_if_missing(false)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(BUSY_TIMEOUT)
            .foreign_keys(true);
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            // A file has no connection to lose: a ping before each query
            // would only add a round trip to SQLite's thread (two thread
            // switches per request, each a wait on a busy machine).
            .test_before_acquire(false)
            .connect_with(options)
            .await
            .map_err(|source| StoreError::Open {
                path: path.clone(),
                source,
            })?;

        let ready = match refuse_newer_schema(&pool, &path).await {
            Ok(()) => MIGRATOR.run(&pool).await.map_err(StoreError::from),
            Err(e) => Err(e),
        };
        if let Err(e) = ready {
            // Close cleanly so SQLite folds and removes its WAL file: the
            // database is left exactly as it was found.
            pool.close().await;
            return Err(e);
        }
        restrict_database_files(&path);
        // Only once the command can go on: a refusal stays one sentence.
        warn_if_open_to_others(data_dir);
        Ok(Self {
            pool,
            clock: Clock::system(),
        })
    }

    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    pub fn clock(&self) -> &Clock {
        &self.clock
    }

    /// Runs this store (and whoever reads time from it) on another clock:
    /// tests, before the store is handed out.
    pub fn set_clock(&mut self, clock: Clock) {
        self.clock = clock;
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// A new data dir (and any parent made for it) is its owner's alone: the
/// database names the daemons and holds the password hash.
fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}

/// An existing dir is left as the admin made it (it may be shared on
/// purpose), but said out loud when others may look inside.
fn warn_if_open_to_others(dir: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let Ok(mode) = std::fs::metadata(dir).map(|m| m.permissions().mode() & 0o777) else {
        return;
    };
    if mode & 0o077 != 0 {
        tracing::warn!(
            "the data dir {} is readable by other users (mode {mode:04o}); `chmod 700 {}` keeps \
             the database and its journals to the owner",
            dir.display(),
            dir.display()
        );
    }
}

/// Sets 0600 on the database and its `-wal`/`-shm` journals at every start:
/// a file made by an older version, a restore or a copy may be readable by
/// everyone, and the journals hold the same data as the database.
fn restrict_database_files(db: &Path) {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let mut files = vec![db.to_path_buf()];
    for suffix in ["-wal", "-shm"] {
        let mut name = db.as_os_str().to_owned();
        name.push(suffix);
        files.push(PathBuf::from(name));
    }
    // SAFETY: geteuid cannot fail and touches no memory.
    let me = unsafe { libc::geteuid() };
    for file in files {
        let Ok(meta) = std::fs::metadata(&file) else {
            continue; // no journal right now
        };
        if meta.uid() != me || meta.permissions().mode() & 0o777 == 0o600 {
            continue;
        }
        if let Err(e) = std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)) {
            tracing::warn!(file = %file.display(), error = %e, "cannot make the file private (mode 0600)");
        }
    }
}

fn probe_writable(dir: &Path) -> std::io::Result<()> {
    let probe = dir.join(format!(".write-test-{}", std::process::id()));
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&probe)?;
    std::fs::remove_file(&probe)
}

/// A new database file is created readable by its owner only (it names the
/// daemons and, later, holds secrets). An existing one must start with
/// SQLite's magic header; an empty file is a valid empty database.
fn create_private_or_check_header(path: &Path) -> Result<(), StoreError> {
    use std::os::unix::fs::OpenOptionsExt;
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
    {
        Ok(_) => return Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(source) => {
            return Err(StoreError::DataDirNotWritable {
                path: path.to_path_buf(),
                source,
            })
        }
    }
    refuse_other_owner(path)?;
    let mut header = Vec::with_capacity(16);
    std::fs::File::open(path)
        .and_then(|f| f.take(16).read_to_end(&mut header))
        .map_err(|source| StoreError::DataDirNotWritable {
            path: path.to_path_buf(),
            source,
        })?;
    if header.is_empty() || header == b"SQLite format 3\0" {
        Ok(())
    } else {
        Err(StoreError::NotSqlite {
            path: path.to_path_buf(),
        })
    }
}

/// The server runs as a service user; an admin running the CLI as root
/// would open the file fine but leave root-owned `-wal`/`-shm` files behind,
/// and the service could no longer write its own database. Another user
/// could not open the file at all. Either way: say whose it is.
fn refuse_other_owner(path: &Path) -> Result<(), StoreError> {
    use std::os::unix::fs::MetadataExt;
    let Ok(owner) = std::fs::metadata(path).map(|m| m.uid()) else {
        return Ok(()); // reading it fails next, with its own message
    };
    // SAFETY: geteuid cannot fail and touches no memory.
    if owner == unsafe { libc::geteuid() } {
        return Ok(());
    }
    Err(StoreError::OtherOwner {
        path: path.to_path_buf(),
        owner: user_name(owner).unwrap_or_else(|| format!("'#{owner}'")),
    })
}

/// The login name of `uid`, from the password database.
fn user_name(uid: u32) -> Option<String> {
    let mut buf = vec![0 as libc::c_char; 4096];
    // SAFETY: an all-zero passwd is a valid value for getpwuid_r to fill.
    let mut entry: libc::passwd = unsafe { std::mem::zeroed() };
    let mut found: *mut libc::passwd = std::ptr::null_mut();
    // SAFETY: every pointer is valid for the call and `buf` outlives `entry`'s
    // use below; getpwuid_r is the thread-safe variant.
    let rc = unsafe { libc::getpwuid_r(uid, &mut entry, buf.as_mut_ptr(), buf.len(), &mut found) };
    if rc != 0 || found.is_null() {
        return None;
    }
    // SAFETY: on success pw_name points to a NUL-terminated string in `buf`.
    let name = unsafe { std::ffi::CStr::from_ptr(entry.pw_name) };
    name.to_str().ok().map(str::to_owned)
}

async fn refuse_newer_schema(pool: &SqlitePool, path: &Path) -> Result<(), StoreError> {
    let has_table: bool = sqlx::query_scalar(
        "SELECT EXISTS(SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = '_sqlx_migrations')",
    )
    .fetch_one(pool)
    .await?;
    if !has_table {
        return Ok(());
    }
    let found: Option<i64> = sqlx::query_scalar("SELECT MAX(version) FROM _sqlx_migrations")
        .fetch_one(pool)
        .await?;
    let known = MIGRATOR.iter().map(|m| m.version).max().unwrap_or(0);
    match found {
        Some(found) if found > known => Err(StoreError::NewerSchema {
            path: path.to_path_buf(),
            found,
            known,
        }),
        _ => Ok(()),
    }
}

/// A store in a directory of its own holding one daemon, for unit tests:
/// the directory, the store and the daemon's ID.
#[cfg(test)]
pub(crate) async fn with_one_daemon() -> (tempfile::TempDir, Store, i64) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).await.unwrap();
    let id = add_daemon(&store, "local").await;
    (dir, store, id)
}

/// Adds a daemon of this name (on a socket named after it), for unit
/// tests; its ID.
#[cfg(test)]
pub(crate) async fn add_daemon(store: &Store, name: &str) -> i64 {
    use crate::domain::{NewDaemon, NewDaemonInput};
    let daemon = NewDaemon::parse(&NewDaemonInput {
        name: name.into(),
        endpoint: format!("unix:///run/{name}.sock"),
        ..Default::default()
    })
    .unwrap();
    assert!(store.insert_daemon(&daemon).await.unwrap());
    let daemons = store.list_daemons().await.unwrap();
    daemons.iter().find(|d| d.name.as_str() == name).unwrap().id
}
