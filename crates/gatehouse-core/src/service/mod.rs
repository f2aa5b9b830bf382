//! The authorization server's behaviour: everything an endpoint does, minus HTTP.

mod admin;
mod authorize;
mod browser;
mod changes;
mod clients;
mod figures;
mod first_party;
mod grants;
mod lifecycle;
mod oidc;
mod registration;
mod tally;
mod users;

use std::sync::Arc;

use gatehouse_token::{AccessClaims, Audience, KeyEncryptionKey, VerifierConfig};

pub use admin::{Actor, page_bounds};
pub use authorize::{AuthorizationRequest, AuthorizeError, IDENTITY_SCOPES, NextStep};
pub use browser::{AccountOverview, NewBrowserSession, SignedIn};
pub use changes::{ChangeBatch, ChangeHub, FEED_SCOPE, FeedItem, FeedSubscription};
pub use clients::{ClientAuth, PresentedAuth};
pub use figures::{Figures, FiguresView, Point as FigurePoint, SECOND_POINTS, TEN_SECOND_POINTS};
pub use first_party::FirstPartyApp;
pub use grants::{BAD_LOGIN, LoginError, TokenRequest};
pub use lifecycle::{INTROSPECT_SCOPE, LiveToken};
pub use oidc::{LogoutParams, LogoutPlan};

use crate::clock::{Clock, SystemClock};
use crate::keyring::KeyRing;
use crate::password::PasswordHasher;
use crate::{
    AuditEvent, AuthConfig, AuthMethod, Client, GrantType, OAuthError, RequestContext, ScopeSet,
    Store, StoreError, User, WEB_CLIENT_ID, secret,
};

/// Asked once a client has authenticated at a rate-limited endpoint (so nobody can spend another
/// client's limit with wrong secrets): `Err` carries how many seconds to wait.
pub type Admit<'a> = &'a (dyn Fn(&Client) -> Result<(), u64> + Send + Sync);

pub struct AuthService {
    config: AuthConfig,
    /// The time every rule is judged by.
    clock: Arc<dyn Clock>,
    store: Arc<dyn Store>,
    kek: KeyEncryptionKey,
    keys: KeyRing,
    hasher: PasswordHasher,
    clients: clients::ClientCache,
    throttle: crate::throttle::LoginThrottle,
    /// This node's one reader of the change log, and the feed subscribers it serves.
    changes: Arc<ChangeHub>,
    /// Clients' revocations of their own tokens, summarised for the audit log.
    revocation_tally: tally::RevocationTally,
    /// Derives each refresh token's successor from it, so concurrent duplicates agree on one.
    refresh_successor_key: [u8; 32],
    /// Signs the hosted pages' anti-forgery tokens.
    form_key: [u8; 32],
    /// Signs the device cookies of browsers people signed in from.
    device_key: [u8; 32],
    /// Counts for the console's dashboard.
    figures: Arc<figures::Figures>,
}

impl AuthService {
    /// Loads (or on first start creates) the signing keys and the built-in web client.
    pub async fn start(
        config: AuthConfig,
        store: Arc<dyn Store>,
        kek: KeyEncryptionKey,
    ) -> Result<Self, StoreError> {
        Self::start_with_clock(config, store, kek, Arc::new(SystemClock)).await
    }

