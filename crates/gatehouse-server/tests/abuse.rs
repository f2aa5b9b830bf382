//! Abuse limits over real HTTP: rate limits answer 429 with Retry-After; repeated failed logins
//! lock a username without telling anyone whether it exists.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use gatehouse_testkit::on_both_stores;

use std::time::Duration;

use common::{Backend, TestApp};
use gatehouse_core::Store;
use gatehouse_server::limits::RateLimitConfig;
use serde_json::{Value, json};

on_both_stores!(
    a_locked_username_is_answered_like_a_wrong_password,
    signup_and_registration_are_limited_per_ip,
    the_token_endpoint_is_limited_per_client,
);

async fn password_attempt(app: &TestApp, username: &str, password: &str) -> (u16, Vec<u8>) {
    let response = app
        .token(&[
            ("grant_type", "password"),
            ("client_id", "gatehouse-web"),
            ("username", username),
            ("password", password),
        ])
        .await;
    (
        response.status().as_u16(),
        response.bytes().await.unwrap().to_vec(),
    )
}

async fn a_locked_username_is_answered_like_a_wrong_password(backend: Backend) {
    let app = TestApp::spawn_with(backend, |c| {
        c.login_delay_after_failures = 100;
        c.login_lock_after_failures = 3;
        c.login_lock_secs = 2;
    })
    .await;
    app.sign_up("alice", "correct-horse").await;
    let (_, wrong) = password_attempt(&app, "alice", "wrong-horse").await;
    for username in ["alice", "mallory"] {
        for _ in 0..3 {
            let (status, body) = password_attempt(&app, username, "wrong-horse").await;
            assert_eq!((status, &body), (400, &wrong));
        }
    }
    // Locked: even the right password gets the wrong-password answer, byte for byte.
    let (status, body) = password_attempt(&app, "Alice", "correct-horse").await;
    assert_eq!(
        (status, &body),
        (400, &wrong),
        "a lock looks like a wrong password"
    );
    let (status, body) = password_attempt(&app, "mallory", "anything-at-all").await;
    assert_eq!((status, &body), (400, &wrong), "unknown names lock alike");
    let events = app.store.recent_events(50).await.unwrap();
    assert_eq!(
        events.iter().filter(|e| e.kind == "login.locked").count(),
        2
    );

    app.advance(Duration::from_millis(2100));
    let (status, _) = password_attempt(&app, "alice", "correct-horse").await;
    assert_eq!(status, 200, "the lock ends");
}

async fn signup_and_registration_are_limited_per_ip(backend: Backend) {
    let limits = RateLimitConfig {
        signup_per_ip_per_minute: 1,
        registration_per_ip_per_minute: 1,
        ..RateLimitConfig::off()
    };
    let app = TestApp::spawn_limited(backend, |_| {}, limits).await;
    // A burst of twice the rate passes, then 429.
    app.sign_up("user1", "long-enough-1").await;
    app.sign_up("user2", "long-enough-2").await;
    let before = app.snapshot().await;
    let refused = app
        .http
        .post(app.url("/users"))
        .json(&json!({"username": "user3", "password": "long-enough-3", "email": "u3@example.com"}))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 429);
    assert_eq!(
        refused.headers()["content-type"],
        "application/problem+json"
    );
    let retry: u64 = refused.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry), "retry after {retry}");
    assert_eq!(
        app.snapshot().await,
        before,
        "a refused signup stores nothing"
    );

    app.register_client("rates:read").await;
    app.register_client("rates:read").await;
    let refused = app
        .http
        .post(app.url("/oauth2/register"))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 429);
    assert!(refused.headers().contains_key("retry-after"));
    assert_eq!(
        refused.json::<Value>().await.unwrap()["error"],
        "temporarily_unavailable"
    );
}

async fn the_token_endpoint_is_limited_per_client(backend: Backend) {
    let limits = RateLimitConfig {
        token_per_client_per_second: 1,
        ..RateLimitConfig::off()
    };
    let app = TestApp::spawn_limited(backend, |_| {}, limits).await;
    let (busy, busy_secret, _) = app.register_client("rates:read").await;
    let (calm, calm_secret, _) = app.register_client("rates:read").await;
    // Requests with a wrong secret are refused as unauthenticated and spend none of its budget.
    for _ in 0..10 {
        let forged = app.client_credentials(&busy, "wrong").await;
        assert_eq!(forged.status(), 401);
    }
    let mut statuses = Vec::new();
    for _ in 0..6 {
        let response = app.client_credentials(&busy, &busy_secret).await;
        if response.status() == 429 {
            assert!(response.headers().contains_key("retry-after"));
            assert_eq!(
                response.json::<Value>().await.unwrap()["error"],
                "temporarily_unavailable"
            );
            statuses.push(429);
        } else {
            statuses.push(response.status().as_u16());
        }
    }
    assert_eq!(&statuses[..2], &[200, 200], "the burst passes");
    assert!(
        statuses.contains(&429),
        "then the client is limited: {statuses:?}"
    );
    let other = app.client_credentials(&calm, &calm_secret).await;
    assert_eq!(other.status(), 200, "other clients are not affected");
}
