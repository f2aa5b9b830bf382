//! The service toolkit against an issuer the test controls: audience checks, revoked sign-in
//! sessions, and a revocation feed that sends events without ids, out of order, twice, or
//! nothing but keep-alives for a minute.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use common::fakes::{FakeIssuer, fake_issuer};
use gatehouse_sdk::{
    Authenticated, DEFAULT_AUDIENCE, FeedCredentials, FeedStatus, Policy, Rejection, TokenVerifier,
    VerifierSettings, require,
};
use gatehouse_token::{Audience, now_unix};
use serde_json::json;

fn settings(issuer: &FakeIssuer) -> VerifierSettings {
    VerifierSettings {
        feed: Some(FeedCredentials {
            client_id: "svc".into(),
            client_secret: "feed-secret".into(),
        }),
        ..VerifierSettings::new(&issuer.url)
    }
}

/// A service protected by the toolkit: `/me` takes any valid token (the extractor), `/rates`
/// needs a scope and `/billing` its own audience (route guards). Returns its URL.
async fn service(verifier: Arc<TokenVerifier>) -> String {
    let app = Router::new()
        .route(
            "/me",
            get(|caller: Authenticated| async move { caller.sub.clone() }),
        )
        .route(
            "/rates",
            get(|| async { "rates" })
                .route_layer(require(verifier.clone(), Policy::scopes(["rates:read"]))),
        )
        .route(
            "/billing",
            get(|| async { "billing" }).route_layer(require(
                verifier.clone(),
                Policy {
                    audience: Some("billing".into()),
                    ..Policy::default()
                },
            )),
        )
        .with_state(verifier);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    url
}

