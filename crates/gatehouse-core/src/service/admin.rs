//! The admin API's behaviour: who may use it, and what it does to clients and users. Every change
//! is recorded in the audit log with the acting administrator.

use std::borrow::Cow;

use gatehouse_token::now_unix;
use serde::{Deserialize, Serialize};

use super::{AuthService, revocation_cutoff};
use crate::{
    ADMIN_ROLE, ApiError, AuthMethod, Client, FieldError, GrantType, RequestContext, ScopeSet,
    TokenProblem, User, Write, secret,
};

/// Who is acting through the admin API: a person with the `admin` role, or a machine client that
/// holds it (for automation).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    pub id: String,
}

/// One page of a list, in id order. `next_cursor` goes into the next request's `cursor`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_cursor: Option<String>,
}

/// The scope a token needs, besides its holder's role, to use the admin API.
pub const ADMIN_SCOPE: &str = "admin";

pub const PAGE_DEFAULT: u32 = 50;
pub const PAGE_MAX: u32 = 200;

/// `limit` and `cursor` of a list request.
#[derive(Debug, Clone, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct PageRequest {
    /// 1 to 200; default 50.
    pub limit: Option<u32>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

impl PageRequest {
    pub fn validated(&self) -> Result<(String, u32), ApiError> {
        let limit = self.limit.unwrap_or(PAGE_DEFAULT);
        if limit == 0 || limit > PAGE_MAX {
            return Err(ApiError::BadRequest(
                format!("limit must be between 1 and {PAGE_MAX}").into(),
            ));
        }
        Ok((self.cursor.clone().unwrap_or_default(), limit))
    }
}

fn page<T, K: Fn(&T) -> String>(items: Vec<T>, limit: u32, key: K) -> Page<T> {
    let next_cursor = (items.len() == limit as usize)
        .then(|| items.last().map(&key))
        .flatten();
    Page { items, next_cursor }
}

/// A client as administrators see it: never its secret or any hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct ClientView {
    pub client_id: String,
    pub name: String,
    pub grant_types: Vec<String>,
    /// `null`: a first-party client, limited only by its users' own scopes.
    pub scopes: Option<String>,
    pub roles: Vec<String>,
    pub token_endpoint_auth_method: String,
    pub self_registered: bool,
    pub blocked: bool,
    pub blocked_at: Option<i64>,
    pub not_before: i64,
    /// While a rotated-out secret still works.
    pub previous_secret_expires_at: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
}

impl From<&Client> for ClientView {
    fn from(c: &Client) -> Self {
        Self {
            client_id: c.id.clone(),
            name: c.name.clone(),
            grant_types: c.grant_types.iter().map(|g| g.as_str().into()).collect(),
            scopes: c.scopes.as_ref().map(ToString::to_string),
            roles: c.roles.clone(),
            token_endpoint_auth_method: c.auth_method.as_str().into(),
            self_registered: c.registration_token_hash.is_some(),
            blocked: c.blocked_at.is_some(),
            blocked_at: c.blocked_at,
            not_before: c.not_before,
            previous_secret_expires_at: c
                .previous_secret_expires_at
                .filter(|until| *until > now_unix()),
            created_at: c.created_at,
            updated_at: c.updated_at,
        }
    }
}

/// A user as administrators see it: never the password hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct AdminUserView {
    pub id: String,
    pub username: String,
    pub email: String,
    pub roles: Vec<String>,
    pub blocked: bool,
    pub blocked_at: Option<i64>,
    pub not_before: i64,
    pub created_at: i64,
    pub updated_at: i64,
}

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

/// `POST /admin/clients`.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewClient {
    pub name: String,
    /// Default `["client_credentials"]`.
    pub grant_types: Option<Vec<String>>,
    /// Space-separated; omitted: a first-party client limited only by its users' scopes.
    pub scope: Option<String>,
    #[serde(default)]
    pub roles: Vec<String>,
    /// `client_secret_basic` (default), `client_secret_post`, or `none` for a public client.
    pub token_endpoint_auth_method: Option<String>,
}

/// A created client with its secret, shown this once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct CreatedClient {
    #[serde(flatten)]
    pub client: ClientView,
    pub client_secret: Option<String>,
}

