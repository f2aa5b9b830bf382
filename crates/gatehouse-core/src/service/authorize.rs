//! The authorization endpoint (RFC 6749 §4.1, OpenID Connect Core §3.1.2): checking a request,
//! deciding whether the person must sign in or consent first, and issuing the code.

use std::sync::Arc;

use super::AuthService;
use super::browser::SignedIn;
use super::clients::CachedClient;
use super::grants::grant_scope;
use crate::authorization::{
    AuthorizationParams, MAX_PARAM_LEN, Prompt, check_code_challenge, parse_max_age,
    redirect_matches, redirect_with,
};
use crate::{
    AuthorizationCode, Consent, GrantType, OAuthError, OAuthErrorCode, RequestContext, ScopeSet,
    StoreError, User, secret,
};

/// Scopes of OpenID Connect that every person may grant: they name the person, nothing more.
pub const IDENTITY_SCOPES: [&str; 3] = ["openid", "profile", "email"];

/// Why an authorization request went no further.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthorizeError {
    /// Shown to the person and never redirected: the client is unknown or blocked, or the
    /// redirect URI is not one it registered, so nobody can be trusted with the answer
    /// (RFC 6749 §4.1.2.1).
    Page(OAuthError),
    /// Sent back to the client: this URL carries the error, `state` and `iss`.
    Redirect(String),
}

impl From<StoreError> for AuthorizeError {
    fn from(e: StoreError) -> Self {
        Self::Page(e.into())
    }
}

/// An authorization request that passed every check that needs no person.
#[derive(Debug, Clone)]
pub struct AuthorizationRequest {
    /// As sent, to carry through the sign-in and consent pages.
    pub params: AuthorizationParams,
    pub client: Arc<CachedClient>,
    pub redirect_uri: String,
    pub state: Option<String>,
    /// `None`: no scope was asked for.
    pub scope: Option<ScopeSet>,
    pub code_challenge: String,
    pub nonce: Option<String>,
    pub prompt: Prompt,
    pub max_age: Option<i64>,
    pub login_hint: Option<String>,
}

/// What the browser sees next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NextStep {
    /// The person must sign in (again) first.
    SignIn,
    /// The person must allow the client these scopes.
    Consent { scopes: ScopeSet },
    /// Done: send the browser here, with the code or with an error for the client.
    Redirect(String),
}

impl AuthService {
    /// Checks an authorization request as far as it can be checked before anyone signs in.
    pub async fn authorization_request(
        &self,
        params: AuthorizationParams,
    ) -> Result<AuthorizationRequest, AuthorizeError> {
        let page = |description: &str| {
            AuthorizeError::Page(OAuthError::invalid_request(description.to_owned()))
        };
        if let Some(name) = params.repeated.as_deref()
            && matches!(name, "client_id" | "redirect_uri")
        {
            return Err(page(&format!("{name} was given more than once")));
        }
        let client_id = params
            .client_id
            .as_deref()
            .ok_or_else(|| page("client_id is required"))?;
        let redirect_uri = params
            .redirect_uri
            .clone()
            .ok_or_else(|| page("redirect_uri is required"))?;
        if client_id.len() > MAX_PARAM_LEN || redirect_uri.len() > MAX_PARAM_LEN {
            return Err(page("a parameter is too long"));
        }
        let client = match self.cached_client(client_id).await? {
            Some(c) if c.client.blocked_at.is_none() => c,
            _ => {
                return Err(AuthorizeError::Page(OAuthError::invalid_client(
                    "the client is unknown or not allowed to sign people in",
                )));
            }
        };
        if !redirect_matches(&client.client.redirect_uris, &redirect_uri) {
            return Err(page(
                "redirect_uri is not one this client registered; nobody was sent anywhere",
            ));
        }
        // From here on, errors go back to the client, except for a client that registered
        // itself: its redirect URI is anyone's, and a malformed request must not make this
        // server bounce a browser there unseen (RFC 9700 §4.11.2).
        let state = params.state.clone();
        let trusted = !client.client.is_self_registered();
        let fail = |code: OAuthErrorCode, description: String| {
            let error = OAuthError::new(code, description);
            if trusted {
                AuthorizeError::Redirect(self.error_redirect(
                    &redirect_uri,
                    state.as_deref(),
                    &error,
                ))
            } else {
                AuthorizeError::Page(error)
            }
        };
        let invalid = |description: &str| fail(OAuthErrorCode::InvalidRequest, description.into());
        if let Some(name) = &params.repeated {
            return Err(invalid(&format!("{name} was given more than once")));
        }
        if params
            .to_pairs()
            .iter()
            .any(|(_, value)| value.len() > MAX_PARAM_LEN)
        {
            return Err(invalid("a parameter is too long"));
        }
        if params.request.is_some() {
            return Err(fail(
                OAuthErrorCode::RequestNotSupported,
                "request objects are not supported".into(),
            ));
        }
        if params.request_uri.is_some() {
            return Err(fail(
                OAuthErrorCode::RequestUriNotSupported,
                "request_uri is not supported".into(),
            ));
        }
        match params.response_type.as_deref() {
            None => return Err(invalid("response_type is required")),
            Some("code") => {}
            Some(_) => {
                return Err(fail(
                    OAuthErrorCode::UnsupportedResponseType,
                    "only response_type=code is supported".into(),
                ));
            }
        }
        if params
            .response_mode
            .as_deref()
            .is_some_and(|m| m != "query")
        {
            return Err(invalid("only response_mode=query is supported"));
        }
        if !client.client.allows(GrantType::AuthorizationCode) {
            return Err(fail(
                OAuthErrorCode::UnauthorizedClient,
                "this client may not use the authorization_code grant".into(),
            ));
        }
        let code_challenge = params
            .code_challenge
            .clone()
            .ok_or_else(|| invalid("code_challenge is required (PKCE with S256)"))?;
        if params.code_challenge_method.as_deref() != Some("S256") {
            return Err(invalid("code_challenge_method must be S256"));
        }
        check_code_challenge(&code_challenge).map_err(|e| invalid(&e))?;
        let scope = params
            .scope
            .as_deref()
            .map(ScopeSet::parse)
            .transpose()
            .map_err(|e| fail(OAuthErrorCode::InvalidScope, e.to_string()))?;
        let prompt = Prompt::parse(params.prompt.as_deref()).map_err(|e| invalid(&e))?;
        let max_age = parse_max_age(params.max_age.as_deref()).map_err(|e| invalid(&e))?;
        Ok(AuthorizationRequest {
            client,
            redirect_uri,
            scope,
            code_challenge,
            nonce: params.nonce.clone(),
            login_hint: params.login_hint.clone(),
            prompt,
            max_age,
            state,
            params,
        })
    }

