//! Every change that ends tokens is stored with its change-log entry or not at all, is published
//! on the revocation feed, and is honoured by the server's own checks at once: logout, a role or
//! scope taken away, a registration narrowed or deleted, the single-session policy.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use gatehouse_testkit::on_both_stores;

use std::time::Duration;

use common::{Backend, TestApp, read_until, subscribe};
use gatehouse_core::Store;
use gatehouse_server::limits::RateLimitConfig;
use gatehouse_store::Backend as StoreBackend;
use serde_json::{Value, json};

on_both_stores!(
    a_failed_change_log_write_fails_the_request_and_stores_nothing,
    logout_ends_the_sessions_access_tokens_everywhere,
    taking_a_role_away_ends_earlier_tokens_and_adding_one_does_not,
    a_narrowed_or_deleted_registration_ends_its_tokens,
    a_new_sign_in_ends_every_earlier_token_under_single_session,
    revocation_and_introspection_are_rate_limited,
    a_clients_own_revocations_do_not_flood_the_audit_log,
    a_sign_in_that_raced_a_cut_off_leaves_no_session,
    taking_scopes_from_a_role_ends_its_holders_earlier_tokens,
);

async fn app_with_reader(backend: Backend, single_session: bool) -> (TestApp, String, String) {
    let app = TestApp::spawn_with(backend, |c| {
        c.registration
            .allowed_scopes
            .push("revocations:read".into());
        c.single_session = single_session;
    })
    .await;
    let (id, secret, _) = app.register_client("revocations:read").await;
    (app, id, secret)
}

/// Reads the feed until it has caught up with its backlog.
async fn caught_up(app: &TestApp, id: &str, secret: &str) -> (reqwest::Response, String) {
    let mut feed = subscribe(app, id, secret, None).await;
    let mut seen = String::new();
    read_until(&mut feed, &mut seen, "caught_up", Duration::from_secs(5)).await;
    (feed, seen)
}

fn claims_of(token: &str) -> Value {
    use base64::Engine;
    let payload = token.split('.').nth(1).unwrap();
    serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap(),
    )
    .unwrap()
}

