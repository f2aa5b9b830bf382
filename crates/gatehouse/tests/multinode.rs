//! Two real `gatehouse auth` processes on one PostgreSQL: a change made through one is honoured by
//! the other within a second.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use serde_json::{Value, json};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocks_revocations_and_key_rotations_reach_the_other_node_within_a_second() {
    let Some(server) = gatehouse_testkit::postgres_url() else {
        return;
    };
    let url = common::fresh_database(&server, "gh_multinode").await;
    let kek = "11".repeat(32);
    let env = [
        ("GATEHOUSE_KEK", kek.as_str()),
        ("GATEHOUSE_ADMIN_USERNAME", "root"),
        ("GATEHOUSE_ADMIN_PASSWORD", "root-password-1"),
        // The cache would hide a missed change for this long; far beyond the test.
        ("GATEHOUSE_AUTH__CLIENT_CACHE_TTL_SECS", "3600"),
        ("GATEHOUSE_AUTH__KEY_ACTIVATION_DELAY_SECS", "3600"),
        // Nodes behind one name share an issuer.
        ("GATEHOUSE_ISSUER", "https://auth.gatehouse.test"),
    ];
    let a = common::start(&["auth", "--database-url", &url], &env);
    let b = common::start(&["auth", "--database-url", &url], &env);
    let http = reqwest::Client::new();

    let registered: Value = http
        .post(format!("{}/oauth2/register", a.base))
        .json(&json!({"client_name": "svc"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let (id, secret) = (
        registered["client_id"].as_str().unwrap().to_owned(),
        registered["client_secret"].as_str().unwrap().to_owned(),
    );
    let token_from = |base: String| {
        let (http, id, secret) = (http.clone(), id.clone(), secret.clone());
        async move {
            http.post(format!("{base}/oauth2/token"))
                .basic_auth(&id, Some(&secret))
                .form(&[("grant_type", "client_credentials")])
                .send()
                .await
                .unwrap()
        }
    };
    // B caches the client now.
    assert_eq!(token_from(b.base.clone()).await.status(), 200);

    let login: Value = http
        .post(format!("{}/oauth2/token", a.base))
        .form(&[
            ("grant_type", "password"),
            ("client_id", "gatehouse-web"),
            ("username", "root"),
            ("password", "root-password-1"),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let admin = login["access_token"].as_str().unwrap().to_owned();

    // Block through A; B refuses the client within a second.
    let blocked = http
        .patch(format!("{}/admin/clients/{id}", a.base))
        .bearer_auth(&admin)
        .json(&json!({"blocked": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(blocked.status(), 200);
    common::within_a_second("a block reaching node B", || async {
        token_from(b.base.clone()).await.status() == 401
    })
    .await;

    // Rotate the key through A; B publishes it within a second.
    let rotated: Value = http
        .post(format!("{}/admin/keys/rotate", a.base))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let kid = rotated["kid"].as_str().unwrap().to_owned();
    common::within_a_second("a key rotation reaching node B", || async {
        common::published_kids(&http, &b.base).await.contains(&kid)
    })
    .await;

    // Revoke a token through A; B refuses it within a second.
    let user_token = login["access_token"].as_str().unwrap();
    let me_on_b = || async {
        http.get(format!("{}/users/me", b.base))
            .bearer_auth(user_token)
            .send()
            .await
            .unwrap()
            .status()
    };
    assert_eq!(me_on_b().await, 200);
    let revoked = http
        .post(format!("{}/oauth2/revoke", a.base))
        .form(&[("client_id", "gatehouse-web"), ("token", user_token)])
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status(), 200);
    common::within_a_second("a revocation reaching node B", || async {
        me_on_b().await == 401
    })
    .await;

    assert!(common::terminate(a).success());
    assert!(common::terminate(b).success());
}