    /// What happens next for a checked request, given who (if anyone) this browser has signed in.
    pub async fn authorize(
        &self,
        request: &AuthorizationRequest,
        signed_in: Option<&SignedIn>,
    ) -> Result<NextStep, StoreError> {
        let now = self.now();
        let fresh_enough = |s: &SignedIn| {
            !request.prompt.login
                && request
                    .max_age
                    .is_none_or(|max_age| now - s.session.auth_time <= max_age)
        };
        let Some(signed_in) = signed_in.filter(|s| fresh_enough(s)) else {
            return Ok(if request.prompt.none {
                NextStep::Redirect(self.request_error(
                    request,
                    OAuthErrorCode::LoginRequired,
                    "the person is not signed in",
                ))
            } else {
                NextStep::SignIn
            });
        };
        let scopes = match self.browser_scope(&signed_in.user, request).await? {
            Ok(scopes) => scopes,
            Err(error) => return Ok(NextStep::Redirect(self.error_redirect_for(request, &error))),
        };
        if self
            .needs_consent(request, &signed_in.user, &scopes)
            .await?
        {
            return Ok(if request.prompt.none {
                NextStep::Redirect(self.request_error(
                    request,
                    OAuthErrorCode::ConsentRequired,
                    "the person has not allowed this client these scopes",
                ))
            } else {
                NextStep::Consent { scopes }
            });
        }
        self.issue_code(request, signed_in, &scopes)
            .await
            .map(NextStep::Redirect)
    }

    /// The person's answer on the consent page; returns where to send the browser.
    pub async fn decide_consent(
        &self,
        request: &AuthorizationRequest,
        signed_in: &SignedIn,
        allow: bool,
        ctx: &RequestContext,
    ) -> Result<String, StoreError> {
        let user = &signed_in.user;
        let client_id = request.client.client.id.as_str();
        if !allow {
            self.audit("consent.denied", Some(&user.id), Some(client_id), ctx, "")
                .await;
            return Ok(self.request_error(
                request,
                OAuthErrorCode::AccessDenied,
                "the person did not allow access",
            ));
        }
        let scopes = match self.browser_scope(user, request).await? {
            Ok(scopes) => scopes,
            Err(error) => return Ok(self.error_redirect_for(request, &error)),
        };
        let remembered = match self.store.consent(&user.id, client_id).await? {
            Some(earlier) => earlier.scope.union(&scopes),
            None => scopes.clone(),
        };
        self.store
            .save_consent(&Consent {
                user_id: user.id.clone(),
                client_id: client_id.to_owned(),
                scope: remembered,
                granted_at: self.now(),
            })
            .await?;
        self.audit(
            "consent.granted",
            Some(&user.id),
            Some(client_id),
            ctx,
            &scopes.to_string(),
        )
        .await;
        self.issue_code(request, signed_in, &scopes).await
    }

