//! The other half of browser sign-in: exchanging a code at the token endpoint (RFC 6749 §4.1.3,
//! RFC 7636 §4.6) with its ID token (OpenID Connect Core §3.1.3), `/oauth2/userinfo` (§5.3), and
//! RP-initiated logout (OpenID Connect RP-Initiated Logout 1.0).

use gatehouse_proto::token::BEARER;
use gatehouse_proto::{TokenResponse, UserInfo};
use gatehouse_token::IdClaims;

use super::browser::SignedIn;
use super::clients::CachedClient;
use super::grants::NewFamily;
use super::{AuthService, user_is_usable};
use crate::authorization::{pkce_matches, redirect_with};
use crate::{OAuthError, RequestContext, ScopeSet, TokenProblem, Write, secret};

const BAD_CODE: &str = "the authorization code is invalid, expired or already used";

/// The parameters of a logout request (RP-Initiated Logout §2), as sent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogoutParams {
    pub id_token_hint: Option<String>,
    pub client_id: Option<String>,
    pub post_logout_redirect_uri: Option<String>,
    pub state: Option<String>,
}

/// What a logout request asks for, once checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogoutPlan {
    /// The browser session to end: this browser's own, if it is signed in.
    pub end_session: Option<String>,
    /// The person the session belongs to, for the audit log.
    pub user_id: Option<String>,
    /// Where to send the browser afterwards, with `state`.
    pub redirect: Option<String>,
    /// The request cannot prove it comes from the application this browser signed in to: the
    /// person confirms first, so no page elsewhere can sign them out unawares.
    pub confirm: bool,
    /// The application's name, for the confirmation page.
    pub client_name: Option<String>,
}

impl AuthService {
    /// `grant_type=authorization_code`: the code is checked against everything it was bound to,
    /// used once, and exchanged for an access token, a refresh token and, for `openid`, an ID
    /// token. A code presented again ends the session its first use started (RFC 6749 §4.1.2).
    pub(super) async fn code_grant(
        &self,
        client: &CachedClient,
        code: &str,
        redirect_uri: &str,
        verifier: &str,
        ctx: &RequestContext,
    ) -> Result<TokenResponse, OAuthError> {
        let now = self.now();
        let hash = secret::hash_secret(code);
        let Some(record) = self.store.authorization_code(&hash).await? else {
            return Err(OAuthError::invalid_grant(BAD_CODE));
        };
        if record.client_id != client.client.id {
            return Err(OAuthError::invalid_grant(BAD_CODE));
        }
        if record.used_at.is_some() {
            self.code_replayed(&record.hash, ctx).await?;
            return Err(OAuthError::invalid_grant(BAD_CODE));
        }
        if record.expires_at <= now {
            return Err(OAuthError::invalid_grant(BAD_CODE));
        }
        if record.redirect_uri != redirect_uri {
            return Err(OAuthError::invalid_grant(
                "redirect_uri differs from the authorization request's",
            ));
        }
        if !pkce_matches(verifier, &record.code_challenge) {
            return Err(OAuthError::invalid_grant(
                "code_verifier does not match the code_challenge",
            ));
        }
        // Blocked, or cut off (password change, "revoke all") since signing in: nothing issued.
        let user = match self.store.user(&record.user_id).await? {
            Some(u) if user_is_usable(&u) && record.auth_time >= u.not_before => u,
            _ => return Err(OAuthError::invalid_grant(BAD_CODE)),
        };
        // Roles may have changed since the consent: never more than they allow now.
        let granted = ScopeSet::parse(&record.scope)
            .map_err(|e| crate::StoreError::Corrupt(e.to_string()))?;
        let scope = granted.intersection(&self.browser_allowed(&user, client).await?);
        let NewFamily {
            family,
            refresh_token,
            first,
        } = self.new_family(
            secret::random_string(16)?,
            &user.id,
            &client.client.id,
            &scope,
            Some(record.browser_session_id.clone()),
            ctx,
        )?;
        // The session is stored before the code is marked used, so a replay that sees the mark
        // always finds the session to end. Nothing is handed out until both are done.
        if !self
            .store
            .create_family(&family, &first, user.not_before)
            .await?
        {
            return Err(OAuthError::invalid_grant(BAD_CODE));
        }
        let redeemed = self
            .store
            .redeem_authorization_code(&hash, &family.id, now)
            .await?;
        // The person may have signed out since the code was issued. Checked after the session is
        // stored: a sign-out from now on ends it (it names the browser session), and one before
        // now is seen here.
        let browser_live = redeemed
            && self
                .store
                .browser_sessions_of(&user.id, now)
                .await?
                .iter()
                .any(|s| s.id == record.browser_session_id);
        if !browser_live {
            self.end_session(&family.id).await?;
            if !redeemed {
                // Used by a concurrent request a moment ago: a replay all the same.
                self.code_replayed(&record.hash, ctx).await?;
            }
            return Err(OAuthError::invalid_grant(BAD_CODE));
        }
        let (access_token, expires_in) = self.issue_access_token(
            &user.id,
            &client.client.id,
            &scope,
            self.roles_for(&user, &client.client),
            user.not_before.max(client.client.not_before),
            Some(&family.id),
        )?;
        let id_token = if scope.contains("openid") {
            let signer = self.key_view().signer.clone();
            let claims = IdClaims {
                iss: self.config.issuer.clone(),
                sub: user.id.clone(),
                aud: client.client.id.clone(),
                exp: now + self.config.id_token_ttl_secs as i64,
                iat: now,
                // A sign-in just after a cut-off is dated a second ahead; never claim the future.
                auth_time: record.auth_time.min(now),
                nonce: record.nonce.clone(),
                at_hash: Some(signer.algorithm().token_hash(&access_token)),
                sid: Some(record.browser_session_id.clone()),
            };
            Some(signer.sign_id_token(&claims).map_err(|e| {
                tracing::error!(error = %e, "signing an ID token failed");
                OAuthError::server_error()
            })?)
        } else {
            None
        };
        Ok(TokenResponse {
            access_token,
            token_type: BEARER.to_owned(),
            expires_in,
            refresh_token: Some(refresh_token),
            scope: Some(scope.to_string()),
            id_token,
        })
    }

