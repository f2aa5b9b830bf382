use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use aws_lc_rs::hmac;
use aws_lc_rs::rand::{SecureRandom, SystemRandom};

#[derive(Debug, thiserror::Error)]
pub enum KekError {
    #[error("the key-encryption key must be 32 bytes (64 hex digits or 43/44 base64 characters)")]
    BadLength,
    #[error("sealed data could not be opened: wrong key-encryption key or corrupted data")]
    Open,
    #[error("the system random source failed")]
    Random,
}

/// The key-encryption key: seals signing keys at rest and derives purpose-bound secrets.
pub struct KeyEncryptionKey {
    bytes: [u8; 32],
}

impl std::fmt::Debug for KeyEncryptionKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KeyEncryptionKey([redacted])")
    }
}

impl KeyEncryptionKey {
    pub fn generate() -> Result<Self, KekError> {
        let mut bytes = [0u8; 32];
        SystemRandom::new()
            .fill(&mut bytes)
            .map_err(|_| KekError::Random)?;
        Ok(Self { bytes })
    }

    /// Accepts 64 hex digits or standard/url-safe base64 of 32 bytes, surrounding whitespace ignored.
    pub fn parse(text: &str) -> Result<Self, KekError> {
        use base64::Engine;
        let text = text.trim();
        let decoded = if text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit()) {
            (0..32)
                .map(|i| u8::from_str_radix(&text[2 * i..2 * i + 2], 16))
                .collect::<Result<Vec<u8>, _>>()
                .map_err(|_| KekError::BadLength)?
        } else {
            let engines = [
                base64::engine::general_purpose::STANDARD,
                base64::engine::general_purpose::URL_SAFE,
                base64::engine::general_purpose::STANDARD_NO_PAD,
                base64::engine::general_purpose::URL_SAFE_NO_PAD,
            ];
            engines
                .iter()
                .find_map(|e| e.decode(text).ok())
                .ok_or(KekError::BadLength)?
        };
        let bytes: [u8; 32] = decoded.try_into().map_err(|_| KekError::BadLength)?;
        Ok(Self { bytes })
    }

    pub fn to_hex(&self) -> String {
        self.bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// A 32-byte secret for one purpose, so a leak of one derived secret reveals nothing of another.
    pub fn derive(&self, purpose: &str) -> [u8; 32] {
        let key = hmac::Key::new(hmac::HMAC_SHA256, &self.bytes);
        let tag = hmac::sign(&key, purpose.as_bytes());
        let mut out = [0u8; 32];
        out.copy_from_slice(tag.as_ref());
        out
    }

    fn aead_key(&self) -> Result<LessSafeKey, KekError> {
        let unbound = UnboundKey::new(&AES_256_GCM, &self.derive("gatehouse/kek/aead/v1"))
            .map_err(|_| KekError::BadLength)?;
        Ok(LessSafeKey::new(unbound))
    }

    /// AES-256-GCM with a random nonce; `context` is bound as associated data (e.g. the key id).
    pub fn seal(&self, context: &str, plaintext: &[u8]) -> Result<Vec<u8>, KekError> {
        let mut nonce = [0u8; NONCE_LEN];
        SystemRandom::new()
            .fill(&mut nonce)
            .map_err(|_| KekError::Random)?;
        let mut in_out = plaintext.to_vec();
        self.aead_key()?
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(context.as_bytes()),
                &mut in_out,
            )
            .map_err(|_| KekError::Random)?;
        let mut sealed = nonce.to_vec();
        sealed.extend_from_slice(&in_out);
        Ok(sealed)
    }

    pub fn open(&self, context: &str, sealed: &[u8]) -> Result<Vec<u8>, KekError> {
        if sealed.len() < NONCE_LEN {
            return Err(KekError::Open);
        }
        let (nonce, ciphertext) = sealed.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| KekError::Open)?;
        let mut in_out = ciphertext.to_vec();
        let plain = self
            .aead_key()?
            .open_in_place(nonce, Aad::from(context.as_bytes()), &mut in_out)
            .map_err(|_| KekError::Open)?;
        Ok(plain.to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_then_open_round_trips_and_binds_context() {
        let kek = KeyEncryptionKey::generate().unwrap();
        let sealed = kek.seal("kid-1", b"secret material").unwrap();
        assert_eq!(kek.open("kid-1", &sealed).unwrap(), b"secret material");
        assert!(matches!(kek.open("kid-2", &sealed), Err(KekError::Open)));
        let other = KeyEncryptionKey::generate().unwrap();
        assert!(matches!(other.open("kid-1", &sealed), Err(KekError::Open)));
    }

    #[test]
    fn parse_accepts_hex_and_base64_and_rejects_short_keys() {
        let kek = KeyEncryptionKey::generate().unwrap();
        let again = KeyEncryptionKey::parse(&kek.to_hex()).unwrap();
        assert_eq!(kek.derive("x"), again.derive("x"));
        assert!(KeyEncryptionKey::parse("abcd").is_err());
        assert!(KeyEncryptionKey::parse("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=").is_ok());
    }

    #[test]
    fn derived_secrets_differ_by_purpose() {
        let kek = KeyEncryptionKey::generate().unwrap();
        assert_ne!(kek.derive("a"), kek.derive("b"));
    }
}
