//! What happens to tokens after they are issued: the one check every token-accepting place uses,
//! revocation (RFC 7009) and introspection (RFC 7662).

use std::sync::Arc;

use gatehouse_proto::Introspection;
use gatehouse_proto::token::BEARER;
use gatehouse_token::AccessClaims;

use super::clients::CachedClient;
use super::{AuthService, ClientAuth, user_is_usable};
use crate::{OAuthError, RequestContext, RevokedToken, TokenProblem, User, Write, secret};

/// An access token that passed every check, with what it speaks for.
#[derive(Debug)]
pub struct LiveToken {
    pub claims: AccessClaims,
    pub client: Arc<CachedClient>,
    /// The person the token was issued to; `None` for a machine token.
    pub user: Option<User>,
}

const REVOKED: &str = "the token has been revoked";

/// The scope that lets a client introspect access tokens issued to other clients (a resource
/// server or gateway checking the tokens presented to it). Only an operator grants it: dynamic
/// registration refuses to ask for it.
pub const INTROSPECT_SCOPE: &str = "introspect";

/// A JWT has three dot-separated parts; our refresh tokens are one base64url string.
fn looks_like_jwt(token: &str) -> bool {
    token.bytes().filter(|b| *b == b'.').count() == 2
}

impl AuthService {
    /// The check every place that accepts an access token makes: signature, type, issuer,
    /// audience and lifetime; not revoked by `jti`, nor with its sign-in session; client and user
    /// still exist, are not blocked, and did not move their not-before time past the token's
    /// `iat`.
    pub async fn check_access_token(&self, token: &str) -> Result<LiveToken, TokenProblem> {
        let now = self.now();
        let (claims, _) = self
            .keys
            .view(now)
            .verifier
            .verify_keyed_at(token, now)
            .map_err(|e| TokenProblem::Invalid(e.to_string().into()))?;
        if self.store.access_token_revoked(&claims.jti).await? {
            return Err(TokenProblem::Invalid(REVOKED.into()));
        }
        let client = self
            .cached_client(&claims.client_id)
            .await?
            .ok_or(TokenProblem::Invalid(REVOKED.into()))?;
        if client.client.blocked_at.is_some() || claims.iat < client.client.not_before {
            return Err(TokenProblem::Invalid(REVOKED.into()));
        }
        // A person's token dies with its sign-in session (logout, session revoked).
        if let Some(sid) = &claims.sid {
            match self.store.family(sid).await? {
                Some(family) if family.revoked_at.is_none() => {}
                _ => return Err(TokenProblem::Invalid(REVOKED.into())),
            }
        }
        // client_credentials tokens are issued with the client as their subject.
        let user = if claims.sub == claims.client_id {
            None
        } else {
            match self.store.user(&claims.sub).await? {
                Some(u) if user_is_usable(&u) && claims.iat >= u.not_before => Some(u),
                _ => return Err(TokenProblem::Invalid(REVOKED.into())),
            }
        };
        Ok(LiveToken {
            claims,
            client,
            user,
        })
    }

    /// `POST /oauth2/revoke` (RFC 7009). Unknown, malformed and expired tokens are fine: there is
    /// nothing to revoke, and the answer must not tell a caller which tokens exist. Rate-limited per
    /// client by `admit`.
    pub async fn revoke(
        &self,
        auth: ClientAuth,
        token: Option<String>,
        ctx: &RequestContext,
        admit: super::Admit<'_>,
    ) -> Result<(), OAuthError> {
        let client = self.authenticate_client(&auth).await?;
        admit(&client.client).map_err(OAuthError::rate_limited)?;
        let token = token.ok_or_else(|| OAuthError::invalid_request("token is required"))?;
        let client_id = &client.client.id;
        if looks_like_jwt(&token) {
            let now = self.now();
            let Ok((claims, _)) = self.keys.view(now).verifier.verify_keyed_at(&token, now) else {
                return Ok(());
            };
            if &claims.client_id != client_id {
                return Err(not_yours());
            }
            let revoked = Write::RevokeAccessToken(RevokedToken {
                jti: claims.jti.clone(),
                subject: claims.sub.clone(),
                client_id: claims.client_id.clone(),
                expires_at: claims.exp,
                revoked_at: self.now(),
            });
            self.commit(&[revoked], OAuthError::server_error).await?;
            self.audit_revocation(
                &claims.sub,
                client_id,
                ctx,
                &format!("access token {}", claims.jti),
            )
            .await;
        } else {
            let Some((_, family)) = self
                .store
                .refresh_token(&secret::hash_secret(&token))
                .await?
            else {
                return Ok(());
            };
            if &family.client_id != client_id {
                return Err(not_yours());
            }
            let now = self.now();
            let ended = Write::RevokeSession {
                id: family.id.clone(),
                now,
                until: self.tokens_expire_by(now),
            };
            self.commit(&[ended], OAuthError::server_error).await?;
            self.audit_revocation(
                &family.user_id,
                client_id,
                ctx,
                &format!("refresh family {} and its access tokens", family.id),
            )
            .await;
        }
        Ok(())
    }

