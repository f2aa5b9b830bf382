//! People's accounts over real HTTP: signup rules, bearer checks at /users/me, password change.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use gatehouse_testkit::on_both_stores;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use common::{Backend, TestApp};
use gatehouse_token::{SigningKey, now_unix};
use serde_json::{Value, json};

on_both_stores!(
    signup_creates_a_user_and_refuses_bad_or_taken_names,
    malformed_signup_bodies_get_problems_and_change_nothing,
    me_answers_rfc_6750_challenges_for_every_bad_token,
    machine_tokens_are_refused_at_me_with_403,
    password_change_ends_every_session,
    blocked_users_cannot_log_in_or_use_their_tokens,
);

async fn post_user(app: &TestApp, body: Value) -> reqwest::Response {
    app.http
        .post(app.url("/users"))
        .json(&body)
        .send()
        .await
        .unwrap()
}

fn assert_problem(response: &reqwest::Response, status: u16) {
    assert_eq!(response.status().as_u16(), status);
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json"
    );
}

async fn signup_creates_a_user_and_refuses_bad_or_taken_names(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let created = app.sign_up("alice", "correct-horse").await;
    assert_eq!(created["username"], "alice");
    assert_eq!(created["email"], "alice@example.com");
    assert_eq!(created["roles"], json!(["user"]));
    assert!(created.get("password_hash").is_none());
    assert!(created.get("password").is_none());

    let before = app.snapshot().await;
    let taken = post_user(
        &app,
        json!({"username": "ALICE", "password": "another-pass", "email": "a@example.com"}),
    )
    .await;
    assert_problem(&taken, 409);
    let body: Value = taken.json().await.unwrap();
    assert_eq!(body["status"], 409);
    assert!(body["detail"].as_str().unwrap().contains("taken"));

    let cases = [
        (
            json!({"username": "", "password": "long-enough", "email": "a@b.co"}),
            "username",
        ),
        (
            json!({"username": "x".repeat(65), "password": "long-enough", "email": "a@b.co"}),
            "username",
        ),
        (
            json!({"username": "has space", "password": "long-enough", "email": "a@b.co"}),
            "username",
        ),
        (
            json!({"username": "bob", "password": "short", "email": "a@b.co"}),
            "password",
        ),
        (
            json!({"username": "bob", "password": "long-enough", "email": "not-an-email"}),
            "email",
        ),
        (
            json!({"username": "bob", "password": "long-enough", "email": ""}),
            "email",
        ),
        (json!({"username": "bob", "email": "a@b.co"}), "password"),
        (
            json!({"username": 7, "password": "long-enough", "email": "a@b.co"}),
            "body",
        ),
    ];
    for (body, field) in cases {
        let response = post_user(&app, body.clone()).await;
        assert_problem(&response, 422);
        let problem: Value = response.json().await.unwrap();
        let fields: Vec<&str> = problem["errors"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["field"].as_str().unwrap())
            .collect();
        assert!(
            fields.contains(&field),
            "{body} should name {field}, got {fields:?}"
        );
    }
    assert_eq!(app.snapshot().await, before);
}

async fn malformed_signup_bodies_get_problems_and_change_nothing(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let before = app.snapshot().await;
    let not_json = app
        .http
        .post(app.url("/users"))
        .header("content-type", "application/json")
        .body("{\"username\": ")
        .send()
        .await
        .unwrap();
    assert_problem(&not_json, 400);
    let form = app
        .http
        .post(app.url("/users"))
        .form(&[
            ("username", "bob"),
            ("password", "long-enough"),
            ("email", "a@b.co"),
        ])
        .send()
        .await
        .unwrap();
    assert_problem(&form, 415);
    let huge = app
        .http
        .post(app.url("/users"))
        .header("content-type", "application/json")
        .body(format!(
            "{{\"username\":\"bob\",\"password\":\"{}\",\"email\":\"a@b.co\"}}",
            "x".repeat(100 * 1024)
        ))
        .send()
        .await
        .unwrap();
    assert_problem(&huge, 413);
    let wrong_method = app.http.delete(app.url("/users")).send().await.unwrap();
    assert_problem(&wrong_method, 405);
    assert_eq!(app.snapshot().await, before);
}

fn challenge(response: &reqwest::Response) -> String {
    response.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .to_owned()
}

fn forge(header: &str, claims: &Value, signature: &[u8]) -> String {
    format!(
        "{}.{}.{}",
        URL_SAFE_NO_PAD.encode(header),
        URL_SAFE_NO_PAD.encode(claims.to_string()),
        URL_SAFE_NO_PAD.encode(signature)
    )
}

