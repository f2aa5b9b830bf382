use std::collections::HashMap;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::{Deserialize, Deserializer};

use crate::{ACCESS_TOKEN_TYPE, AccessClaims, IdClaims, Jwk, JwkSet};

/// Why a token was refused. The messages are safe to show to the caller (RFC 6750 `error_description`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("the token is not a well-formed JWT")]
    Malformed,
    #[error("the token is not an access token (typ must be at+jwt)")]
    WrongType,
    #[error("the token names no key or a key this issuer does not publish")]
    UnknownKey,
    #[error("the token's algorithm is not the one its key declares")]
    WrongAlgorithm,
    #[error("the token's signature is invalid")]
    BadSignature,
    #[error("the token has expired")]
    Expired,
    #[error("the token is not valid yet")]
    NotYetValid,
    #[error("the token was issued by another issuer")]
    WrongIssuer,
    #[error("the token is not meant for this audience")]
    WrongAudience,
    #[error("the token requires header extensions (crit) that this verifier does not understand")]
    UnsupportedCritical,
}

#[derive(Debug, Clone)]
pub struct VerifierConfig {
    pub issuer: String,
    /// When set, `aud` must contain it.
    pub audience: Option<String>,
    /// Tolerated clock skew for `exp`, `nbf` and `iat`.
    pub leeway_secs: u64,
}

struct VerificationKey {
    alg: Algorithm,
    key: DecodingKey,
}

/// Verifies access tokens against a key set. Only the algorithm each key declares is accepted for it,
/// so `alg: none` and algorithm confusion (e.g. HS256 keyed with a public key) cannot pass.
pub struct Verifier {
    config: VerifierConfig,
    keys: HashMap<String, VerificationKey>,
}

impl Verifier {
    pub fn new(config: VerifierConfig, set: &JwkSet) -> Self {
        let keys = set
            .keys
            .iter()
            .filter_map(|jwk| Some((jwk.kid.clone(), verification_key(jwk)?)))
            .collect();
        Self { config, keys }
    }

    pub fn knows_kid(&self, kid: &str) -> bool {
        self.keys.contains_key(kid)
    }

    pub fn verify(&self, token: &str) -> Result<AccessClaims, VerifyError> {
        self.verify_keyed(token).map(|(claims, _)| claims)
    }

    /// Like [`Verifier::verify`], also giving the `kid` of the key that signed the token.
    pub fn verify_keyed(&self, token: &str) -> Result<(AccessClaims, String), VerifyError> {
        self.verify_keyed_at(token, crate::now_unix())
    }

    /// Like [`Verifier::verify_keyed`], with `now` (Unix seconds) as the time to judge `exp` and
    /// `iat` by.
    pub fn verify_keyed_at(
        &self,
        token: &str,
        now: i64,
    ) -> Result<(AccessClaims, String), VerifyError> {
        let header = JoseHeader::of(token)?;
        header.refuse_critical_extensions()?;
        if header.typ.as_deref() != Some(ACCESS_TOKEN_TYPE)
            && header.typ.as_deref() != Some("application/at+jwt")
        {
            return Err(VerifyError::WrongType);
        }
        let kid = header.kid.as_deref().ok_or(VerifyError::UnknownKey)?;
        let key = self.keys.get(kid).ok_or(VerifyError::UnknownKey)?;
        if header.alg != key.alg {
            return Err(VerifyError::WrongAlgorithm);
        }
        let mut validation = Validation::new(key.alg);
        validation.leeway = self.config.leeway_secs;
        validation.validate_nbf = true;
        // Judged below against `now`, so the caller's clock decides.
        validation.validate_exp = false;
        validation.set_required_spec_claims(&["exp", "iat", "iss", "sub", "aud"]);
        validation.set_issuer(&[&self.config.issuer]);
        match &self.config.audience {
            Some(aud) => validation.set_audience(&[aud]),
            None => validation.validate_aud = false,
        }
        let data = jsonwebtoken::decode::<AccessClaims>(token, &key.key, &validation)
            .map_err(map_error)?;
        let leeway = self.config.leeway_secs as i64;
        if data.claims.exp.saturating_add(leeway) < now {
            return Err(VerifyError::Expired);
        }
        // At least a second: issuers date tokens up to a second ahead after a revocation cut-off.
        if data.claims.iat > now.saturating_add(leeway.max(1)) {
            return Err(VerifyError::NotYetValid);
        }
        Ok((data.claims, kid.to_owned()))
    }
}

