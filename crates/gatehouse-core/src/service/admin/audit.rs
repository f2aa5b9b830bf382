//! The audit log through the admin API.

use gatehouse_proto::admin::{AuditEventView, AuditQuery, Page, PageRequest};

use super::*;
use crate::ApiError;
use crate::service::AuthService;

impl AuthService {
    pub async fn admin_list_audit(
        &self,
        query: &AuditQuery,
    ) -> Result<Page<AuditEventView>, ApiError> {
        let (cursor, limit) = page_bounds(&PageRequest {
            limit: query.limit,
            cursor: query.cursor.clone(),
        })?;
        let before = if cursor.is_empty() {
            None
        } else {
            let (at, id) = cursor
                .split_once(':')
                .and_then(|(at, id)| Some((at.parse::<i64>().ok()?, id.to_owned())))
                .ok_or_else(|| ApiError::BadRequest("cursor is not one this API gave".into()))?;
            Some((at, id))
        };
        let filter = crate::EventFilter {
            subject: query.subject.clone(),
            kind: query.kind.clone(),
            since: query.since,
            until: query.until,
        };
        let events = self.store.list_events(&filter, before, limit).await?;
        let views = events
            .into_iter()
            .map(|e| AuditEventView {
                id: e.id,
                at: e.at,
                kind: e.kind,
                subject: e.subject,
                client_id: e.client_id,
                actor: e.actor,
                ip: e.ip,
                detail: e.detail,
            })
            .collect();
        Ok(page(views, limit, |e: &AuditEventView| {
            format!("{}:{}", e.at, e.id)
        }))
    }
}
