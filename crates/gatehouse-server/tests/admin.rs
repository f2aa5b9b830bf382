//! The admin API over real HTTP: who may use it, clients, users, and bad input.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use gatehouse_testkit::on_both_stores;

use common::{Backend, TestApp};
use gatehouse_core::{Committed, Store, Write};
use reqwest::Method;
use serde_json::{Value, json};

on_both_stores!(
    every_admin_route_refuses_non_admins_before_reading_the_body,
    clients_can_be_created_listed_changed_blocked_and_deleted,
    secret_rotation_keeps_the_old_secret_for_the_overlap,
    users_can_be_listed_changed_blocked_and_deleted,
    bad_admin_input_gets_4xx_and_changes_nothing,
    a_stale_registration_update_cannot_undo_a_block,
    revoked_admin_tokens_are_refused,
    roles_carry_scopes_and_cannot_vanish_while_held,
    sessions_can_be_listed_and_revoked_one_or_all,
    audit_log_lists_and_filters_events_with_their_actor,
);

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

const ROUTES: &[(&str, &str)] = &[
    ("GET", "/admin/clients"),
    ("POST", "/admin/clients"),
    ("GET", "/admin/clients/gatehouse-web"),
    ("PATCH", "/admin/clients/gatehouse-web"),
    ("DELETE", "/admin/clients/gatehouse-web"),
    ("POST", "/admin/clients/gatehouse-web/rotate-secret"),
    ("GET", "/admin/users"),
    ("GET", "/admin/users/usr_x"),
    ("PATCH", "/admin/users/usr_x"),
    ("DELETE", "/admin/users/usr_x"),
    ("GET", "/admin/keys"),
    ("POST", "/admin/keys/rotate"),
    ("GET", "/admin/roles"),
    ("POST", "/admin/roles"),
    ("PUT", "/admin/roles/user"),
    ("DELETE", "/admin/roles/user"),
    ("GET", "/admin/sessions"),
    ("DELETE", "/admin/sessions/fam_x"),
    ("POST", "/admin/revoke-all"),
    ("GET", "/admin/audit"),
];

async fn every_admin_route_refuses_non_admins_before_reading_the_body(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.sign_up("alice", "correct-horse").await;
    let user = app.login("alice", "correct-horse").await;
    let user_token = user["access_token"].as_str().unwrap();
    let (id, secret, _) = app.register_client("rates:read").await;
    let machine: Value = app
        .client_credentials(&id, &secret)
        .await
        .json()
        .await
        .unwrap();
    let machine_token = machine["access_token"].as_str().unwrap();
    let before = app.snapshot().await;
    for (method, path) in ROUTES {
        let method: Method = method.parse().unwrap();
        for token in [user_token, machine_token] {
            // A malformed body too: the role is checked first.
            let response = app
                .http
                .request(method.clone(), app.url(path))
                .bearer_auth(token)
                .header("content-type", "application/json")
                .body("{not json")
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 403, "{method} {path}");
            assert_eq!(
                response.headers()["content-type"],
                "application/problem+json"
            );
        }
        let anonymous = app
            .http
            .request(method.clone(), app.url(path))
            .send()
            .await
            .unwrap();
        assert_eq!(anonymous.status(), 401, "{method} {path}");
        assert_eq!(
            anonymous.headers()["www-authenticate"],
            r#"Bearer realm="gatehouse""#
        );
        let forged = app
            .http
            .request(method.clone(), app.url(path))
            .bearer_auth("not.a.token")
            .send()
            .await
            .unwrap();
        assert_eq!(forged.status(), 401, "{method} {path}");
    }
    assert_eq!(app.snapshot().await, before);

    // An admin's token narrowed to other scopes is no admin credential.
    let admin = app.admin_token().await;
    let narrowed: Value = app
        .token(&[
            ("grant_type", "password"),
            ("client_id", "gatehouse-web"),
            ("username", "root"),
            ("password", "root-password-1"),
            ("scope", "rates:read"),
        ])
        .await
        .json()
        .await
        .unwrap();
    let refused = call(
        &app,
        narrowed["access_token"].as_str().unwrap(),
        Method::GET,
        "/admin/users",
        None,
    )
    .await;
    assert_eq!(refused.status(), 403);
    assert!(
        refused.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .contains("insufficient_scope")
    );
    // A demoted admin loses access at once, even with a token that still names the role.
    assert_eq!(
        call(&app, &admin, Method::GET, "/admin/users", None)
            .await
            .status(),
        200
    );
    app.set_roles("root", &["user"]).await;
    assert_eq!(
        call(&app, &admin, Method::GET, "/admin/users", None)
            .await
            .status(),
        403
    );
}

