//! Clients for the authorization code flow, made and changed through self-registration (RFC 7591
//! and RFC 7592) and the admin API: redirect URIs, public clients, consent.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use gatehouse_testkit::on_both_stores;

use common::{Backend, TestApp};
use gatehouse_core::Store;
use reqwest::Method;
use serde_json::{Value, json};

on_both_stores!(
    a_public_code_client_registers_and_its_metadata_is_echoed,
    registration_updates_keep_redirect_uris_valid,
    bad_redirect_uris_are_invalid_redirect_uri_and_store_nothing,
    metadata_that_does_not_fit_the_code_flow_is_refused,
    the_code_flow_needs_the_registration_policy_to_allow_it,
    admin_clients_carry_redirect_uris_and_consent,
    bad_admin_redirect_uris_name_the_field_and_store_nothing,
);

const REDIRECTS: [&str; 3] = [
    "https://app.example/callback",
    "http://127.0.0.1/callback",
    "com.example.app:/oauth2redirect",
];

fn local(app: &TestApp, uri: &Value) -> String {
    uri.as_str().unwrap().replace(&app.config.issuer, &app.base)
}

async fn register(app: &TestApp, body: &Value) -> reqwest::Response {
    app.http
        .post(app.url("/oauth2/register"))
        .json(body)
        .send()
        .await
        .unwrap()
}

