//! The admin API's bodies and query parameters (`/admin/…`).

use serde::{Deserialize, Serialize};

/// One page of a list, in id order. `next_cursor` goes into the next request's `cursor`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_cursor: Option<String>,
}

pub const PAGE_DEFAULT: u32 = 50;

pub const PAGE_MAX: u32 = 200;

/// `limit` and `cursor` of a list request.
#[derive(Debug, Clone, Default, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams))]
#[cfg_attr(feature = "openapi", into_params(parameter_in = Query))]
#[serde(deny_unknown_fields)]
pub struct PageRequest {
    /// 1 to 200; default 50.
    pub limit: Option<u32>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// A client as administrators see it: never its secret or any hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ClientView {
    pub client_id: String,
    pub name: String,
    pub grant_types: Vec<String>,
    /// `null`: a first-party client, limited only by its users' own scopes.
    pub scopes: Option<String>,
    pub roles: Vec<String>,
    pub token_endpoint_auth_method: String,
    /// Where the authorization endpoint may send people back.
    pub redirect_uris: Vec<String>,
    /// Where RP-initiated logout may send people afterwards.
    pub post_logout_redirect_uris: Vec<String>,
    /// A first-party application: people are not asked to consent to it.
    pub skip_consent: bool,
    pub self_registered: bool,
    pub blocked: bool,
    pub blocked_at: Option<i64>,
    pub not_before: i64,
    /// While a rotated-out secret still works.
    pub previous_secret_expires_at: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
}

/// A user as administrators see it: never the password hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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

/// `POST /admin/clients`.
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct NewClient {
    pub name: String,
    /// Default `["authorization_code"]` when `redirect_uris` are given, else
    /// `["client_credentials"]`.
    pub grant_types: Option<Vec<String>>,
    /// Space-separated; omitted: a first-party client limited only by its users' scopes.
    pub scope: Option<String>,
    #[serde(default)]
    pub roles: Vec<String>,
    /// `client_secret_basic` (default), `client_secret_post`, or `none` for a public client.
    pub token_endpoint_auth_method: Option<String>,
    /// Where the authorization endpoint may send people back (at most 10); required with
    /// `authorization_code`, refused without it.
    #[serde(default)]
    pub redirect_uris: Vec<String>,
    /// Where RP-initiated logout may send people afterwards (at most 10; `authorization_code`
    /// clients only).
    #[serde(default)]
    pub post_logout_redirect_uris: Vec<String>,
    /// A first-party application: people are not asked to consent to it.
    #[serde(default)]
    pub skip_consent: bool,
}

/// A created client with its secret, shown this once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CreatedClient {
    #[serde(flatten)]
    pub client: ClientView,
    pub client_secret: Option<String>,
}

/// `PATCH /admin/clients/{id}`: only the fields present change.
#[derive(Debug, Clone, Default, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ClientPatch {
    pub blocked: Option<bool>,
    pub name: Option<String>,
    /// Space-separated scopes the client may have.
    pub scope: Option<String>,
    pub roles: Option<Vec<String>>,
    /// Replaces the list; a client with `authorization_code` keeps at least one.
    pub redirect_uris: Option<Vec<String>>,
    /// Replaces the list.
    pub post_logout_redirect_uris: Option<Vec<String>>,
    /// Not for self-registered clients.
    pub skip_consent: Option<bool>,
}

/// The new secret after a rotation; the old one works until `previous_secret_expires_at`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RotatedSecret {
    pub client_id: String,
    pub client_secret: String,
    pub previous_secret_expires_at: i64,
}

/// `PATCH /admin/users/{id}`: only the fields present change.
#[derive(Debug, Clone, Default, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct UserPatch {
    pub blocked: Option<bool>,
    pub roles: Option<Vec<String>>,
}

/// A signing key as administrators see it (public facts only).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct KeyInfo {
    pub kid: String,
    pub alg: String,
    /// `pending` (published, not signing yet), `signing`, `published` (verifies only), `retired`.
    pub status: &'static str,
    pub created_at: i64,
    pub activates_at: i64,
    pub retired_at: Option<i64>,
}

/// A role: a name carrying default scopes for the users and clients that hold it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct RoleView {
    pub name: String,
    #[serde(default)]
    pub description: String,
    /// Space-separated default scopes.
    pub scope: String,
}

/// `PUT /admin/roles/{name}`: replaces description and scopes.
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct RoleUpdate {
    #[serde(default)]
    pub description: String,
    pub scope: String,
}

/// One login's refresh-token family, as administrators see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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

/// `GET /admin/sessions` filters and paging.
#[derive(Debug, Clone, Default, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams))]
#[cfg_attr(feature = "openapi", into_params(parameter_in = Query))]
#[serde(deny_unknown_fields)]
pub struct SessionQuery {
    pub user_id: Option<String>,
    pub client_id: Option<String>,
    pub limit: Option<u32>,
    pub cursor: Option<String>,
}

/// `GET /admin/audit` filters and paging.
#[derive(Debug, Clone, Default, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams))]
#[cfg_attr(feature = "openapi", into_params(parameter_in = Query))]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    /// The user, client or key the event is about.
    pub subject: Option<String>,
    /// The event type, e.g. `login.failure`, `refresh.reuse_detected`, `admin.user.blocked`.
    #[serde(rename = "type")]
    #[cfg_attr(feature = "openapi", param(rename = "type"))]
    pub kind: Option<String>,
    /// Unix seconds, inclusive.
    pub since: Option<i64>,
    /// Unix seconds, inclusive.
    pub until: Option<i64>,
    pub limit: Option<u32>,
    pub cursor: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct RevokeAll {
    /// A user id or a client id.
    pub subject: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RevokedAll {
    pub subject: String,
    pub sessions_revoked: u64,
    /// Every token of the subject issued before this time is dead.
    pub not_before: i64,
}
