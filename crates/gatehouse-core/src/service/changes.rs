//! The change log as each node sees it: one reader per node follows the log in sequence order,
//! applies what concerns this node's caches, and fans every batch out in process to the
//! subscribers of the revocation feed (`GET /oauth2/revocations`), so database load does not grow
//! with the number of gateways.
//!
//! PostgreSQL hands out sequence numbers before commit, so a number can become visible after a
//! higher one (a *hole*). The reader remembers the holes it skipped and asks for exactly those
//! numbers again until they appear or are given up as rolled back: cheap however many rows land at
//! once, since holes are bounded by the transactions in flight, not by the rows written.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
use std::time::Duration;

use gatehouse_proto::FeedEvent;
use tokio::sync::{broadcast, watch};

use super::AuthService;
use super::ClientAuth;
use crate::{Change, ChangeKind, Clock, OAuthError, OAuthErrorCode, Store, StoreError};

/// The most entries one read of the log returns; a short read means the reader is at the end.
pub const CHANGE_PAGE: usize = 2000;

/// How long a skipped sequence number is looked for before it is taken for a rolled-back
/// transaction. Every change-log transaction is short; this is far longer than any of them.
const HOLE_PATIENCE_SECS: i64 = 30;

/// At most this many holes are tracked; beyond it the oldest are given up (a jump this large is
/// a sequence reset or mass rollback, not transactions in flight).
const MAX_HOLES: usize = 10_000;

/// Holes asked for in one look-up.
const HOLE_LOOKUP: usize = 200;

/// Batches kept for subscribers that fall behind; one further behind re-reads from the store.
const BROADCAST_CAPACITY: usize = 1024;

/// How far back a reconnecting console page may ask to resume.
const CONSOLE_REPLAY: i64 = 1000;

/// How long the node's reader may fail before the feed's subscribers are cut off.
const READER_PATIENCE: Duration = Duration::from_secs(5);

/// Under a flood of changes, reads are spaced at least this far apart so each takes a batch.
const MIN_READ_SPACING: Duration = Duration::from_millis(5);

/// Changes the node's reader found, in the order found, with where a subscriber that has seen
/// this batch and everything before it may resume.
#[derive(Debug)]
pub struct ChangeBatch {
    pub changes: Vec<Change>,
    pub resume_from: i64,
}

/// Where a reader of the log stands: the highest sequence number read, and the lower ones not
/// yet visible when it read past them.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
struct LogPosition {
    high: i64,
    /// Skipped sequence number → when it was first found missing (Unix seconds).
    holes: BTreeMap<i64, i64>,
}

impl LogPosition {
    fn at(seq: i64) -> Self {
        Self {
            high: seq,
            holes: BTreeMap::new(),
        }
    }

    /// Takes a read of entries above `high` (in sequence order) and entries looked up as holes;
    /// returns those not taken before.
    fn take(&mut self, read: Vec<Change>, now: i64) -> Vec<Change> {
        let mut fresh = Vec::with_capacity(read.len());
        for change in read {
            if change.seq > self.high {
                // A jump wider than the holes kept (a long-purged log, a sequence reset) is not
                // transactions in flight: only its top is worth looking for.
                let lowest = (self.high + 1).max(change.seq - MAX_HOLES as i64);
                for missing in lowest..change.seq {
                    self.holes.insert(missing, now);
                }
                self.high = change.seq;
                fresh.push(change);
            } else if self.holes.remove(&change.seq).is_some() {
                fresh.push(change);
            }
        }
        while self.holes.len() > MAX_HOLES {
            self.holes.pop_first();
        }
        fresh
    }

    /// Gives up holes older than the patience: their transactions rolled back.
    fn forget_old_holes(&mut self, now: i64) {
        self.holes
            .retain(|_, noticed| now - *noticed < HOLE_PATIENCE_SECS);
    }

    fn missing(&self) -> Vec<i64> {
        self.holes.keys().copied().collect()
    }

