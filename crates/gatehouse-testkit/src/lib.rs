//! What Gatehouse's tests share at every level (store, server, binary): a store of its own per
//! test, on SQLite (a file in a temporary directory) or on a fresh database of the test
//! PostgreSQL server, and [`on_both_stores!`], which runs a test on each; and, for page tests, a
//! headless Chromium ([`browser::Browser`]).
//!
//! For tests only: nothing that ships may depend on it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub mod browser;

pub use gatehouse_store::{Backend, SqlStore};

/// The PostgreSQL server to test against, if any. `GATEHOUSE_REQUIRE_POSTGRES=1` (set by
/// `scripts/test`) turns a missing server into a failure instead of a skip.
pub fn postgres_url() -> Option<String> {
    match std::env::var("GATEHOUSE_TEST_POSTGRES_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            if std::env::var("GATEHOUSE_REQUIRE_POSTGRES").is_ok_and(|v| v == "1") {
                panic!("GATEHOUSE_REQUIRE_POSTGRES=1 but GATEHOUSE_TEST_POSTGRES_URL is not set");
            }
            eprintln!("GATEHOUSE_TEST_POSTGRES_URL is not set: PostgreSQL leg skipped");
            None
        }
    }
}

/// A new, empty database on the test PostgreSQL server, named `name` (replacing one of that
/// name) or, without one, at random; returns its URL.
pub async fn fresh_postgres_database(server_url: &str, name: Option<&str>) -> String {
    use sqlx::Connection;
    let name = match name {
        Some(name) => name.to_owned(),
        None => format!(
            "gh_test_{}",
            gatehouse_core::secret::random_string(9)
                .unwrap()
                .to_ascii_lowercase()
                .replace(['-', '_'], "x")
        ),
    };
    let mut conn = sqlx::PgConnection::connect(server_url).await.unwrap();
    for statement in [
        format!("DROP DATABASE IF EXISTS {name}"),
        format!("CREATE DATABASE {name}"),
    ] {
        sqlx::query(sqlx::AssertSqlSafe(statement))
            .execute(&mut conn)
            .await
            .unwrap();
    }
    conn.close().await.unwrap();
    let (base, _) = server_url.rsplit_once('/').unwrap();
    format!("{base}/{name}")
}

/// A database of the test PostgreSQL server that is dropped with this value (also when the test
/// fails), so a run's hundreds of databases do not pile up on a disk that CI shares.
pub struct PostgresDatabase {
    server_url: String,
    name: String,
}

impl PostgresDatabase {
    /// A new, empty database with a random name.
    pub async fn create(server_url: &str) -> (Self, String) {
        let url = fresh_postgres_database(server_url, None).await;
        let name = url.rsplit_once('/').unwrap().1.to_owned();
        let database = Self {
            server_url: server_url.to_owned(),
            name,
        };
        (database, url)
    }
}

impl Drop for PostgresDatabase {
    fn drop(&mut self) {
        use sqlx::Connection;
        let (server_url, name) = (self.server_url.clone(), self.name.clone());
        // Drop may run on a runtime's thread, where blocking on another future is not allowed.
        let dropping = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            runtime.block_on(async {
                let mut conn = sqlx::PgConnection::connect(&server_url).await.ok()?;
                let statement = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
                sqlx::query(sqlx::AssertSqlSafe(statement))
                    .execute(&mut conn)
                    .await
                    .ok()?;
                conn.close().await.ok()
            })
        });
        // A database left behind costs only disk: never turn a test's result into a panic here.
        let _ = dropping.join();
    }
}

/// A store on a database of its own, so tests run in parallel.
pub struct TestDatabase {
    pub store: SqlStore,
    /// Where to connect again: a SQLite URL or the PostgreSQL database's.
    pub url: String,
    _dir: Option<tempfile::TempDir>,
    _postgres: Option<PostgresDatabase>,
}

impl std::ops::Deref for TestDatabase {
    type Target = SqlStore;
    fn deref(&self) -> &SqlStore {
        &self.store
    }
}

impl TestDatabase {
    /// Runs one statement of test set-up that the store offers no way to make.
    pub async fn execute(&self, sql: &'static str) {
        sqlx::query(sql).execute(self.store.pool()).await.unwrap();
    }

    pub async fn open(backend: Backend) -> Self {
        match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().unwrap();
                let store = SqlStore::open_sqlite_dir(dir.path()).await.unwrap();
                let url = format!(
                    "sqlite://{}?mode=rwc",
                    dir.path().join("gatehouse.db").display()
                );
                Self {
                    store,
                    url,
                    _dir: Some(dir),
                    _postgres: None,
                }
            }
            Backend::Postgres => {
                let server = postgres_url().expect("postgres leg without a server");
                let (database, url) = PostgresDatabase::create(&server).await;
                Self {
                    store: SqlStore::connect(&url).await.unwrap(),
                    url,
                    _dir: None,
                    _postgres: Some(database),
                }
            }
        }
    }
}

/// Defines each listed `async fn name(backend: Backend)` as two tests, `sqlite::name` and
/// `postgres::name` (skipped without a test server unless it is required).
#[macro_export]
macro_rules! on_both_stores {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::Backend::Sqlite).await
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    if $crate::postgres_url().is_some() {
                        super::$name($crate::Backend::Postgres).await
                    }
                }
            )*
        }
    };
}
