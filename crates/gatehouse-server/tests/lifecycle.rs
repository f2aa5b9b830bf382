//! Revocation (RFC 7009) and introspection (RFC 7662) over real HTTP, and the not-before and
//! deny-list checks every token-accepting place shares.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use gatehouse_testkit::on_both_stores;

use common::{Backend, TestApp};
use gatehouse_core::Store;
use gatehouse_token::now_unix;
use serde_json::Value;

on_both_stores!(
    revoked_access_token_is_refused_everywhere,
    revoked_refresh_token_ends_its_family,
    clients_revoke_only_their_own_tokens,
    revocation_of_unknown_or_malformed_tokens_is_200_and_changes_nothing,
    introspection_reports_live_tokens_with_their_claims,
    introspection_reports_dead_tokens_as_inactive,
    introspection_needs_a_confidential_client,
    introspection_shows_each_client_only_what_it_may_see,
    blocked_or_cut_off_clients_tokens_are_dead,
    expired_revocations_and_sessions_are_purged,
);

struct Machine {
    id: String,
    secret: String,
}

async fn machine(app: &TestApp) -> Machine {
    let (id, secret, _) = app.register_client("rates:read").await;
    Machine { id, secret }
}

/// A resource server: a machine client an operator let introspect other clients' tokens.
async fn introspector(app: &TestApp) -> Machine {
    let (id, secret) = app.register_introspector("rates:read").await;
    Machine { id, secret }
}

/// A confidential client that signs people in with the password grant and keeps refresh
/// tokens, made as an operator would.
async fn confidential_app(app: &TestApp) -> Machine {
    let secret = "a-confidential-app-secret-of-some-length".to_owned();
    let client = gatehouse_core::Client {
        secret_hash: Some(gatehouse_core::secret::hash_secret(&secret)),
        ..gatehouse_core::Client::new(
            "confidential-app".into(),
            "Confidential app".into(),
            gatehouse_core::AuthMethod::ClientSecretBasic,
            vec![
                gatehouse_core::GrantType::Password,
                gatehouse_core::GrantType::RefreshToken,
            ],
            now_unix(),
        )
    };
    app.store.insert_client(&client).await.unwrap();
    Machine {
        id: client.id,
        secret,
    }
}

async fn machine_token(app: &TestApp, m: &Machine) -> String {
    app.machine_token(&m.id, &m.secret).await
}

async fn introspect(app: &TestApp, by: &Machine, token: &str) -> Value {
    app.introspect(&by.id, &by.secret, token).await
}

async fn revoked_access_token_is_refused_everywhere(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let resource = introspector(&app).await;
    app.sign_up("alice", "correct-horse").await;
    let session = app.login("alice", "correct-horse").await;
    let access = session["access_token"].as_str().unwrap();
    assert_eq!(app.me(access).await.status(), 200);
    assert_eq!(introspect(&app, &resource, access).await["active"], true);

    let revoked = app.revoke_as_web(access).await;
    assert_eq!(revoked.status(), 200);
    assert_eq!(app.me(access).await.status(), 401);
    assert_eq!(introspect(&app, &resource, access).await["active"], false);
    // Revoking twice is fine; the refresh token of the session still works (only that jti died).
    assert_eq!(app.revoke_as_web(access).await.status(), 200);
    let refreshed = app
        .refresh(session["refresh_token"].as_str().unwrap())
        .await;
    assert_eq!(refreshed.status(), 200);
    let events = app.store.recent_events(20).await.unwrap();
    assert!(events.iter().any(|e| e.kind == "token.revoked"));
}