    /// The scope a code for this person may carry: what their roles allow (within what the
    /// client may ask for) plus the identity scopes; no scope asked for means the roles' scopes.
    async fn browser_scope(
        &self,
        user: &User,
        request: &AuthorizationRequest,
    ) -> Result<Result<ScopeSet, OAuthError>, StoreError> {
        let allowed = self.browser_allowed(user, &request.client).await?;
        Ok(match request.scope.clone().filter(|s| !s.is_empty()) {
            Some(asked) => grant_scope(Some(asked), &allowed),
            // The identity scopes only when asked for: they make the answer an OpenID one.
            None => Ok(allowed.intersection(&self.scopes_of_roles(&user.roles).await?)),
        })
    }

    /// The most a person may grant a client through the browser: their roles' scopes and the
    /// identity scopes, within what the client may ask for.
    pub(super) async fn browser_allowed(
        &self,
        user: &User,
        client: &CachedClient,
    ) -> Result<ScopeSet, StoreError> {
        let identity = ScopeSet::from_tokens(IDENTITY_SCOPES)
            .map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let allowed = self.scopes_of_roles(&user.roles).await?.union(&identity);
        Ok(match &client.delegation_limit {
            Some(limit) => allowed.intersection(limit),
            None => allowed,
        })
    }

    async fn needs_consent(
        &self,
        request: &AuthorizationRequest,
        user: &User,
        scopes: &ScopeSet,
    ) -> Result<bool, StoreError> {
        if request.client.client.skip_consent {
            return Ok(false);
        }
        if request.prompt.consent {
            return Ok(true);
        }
        let given = self
            .store
            .consent(&user.id, &request.client.client.id)
            .await?;
        Ok(!given.is_some_and(|c| scopes.is_subset(&c.scope)))
    }

    async fn issue_code(
        &self,
        request: &AuthorizationRequest,
        signed_in: &SignedIn,
        scopes: &ScopeSet,
    ) -> Result<String, StoreError> {
        let now = self.now();
        let code = secret::random_secret()?;
        self.store
            .insert_authorization_code(&AuthorizationCode {
                hash: secret::hash_secret(&code),
                client_id: request.client.client.id.clone(),
                user_id: signed_in.user.id.clone(),
                redirect_uri: request.redirect_uri.clone(),
                code_challenge: request.code_challenge.clone(),
                nonce: request.nonce.clone(),
                scope: scopes.to_string(),
                auth_time: signed_in.session.auth_time,
                browser_session_id: signed_in.session.id.clone(),
                created_at: now,
                expires_at: now + self.config.authorization_code_ttl_secs as i64,
                used_at: None,
                family_id: None,
            })
            .await?;
        let mut answer = vec![("code", code.as_str())];
        if let Some(state) = request.state.as_deref() {
            answer.push(("state", state));
        }
        answer.push(("iss", &self.config.issuer));
        redirect_with(&request.redirect_uri, &answer)
            .ok_or_else(|| StoreError::Corrupt("a registered redirect URI does not parse".into()))
    }

    fn request_error(
        &self,
        request: &AuthorizationRequest,
        code: OAuthErrorCode,
        description: &'static str,
    ) -> String {
        self.error_redirect_for(request, &OAuthError::new(code, description))
    }

    fn error_redirect_for(&self, request: &AuthorizationRequest, error: &OAuthError) -> String {
        self.error_redirect(&request.redirect_uri, request.state.as_deref(), error)
    }

    /// An error response to the client's redirect URI (RFC 6749 §4.1.2.1), with `iss` (RFC 9207).
    fn error_redirect(
        &self,
        redirect_uri: &str,
        state: Option<&str>,
        error: &OAuthError,
    ) -> String {
        let mut answer = vec![
            ("error", error.code.as_str()),
            ("error_description", error.description.as_ref()),
        ];
        if let Some(state) = state {
            answer.push(("state", state));
        }
        answer.push(("iss", &self.config.issuer));
        // Only registered (so parseable) URIs get here; the fallback is never sent anywhere.
        redirect_with(redirect_uri, &answer).unwrap_or_else(|| redirect_uri.to_owned())
    }
}
