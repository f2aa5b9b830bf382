//! People signed in to the hosted pages: browser sessions, and what a person can see and end
//! of their own sign-ins on the account page.

use super::AuthService;
use super::grants::{LoginError, Presented};
use super::user_is_usable;
use crate::{
    BrowserSession, Consent, FamilyFilter, RefreshFamily, RequestContext, StoreError, User, Write,
    secret,
};

/// A browser's sign-in that is still good, with the person it speaks for.
#[derive(Debug, Clone)]
pub struct SignedIn {
    pub session: BrowserSession,
    pub user: User,
}

/// A new browser sign-in, with the value its cookie must carry (shown to the browser once).
#[derive(Debug)]
pub struct NewBrowserSession {
    pub cookie: String,
    /// A fresh device cookie naming the person: the browser is one they signed in from, and
    /// guesses from elsewhere do not lock them out of it.
    pub device_cookie: String,
    pub signed_in: SignedIn,
}

/// What the account page shows a person of their own sign-ins.
#[derive(Debug, Clone, Default)]
pub struct AccountOverview {
    /// Browsers signed in to the hosted pages, newest first.
    pub browsers: Vec<BrowserSession>,
    /// Applications' sessions (refresh families), each with its client's name.
    pub sessions: Vec<(RefreshFamily, String)>,
    /// What the person has allowed which application, with the application's name.
    pub consents: Vec<(Consent, String)>,
}

/// The most sessions the account page lists.
const ACCOUNT_LIST_LIMIT: u32 = 200;

/// A browser is seen again at most this often in the store: the idle lifetime need not be exact
/// to the second, and every page view must not be a write.
const TOUCH_INTERVAL_SECS: i64 = 60;

impl AuthService {
    /// Signs a browser in with the password, under the same rules as the password grant
    /// (throttle, lock, hashing queue, one answer for every failure). A valid `device_cookie`
    /// for this person makes the browser a source of its own for the lock.
    pub async fn sign_in_browser(
        &self,
        username: &str,
        password: &str,
        device_cookie: Option<&str>,
        ctx: &RequestContext,
    ) -> Result<NewBrowserSession, LoginError> {
        let user = self
            .verify_login(
                username,
                password,
                Presented::Browser { device_cookie },
                ctx,
            )
            .await?;
        let started = self.start_browser_session(user, ctx).await?;
        self.audit(
            "login.success",
            Some(&started.signed_in.user.id),
            None,
            ctx,
            "browser sign-in",
        )
        .await;
        Ok(started)
    }

    /// A new browser session for `user`, who has just proved who they are.
    pub async fn start_browser_session(
        &self,
        user: User,
        ctx: &RequestContext,
    ) -> Result<NewBrowserSession, StoreError> {
        let now = self.now();
        let cookie = secret::random_secret()?;
        let session = BrowserSession {
            id: secret::random_string(16)?,
            secret_hash: secret::hash_secret(&cookie),
            user_id: user.id.clone(),
            // A cut-off in this second sits a second ahead; a session started after it lives.
            auth_time: now.max(user.not_before),
            created_at: now,
            last_seen_at: now,
            expires_at: now + self.config.browser_session_lifetime_secs as i64,
            ended_at: None,
            ip: ctx.ip.clone(),
            user_agent: ctx.user_agent.clone(),
        };
        self.store.insert_browser_session(&session).await?;
        Ok(NewBrowserSession {
            cookie,
            device_cookie: self.device_cookie(&user.id)?,
            signed_in: SignedIn { session, user },
        })
    }

    /// A device cookie (OWASP's "device cookie"): `<user id>.<nonce>.<HMAC of both>` under a key
    /// derived from the key-encryption key, so only this server can make one and it names one
    /// person. The nonce gives each browser its own count of failures.
    fn device_cookie(&self, user_id: &str) -> Result<String, StoreError> {
        let payload = format!("{user_id}.{}.{}", secret::random_string(12)?, self.now());
        let mac = secret::derive_token(&self.device_key, &payload);
        Ok(format!("{payload}.{mac}"))
    }

    /// The nonce of a device cookie this server made for `user`, while it is good: within its
    /// lifetime, and issued after the person's last cut-off (a password change, "sign out
    /// everywhere", a block), so a stolen cookie stops vouching once its owner acts.
    pub(super) fn device_nonce(&self, cookie: &str, user: &crate::User) -> Option<String> {
        let (payload, mac) = cookie.rsplit_once('.')?;
        let expected = secret::derive_token(&self.device_key, payload);
        if !secret::constant_time_eq(expected.as_bytes(), mac.as_bytes()) {
            return None;
        }
        let mut parts = payload.splitn(3, '.');
        let (user_id, nonce, issued_at) = (parts.next()?, parts.next()?, parts.next()?);
        let issued_at: i64 = issued_at.parse().ok()?;
        let lifetime = i64::try_from(self.config.device_cookie_lifetime_secs).unwrap_or(i64::MAX);
        let fresh = self.now().saturating_sub(issued_at) < lifetime;
        (user_id == user.id && issued_at >= user.not_before && fresh).then(|| nonce.to_owned())
    }

