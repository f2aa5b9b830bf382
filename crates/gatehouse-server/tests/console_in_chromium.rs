#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The operators' console in a real headless Chromium, driven over WebDriver, on SQLite: one
//! browser and one server run every step in sequence.
//!
//! A person without the admin role is refused; an administrator creates a client (its secret
//! shown once), blocks it, and its token dies: the revocation feed that gateways follow carries
//! the client's cut-off, and the server's own introspection calls the token inactive (the
//! gateway itself is not started here: it acts on exactly that feed event). Then a key rotation,
//! the block found in the audit log, the live feed, a user blocked, and a forged form refused.
//! Each page is checked at 1280 and 390 px wide (no sideways overflow, labelled inputs, controls
//! big enough to hit) and saved as `target/screenshots/console-<page>-<width>.png`.

mod common;

use std::time::Duration;

use common::{Backend, TestApp, read_until, subscribe};
use gatehouse_core::Store;
use gatehouse_testkit::browser::Browser;
use serde_json::json;

const ROOT: &str = "root";
const ROOT_PASSWORD: &str = "root-password-1";
const NINA: &str = "nina";
const NINA_PASSWORD: &str = "nina-password-1";
const CLIENT_NAME: &str = "Console test client";

/// How long a page may take to arrive after a click, and a feed event after a change.
const TIMEOUT: Duration = Duration::from_secs(10);

#[tokio::test]
async fn the_console_in_chromium() {
    let Some(browser) = Browser::start().await.unwrap() else {
        eprintln!("no Chromium: the console test is skipped");
        return;
    };
    let app = TestApp::spawn_with(Backend::Sqlite, |c| {
        c.registration
            .allowed_scopes
            .push("revocations:read".into());
    })
    .await;
    app.sign_up(ROOT, ROOT_PASSWORD).await;
    app.set_roles(ROOT, &["admin", "user"]).await;
    let nina = app.sign_up(NINA, NINA_PASSWORD).await;
    let nina_id = nina["id"].as_str().unwrap().to_owned();
    // A gateway's view: the revocation feed, read by a client that may read it (and introspect).
    let (reader, reader_secret) = app.register_introspector("revocations:read").await;
    let mut feed = subscribe(&app, &reader, &reader_secret, None).await;
    let mut feed_text = String::new();
    let pages = Pages {
        browser: &browser,
        app: &app,
    };

    a_person_without_the_role_is_refused(&pages).await;
    pages.sign_in(ROOT, ROOT_PASSWORD, "/console").await;
    assert_eq!(pages.text("h1").await, "Dashboard");
    pages.shoot("dashboard").await;

    let (client_id, secret) = create_a_client(&pages).await;
    let token = app.machine_token(&client_id, &secret).await;
    assert_eq!(
        app.introspect(&reader, &reader_secret, &token).await["active"],
        true
    );

    // Block it on its page: the feed tells gateways, and the token is dead.
    pages.shoot("client").await;
    browser.click("#block").await.unwrap();
    pages.wait_for_text("#client-status", "Blocked").await;
    assert!(pages.text("#notice").await.contains("blocked"));
    read_until(
        &mut feed,
        &mut feed_text,
        &format!("\"subject\":\"{client_id}\""),
        TIMEOUT,
    )
    .await;
    let cutoff = feed_text
        .lines()
        .find(|l| l.contains(&client_id))
        .unwrap()
        .to_owned();
    assert!(cutoff.contains("subject_cutoff"), "{cutoff}");
    assert_eq!(
        app.introspect(&reader, &reader_secret, &token).await["active"],
        false,
        "the blocked client's token is still active"
    );
    assert_eq!(
        app.client_credentials(&client_id, &secret).await.status(),
        401
    );

    rotate_the_signing_key(&pages).await;
    find_the_block_in_the_audit_log(&pages, &client_id).await;
    follow_the_feed_live(&pages, &client_id, &nina_id).await;
    block_a_user(&pages, &nina_id).await;
    a_forged_form_changes_nothing(&pages).await;
    the_dashboard_counts_what_happened(&pages).await;

    browser.close().await.unwrap();
}

