//! What the authorization server needs from persistence. Implementations live in `gatehouse-store`.

use async_trait::async_trait;

use crate::{
    AuditEvent, AuthorizationCode, BrowserSession, Change, ChangeKind, Client, Consent,
    RefreshFamily, RefreshTokenRecord, RevokedToken, Role, StoreError, StoredKey, User,
};

/// A write that can change whether a token is valid, or what a node has cached. Such writes reach
/// the store only through [`Store::commit`], which appends the change-log entries each implies in
/// the same transaction: there is no way to store one and forget to tell the other nodes, the
/// gateways and the services.
///
/// Writes that end sessions carry `tokens_expire_by`, when every access token issued so far has
/// expired: each ended session is published (`session_revoked`) until then, so its tokens die at
/// every gateway even when a cut-off in the same second leaves their `iat` at the not-before
/// time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Write {
    /// Replaces the client's metadata (name, auth method, grant types, scopes, roles, redirect URIs,
    /// post-logout redirect URIs, consent skipping) and nothing
    /// else, so an update built from a stale read cannot undo a block or a secret rotation.
    /// `cutoff` moves its not-before time forward too, for a change that takes something away.
    UpdateClient {
        client: Client,
        cutoff: Option<i64>,
    },
    /// Blocks the client: not-before moves forward and every session it obtained ends.
    BlockClient {
        id: String,
        not_before: i64,
        now: i64,
        tokens_expire_by: i64,
    },
    UnblockClient {
        id: String,
        now: i64,
    },
    /// Stores a rotated secret with the previous one and when it stops working.
    SetClientSecret(Client),
    /// Kills every token of the client issued before `not_before` and ends its sessions.
    CutOffClient {
        id: String,
        not_before: i64,
        now: i64,
        tokens_expire_by: i64,
    },
    /// Deletes the client and its sessions; its tokens die at `cutoff`.
    DeleteClient {
        id: String,
        cutoff: i64,
    },
    /// Replaces the user's roles; with `cutoff` (a role taken away) tokens issued before it die,
    /// as they may carry what was taken, and sessions go on with what the new roles allow.
    SetUserRoles {
        id: String,
        roles: Vec<String>,
        cutoff: Option<i64>,
        now: i64,
    },
    /// Blocks the user: not-before moves forward and every session ends.
    BlockUser {
        id: String,
        not_before: i64,
        now: i64,
        tokens_expire_by: i64,
    },
    UnblockUser {
        id: String,
        now: i64,
    },
    /// A new password: not-before moves forward and every session ends.
    SetUserPassword {
        id: String,
        password_hash: String,
        not_before: i64,
        now: i64,
        tokens_expire_by: i64,
    },
    /// Kills every token of the user issued before `not_before` and ends every session.
    CutOffUser {
        id: String,
        not_before: i64,
        now: i64,
        tokens_expire_by: i64,
    },
    /// Deletes the user and their sessions; their tokens die at `cutoff`.
    DeleteUser {
        id: String,
        cutoff: i64,
    },
    /// Ends one sign-in session (refresh family) and the access tokens issued in it, which all
    /// expire by `until`. Ending an already ended session changes nothing and is not an error.
    RevokeSession {
        id: String,
        now: i64,
        until: i64,
    },
    /// Adds a `jti` to the deny list until the token expires.
    RevokeAccessToken(RevokedToken),
    /// Signs a browser out: the browser session ends, and with it every session (refresh family)
    /// started from it and their access tokens, which all expire by `until`. Ending an ended
    /// browser session changes nothing and is not an error.
    EndBrowserSession {
        id: String,
        now: i64,
        until: i64,
    },
    /// A person withdraws what they allowed a client: the consent goes, and every session of
    /// theirs with that client ends with its access tokens (all expired by `until`). Withdrawing
    /// a consent that does not exist is not an error.
    RevokeConsent {
        user_id: String,
        client_id: String,
        now: i64,
        until: i64,
    },
    /// Publishes a new signing key; every other key not yet retiring retires at `retire_others_at`.
    AddSigningKey {
        key: StoredKey,
        retire_others_at: Option<i64>,
    },
    InsertRole(Role),
    /// Replaces a role's description and scopes. `cutoff`, for a change that takes scopes away,
    /// kills the tokens every holder of the role (user or client) was issued before it.
    UpdateRole {
        role: Role,
        cutoff: Option<i64>,
    },
    DeleteRole(String),
}

