#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The operators' console over plain HTTP, on both stores: every bad form or query gets a clear
//! 4xx and changes nothing; a created client's secret is shown once and never cached; the live
//! feed is a stream for administrators only; pages carry no inline script or style.

mod common;

use common::browser::Browser;
use common::{Backend, TestApp};
use gatehouse_core::Store;
use gatehouse_testkit::on_both_stores;

on_both_stores!(the_console_refuses_bad_input_and_changes_nothing);

const ROOT_PASSWORD: &str = "root-password-1";

/// A form the console must refuse: what is wrong, where it is posted, its fields, the status.
type Refusal<'a> = (&'a str, String, Vec<(&'a str, &'a str)>, u16);

async fn the_console_refuses_bad_input_and_changes_nothing(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.sign_up("root", ROOT_PASSWORD).await;
    app.set_roles("root", &["admin", "user"]).await;
    let nina = app.sign_up("nina", "nina-password-1").await;
    let nina_id = nina["id"].as_str().unwrap();
    let mut browser = Browser::new(&app);
    let signed_in = browser.sign_in("root", ROOT_PASSWORD).await;
    assert_eq!(signed_in.status, 303);

    // A client made through the console: 201, its secret once, never stored by the browser.
    let form = browser.get("/console/clients/new").await;
    assert_eq!(form.status, 200);
    let created = browser
        .submit(
            &form,
            "/console/clients",
            &[
                ("name", "Billing"),
                ("kind", "machine"),
                ("scope", "orders"),
            ],
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.body);
    assert_eq!(created.headers["cache-control"], "no-store");
    let client_id = between(&created.body, "<code id=\"client-id\">", "</code>");
    let secret = between(
        &created.body,
        "<code id=\"client-secret\" class=\"secret\">",
        "</code>",
    );
    app.machine_token(&client_id, &secret).await;
    let client_page = browser.get(&format!("/console/clients/{client_id}")).await;
    assert_eq!(client_page.status, 200);
    assert!(
        !client_page.body.contains(&secret),
        "the secret is shown again"
    );

    let before = app.snapshot().await;
    let client = format!("/console/clients/{client_id}");
    let user = format!("/console/users/{nina_id}");
    let refused: Vec<Refusal> = vec![
        (
            "kind",
            "/console/clients".into(),
            vec![("name", "x"), ("kind", "bogus")],
            422,
        ),
        (
            "no name",
            "/console/clients".into(),
            vec![("name", " "), ("kind", "machine")],
            422,
        ),
        (
            "code flow without a redirect URI",
            "/console/clients".into(),
            vec![("name", "Web"), ("kind", "web")],
            422,
        ),
        (
            "a scope that is not one",
            client.clone(),
            vec![("name", "Billing"), ("scope", "a\"b")],
            422,
        ),
        (
            "unknown role",
            client.clone(),
            vec![
                ("name", "Billing"),
                ("scope", "orders"),
                ("roles", "wizard"),
            ],
            422,
        ),
        (
            "blocked=maybe",
            format!("{client}/block"),
            vec![("blocked", "maybe")],
            400,
        ),
        (
            "delete unconfirmed",
            format!("{client}/delete"),
            vec![],
            422,
        ),
        (
            "unknown client",
            "/console/clients/nope/block".into(),
            vec![("blocked", "true")],
            404,
        ),
        (
            "unknown client secret",
            "/console/clients/nope/rotate-secret".into(),
            vec![],
            404,
        ),
        (
            "unknown user role",
            format!("{user}/roles"),
            vec![("roles", "wizard")],
            422,
        ),
        (
            "unknown user",
            "/console/users/nope/revoke-all".into(),
            vec![],
            404,
        ),
        (
            "unknown session",
            format!("{user}/sessions/revoke"),
            vec![("session", "nope")],
            404,
        ),
        (
            "role without a name",
            "/console/roles".into(),
            vec![("name", ""), ("scope", "x")],
            422,
        ),
        (
            "built-in role",
            "/console/roles/admin/delete".into(),
            vec![],
            409,
        ),
    ];
    for (what, path, fields, status) in &refused {
        let page = browser.get("/console").await;
        let answer = browser.submit(&page, path, fields).await;
        assert_eq!(answer.status, *status, "{what}: {}", answer.body);
        assert!(
            answer.body.contains("role=\"alert\""),
            "{what}: no message shown"
        );
    }
    for (what, path, status) in [
        ("audit cursor", "/console/audit?cursor=garbage", 400),
        ("audit time", "/console/audit?since=yesterday", 400),
        ("unknown client page", "/console/clients/nope", 404),
        ("unknown user page", "/console/users/nope", 404),
    ] {
        let answer = browser.get(path).await;
        assert_eq!(answer.status, status, "{what}: {}", answer.body);
    }
    // Not a form at all.
    let not_a_form = app
        .http
        .post(app.url("/console/keys/rotate"))
        .header("cookie", cookies(&browser))
        .header("origin", &app.base)
        .header("content-type", "text/plain")
        .body("csrf_token=x")
        .send()
        .await
        .unwrap();
    assert_eq!(not_a_form.status(), 400);
    assert_eq!(
        app.snapshot().await,
        before,
        "a refused request changed the store"
    );

    // The live feed: a stream for the admin, a sign-in for anyone else.
    let outsider = app
        .http
        .get(app.url("/console/feed/events"))
        .send()
        .await
        .unwrap();
    assert_eq!(outsider.status(), 303);
    let mut stream = app
        .http
        .get(app.url("/console/feed/events"))
        .header("cookie", cookies(&browser))
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), 200);
    assert!(
        stream.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    let mut seen = String::new();
    common::read_until(
        &mut stream,
        &mut seen,
        "event: ready",
        std::time::Duration::from_secs(10),
    )
    .await;
    // Where a reconnecting page resumes: the end of the (empty) replay.
    common::read_until(
        &mut stream,
        &mut seen,
        "id:",
        std::time::Duration::from_secs(10),
    )
    .await;
    drop(stream);

    // Blocking a user on the console reaches the feed; a page that reconnects from before it
    // gets it replayed.
    let page = browser.get(&user).await;
    let blocked = browser
        .submit(&page, &format!("{user}/block"), &[("blocked", "true")])
        .await;
    assert_eq!(blocked.status, 303, "{}", blocked.body);
    assert!(
        app.store
            .user(nina_id)
            .await
            .unwrap()
            .unwrap()
            .blocked_at
            .is_some()
    );
    let mut replay = app
        .http
        .get(app.url("/console/feed/events"))
        .header("cookie", cookies(&browser))
        .header("last-event-id", "0")
        .send()
        .await
        .unwrap();
    let mut seen = String::new();
    common::read_until(
        &mut replay,
        &mut seen,
        nina_id,
        std::time::Duration::from_secs(10),
    )
    .await;
    assert!(seen.contains("event: feed"), "{seen}");
    drop(replay);

    // Pages: the strict policy, one script file of our own, nothing inline.
    for path in [
        "/console",
        "/console/clients",
        "/console/users",
        &user,
        &client,
        "/console/roles",
        "/console/keys",
        "/console/audit",
        "/console/feed",
    ] {
        let page = browser.get(path).await;
        assert_eq!(page.status, 200, "{path}");
        assert!(
            page.headers["content-security-policy"]
                .to_str()
                .unwrap()
                .contains("default-src 'self'")
        );
        assert!(!page.body.contains("style="), "{path} has an inline style");
        for script in page.body.split("<script").skip(1) {
            assert!(
                script.starts_with(" src=\"/assets/console.js\" defer></script>"),
                "{path} has an inline script"
            );
        }
    }
    let script = browser.get("/assets/console.js").await;
    assert_eq!(script.status, 200);
    assert!(
        script.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/javascript")
    );

    // The changes that did go through are in the audit log, with who made them.
    let root = app.store.user_by_username("root").await.unwrap().unwrap();
    let audit = browser
        .get(&format!(
            "/console/audit?subject={client_id}&type=admin.client.created"
        ))
        .await;
    assert_eq!(audit.status, 200);
    assert!(audit.body.contains(&root.id), "{}", audit.body);
}

fn between(text: &str, start: &str, end: &str) -> String {
    let from = text
        .find(start)
        .unwrap_or_else(|| panic!("{start} not in {text}"))
        + start.len();
    let to = text[from..].find(end).unwrap() + from;
    text[from..to].to_owned()
}

fn cookies(browser: &Browser<'_>) -> String {
    browser
        .cookies
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("; ")
}
