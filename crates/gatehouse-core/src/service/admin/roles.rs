//! Roles through the admin API: a name carrying default scopes.

use gatehouse_proto::admin::{RoleUpdate, RoleView};

use super::*;
use crate::service::AuthService;
use crate::{ApiError, FieldError, RequestContext, Write};

const BUILT_IN_ROLES: [&str; 2] = [crate::ADMIN_ROLE, crate::USER_ROLE];

fn check_role_name(name: &str, errors: &mut Vec<FieldError>) {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'-' | b'_' | b':' | b'.')
        });
    if !ok {
        errors.push(FieldError {
            field: "name",
            detail: "1 to 64 of a-z 0-9 - _ : .".into(),
        });
    }
}

fn check_description(text: &str, errors: &mut Vec<FieldError>) {
    if text.chars().count() > 500 || text.chars().any(char::is_control) {
        errors.push(FieldError {
            field: "description",
            detail: "at most 500 printable characters".into(),
        });
    }
}

impl AuthService {
    pub async fn admin_list_roles(&self) -> Result<Vec<RoleView>, ApiError> {
        Ok(self
            .store
            .roles()
            .await?
            .into_iter()
            .map(|r| RoleView {
                name: r.name,
                description: r.description,
                scope: r.scopes.to_string(),
            })
            .collect())
    }

    pub async fn admin_create_role(
        &self,
        actor: &Actor,
        role: RoleView,
        ctx: &RequestContext,
    ) -> Result<RoleView, ApiError> {
        let mut errors = Vec::new();
        check_role_name(&role.name, &mut errors);
        check_description(&role.description, &mut errors);
        let scopes = parse_scopes(&role.scope, &mut errors);
        crate::validate::finish(errors)?;
        let scopes = scopes.unwrap_or_default();
        let created = Write::InsertRole(crate::Role {
            name: role.name.clone(),
            description: role.description.clone(),
            scopes: scopes.clone(),
        });
        self.commit(&[created], || ApiError::Internal).await?;
        self.admin_audit(
            actor,
            "admin.role.created",
            &role.name,
            ctx,
            &scopes.to_string(),
        )
        .await;
        Ok(RoleView {
            scope: scopes.to_string(),
            ..role
        })
    }

    pub async fn admin_update_role(
        &self,
        actor: &Actor,
        name: &str,
        update: RoleUpdate,
        ctx: &RequestContext,
    ) -> Result<RoleView, ApiError> {
        let mut errors = Vec::new();
        check_description(&update.description, &mut errors);
        let scopes = parse_scopes(&update.scope, &mut errors);
        crate::validate::finish(errors)?;
        let role = crate::Role {
            name: name.to_owned(),
            description: update.description,
            scopes: scopes.unwrap_or_default(),
        };
        // Taking scopes from a role ends the tokens its holders were issued before; their
        // sessions go on with what the role grants now.
        let narrowed = self
            .store
            .roles()
            .await?
            .iter()
            .any(|before| before.name == name && !before.scopes.is_subset(&role.scopes));
        let update = Write::UpdateRole {
            role: role.clone(),
            cutoff: narrowed.then(|| self.revocation_cutoff()),
        };
        self.commit(&[update], || not_found("role")).await?;
        self.forget_all_clients();
        self.admin_audit(
            actor,
            "admin.role.updated",
            name,
            ctx,
            &role.scopes.to_string(),
        )
        .await;
        Ok(RoleView {
            name: role.name,
            description: role.description,
            scope: role.scopes.to_string(),
        })
    }

    pub async fn admin_delete_role(
        &self,
        actor: &Actor,
        name: &str,
        ctx: &RequestContext,
    ) -> Result<(), ApiError> {
        if BUILT_IN_ROLES.contains(&name) {
            return Err(ApiError::Conflict(
                "built-in roles cannot be deleted".into(),
            ));
        }
        if !self.store.roles().await?.iter().any(|r| r.name == name) {
            return Err(not_found("role"));
        }
        if self.store.role_in_use(name).await? {
            return Err(ApiError::Conflict(
                "the role is still held by users or clients".into(),
            ));
        }
        self.commit(&[Write::DeleteRole(name.to_owned())], || not_found("role"))
            .await?;
        self.forget_all_clients();
        self.admin_audit(actor, "admin.role.deleted", name, ctx, "")
            .await;
        Ok(())
    }
}
