//! A fresh store per test, on SQLite (a file in a temporary directory) or on a new database of
//! the test PostgreSQL server, and records to put in it.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use gatehouse_core::{
    AuthMethod, Client, GrantType, RefreshFamily, RefreshTokenRecord, Role, ScopeSet, User,
};
use gatehouse_store::SqlStore;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

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

/// A store on a database of its own, so tests run in parallel.
pub struct TestStore {
    pub store: SqlStore,
    /// Where to connect again: a SQLite URL or the PostgreSQL database's.
    pub url: String,
    _dir: Option<tempfile::TempDir>,
}

impl std::ops::Deref for TestStore {
    type Target = SqlStore;
    fn deref(&self) -> &SqlStore {
        &self.store
    }
}

impl TestStore {
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
                }
            }
            Backend::Postgres => {
                let server = postgres_url().expect("postgres leg without a server");
                let url = fresh_postgres_database(&server).await;
                Self {
                    store: SqlStore::connect(&url).await.unwrap(),
                    url,
                    _dir: None,
                }
            }
        }
    }

    /// Runs one statement of test set-up that the store offers no way to make.
    pub async fn execute(&self, sql: &'static str) {
        sqlx::query(sql).execute(self.store.pool()).await.unwrap();
    }
}

/// A fresh, empty database on the test PostgreSQL server.
async fn fresh_postgres_database(server_url: &str) -> String {
    use sqlx::Connection;
    let name = format!(
        "gh_store_{}",
        gatehouse_core::secret::random_string(9)
            .unwrap()
            .to_ascii_lowercase()
            .replace(['-', '_'], "x")
    );
    let mut conn = sqlx::PgConnection::connect(server_url).await.unwrap();
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut conn)
        .await
        .unwrap();
    conn.close().await.unwrap();
    let (base, _) = server_url.rsplit_once('/').unwrap();
    format!("{base}/{name}")
}

/// Defines each listed `async fn name(backend: Backend)` as two tests, `sqlite::name` and
/// `postgres::name`.
#[macro_export]
macro_rules! on_both_stores {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::common::Backend::Sqlite).await
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    if $crate::common::postgres_url().is_some() {
                        super::$name($crate::common::Backend::Postgres).await
                    }
                }
            )*
        }
    };
}

pub fn roles(names: &[&str]) -> Vec<String> {
    names.iter().map(|n| (*n).to_owned()).collect()
}

pub fn scopes(text: &str) -> ScopeSet {
    ScopeSet::parse(text).unwrap()
}

/// A confidential machine client with every column set.
pub fn client(id: &str, held: &[&str]) -> Client {
    Client {
        id: id.into(),
        name: format!("client {id}"),
        secret_hash: Some(format!("hash-of-{id}")),
        auth_method: AuthMethod::ClientSecretBasic,
        grant_types: vec![GrantType::ClientCredentials, GrantType::RefreshToken],
        scopes: Some(scopes("rates:read fx:read")),
        roles: roles(held),
        registration_token_hash: Some(format!("registration-of-{id}")),
        previous_secret_hash: Some(format!("old-hash-of-{id}")),
        previous_secret_expires_at: Some(1_700_000_500),
        created_at: 1_700_000_000,
        updated_at: 1_700_000_100,
        blocked_at: None,
        not_before: 0,
    }
}

pub fn user(id: &str, username: &str, held: &[&str]) -> User {
    User {
        id: id.into(),
        username: username.into(),
        email: format!("{username}@example.test"),
        password_hash: format!("argon2-of-{username}"),
        roles: roles(held),
        created_at: 1_700_000_000,
        updated_at: 1_700_000_000,
        blocked_at: None,
        not_before: 0,
    }
}

pub fn role(name: &str, scope: &str) -> Role {
    Role {
        name: name.into(),
        description: format!("the {name} role"),
        scopes: scopes(scope),
    }
}

pub fn family(id: &str, user_id: &str, client_id: &str, expires_at: i64) -> RefreshFamily {
    RefreshFamily {
        id: id.into(),
        user_id: user_id.into(),
        client_id: client_id.into(),
        scope: "rates:read".into(),
        created_at: 1_700_000_000,
        last_used_at: 1_700_000_000,
        expires_at,
        revoked_at: None,
        ip: Some("192.0.2.1".into()),
        user_agent: Some("tests".into()),
    }
}

pub fn token(hash: &str, family_id: &str, expires_at: i64) -> RefreshTokenRecord {
    RefreshTokenRecord {
        hash: hash.into(),
        family_id: family_id.into(),
        created_at: 1_700_000_000,
        expires_at,
        rotated_at: None,
    }
}
