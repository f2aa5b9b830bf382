//! The audit log: who did what, when, newest first.

use gatehouse_core::{AuditEvent, EventFilter, StoreError};

use crate::rows::EventRow;
use crate::{SqlStore, backend_error};

impl SqlStore {
    pub(crate) async fn store_event(&self, e: &AuditEvent) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO audit_events (id, at, kind, subject, client_id, actor, ip, detail) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(&e.id)
        .bind(e.at)
        .bind(&e.kind)
        .bind(&e.subject)
        .bind(&e.client_id)
        .bind(&e.actor)
        .bind(&e.ip)
        .bind(&e.detail)
        .execute(&self.pool)
        .await
        .map(|_| ())
        .map_err(backend_error)
    }

    /// A page of events matching `filter`, after the `(at, id)` cursor of the previous page.
    pub(crate) async fn load_events(
        &self,
        filter: &EventFilter,
        before: Option<(i64, String)>,
        limit: u32,
    ) -> Result<Vec<AuditEvent>, StoreError> {
        let (before_at, before_id) = match before {
            Some((at, id)) => (Some(at), Some(id)),
            None => (None, None),
        };
        let rows: Vec<EventRow> = sqlx::query_as(
            "SELECT id, at, kind, subject, client_id, actor, ip, detail FROM audit_events \
             WHERE (CAST($1 AS TEXT) IS NULL OR subject = $1) \
               AND (CAST($2 AS TEXT) IS NULL OR kind = $2) \
               AND (CAST($3 AS BIGINT) IS NULL OR at >= $3) \
               AND (CAST($4 AS BIGINT) IS NULL OR at <= $4) \
               AND (CAST($5 AS BIGINT) IS NULL OR at < $5 OR (at = $5 AND id < $6)) \
             ORDER BY at DESC, id DESC LIMIT $7",
        )
        .bind(&filter.subject)
        .bind(&filter.kind)
        .bind(filter.since)
        .bind(filter.until)
        .bind(before_at)
        .bind(before_id)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(backend_error)?;
        Ok(rows.into_iter().map(Into::into).collect())
    }

    pub(crate) async fn load_recent_events(
        &self,
        limit: u32,
    ) -> Result<Vec<AuditEvent>, StoreError> {
        let rows: Vec<EventRow> = sqlx::query_as(
            "SELECT id, at, kind, subject, client_id, actor, ip, detail FROM audit_events \
             ORDER BY at DESC, id LIMIT $1",
        )
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(backend_error)?;
        Ok(rows.into_iter().map(Into::into).collect())
    }
}
