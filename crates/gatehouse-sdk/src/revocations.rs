//! What the issuer has revoked, learnt by following its revocation feed (server-sent events).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock, Weak};
use std::time::Duration;

use compact_str::CompactString;
use eventsource_stream::{EventStreamError, Eventsource};
use futures::{Stream, StreamExt};
use gatehouse_proto::FeedEvent;
use gatehouse_token::{AccessClaims, now_unix};
use tokio::time::Instant;

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
    /// Not caught up since this process started, or disconnected for longer than the staleness
    /// budget: revocations may have been missed.
    Stale,
}

/// Ids up to 24 bytes (Gatehouse's `jti`s and `sid`s) are kept inline, not in an allocation of
/// their own: a gateway holding a million revoked tokens grew by about 70 MiB (mostly the
/// table's slots) where it grew by about 100 MiB (BENCHMARKS.md, "At scale").
type Ids = HashMap<CompactString, i64>;

#[derive(Default)]
struct Denied {
    /// Revoked `jti` → when the token would have expired anyway.
    jtis: Ids,
    /// User or client id → tokens issued before this instant are dead.
    cutoffs: Ids,
    /// Revoked sign-in session → when its last access token expires.
    sids: Ids,
}

/// The revocations known to this process. Reads are a hash lookup or three under a read lock.
pub(crate) struct Revocations {
    denied: RwLock<Denied>,
    /// When the feed last proved current: a byte after its `caught_up` event. Tokio's clock (the system's, outside paused tests).
    last_heard: Mutex<Instant>,
    budget: Duration,
    /// Revoked tokens are remembered this long past their expiry, as verifiers accept them that long.
    leeway_secs: i64,
    followed: bool,
    /// Whether a `caught_up` has ever arrived: until then this process knows none of the
    /// revocations made before it started, and its view is stale however recent its last byte.
    ever_current: AtomicBool,
}

impl Revocations {
    pub(crate) fn new(followed: bool, budget: Duration, leeway_secs: i64) -> Self {
        Self {
            denied: RwLock::default(),
            last_heard: Mutex::new(Instant::now()),
            budget,
            leeway_secs,
            followed,
            ever_current: AtomicBool::new(false),
        }
    }

    /// Whether `claims` belong to a revoked token or sign-in session, or to a user or client
    /// cut off after it.
    pub(crate) fn is_revoked(&self, claims: &AccessClaims) -> bool {
        let Ok(denied) = self.denied.read() else {
            return true;
        };
        denied.jtis.contains_key(claims.jti.as_str())
            || claims
                .sid
                .as_ref()
                .is_some_and(|sid| denied.sids.contains_key(sid.as_str()))
            || denied
                .cutoffs
                .get(claims.sub.as_str())
                .is_some_and(|nbf| claims.iat < *nbf)
            || (claims.client_id != claims.sub
                && denied
                    .cutoffs
                    .get(claims.client_id.as_str())
                    .is_some_and(|nbf| claims.iat < *nbf))
    }

