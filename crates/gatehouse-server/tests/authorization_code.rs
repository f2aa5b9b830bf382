//! Browser sign-in over real HTTP: the authorization endpoint, PKCE, codes, ID tokens, userinfo,
//! consent, prompt and max_age, RP-initiated logout, and the pages' browser security.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use common::browser::{
    AFTER_LOGOUT, Browser, CALLBACK, Page, VERIFIER, challenge, code_client, request,
};
use common::{Backend, TestApp};
use gatehouse_core::Store;
use gatehouse_server::limits::RateLimitConfig;
use gatehouse_testkit::on_both_stores;
use gatehouse_token::{JwkSet, Verifier, VerifierConfig};
use serde_json::Value;

on_both_stores!(
    the_code_flow_issues_tokens_an_id_token_and_userinfo,
    a_replayed_code_fails_and_ends_what_its_first_use_started,
    pkce_is_required_and_must_match,
    redirect_uris_match_exactly_or_nobody_is_redirected,
    an_expired_code_or_a_wrong_client_is_refused,
    prompt_none_consent_and_max_age,
    logout_ends_the_browser_session_and_its_tokens,
    forms_need_their_token_and_our_origin_and_pages_carry_security_headers,
    sign_in_failures_read_the_same_and_the_lock_holds,
    the_account_page_revokes_a_session,
    a_browser_sign_in_ends_when_idle_too_long_too_old_or_blocked,
    a_self_registered_app_gets_no_roles_and_no_unseen_redirects,
    an_id_token_alone_signs_nobody_out_and_redirects_need_proof,
    sign_up_and_sign_in_pages_share_the_apis_rate_limits,
    max_age_zero_returns_after_a_fresh_sign_in,
    the_account_page_changes_the_password_and_withdraws_consent,
    discovery_is_a_complete_openid_document,
    the_password_grant_can_be_turned_off,
);

const PASSWORD: &str = "alice-password-1";

async fn app_with_alice(backend: Backend) -> TestApp {
    let app = TestApp::spawn(backend).await;
    app.sign_up("alice", PASSWORD).await;
    app
}

/// A redirect to the client's callback, with the code.
fn code_of(page: &Page) -> String {
    assert_eq!(page.status, 303, "{}", page.body);
    let location = page.location.as_deref().unwrap();
    assert!(location.starts_with(CALLBACK), "{location}");
    page.location_param("code").expect("a code")
}

async fn exchange(
    app: &TestApp,
    client: &str,
    secret: Option<&str>,
    code: &str,
    verifier: &str,
) -> reqwest::Response {
    let mut request = app.http.post(app.url("/oauth2/token"));
    let mut form = vec![
        ("grant_type", "authorization_code"),
        ("code", code),
        ("redirect_uri", CALLBACK),
        ("code_verifier", verifier),
    ];
    match secret {
        Some(secret) => request = request.basic_auth(client, Some(secret)),
        None => form.push(("client_id", client)),
    }
    request.form(&form).send().await.unwrap()
}

/// A verifier of this server's tokens; `audience` for access tokens, `None` for ID tokens.
async fn verifier_of(app: &TestApp, audience: Option<&str>) -> Verifier {
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
            audience: audience.map(str::to_owned),
            leeway_secs: 0,
        },
        &jwks,
    )
}

