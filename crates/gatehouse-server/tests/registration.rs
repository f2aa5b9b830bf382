//! Dynamic client registration (RFC 7591) and management (RFC 7592) over real HTTP.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use gatehouse_testkit::on_both_stores;

use common::{Backend, TestApp};
use gatehouse_core::Store;
use gatehouse_core::config::RegistrationMode;
use serde_json::{Value, json};
use sqlx::Row;

on_both_stores!(
    registration_returns_credentials_once_and_stores_only_hashes,
    registration_management_needs_the_registration_token,
    metadata_outside_policy_is_invalid_client_metadata,
    initial_access_token_mode_and_closed_mode,
    an_update_cannot_widen_what_the_client_holds,
    a_blocked_clients_registration_is_out_of_its_reach,
    self_registration_cannot_ask_to_introspect,
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

/// An operator's change to a client, through the admin API.
async fn admin_patch(app: &TestApp, admin: &str, id: &str, patch: Value) {
    let response = app
        .http
        .patch(app.url(&format!("/admin/clients/{id}")))
        .bearer_auth(admin)
        .json(&patch)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
}

async fn an_update_cannot_widen_what_the_client_holds(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let admin = app.admin_token().await;
    let (id, _, body) = app.register_client("rates:read fx:read").await;
    let uri = local(&app, &body["registration_client_uri"]);
    let rat = body["registration_access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let put = |metadata: Value| app.http.put(&uri).bearer_auth(&rat).json(&metadata).send();
    // An operator narrows the client.
    admin_patch(&app, &admin, &id, json!({"scope": "rates:read"})).await;
    let before = app.snapshot().await;

    for (metadata, named) in [
        // Back to what the registration policy allows: refused, the operator narrowed it.
        (
            json!({"client_id": id, "scope": "rates:read fx:read"}),
            "fx:read",
        ),
        (json!({"client_id": id, "scope": "fx:read"}), "fx:read"),
        // A grant type it does not hold, even one the token endpoint knows.
        (
            json!({"client_id": id, "grant_types": ["client_credentials", "refresh_token"]}),
            "refresh_token",
        ),
        (
            json!({"client_id": id, "scope": "introspect"}),
            "introspect",
        ),
    ] {
        let response = put(metadata.clone()).await.unwrap();
        assert_eq!(response.status(), 400, "{metadata}");
        let error: Value = response.json().await.unwrap();
        assert_eq!(error["error"], "invalid_client_metadata", "{metadata}");
        let description = error["error_description"].as_str().unwrap();
        assert!(description.contains(named), "{metadata}: {description}");
    }
    assert_eq!(
        app.snapshot().await,
        before,
        "refused updates change nothing"
    );

    // Naming no scope keeps the operator's; narrowing further is fine.
    let kept: Value = put(json!({"client_id": id, "client_name": "renamed"}))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(kept["scope"], "rates:read");
    assert_eq!(kept["grant_types"], json!(["client_credentials"]));
    let token: Value = app
        .client_credentials(&id, body["client_secret"].as_str().unwrap())
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(token["scope"], "rates:read");

    // What an operator granted beyond the policy may be kept by an update.
    admin_patch(&app, &admin, &id, json!({"scope": "rates:read orders"})).await;
    let kept: Value = put(json!({"client_id": id, "scope": "rates:read orders"}))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(kept["scope"], "orders rates:read");
}

async fn a_blocked_clients_registration_is_out_of_its_reach(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let admin = app.admin_token().await;
    let (id, _, body) = app.register_client("rates:read").await;
    let uri = local(&app, &body["registration_client_uri"]);
    let rat = body["registration_access_token"].as_str().unwrap();
    admin_patch(&app, &admin, &id, json!({"blocked": true})).await;
    let before = app.snapshot().await;

    let requests = [
        app.http.get(&uri).bearer_auth(rat),
        app.http
            .put(&uri)
            .bearer_auth(rat)
            .json(&json!({"client_id": id, "client_name": "innocent"})),
        app.http.delete(&uri).bearer_auth(rat),
    ];
    for request in requests {
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 401);
        assert!(
            response.headers()["www-authenticate"]
                .to_str()
                .unwrap()
                .contains(r#"error="invalid_token""#)
        );
        let error: Value = response.json().await.unwrap();
        assert_eq!(error["error"], "invalid_token");
    }
    assert_eq!(
        app.snapshot().await,
        before,
        "the block and the client remain"
    );
    let stored = app.store.client(&id).await.unwrap().unwrap();
    assert!(stored.blocked_at.is_some());
    assert_eq!(stored.name, "test client");

    // Unblocked, the registration is the client's again.
    admin_patch(&app, &admin, &id, json!({"blocked": false})).await;
    let read = app.http.get(&uri).bearer_auth(rat).send().await.unwrap();
    assert_eq!(read.status(), 200);
}

async fn self_registration_cannot_ask_to_introspect(backend: Backend) {
    // Even a policy that lists the scope does not hand it out.
    let app = TestApp::spawn_with(backend, |c| {
        c.registration.allowed_scopes.push("introspect".into());
    })
    .await;
    let before = app.snapshot().await;
    for scope in ["introspect", "rates:read introspect"] {
        let response = app
            .http
            .post(app.url("/oauth2/register"))
            .json(&json!({"scope": scope}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 400, "{scope}");
        let error: Value = response.json().await.unwrap();
        assert_eq!(error["error"], "invalid_client_metadata");
        assert!(
            error["error_description"]
                .as_str()
                .unwrap()
                .contains("introspect")
        );
    }
    assert_eq!(app.snapshot().await, before);
    let defaulted = app
        .http
        .post(app.url("/oauth2/register"))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(defaulted.status(), 201);
    let body: Value = defaulted.json().await.unwrap();
    assert_eq!(body["scope"], "fx:read rates:read");
}
