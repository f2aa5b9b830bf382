//! What the issuer has revoked, learnt by following its revocation feed (server-sent events).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use eventsource_stream::Eventsource;
use futures::StreamExt;
use gatehouse_token::{AccessClaims, now_unix};
use serde::Deserialize;

use crate::keys::RemoteKeys;

pub const FEED_EVENTS: &str = "gatehouse_feed_events_total";
pub const FEED_CONNECTED: &str = "gatehouse_feed_connected";

/// A confidential client allowed to read the feed (scope `revocations:read`).
#[derive(Clone)]
pub struct FeedCredentials {
    pub client_id: String,
    pub client_secret: String,
}

impl std::fmt::Debug for FeedCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FeedCredentials")
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

/// How current this process's view of revocations is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FeedStatus {
    /// No feed is followed: only signatures and expiry are checked.
    NotFollowed,
    /// Connected, or disconnected for less than the staleness budget.
    Current,
    /// Disconnected for longer than the staleness budget: revocations may have been missed.
    Stale,
}

#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum FeedEvent {
    TokenRevoked { jti: String, until: i64 },
    SubjectCutoff { subject: String, not_before: i64 },
    KeysChanged {},
}

#[derive(Default)]
struct Denied {
    /// Revoked `jti` → when the token would have expired anyway.
    jtis: HashMap<String, i64>,
    /// User or client id → tokens issued before this instant are dead.
    cutoffs: HashMap<String, i64>,
}

/// The revocations known to this process. Reads are a hash lookup or two under a read lock.
pub(crate) struct Revocations {
    denied: RwLock<Denied>,
    /// `None` while connected; else since when the feed has been lost.
    lost_since: Mutex<Option<Instant>>,
    budget: Duration,
    followed: bool,
}

impl Revocations {
    pub(crate) fn new(followed: bool, budget: Duration) -> Self {
        Self {
            denied: RwLock::default(),
            // Until the first connection the view is as good as "lost just now": the budget
            // covers the start-up.
            lost_since: Mutex::new(Some(Instant::now())),
            budget,
            followed,
        }
    }

    /// Whether `claims` belong to a revoked token, or to a user or client cut off after it.
    pub(crate) fn is_revoked(&self, claims: &AccessClaims) -> bool {
        let Ok(denied) = self.denied.read() else {
            return true;
        };
        denied.jtis.contains_key(&claims.jti)
            || denied
                .cutoffs
                .get(&claims.sub)
                .is_some_and(|nbf| claims.iat < *nbf)
            || (claims.client_id != claims.sub
                && denied
                    .cutoffs
                    .get(&claims.client_id)
                    .is_some_and(|nbf| claims.iat < *nbf))
    }

    pub(crate) fn status(&self) -> FeedStatus {
        if !self.followed {
            return FeedStatus::NotFollowed;
        }
        match *self.lost_since.lock().unwrap_or_else(|p| p.into_inner()) {
            Some(since) if since.elapsed() > self.budget => FeedStatus::Stale,
            _ => FeedStatus::Current,
        }
    }

    /// How long the feed has been lost (zero while connected or when not followed).
    pub(crate) fn lag(&self) -> Duration {
        match *self.lost_since.lock().unwrap_or_else(|p| p.into_inner()) {
            Some(since) if self.followed => since.elapsed(),
            _ => Duration::ZERO,
        }
    }

    fn set_connected(&self, connected: bool) {
        let mut lost = self.lost_since.lock().unwrap_or_else(|p| p.into_inner());
        match (connected, lost.is_some()) {
            (true, _) => *lost = None,
            (false, false) => *lost = Some(Instant::now()),
            (false, true) => {}
        }
        metrics::gauge!(FEED_CONNECTED).set(if connected { 1.0 } else { 0.0 });
    }

