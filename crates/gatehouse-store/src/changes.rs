//! The change log: read in sequence order by each node's one reader, and on PostgreSQL announced
//! to the other nodes with `NOTIFY` so they read it within milliseconds instead of a poll later.

use std::sync::{Arc, Weak};
use std::time::Duration;

use gatehouse_core::{Change, StoreError};
use sqlx::postgres::PgListener;
use tokio::sync::Notify;

use crate::rows::ChangeRow;
use crate::writes::CHANGE_CHANNEL;
use crate::{SqlStore, backend_error};

/// The most sequence numbers asked for in one `IN (…)` list; callers page longer lists.
pub(crate) const MAX_LOOKUP: usize = 500;

impl SqlStore {
    pub(crate) async fn read_changes_between(
        &self,
        after: i64,
        upto: i64,
        limit: u32,
    ) -> Result<Vec<Change>, StoreError> {
        // A range on the primary key: an index seek, however long the log.
        let rows: Vec<ChangeRow> = sqlx::query_as(
            "SELECT seq, at, kind, subject, until FROM change_log \
             WHERE seq > $1 AND seq <= $2 ORDER BY seq LIMIT $3",
        )
        .bind(after)
        .bind(upto)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(backend_error)?;
        rows.into_iter().map(TryInto::try_into).collect()
    }

    pub(crate) async fn read_changes_in(&self, seqs: &[i64]) -> Result<Vec<Change>, StoreError> {
        let seqs = &seqs[..seqs.len().min(MAX_LOOKUP)];
        if seqs.is_empty() {
            return Ok(Vec::new());
        }
        // Only generated placeholders go into the text; the numbers are bound.
        let placeholders: Vec<String> = (1..=seqs.len()).map(|n| format!("${n}")).collect();
        let sql = format!(
            "SELECT seq, at, kind, subject, until FROM change_log WHERE seq IN ({}) ORDER BY seq",
            placeholders.join(", ")
        );
        let mut query = sqlx::query_as::<_, ChangeRow>(sqlx::AssertSqlSafe(sql));
        for seq in seqs {
            query = query.bind(*seq);
        }
        let rows = query.fetch_all(&self.pool).await.map_err(backend_error)?;
        rows.into_iter().map(TryInto::try_into).collect()
    }

    /// The newest sequence number, 0 when the log is empty.
    pub(crate) async fn read_latest_change(&self) -> Result<i64, StoreError> {
        let seq: Option<i64> = sqlx::query_scalar("SELECT MAX(seq) FROM change_log")
            .fetch_one(&self.pool)
            .await
            .map_err(backend_error)?;
        Ok(seq.unwrap_or(0))
    }

    pub(crate) async fn read_first_change_since(&self, at: i64) -> Result<Option<i64>, StoreError> {
        // The index on `at` gives the first entry of the window without a scan.
        sqlx::query_scalar("SELECT seq FROM change_log WHERE at >= $1 ORDER BY at, seq LIMIT 1")
            .bind(at)
            .fetch_optional(&self.pool)
            .await
            .map_err(backend_error)
    }
}

/// Wakes this node's change-log reader: on this process's own commits, and on PostgreSQL on every
/// other node's too (through a `LISTEN` connection started on first use).
pub(crate) struct ChangeSignal {
    notify: Notify,
    /// The PostgreSQL URL to listen on; `None` for SQLite, where other processes are polled for.
    listen_url: Option<String>,
    listening: std::sync::OnceLock<()>,
}

impl ChangeSignal {
    pub(crate) fn new(listen_url: Option<String>) -> Arc<Self> {
        Arc::new(Self {
            notify: Notify::new(),
            listen_url,
            listening: std::sync::OnceLock::new(),
        })
    }

    pub(crate) fn wake(&self) {
        self.notify.notify_one();
    }

    pub(crate) async fn wait(self: &Arc<Self>) {
        if let Some(url) = &self.listen_url {
            self.listening.get_or_init(|| {
                tokio::spawn(listen(url.clone(), Arc::downgrade(self)));
            });
        }
        self.notify.notified().await;
    }
}

/// Turns PostgreSQL notifications into wake-ups until the store is dropped. After a lost
/// connection it wakes the reader too: notifications may have been missed meanwhile.
async fn listen(url: String, signal: Weak<ChangeSignal>) {
    const RECHECK: Duration = Duration::from_secs(5);
    loop {
        let listener = async {
            let mut listener = PgListener::connect(&url).await?;
            listener.listen(CHANGE_CHANNEL).await?;
            Ok::<_, sqlx::Error>(listener)
        };
        let mut listener = match listener.await {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!(error = %crate::redact(&e.to_string(), &url), "cannot listen for change-log notifications; polling only");
                match signal.upgrade() {
                    Some(s) => s.wake(),
                    None => return,
                }
                tokio::time::sleep(RECHECK).await;
                continue;
            }
        };
        loop {
            let received = tokio::time::timeout(RECHECK, listener.try_recv()).await;
            let Some(signal) = signal.upgrade() else {
                return;
            };
            match received {
                Ok(Ok(Some(_))) => signal.wake(),
                // The connection dropped (the next call reconnects): notifications may be lost.
                Ok(Ok(None)) => signal.wake(),
                // Quiet: look again whether the store is still there.
                Err(_) => {}
                Ok(Err(e)) => {
                    tracing::warn!(error = %crate::redact(&e.to_string(), &url), "change-log notifications interrupted; reconnecting");
                    signal.wake();
                    break;
                }
            }
        }
    }
}