    /// Every sequence number up to here has been read or given up.
    fn watermark(&self) -> i64 {
        self.holes
            .keys()
            .next()
            .map_or(self.high, |first| first - 1)
    }
}

/// This node's view of the change log, shared by its reader and the feed's subscribers.
pub struct ChangeHub {
    sender: broadcast::Sender<Arc<ChangeBatch>>,
    /// The highest sequence number broadcast (set before the broadcast).
    high: AtomicI64,
    /// Every sequence number up to here has been broadcast (set before the broadcast).
    watermark: AtomicI64,
    /// Where the node's reader starts.
    start: LogPosition,
    /// Set while the reader has failed for longer than [`READER_PATIENCE`]: subscribers then end
    /// their streams, so gateways see their view go stale instead of trusting keep-alives.
    failing: watch::Sender<bool>,
    /// Readers of `GET /oauth2/revocations` connected now (not the console's pages).
    readers: Arc<AtomicUsize>,
}

/// Counts one feed reader while it is connected.
struct ReaderCount(Arc<AtomicUsize>);

impl ReaderCount {
    fn new(readers: &Arc<AtomicUsize>) -> Self {
        readers.fetch_add(1, Ordering::Relaxed);
        Self(readers.clone())
    }
}

impl Drop for ReaderCount {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl ChangeHub {
    /// Starts a little before the end of the log, so a transaction that took its number before
    /// this node started and commits after is still found.
    pub(crate) async fn open(store: &dyn Store, now: i64) -> Result<Self, StoreError> {
        let start = match store.first_change_since(now - HOLE_PATIENCE_SECS).await? {
            Some(seq) => seq - 1,
            None => store.latest_change().await?,
        };
        let (sender, _) = broadcast::channel(BROADCAST_CAPACITY);
        let (failing, _) = watch::channel(false);
        Ok(Self {
            failing,
            sender,
            high: AtomicI64::new(start),
            watermark: AtomicI64::new(start),
            start: LogPosition::at(start),
            readers: Arc::default(),
        })
    }

    fn publish(&self, changes: Vec<Change>, position: &LogPosition) {
        let resume_from = position.watermark();
        self.high.store(position.high, Ordering::SeqCst);
        self.watermark.store(resume_from, Ordering::SeqCst);
        if !changes.is_empty() {
            // No subscribers is not an error.
            let _ = self.sender.send(Arc::new(ChangeBatch {
                changes,
                resume_from,
            }));
        }
    }

    /// How many readers of the revocation feed (gateways, services) this node serves now.
    pub fn subscribers(&self) -> usize {
        self.readers.load(Ordering::Relaxed)
    }
}

impl AuthService {
    /// This node's one reader of the change log: applies changes made through other nodes (or
    /// the CLI) to this node's caches and hands every batch to the feed's subscribers. Woken by
    /// this node's own commits and, on PostgreSQL, by other nodes' `NOTIFY`; polls every `poll`
    /// as the safety net. Runs until the process ends.
    pub async fn follow_changes(self: Arc<Self>, poll: Duration) {
        let hub = &self.changes;
        let mut position = hub.start.clone();
        let mut last_good_read = tokio::time::Instant::now();
        loop {
            tokio::select! {
                () = self.store.change_notified() => {}
                () = tokio::time::sleep(poll) => {}
            }
            loop {
                // A read that hangs (a half-open connection) counts as failing too.
                let read = tokio::time::timeout(
                    READER_PATIENCE,
                    read_log(self.store.as_ref(), &mut position, self.now()),
                )
                .await
                .unwrap_or_else(|_| {
                    Err(StoreError::Unavailable(
                        "reading the change log timed out".into(),
                    ))
                });
                match read {
                    Ok((changes, more)) => {
                        for change in &changes {
                            self.apply_change(change).await;
                        }
                        hub.publish(changes, &position);
                        last_good_read = tokio::time::Instant::now();
                        hub.failing
                            .send_if_modified(|failing| std::mem::replace(failing, false));
                        if !more {
                            break;
                        }
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "reading the change log failed");
                        // Measured from the last good read, so slow failures trip it in time.
                        if last_good_read.elapsed() >= READER_PATIENCE {
                            hub.failing
                                .send_if_modified(|failing| !std::mem::replace(failing, true));
                        }
                        break;
                    }
                }
            }
            tokio::time::sleep(MIN_READ_SPACING).await;
        }
    }

