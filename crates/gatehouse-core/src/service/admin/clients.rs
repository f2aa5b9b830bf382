//! Clients through the admin API: list, create (the secret shown once), change, block, rotate the
//! secret, delete.

use gatehouse_proto::admin::{
    ClientPatch, ClientView, CreatedClient, NewClient, Page, PageRequest, RotatedSecret,
};

use super::*;
use crate::service::AuthService;
use crate::service::registration::{
    RedirectField, default_grant, grant_rules, redirect_rules, uri_problems,
};
use crate::{ApiError, AuthMethod, Client, FieldError, GrantType, RequestContext, Write, secret};

/// A client as administrators see it at `now`.
fn client_view(c: &Client, now: i64) -> ClientView {
    ClientView {
        client_id: c.id.clone(),
        name: c.name.clone(),
        grant_types: c.grant_types.iter().map(|g| g.as_str().into()).collect(),
        scopes: c.scopes.as_ref().map(ToString::to_string),
        roles: c.roles.clone(),
        token_endpoint_auth_method: c.auth_method.as_str().into(),
        redirect_uris: c.redirect_uris.clone(),
        post_logout_redirect_uris: c.post_logout_redirect_uris.clone(),
        skip_consent: c.skip_consent,
        self_registered: c.is_self_registered(),
        blocked: c.blocked_at.is_some(),
        blocked_at: c.blocked_at,
        not_before: c.not_before,
        previous_secret_expires_at: c.previous_secret_expires_at.filter(|until| *until > now),
        created_at: c.created_at,
        updated_at: c.updated_at,
    }
}

impl AuthService {
    pub async fn admin_list_clients(
        &self,
        request: &PageRequest,
    ) -> Result<Page<ClientView>, ApiError> {
        let (after, limit) = page_bounds(request)?;
        let clients = self.store.list_clients(&after, limit).await?;
        let views = clients.iter().map(|c| client_view(c, self.now())).collect();
        Ok(page(views, limit, |c: &ClientView| c.client_id.clone()))
    }

    pub async fn admin_get_client(&self, id: &str) -> Result<ClientView, ApiError> {
        let client = self
            .store
            .client(id)
            .await?
            .ok_or_else(|| not_found("client"))?;
        Ok(client_view(&client, self.now()))
    }

    pub async fn admin_create_client(
        &self,
        actor: &Actor,
        new: NewClient,
        ctx: &RequestContext,
    ) -> Result<CreatedClient, ApiError> {
        let mut errors = Vec::new();
        check_name(&new.name, &mut errors);
        let auth_method = match new.token_endpoint_auth_method.as_deref() {
            None => AuthMethod::ClientSecretBasic,
            Some(m) => m.parse::<AuthMethod>().unwrap_or_else(|()| {
                errors.push(FieldError {
                    field: "token_endpoint_auth_method",
                    detail: "must be client_secret_basic, client_secret_post or none".into(),
                });
                AuthMethod::ClientSecretBasic
            }),
        };
        let redirect_uris = uri_list(RedirectField::RedirectUris, &new.redirect_uris, &mut errors);
        let post_logout_redirect_uris = uri_list(
            RedirectField::PostLogout,
            &new.post_logout_redirect_uris,
            &mut errors,
        );
        let grants = new
            .grant_types
            .clone()
            .unwrap_or_else(|| vec![default_grant(!new.redirect_uris.is_empty()).as_str().into()]);
        let grant_types = parse_grants(&grants, &mut errors);
        if let Err(detail) = grant_rules(auth_method, &grant_types) {
            errors.push(FieldError {
                field: "grant_types",
                detail: detail.into(),
            });
        }
        if let (Some(redirect_uris), Some(post_logout_redirect_uris)) =
            (&redirect_uris, &post_logout_redirect_uris)
        {
            check_redirect_rules(
                &grant_types,
                redirect_uris,
                post_logout_redirect_uris,
                &mut errors,
            );
        }
        let scopes = new.scope.as_deref().map(|s| parse_scopes(s, &mut errors));
        self.known_roles(&new.roles, &mut errors).await?;
        crate::validate::finish(errors)?;
        let secret = (auth_method != AuthMethod::None)
            .then(secret::random_secret)
            .transpose()?;
        let now = self.now();
        let id = format!("cl_{}", secret::random_string(16)?);
        let client = Client {
            secret_hash: secret.as_deref().map(secret::hash_secret),
            scopes: scopes.flatten(),
            roles: distinct(new.roles),
            redirect_uris: redirect_uris.unwrap_or_default(),
            post_logout_redirect_uris: post_logout_redirect_uris.unwrap_or_default(),
            skip_consent: new.skip_consent,
            ..Client::new(id, new.name, auth_method, grant_types, now)
        };
        self.store.insert_client(&client).await?;
        self.admin_audit(actor, "admin.client.created", &client.id, ctx, &client.name)
            .await;
        Ok(CreatedClient {
            client: client_view(&client, self.now()),
            client_secret: secret,
        })
    }

