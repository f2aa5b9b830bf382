//! Persistence for Gatehouse: the [`Store`] trait of `gatehouse-core` on sqlx, over embedded SQLite
//! (the default, WAL mode, no set-up) or PostgreSQL (several nodes sharing one database).
//!
//! One implementation serves both backends through sqlx's `Any` driver: the SQL is written once in
//! the dialect they share (`$N` parameters, `RETURNING`, `ON CONFLICT`, `string_agg`), with integer
//! times and space-separated lists of scopes and grant types. Who holds a role is a join table
//! (`user_roles`, `client_roles`) with foreign keys, so a role cannot vanish while held.
//!
//! The code is split by aggregate: `clients`, `users`, `roles`, `sessions` (refresh families and
//! tokens, revoked access tokens), `browser` (browser sessions), `codes` (authorization codes),
//! `consents`, `keys`, `audit`, `changes` (the change log) and `purge`.
//! `writes` applies [`Store::commit`]'s writes in one transaction, with `cutoffs` for those that
//! move a not-before time; `rows` turns rows into domain records. This file holds the
//! connection, the migrations and the trait, whose methods only delegate.
//!
//! Migrations: one history, in `migrations/`, written once for both backends. The few statements
//! that cannot be shared (the change log's counter) sit in `migrations/sqlite/` and
//! `migrations/postgres/`, numbered into the same sequence; each backend runs the shared files and
//! its own, merged in version order. A database whose recorded history differs from this one
//! (one made before the history was consolidated, say) is refused with an error saying so, and
//! left as it was.
//!
//! This crate must not know about HTTP or OAuth rules; it stores and loads what the core hands it.

mod audit;
mod browser;
mod changes;
mod clients;
mod codes;
mod consents;
mod cutoffs;
mod inspect;
mod keys;
mod purge;
mod roles;
mod rows;
mod sessions;
mod users;
mod writes;

use std::path::Path;
use std::time::Duration;

use async_trait::async_trait;
use gatehouse_core::{
    AuditEvent, AuthorizationCode, BrowserSession, Change, Client, Committed, Consent, EventFilter,
    FamilyFilter, RefreshFamily, RefreshTokenRecord, Role, RotateOutcome, Store, StoreError,
    StoredKey, User, Write,
};
use sqlx::any::{AnyPoolOptions, install_default_drivers};
use sqlx::migrate::{MigrateError, Migrator};
use sqlx::{AnyPool, Executor};

pub use inspect::MigrationStatus;

/// Which database a [`SqlStore`] talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A user or a client: who holds roles, gets cut off, and owns sessions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Subject {
    User,
    Client,
}

/// The sqlx-backed store.
#[derive(Clone)]
pub struct SqlStore {
    pool: AnyPool,
    backend: Backend,
    changed: std::sync::Arc<changes::ChangeSignal>,
}

impl std::fmt::Debug for SqlStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqlStore")
            .field("backend", &self.backend)
            .finish_non_exhaustive()
    }
}

impl SqlStore {
    /// Opens (creating if needed) the SQLite database `gatehouse.db` in `dir`, in WAL mode.
    ///
    /// The database holds password hashes and sealed keys: the directory is made (or put back to)
    /// mode 0700 and the database's files 0600, whatever the umask, on creation and on every
    /// open. SQLite gives the files it makes beside the database (`-wal`, `-shm`, `-journal`)
    /// the database's own mode, so creating it 0600 first keeps them private too.
    pub async fn open_sqlite_dir(dir: &Path) -> Result<Self, StoreError> {
        private::make_dir(dir)?;
        let path = dir.join(SQLITE_FILE);
        private::make_file(&path)?;
        private::tighten(dir, &path)?;
        let store = Self::connect(&format!("sqlite://{}?mode=rwc", path.display())).await?;
        // The WAL and shared-memory files appear on connecting: check them as well.
        private::tighten(dir, &path)?;
        Ok(store)
    }

    /// A private SQLite database in memory, gone when the store closes: for tests that want the
    /// real store without files. Its connections share one cache, so writers do not wait on each
    /// other as they do on a file: keep it to one writer at a time.
    pub async fn open_in_memory() -> Result<Self, StoreError> {
        let name = gatehouse_core::secret::random_string(12)?.replace(['-', '_'], "x");
        Self::connect(&format!(
            "sqlite:file:gatehouse-{name}?mode=memory&cache=shared"
        ))
        .await
    }

