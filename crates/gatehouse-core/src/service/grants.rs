//! The token endpoint's grants (RFC 6749 §4.3, §4.4, §6) and refresh-token rotation with reuse
//! detection.

use gatehouse_proto::TokenResponse;
use gatehouse_proto::token::BEARER;

use super::{AuthService, ClientAuth, user_is_usable};
use crate::password::HashSource;
use crate::throttle::{Attempt, Source};
use crate::{
    Client, FamilyFilter, GrantType, OAuthError, OAuthErrorCode, RefreshFamily, RefreshTokenRecord,
    RequestContext, RotateOutcome, ScopeSet, StoreError, User, Write, secret,
};

/// The parameters of a token request, already parsed from the form.
#[derive(Debug, Clone, Default)]
pub struct TokenRequest {
    pub grant_type: Option<String>,
    pub scope: Option<String>,
    pub username: Option<String>,
    pub password: Option<String>,
    pub refresh_token: Option<String>,
    /// `authorization_code`: the code, where it was sent, and the PKCE verifier.
    pub code: Option<String>,
    pub redirect_uri: Option<String>,
    pub code_verifier: Option<String>,
}

/// The one answer to every failed sign-in, wherever it is made.
pub const BAD_LOGIN: &str = "the username or password is incorrect";

/// A session about to be stored: its family, and its first refresh token in the clear and as
/// stored.
pub(super) struct NewFamily {
    pub family: RefreshFamily,
    pub refresh_token: String,
    pub first: RefreshTokenRecord,
}

