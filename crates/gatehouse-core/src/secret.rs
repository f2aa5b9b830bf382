//! Random secrets, their stored hashes, and constant-time comparison.

use aws_lc_rs::digest;
use aws_lc_rs::hmac;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use subtle::ConstantTimeEq;

use crate::StoreError;

/// 256 random bits, base64url without padding (43 characters).
pub fn random_secret() -> Result<String, StoreError> {
    random_string(32)
}

/// `bytes` random bytes, base64url without padding.
pub fn random_string(bytes: usize) -> Result<String, StoreError> {
    gatehouse_token::random_string(bytes).map_err(|e| StoreError::Backend(e.to_string()))
}

/// The stored form of a high-entropy secret: SHA-256, hex. A slow hash adds nothing for 256-bit
/// secrets and would cap token throughput.
pub fn hash_secret(secret: &str) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let d = digest::digest(&digest::SHA256, secret.as_bytes());
    let mut out = String::with_capacity(64);
    for b in d.as_ref() {
        out.push(char::from(HEX[usize::from(b >> 4)]));
        out.push(char::from(HEX[usize::from(b & 0x0f)]));
    }
    out
}

/// Whether `presented` hashes to `stored_hash`, compared in constant time.
pub fn secret_matches(presented: &str, stored_hash: &str) -> bool {
    constant_time_eq(hash_secret(presented).as_bytes(), stored_hash.as_bytes())
}

pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.ct_eq(b).into()
}

/// HMAC-SHA256 of `data` under `key`, base64url: used to derive a refresh token's successor.
pub fn derive_token(key: &[u8; 32], data: &str) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA256, key);
    URL_SAFE_NO_PAD.encode(hmac::sign(&key, data.as_bytes()).as_ref())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_random_and_long() {
        let a = random_secret().unwrap();
        let b = random_secret().unwrap();
        assert_eq!(a.len(), 43);
        assert_ne!(a, b);
    }

    #[test]
    fn hash_is_lowercase_hex_sha256() {
        assert_eq!(
            hash_secret("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn hash_matches_only_the_right_secret() {
        let h = hash_secret("s3cret");
        assert!(secret_matches("s3cret", &h));
        assert!(!secret_matches("s3creT", &h));
        assert!(!secret_matches("", &h));
    }
}
