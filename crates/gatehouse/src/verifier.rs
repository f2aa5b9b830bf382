//! Token verifiers for the parts of a node that check tokens (the gateway, the apps alone).

use std::time::Duration;

use anyhow::Context;
use gatehouse_sdk::{TokenVerifier, VerifierSettings};

/// Connects to the issuer, retrying for about 30 s while it starts.
pub async fn connect(settings: VerifierSettings) -> anyhow::Result<std::sync::Arc<TokenVerifier>> {
    let mut attempt = 0;
    loop {
        match TokenVerifier::connect(settings.clone()).await {
            Ok(verifier) => return Ok(verifier),
            Err(e) if attempt < 30 => {
                attempt += 1;
                tracing::warn!(error = %e, "waiting for the issuer");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            Err(e) => return Err(e).context("cannot reach the issuer"),
        }
    }
}

/// Waits until `verifier` knows the revocations made before this process started (its feed's
/// backlog has arrived), so that a process that says it is running does not answer its first
/// requests with 503. After a while it goes on anyway: protected routes fail closed meanwhile.
pub async fn until_current(verifier: &TokenVerifier, what: &str) {
    const PATIENCE: Duration = Duration::from_secs(15);
    if !verifier.wait_until_current(PATIENCE).await {
        tracing::warn!(
            "{what} has not caught up with the revocation feed after {PATIENCE:?}; protected \
             routes answer 503 until it has"
        );
    }
}
