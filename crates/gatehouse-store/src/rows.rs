//! Row shapes as the shared SQL returns them, and their conversion to domain records. Lists are
//! space-separated (scope and role names and URIs cannot contain spaces): scopes, grant types and
//! redirect URIs as stored, roles as gathered from their join tables when a user or client is
//! loaded. Flags are integers, 0 or 1, which both backends store alike.

use gatehouse_core::{
    AuditEvent, AuthMethod, AuthorizationCode, BrowserSession, Change, ChangeKind, Client, Consent,
    GrantType, RefreshFamily, RefreshTokenRecord, Role, ScopeSet, StoreError, StoredKey, User,
};

pub(crate) fn join_list<S: AsRef<str>>(items: &[S]) -> String {
    items
        .iter()
        .map(AsRef::as_ref)
        .collect::<Vec<_>>()
        .join(" ")
}

fn split_list(text: &str) -> Vec<String> {
    text.split(' ')
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

fn corrupt(what: &str, value: &str) -> StoreError {
    StoreError::Corrupt(format!("{what}: {value:?}"))
}

fn scopes(text: &str) -> Result<ScopeSet, StoreError> {
    ScopeSet::parse(text).map_err(|_| corrupt("scope", text))
}

#[derive(sqlx::FromRow)]
pub(crate) struct KeyRow {
    kid: String,
    alg: String,
    sealed_private_key: Vec<u8>,
    public_jwk: String,
    created_at: i64,
    activates_at: i64,
    retired_at: Option<i64>,
}

impl From<KeyRow> for StoredKey {
    fn from(r: KeyRow) -> Self {
        StoredKey {
            kid: r.kid,
            alg: r.alg,
            sealed_private_key: r.sealed_private_key,
            public_jwk: r.public_jwk,
            created_at: r.created_at,
            activates_at: r.activates_at,
            retired_at: r.retired_at,
        }
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct ClientRow {
    pub id: String,
    pub name: String,
    pub secret_hash: Option<String>,
    pub auth_method: String,
    pub grant_types: String,
    pub scopes: Option<String>,
    pub roles: String,
    pub registration_token_hash: Option<String>,
    pub previous_secret_hash: Option<String>,
    pub previous_secret_expires_at: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
    pub blocked_at: Option<i64>,
    pub not_before: i64,
    pub redirect_uris: String,
    pub post_logout_redirect_uris: String,
    pub skip_consent: i64,
}

impl From<&Client> for ClientRow {
    fn from(c: &Client) -> Self {
        ClientRow {
            id: c.id.clone(),
            name: c.name.clone(),
            secret_hash: c.secret_hash.clone(),
            auth_method: c.auth_method.as_str().to_owned(),
            grant_types: join_list(&c.grant_types.iter().map(|g| g.as_str()).collect::<Vec<_>>()),
            scopes: c.scopes.as_ref().map(ToString::to_string),
            roles: join_list(&c.roles),
            registration_token_hash: c.registration_token_hash.clone(),
            previous_secret_hash: c.previous_secret_hash.clone(),
            previous_secret_expires_at: c.previous_secret_expires_at,
            created_at: c.created_at,
            updated_at: c.updated_at,
            blocked_at: c.blocked_at,
            not_before: c.not_before,
            redirect_uris: join_list(&c.redirect_uris),
            post_logout_redirect_uris: join_list(&c.post_logout_redirect_uris),
            skip_consent: i64::from(c.skip_consent),
        }
    }
}

impl TryFrom<ClientRow> for Client {
    type Error = StoreError;
    fn try_from(r: ClientRow) -> Result<Self, StoreError> {
        let auth_method = r
            .auth_method
            .parse::<AuthMethod>()
            .map_err(|()| corrupt("auth method", &r.auth_method))?;
        let grant_types = split_list(&r.grant_types)
            .iter()
            .map(|g| {
                g.parse::<GrantType>()
                    .map_err(|()| corrupt("grant type", g))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Client {
            id: r.id,
            name: r.name,
            secret_hash: r.secret_hash,
            auth_method,
            grant_types,
            scopes: r.scopes.as_deref().map(scopes).transpose()?,
            roles: split_list(&r.roles),
            registration_token_hash: r.registration_token_hash,
            previous_secret_hash: r.previous_secret_hash,
            previous_secret_expires_at: r.previous_secret_expires_at,
            created_at: r.created_at,
            updated_at: r.updated_at,
            blocked_at: r.blocked_at,
            not_before: r.not_before,
            redirect_uris: split_list(&r.redirect_uris),
            post_logout_redirect_uris: split_list(&r.post_logout_redirect_uris),
            skip_consent: r.skip_consent != 0,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct UserRow {
    id: String,
    username: String,
    email: String,
    password_hash: String,
    roles: String,
    created_at: i64,
    updated_at: i64,
    blocked_at: Option<i64>,
    not_before: i64,
}

impl From<UserRow> for User {
    fn from(r: UserRow) -> Self {
        User {
            id: r.id,
            username: r.username,
            email: r.email,
            password_hash: r.password_hash,
            roles: split_list(&r.roles),
            created_at: r.created_at,
            updated_at: r.updated_at,
            blocked_at: r.blocked_at,
            not_before: r.not_before,
        }
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct RoleRow {
    name: String,
    description: String,
    scopes: String,
}

impl TryFrom<RoleRow> for Role {
    type Error = StoreError;
    fn try_from(r: RoleRow) -> Result<Self, StoreError> {
        Ok(Role {
            scopes: scopes(&r.scopes)?,
            name: r.name,
            description: r.description,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct FamilyRow {
    id: String,
    user_id: String,
    client_id: String,
    scope: String,
    created_at: i64,
    last_used_at: i64,
    expires_at: i64,
    revoked_at: Option<i64>,
    ip: Option<String>,
    user_agent: Option<String>,
    browser_session_id: Option<String>,
}

impl From<FamilyRow> for RefreshFamily {
    fn from(r: FamilyRow) -> Self {
        RefreshFamily {
            id: r.id,
            user_id: r.user_id,
            client_id: r.client_id,
            scope: r.scope,
            created_at: r.created_at,
            last_used_at: r.last_used_at,
            expires_at: r.expires_at,
            revoked_at: r.revoked_at,
            ip: r.ip,
            user_agent: r.user_agent,
            browser_session_id: r.browser_session_id,
        }
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct TokenAndFamilyRow {
    hash: String,
    family_id: String,
    token_created_at: i64,
    token_expires_at: i64,
    rotated_at: Option<i64>,
    #[sqlx(flatten)]
    family: FamilyColumns,
}

/// The family's columns in the token join (its id is the token's `family_id`).
#[derive(sqlx::FromRow)]
pub(crate) struct FamilyColumns {
    user_id: String,
    client_id: String,
    scope: String,
    created_at: i64,
    last_used_at: i64,
    expires_at: i64,
    revoked_at: Option<i64>,
    ip: Option<String>,
    user_agent: Option<String>,
    browser_session_id: Option<String>,
}

impl From<TokenAndFamilyRow> for (RefreshTokenRecord, RefreshFamily) {
    fn from(r: TokenAndFamilyRow) -> Self {
        let f = r.family;
        let family = FamilyRow {
            id: r.family_id.clone(),
            user_id: f.user_id,
            client_id: f.client_id,
            scope: f.scope,
            created_at: f.created_at,
            last_used_at: f.last_used_at,
            expires_at: f.expires_at,
            revoked_at: f.revoked_at,
            ip: f.ip,
            user_agent: f.user_agent,
            browser_session_id: f.browser_session_id,
        };
        (
            RefreshTokenRecord {
                hash: r.hash,
                family_id: r.family_id,
                created_at: r.token_created_at,
                expires_at: r.token_expires_at,
                rotated_at: r.rotated_at,
            },
            family.into(),
        )
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct BrowserSessionRow {
    id: String,
    secret_hash: String,
    user_id: String,
    auth_time: i64,
    created_at: i64,
    last_seen_at: i64,
    expires_at: i64,
    ended_at: Option<i64>,
    ip: Option<String>,
    user_agent: Option<String>,
}

impl From<BrowserSessionRow> for BrowserSession {
    fn from(r: BrowserSessionRow) -> Self {
        BrowserSession {
            id: r.id,
            secret_hash: r.secret_hash,
            user_id: r.user_id,
            auth_time: r.auth_time,
            created_at: r.created_at,
            last_seen_at: r.last_seen_at,
            expires_at: r.expires_at,
            ended_at: r.ended_at,
            ip: r.ip,
            user_agent: r.user_agent,
        }
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct CodeRow {
    hash: String,
    client_id: String,
    user_id: String,
    redirect_uri: String,
    code_challenge: String,
    nonce: Option<String>,
    scope: String,
    auth_time: i64,
    browser_session_id: String,
    created_at: i64,
    expires_at: i64,
    used_at: Option<i64>,
    family_id: Option<String>,
}

impl From<CodeRow> for AuthorizationCode {
    fn from(r: CodeRow) -> Self {
        AuthorizationCode {
            hash: r.hash,
            client_id: r.client_id,
            user_id: r.user_id,
            redirect_uri: r.redirect_uri,
            code_challenge: r.code_challenge,
            nonce: r.nonce,
            scope: r.scope,
            auth_time: r.auth_time,
            browser_session_id: r.browser_session_id,
            created_at: r.created_at,
            expires_at: r.expires_at,
            used_at: r.used_at,
            family_id: r.family_id,
        }
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct ConsentRow {
    user_id: String,
    client_id: String,
    scope: String,
    granted_at: i64,
}

impl TryFrom<ConsentRow> for Consent {
    type Error = StoreError;
    fn try_from(r: ConsentRow) -> Result<Self, StoreError> {
        Ok(Consent {
            scope: scopes(&r.scope)?,
            user_id: r.user_id,
            client_id: r.client_id,
            granted_at: r.granted_at,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct EventRow {
    id: String,
    at: i64,
    kind: String,
    subject: Option<String>,
    client_id: Option<String>,
    actor: Option<String>,
    ip: Option<String>,
    detail: String,
}

impl From<EventRow> for AuditEvent {
    fn from(r: EventRow) -> Self {
        AuditEvent {
            id: r.id,
            at: r.at,
            kind: r.kind,
            subject: r.subject,
            client_id: r.client_id,
            actor: r.actor,
            ip: r.ip,
            detail: r.detail,
        }
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct ChangeRow {
    seq: i64,
    at: i64,
    kind: String,
    subject: String,
    until: Option<i64>,
}

impl TryFrom<ChangeRow> for Change {
    type Error = StoreError;
    fn try_from(r: ChangeRow) -> Result<Self, StoreError> {
        Ok(Change {
            // A kind written by a newer node (during a rolling upgrade) must not stop this
            // node's reader: it passes as `Unknown` and is skipped, keeping the sequence whole.
            kind: r.kind.parse::<ChangeKind>().unwrap_or(ChangeKind::Unknown),
            seq: r.seq,
            at: r.at,
            subject: r.subject,
            until: r.until,
        })
    }
}