async fn admin_call(
    app: &TestApp,
    admin: &str,
    method: reqwest::Method,
    path: &str,
    body: Value,
) -> u16 {
    app.http
        .request(method, app.url(path))
        .bearer_auth(admin)
        .json(&body)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// Signs a person up; their user id.
async fn signed_up(app: &TestApp, username: &str, password: &str) -> String {
    app.sign_up(username, password).await;
    let session = app.login(username, password).await;
    user_id(app, session["access_token"].as_str().unwrap()).await
}

async fn user_id(app: &TestApp, token: &str) -> String {
    let me: Value = app.me(token).await.json().await.unwrap();
    me["id"].as_str().unwrap().to_owned()
}

async fn a_failed_change_log_write_fails_the_request_and_stores_nothing(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let admin = app.admin_token().await;
    app.sign_up("alice", "correct-horse").await;
    let alice = app.login("alice", "correct-horse").await;
    let alice_access = alice["access_token"].as_str().unwrap();
    let alice_id = user_id(&app, alice_access).await;
    match app.store.backend() {
        StoreBackend::Sqlite => {
            app.execute(
                "CREATE TRIGGER refuse_change_log BEFORE INSERT ON change_log \
                 BEGIN SELECT RAISE(ABORT, 'change log unavailable'); END",
            )
            .await;
        }
        StoreBackend::Postgres => {
            app.execute(
                "CREATE FUNCTION refuse_change_log() RETURNS trigger AS $$ \
                 BEGIN RAISE EXCEPTION 'change log unavailable'; END $$ LANGUAGE plpgsql",
            )
            .await;
            app.execute(
                "CREATE TRIGGER refuse_change_log BEFORE INSERT ON change_log \
                 FOR EACH ROW EXECUTE FUNCTION refuse_change_log()",
            )
            .await;
        }
    }
    let before = app.snapshot().await;

    let block = admin_call(
        &app,
        &admin,
        reqwest::Method::PATCH,
        &format!("/admin/users/{alice_id}"),
        json!({"blocked": true}),
    )
    .await;
    assert_eq!(block, 500, "a block that cannot be published is not stored");
    let revoke = app.revoke_as_web(alice_access).await;
    assert_eq!(revoke.status(), 500);
    let body: Value = revoke.json().await.unwrap();
    assert_eq!(body["error"], "server_error");
    assert!(
        !body.to_string().contains("change log unavailable"),
        "no store message reaches the client: {body}"
    );
    let logout = app
        .revoke_as_web(alice["refresh_token"].as_str().unwrap())
        .await;
    assert_eq!(logout.status(), 500);
    assert_eq!(app.snapshot().await, before, "nothing was half done");
    assert_eq!(app.me(alice_access).await.status(), 200);
}

async fn logout_ends_the_sessions_access_tokens_everywhere(backend: Backend) {
    let (app, reader, reader_secret) = app_with_reader(backend, false).await;
    app.sign_up("alice", "correct-horse").await;
    let laptop = app.login("alice", "correct-horse").await;
    let phone = app.login("alice", "correct-horse").await;
    let laptop_access = laptop["access_token"].as_str().unwrap();
    let sid = claims_of(laptop_access)["sid"].as_str().unwrap().to_owned();
    assert_ne!(
        claims_of(phone["access_token"].as_str().unwrap())["sid"],
        sid.as_str(),
        "each sign-in is its own session"
    );
    let (mut feed, mut seen) = caught_up(&app, &reader, &reader_secret).await;

    let logout = app
        .revoke_as_web(laptop["refresh_token"].as_str().unwrap())
        .await;
    assert_eq!(logout.status(), 200);
    read_until(&mut feed, &mut seen, &sid, Duration::from_secs(1)).await;
    assert!(seen.contains("event: session_revoked"), "{seen}");
    assert_eq!(app.me(laptop_access).await.status(), 401);
    let (checker, checker_secret) = app.register_introspector("rates:read").await;
    assert_eq!(
        app.introspect(&checker, &checker_secret, laptop_access)
            .await["active"],
        false
    );
    assert_eq!(
        app.me(phone["access_token"].as_str().unwrap())
            .await
            .status(),
        200,
        "the other session goes on"
    );
}

async fn taking_a_role_away_ends_earlier_tokens_and_adding_one_does_not(backend: Backend) {
    let (app, reader, reader_secret) = app_with_reader(backend, false).await;
    let root = app.admin_token().await;
    let deputy_id = signed_up(&app, "deputy", "deputy-password").await;
    let path = format!("/admin/users/{deputy_id}");
    let promote = admin_call(
        &app,
        &root,
        reqwest::Method::PATCH,
        &path,
        json!({"roles": ["user", "admin"]}),
    )
    .await;
    assert_eq!(promote, 200);
    let deputy = app.login("deputy", "deputy-password").await;
    let deputy_access = deputy["access_token"].as_str().unwrap();
    assert_eq!(
        admin_call(
            &app,
            deputy_access,
            reqwest::Method::GET,
            "/admin/users",
            json!({})
        )
        .await,
        200
    );
    // Adding a role takes nothing away: the token lives.
    app.execute("INSERT INTO roles (name, description, scopes) VALUES ('auditor', 'reads', '')")
        .await;
    let widened = admin_call(
        &app,
        &root,
        reqwest::Method::PATCH,
        &path,
        json!({"roles": ["user", "admin", "auditor"]}),
    )
    .await;
    assert_eq!(widened, 200);
    assert_eq!(
        admin_call(
            &app,
            deputy_access,
            reqwest::Method::GET,
            "/admin/users",
            json!({})
        )
        .await,
        200
    );

    let (mut feed, mut seen) = caught_up(&app, &reader, &reader_secret).await;
    let demote = admin_call(
        &app,
        &root,
        reqwest::Method::PATCH,
        &path,
        json!({"roles": ["user"]}),
    )
    .await;
    assert_eq!(demote, 200);
    read_until(&mut feed, &mut seen, &deputy_id, Duration::from_secs(1)).await;
    assert!(seen.contains("event: subject_cutoff"), "{seen}");
    assert_eq!(
        admin_call(
            &app,
            deputy_access,
            reqwest::Method::GET,
            "/admin/users",
            json!({})
        )
        .await,
        401,
        "the demoted administrator's token is dead at once"
    );
    // The session goes on, with what the remaining roles allow.
    let refreshed = app.refresh(deputy["refresh_token"].as_str().unwrap()).await;
    assert_eq!(refreshed.status(), 200);
    let refreshed: Value = refreshed.json().await.unwrap();
    let roles = &claims_of(refreshed["access_token"].as_str().unwrap())["roles"];
    assert_eq!(roles, &json!(["user"]));
}

async fn a_narrowed_or_deleted_registration_ends_its_tokens(backend: Backend) {
    let (app, reader, reader_secret) = app_with_reader(backend, false).await;
    let (checker, checker_secret) = app.register_introspector("rates:read").await;
    let (id, secret, registration) = app.register_client("rates:read fx:read").await;
    let registration_token = registration["registration_access_token"].as_str().unwrap();
    let update = |scope: &str| {
        app.http
            .put(app.url(&format!("/oauth2/register/{id}")))
            .bearer_auth(registration_token)
            .json(&json!({
                "client_id": id,
                "client_name": "narrowing",
                "grant_types": ["client_credentials"],
                "scope": scope,
                "token_endpoint_auth_method": "client_secret_basic",
            }))
            .send()
    };
    let before = app.machine_token(&id, &secret).await;
    assert_eq!(update("rates:read fx:read").await.unwrap().status(), 200);
    assert_eq!(
        app.introspect(&checker, &checker_secret, &before).await["active"],
        true,
        "an update that takes nothing away ends nothing"
    );

    let (mut feed, mut seen) = caught_up(&app, &reader, &reader_secret).await;
    assert_eq!(update("rates:read").await.unwrap().status(), 200);
    read_until(
        &mut feed,
        &mut seen,
        &format!("\"subject\":\"{id}\""),
        Duration::from_secs(1),
    )
    .await;
    assert_eq!(
        app.introspect(&checker, &checker_secret, &before).await["active"],
        false,
        "a token that may carry fx:read is dead"
    );
    let after = app.machine_token(&id, &secret).await;
    assert_eq!(
        app.introspect(&checker, &checker_secret, &after).await["scope"],
        "rates:read"
    );

    seen.clear();
    let deleted = app
        .http
        .delete(app.url(&format!("/oauth2/register/{id}")))
        .bearer_auth(registration_token)
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), 204);
    read_until(
        &mut feed,
        &mut seen,
        &format!("\"subject\":\"{id}\""),
        Duration::from_secs(1),
    )
    .await;
    assert!(seen.contains("event: subject_cutoff"), "{seen}");
    assert_eq!(
        app.introspect(&checker, &checker_secret, &after).await["active"],
        false
    );
}