    /// Connects to `sqlite://…` or `postgres://…` and applies the migrations.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        let store = Self::connect_unmigrated(url).await?;
        if store.backend == Backend::Sqlite {
            store
                .pool
                .execute("PRAGMA journal_mode = WAL")
                .await
                .map_err(backend_error)?;
        }
        store.migrate().await?;
        Ok(store)
    }

    /// Connects to `sqlite://…` or `postgres://…` and changes nothing: no migration, no journal
    /// mode. For looking at a database as it is (`gatehouse doctor`, with
    /// [`SqlStore::migration_status`]); a node uses [`SqlStore::connect`].
    pub async fn connect_unmigrated(url: &str) -> Result<Self, StoreError> {
        install_default_drivers();
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Backend::Postgres
        } else {
            return Err(StoreError::Unavailable(
                "the database URL must start with sqlite: or postgres:".into(),
            ));
        };
        let mut options = AnyPoolOptions::new().acquire_timeout(Duration::from_secs(10));
        if url.contains("mode=memory") {
            // An in-memory database lives as long as one of its connections: never close them.
            options = options
                .min_connections(1)
                .idle_timeout(None)
                .max_lifetime(None);
        }
        let pool = match backend {
            Backend::Sqlite => {
                options
                    // SQLite writes one at a time; a few connections serve the concurrent readers.
                    .max_connections(8)
                    // Per connection. SQLite enforces foreign keys (role holders, sessions) only
                    // where the pragma is on: sqlx's default, said here as the schema needs it.
                    .after_connect(|conn, _meta| {
                        Box::pin(async move {
                            conn.execute(
                                "PRAGMA busy_timeout = 10000; PRAGMA foreign_keys = ON; \
                                 PRAGMA synchronous = NORMAL;",
                            )
                            .await
                            .map(|_| ())
                        })
                    })
                    .connect(url)
                    .await
            }
            Backend::Postgres => options.max_connections(16).connect(url).await,
        }
        .map_err(|e| StoreError::Unavailable(redact(&e.to_string(), url)))?;
        let listen_url = (backend == Backend::Postgres).then(|| url.to_owned());
        Ok(Self {
            pool,
            backend,
            changed: changes::ChangeSignal::new(listen_url),
        })
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    async fn migrate(&self) -> Result<(), StoreError> {
        migrator(self.backend)
            .run(&self.pool)
            .await
            .map_err(|e| match e {
                // sqlx compares the recorded history before it applies anything new, so such a
                // database is left as it was.
                MigrateError::VersionMissing(_) | MigrateError::VersionMismatch(_) => {
                    StoreError::Backend(format!(
                        "this database's schema comes from a different migration history (an \
                         unreleased earlier Gatehouse, or other software): {e}. It was left \
                         unchanged; it cannot be upgraded, so start on a new database"
                    ))
                }
                e => StoreError::Backend(format!("migrations failed: {e}")),
            })
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// The SQLite database's file name in its directory.
pub const SQLITE_FILE: &str = "gatehouse.db";

/// Least privilege on disk for the SQLite store.
mod private {
    use std::path::Path;

    use gatehouse_core::StoreError;

    /// The directory's mode: its owner's alone.
    pub const DIR_MODE: u32 = 0o700;
    /// The database files' mode.
    pub const FILE_MODE: u32 = 0o600;
    /// What SQLite keeps beside the database.
    pub const SIDE_FILES: [&str; 3] = ["-wal", "-shm", "-journal"];

    fn unavailable(what: &str, path: &Path, e: std::io::Error) -> StoreError {
        StoreError::Unavailable(format!("cannot {what} {}: {e}", path.display()))
    }

    /// Creates `dir` (and its missing parents) with mode 0700.
    pub fn make_dir(dir: &Path) -> Result<(), StoreError> {
        let mut builder = std::fs::DirBuilder::new();
        builder.recursive(true);
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut builder, DIR_MODE);
        builder
            .create(dir)
            .map_err(|e| unavailable("create", dir, e))
    }

    /// Creates the empty database file with mode 0600 if it is missing (SQLite takes an empty
    /// file for a new database).
    pub fn make_file(path: &Path) -> Result<(), StoreError> {
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, FILE_MODE);
        match options.open(path) {
            Ok(_) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
            Err(e) => Err(unavailable("create", path, e)),
        }
    }

    /// Puts the directory back to 0700 and every database file present to 0600 (a umask, a
    /// copy or an earlier version may have left them open to others), saying what it changed.
    pub fn tighten(dir: &Path, database: &Path) -> Result<(), StoreError> {
        set_mode(dir, DIR_MODE)?;
        set_mode(database, FILE_MODE)?;
        for suffix in SIDE_FILES {
            let mut name = database.as_os_str().to_owned();
            name.push(suffix);
            set_mode(Path::new(&name), FILE_MODE)?;
        }
        Ok(())
    }

    #[cfg(unix)]
    fn set_mode(path: &Path, mode: u32) -> Result<(), StoreError> {
        use std::os::unix::fs::PermissionsExt;
        let found = match std::fs::metadata(path) {
            Ok(metadata) => metadata.permissions().mode() & 0o7777,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(unavailable("read the mode of", path, e)),
        };
        if found == mode {
            return Ok(());
        }
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
            .map_err(|e| unavailable("restrict", path, e))?;
        tracing::warn!(
            path = %path.display(),
            was = %format!("{found:o}"),
            now = %format!("{mode:o}"),
            "restricted the store's file mode to its owner"
        );
        Ok(())
    }

    #[cfg(not(unix))]
    fn set_mode(_path: &Path, _mode: u32) -> Result<(), StoreError> {
        Ok(())
    }
}

