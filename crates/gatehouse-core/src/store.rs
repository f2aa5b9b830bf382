//! What the authorization server needs from persistence. Implementations live in `gatehouse-store`.

use async_trait::async_trait;

use crate::{
    AuditEvent, Change, ChangeKind, Client, RefreshFamily, RefreshTokenRecord, RevokedToken, Role,
    StoreError, StoredKey, User,
};

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
    async fn insert_signing_key(&self, key: &StoredKey) -> Result<(), StoreError>;
    /// Schedules the retirement of every key not yet scheduled, except `keep`.
    async fn retire_signing_keys(&self, keep: &str, retired_at: i64) -> Result<(), StoreError>;

    async fn client(&self, id: &str) -> Result<Option<Client>, StoreError>;
    /// `Conflict` when the id is taken.
    async fn insert_client(&self, client: &Client) -> Result<(), StoreError>;
    /// Replaces the client's metadata (name, auth method, grant types, scopes, roles) and nothing
    /// else, so an update built from a stale read cannot undo a block or a secret rotation.
    /// `false` when there is no such client.
    async fn update_client(&self, client: &Client) -> Result<bool, StoreError>;
    /// Sets or clears the block; the not-before time only moves forward.
    async fn set_client_blocked(
        &self,
        id: &str,
        blocked_at: Option<i64>,
        not_before: i64,
        now: i64,
    ) -> Result<bool, StoreError>;
    /// Stores a rotated secret with the previous one and when it stops working.
    async fn set_client_secret(&self, client: &Client) -> Result<bool, StoreError>;
    /// Clients with ids after `after` (`""` for the first page), in id order, at most `limit`.
    async fn list_clients(&self, after: &str, limit: u32) -> Result<Vec<Client>, StoreError>;
    /// Users with ids after `after`, in id order, at most `limit`.
    async fn list_users(&self, after: &str, limit: u32) -> Result<Vec<User>, StoreError>;
    /// Replaces email, roles and blocked; the not-before time only moves forward.
    /// `false` when there is no such user.
    async fn update_user(&self, user: &User) -> Result<bool, StoreError>;
    /// Deletes the user and their refresh families; `false` when there is no such user.
    async fn delete_user(&self, id: &str) -> Result<bool, StoreError>;
    /// Deletes the client and its refresh families; `false` when there is no such client.
    async fn delete_client(&self, id: &str) -> Result<bool, StoreError>;

    async fn user(&self, id: &str) -> Result<Option<User>, StoreError>;
    async fn user_by_username(&self, username: &str) -> Result<Option<User>, StoreError>;
    /// `Conflict` when the username is taken.
    async fn insert_user(&self, user: &User) -> Result<(), StoreError>;
    /// Sets a new password hash and not-before time; `false` when there is no such user.
    async fn set_user_password(
        &self,
        id: &str,
        password_hash: &str,
        not_before: i64,
    ) -> Result<bool, StoreError>;
    /// Moves the user's not-before time forward (never back).
    async fn set_user_not_before(&self, id: &str, not_before: i64) -> Result<(), StoreError>;

    async fn roles(&self) -> Result<Vec<Role>, StoreError>;
    /// `Conflict` when the name is taken.
    async fn insert_role(&self, role: &Role) -> Result<(), StoreError>;
    /// `false` when there is no such role.
    async fn update_role(&self, role: &Role) -> Result<bool, StoreError>;
    async fn delete_role(&self, name: &str) -> Result<bool, StoreError>;
    /// Whether any user or client holds the role.
    async fn role_in_use(&self, name: &str) -> Result<bool, StoreError>;
    /// Moves a client's not-before time forward (never back).
    async fn set_client_not_before(&self, id: &str, not_before: i64) -> Result<(), StoreError>;

    async fn family(&self, id: &str) -> Result<Option<RefreshFamily>, StoreError>;
    /// Families in id order after `after`, of one user and/or one client when given.
    async fn list_families(
        &self,
        filter: &FamilyFilter,
        after: &str,
        limit: u32,
    ) -> Result<Vec<RefreshFamily>, StoreError>;

    /// Stores a new family with its first token.
    async fn create_family(
        &self,
        family: &RefreshFamily,
        first: &RefreshTokenRecord,
    ) -> Result<(), StoreError>;
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
    async fn revoke_family(&self, family_id: &str, now: i64) -> Result<(), StoreError>;
    /// Revokes every live family a client obtained; returns how many.
    async fn revoke_client_families(&self, client_id: &str, now: i64) -> Result<u64, StoreError>;
    /// Revokes every live family of a user; returns how many.
    async fn revoke_user_families(&self, user_id: &str, now: i64) -> Result<u64, StoreError>;

    /// Adds `jti` to the deny list until `expires_at`; a second revocation of it changes nothing.
    async fn revoke_access_token(&self, revoked: &RevokedToken) -> Result<(), StoreError>;
    async fn access_token_revoked(&self, jti: &str) -> Result<bool, StoreError>;
    /// Deletes deny entries and refresh families that expired before `now`, change-log entries a
    /// day old, and audit events before `audit_before` when given; returns how many rows went.
    async fn purge_expired(&self, now: i64, audit_before: Option<i64>) -> Result<u64, StoreError>;

    /// Appends to the change log.
    async fn append_change(
        &self,
        kind: ChangeKind,
        subject: &str,
        until: Option<i64>,
    ) -> Result<(), StoreError>;
    /// Changes with a sequence number above `after`, or logged at or after `since` (Unix
    /// seconds), in sequence order, at most `limit`.
    async fn changes_after(
        &self,
        after: i64,
        since: i64,
        limit: u32,
    ) -> Result<Vec<Change>, StoreError>;
    /// The newest sequence number, 0 when the log is empty.
    async fn latest_change(&self) -> Result<i64, StoreError>;

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