/// Signed out: to the sign-in page and back. Signed in without the role: 403, for pages and
/// for forms alike.
async fn a_person_without_the_role_is_refused(pages: &Pages<'_>) {
    let app = pages.app;
    let response = app.http.get(app.url("/console/keys")).send().await.unwrap();
    assert_eq!(response.status(), 303);
    assert_eq!(
        response.headers()["location"],
        "/signin?return_to=%2Fconsole%2Fkeys"
    );

    pages
        .browser
        .goto(&app.url("/console/clients"))
        .await
        .unwrap();
    pages.wait_for_url("/signin?return_to=").await;
    pages.sign_in_here(NINA, NINA_PASSWORD).await;
    pages.wait_for_url("/console/clients").await;
    assert_eq!(pages.text("h1").await, "Administrators only");
    assert!(pages.text(".alert").await.contains("admin role"));
    pages.shoot("refused").await;

    let cookie = pages.cookie_header().await;
    let keys_before = app.store.signing_keys().await.unwrap().len();
    for (method, path) in [("GET", "/console"), ("POST", "/console/keys/rotate")] {
        let request = match method {
            "GET" => app.http.get(app.url(path)),
            _ => app
                .http
                .post(app.url(path))
                .header("origin", &app.base)
                .form(&[("csrf_token", "whatever")]),
        };
        let response = request.header("cookie", &cookie).send().await.unwrap();
        assert_eq!(response.status(), 403, "{method} {path}");
    }
    assert_eq!(app.store.signing_keys().await.unwrap().len(), keys_before);

    pages.browser.click("#sign-out").await.unwrap();
    pages.wait_for_url("/signin?signed_out").await;
}

/// A new machine client through the form: a refused value first, then its secret, once.
async fn create_a_client(pages: &Pages<'_>) -> (String, String) {
    let browser = pages.browser;
    browser
        .click(".console-menu a[href='/console/clients']")
        .await
        .unwrap();
    pages.wait_for_text("h1", "Clients").await;
    browser.click("#new-client").await.unwrap();
    pages.wait_for_text("h1", "New client").await;
    pages.shoot("new-client").await;

    // No name: refused beside the form, nothing created.
    browser.fill("#scope", "rates:read").await.unwrap();
    browser.click("#create-client").await.unwrap();
    assert!(
        pages
            .wait_for_text("#problem", "Name")
            .await
            .contains("Name")
    );
    assert_eq!(pages.value("#scope").await, "rates:read");

    browser.fill("#name", CLIENT_NAME).await.unwrap();
    browser.click("#create-client").await.unwrap();
    pages.wait_for_text("h1", CLIENT_NAME).await;
    let client_id = pages.text("#client-id").await;
    let secret = pages.text("#client-secret").await;
    assert!(secret.len() >= 40, "{secret}");
    let client = pages.app.store.client(&client_id).await.unwrap().unwrap();
    assert_eq!(client.name, CLIENT_NAME);
    assert_eq!(
        pages
            .app
            .store
            .list_clients("", 200)
            .await
            .unwrap()
            .iter()
            .filter(|c| c.name == CLIENT_NAME)
            .count(),
        1
    );
    let to_client = browser.find("#to-client").await.unwrap();
    let href = to_client.attr("href").await.unwrap().unwrap();
    assert_eq!(href, format!("/console/clients/{client_id}"));
    pages.shoot("client-secret").await;

    // Listed and found by search.
    browser
        .goto(&pages.app.url("/console/clients?q=console+TEST"))
        .await
        .unwrap();
    let rows = pages.texts("#clients tbody tr").await;
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert!(rows[0].contains(&client_id));
    pages.shoot("clients").await;
    browser
        .goto(&pages.app.url("/console/clients?q=nothing-like-it"))
        .await
        .unwrap();
    assert!(pages.text(".empty").await.contains("No client matches"));
    browser.goto(&pages.app.url(&href)).await.unwrap();
    pages.wait_for_text("h1", CLIENT_NAME).await;
    (client_id, secret)
}

