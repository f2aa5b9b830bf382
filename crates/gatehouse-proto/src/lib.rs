//! Gatehouse's wire contract: what the authorization server says and what gateways, services and
//! clients read, defined once so the two sides cannot drift.
//!
//! - [`token`]: the token endpoint's answer (RFC 6749 §5.1) and OAuth error bodies (§5.2).
//! - [`introspection`]: RFC 7662 answers; [`metadata`]: RFC 8414 server metadata.
//! - [`feed`]: the events of the revocation feed.
//! - [`bearer`]: reading a bearer token (RFC 6750 §2.1) and the challenges of §3.
//! - [`problem`]: RFC 9457 problem bodies and `Retry-After`.
//! - [`peer`]: which client an address stands for, for per-client limits.
//! - [`registration`] (RFC 7591/7592), [`account`] and [`admin`]: the bodies and query
//!   parameters of the JSON APIs.
//! - `web` (feature `axum`): those bodies as axum responses, the one JSON body extractor and the
//!   layer that gives framework errors a body.
//!
//! Plain data and pure functions: it must not know storage, the issuer's rules or any service.
//! Everything Gatehouse builds depends on it; it depends on nothing of Gatehouse's.

pub mod account;
pub mod admin;
pub mod bearer;
pub mod feed;
pub mod introspection;
pub mod metadata;
#[cfg(feature = "openapi")]
pub mod openapi;
pub mod peer;
pub mod problem;
pub mod registration;
pub mod token;
pub mod trace;
#[cfg(feature = "axum")]
pub mod web;

pub use bearer::{BearerError, Challenge, REALM, bearer_token};
pub use feed::FeedEvent;
pub use introspection::Introspection;
pub use metadata::ServerMetadata;
pub use problem::{PROBLEM_CONTENT_TYPE, Problem, retry_after_secs};
pub use token::{Audience, ErrorResponse, OAuthErrorCode, TokenResponse, UserInfo};