/// The shared history with `backend`'s own files merged in by version.
fn migrator(backend: Backend) -> Migrator {
    // Each reads only the files directly in its directory. (The macro wants the `./` to tell a
    // path from the crate's root from one relative to this file.)
    static SHARED: Migrator = sqlx::migrate!("./migrations");
    static SQLITE: Migrator = sqlx::migrate!("./migrations/sqlite");
    static POSTGRES: Migrator = sqlx::migrate!("./migrations/postgres");
    let own = match backend {
        Backend::Sqlite => &SQLITE,
        Backend::Postgres => &POSTGRES,
    };
    Migrator::with_migrations(SHARED.iter().chain(own.iter()).cloned().collect())
}

/// Connection errors can echo the URL; never let a password reach a log.
fn redact(message: &str, url: &str) -> String {
    match url.split_once('@') {
        Some((credentials, _)) if credentials.contains(':') => message.replace(credentials, "***"),
        _ => message.to_owned(),
    }
}

fn backend_error(e: sqlx::Error) -> StoreError {
    match &e {
        sqlx::Error::Database(db) if db.is_unique_violation() => {
            StoreError::Conflict("a record with that key exists".into())
        }
        sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) => {
            StoreError::Unavailable(e.to_string())
        }
        sqlx::Error::Decode(_) | sqlx::Error::ColumnDecode { .. } => {
            StoreError::Corrupt(e.to_string())
        }
        _ => StoreError::Backend(e.to_string()),
    }
}

/// Like [`backend_error`], with a unique key's conflict told in the caller's words.
fn taken(what: &'static str) -> impl Fn(sqlx::Error) -> StoreError {
    move |e| match backend_error(e) {
        StoreError::Conflict(_) => StoreError::Conflict(what.into()),
        other => other,
    }
}

/// Like [`backend_error`], with a broken reference to a role (one deleted meanwhile, or still
/// held when it is deleted) as a conflict in the caller's words.
fn role_conflict(what: &'static str) -> impl Fn(sqlx::Error) -> StoreError {
    move |e| match &e {
        sqlx::Error::Database(db) if db.is_foreign_key_violation() => {
            StoreError::Conflict(what.into())
        }
        _ => backend_error(e),
    }
}