async fn clients_can_be_created_listed_changed_blocked_and_deleted(backend: Backend) {
    let app = TestApp::spawn_with(backend, |c| c.client_cache_ttl_secs = 3600).await;
    let admin = app.admin_token().await;
    let created = json_of(
        call(
            &app,
            &admin,
            Method::POST,
            "/admin/clients",
            Some(json!({"name": "billing", "scope": "orders", "roles": ["user"]})),
        )
        .await,
        201,
    )
    .await;
    let id = created["client_id"].as_str().unwrap().to_owned();
    let secret = created["client_secret"].as_str().unwrap().to_owned();
    assert_eq!(created["scopes"], "orders");
    assert_eq!(created["blocked"], false);
    assert!(created.get("secret_hash").is_none());
    let fetched = json_of(
        call(
            &app,
            &admin,
            Method::GET,
            &format!("/admin/clients/{id}"),
            None,
        )
        .await,
        200,
    )
    .await;
    assert!(
        fetched.get("client_secret").is_none(),
        "the secret is shown once"
    );
    assert_eq!(fetched["roles"], json!(["user"]));

    // The token carries the client's scopes plus its roles' scopes, and its roles.
    let get_token = || async { app.client_credentials(&id, &secret).await };
    let token: Value = get_token().await.json().await.unwrap();
    assert_eq!(token["scope"], "fx:read orders posts rates:read");
    let access = token["access_token"].as_str().unwrap().to_owned();

    // Pages of one, in id order, until the cursor runs out.
    let mut seen = Vec::new();
    let mut cursor = String::new();
    loop {
        let path = if cursor.is_empty() {
            "/admin/clients?limit=1".to_owned()
        } else {
            format!("/admin/clients?limit=1&cursor={cursor}")
        };
        let page = json_of(call(&app, &admin, Method::GET, &path, None).await, 200).await;
        for item in page["items"].as_array().unwrap() {
            seen.push(item["client_id"].as_str().unwrap().to_owned());
        }
        match page["next_cursor"].as_str() {
            Some(next) => cursor = next.to_owned(),
            None => break,
        }
        assert!(seen.len() < 10, "pagination must end");
    }
    let mut sorted = seen.clone();
    sorted.sort();
    assert_eq!(seen, sorted);
    assert!(seen.contains(&id) && seen.contains(&"gatehouse-web".to_owned()));

    // Narrow it, then block it: no new tokens, and the old one is dead at once (cache or not).
    let patched = json_of(
        call(
            &app,
            &admin,
            Method::PATCH,
            &format!("/admin/clients/{id}"),
            Some(json!({"name": "billing-2", "roles": []})),
        )
        .await,
        200,
    )
    .await;
    assert_eq!(patched["name"], "billing-2");
    let narrowed: Value = get_token().await.json().await.unwrap();
    assert_eq!(
        narrowed["scope"], "orders",
        "the cached client was refreshed"
    );
    let blocked = json_of(
        call(
            &app,
            &admin,
            Method::PATCH,
            &format!("/admin/clients/{id}"),
            Some(json!({"blocked": true})),
        )
        .await,
        200,
    )
    .await;
    assert_eq!(blocked["blocked"], true);
    let refused = get_token().await;
    assert_eq!(refused.status(), 401);
    assert_eq!(
        refused.json::<Value>().await.unwrap()["error"],
        "invalid_client"
    );
    let (checker_id, checker_secret) = app.register_introspector("rates:read").await;
    let introspection = app
        .introspect(&checker_id, &checker_secret, access.as_str())
        .await;
    assert_eq!(introspection["active"], false);
    let events = app.store.recent_events(50).await.unwrap();
    let block_event = events
        .iter()
        .find(|e| e.kind == "admin.client.blocked")
        .unwrap();
    assert_eq!(block_event.subject.as_deref(), Some(id.as_str()));
    assert!(block_event.actor.as_deref().unwrap().starts_with("usr_"));

    json_of(
        call(
            &app,
            &admin,
            Method::PATCH,
            &format!("/admin/clients/{id}"),
            Some(json!({"blocked": false})),
        )
        .await,
        200,
    )
    .await;
    assert_eq!(get_token().await.status(), 200, "unblocked");

    assert_eq!(
        call(
            &app,
            &admin,
            Method::DELETE,
            &format!("/admin/clients/{id}"),
            None
        )
        .await
        .status(),
        204
    );
    assert_eq!(
        call(
            &app,
            &admin,
            Method::GET,
            &format!("/admin/clients/{id}"),
            None
        )
        .await
        .status(),
        404
    );
    assert_eq!(get_token().await.status(), 401);
    assert_eq!(
        call(
            &app,
            &admin,
            Method::DELETE,
            "/admin/clients/gatehouse-web",
            None
        )
        .await
        .status(),
        409
    );
}

