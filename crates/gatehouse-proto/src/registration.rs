//! Dynamic client registration bodies (RFC 7591 §2–3, RFC 7592).

use serde::{Deserialize, Serialize};

/// The client metadata a registration request may carry (RFC 7591 §2). Unknown members are ignored,
/// as the RFC requires.
#[derive(Debug, Clone, Default, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RegistrationRequest {
    pub client_name: Option<String>,
    pub grant_types: Option<Vec<String>>,
    pub scope: Option<String>,
    pub token_endpoint_auth_method: Option<String>,
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
    pub client_id_issued_at: i64,
    pub registration_client_uri: String,
}

/// The answer to a successful registration: metadata plus the credentials, shown this once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RegisteredClient {
    #[serde(flatten)]
    pub metadata: ClientMetadata,
    pub client_secret: String,
    /// 0: the secret does not expire.
    pub client_secret_expires_at: i64,
    pub registration_access_token: String,
}
