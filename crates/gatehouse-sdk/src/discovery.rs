use serde::Deserialize;

use crate::error::{SdkError, get_json};

/// The parts of an issuer's metadata (RFC 8414) that services and gateways use.
#[derive(Debug, Clone, Deserialize)]
pub struct IssuerMetadata {
    pub issuer: String,
    pub jwks_uri: String,
    pub token_endpoint: String,
    #[serde(default)]
    pub registration_endpoint: Option<String>,
    #[serde(default)]
    pub revocation_endpoint: Option<String>,
    #[serde(default)]
    pub introspection_endpoint: Option<String>,
    /// Gatehouse's server-sent-events feed of revocations.
    #[serde(default)]
    pub revocation_feed_endpoint: Option<String>,
}

/// Reads `{issuer}/.well-known/oauth-authorization-server`. The document must name the same
/// issuer it was fetched for (RFC 8414 §3.3), or a look-alike could hand out its own keys.
pub async fn discover(http: &reqwest::Client, issuer: &str) -> Result<IssuerMetadata, SdkError> {
    let issuer = issuer.trim_end_matches('/');
    let url = format!("{issuer}/.well-known/oauth-authorization-server");
    let metadata: IssuerMetadata = get_json(http, &url).await?;
    if metadata.issuer.trim_end_matches('/') != issuer {
        return Err(SdkError::invalid(
            &url,
            format!("it names the issuer {:?}", metadata.issuer),
        ));
    }
    Ok(metadata)
}
