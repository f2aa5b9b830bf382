use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair, KeyPair, RSA_PKCS1_SHA256,
    RsaKeyPair,
};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Serialize;

use crate::{ACCESS_TOKEN_TYPE, AccessClaims, ID_TOKEN_TYPE, IdClaims, Jwk};

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("signing key generation failed")]
    Generate,
    #[error("stored signing key is not a valid {0} PKCS#8 document")]
    Parse(SigningAlgorithm),
    #[error("signing failed")]
    Sign,
    #[error("claims could not be serialized: {0}")]
    Claims(#[from] serde_json::Error),
}

/// The JWS algorithms a server can sign with (RFC 7518 §3, RFC 8037). One per server: EdDSA is the
/// fastest and the default; ES256 and RS256 are for verifiers that know nothing else (many API
/// gateways, HAProxy, cloud load balancers).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Serialize, serde::Deserialize,
)]
pub enum SigningAlgorithm {
    #[default]
    EdDSA,
    ES256,
    RS256,
}

impl SigningAlgorithm {
    pub const ALL: [SigningAlgorithm; 3] = [Self::EdDSA, Self::ES256, Self::RS256];

    /// The JOSE `alg` value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::EdDSA => "EdDSA",
            Self::ES256 => "ES256",
            Self::RS256 => "RS256",
        }
    }
}

impl SigningAlgorithm {
    /// The `at_hash` (or `c_hash`) of `token` in an ID token signed with this algorithm: the left
    /// half of the hash the algorithm uses, base64url-encoded (OpenID Connect Core §3.1.3.6):
    /// SHA-256 for ES256 and RS256, SHA-512 for EdDSA over Ed25519.
    pub fn token_hash(self, token: &str) -> String {
        match self {
            Self::EdDSA => crate::token_hash(token),
            Self::ES256 | Self::RS256 => {
                let digest =
                    aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, token.as_bytes());
                URL_SAFE_NO_PAD.encode(&digest.as_ref()[..16])
            }
        }
    }

    /// The algorithm a compact JWS's header names, if it is one of ours.
    pub fn of_token(token: &str) -> Option<Self> {
        let header = token.split('.').next()?;
        #[derive(serde::Deserialize)]
        struct Alg {
            alg: String,
        }
        let json = URL_SAFE_NO_PAD.decode(header).ok()?;
        serde_json::from_slice::<Alg>(&json).ok()?.alg.parse().ok()
    }
}

impl std::fmt::Display for SigningAlgorithm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An `alg` that is not one of [`SigningAlgorithm::ALL`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unsupported signing algorithm {0:?}: expected EdDSA, ES256 or RS256")]
pub struct UnknownAlgorithm(pub String);

impl std::str::FromStr for SigningAlgorithm {
    type Err = UnknownAlgorithm;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|alg| alg.as_str() == s)
            .ok_or_else(|| UnknownAlgorithm(s.to_owned()))
    }
}

/// The parsed private key, of whichever algorithm.
enum Pair {
    Ed25519(Ed25519KeyPair),
    P256(EcdsaKeyPair),
    Rsa(RsaKeyPair),
}