async fn the_code_flow_issues_tokens_an_id_token_and_userinfo(backend: Backend) {
    let app = app_with_alice(backend).await;
    let secret = code_client(&app, "shop", false).await.unwrap();
    let mut browser = Browser::new(&app);

    // Not signed in: to the sign-in page, which names the application.
    let first = browser
        .get(&format!(
            "/oauth2/authorize?{}",
            request("shop", "openid profile email orders")
        ))
        .await;
    assert_eq!(first.status, 303);
    let sign_in = browser.get(first.location.as_deref().unwrap()).await;
    assert!(sign_in.body.contains("App shop"), "{}", sign_in.body);

    let redirect = browser
        .authorize(
            &request("shop", "openid profile email orders"),
            Some(("alice", PASSWORD)),
        )
        .await;
    let code = code_of(&redirect);
    assert_eq!(redirect.location_param("state").as_deref(), Some("st-1"));
    assert_eq!(
        redirect.location_param("iss").as_deref(),
        Some(app.config.issuer.as_str())
    );

    let response = exchange(&app, "shop", Some(&secret), &code, VERIFIER).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["cache-control"], "no-store");
    let tokens: Value = response.json().await.unwrap();
    assert_eq!(tokens["scope"], "email openid orders profile");
    let access = tokens["access_token"].as_str().unwrap();
    let id_token = tokens["id_token"].as_str().unwrap();
    assert!(tokens["refresh_token"].is_string());

    let claims = verifier_of(&app, None)
        .await
        .verify_id_token_hint(id_token)
        .unwrap();
    let alice = app.store.user_by_username("alice").await.unwrap().unwrap();
    assert_eq!(claims.iss, app.config.issuer);
    assert_eq!(claims.sub, alice.id);
    assert_eq!(claims.aud, "shop");
    assert_eq!(claims.nonce.as_deref(), Some("n-1"));
    assert_eq!(
        claims.at_hash.as_deref(),
        Some(gatehouse_token::token_hash(access).as_str())
    );
    assert!(claims.sid.is_some());
    assert!(claims.exp > claims.iat && claims.auth_time <= claims.iat);

    for post in [false, true] {
        let request = if post {
            app.http.post(app.url("/oauth2/userinfo"))
        } else {
            app.http.get(app.url("/oauth2/userinfo"))
        };
        let info: Value = request
            .bearer_auth(access)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(info["sub"], alice.id.as_str());
        assert_eq!(info["preferred_username"], "alice");
        assert_eq!(info["email"], "alice@example.com");
        assert_eq!(info["email_verified"], false);
    }

    // A second authorization is answered at once: signed in, consent remembered.
    let again = browser
        .get(&format!(
            "/oauth2/authorize?{}",
            request("shop", "openid orders")
        ))
        .await;
    code_of(&again);

    // Without openid: no ID token, and userinfo refuses the token.
    let plain = browser
        .get(&format!("/oauth2/authorize?{}", request("shop", "orders")))
        .await;
    let tokens: Value = exchange(&app, "shop", Some(&secret), &code_of(&plain), VERIFIER)
        .await
        .json()
        .await
        .unwrap();
    assert!(tokens.get("id_token").is_none());
    let refused = app
        .http
        .get(app.url("/oauth2/userinfo"))
        .bearer_auth(tokens["access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 403);
    assert!(
        refused.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .contains("insufficient_scope")
    );
}

async fn a_replayed_code_fails_and_ends_what_its_first_use_started(backend: Backend) {
    let app = app_with_alice(backend).await;
    code_client(&app, "spa", true).await;
    let mut browser = Browser::new(&app);
    let code = code_of(
        &browser
            .authorize(&request("spa", "openid orders"), Some(("alice", PASSWORD)))
            .await,
    );
    let first: Value = exchange(&app, "spa", None, &code, VERIFIER)
        .await
        .json()
        .await
        .unwrap();
    let refresh = first["refresh_token"].as_str().unwrap();

    let replay = exchange(&app, "spa", None, &code, VERIFIER).await;
    assert_eq!(replay.status(), 400);
    let body: Value = replay.json().await.unwrap();
    assert_eq!(body["error"], "invalid_grant");

    // What the first use issued is dead: the refresh token, and the access token's session.
    let refreshed = app
        .token(&[
            ("grant_type", "refresh_token"),
            ("client_id", "spa"),
            ("refresh_token", refresh),
        ])
        .await;
    assert_eq!(refreshed.status(), 400);
    let info = app
        .http
        .get(app.url("/oauth2/userinfo"))
        .bearer_auth(first["access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(info.status(), 401);
}

async fn pkce_is_required_and_must_match(backend: Backend) {
    let app = app_with_alice(backend).await;
    code_client(&app, "spa", true).await;
    let mut browser = Browser::new(&app);
    browser.sign_in("alice", PASSWORD).await;

    let base = format!(
        "response_type=code&client_id=spa&redirect_uri={}&state=s",
        urlencode(CALLBACK)
    );
    for (query, why) in [
        (base.clone(), "code_challenge is required"),
        (
            format!("{base}&code_challenge={}", challenge(VERIFIER)),
            "code_challenge_method must be S256",
        ),
        (
            format!(
                "{base}&code_challenge={}&code_challenge_method=plain",
                challenge(VERIFIER)
            ),
            "code_challenge_method must be S256",
        ),
        (
            format!("{base}&code_challenge=short&code_challenge_method=S256"),
            "43-character",
        ),
    ] {
        let page = browser.get(&format!("/oauth2/authorize?{query}")).await;
        assert_eq!(page.status, 303, "{query}");
        assert_eq!(
            page.location_param("error").as_deref(),
            Some("invalid_request"),
            "{query}"
        );
        assert!(
            page.location_param("error_description")
                .unwrap()
                .contains(why),
            "{query}"
        );
        assert_eq!(page.location_param("state").as_deref(), Some("s"));
        assert_eq!(
            page.location_param("iss").as_deref(),
            Some(app.config.issuer.as_str())
        );
    }

    let code = code_of(&browser.authorize(&request("spa", "orders"), None).await);
    let before = app.snapshot().await;
    let wrong = exchange(
        &app,
        "spa",
        None,
        &code,
        "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXj",
    )
    .await;
    assert_eq!(wrong.status(), 400);
    let body: Value = wrong.json().await.unwrap();
    assert_eq!(body["error"], "invalid_grant");
    // The plain method's answer (the challenge itself) is no verifier either.
    assert_eq!(
        exchange(&app, "spa", None, &code, &challenge(VERIFIER))
            .await
            .status(),
        400
    );
    let missing = app
        .token(&[
            ("grant_type", "authorization_code"),
            ("client_id", "spa"),
            ("code", &code),
            ("redirect_uri", CALLBACK),
        ])
        .await;
    assert_eq!(missing.status(), 400);
    let body: Value = missing.json().await.unwrap();
    assert_eq!(body["error"], "invalid_request");
    assert_eq!(
        app.snapshot().await,
        before,
        "a refused exchange changed the store"
    );
    // The code was not spent by the wrong attempts.
    assert_eq!(
        exchange(&app, "spa", None, &code, VERIFIER).await.status(),
        200
    );
}

fn urlencode(value: &str) -> String {
    url::form_urlencoded::byte_serialize(value.as_bytes()).collect()
}

async fn redirect_uris_match_exactly_or_nobody_is_redirected(backend: Backend) {
    let app = app_with_alice(backend).await;
    code_client(&app, "spa", true).await;
    let mut browser = Browser::new(&app);
    let with_redirect =
        |uri: &str| request("spa", "orders").replace(&urlencode(CALLBACK), &urlencode(uri));
    for near in [
        "https://rp.example/callbackx",
        "https://rp.example/callback/",
        "https://rp.example/Callback",
        "https://RP.example.evil/callback",
        "https://rp.example:8443/callback",
        "http://rp.example/callback",
        "https://rp.example/call",
    ] {
        let page = browser
            .get(&format!("/oauth2/authorize?{}", with_redirect(near)))
            .await;
        assert_eq!(page.status, 400, "{near}");
        assert!(page.location.is_none(), "{near}: {}", page.body);
        assert!(
            page.body
                .contains("redirect_uri is not one this client registered"),
            "{near}: {}",
            page.body
        );
        assert!(
            page.headers["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/html")
        );
    }
    // An unknown client is shown an error page too, never redirected.
    let unknown = browser
        .get(&format!(
            "/oauth2/authorize?{}",
            request("nobody", "orders")
        ))
        .await;
    assert_eq!(unknown.status, 400);
    assert!(unknown.location.is_none());
    // A native app's loopback redirect may use any port (RFC 8252 §7.3).
    let native = browser
        .get(&format!(
            "/oauth2/authorize?{}",
            with_redirect("http://127.0.0.1:49152/native")
        ))
        .await;
    assert_eq!(native.status, 303);
    assert!(native.location.as_deref().unwrap().starts_with("/signin?"));
    // A repeated parameter is refused (RFC 6749 §3.1).
    let twice = browser
        .get(&format!(
            "/oauth2/authorize?{}&scope=orders",
            request("spa", "orders")
        ))
        .await;
    assert_eq!(
        twice.location_param("error").as_deref(),
        Some("invalid_request")
    );
}

async fn an_expired_code_or_a_wrong_client_is_refused(backend: Backend) {
    let app = app_with_alice(backend).await;
    code_client(&app, "spa", true).await;
    code_client(&app, "other", true).await;
    let mut browser = Browser::new(&app);
    let code = code_of(
        &browser
            .authorize(&request("spa", "orders"), Some(("alice", PASSWORD)))
            .await,
    );
    assert_eq!(
        exchange(&app, "other", None, &code, VERIFIER)
            .await
            .status(),
        400
    );
    app.advance(Duration::from_secs(61));
    let late = exchange(&app, "spa", None, &code, VERIFIER).await;
    assert_eq!(late.status(), 400);
    let body: Value = late.json().await.unwrap();
    assert_eq!(body["error"], "invalid_grant");
}

async fn prompt_none_consent_and_max_age(backend: Backend) {
    let app = app_with_alice(backend).await;
    code_client(&app, "spa", true).await;
    let mut browser = Browser::new(&app);

    let none = browser
        .get(&format!(
            "/oauth2/authorize?{}&prompt=none",
            request("spa", "orders")
        ))
        .await;
    assert_eq!(
        none.location_param("error").as_deref(),
        Some("login_required")
    );
    assert_eq!(none.location_param("state").as_deref(), Some("st-1"));
    assert!(none.location.as_deref().unwrap().starts_with(CALLBACK));

    browser.sign_in("alice", PASSWORD).await;
    let no_consent = browser
        .get(&format!(
            "/oauth2/authorize?{}&prompt=none",
            request("spa", "orders")
        ))
        .await;
    assert_eq!(
        no_consent.location_param("error").as_deref(),
        Some("consent_required")
    );

    let consent = browser
        .get(&format!(
            "/oauth2/authorize?{}",
            request("spa", "orders openid")
        ))
        .await;
    assert_eq!(consent.status, 200);
    assert!(consent.body.contains("Place orders and see your orders"));
    let denied = browser.decide(&consent, "deny").await;
    assert_eq!(
        denied.location_param("error").as_deref(),
        Some("access_denied")
    );
    assert_eq!(denied.location_param("state").as_deref(), Some("st-1"));
    assert!(
        app.store
            .consent(&alice_id(&app).await, "spa")
            .await
            .unwrap()
            .is_none()
    );

    let allowed = browser.decide(&consent, "allow").await;
    code_of(&allowed);
    // Remembered: prompt=none now works, and prompt=consent asks again.
    code_of(
        &browser
            .get(&format!(
                "/oauth2/authorize?{}&prompt=none",
                request("spa", "orders")
            ))
            .await,
    );
    let asked = browser
        .get(&format!(
            "/oauth2/authorize?{}&prompt=consent",
            request("spa", "orders")
        ))
        .await;
    assert_eq!(asked.status, 200);
    // A scope beyond the person's roles is invalid_scope, back at the client.
    let beyond = browser
        .get(&format!("/oauth2/authorize?{}", request("spa", "admin")))
        .await;
    assert_eq!(
        beyond.location_param("error").as_deref(),
        Some("invalid_scope")
    );

    // max_age: an old sign-in must be renewed; prompt=login always asks.
    app.advance(Duration::from_secs(120));
    let stale = browser
        .get(&format!(
            "/oauth2/authorize?{}&max_age=60",
            request("spa", "orders")
        ))
        .await;
    assert!(stale.location.as_deref().unwrap().starts_with("/signin?"));
    let fresh = browser
        .get(&format!(
            "/oauth2/authorize?{}&max_age=600",
            request("spa", "orders")
        ))
        .await;
    code_of(&fresh);
    let login = browser
        .get(&format!(
            "/oauth2/authorize?{}&prompt=login",
            request("spa", "orders")
        ))
        .await;
    let to_sign_in = login.location.clone().unwrap();
    assert!(to_sign_in.starts_with("/signin?"));
    // After signing in again the request goes on, without asking to sign in once more.
    let form = browser.get(&to_sign_in).await;
    let return_to = form.input("return_to").unwrap();
    assert!(!return_to.contains("prompt=login"), "{return_to}");
    let answer = browser
        .submit(
            &form,
            "/signin",
            &[
                ("username", "alice"),
                ("password", PASSWORD),
                ("return_to", &return_to),
            ],
        )
        .await;
    let after = browser.get(answer.location.as_deref().unwrap()).await;
    code_of(&after);
    // prompt=none with login is a contradiction.
    let both = browser
        .get(&format!(
            "/oauth2/authorize?{}&prompt=none%20login",
            request("spa", "orders")
        ))
        .await;
    assert_eq!(
        both.location_param("error").as_deref(),
        Some("invalid_request")
    );
    // login_hint fills in the sign-in page.
    let mut stranger = Browser::new(&app);
    let hinted = stranger
        .get(&format!(
            "/oauth2/authorize?{}&login_hint=alice",
            request("spa", "orders")
        ))
        .await;
    let page = stranger.get(hinted.location.as_deref().unwrap()).await;
    assert_eq!(page.input("username").as_deref(), Some("alice"));
}

async fn alice_id(app: &TestApp) -> String {
    app.store
        .user_by_username("alice")
        .await
        .unwrap()
        .unwrap()
        .id
}

async fn logout_ends_the_browser_session_and_its_tokens(backend: Backend) {
    let app = app_with_alice(backend).await;
    let secret = code_client(&app, "shop", false).await.unwrap();
    let mut browser = Browser::new(&app);
    let code = code_of(
        &browser
            .authorize(&request("shop", "openid orders"), Some(("alice", PASSWORD)))
            .await,
    );
    let tokens: Value = exchange(&app, "shop", Some(&secret), &code, VERIFIER)
        .await
        .json()
        .await
        .unwrap();
    let id_token = tokens["id_token"].as_str().unwrap();

    // A post-logout redirect the client did not register is refused on a page.
    let before = app.snapshot().await;
    let bad = browser
        .get(&format!(
            "/oauth2/logout?id_token_hint={id_token}&post_logout_redirect_uri={}&state=x",
            urlencode("https://rp.example/elsewhere")
        ))
        .await;
    assert_eq!(bad.status, 400);
    assert!(bad.location.is_none());
    assert_eq!(app.snapshot().await, before);
    // A forged hint is refused too.
    let forged = browser.get("/oauth2/logout?id_token_hint=a.b.c").await;
    assert_eq!(forged.status, 400);

    // Without a hint, the person is asked first.
    let ask = browser.get("/oauth2/logout").await;
    assert_eq!(ask.status, 200);
    assert!(ask.body.contains("Sign out of Gatehouse?"));

    let out = browser
        .get(&format!(
            "/oauth2/logout?id_token_hint={id_token}&post_logout_redirect_uri={}&state=bye",
            urlencode(AFTER_LOGOUT)
        ))
        .await;
    assert_eq!(out.status, 303);
    assert_eq!(
        out.location.as_deref(),
        Some(format!("{AFTER_LOGOUT}?state=bye").as_str())
    );
    // The browser is signed out, and the session's refresh and access tokens are dead.
    let account = browser.get("/account").await;
    assert!(account.location.as_deref().unwrap().starts_with("/signin"));
    let refreshed = app
        .http
        .post(app.url("/oauth2/token"))
        .basic_auth("shop", Some(&secret))
        .form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", tokens["refresh_token"].as_str().unwrap()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(refreshed.status(), 400);
    let info = app
        .http
        .get(app.url("/oauth2/userinfo"))
        .bearer_auth(tokens["access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(info.status(), 401);
}

async fn forms_need_their_token_and_our_origin_and_pages_carry_security_headers(backend: Backend) {
    let app = app_with_alice(backend).await;
    let mut browser = Browser::new(&app);
    let page = browser.get("/signin").await;
    for (name, expected) in [
        (
            "content-security-policy",
            "default-src 'self'; frame-ancestors 'none'",
        ),
        ("x-content-type-options", "nosniff"),
        ("referrer-policy", "no-referrer"),
        ("cache-control", "no-store"),
    ] {
        let value = page.headers[name].to_str().unwrap();
        assert!(value.starts_with(expected), "{name}: {value}");
    }
    assert!(!page.body.contains("<script"), "no script on the pages");
    let csrf_cookie = page
        .headers
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .find(|c| c.starts_with("gatehouse_csrf="))
        .unwrap();
    assert!(
        csrf_cookie.contains("HttpOnly")
            && csrf_cookie.contains("SameSite=Lax")
            && csrf_cookie.contains("Path=/")
    );

    let before = app.snapshot().await;
    // No token, a token for another browser, another origin: each refused, nothing stored.
    let no_token = browser
        .post("/signin", &[("username", "alice"), ("password", PASSWORD)])
        .await;
    assert_eq!(no_token.status, 403);
    let mut other = Browser::new(&app);
    let theirs = other.get("/signin").await;
    let stolen = browser
        .submit(
            &theirs,
            "/signin",
            &[("username", "alice"), ("password", PASSWORD)],
        )
        .await;
    assert_eq!(stolen.status, 403);
    browser.origin = Some("https://evil.example".into());
    let cross = browser
        .submit(
            &page,
            "/signin",
            &[("username", "alice"), ("password", PASSWORD)],
        )
        .await;
    assert_eq!(cross.status, 403);
    // What browsers send under no-referrer: `Origin: null`, trusted only with the browser's own
    // word that the post came from this origin.
    for (fetch_site, status) in [("cross-site", 403), ("same-site", 403)] {
        let token = page.input("csrf_token").unwrap();
        let posted = app
            .http
            .post(app.url("/signin"))
            .header(
                "cookie",
                format!("gatehouse_csrf={}", browser.cookies["gatehouse_csrf"]),
            )
            .header("origin", "null")
            .header("sec-fetch-site", fetch_site)
            .form(&[
                ("csrf_token", token.as_str()),
                ("username", "alice"),
                ("password", PASSWORD),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(posted.status(), status, "{fetch_site}");
    }
    let bare_null = app
        .http
        .post(app.url("/signin"))
        .header(
            "cookie",
            format!("gatehouse_csrf={}", browser.cookies["gatehouse_csrf"]),
        )
        .header("origin", "null")
        .form(&[
            ("csrf_token", page.input("csrf_token").unwrap().as_str()),
            ("username", "alice"),
            ("password", PASSWORD),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(
        bare_null.status(),
        403,
        "a null origin without fetch metadata"
    );
    let not_a_form = app
        .http
        .post(app.url("/signin"))
        .json(&serde_json::json!({"username": "alice"}))
        .send()
        .await
        .unwrap();
    assert_eq!(not_a_form.status(), 400);
    assert_eq!(app.snapshot().await, before);

    let same_origin_null = app
        .http
        .post(app.url("/signin"))
        .header(
            "cookie",
            format!("gatehouse_csrf={}", browser.cookies["gatehouse_csrf"]),
        )
        .header("origin", "null")
        .header("sec-fetch-site", "same-origin")
        .form(&[
            ("csrf_token", page.input("csrf_token").unwrap().as_str()),
            ("username", "alice"),
            ("password", PASSWORD),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(
        same_origin_null.status(),
        303,
        "our own page's post under no-referrer"
    );

    // Signed in: the session cookie is HttpOnly, Lax, and new at every sign-in.
    browser.origin = Some(app.base.clone());
    let signed_in = browser
        .submit(
            &page,
            "/signin",
            &[("username", "alice"), ("password", PASSWORD)],
        )
        .await;
    assert_eq!(signed_in.status, 303);
    let cookie = signed_in.headers["set-cookie"].to_str().unwrap();
    assert!(
        cookie.starts_with("gatehouse_session=")
            && cookie.contains("HttpOnly")
            && cookie.contains("SameSite=Lax"),
        "{cookie}"
    );
    let first_session = browser.cookies["gatehouse_session"].clone();
    let again = browser.get("/signin").await;
    browser
        .submit(
            &again,
            "/signin",
            &[("username", "alice"), ("password", PASSWORD)],
        )
        .await;
    assert_ne!(
        browser.cookies["gatehouse_session"], first_session,
        "no session fixation"
    );
    // The old cookie no longer signs anyone in.
    let mut replayed = Browser::new(&app);
    replayed
        .cookies
        .insert("gatehouse_session".into(), first_session);
    assert_eq!(replayed.get("/account").await.status, 303);
}

async fn sign_in_failures_read_the_same_and_the_lock_holds(backend: Backend) {
    let app = TestApp::spawn_with(backend, |c| {
        c.login_lock_after_failures = 3;
        c.login_delay_after_failures = 100;
    })
    .await;
    app.sign_up("alice", PASSWORD).await;
    let mut browser = Browser::new(&app);
    let wrong = browser.sign_in("alice", "not-the-password").await;
    let unknown = browser.sign_in("nobody", "not-the-password").await;
    assert_eq!(wrong.status, 401);
    assert_eq!(unknown.status, 401);
    let message = |p: &Page| {
        let start = p.body.find("id=\"signin-error\">").unwrap();
        p.body[start..start + 80].to_owned()
    };
    assert_eq!(message(&wrong), message(&unknown));
    assert!(wrong.body.contains("the username or password is incorrect"));
    // The lock is the API's: after three failures the right password is refused too.
    browser.sign_in("alice", "not-the-password").await;
    browser.sign_in("alice", "not-the-password").await;
    assert_eq!(browser.sign_in("alice", PASSWORD).await.status, 401);
    let api = app
        .token(&[
            ("grant_type", "password"),
            ("client_id", "gatehouse-web"),
            ("username", "alice"),
            ("password", PASSWORD),
        ])
        .await;
    assert_eq!(api.status(), 400);
    // Sign-up keeps the API's password policy, with the error beside its field.
    let form = browser.get("/signup").await;
    let refused = browser
        .submit(
            &form,
            "/signup",
            &[
                ("username", "bob"),
                ("email", "bob@example.com"),
                ("password", "short"),
            ],
        )
        .await;
    assert_eq!(refused.status, 422);
    assert!(refused.body.contains("id=\"password-error\""));
    assert!(app.store.user_by_username("bob").await.unwrap().is_none());
}

async fn the_account_page_revokes_a_session(backend: Backend) {
    let app = app_with_alice(backend).await;
    code_client(&app, "spa", true).await;
    let mut browser = Browser::new(&app);
    let code = code_of(
        &browser
            .authorize(&request("spa", "orders"), Some(("alice", PASSWORD)))
            .await,
    );
    let tokens: Value = exchange(&app, "spa", None, &code, VERIFIER)
        .await
        .json()
        .await
        .unwrap();
    let account = browser.get("/account").await;
    assert_eq!(account.status, 200);
    assert!(account.body.contains("App spa"));
    let id = account.input("id").unwrap();
    // The first listed is the browser itself; find the application session's form.
    let session_id = {
        let start = account
            .body
            .find("action=\"/account/sessions/revoke\"")
            .unwrap();
        let rest = &account.body[start..];
        let marker = "name=\"id\" value=\"";
        let at = rest.find(marker).unwrap() + marker.len();
        rest[at..at + rest[at..].find('"').unwrap()].to_owned()
    };
    assert_ne!(id, "");
    let done = browser
        .submit(&account, "/account/sessions/revoke", &[("id", &session_id)])
        .await;
    assert_eq!(done.status, 303);
    let refreshed = app
        .token(&[
            ("grant_type", "refresh_token"),
            ("client_id", "spa"),
            ("refresh_token", tokens["refresh_token"].as_str().unwrap()),
        ])
        .await;
    assert_eq!(refreshed.status(), 400);
    // Someone else's session cannot be revoked from this account.
    let mut bob = Browser::new(&app);
    app.sign_up("bob", "bob-password-1").await;
    bob.sign_in("bob", "bob-password-1").await;
    let page = bob.get("/account").await;
    let foreign = bob
        .submit(&page, "/account/sessions/revoke", &[("id", &session_id)])
        .await;
    assert_eq!(foreign.status, 404);
}

async fn discovery_is_a_complete_openid_document(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let doc: Value = app
        .http
        .get(app.url("/.well-known/openid-configuration"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let base = &app.base;
    assert_eq!(doc["issuer"], app.config.issuer.as_str());
    assert_eq!(
        doc["authorization_endpoint"],
        format!("{base}/oauth2/authorize")
    );
    assert_eq!(doc["userinfo_endpoint"], format!("{base}/oauth2/userinfo"));
    assert_eq!(doc["end_session_endpoint"], format!("{base}/oauth2/logout"));
    assert_eq!(doc["response_types_supported"], serde_json::json!(["code"]));
    assert_eq!(
        doc["code_challenge_methods_supported"],
        serde_json::json!(["S256"])
    );
    assert_eq!(doc["authorization_response_iss_parameter_supported"], true);
    for field in [
        "subject_types_supported",
        "id_token_signing_alg_values_supported",
        "claims_supported",
        "scopes_supported",
        "grant_types_supported",
    ] {
        assert!(
            doc[field].as_array().is_some_and(|a| !a.is_empty()),
            "{field}"
        );
    }
    assert!(
        doc["scopes_supported"]
            .as_array()
            .unwrap()
            .contains(&"openid".into())
    );
    assert!(
        doc["grant_types_supported"]
            .as_array()
            .unwrap()
            .contains(&"authorization_code".into())
    );
}

async fn the_password_grant_can_be_turned_off(backend: Backend) {
    let app = TestApp::spawn_with(backend, |c| c.password_grant = false).await;
    app.sign_up("alice", PASSWORD).await;
    let refused = app
        .token(&[
            ("grant_type", "password"),
            ("client_id", "gatehouse-web"),
            ("username", "alice"),
            ("password", PASSWORD),
        ])
        .await;
    assert_eq!(refused.status(), 400);
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["error"], "unsupported_grant_type");
    let doc: Value = app
        .http
        .get(app.url("/.well-known/oauth-authorization-server"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        !doc["grant_types_supported"]
            .as_array()
            .unwrap()
            .contains(&"password".into())
    );
}

async fn a_browser_sign_in_ends_when_idle_too_long_too_old_or_blocked(backend: Backend) {
    let app = TestApp::spawn_with(backend, |c| {
        c.browser_session_idle_secs = 600;
        c.browser_session_lifetime_secs = 3600;
    })
    .await;
    app.sign_up("alice", PASSWORD).await;
    let mut browser = Browser::new(&app);
    browser.sign_in("alice", PASSWORD).await;
    assert_eq!(browser.get("/account").await.status, 200);

    // Visits keep it alive past the idle lifetime …
    for _ in 0..3 {
        app.advance(Duration::from_secs(500));
        assert_eq!(browser.get("/account").await.status, 200);
    }
    // … until the absolute lifetime ends it, however active.
    app.advance(Duration::from_secs(3600 - 1500 + 1));
    assert_eq!(browser.get("/account").await.status, 303);

    browser.sign_in("alice", PASSWORD).await;
    app.advance(Duration::from_secs(601));
    let idle = browser.get("/account").await;
    assert_eq!(idle.status, 303, "idle too long");
    assert!(idle.location.as_deref().unwrap().starts_with("/signin"));

    browser.sign_in("alice", PASSWORD).await;
    assert_eq!(browser.get("/account").await.status, 200);
    let admin = app.admin_token().await;
    let alice = alice_id(&app).await;
    let blocked = app
        .http
        .patch(app.url(&format!("/admin/users/{alice}")))
        .bearer_auth(&admin)
        .json(&serde_json::json!({"blocked": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(blocked.status(), 200);
    assert_eq!(browser.get("/account").await.status, 303, "blocked");
}

async fn the_account_page_changes_the_password_and_withdraws_consent(backend: Backend) {
    let app = app_with_alice(backend).await;
    code_client(&app, "spa", true).await;
    let mut browser = Browser::new(&app);
    let code = code_of(
        &browser
            .authorize(&request("spa", "orders"), Some(("alice", PASSWORD)))
            .await,
    );
    let tokens: Value = exchange(&app, "spa", None, &code, VERIFIER)
        .await
        .json()
        .await
        .unwrap();
    let mut other_browser = Browser::new(&app);
    other_browser.sign_in("alice", PASSWORD).await;

    // A wrong current password is refused beside its field, and changes nothing.
    let account = browser.get("/account").await;
    let before = app.snapshot().await;
    let wrong = browser
        .submit(
            &account,
            "/account/password",
            &[
                ("current_password", "nope-nope-1"),
                ("new_password", "a-new-password-1"),
            ],
        )
        .await;
    assert_eq!(wrong.status, 422);
    assert!(wrong.body.contains("id=\"current-error\""));
    assert_eq!(app.snapshot().await, before);

    let changed = browser
        .submit(
            &account,
            "/account/password",
            &[
                ("current_password", PASSWORD),
                ("new_password", "a-new-password-1"),
            ],
        )
        .await;
    assert_eq!(changed.status, 303);
    // This browser stays signed in with a new cookie; every other sign-in and session ended.
    let page = browser.get(changed.location.as_deref().unwrap()).await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("Your password is changed"));
    assert_eq!(other_browser.get("/account").await.status, 303);
    let refreshed = app
        .token(&[
            ("grant_type", "refresh_token"),
            ("client_id", "spa"),
            ("refresh_token", tokens["refresh_token"].as_str().unwrap()),
        ])
        .await;
    assert_eq!(refreshed.status(), 400);
    app.token(&[
        ("grant_type", "password"),
        ("client_id", "gatehouse-web"),
        ("username", "alice"),
        ("password", "a-new-password-1"),
    ])
    .await
    .error_for_status()
    .unwrap();

    // Withdrawing the consent ends the app's sessions and asks again next time.
    let code = code_of(&browser.authorize(&request("spa", "orders"), None).await);
    let tokens: Value = exchange(&app, "spa", None, &code, VERIFIER)
        .await
        .json()
        .await
        .unwrap();
    let account = browser.get("/account").await;
    assert!(account.body.contains("Applications you have allowed"));
    let withdrawn = browser
        .submit(
            &account,
            "/account/consents/revoke",
            &[("client_id", "spa")],
        )
        .await;
    assert_eq!(withdrawn.status, 303);
    let refreshed = app
        .token(&[
            ("grant_type", "refresh_token"),
            ("client_id", "spa"),
            ("refresh_token", tokens["refresh_token"].as_str().unwrap()),
        ])
        .await;
    assert_eq!(refreshed.status(), 400);
    let asked = browser
        .get(&format!("/oauth2/authorize?{}", request("spa", "orders")))
        .await;
    assert_eq!(asked.status, 200, "consent is asked again");
}

async fn a_self_registered_app_gets_no_roles_and_no_unseen_redirects(backend: Backend) {
    let app = TestApp::spawn_with(backend, |c| {
        c.registration.allowed_grant_types = ["authorization_code", "refresh_token"]
            .map(String::from)
            .to_vec();
    })
    .await;
    app.sign_up("alice", PASSWORD).await;
    app.set_roles("alice", &["admin", "user"]).await;
    let registered: Value = app
        .http
        .post(app.url("/oauth2/register"))
        .json(&serde_json::json!({
            "client_name": "Gatehouse Status",
            "token_endpoint_auth_method": "none",
            "grant_types": ["authorization_code", "refresh_token"],
            "redirect_uris": [CALLBACK],
            "scope": "openid",
        }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = registered["client_id"].as_str().unwrap().to_owned();

    // A malformed request is shown on a page, not bounced to the app's address unseen.
    let mut browser = Browser::new(&app);
    let malformed = browser
        .get(&format!(
            "/oauth2/authorize?{}",
            request(&id, "openid").replace("response_type=code", "response_type=token")
        ))
        .await;
    assert_eq!(malformed.status, 400);
    assert!(malformed.location.is_none());

    // Signed in as an administrator, the person is asked, and the app's token has no roles.
    let consent = browser
        .authorize(&request(&id, "openid"), Some(("alice", PASSWORD)))
        .await;
    let code = code_of(&consent);
    let tokens: Value = exchange(&app, &id, None, &code, VERIFIER)
        .await
        .json()
        .await
        .unwrap();
    let access = tokens["access_token"].as_str().unwrap();
    let claims = verifier_of(&app, Some(&app.config.audience))
        .await
        .verify(access)
        .unwrap();
    assert_eq!(claims.roles, None, "a self-registered app carries no roles");
    assert_eq!(claims.scope, "openid");
    let refreshed: Value = app
        .token(&[
            ("grant_type", "refresh_token"),
            ("client_id", &id),
            ("refresh_token", tokens["refresh_token"].as_str().unwrap()),
        ])
        .await
        .json()
        .await
        .unwrap();
    let again = verifier_of(&app, Some(&app.config.audience))
        .await
        .verify(refreshed["access_token"].as_str().unwrap())
        .unwrap();
    assert_eq!(again.roles, None);
    assert_eq!(again.scope, "openid", "a refresh keeps the identity scope");
}

async fn an_id_token_alone_signs_nobody_out_and_redirects_need_proof(backend: Backend) {
    let app = app_with_alice(backend).await;
    let secret = code_client(&app, "shop", false).await.unwrap();
    let mut browser = Browser::new(&app);
    let code = code_of(
        &browser
            .authorize(&request("shop", "openid orders"), Some(("alice", PASSWORD)))
            .await,
    );
    let tokens: Value = exchange(&app, "shop", Some(&secret), &code, VERIFIER)
        .await
        .json()
        .await
        .unwrap();
    let id_token = tokens["id_token"].as_str().unwrap();

    // Someone else, with the ID token but not the browser: sent back, and nothing ends.
    let mut stranger = Browser::new(&app);
    let before = app.snapshot().await;
    let out = stranger
        .get(&format!(
            "/oauth2/logout?id_token_hint={id_token}&post_logout_redirect_uri={}",
            urlencode(AFTER_LOGOUT)
        ))
        .await;
    assert_eq!(out.status, 303);
    assert_eq!(
        out.location.as_deref(),
        Some(AFTER_LOGOUT),
        "no trailing ? without state"
    );
    assert_eq!(
        app.snapshot().await,
        before,
        "an ID token alone ended something"
    );
    assert_eq!(browser.get("/account").await.status, 200);

    // Without an ID token the redirect waits for the person's confirmation.
    let unproven = stranger
        .get(&format!(
            "/oauth2/logout?client_id=shop&post_logout_redirect_uri={}",
            urlencode(AFTER_LOGOUT)
        ))
        .await;
    assert_eq!(unproven.status, 200);
    assert!(unproven.body.contains("Sign out of Gatehouse?"));
    let confirmed = stranger
        .submit(
            &unproven,
            "/oauth2/logout/confirm",
            &[
                ("client_id", "shop"),
                ("post_logout_redirect_uri", AFTER_LOGOUT),
            ],
        )
        .await;
    assert_eq!(confirmed.location.as_deref(), Some(AFTER_LOGOUT));

    // A blocked client's addresses are no longer anywhere to go.
    let admin = app.admin_token().await;
    let blocked = app
        .http
        .patch(app.url("/admin/clients/shop"))
        .bearer_auth(&admin)
        .json(&serde_json::json!({"blocked": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(blocked.status(), 200);
    let refused = stranger
        .get(&format!(
            "/oauth2/logout?id_token_hint={id_token}&post_logout_redirect_uri={}",
            urlencode(AFTER_LOGOUT)
        ))
        .await;
    assert_eq!(refused.status, 400);
}

async fn sign_up_and_sign_in_pages_share_the_apis_rate_limits(backend: Backend) {
    let limits = RateLimitConfig {
        signup_per_ip_per_minute: 1,
        token_per_ip_per_second: 1,
        ..RateLimitConfig::off()
    };
    let app = TestApp::spawn_limited(backend, |_| {}, limits).await;
    let mut browser = Browser::new(&app);
    let mut statuses = Vec::new();
    for name in ["web1", "web2", "web3"] {
        let form = browser.get("/signup").await;
        let email = format!("{name}@example.com");
        let answer = browser
            .submit(
                &form,
                "/signup",
                &[
                    ("username", name),
                    ("email", &email),
                    ("password", "password-123"),
                ],
            )
            .await;
        statuses.push(answer.status);
    }
    // As at POST /users: a short burst, then the limit.
    assert_eq!(statuses.last(), Some(&429), "{statuses:?}");
    assert!(app.store.user_by_username("web3").await.unwrap().is_none());
    let mut statuses = Vec::new();
    for _ in 0..3 {
        statuses.push(browser.sign_in("web1", "wrong-password").await.status);
    }
    assert!(statuses.contains(&429), "{statuses:?}");
}

async fn max_age_zero_returns_after_a_fresh_sign_in(backend: Backend) {
    let app = app_with_alice(backend).await;
    code_client(&app, "spa", true).await;
    let mut browser = Browser::new(&app);
    browser
        .authorize(&request("spa", "orders"), Some(("alice", PASSWORD)))
        .await;
    app.advance(Duration::from_secs(1));
    let first = browser
        .get(&format!(
            "/oauth2/authorize?{}&max_age=0",
            request("spa", "orders")
        ))
        .await;
    let form = browser.get(first.location.as_deref().unwrap()).await;
    let return_to = form.input("return_to").unwrap();
    let answer = browser
        .submit(
            &form,
            "/signin",
            &[
                ("username", "alice"),
                ("password", PASSWORD),
                ("return_to", &return_to),
            ],
        )
        .await;
    // A second passes between signing in and coming back: the fresh sign-in still counts.
    app.advance(Duration::from_secs(1));
    code_of(&browser.get(answer.location.as_deref().unwrap()).await);
}
