//! Least privilege on disk: the SQLite store's directory is its owner's alone (0700) and its
//! files (database, WAL, shared memory, journal) are 0600, whatever the umask, when they are made
//! and on every open.
#![cfg(unix)]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use gatehouse_store::{SQLITE_FILE, SqlStore};

/// Set in the child process this file's umask test runs itself in.
const CHILD_DIR: &str = "GATEHOUSE_FILE_MODES_CHILD_DIR";

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o7777
}

/// Opens the store in `dir`, writes through it (so the WAL and shared-memory files exist) and
/// checks every mode while it is open.
async fn open_write_and_check(dir: &Path) {
    let store = SqlStore::open_sqlite_dir(dir).await.unwrap();
    sqlx::query("CREATE TABLE IF NOT EXISTS file_mode_probe (x INTEGER)")
        .execute(store.pool())
        .await
        .unwrap();
    sqlx::query("INSERT INTO file_mode_probe (x) VALUES (1)")
        .execute(store.pool())
        .await
        .unwrap();
    assert_private(dir, true);
    store.close().await;
}

/// `open`: the store is open, so its WAL must be there (SQLite removes it on the last close).
fn assert_private(dir: &Path, open: bool) {
    assert_eq!(mode(dir), 0o700, "{}", dir.display());
    let database = dir.join(SQLITE_FILE);
    assert_eq!(mode(&database), 0o600, "{}", database.display());
    let mut side_files = 0;
    for suffix in ["-wal", "-shm", "-journal"] {
        let path = dir.join(format!("{SQLITE_FILE}{suffix}"));
        if path.exists() {
            side_files += 1;
            assert_eq!(mode(&path), 0o600, "{}", path.display());
        }
    }
    assert!(
        !open || side_files >= 1,
        "the WAL was expected beside the database"
    );
}

#[tokio::test]
async fn existing_open_files_are_made_private_on_open() {
    let parent = tempfile::tempdir().unwrap();
    let dir = parent.path().join("data");
    // As an earlier version (or a copy) left them: world-readable.
    std::fs::create_dir(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let store = SqlStore::open_sqlite_dir(&dir).await.unwrap();
    sqlx::query("CREATE TABLE file_mode_probe (x INTEGER)")
        .execute(store.pool())
        .await
        .unwrap();
    store.close().await;
    for name in ["", "-wal", "-shm", "-journal"] {
        let path = dir.join(format!("{SQLITE_FILE}{name}"));
        if !path.exists() {
            std::fs::write(&path, b"").unwrap();
        }
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    }
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();

    open_write_and_check(&dir).await;
    for name in ["", "-wal", "-shm", "-journal"] {
        let path = dir.join(format!("{SQLITE_FILE}{name}"));
        if path.exists() {
            assert_eq!(mode(&path), 0o600, "{}", path.display());
        }
    }
    // The data survived being tightened.
    let store = SqlStore::open_sqlite_dir(&dir).await.unwrap();
    let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM file_mode_probe")
        .fetch_one(store.pool())
        .await
        .unwrap();
    assert_eq!(count, 1);
    store.close().await;
}

/// The umask belongs to the whole process, so the store is opened in a child process (this test
/// binary again, run under `umask 000`), not beside the other tests.
#[tokio::test]
async fn a_permissive_umask_still_makes_private_files() {
    if let Ok(dir) = std::env::var(CHILD_DIR) {
        open_write_and_check(Path::new(&dir)).await;
        return;
    }
    let parent = tempfile::tempdir().unwrap();
    let dir = parent.path().join("nested").join("data");
    let status = Command::new("sh")
        .arg("-c")
        .arg(r#"umask 000 && exec "$0" --exact "$1" --nocapture --test-threads 1"#)
        .arg(std::env::current_exe().unwrap())
        .arg("a_permissive_umask_still_makes_private_files")
        .env(CHILD_DIR, &dir)
        .status()
        .unwrap();
    assert!(status.success(), "the child under umask 000 failed");
    assert_private(&dir, false);
}