async fn rotate_the_signing_key(pages: &Pages<'_>) {
    let browser = pages.browser;
    browser
        .click(".console-menu a[href='/console/keys']")
        .await
        .unwrap();
    pages.wait_for_text("h1", "Signing keys").await;
    let before = pages.texts("#keys tbody tr").await;
    assert!(
        before.iter().any(|row| row.contains("signing")),
        "{before:?}"
    );
    browser.click("#rotate-key").await.unwrap();
    pages.wait_for_text("#notice", "new key").await;
    let after = pages.texts("#keys tbody tr").await;
    assert_eq!(after.len(), before.len() + 1, "{after:?}");
    assert!(
        after[0].contains("pending"),
        "the newest key waits to sign: {after:?}"
    );
    assert_eq!(
        pages.app.store.signing_keys().await.unwrap().len(),
        after.len()
    );
    pages.shoot("keys").await;
}

async fn find_the_block_in_the_audit_log(pages: &Pages<'_>, client_id: &str) {
    let browser = pages.browser;
    browser
        .click(".console-menu a[href='/console/audit']")
        .await
        .unwrap();
    pages.wait_for_text("h1", "Audit log").await;
    assert!(pages.count("#audit tbody tr").await > 1);
    browser.fill("#subject", client_id).await.unwrap();
    browser.fill("#type", "admin.client.blocked").await.unwrap();
    browser.click("#filter").await.unwrap();
    pages.wait_for_url("/console/audit?subject=").await;
    let rows = pages.texts("#audit tbody tr").await;
    assert_eq!(rows.len(), 1, "{rows:?}");
    let root = pages
        .app
        .store
        .user_by_username(ROOT)
        .await
        .unwrap()
        .unwrap();
    assert!(rows[0].contains("admin.client.blocked"), "{rows:?}");
    assert!(
        rows[0].contains(&format!("{ROOT} {}", root.id)),
        "the block names who did it: {rows:?}"
    );
    pages.shoot("audit").await;

    // A time it cannot read is named, and nothing is listed.
    browser.fill("#since", "last tuesday").await.unwrap();
    browser.click("#filter").await.unwrap();
    assert!(
        pages
            .wait_for_text("#problem", "last tuesday")
            .await
            .contains("YYYY-MM-DD")
    );
}

/// The feed page lists the block without script, and its script shows a new revocation as it
/// happens.
async fn follow_the_feed_live(pages: &Pages<'_>, client_id: &str, nina_id: &str) {
    let app = pages.app;
    let browser = pages.browser;
    browser
        .click(".console-menu a[href='/console/feed']")
        .await
        .unwrap();
    pages.wait_for_text("h1", "Revocation feed").await;
    let recent = pages.texts("#recent-feed li").await;
    assert!(
        recent
            .iter()
            .any(|e| e.contains("subject_cutoff") && e.contains(client_id)),
        "{recent:?}"
    );
    pages.wait_for_text("#live-state", "connected").await;

    let tokens = app.login(ROOT, ROOT_PASSWORD).await;
    let admin_token = tokens["access_token"].as_str().unwrap();
    let response = app
        .http
        .post(app.url("/admin/revoke-all"))
        .bearer_auth(admin_token)
        .json(&json!({ "subject": nina_id }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
    // New entries come first, but another may come after this one: any entry may be it.
    pages.wait_for_text("#live-feed", nina_id).await;
    let live = pages.texts("#live-feed li").await;
    assert!(
        live.iter()
            .any(|e| e.contains(nina_id) && e.contains("subject_cutoff")),
        "{live:?}"
    );
    pages.shoot("feed").await;
}

async fn block_a_user(pages: &Pages<'_>, nina_id: &str) {
    let browser = pages.browser;
    browser
        .goto(&pages.app.url("/console/users?q=NINA"))
        .await
        .unwrap();
    let rows = pages.texts("#users tbody tr").await;
    assert_eq!(rows.len(), 1, "{rows:?}");
    pages.shoot("users").await;
    browser.click("#users a").await.unwrap();
    pages.wait_for_text("h1", NINA).await;
    browser.click("#block").await.unwrap();
    pages.wait_for_text("#user-status", "Blocked").await;
    let nina = pages.app.store.user(nina_id).await.unwrap().unwrap();
    assert!(nina.blocked_at.is_some());
    pages.shoot("user").await;
}

/// Two tokens were issued (one by client credentials, one by password) and three sign-ins
/// passed (two in the browser, one by the password grant); none failed.
async fn the_dashboard_counts_what_happened(pages: &Pages<'_>) {
    pages
        .browser
        .goto(&pages.app.url("/console"))
        .await
        .unwrap();
    let tiles = pages.texts(".tiles > div").await;
    for expected in [
        "Tokens issued since start\n2",
        "Sign-ins since start\n3",
        "Failed sign-ins since start\n0",
        "Revocation feed subscribers\n1",
    ] {
        assert!(
            tiles.iter().any(|t| t == expected),
            "{expected:?} is not among {tiles:?}"
        );
    }
    // The one-second chart has points by now (the sampler runs from the server's start).
    pages
        .wait_for_text("#chart-tokens .legend", "client_credentials")
        .await;
    assert_eq!(pages.count("#chart-tokens polyline.series").await, 4);
    pages.shoot("dashboard-later").await;
}

/// A form post without the page's token, or from another site, is refused and changes nothing.
async fn a_forged_form_changes_nothing(pages: &Pages<'_>) {
    let app = pages.app;
    let cookie = pages.cookie_header().await;
    let keys_before = app.store.signing_keys().await.unwrap().len();
    for (origin, token) in [(app.base.as_str(), ""), ("https://evil.example", "x")] {
        let response = app
            .http
            .post(app.url("/console/keys/rotate"))
            .header("cookie", &cookie)
            .header("origin", origin)
            .form(&[("csrf_token", token)])
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 403, "from {origin}");
    }
    assert_eq!(app.store.signing_keys().await.unwrap().len(), keys_before);
}

struct Pages<'a> {
    browser: &'a Browser,
    app: &'a TestApp,
}

