//! The authorization server's domain and protocol logic: clients, users, scopes, the grants of
//! RFC 6749, refresh-token families and their rotation, client registration (RFC 7591/7592).
//!
//! Everything here runs over the [`Store`] trait, judges time by the [`Clock`] it is given, and
//! returns typed errors; the bodies it takes and returns are the wire contract's plain data
//! (`gatehouse-proto`). It must not know about HTTP (status codes, headers, frameworks) or about
//! any particular database: the server crate maps errors to responses in one place, and the
//! store crate implements persistence.

pub mod authorization;
pub mod clock;
pub mod config;
pub mod error;
pub mod keyring;
pub mod model;
pub mod password;
pub mod scope;
pub mod secret;
pub mod service;
pub mod store;
pub mod throttle;
pub mod validate;

pub use clock::{AdvancingClock, Clock, ManualClock, SystemClock};
pub use config::AuthConfig;
pub use error::{ApiError, FieldError, OAuthError, OAuthErrorCode, StoreError, TokenProblem};
pub use model::*;
pub use scope::ScopeSet;
pub use service::AuthService;
pub use store::{
    Committed, EventFilter, FamilyFilter, LoggedChange, RotateOutcome, Store, Write, WriteEffect,
};