/// One entry the change log gets for a [`Write`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoggedChange {
    pub kind: ChangeKind,
    pub subject: String,
    pub until: Option<i64>,
}

/// What applying one [`Write`] did, as the store found it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WriteEffect {
    /// Nothing changed (the token or session was already revoked): nothing to publish.
    pub changed_nothing: bool,
    /// The live sessions (refresh families) the write ended.
    pub ended_sessions: Vec<String>,
    /// Where the write left its user's or client's not-before time, when it moved it: past the
    /// time asked for if an earlier cut-off in the same second had already reached that.
    pub not_before: Option<i64>,
    /// The users and clients whose not-before time the write moved (a role's holders), with
    /// where it now stands.
    pub cut_off_subjects: Vec<(String, i64)>,
}

impl Write {
    /// What other nodes and the revocation feed must learn of this write, given its effect.
    pub fn changes(&self, effect: &WriteEffect) -> Vec<LoggedChange> {
        if effect.changed_nothing {
            return Vec::new();
        }
        let mut entries = self.own_changes();
        // Publish the not-before time as stored, which a same-second cut-off may have advanced.
        if let Some(stored) = effect.not_before {
            for entry in &mut entries {
                if entry.kind == ChangeKind::SubjectCutoff {
                    entry.until = Some(stored);
                }
            }
        }
        entries.extend(
            effect
                .cut_off_subjects
                .iter()
                .map(|(subject, not_before)| LoggedChange {
                    kind: ChangeKind::SubjectCutoff,
                    subject: subject.clone(),
                    until: Some(*not_before),
                }),
        );
        if let Some(until) = self.tokens_expire_by() {
            entries.extend(effect.ended_sessions.iter().map(|sid| LoggedChange {
                kind: ChangeKind::SessionRevoked,
                subject: sid.clone(),
                until: Some(until),
            }));
        }
        entries
    }

    fn tokens_expire_by(&self) -> Option<i64> {
        match self {
            Self::BlockClient {
                tokens_expire_by, ..
            }
            | Self::CutOffClient {
                tokens_expire_by, ..
            }
            | Self::BlockUser {
                tokens_expire_by, ..
            }
            | Self::SetUserPassword {
                tokens_expire_by, ..
            }
            | Self::CutOffUser {
                tokens_expire_by, ..
            } => Some(*tokens_expire_by),
            Self::EndBrowserSession { until, .. } | Self::RevokeConsent { until, .. } => {
                Some(*until)
            }
            _ => None,
        }
    }

    fn own_changes(&self) -> Vec<LoggedChange> {
        fn entry(kind: ChangeKind, subject: &str, until: Option<i64>) -> LoggedChange {
            LoggedChange {
                kind,
                subject: subject.to_owned(),
                until,
            }
        }
        let client = |id: &str| entry(ChangeKind::Client, id, None);
        let cutoff = |id: &str, at: i64| entry(ChangeKind::SubjectCutoff, id, Some(at));
        match self {
            Self::UpdateClient {
                client: c,
                cutoff: None,
            } => vec![client(&c.id)],
            Self::UpdateClient {
                client: c,
                cutoff: Some(at),
            } => vec![client(&c.id), cutoff(&c.id, *at)],
            Self::BlockClient { id, not_before, .. }
            | Self::CutOffClient { id, not_before, .. }
            | Self::DeleteClient {
                id,
                cutoff: not_before,
            } => vec![client(id), cutoff(id, *not_before)],
            Self::UnblockClient { id, .. } => vec![client(id)],
            Self::SetClientSecret(c) => vec![client(&c.id)],
            Self::SetUserRoles { cutoff: None, .. } | Self::UnblockUser { .. } => vec![],
            Self::SetUserRoles {
                id,
                cutoff: Some(not_before),
                ..
            }
            | Self::BlockUser { id, not_before, .. }
            | Self::SetUserPassword { id, not_before, .. }
            | Self::CutOffUser { id, not_before, .. }
            | Self::DeleteUser {
                id,
                cutoff: not_before,
            } => vec![cutoff(id, *not_before)],
            Self::RevokeSession { id, until, .. } => {
                vec![entry(ChangeKind::SessionRevoked, id, Some(*until))]
            }
            Self::RevokeAccessToken(r) => {
                vec![entry(ChangeKind::TokenRevoked, &r.jti, Some(r.expires_at))]
            }
            Self::AddSigningKey {
                key,
                retire_others_at,
            } => vec![entry(ChangeKind::Keys, &key.kid, *retire_others_at)],
            Self::InsertRole(role) | Self::UpdateRole { role, .. } => {
                vec![entry(ChangeKind::Role, &role.name, None)]
            }
            Self::DeleteRole(name) => vec![entry(ChangeKind::Role, name, None)],
            // Only the refresh families they end matter to anyone else (see `changes`).
            Self::EndBrowserSession { .. } | Self::RevokeConsent { .. } => vec![],
        }
    }
}