    pub async fn admin_patch_client(
        &self,
        actor: &Actor,
        id: &str,
        patch: ClientPatch,
        ctx: &RequestContext,
    ) -> Result<ClientView, ApiError> {
        let mut client = self
            .store
            .client(id)
            .await?
            .ok_or_else(|| not_found("client"))?;
        let mut errors = Vec::new();
        if patch.blocked.is_none()
            && patch.name.is_none()
            && patch.scope.is_none()
            && patch.roles.is_none()
            && patch.redirect_uris.is_none()
            && patch.post_logout_redirect_uris.is_none()
            && patch.skip_consent.is_none()
        {
            errors.push(FieldError {
                field: "body",
                detail: "name at least one of blocked, name, scope, roles, redirect_uris, \
                         post_logout_redirect_uris, skip_consent"
                    .into(),
            });
        }
        if let Some(name) = &patch.name {
            check_name(name, &mut errors);
        }
        let scopes = patch.scope.as_deref().map(|s| parse_scopes(s, &mut errors));
        if let Some(roles) = &patch.roles {
            self.known_roles(roles, &mut errors).await?;
        }
        let redirect_uris = patch
            .redirect_uris
            .as_deref()
            .map(|uris| uri_list(RedirectField::RedirectUris, uris, &mut errors));
        let post_logout_redirect_uris = patch
            .post_logout_redirect_uris
            .as_deref()
            .map(|uris| uri_list(RedirectField::PostLogout, uris, &mut errors));
        // The lists as they would stand (`None`: one given is refused already), checked against
        // the client's grants.
        let redirect_after = match &redirect_uris {
            None => Some(&client.redirect_uris),
            Some(given) => given.as_ref(),
        };
        let post_logout_after = match &post_logout_redirect_uris {
            None => Some(&client.post_logout_redirect_uris),
            Some(given) => given.as_ref(),
        };
        if let (Some(after), Some(post_logout_after)) = (redirect_after, post_logout_after)
            && (patch.redirect_uris.is_some() || patch.post_logout_redirect_uris.is_some())
        {
            check_redirect_rules(&client.grant_types, after, post_logout_after, &mut errors);
        }
        if patch.skip_consent == Some(true) && client.is_self_registered() {
            errors.push(FieldError {
                field: "skip_consent",
                detail: "a self-registered client cannot skip consent: whoever registered it is \
                         not known to be first-party"
                    .into(),
            });
        }
        crate::validate::finish(errors)?;
        let now = self.now();
        let before = client.clone();
        let mut changes = Vec::new();
        if let Some(name) = patch.name {
            client.name = name;
            changes.push("name");
        }
        if let Some(scopes) = scopes.flatten() {
            client.scopes = Some(scopes);
            changes.push("scope");
        }
        if let Some(roles) = patch.roles {
            client.roles = distinct(roles);
            changes.push("roles");
        }
        if let Some(Some(uris)) = redirect_uris {
            client.redirect_uris = uris;
            changes.push("redirect_uris");
        }
        if let Some(Some(uris)) = post_logout_redirect_uris {
            client.post_logout_redirect_uris = uris;
            changes.push("post_logout_redirect_uris");
        }
        if let Some(skip) = patch.skip_consent {
            client.skip_consent = skip;
            changes.push("skip_consent");
        }
        client.updated_at = now;
        // Each part of the change is its own narrow write, so nothing read above can overwrite a
        // concurrent block, rotation or cut-off; all of them commit together or not at all.
        let mut writes = Vec::new();
        if !changes.is_empty() {
            let cutoff = before.takes_away(&client).then(|| self.revocation_cutoff());
            if let Some(at) = cutoff {
                client.not_before = client.not_before.max(at);
            }
            writes.push(Write::UpdateClient {
                client: client.clone(),
                cutoff,
            });
        }
        let mut block_change = None;
        match (patch.blocked, client.blocked_at) {
            (Some(true), None) => {
                client.blocked_at = Some(now);
                client.not_before = client.not_before.max(self.revocation_cutoff());
                writes.push(Write::BlockClient {
                    id: id.to_owned(),
                    not_before: client.not_before,
                    now,
                    tokens_expire_by: self.tokens_expire_by(now),
                });
                block_change = Some("admin.client.blocked");
            }
            (Some(false), Some(_)) => {
                client.blocked_at = None;
                writes.push(Write::UnblockClient {
                    id: id.to_owned(),
                    now,
                });
                block_change = Some("admin.client.unblocked");
            }
            _ => {}
        }
        self.commit(&writes, || not_found("client")).await?;
        self.forget_client(id);
        if let Some(kind) = block_change {
            self.admin_audit(actor, kind, id, ctx, "").await;
        }
        if !changes.is_empty() {
            self.admin_audit(actor, "admin.client.updated", id, ctx, &changes.join(", "))
                .await;
        }
        Ok(client_view(&client, self.now()))
    }