    /// `POST /oauth2/introspect` (RFC 7662), for authenticated confidential clients;
    /// rate-limited per client by `admit`.
    ///
    /// Who sees what (RFC 7662 §2.1, §4): a client sees its own tokens; an access token of another
    /// client only with the operator-granted [`INTROSPECT_SCOPE`]; a refresh token only its own
    /// client, ever. Anything else is `{"active": false}`, the answer for an unknown token, and
    /// introspecting changes nothing (a refresh token is not rotated by being looked at).
    pub async fn introspect(
        &self,
        auth: ClientAuth,
        token: Option<String>,
        admit: super::Admit<'_>,
    ) -> Result<Introspection, OAuthError> {
        let client = self.authenticate_client(&auth).await?;
        admit(&client.client).map_err(OAuthError::rate_limited)?;
        if client.client.is_public() {
            return Err(OAuthError::invalid_client(
                "introspection needs an authenticated confidential client",
            ));
        }
        let token = token.ok_or_else(|| OAuthError::invalid_request("token is required"))?;
        let caller = client.client.id.as_str();
        let may_see_others = client.own_scopes.contains(INTROSPECT_SCOPE);
        if looks_like_jwt(&token) {
            return Ok(match self.check_access_token(&token).await {
                Ok(live) if may_see_others || live.claims.client_id == caller => {
                    let c = live.claims;
                    Introspection {
                        active: true,
                        scope: Some(c.scope),
                        client_id: Some(c.client_id),
                        username: live.user.map(|u| u.username),
                        token_type: Some(BEARER.into()),
                        exp: Some(c.exp),
                        iat: Some(c.iat),
                        sub: Some(c.sub),
                        aud: Some(c.aud),
                        iss: Some(c.iss),
                        jti: Some(c.jti),
                        roles: c.roles,
                    }
                }
                _ => Introspection::inactive(),
            });
        }
        let now = self.now();
        let Some((record, family)) = self
            .store
            .refresh_token(&secret::hash_secret(&token))
            .await?
        else {
            return Ok(Introspection::inactive());
        };
        // A refresh token is a credential of its client alone: nobody else may even learn that
        // it is live.
        if family.client_id != caller {
            return Ok(Introspection::inactive());
        }
        let live = record.rotated_at.is_none()
            && record.expires_at > now
            && family.revoked_at.is_none()
            && family.expires_at > now;
        // As at the token endpoint: a client's cut-off ends its sessions by revoking them (seen
        // above); one that only narrowed its scopes lets them go on with what is left.
        let client_ok = client.client.blocked_at.is_none();
        let user = match self.store.user(&family.user_id).await? {
            Some(u) if live && client_ok && user_is_usable(&u) => u,
            _ => return Ok(Introspection::inactive()),
        };
        Ok(Introspection {
            active: true,
            scope: Some(family.scope),
            client_id: Some(family.client_id),
            username: Some(user.username),
            token_type: Some("refresh_token".into()),
            exp: Some(record.expires_at),
            iat: Some(record.created_at),
            sub: Some(user.id),
            iss: Some(self.config.issuer.clone()),
            ..Introspection::default()
        })
    }

    /// Removes expired deny entries and refresh families, and records the revocation sums whose
    /// minute has passed.
    pub async fn purge_expired(&self) -> Result<u64, crate::StoreError> {
        let now = self.now();
        let closed = self.revocation_tally.closed(now);
        self.audit_revocation_summaries(closed, &RequestContext::default())
            .await;
        let audit_before = (self.config.audit_retention_days > 0)
            .then(|| now - i64::from(self.config.audit_retention_days) * 24 * 3600);
        // A token is accepted until `exp` plus the leeway: keep its deny entry that long.
        self.store
            .purge_expired(now - self.config.token_leeway_secs as i64, audit_before)
            .await
    }
}

fn not_yours() -> OAuthError {
    OAuthError::unauthorized_client("the token was not issued to this client")
}