async fn revoked_refresh_token_ends_its_family(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.sign_up("alice", "correct-horse").await;
    let session = app.login("alice", "correct-horse").await;
    let refresh = session["refresh_token"].as_str().unwrap();
    let response = app
        .http
        .post(app.url("/oauth2/revoke"))
        .form(&[
            ("client_id", "gatehouse-web"),
            ("token", refresh),
            ("token_type_hint", "refresh_token"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let again = app.refresh(refresh).await;
    assert_eq!(again.status(), 400);
    assert_eq!(
        again.json::<Value>().await.unwrap()["error"],
        "invalid_grant"
    );
}

async fn clients_revoke_only_their_own_tokens(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let owner = machine(&app).await;
    let stranger = machine(&app).await;
    let token = machine_token(&app, &owner).await;
    let before = app.snapshot().await;
    let refused = app
        .http
        .post(app.url("/oauth2/revoke"))
        .basic_auth(&stranger.id, Some(&stranger.secret))
        .form(&[("token", token.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 400);
    assert_eq!(
        refused.json::<Value>().await.unwrap()["error"],
        "unauthorized_client"
    );
    assert_eq!(introspect(&app, &owner, &token).await["active"], true);
    assert_eq!(app.snapshot().await, before);

    app.sign_up("alice", "correct-horse").await;
    let session = app.login("alice", "correct-horse").await;
    let foreign_refresh = app
        .http
        .post(app.url("/oauth2/revoke"))
        .basic_auth(&stranger.id, Some(&stranger.secret))
        .form(&[("token", session["refresh_token"].as_str().unwrap())])
        .send()
        .await
        .unwrap();
    assert_eq!(foreign_refresh.status(), 400);
    assert_eq!(
        app.refresh(session["refresh_token"].as_str().unwrap())
            .await
            .status(),
        200
    );

    let own = app
        .http
        .post(app.url("/oauth2/revoke"))
        .basic_auth(&owner.id, Some(&owner.secret))
        .form(&[("token", token.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(own.status(), 200);
    assert_eq!(introspect(&app, &owner, &token).await["active"], false);
}

async fn revocation_of_unknown_or_malformed_tokens_is_200_and_changes_nothing(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let owner = machine(&app).await;
    let before = app.snapshot().await;
    for token in ["not-a-token", "a.b.c", "", "eyJhbGciOiJub25lIn0.e30."] {
        let response = app
            .http
            .post(app.url("/oauth2/revoke"))
            .basic_auth(&owner.id, Some(&owner.secret))
            .form(&[("token", token)])
            .send()
            .await
            .unwrap();
        let expected = if token.is_empty() { 400 } else { 200 };
        assert_eq!(response.status(), expected, "{token:?}");
    }
    let anonymous = app
        .http
        .post(app.url("/oauth2/revoke"))
        .form(&[("token", "whatever")])
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);
    let wrong_secret = app
        .http
        .post(app.url("/oauth2/revoke"))
        .basic_auth(&owner.id, Some("nope"))
        .form(&[("token", "whatever")])
        .send()
        .await
        .unwrap();
    assert_eq!(wrong_secret.status(), 401);
    let json = app
        .http
        .post(app.url("/oauth2/revoke"))
        .basic_auth(&owner.id, Some(&owner.secret))
        .json(&serde_json::json!({"token": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(json.status(), 400);
    assert_eq!(app.snapshot().await, before);
}

async fn introspection_reports_live_tokens_with_their_claims(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let resource = introspector(&app).await;
    let user = app.sign_up("alice", "correct-horse").await;
    let session = app.login("alice", "correct-horse").await;

    let access = introspect(&app, &resource, session["access_token"].as_str().unwrap()).await;
    assert_eq!(access["active"], true);
    assert_eq!(access["token_type"], "Bearer");
    assert_eq!(access["client_id"], "gatehouse-web");
    assert_eq!(access["sub"], user["id"]);
    assert_eq!(access["username"], "alice");
    assert_eq!(access["scope"], "fx:read orders posts rates:read");
    assert_eq!(access["iss"], app.config.issuer);
    assert_eq!(access["roles"], serde_json::json!(["user"]));
    assert!(access["exp"].as_i64().unwrap() > now_unix());
    assert!(access["jti"].is_string());

    // A refresh token is shown to its own client only.
    let owner = confidential_app(&app).await;
    let own_session = password_login(&app, &owner, "alice", "correct-horse").await;
    let refresh = introspect(&app, &owner, own_session["refresh_token"].as_str().unwrap()).await;
    assert_eq!(refresh["active"], true);
    assert_eq!(refresh["token_type"], "refresh_token");
    assert_eq!(refresh["sub"], user["id"]);
    assert_eq!(refresh["client_id"], owner.id.as_str());

    let own = machine_token(&app, &resource).await;
    let machine_view = introspect(&app, &resource, &own).await;
    assert_eq!(machine_view["active"], true);
    assert_eq!(machine_view["sub"], resource.id.as_str());
    assert!(machine_view.get("username").is_none());
}

async fn introspection_reports_dead_tokens_as_inactive(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let resource = introspector(&app).await;
    let user = app.sign_up("alice", "correct-horse").await;
    let session = app.login("alice", "correct-horse").await;
    let key = app.server_signing_key().await;
    let mut expired = app.claims_for(user["id"].as_str().unwrap());
    expired.iat = now_unix() - 1200;
    expired.exp = now_unix() - 600;
    let mut foreign = app.claims_for(user["id"].as_str().unwrap());
    foreign.iss = "https://elsewhere.example".into();
    let stranger_key = gatehouse_token::SigningKey::generate().unwrap();

    let r0 = session["refresh_token"].as_str().unwrap();
    assert_eq!(app.refresh(r0).await.status(), 200);
    let dead = [
        ("expired", key.sign(&expired).unwrap()),
        ("foreign issuer", key.sign(&foreign).unwrap()),
        (
            "forged",
            stranger_key.sign(&app.claims_for("usr_x")).unwrap(),
        ),
        ("malformed", "a.b.c".to_owned()),
        ("garbage refresh", "no-such-refresh-token".to_owned()),
        ("rotated refresh", r0.to_owned()),
    ];
    for (what, token) in dead {
        let answer = introspect(&app, &resource, &token).await;
        assert_eq!(answer, serde_json::json!({"active": false}), "{what}");
    }
    // A blocked user's tokens go inactive at once.
    let fresh = app.login("alice", "correct-horse").await;
    app.execute("UPDATE users SET blocked_at = 1").await;
    for token in [&fresh["access_token"], &fresh["refresh_token"]] {
        let answer = introspect(&app, &resource, token.as_str().unwrap()).await;
        assert_eq!(answer["active"], false);
    }
}

async fn introspection_needs_a_confidential_client(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let resource = machine(&app).await;
    let token = machine_token(&app, &resource).await;
    let public = app
        .http
        .post(app.url("/oauth2/introspect"))
        .form(&[("client_id", "gatehouse-web"), ("token", token.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(public.status(), 401);
    let anonymous = app
        .http
        .post(app.url("/oauth2/introspect"))
        .form(&[("token", token.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);
    assert_eq!(
        anonymous.json::<Value>().await.unwrap()["error"],
        "invalid_client"
    );
}

/// A password grant through `client`, authenticated with Basic as registered.
async fn password_login(app: &TestApp, client: &Machine, username: &str, password: &str) -> Value {
    let response = app
        .http
        .post(app.url("/oauth2/token"))
        .basic_auth(&client.id, Some(&client.secret))
        .form(&[
            ("grant_type", "password"),
            ("username", username),
            ("password", password),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

async fn introspection_shows_each_client_only_what_it_may_see(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let stranger = machine(&app).await;
    let resource = introspector(&app).await;
    let owner = confidential_app(&app).await;
    let other = machine(&app).await;
    app.sign_up("alice", "correct-horse").await;
    let web_session = app.login("alice", "correct-horse").await;
    let own_session = password_login(&app, &owner, "alice", "correct-horse").await;
    let others_token = machine_token(&app, &other).await;
    let strangers_token = machine_token(&app, &stranger).await;
    let inactive = serde_json::json!({"active": false});
    let before = app.snapshot().await;

    // A client without the introspect scope: its own tokens only. Everything else looks like
    // an unknown token, a live refresh token included.
    for (what, token) in [
        ("another client's token", others_token.as_str()),
        (
            "a person's access token",
            web_session["access_token"].as_str().unwrap(),
        ),
        (
            "a public client's refresh token",
            web_session["refresh_token"].as_str().unwrap(),
        ),
        (
            "another client's refresh token",
            own_session["refresh_token"].as_str().unwrap(),
        ),
        (
            "another client's access token",
            own_session["access_token"].as_str().unwrap(),
        ),
    ] {
        assert_eq!(introspect(&app, &stranger, token).await, inactive, "{what}");
    }
    assert_eq!(
        introspect(&app, &stranger, &strangers_token).await["active"],
        true
    );

    // With the introspect scope: others' access tokens, never their refresh tokens.
    assert_eq!(
        introspect(&app, &resource, &others_token).await["active"],
        true
    );
    let person = introspect(
        &app,
        &resource,
        own_session["access_token"].as_str().unwrap(),
    )
    .await;
    assert_eq!(person["active"], true);
    assert_eq!(person["username"], "alice");
    for token in [&web_session["refresh_token"], &own_session["refresh_token"]] {
        assert_eq!(
            introspect(&app, &resource, token.as_str().unwrap()).await,
            inactive
        );
    }
    // Its own client sees the refresh token; looking did not rotate or spend it.
    let own_refresh = own_session["refresh_token"].as_str().unwrap();
    assert_eq!(introspect(&app, &owner, own_refresh).await["active"], true);
    assert_eq!(
        app.snapshot().await,
        before,
        "introspection changes nothing"
    );
    let refreshed = app
        .http
        .post(app.url("/oauth2/token"))
        .basic_auth(&owner.id, Some(&owner.secret))
        .form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", own_refresh),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(
        refreshed.status(),
        200,
        "the refresh token was still unused"
    );
}

async fn blocked_or_cut_off_clients_tokens_are_dead(backend: Backend) {
    // No client cache, so changes made straight in the store are seen at once.
    let app = TestApp::spawn_with(backend, |c| c.client_cache_ttl_secs = 0).await;
    let resource = introspector(&app).await;
    let subject = machine(&app).await;
    let token = machine_token(&app, &subject).await;
    assert_eq!(introspect(&app, &resource, &token).await["active"], true);
    sqlx::query("UPDATE clients SET not_before = $1 WHERE id = $2")
        .bind(now_unix() + 1)
        .bind(&subject.id)
        .execute(app.store.pool())
        .await
        .unwrap();
    assert_eq!(introspect(&app, &resource, &token).await["active"], false);
    let other = machine_token(&app, &resource).await;
    sqlx::query("UPDATE clients SET blocked_at = 1 WHERE id = $1")
        .bind(&resource.id)
        .execute(app.store.pool())
        .await
        .unwrap();
    let blocked = app.client_credentials(&resource.id, &resource.secret).await;
    assert_eq!(blocked.status(), 401, "a blocked client gets no token");
    let checker = introspector(&app).await;
    assert_eq!(introspect(&app, &checker, &other).await["active"], false);
}

async fn expired_revocations_and_sessions_are_purged(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.sign_up("alice", "correct-horse").await;
    let session = app.login("alice", "correct-horse").await;
    assert_eq!(
        app.revoke_as_web(session["access_token"].as_str().unwrap())
            .await
            .status(),
        200
    );
    assert_eq!(
        app.store.purge_expired(now_unix(), None).await.unwrap(),
        0,
        "nothing expired yet"
    );
    let events_before = app.store.recent_events(1000).await.unwrap().len();
    assert!(events_before > 0);
    let purged = app
        .store
        .purge_expired(now_unix() + 365 * 24 * 3600, Some(now_unix() + 1))
        .await
        .unwrap();
    assert_eq!(
        purged,
        3 + events_before as u64,
        "the deny entry, the family, the first signing key's change-log entry (the newest entry, \
         the revocation's, stays to mark where the sequence stands), and the audit events"
    );
    let counts = app.counts().await;
    assert!(counts.contains(&("refresh_families".to_owned(), 0)));
    assert!(
        counts.contains(&("refresh_tokens".to_owned(), 0)),
        "tokens go with their family"
    );
    assert!(counts.contains(&("revoked_tokens".to_owned(), 0)));
}