async fn a_new_sign_in_ends_every_earlier_token_under_single_session(backend: Backend) {
    let (app, reader, reader_secret) = app_with_reader(backend, true).await;
    app.sign_up("alice", "correct-horse").await;
    let first = app.login("alice", "correct-horse").await;
    let first_access = first["access_token"].as_str().unwrap();
    let alice_id = user_id(&app, first_access).await;
    let (mut feed, mut seen) = caught_up(&app, &reader, &reader_secret).await;

    let second = app.login("alice", "correct-horse").await;
    read_until(&mut feed, &mut seen, &alice_id, Duration::from_secs(1)).await;
    assert!(seen.contains("event: subject_cutoff"), "{seen}");
    // A cut-off in the same second as the first sign-in's leaves its `iat` at the not-before
    // time: the ended session is what kills that token at gateways.
    let first_sid = claims_of(first_access)["sid"].as_str().unwrap().to_owned();
    read_until(&mut feed, &mut seen, &first_sid, Duration::from_secs(1)).await;
    assert!(seen.contains("event: session_revoked"), "{seen}");
    assert_eq!(
        app.me(first_access).await.status(),
        401,
        "the earlier access token is dead"
    );
    assert_eq!(
        app.refresh(first["refresh_token"].as_str().unwrap())
            .await
            .status(),
        400,
        "and so is the earlier session"
    );
    assert_eq!(
        app.me(second["access_token"].as_str().unwrap())
            .await
            .status(),
        200,
        "the new sign-in lives"
    );
}

