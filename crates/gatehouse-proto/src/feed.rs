//! The revocation feed: server-sent events whose name is the event's `type` and whose data is the
//! event as JSON. An `id` (where present) is where a reader that has the event may resume.

use serde::{Deserialize, Serialize};

/// One event of the revocation feed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum FeedEvent {
    /// The access token with this `jti` is revoked; it would have expired at `until`.
    TokenRevoked { jti: String, until: i64 },
    /// Every token of this user or client issued before `not_before` is dead.
    SubjectCutoff { subject: String, not_before: i64 },
    /// The sign-in session `sid` ended, and every access token carrying it; the last of them
    /// would have expired at `until`.
    SessionRevoked { sid: String, until: i64 },
    /// The key set changed: fetch the JWKS again.
    KeysChanged {
        #[serde(default)]
        kid: String,
    },
    /// Everything logged before the subscription has been sent: the reader's view is current.
    CaughtUp,
    /// A type this reader does not know, from a newer issuer: skipped, so issuers can add events
    /// without breaking the readers already deployed. Never sent.
    #[serde(other)]
    Unknown,
}

impl FeedEvent {
    /// The server-sent event's name.
    pub fn name(&self) -> &'static str {
        match self {
            Self::TokenRevoked { .. } => "token_revoked",
            Self::SubjectCutoff { .. } => "subject_cutoff",
            Self::SessionRevoked { .. } => "session_revoked",
            Self::KeysChanged { .. } => "keys_changed",
            Self::CaughtUp => "caught_up",
            Self::Unknown => "unknown",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_tagged_with_their_name() {
        for event in [
            FeedEvent::TokenRevoked {
                jti: "j".into(),
                until: 5,
            },
            FeedEvent::SubjectCutoff {
                subject: "u".into(),
                not_before: 5,
            },
            FeedEvent::SessionRevoked {
                sid: "s".into(),
                until: 5,
            },
            FeedEvent::KeysChanged { kid: "k".into() },
            FeedEvent::CaughtUp,
        ] {
            let json = serde_json::to_value(&event).unwrap();
            assert_eq!(json["type"], event.name());
            assert_eq!(serde_json::from_value::<FeedEvent>(json).unwrap(), event);
        }
        assert_eq!(
            serde_json::to_string(&FeedEvent::CaughtUp).unwrap(),
            r#"{"type":"caught_up"}"#
        );
    }

    #[test]
    fn unknown_types_read_as_unknown() {
        let read: FeedEvent = serde_json::from_str(r#"{"type":"role_renamed","x":1}"#).unwrap();
        assert_eq!(read, FeedEvent::Unknown);
    }
}
