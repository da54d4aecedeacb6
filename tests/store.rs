//! The SQLite file: created safely, refused when it is not ours, shared by
//! the server and the CLI without "database is locked".

mod common;

use std::os::unix::fs::{MetadataExt, PermissionsExt};

use common::*;
use serde_json::json;

fn db_file(data_dir: &std::path::Path) -> std::path::PathBuf {
    data_dir.join("exapp-janitor.db")
}

#[test]
fn the_first_command_creates_a_private_database_in_wal_mode() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("new/data");
    let out = run(cli(&data).args(["daemon", "list"]));
    assert!(out.status.success(), "{}", stderr(&out));
    let db = db_file(&data);
    let mode = std::fs::metadata(&db).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "database mode {mode:o}");
    let header = std::fs::read(&db).unwrap();
    assert_eq!(&header[..16], b"SQLite format 3\0");
    // Bytes 18 and 19 are 2 in a WAL-mode database.
    assert_eq!((header[18], header[19]), (2, 2));
}

#[test]
fn a_data_dir_that_cannot_be_created_gives_one_sentence_and_exit_1() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a-file");
    std::fs::write(&file, "x").unwrap();
    let out = run(cli(&file.join("data")).args(["daemon", "list"]));
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("cannot be written"), "{err}");
}

#[test]
fn a_file_that_is_not_sqlite_is_refused_and_left_as_it_was() {
    let dir = tempfile::tempdir().unwrap();
    let garbage = b"this is somebody's notes, not a database\n".repeat(100);
    std::fs::write(db_file(dir.path()), &garbage).unwrap();
    let out = run(cli(dir.path()).args(["daemon", "add", "x", "unix:///x.sock"]));
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("is not an SQLite database"),
        "{}",
        stderr(&out)
    );
    assert!(
        std::fs::read(db_file(dir.path())).unwrap() == garbage,
        "the file changed"
    );
}

#[test]
fn a_database_of_another_user_is_refused_naming_its_owner() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(cli(dir.path()).args(["daemon", "list"]));
    assert!(out.status.success(), "{}", stderr(&out));
    let db = db_file(dir.path());
    // Hand the database (and any journal files the first command left) to
    // the service's user; the suite runs as root, so it may.
    for file in std::fs::read_dir(dir.path()).unwrap() {
        std::os::unix::fs::chown(file.unwrap().path(), Some(65534), None)
            .expect("chown needs root");
    }
    let before = std::fs::read(&db).unwrap();

    let out = run(cli(dir.path()).args(["settings", "set", "keep_previous=3"]));

    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(
        err.contains("belongs to nobody") && err.contains("sudo -u nobody"),
        "{err}"
    );
    assert_eq!(std::fs::read(&db).unwrap(), before, "the file changed");
    for file in std::fs::read_dir(dir.path()).unwrap() {
        let file = file.unwrap();
        assert_eq!(
            file.metadata().unwrap().uid(),
            65534,
            "{:?} has another owner now",
            file.path()
        );
    }
}

#[tokio::test]
async fn a_database_migrated_by_a_newer_version_is_refused_and_left_as_it_was() {
    let dir = tempfile::tempdir().unwrap();
    assert!(
        run(cli(dir.path()).args(["daemon", "add", "x", "unix:///x.sock"]))
            .status
            .success()
    );
    {
        let store = exapp_janitor::store::Store::open(dir.path()).await.unwrap();
        sqlx::query(
            "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time)
             VALUES (99991231000000, 'from the future', 1, x'00', 0)",
        )
        .execute(store.pool())
        .await
        .unwrap();
        // Fold the WAL into the main file now, so its bytes are final.
        sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
            .execute(store.pool())
            .await
            .unwrap();
        store.close().await;
    }
    let before = std::fs::read(db_file(dir.path())).unwrap();
    let out = run(cli(dir.path()).args(["daemon", "add", "y", "unix:///y.sock"]));
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("migrated by a newer exapp-janitor"),
        "{}",
        stderr(&out)
    );
    assert!(
        std::fs::read(db_file(dir.path())).unwrap() == before,
        "the database file changed"
    );
}

#[tokio::test]
async fn server_and_cli_write_the_same_file_at_once_without_lock_errors() {
    let app = spawn_app().await;
    let data_dir = app.data_dir.clone();
    let cli_writes = std::thread::spawn(move || {
        (0..15)
            .map(|i| {
                run(cli(&data_dir).args([
                    "daemon",
                    "add",
                    &format!("cli{i}"),
                    "unix:///nowhere.sock",
                ]))
            })
            .collect::<Vec<_>>()
    });
    for i in 0..15 {
        let body = json!({ "name": format!("api{i}"), "endpoint": "unix:///nowhere.sock" });
        let (status, answer) = app.post_json("/api/v1/daemons", &body).await;
        assert_eq!(status, 201, "{answer}");
    }
    for out in cli_writes.join().unwrap() {
        assert!(out.status.success(), "{}", stderr(&out));
        assert!(!stderr(&out).contains("locked"));
    }
    assert_eq!(app.daemon_names().await.len(), 30);
}
