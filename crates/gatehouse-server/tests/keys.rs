//! Signing-key rotation over real HTTP: published before it signs, old keys retired only after
//! their last token expired, and not one failed verification under steady traffic.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use gatehouse_testkit::on_both_stores;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::{Backend, TestApp};
use serde_json::Value;

on_both_stores!(
    a_new_key_is_published_before_it_signs_and_old_keys_retire_after_their_tokens,
    rotation_under_steady_traffic_fails_no_verification,
);

async fn kids(app: &TestApp) -> Vec<String> {
    let set: Value = app
        .http
        .get(app.url("/oauth2/jwks"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    set["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap().to_owned())
        .collect()
}

fn kid_of(token: &str) -> String {
    jsonwebtoken::decode_header(token).unwrap().kid.unwrap()
}

/// Polls (bounded) until `check` holds; a state change that depends on the clock, not a timing goal.
async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(10);
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn rotate(app: &TestApp, admin: &str) -> Value {
    let response = app
        .http
        .post(app.url("/admin/keys/rotate"))
        .bearer_auth(admin)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    response.json().await.unwrap()
}

async fn a_new_key_is_published_before_it_signs_and_old_keys_retire_after_their_tokens(
    backend: Backend,
) {
    let app = TestApp::spawn_with(backend, |c| {
        c.key_activation_delay_secs = 2;
        c.access_token_ttl_secs = 1;
        c.token_leeway_secs = 0;
    })
    .await;
    let admin = app.admin_token().await;
    let (id, secret, _) = app.register_client("rates:read").await;
    let old_kid = kids(&app).await[0].clone();

    let new = rotate(&app, &admin).await;
    let new_kid = new["kid"].as_str().unwrap().to_owned();
    assert_eq!(new["status"], "pending");
    let mut published = kids(&app).await;
    published.sort();
    let mut both = vec![old_kid.clone(), new_kid.clone()];
    both.sort();
    assert_eq!(published, both, "published at once");
    assert_eq!(
        kid_of(&app.machine_token(&id, &secret).await),
        old_kid,
        "not signing yet"
    );

    let listed: Value = app
        .http
        .get(app.url("/admin/keys"))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let old = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kid"] == old_kid.as_str())
        .unwrap();
    assert_eq!(old["status"], "signing");
    assert_eq!(
        old["retired_at"].as_i64().unwrap(),
        new["activates_at"].as_i64().unwrap() + 1,
        "the old key retires when the last token it signed expires"
    );

    eventually("the new key signs", || async {
        kid_of(&app.machine_token(&id, &secret).await) == new_kid
    })
    .await;
    eventually("the old key leaves the JWKS", || async {
        kids(&app).await == vec![new_kid.clone()]
    })
    .await;
    let events = gatehouse_core::Store::recent_events(&app.store, 50)
        .await
        .unwrap();
    assert!(events.iter().any(|e| e.kind == "key.rotated"));
}

async fn rotation_under_steady_traffic_fails_no_verification(backend: Backend) {
    let app = Arc::new(TestApp::spawn_with(backend, |c| c.key_activation_delay_secs = 1).await);
    let admin = app.admin_token().await;
    let (id, secret, _) = app.register_client("rates:read").await;
    let old_kid = kids(&app).await[0].clone();
    let stop = Arc::new(AtomicBool::new(false));
    let (checked, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let traffic: Vec<_> = (0..4)
        .map(|_| {
            let (app, id, secret) = (app.clone(), id.clone(), secret.clone());
            let (stop, checked, failed) = (stop.clone(), checked.clone(), failed.clone());
            tokio::spawn(async move {
                let mut kids_seen = std::collections::BTreeSet::new();
                while !stop.load(Ordering::Relaxed) {
                    let token = app.machine_token(&id, &secret).await;
                    kids_seen.insert(kid_of(&token));
                    if app.introspect(&id, &secret, &token).await["active"] != true {
                        failed.fetch_add(1, Ordering::Relaxed);
                    }
                    checked.fetch_add(1, Ordering::Relaxed);
                }
                kids_seen
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let new_kid = rotate(&app, &admin).await["kid"]
        .as_str()
        .unwrap()
        .to_owned();
    eventually("the new key signs", || async {
        kid_of(&app.machine_token(&id, &secret).await) == new_kid
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::Relaxed);
    let mut seen = std::collections::BTreeSet::new();
    for task in traffic {
        seen.extend(task.await.unwrap());
    }
    assert!(checked.load(Ordering::Relaxed) > 20, "traffic ran");
    assert_eq!(
        failed.load(Ordering::Relaxed),
        0,
        "no verification failed during rotation"
    );
    assert!(
        seen.contains(&old_kid) && seen.contains(&new_kid),
        "traffic spanned both keys"
    );
}
