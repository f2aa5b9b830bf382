//! Reading the change log in order, for the nodes' own follower and for the revocation feed that
//! gateways follow (`GET /oauth2/revocations`).

use std::collections::HashMap;

use gatehouse_token::now_unix;
use serde::Serialize;

use super::AuthService;
use super::ClientAuth;
use crate::{Change, ChangeKind, OAuthError, OAuthErrorCode, Store, StoreError};

/// PostgreSQL sequence numbers can become visible out of order (a transaction that took a lower
/// number commits later), so every read also looks back this far in time.
const WINDOW_SECS: i64 = 10;

/// The most changes one read returns; a shorter read means the reader has caught up.
pub const CHANGE_PAGE: usize = 1000;

/// A position in the change log that yields each change once, in sequence order per read.
#[derive(Debug)]
pub struct ChangeCursor {
    /// The highest sequence number seen; `None` before the first read of a cursor that starts at
    /// a time instead.
    last: Option<i64>,
    /// For a cursor that starts at a time: the first read returns changes logged since then.
    start_at: i64,
    /// Sequence numbers already returned, with when they were logged, for the look-back window.
    seen: HashMap<i64, i64>,
    /// Whether the last read returned less than a full page: nothing older is waiting.
    caught_up: bool,
}

impl ChangeCursor {
    /// Changes after sequence number `seq`.
    pub fn after(seq: i64) -> Self {
        Self {
            last: Some(seq),
            start_at: 0,
            seen: HashMap::new(),
            caught_up: false,
        }
    }

    /// Changes logged at or after `at` (Unix seconds), then everything new.
    pub fn since(at: i64) -> Self {
        Self {
            last: None,
            start_at: at,
            seen: HashMap::new(),
            caught_up: false,
        }
    }

    /// Whether the last read found less than a full page, so the reader has seen everything.
    pub fn caught_up(&self) -> bool {
        self.caught_up
    }

    /// The highest sequence number returned so far.
    pub fn position(&self) -> Option<i64> {
        self.last
    }

    /// The changes not returned before.
    pub async fn next(&mut self, store: &dyn Store) -> Result<Vec<Change>, StoreError> {
        let now = now_unix();
        let (after, since) = match self.last {
            Some(last) => (last, now - WINDOW_SECS),
            None => (i64::MAX, self.start_at),
        };
        let mut fresh = Vec::new();
        let read = store
            .changes_after(after, since, CHANGE_PAGE as u32)
            .await?;
        self.caught_up = read.len() < CHANGE_PAGE;
        for change in read {
            if self.seen.insert(change.seq, change.at).is_none() {
                self.last = Some(self.last.map_or(change.seq, |l| l.max(change.seq)));
                fresh.push(change);
            }
        }
        if self.last.is_none() {
            // Nothing logged since the start time: carry on from the log's end.
            self.last = Some(store.latest_change().await?);
        }
        let floor = now - 2 * WINDOW_SECS;
        self.seen.retain(|_, at| *at >= floor);
        Ok(fresh)
    }
}

/// One event of the revocation feed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum FeedEvent {
    /// The access token with this `jti` is revoked; it would have expired at `until`.
    TokenRevoked { jti: String, until: i64 },
    /// Every token of this user or client issued before `not_before` is dead.
    SubjectCutoff { subject: String, not_before: i64 },
    /// The key set changed: fetch the JWKS again.
    KeysChanged { kid: String },
}

impl FeedEvent {
    /// What a gateway needs of a change; changes that concern only the auth nodes give `None`.
    pub fn of(change: &Change) -> Option<Self> {
        match change.kind {
            ChangeKind::TokenRevoked => Some(Self::TokenRevoked {
                jti: change.subject.clone(),
                until: change.until.unwrap_or_default(),
            }),
            ChangeKind::SubjectCutoff => Some(Self::SubjectCutoff {
                subject: change.subject.clone(),
                not_before: change.until.unwrap_or_default(),
            }),
            ChangeKind::Keys => Some(Self::KeysChanged {
                kid: change.subject.clone(),
            }),
            ChangeKind::Client | ChangeKind::Role => None,
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            Self::TokenRevoked { .. } => "token_revoked",
            Self::SubjectCutoff { .. } => "subject_cutoff",
            Self::KeysChanged { .. } => "keys_changed",
        }
    }
}

/// The scope a client needs to read the revocation feed.
pub const FEED_SCOPE: &str = "revocations:read";

impl AuthService {
    /// Authorizes a reader of the revocation feed and places its cursor: after `last_event_id`
    /// when resuming, else far enough back that every still-valid token's revocation is replayed.
    pub async fn open_revocation_feed(
        &self,
        auth: &ClientAuth,
        last_event_id: Option<i64>,
    ) -> Result<ChangeCursor, OAuthError> {
        let client = self.authenticate_client(auth).await?;
        if client.client.is_public() || !client.own_scopes.contains(FEED_SCOPE) {
            return Err(OAuthError::new(
                OAuthErrorCode::AccessDenied,
                "reading the revocation feed needs a confidential client with the revocations:read scope",
            ));
        }
        Ok(match last_event_id {
            Some(seq) => ChangeCursor::after(seq),
            None => ChangeCursor::since(
                now_unix()
                    - self.config.access_token_ttl_secs as i64
                    - self.config.token_leeway_secs as i64,
            ),
        })
    }
}
