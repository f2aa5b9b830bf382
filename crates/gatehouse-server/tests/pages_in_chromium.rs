#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The hosted pages in a real headless Chromium, driven over WebDriver, with a small relying
//! party ("Test shop", a confidential client on a loopback port of its own) that signs people in
//! with the authorization code flow, PKCE, state and nonce, and signs them out again.
//!
//! One test per store runs every step in sequence with one browser and one server: a browser
//! belongs to the runtime of the test that started it. The SQLite leg also saves a screenshot of
//! each kind of page at 1280x900 and at 390x844 as `target/screenshots/pages-<page>-<width>.png`;
//! both legs check at both widths that nothing overflows sideways, that every input has a label
//! and that every button is big enough to hit.

mod common;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::get;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use common::browser::challenge;
use common::{Backend, TestApp};
use gatehouse_core::{AuthMethod, Client, GrantType, Store};
use gatehouse_testkit::browser::Browser;
use gatehouse_testkit::on_both_stores;
use serde_json::{Value, json};

on_both_stores!(the_hosted_pages_sign_people_in_and_out_in_chromium);

const CLIENT_ID: &str = "test-shop";
const CLIENT_NAME: &str = "Test shop";
/// What the relying party's back end calls itself when it redeems codes and refreshes tokens:
/// the device the account page shows for its sessions.
const RP_USER_AGENT: &str = "TestShop/1.0";
const USERNAME: &str = "carol";
const EMAIL: &str = "carol@example.com";
const PASSWORD: &str = "carol-password-1";

/// WebDriver's codes for the Enter and Tab keys.
const ENTER: &str = "\u{e007}";
const TAB: &str = "\u{e004}";

/// How long a page may take to arrive after a click or a key.
const PAGE_TIMEOUT: Duration = Duration::from_secs(10);

async fn the_hosted_pages_sign_people_in_and_out_in_chromium(backend: Backend) {
    let started = Instant::now();
    let Some(browser) = Browser::start().await.unwrap() else {
        eprintln!("no Chromium: the page test is skipped");
        return;
    };
    let app = TestApp::spawn(backend).await;
    let rp = RelyingParty::start(&app).await;
    let form_posts = how_the_pages_forms_post(&app, &rp, &browser).await;
    let pages = Pages {
        browser: &browser,
        save_screenshots: matches!(backend, Backend::Sqlite),
        form_posts,
    };

    sign_up_through_the_relying_party(&app, &rp, &pages).await;
    an_unregistered_redirect_is_an_error_page(&app, &rp, &pages).await;
    sign_out_through_the_relying_party(&app, &rp, &pages).await;
    a_wrong_password_is_refused_on_the_page(&app, &pages).await;
    sign_in_with_the_keyboard_without_consent(&app, &rp, &pages).await;
    revoke_the_application_session_on_the_account_page(&app, &rp, &pages).await;
    sign_out_on_the_pages(&app, &pages).await;

    browser.close().await.unwrap();
    eprintln!("the page test took {:?}", started.elapsed());
}

