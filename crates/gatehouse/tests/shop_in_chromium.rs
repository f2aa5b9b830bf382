//! The web shop in a real headless Chromium, through the gateway of a real `gatehouse serve`:
//! sign up, browse, fill the cart, check out (a paid and a failed payment), a purchase after the
//! access token expired (renewed silently), an operator revoking the person's sessions (sign in
//! again, the cart survives), and signing out (refresh token revoked, sign-in ended at the
//! issuer); then an operator blocks a client in the console and the gateway refuses its token
//! within a second. Screenshots of each page at 1280 and 390 px go to `target/screenshots/shop-*.png`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use gatehouse_testkit::browser::Browser;
use serde_json::{Value, json};

const USERNAME: &str = "dana";
const PASSWORD: &str = "dana-password-1";
/// Short, so the test can wait a token out.
const ACCESS_TOKEN_TTL_SECS: u64 = 8;

#[tokio::test(flavor = "multi_thread")]
async fn people_shop_through_the_gateway_in_chromium() {
    let Some(browser) = Browser::start().await.unwrap() else {
        eprintln!("no Chromium: the shop test is skipped");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let ttl = ACCESS_TOKEN_TTL_SECS.to_string();
    let node = common::start(
        &["serve", "--data-dir", data.to_str().unwrap()],
        &[
            ("GATEHOUSE_ADMIN_USERNAME", "admin"),
            ("GATEHOUSE_ADMIN_PASSWORD", "shop-admin-password"),
            ("GATEHOUSE_AUTH__ACCESS_TOKEN_TTL_SECS", &ttl),
            // Expired means refused at once, so the wait below is the token's life alone.
            ("GATEHOUSE_AUTH__TOKEN_LEEWAY_SECS", "0"),
            ("GATEHOUSE_APPS__ORDERS__PAYMENT_SUCCESS_RATE", "0.5"),
            ("GATEHOUSE_APPS__ORDERS__PAYMENT_SEED", "11"),
        ],
    );
    let gateway = node.gateway.clone().unwrap();
    let shop = format!("{gateway}/shop");
    let http = reqwest::Client::new();

    // Signed out, the front page invites to sign in; the sign-in page offers an account.
    browser.goto(&format!("{shop}/")).await.unwrap();
    assert_eq!(browser.text_of("h1").await.unwrap(), "Welcome to the shop");
    browser
        .check_layout("welcome", Some("shop-welcome"))
        .await
        .unwrap();
    browser.click("#sign-in").await.unwrap();
    browser
        .wait_for_url(&format!("{}/signin?", node.base))
        .await
        .unwrap();
    browser.click("a[href^='/signup']").await.unwrap();
    browser
        .wait_for_url(&format!("{}/signup?", node.base))
        .await
        .unwrap();
    browser.fill("#username", USERNAME).await.unwrap();
    browser.fill("#email", "dana@example.com").await.unwrap();
    browser.fill("#password", PASSWORD).await.unwrap();
    browser.click("button[type=submit]").await.unwrap();

    // A first-party application: no consent screen, straight back to the catalog.
    browser.wait_for_url(&format!("{shop}/")).await.unwrap();
    assert_eq!(browser.text_of("h1").await.unwrap(), "Catalog");
    assert_eq!(browser.text_of("#shopper").await.unwrap(), USERNAME);
    let names = browser.texts(".product h2").await.unwrap();
    assert!(
        names.contains(&"Mechanical keyboard".to_owned()),
        "{names:?}"
    );
    // The browser holds one opaque cookie for the shop, out of scripts' reach.
    let cookies = browser.cookies().await.unwrap();
    let session = cookies
        .iter()
        .find(|c| c.name() == "shop_session")
        .expect("the shop's session cookie");
    assert_eq!(session.http_only(), Some(true));
    assert!(
        // A JWT's first segment is a base64url JSON object: `eyJ`.
        !cookies.iter().any(|c| c.value().starts_with("eyJ")),
        "no token (a JWT) is kept in the browser: {cookies:?}"
    );
    browser
        .check_layout("catalog", Some("shop-catalog"))
        .await
        .unwrap();

    // Two products into the cart.
    browser.click("#add-keyboard").await.unwrap();
    browser
        .wait_for_text("#notice", "Mechanical keyboard is in your cart")
        .await
        .unwrap();
    browser.fill("#quantity-mouse", "2").await.unwrap();
    browser.click("#add-mouse").await.unwrap();
    browser
        .wait_for_text("#notice", "Wireless mouse")
        .await
        .unwrap();
    assert_eq!(browser.text_of("#cart-count").await.unwrap(), "3");
    browser.click("#nav-cart").await.unwrap();
    browser.wait_for_url(&format!("{shop}/cart")).await.unwrap();
    assert_eq!(browser.texts("#cart-lines > li").await.unwrap().len(), 2);
    assert_eq!(browser.text_of("#cart-total").await.unwrap(), "138.90");
    browser
        .check_layout("cart", Some("shop-cart"))
        .await
        .unwrap();

    forged_and_malformed_posts_change_nothing(&browser, &shop, &gateway).await;

    // The access token runs out; the purchase still goes through, renewed behind the scenes.
    let refreshed_before = common::tokens_issued(&http, &node, "refresh_token").await;
    tokio::time::sleep(Duration::from_secs(ACCESS_TOKEN_TTL_SECS + 1)).await;
    let (mut saw_paid, mut saw_failed) = (false, false);
    for attempt in 0..12 {
        if attempt > 0 && browser.texts("#empty-cart").await.unwrap().len() == 1 {
            // Paid already: another purchase, to see a payment fail too.
            browser.goto(&format!("{shop}/")).await.unwrap();
            browser.click("#add-cable").await.unwrap();
            browser
                .wait_for_text("#notice", "USB-C cable")
                .await
                .unwrap();
            browser.goto(&format!("{shop}/cart")).await.unwrap();
        }
        browser.click("#checkout").await.unwrap();
        browser
            .wait_for_url(&format!("{shop}/orders?placed="))
            .await
            .unwrap();
        let placed = browser.text_of("#placed").await.unwrap();
        if placed.contains("is paid") {
            saw_paid = true;
            browser.goto(&format!("{shop}/cart")).await.unwrap();
            assert_eq!(browser.texts("#empty-cart").await.unwrap().len(), 1);
        } else {
            assert!(placed.contains("failed"), "{placed}");
            saw_failed = true;
            let failed = browser.texts(".status-failed").await.unwrap();
            assert!(!failed.is_empty(), "the failed order is listed as such");
            browser
                .check_layout("orders-failed", Some("shop-orders-failed"))
                .await
                .unwrap();
            // The cart is kept for another try.
            browser.goto(&format!("{shop}/cart")).await.unwrap();
            assert!(!browser.texts("#cart-lines > li").await.unwrap().is_empty());
        }
        if saw_paid && saw_failed {
            break;
        }
    }
    assert!(
        saw_paid && saw_failed,
        "saw paid {saw_paid}, failed {saw_failed}"
    );
    assert!(
        common::tokens_issued(&http, &node, "refresh_token").await > refreshed_before,
        "the expired access token was renewed with the refresh token"
    );
    browser.goto(&format!("{shop}/orders")).await.unwrap();
    assert!(!browser.texts(".status-paid").await.unwrap().is_empty());
    assert!(!browser.texts(".status-failed").await.unwrap().is_empty());
    browser
        .check_layout("orders", Some("shop-orders"))
        .await
        .unwrap();

    // Something in the cart, then an operator ends every session of the person.
    browser.goto(&format!("{shop}/")).await.unwrap();
    browser.click("#add-headset").await.unwrap();
    browser.wait_for_text("#notice", "headset").await.unwrap();
    let admin = common::login(&http, &node.base, "admin", "shop-admin-password").await;
    let user_id = user_id(&http, &node.base, &admin, USERNAME).await;
    let revoked = http
        .post(format!("{}/admin/revoke-all", node.base))
        .bearer_auth(&admin)
        .json(&json!({"subject": user_id}))
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status(), 200, "{}", revoked.text().await.unwrap());

    // The next action leads to sign-in; afterwards the cart is still there.
    browser.click("#nav-cart").await.unwrap();
    browser
        .wait_for_url(&format!("{}/signin?", node.base))
        .await
        .unwrap();
    browser.fill("#username", USERNAME).await.unwrap();
    browser.fill("#password", PASSWORD).await.unwrap();
    browser.click("button[type=submit]").await.unwrap();
    browser.wait_for_url(&format!("{shop}/cart")).await.unwrap();
    let lines = browser.texts("#cart-lines > li").await.unwrap();
    assert!(
        lines.iter().any(|l| l.contains("Noise-cancelling headset")),
        "the cart survived signing in again: {lines:?}"
    );

    // Signing out ends the shop's session and the sign-in at the issuer.
    browser.click("#sign-out").await.unwrap();
    browser
        .wait_for_url(&format!("{shop}/signed-out"))
        .await
        .unwrap();
    assert_eq!(browser.text_of("h1").await.unwrap(), "You are signed out");
    browser
        .check_layout("signed-out", Some("shop-signed-out"))
        .await
        .unwrap();
    let sessions = sessions_of(&http, &node.base, &admin, &user_id).await;
    assert!(
        !sessions.is_empty() && sessions.iter().all(|s| s["revoked_at"].is_i64()),
        "signing out revoked the shop's refresh token: {sessions:?}"
    );
    // The issuer asks for a password again: its sign-in ended too.
    browser.goto(&format!("{shop}/signin")).await.unwrap();
    browser
        .wait_for_url(&format!("{}/signin?", node.base))
        .await
        .unwrap();

    a_client_blocked_in_the_console_is_refused_by_the_gateway(&browser, &node).await;
    browser.close().await.unwrap();
}

