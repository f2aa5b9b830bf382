//! The authorization server's behaviour: everything an endpoint does, minus HTTP.

mod admin;
mod changes;
mod clients;
mod grants;
mod lifecycle;
mod registration;
mod users;

use std::sync::Arc;

use gatehouse_token::{AccessClaims, Audience, KeyEncryptionKey, VerifierConfig, now_unix};

pub use admin::{
    Actor, AdminUserView, AuditEventView, AuditQuery, ClientPatch, ClientView, CreatedClient,
    KeyInfo, NewClient, Page, PageRequest, RevokeAll, RevokedAll, RoleUpdate, RoleView,
    RotatedSecret, SessionQuery, SessionView, UserPatch,
};
pub use changes::{ChangeCursor, FEED_SCOPE, FeedEvent};
pub use clients::{ClientAuth, PresentedAuth};
pub use grants::{TokenRequest, TokenResponse};
pub use lifecycle::{Introspection, LiveToken};
pub use registration::{ClientMetadata, RegisteredClient, RegistrationRequest};
pub use users::{NewUser, PasswordChange, UserView};

use crate::keyring::KeyRing;
use crate::password::PasswordHasher;
use crate::{
    AuditEvent, AuthConfig, AuthMethod, Client, GrantType, OAuthError, RequestContext, ScopeSet,
    Store, StoreError, User, WEB_CLIENT_ID, secret,
};

pub struct AuthService {
    config: AuthConfig,
    store: Arc<dyn Store>,
    kek: KeyEncryptionKey,
    keys: KeyRing,
    hasher: PasswordHasher,
    clients: clients::ClientCache,
    throttle: crate::throttle::LoginThrottle,
    /// Derives each refresh token's successor from it, so concurrent duplicates agree on one.
    refresh_successor_key: [u8; 32],
}

impl AuthService {
    /// Loads (or on first start creates) the signing keys and the built-in web client.
    pub async fn start(
        config: AuthConfig,
        store: Arc<dyn Store>,
        kek: KeyEncryptionKey,
    ) -> Result<Self, StoreError> {
        let verifier_config = VerifierConfig {
            issuer: config.issuer.clone(),
            audience: Some(config.audience.clone()),
            leeway_secs: config.token_leeway_secs,
        };
        let keys = KeyRing::load_or_create(store.as_ref(), &kek, verifier_config).await?;
        let hasher = PasswordHasher::new(config.max_concurrent_password_hashes)?;
        let service = Self {
            clients: clients::ClientCache::new(config.client_cache_ttl_secs),
            throttle: crate::throttle::LoginThrottle::new(config.throttle_settings()),
            refresh_successor_key: kek.derive("gatehouse/refresh-successor/v1"),
            config,
            store,
            kek,
            keys,
            hasher,
        };
        service.ensure_web_client().await?;
        Ok(service)
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

    pub async fn reload_keys(&self) -> Result<(), StoreError> {
        self.keys.reload(self.store.as_ref(), &self.kek).await
    }

    /// The public client people log in through: password and refresh grants, no secret.
    async fn ensure_web_client(&self) -> Result<(), StoreError> {
        if self.store.client(WEB_CLIENT_ID).await?.is_some() {
            return Ok(());
        }
        let now = now_unix();
        let client = Client {
            id: WEB_CLIENT_ID.into(),
            name: "Gatehouse web login".into(),
            secret_hash: None,
            auth_method: AuthMethod::None,
            grant_types: vec![GrantType::Password, GrantType::RefreshToken],
            scopes: None,
            roles: vec![],
            registration_token_hash: None,
            previous_secret_hash: None,
            previous_secret_expires_at: None,
            created_at: now,
            updated_at: now,
            blocked_at: None,
            not_before: 0,
        };
        match self.store.insert_client(&client).await {
            Ok(()) | Err(StoreError::Conflict(_)) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Signs an access token for `subject` with the given scope (and roles, for people).
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
    ) -> Result<(String, u64), OAuthError> {
        let now = now_unix();
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
        };
        let token = self.keys.view().signer.sign(&claims).map_err(|e| {
            tracing::error!(error = %e, "signing an access token failed");
            OAuthError::server_error()
        })?;
        Ok((token, ttl))
    }

    /// The union of the default scopes of `roles`.
    async fn scopes_of_roles(&self, roles: &[String]) -> Result<ScopeSet, StoreError> {
        let all = self.store.roles().await?;
        Ok(all
            .iter()
            .filter(|r| roles.contains(&r.name))
            .fold(ScopeSet::default(), |acc, r| acc.union(&r.scopes)))
    }

    /// Appends to the change log that other nodes follow; a failure is logged (the change itself
    /// is stored, and other nodes' caches expire within `client_cache_ttl_secs` regardless).
    async fn log_change(&self, kind: crate::ChangeKind, subject: &str, until: Option<i64>) {
        if let Err(e) = self.store.append_change(kind, subject, until).await {
            tracing::error!(error = %e, kind = kind.as_str(), "could not log a change for other nodes");
        }
    }

    /// Follows the change log so that changes made through other nodes (or the CLI) apply here
    /// within `every`: forgets changed clients, reloads keys. Runs until the process ends.
    pub async fn follow_changes(self: Arc<Self>, every: std::time::Duration) {
        let mut cursor = match self.store.latest_change().await {
            Ok(seq) => changes::ChangeCursor::after(seq),
            Err(e) => {
                // Applying a change twice is harmless: replay what the log still holds.
                tracing::warn!(error = %e, "cannot read the change log; replaying it");
                changes::ChangeCursor::after(0)
            }
        };
        let mut ticker = tokio::time::interval(every);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            match cursor.next(self.store.as_ref()).await {
                Ok(changes) => {
                    for change in changes {
                        self.apply_change(&change).await;
                    }
                }
                Err(e) => tracing::warn!(error = %e, "reading the change log failed"),
            }
        }
    }

    async fn apply_change(&self, change: &crate::Change) {
        use crate::ChangeKind;
        match change.kind {
            ChangeKind::Client => self.clients.invalidate(&change.subject),
            ChangeKind::Role => self.clients.clear(),
            ChangeKind::Keys => {
                if let Err(e) = self.reload_keys().await {
                    tracing::warn!(error = %e, "reloading keys after a change failed");
                }
            }
            // Checked against the store on every use; nothing is cached here.
            ChangeKind::TokenRevoked | ChangeKind::SubjectCutoff => {}
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
            at: now_unix(),
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

/// The not-before time that kills every token issued until now. `iat` has whole-second precision,
/// so the cutoff is the next second: a token minted earlier in this second is caught too.
pub(crate) fn revocation_cutoff() -> i64 {
    now_unix() + 1
}

/// A user, as an argument to functions that need one whose tokens are still good.
pub(crate) fn user_is_usable(user: &User) -> bool {
    user.blocked_at.is_none()
}