async fn secret_rotation_keeps_the_old_secret_for_the_overlap(backend: Backend) {
    for (overlap, old_still_works) in [(3600, true), (0, false)] {
        let app = TestApp::spawn_with(backend, |c| c.secret_rotation_overlap_secs = overlap).await;
        let admin = app.admin_token().await;
        let (id, old, _) = app.register_client("rates:read").await;
        let rotated = json_of(
            call(
                &app,
                &admin,
                Method::POST,
                &format!("/admin/clients/{id}/rotate-secret"),
                None,
            )
            .await,
            200,
        )
        .await;
        let new = rotated["client_secret"].as_str().unwrap();
        assert_ne!(new, old);
        let with = |secret: &str| {
            let (id, secret) = (id.clone(), secret.to_owned());
            let app = &app;
            async move { app.client_credentials(&id, &secret).await.status() }
        };
        assert_eq!(with(new).await, 200);
        assert_eq!(
            with(&old).await == 200,
            old_still_works,
            "overlap {overlap}"
        );
        let events = app.store.recent_events(20).await.unwrap();
        assert!(
            events
                .iter()
                .any(|e| e.kind == "admin.client.secret_rotated")
        );
    }
}

async fn users_can_be_listed_changed_blocked_and_deleted(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let admin = app.admin_token().await;
    let alice = app.sign_up("alice", "correct-horse").await;
    let alice_id = alice["id"].as_str().unwrap();
    let session = app.login("alice", "correct-horse").await;

    let list = json_of(
        call(&app, &admin, Method::GET, "/admin/users", None).await,
        200,
    )
    .await;
    let names: Vec<&str> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["username"].as_str().unwrap())
        .collect();
    assert!(names.contains(&"alice") && names.contains(&"root"));
    assert!(list["items"][0].get("password_hash").is_none());

    let promoted = json_of(
        call(
            &app,
            &admin,
            Method::PATCH,
            &format!("/admin/users/{alice_id}"),
            Some(json!({"roles": ["user", "admin"]})),
        )
        .await,
        200,
    )
    .await;
    assert_eq!(promoted["roles"], json!(["user", "admin"]));
    let admin_login = app.login("alice", "correct-horse").await;
    assert!(admin_login["scope"].as_str().unwrap().contains("fx:write"));

    json_of(
        call(
            &app,
            &admin,
            Method::PATCH,
            &format!("/admin/users/{alice_id}"),
            Some(json!({"blocked": true})),
        )
        .await,
        200,
    )
    .await;
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
    let login = app
        .token(&[
            ("grant_type", "password"),
            ("client_id", "gatehouse-web"),
            ("username", "alice"),
            ("password", "correct-horse"),
        ])
        .await;
    assert_eq!(login.status(), 400);

    json_of(
        call(
            &app,
            &admin,
            Method::PATCH,
            &format!("/admin/users/{alice_id}"),
            Some(json!({"blocked": false})),
        )
        .await,
        200,
    )
    .await;
    let again = app.login("alice", "correct-horse").await;
    assert_eq!(
        app.me(again["access_token"].as_str().unwrap())
            .await
            .status(),
        200
    );

    let root_id = json_of(app.me(&admin).await, 200).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        call(
            &app,
            &admin,
            Method::DELETE,
            &format!("/admin/users/{root_id}"),
            None
        )
        .await
        .status(),
        409
    );
    assert_eq!(
        call(
            &app,
            &admin,
            Method::DELETE,
            &format!("/admin/users/{alice_id}"),
            None
        )
        .await
        .status(),
        204
    );
    assert_eq!(
        call(
            &app,
            &admin,
            Method::GET,
            &format!("/admin/users/{alice_id}"),
            None
        )
        .await
        .status(),
        404
    );
    assert_eq!(
        app.me(again["access_token"].as_str().unwrap())
            .await
            .status(),
        401
    );
}