/// `PATCH /admin/clients/{id}`: only the fields present change.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ClientPatch {
    pub blocked: Option<bool>,
    pub name: Option<String>,
    /// Space-separated scopes the client may have.
    pub scope: Option<String>,
    pub roles: Option<Vec<String>>,
}

/// The new secret after a rotation; the old one works until `previous_secret_expires_at`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct RotatedSecret {
    pub client_id: String,
    pub client_secret: String,
    pub previous_secret_expires_at: i64,
}

/// `PATCH /admin/users/{id}`: only the fields present change.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UserPatch {
    pub blocked: Option<bool>,
    pub roles: Option<Vec<String>>,
}

fn not_found(what: &str) -> ApiError {
    ApiError::NotFound(format!("no such {what}").into())
}

impl AuthService {
    /// The administrator a bearer token speaks for; 401 for a bad token, 403 without the role.
    pub async fn authorize_admin(&self, token: &str) -> Result<Actor, ApiError> {
        let live = self
            .check_access_token(token)
            .await
            .map_err(ApiError::Unauthorized)?;
        let is_admin = match &live.user {
            // The stored roles, not the token's: a demoted admin loses access at once.
            Some(user) => user.roles.iter().any(|r| r == ADMIN_ROLE),
            None => live.client.client.roles.iter().any(|r| r == ADMIN_ROLE),
        };
        if !is_admin {
            return Err(ApiError::Forbidden(
                "the admin API needs the admin role".into(),
            ));
        }
        // The role alone is not enough: a token narrowed to other scopes (one handed to a
        // downstream service, say) must not carry the account's admin powers.
        if !live.claims.scopes().any(|s| s == ADMIN_SCOPE) {
            return Err(ApiError::Unauthorized(TokenProblem::InsufficientScope(
                "the admin API needs a token with the admin scope".into(),
            )));
        }
        Ok(Actor {
            id: live.user.map_or(live.claims.sub, |u| u.id),
        })
    }

    pub(super) async fn admin_audit(
        &self,
        actor: &Actor,
        kind: &str,
        subject: &str,
        ctx: &RequestContext,
        detail: &str,
    ) {
        self.record_audit(kind, Some(subject), None, Some(&actor.id), ctx, detail)
            .await;
    }

    async fn known_roles(
        &self,
        roles: &[String],
        errors: &mut Vec<FieldError>,
    ) -> Result<(), ApiError> {
        let existing = self.store.roles().await?;
        let unknown: Vec<&str> = roles
            .iter()
            .filter(|r| !existing.iter().any(|e| &e.name == *r))
            .map(String::as_str)
            .collect();
        if !unknown.is_empty() {
            errors.push(FieldError {
                field: "roles",
                detail: format!("unknown roles: {}", unknown.join(", ")).into(),
            });
        }
        Ok(())
    }

    pub async fn admin_list_clients(
        &self,
        request: &PageRequest,
    ) -> Result<Page<ClientView>, ApiError> {
        let (after, limit) = request.validated()?;
        let clients = self.store.list_clients(&after, limit).await?;
        let views = clients.iter().map(ClientView::from).collect();
        Ok(page(views, limit, |c: &ClientView| c.client_id.clone()))
    }