impl Pair {
    fn parse(alg: SigningAlgorithm, pkcs8: &[u8]) -> Result<Self, KeyError> {
        let parsed = match alg {
            SigningAlgorithm::EdDSA => {
                Ed25519KeyPair::from_pkcs8_maybe_unchecked(pkcs8).map(Pair::Ed25519)
            }
            SigningAlgorithm::ES256 => {
                EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8).map(Pair::P256)
            }
            SigningAlgorithm::RS256 => RsaKeyPair::from_pkcs8(pkcs8).map(Pair::Rsa),
        };
        match parsed {
            // RFC 7518 §3.3: at least 2048 bits.
            Ok(Pair::Rsa(pair)) if pair.public_modulus_len() < 256 => Err(KeyError::Parse(alg)),
            Ok(pair) => Ok(pair),
            Err(_) => Err(KeyError::Parse(alg)),
        }
    }

    /// The public half as JWK members (`x`, `y`, `n`, `e` as each key type has them), with `kty`
    /// and `crv`.
    fn public_jwk(&self, kid: String, alg: SigningAlgorithm) -> Jwk {
        let mut jwk = Jwk {
            kty: String::new(),
            crv: None,
            x: None,
            y: None,
            n: None,
            e: None,
            kid,
            alg: alg.as_str().into(),
            key_use: "sig".into(),
        };
        match self {
            Pair::Ed25519(pair) => {
                jwk.kty = "OKP".into();
                jwk.crv = Some("Ed25519".into());
                jwk.x = Some(URL_SAFE_NO_PAD.encode(pair.public_key().as_ref()));
            }
            Pair::P256(pair) => {
                // Uncompressed SEC1 point: 0x04 || x || y, 32 bytes each.
                let point = pair.public_key().as_ref();
                let x = point.get(1..33).unwrap_or_default();
                let y = point.get(33..65).unwrap_or_default();
                jwk.kty = "EC".into();
                jwk.crv = Some("P-256".into());
                jwk.x = Some(URL_SAFE_NO_PAD.encode(x));
                jwk.y = Some(URL_SAFE_NO_PAD.encode(y));
            }
            Pair::Rsa(pair) => {
                let public = pair.public_key();
                jwk.kty = "RSA".into();
                jwk.n = Some(
                    URL_SAFE_NO_PAD.encode(public.modulus().big_endian_without_leading_zero()),
                );
                jwk.e = Some(
                    URL_SAFE_NO_PAD.encode(public.exponent().big_endian_without_leading_zero()),
                );
            }
        }
        jwk
    }

    fn sign(&self, message: &[u8]) -> Result<Signed, KeyError> {
        match self {
            Pair::Ed25519(pair) => Ok(Signed::Fixed(pair.sign(message))),
            // The FIXED encoding is JWS's R || S (RFC 7518 §3.4), not DER.
            Pair::P256(pair) => pair
                .sign(&SystemRandom::new(), message)
                .map(Signed::Fixed)
                .map_err(|_| KeyError::Sign),
            Pair::Rsa(pair) => {
                let mut signature = vec![0u8; pair.public_modulus_len()];
                pair.sign(
                    &RSA_PKCS1_SHA256,
                    &SystemRandom::new(),
                    message,
                    &mut signature,
                )
                .map_err(|_| KeyError::Sign)?;
                Ok(Signed::Rsa(signature))
            }
        }
    }
}

/// A signature: on the stack for the elliptic curves, on the heap for RSA's 256 bytes.
// Lives for one call; boxing the stack variant would allocate on every EdDSA token.
#[allow(clippy::large_enum_variant)]
enum Signed {
    Fixed(aws_lc_rs::signature::Signature),
    Rsa(Vec<u8>),
}

impl AsRef<[u8]> for Signed {
    fn as_ref(&self) -> &[u8] {
        match self {
            Signed::Fixed(signature) => signature.as_ref(),
            Signed::Rsa(signature) => signature,
        }
    }
}

/// A signing key, parsed once so signing costs one signature and nothing else.
///
/// jsonwebtoken re-parses its key on every call, which halves signing throughput, so tokens are
/// serialized here (JWS compact form is three base64url parts) and signed with the parsed key.
pub struct SigningKey {
    kid: String,
    alg: SigningAlgorithm,
    pair: Pair,
    pkcs8: Vec<u8>,
    /// The public key as published; computed once.
    jwk: Jwk,
    /// `base64url(header) + "."`, computed once per key.
    header_prefix: String,
    /// The same for ID tokens, whose `typ` is `JWT`.
    id_header_prefix: String,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
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
    /// A new EdDSA (Ed25519) key: the default algorithm.
    pub fn generate() -> Result<Self, KeyError> {
        Self::generate_for(SigningAlgorithm::EdDSA)
    }

