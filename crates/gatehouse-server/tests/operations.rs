//! Discovery, keys, health, metrics and the generated API document over real HTTP.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use gatehouse_testkit::on_both_stores;

use common::{Backend, TestApp};
use serde_json::Value;

on_both_stores!(
    discovery_documents_list_every_endpoint,
    jwks_publishes_public_keys_only,
    health_readiness_and_metrics,
    openapi_document_is_generated_and_docs_are_served,
    unknown_routes_and_methods_get_problem_bodies,
);

async fn get_json(app: &TestApp, path: &str) -> Value {
    let response = app.http.get(app.url(path)).send().await.unwrap();
    assert_eq!(response.status(), 200, "{path}");
    response.json().await.unwrap()
}

async fn discovery_documents_list_every_endpoint(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let oauth = get_json(&app, "/.well-known/oauth-authorization-server").await;
    let oidc = get_json(&app, "/.well-known/openid-configuration").await;
    assert_eq!(oauth, oidc);
    let issuer = &app.config.issuer;
    assert_eq!(oauth["issuer"], *issuer);
    assert_eq!(oauth["token_endpoint"], format!("{issuer}/oauth2/token"));
    assert_eq!(oauth["jwks_uri"], format!("{issuer}/oauth2/jwks"));
    assert_eq!(
        oauth["registration_endpoint"],
        format!("{issuer}/oauth2/register")
    );
    assert_eq!(
        oauth["revocation_endpoint"],
        format!("{issuer}/oauth2/revoke")
    );
    assert_eq!(
        oauth["introspection_endpoint"],
        format!("{issuer}/oauth2/introspect")
    );
    assert_eq!(
        oauth["revocation_feed_endpoint"],
        format!("{issuer}/oauth2/revocations")
    );
    let list = |key: &str| -> Vec<String> {
        oauth[key]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(
        list("grant_types_supported"),
        [
            "authorization_code",
            "client_credentials",
            "password",
            "refresh_token"
        ]
    );
    assert_eq!(
        list("token_endpoint_auth_methods_supported"),
        ["client_secret_basic", "client_secret_post", "none"]
    );
    assert_eq!(list("access_token_signing_alg_values_supported"), ["EdDSA"]);
    for scope in ["rates:read", "fx:read", "fx:write", "orders", "posts"] {
        assert!(
            list("scopes_supported").contains(&scope.to_owned()),
            "{scope}"
        );
    }
    // Every advertised endpoint answers on this server.
    for key in [
        "token_endpoint",
        "jwks_uri",
        "registration_endpoint",
        "revocation_endpoint",
        "introspection_endpoint",
    ] {
        let url = oauth[key].as_str().unwrap().replace(issuer, &app.base);
        let status = app.http.get(&url).send().await.unwrap().status();
        assert_ne!(status, 404, "{key}");
    }
}

async fn jwks_publishes_public_keys_only(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let response = app.http.get(app.url("/oauth2/jwks")).send().await.unwrap();
    assert_eq!(
        response.headers()["content-type"],
        "application/jwk-set+json"
    );
    let set: Value = response.json().await.unwrap();
    let keys = set["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 1);
    let key = &keys[0];
    assert_eq!(key["kty"], "OKP");
    assert_eq!(key["crv"], "Ed25519");
    assert_eq!(key["alg"], "EdDSA");
    assert_eq!(key["use"], "sig");
    assert!(key["kid"].as_str().is_some_and(|k| !k.is_empty()));
    assert!(key.get("d").is_none(), "never the private part");
    assert_eq!(key["kid"], app.server_signing_key().await.kid());
}

async fn health_readiness_and_metrics(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    assert_eq!(get_json(&app, "/healthz").await["status"], "ok");
    assert_eq!(get_json(&app, "/readyz").await["status"], "ready");
    let (id, secret, _) = app.register_client("rates:read").await;
    let issued = app.client_credentials(&id, &secret).await;
    assert_eq!(issued.status(), 200);
    // Methods a caller invents are counted together, not as new series each.
    for invented in ["FOO1", "FOO2"] {
        let method = reqwest::Method::from_bytes(invented.as_bytes()).unwrap();
        let answer = app.http.request(method, app.url("/healthz")).send().await;
        assert_eq!(answer.unwrap().status(), 405);
    }
    // The figures are for the operator's scraper only.
    for refused in [
        app.http.get(app.url("/metrics")),
        app.http
            .get(app.url("/metrics"))
            .bearer_auth("test-metrics-token-5c2"),
        app.http
            .get(app.url("/metrics"))
            .basic_auth(&id, Some(&secret)),
    ] {
        let refused = refused.send().await.unwrap();
        assert_eq!(refused.status(), 401);
        assert_eq!(
            refused.headers()["content-type"],
            "application/problem+json"
        );
        assert!(refused.headers().contains_key("www-authenticate"));
    }
    let text = app
        .http
        .get(app.url("/metrics"))
        .bearer_auth(common::METRICS_TOKEN)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        text.contains(r#"gatehouse_tokens_issued_total{grant="client_credentials"}"#),
        "{text}"
    );
    assert!(text.contains("gatehouse_http_requests_total{"));
    assert!(text.contains(r#"route="/oauth2/token""#));
    assert!(
        text.contains(r#"method="other",route="/healthz",status="405""#),
        "{text}"
    );
    assert!(!text.contains("FOO1") && !text.contains("FOO2"), "{text}");
    assert!(text.contains("gatehouse_http_request_duration_seconds_bucket{"));

    // With the store gone, readiness says so and liveness does not care.
    app.store.close().await;
    let not_ready = app.http.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(not_ready.status(), 503);
    assert_eq!(
        not_ready.headers()["content-type"],
        "application/problem+json"
    );
    assert_eq!(get_json(&app, "/healthz").await["status"], "ok");
}

async fn openapi_document_is_generated_and_docs_are_served(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let doc = get_json(&app, "/openapi.json").await;
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
    let paths = doc["paths"].as_object().unwrap();
    for path in [
        "/.well-known/oauth-authorization-server",
        "/.well-known/openid-configuration",
        "/oauth2/jwks",
        "/oauth2/token",
        "/oauth2/register",
        "/oauth2/register/{client_id}",
        "/users",
        "/users/me",
        "/users/me/password",
        "/healthz",
        "/readyz",
        "/metrics",
        "/oauth2/revoke",
        "/oauth2/introspect",
        "/oauth2/revocations",
        "/admin/clients",
        "/admin/clients/{id}",
        "/admin/clients/{id}/rotate-secret",
        "/admin/users",
        "/admin/users/{id}",
        "/admin/roles",
        "/admin/roles/{name}",
        "/admin/sessions",
        "/admin/sessions/{id}",
        "/admin/revoke-all",
        "/admin/keys",
        "/admin/keys/rotate",
        "/admin/audit",
    ] {
        assert!(
            paths.contains_key(path),
            "{path} missing from the OpenAPI document"
        );
    }
    assert!(doc["components"]["schemas"]["TokenResponse"].is_object());
    let docs = app.http.get(app.url("/docs/")).send().await.unwrap();
    assert_eq!(docs.status(), 200);
    assert!(docs.text().await.unwrap().contains("swagger"));
}

async fn unknown_routes_and_methods_get_problem_bodies(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let missing = app.http.get(app.url("/nope")).send().await.unwrap();
    assert_eq!(missing.status(), 404);
    assert_eq!(
        missing.headers()["content-type"],
        "application/problem+json"
    );
    let wrong = app.http.post(app.url("/users/me")).send().await.unwrap();
    assert_eq!(wrong.status(), 405);
    assert_eq!(wrong.headers()["content-type"], "application/problem+json");
    assert!(wrong.headers().contains_key("allow"));
}
