use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Serialize;

use crate::{ACCESS_TOKEN_TYPE, AccessClaims, ID_TOKEN_TYPE, IdClaims, Jwk};

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("signing key generation failed")]
    Generate,
    #[error("stored signing key is not a valid Ed25519 PKCS#8 document")]
    Parse,
    #[error("claims could not be serialized: {0}")]
    Claims(#[from] serde_json::Error),
}

/// An Ed25519 signing key, parsed once so signing costs one signature and nothing else.
///
/// jsonwebtoken re-parses its key on every call, which halves signing throughput, so tokens are
/// serialized here (JWS compact form is three base64url parts) and signed with the parsed key.
pub struct SigningKey {
    kid: String,
    pair: Ed25519KeyPair,
    pkcs8: Vec<u8>,
    /// `base64url(header) + "."`, computed once per key.
    header_prefix: String,
    /// The same for ID tokens, whose `typ` is `JWT`.
    id_header_prefix: String,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

#[derive(Serialize)]
struct Header<'a> {
    alg: &'a str,
    typ: &'a str,
    kid: &'a str,
}

impl SigningKey {
    pub const ALGORITHM: &'static str = "EdDSA";

    /// A new key. The key id is derived from the public key (RFC 7638-style thumbprint prefix), so
    /// it is stable, unique in practice, and says nothing about when or where it was made.
    pub fn generate() -> Result<Self, KeyError> {
        // PKCS#8 v1: v2 documents carry the public key too, which JWK export tooling trips on.
        let doc = Ed25519KeyPair::generate_pkcs8v1(&SystemRandom::new())
            .map_err(|_| KeyError::Generate)?;
        let pkcs8 = doc.as_ref().to_vec();
        let pair =
            Ed25519KeyPair::from_pkcs8_maybe_unchecked(&pkcs8).map_err(|_| KeyError::Parse)?;
        let x = URL_SAFE_NO_PAD.encode(pair.public_key().as_ref());
        let kid = thumbprint(&x);
        Self::from_parts(kid, pkcs8)
    }

    /// Rebuilds a key from its id and PKCS#8 document (as kept, sealed, in the store).
    pub fn from_pkcs8(kid: &str, pkcs8: &[u8]) -> Result<Self, KeyError> {
        Self::from_parts(kid.to_owned(), pkcs8.to_vec())
    }

    fn from_parts(kid: String, pkcs8: Vec<u8>) -> Result<Self, KeyError> {
        let pair =
            Ed25519KeyPair::from_pkcs8_maybe_unchecked(&pkcs8).map_err(|_| KeyError::Parse)?;
        let prefix = |typ: &str| -> Result<String, KeyError> {
            let header = serde_json::to_vec(&Header {
                alg: Self::ALGORITHM,
                typ,
                kid: &kid,
            })?;
            Ok(format!("{}.", URL_SAFE_NO_PAD.encode(header)))
        };
        let header_prefix = prefix(ACCESS_TOKEN_TYPE)?;
        let id_header_prefix = prefix(ID_TOKEN_TYPE)?;
        Ok(Self {
            kid,
            pair,
            pkcs8,
            header_prefix,
            id_header_prefix,
        })
    }

    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The private key document, for sealing into the store. Never log or return it.
    pub fn pkcs8(&self) -> &[u8] {
        &self.pkcs8
    }

    pub fn public_jwk(&self) -> Jwk {
        Jwk {
            kty: "OKP".into(),
            crv: Some("Ed25519".into()),
            x: Some(URL_SAFE_NO_PAD.encode(self.pair.public_key().as_ref())),
            kid: self.kid.clone(),
            alg: Self::ALGORITHM.into(),
            key_use: "sig".into(),
        }
    }

    /// Serializes and signs the claims as a compact JWS with `typ: at+jwt` and this key's `kid`.
    pub fn sign(&self, claims: &AccessClaims) -> Result<String, KeyError> {
        self.sign_payload(&self.header_prefix, &serde_json::to_vec(claims)?)
    }

    /// An OpenID Connect ID token: the claims as a compact JWS with `typ: JWT`.
    pub fn sign_id_token(&self, claims: &IdClaims) -> Result<String, KeyError> {
        self.sign_payload(&self.id_header_prefix, &serde_json::to_vec(claims)?)
    }

    fn sign_payload(&self, header_prefix: &str, payload: &[u8]) -> Result<String, KeyError> {
        let mut token = String::with_capacity(header_prefix.len() + payload.len() * 4 / 3 + 90);
        token.push_str(header_prefix);
        URL_SAFE_NO_PAD.encode_string(payload, &mut token);
        let signature = self.pair.sign(token.as_bytes());
        token.push('.');
        URL_SAFE_NO_PAD.encode_string(signature.as_ref(), &mut token);
        Ok(token)
    }
}

/// RFC 7638 thumbprint of an Ed25519 JWK (members in lexicographic order), first 16 bytes.
fn thumbprint(x: &str) -> String {
    let canonical = format!(r#"{{"crv":"Ed25519","kty":"OKP","x":"{x}"}}"#);
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, canonical.as_bytes());
    URL_SAFE_NO_PAD.encode(&digest.as_ref()[..16])
}