    /// A new key for `alg` (RSA keys are 2048 bits). The key id is the key's RFC 7638 thumbprint
    /// (its first 16 bytes), so it is stable, unique in practice, and says nothing about when or
    /// where it was made.
    pub fn generate_for(alg: SigningAlgorithm) -> Result<Self, KeyError> {
        let pkcs8 = match alg {
            // PKCS#8 v1: v2 documents carry the public key too, which JWK export tooling trips on.
            SigningAlgorithm::EdDSA => Ed25519KeyPair::generate_pkcs8v1(&SystemRandom::new())
                .map(|doc| doc.as_ref().to_vec()),
            SigningAlgorithm::ES256 => {
                EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &SystemRandom::new())
                    .map(|doc| doc.as_ref().to_vec())
            }
            SigningAlgorithm::RS256 => RsaKeyPair::generate(KeySize::Rsa2048)
                .and_then(|pair| pair.as_der())
                .map(|der| der.as_ref().to_vec()),
        }
        .map_err(|_| KeyError::Generate)?;
        let pair = Pair::parse(alg, &pkcs8)?;
        let kid = thumbprint(&pair.public_jwk(String::new(), alg));
        Self::from_parts(kid, alg, pkcs8)
    }

    /// Rebuilds a key from its id, algorithm and PKCS#8 document (as kept, sealed, in the store).
    pub fn from_pkcs8(kid: &str, alg: SigningAlgorithm, pkcs8: &[u8]) -> Result<Self, KeyError> {
        Self::from_parts(kid.to_owned(), alg, pkcs8.to_vec())
    }

    fn from_parts(kid: String, alg: SigningAlgorithm, pkcs8: Vec<u8>) -> Result<Self, KeyError> {
        let pair = Pair::parse(alg, &pkcs8)?;
        let prefix = |typ: &str| -> Result<String, KeyError> {
            let header = serde_json::to_vec(&Header {
                alg: alg.as_str(),
                typ,
                kid: &kid,
            })?;
            Ok(format!("{}.", URL_SAFE_NO_PAD.encode(header)))
        };
        let header_prefix = prefix(ACCESS_TOKEN_TYPE)?;
        let id_header_prefix = prefix(ID_TOKEN_TYPE)?;
        let jwk = pair.public_jwk(kid.clone(), alg);
        Ok(Self {
            kid,
            alg,
            pair,
            pkcs8,
            jwk,
            header_prefix,
            id_header_prefix,
        })
    }

    pub fn kid(&self) -> &str {
        &self.kid
    }

    pub fn algorithm(&self) -> SigningAlgorithm {
        self.alg
    }

    /// The private key document, for sealing into the store. Never log or return it.
    pub fn pkcs8(&self) -> &[u8] {
        &self.pkcs8
    }

    pub fn public_jwk(&self) -> Jwk {
        self.jwk.clone()
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
        let mut token = String::with_capacity(header_prefix.len() + payload.len() * 4 / 3 + 350);
        token.push_str(header_prefix);
        URL_SAFE_NO_PAD.encode_string(payload, &mut token);
        let signature = self.pair.sign(token.as_bytes())?;
        token.push('.');
        URL_SAFE_NO_PAD.encode_string(signature.as_ref(), &mut token);
        Ok(token)
    }
}

/// RFC 7638 thumbprint of a public JWK (its required members in lexicographic order), first 16
/// bytes.
fn thumbprint(jwk: &Jwk) -> String {
    let member = |value: &Option<String>| value.as_deref().unwrap_or_default().to_owned();
    let canonical = match jwk.kty.as_str() {
        "EC" => format!(
            r#"{{"crv":"{}","kty":"EC","x":"{}","y":"{}"}}"#,
            member(&jwk.crv),
            member(&jwk.x),
            member(&jwk.y)
        ),
        "RSA" => format!(
            r#"{{"e":"{}","kty":"RSA","n":"{}"}}"#,
            member(&jwk.e),
            member(&jwk.n)
        ),
        _ => format!(
            r#"{{"crv":"{}","kty":"OKP","x":"{}"}}"#,
            member(&jwk.crv),
            member(&jwk.x)
        ),
    };
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, canonical.as_bytes());
    URL_SAFE_NO_PAD.encode(&digest.as_ref()[..16])
}