async fn bad_admin_input_gets_4xx_and_changes_nothing(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let admin = app.admin_token().await;
    let user = app.sign_up("alice", "correct-horse").await;
    let uid = user["id"].as_str().unwrap();
    let before = app.snapshot().await;
    let cases: Vec<(Method, String, Option<Value>, u16)> = vec![
        (Method::GET, "/admin/clients?limit=0".into(), None, 400),
        (Method::GET, "/admin/clients?limit=201".into(), None, 400),
        (Method::GET, "/admin/users?limit=lots".into(), None, 400),
        (Method::GET, "/admin/users?colour=blue".into(), None, 400),
        (Method::GET, "/admin/clients/nope".into(), None, 404),
        (
            Method::PATCH,
            "/admin/clients/nope".into(),
            Some(json!({"name": "x"})),
            404,
        ),
        (Method::DELETE, "/admin/clients/nope".into(), None, 404),
        (
            Method::POST,
            "/admin/clients/nope/rotate-secret".into(),
            None,
            404,
        ),
        (
            Method::POST,
            "/admin/clients/gatehouse-web/rotate-secret".into(),
            None,
            409,
        ),
        (
            Method::PATCH,
            "/admin/clients/gatehouse-web".into(),
            Some(json!({})),
            422,
        ),
        (
            Method::PATCH,
            "/admin/clients/gatehouse-web".into(),
            Some(json!({"colour": "blue"})),
            422,
        ),
        (
            Method::PATCH,
            "/admin/clients/gatehouse-web".into(),
            Some(json!({"roles": ["wizard"]})),
            422,
        ),
        (
            Method::PATCH,
            "/admin/clients/gatehouse-web".into(),
            Some(json!({"scope": "bad\"scope"})),
            422,
        ),
        (
            Method::PATCH,
            "/admin/clients/gatehouse-web".into(),
            Some(json!({"name": ""})),
            422,
        ),
        (
            Method::PATCH,
            "/admin/clients/gatehouse-web".into(),
            Some(json!({"blocked": "yes"})),
            422,
        ),
        (
            Method::POST,
            "/admin/clients".into(),
            Some(json!({"name": "x", "grant_types": ["magic"]})),
            422,
        ),
        (
            Method::POST,
            "/admin/clients".into(),
            Some(json!({"name": "x", "token_endpoint_auth_method": "none"})),
            422,
        ),
        (
            Method::POST,
            "/admin/clients".into(),
            Some(json!({"grant_types": []})),
            422,
        ),
        (Method::GET, "/admin/users/nope".into(), None, 404),
        (
            Method::PATCH,
            format!("/admin/users/{uid}"),
            Some(json!({})),
            422,
        ),
        (
            Method::PATCH,
            format!("/admin/users/{uid}"),
            Some(json!({"roles": ["wizard"]})),
            422,
        ),
        (
            Method::PATCH,
            format!("/admin/users/{uid}"),
            Some(json!({"password_hash": "x"})),
            422,
        ),
        (Method::DELETE, "/admin/users/nope".into(), None, 404),
        (Method::GET, "/admin/users?limit=500".into(), None, 400),
        (Method::GET, "/admin/sessions?limit=0".into(), None, 400),
        (Method::GET, "/admin/sessions?limit=201".into(), None, 400),
        (Method::GET, "/admin/audit?limit=9999".into(), None, 400),
        (Method::DELETE, "/admin/roles/nope".into(), None, 404),
        (Method::DELETE, "/admin/sessions/nope".into(), None, 404),
        (
            Method::POST,
            "/admin/roles".into(),
            Some(json!({"name": "x"})),
            422,
        ),
        (
            Method::POST,
            "/admin/roles".into(),
            Some(json!({"name": "ok", "scope": "a", "extra": 1})),
            422,
        ),
        (
            Method::PUT,
            "/admin/roles/user".into(),
            Some(json!({"scope": 7})),
            422,
        ),
        (
            Method::POST,
            "/admin/revoke-all".into(),
            Some(json!({})),
            422,
        ),
        (
            Method::POST,
            "/admin/revoke-all".into(),
            Some(json!({"subject": "nobody"})),
            404,
        ),
    ];
    for (method, path, body, status) in cases {
        let response = call(&app, &admin, method.clone(), &path, body.clone()).await;
        assert_eq!(
            response.status().as_u16(),
            status,
            "{method} {path} {body:?}"
        );
        assert_eq!(
            response.headers()["content-type"],
            "application/problem+json",
            "{method} {path}"
        );
    }
    for (method, path) in [
        (Method::PATCH, format!("/admin/users/{uid}")),
        (Method::PATCH, "/admin/clients/gatehouse-web".to_owned()),
        (Method::POST, "/admin/clients".to_owned()),
        (Method::POST, "/admin/roles".to_owned()),
        (Method::PUT, "/admin/roles/user".to_owned()),
        (Method::POST, "/admin/revoke-all".to_owned()),
    ] {
        let not_json = app
            .http
            .request(method.clone(), app.url(&path))
            .bearer_auth(&admin)
            .header("content-type", "application/json")
            .body("{")
            .send()
            .await
            .unwrap();
        assert_eq!(not_json.status(), 400, "{method} {path}");
        let form = app
            .http
            .request(method.clone(), app.url(&path))
            .bearer_auth(&admin)
            .form(&[("name", "x")])
            .send()
            .await
            .unwrap();
        assert_eq!(form.status(), 415, "{method} {path}");
    }
    assert_eq!(app.snapshot().await, before);
}

