//! ES256 and RS256 besides EdDSA, end to end on the real binary: the server signs with the
//! configured algorithm and publishes the matching key, the gateway and the toolkit verify and
//! follow revocations, and changing the algorithm rotates without breaking issued tokens.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use gatehouse_sdk::{TokenVerifier, VerifierSettings};
use serde_json::Value;

/// `gatehouse serve` on `data`, its authorization server on `auth_port` (0: any) so that a
/// restart can be the same issuer.
fn serve(data: &std::path::Path, alg: &str, auth_port: u16) -> common::Running {
    let mut command = common::gatehouse(
        &["serve", "--data-dir", data.to_str().unwrap()],
        &[("GATEHOUSE_AUTH__SIGNING_ALGORITHM", alg)],
    );
    command.args(["--auth-listen", &format!("127.0.0.1:{auth_port}")]);
    command.args(["--gateway-listen", "127.0.0.1:0", "--apps-ports-from", "0"]);
    common::spawn_ready(command)
}

async fn json(http: &reqwest::Client, url: &str) -> Value {
    http.get(url).send().await.unwrap().json().await.unwrap()
}

fn header_of(token: &str) -> Value {
    use base64::Engine;
    let encoded = token.split('.').next().unwrap();
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(encoded)
        .unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn each_algorithm_signs_and_is_checked_by_the_gateway_and_the_toolkit() {
    let http = reqwest::Client::new();
    for (alg, kty, crv) in [("ES256", "EC", Some("P-256")), ("RS256", "RSA", None)] {
        let dir = tempfile::tempdir().unwrap();
        let node = serve(dir.path(), alg, 0);
        let gateway = node.gateway.clone().unwrap();

        let jwks = json(&http, &format!("{}/oauth2/jwks", node.base)).await;
        let keys = jwks["keys"].as_array().unwrap();
        assert_eq!(keys.len(), 1, "{alg}: {jwks}");
        assert_eq!(keys[0]["alg"], alg);
        assert_eq!(keys[0]["kty"], kty);
        assert_eq!(keys[0]["crv"].as_str(), crv);
        let discovery = json(
            &http,
            &format!("{}/.well-known/openid-configuration", node.base),
        )
        .await;
        assert_eq!(
            discovery["access_token_signing_alg_values_supported"],
            serde_json::json!([alg])
        );
        assert_eq!(
            discovery["id_token_signing_alg_values_supported"],
            serde_json::json!([alg])
        );

        let (id, secret) = common::register(&http, &node.base, "rates:read").await;
        let token = common::client_token(&http, &node.base, &id, &secret).await;
        let header = header_of(&token);
        assert_eq!(header["alg"], alg);
        assert_eq!(header["kid"], keys[0]["kid"]);

        let rates = format!("{gateway}/api/rates");
        assert_eq!(common::status_of(&http, &rates, &token).await, 200, "{alg}");
        // The same token with its signature's first character changed.
        let (signed, signature) = token.rsplit_once('.').unwrap();
        let flipped = if signature.starts_with('A') { 'B' } else { 'A' };
        let tampered = format!("{signed}.{flipped}{}", &signature[1..]);
        common::refused_as_invalid(&http, &rates, &tampered).await;

        let toolkit = TokenVerifier::connect(VerifierSettings::new(&node.base))
            .await
            .unwrap();
        let verified = toolkit.verify(&token).await.unwrap();
        assert_eq!(verified.claims.client_id, id);
        assert!(toolkit.verify(&tampered).await.is_err(), "{alg}");

        common::revoke(&http, &node.base, &id, &secret, &token).await;
        common::within_a_second("the gateway refusing the revoked token", || async {
            common::status_of(&http, &rates, &token).await == 401
        })
        .await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn changing_the_algorithm_rotates_and_issued_tokens_keep_working() {
    let http = reqwest::Client::new();
    let dir = tempfile::tempdir().unwrap();
    let port = common::free_port();
    let first = serve(dir.path(), "EdDSA", port);
    let (id, secret) = common::register(&http, &first.base, "rates:read").await;
    let issued = common::client_token(&http, &first.base, &id, &secret).await;
    assert_eq!(header_of(&issued)["alg"], "EdDSA");
    assert_eq!(common::terminate(first).code(), Some(0));

    let second = serve(dir.path(), "RS256", port);
    let jwks = json(&http, &format!("{}/oauth2/jwks", second.base)).await;
    let mut algs: Vec<&str> = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["alg"].as_str().unwrap())
        .collect();
    algs.sort();
    assert_eq!(
        algs,
        ["EdDSA", "RS256"],
        "the new key is published before it signs"
    );
    let discovery = json(
        &http,
        &format!("{}/.well-known/openid-configuration", second.base),
    )
    .await;
    assert_eq!(
        discovery["access_token_signing_alg_values_supported"],
        serde_json::json!(["EdDSA", "RS256"]),
        "the signer's algorithm first, then every published one"
    );
    // Until the new key activates the old one signs, and what it signed is still accepted.
    let gateway = second.gateway.clone().unwrap();
    let rates = format!("{gateway}/api/rates");
    assert_eq!(
        common::status_of(&http, &rates, &issued).await,
        200,
        "{}",
        common::refused_as_invalid(&http, &rates, &issued).await
    );
    let fresh = common::client_token(&http, &second.base, &id, &secret).await;
    assert_eq!(header_of(&fresh)["alg"], "EdDSA");
    assert_eq!(common::terminate(second).code(), Some(0));

    // A restart with the same algorithm rotates nothing more.
    let third = serve(dir.path(), "RS256", port);
    let jwks = json(&http, &format!("{}/oauth2/jwks", third.base)).await;
    assert_eq!(jwks["keys"].as_array().unwrap().len(), 2, "{jwks}");
}

#[test]
fn an_unknown_algorithm_stops_the_start_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let output = common::gatehouse(
        &[
            "auth",
            "--auth-listen",
            "127.0.0.1:0",
            "--data-dir",
            dir.path().to_str().unwrap(),
        ],
        &[("GATEHOUSE_AUTH__SIGNING_ALGORITHM", "HS256")],
    )
    .output()
    .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.to_lowercase().contains("signing_algorithm") && stderr.contains("HS256"),
        "{stderr}"
    );
}
