//! Looking at a database without changing it, for `gatehouse doctor`: how its recorded migration
//! history compares with this build's, and what time the database says it is.

use gatehouse_core::StoreError;

use crate::{Backend, SqlStore, backend_error, migrator};

/// How a database's recorded migrations compare with the ones this build would apply.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MigrationStatus {
    /// Whether the database has a migration history at all (a new or foreign database has none).
    pub has_history: bool,
    /// How many migrations this build knows.
    pub known: usize,
    /// Versions this build knows and the database has recorded as applied.
    pub applied: Vec<i64>,
    /// Versions this build knows that the database has not applied yet (a node applies them at
    /// start).
    pub pending: Vec<i64>,
    /// Versions the database has applied that this build does not know: a newer Gatehouse
    /// migrated it, or other software.
    pub unknown: Vec<i64>,
    /// Versions applied with other contents than this build's (a different history).
    pub changed: Vec<i64>,
    /// Versions recorded as started and not finished.
    pub failed: Vec<i64>,
}

impl MigrationStatus {
    /// Every migration this build knows is applied, as this build has it, and nothing else is.
    pub fn is_current(&self) -> bool {
        self.has_history
            && self.pending.is_empty()
            && self.unknown.is_empty()
            && self.changed.is_empty()
            && self.failed.is_empty()
    }
}

#[derive(sqlx::FromRow)]
struct AppliedRow {
    version: i64,
    ok: i64,
    checksum: Vec<u8>,
}

impl SqlStore {
    /// The database's migration history against this build's, read without applying anything.
    pub async fn migration_status(&self) -> Result<MigrationStatus, StoreError> {
        let exists = match self.backend {
            Backend::Sqlite => {
                "SELECT CAST(COUNT(*) AS BIGINT) FROM sqlite_master \
                 WHERE type = 'table' AND name = '_sqlx_migrations'"
            }
            Backend::Postgres => {
                "SELECT CAST(CASE WHEN to_regclass('_sqlx_migrations') IS NULL THEN 0 ELSE 1 END \
                 AS BIGINT)"
            }
        };
        let (found,): (i64,) = sqlx::query_as(exists)
            .fetch_one(&self.pool)
            .await
            .map_err(backend_error)?;
        let known = migrator(self.backend);
        let mut status = MigrationStatus {
            has_history: found > 0,
            known: known.iter().count(),
            ..MigrationStatus::default()
        };
        let recorded: Vec<AppliedRow> = match status.has_history {
            true => sqlx::query_as(
                "SELECT version, CAST(CASE WHEN success THEN 1 ELSE 0 END AS BIGINT) AS ok, \
                 checksum FROM _sqlx_migrations ORDER BY version",
            )
            .fetch_all(&self.pool)
            .await
            .map_err(backend_error)?,
            false => Vec::new(),
        };
        for row in &recorded {
            match known.iter().find(|m| m.version == row.version) {
                None => status.unknown.push(row.version),
                Some(_) if row.ok == 0 => status.failed.push(row.version),
                Some(m) if *m.checksum != *row.checksum => status.changed.push(row.version),
                Some(_) => status.applied.push(row.version),
            }
        }
        status.pending = known
            .iter()
            .map(|m| m.version)
            .filter(|version| recorded.iter().all(|row| row.version != *version))
            .collect();
        Ok(status)
    }

    /// The database server's clock in Unix seconds (PostgreSQL's `now()`); `None` for SQLite,
    /// which has no clock of its own apart from the host's.
    pub async fn database_now(&self) -> Result<Option<i64>, StoreError> {
        match self.backend {
            Backend::Sqlite => Ok(None),
            Backend::Postgres => {
                let (now,): (i64,) =
                    sqlx::query_as("SELECT CAST(EXTRACT(EPOCH FROM now()) AS BIGINT)")
                        .fetch_one(&self.pool)
                        .await
                        .map_err(backend_error)?;
                Ok(Some(now))
            }
        }
    }

    /// The latest time any node wrote into the store (signing keys made, audit events, the
    /// change log), in Unix seconds; `None` when nothing is recorded. Nodes write their own
    /// clock's time, so one far ahead of this host's says that one of the clocks is wrong.
    pub async fn newest_recorded_time(&self) -> Result<Option<i64>, StoreError> {
        let (newest,): (Option<i64>,) = sqlx::query_as(
            "SELECT MAX(t) FROM (\
               SELECT MAX(created_at) AS t FROM signing_keys \
               UNION ALL SELECT MAX(at) AS t FROM audit_events \
               UNION ALL SELECT MAX(at) AS t FROM change_log) AS times",
        )
        .fetch_one(&self.pool)
        .await
        .map_err(backend_error)?;
        Ok(newest)
    }
}