    pub(crate) fn status(&self) -> FeedStatus {
        if !self.followed {
            return FeedStatus::NotFollowed;
        }
        match !self.ever_current.load(Ordering::Relaxed) || self.silence() > self.budget {
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

    /// Applies a revocation. Every kind is idempotent and keeps the furthest time it has seen,
    /// so a repeated or replayed event never changes the outcome.
    fn apply(&self, event: &FeedEvent) {
        let Ok(mut denied) = self.denied.write() else {
            return;
        };
        let keep_latest = |map: &mut Ids, key: &str, at: i64| match map.get_mut(key) {
            Some(known) => *known = (*known).max(at),
            None => {
                map.insert(CompactString::from(key), at);
            }
        };
        match event {
            FeedEvent::TokenRevoked { jti, until } => keep_latest(&mut denied.jtis, jti, *until),
            FeedEvent::SessionRevoked { sid, until } => keep_latest(&mut denied.sids, sid, *until),
            FeedEvent::SubjectCutoff {
                subject,
                not_before,
            } => keep_latest(&mut denied.cutoffs, subject, *not_before),
            FeedEvent::KeysChanged { .. } | FeedEvent::CaughtUp | FeedEvent::Unknown => {}
        }
    }

    /// Forgets revocations of tokens and sessions that are past their expiry and the leeway.
    /// A cut-off is kept for as long as a token issued before it could live.
    fn purge(&self, max_token_lifetime: i64) {
        let now = now_unix();
        if let Ok(mut denied) = self.denied.write() {
            let leeway = self.leeway_secs;
            denied.jtis.retain(|_, until| *until + leeway >= now);
            denied.sids.retain(|_, until| *until + leeway >= now);
            denied
                .cutoffs
                .retain(|_, nbf| *nbf + max_token_lifetime + leeway >= now);
        }
    }
}

/// Where to resume the feed (`Last-Event-ID`): the newest event id received. Ids are the
/// issuer's sequence numbers. During a backlog some events come without an id (they keep the
/// last one, as SSE says) and live events may come between older ones, so an older id never
/// replaces a newer one.
#[derive(Debug, Default)]
struct ResumePoint(Option<i64>);

impl ResumePoint {
    fn saw(&mut self, id: &str) {
        if id.is_empty() {
            return;
        }
        match id.parse::<i64>() {
            Ok(seq) => self.0 = Some(self.0.map_or(seq, |known| known.max(seq))),
            // The issuer would refuse it back as a Last-Event-ID.
            Err(_) => tracing::warn!(id, "ignoring a feed event id that is not a sequence number"),
        }
    }

    fn header(&self) -> Option<String> {
        self.0.map(|seq| seq.to_string())
    }
}

/// Gaps between reconnection attempts grow to this.
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// The issuer sends a keep-alive every 5 s; a connection with no byte for longer than this is dead.
const IDLE_TIMEOUT: Duration = Duration::from_secs(20);
/// Cut-offs are kept this long (a day covers any sane access-token lifetime).
const CUTOFF_MEMORY_SECS: i64 = 86_400;
const PURGE_EVERY: Duration = Duration::from_secs(60);

/// Follows the feed for as long as the process runs: reconnects with backoff, resumes with
/// `Last-Event-ID`, applies each event as it arrives, and asks for fresh keys when told to.
pub(crate) async fn follow(
    http: reqwest::Client,
    url: String,
    credentials: FeedCredentials,
    state: Weak<Revocations>,
    keys: Weak<RemoteKeys>,
) {
    let mut resume = ResumePoint::default();
    let mut backoff = Duration::from_millis(100);
    let mut last_purge = Instant::now();
    let refreshing_keys = Arc::new(KeyRefreshes::default());
    loop {
        let mut request = http
            .get(&url)
            .basic_auth(&credentials.client_id, Some(&credentials.client_secret))
            .header("accept", "text/event-stream");
        if let Some(id) = resume.header() {
            request = request.header("last-event-id", id);
        }
        let outcome = request.send().await;
        // The verifier was dropped: stop following.
        if state.strong_count() == 0 || keys.strong_count() == 0 {
            return;
        }
        match outcome {
            Ok(response) if response.status().is_success() => {
                metrics::gauge!(FEED_CONNECTED).set(1.0);
                backoff = Duration::from_millis(100);
                let mut reader = FeedReader {
                    state: &state,
                    keys: &keys,
                    refreshing_keys: &refreshing_keys,
                    resume: &mut resume,
                    last_purge: &mut last_purge,
                };
                let ended = reader.read(response.bytes_stream()).await;
                metrics::gauge!(FEED_CONNECTED).set(0.0);
                match ended {
                    Ended::Dropped => return,
                    Ended::Closed => tracing::info!("the issuer closed the revocation feed"),
                    Ended::Broken(e) => tracing::warn!(error = %e, "the revocation feed broke off"),
                    Ended::Silent => {
                        tracing::warn!("the revocation feed went silent; reconnecting")
                    }
                }
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

/// Why one connection to the feed ended.
#[derive(Debug)]
enum Ended {
    /// The verifier was dropped: stop following.
    Dropped,
    Closed,
    Broken(String),
    /// No byte for [`IDLE_TIMEOUT`].
    Silent,
}

/// What ended a connection's byte stream early.
#[derive(Debug, thiserror::Error)]
enum Interrupted<E> {
    #[error("{0}")]
    Transport(E),
    #[error("no byte received for {0:?}")]
    Silent(Duration),
}

/// `bytes`, ended with [`Interrupted::Silent`] once no chunk has come for `idle`. Measured on
/// the raw bytes, so keep-alive comments (which SSE parsers drop) count.
fn idle_guard<S, B, E>(
    bytes: S,
    idle: Duration,
) -> impl Stream<Item = Result<B, Interrupted<E>>> + Send
where
    S: Stream<Item = Result<B, E>> + Send + 'static,
    B: Send,
    E: Send,
{
    futures::stream::unfold(Some(Box::pin(bytes)), move |bytes| async move {
        let mut bytes = bytes?;
        match tokio::time::timeout(idle, bytes.next()).await {
            Ok(Some(Ok(chunk))) => Some((Ok(chunk), Some(bytes))),
            Ok(Some(Err(e))) => Some((Err(Interrupted::Transport(e)), None)),
            Ok(None) => None,
            Err(_) => Some((Err(Interrupted::Silent(idle)), None)),
        }
    })
}

/// Reads one connection of the feed into the revocations, until it ends.
struct FeedReader<'a> {
    state: &'a Weak<Revocations>,
    keys: &'a Weak<RemoteKeys>,
    refreshing_keys: &'a Arc<KeyRefreshes>,
    resume: &'a mut ResumePoint,
    last_purge: &'a mut Instant,
}

impl FeedReader<'_> {
    async fn read<S, B, E>(&mut self, bytes: S) -> Ended
    where
        S: Stream<Item = Result<B, E>> + Send + 'static,
        B: AsRef<[u8]> + Send,
        E: std::fmt::Display + Send,
    {
        // Every byte is liveness for the idle timeout. For the staleness budget only bytes after
        // this connection's `caught_up` count: before it, the view lacks the backlog.
        let caught_up = Arc::new(AtomicBool::new(false));
        let proof = (caught_up.clone(), self.state.clone());
        let bytes = idle_guard(bytes, IDLE_TIMEOUT).inspect(move |chunk| {
            let got_bytes = chunk.as_ref().is_ok_and(|c| !c.as_ref().is_empty());
            if got_bytes
                && proof.0.load(Ordering::Relaxed)
                && let Some(revocations) = proof.1.upgrade()
            {
                revocations.heard();
            }
        });
        let mut events = std::pin::pin!(bytes.eventsource());
        while let Some(next) = events.next().await {
            let next = match next {
                Ok(event) => event,
                Err(EventStreamError::Transport(Interrupted::Silent(_))) => return Ended::Silent,
                Err(e) => return Ended::Broken(e.to_string()),
            };
            let Some(revocations) = self.state.upgrade() else {
                return Ended::Dropped;
            };
            match serde_json::from_str::<FeedEvent>(&next.data) {
                Ok(FeedEvent::CaughtUp) => {
                    caught_up.store(true, Ordering::Relaxed);
                    revocations.heard();
                    revocations.ever_current.store(true, Ordering::Relaxed);
                }
                Ok(FeedEvent::KeysChanged { .. }) => {
                    refresh_keys_once(self.keys, self.refreshing_keys)
                }
                Ok(FeedEvent::Unknown) => {
                    tracing::debug!(event = %next.event, "skipping a feed event of a type this reader does not know")
                }
                Ok(event) => revocations.apply(&event),
                Err(e) => {
                    tracing::warn!(error = %e, event = %next.event, "unreadable feed event")
                }
            }
            metrics::counter!(FEED_EVENTS, "type" => next.event.clone()).increment(1);
            self.resume.saw(&next.id);
            if self.last_purge.elapsed() > PURGE_EVERY {
                revocations.purge(CUTOFF_MEMORY_SECS);
                *self.last_purge = Instant::now();
            }
        }
        Ended::Closed
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

#[cfg(test)]
mod tests {
    use std::convert::Infallible;

    use futures::stream::BoxStream;
    use gatehouse_token::Audience;

    use super::*;

    fn claims(jti: &str, sid: Option<&str>) -> AccessClaims {
        let now = now_unix();
        AccessClaims {
            iss: "https://issuer.test".into(),
            sub: "alice".into(),
            aud: Audience::One("gatehouse".into()),
            exp: now + 300,
            iat: now,
            jti: jti.into(),
            client_id: "web".into(),
            scope: String::new(),
            roles: None,
            sid: sid.map(str::to_owned),
        }
    }

    fn event(json: &str) -> FeedEvent {
        serde_json::from_str(json).unwrap()
    }

    /// A feed connection as bytes: each step waits its seconds, then sends its text; with
    /// `hang`, the connection then stays open without a byte.
    fn script(
        steps: Vec<(u64, String)>,
        hang: bool,
    ) -> BoxStream<'static, Result<Vec<u8>, Infallible>> {
        let sent = futures::stream::iter(steps).then(|(secs, text)| async move {
            tokio::time::sleep(Duration::from_secs(secs)).await;
            Ok(text.into_bytes())
        });
        match hang {
            true => sent.chain(futures::stream::pending()).boxed(),
            false => sent.boxed(),
        }
    }

    fn caught_up() -> (u64, String) {
        (
            0,
            "event: caught_up\ndata: {\"type\":\"caught_up\"}\n\n".into(),
        )
    }

    fn keep_alives(count: usize, every_secs: u64) -> Vec<(u64, String)> {
        vec![(every_secs, ":\n\n".to_owned()); count]
    }

    /// Reads one connection into `revocations`; returns how it ended and the resume point.
    async fn read(
        revocations: &Arc<Revocations>,
        bytes: BoxStream<'static, Result<Vec<u8>, Infallible>>,
    ) -> (Ended, ResumePoint) {
        let state = Arc::downgrade(revocations);
        let mut resume = ResumePoint::default();
        let mut last_purge = Instant::now();
        let mut reader = FeedReader {
            state: &state,
            keys: &Weak::new(),
            refreshing_keys: &Arc::new(KeyRefreshes::default()),
            resume: &mut resume,
            last_purge: &mut last_purge,
        };
        let ended = reader.read(bytes).await;
        (ended, resume)
    }

    #[test]
    fn reads_every_event_and_skips_types_it_does_not_know() {
        assert!(matches!(
            event(r#"{"type":"session_revoked","sid":"fam-1","until":1700000000}"#),
            FeedEvent::SessionRevoked { sid, until: 1_700_000_000 } if sid == "fam-1"
        ));
        assert!(matches!(
            event(r#"{"type":"keys_changed","kid":"k1"}"#),
            FeedEvent::KeysChanged { .. }
        ));
        assert!(matches!(
            event(r#"{"type":"token_revoked","jti":"j","until":5,"reason":"logout"}"#),
            FeedEvent::TokenRevoked { .. }
        ));
        assert!(matches!(
            event(r#"{"type":"client_renamed","client_id":"c","name":{"x":1}}"#),
            FeedEvent::Unknown
        ));
        // A known type without its fields is unreadable, not skipped.
        assert!(serde_json::from_str::<FeedEvent>(r#"{"type":"session_revoked"}"#).is_err());
    }

    #[test]
    fn a_revoked_session_ends_its_tokens_and_no_others_until_they_expire() {
        let revocations = Revocations::new(true, Duration::from_secs(30), 30);
        let (mine, other, machine) = (
            claims("j1", Some("fam-1")),
            claims("j2", Some("fam-2")),
            claims("j3", None),
        );
        assert!(!revocations.is_revoked(&mine));
        revocations.apply(&FeedEvent::SessionRevoked {
            sid: "fam-1".into(),
            until: now_unix() + 300,
        });
        assert!(revocations.is_revoked(&mine));
        assert!(!revocations.is_revoked(&other));
        assert!(!revocations.is_revoked(&machine));
        // Kept while its tokens may still be accepted (expiry plus leeway), then forgotten.
        revocations.purge(CUTOFF_MEMORY_SECS);
        assert!(revocations.is_revoked(&mine));
        revocations.apply(&FeedEvent::SessionRevoked {
            sid: "fam-2".into(),
            until: now_unix() - 31,
        });
        revocations.purge(CUTOFF_MEMORY_SECS);
        assert!(revocations.is_revoked(&mine));
        assert!(!revocations.is_revoked(&other));
    }

    #[test]
    fn repeated_and_replayed_events_change_nothing() {
        let revocations = Revocations::new(true, Duration::from_secs(30), 0);
        let now = now_unix();
        let later = FeedEvent::SessionRevoked {
            sid: "fam-1".into(),
            until: now + 300,
        };
        let earlier = FeedEvent::SessionRevoked {
            sid: "fam-1".into(),
            until: now - 10,
        };
        let cutoff = FeedEvent::SubjectCutoff {
            subject: "alice".into(),
            not_before: now + 5,
        };
        let older_cutoff = FeedEvent::SubjectCutoff {
            subject: "alice".into(),
            not_before: now - 100,
        };
        for event in [&later, &later, &earlier, &cutoff, &older_cutoff, &cutoff] {
            revocations.apply(event);
        }
        let denied = revocations.denied.read().unwrap();
        assert_eq!(denied.sids.len(), 1);
        assert_eq!(
            denied.sids["fam-1"],
            now + 300,
            "a replay shortened a revocation"
        );
        assert_eq!(
            denied.cutoffs["alice"],
            now + 5,
            "a replay moved a cut-off back"
        );
        drop(denied);
        // So the purge keeps the session: its last token is not expired yet.
        revocations.purge(CUTOFF_MEMORY_SECS);
        assert!(revocations.is_revoked(&claims("j", Some("fam-1"))));
    }

    #[test]
    fn the_resume_point_is_the_newest_id_received() {
        let mut resume = ResumePoint::default();
        resume.saw("");
        assert_eq!(resume.header(), None);
        for id in ["7", "", "42", "8", "42", "not-a-number", "41"] {
            resume.saw(id);
        }
        assert_eq!(resume.header().as_deref(), Some("42"));
        resume.saw("43");
        assert_eq!(resume.header().as_deref(), Some("43"));
    }

    #[tokio::test(start_paused = true)]
    async fn keep_alive_comments_alone_keep_the_connection_and_the_view_alive() {
        let revocations = Arc::new(Revocations::new(true, Duration::from_secs(12), 30));
        let mut steps = vec![(0, ": subscribed\n\n".to_owned()), caught_up()];
        // Two minutes of keep-alives every 5 s, as the issuer sends them; nothing else.
        steps.extend(keep_alives(24, 5));
        let started = Instant::now();
        let sampled = async {
            for _ in 0..119 {
                tokio::time::sleep(Duration::from_secs(1)).await;
                assert_eq!(revocations.status(), FeedStatus::Current);
                assert!(revocations.silence() <= Duration::from_secs(5));
            }
        };
        let ((ended, _), ()) = tokio::join!(read(&revocations, script(steps, false)), sampled);
        assert!(matches!(ended, Ended::Closed), "{ended:?}");
        assert_eq!(started.elapsed(), Duration::from_secs(120));
    }

    #[tokio::test(start_paused = true)]
    async fn a_connection_without_a_byte_for_the_idle_timeout_is_given_up() {
        let revocations = Arc::new(Revocations::new(true, Duration::from_secs(30), 30));
        let mut steps = vec![caught_up()];
        steps.extend(keep_alives(10, 5));
        let started = Instant::now();
        let (ended, _) = read(&revocations, script(steps, true)).await;
        assert!(matches!(ended, Ended::Silent), "{ended:?}");
        // The timer ran from the last keep-alive, not from the last event.
        assert_eq!(started.elapsed(), Duration::from_secs(50) + IDLE_TIMEOUT);
    }

    #[tokio::test(start_paused = true)]
    async fn bytes_before_caught_up_do_not_make_the_view_current() {
        let revocations = Arc::new(Revocations::new(true, Duration::from_secs(12), 30));
        let mut steps = keep_alives(4, 5);
        steps.push(caught_up());
        steps.push((1, ":\n\n".to_owned()));
        let checked = async {
            tokio::time::sleep(Duration::from_secs(19)).await;
            assert_eq!(
                revocations.status(),
                FeedStatus::Stale,
                "trusted before the backlog was in"
            );
            tokio::time::sleep(Duration::from_secs(2)).await;
            assert_eq!(revocations.status(), FeedStatus::Current);
        };
        let ((ended, _), ()) = tokio::join!(read(&revocations, script(steps, false)), checked);
        assert!(matches!(ended, Ended::Closed), "{ended:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_backlog_without_ids_interleaved_live_events_and_duplicates() {
        let revocations = Arc::new(Revocations::new(true, Duration::from_secs(30), 30));
        let until = now_unix() + 300;
        let data = |json: String| format!("data: {json}\n\n");
        let steps = vec![
            (
                0,
                data(format!(
                    r#"{{"type":"token_revoked","jti":"old","until":{until}}}"#
                )),
            ),
            // A live event between backlog events, with a newer id than the backlog's.
            (
                0,
                format!(
                    "id: 50\n{}",
                    data(format!(
                        r#"{{"type":"token_revoked","jti":"live","until":{until}}}"#
                    ))
                ),
            ),
            (
                0,
                format!(
                    "id: 12\n{}",
                    data(format!(
                        r#"{{"type":"session_revoked","sid":"fam-1","until":{until}}}"#
                    ))
                ),
            ),
            (0, data(r#"{"type":"something_new","at":1}"#.to_owned())),
            (
                0,
                format!("id: 13\n{}", data(r#"{"type":"caught_up"}"#.to_owned())),
            ),
            // The live event once more, then a session revoked after the unknown type.
            (
                0,
                format!(
                    "id: 50\n{}",
                    data(format!(
                        r#"{{"type":"token_revoked","jti":"live","until":{until}}}"#
                    ))
                ),
            ),
            (
                0,
                format!(
                    "id: 51\n{}",
                    data(format!(
                        r#"{{"type":"session_revoked","sid":"fam-2","until":{until}}}"#
                    ))
                ),
            ),
            (
                0,
                format!(
                    "id: 14\n{}",
                    data(r#"{"type":"keys_changed","kid":"k"}"#.to_owned())
                ),
            ),
        ];
        let (ended, resume) = read(&revocations, script(steps, false)).await;
        assert!(matches!(ended, Ended::Closed), "{ended:?}");
        assert_eq!(resume.header().as_deref(), Some("51"));
        for (jti, sid) in [
            ("old", None),
            ("live", None),
            ("x", Some("fam-1")),
            ("y", Some("fam-2")),
        ] {
            assert!(revocations.is_revoked(&claims(jti, sid)), "{jti} {sid:?}");
        }
        assert!(!revocations.is_revoked(&claims("z", Some("fam-3"))));
        let denied = revocations.denied.read().unwrap();
        assert_eq!((denied.jtis.len(), denied.sids.len()), (2, 2));
    }
}
