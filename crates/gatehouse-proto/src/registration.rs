//! Dynamic client registration bodies (RFC 7591 §2–3, RFC 7592).

use serde::{Deserialize, Serialize};

/// The client metadata a registration request may carry (RFC 7591 §2). Unknown members are ignored,
/// as the RFC requires.
#[derive(Debug, Clone, Default, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RegistrationRequest {
    pub client_name: Option<String>,
    /// Omitted: `["authorization_code"]` when `redirect_uris` are given, else
    /// `["client_credentials"]`.
    pub grant_types: Option<Vec<String>>,
    pub scope: Option<String>,
    /// `client_secret_basic` (default), `client_secret_post`, or `none` for a public client, which
    /// gets no secret.
    pub token_endpoint_auth_method: Option<String>,
    /// Where the authorization endpoint may send people back; required with `authorization_code`.
    pub redirect_uris: Option<Vec<String>>,
    /// Where RP-initiated logout may send people afterwards (OpenID Connect RP-Initiated Logout
    /// §3.1).
    pub post_logout_redirect_uris: Option<Vec<String>>,
    /// Only `["code"]`, with the `authorization_code` grant (RFC 7591 §2.1).
    pub response_types: Option<Vec<String>>,
    /// Only in RFC 7592 updates; must match the URL's client.
    pub client_id: Option<String>,
    /// Only in RFC 7592 updates; when present it must be the client's current secret.
    pub client_secret: Option<String>,
}

/// A client's registered metadata as returned by RFC 7591/7592.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ClientMetadata {
    pub client_id: String,
    pub client_name: String,
    pub grant_types: Vec<String>,
    pub scope: String,
    pub token_endpoint_auth_method: String,
    /// `["code"]` for a client with the `authorization_code` grant, else empty.
    pub response_types: Vec<String>,
    pub redirect_uris: Vec<String>,
    pub post_logout_redirect_uris: Vec<String>,
    pub client_id_issued_at: i64,
    pub registration_client_uri: String,
}

/// The answer to a successful registration: metadata plus the credentials, shown this once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RegisteredClient {
    #[serde(flatten)]
    pub metadata: ClientMetadata,
    /// Absent for a public client (`token_endpoint_auth_method` `none`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_secret: Option<String>,
    /// 0: the secret does not expire. Present only with a secret.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_secret_expires_at: Option<i64>,
    pub registration_access_token: String,
}