/// The operators' console beside the shop: a client created there gets a token the gateway
/// accepts; blocked there, the gateway refuses that token within a second.
async fn a_client_blocked_in_the_console_is_refused_by_the_gateway(
    browser: &Browser,
    node: &common::Running,
) {
    let gateway = node.gateway.clone().unwrap();
    browser
        .goto(&format!("{}/console/clients/new", node.base))
        .await
        .unwrap();
    browser
        .wait_for_url(&format!("{}/signin?", node.base))
        .await
        .unwrap();
    browser.fill("#username", "admin").await.unwrap();
    browser
        .fill("#password", "shop-admin-password")
        .await
        .unwrap();
    browser.click("button[type=submit]").await.unwrap();
    browser
        .wait_for_url(&format!("{}/console/clients/new", node.base))
        .await
        .unwrap();
    browser.fill("#name", "rates reader").await.unwrap();
    browser
        .click("input[name=kind][value=machine]")
        .await
        .unwrap();
    browser.fill("#scope", "rates:read").await.unwrap();
    browser.click("#create-client").await.unwrap();
    let client_id = browser.text_of("#client-id").await.unwrap();
    let secret = browser.text_of("#client-secret").await.unwrap();
    let http = reqwest::Client::new();
    let token = common::client_token(&http, &node.base, &client_id, &secret).await;
    let rates = format!("{gateway}/api/rates");
    assert_eq!(common::status_of(&http, &rates, &token).await, 200);

    browser.click("#to-client").await.unwrap();
    browser.click("#block").await.unwrap();
    browser
        .wait_for_text("#client-status", "Blocked")
        .await
        .unwrap();
    common::within_a_second(
        "the gateway refusing the blocked client's token",
        || async { common::status_of(&http, &rates, &token).await == 401 },
    )
    .await;
}

