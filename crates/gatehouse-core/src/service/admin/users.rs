//! People through the admin API: list, create, block, change roles, delete.

use gatehouse_proto::account::NewUser;
use gatehouse_proto::admin::{AdminUserView, Page, PageRequest, UserPatch};

use super::*;
use crate::service::AuthService;
use crate::{ApiError, FieldError, RequestContext, User, Write};

impl From<&User> for AdminUserView {
    fn from(u: &User) -> Self {
        Self {
            id: u.id.clone(),
            username: u.username.clone(),
            email: u.email.clone(),
            roles: u.roles.clone(),
            blocked: u.blocked_at.is_some(),
            blocked_at: u.blocked_at,
            not_before: u.not_before,
            created_at: u.created_at,
            updated_at: u.updated_at,
        }
    }
}

impl AuthService {
    pub async fn admin_list_users(
        &self,
        request: &PageRequest,
    ) -> Result<Page<AdminUserView>, ApiError> {
        let (after, limit) = page_bounds(request)?;
        let users = self.store.list_users(&after, limit).await?;
        let views = users.iter().map(AdminUserView::from).collect();
        Ok(page(views, limit, |u: &AdminUserView| u.id.clone()))
    }

    pub async fn admin_get_user(&self, id: &str) -> Result<AdminUserView, ApiError> {
        let user = self
            .store
            .user(id)
            .await?
            .ok_or_else(|| not_found("user"))?;
        Ok(AdminUserView::from(&user))
    }

    pub async fn admin_patch_user(
        &self,
        actor: &Actor,
        id: &str,
        patch: UserPatch,
        ctx: &RequestContext,
    ) -> Result<AdminUserView, ApiError> {
        let mut user = self
            .store
            .user(id)
            .await?
            .ok_or_else(|| not_found("user"))?;
        let mut errors = Vec::new();
        if patch.blocked.is_none() && patch.roles.is_none() {
            errors.push(FieldError {
                field: "body",
                detail: "name at least one of blocked, roles".into(),
            });
        }
        if let Some(roles) = &patch.roles {
            self.known_roles(roles, &mut errors).await?;
        }
        crate::validate::finish(errors)?;
        let now = self.now();
        let mut kinds = Vec::new();
        // Narrow writes, as for clients: a stale read above cannot undo a concurrent block or
        // cut-off, and everything commits together.
        let mut writes = Vec::new();
        if let Some(roles) = patch.roles.map(distinct) {
            // Tokens carry roles: taking one away ends the tokens issued before. Sessions go on
            // and refresh into tokens with what the new roles allow.
            let cutoff = crate::model::roles_taken_away(&user.roles, &roles)
                .then(|| self.revocation_cutoff());
            if let Some(at) = cutoff {
                user.not_before = user.not_before.max(at);
            }
            user.roles = roles;
            writes.push(Write::SetUserRoles {
                id: id.to_owned(),
                roles: user.roles.clone(),
                cutoff,
                now,
            });
            kinds.push((
                "admin.user.updated",
                format!("roles: {}", user.roles.join(" ")),
            ));
        }
        match (patch.blocked, user.blocked_at) {
            (Some(true), None) => {
                user.blocked_at = Some(now);
                user.not_before = user.not_before.max(self.revocation_cutoff());
                writes.push(Write::BlockUser {
                    id: id.to_owned(),
                    not_before: user.not_before,
                    now,
                    tokens_expire_by: self.tokens_expire_by(now),
                });
                kinds.push(("admin.user.blocked", String::new()));
            }
            (Some(false), Some(_)) => {
                user.blocked_at = None;
                writes.push(Write::UnblockUser {
                    id: id.to_owned(),
                    now,
                });
                kinds.push(("admin.user.unblocked", String::new()));
            }
            _ => {}
        }
        user.updated_at = now;
        self.commit(&writes, || not_found("user")).await?;
        for (kind, detail) in kinds {
            self.admin_audit(actor, kind, id, ctx, &detail).await;
        }
        Ok(AdminUserView::from(&user))
    }

    pub async fn admin_delete_user(
        &self,
        actor: &Actor,
        id: &str,
        ctx: &RequestContext,
    ) -> Result<(), ApiError> {
        if actor.id == id {
            return Err(ApiError::Conflict(
                "administrators cannot delete themselves".into(),
            ));
        }
        let deleted = Write::DeleteUser {
            id: id.to_owned(),
            cutoff: self.revocation_cutoff(),
        };
        self.commit(&[deleted], || not_found("user")).await?;
        self.admin_audit(actor, "admin.user.deleted", id, ctx, "")
            .await;
        Ok(())
    }
    /// Creates a person's account with the given roles (operators' CLI).
    pub async fn admin_create_user(
        &self,
        actor: &Actor,
        new: NewUser,
        roles: Vec<String>,
        ctx: &RequestContext,
    ) -> Result<AdminUserView, ApiError> {
        let mut errors = Vec::new();
        crate::validate::username(&new.username, &mut errors);
        crate::validate::email(&new.email, &mut errors);
        crate::validate::password("password", &new.password, &mut errors);
        self.known_roles(&roles, &mut errors).await?;
        crate::validate::finish(errors)?;
        if self.store.user_by_username(&new.username).await?.is_some() {
            return Err(ApiError::Conflict("that username is taken".into()));
        }
        let user = self
            .new_user(&new.username, &new.email, &new.password, distinct(roles))
            .await?;
        self.store.insert_user(&user).await?;
        self.admin_audit(actor, "admin.user.created", &user.id, ctx, &user.username)
            .await;
        Ok(AdminUserView::from(&user))
    }

    /// A user id, given an id or a username.
    pub async fn resolve_user(&self, id_or_name: &str) -> Result<String, ApiError> {
        if let Some(user) = self.store.user(id_or_name).await? {
            return Ok(user.id);
        }
        match self.store.user_by_username(id_or_name).await? {
            Some(user) => Ok(user.id),
            None => Err(not_found("user")),
        }
    }
}