    /// A used code came back: whoever holds it may have stolen it, so the session its first use
    /// started ends, with its tokens.
    async fn code_replayed(&self, hash: &str, ctx: &RequestContext) -> Result<(), OAuthError> {
        let Some(record) = self.store.authorization_code(hash).await? else {
            return Ok(());
        };
        if let Some(family_id) = &record.family_id {
            self.end_session(family_id).await?;
        }
        self.audit(
            "authorization_code.replayed",
            Some(&record.user_id),
            Some(&record.client_id),
            ctx,
            "a used code was presented again; the session it started was ended",
        )
        .await;
        Ok(())
    }

    /// Ends one session (refresh family) with its access tokens; one already ended is no error.
    async fn end_session(&self, family_id: &str) -> Result<(), crate::StoreError> {
        let now = self.now();
        let ended = Write::RevokeSession {
            id: family_id.to_owned(),
            now,
            until: self.tokens_expire_by(now),
        };
        self.store.commit(&[ended]).await.map(|_| ())
    }

    /// `/oauth2/userinfo`: the claims a person's `openid` token may read, by its scopes.
    pub async fn userinfo(&self, token: &str) -> Result<UserInfo, TokenProblem> {
        let live = self.check_access_token(token).await?;
        let Some(user) = live.user else {
            return Err(TokenProblem::InsufficientScope(
                "userinfo needs a person's token, not a client's".into(),
            ));
        };
        let scopes: Vec<&str> = live.claims.scopes().collect();
        if !scopes.contains(&"openid") {
            return Err(TokenProblem::InsufficientScope(
                "the token was not issued for scope openid".into(),
            ));
        }
        let email = scopes.contains(&"email");
        Ok(UserInfo {
            sub: user.id.clone(),
            preferred_username: scopes.contains(&"profile").then(|| user.username.clone()),
            email: email.then(|| user.email.clone()),
            // Gatehouse does not verify addresses yet.
            email_verified: email.then_some(false),
        })
    }

    /// Checks a logout request: the ID token, if any, must be ours; a post-logout redirect must
    /// be one the client registered, exactly. `Err` is shown on a page, never redirected.
    pub async fn plan_logout(
        &self,
        params: &LogoutParams,
        current: Option<&SignedIn>,
    ) -> Result<LogoutPlan, OAuthError> {
        let hint = match params.id_token_hint.as_deref() {
            None => None,
            Some(token) => Some(
                self.key_view()
                    .verifier
                    .verify_id_token_hint(token)
                    .map_err(|_| {
                        OAuthError::invalid_request(
                            "id_token_hint is not an ID token this server issued",
                        )
                    })?,
            ),
        };
        let client_id = match (params.client_id.as_deref(), hint.as_ref()) {
            (Some(given), Some(h)) if given != h.aud => {
                return Err(OAuthError::invalid_request(
                    "client_id is not the audience of id_token_hint",
                ));
            }
            (Some(given), _) => Some(given.to_owned()),
            (None, Some(h)) => Some(h.aud.clone()),
            (None, None) => None,
        };
        let client = match &client_id {
            Some(id) => self
                .cached_client(id)
                .await?
                .filter(|c| c.client.blocked_at.is_none()),
            None => None,
        };
        let redirect = match params.post_logout_redirect_uri.as_deref() {
            None => None,
            Some(uri) => {
                let registered = client
                    .as_ref()
                    .is_some_and(|c| c.client.post_logout_redirect_uris.iter().any(|r| r == uri));
                if !registered {
                    return Err(OAuthError::invalid_request(
                        "post_logout_redirect_uri is not one the client registered",
                    ));
                }
                let mut answer = Vec::new();
                if let Some(state) = params.state.as_deref() {
                    answer.push(("state", state));
                }
                Some(redirect_with(uri, &answer).ok_or_else(|| {
                    OAuthError::invalid_request("post_logout_redirect_uri does not parse")
                })?)
            }
        };
        // The ID token proves the request comes from the application this browser signed in to
        // (or, with no sign-in here, from one the person signed in to). Anything else is
        // confirmed by the person first, so no page elsewhere can sign them out unawares or
        // bounce them to an address without their seeing it.
        let proven = hint.as_ref().is_some_and(|h| {
            current.is_none_or(|c| h.sid.as_deref() == Some(c.session.id.as_str()))
        });
        let confirm = !proven && (current.is_some() || redirect.is_some());
        // Only this browser's own sign-in ends here: an ID token alone ends nothing.
        let (end_session, user_id) = match current {
            Some(signed_in) => (
                Some(signed_in.session.id.clone()),
                Some(signed_in.user.id.clone()),
            ),
            None => (None, None),
        };
        Ok(LogoutPlan {
            end_session,
            user_id,
            redirect,
            confirm,
            client_name: client.map(|c| c.client.name.clone()),
        })
    }
}