async fn roles_carry_scopes_and_cannot_vanish_while_held(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let admin = app.admin_token().await;
    let roles = json_of(
        call(&app, &admin, Method::GET, "/admin/roles", None).await,
        200,
    )
    .await;
    let names: Vec<&str> = roles
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["admin", "user"]);

    let created = json_of(
        call(&app, &admin, Method::POST, "/admin/roles",
            Some(json!({"name": "partner", "description": "partner systems", "scope": "rates:read fx:read"}))).await,
        201,
    )
    .await;
    assert_eq!(created["scope"], "fx:read rates:read");
    assert_eq!(
        call(
            &app,
            &admin,
            Method::POST,
            "/admin/roles",
            Some(json!({"name": "partner", "scope": "x"}))
        )
        .await
        .status(),
        409
    );

    // A client in the category gets its scopes; changing the role changes the next token.
    let client = json_of(
        call(
            &app,
            &admin,
            Method::POST,
            "/admin/clients",
            Some(json!({"name": "p1", "scope": "", "roles": ["partner"]})),
        )
        .await,
        201,
    )
    .await;
    let (id, secret) = (
        client["client_id"].as_str().unwrap(),
        client["client_secret"].as_str().unwrap(),
    );
    let scope_now = || async {
        let body: Value = app
            .client_credentials(id, secret)
            .await
            .json()
            .await
            .unwrap();
        body["scope"].as_str().unwrap().to_owned()
    };
    assert_eq!(scope_now().await, "fx:read rates:read");
    json_of(
        call(
            &app,
            &admin,
            Method::PUT,
            "/admin/roles/partner",
            Some(json!({"scope": "rates:read"})),
        )
        .await,
        200,
    )
    .await;
    assert_eq!(scope_now().await, "rates:read");

    assert_eq!(
        call(&app, &admin, Method::DELETE, "/admin/roles/partner", None)
            .await
            .status(),
        409,
        "still held"
    );
    assert_eq!(
        call(&app, &admin, Method::DELETE, "/admin/roles/user", None)
            .await
            .status(),
        409,
        "built in"
    );
    assert_eq!(
        call(
            &app,
            &admin,
            Method::PUT,
            "/admin/roles/nope",
            Some(json!({"scope": "x"}))
        )
        .await
        .status(),
        404
    );
    assert_eq!(
        call(
            &app,
            &admin,
            Method::POST,
            "/admin/roles",
            Some(json!({"name": "Bad Name", "scope": ""}))
        )
        .await
        .status(),
        422
    );
    json_of(
        call(
            &app,
            &admin,
            Method::PATCH,
            &format!("/admin/clients/{id}"),
            Some(json!({"roles": []})),
        )
        .await,
        200,
    )
    .await;
    assert_eq!(
        call(&app, &admin, Method::DELETE, "/admin/roles/partner", None)
            .await
            .status(),
        204
    );
}