/// The OAuth error of a refused request: asserts the status, returns (error, description).
async fn oauth_error(response: reqwest::Response, status: u16) -> (String, String) {
    let got = response.status().as_u16();
    let text = response.text().await.unwrap();
    assert_eq!(got, status, "{text}");
    let body: Value = serde_json::from_str(&text).unwrap();
    (
        body["error"].as_str().unwrap().to_owned(),
        body["error_description"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
    )
}

async fn call(
    app: &TestApp,
    token: &str,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> reqwest::Response {
    let mut request = app.http.request(method, app.url(path)).bearer_auth(token);
    if let Some(body) = body {
        request = request.json(&body);
    }
    request.send().await.unwrap()
}

async fn json_of(response: reqwest::Response, status: u16) -> Value {
    let got = response.status().as_u16();
    let text = response.text().await.unwrap();
    assert_eq!(got, status, "{text}");
    serde_json::from_str(&text).unwrap()
}

async fn a_public_code_client_registers_and_its_metadata_is_echoed(backend: Backend) {
    let app = spawn_allowing_code_flow(backend).await;
    let response = register(
        &app,
        &json!({
            "client_name": "phone app",
            "grant_types": ["authorization_code", "refresh_token"],
            "response_types": ["code"],
            "token_endpoint_auth_method": "none",
            "redirect_uris": REDIRECTS,
            "post_logout_redirect_uris": ["https://app.example/signed-out"],
            "scope": "openid profile rates:read",
        }),
    )
    .await;
    assert_eq!(response.status(), 201);
    let body: Value = response.json().await.unwrap();
    let id = body["client_id"].as_str().unwrap().to_owned();
    assert!(
        body.get("client_secret").is_none() && body.get("client_secret_expires_at").is_none(),
        "a public client gets no secret: {body}"
    );
    assert!(body["registration_access_token"].as_str().unwrap().len() >= 43);
    assert_eq!(body["token_endpoint_auth_method"], "none");
    assert_eq!(
        body["grant_types"],
        json!(["authorization_code", "refresh_token"])
    );
    assert_eq!(body["response_types"], json!(["code"]));
    assert_eq!(body["redirect_uris"], json!(REDIRECTS));
    assert_eq!(
        body["post_logout_redirect_uris"],
        json!(["https://app.example/signed-out"])
    );
    assert_eq!(body["scope"], "openid profile rates:read");

    // RFC 7592 reads the same metadata back.
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
    for field in [
        "client_id",
        "grant_types",
        "response_types",
        "redirect_uris",
        "post_logout_redirect_uris",
        "token_endpoint_auth_method",
        "scope",
    ] {
        assert_eq!(read[field], body[field], "{field}");
    }

    // As stored: public, asked for consent, limited to scopes (never "whatever the user has").
    let stored = app.store.client(&id).await.unwrap().unwrap();
    assert_eq!(stored.secret_hash, None);
    assert!(stored.is_public());
    assert!(!stored.skip_consent);
    assert_eq!(stored.redirect_uris, REDIRECTS);
    assert_eq!(
        stored.post_logout_redirect_uris,
        ["https://app.example/signed-out"]
    );
    assert_eq!(
        stored.scopes.map(|s| s.to_string()).as_deref(),
        Some("openid profile rates:read")
    );

    // A public client has no credentials to use client_credentials with.
    let (error, _) = oauth_error(
        app.token(&[
            ("grant_type", "client_credentials"),
            ("client_id", id.as_str()),
        ])
        .await,
        400,
    )
    .await;
    assert_eq!(error, "unauthorized_client");

    // Omitted grant types with redirect URIs mean the code flow (RFC 7591 §2); a confidential
    // code client gets a secret.
    let confidential = register(
        &app,
        &json!({"redirect_uris": ["https://web.example/cb"], "scope": "fx:read"}),
    )
    .await;
    assert_eq!(confidential.status(), 201);
    let confidential: Value = confidential.json().await.unwrap();
    assert_eq!(confidential["grant_types"], json!(["authorization_code"]));
    assert_eq!(confidential["response_types"], json!(["code"]));
    assert_eq!(confidential["client_secret"].as_str().unwrap().len(), 43);
    assert_eq!(confidential["client_secret_expires_at"], 0);

    // A machine client says so too: no response types, no redirect URIs.
    let (_, _, machine) = app.register_client("rates:read").await;
    assert_eq!(machine["response_types"], json!([]));
    assert_eq!(machine["redirect_uris"], json!([]));
    assert_eq!(machine["post_logout_redirect_uris"], json!([]));
}

async fn registration_updates_keep_redirect_uris_valid(backend: Backend) {
    let app = spawn_allowing_code_flow(backend).await;
    let body: Value = register(
        &app,
        &json!({
            "grant_types": ["authorization_code", "refresh_token"],
            "token_endpoint_auth_method": "none",
            "redirect_uris": ["https://app.example/cb"],
        }),
    )
    .await
    .json()
    .await
    .unwrap();
    let id = body["client_id"].as_str().unwrap().to_owned();
    let uri = local(&app, &body["registration_client_uri"]);
    let rat = body["registration_access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let put = |metadata: Value| app.http.put(&uri).bearer_auth(&rat).json(&metadata).send();

    let updated = put(json!({
        "client_id": id,
        "grant_types": ["authorization_code", "refresh_token"],
        "token_endpoint_auth_method": "none",
        "redirect_uris": ["https://app.example/cb2", "https://app.example/cb2"],
        "post_logout_redirect_uris": ["https://app.example/bye"],
    }))
    .await
    .unwrap();
    assert_eq!(updated.status(), 200);
    let updated: Value = updated.json().await.unwrap();
    assert_eq!(
        updated["redirect_uris"],
        json!(["https://app.example/cb2"]),
        "each kept once"
    );
    assert_eq!(
        updated["post_logout_redirect_uris"],
        json!(["https://app.example/bye"])
    );
    let stored = app.store.client(&id).await.unwrap().unwrap();
    assert_eq!(stored.redirect_uris, ["https://app.example/cb2"]);
    assert!(!stored.skip_consent);

    let before = app.snapshot().await;
    let bad = put(json!({
        "client_id": id,
        "grant_types": ["authorization_code"],
        "token_endpoint_auth_method": "none",
        "redirect_uris": ["http://app.example/cb"],
    }))
    .await
    .unwrap();
    let (error, description) = oauth_error(bad, 400).await;
    assert_eq!(error, "invalid_redirect_uri");
    assert!(
        description.contains("http://app.example/cb"),
        "{description}"
    );
    // A public client cannot turn confidential (it has no secret), nor drop its redirect URIs.
    for metadata in [
        json!({"client_id": id, "grant_types": ["authorization_code"],
               "redirect_uris": ["https://app.example/cb"]}),
        json!({"client_id": id, "grant_types": ["authorization_code"],
               "token_endpoint_auth_method": "client_secret_post",
               "redirect_uris": ["https://app.example/cb"]}),
    ] {
        let (error, description) = oauth_error(put(metadata).await.unwrap(), 400).await;
        assert_eq!(error, "invalid_client_metadata");
        assert!(
            description.contains("token_endpoint_auth_method"),
            "{description}"
        );
    }
    let (error, _) = oauth_error(
        put(
            json!({"client_id": id, "grant_types": ["authorization_code"],
                   "token_endpoint_auth_method": "none"}),
        )
        .await
        .unwrap(),
        400,
    )
    .await;
    assert_eq!(error, "invalid_redirect_uri");
    assert_eq!(app.snapshot().await, before);
}

async fn bad_redirect_uris_are_invalid_redirect_uri_and_store_nothing(backend: Backend) {
    let app = spawn_allowing_code_flow(backend).await;
    let before = app.snapshot().await;
    let code_client = |uris: Value| {
        json!({
            "grant_types": ["authorization_code"],
            "token_endpoint_auth_method": "none",
            "redirect_uris": uris,
        })
    };
    // (redirect URI, what the description must say besides naming it)
    let cases = [
        ("http://app.example/cb", "loopback"),
        ("https://app.example/cb#done", "fragment"),
        ("javascript:alert(1)", "scheme"),
        ("/relative/cb", "absolute"),
        ("HTTPS://APP.example/cb", "normal form"),
    ];
    for (bad, why) in cases {
        let body = code_client(json!(["https://app.example/good", bad]));
        let (error, description) = oauth_error(register(&app, &body).await, 400).await;
        assert_eq!(error, "invalid_redirect_uri", "{bad}");
        assert!(
            description.contains(&format!("{bad:?}")) && description.contains(why),
            "{bad}: {description}"
        );
    }
    let eleven: Vec<String> = (0..11)
        .map(|i| format!("https://app.example/cb{i}"))
        .collect();
    let (error, description) =
        oauth_error(register(&app, &code_client(json!(eleven))).await, 400).await;
    assert_eq!(error, "invalid_redirect_uri");
    assert!(description.contains("at most 10"), "{description}");

    // The code flow without anywhere to send people back.
    for body in [
        json!({"grant_types": ["authorization_code"]}),
        code_client(json!([])),
        json!({"grant_types": ["authorization_code", "refresh_token"], "redirect_uris": null}),
    ] {
        let (error, description) = oauth_error(register(&app, &body).await, 400).await;
        assert_eq!(error, "invalid_redirect_uri", "{body}");
        assert!(description.contains("redirect"), "{description}");
    }
    assert_eq!(app.snapshot().await, before);
}

async fn metadata_that_does_not_fit_the_code_flow_is_refused(backend: Backend) {
    let app = spawn_allowing_code_flow(backend).await;
    let before = app.snapshot().await;
    let code = json!(["authorization_code"]);
    let redirect = json!(["https://app.example/cb"]);
    let cases = [
        // Response types other than code, or code without the grant that uses it.
        json!({"grant_types": code, "redirect_uris": redirect, "response_types": ["token"]}),
        json!({"grant_types": code, "redirect_uris": redirect,
               "response_types": ["code", "id_token"]}),
        json!({"grant_types": code, "redirect_uris": redirect, "response_types": []}),
        json!({"grant_types": ["client_credentials"], "response_types": ["code"]}),
        json!({"response_types": ["code"]}),
        // A public client has no credentials for client_credentials, whatever else it has.
        json!({"token_endpoint_auth_method": "none"}),
        json!({"token_endpoint_auth_method": "none", "redirect_uris": redirect,
               "grant_types": ["authorization_code", "client_credentials"]}),
        // Redirect URIs that would never be used.
        json!({"grant_types": ["client_credentials"], "redirect_uris": redirect}),
        json!({"post_logout_redirect_uris": ["https://app.example/bye"]}),
        // refresh_token refreshes what a grant for a person issued.
        json!({"grant_types": ["refresh_token"]}),
        json!({"grant_types": ["client_credentials", "refresh_token"]}),
        // Identity scopes are for the code flow; other scopes stay within the policy.
        json!({"scope": "openid rates:read"}),
        json!({"grant_types": code, "redirect_uris": redirect, "scope": "openid admin"}),
        json!({"token_endpoint_auth_method": "private_key_jwt"}),
    ];
    for case in cases {
        let (error, description) = oauth_error(register(&app, &case).await, 400).await;
        assert_eq!(error, "invalid_client_metadata", "{case}: {description}");
    }
    let (error, description) = oauth_error(
        register(
            &app,
            &json!({"grant_types": code, "redirect_uris": redirect,
                    "post_logout_redirect_uris": ["http://app.example/bye"]}),
        )
        .await,
        400,
    )
    .await;
    assert_eq!(error, "invalid_client_metadata");
    assert!(
        description.contains("post_logout_redirect_uris")
            && description.contains("\"http://app.example/bye\""),
        "{description}"
    );
    assert_eq!(app.snapshot().await, before);
}

async fn the_code_flow_needs_the_registration_policy_to_allow_it(backend: Backend) {
    let app = TestApp::spawn_with(backend, |c| {
        c.registration.allowed_grant_types = vec!["client_credentials".into()];
    })
    .await;
    let before = app.snapshot().await;
    let (error, description) = oauth_error(
        register(
            &app,
            &json!({"grant_types": ["authorization_code"],
                    "redirect_uris": ["https://app.example/cb"]}),
        )
        .await,
        400,
    )
    .await;
    assert_eq!(error, "invalid_client_metadata");
    assert!(description.contains("authorization_code"), "{description}");
    assert_eq!(app.snapshot().await, before);
}

async fn admin_clients_carry_redirect_uris_and_consent(backend: Backend) {
    let app = spawn_allowing_code_flow(backend).await;
    let admin = app.admin_token().await;
    let created = json_of(
        call(
            &app,
            &admin,
            Method::POST,
            "/admin/clients",
            Some(json!({
                "name": "dashboard",
                "grant_types": ["authorization_code", "refresh_token"],
                "token_endpoint_auth_method": "none",
                "redirect_uris": REDIRECTS,
                "post_logout_redirect_uris": ["https://app.example/bye"],
                "skip_consent": true,
            })),
        )
        .await,
        201,
    )
    .await;
    let id = created["client_id"].as_str().unwrap().to_owned();
    assert_eq!(created["client_secret"], Value::Null, "a public client");
    assert_eq!(created["redirect_uris"], json!(REDIRECTS));
    assert_eq!(
        created["post_logout_redirect_uris"],
        json!(["https://app.example/bye"])
    );
    assert_eq!(created["skip_consent"], true);
    let path = format!("/admin/clients/{id}");
    let fetched = json_of(call(&app, &admin, Method::GET, &path, None).await, 200).await;
    assert_eq!(fetched["redirect_uris"], json!(REDIRECTS));
    assert_eq!(fetched["skip_consent"], true);
    let stored = app.store.client(&id).await.unwrap().unwrap();
    assert!(stored.skip_consent && stored.is_public());
    assert_eq!(stored.redirect_uris, REDIRECTS);

    let patched = json_of(
        call(
            &app,
            &admin,
            Method::PATCH,
            &path,
            Some(json!({
                "redirect_uris": ["https://app.example/new", "https://app.example/new"],
                "post_logout_redirect_uris": [],
                "skip_consent": false,
            })),
        )
        .await,
        200,
    )
    .await;
    assert_eq!(patched["redirect_uris"], json!(["https://app.example/new"]));
    assert_eq!(patched["post_logout_redirect_uris"], json!([]));
    assert_eq!(patched["skip_consent"], false);
    let fetched = json_of(call(&app, &admin, Method::GET, &path, None).await, 200).await;
    assert_eq!(fetched, patched);
    let stored = app.store.client(&id).await.unwrap().unwrap();
    assert_eq!(stored.redirect_uris, ["https://app.example/new"]);
    assert!(stored.post_logout_redirect_uris.is_empty());
    assert!(!stored.skip_consent);
    // Only what was named changed.
    assert_eq!(
        stored.grant_types,
        [
            gatehouse_core::GrantType::AuthorizationCode,
            gatehouse_core::GrantType::RefreshToken
        ]
    );

    // Omitted grant types with redirect URIs mean the code flow; a confidential one gets a secret.
    let defaulted = json_of(
        call(
            &app,
            &admin,
            Method::POST,
            "/admin/clients",
            Some(json!({"name": "portal", "redirect_uris": ["https://portal.example/cb"]})),
        )
        .await,
        201,
    )
    .await;
    assert_eq!(defaulted["grant_types"], json!(["authorization_code"]));
    assert_eq!(defaulted["skip_consent"], false);
    assert!(defaulted["client_secret"].as_str().is_some());

    // A self-registered client is never first-party.
    let registered: Value = register(
        &app,
        &json!({"redirect_uris": ["https://third.example/cb"], "token_endpoint_auth_method": "none"}),
    )
    .await
    .json()
    .await
    .unwrap();
    let registered_id = registered["client_id"].as_str().unwrap();
    let view = json_of(
        call(
            &app,
            &admin,
            Method::GET,
            &format!("/admin/clients/{registered_id}"),
            None,
        )
        .await,
        200,
    )
    .await;
    assert_eq!(view["self_registered"], true);
    assert_eq!(view["skip_consent"], false);
    assert_eq!(view["scopes"], "fx:read rates:read", "never unlimited");
    let before = app.snapshot().await;
    let refused = json_of(
        call(
            &app,
            &admin,
            Method::PATCH,
            &format!("/admin/clients/{registered_id}"),
            Some(json!({"skip_consent": true})),
        )
        .await,
        422,
    )
    .await;
    assert_eq!(refused["errors"][0]["field"], "skip_consent");
    assert_eq!(app.snapshot().await, before);
}

async fn bad_admin_redirect_uris_name_the_field_and_store_nothing(backend: Backend) {
    let app = spawn_allowing_code_flow(backend).await;
    let admin = app.admin_token().await;
    let code_client = json_of(
        call(
            &app,
            &admin,
            Method::POST,
            "/admin/clients",
            Some(json!({"name": "app", "grant_types": ["authorization_code"],
                        "redirect_uris": ["https://app.example/cb"]})),
        )
        .await,
        201,
    )
    .await;
    let code_path = format!(
        "/admin/clients/{}",
        code_client["client_id"].as_str().unwrap()
    );
    let machine = json_of(
        call(
            &app,
            &admin,
            Method::POST,
            "/admin/clients",
            Some(json!({"name": "machine", "scope": "rates:read"})),
        )
        .await,
        201,
    )
    .await;
    let machine_path = format!("/admin/clients/{}", machine["client_id"].as_str().unwrap());
    let before = app.snapshot().await;

    // (method, path, body, the field at fault, what its detail must contain)
    let cases = [
        (
            Method::POST,
            "/admin/clients".to_owned(),
            json!({"name": "x", "grant_types": ["authorization_code"],
                   "redirect_uris": ["http://app.example/cb"]}),
            "redirect_uris",
            "\"http://app.example/cb\"",
        ),
        (
            Method::POST,
            "/admin/clients".to_owned(),
            json!({"name": "x", "grant_types": ["authorization_code"],
                   "redirect_uris": ["javascript:alert(1)"]}),
            "redirect_uris",
            "\"javascript:alert(1)\"",
        ),
        (
            Method::POST,
            "/admin/clients".to_owned(),
            json!({"name": "x", "grant_types": ["authorization_code"]}),
            "redirect_uris",
            "authorization_code",
        ),
        (
            Method::POST,
            "/admin/clients".to_owned(),
            json!({"name": "x", "grant_types": ["authorization_code"],
                   "redirect_uris": ["https://app.example/cb"],
                   "post_logout_redirect_uris": ["https://app.example/bye#x"]}),
            "post_logout_redirect_uris",
            "fragment",
        ),
        (
            Method::POST,
            "/admin/clients".to_owned(),
            json!({"name": "x", "redirect_uris": ["https://app.example/cb"],
                   "grant_types": ["client_credentials"]}),
            "redirect_uris",
            "authorization_code",
        ),
        (
            Method::POST,
            "/admin/clients".to_owned(),
            json!({"name": "x", "redirect_uris": ["https://app.example/cb"],
                   "token_endpoint_auth_method": "none",
                   "grant_types": ["authorization_code", "client_credentials"]}),
            "grant_types",
            "client_credentials",
        ),
        (
            Method::PATCH,
            code_path.clone(),
            json!({"redirect_uris": ["https://app.example/ok", "https://app.example/x#y"]}),
            "redirect_uris",
            "\"https://app.example/x#y\"",
        ),
        (
            Method::PATCH,
            code_path.clone(),
            json!({"redirect_uris": []}),
            "redirect_uris",
            "at least one",
        ),
        (
            Method::PATCH,
            code_path.clone(),
            json!({"redirect_uris": (0..11).map(|i| format!("https://app.example/{i}"))
                .collect::<Vec<_>>()}),
            "redirect_uris",
            "at most 10",
        ),
        (
            Method::PATCH,
            machine_path.clone(),
            json!({"post_logout_redirect_uris": ["https://app.example/bye"]}),
            "post_logout_redirect_uris",
            "authorization_code",
        ),
    ];
    for (method, path, body, field, needle) in cases {
        let response = call(&app, &admin, method.clone(), &path, Some(body.clone())).await;
        assert_eq!(
            response.headers()["content-type"],
            "application/problem+json",
            "{method} {path} {body}"
        );
        let problem = json_of(response, 422).await;
        let errors = problem["errors"].as_array().unwrap();
        assert!(
            errors
                .iter()
                .any(|e| e["field"] == field && e["detail"].as_str().unwrap().contains(needle)),
            "{method} {path} {body}: {problem}"
        );
    }
    // Every bad URI of a list is named, not only the first.
    let problem = json_of(
        call(
            &app,
            &admin,
            Method::PATCH,
            &code_path,
            Some(json!({"redirect_uris": ["http://a.example/cb", "https://b.example/cb#f"]})),
        )
        .await,
        422,
    )
    .await;
    let details: Vec<&str> = problem["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["detail"].as_str().unwrap())
        .collect();
    assert_eq!(details.len(), 2, "{problem}");
    assert!(details[0].contains("a.example") && details[1].contains("b.example"));
    assert_eq!(app.snapshot().await, before);
}

/// A server whose registration policy lets applications that sign people in register
/// themselves.
async fn spawn_allowing_code_flow(backend: Backend) -> TestApp {
    TestApp::spawn_with(backend, |c| {
        c.registration.allowed_grant_types =
            ["client_credentials", "authorization_code", "refresh_token"]
                .map(String::from)
                .to_vec();
    })
    .await
}
