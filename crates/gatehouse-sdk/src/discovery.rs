pub use gatehouse_proto::ServerMetadata;

use crate::error::{SdkError, get_json};

/// Reads `{issuer}/.well-known/oauth-authorization-server`. The document must name the same
/// issuer it was fetched for (RFC 8414 §3.3), or a look-alike could hand out its own keys.
pub async fn discover(http: &reqwest::Client, issuer: &str) -> Result<ServerMetadata, SdkError> {
    let issuer = issuer.trim_end_matches('/');
    let url = format!("{issuer}/.well-known/oauth-authorization-server");
    let metadata: ServerMetadata = get_json(http, &url).await?;
    if metadata.issuer.trim_end_matches('/') != issuer {
        return Err(SdkError::invalid(
            &url,
            format!("it names the issuer {:?}", metadata.issuer),
        ));
    }
    Ok(metadata)
}
