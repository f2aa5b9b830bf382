//! Signing people in to a web application's back end with the authorization code flow (RFC 6749
//! §4.1) with PKCE (RFC 7636, S256), `state`, the `iss` response parameter (RFC 9207) and an
//! OpenID Connect `nonce`; then refreshing, revoking (RFC 7009) and signing out (OpenID Connect
//! RP-Initiated Logout). The application keeps what [`SignInClient::begin`] returns until the
//! browser comes back, and the tokens after: this type holds no per-person state.

use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use gatehouse_proto::TokenResponse;
use gatehouse_token::{IdClaims, SigningAlgorithm, now_unix, random_string};
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;

use crate::client::post_token_form;
use crate::error::SdkError;
use crate::verifier::TokenVerifier;

/// Why a sign-in could not be completed.
#[derive(Debug, thiserror::Error)]
pub enum SignInError {
    /// The authorization server answered with an error (the person declined, the request was
    /// refused): its code and description, for the person to read.
    #[error("the sign-in was not completed: {error}")]
    Refused {
        error: String,
        description: Option<String>,
    },
    /// The browser came back with a `state` or `iss` this sign-in did not send: a forged or stale
    /// answer, or one from another issuer (a mix-up attack).
    #[error("this answer does not belong to the sign-in this browser started: {0}")]
    Mismatch(&'static str),
    /// The ID token is missing, or not this issuer's for this client and this sign-in.
    #[error("the ID token cannot be accepted: {0}")]
    IdToken(String),
    #[error(transparent)]
    Sdk(#[from] SdkError),
}

/// What the application keeps between sending the browser off and its return: never shown to
/// the browser, except `state`, which comes back.
#[derive(Clone, Serialize, Deserialize)]
pub struct PendingSignIn {
    pub state: String,
    pub nonce: String,
    pub code_verifier: String,
}

impl std::fmt::Debug for PendingSignIn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PendingSignIn").finish_non_exhaustive()
    }
}

/// Where to send the browser, and what to keep until it comes back.
#[derive(Debug)]
pub struct SignInRequest {
    pub url: String,
    pub pending: PendingSignIn,
}

/// The query of the redirect back to the application.
#[derive(Default, Deserialize)]
pub struct Callback {
    pub code: Option<String>,
    pub state: Option<String>,
    pub iss: Option<String>,
    pub error: Option<String>,
    pub error_description: Option<String>,
}

impl std::fmt::Debug for Callback {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Callback")
            .field("iss", &self.iss)
            .field("error", &self.error)
            .finish_non_exhaustive()
    }
}

/// A signed-in person's tokens, with the checked ID token's claims.
pub struct SignedIn {
    pub tokens: TokenResponse,
    pub id_claims: IdClaims,
}

impl std::fmt::Debug for SignedIn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SignedIn")
            .field("sub", &self.id_claims.sub)
            .finish_non_exhaustive()
    }
}

/// A confidential client of the issuer that signs people in from a server.
pub struct SignInClient {
    verifier: Arc<TokenVerifier>,
    http: reqwest::Client,
    client_id: String,
    client_secret: String,
    redirect_uri: String,
}

impl std::fmt::Debug for SignInClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SignInClient")
            .field("client_id", &self.client_id)
            .field("redirect_uri", &self.redirect_uri)
            .finish_non_exhaustive()
    }
}

impl SignInClient {
    /// `verifier` is connected to the issuer: its metadata names the endpoints and its keys
    /// check ID tokens.
    pub fn new(
        verifier: Arc<TokenVerifier>,
        http: reqwest::Client,
        client_id: impl Into<String>,
        client_secret: impl Into<String>,
        redirect_uri: impl Into<String>,
    ) -> Result<Self, SdkError> {
        let metadata = verifier.metadata();
        if metadata.authorization_endpoint.is_none() {
            return Err(SdkError::invalid(
                &metadata.issuer,
                "the issuer publishes no authorization endpoint",
            ));
        }
        Ok(Self {
            verifier,
            http,
            client_id: client_id.into(),
            client_secret: client_secret.into(),
            redirect_uri: redirect_uri.into(),
        })
    }

    pub fn client_id(&self) -> &str {
        &self.client_id
    }

    /// The issuer's userinfo endpoint (OpenID Connect Core §5.3), if it has one.
    pub fn userinfo_endpoint(&self) -> Option<&str> {
        self.verifier.metadata().userinfo_endpoint.as_deref()
    }

    /// A new sign-in: the authorization URL for `scope` (which should include `openid`), and
    /// the secrets to keep until the browser returns. `prompt` is passed on when given
    /// (`login` to make the person enter their password again).
    pub fn begin(&self, scope: &str, prompt: Option<&str>) -> Result<SignInRequest, SdkError> {
        let metadata = self.verifier.metadata();
        let endpoint = metadata
            .authorization_endpoint
            .as_deref()
            .unwrap_or_default();
        let random = |bytes| {
            random_string(bytes).map_err(|e| SdkError::invalid(&metadata.issuer, e.to_string()))
        };
        let pending = PendingSignIn {
            state: random(24)?,
            nonce: random(24)?,
            code_verifier: random(32)?,
        };
        let mut params = vec![
            ("response_type", "code"),
            ("client_id", self.client_id.as_str()),
            ("redirect_uri", self.redirect_uri.as_str()),
            ("scope", scope),
            ("state", pending.state.as_str()),
            ("nonce", pending.nonce.as_str()),
            ("code_challenge_method", "S256"),
        ];
        let challenge = pkce_challenge(&pending.code_verifier);
        params.push(("code_challenge", &challenge));
        if let Some(prompt) = prompt {
            params.push(("prompt", prompt));
        }
        let url = reqwest::Url::parse_with_params(endpoint, &params)
            .map_err(|e| SdkError::invalid(endpoint, e))?;
        Ok(SignInRequest {
            url: url.into(),
            pending,
        })
    }