async fn revocation_and_introspection_are_rate_limited(backend: Backend) {
    let limits = RateLimitConfig {
        revoke_per_client_per_second: 1,
        introspect_per_client_per_second: 1,
        ..RateLimitConfig::off()
    };
    let app = TestApp::spawn_limited(backend, |_| {}, limits).await;
    let (busy, busy_secret, _) = app.register_client("rates:read").await;
    let (calm, calm_secret, _) = app.register_client("rates:read").await;
    for (path, name) in [
        ("/oauth2/introspect", "introspection"),
        ("/oauth2/revoke", "revocation"),
    ] {
        // Wrong secrets spend nothing of the client's budget.
        for _ in 0..5 {
            let forged = app
                .http
                .post(app.url(path))
                .basic_auth(&busy, Some("wrong"))
                .form(&[("token", "x")])
                .send()
                .await
                .unwrap();
            assert_eq!(forged.status(), 401);
        }
        let mut statuses = Vec::new();
        for _ in 0..6 {
            let response = app
                .http
                .post(app.url(path))
                .basic_auth(&busy, Some(&busy_secret))
                .form(&[("token", "not-a-token")])
                .send()
                .await
                .unwrap();
            let status = response.status().as_u16();
            if status == 429 {
                assert!(response.headers().contains_key("retry-after"));
                let body: Value = response.json().await.unwrap();
                assert_eq!(body["error"], "temporarily_unavailable");
            }
            statuses.push(status);
        }
        assert_eq!(&statuses[..2], &[200, 200], "{name}: the burst passes");
        assert!(statuses.contains(&429), "{name} is limited: {statuses:?}");
        let other = app
            .http
            .post(app.url(path))
            .basic_auth(&calm, Some(&calm_secret))
            .form(&[("token", "not-a-token")])
            .send()
            .await
            .unwrap();
        assert_eq!(
            other.status(),
            200,
            "{name}: other clients are not affected"
        );
    }

    let per_ip = RateLimitConfig {
        revoke_per_ip_per_second: 1,
        ..RateLimitConfig::off()
    };
    let app = TestApp::spawn_limited(backend, |_| {}, per_ip).await;
    let statuses: Vec<u16> = futures::future::join_all(
        (0..6).map(|_| async { app.revoke_as_web("not-a-token").await.status().as_u16() }),
    )
    .await;
    assert!(
        statuses.contains(&429),
        "revocation is limited per IP: {statuses:?}"
    );
}

async fn a_clients_own_revocations_do_not_flood_the_audit_log(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (id, secret, _) = app.register_client("rates:read").await;
    for _ in 0..20 {
        let token = app.machine_token(&id, &secret).await;
        let revoked = app
            .http
            .post(app.url("/oauth2/revoke"))
            .basic_auth(&id, Some(&secret))
            .form(&[("token", token.as_str())])
            .send()
            .await
            .unwrap();
        assert_eq!(revoked.status(), 200);
    }
    let events = app.store.recent_events(1000).await.unwrap();
    let revocations = events
        .iter()
        .filter(|e| e.kind.starts_with("token.revoked") && e.client_id.as_deref() == Some(&id))
        .count();
    assert_eq!(
        revocations, 1,
        "one event a minute per client; the rest are summed"
    );
    let denied: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM revoked_tokens")
        .fetch_one(app.store.pool())
        .await
        .unwrap();
    assert_eq!(denied, 20, "every revocation itself is stored");
}