impl Verifier {
    /// An ID token this issuer signed, as presented back as `id_token_hint` at logout (OpenID
    /// Connect RP-Initiated Logout §2): signature, type and issuer are checked; its expiry is not,
    /// since a relying party may hold an expired one, and its audience is the caller's to judge.
    pub fn verify_id_token_hint(&self, token: &str) -> Result<IdClaims, VerifyError> {
        let header = JoseHeader::of(token)?;
        header.refuse_critical_extensions()?;
        if header.typ.as_deref() != Some(crate::ID_TOKEN_TYPE) {
            return Err(VerifyError::WrongType);
        }
        let kid = header.kid.as_deref().ok_or(VerifyError::UnknownKey)?;
        let key = self.keys.get(kid).ok_or(VerifyError::UnknownKey)?;
        if header.alg != key.alg {
            return Err(VerifyError::WrongAlgorithm);
        }
        let mut validation = Validation::new(key.alg);
        validation.validate_exp = false;
        validation.validate_aud = false;
        validation.set_required_spec_claims(&["iss", "sub", "aud"]);
        validation.set_issuer(&[&self.config.issuer]);
        jsonwebtoken::decode::<IdClaims>(token, &key.key, &validation)
            .map(|data| data.claims)
            .map_err(map_error)
    }
}

/// The `kid` a token's header names, if it has a readable header.
pub fn key_id(token: &str) -> Option<String> {
    JoseHeader::of(token).ok()?.kid
}

/// The protected header members a verifier reads (RFC 7515 §4.1). Parsed here rather than by
/// jsonwebtoken, which never enforces `crit` and reads `"crit": null` as no `crit` at all.
#[derive(Deserialize)]
struct JoseHeader {
    alg: Algorithm,
    #[serde(default)]
    typ: Option<String>,
    #[serde(default)]
    kid: Option<String>,
    /// `Some` whenever the member is present, whatever its value (`null` included).
    #[serde(default, deserialize_with = "present")]
    crit: Option<serde_json::Value>,
}

fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<serde_json::Value>, D::Error> {
    serde_json::Value::deserialize(d).map(Some)
}

impl JoseHeader {
    /// The header of a compact JWS. A repeated member of those above makes it unreadable, so no
    /// two parsers can disagree about which copy counts.
    fn of(token: &str) -> Result<Self, VerifyError> {
        let encoded = token.split('.').next().ok_or(VerifyError::Malformed)?;
        let json = URL_SAFE_NO_PAD
            .decode(encoded)
            .map_err(|_| VerifyError::Malformed)?;
        serde_json::from_slice(&json).map_err(|_| VerifyError::Malformed)
    }

    /// RFC 7515 §4.1.11: a recipient must refuse a JWS whose `crit` names an extension it does
    /// not understand. We understand none, so any `crit` is refused; one that is not a non-empty
    /// list of names is malformed besides.
    fn refuse_critical_extensions(&self) -> Result<(), VerifyError> {
        match &self.crit {
            None => Ok(()),
            Some(serde_json::Value::Array(names))
                if !names.is_empty()
                    && names
                        .iter()
                        .all(|n| n.as_str().is_some_and(|n| !n.is_empty())) =>
            {
                Err(VerifyError::UnsupportedCritical)
            }
            Some(_) => Err(VerifyError::Malformed),
        }
    }
}

/// The key a JWK describes, for exactly the algorithm it declares. Anything else (no `alg`, a
/// key type that does not fit it, RSA under 2048 bits, an encryption key) is left out.
fn verification_key(jwk: &Jwk) -> Option<VerificationKey> {
    if jwk.key_use != "sig" {
        return None;
    }
    let (alg, key) = match (jwk.kty.as_str(), jwk.crv.as_deref(), jwk.alg.as_str()) {
        ("OKP", Some("Ed25519"), "EdDSA") => (
            Algorithm::EdDSA,
            DecodingKey::from_ed_components(jwk.x.as_deref()?).ok()?,
        ),
        ("EC", Some("P-256"), "ES256") => (
            Algorithm::ES256,
            DecodingKey::from_ec_components(jwk.x.as_deref()?, jwk.y.as_deref()?).ok()?,
        ),
        ("RSA", None, "RS256") => {
            let modulus = URL_SAFE_NO_PAD.decode(jwk.n.as_deref()?).ok()?;
            // RFC 7518 §3.3: 2048 bits or more, counted in bits.
            let significant: Vec<u8> = modulus.into_iter().skip_while(|b| *b == 0).collect();
            let bits = significant.first().map_or(0, |first| {
                (significant.len() - 1) * 8 + (8 - first.leading_zeros() as usize)
            });
            if bits < 2048 {
                return None;
            }
            (
                Algorithm::RS256,
                DecodingKey::from_rsa_components(jwk.n.as_deref()?, jwk.e.as_deref()?).ok()?,
            )
        }
        _ => return None,
    };
    Some(VerificationKey { alg, key })
}