    pub async fn admin_get_client(&self, id: &str) -> Result<ClientView, ApiError> {
        let client = self
            .store
            .client(id)
            .await?
            .ok_or_else(|| not_found("client"))?;
        Ok(ClientView::from(&client))
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
        let grants = new
            .grant_types
            .clone()
            .unwrap_or_else(|| vec![GrantType::ClientCredentials.as_str().into()]);
        let grant_types = parse_grants(&grants, &mut errors);
        if auth_method == AuthMethod::None && grant_types.contains(&GrantType::ClientCredentials) {
            errors.push(FieldError {
                field: "grant_types",
                detail: "a public client cannot use client_credentials".into(),
            });
        }
        let scopes = new.scope.as_deref().map(|s| parse_scopes(s, &mut errors));
        self.known_roles(&new.roles, &mut errors).await?;
        crate::validate::finish(errors)?;
        let secret = (auth_method != AuthMethod::None)
            .then(secret::random_secret)
            .transpose()?;
        let now = now_unix();
        let client = Client {
            id: format!("cl_{}", secret::random_string(16)?),
            name: new.name,
            secret_hash: secret.as_deref().map(secret::hash_secret),
            auth_method,
            grant_types,
            scopes: scopes.flatten(),
            roles: new.roles,
            registration_token_hash: None,
            previous_secret_hash: None,
            previous_secret_expires_at: None,
            created_at: now,
            updated_at: now,
            blocked_at: None,
            not_before: 0,
        };
        self.store.insert_client(&client).await?;
        self.admin_audit(actor, "admin.client.created", &client.id, ctx, &client.name)
            .await;
        Ok(CreatedClient {
            client: ClientView::from(&client),
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
        {
            errors.push(FieldError {
                field: "body",
                detail: "name at least one of blocked, name, scope, roles".into(),
            });
        }
        if let Some(name) = &patch.name {
            check_name(name, &mut errors);
        }
        let scopes = patch.scope.as_deref().map(|s| parse_scopes(s, &mut errors));
        if let Some(roles) = &patch.roles {
            self.known_roles(roles, &mut errors).await?;
        }
        crate::validate::finish(errors)?;
        let now = now_unix();
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
            client.roles = roles;
            changes.push("roles");
        }
        client.updated_at = now;
        // Each part of the change is its own narrow write, so nothing read above can overwrite a
        // concurrent block, rotation or cut-off; all of them commit together or not at all.
        let mut writes = Vec::new();
        if !changes.is_empty() {
            let cutoff = before.takes_away(&client).then(revocation_cutoff);
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
                client.not_before = client.not_before.max(revocation_cutoff());
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
        Ok(ClientView::from(&client))
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
        let now = now_unix();
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
            cutoff: revocation_cutoff(),
        };
        self.commit(&[deleted], || not_found("client")).await?;
        self.forget_client(id);
        self.admin_audit(actor, "admin.client.deleted", id, ctx, "")
            .await;
        Ok(())
    }

    pub async fn admin_list_users(
        &self,
        request: &PageRequest,
    ) -> Result<Page<AdminUserView>, ApiError> {
        let (after, limit) = request.validated()?;
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
        let now = now_unix();
        let mut kinds = Vec::new();
        // Narrow writes, as for clients: a stale read above cannot undo a concurrent block or
        // cut-off, and everything commits together.
        let mut writes = Vec::new();
        if let Some(roles) = patch.roles {
            // Tokens carry roles: taking one away ends the tokens issued before. Sessions go on
            // and refresh into tokens with what the new roles allow.
            let cutoff =
                crate::model::roles_taken_away(&user.roles, &roles).then(revocation_cutoff);
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
                user.not_before = user.not_before.max(revocation_cutoff());
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
            cutoff: revocation_cutoff(),
        };
        self.commit(&[deleted], || not_found("user")).await?;
        self.admin_audit(actor, "admin.user.deleted", id, ctx, "")
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

fn parse_scopes(text: &str, errors: &mut Vec<FieldError>) -> Option<ScopeSet> {
    match ScopeSet::parse(text) {
        Ok(s) => Some(s),
        Err(e) => {
            errors.push(FieldError {
                field: "scope",
                detail: Cow::Owned(e.to_string()),
            });
            None
        }
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

impl From<TokenProblem> for ApiError {
    fn from(p: TokenProblem) -> Self {
        ApiError::Unauthorized(p)
    }
}

/// A signing key as administrators see it (public facts only).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct KeyInfo {
    pub kid: String,
    pub alg: String,
    /// `pending` (published, not signing yet), `signing`, `published` (verifies only), `retired`.
    pub status: &'static str,
    pub created_at: i64,
    pub activates_at: i64,
    pub retired_at: Option<i64>,
}

impl AuthService {
    /// The keys, newest first, as the store has them now.
    pub async fn list_signing_keys(&self) -> Result<Vec<KeyInfo>, ApiError> {
        self.reload_keys().await?;
        let view = self.keys.view();
        let now = now_unix();
        let mut keys: Vec<KeyInfo> = self
            .keys
            .records()
            .into_iter()
            .map(|k| KeyInfo {
                status: if k.retired_at.is_some_and(|at| at <= now) {
                    "retired"
                } else if k.kid == view.signer.kid() {
                    "signing"
                } else if k.activates_at > now {
                    "pending"
                } else {
                    "published"
                },
                kid: k.kid,
                alg: k.alg,
                created_at: k.created_at,
                activates_at: k.activates_at,
                retired_at: k.retired_at,
            })
            .collect();
        keys.sort_by(|a, b| b.created_at.cmp(&a.created_at).then(b.kid.cmp(&a.kid)));
        Ok(keys)
    }

    /// Rotates the signing key: the new one is published now and signs after the activation
    /// delay; every older key retires once the last token it can have signed has expired.
    pub async fn rotate_signing_key(
        &self,
        actor: &Actor,
        ctx: &RequestContext,
    ) -> Result<KeyInfo, ApiError> {
        let now = now_unix();
        let record = crate::keyring::new_key_record(
            &self.kek,
            now + self.config.key_activation_delay_secs as i64,
        )?;
        let retire_at = record.activates_at
            + self.config.access_token_ttl_secs as i64
            + self.config.token_leeway_secs as i64;
        let added = Write::AddSigningKey {
            key: record.clone(),
            retire_others_at: Some(retire_at),
        };
        self.commit(&[added], || ApiError::Internal).await?;
        self.reload_keys().await?;
        self.admin_audit(
            actor,
            "key.rotated",
            &record.kid,
            ctx,
            &format!(
                "signs from {}; older keys retire at {retire_at}",
                record.activates_at
            ),
        )
        .await;
        let listed = self.list_signing_keys().await?;
        listed
            .into_iter()
            .find(|k| k.kid == record.kid)
            .ok_or(ApiError::Internal)
    }
}

/// A role: a name carrying default scopes for the users and clients that hold it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RoleView {
    pub name: String,
    #[serde(default)]
    pub description: String,
    /// Space-separated default scopes.
    pub scope: String,
}

/// `PUT /admin/roles/{name}`: replaces description and scopes.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RoleUpdate {
    #[serde(default)]
    pub description: String,
    pub scope: String,
}

/// One login's refresh-token family, as administrators see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct SessionView {
    pub id: String,
    pub user_id: String,
    pub client_id: String,
    pub scope: String,
    pub created_at: i64,
    pub last_used_at: i64,
    pub expires_at: i64,
    pub revoked_at: Option<i64>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
}

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

/// `GET /admin/sessions` filters and paging.
#[derive(Debug, Clone, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct SessionQuery {
    pub user_id: Option<String>,
    pub client_id: Option<String>,
    pub limit: Option<u32>,
    pub cursor: Option<String>,
}

