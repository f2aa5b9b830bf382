//! What the issuer has revoked, learnt by following its revocation feed (server-sent events).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock, Weak};
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
    TokenRevoked {
        jti: String,
        until: i64,
    },
    SubjectCutoff {
        subject: String,
        not_before: i64,
    },
    KeysChanged {},
    /// The backlog has been sent: from here on the view is current.
    CaughtUp {},
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
    /// When the feed last proved current: a byte after its `caught_up` event. Starts at creation,
    /// so the budget covers start-up.
    last_heard: Mutex<Instant>,
    budget: Duration,
    /// Revoked tokens are remembered this long past their expiry, as verifiers accept them that long.
    leeway_secs: i64,
    followed: bool,
}

impl Revocations {
    pub(crate) fn new(followed: bool, budget: Duration, leeway_secs: i64) -> Self {
        Self {
            denied: RwLock::default(),
            last_heard: Mutex::new(Instant::now()),
            budget,
            leeway_secs,
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
        match self.silence() > self.budget {
            true => FeedStatus::Stale,
            false => FeedStatus::Current,
        }
    }

    /// How long since the feed last proved current (zero when no feed is followed).
    pub(crate) fn silence(&self) -> Duration {
        match self.followed {
            true => self
                .last_heard
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .elapsed(),
            false => Duration::ZERO,
        }
    }

    fn heard(&self) {
        *self.last_heard.lock().unwrap_or_else(|p| p.into_inner()) = Instant::now();
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
            FeedEvent::KeysChanged {} | FeedEvent::CaughtUp {} => {}
        }
    }

    /// Forgets revocations of tokens that are past their expiry and the leeway. A cut-off is
    /// kept for as long as a token issued before it could live.
    fn purge(&self, max_token_lifetime: i64) {
        let now = now_unix();
        if let Ok(mut denied) = self.denied.write() {
            let leeway = self.leeway_secs;
            denied.jtis.retain(|_, until| *until + leeway >= now);
            denied
                .cutoffs
                .retain(|_, nbf| *nbf + max_token_lifetime + leeway >= now);
        }
    }
}

/// Gaps between reconnection attempts grow to this.
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// The issuer sends a keep-alive every 5 s; a connection silent for longer than this is dead.
const IDLE_TIMEOUT: Duration = Duration::from_secs(20);
/// Cut-offs are kept this long (a day covers any sane access-token lifetime).
const CUTOFF_MEMORY_SECS: i64 = 86_400;
const PURGE_EVERY: Duration = Duration::from_secs(60);

/// Follows the feed for as long as the process runs: reconnects with backoff, resumes with
/// `Last-Event-ID`, applies each event as it arrives, and asks for fresh keys when told to.
/// Every byte after the `caught_up` event (keep-alives included) proves the view current.
pub(crate) async fn follow(
    http: reqwest::Client,
    url: String,
    credentials: FeedCredentials,
    state: Weak<Revocations>,
    keys: Weak<RemoteKeys>,
) {
    let mut last_event_id: Option<String> = None;
    let mut backoff = Duration::from_millis(100);
    let mut last_purge = Instant::now();
    let refreshing_keys = Arc::new(KeyRefreshes::default());
    loop {
        let mut request = http
            .get(&url)
            .basic_auth(&credentials.client_id, Some(&credentials.client_secret))
            .header("accept", "text/event-stream");
        if let Some(id) = &last_event_id {
            request = request.header("last-event-id", id);
        }
        let outcome = request.send().await;
        // The verifier was dropped: stop following.
        let (Some(revocations), Some(_)) = (state.upgrade(), keys.upgrade()) else {
            return;
        };
        match outcome {
            Ok(response) if response.status().is_success() => {
                metrics::gauge!(FEED_CONNECTED).set(1.0);
                backoff = Duration::from_millis(100);
                let caught_up = Arc::new(AtomicBool::new(false));
                let proof = (caught_up.clone(), Arc::downgrade(&revocations));
                // Keep-alives are comments the event parser drops, so liveness is read off the
                // raw bytes.
                let bytes = response.bytes_stream().inspect(move |_| {
                    if proof.0.load(Ordering::Relaxed)
                        && let Some(revocations) = proof.1.upgrade()
                    {
                        revocations.heard();
                    }
                });
                let mut events = bytes.eventsource();
                drop(revocations);
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
                    let Some(revocations) = state.upgrade() else {
                        return;
                    };
                    match serde_json::from_str::<FeedEvent>(&next.data) {
                        Ok(FeedEvent::CaughtUp {}) => {
                            caught_up.store(true, Ordering::Relaxed);
                            revocations.heard();
                        }
                        Ok(FeedEvent::KeysChanged {}) => {
                            refresh_keys_once(&keys, &refreshing_keys);
                        }
                        Ok(event) => revocations.apply(&event),
                        Err(e) => {
                            tracing::warn!(error = %e, event = %next.event, "unreadable feed event")
                        }
                    }
                    metrics::counter!(FEED_EVENTS, "type" => next.event.clone()).increment(1);
                    if !next.id.is_empty() {
                        last_event_id = Some(next.id);
                    }
                    if last_purge.elapsed() > PURGE_EVERY {
                        revocations.purge(CUTOFF_MEMORY_SECS);
                        last_purge = Instant::now();
                    }
                }
                metrics::gauge!(FEED_CONNECTED).set(0.0);
            }
            Ok(response) => {
                metrics::gauge!(FEED_CONNECTED).set(0.0);
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
                metrics::gauge!(FEED_CONNECTED).set(0.0);
                tracing::warn!(error = %e, "cannot reach the revocation feed");
            }
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// Key refreshes asked for by the feed: one runs at a time, and requests that arrive while it
/// runs are served by one more fetch after it. A replayed backlog full of `keys_changed` costs
/// at most two fetches, and no announcement is ever missed.
#[derive(Default)]
struct KeyRefreshes {
    running: AtomicBool,
    pending: AtomicBool,
}

fn refresh_keys_once(keys: &Weak<RemoteKeys>, refreshes: &Arc<KeyRefreshes>) {
    let Some(keys) = keys.upgrade() else {
        return;
    };
    refreshes.pending.store(true, Ordering::Release);
    if refreshes.running.swap(true, Ordering::AcqRel) {
        return;
    }
    let refreshes = refreshes.clone();
    tokio::spawn(async move {
        loop {
            while refreshes.pending.swap(false, Ordering::AcqRel) {
                keys.refresh().await;
            }
            refreshes.running.store(false, Ordering::Release);
            // A request that came in between the last check and now: take it on again.
            if !refreshes.pending.load(Ordering::Acquire)
                || refreshes.running.swap(true, Ordering::AcqRel)
            {
                return;
            }
        }
    });
}
