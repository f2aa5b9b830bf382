//! Properties of token parsing and verification, over generated and mutated tokens: nothing
//! panics, a signed token verifies to exactly the claims signed, and a token changed in any way
//! never verifies.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::OnceLock;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use gatehouse_token::{
    AccessClaims, Audience, JwkSet, SigningKey, Verifier, VerifierConfig, key_id, now_unix,
};
use proptest::prelude::*;

const ISSUER: &str = "https://issuer.test";
const AUDIENCE: &str = "api";

/// One key for the whole run: generating keys is not what is under test.
fn key() -> &'static SigningKey {
    static KEY: OnceLock<SigningKey> = OnceLock::new();
    KEY.get_or_init(|| SigningKey::generate().unwrap())
}

fn verifier() -> &'static Verifier {
    static VERIFIER: OnceLock<Verifier> = OnceLock::new();
    VERIFIER.get_or_init(|| {
        Verifier::new(
            VerifierConfig {
                issuer: ISSUER.into(),
                audience: Some(AUDIENCE.into()),
                leeway_secs: 30,
            },
            &JwkSet {
                keys: vec![key().public_jwk()],
            },
        )
    })
}

fn audience() -> impl Strategy<Value = Audience> {
    prop_oneof![
        Just(Audience::One(AUDIENCE.into())),
        (prop::collection::vec(".{0,12}", 0..3), 0usize..3).prop_map(|(mut others, at)| {
            others.insert(at.min(others.len()), AUDIENCE.into());
            Audience::Many(others)
        }),
    ]
}

/// Claims a verifier with [`ISSUER`] and [`AUDIENCE`] accepts now, with arbitrary text elsewhere.
fn valid_claims() -> impl Strategy<Value = AccessClaims> {
    (
        ".{1,24}",
        audience(),
        60i64..100_000,
        -20i64..1,
        ".{0,24}",
        ".{0,24}",
        "[!#-\\[\\]-~]{1,12}( [!#-\\[\\]-~]{1,12}){0,4}",
        prop::option::of(prop::collection::vec("[a-z]{1,8}", 0..4)),
        prop::option::of(".{1,16}"),
    )
        .prop_map(
            |(sub, aud, lifetime, issued, jti, client_id, scope, roles, sid)| {
                let now = now_unix();
                AccessClaims {
                    iss: ISSUER.into(),
                    sub,
                    aud,
                    exp: now + lifetime,
                    iat: now + issued,
                    jti,
                    client_id,
                    scope,
                    roles,
                    sid,
                }
            },
        )
}

/// Ways to change a token: each gives a string other than the token (or the token itself, which
/// the property then skips).
#[derive(Debug, Clone)]
enum Mutation {
    /// Replace the character at this position (mod length) by this one.
    Replace(usize, char),
    Insert(usize, char),
    Remove(usize),
    Truncate(usize),
    /// Swap two of the three segments.
    SwapSegments(usize, usize),
    /// Re-encode one segment after changing one byte of its decoded form.
    FlipDecoded(usize, usize, u8),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let token_char = prop_oneof![
        prop::char::range('A', 'Z'),
        prop::char::range('a', 'z'),
        prop::char::range('0', '9'),
        Just('-'),
        Just('_'),
        Just('.'),
        Just('='),
        any::<char>(),
    ];
    prop_oneof![
        (any::<usize>(), token_char.clone()).prop_map(|(i, c)| Mutation::Replace(i, c)),
        (any::<usize>(), token_char).prop_map(|(i, c)| Mutation::Insert(i, c)),
        any::<usize>().prop_map(Mutation::Remove),
        any::<usize>().prop_map(Mutation::Truncate),
        (0usize..3, 0usize..3).prop_map(|(a, b)| Mutation::SwapSegments(a, b)),
        (0usize..3, any::<usize>(), 1u8..=255).prop_map(|(s, i, x)| Mutation::FlipDecoded(s, i, x)),
    ]
}

fn apply(token: &str, mutation: &Mutation) -> String {
    let chars: Vec<char> = token.chars().collect();
    let at = |i: usize| i % chars.len();
    match mutation {
        Mutation::Replace(i, c) => {
            let mut out = chars.clone();
            out[at(*i)] = *c;
            out.into_iter().collect()
        }
        Mutation::Insert(i, c) => {
            let mut out = chars.clone();
            out.insert(i % (chars.len() + 1), *c);
            out.into_iter().collect()
        }
        Mutation::Remove(i) => {
            let mut out = chars.clone();
            out.remove(at(*i));
            out.into_iter().collect()
        }
        Mutation::Truncate(i) => chars[..at(*i)].iter().collect(),
        Mutation::SwapSegments(a, b) => {
            let mut parts: Vec<&str> = token.split('.').collect();
            parts.swap(*a, *b);
            parts.join(".")
        }
        Mutation::FlipDecoded(segment, i, x) => {
            let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
            let mut bytes = URL_SAFE_NO_PAD.decode(&parts[*segment]).unwrap();
            let len = bytes.len();
            bytes[*i % len] ^= x;
            parts[*segment] = URL_SAFE_NO_PAD.encode(bytes);
            parts.join(".")
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Any text at all is refused or read, never a panic.
    #[test]
    fn arbitrary_text_never_panics(text in ".{0,300}") {
        prop_assert!(verifier().verify(&text).is_err());
        let _ = verifier().verify_id_token_hint(&text);
        let _ = key_id(&text);
    }

    /// Three base64url segments of arbitrary bytes (or JSON): well-formed on the outside,
    /// anything inside.
    #[test]
    fn arbitrary_segments_never_panic_nor_verify(
        header in prop_oneof![
            prop::collection::vec(any::<u8>(), 0..80),
            Just(format!(r#"{{"alg":"EdDSA","typ":"at+jwt","kid":"{}"}}"#, key().kid()).into_bytes()),
            Just(br#"{"alg":"none","typ":"at+jwt"}"#.to_vec()),
        ],
        payload in prop::collection::vec(any::<u8>(), 0..200),
        signature in prop::collection::vec(any::<u8>(), 0..80),
    ) {
        let token = format!(
            "{}.{}.{}",
            URL_SAFE_NO_PAD.encode(&header),
            URL_SAFE_NO_PAD.encode(&payload),
            URL_SAFE_NO_PAD.encode(&signature),
        );
        prop_assert!(verifier().verify(&token).is_err());
        let _ = verifier().verify_id_token_hint(&token);
        let _ = key_id(&token);
    }

    /// What is signed is what verifies, claim for claim, with the signing key's id.
    #[test]
    fn signed_claims_round_trip(claims in valid_claims()) {
        let token = key().sign(&claims).unwrap();
        let (verified, kid) = verifier().verify_keyed(&token).unwrap();
        prop_assert_eq!(verified, claims);
        prop_assert_eq!(kid.as_str(), key().kid());
        let named = key_id(&token);
        prop_assert_eq!(named.as_deref(), Some(key().kid()));
    }

    /// Any change to a signed token, down to a bit of one segment, makes it fail.
    #[test]
    fn a_changed_token_never_verifies(claims in valid_claims(), change in mutation()) {
        let token = key().sign(&claims).unwrap();
        let changed = apply(&token, &change);
        prop_assume!(changed != token);
        prop_assert!(
            verifier().verify(&changed).is_err(),
            "{change:?} turned {token} into {changed}, which verified"
        );
    }
}