async fn a_sign_in_that_raced_a_cut_off_leaves_no_session(backend: Backend) {
    use gatehouse_core::{RefreshFamily, RefreshTokenRecord};
    let app = TestApp::spawn(backend).await;
    let root = app.admin_token().await;
    app.sign_up("alice", "correct-horse").await;
    let alice = app.login("alice", "correct-horse").await;
    let alice_id = user_id(&app, alice["access_token"].as_str().unwrap()).await;
    let read_before = app.store.user(&alice_id).await.unwrap().unwrap().not_before;
    let revoke_all = admin_call(
        &app,
        &root,
        reqwest::Method::POST,
        "/admin/revoke-all",
        json!({"subject": alice_id}),
    )
    .await;
    assert_eq!(revoke_all, 200);
    // The sign-in read the user before the cut-off and stores its session after it.
    let family = RefreshFamily {
        id: "raced".into(),
        user_id: alice_id.clone(),
        client_id: "gatehouse-web".into(),
        scope: "rates:read".into(),
        created_at: 1,
        last_used_at: 1,
        expires_at: i64::MAX,
        revoked_at: None,
        ip: None,
        user_agent: None,
        browser_session_id: None,
    };
    let first = RefreshTokenRecord {
        hash: "raced-hash".into(),
        family_id: "raced".into(),
        created_at: 1,
        expires_at: i64::MAX,
        rotated_at: None,
    };
    let before = app.snapshot().await;
    assert!(
        !app.store
            .create_family(&family, &first, read_before)
            .await
            .unwrap()
    );
    assert_eq!(app.snapshot().await, before, "no session was stored");
    let now_read = app.store.user(&alice_id).await.unwrap().unwrap().not_before;
    assert!(
        app.store
            .create_family(&family, &first, now_read)
            .await
            .unwrap()
    );
}

async fn taking_scopes_from_a_role_ends_its_holders_earlier_tokens(backend: Backend) {
    let (app, reader, reader_secret) = app_with_reader(backend, false).await;
    let root = app.admin_token().await;
    let created = admin_call(
        &app,
        &root,
        reqwest::Method::POST,
        "/admin/roles",
        json!({"name": "analyst", "description": "reads", "scope": "rates:read fx:read"}),
    )
    .await;
    assert_eq!(created, 201);
    let alice_id = signed_up(&app, "alice", "correct-horse").await;
    let path = format!("/admin/users/{alice_id}");
    let granted = admin_call(
        &app,
        &root,
        reqwest::Method::PATCH,
        &path,
        json!({"roles": ["analyst"]}),
    )
    .await;
    assert_eq!(granted, 200);
    let alice = app.login("alice", "correct-horse").await;
    let access = alice["access_token"].as_str().unwrap();
    assert!(
        claims_of(access)["scope"]
            .as_str()
            .unwrap()
            .contains("fx:read")
    );
    let role = |scope: &str| {
        admin_call(
            &app,
            &root,
            reqwest::Method::PUT,
            "/admin/roles/analyst",
            json!({"description": "reads", "scope": scope}),
        )
    };
    assert_eq!(role("rates:read fx:read posts").await, 200);
    assert_eq!(
        app.me(access).await.status(),
        200,
        "widening a role ends nothing"
    );

    let (mut feed, mut seen) = caught_up(&app, &reader, &reader_secret).await;
    assert_eq!(role("rates:read").await, 200);
    read_until(&mut feed, &mut seen, &alice_id, Duration::from_secs(1)).await;
    assert!(seen.contains("event: subject_cutoff"), "{seen}");
    assert_eq!(
        app.me(access).await.status(),
        401,
        "a token that may carry fx:read is dead"
    );
    let refreshed: Value = app
        .refresh(alice["refresh_token"].as_str().unwrap())
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        claims_of(refreshed["access_token"].as_str().unwrap())["scope"],
        "rates:read"
    );
}