    pub async fn admin_rotate_client_secret(
        &self,
        actor: &Actor,
        id: &str,
        ctx: &RequestContext,
    ) -> Result<RotatedSecret, ApiError> {
        let mut client = self
            .store
            .client(id)
            .await?
            .ok_or_else(|| not_found("client"))?;
        if client.is_public() {
            return Err(ApiError::Conflict(
                "a public client has no secret to rotate".into(),
            ));
        }
        let now = self.now();
        let new_secret = secret::random_secret()?;
        let until = now + self.config.secret_rotation_overlap_secs as i64;
        client.previous_secret_hash = client.secret_hash.take();
        client.previous_secret_expires_at = Some(until);
        client.secret_hash = Some(secret::hash_secret(&new_secret));
        client.updated_at = now;
        self.commit(&[Write::SetClientSecret(client.clone())], || {
            not_found("client")
        })
        .await?;
        self.forget_client(id);
        self.admin_audit(
            actor,
            "admin.client.secret_rotated",
            id,
            ctx,
            &format!("previous secret valid until {until}"),
        )
        .await;
        Ok(RotatedSecret {
            client_id: client.id,
            client_secret: new_secret,
            previous_secret_expires_at: until,
        })
    }

    pub async fn admin_delete_client(
        &self,
        actor: &Actor,
        id: &str,
        ctx: &RequestContext,
    ) -> Result<(), ApiError> {
        if id == crate::WEB_CLIENT_ID {
            return Err(ApiError::Conflict(
                "the built-in web client cannot be deleted; block it instead".into(),
            ));
        }
        // Gateways and services check tokens locally: the cutoff tells them its tokens are dead.
        let deleted = Write::DeleteClient {
            id: id.to_owned(),
            cutoff: self.revocation_cutoff(),
        };
        self.commit(&[deleted], || not_found("client")).await?;
        self.forget_client(id);
        self.admin_audit(actor, "admin.client.deleted", id, ctx, "")
            .await;
        Ok(())
    }
}

fn check_name(name: &str, errors: &mut Vec<FieldError>) {
    if name.trim().is_empty() || name.chars().count() > 200 || name.chars().any(char::is_control) {
        errors.push(FieldError {
            field: "name",
            detail: "must be 1 to 200 printable characters".into(),
        });
    }
}

fn parse_grants(names: &[String], errors: &mut Vec<FieldError>) -> Vec<GrantType> {
    let mut grants = Vec::new();
    for name in names {
        match name.parse::<GrantType>() {
            Ok(g) if !grants.contains(&g) => grants.push(g),
            Ok(_) => {}
            Err(()) => errors.push(FieldError {
                field: "grant_types",
                detail: format!("unknown grant type {name:?}").into(),
            }),
        }
    }
    if grants.is_empty() && names.is_empty() {
        errors.push(FieldError {
            field: "grant_types",
            detail: "must not be empty".into(),
        });
    }
    grants
}

/// A list of redirect URIs of `kind`, each kept once; `None` when any is refused, with each
/// problem recorded against the list's field.
fn uri_list(
    kind: RedirectField,
    uris: &[String],
    errors: &mut Vec<FieldError>,
) -> Option<Vec<String>> {
    let problems = uri_problems(uris);
    if problems.is_empty() {
        return Some(distinct(uris.to_vec()));
    }
    errors.extend(problems.into_iter().map(|detail| FieldError {
        field: kind.name(),
        detail: detail.into(),
    }));
    None
}

/// Redirect URIs against the grants: required with the code flow, refused without it.
fn check_redirect_rules(
    grants: &[GrantType],
    redirect_uris: &[String],
    post_logout_redirect_uris: &[String],
    errors: &mut Vec<FieldError>,
) {
    let code_flow = grants.contains(&GrantType::AuthorizationCode);
    if let Err((field, detail)) =
        redirect_rules(code_flow, redirect_uris, post_logout_redirect_uris)
    {
        errors.push(FieldError {
            field: field.name(),
            detail: detail.into(),
        });
    }
}