    /// Completes a sign-in from the browser's return: the answer must carry this sign-in's
    /// `state` and the issuer's `iss`; the code is redeemed with the PKCE verifier, and the ID
    /// token must be the issuer's, for this client, with this sign-in's nonce.
    pub async fn finish(
        &self,
        callback: &Callback,
        pending: &PendingSignIn,
    ) -> Result<SignedIn, SignInError> {
        let state = callback.state.as_deref().unwrap_or_default();
        if !bool::from(state.as_bytes().ct_eq(pending.state.as_bytes())) {
            return Err(SignInError::Mismatch("state"));
        }
        if callback.iss.as_deref() != Some(self.verifier.metadata().issuer.as_str()) {
            return Err(SignInError::Mismatch("iss"));
        }
        if let Some(error) = &callback.error {
            return Err(SignInError::Refused {
                error: error.clone(),
                description: callback.error_description.clone(),
            });
        }
        let code = callback
            .code
            .as_deref()
            .ok_or(SignInError::Mismatch("code"))?;
        let tokens = self
            .token_request(vec![
                ("grant_type", "authorization_code"),
                ("code", code),
                ("redirect_uri", &self.redirect_uri),
                ("code_verifier", &pending.code_verifier),
            ])
            .await?;
        let id_token = tokens
            .id_token
            .as_deref()
            .ok_or_else(|| SignInError::IdToken("none was issued (ask for scope openid)".into()))?;
        let id_claims = self.check_id_token(id_token, &pending.nonce).await?;
        // at_hash binds the access token to this ID token (OpenID Connect Core §3.1.3.8).
        // The ID token verified, so its header's algorithm is its key's.
        let expected =
            SigningAlgorithm::of_token(id_token).map(|alg| alg.token_hash(&tokens.access_token));
        if id_claims.at_hash.is_none() || id_claims.at_hash != expected {
            return Err(SignInError::IdToken(
                "its at_hash does not match the access token".into(),
            ));
        }
        Ok(SignedIn { tokens, id_claims })
    }

    /// New tokens for a refresh token (RFC 6749 §6). A refusal (`invalid_grant`: revoked,
    /// expired, or the person signed out) comes back as [`SdkError::Refused`].
    pub async fn refresh(&self, refresh_token: &str) -> Result<TokenResponse, SdkError> {
        self.token_request(vec![
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token),
        ])
        .await
    }

    /// Revokes a token (RFC 7009); an issuer without a revocation endpoint is an error.
    pub async fn revoke(&self, token: &str, hint: &str) -> Result<(), SdkError> {
        let metadata = self.verifier.metadata();
        let url = metadata.revocation_endpoint.as_deref().ok_or_else(|| {
            SdkError::invalid(
                &metadata.issuer,
                "the issuer publishes no revocation endpoint",
            )
        })?;
        let response = self
            .http
            .post(url)
            .basic_auth(&self.client_id, Some(&self.client_secret))
            .form(&[("token", token), ("token_type_hint", hint)])
            .send()
            .await
            .map_err(|e| SdkError::unreachable(url, e))?;
        match response.status() {
            status if status.is_success() => Ok(()),
            status => Err(SdkError::Status {
                url: url.to_owned(),
                status: status.as_u16(),
            }),
        }
    }

    /// Where to send the browser to end its sign-in at the issuer (RP-Initiated Logout §2), and
    /// come back to `post_logout_redirect_uri`; `None` when the issuer has no such endpoint.
    pub fn end_session_url(
        &self,
        id_token_hint: &str,
        post_logout_redirect_uri: &str,
    ) -> Option<String> {
        let endpoint = self.verifier.metadata().end_session_endpoint.as_deref()?;
        reqwest::Url::parse_with_params(
            endpoint,
            &[
                ("id_token_hint", id_token_hint),
                ("client_id", self.client_id.as_str()),
                ("post_logout_redirect_uri", post_logout_redirect_uri),
            ],
        )
        .ok()
        .map(Into::into)
    }

    /// OpenID Connect Core §3.1.3.7: this issuer's signature, this client as audience, not
    /// expired, and this sign-in's nonce.
    async fn check_id_token(&self, id_token: &str, nonce: &str) -> Result<IdClaims, SignInError> {
        let claims = self
            .verifier
            .id_token_claims(id_token)
            .await
            .map_err(|e| SignInError::IdToken(e.to_string()))?;
        if claims.aud != self.client_id {
            return Err(SignInError::IdToken(
                "it was issued to another client".into(),
            ));
        }
        if claims.exp + self.verifier.leeway_secs() < now_unix() {
            return Err(SignInError::IdToken("it has expired".into()));
        }
        let sent = nonce.as_bytes();
        match claims.nonce.as_deref() {
            Some(got) if bool::from(got.as_bytes().ct_eq(sent)) => Ok(claims),
            _ => Err(SignInError::IdToken(
                "its nonce is not this sign-in's".into(),
            )),
        }
    }

    async fn token_request(&self, form: Vec<(&str, &str)>) -> Result<TokenResponse, SdkError> {
        post_token_form(
            &self.http,
            &self.verifier.metadata().token_endpoint,
            &self.client_id,
            Some(&self.client_secret),
            form,
        )
        .await
    }
}

/// The S256 code challenge of a verifier (RFC 7636 §4.2).
fn pkce_challenge(verifier: &str) -> String {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, verifier.as_bytes());
    URL_SAFE_NO_PAD.encode(digest.as_ref())
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_challenge_is_rfc_7636_appendix_b() {
        assert_eq!(
            super::pkce_challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
    }
}