    async fn apply_change(&self, change: &Change) {
        match change.kind {
            ChangeKind::Client => self.clients.invalidate(&change.subject),
            ChangeKind::Role => self.clients.clear(),
            ChangeKind::Keys => {
                if let Err(e) = self.reload_keys().await {
                    tracing::warn!(error = %e, "reloading keys after a change failed");
                }
            }
            // Checked against the store on every use; nothing is cached here.
            ChangeKind::TokenRevoked | ChangeKind::SubjectCutoff | ChangeKind::SessionRevoked => {}
            ChangeKind::Unknown => {
                tracing::warn!(
                    seq = change.seq,
                    "skipping a change of a kind this version does not know: upgrade this node"
                );
            }
        }
    }

    /// This node's change hub (for metrics and tests).
    pub fn change_hub(&self) -> &ChangeHub {
        &self.changes
    }

    /// The revocation feed as the operators' console shows it to an administrator (the console
    /// decides who may watch): from now on, or after `resume_after` when a reconnecting page
    /// says where it got to, but never more than [`CONSOLE_REPLAY`] entries back.
    pub fn watch_revocation_feed(&self, resume_after: Option<i64>) -> FeedSubscription {
        let high = self.changes.high.load(Ordering::SeqCst);
        let after = resume_after.map_or(high, |seq| seq.clamp(high - CONSOLE_REPLAY, high));
        FeedSubscription::new(self, after)
    }

    /// The newest entries of the change log that the feed sends (at most `count`, looked for
    /// among the last `2 * count` entries), oldest first, with each entry's time.
    pub async fn recent_feed_events(
        &self,
        count: u32,
    ) -> Result<Vec<(i64, FeedEvent)>, StoreError> {
        let latest = self.store.latest_change().await?;
        let window = count.saturating_mul(2);
        let read = self
            .store
            .changes_between((latest - i64::from(window)).max(0), latest, window)
            .await?;
        let events: Vec<(i64, FeedEvent)> = read
            .iter()
            .filter_map(|change| feed_event(change).map(|event| (change.at, event)))
            .collect();
        let skip = events.len().saturating_sub(count as usize);
        Ok(events.into_iter().skip(skip).collect())
    }
}

/// One read: new entries past the position, then the holes that have filled; `more` when the read
/// was a full page and the reader should read again at once.
async fn read_log(
    store: &dyn Store,
    position: &mut LogPosition,
    now: i64,
) -> Result<(Vec<Change>, bool), StoreError> {
    let mut read = store
        .changes_between(position.high, i64::MAX, CHANGE_PAGE as u32)
        .await?;
    let more = read.len() == CHANGE_PAGE;
    for missing in position.missing().chunks(HOLE_LOOKUP) {
        read.extend(store.changes_in(missing).await?);
    }
    let fresh = position.take(read, now);
    position.forget_old_holes(now);
    Ok((fresh, more))
}

/// What a gateway needs of a change; changes that concern only the auth nodes give `None`.
fn feed_event(change: &Change) -> Option<FeedEvent> {
    let until = change.until.unwrap_or_default();
    match change.kind {
        ChangeKind::TokenRevoked => Some(FeedEvent::TokenRevoked {
            jti: change.subject.clone(),
            until,
        }),
        ChangeKind::SubjectCutoff => Some(FeedEvent::SubjectCutoff {
            subject: change.subject.clone(),
            not_before: until,
        }),
        ChangeKind::SessionRevoked => Some(FeedEvent::SessionRevoked {
            sid: change.subject.clone(),
            until,
        }),
        ChangeKind::Keys => Some(FeedEvent::KeysChanged {
            kid: change.subject.clone(),
        }),
        ChangeKind::Client | ChangeKind::Role | ChangeKind::Unknown => None,
    }
}