    /// The sign-in behind a browser's cookie, if it is still good: not ended, within its idle and
    /// absolute lifetimes, and its person neither blocked nor cut off since.
    pub async fn signed_in(&self, cookie: &str) -> Result<Option<SignedIn>, StoreError> {
        let Some(session) = self
            .store
            .browser_session(&secret::hash_secret(cookie))
            .await?
        else {
            return Ok(None);
        };
        let now = self.now();
        let idle = self.config.browser_session_idle_secs as i64;
        if session.ended_at.is_some()
            || now >= session.expires_at
            || now - session.last_seen_at >= idle
        {
            return Ok(None);
        }
        let user = match self.store.user(&session.user_id).await? {
            Some(u) if user_is_usable(&u) && session.auth_time >= u.not_before => u,
            _ => return Ok(None),
        };
        if now - session.last_seen_at >= TOUCH_INTERVAL_SECS {
            self.store.touch_browser_session(&session.id, now).await?;
        }
        Ok(Some(SignedIn { session, user }))
    }

    /// Signs a browser out: its session ends, with every application session started from it.
    pub async fn end_browser_session(
        &self,
        session_id: &str,
        user_id: &str,
        ctx: &RequestContext,
    ) -> Result<(), StoreError> {
        let now = self.now();
        let ended = Write::EndBrowserSession {
            id: session_id.to_owned(),
            now,
            until: self.tokens_expire_by(now),
        };
        self.commit(&[ended], || {
            StoreError::Corrupt("ending a browser session found nothing".into())
        })
        .await?;
        self.audit(
            "logout",
            Some(user_id),
            None,
            ctx,
            &format!("browser session {session_id}"),
        )
        .await;
        Ok(())
    }

    /// The person's own sign-ins and consents.
    pub async fn account_overview(&self, user: &User) -> Result<AccountOverview, StoreError> {
        let now = self.now();
        let browsers = self.store.browser_sessions_of(&user.id, now).await?;
        let families = self
            .store
            .list_families(
                &FamilyFilter {
                    user_id: Some(user.id.clone()),
                    client_id: None,
                },
                "",
                ACCOUNT_LIST_LIMIT,
            )
            .await?;
        let mut sessions = Vec::new();
        for family in families {
            if family.revoked_at.is_none() && family.expires_at > now {
                let name = self.client_name(&family.client_id).await?;
                sessions.push((family, name));
            }
        }
        sessions.sort_by_key(|(family, _)| std::cmp::Reverse(family.last_used_at));
        let mut consents = Vec::new();
        for consent in self.store.consents_of(&user.id).await? {
            let name = self.client_name(&consent.client_id).await?;
            consents.push((consent, name));
        }
        Ok(AccountOverview {
            browsers,
            sessions,
            consents,
        })
    }

    async fn client_name(&self, client_id: &str) -> Result<String, StoreError> {
        Ok(self
            .client_display_name(client_id)
            .await?
            .unwrap_or_else(|| client_id.to_owned()))
    }

    /// The name a client shows people, if the client exists.
    pub async fn client_display_name(&self, client_id: &str) -> Result<Option<String>, StoreError> {
        Ok(self
            .cached_client(client_id)
            .await?
            .map(|c| c.client.name.clone()))
    }

    /// Ends one of the person's own application sessions; `false` when it is not theirs.
    pub async fn revoke_own_session(
        &self,
        user: &User,
        family_id: &str,
        ctx: &RequestContext,
    ) -> Result<bool, StoreError> {
        match self.store.family(family_id).await? {
            Some(family) if family.user_id == user.id => {}
            _ => return Ok(false),
        }
        let now = self.now();
        let ended = Write::RevokeSession {
            id: family_id.to_owned(),
            now,
            until: self.tokens_expire_by(now),
        };
        self.commit(&[ended], || {
            StoreError::Corrupt("revoking a session found nothing".into())
        })
        .await?;
        self.audit(
            "session.revoked",
            Some(&user.id),
            None,
            ctx,
            &format!("session {family_id}, by its owner"),
        )
        .await;
        Ok(true)
    }

    /// Signs out one of the person's own browsers; `false` when it is not theirs.
    pub async fn end_own_browser_session(
        &self,
        user: &User,
        session_id: &str,
        ctx: &RequestContext,
    ) -> Result<bool, StoreError> {
        let now = self.now();
        let theirs = self
            .store
            .browser_sessions_of(&user.id, now)
            .await?
            .iter()
            .any(|s| s.id == session_id);
        if theirs {
            self.end_browser_session(session_id, &user.id, ctx).await?;
        }
        Ok(theirs)
    }

    /// Withdraws what the person allowed an application, ending its sessions of theirs.
    pub async fn withdraw_consent(
        &self,
        user: &User,
        client_id: &str,
        ctx: &RequestContext,
    ) -> Result<(), StoreError> {
        let now = self.now();
        let withdrawn = Write::RevokeConsent {
            user_id: user.id.clone(),
            client_id: client_id.to_owned(),
            now,
            until: self.tokens_expire_by(now),
        };
        self.commit(&[withdrawn], || {
            StoreError::Corrupt("withdrawing a consent found nothing".into())
        })
        .await?;
        self.audit(
            "consent.withdrawn",
            Some(&user.id),
            Some(client_id),
            ctx,
            "",
        )
        .await;
        Ok(())
    }
}