/// The outcome of [`Store::commit`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Committed {
    /// Everything was stored, with its change-log entries; this many live sessions ended.
    Done { sessions_ended: u64 },
    /// A write named a client, user or role that does not exist; nothing was stored.
    Missing,
}

/// Which refresh families to list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FamilyFilter {
    pub user_id: Option<String>,
    pub client_id: Option<String>,
}

/// Which audit events to list; every field that is set must match.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventFilter {
    pub subject: Option<String>,
    pub kind: Option<String>,
    pub since: Option<i64>,
    pub until: Option<i64>,
}

/// The result of trying to rotate a refresh token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RotateOutcome {
    /// This call rotated it; the successor is stored.
    Rotated,
    /// Not rotated: someone rotated it first (a concurrent duplicate or a replay), or its family
    /// was revoked meanwhile.
    AlreadyRotated,
}

#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Succeeds when the store answers queries.
    async fn ping(&self) -> Result<(), StoreError>;

    async fn signing_keys(&self) -> Result<Vec<StoredKey>, StoreError>;

    async fn client(&self, id: &str) -> Result<Option<Client>, StoreError>;
    /// `Conflict` when the id is taken.
    async fn insert_client(&self, client: &Client) -> Result<(), StoreError>;
    /// Clients with ids after `after` (`""` for the first page), in id order, at most `limit`.
    async fn list_clients(&self, after: &str, limit: u32) -> Result<Vec<Client>, StoreError>;
    /// Users with ids after `after`, in id order, at most `limit`.
    async fn list_users(&self, after: &str, limit: u32) -> Result<Vec<User>, StoreError>;

    async fn user(&self, id: &str) -> Result<Option<User>, StoreError>;
    async fn user_by_username(&self, username: &str) -> Result<Option<User>, StoreError>;
    /// `Conflict` when the username is taken.
    async fn insert_user(&self, user: &User) -> Result<(), StoreError>;
    async fn roles(&self) -> Result<Vec<Role>, StoreError>;
    /// Whether any user or client holds the role.
    async fn role_in_use(&self, name: &str) -> Result<bool, StoreError>;
    async fn family(&self, id: &str) -> Result<Option<RefreshFamily>, StoreError>;
    /// Families in id order after `after`, of one user and/or one client when given.
    async fn list_families(
        &self,
        filter: &FamilyFilter,
        after: &str,
        limit: u32,
    ) -> Result<Vec<RefreshFamily>, StoreError>;

    /// Stores a new family with its first token, only if its user is still unblocked and has not
    /// been cut off past `user_not_before` (the not-before time read when the sign-in began), so
    /// a sign-in that raced a block, a password change or a "revoke all" leaves no session
    /// behind; `false` when it did not store it.
    async fn create_family(
        &self,
        family: &RefreshFamily,
        first: &RefreshTokenRecord,
        user_not_before: i64,
    ) -> Result<bool, StoreError>;
    async fn refresh_token(
        &self,
        hash: &str,
    ) -> Result<Option<(RefreshTokenRecord, RefreshFamily)>, StoreError>;
    /// Atomically marks `old_hash` rotated (only if it was not already and its family is not
    /// revoked) and stores `successor`.
    async fn rotate_refresh_token(
        &self,
        old_hash: &str,
        successor: &RefreshTokenRecord,
        now: i64,
    ) -> Result<RotateOutcome, StoreError>;
    async fn access_token_revoked(&self, jti: &str) -> Result<bool, StoreError>;

    /// `Conflict` when the id or the secret hash is taken.
    async fn insert_browser_session(&self, session: &BrowserSession) -> Result<(), StoreError>;
    /// The browser session whose cookie hashes to `secret_hash`, ended or not.
    async fn browser_session(
        &self,
        secret_hash: &str,
    ) -> Result<Option<BrowserSession>, StoreError>;
    /// Notes that the browser was seen at `now` (the idle lifetime counts from there).
    async fn touch_browser_session(&self, id: &str, now: i64) -> Result<(), StoreError>;
    /// The user's browser sessions that have not ended and expire after `now`, newest first.
    async fn browser_sessions_of(
        &self,
        user_id: &str,
        now: i64,
    ) -> Result<Vec<BrowserSession>, StoreError>;

    /// `Conflict` when the hash is taken.
    async fn insert_authorization_code(&self, code: &AuthorizationCode) -> Result<(), StoreError>;
    async fn authorization_code(&self, hash: &str)
    -> Result<Option<AuthorizationCode>, StoreError>;
    /// Marks the code used at `now` by the session `family_id` its use starts, only if it was not
    /// used before; `false` when it was (a replay).
    async fn redeem_authorization_code(
        &self,
        hash: &str,
        family_id: &str,
        now: i64,
    ) -> Result<bool, StoreError>;

    async fn consent(&self, user_id: &str, client_id: &str) -> Result<Option<Consent>, StoreError>;
    /// Stores the consent, replacing the one the user gave the client before.
    async fn save_consent(&self, consent: &Consent) -> Result<(), StoreError>;
    /// Every consent the user has given, in client id order.
    async fn consents_of(&self, user_id: &str) -> Result<Vec<Consent>, StoreError>;

    /// Deletes deny entries, refresh families, authorization codes and browser sessions that
    /// expired (or, for browser sessions, ended) before `now`, change-log entries a day old, and
    /// audit events before `audit_before` when given; returns how many rows went.
    async fn purge_expired(&self, now: i64, audit_before: Option<i64>) -> Result<u64, StoreError>;

    /// Applies `writes` and appends the change-log entries they imply ([`Write::changes`]) in
    /// one transaction: either all of it is stored or none. Returns [`Committed::Missing`], with
    /// nothing stored, when a write names a row that does not exist.
    async fn commit(&self, writes: &[Write]) -> Result<Committed, StoreError>;
    /// Change-log entries with a sequence number above `after` and at most `upto`, in sequence
    /// order, at most `limit`.
    async fn changes_between(
        &self,
        after: i64,
        upto: i64,
        limit: u32,
    ) -> Result<Vec<Change>, StoreError>;
    /// The change-log entries among `seqs` that exist (committed since a reader found them
    /// missing). At most the first 500 of `seqs` are looked up; callers page longer lists.
    async fn changes_in(&self, seqs: &[i64]) -> Result<Vec<Change>, StoreError>;
    /// The first sequence number logged at or after `at` (Unix seconds), if any.
    async fn first_change_since(&self, at: i64) -> Result<Option<i64>, StoreError>;
    /// The newest sequence number, 0 when the log is empty.
    async fn latest_change(&self) -> Result<i64, StoreError>;
    /// Returns when another process may have appended to the change log (PostgreSQL's
    /// `LISTEN/NOTIFY`); never returns where the backend cannot tell, so readers also poll.
    async fn change_notified(&self);

    async fn record_event(&self, event: &AuditEvent) -> Result<(), StoreError>;
    /// Newest first, at most `limit`.
    async fn recent_events(&self, limit: u32) -> Result<Vec<AuditEvent>, StoreError>;
    /// Events matching `filter`, newest first, strictly older than the `before` cursor if given.
    async fn list_events(
        &self,
        filter: &EventFilter,
        before: Option<(i64, String)>,
        limit: u32,
    ) -> Result<Vec<AuditEvent>, StoreError>;
}
