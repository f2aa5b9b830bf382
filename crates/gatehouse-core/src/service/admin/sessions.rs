//! Sign-in sessions through the admin API, and revoking everything of a user or client.

use gatehouse_proto::admin::{Page, PageRequest, RevokedAll, SessionQuery, SessionView};

use super::*;
use crate::service::AuthService;
use crate::{ApiError, RequestContext, Write};

impl From<crate::RefreshFamily> for SessionView {
    fn from(f: crate::RefreshFamily) -> Self {
        Self {
            id: f.id,
            user_id: f.user_id,
            client_id: f.client_id,
            scope: f.scope,
            created_at: f.created_at,
            last_used_at: f.last_used_at,
            expires_at: f.expires_at,
            revoked_at: f.revoked_at,
            ip: f.ip,
            user_agent: f.user_agent,
        }
    }
}

impl AuthService {
    pub async fn admin_list_sessions(
        &self,
        query: &SessionQuery,
    ) -> Result<Page<SessionView>, ApiError> {
        let (after, limit) = page_bounds(&PageRequest {
            limit: query.limit,
            cursor: query.cursor.clone(),
        })?;
        let filter = crate::FamilyFilter {
            user_id: query.user_id.clone(),
            client_id: query.client_id.clone(),
        };
        let families = self.store.list_families(&filter, &after, limit).await?;
        let views = families.into_iter().map(SessionView::from).collect();
        Ok(page(views, limit, |s: &SessionView| s.id.clone()))
    }

    pub async fn admin_revoke_session(
        &self,
        actor: &Actor,
        id: &str,
        ctx: &RequestContext,
    ) -> Result<(), ApiError> {
        let family = self
            .store
            .family(id)
            .await?
            .ok_or_else(|| not_found("session"))?;
        let now = self.now();
        let ended = Write::RevokeSession {
            id: id.to_owned(),
            now,
            until: self.tokens_expire_by(now),
        };
        self.commit(&[ended], || not_found("session")).await?;
        self.admin_audit(actor, "admin.session.revoked", &family.user_id, ctx, id)
            .await;
        Ok(())
    }

    /// Ends every session and kills every token of a user or a client at once.
    pub async fn admin_revoke_all(
        &self,
        actor: &Actor,
        subject: &str,
        ctx: &RequestContext,
    ) -> Result<RevokedAll, ApiError> {
        let now = self.now();
        let cutoff = self.revocation_cutoff();
        let filter = if self.store.user(subject).await?.is_some() {
            crate::FamilyFilter {
                user_id: Some(subject.to_owned()),
                client_id: None,
            }
        } else if self.store.client(subject).await?.is_some() {
            crate::FamilyFilter {
                user_id: None,
                client_id: Some(subject.to_owned()),
            }
        } else {
            return Err(not_found("user or client"));
        };
        let id = subject.to_owned();
        let cut_off = match filter.user_id {
            Some(_) => Write::CutOffUser {
                id,
                not_before: cutoff,
                now,
                tokens_expire_by: self.tokens_expire_by(now),
            },
            None => Write::CutOffClient {
                id,
                not_before: cutoff,
                now,
                tokens_expire_by: self.tokens_expire_by(now),
            },
        };
        let sessions_revoked = self
            .commit(&[cut_off], || not_found("user or client"))
            .await?;
        self.forget_client(subject);
        self.admin_audit(
            actor,
            "admin.revoke_all",
            subject,
            ctx,
            &format!("{sessions_revoked} sessions"),
        )
        .await;
        Ok(RevokedAll {
            subject: subject.to_owned(),
            sessions_revoked,
            not_before: cutoff,
        })
    }
}
