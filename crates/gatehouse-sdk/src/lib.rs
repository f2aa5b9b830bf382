//! The toolkit for services behind Gatehouse, and the token checks the gateway itself runs.
//!
//! - [`TokenVerifier`]: checks access tokens locally against the issuer's published keys, follows
//!   the issuer's revocation feed (or, when that is stale and so configured, asks its
//!   introspection endpoint), and caches verdicts. The gateway uses exactly this.
//! - [`Authenticated`] and [`require`]: an axum extractor and a one-line route guard answering
//!   the way RFC 6750 says.
//! - [`TokenClient`]: gets, caches and refreshes tokens for a machine or a person.
//! - [`SignInClient`]: signs people in to a web application's back end (code flow, PKCE,
//!   OpenID Connect), refreshes and revokes their tokens and signs them out.
//! - [`files`]: credential files only their owner can read, never left half-written.
//!
//! It speaks to the issuer over HTTP only (discovery, JWKS, feed, introspection, token endpoint): it must not
//! know about the store or the authorization server's internals.

mod client;
mod discovery;
mod error;
pub mod files;
mod guard;
mod keys;
mod policy;
mod rejection;
mod revocations;
mod signin;
pub mod trace;
mod verifier;

pub use client::{Grant, TokenClient, TokenClientConfig};
pub use discovery::discover;
pub use error::SdkError;
pub use gatehouse_proto::{FeedEvent, Introspection, ServerMetadata, TokenResponse};
pub use gatehouse_token::{AccessClaims, Audience, DEFAULT_AUDIENCE};
pub use guard::{Authenticated, Require, RequireLayer, authorize, bearer_token, require};
pub use policy::{Policy, ScopeRule};
pub use rejection::{REALM, Rejection, problem};
pub use revocations::{FeedCredentials, FeedStatus};
pub use signin::{Callback, PendingSignIn, SignInClient, SignInError, SignInRequest, SignedIn};
pub use verifier::{TokenVerifier, Verified, VerifierSettings};
