//! Dynamic client registration (RFC 7591) and management (RFC 7592) over real HTTP.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use gatehouse_testkit::on_both_stores;

use common::{Backend, TestApp};
use gatehouse_core::config::RegistrationMode;
use serde_json::{Value, json};
use sqlx::Row;

on_both_stores!(
    registration_returns_credentials_once_and_stores_only_hashes,
    registration_management_needs_the_registration_token,
    metadata_outside_policy_is_invalid_client_metadata,
    initial_access_token_mode_and_closed_mode,
);

fn local(app: &TestApp, uri: &Value) -> String {
    uri.as_str().unwrap().replace(&app.config.issuer, &app.base)
}

async fn registration_returns_credentials_once_and_stores_only_hashes(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let response = app
        .http
        .post(app.url("/oauth2/register"))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    assert_eq!(response.headers()["cache-control"], "no-store");
    let body: Value = response.json().await.unwrap();
    let id = body["client_id"].as_str().unwrap();
    let secret = body["client_secret"].as_str().unwrap();
    assert_eq!(secret.len(), 43, "256 bits, base64url");
    assert_eq!(body["client_secret_expires_at"], 0);
    assert_eq!(body["grant_types"], json!(["client_credentials"]));
    assert_eq!(
        body["scope"], "fx:read rates:read",
        "all the registration policy allows"
    );
    assert_eq!(body["token_endpoint_auth_method"], "client_secret_basic");
    assert_eq!(
        body["registration_client_uri"],
        format!("{}/oauth2/register/{id}", app.config.issuer)
    );
    assert!(body["registration_access_token"].as_str().unwrap().len() >= 43);

    let row = sqlx::query("SELECT secret_hash, registration_token_hash FROM clients WHERE id = $1")
        .bind(id)
        .fetch_one(app.store.pool())
        .await
        .unwrap();
    let stored: String = row.get("secret_hash");
    assert_ne!(stored, secret);
    assert_eq!(stored, gatehouse_core::secret::hash_secret(secret));
    let stored_rat: String = row.get("registration_token_hash");
    assert_ne!(
        stored_rat,
        body["registration_access_token"].as_str().unwrap()
    );

    let read: Value = app
        .http
        .get(local(&app, &body["registration_client_uri"]))
        .bearer_auth(body["registration_access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(read["client_id"], id);
    assert!(
        read.get("client_secret").is_none(),
        "the secret is shown once"
    );
}

async fn registration_management_needs_the_registration_token(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (id, secret, body) = app.register_client("rates:read fx:read").await;
    let uri = local(&app, &body["registration_client_uri"]);
    let rat = body["registration_access_token"].as_str().unwrap();
    let before = app.snapshot().await;

    for token in [None, Some("wrong-token"), Some(secret.as_str())] {
        let mut request = app.http.get(&uri);
        if let Some(t) = token {
            request = request.bearer_auth(t);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 401, "token {token:?}");
        assert!(
            response.headers()["www-authenticate"]
                .to_str()
                .unwrap()
                .contains(r#"error="invalid_token""#)
        );
    }
    // Another client's id with this client's token: the same 401, nothing revealed.
    let other = app
        .http
        .get(app.url("/oauth2/register/gatehouse-web"))
        .bearer_auth(rat)
        .send()
        .await
        .unwrap();
    assert_eq!(other.status(), 401);

    let mismatched = app
        .http
        .put(&uri)
        .bearer_auth(rat)
        .json(&json!({"client_id": "someone-else", "client_name": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(mismatched.status(), 400);
    assert_eq!(app.snapshot().await, before);

    // Narrow the scope; the next token follows at once (the cached client is forgotten).
    let get_token = || async {
        app.client_credentials(&id, &secret)
            .await
            .json::<Value>()
            .await
            .unwrap()
    };
    assert_eq!(get_token().await["scope"], "fx:read rates:read");
    let updated = app
        .http
        .put(&uri)
        .bearer_auth(rat)
        .json(&json!({"client_id": id, "client_name": "renamed", "scope": "rates:read"}))
        .send()
        .await
        .unwrap();
    assert_eq!(updated.status(), 200);
    let updated: Value = updated.json().await.unwrap();
    assert_eq!(updated["client_name"], "renamed");
    assert_eq!(updated["scope"], "rates:read");
    assert_eq!(get_token().await["scope"], "rates:read");

    let deleted = app.http.delete(&uri).bearer_auth(rat).send().await.unwrap();
    assert_eq!(deleted.status(), 204);
    let gone = app.http.get(&uri).bearer_auth(rat).send().await.unwrap();
    assert_eq!(gone.status(), 401);
}

async fn metadata_outside_policy_is_invalid_client_metadata(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let before = app.snapshot().await;
    let cases = [
        json!({"scope": "rates:read admin"}),
        json!({"grant_types": ["password"]}),
        json!({"grant_types": ["authorization_code"]}),
        json!({"grant_types": []}),
        json!({"token_endpoint_auth_method": "none"}),
        json!({"token_endpoint_auth_method": "private_key_jwt"}),
        json!({"client_name": ""}),
        json!({"client_name": "x".repeat(201)}),
        json!({"scope": "bad\\scope"}),
        json!({"grant_types": "client_credentials"}),
    ];
    for case in cases {
        let response = app
            .http
            .post(app.url("/oauth2/register"))
            .json(&case)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 400, "{case}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"], "invalid_client_metadata", "{case}");
    }
    let not_json = app
        .http
        .post(app.url("/oauth2/register"))
        .header("content-type", "application/json")
        .body("{nope")
        .send()
        .await
        .unwrap();
    assert_eq!(not_json.status(), 400);
    assert_eq!(
        not_json.json::<Value>().await.unwrap()["error"],
        "invalid_client_metadata"
    );
    let form = app
        .http
        .post(app.url("/oauth2/register"))
        .form(&[("client_name", "x")])
        .send()
        .await
        .unwrap();
    assert_eq!(form.status(), 400);
    assert_eq!(
        form.json::<Value>().await.unwrap()["error"],
        "invalid_request"
    );
    let huge = app
        .http
        .post(app.url("/oauth2/register"))
        .header("content-type", "application/json")
        .body(format!(
            "{{\"client_name\":\"{}\"}}",
            "x".repeat(100 * 1024)
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(huge.status(), 413);
    assert_eq!(
        huge.json::<Value>().await.unwrap()["error"],
        "invalid_request"
    );
    assert_eq!(app.snapshot().await, before);
}

async fn initial_access_token_mode_and_closed_mode(backend: Backend) {
    let guarded = TestApp::spawn_with(backend, |c| {
        c.registration.mode = RegistrationMode::InitialAccessToken;
        c.registration.initial_access_token = Some("let-me-in-please".into());
    })
    .await;
    let register = |app: &TestApp, token: Option<&'static str>| {
        let mut request = app.http.post(app.url("/oauth2/register")).json(&json!({}));
        if let Some(t) = token {
            request = request.bearer_auth(t);
        }
        request.send()
    };
    let before = guarded.snapshot().await;
    assert_eq!(register(&guarded, None).await.unwrap().status(), 401);
    assert_eq!(
        register(&guarded, Some("let-me-in"))
            .await
            .unwrap()
            .status(),
        401
    );
    assert_eq!(guarded.snapshot().await, before);
    assert_eq!(
        register(&guarded, Some("let-me-in-please"))
            .await
            .unwrap()
            .status(),
        201
    );

    let closed =
        TestApp::spawn_with(backend, |c| c.registration.mode = RegistrationMode::Closed).await;
    let refused = register(&closed, None).await.unwrap();
    assert_eq!(refused.status(), 403);
    assert_eq!(
        refused.json::<Value>().await.unwrap()["error"],
        "access_denied"
    );
}