async fn user_id(http: &reqwest::Client, base: &str, admin: &str, username: &str) -> String {
    let users: Value = http
        .get(format!("{base}/admin/users"))
        .bearer_auth(admin)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    users["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["username"] == username)
        .map(|u| u["id"].as_str().unwrap().to_owned())
        .unwrap_or_else(|| panic!("no user {username} in {users}"))
}

/// Posts from elsewhere, without the form's token, or with bad fields are refused, and the cart
/// stays as it was; a visitor without a session is sent to sign in; a callback no sign-in
/// started is refused.
async fn forged_and_malformed_posts_change_nothing(browser: &Browser, shop: &str, origin: &str) {
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let anonymous = http.get(format!("{shop}/cart")).send().await.unwrap();
    assert_eq!(anonymous.status(), 303);
    assert_eq!(
        anonymous.headers()["location"],
        "/shop/signin?return_to=%2Fshop%2Fcart"
    );
    let cookie = browser
        .cookies()
        .await
        .unwrap()
        .into_iter()
        .find(|c| c.name() == "shop_session")
        .map(|c| format!("shop_session={}", c.value()))
        .unwrap();
    let csrf = browser
        .script(
            "return document.querySelector('input[name=csrf_token]').value;",
            Vec::new(),
        )
        .await
        .unwrap();
    let csrf = csrf.as_str().unwrap();
    let post = |from: &str, form: Vec<(&'static str, String)>| {
        http.post(format!("{shop}/cart/add"))
            .header("cookie", &cookie)
            .header("origin", from)
            .form(&form)
            .send()
    };
    let keyboard = |token: &str| {
        vec![
            ("csrf_token", token.to_owned()),
            ("product_id", "keyboard".to_owned()),
            ("quantity", "1".to_owned()),
        ]
    };
    assert_eq!(post(origin, keyboard("")).await.unwrap().status(), 403);
    assert_eq!(
        post(origin, keyboard("forged")).await.unwrap().status(),
        403
    );
    assert_eq!(
        post("http://evil.example", keyboard(csrf))
            .await
            .unwrap()
            .status(),
        403
    );
    for (product, quantity) in [("no-such-thing", "1"), ("keyboard", "0"), ("keyboard", "x")] {
        let form = vec![
            ("csrf_token", csrf.to_owned()),
            ("product_id", product.to_owned()),
            ("quantity", quantity.to_owned()),
        ];
        let refused = post(origin, form).await.unwrap();
        assert_eq!(refused.status(), 400, "{product} × {quantity}");
        let page = refused.text().await.unwrap();
        assert!(page.contains("That did not work"), "{page}");
    }
    let stray = http
        .get(format!("{shop}/callback?code=x&state=y"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(stray.status(), 400);
    browser.goto(&format!("{shop}/cart")).await.unwrap();
    assert_eq!(browser.text_of("#cart-count").await.unwrap(), "3");
}

/// The person's sessions (refresh token families), ended ones too.
async fn sessions_of(http: &reqwest::Client, base: &str, admin: &str, user_id: &str) -> Vec<Value> {
    let sessions: Value = http
        .get(format!("{base}/admin/sessions?user_id={user_id}"))
        .bearer_auth(admin)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    sessions["items"].as_array().unwrap().clone()
}
