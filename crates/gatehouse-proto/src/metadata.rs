//! Authorization server metadata (RFC 8414 §2), served at
//! `/.well-known/oauth-authorization-server` and `/.well-known/openid-configuration`.

use serde::{Deserialize, Serialize};

/// The server's metadata. Readers take what they know and ignore the rest; fields another issuer
/// may leave out are optional here.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ServerMetadata {
    pub issuer: String,
    pub token_endpoint: String,
    pub jwks_uri: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registration_endpoint: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revocation_endpoint: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub revocation_endpoint_auth_methods_supported: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub introspection_endpoint: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub introspection_endpoint_auth_methods_supported: Vec<String>,
    /// Gatehouse's server-sent-events feed of revocations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revocation_feed_endpoint: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_documentation: Option<String>,
    #[serde(default)]
    pub grant_types_supported: Vec<String>,
    /// Required by RFC 8414 even when, as with no authorization endpoint, it is empty.
    #[serde(default)]
    pub response_types_supported: Vec<String>,
    #[serde(default)]
    pub token_endpoint_auth_methods_supported: Vec<String>,
    #[serde(default)]
    pub scopes_supported: Vec<String>,
    #[serde(default)]
    pub access_token_signing_alg_values_supported: Vec<String>,
    #[serde(default)]
    pub subject_types_supported: Vec<String>,

    // Browser sign-in: RFC 6749 §4.1, RFC 7636, RFC 9207, and OpenID Connect Discovery 1.0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authorization_endpoint: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub userinfo_endpoint: Option<String>,
    /// RP-Initiated Logout 1.0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_session_endpoint: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub response_modes_supported: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub code_challenge_methods_supported: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub id_token_signing_alg_values_supported: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub claims_supported: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub prompt_values_supported: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authorization_response_iss_parameter_supported: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub claims_parameter_supported: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_parameter_supported: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_uri_parameter_supported: Option<bool>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_minimal_document_from_another_issuer_reads() {
        let read: ServerMetadata = serde_json::from_str(
            r#"{"issuer":"https://i","token_endpoint":"https://i/t","jwks_uri":"https://i/k","x":1}"#,
        )
        .unwrap();
        assert_eq!(read.issuer, "https://i");
        assert_eq!(read.revocation_feed_endpoint, None);
        let written = serde_json::to_value(&read).unwrap();
        assert_eq!(written["response_types_supported"], serde_json::json!([]));
        assert!(written.get("registration_endpoint").is_none());
    }
}
