//! Properties of the OAuth form extractor over generated bodies: any body is read or refused
//! with an OAuth error, never a panic, and a well-formed encoding of distinct parameters reads
//! back as exactly those parameters.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashMap;

use axum::body::Body;
use axum::extract::FromRequest;
use axum::http::{Request, header};
use axum::response::IntoResponse;
use proptest::prelude::*;

use crate::extract::{FORM_LIMIT, OAuthForm};

/// The form, or the refusal's status and content type.
fn read(content_type: Option<&str>, body: Vec<u8>) -> Result<OAuthForm, (u16, String)> {
    let mut request = Request::builder().method("POST").uri("/oauth2/token");
    if let Some(content_type) = content_type {
        request = request.header(header::CONTENT_TYPE, content_type);
    }
    let request = request.body(Body::from(body)).unwrap();
    futures::executor::block_on(OAuthForm::from_request(request, &())).map_err(|rejection| {
        let response = rejection.into_response();
        let media = response.headers()[header::CONTENT_TYPE].to_str().unwrap();
        (response.status().as_u16(), media.to_owned())
    })
}

fn form_content_type() -> impl Strategy<Value = Option<String>> {
    prop_oneof![
        4 => Just(Some("application/x-www-form-urlencoded".to_owned())),
        1 => Just(Some("Application/X-WWW-Form-Urlencoded; charset=UTF-8".to_owned())),
        1 => Just(Some("application/json".to_owned())),
        1 => Just(None),
        1 => "[ -~]{0,40}".prop_map(Some),
    ]
}

/// Bytes that look like forms often: separators, escapes (valid and not), plus signs and
/// arbitrary bytes.
fn form_like_body() -> impl Strategy<Value = Vec<u8>> {
    let piece = prop_oneof![
        "[a-z_]{1,8}".prop_map(String::into_bytes),
        Just(b"=".to_vec()),
        Just(b"&".to_vec()),
        Just(b"+".to_vec()),
        Just(b";".to_vec()),
        "%[0-9a-fA-F]{2}".prop_map(String::into_bytes),
        "%[0-9a-zA-Z]{0,2}".prop_map(String::into_bytes),
        prop::collection::vec(any::<u8>(), 1..6),
    ];
    prop::collection::vec(piece, 0..24).prop_map(|pieces| pieces.concat())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Any body, under any content type: parameters, or an OAuth error answer (4xx, JSON).
    #[test]
    fn any_body_is_read_or_refused(content_type in form_content_type(), body in form_like_body()) {
        if let Err((status, media)) = read(content_type.as_deref(), body) {
            prop_assert!((400..500).contains(&status), "{}", status);
            prop_assert!(media.starts_with("application/json"), "{}", media);
        }
    }

    /// Distinct names with non-empty values, encoded as a browser would, read back unchanged.
    #[test]
    fn distinct_parameters_round_trip(
        params in prop::collection::hash_map(".{1,12}", ".{1,24}", 0..8),
        charset in any::<bool>(),
    ) {
        let body = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(params.iter())
            .finish();
        let content_type = if charset {
            "application/x-www-form-urlencoded; charset=utf-8"
        } else {
            "application/x-www-form-urlencoded"
        };
        let decoded: HashMap<String, String> = match read(Some(content_type), body.into_bytes()) {
            Ok(OAuthForm(decoded)) => decoded,
            Err((status, _)) => panic!("refused with {status}"),
        };
        prop_assert_eq!(decoded, params);
    }

    /// A body over the limit is refused, whatever it holds.
    #[test]
    fn a_body_over_the_limit_is_refused(extra in 1usize..64, byte in b'a'..=b'z') {
        let body = vec![byte; FORM_LIMIT + extra];
        let (status, _) = read(Some("application/x-www-form-urlencoded"), body).err().unwrap();
        prop_assert_eq!(status, 413);
    }
}
