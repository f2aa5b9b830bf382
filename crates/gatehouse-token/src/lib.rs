//! Access tokens as signed JWTs (RFC 9068) and the key sets that verify them (RFC 7517).
//!
//! This crate knows keys, claims, signing and verification. It must not know about storage, HTTP,
//! clients or users: whoever issues or checks a token hands it plain values and gets plain values back.
//! The gateway and the service toolkit depend on it (and on the wire contract, whose `Audience`
//! it uses), so it stays small and free of I/O.

mod claims;
mod jwk;
mod kek;
mod keys;
mod verify;

pub use claims::{AccessClaims, Audience, IdClaims, token_hash};
pub use jwk::{Jwk, JwkSet};
pub use kek::{KekError, KeyEncryptionKey};
pub use keys::{KeyError, SigningAlgorithm, SigningKey, UnknownAlgorithm};
pub use verify::{Verifier, VerifierConfig, VerifyError, key_id};

/// The JOSE `typ` every Gatehouse access token carries (RFC 9068 §2.1).
pub const ACCESS_TOKEN_TYPE: &str = "at+jwt";

/// The JOSE `typ` of OpenID Connect ID tokens.
pub const ID_TOKEN_TYPE: &str = "JWT";

/// The `aud` an authorization server puts in its access tokens unless configured otherwise, and
/// so what gateways and services expect unless told otherwise (RFC 9068 §4: they must check it).
pub const DEFAULT_AUDIENCE: &str = "gatehouse";

/// The system's random source failed: nothing random can be made safely.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the system random source failed")]
pub struct RandomUnavailable;

/// `count` bytes from the system's secure random source: the one source of ids and secrets.
pub fn random_bytes(count: usize) -> Result<Vec<u8>, RandomUnavailable> {
    use aws_lc_rs::rand::{SecureRandom, SystemRandom};
    let mut buf = vec![0u8; count];
    SystemRandom::new()
        .fill(&mut buf)
        .map_err(|_| RandomUnavailable)?;
    Ok(buf)
}

/// `bytes` random bytes as base64url without padding.
pub fn random_string(bytes: usize) -> Result<String, RandomUnavailable> {
    use base64::Engine;
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(random_bytes(bytes)?))
}

/// Current Unix time in whole seconds.
pub fn now_unix() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or_default()
}