/// `GET /admin/audit` filters and paging.
#[derive(Debug, Clone, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    /// The user, client or key the event is about.
    pub subject: Option<String>,
    /// The event type, e.g. `login.failure`, `refresh.reuse_detected`, `admin.user.blocked`.
    #[serde(rename = "type")]
    #[param(rename = "type")]
    pub kind: Option<String>,
    /// Unix seconds, inclusive.
    pub since: Option<i64>,
    /// Unix seconds, inclusive.
    pub until: Option<i64>,
    pub limit: Option<u32>,
    pub cursor: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct AuditEventView {
    pub id: String,
    pub at: i64,
    #[serde(rename = "type")]
    pub kind: String,
    pub subject: Option<String>,
    pub client_id: Option<String>,
    pub actor: Option<String>,
    pub ip: Option<String>,
    pub detail: String,
}

/// `POST /admin/revoke-all`.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RevokeAll {
    /// A user id or a client id.
    pub subject: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct RevokedAll {
    pub subject: String,
    pub sessions_revoked: u64,
    /// Every token of the subject issued before this time is dead.
    pub not_before: i64,
}

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
            cutoff: narrowed.then(revocation_cutoff),
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

    pub async fn admin_list_sessions(
        &self,
        query: &SessionQuery,
    ) -> Result<Page<SessionView>, ApiError> {
        let (after, limit) = PageRequest {
            limit: query.limit,
            cursor: query.cursor.clone(),
        }
        .validated()?;
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
        let now = now_unix();
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
        let now = now_unix();
        let cutoff = revocation_cutoff();
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

    pub async fn admin_list_audit(
        &self,
        query: &AuditQuery,
    ) -> Result<Page<AuditEventView>, ApiError> {
        let (cursor, limit) = PageRequest {
            limit: query.limit,
            cursor: query.cursor.clone(),
        }
        .validated()?;
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

impl AuthService {
    /// Creates a person's account with the given roles (operators' CLI).
    pub async fn admin_create_user(
        &self,
        actor: &Actor,
        new: super::NewUser,
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
            .new_user(&new.username, &new.email, &new.password, roles)
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