fn map_error(error: jsonwebtoken::errors::Error) -> VerifyError {
    use jsonwebtoken::errors::ErrorKind;
    match error.kind() {
        ErrorKind::InvalidSignature => VerifyError::BadSignature,
        ErrorKind::ExpiredSignature => VerifyError::Expired,
        ErrorKind::ImmatureSignature => VerifyError::NotYetValid,
        ErrorKind::InvalidIssuer => VerifyError::WrongIssuer,
        ErrorKind::InvalidAudience => VerifyError::WrongAudience,
        ErrorKind::InvalidAlgorithm | ErrorKind::InvalidAlgorithmName => {
            VerifyError::WrongAlgorithm
        }
        _ => VerifyError::Malformed,
    }
}

#[cfg(test)]
mod tests {
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;

    use super::*;
    use crate::{Audience, SigningAlgorithm, SigningKey, now_unix};

    fn claims(exp_offset: i64) -> AccessClaims {
        let now = now_unix();
        AccessClaims {
            iss: "https://issuer.test".into(),
            sub: "svc".into(),
            aud: Audience::One("api".into()),
            exp: now + exp_offset,
            iat: now,
            jti: "j1".into(),
            client_id: "svc".into(),
            scope: "a b".into(),
            roles: None,
            sid: None,
        }
    }

    fn verifier(key: &SigningKey, audience: Option<&str>) -> Verifier {
        Verifier::new(
            VerifierConfig {
                issuer: "https://issuer.test".into(),
                audience: audience.map(str::to_owned),
                leeway_secs: 30,
            },
            &JwkSet {
                keys: vec![key.public_jwk()],
            },
        )
    }