async fn me_answers_rfc_6750_challenges_for_every_bad_token(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let user = app.sign_up("alice", "correct-horse").await;
    let user_id = user["id"].as_str().unwrap();
    let good = app.login("alice", "correct-horse").await;
    let ok = app.me(good["access_token"].as_str().unwrap()).await;
    assert_eq!(ok.status(), 200);
    let me: Value = ok.json().await.unwrap();
    assert_eq!(me["id"], user_id);
    assert!(me.get("password_hash").is_none());

    // No token: a challenge without an error code.
    let missing = app.http.get(app.url("/users/me")).send().await.unwrap();
    assert_problem(&missing, 401);
    assert_eq!(challenge(&missing), r#"Bearer realm="gatehouse""#);

    let server_key = app.server_signing_key().await;
    let kid = server_key.kid().to_owned();
    let claims = app.claims_for(user_id);
    let claims_json = serde_json::to_value(&claims).unwrap();

    let alg_none = forge(
        &format!(r#"{{"alg":"none","typ":"at+jwt","kid":"{kid}"}}"#),
        &claims_json,
        b"",
    );
    // HS256 keyed with the server's public key: algorithm confusion.
    let public = URL_SAFE_NO_PAD
        .decode(server_key.public_jwk().x.unwrap())
        .unwrap();
    let hs_header = format!(r#"{{"alg":"HS256","typ":"at+jwt","kid":"{kid}"}}"#);
    let signing_input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(&hs_header),
        URL_SAFE_NO_PAD.encode(claims_json.to_string())
    );
    let mac = aws_lc_rs::hmac::sign(
        &aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, &public),
        signing_input.as_bytes(),
    );
    let hs256 = format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(mac.as_ref()));
    let foreign_kid = SigningKey::generate().unwrap().sign(&claims).unwrap();
    let mut wrong_iss = claims.clone();
    wrong_iss.iss = "https://evil.example".into();
    let mut expired = claims.clone();
    expired.iat = now_unix() - 1200;
    expired.exp = now_unix() - 600;
    let mut wrong_aud = claims.clone();
    wrong_aud.aud = gatehouse_token::Audience::One("someone-else".into());
    let mut unknown_user = claims.clone();
    unknown_user.sub = "usr_nobody".into();

    let bad_tokens = [
        ("alg none", alg_none),
        ("hs256 with public key", hs256),
        ("foreign kid", foreign_kid),
        ("wrong iss", server_key.sign(&wrong_iss).unwrap()),
        ("expired", server_key.sign(&expired).unwrap()),
        ("wrong aud", server_key.sign(&wrong_aud).unwrap()),
        ("unknown user", server_key.sign(&unknown_user).unwrap()),
        ("garbage", "not.a.jwt".to_owned()),
        (
            "refresh token as bearer",
            good["refresh_token"].as_str().unwrap().to_owned(),
        ),
    ];
    for (what, token) in bad_tokens {
        let response = app.me(&token).await;
        assert_eq!(response.status(), 401, "{what}");
        let header = challenge(&response);
        assert!(
            header.starts_with(r#"Bearer realm="gatehouse", error="invalid_token""#),
            "{what}: {header}"
        );
    }
    // A token the server itself would sign passes: the forgeries failed for their flaw alone.
    assert_eq!(
        app.me(&server_key.sign(&claims).unwrap()).await.status(),
        200
    );

    let wrong_scheme = app
        .http
        .get(app.url("/users/me"))
        .header("authorization", "Basic YTpi")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong_scheme.status(), 401);
    assert!(challenge(&wrong_scheme).contains(r#"error="invalid_token""#));
}

async fn machine_tokens_are_refused_at_me_with_403(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (id, secret, _) = app.register_client("rates:read").await;
    let token: Value = app
        .client_credentials(&id, &secret)
        .await
        .json()
        .await
        .unwrap();
    let response = app.me(token["access_token"].as_str().unwrap()).await;
    assert_problem(&response, 403);
    assert!(challenge(&response).contains(r#"error="insufficient_scope""#));
}

async fn password_change_ends_every_session(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.sign_up("alice", "correct-horse").await;
    let session = app.login("alice", "correct-horse").await;
    let access = session["access_token"].as_str().unwrap();
    let change = |body: Value| {
        app.http
            .put(app.url("/users/me/password"))
            .bearer_auth(access)
            .json(&body)
            .send()
    };
    let before = app.snapshot().await;
    let wrong = change(json!({"current_password": "nope-nope", "new_password": "battery-staple"}))
        .await
        .unwrap();
    assert_problem(&wrong, 422);
    assert_eq!(
        wrong.json::<Value>().await.unwrap()["errors"][0]["field"],
        "current_password"
    );
    let short = change(json!({"current_password": "correct-horse", "new_password": "short"}))
        .await
        .unwrap();
    assert_problem(&short, 422);
    assert_eq!(
        short.json::<Value>().await.unwrap()["errors"][0]["field"],
        "new_password"
    );
    assert_eq!(app.snapshot().await, before);

    let done =
        change(json!({"current_password": "correct-horse", "new_password": "battery-staple"}))
            .await
            .unwrap();
    assert_eq!(done.status(), 204);
    assert_eq!(
        app.me(access).await.status(),
        401,
        "old access token is dead"
    );
    let refresh = app
        .refresh(session["refresh_token"].as_str().unwrap())
        .await;
    assert_eq!(refresh.status(), 400, "old refresh token is dead");
    let old_password = app
        .token(&[
            ("grant_type", "password"),
            ("client_id", "gatehouse-web"),
            ("username", "alice"),
            ("password", "correct-horse"),
        ])
        .await;
    assert_eq!(old_password.status(), 400);
    let fresh = app.login("alice", "battery-staple").await;
    assert_eq!(
        app.me(fresh["access_token"].as_str().unwrap())
            .await
            .status(),
        200
    );
}

async fn blocked_users_cannot_log_in_or_use_their_tokens(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.sign_up("alice", "correct-horse").await;
    let session = app.login("alice", "correct-horse").await;
    app.execute("UPDATE users SET blocked_at = 1").await;
    let login = app
        .token(&[
            ("grant_type", "password"),
            ("client_id", "gatehouse-web"),
            ("username", "alice"),
            ("password", "correct-horse"),
        ])
        .await;
    assert_eq!(login.status(), 400);
    assert_eq!(
        login.json::<Value>().await.unwrap()["error_description"],
        "the username or password is incorrect",
        "a blocked user learns nothing more than a wrong password would tell"
    );
    assert_eq!(
        app.me(session["access_token"].as_str().unwrap())
            .await
            .status(),
        401
    );
    assert_eq!(
        app.refresh(session["refresh_token"].as_str().unwrap())
            .await
            .status(),
        400
    );
}