    /// [`AuthService::start`] with the time taken from `clock`.
    pub async fn start_with_clock(
        config: AuthConfig,
        store: Arc<dyn Store>,
        kek: KeyEncryptionKey,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, StoreError> {
        let verifier_config = VerifierConfig {
            issuer: config.issuer.clone(),
            audience: Some(config.audience.clone()),
            leeway_secs: config.token_leeway_secs,
        };
        let keys =
            KeyRing::load_or_create(store.as_ref(), &kek, &config, verifier_config, clock.now())
                .await?;
        let hasher = PasswordHasher::with_share(
            config.max_concurrent_password_hashes,
            config.password_checks_per_source,
        )?;
        let changes = Arc::new(ChangeHub::open(store.as_ref(), clock.now()).await?);
        let figures = Arc::new(figures::Figures::default());
        figures::Figures::start_sampling(&figures, &changes, clock.clone());
        let service = Self {
            figures,
            clock,
            changes,
            revocation_tally: tally::RevocationTally::default(),
            clients: clients::ClientCache::new(config.client_cache_ttl_secs),
            throttle: crate::throttle::LoginThrottle::new(config.throttle_settings()),
            refresh_successor_key: kek.derive("gatehouse/refresh-successor/v1"),
            form_key: kek.derive("gatehouse/forms/v1"),
            device_key: kek.derive("gatehouse/device-cookies/v1"),
            config,
            store,
            kek,
            keys,
            hasher,
        };
        service.ensure_web_client().await?;
        Ok(service)
    }

    /// Unix seconds by the service's clock.
    pub fn now(&self) -> i64 {
        self.clock.now()
    }

    /// The not-before time that kills every token issued until now. `iat` has whole-second
    /// precision, so the cutoff is the next second: a token minted earlier in this second is
    /// caught too.
    pub(crate) fn revocation_cutoff(&self) -> i64 {
        self.now() + 1
    }

    /// An anti-forgery token for the hosted pages' forms, bound to `binding` (the browser's
    /// own random cookie and its sign-in): only this server can make one.
    pub fn form_token(&self, binding: &str) -> String {
        secret::derive_token(&self.form_key, binding)
    }

    /// Whether `token` is [`AuthService::form_token`] of `binding`, compared in constant time.
    pub fn form_token_matches(&self, binding: &str, token: &str) -> bool {
        secret::constant_time_eq(self.form_token(binding).as_bytes(), token.as_bytes())
    }

    pub fn config(&self) -> &AuthConfig {
        &self.config
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    pub fn keys(&self) -> &KeyRing {
        &self.keys
    }

    /// The keys as of now by the service's clock: the signer, the verifier and the JWKS.
    pub fn key_view(&self) -> Arc<crate::keyring::KeyView> {
        self.keys.view(self.now())
    }

    pub async fn reload_keys(&self) -> Result<(), StoreError> {
        self.keys
            .reload(self.store.as_ref(), &self.kek, self.now())
            .await
    }

    /// The public client people log in through: password and refresh grants, no secret.
    async fn ensure_web_client(&self) -> Result<(), StoreError> {
        if self.store.client(WEB_CLIENT_ID).await?.is_some() {
            return Ok(());
        }
        let now = self.now();
        let client = Client::new(
            WEB_CLIENT_ID.into(),
            "Gatehouse web login".into(),
            AuthMethod::None,
            vec![GrantType::Password, GrantType::RefreshToken],
            now,
        );
        match self.store.insert_client(&client).await {
            Ok(()) | Err(StoreError::Conflict(_)) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Signs an access token for `subject` with the given scope (and roles and sign-in session,
    /// for people).
    ///
    /// `not_before` is the subject's cutoff: tokens with an earlier `iat` are dead. A cutoff is set a
    /// second ahead (see [`revocation_cutoff`]), so a token minted just after a revocation carries
    /// `iat = not_before` to stay alive, while every token minted before it is caught.
    fn issue_access_token(
        &self,
        subject: &str,
        client_id: &str,
        scope: &ScopeSet,
        roles: Option<Vec<String>>,
        not_before: i64,
        session: Option<&str>,
    ) -> Result<(String, u64), OAuthError> {
        let now = self.now();
        let ttl = self.config.access_token_ttl_secs;
        let claims = AccessClaims {
            iss: self.config.issuer.clone(),
            sub: subject.to_owned(),
            aud: Audience::One(self.config.audience.clone()),
            exp: now + ttl as i64,
            iat: now.max(not_before),
            jti: secret::random_string(16)?,
            client_id: client_id.to_owned(),
            scope: scope.to_string(),
            roles,
            sid: session.map(str::to_owned),
        };
        let token = self.key_view().signer.sign(&claims).map_err(|e| {
            tracing::error!(error = %e, "signing an access token failed");
            OAuthError::server_error()
        })?;
        Ok((token, ttl))
    }

    /// The roles a person's token carries for `client`. A client that registered itself gets
    /// none: roles are not something a person consents to, and an administrator signing in to
    /// such an application must not hand it their administration.
    fn roles_for(&self, user: &User, client: &Client) -> Option<Vec<String>> {
        (!client.is_self_registered()).then(|| user.roles.clone())
    }

    /// The union of the default scopes of `roles`.
    async fn scopes_of_roles(&self, roles: &[String]) -> Result<ScopeSet, StoreError> {
        let all = self.store.roles().await?;
        Ok(all
            .iter()
            .filter(|r| roles.contains(&r.name))
            .fold(ScopeSet::default(), |acc, r| acc.union(&r.scopes)))
    }

    /// When every access token issued until `now` has expired.
    fn tokens_expire_by(&self, now: i64) -> i64 {
        now + self.config.access_token_ttl_secs as i64
    }

    /// Stores `writes` with the change-log entries they imply, in one transaction; a target
    /// that does not exist is `missing`, with nothing stored. Returns how many sessions ended.
    async fn commit<E: From<StoreError>>(
        &self,
        writes: &[crate::Write],
        missing: impl FnOnce() -> E,
    ) -> Result<u64, E> {
        match self.store.commit(writes).await? {
            crate::Committed::Done { sessions_ended } => Ok(sessions_ended),
            crate::Committed::Missing => Err(missing()),
        }
    }

    /// Records an audit event; a failure to record is logged, never turned into a failed request.
    async fn audit(
        &self,
        kind: &str,
        subject: Option<&str>,
        client_id: Option<&str>,
        ctx: &RequestContext,
        detail: &str,
    ) {
        self.record_audit(kind, subject, client_id, None, ctx, detail)
            .await;
    }

    /// A client's revocation of a token it holds: recorded as it happens at most once a minute
    /// per client, the rest as one summary (a client must not be able to flood the audit log).
    async fn audit_revocation(
        &self,
        subject: &str,
        client_id: &str,
        ctx: &RequestContext,
        detail: &str,
    ) {
        // Per client and subject: everyone's logouts go through the one public web client.
        let outcome = self
            .revocation_tally
            .count(&format!("{client_id} {subject}"), self.now());
        self.audit_revocation_summaries(outcome.summaries, ctx)
            .await;
        if outcome.record_this {
            self.audit("token.revoked", Some(subject), Some(client_id), ctx, detail)
                .await;
        }
    }

    async fn audit_revocation_summaries(
        &self,
        summaries: Vec<(String, u64, i64)>,
        ctx: &RequestContext,
    ) {
        for (key, count, since) in summaries {
            let (client_id, subject) = key.split_once(' ').unwrap_or((key.as_str(), ""));
            self.audit(
                "token.revoked.summary",
                Some(subject).filter(|s| !s.is_empty()),
                Some(client_id),
                ctx,
                &format!(
                    "{count} more tokens of this subject revoked by this client since {since}"
                ),
            )
            .await;
        }
    }

    /// Every audit record goes through here, with the acting administrator when there is one.
    async fn record_audit(
        &self,
        kind: &str,
        subject: Option<&str>,
        client_id: Option<&str>,
        actor: Option<&str>,
        ctx: &RequestContext,
        detail: &str,
    ) {
        let event = AuditEvent {
            id: secret::random_string(16).unwrap_or_default(),
            at: self.now(),
            kind: kind.to_owned(),
            subject: subject.map(str::to_owned),
            client_id: client_id.map(str::to_owned),
            actor: actor.map(str::to_owned),
            ip: ctx.ip.clone(),
            detail: detail.to_owned(),
        };
        if let Err(e) = self.store.record_event(&event).await {
            tracing::error!(error = %e, kind, "could not record an audit event");
        }
    }
}

impl From<StoreError> for crate::TokenProblem {
    fn from(e: StoreError) -> Self {
        tracing::error!(error = %e, "store failure while checking a token");
        crate::TokenProblem::Invalid("the token could not be checked".into())
    }
}

/// A user, as an argument to functions that need one whose tokens are still good.
pub(crate) fn user_is_usable(user: &User) -> bool {
    user.blocked_at.is_none()
}
