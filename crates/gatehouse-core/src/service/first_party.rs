//! Web applications a node runs itself (the reference shop): registered as confidential
//! code-flow clients the first time a node starts, with a secret every node derives from the
//! shared key-encryption key, so several nodes agree on it without storing or passing it around.
//!
//! After that the registration is the operators': a node never changes its name, scopes, grants,
//! consent, block or secret again. It only adds its own addresses when they are missing (a node
//! behind another address), so that sign-in works there too.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::service::AuthService;
use crate::service::registration::uri_problems;
use crate::{ApiError, AuthMethod, Client, GrantType, RequestContext, ScopeSet, Write, secret};

/// What a first-party web application needs registered.
#[derive(Debug, Clone)]
pub struct FirstPartyApp {
    /// A fixed id, so every node and every start names the same client.
    pub client_id: &'static str,
    pub name: &'static str,
    pub redirect_uri: String,
    pub post_logout_redirect_uri: String,
    pub scope: &'static str,
}

/// The application's registration as this node found or made it.
#[derive(Clone)]
pub struct FirstPartyRegistration {
    /// The secret derived for the application, the one registered unless an operator rotated it.
    pub derived_secret: String,
    /// Whether the registered secret is still the derived one.
    pub secret_is_derived: bool,
}

impl std::fmt::Debug for FirstPartyRegistration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FirstPartyRegistration")
            .field("secret_is_derived", &self.secret_is_derived)
            .finish_non_exhaustive()
    }
}

/// Who the audit log names for what a node does by itself.
const NODE_ACTOR: &str = "gatehouse";

impl AuthService {
    /// Registers `app` if it is not registered yet (first party: no consent screen), or adds
    /// this node's addresses to its registration if they are missing.
    pub async fn ensure_first_party_app(
        &self,
        app: &FirstPartyApp,
    ) -> Result<FirstPartyRegistration, ApiError> {
        let uris = [
            app.redirect_uri.clone(),
            app.post_logout_redirect_uri.clone(),
        ];
        if let Some(problem) = uri_problems(&uris).into_iter().next() {
            return Err(ApiError::BadRequest(problem.into()));
        }
        let scopes = ScopeSet::parse(app.scope)
            .map_err(|e| ApiError::BadRequest(format!("{}: {e}", app.scope).into()))?;
        let derived_secret = URL_SAFE_NO_PAD.encode(self.kek.derive(&format!(
            "gatehouse/first-party-secret/{}/v1",
            app.client_id
        )));
        let derived_hash = secret::hash_secret(&derived_secret);
        let now = self.now();
        let ctx = RequestContext::default();
        let Some(existing) = self.store.client(app.client_id).await? else {
            let client = Client {
                secret_hash: Some(derived_hash),
                scopes: Some(scopes),
                redirect_uris: vec![app.redirect_uri.clone()],
                post_logout_redirect_uris: vec![app.post_logout_redirect_uri.clone()],
                skip_consent: true,
                ..Client::new(
                    app.client_id.into(),
                    app.name.into(),
                    AuthMethod::ClientSecretBasic,
                    vec![GrantType::AuthorizationCode, GrantType::RefreshToken],
                    now,
                )
            };
            match self.store.insert_client(&client).await {
                Ok(()) => {
                    self.record_audit(
                        "admin.client.created",
                        Some(app.client_id),
                        None,
                        Some(NODE_ACTOR),
                        &ctx,
                        &format!("{} (first party, run by the node)", app.name),
                    )
                    .await;
                }
                // Another node registered it at the same moment, the same way.
                Err(crate::StoreError::Conflict(_)) => {}
                Err(e) => return Err(e.into()),
            }
            return Ok(FirstPartyRegistration {
                derived_secret,
                secret_is_derived: true,
            });
        };
        let secret_is_derived = existing.secret_hash.as_deref() == Some(derived_hash.as_str());
        let mut updated = existing.clone();
        let mut added = Vec::new();
        if !updated.redirect_uris.contains(&app.redirect_uri) {
            updated.redirect_uris.push(app.redirect_uri.clone());
            added.push(app.redirect_uri.as_str());
        }
        if !updated
            .post_logout_redirect_uris
            .contains(&app.post_logout_redirect_uri)
        {
            updated
                .post_logout_redirect_uris
                .push(app.post_logout_redirect_uri.clone());
            added.push(app.post_logout_redirect_uri.as_str());
        }
        if !added.is_empty() {
            if let Some(problem) = uri_problems(&updated.redirect_uris)
                .into_iter()
                .chain(uri_problems(&updated.post_logout_redirect_uris))
                .next()
            {
                return Err(ApiError::Conflict(
                    format!(
                        "cannot add this node's addresses to {}: {problem}",
                        app.client_id
                    )
                    .into(),
                ));
            }
            updated.updated_at = now;
            self.commit(
                &[Write::UpdateClient {
                    client: updated,
                    cutoff: None,
                }],
                || ApiError::NotFound("the client vanished while being updated".into()),
            )
            .await?;
            self.forget_client(app.client_id);
            self.record_audit(
                "admin.client.updated",
                Some(app.client_id),
                None,
                Some(NODE_ACTOR),
                &ctx,
                &format!("added a node's addresses: {}", added.join(", ")),
            )
            .await;
        }
        Ok(FirstPartyRegistration {
            derived_secret,
            secret_is_derived,
        })
    }
}