#[async_trait]
impl Store for SqlStore {
    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map(|_| ())
            .map_err(backend_error)
    }

    async fn signing_keys(&self) -> Result<Vec<StoredKey>, StoreError> {
        self.load_signing_keys().await
    }

    async fn client(&self, id: &str) -> Result<Option<Client>, StoreError> {
        self.load_client(id).await
    }

    async fn insert_client(&self, client: &Client) -> Result<(), StoreError> {
        self.store_new_client(client).await
    }

    async fn list_clients(&self, after: &str, limit: u32) -> Result<Vec<Client>, StoreError> {
        self.load_clients_after(after, limit).await
    }

    async fn list_users(&self, after: &str, limit: u32) -> Result<Vec<User>, StoreError> {
        self.load_users_after(after, limit).await
    }

    async fn user(&self, id: &str) -> Result<Option<User>, StoreError> {
        self.load_user(id).await
    }

    async fn user_by_username(&self, username: &str) -> Result<Option<User>, StoreError> {
        self.load_user_by_username(username).await
    }

    async fn insert_user(&self, user: &User) -> Result<(), StoreError> {
        self.store_new_user(user).await
    }

    async fn roles(&self) -> Result<Vec<Role>, StoreError> {
        self.load_roles().await
    }

    async fn role_in_use(&self, name: &str) -> Result<bool, StoreError> {
        self.role_has_holders(name).await
    }

    async fn family(&self, id: &str) -> Result<Option<RefreshFamily>, StoreError> {
        self.load_family(id).await
    }

    async fn list_families(
        &self,
        filter: &FamilyFilter,
        after: &str,
        limit: u32,
    ) -> Result<Vec<RefreshFamily>, StoreError> {
        self.load_families_after(filter, after, limit).await
    }

    async fn create_family(
        &self,
        family: &RefreshFamily,
        first: &RefreshTokenRecord,
        user_not_before: i64,
    ) -> Result<bool, StoreError> {
        self.store_new_family(family, first, user_not_before).await
    }

    async fn refresh_token(
        &self,
        hash: &str,
    ) -> Result<Option<(RefreshTokenRecord, RefreshFamily)>, StoreError> {
        self.load_refresh_token(hash).await
    }

    async fn rotate_refresh_token(
        &self,
        old_hash: &str,
        successor: &RefreshTokenRecord,
        now: i64,
    ) -> Result<RotateOutcome, StoreError> {
        self.rotate_token(old_hash, successor, now).await
    }

    async fn access_token_revoked(&self, jti: &str) -> Result<bool, StoreError> {
        self.is_access_token_revoked(jti).await
    }

    async fn insert_browser_session(&self, session: &BrowserSession) -> Result<(), StoreError> {
        self.store_new_browser_session(session).await
    }

    async fn browser_session(
        &self,
        secret_hash: &str,
    ) -> Result<Option<BrowserSession>, StoreError> {
        self.load_browser_session(secret_hash).await
    }

    async fn touch_browser_session(&self, id: &str, now: i64) -> Result<(), StoreError> {
        self.touch_session(id, now).await
    }

    async fn browser_sessions_of(
        &self,
        user_id: &str,
        now: i64,
    ) -> Result<Vec<BrowserSession>, StoreError> {
        self.load_live_browser_sessions(user_id, now).await
    }

    async fn insert_authorization_code(&self, code: &AuthorizationCode) -> Result<(), StoreError> {
        self.store_new_code(code).await
    }

    async fn authorization_code(
        &self,
        hash: &str,
    ) -> Result<Option<AuthorizationCode>, StoreError> {
        self.load_code(hash).await
    }

    async fn redeem_authorization_code(
        &self,
        hash: &str,
        family_id: &str,
        now: i64,
    ) -> Result<bool, StoreError> {
        self.redeem_code(hash, family_id, now).await
    }

    async fn consent(&self, user_id: &str, client_id: &str) -> Result<Option<Consent>, StoreError> {
        self.load_consent(user_id, client_id).await
    }

    async fn save_consent(&self, consent: &Consent) -> Result<(), StoreError> {
        self.store_consent(consent).await
    }

    async fn consents_of(&self, user_id: &str) -> Result<Vec<Consent>, StoreError> {
        self.load_consents_of(user_id).await
    }

    async fn purge_expired(&self, now: i64, audit_before: Option<i64>) -> Result<u64, StoreError> {
        self.delete_expired(now, audit_before).await
    }

    async fn commit(&self, writes: &[Write]) -> Result<Committed, StoreError> {
        self.commit_writes(writes).await
    }

    async fn changes_between(
        &self,
        after: i64,
        upto: i64,
        limit: u32,
    ) -> Result<Vec<Change>, StoreError> {
        self.read_changes_between(after, upto, limit).await
    }

    async fn changes_in(&self, seqs: &[i64]) -> Result<Vec<Change>, StoreError> {
        self.read_changes_in(seqs).await
    }

    async fn first_change_since(&self, at: i64) -> Result<Option<i64>, StoreError> {
        self.read_first_change_since(at).await
    }

    async fn latest_change(&self) -> Result<i64, StoreError> {
        self.read_latest_change().await
    }

    async fn change_notified(&self) {
        self.changed.wait().await;
    }

    async fn record_event(&self, event: &AuditEvent) -> Result<(), StoreError> {
        self.store_event(event).await
    }

    async fn recent_events(&self, limit: u32) -> Result<Vec<AuditEvent>, StoreError> {
        self.load_recent_events(limit).await
    }

    async fn list_events(
        &self,
        filter: &EventFilter,
        before: Option<(i64, String)>,
        limit: u32,
    ) -> Result<Vec<AuditEvent>, StoreError> {
        self.load_events(filter, before, limit).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_credentials_from_connection_errors() {
        let url = "postgres://app:hunter2@db:5432/x";
        let msg = format!("failed to connect to {url}");
        assert!(!redact(&msg, url).contains("hunter2"));
    }

    /// A version used both in the shared directory and a backend's would run only one of them.
    #[test]
    fn both_backends_run_the_same_versions_each_once() {
        let versions =
            |backend| -> Vec<i64> { migrator(backend).iter().map(|m| m.version).collect() };
        let sqlite = versions(Backend::Sqlite);
        assert!(sqlite.windows(2).all(|w| w[0] < w[1]), "{sqlite:?}");
        assert_eq!(sqlite, versions(Backend::Postgres));
        assert!(
            sqlite.len() >= 2,
            "the shared files and the backend's: {sqlite:?}"
        );
    }
}