    fn apply(&self, event: &FeedEvent) {
        let Ok(mut denied) = self.denied.write() else {
            return;
        };
        match event {
            FeedEvent::TokenRevoked { jti, until } => {
                denied.jtis.insert(jti.clone(), *until);
            }
            FeedEvent::SubjectCutoff {
                subject,
                not_before,
            } => {
                let entry = denied.cutoffs.entry(subject.clone()).or_default();
                *entry = (*entry).max(*not_before);
            }
            FeedEvent::KeysChanged {} => {}
        }
    }

    /// Forgets revocations of tokens that have expired anyway. A cut-off is kept for as long as
    /// a token issued before it could live.
    fn purge(&self, max_token_lifetime: i64) {
        let now = now_unix();
        if let Ok(mut denied) = self.denied.write() {
            denied.jtis.retain(|_, until| *until >= now);
            denied
                .cutoffs
                .retain(|_, nbf| *nbf + max_token_lifetime >= now);
        }
    }
}

/// Gaps between reconnection attempts grow to this.
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// The issuer sends a keep-alive comment every 15 s; silence for longer means a dead connection.
const IDLE_TIMEOUT: Duration = Duration::from_secs(40);
/// Cut-offs are kept this long (a day covers any sane access-token lifetime plus leeway).
const CUTOFF_MEMORY_SECS: i64 = 86_400;
const PURGE_EVERY: Duration = Duration::from_secs(60);

/// Follows the feed for as long as the process runs: reconnects with backoff, resumes with
/// `Last-Event-ID`, applies each event as it arrives, and asks for fresh keys when told to.
pub(crate) async fn follow(
    http: reqwest::Client,
    url: String,
    credentials: FeedCredentials,
    state: Arc<Revocations>,
    keys: Arc<RemoteKeys>,
) {
    let mut last_event_id: Option<String> = None;
    let mut backoff = Duration::from_millis(100);
    let mut last_purge = Instant::now();
    loop {
        let mut request = http
            .get(&url)
            .basic_auth(&credentials.client_id, Some(&credentials.client_secret))
            .header("accept", "text/event-stream");
        if let Some(id) = &last_event_id {
            request = request.header("last-event-id", id);
        }
        match request.send().await {
            Ok(response) if response.status().is_success() => {
                state.set_connected(true);
                backoff = Duration::from_millis(100);
                let mut events = response.bytes_stream().eventsource();
                loop {
                    let next = match tokio::time::timeout(IDLE_TIMEOUT, events.next()).await {
                        Ok(Some(Ok(event))) => event,
                        Ok(Some(Err(e))) => {
                            tracing::warn!(error = %e, "the revocation feed broke off");
                            break;
                        }
                        Ok(None) => break,
                        Err(_) => {
                            tracing::warn!("the revocation feed went silent; reconnecting");
                            break;
                        }
                    };
                    if next.data.is_empty() {
                        continue;
                    }
                    match serde_json::from_str::<FeedEvent>(&next.data) {
                        Ok(event) => {
                            state.apply(&event);
                            metrics::counter!(FEED_EVENTS, "type" => next.event.clone())
                                .increment(1);
                            if let FeedEvent::KeysChanged {} = event {
                                let keys = keys.clone();
                                tokio::spawn(async move { keys.refresh().await });
                            }
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, event = %next.event, "unreadable feed event")
                        }
                    }
                    if !next.id.is_empty() {
                        last_event_id = Some(next.id);
                    }
                    if last_purge.elapsed() > PURGE_EVERY {
                        state.purge(CUTOFF_MEMORY_SECS);
                        last_purge = Instant::now();
                    }
                }
                state.set_connected(false);
            }
            Ok(response) => {
                state.set_connected(false);
                let status = response.status().as_u16();
                if matches!(status, 401 | 403) {
                    tracing::error!(
                        status,
                        "the issuer refused the revocation feed; check the feed client's credentials and its revocations:read scope"
                    );
                    backoff = MAX_BACKOFF;
                } else {
                    tracing::warn!(status, "the revocation feed is unavailable");
                }
            }
            Err(e) => {
                state.set_connected(false);
                tracing::warn!(error = %e, "cannot reach the revocation feed");
            }
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}