/// A revocation of tokens that have all expired (with the leeway) by `now` tells nobody anything.
fn outlived(event: &FeedEvent, now: i64, leeway: i64) -> bool {
    match event {
        FeedEvent::TokenRevoked { until, .. } | FeedEvent::SessionRevoked { until, .. } => {
            *until + leeway < now
        }
        _ => false,
    }
}

/// What the feed sends: an event, and where a reader that has it may resume (`None` while that is
/// not yet known), or the end of the backlog.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FeedItem {
    Event {
        resume_from: Option<i64>,
        event: FeedEvent,
    },
    /// Everything logged before the subscription has been sent: the reader's view is current.
    CaughtUp { resume_from: i64 },
}

/// The entries still to replay from the store to a subscriber.
#[derive(Debug)]
struct Backlog {
    after: i64,
    upto: i64,
    /// Everything up to here is in the backlog, so a reader past it may resume from here.
    complete_to: i64,
}

/// What a replay of the log has read, so that the node's broadcast of the same entries is not
/// sent twice. Numbers the replay passed without finding an entry (taken by a transaction not yet
/// committed, or rolled back) are gaps: only the broadcast can bring those.
struct Replayed {
    /// The replay began after this entry…
    after: i64,
    /// …has read up to here…
    position: i64,
    /// …and ends here.
    upto: i64,
    /// Inclusive ranges it passed without finding an entry.
    gaps: Vec<(i64, i64)>,
    /// Too many gaps to remember: nothing it passed counts as sent.
    overflowed: bool,
}

/// The most gaps a replay remembers.
const MAX_REPLAY_GAPS: usize = 1024;

impl Replayed {
    fn new(after: i64, upto: i64) -> Self {
        Self {
            after,
            position: after,
            upto,
            gaps: Vec::new(),
            overflowed: false,
        }
    }

    /// Notes a page read in order from `position` on; `done` when the replay ends with it.
    fn read(&mut self, seqs: impl IntoIterator<Item = i64>, done: bool) {
        for seq in seqs {
            if seq > self.position + 1 {
                self.gap(self.position + 1, seq - 1);
            }
            self.position = self.position.max(seq);
        }
        if done {
            if self.upto > self.position {
                self.gap(self.position + 1, self.upto);
            }
            self.position = self.position.max(self.upto);
        }
    }

    fn gap(&mut self, from: i64, to: i64) {
        match self.gaps.len() < MAX_REPLAY_GAPS {
            true => self.gaps.push((from, to)),
            false => self.overflowed = true,
        }
    }

    /// Whether the replay sends (or has sent) the entry numbered `seq`, which the node's reader
    /// has read and which is therefore committed: ahead of the position the replay will read it;
    /// behind it, the replay read it unless it was a gap then.
    fn sends(&self, seq: i64) -> bool {
        if seq <= self.after || seq > self.upto {
            return false;
        }
        if seq > self.position {
            return true;
        }
        // Gaps are found in order, so they are sorted and apart: a binary search finds the one.
        let candidate = self.gaps.partition_point(|(_, to)| *to < seq);
        let in_gap = self
            .gaps
            .get(candidate)
            .is_some_and(|(from, _)| *from <= seq);
        !self.overflowed && !in_gap
    }
}