async fn sessions_can_be_listed_and_revoked_one_or_all(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let admin = app.admin_token().await;
    let alice = app.sign_up("alice", "correct-horse").await;
    let alice_id = alice["id"].as_str().unwrap();
    let first = app.login("alice", "correct-horse").await;
    let second = app.login("alice", "correct-horse").await;

    let sessions = json_of(
        call(
            &app,
            &admin,
            Method::GET,
            &format!("/admin/sessions?user_id={alice_id}"),
            None,
        )
        .await,
        200,
    )
    .await;
    let items = sessions["items"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    assert!(
        items
            .iter()
            .all(|s| s["user_id"] == alice_id && s["client_id"] == "gatehouse-web")
    );
    assert!(items.iter().all(|s| s["ip"] == "127.0.0.1"));

    // Revoke the session the first login made (find it by trying both).
    let one = items[0]["id"].as_str().unwrap();
    assert_eq!(
        call(
            &app,
            &admin,
            Method::DELETE,
            &format!("/admin/sessions/{one}"),
            None
        )
        .await
        .status(),
        204
    );
    let statuses = [
        app.refresh(first["refresh_token"].as_str().unwrap())
            .await
            .status()
            .as_u16(),
        app.refresh(second["refresh_token"].as_str().unwrap())
            .await
            .status()
            .as_u16(),
    ];
    let mut sorted = statuses;
    sorted.sort();
    assert_eq!(sorted, [200, 400], "exactly the revoked session ended");
    assert_eq!(
        call(&app, &admin, Method::DELETE, "/admin/sessions/nope", None)
            .await
            .status(),
        404
    );

    // Revoke everything: sessions and access tokens.
    let third = app.login("alice", "correct-horse").await;
    let revoked = json_of(
        call(
            &app,
            &admin,
            Method::POST,
            "/admin/revoke-all",
            Some(json!({"subject": alice_id})),
        )
        .await,
        200,
    )
    .await;
    assert!(revoked["sessions_revoked"].as_u64().unwrap() >= 1);
    assert_eq!(
        app.me(third["access_token"].as_str().unwrap())
            .await
            .status(),
        401
    );
    assert_eq!(
        app.refresh(third["refresh_token"].as_str().unwrap())
            .await
            .status(),
        400
    );
    let fresh = app.login("alice", "correct-horse").await;
    assert_eq!(
        app.me(fresh["access_token"].as_str().unwrap())
            .await
            .status(),
        200,
        "a new login works"
    );

    // And for a machine client.
    let (cid, csecret, _) = app.register_client("rates:read").await;
    let token: Value = app
        .client_credentials(&cid, &csecret)
        .await
        .json()
        .await
        .unwrap();
    json_of(
        call(
            &app,
            &admin,
            Method::POST,
            "/admin/revoke-all",
            Some(json!({"subject": cid})),
        )
        .await,
        200,
    )
    .await;
    let introspection: Value = app
        .http
        .post(app.url("/oauth2/introspect"))
        .basic_auth(&cid, Some(&csecret))
        .form(&[("token", token["access_token"].as_str().unwrap())])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(introspection["active"], false);
    assert_eq!(
        call(
            &app,
            &admin,
            Method::POST,
            "/admin/revoke-all",
            Some(json!({"subject": "nobody"}))
        )
        .await
        .status(),
        404
    );
}

async fn audit_log_lists_and_filters_events_with_their_actor(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let admin = app.admin_token().await;
    app.sign_up("alice", "correct-horse").await;
    for _ in 0..3 {
        let _ = app
            .token(&[
                ("grant_type", "password"),
                ("client_id", "gatehouse-web"),
                ("username", "alice"),
                ("password", "wrong-pass"),
            ])
            .await;
    }
    let alice = app.login("alice", "correct-horse").await;
    let alice_id = app
        .me(alice["access_token"].as_str().unwrap())
        .await
        .json::<Value>()
        .await
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    json_of(
        call(
            &app,
            &admin,
            Method::PATCH,
            &format!("/admin/users/{alice_id}"),
            Some(json!({"blocked": true})),
        )
        .await,
        200,
    )
    .await;

    let failures = json_of(
        call(
            &app,
            &admin,
            Method::GET,
            "/admin/audit?type=login.failure",
            None,
        )
        .await,
        200,
    )
    .await;
    assert_eq!(failures["items"].as_array().unwrap().len(), 3);
    let about_alice = json_of(
        call(
            &app,
            &admin,
            Method::GET,
            &format!("/admin/audit?subject={alice_id}"),
            None,
        )
        .await,
        200,
    )
    .await;
    let kinds: Vec<&str> = about_alice["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    assert!(
        kinds.contains(&"admin.user.blocked") && kinds.contains(&"login.success"),
        "{kinds:?}"
    );
    let blocked = about_alice["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["type"] == "admin.user.blocked")
        .unwrap();
    assert!(
        blocked["actor"].as_str().unwrap().starts_with("usr_"),
        "the acting admin is on record"
    );

    // Newest first, paged with the cursor, no event twice.
    let mut seen = Vec::new();
    let mut path = "/admin/audit?limit=2".to_owned();
    loop {
        let page = json_of(call(&app, &admin, Method::GET, &path, None).await, 200).await;
        for e in page["items"].as_array().unwrap() {
            seen.push((
                e["at"].as_i64().unwrap(),
                e["id"].as_str().unwrap().to_owned(),
            ));
        }
        match page["next_cursor"].as_str() {
            Some(c) => path = format!("/admin/audit?limit=2&cursor={c}"),
            None => break,
        }
        assert!(seen.len() < 100);
    }
    let mut sorted = seen.clone();
    sorted.sort_by(|a, b| b.cmp(a));
    assert_eq!(seen, sorted);
    let unique: std::collections::BTreeSet<_> = seen.iter().collect();
    assert_eq!(unique.len(), seen.len());
    let future = json_of(
        call(
            &app,
            &admin,
            Method::GET,
            "/admin/audit?since=99999999999",
            None,
        )
        .await,
        200,
    )
    .await;
    assert_eq!(future["items"], json!([]));
    assert_eq!(
        call(
            &app,
            &admin,
            Method::GET,
            "/admin/audit?cursor=garbage",
            None
        )
        .await
        .status(),
        400
    );
    assert_eq!(
        call(
            &app,
            &admin,
            Method::GET,
            "/admin/audit?since=yesterday",
            None
        )
        .await
        .status(),
        400
    );
}

async fn a_stale_registration_update_cannot_undo_a_block(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let admin = app.admin_token().await;
    let (id, secret, registration) = app.register_client("rates:read").await;

    // The race itself, made deterministic: a copy read before the block is written after it.
    let stale = app.store.client(&id).await.unwrap().unwrap();
    let block = Write::BlockClient {
        id: id.clone(),
        not_before: 5,
        now: 1,
        tokens_expire_by: 601,
    };
    assert!(matches!(
        app.store.commit(&[block]).await.unwrap(),
        Committed::Done { .. }
    ));
    let mut edited = stale.clone();
    edited.name = "edited from a stale copy".into();
    let stale_write = Write::UpdateClient {
        client: edited,
        cutoff: None,
    };
    assert!(matches!(
        app.store.commit(&[stale_write]).await.unwrap(),
        Committed::Done { .. }
    ));
    let stored = app.store.client(&id).await.unwrap().unwrap();
    assert_eq!(
        stored.blocked_at,
        Some(1),
        "a stale metadata write keeps the block"
    );
    assert_eq!(stored.not_before, 5);
    let unblock = Write::UnblockClient {
        id: id.clone(),
        now: 2,
    };
    assert!(matches!(
        app.store.commit(&[unblock]).await.unwrap(),
        Committed::Done { .. }
    ));
    assert_eq!(
        app.store.client(&id).await.unwrap().unwrap().not_before,
        5,
        "never moves back"
    );

    json_of(
        call(
            &app,
            &admin,
            Method::PATCH,
            &format!("/admin/clients/{id}"),
            Some(json!({"blocked": true})),
        )
        .await,
        200,
    )
    .await;
    // The client tries to update its own metadata after the block (RFC 7592): a blocked
    // client's registration is out of its reach.
    let updated = app
        .http
        .put(
            registration["registration_client_uri"]
                .as_str()
                .unwrap()
                .replace(&app.config.issuer, &app.base),
        )
        .bearer_auth(registration["registration_access_token"].as_str().unwrap())
        .json(&json!({"client_id": id, "client_name": "renamed by the client"}))
        .send()
        .await
        .unwrap();
    assert_eq!(updated.status(), 401);
    let view = json_of(
        call(
            &app,
            &admin,
            Method::GET,
            &format!("/admin/clients/{id}"),
            None,
        )
        .await,
        200,
    )
    .await;
    assert_eq!(
        view["blocked"], true,
        "the block survives the client's attempt"
    );
    assert_ne!(view["name"], "renamed by the client");
    let token = app.client_credentials(&id, &secret).await;
    assert_eq!(token.status(), 401);
}

async fn revoked_admin_tokens_are_refused(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let admin = app.admin_token().await;
    assert_eq!(
        call(&app, &admin, Method::GET, "/admin/users", None)
            .await
            .status(),
        200
    );
    let revoked = app.revoke_as_web(&admin).await;
    assert_eq!(revoked.status(), 200);
    let refused = call(&app, &admin, Method::GET, "/admin/users", None).await;
    assert_eq!(refused.status(), 401);
    assert!(
        refused.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .contains("invalid_token")
    );
    let change = app
        .http
        .put(app.url("/users/me/password"))
        .bearer_auth(&admin)
        .json(&json!({"current_password": "root-password-1", "new_password": "another-password"}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        change.status(),
        401,
        "password change refuses a revoked token too"
    );
}