    fn forge(header: &str, claims: &AccessClaims, signature: &[u8]) -> String {
        format!(
            "{}.{}.{}",
            URL_SAFE_NO_PAD.encode(header),
            URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims).unwrap()),
            URL_SAFE_NO_PAD.encode(signature)
        )
    }

    #[test]
    fn signed_token_verifies_and_round_trips_claims() {
        let key = SigningKey::generate().unwrap();
        let c = claims(600);
        let token = key.sign(&c).unwrap();
        assert_eq!(verifier(&key, Some("api")).verify(&token).unwrap(), c);
        let header = jsonwebtoken::decode_header(&token).unwrap();
        assert_eq!(header.typ.as_deref(), Some("at+jwt"));
        assert_eq!(header.kid.as_deref(), Some(key.kid()));
    }

    #[test]
    fn every_algorithm_signs_verifies_and_survives_a_pkcs8_round_trip() {
        for alg in SigningAlgorithm::ALL {
            let key = SigningKey::generate_for(alg).unwrap();
            assert_eq!(key.algorithm(), alg);
            let again = SigningKey::from_pkcs8(key.kid(), alg, key.pkcs8()).unwrap();
            assert_eq!(again.public_jwk(), key.public_jwk(), "{alg}");
            let c = claims(60);
            let token = again.sign(&c).unwrap();
            assert_eq!(verifier(&key, None).verify(&token).unwrap(), c, "{alg}");
            let header = jsonwebtoken::decode_header(&token).unwrap();
            assert_eq!(format!("{:?}", header.alg), alg.as_str());
            // Another key of the same algorithm does not verify it.
            let stranger = SigningKey::generate_for(alg).unwrap();
            let forged = format!(
                "{}.{}",
                token.rsplit_once('.').unwrap().0,
                stranger.sign(&c).unwrap().rsplit_once('.').unwrap().1
            );
            assert_eq!(
                verifier(&key, None).verify(&forged),
                Err(VerifyError::BadSignature),
                "{alg}"
            );
            // A document of one algorithm is not read as another's.
            for other in SigningAlgorithm::ALL.into_iter().filter(|o| *o != alg) {
                assert!(SigningKey::from_pkcs8(key.kid(), other, key.pkcs8()).is_err());
            }
        }
    }

    #[test]
    fn published_keys_have_the_members_of_their_type_and_a_thumbprint_kid() {
        let ec = SigningKey::generate_for(SigningAlgorithm::ES256)
            .unwrap()
            .public_jwk();
        assert_eq!((ec.kty.as_str(), ec.crv.as_deref()), ("EC", Some("P-256")));
        assert_eq!(URL_SAFE_NO_PAD.decode(ec.x.unwrap()).unwrap().len(), 32);
        assert_eq!(URL_SAFE_NO_PAD.decode(ec.y.unwrap()).unwrap().len(), 32);
        assert!(ec.n.is_none() && ec.e.is_none());
        let rsa = SigningKey::generate_for(SigningAlgorithm::RS256).unwrap();
        let jwk = rsa.public_jwk();
        assert_eq!((jwk.kty.as_str(), jwk.crv.as_deref()), ("RSA", None));
        assert_eq!(
            URL_SAFE_NO_PAD
                .decode(jwk.n.as_deref().unwrap())
                .unwrap()
                .len(),
            256
        );
        assert_eq!(jwk.e.as_deref(), Some("AQAB"));
        // RFC 7638 §3.1: the thumbprint of {"e","kty","n"} in that order.
        let canonical = format!(r#"{{"e":"AQAB","kty":"RSA","n":"{}"}}"#, jwk.n.unwrap());
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, canonical.as_bytes());
        assert_eq!(rsa.kid(), URL_SAFE_NO_PAD.encode(&digest.as_ref()[..16]));
    }

    #[test]
    fn a_token_may_not_claim_another_algorithm_than_its_key() {
        let rsa = SigningKey::generate_for(SigningAlgorithm::RS256).unwrap();
        let c = claims(60);
        let token = rsa.sign(&c).unwrap();
        let (_, rest) = token.split_once('.').unwrap();
        for alg in ["ES256", "EdDSA", "HS256", "PS256", "none"] {
            let header = format!(r#"{{"alg":"{alg}","typ":"at+jwt","kid":"{}"}}"#, rsa.kid());
            let forged = format!("{}.{rest}", URL_SAFE_NO_PAD.encode(header));
            let result = verifier(&rsa, None).verify(&forged);
            assert!(
                matches!(
                    result,
                    Err(VerifyError::WrongAlgorithm | VerifyError::Malformed)
                ),
                "{alg}: {result:?}"
            );
        }
    }

    #[test]
    fn weak_or_mislabelled_keys_are_not_trusted() {
        let rsa = SigningKey::generate_for(SigningAlgorithm::RS256).unwrap();
        let token = rsa.sign(&claims(60)).unwrap();
        let mut jwk = rsa.public_jwk();
        // A 1024-bit modulus (the real one cut short) is never a verification key.
        let n = URL_SAFE_NO_PAD.decode(jwk.n.as_deref().unwrap()).unwrap();
        jwk.n = Some(URL_SAFE_NO_PAD.encode(&n[..128]));
        let short = Verifier::new(verifier_config(), &JwkSet { keys: vec![jwk] });
        assert!(!short.knows_kid(rsa.kid()));
        // A key published for encryption does not verify signatures.
        let mut enc = rsa.public_jwk();
        enc.key_use = "enc".into();
        let for_encryption = Verifier::new(verifier_config(), &JwkSet { keys: vec![enc] });
        assert_eq!(for_encryption.verify(&token), Err(VerifyError::UnknownKey));
        // An EC key labelled RS256 is not a key at all.
        let mut mislabelled = SigningKey::generate_for(SigningAlgorithm::ES256)
            .unwrap()
            .public_jwk();
        mislabelled.alg = "RS256".into();
        let kid = mislabelled.kid.clone();
        let odd = Verifier::new(
            verifier_config(),
            &JwkSet {
                keys: vec![mislabelled],
            },
        );
        assert!(!odd.knows_kid(&kid));
    }

    fn verifier_config() -> VerifierConfig {
        VerifierConfig {
            issuer: "https://issuer.test".into(),
            audience: None,
            leeway_secs: 30,
        }
    }

    #[test]
    fn rejects_expired_wrong_issuer_wrong_audience_and_tampering() {
        let key = SigningKey::generate().unwrap();
        let v = verifier(&key, Some("api"));
        assert_eq!(
            v.verify(&key.sign(&claims(-120)).unwrap()),
            Err(VerifyError::Expired)
        );
        // inside the leeway an expired token still passes
        assert!(v.verify(&key.sign(&claims(-10)).unwrap()).is_ok());
        let mut other_iss = claims(60);
        other_iss.iss = "https://evil.test".into();
        assert_eq!(
            v.verify(&key.sign(&other_iss).unwrap()),
            Err(VerifyError::WrongIssuer)
        );
        let mut other_aud = claims(60);
        other_aud.aud = Audience::Many(vec!["x".into(), "y".into()]);
        assert_eq!(
            v.verify(&key.sign(&other_aud).unwrap()),
            Err(VerifyError::WrongAudience)
        );
        let token = key.sign(&claims(60)).unwrap();
        let mut parts: Vec<&str> = token.split('.').collect();
        let evil_payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&other_iss).unwrap());
        parts[1] = &evil_payload;
        assert_eq!(v.verify(&parts.join(".")), Err(VerifyError::BadSignature));
        assert_eq!(v.verify("garbage"), Err(VerifyError::Malformed));
        assert_eq!(v.verify(""), Err(VerifyError::Malformed));
    }

    #[test]
    fn rejects_alg_none_hs256_confusion_and_unknown_kid() {
        let key = SigningKey::generate().unwrap();
        let v = verifier(&key, None);
        let c = claims(60);
        let none = forge(
            &format!(r#"{{"alg":"none","typ":"at+jwt","kid":"{}"}}"#, key.kid()),
            &c,
            b"",
        );
        assert!(v.verify(&none).is_err());
        // HS256 keyed with the public key bytes: the classic algorithm-confusion forgery.
        let public = URL_SAFE_NO_PAD.decode(key.public_jwk().x.unwrap()).unwrap();
        let header = format!(r#"{{"alg":"HS256","typ":"at+jwt","kid":"{}"}}"#, key.kid());
        let signing_input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(&header),
            URL_SAFE_NO_PAD.encode(serde_json::to_vec(&c).unwrap())
        );
        let mac = aws_lc_rs::hmac::sign(
            &aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, &public),
            signing_input.as_bytes(),
        );
        let confused = format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(mac.as_ref()));
        assert_eq!(v.verify(&confused), Err(VerifyError::WrongAlgorithm));
        let stranger = SigningKey::generate().unwrap();
        assert_eq!(
            v.verify(&stranger.sign(&c).unwrap()),
            Err(VerifyError::UnknownKey)
        );
    }

    /// A token with `header` as its protected header, genuinely signed by `key`.
    fn signed_with_header(key: &SigningKey, header: &str, claims: &AccessClaims) -> String {
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header),
            URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims).unwrap())
        );
        let pair =
            aws_lc_rs::signature::Ed25519KeyPair::from_pkcs8_maybe_unchecked(key.pkcs8()).unwrap();
        format!(
            "{input}.{}",
            URL_SAFE_NO_PAD.encode(pair.sign(input.as_bytes()))
        )
    }

    #[test]
    fn rejects_tokens_without_at_jwt_type() {
        let key = SigningKey::generate().unwrap();
        let v = verifier(&key, None);
        let header = format!(r#"{{"alg":"EdDSA","typ":"JWT","kid":"{}"}}"#, key.kid());
        let token = signed_with_header(&key, &header, &claims(60));
        assert_eq!(v.verify(&token), Err(VerifyError::WrongType));
    }

    #[test]
    fn refuses_any_critical_header_extension_and_malformed_crit() {
        let key = SigningKey::generate().unwrap();
        let v = verifier(&key, Some("api"));
        let c = claims(60);
        let kid = key.kid();
        // The same header without crit verifies, so each refusal below is about crit alone.
        let plain = format!(r#"{{"alg":"EdDSA","typ":"at+jwt","kid":"{kid}"}}"#);
        assert_eq!(
            v.verify(&signed_with_header(&key, &plain, &c)),
            Ok(c.clone())
        );
        for (crit, expected) in [
            (r#"["b64"],"b64":false"#, VerifyError::UnsupportedCritical),
            (r#"["exp"],"exp":1"#, VerifyError::UnsupportedCritical),
            (
                r#"["x-unknown","x-other"]"#,
                VerifyError::UnsupportedCritical,
            ),
            ("[]", VerifyError::Malformed),
            (r#""b64""#, VerifyError::Malformed),
            ("null", VerifyError::Malformed),
            ("{}", VerifyError::Malformed),
            ("[1]", VerifyError::Malformed),
            (r#"[""]"#, VerifyError::Malformed),
        ] {
            let header = format!(r#"{{"alg":"EdDSA","typ":"at+jwt","kid":"{kid}","crit":{crit}}}"#);
            assert_eq!(
                v.verify(&signed_with_header(&key, &header, &c)),
                Err(expected),
                "crit: {crit}"
            );
        }
        // A second crit cannot hide behind a first that a lenient parser would keep.
        let twice = format!(
            r#"{{"alg":"EdDSA","typ":"at+jwt","kid":"{kid}","crit":["b64"],"crit":["b64"]}}"#
        );
        assert_eq!(
            v.verify(&signed_with_header(&key, &twice, &c)),
            Err(VerifyError::Malformed)
        );
    }

    #[test]
    fn key_id_reads_the_header_and_tolerates_garbage() {
        let key = SigningKey::generate().unwrap();
        let token = key.sign(&claims(60)).unwrap();
        assert_eq!(key_id(&token).as_deref(), Some(key.kid()));
        assert_eq!(key_id("garbage"), None);
        assert_eq!(key_id(""), None);
    }

    fn id_claims(exp_offset: i64) -> IdClaims {
        let now = now_unix();
        IdClaims {
            iss: "https://issuer.test".into(),
            sub: "usr_1".into(),
            aud: "app".into(),
            exp: now + exp_offset,
            iat: now,
            auth_time: now,
            nonce: Some("n-1".into()),
            at_hash: Some(crate::token_hash("an access token")),
            sid: Some("s1".into()),
        }
    }

    #[test]
    fn an_id_token_hint_verifies_even_expired_but_never_as_an_access_token() {
        let key = SigningKey::generate().unwrap();
        let v = verifier(&key, Some("api"));
        let expired = id_claims(-3600);
        let token = key.sign_id_token(&expired).unwrap();
        let header = jsonwebtoken::decode_header(&token).unwrap();
        assert_eq!(header.typ.as_deref(), Some("JWT"));
        assert_eq!(v.verify_id_token_hint(&token).unwrap(), expired);
        // An ID token is no access token, and an access token is no ID token.
        assert_eq!(
            v.verify(&key.sign_id_token(&id_claims(600)).unwrap()),
            Err(VerifyError::WrongType)
        );
        assert_eq!(
            v.verify_id_token_hint(&key.sign(&claims(600)).unwrap()),
            Err(VerifyError::WrongType)
        );
        // Another issuer's, or another key's, is refused.
        let mut foreign = id_claims(600);
        foreign.iss = "https://elsewhere.test".into();
        assert_eq!(
            v.verify_id_token_hint(&key.sign_id_token(&foreign).unwrap()),
            Err(VerifyError::WrongIssuer)
        );
        let other = SigningKey::generate().unwrap();
        assert_eq!(
            v.verify_id_token_hint(&other.sign_id_token(&id_claims(600)).unwrap()),
            Err(VerifyError::UnknownKey)
        );
    }

    #[test]
    fn the_token_hash_is_the_left_half_of_sha512() {
        // SHA-512("abc") begins ddaf35a193617aba cc417349ae204131 12e6fa4e89a97ea2 0a9eeee64b55d39a.
        let expected = URL_SAFE_NO_PAD.encode([
            0xdd, 0xaf, 0x35, 0xa1, 0x93, 0x61, 0x7a, 0xba, 0xcc, 0x41, 0x73, 0x49, 0xae, 0x20,
            0x41, 0x31, 0x12, 0xe6, 0xfa, 0x4e, 0x89, 0xa9, 0x7e, 0xa2, 0x0a, 0x9e, 0xee, 0xe6,
            0x4b, 0x55, 0xd3, 0x9a,
        ]);
        assert_eq!(crate::token_hash("abc"), expected);
    }
}