/// One reader of the revocation feed. It replays the backlog from the store in pages, sending
/// whatever the node's reader broadcasts meanwhile first, so a fresh revocation never waits
/// behind a replay; then it sends each broadcast batch as it comes. What the replay reads (or
/// will read) is not sent again when the broadcast brings it too, which it does when the node's
/// reader is itself catching up on a long backlog. A subscriber too slow for the broadcast
/// replays from where it had got to. Sending an event twice is harmless (every event is
/// idempotent), only wasteful; losing one is not.
pub struct FeedSubscription {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    hub: Arc<ChangeHub>,
    receiver: broadcast::Receiver<Arc<ChangeBatch>>,
    failing: watch::Receiver<bool>,
    backlog: Option<Backlog>,
    /// What the last replay read, kept after it ends: the node's broadcast may bring the same
    /// entries later.
    replayed: Replayed,
    resume_from: i64,
    leeway: i64,
    /// Set for a reader of the feed endpoint, so the node's figures count it while it lasts.
    counted: Option<ReaderCount>,
}

impl FeedSubscription {
    fn new(service: &AuthService, after: i64) -> Self {
        let hub = service.changes.clone();
        // Subscribe before reading the positions: a batch is then either received or covered.
        let receiver = hub.sender.subscribe();
        let failing = hub.failing.subscribe();
        let mut subscription = Self {
            store: service.store.clone(),
            hub,
            receiver,
            failing,
            backlog: None,
            replayed: Replayed::new(after, after),
            resume_from: after,
            leeway: service.config.token_leeway_secs as i64,
            clock: service.clock.clone(),
            counted: None,
        };
        subscription.replay_from(after);
        subscription
    }

    fn replay_from(&mut self, after: i64) {
        let complete_to = self.hub.watermark.load(Ordering::SeqCst);
        let upto = self.hub.high.load(Ordering::SeqCst);
        self.backlog = Some(Backlog {
            after,
            upto,
            complete_to: complete_to.max(after),
        });
        self.replayed = Replayed::new(after, upto);
    }

    /// The replay goes on to `upto` at least.
    fn replay_to(&mut self, upto: i64) {
        if let Some(backlog) = &mut self.backlog {
            backlog.upto = backlog.upto.max(upto);
            self.replayed.upto = backlog.upto;
        }
    }

    /// The changes of `batch` that the replay does not send.
    fn not_replayed<'a>(&'a self, batch: &'a ChangeBatch) -> impl Iterator<Item = &'a Change> {
        batch.changes.iter().filter(|c| !self.replayed.sends(c.seq))
    }

    /// The next items to send; `None` when the node is shutting down its reader, an error when
    /// this node can no longer tell what changed (the stream should end: its reader reconnects,
    /// perhaps to another node).
    pub async fn next(&mut self) -> Option<Result<Vec<FeedItem>, StoreError>> {
        if *self.failing.borrow_and_update() {
            return Some(Err(reader_failing()));
        }
        let now = self.clock.now();
        if self.backlog.is_some() {
            let mut items = Vec::new();
            loop {
                match self.receiver.try_recv() {
                    Ok(batch) => items.extend(self.events(self.not_replayed(&batch), None, now)),
                    Err(broadcast::error::TryRecvError::Lagged(_)) => {
                        self.replay_from(self.resume_from);
                    }
                    Err(broadcast::error::TryRecvError::Empty) => break,
                    Err(broadcast::error::TryRecvError::Closed) => return None,
                }
            }
            return Some(self.replay_page(items, now).await);
        }
        let received = loop {
            tokio::select! {
                received = self.receiver.recv() => break received,
                changed = self.failing.changed() => {
                    if changed.is_err() || *self.failing.borrow_and_update() {
                        return Some(Err(reader_failing()));
                    }
                }
            }
        };
        match received {
            Ok(batch) => {
                self.resume_from = self.resume_from.max(batch.resume_from);
                Some(Ok(self.events(
                    self.not_replayed(&batch),
                    Some(self.resume_from),
                    now,
                )))
            }
            Err(broadcast::error::RecvError::Lagged(_)) => {
                self.replay_from(self.resume_from);
                Some(Ok(Vec::new()))
            }
            Err(broadcast::error::RecvError::Closed) => None,
        }
    }