/// What the browser says of where a form on the pages comes from when it posts one: a form
/// made on the sign-in page (so under the pages' own headers) is posted to the relying party,
/// which notes the `Origin` and `Sec-Fetch-Site` it gets. Told when a page refuses its own form.
async fn how_the_pages_forms_post(app: &TestApp, rp: &RelyingParty, browser: &Browser) -> String {
    browser.goto(&app.url("/signin")).await.unwrap();
    browser
        .client()
        .execute(
            "const form = document.createElement('form');
             form.method = 'post';
             form.action = arguments[0];
             document.body.append(form);
             form.submit();",
            vec![json!(rp.url("/echo"))],
        )
        .await
        .unwrap();
    let deadline = Instant::now() + PAGE_TIMEOUT;
    loop {
        if let Some(seen) = rp.form_posts.lock().unwrap().pop() {
            return seen;
        }
        assert!(
            Instant::now() < deadline,
            "the probe's form post never arrived"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Step 1: from the relying party's sign-in link to a new account, consent, and back, signed in.
async fn sign_up_through_the_relying_party(app: &TestApp, rp: &RelyingParty, pages: &Pages<'_>) {
    let browser = pages.browser;
    browser.goto(&rp.url("/login")).await.unwrap();
    pages.wait_for_url(&app.url("/signin?")).await;
    assert_eq!(browser.text_of("h1").await.unwrap(), "Sign in");
    let lead = browser.text_of(".lead").await.unwrap();
    assert!(
        lead.contains(CLIENT_NAME),
        "the sign-in page names the application: {lead}"
    );
    pages.shoot("sign-in").await;

    browser.click("a[href^='/signup']").await.unwrap();
    pages.wait_for_url(&app.url("/signup?")).await;
    assert_eq!(browser.text_of("h1").await.unwrap(), "Create an account");
    pages.shoot("sign-up").await;

    // A password that is too short: the error is beside its field, the other values stay.
    browser.fill("#username", USERNAME).await.unwrap();
    browser.fill("#email", EMAIL).await.unwrap();
    browser.fill("#password", "short").await.unwrap();
    browser.click("button[type=submit]").await.unwrap();
    assert_eq!(
        pages.wait_for_text("#password-error", "8").await,
        "Password must be at least 8 characters"
    );
    assert_eq!(pages.count("#username-error, #email-error").await, 0);
    assert_eq!(
        pages.text(".alert").await,
        "Please correct the fields marked below."
    );
    let password = browser.find("#password").await.unwrap();
    assert_eq!(
        password.attr("aria-invalid").await.unwrap().as_deref(),
        Some("true")
    );
    let described_by = password.attr("aria-describedby").await.unwrap().unwrap();
    assert!(described_by.contains("password-error"), "{described_by}");
    // Next to the field: in its block, just under it.
    let placement = pages
        .script(
            "const input = document.getElementById('password');
             const error = document.getElementById('password-error');
             const gap = error.getBoundingClientRect().top - input.getBoundingClientRect().bottom;
             return { same_field: input.closest('.field') === error.closest('.field'), gap };",
        )
        .await;
    assert_eq!(placement["same_field"], true, "{placement}");
    let gap = placement["gap"].as_f64().unwrap();
    assert!(
        (0.0..=40.0).contains(&gap),
        "the error is {gap}px below the field"
    );
    assert_eq!(pages.value("#username").await, USERNAME);
    assert_eq!(pages.value("#email").await, EMAIL);
    assert_eq!(
        pages.value("#password").await,
        "",
        "a refused password is not sent back"
    );
    assert!(
        app.store
            .user_by_username(USERNAME)
            .await
            .unwrap()
            .is_none()
    );
    pages.shoot("sign-up-errors").await;

    browser.fill("#password", PASSWORD).await.unwrap();
    browser.click("button[type=submit]").await.unwrap();
    pages.wait_for_url(&app.url("/oauth2/authorize?")).await;

    // Consent: the application, the person, and each scope in words.
    let heading = browser.text_of("h1").await.unwrap();
    assert_eq!(heading, format!("Allow {CLIENT_NAME} to use your account?"));
    assert!(
        pages
            .text(".lead")
            .await
            .starts_with(&format!("Signed in as {USERNAME}."))
    );
    let scopes = pages.texts(".scopes li").await;
    for words in [
        "Know who you are: your account's identifier",
        "See your username",
        "See your email address",
        "Place orders and see your orders",
    ] {
        assert!(
            scopes.iter().any(|line| line.starts_with(words)),
            "{words:?} is not among {scopes:?}"
        );
    }
    assert_eq!(scopes.len(), 4, "{scopes:?}");
    pages.shoot("consent").await;

    browser
        .click("button[name=decision][value=allow]")
        .await
        .unwrap();
    pages.wait_for_url(&rp.url("/callback?")).await;
    assert_eq!(
        pages.wait_for_text("#who", USERNAME).await,
        format!("Signed in as {USERNAME}")
    );
    let tokens = rp.sign_ins();
    assert_eq!(tokens.len(), 1);
    let first = &tokens[0];
    assert!(!first.access_token.is_empty() && !first.refresh_token.is_empty());
    assert_eq!(first.id_token.split('.').count(), 3);
    assert_eq!(first.scope, "email openid orders profile");
    assert!(
        app.store
            .user_by_username(USERNAME)
            .await
            .unwrap()
            .is_some()
    );
}

/// An authorization request with a redirect URI the client did not register: an error page on
/// the server, and nobody is sent anywhere.
async fn an_unregistered_redirect_is_an_error_page(
    app: &TestApp,
    rp: &RelyingParty,
    pages: &Pages<'_>,
) {
    let browser = pages.browser;
    let mut request = url::Url::parse(&app.url("/oauth2/authorize")).unwrap();
    request
        .query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", CLIENT_ID)
        .append_pair("redirect_uri", &rp.url("/elsewhere"))
        .append_pair("scope", "openid orders")
        .append_pair("state", "s")
        .append_pair("code_challenge", &challenge(&random()))
        .append_pair("code_challenge_method", "S256");
    browser.goto(request.as_str()).await.unwrap();
    assert_eq!(browser.current_url().await.unwrap(), request.as_str());
    assert_eq!(
        browser.text_of("h1").await.unwrap(),
        "This request cannot be completed"
    );
    let alert = pages.text("[role=alert]").await;
    assert!(
        alert.contains("redirect_uri is not one this client registered"),
        "{alert}"
    );
    assert_eq!(pages.text("code").await, "invalid_request");
    pages.shoot("error").await;
}

/// Step 3: RP-initiated logout with the ID token as hint: no question asked, back at the
/// relying party, and the browser is signed out of the server.
async fn sign_out_through_the_relying_party(app: &TestApp, rp: &RelyingParty, pages: &Pages<'_>) {
    let browser = pages.browser;
    browser.goto(&rp.url("/logout")).await.unwrap();
    pages.wait_for_url(&rp.url("/?state=")).await;
    assert_eq!(
        pages.wait_for_text("#signed-out", "Signed out").await,
        "Signed out"
    );
    assert!(
        rp.logout_states.lock().unwrap().is_empty(),
        "the state came back"
    );
    // The first sign-in's tokens died with the browser's sign-in.
    let first = rp.sign_ins()[0].clone();
    rp.refresh_fails(&first.refresh_token).await;

    browser.goto(&app.url("/account")).await.unwrap();
    pages.wait_for_url(&app.url("/signin?")).await;
    assert_eq!(browser.text_of("h1").await.unwrap(), "Sign in");
    assert_eq!(
        browser.current_url().await.unwrap(),
        app.url("/signin?return_to=%2Faccount")
    );
    // Nobody to name: this sign-in is for the account page.
    assert_eq!(pages.count(".lead").await, 0);
}

/// Step 4: a wrong password reads the same as an unknown user, and the page stays.
async fn a_wrong_password_is_refused_on_the_page(app: &TestApp, pages: &Pages<'_>) {
    let browser = pages.browser;
    browser.fill("#username", USERNAME).await.unwrap();
    browser.fill("#password", "not-the-password").await.unwrap();
    browser.click("button[type=submit]").await.unwrap();
    // The API's message, shown as a sentence (the stylesheet capitalises its first letter).
    let error = pages
        .wait_for_text("#signin-error", "The username or password is incorrect")
        .await;
    assert_eq!(error, "The username or password is incorrect");
    assert_eq!(browser.current_url().await.unwrap(), app.url("/signin"));
    assert_eq!(browser.text_of("h1").await.unwrap(), "Sign in");
    assert_eq!(pages.value("#username").await, USERNAME);
    assert_eq!(pages.value("#password").await, "");
    let username = browser.find("#username").await.unwrap();
    assert_eq!(
        username.attr("aria-describedby").await.unwrap().as_deref(),
        Some("signin-error")
    );
    // With the username known, the cursor waits in the password field.
    assert_eq!(pages.focused().await, "password");
    pages.shoot("sign-in-failed").await;
}

/// Steps 2 and 5: the sign-in page by keyboard (labelled fields, Tab order, Enter submits), and
/// a second sign-in through the relying party that skips the consent already given.
async fn sign_in_with_the_keyboard_without_consent(
    app: &TestApp,
    rp: &RelyingParty,
    pages: &Pages<'_>,
) {
    let browser = pages.browser;
    browser.goto(&rp.url("/login")).await.unwrap();
    pages.wait_for_url(&app.url("/signin?")).await;
    assert!(pages.text(".lead").await.contains(CLIENT_NAME));
    for field in ["username", "password"] {
        let label = pages.text(&format!("label[for={field}]")).await;
        assert!(!label.is_empty(), "{field} has no label");
    }
    assert_eq!(pages.text("label[for=username]").await, "Username");
    assert_eq!(pages.text("label[for=password]").await, "Password");
    // The empty form starts in the username field, and Tab goes on to the password.
    assert_eq!(pages.focused().await, "username");
    let username = browser.find("#username").await.unwrap();
    username.send_keys(USERNAME).await.unwrap();
    username.send_keys(TAB).await.unwrap();
    assert_eq!(pages.focused().await, "password");
    let password = browser.find("#password").await.unwrap();
    password.send_keys(PASSWORD).await.unwrap();
    password.send_keys(ENTER).await.unwrap();

    // Straight back: signed in, and the consent is remembered.
    pages.wait_for_url(&rp.url("/callback?")).await;
    assert_eq!(
        pages.wait_for_text("#who", USERNAME).await,
        format!("Signed in as {USERNAME}")
    );
    assert_eq!(rp.sign_ins().len(), 2);
}

/// Step 5: the account page lists the relying party's session; revoking it there ends its
/// refresh token.
async fn revoke_the_application_session_on_the_account_page(
    app: &TestApp,
    rp: &RelyingParty,
    pages: &Pages<'_>,
) {
    let browser = pages.browser;
    let second = rp.sign_ins()[1].clone();
    // Alive before: the relying party can read the person's details.
    assert_eq!(rp.userinfo(&second.access_token).await.0, 200);

    browser.goto(&app.url("/account")).await.unwrap();
    assert_eq!(browser.text_of("h1").await.unwrap(), "Your account");
    assert_eq!(pages.text("#profile-username").await, USERNAME);
    assert_eq!(pages.text("header .who").await, USERNAME);
    let browsers = pages.texts("#browsers-heading + .rows li").await;
    assert_eq!(browsers.len(), 1, "{browsers:?}");
    assert!(
        browsers[0].contains("Headless Chrome on Linux") && browsers[0].contains("This browser"),
        "{browsers:?}"
    );
    // The session of the first sign-in ended with its logout: only the second is listed.
    let sessions = pages.texts("#sessions > li").await;
    assert_eq!(sessions.len(), 1, "{sessions:?}");
    assert!(sessions[0].contains(CLIENT_NAME), "{sessions:?}");
    // Shown with the browser the person signed in with, not the application's server.
    assert!(
        sessions[0].contains("Headless Chrome on Linux")
            && !sessions[0].contains(RP_USER_AGENT)
            && sessions[0].contains("127.0.0.1"),
        "the session's device and address: {sessions:?}"
    );
    let consents = pages.texts("#consents > li").await;
    assert_eq!(consents.len(), 1, "{consents:?}");
    assert!(consents[0].contains(CLIENT_NAME), "{consents:?}");
    let revoke = "#sessions form[action='/account/sessions/revoke'] button";
    let label = browser
        .find(revoke)
        .await
        .unwrap()
        .attr("aria-label")
        .await
        .unwrap()
        .unwrap();
    assert!(
        label.starts_with(&format!("Revoke the session of {CLIENT_NAME}")),
        "{label}"
    );
    pages.shoot("account").await;

    browser.click(revoke).await.unwrap();
    pages.wait_for_url(&app.url("/account?done=session")).await;
    assert_eq!(
        pages.wait_for_text(".notice", "revoked").await,
        "The session is revoked."
    );
    assert_eq!(pages.count("#sessions > li").await, 0);
    assert_eq!(
        pages.text("#sessions-heading + .empty").await,
        "No application is signed in as you."
    );
    // The browser itself stays signed in.
    assert_eq!(pages.count("#browsers-heading + .rows li").await, 1);
    pages.shoot("account-revoked").await;

    rp.refresh_fails(&second.refresh_token).await;
    let (status, _) = rp.userinfo(&second.access_token).await;
    assert_eq!(
        status, 401,
        "the revoked session's access token still reads userinfo"
    );
}

/// The pages' own sign-out: the logout question (asked without an ID token hint), the header's
/// sign-out button, and the signed-out page.
async fn sign_out_on_the_pages(app: &TestApp, pages: &Pages<'_>) {
    let browser = pages.browser;
    browser.goto(&app.url("/oauth2/logout")).await.unwrap();
    assert_eq!(
        browser.text_of("h1").await.unwrap(),
        "Sign out of Gatehouse?"
    );
    pages.shoot("logout").await;
    browser.click("a.button[href='/account']").await.unwrap();
    pages.wait_for_url(&app.url("/account")).await;
    assert_eq!(browser.text_of("h1").await.unwrap(), "Your account");

    browser.click("#sign-out").await.unwrap();
    pages.wait_for_url(&app.url("/signin?signed_out=1")).await;
    assert_eq!(pages.text(".notice").await, "You have signed out.");
    let cookies = browser.cookies().await.unwrap();
    assert!(
        cookies.iter().all(|c| c.name() != "gatehouse_session"),
        "the session cookie is gone"
    );

    // Not signed in and no application named: the signed-out page.
    browser.goto(&app.url("/oauth2/logout")).await.unwrap();
    assert_eq!(browser.text_of("h1").await.unwrap(), "You are signed out");
    pages.shoot("signed-out").await;
    browser.click("a.button[href='/signin']").await.unwrap();
    pages.wait_for_url(&app.url("/signin")).await;
    assert_eq!(browser.text_of("h1").await.unwrap(), "Sign in");
}

/// The browser, with what the steps ask of pages beyond the test kit's helpers.
struct Pages<'a> {
    browser: &'a Browser,
    save_screenshots: bool,
    /// How the browser posts the pages' forms, from [`how_the_pages_forms_post`].
    form_posts: String,
}

impl Pages<'_> {
    /// Runs `body` as a function in the page and returns its result.
    async fn script(&self, body: &str) -> Value {
        self.browser
            .client()
            .execute(body, Vec::new())
            .await
            .unwrap_or_else(|e| panic!("running a script in the page: {e}"))
    }

    /// The visible text of the first element matching `css`, waiting for it.
    async fn text(&self, css: &str) -> String {
        self.browser.text_of(css).await.unwrap()
    }

    /// The visible text of every element matching `css`, as it is now.
    async fn texts(&self, css: &str) -> Vec<String> {
        self.browser.texts(css).await.unwrap()
    }

    async fn count(&self, css: &str) -> usize {
        self.texts(css).await.len()
    }

    /// The current value of the input matching `css`.
    async fn value(&self, css: &str) -> String {
        let field = self.browser.find(css).await.unwrap();
        field.prop("value").await.unwrap().unwrap_or_default()
    }

    /// The id of the element that has the keyboard focus.
    async fn focused(&self) -> String {
        let id = self
            .script("return document.activeElement ? document.activeElement.id : null;")
            .await;
        id.as_str().unwrap_or_default().to_owned()
    }

    /// What explains a page the test did not expect, when something does.
    fn why(&self, body: &[String]) -> String {
        if body
            .iter()
            .any(|text| text.contains("This form cannot be accepted"))
        {
            format!(
                "\n\nA page refused a form it had just served as a forgery. Posting a form from \
                 the pages, this browser sends {}; the pages accept their own origin, or \
                 `Origin: null` with `Sec-Fetch-Site: same-origin` (what browsers send under \
                 `Referrer-Policy: no-referrer`).",
                self.form_posts
            )
        } else {
            String::new()
        }
    }

    /// Waits until the browser shows a page whose address starts with `prefix`; returns it.
    async fn wait_for_url(&self, prefix: &str) -> String {
        let deadline = Instant::now() + PAGE_TIMEOUT;
        loop {
            let url = self.browser.current_url().await.unwrap();
            if url.starts_with(prefix) {
                return url;
            }
            if Instant::now() > deadline {
                let body = self.texts("body").await;
                let why = self.why(&body);
                panic!("waited for {prefix} but the browser shows {url}: {body:?}{why}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until the element matching `css` shows `needle`; returns its text.
    async fn wait_for_text(&self, css: &str, needle: &str) -> String {
        let deadline = Instant::now() + PAGE_TIMEOUT;
        loop {
            if let Some(text) = self.texts(css).await.into_iter().next()
                && text.contains(needle)
            {
                return text;
            }
            if Instant::now() > deadline {
                let url = self.browser.current_url().await.unwrap();
                let body = self.texts("body").await;
                let why = self.why(&body);
                panic!("waited for {needle:?} in {css} on {url}: {body:?}{why}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Checks the layout at a laptop's and a phone's width (see `Browser::check_layout`); on
    /// the SQLite leg, saves screenshots as `pages-<page>-<width>`.
    async fn shoot(&self, page: &str) {
        let save_as = format!("pages-{page}");
        self.browser
            .check_layout(page, self.save_screenshots.then_some(save_as.as_str()))
            .await
            .unwrap();
    }
}

/// A fresh random value for PKCE verifiers, states and nonces: 43 base64url characters.
fn random() -> String {
    gatehouse_core::secret::random_secret().unwrap()
}

/// One sign-in's tokens, as the relying party keeps them.
#[derive(Debug, Clone)]
struct SignIn {
    access_token: String,
    refresh_token: String,
    id_token: String,
    scope: String,
}

/// What the relying party remembers of a sign-in it started, until the browser comes back.
struct Pending {
    verifier: String,
    nonce: String,
}

/// A confidential client on a loopback port: it sends the browser to sign in, redeems the code
/// its callback receives, and sends the browser to sign out.
struct RelyingParty {
    base: String,
    issuer: String,
    secret: String,
    http: reqwest::Client,
    /// Sign-ins under way, by state.
    pending: Mutex<HashMap<String, Pending>>,
    /// Every completed sign-in, oldest first.
    sign_ins: Mutex<Vec<SignIn>>,
    /// Logouts under way, by state.
    logout_states: Mutex<HashSet<String>>,
    /// What the browser said of the forms posted to `/echo`.
    form_posts: Mutex<Vec<String>>,
}

type Rp = State<Arc<RelyingParty>>;

impl RelyingParty {
    /// Registers the client with the server and starts serving on a free loopback port.
    async fn start(app: &TestApp) -> Arc<Self> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let secret = format!("{CLIENT_ID}-secret-{}", random());
        let mut client = Client::new(
            CLIENT_ID.into(),
            CLIENT_NAME.into(),
            AuthMethod::ClientSecretBasic,
            vec![GrantType::AuthorizationCode, GrantType::RefreshToken],
            gatehouse_token::now_unix(),
        );
        client.redirect_uris = vec![format!("{base}/callback")];
        client.post_logout_redirect_uris = vec![format!("{base}/")];
        client.secret_hash = Some(gatehouse_core::secret::hash_secret(&secret));
        app.store.insert_client(&client).await.unwrap();

        let rp = Arc::new(Self {
            base,
            issuer: app.config.issuer.clone(),
            secret,
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .user_agent(RP_USER_AGENT)
                .build()
                .unwrap(),
            pending: Mutex::default(),
            sign_ins: Mutex::default(),
            logout_states: Mutex::default(),
            form_posts: Mutex::default(),
        });
        let router = axum::Router::new()
            .route("/", get(signed_out_page))
            .route("/login", get(login))
            .route("/callback", get(callback))
            .route("/logout", get(logout))
            .route("/echo", axum::routing::post(echo))
            .with_state(rp.clone());
        // Served until the test's runtime ends.
        tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
        rp
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn server(&self, path: &str) -> String {
        format!("{}{path}", self.issuer)
    }

    fn sign_ins(&self) -> Vec<SignIn> {
        self.sign_ins.lock().unwrap().clone()
    }

    async fn token(&self, form: &[(&str, &str)]) -> reqwest::Response {
        self.http
            .post(self.server("/oauth2/token"))
            .basic_auth(CLIENT_ID, Some(&self.secret))
            .form(form)
            .send()
            .await
            .unwrap()
    }

    /// The userinfo endpoint's status and answer for `access_token`.
    async fn userinfo(&self, access_token: &str) -> (u16, Value) {
        let response = self
            .http
            .get(self.server("/oauth2/userinfo"))
            .bearer_auth(access_token)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        let body = response.json().await.unwrap_or(Value::Null);
        (status, body)
    }

    /// Asserts that the server refuses `refresh_token` as a dead grant.
    async fn refresh_fails(&self, refresh_token: &str) {
        let response = self
            .token(&[
                ("grant_type", "refresh_token"),
                ("refresh_token", refresh_token),
            ])
            .await;
        assert_eq!(response.status(), 400);
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"], "invalid_grant", "{body}");
    }
}

/// `GET /login`: a new PKCE verifier, state and nonce, and off to the authorization endpoint.
async fn login(State(rp): Rp) -> Redirect {
    let (verifier, state, nonce) = (random(), random(), random());
    let mut url = url::Url::parse(&rp.server("/oauth2/authorize")).unwrap();
    url.query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", CLIENT_ID)
        .append_pair("redirect_uri", &rp.url("/callback"))
        .append_pair("scope", "openid profile email orders")
        .append_pair("state", &state)
        .append_pair("nonce", &nonce)
        .append_pair("code_challenge", &challenge(&verifier))
        .append_pair("code_challenge_method", "S256");
    rp.pending
        .lock()
        .unwrap()
        .insert(state, Pending { verifier, nonce });
    Redirect::to(url.as_str())
}

/// `GET /callback`: checks the state and issuer, redeems the code, checks the ID token's nonce
/// and greets the person by the username userinfo gives.
async fn callback(State(rp): Rp, Query(query): Query<HashMap<String, String>>) -> Response {
    if let Some(error) = query.get("error") {
        return refused(&format!("the server answered {error}"));
    }
    let Some(pending) = query
        .get("state")
        .and_then(|state| rp.pending.lock().unwrap().remove(state))
    else {
        return refused("unknown state");
    };
    if query.get("iss") != Some(&rp.issuer) {
        return refused("wrong or missing iss");
    }
    let Some(code) = query.get("code") else {
        return refused("no code");
    };
    let response = rp
        .token(&[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", &rp.url("/callback")),
            ("code_verifier", &pending.verifier),
        ])
        .await;
    if response.status() != StatusCode::OK {
        let body = response.text().await.unwrap_or_default();
        return refused(&format!("the code exchange failed: {body}"));
    }
    let tokens: Value = response.json().await.unwrap();
    let text = |name: &str| tokens[name].as_str().unwrap_or_default().to_owned();
    let sign_in = SignIn {
        access_token: text("access_token"),
        refresh_token: text("refresh_token"),
        id_token: text("id_token"),
        scope: text("scope"),
    };
    let claims = sign_in
        .id_token
        .split('.')
        .nth(1)
        .and_then(|payload| URL_SAFE_NO_PAD.decode(payload).ok())
        .and_then(|json| serde_json::from_slice::<Value>(&json).ok())
        .unwrap_or_default();
    if claims["nonce"].as_str() != Some(pending.nonce.as_str()) {
        return refused("the ID token's nonce is not ours");
    }
    let (status, info) = rp.userinfo(&sign_in.access_token).await;
    if status != 200 || info["sub"] != claims["sub"] {
        return refused(&format!("userinfo answered {status}: {info}"));
    }
    let username = info["preferred_username"].as_str().unwrap_or_default();
    let page = page(&format!(
        "<p id=\"who\">Signed in as {}</p>",
        escape(username)
    ));
    rp.sign_ins.lock().unwrap().push(sign_in);
    page.into_response()
}

/// `GET /logout`: sends the browser to end its sign-in, with the latest ID token as hint.
async fn logout(State(rp): Rp) -> Response {
    let Some(latest) = rp.sign_ins.lock().unwrap().last().cloned() else {
        return refused("nobody is signed in");
    };
    let state = random();
    let mut url = url::Url::parse(&rp.server("/oauth2/logout")).unwrap();
    url.query_pairs_mut()
        .append_pair("id_token_hint", &latest.id_token)
        .append_pair("post_logout_redirect_uri", &rp.url("/"))
        .append_pair("state", &state);
    rp.logout_states.lock().unwrap().insert(state);
    Redirect::to(url.as_str()).into_response()
}

/// `GET /`: where the server sends the browser after a logout; the state must be ours.
async fn signed_out_page(State(rp): Rp, Query(query): Query<HashMap<String, String>>) -> Response {
    if let Some(state) = query.get("state")
        && !rp.logout_states.lock().unwrap().remove(state)
    {
        return refused("unknown logout state");
    }
    page("<p id=\"signed-out\">Signed out</p>").into_response()
}

/// `POST /echo`: notes where the browser says the form came from.
async fn echo(State(rp): Rp, headers: axum::http::HeaderMap) -> Html<String> {
    let header = |name: &str| {
        headers
            .get(name)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
    };
    let seen = format!(
        "Origin: {:?} and Sec-Fetch-Site: {:?}",
        header("origin"),
        header("sec-fetch-site")
    );
    rp.form_posts.lock().unwrap().push(seen);
    page("<p id=\"echo\">Received</p>")
}

fn page(body: &str) -> Html<String> {
    Html(format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <title>{CLIENT_NAME}</title></head><body><h1>{CLIENT_NAME}</h1>{body}</body></html>"
    ))
}

fn refused(why: &str) -> Response {
    (
        StatusCode::BAD_REQUEST,
        page(&format!("<p id=\"rp-error\">{}</p>", escape(why))),
    )
        .into_response()
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}
