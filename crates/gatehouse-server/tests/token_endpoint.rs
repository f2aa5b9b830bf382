//! The token endpoint over real HTTP: client_credentials, password, refresh rotation, and every
//! kind of bad request.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use gatehouse_testkit::on_both_stores;

use common::{Backend, TestApp};
use gatehouse_core::{Committed, Store, Write};
use gatehouse_token::{JwkSet, Verifier, VerifierConfig};
use serde_json::Value;

on_both_stores!(
    client_credentials_with_basic_and_post_issues_verifiable_at_jwt,
    scope_rules_for_client_credentials,
    client_authentication_failures_are_401_with_basic_challenge,
    malformed_token_requests_get_rfc_errors_and_change_nothing,
    password_grant_issues_tokens_with_roles,
    wrong_password_and_unknown_user_get_identical_answers,
    refresh_rotates_and_old_token_reuse_revokes_everything,
    concurrent_refreshes_of_one_token_leave_one_live_successor,
    expired_and_foreign_refresh_tokens_are_invalid_grant,
    deleted_client_can_no_longer_get_tokens,
    refresh_never_grants_more_than_the_client_may_now_have,
    single_session_policy_ends_earlier_sessions_only_when_on,
    the_registered_authentication_method_is_the_only_one_accepted,
    repeated_parameters_are_refused_everywhere,
);