    async fn replay_page(
        &mut self,
        mut items: Vec<FeedItem>,
        now: i64,
    ) -> Result<Vec<FeedItem>, StoreError> {
        let Some(backlog) = &mut self.backlog else {
            return Ok(items);
        };
        let page = self
            .store
            .changes_between(backlog.after, backlog.upto, CHANGE_PAGE as u32)
            .await?;
        let complete_to = backlog.complete_to;
        let done = page.len() < CHANGE_PAGE;
        if let Some(last) = page.last() {
            backlog.after = last.seq;
        }
        self.replayed.read(page.iter().map(|c| c.seq), done);
        for change in &page {
            // Up to the watermark, an entry's own number is a safe place to resume.
            let resume = change.seq.min(complete_to).max(self.resume_from);
            self.resume_from = resume;
            items.extend(self.events(std::slice::from_ref(change), Some(resume), now));
        }
        if done {
            self.backlog = None;
            self.resume_from = self.resume_from.max(complete_to);
            items.push(FeedItem::CaughtUp {
                resume_from: self.resume_from,
            });
        }
        Ok(items)
    }

    fn events<'a>(
        &self,
        changes: impl IntoIterator<Item = &'a Change>,
        resume_from: Option<i64>,
        now: i64,
    ) -> Vec<FeedItem> {
        changes
            .into_iter()
            .filter_map(feed_event)
            .filter(|event| !outlived(event, now, self.leeway))
            .map(|event| FeedItem::Event { resume_from, event })
            .collect()
    }
}

fn reader_failing() -> StoreError {
    StoreError::Unavailable("this node cannot read the change log".into())
}

/// The scope a client needs to read the revocation feed.
pub const FEED_SCOPE: &str = "revocations:read";