impl Pages<'_> {
    /// Signs in on the sign-in page, coming back to `to`.
    async fn sign_in(&self, username: &str, password: &str, to: &str) {
        let return_to: String = url::form_urlencoded::byte_serialize(to.as_bytes()).collect();
        self.browser
            .goto(&self.app.url(&format!("/signin?return_to={return_to}")))
            .await
            .unwrap();
        self.sign_in_here(username, password).await;
        self.wait_for_url(to).await;
    }

    async fn sign_in_here(&self, username: &str, password: &str) {
        self.browser.fill("#username", username).await.unwrap();
        self.browser.fill("#password", password).await.unwrap();
        self.browser.click("button[type=submit]").await.unwrap();
    }

    /// The browser's cookies for this server, as a `Cookie` header.
    async fn cookie_header(&self) -> String {
        self.browser
            .cookies()
            .await
            .unwrap()
            .iter()
            .map(|c| format!("{}={}", c.name(), c.value()))
            .collect::<Vec<_>>()
            .join("; ")
    }

    async fn text(&self, css: &str) -> String {
        self.browser.text_of(css).await.unwrap()
    }

    async fn texts(&self, css: &str) -> Vec<String> {
        self.browser.texts(css).await.unwrap()
    }

    /// How many elements match `css` (SVG ones too, which have no text).
    async fn count(&self, css: &str) -> usize {
        let found = self
            .browser
            .script(
                "return document.querySelectorAll(arguments[0]).length;",
                vec![json!(css)],
            )
            .await
            .unwrap();
        usize::try_from(found.as_u64().unwrap()).unwrap()
    }

    async fn value(&self, css: &str) -> String {
        let field = self.browser.find(css).await.unwrap();
        field.prop("value").await.unwrap().unwrap_or_default()
    }

    /// Waits until the page's address (past the origin) starts with `prefix`.
    async fn wait_for_url(&self, prefix: &str) -> String {
        self.browser
            .wait_for_url(&self.app.url(prefix))
            .await
            .unwrap()
    }

    /// Waits until the first element matching `css` shows `needle`; returns its text.
    async fn wait_for_text(&self, css: &str, needle: &str) -> String {
        self.browser.wait_for_text(css, needle).await.unwrap()
    }

    /// Checks the page at a laptop's and a phone's width and saves a screenshot of each, as
    /// `console-<page>-<width>.png`.
    async fn shoot(&self, page: &str) {
        self.browser
            .check_layout(page, Some(&format!("console-{page}")))
            .await
            .unwrap();
    }
}