/// What a sign-in presents besides the password that may make it a source the person has used
/// before (see [`crate::throttle::Source`]).
pub(crate) enum Presented<'a> {
    /// A browser, with its device cookie if it sent one.
    Browser { device_cookie: Option<&'a str> },
    /// The authenticated client of a password grant.
    Client(&'a Client),
}

/// Why a sign-in failed: one answer for every reason, so nobody learns which.
#[derive(Debug, thiserror::Error)]
pub enum LoginError {
    #[error("{BAD_LOGIN}")]
    Failed,
    #[error(transparent)]
    Store(#[from] crate::StoreError),
}
const BAD_REFRESH: &str = "the refresh token is invalid, expired or revoked";

impl AuthService {
    /// `POST /oauth2/token`, rate-limited per client by `admit`.
    pub async fn token(
        &self,
        request: TokenRequest,
        auth: ClientAuth,
        ctx: &RequestContext,
        admit: super::Admit<'_>,
    ) -> Result<(GrantType, TokenResponse), OAuthError> {
        let grant = match request.grant_type.as_deref() {
            None | Some("") => {
                return Err(OAuthError::invalid_request("grant_type is required"));
            }
            Some(name) => name
                .parse::<GrantType>()
                .ok()
                .filter(|g| self.config.accepts_grant(*g))
                .ok_or_else(|| {
                    let supported: Vec<&str> = self
                        .config
                        .grant_types()
                        .into_iter()
                        .map(GrantType::as_str)
                        .collect();
                    OAuthError::new(
                        OAuthErrorCode::UnsupportedGrantType,
                        format!("supported grant types: {}", supported.join(", ")),
                    )
                })?,
        };
        let requested_scope = match request.scope.as_deref() {
            None => None,
            Some(text) => {
                Some(ScopeSet::parse(text).map_err(|e| OAuthError::invalid_scope(e.to_string()))?)
            }
        };
        let client = self.authenticate_client(&auth).await?;
        admit(&client.client).map_err(OAuthError::rate_limited)?;
        if !client.client.allows(grant) {
            return Err(OAuthError::unauthorized_client(format!(
                "this client may not use the {grant} grant"
            )));
        }
        let response = match grant {
            GrantType::ClientCredentials => {
                if client.client.is_public() {
                    return Err(OAuthError::unauthorized_client(
                        "public clients cannot use client_credentials",
                    ));
                }
                let scope = grant_scope(requested_scope, &client.own_scopes)?;
                let roles = (!client.client.roles.is_empty()).then(|| client.client.roles.clone());
                let (access_token, expires_in) = self.issue_access_token(
                    &client.client.id,
                    &client.client.id,
                    &scope,
                    roles,
                    client.client.not_before,
                    None,
                )?;
                TokenResponse {
                    access_token,
                    token_type: BEARER.to_owned(),
                    expires_in,
                    refresh_token: None,
                    scope: Some(scope.to_string()),
                    id_token: None,
                }
            }
            GrantType::Password => {
                let username = required(request.username, "username")?;
                let password = required(request.password, "password")?;
                self.password_grant(&client, &username, &password, requested_scope, ctx)
                    .await?
            }
            GrantType::AuthorizationCode => {
                let code = required(request.code, "code")?;
                let redirect_uri = required(request.redirect_uri, "redirect_uri")?;
                let verifier = required(request.code_verifier, "code_verifier")?;
                self.code_grant(&client, &code, &redirect_uri, &verifier, ctx)
                    .await?
            }
            GrantType::RefreshToken => {
                let token = required(request.refresh_token, "refresh_token")?;
                self.refresh_grant(&client, &token, requested_scope, ctx)
                    .await?
            }
        };
        self.figures.count_issued(grant);
        Ok((grant, response))
    }

    async fn password_grant(
        &self,
        client: &super::clients::CachedClient,
        username: &str,
        password: &str,
        requested: Option<ScopeSet>,
        ctx: &RequestContext,
    ) -> Result<TokenResponse, OAuthError> {
        let user = self
            .verify_login(username, password, Presented::Client(&client.client), ctx)
            .await
            .map_err(|e| match e {
                LoginError::Failed => OAuthError::invalid_grant(BAD_LOGIN),
                LoginError::Store(e) => e.into(),
            })?;
        let mut allowed = self.scopes_of_roles(&user.roles).await?;
        if let Some(limit) = &client.delegation_limit {
            allowed = allowed.intersection(limit);
        }
        let scope = grant_scope(requested, &allowed)?;
        let now = self.now();
        let NewFamily {
            family,
            refresh_token,
            first,
        } = self.new_family(
            secret::random_string(16)?,
            &user.id,
            &client.client.id,
            &scope,
            None,
            ctx,
        )?;
        let mut user_not_before = user.not_before;
        if self.config.single_session {
            // Every earlier session and access token of this person ends, at every gateway; the
            // token issued below carries the cut-off, as stored, as its `iat` and lives.
            let cutoff = self.revocation_cutoff();
            let ended = Write::CutOffUser {
                id: user.id.clone(),
                not_before: cutoff,
                now,
                tokens_expire_by: self.tokens_expire_by(now),
            };
            self.commit(&[ended], || OAuthError::invalid_grant(BAD_LOGIN))
                .await?;
            // Where this cut-off alone leaves the not-before time; anything further means another
            // cut-off (a password change, "revoke all", a concurrent sign-in) came after this
            // sign-in read the user, and this sign-in must not outlive it.
            let ours = crate::model::advance_not_before(user.not_before, cutoff);
            match self.store.user(&user.id).await? {
                Some(now_stored) if now_stored.not_before == ours => user_not_before = ours,
                _ => return Err(OAuthError::invalid_grant(BAD_LOGIN)),
            }
            self.audit(
                "session.replaced",
                Some(&user.id),
                Some(&client.client.id),
                ctx,
                "earlier sessions and tokens ended by the single-session policy",
            )
            .await;
        }
        if !self
            .store
            .create_family(&family, &first, user_not_before)
            .await?
        {
            // Blocked, deleted or cut off while the password was being checked.
            return Err(OAuthError::invalid_grant(BAD_LOGIN));
        }
        let (access_token, expires_in) = self.issue_access_token(
            &user.id,
            &client.client.id,
            &scope,
            self.roles_for(&user, &client.client),
            user_not_before.max(client.client.not_before),
            Some(&family.id),
        )?;
        self.audit(
            "login.success",
            Some(&user.id),
            Some(&client.client.id),
            ctx,
            "",
        )
        .await;
        Ok(TokenResponse {
            access_token,
            token_type: BEARER.to_owned(),
            expires_in,
            refresh_token: Some(refresh_token),
            scope: Some(scope.to_string()),
            id_token: None,
        })
    }

    /// The one password check every sign-in makes (password grant and hosted sign-in page): the
    /// same throttle, lock, hashing queue and audit records, and one answer for every failure.
    ///
    /// The attempt is counted before the password is checked, against the count of its source:
    /// a browser or confidential client the person signed in from before has its own, so guesses
    /// from elsewhere cannot lock the owner out of it.
    pub(crate) async fn verify_login(
        &self,
        username: &str,
        password: &str,
        presented: Presented<'_>,
        ctx: &RequestContext,
    ) -> Result<User, LoginError> {
        let client_id = match &presented {
            Presented::Client(client) => Some(client.id.as_str()),
            Presented::Browser { .. } => None,
        };
        let user = self.store.user_by_username(username).await?;
        let source = self.login_source(user.as_ref(), &presented).await?;
        let attempt = self
            .throttle
            .reserve(username, &source, self.clock.since_epoch());
        let subject = user.as_ref().map(|u| u.id.clone());
        // The hash runs in every case, so a lock or an unknown name costs what a wrong password does.
        let checked = self
            .hasher
            .verify(
                password,
                user.as_ref().map(|u| u.password_hash.as_str()),
                &HashSource {
                    ip: ctx.ip.clone(),
                    // The person's share per source: a flood of guesses at a name from anywhere
                    // cannot take the share of a browser or client its owner signed in from.
                    username: Some(crate::throttle::key(username, &source)),
                },
            )
            .await;
        let matched = match checked {
            Ok(matched) => matched,
            Err(e) => {
                // Not checked (the queue or this source's share is full), yet counted.
                self.audit_lock(
                    &attempt,
                    username,
                    &source,
                    subject.as_deref(),
                    client_id,
                    ctx,
                )
                .await;
                return Err(e.into());
            }
        };
        match user {
            Some(user) if matched && !attempt.locked && user_is_usable(&user) => {
                self.throttle.record_success(username, &source);
                self.figures.count_sign_in(true);
                Ok(user)
            }
            other => {
                let detail = match &other {
                    _ if attempt.locked => "username locked after repeated failures",
                    None => "unknown username",
                    Some(u) if !user_is_usable(u) => "blocked user",
                    Some(_) => "wrong password",
                };
                self.figures.count_sign_in(false);
                self.audit("login.failure", subject.as_deref(), client_id, ctx, detail)
                    .await;
                self.audit_lock(
                    &attempt,
                    username,
                    &source,
                    subject.as_deref(),
                    client_id,
                    ctx,
                )
                .await;
                tokio::time::sleep(attempt.delay).await;
                Err(LoginError::Failed)
            }
        }
    }

    /// Records the lock a failed attempt started, if it did.
    pub(super) async fn audit_lock(
        &self,
        attempt: &Attempt,
        username: &str,
        source: &Source,
        subject: Option<&str>,
        client_id: Option<&str>,
        ctx: &RequestContext,
    ) {
        if attempt.locks {
            self.audit(
                "login.locked",
                subject,
                client_id,
                ctx,
                &format!(
                    "username {:?} locked after repeated failures {}",
                    username.chars().take(64).collect::<String>(),
                    source.describe()
                ),
            )
            .await;
        }
    }

    /// Which count an attempt goes to: a browser's device cookie issued to this person, or a
    /// confidential client this person has a session with (or had), is a source of its own;
    /// anything else is anyone.
    async fn login_source(
        &self,
        user: Option<&User>,
        presented: &Presented<'_>,
    ) -> Result<Source, StoreError> {
        match presented {
            Presented::Browser {
                device_cookie: Some(cookie),
            } => Ok(user
                .and_then(|user| self.device_nonce(cookie, user))
                .map_or(Source::Untrusted, Source::Device)),
            // A public client can be anyone: only a client that proved its secret vouches.
            Presented::Client(client) if !client.is_public() => {
                // Looked up for unknown names too, so the answer takes as long.
                let filter = FamilyFilter {
                    user_id: Some(user.map_or_else(String::new, |u| u.id.clone())),
                    client_id: Some(client.id.clone()),
                };
                let used_before = !self.store.list_families(&filter, "", 1).await?.is_empty();
                Ok(if used_before && user.is_some() {
                    Source::Client(client.id.clone())
                } else {
                    Source::Untrusted
                })
            }
            _ => Ok(Source::Untrusted),
        }
    }

    /// A new sign-in session (refresh family) and its first refresh token, not yet stored.
    pub(super) fn new_family(
        &self,
        id: String,
        user_id: &str,
        client_id: &str,
        scope: &ScopeSet,
        browser_session_id: Option<String>,
        ctx: &RequestContext,
    ) -> Result<NewFamily, OAuthError> {
        let now = self.now();
        let family = RefreshFamily {
            id,
            user_id: user_id.to_owned(),
            client_id: client_id.to_owned(),
            scope: scope.to_string(),
            created_at: now,
            last_used_at: now,
            expires_at: now + self.config.refresh_family_lifetime_secs as i64,
            revoked_at: None,
            ip: ctx.ip.clone(),
            user_agent: ctx.user_agent.clone(),
            browser_session_id,
        };
        let refresh_token = secret::random_secret()?;
        let first = RefreshTokenRecord {
            hash: secret::hash_secret(&refresh_token),
            family_id: family.id.clone(),
            created_at: now,
            expires_at: self.refresh_expiry(now, &family),
            rotated_at: None,
        };
        Ok(NewFamily {
            family,
            refresh_token,
            first,
        })
    }

    fn refresh_expiry(&self, now: i64, family: &RefreshFamily) -> i64 {
        (now + self.config.refresh_token_ttl_secs as i64).min(family.expires_at)
    }

    async fn refresh_grant(
        &self,
        client: &super::clients::CachedClient,
        presented: &str,
        requested: Option<ScopeSet>,
        ctx: &RequestContext,
    ) -> Result<TokenResponse, OAuthError> {
        let client_id = client.client.id.as_str();
        let now = self.now();
        let hash = secret::hash_secret(presented);
        let Some((record, family)) = self.store.refresh_token(&hash).await? else {
            return Err(OAuthError::invalid_grant(BAD_REFRESH));
        };
        if family.client_id != client_id
            || family.revoked_at.is_some()
            || family.expires_at <= now
            || record.expires_at <= now
        {
            return Err(OAuthError::invalid_grant(BAD_REFRESH));
        }
        let user = match self.store.user(&family.user_id).await? {
            // Every path that moves a user's not-before time also revokes their families.
            Some(u) if user_is_usable(&u) => u,
            _ => return Err(OAuthError::invalid_grant(BAD_REFRESH)),
        };
        let family_scope = ScopeSet::parse(&family.scope)
            .map_err(|e| crate::StoreError::Corrupt(e.to_string()))?;
        // Roles and the client may have changed since the login: never grant more than they
        // allow now (the identity scopes of a browser sign-in stay).
        let still_allowed = family_scope.intersection(&self.browser_allowed(&user, client).await?);
        let scope = grant_scope(requested, &still_allowed)?;

        let successor = secret::derive_token(&self.refresh_successor_key, presented);
        let successor_record = RefreshTokenRecord {
            hash: secret::hash_secret(&successor),
            family_id: family.id.clone(),
            created_at: now,
            expires_at: self.refresh_expiry(now, &family),
            rotated_at: None,
        };
        let outcome = match record.rotated_at {
            None => {
                self.store
                    .rotate_refresh_token(&hash, &successor_record, now)
                    .await?
            }
            Some(_) => RotateOutcome::AlreadyRotated,
        };
        if outcome == RotateOutcome::AlreadyRotated {
            // A family revoked meanwhile (logout, password change, an earlier reuse verdict) is
            // simply over; anything else is a duplicate inside the grace window, or reuse.
            let revoked = self
                .store
                .refresh_token(&hash)
                .await?
                .is_none_or(|(_, f)| f.revoked_at.is_some());
            if revoked {
                return Err(OAuthError::invalid_grant(BAD_REFRESH));
            }
            if !self
                .is_concurrent_duplicate(&hash, &successor_record.hash, now)
                .await?
            {
                self.handle_reuse(&family, ctx).await?;
                return Err(OAuthError::invalid_grant(BAD_REFRESH));
            }
        }
        let (access_token, expires_in) = self.issue_access_token(
            &user.id,
            client_id,
            &scope,
            self.roles_for(&user, &client.client),
            user.not_before.max(client.client.not_before),
            Some(&family.id),
        )?;
        Ok(TokenResponse {
            access_token,
            token_type: BEARER.to_owned(),
            expires_in,
            refresh_token: Some(successor),
            scope: Some(scope.to_string()),
            id_token: None,
        })
    }

    /// A rotated token presented again is a harmless duplicate only if it was rotated within the
    /// grace window and its successor is still the family's live token.
    async fn is_concurrent_duplicate(
        &self,
        old_hash: &str,
        successor_hash: &str,
        now: i64,
    ) -> Result<bool, OAuthError> {
        let Some((old, _)) = self.store.refresh_token(old_hash).await? else {
            return Ok(false);
        };
        let within_grace = old
            .rotated_at
            .is_some_and(|at| now - at < self.config.refresh_reuse_grace_secs as i64);
        if !within_grace {
            return Ok(false);
        }
        let successor_live = self
            .store
            .refresh_token(successor_hash)
            .await?
            .is_some_and(|(s, _)| s.rotated_at.is_none());
        Ok(successor_live)
    }

    /// Reuse of a rotated refresh token means it was stolen (or the client is broken): end every
    /// session of the user and every access token issued to them so far.
    async fn handle_reuse(
        &self,
        family: &RefreshFamily,
        ctx: &RequestContext,
    ) -> Result<(), OAuthError> {
        let now = self.now();
        let ended = Write::CutOffUser {
            id: family.user_id.clone(),
            not_before: self.revocation_cutoff(),
            now,
            tokens_expire_by: self.tokens_expire_by(now),
        };
        // A user deleted meanwhile has nothing left to end.
        self.commit(&[ended], || OAuthError::invalid_grant(BAD_REFRESH))
            .await?;
        tracing::warn!(
            user = %family.user_id,
            family = %family.id,
            "refresh token reuse detected; revoked every session of the user"
        );
        self.audit(
            "refresh.reuse_detected",
            Some(&family.user_id),
            Some(&family.client_id),
            ctx,
            &format!(
                "family {}; every session and token of the user revoked",
                family.id
            ),
        )
        .await;
        Ok(())
    }
}

pub(super) fn required(value: Option<String>, name: &str) -> Result<String, OAuthError> {
    match value {
        Some(v) if !v.is_empty() => Ok(v),
        _ => Err(OAuthError::invalid_request(format!("{name} is required"))),
    }
}

/// RFC 6749 §3.3: the requested scope must be within what is allowed; none requested means all.
pub(super) fn grant_scope(
    requested: Option<ScopeSet>,
    allowed: &ScopeSet,
) -> Result<ScopeSet, OAuthError> {
    match requested {
        None => Ok(allowed.clone()),
        Some(asked) if asked.is_empty() => Ok(allowed.clone()),
        Some(asked) => {
            let outside: Vec<&str> = asked.outside(allowed).collect();
            if outside.is_empty() {
                Ok(asked)
            } else {
                Err(OAuthError::invalid_scope(format!(
                    "not allowed for this client: {}",
                    outside.join(" ")
                )))
            }
        }
    }
}