impl AuthService {
    /// Authorizes a reader of the revocation feed and places it: after `last_event_id` when
    /// resuming, else far enough back that every still-valid token's revocation is replayed.
    pub async fn open_revocation_feed(
        &self,
        auth: &ClientAuth,
        last_event_id: Option<i64>,
    ) -> Result<FeedSubscription, OAuthError> {
        let client = self.authenticate_client(auth).await?;
        if client.client.is_public() || !client.own_scopes.contains(FEED_SCOPE) {
            return Err(OAuthError::new(
                OAuthErrorCode::AccessDenied,
                "reading the revocation feed needs a confidential client with the revocations:read scope",
            ));
        }
        // Older entries concern tokens that have all expired.
        let window_start = self.now()
            - self.config.access_token_ttl_secs as i64
            - self.config.token_leeway_secs as i64
            - HOLE_PATIENCE_SECS;
        let window_after = match self.store.first_change_since(window_start).await? {
            Some(seq) => seq - 1,
            None => self.changes.high.load(Ordering::SeqCst),
        };
        let after = last_event_id.map_or(window_after, |id| id.max(window_after));
        let mut subscription = FeedSubscription::new(self, after);
        subscription.counted = Some(ReaderCount::new(&self.changes.readers));
        // A node that has just started may not have read the log's end yet: the backlog goes
        // there, so `caught_up` never comes before what was logged until now.
        let logged = self.store.latest_change().await?;
        subscription.replay_to(logged);
        Ok(subscription)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(seq: i64) -> Change {
        Change {
            seq,
            at: 0,
            kind: ChangeKind::TokenRevoked,
            subject: format!("jti-{seq}"),
            until: Some(100),
        }
    }

    fn seqs(changes: &[Change]) -> Vec<i64> {
        changes.iter().map(|c| c.seq).collect()
    }

    #[test]
    fn entries_in_order_move_the_position_and_leave_no_holes() {
        let mut position = LogPosition::at(0);
        let fresh = position.take(vec![change(1), change(2), change(3)], 10);
        assert_eq!(seqs(&fresh), [1, 2, 3]);
        assert_eq!(position.watermark(), 3);
        assert!(position.missing().is_empty());
        // Read again (a look-up overlapping what was read): nothing is new.
        assert!(position.take(vec![change(2), change(3)], 10).is_empty());
    }

    #[test]
    fn a_late_commit_below_the_position_is_found_once() {
        let mut position = LogPosition::at(0);
        // 2 and 3 took their numbers but had not committed when 4 was read.
        let fresh = position.take(vec![change(1), change(4)], 10);
        assert_eq!(seqs(&fresh), [1, 4]);
        assert_eq!(position.missing(), [2, 3]);
        assert_eq!(position.watermark(), 1);
        let fresh = position.take(vec![change(3)], 11);
        assert_eq!(seqs(&fresh), [3]);
        assert_eq!(position.missing(), [2]);
        assert_eq!(position.watermark(), 1);
        assert!(position.take(vec![change(3)], 11).is_empty());
        let fresh = position.take(vec![change(2)], 12);
        assert_eq!(seqs(&fresh), [2]);
        assert_eq!(position.watermark(), 4);
    }

    #[test]
    fn a_hole_that_never_fills_is_given_up_after_the_patience() {
        let mut position = LogPosition::at(5);
        position.take(vec![change(7)], 100);
        position.forget_old_holes(100 + HOLE_PATIENCE_SECS - 1);
        assert_eq!(position.missing(), [6]);
        position.forget_old_holes(100 + HOLE_PATIENCE_SECS);
        assert!(position.missing().is_empty());
        assert_eq!(position.watermark(), 7);
    }

    #[test]
    fn the_number_of_holes_is_bounded() {
        let mut position = LogPosition::at(0);
        position.take(vec![change(MAX_HOLES as i64 + 100)], 1);
        assert_eq!(position.missing().len(), MAX_HOLES);
        // The newest are kept: those are the transactions most likely still in flight.
        assert_eq!(position.missing().last(), Some(&(MAX_HOLES as i64 + 99)));
        // A jump of hundreds of millions (a purged log, a starting reader) costs no more.
        let mut position = LogPosition::at(0);
        let fresh = position.take(vec![change(500_000_000)], 1);
        assert_eq!(seqs(&fresh), [500_000_000]);
        assert_eq!(position.missing().len(), MAX_HOLES);
        assert_eq!(position.missing()[0], 500_000_000 - MAX_HOLES as i64);
    }

    #[test]
    fn a_replay_sends_what_it_read_and_will_read_but_not_its_gaps() {
        let mut replayed = Replayed::new(10, 30);
        // Ahead of the replay: it will read them.
        assert!(replayed.sends(11) && replayed.sends(30));
        // Outside its range: only the broadcast brings them.
        assert!(!replayed.sends(10) && !replayed.sends(31));
        // 14 and 15 were not there when the first page was read.
        replayed.read([11, 12, 13, 16, 17], false);
        assert!(replayed.sends(12) && replayed.sends(16));
        assert!(!replayed.sends(14) && !replayed.sends(15));
        assert!(replayed.sends(25), "still ahead");
        // The last page ends at 20: 21 to 30 were not there.
        replayed.read([18, 20], true);
        assert!(replayed.sends(18) && replayed.sends(20));
        assert!(!replayed.sends(19));
        assert!(!replayed.sends(21) && !replayed.sends(30));
    }

    #[test]
    fn a_replay_with_too_many_gaps_counts_nothing_it_passed_as_sent() {
        let mut replayed = Replayed::new(0, 1_000_000);
        replayed.read((1..=MAX_REPLAY_GAPS as i64 + 1).map(|i| i * 2), false);
        assert!(
            !replayed.sends(4),
            "read, but which gaps were lost is not known"
        );
        assert!(replayed.sends(999_999), "ahead is still the replay's");
    }

    #[test]
    fn expired_revocations_are_not_sent() {
        let revoked = FeedEvent::TokenRevoked {
            jti: "a".into(),
            until: 100,
        };
        assert!(!outlived(&revoked, 105, 10));
        assert!(outlived(&revoked, 111, 10));
        let cutoff = FeedEvent::SubjectCutoff {
            subject: "u".into(),
            not_before: 1,
        };
        assert!(!outlived(&cutoff, 1_000_000, 10));
    }
}