#[tokio::test(flavor = "multi_thread")]
async fn a_token_for_another_audience_is_refused_by_the_extractor_and_the_guards() {
    let issuer = fake_issuer().await;
    let verifier = TokenVerifier::connect(settings(&issuer)).await.unwrap();
    assert!(verifier.wait_until_current(Duration::from_secs(5)).await);
    assert_eq!(verifier.audience(), DEFAULT_AUDIENCE);
    let service = service(verifier.clone()).await;
    let http = reqwest::Client::new();
    let ours = issuer.token("rates:read");
    let foreign = issuer.token_for("rates:read", Audience::One("billing".into()));

    assert_eq!(
        common::status_of(&http, format!("{service}/me"), &ours).await,
        200
    );
    let challenge = common::refused_as_invalid(&http, &format!("{service}/me"), &foreign).await;
    assert!(challenge.contains("audience"), "{challenge}");
    // Not 403: the token is not for this service at all, whatever scopes it has.
    common::refused_as_invalid(&http, &format!("{service}/rates"), &foreign).await;
    assert_eq!(
        common::status_of(&http, format!("{service}/rates"), &ours).await,
        200
    );
    // A guard's own audience replaces the verifier's.
    assert_eq!(
        common::status_of(&http, format!("{service}/billing"), &foreign).await,
        200
    );
    common::refused_as_invalid(&http, &format!("{service}/billing"), &ours).await;
    assert!(matches!(
        verifier.verify(&foreign).await,
        Err(Rejection::InvalidToken(_))
    ));

    // A service of its own audience.
    let api = TokenVerifier::connect(VerifierSettings {
        audience: "api".into(),
        ..settings(&issuer)
    })
    .await
    .unwrap();
    assert!(api.wait_until_current(Duration::from_secs(5)).await);
    assert!(api.verify(&ours).await.is_err());
    let for_api = issuer.token_for("", Audience::Many(vec!["x".into(), "api".into()]));
    assert!(api.verify(&for_api).await.is_ok());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_revoked_sign_in_session_ends_its_tokens_and_no_others() {
    let issuer = fake_issuer().await;
    let verifier = TokenVerifier::connect(settings(&issuer)).await.unwrap();
    assert!(verifier.wait_until_current(Duration::from_secs(5)).await);
    let service = service(verifier).await;
    let http = reqwest::Client::new();
    let me = format!("{service}/me");
    let session = issuer.person_token("", "fam-1");
    let other_session = issuer.person_token("", "fam-2");
    let machine = issuer.token("");
    for token in [&session, &other_session, &machine] {
        assert_eq!(common::status_of(&http, &me, token).await, 200);
    }
    issuer.await_feed_requests(1).await;

    issuer.revoke_session("fam-1");
    common::within_a_second("the service ending a revoked session", || {
        let (http, me, session) = (http.clone(), me.clone(), session.clone());
        async move { common::status_of(&http, &me, &session).await == 401 }
    })
    .await;
    common::refused_as_invalid(&http, &me, &issuer.person_token("", "fam-1")).await;
    assert_eq!(common::status_of(&http, &me, &other_session).await, 200);
    assert_eq!(common::status_of(&http, &me, &machine).await, 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_follower_takes_events_without_ids_out_of_order_and_twice() {
    let issuer = fake_issuer().await;
    // The test sends the end of the backlog itself.
    issuer.catch_up.store(false, Ordering::SeqCst);
    let verifier = TokenVerifier::connect(settings(&issuer)).await.unwrap();
    issuer.await_feed_requests(1).await;
    assert_eq!(issuer.feed_requests.lock().unwrap()[0], None);
    // Until the backlog has arrived this process knows no revocation: it fails closed.
    assert_eq!(verifier.feed_status(), FeedStatus::Stale);
    assert!(matches!(
        verifier.verify(&issuer.token("")).await,
        Err(Rejection::Unavailable)
    ));

    let (backlog, live) = (issuer.claims(""), issuer.claims(""));
    let until = now_unix() + 300;
    let revoke = |jti: &str| json!({"type": "token_revoked", "jti": jti, "until": until});
    let end_session = json!({"type": "session_revoked", "sid": "fam-1", "until": until});
    // A backlog event without an id, a live event in between with a newer id, older ids.
    issuer.announce_with_id("token_revoked", revoke(&backlog.jti), None);
    issuer.announce_with_id("token_revoked", revoke(&live.jti), Some("50"));
    issuer.announce_with_id("session_revoked", end_session.clone(), Some("12"));
    // A type from a newer issuer, then the end of the backlog.
    issuer.announce_with_id("client_renamed", json!({"type": "client_renamed"}), None);
    issuer.announce_with_id("caught_up", json!({"type": "caught_up"}), Some("13"));
    // Repeats.
    issuer.announce_with_id("session_revoked", end_session, Some("12"));
    issuer.announce_with_id("token_revoked", revoke(&backlog.jti), None);
    assert!(verifier.wait_until_current(Duration::from_secs(5)).await);
    let (backlog, live) = (issuer.sign(&backlog), issuer.sign(&live));
    let session = issuer.person_token("", "fam-1");
    common::within_a_second("every revocation applied", || {
        let verifier = verifier.clone();
        let tokens = [backlog.clone(), live.clone(), session.clone()];
        async move {
            for token in tokens {
                if verifier.verify(&token).await.is_ok() {
                    return false;
                }
            }
            true
        }
    })
    .await;
    assert!(
        verifier
            .verify(&issuer.person_token("", "fam-2"))
            .await
            .is_ok()
    );
    assert!(verifier.verify(&issuer.token("")).await.is_ok());
    assert_eq!(verifier.feed_status(), FeedStatus::Current);

    // Cut: the follower comes back with the newest id it received, not the last one.
    issuer.feed_up.store(false, Ordering::SeqCst);
    issuer.await_feed_requests(2).await;
    let requests = issuer.feed_requests.lock().unwrap().clone();
    assert_eq!(requests[1].as_deref(), Some("50"), "{requests:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn keep_alives_alone_keep_the_follower_connected_and_current_for_a_minute() {
    let issuer = fake_issuer().await;
    // As the real issuer: no event, a keep-alive comment every 5 s.
    issuer.keep_alive_ms.store(5_000, Ordering::SeqCst);
    let verifier = TokenVerifier::connect(VerifierSettings {
        // Below the connection's 20 s idle limit, well above the keep-alive period: if
        // keep-alives did not count, the view would go stale here.
        staleness_budget: Duration::from_secs(12),
        ..settings(&issuer)
    })
    .await
    .unwrap();
    issuer.await_feed_requests(1).await;
    for second in 1..=60 {
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert_eq!(
            verifier.feed_status(),
            FeedStatus::Current,
            "stale after {second} s (silent for {:?})",
            verifier.feed_silence()
        );
    }
    assert_eq!(
        issuer.feed_request_count(),
        1,
        "the follower reconnected to a feed that only sent keep-alives"
    );
    // Still the same live connection: a revocation arrives through it.
    let claims = issuer.claims("");
    let token = issuer.sign(&claims);
    assert!(verifier.verify(&token).await.is_ok());
    issuer.announce(
        "token_revoked",
        json!({"type": "token_revoked", "jti": claims.jti, "until": claims.exp}),
    );
    common::within_a_second("a revocation after a minute of keep-alives", || {
        let (verifier, token) = (verifier.clone(), token.clone());
        async move { verifier.verify(&token).await.is_err() }
    })
    .await;
    assert_eq!(issuer.feed_request_count(), 1);
}