/// Registers a machine client that authenticates with `method`; returns (id, secret).
async fn register_with_method(app: &TestApp, method: &str) -> (String, String) {
    let response = app
        .http
        .post(app.url("/oauth2/register"))
        .json(&serde_json::json!({
            "scope": "rates:read",
            "token_endpoint_auth_method": method,
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let body: Value = response.json().await.unwrap();
    (
        body["client_id"].as_str().unwrap().to_owned(),
        body["client_secret"].as_str().unwrap().to_owned(),
    )
}

async fn verifier_for(app: &TestApp) -> Verifier {
    let jwks: JwkSet = app
        .http
        .get(app.url("/oauth2/jwks"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    Verifier::new(
        VerifierConfig {
            issuer: app.config.issuer.clone(),
            audience: Some(app.config.audience.clone()),
            leeway_secs: 0,
        },
        &jwks,
    )
}

async fn client_credentials_with_basic_and_post_issues_verifiable_at_jwt(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (id, secret, _) = app.register_client("rates:read fx:read").await;

    let basic = app
        .http
        .post(app.url("/oauth2/token"))
        .basic_auth(&id, Some(&secret))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(basic.status(), 200);
    assert_eq!(basic.headers()["cache-control"], "no-store");
    let body: Value = basic.json().await.unwrap();
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 600);
    assert!(
        body.get("refresh_token").is_none(),
        "no refresh token for machines"
    );

    let token = body["access_token"].as_str().unwrap();
    let header = jsonwebtoken::decode_header(token).unwrap();
    assert_eq!(header.typ.as_deref(), Some("at+jwt"));
    assert_eq!(header.alg, jsonwebtoken::Algorithm::EdDSA);
    assert!(header.kid.is_some());
    let claims = verifier_for(&app).await.verify(token).unwrap();
    assert_eq!(claims.sub, id);
    assert_eq!(claims.client_id, id);
    assert_eq!(claims.iss, app.config.issuer);
    assert_eq!(claims.scope, "fx:read rates:read");
    assert_eq!(claims.exp - claims.iat, 600);
    assert!(claims.roles.is_none());

    // A client registered for client_secret_post sends its secret in the form.
    let (post_id, post_secret) = register_with_method(&app, "client_secret_post").await;
    let post = app
        .token(&[
            ("grant_type", "client_credentials"),
            ("client_id", &post_id),
            ("client_secret", &post_secret),
        ])
        .await;
    assert_eq!(post.status(), 200);
    let second: Value = post.json().await.unwrap();
    let other = verifier_for(&app)
        .await
        .verify(second["access_token"].as_str().unwrap())
        .unwrap();
    assert_ne!(other.jti, claims.jti, "every token has its own jti");
}

async fn scope_rules_for_client_credentials(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (id, secret, _) = app.register_client("rates:read fx:read").await;
    let ask = |scope: Option<&'static str>| {
        let (id, secret) = (id.clone(), secret.clone());
        let app = &app;
        async move {
            let mut form = vec![("grant_type", "client_credentials".to_owned())];
            if let Some(s) = scope {
                form.push(("scope", s.to_owned()));
            }
            app.http
                .post(app.url("/oauth2/token"))
                .basic_auth(id, Some(secret))
                .form(&form)
                .send()
                .await
                .unwrap()
        }
    };
    let narrowed: Value = ask(Some("rates:read")).await.json().await.unwrap();
    assert_eq!(narrowed["scope"], "rates:read");
    let all: Value = ask(None).await.json().await.unwrap();
    assert_eq!(all["scope"], "fx:read rates:read");
    let too_much = ask(Some("rates:read fx:write")).await;
    assert_eq!(too_much.status(), 400);
    let err: Value = too_much.json().await.unwrap();
    assert_eq!(err["error"], "invalid_scope");
    assert!(
        err["error_description"]
            .as_str()
            .unwrap()
            .contains("fx:write")
    );
    let malformed = ask(Some("bad\"scope")).await;
    assert_eq!(malformed.status(), 400);
    assert_eq!(
        malformed.json::<Value>().await.unwrap()["error"],
        "invalid_scope"
    );
}

async fn client_authentication_failures_are_401_with_basic_challenge(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (id, secret, _) = app.register_client("rates:read").await;
    let before = app.snapshot().await;

    let wrong_secret = app
        .http
        .post(app.url("/oauth2/token"))
        .basic_auth(&id, Some("not-the-secret"))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    let unknown_client = app
        .http
        .post(app.url("/oauth2/token"))
        .basic_auth("cl_nobody", Some("whatever"))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    for response in [wrong_secret, unknown_client] {
        assert_eq!(response.status(), 401);
        assert_eq!(
            response.headers()["www-authenticate"],
            r#"Basic realm="gatehouse""#
        );
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"], "invalid_client");
        assert_eq!(body["error_description"], "client authentication failed");
    }

    // No credentials at all.
    let anonymous = app.token(&[("grant_type", "client_credentials")]).await;
    assert_eq!(anonymous.status(), 401);
    assert_eq!(
        anonymous.json::<Value>().await.unwrap()["error"],
        "invalid_client"
    );

    // A garbled Basic header.
    let garbled = app
        .http
        .post(app.url("/oauth2/token"))
        .header("authorization", "Basic !!!not-base64")
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(garbled.status(), 401);

    // Two authentication methods at once.
    let both = app
        .http
        .post(app.url("/oauth2/token"))
        .basic_auth(&id, Some(&secret))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_secret", &secret),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(both.status(), 400);
    assert_eq!(
        both.json::<Value>().await.unwrap()["error"],
        "invalid_request"
    );

    // The public web client cannot use client_credentials.
    let public = app
        .token(&[
            ("grant_type", "client_credentials"),
            ("client_id", "gatehouse-web"),
        ])
        .await;
    assert_eq!(public.status(), 400);
    assert_eq!(
        public.json::<Value>().await.unwrap()["error"],
        "unauthorized_client"
    );

    // A public client pretending to have a secret is not authenticated.
    let public_with_secret = app
        .token(&[
            ("grant_type", "password"),
            ("client_id", "gatehouse-web"),
            ("client_secret", "x"),
            ("username", "a"),
            ("password", "b"),
        ])
        .await;
    assert_eq!(public_with_secret.status(), 401);

    // A registered machine client may not use the password grant.
    let machine_password = app
        .http
        .post(app.url("/oauth2/token"))
        .basic_auth(&id, Some(&secret))
        .form(&[
            ("grant_type", "password"),
            ("username", "a"),
            ("password", "b"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(machine_password.status(), 400);
    assert_eq!(
        machine_password.json::<Value>().await.unwrap()["error"],
        "unauthorized_client"
    );
    assert_eq!(app.snapshot().await, before);
}

async fn malformed_token_requests_get_rfc_errors_and_change_nothing(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (id, secret, _) = app.register_client("rates:read").await;
    app.sign_up("alice", "correct-horse").await;
    let before = app.snapshot().await;
    let url = app.url("/oauth2/token");

    let expect = |status: u16, error: &'static str| {
        move |r: reqwest::Response| async move {
            assert_eq!(r.status().as_u16(), status, "expected {error}");
            assert_eq!(r.headers()["cache-control"], "no-store");
            let body: Value = r.json().await.unwrap();
            assert_eq!(body["error"], error);
            assert!(body["error_description"].is_string());
        }
    };

    // Wrong method.
    let get = app.http.get(&url).send().await.unwrap();
    assert_eq!(get.headers()["allow"], "POST");
    expect(405, "invalid_request")(get).await;
    // JSON instead of a form.
    let json = app
        .http
        .post(&url)
        .json(&serde_json::json!({"grant_type": "client_credentials"}))
        .send()
        .await
        .unwrap();
    expect(400, "invalid_request")(json).await;
    // No content type at all.
    let bare = app
        .http
        .post(&url)
        .body("grant_type=client_credentials")
        .send()
        .await
        .unwrap();
    expect(400, "invalid_request")(bare).await;
    // Over the size limit.
    let huge = format!(
        "grant_type=client_credentials&pad={}",
        "x".repeat(64 * 1024)
    );
    // On a connection of its own: the server closes it after refusing the unread body, and a
    // pooled client could otherwise send the next request down the closed connection.
    let big = reqwest::Client::new()
        .post(&url)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(huge)
        .send()
        .await
        .unwrap();
    expect(413, "invalid_request")(big).await;
    // A repeated parameter.
    let repeated = app
        .http
        .post(&url)
        .basic_auth(&id, Some(&secret))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("grant_type=client_credentials&scope=rates:read&scope=rates:read")
        .send()
        .await
        .unwrap();
    expect(400, "invalid_request")(repeated).await;
    // Missing and unknown grant types.
    let missing = app
        .http
        .post(&url)
        .basic_auth(&id, Some(&secret))
        .form(&[("scope", "rates:read")])
        .send()
        .await
        .unwrap();
    expect(400, "invalid_request")(missing).await;
    for grant in ["urn:ietf:params:oauth:grant-type:jwt-bearer", "x"] {
        let unknown = app
            .http
            .post(&url)
            .basic_auth(&id, Some(&secret))
            .form(&[("grant_type", grant)])
            .send()
            .await
            .unwrap();
        expect(400, "unsupported_grant_type")(unknown).await;
    }
    // Garbage bytes in the body.
    let garbage = app
        .http
        .post(&url)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(vec![0xff, 0xfe, b'&', b'=', b'%', 0x00])
        .send()
        .await
        .unwrap();
    assert!(garbage.status().is_client_error());
    // Password grant without its parameters.
    let no_password = app
        .token(&[
            ("grant_type", "password"),
            ("client_id", "gatehouse-web"),
            ("username", "alice"),
        ])
        .await;
    expect(400, "invalid_request")(no_password).await;
    // Refresh grant without a token.
    let no_refresh = app
        .token(&[
            ("grant_type", "refresh_token"),
            ("client_id", "gatehouse-web"),
        ])
        .await;
    expect(400, "invalid_request")(no_refresh).await;

    assert_eq!(
        app.snapshot().await,
        before,
        "a rejected request changed the store"
    );
}

async fn password_grant_issues_tokens_with_roles(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let user = app.sign_up("alice", "correct-horse").await;
    let tokens = app.login("Alice", "correct-horse").await;
    assert!(tokens["refresh_token"].as_str().unwrap().len() >= 43);
    assert_eq!(tokens["scope"], "fx:read orders posts rates:read");
    let claims = verifier_for(&app)
        .await
        .verify(tokens["access_token"].as_str().unwrap())
        .unwrap();
    assert_eq!(claims.sub, user["id"].as_str().unwrap());
    assert_eq!(claims.client_id, "gatehouse-web");
    assert_eq!(claims.roles, Some(vec!["user".to_owned()]));

    let narrowed = app
        .token(&[
            ("grant_type", "password"),
            ("client_id", "gatehouse-web"),
            ("username", "alice"),
            ("password", "correct-horse"),
            ("scope", "orders"),
        ])
        .await;
    assert_eq!(narrowed.json::<Value>().await.unwrap()["scope"], "orders");
    let beyond = app
        .token(&[
            ("grant_type", "password"),
            ("client_id", "gatehouse-web"),
            ("username", "alice"),
            ("password", "correct-horse"),
            ("scope", "fx:write"),
        ])
        .await;
    assert_eq!(beyond.status(), 400);
    assert_eq!(
        beyond.json::<Value>().await.unwrap()["error"],
        "invalid_scope"
    );
}

async fn wrong_password_and_unknown_user_get_identical_answers(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.sign_up("alice", "correct-horse").await;
    let before = app.snapshot().await;
    let app = &app;
    let attempt = |username: &'static str, password: &'static str| async move {
        app.token(&[
            ("grant_type", "password"),
            ("client_id", "gatehouse-web"),
            ("username", username),
            ("password", password),
        ])
        .await
    };
    let wrong_password = attempt("alice", "wrong-horse").await;
    let unknown_user = attempt("mallory", "wrong-horse").await;
    let describe = |r: &reqwest::Response| {
        let mut headers: Vec<(String, String)> = r
            .headers()
            .iter()
            .filter(|(k, _)| *k != "date" && *k != "x-request-id")
            .map(|(k, v)| (k.to_string(), v.to_str().unwrap().to_owned()))
            .collect();
        headers.sort();
        (r.status(), headers)
    };
    assert_eq!(describe(&wrong_password), describe(&unknown_user));
    assert_eq!(wrong_password.status(), 400);
    let a = wrong_password.bytes().await.unwrap();
    let b = unknown_user.bytes().await.unwrap();
    assert_eq!(a, b, "bodies must be byte-identical");
    let body: Value = serde_json::from_slice(&a).unwrap();
    assert_eq!(body["error"], "invalid_grant");
    assert_eq!(app.snapshot().await, before);

    let events = app.store.recent_events(10).await.unwrap();
    assert_eq!(
        events.iter().filter(|e| e.kind == "login.failure").count(),
        2,
        "both failures are on record"
    );
}

async fn refresh_rotates_and_old_token_reuse_revokes_everything(backend: Backend) {
    // No grace: any second use of a rotated token is reuse.
    let app = TestApp::spawn_with(backend, |c| c.refresh_reuse_grace_secs = 0).await;
    app.sign_up("alice", "correct-horse").await;
    let first = app.login("alice", "correct-horse").await;
    let other_session = app.login("alice", "correct-horse").await;
    let r0 = first["refresh_token"].as_str().unwrap();

    let rotated = app.refresh(r0).await;
    assert_eq!(rotated.status(), 200);
    assert_eq!(rotated.headers()["cache-control"], "no-store");
    let second: Value = rotated.json().await.unwrap();
    let r1 = second["refresh_token"].as_str().unwrap();
    assert_ne!(r0, r1, "every use rotates");
    let access = second["access_token"].as_str().unwrap();
    assert_eq!(app.me(access).await.status(), 200);

    // The old token again: theft. Everything of the user dies.
    let reuse = app.refresh(r0).await;
    assert_eq!(reuse.status(), 400);
    assert_eq!(
        reuse.json::<Value>().await.unwrap()["error"],
        "invalid_grant"
    );
    assert_eq!(
        app.refresh(r1).await.status(),
        400,
        "the successor is revoked"
    );
    assert_eq!(
        app.refresh(other_session["refresh_token"].as_str().unwrap())
            .await
            .status(),
        400,
        "every other session of the user is revoked"
    );
    let me = app.me(access).await;
    assert_eq!(me.status(), 401, "access tokens issued before are dead");
    assert!(
        me.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .contains("invalid_token")
    );
    let events = app.store.recent_events(20).await.unwrap();
    assert!(events.iter().any(|e| e.kind == "refresh.reuse_detected"));

    // The owner logs in again and carries on.
    let fresh = app.login("alice", "correct-horse").await;
    assert_eq!(
        app.me(fresh["access_token"].as_str().unwrap())
            .await
            .status(),
        200
    );
    assert_eq!(
        app.refresh(fresh["refresh_token"].as_str().unwrap())
            .await
            .status(),
        200
    );
}

async fn concurrent_refreshes_of_one_token_leave_one_live_successor(backend: Backend) {
    let app = TestApp::spawn_with(backend, |c| c.refresh_reuse_grace_secs = 30).await;
    app.sign_up("alice", "correct-horse").await;
    let login = app.login("alice", "correct-horse").await;
    let r0 = login["refresh_token"].as_str().unwrap().to_owned();

    let attempts = (0..50).map(|_| app.refresh(&r0));
    let responses = futures::future::join_all(attempts).await;
    let mut successors = std::collections::BTreeSet::new();
    for response in responses {
        assert_eq!(
            response.status(),
            200,
            "a duplicate inside the grace window is not theft"
        );
        let body: Value = response.json().await.unwrap();
        successors.insert(body["refresh_token"].as_str().unwrap().to_owned());
    }
    assert_eq!(successors.len(), 1, "all duplicates got the one successor");
    let live: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM refresh_tokens WHERE rotated_at IS NULL")
            .fetch_one(app.store.pool())
            .await
            .unwrap();
    assert_eq!(live, 1, "exactly one live refresh token in the family");
    let successor = successors.into_iter().next().unwrap();
    assert_eq!(
        app.refresh(&successor).await.status(),
        200,
        "the family goes on"
    );
}

async fn expired_and_foreign_refresh_tokens_are_invalid_grant(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.sign_up("alice", "correct-horse").await;
    let (id, secret, _) = app.register_client("rates:read").await;
    let login = app.login("alice", "correct-horse").await;
    let token = login["refresh_token"].as_str().unwrap();

    // Another client cannot redeem it.
    let foreign = app
        .http
        .post(app.url("/oauth2/token"))
        .basic_auth(&id, Some(&secret))
        .form(&[("grant_type", "refresh_token"), ("refresh_token", token)])
        .send()
        .await
        .unwrap();
    assert_eq!(
        foreign.status(),
        400,
        "client may not use refresh_token or the token is not its"
    );

    assert_eq!(app.refresh("not-a-real-token").await.status(), 400);

    app.execute("UPDATE refresh_tokens SET expires_at = 0")
        .await;
    let expired = app.refresh(token).await;
    assert_eq!(expired.status(), 400);
    assert_eq!(
        expired.json::<Value>().await.unwrap()["error"],
        "invalid_grant"
    );
}

async fn deleted_client_can_no_longer_get_tokens(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (id, secret, registration) = app.register_client("rates:read").await;
    let get = || async { app.client_credentials(&id, &secret).await };
    assert_eq!(get().await.status(), 200, "cached now");
    let deleted = app
        .http
        .delete(
            registration["registration_client_uri"]
                .as_str()
                .unwrap()
                .replace(&app.config.issuer, &app.base),
        )
        .bearer_auth(registration["registration_access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), 204);
    assert_eq!(get().await.status(), 401, "the cache forgot the client");
}

async fn refresh_never_grants_more_than_the_client_may_now_have(backend: Backend) {
    use gatehouse_core::{AuthMethod, Client, GrantType, ScopeSet};
    let app = TestApp::spawn_with(backend, |c| c.client_cache_ttl_secs = 0).await;
    app.sign_up("alice", "correct-horse").await;
    let secret = "a-confidential-client-secret-of-length";
    let mut client = Client {
        id: "shop-backend".into(),
        name: "shop".into(),
        secret_hash: Some(gatehouse_core::secret::hash_secret(secret)),
        auth_method: AuthMethod::ClientSecretBasic,
        grant_types: vec![GrantType::Password, GrantType::RefreshToken],
        scopes: Some(ScopeSet::parse("orders posts").unwrap()),
        roles: vec![],
        registration_token_hash: None,
        previous_secret_hash: None,
        previous_secret_expires_at: None,
        created_at: 0,
        updated_at: 0,
        blocked_at: None,
        not_before: 0,
        redirect_uris: vec![],
        post_logout_redirect_uris: vec![],
        skip_consent: false,
    };
    app.store.insert_client(&client).await.unwrap();
    let login: Value = app
        .http
        .post(app.url("/oauth2/token"))
        .basic_auth("shop-backend", Some(secret))
        .form(&[
            ("grant_type", "password"),
            ("username", "alice"),
            ("password", "correct-horse"),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        login["scope"], "orders posts",
        "the user's scopes within the client's limit"
    );

    client.scopes = Some(ScopeSet::parse("orders").unwrap());
    let narrowed = Write::UpdateClient {
        client: client.clone(),
        cutoff: None,
    };
    assert_eq!(
        app.store.commit(&[narrowed]).await.unwrap(),
        Committed::Done { sessions_ended: 0 }
    );
    let refreshed: Value = app
        .http
        .post(app.url("/oauth2/token"))
        .basic_auth("shop-backend", Some(secret))
        .form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", login["refresh_token"].as_str().unwrap()),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        refreshed["scope"], "orders",
        "the narrowed client limit applies at once"
    );
}

async fn single_session_policy_ends_earlier_sessions_only_when_on(backend: Backend) {
    for single in [false, true] {
        let app = TestApp::spawn_with(backend, |c| c.single_session = single).await;
        app.sign_up("alice", "correct-horse").await;
        let first = app.login("alice", "correct-horse").await;
        let second = app.login("alice", "correct-horse").await;
        let first_refresh = app.refresh(first["refresh_token"].as_str().unwrap()).await;
        assert_eq!(
            first_refresh.status() == 200,
            !single,
            "single_session = {single}"
        );
        assert_eq!(
            app.refresh(second["refresh_token"].as_str().unwrap())
                .await
                .status(),
            200
        );
    }
}

async fn the_registered_authentication_method_is_the_only_one_accepted(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (basic_id, basic_secret) = register_with_method(&app, "client_secret_basic").await;
    let (post_id, post_secret) = register_with_method(&app, "client_secret_post").await;
    app.sign_up("alice", "correct-horse").await;
    let person = app.login("alice", "correct-horse").await;
    let person_refresh = person["refresh_token"].as_str().unwrap();
    let before = app.snapshot().await;

    let basic = |path: &str, id: &str, secret: &str, form: Vec<(&'static str, String)>| {
        app.http
            .post(app.url(path))
            .basic_auth(id, Some(secret))
            .form(&form)
            .send()
    };
    let post = |path: &str, id: &str, secret: &str, mut form: Vec<(&'static str, String)>| {
        form.push(("client_id", id.to_owned()));
        form.push(("client_secret", secret.to_owned()));
        app.http.post(app.url(path)).form(&form).send()
    };
    let grant = || vec![("grant_type", "client_credentials".to_owned())];
    let token = |t: &str| vec![("token", t.to_owned())];
    let wrong_way = [
        // The Basic client with its secret in the form, at each endpoint that authenticates.
        post("/oauth2/token", &basic_id, &basic_secret, grant()).await,
        post("/oauth2/revoke", &basic_id, &basic_secret, token("x")).await,
        post("/oauth2/introspect", &basic_id, &basic_secret, token("x")).await,
        // The form client with Basic.
        basic("/oauth2/token", &post_id, &post_secret, grant()).await,
        basic("/oauth2/revoke", &post_id, &post_secret, token("x")).await,
        basic("/oauth2/introspect", &post_id, &post_secret, token("x")).await,
        // A public client cannot pass for a confidential one with an empty Basic secret.
        basic(
            "/oauth2/token",
            "gatehouse-web",
            "",
            vec![
                ("grant_type", "refresh_token".to_owned()),
                ("refresh_token", person_refresh.to_owned()),
            ],
        )
        .await,
        basic("/oauth2/revoke", "gatehouse-web", "", token(person_refresh)).await,
        // The feed takes Basic only, so a form client cannot read it.
        app.http
            .get(app.url("/oauth2/revocations"))
            .basic_auth(&post_id, Some(&post_secret))
            .send()
            .await,
    ];
    for response in wrong_way {
        let response = response.unwrap();
        let url = response.url().path().to_owned();
        assert_eq!(response.status(), 401, "{url}");
        assert_eq!(
            response.headers()["www-authenticate"],
            r#"Basic realm="gatehouse""#,
            "{url}"
        );
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"], "invalid_client", "{url}");
    }
    assert_eq!(
        app.snapshot().await,
        before,
        "refused requests change nothing"
    );

    // Each the registered way.
    let ok = basic("/oauth2/token", &basic_id, &basic_secret, grant())
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    let ok = post("/oauth2/token", &post_id, &post_secret, grant())
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    let ok = post("/oauth2/revoke", &post_id, &post_secret, token("x"))
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    assert_eq!(app.refresh(person_refresh).await.status(), 200);
}

async fn repeated_parameters_are_refused_everywhere(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (id, secret, _) = app.register_client("rates:read").await;
    app.sign_up("alice", "correct-horse").await;
    let before = app.snapshot().await;
    let send = |path: &str, body: String| {
        app.http
            .post(app.url(path))
            .basic_auth(&id, Some(&secret))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
    };
    let cases = [
        (
            "/oauth2/token",
            "grant_type=client_credentials&scope=&scope=rates%3Aread",
            "scope",
        ),
        (
            "/oauth2/token",
            "grant_type=client_credentials&grant_type=client_credentials",
            "grant_type",
        ),
        ("/oauth2/revoke", "token=a&token=", "token"),
        ("/oauth2/introspect", "token=&token=b", "token"),
    ];
    for (path, body, name) in cases {
        let response = send(path, body.to_owned()).await.unwrap();
        assert_eq!(response.status(), 400, "{path} {body}");
        let error: Value = response.json().await.unwrap();
        assert_eq!(error["error"], "invalid_request", "{path} {body}");
        assert!(
            error["error_description"].as_str().unwrap().contains(name),
            "{path} {body}: {error}"
        );
    }
    // A password grant through the public client, the password given twice.
    let twice = app
        .http
        .post(app.url("/oauth2/token"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(
            "grant_type=password&client_id=gatehouse-web&username=alice&password=&password=correct-horse",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(twice.status(), 400);
    assert_eq!(
        twice.json::<Value>().await.unwrap()["error"],
        "invalid_request"
    );

    // The hosted pages: end-session by GET and by POST.
    let logout_get = app
        .http
        .get(app.url("/oauth2/logout?state=&state=x"))
        .send()
        .await
        .unwrap();
    assert_eq!(logout_get.status(), 400);
    let logout_post = app
        .http
        .post(app.url("/oauth2/logout"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("client_id=gatehouse-web&client_id=")
        .send()
        .await
        .unwrap();
    assert_eq!(logout_post.status(), 400);
    assert_eq!(
        app.snapshot().await,
        before,
        "refused requests change nothing"
    );
}
