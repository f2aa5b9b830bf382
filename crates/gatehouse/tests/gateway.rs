//! The gateway as its own process (`gatehouse gateway`) in front of a recording upstream, against
//! an issuer whose keys and feed the test controls: forged tokens, JWKS refetch storms, key
//! rotation under load, a lost feed, reloads.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use common::fakes::{FakeIssuer, Upstream, fake_issuer, upstream};
use gatehouse_token::{Audience, SigningKey};
use serde_json::json;

fn routes(upstream: &Upstream) -> String {
    format!(
        r#"
[[route]]
name = "echo"
prefix = "/echo"
upstream = "{0}"
strip_prefix = true
methods = ["GET"]
scopes = {{ GET = ["echo:read"] }}

[[route]]
name = "open"
prefix = "/open"
upstream = "{0}"
anonymous = true

[[route]]
name = "billing"
prefix = "/billing"
upstream = "{0}"
audience = "billing"
"#,
        upstream.url
    )
}

fn write_config(dir: &Path, issuer: &FakeIssuer, routes: &str, extra: &str) -> std::path::PathBuf {
    let path = dir.join("gateway.toml");
    std::fs::write(
        &path,
        format!(
            "[gateway]\nissuer = \"{}\"\nfeed_client_id = \"gw\"\n{extra}\n{routes}",
            issuer.url
        ),
    )
    .unwrap();
    path
}

/// What an operator's scraper presents to read the figures on the gateway's own listener.
const METRICS_TOKEN: &str = "metrics-scraper-token-4f1d";
const ENV: [(&str, &str); 2] = [
    ("GATEHOUSE_GATEWAY_CLIENT_SECRET", "feed-secret"),
    ("GATEHOUSE_METRICS_TOKEN", METRICS_TOKEN),
];

/// A gateway process in front of a recording upstream, trusting a fake issuer; `extra` goes
/// into its `[gateway]` table.
struct Rig {
    issuer: FakeIssuer,
    upstream: Upstream,
    gateway: common::Running,
    http: reqwest::Client,
    dir: tempfile::TempDir,
    config: std::path::PathBuf,
}

async fn rig(extra: &str) -> Rig {
    let issuer = fake_issuer().await;
    let upstream = upstream().await;
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &issuer, &routes(&upstream), extra);
    let gateway = common::start_gateway(&config, &ENV);
    Rig {
        issuer,
        upstream,
        gateway,
        http: reqwest::Client::new(),
        dir,
        config,
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn forged_and_missing_tokens_get_401_and_never_reach_the_upstream() {
    let rig = rig("").await;
    let (issuer, upstream, gateway, http) = (&rig.issuer, &rig.upstream, &rig.gateway, &rig.http);
    let url = format!("{}/echo/thing", gateway.base);

    for (name, token) in issuer.forgeries() {
        let response = http.get(&url).bearer_auth(&token).send().await.unwrap();
        assert_eq!(response.status(), 401, "{name}");
        let challenge = response.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(
            challenge.starts_with("Bearer realm=\"gatehouse\""),
            "{name}: {challenge}"
        );
        assert!(
            challenge.contains("error=\"invalid_token\""),
            "{name}: {challenge}"
        );
        assert!(
            challenge.contains("error_description="),
            "{name}: {challenge}"
        );
        assert_eq!(
            response.headers()["content-type"],
            "application/problem+json"
        );
        let body: serde_json::Value = response.json().await.unwrap();
        assert_eq!(body["status"], 401, "{name}");
    }
    // No token: a bare challenge, no error code (RFC 6750 §3.1).
    let response = http.get(&url).send().await.unwrap();
    assert_eq!(response.status(), 401);
    assert_eq!(
        response.headers()["www-authenticate"],
        "Bearer realm=\"gatehouse\""
    );
    // Another scheme is no bearer token: refused as invalid.
    let response = http
        .get(&url)
        .basic_auth("a", Some("b"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    // On an anonymous route a token that is present must still be good.
    let response = http
        .get(format!("{}/open", gateway.base))
        .bearer_auth("garbage")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    assert_eq!(
        upstream.count(),
        0,
        "a refused request reached the upstream"
    );

    // The genuine article passes, so the refusals above were about the tokens.
    let response = http
        .get(&url)
        .bearer_auth(issuer.token("echo:read"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(upstream.count(), 1);
    // A valid token without the scope: 403 naming the scope.
    let response = http
        .get(&url)
        .bearer_auth(issuer.token("other"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 403);
    let challenge = response.headers()["www-authenticate"].to_str().unwrap();
    assert!(
        challenge.contains("error=\"insufficient_scope\""),
        "{challenge}"
    );
    assert!(challenge.contains("scope=\"echo:read\""), "{challenge}");
    assert_eq!(upstream.count(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_burst_of_unknown_kids_costs_at_most_one_jwks_fetch_per_cooldown() {
    let rig = rig("jwks_cooldown_secs = 3").await;
    let (issuer, upstream, gateway, http) = (&rig.issuer, &rig.upstream, &rig.gateway, &rig.http);
    let url = format!("{}/echo/x", gateway.base);
    // Past the cooldown of the start-up fetch, so the burst may cause one.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let before = issuer.jwks_fetches.load(Ordering::SeqCst);

    let strangers: Vec<Arc<SigningKey>> = (0..8)
        .map(|_| Arc::new(SigningKey::generate().unwrap()))
        .collect();
    let mut burst = Vec::new();
    for i in 0..200 {
        let http = http.clone();
        let url = url.clone();
        let token = strangers[i % strangers.len()]
            .sign(&issuer.claims("echo:read"))
            .unwrap();
        burst.push(tokio::spawn(async move {
            common::status_of(&http, url, token).await
        }));
    }
    for request in burst {
        assert_eq!(request.await.unwrap(), 401);
    }
    let fetched = issuer.jwks_fetches.load(Ordering::SeqCst) - before;
    assert_eq!(
        fetched, 1,
        "200 unknown-kid requests caused {fetched} JWKS fetches"
    );
    assert_eq!(upstream.count(), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn key_rotation_under_load_drops_no_request_and_retired_keys_end_cached_verdicts() {
    let rig = rig("").await;
    let (issuer, gateway, http) = (&rig.issuer, &rig.gateway, &rig.http);
    let url = format!("{}/echo/load", gateway.base);
    let old_token = issuer.token("echo:read");
    assert_eq!(common::status_of(http, &url, &old_token).await, 200);

    let running = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let mut workers = Vec::new();
    for _ in 0..4 {
        let (http, url, issuer, running) =
            (http.clone(), url.clone(), issuer.clone(), running.clone());
        workers.push(tokio::spawn(async move {
            let (mut ok, mut failed) = (0, 0);
            while running.load(Ordering::SeqCst) {
                let status = common::status_of(&http, &url, issuer.token("echo:read")).await;
                if status == 200 { ok += 1 } else { failed += 1 }
            }
            (ok, failed)
        }));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    // Rotation as the issuer does it: publish and announce, then sign with the new key.
    let new_key = Arc::new(SigningKey::generate().unwrap());
    issuer.published.lock().unwrap().push(new_key.clone());
    issuer.announce(
        "keys_changed",
        json!({"type": "keys_changed", "kid": new_key.kid()}),
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    let old_key = std::mem::replace(&mut *issuer.signer.lock().unwrap(), new_key.clone());
    tokio::time::sleep(Duration::from_millis(300)).await;
    // Retire the old key.
    issuer
        .published
        .lock()
        .unwrap()
        .retain(|k| k.kid() != old_key.kid());
    issuer.announce(
        "keys_changed",
        json!({"type": "keys_changed", "kid": old_key.kid()}),
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    running.store(false, Ordering::SeqCst);
    let (mut ok, mut failed) = (0, 0);
    for worker in workers {
        let (o, f) = worker.await.unwrap();
        ok += o;
        failed += f;
    }
    assert!(ok > 50, "only {ok} requests ran");
    assert_eq!(
        failed,
        0,
        "{failed} of {} requests failed across the rotation",
        ok + failed
    );
    // The old token's cached verdict ended with its key.
    common::within_a_second("the retired key's token being refused", || {
        let (http, url, token) = (http.clone(), url.clone(), old_token.clone());
        async move { common::status_of(&http, &url, &token).await == 401 }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_lost_feed_beyond_the_budget_turns_protected_routes_to_503_until_it_returns() {
    let rig = rig("staleness_budget_secs = 1").await;
    let (issuer, upstream, gateway, http) = (&rig.issuer, &rig.upstream, &rig.gateway, &rig.http);
    let token = issuer.token("echo:read");
    let url = format!("{}/echo/x", gateway.base);
    assert_eq!(common::status_of(http, &url, &token).await, 200);

    // A revocation through the feed applies at once.
    let revoked = issuer.claims("echo:read");
    let revoked_token = issuer.sign(&revoked);
    assert_eq!(common::status_of(http, &url, &revoked_token).await, 200);
    issuer.announce(
        "token_revoked",
        json!({"type": "token_revoked", "jti": revoked.jti, "until": revoked.exp}),
    );
    common::within_a_second("a revocation from the feed", || {
        let (http, url, token) = (http.clone(), url.clone(), revoked_token.clone());
        async move { common::status_of(&http, &url, &token).await == 401 }
    })
    .await;

    issuer.feed_up.store(false, Ordering::SeqCst);
    let mut unavailable = None;
    for _ in 0..60 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let response = http.get(&url).bearer_auth(&token).send().await.unwrap();
        if response.status() == 503 {
            unavailable = Some(response);
            break;
        }
    }
    let response = unavailable.expect("a lost feed never made the gateway refuse");
    let before = upstream.count();
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json"
    );
    assert!(response.headers().contains_key("retry-after"));
    let ready = http
        .get(format!("{}/_gatehouse/readyz", gateway.base))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 503);
    // Anonymous routes need no revocation list.
    assert_eq!(
        http.get(format!("{}/open", gateway.base))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    // The figures: only for a bearer of the metrics token, on the gateway's listener and on
    // the metrics listener alike.
    let metrics_url = format!("{}/_gatehouse/metrics", gateway.base);
    let listener_url = format!("{}/metrics", gateway.metrics.as_deref().unwrap());
    for url in [&metrics_url, &listener_url] {
        for refused in [http.get(url), http.get(url).bearer_auth(&token)] {
            let refused = refused.send().await.unwrap();
            assert_eq!(refused.status(), 401, "{url}");
            let challenge = refused.headers()["www-authenticate"].to_str().unwrap();
            assert!(
                challenge.starts_with(r#"Bearer realm="gatehouse""#),
                "{challenge}"
            );
        }
    }
    let mut read = Vec::new();
    for url in [&metrics_url, &listener_url] {
        let answer = http
            .get(url)
            .bearer_auth(METRICS_TOKEN)
            .send()
            .await
            .unwrap();
        read.push(answer.text().await.unwrap());
    }
    let (metrics, from_listener) = (&read[0], &read[1]);
    assert!(from_listener.contains("reason=\"revocations_stale\""));
    assert!(
        metrics.contains("reason=\"revocations_stale\""),
        "{metrics}"
    );
    assert!(
        metrics.contains("gatehouse_gateway_feed_silence_seconds"),
        "{metrics}"
    );
    assert_eq!(
        upstream.count(),
        before + 1,
        "only the anonymous request went through"
    );
    assert_eq!(common::status_of(http, &url, &token).await, 503);

    // Connected again but not yet caught up: still refused.
    issuer.catch_up.store(false, Ordering::SeqCst);
    issuer.feed_up.store(true, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        common::status_of(http, &url, &token).await,
        503,
        "a reconnected feed was trusted before it caught up"
    );
    issuer.feed_up.store(false, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(200)).await;
    issuer.catch_up.store(true, Ordering::SeqCst);
    issuer.feed_up.store(true, Ordering::SeqCst);
    let mut recovered = false;
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if common::status_of(http, &url, &token).await == 200 {
            recovered = true;
            break;
        }
    }
    assert!(
        recovered,
        "the gateway did not recover when the feed came back"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn sighup_reloads_routes_and_a_broken_file_keeps_the_old_ones() {
    let rig = rig("").await;
    let (issuer, upstream, gateway, http) = (&rig.issuer, &rig.upstream, &rig.gateway, &rig.http);
    let token = issuer.token("echo:read");
    let new_url = format!("{}/added/x", gateway.base);
    assert_eq!(common::status_of(http, &new_url, &token).await, 404);

    let added = format!(
        "{}\n[[route]]\nprefix = \"/added\"\nupstream = \"{}\"\n",
        routes(upstream),
        upstream.url
    );
    write_config(rig.dir.path(), issuer, &added, "");
    common::signal(gateway, "-HUP");
    let mut reloaded = false;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        if common::status_of(http, &new_url, &token).await == 200 {
            reloaded = true;
            break;
        }
    }
    assert!(reloaded, "SIGHUP did not load the new route");

    std::fs::write(&rig.config, "[[route]]\nprefix = \"no-slash\"\n").unwrap();
    common::signal(gateway, "-HUP");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(common::status_of(http, &new_url, &token).await, 200);
    assert_eq!(
        common::status_of(http, format!("{}/echo/y", gateway.base), &token).await,
        200
    );
}

#[test]
fn a_broken_route_file_stops_the_gateway_with_a_clear_message() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gateway.toml");
    std::fs::write(
        &path,
        "[gateway]\nissuer = \"http://127.0.0.1:1\"\n[[route]]\nprefix = \"/a\"\nupstream = \"ftp://x\"\n",
    )
    .unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_gatehouse"))
        .args(["gateway", "--metrics-listen", "127.0.0.1:0", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("route /a") && stderr.contains("http://"),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stale_view_can_fall_back_to_introspection() {
    let rig = rig("staleness_budget_secs = 1\nintrospect_when_stale = true").await;
    let (issuer, gateway, http) = (&rig.issuer, &rig.gateway, &rig.http);
    let url = format!("{}/echo/x", gateway.base);
    let good = issuer.token("echo:read");
    let doomed = issuer.claims("echo:read");
    let doomed_token = issuer.sign(&doomed);
    assert_eq!(common::status_of(http, &url, &good).await, 200);
    assert_eq!(
        issuer.introspections.load(Ordering::SeqCst),
        0,
        "introspected while current"
    );

    issuer.feed_up.store(false, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(1600)).await;
    // Stale: each token is put to the issuer instead of refused.
    assert_eq!(common::status_of(http, &url, &good).await, 200);
    assert!(issuer.introspections.load(Ordering::SeqCst) >= 1);
    *issuer.inactive.lock().unwrap() = Some(vec![doomed.jti.clone()]);
    assert_eq!(common::status_of(http, &url, &doomed_token).await, 401);
    let ready = http
        .get(format!("{}/_gatehouse/readyz", gateway.base))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 200);
    // No token is still a 401, not a 503.
    assert_eq!(http.get(&url).send().await.unwrap().status(), 401);
    // An issuer that cannot answer: 503, never a guess.
    *issuer.inactive.lock().unwrap() = None;
    assert_eq!(common::status_of(http, &url, &good).await, 503);
}

#[tokio::test(flavor = "multi_thread")]
async fn every_route_checks_the_audience_its_own_or_the_gateways() {
    let rig = rig("").await;
    let (issuer, upstream, gateway, http) = (&rig.issuer, &rig.upstream, &rig.gateway, &rig.http);
    let echo = format!("{}/echo/x", gateway.base);
    let billing = format!("{}/billing/x", gateway.base);
    let foreign = issuer.token_for("echo:read", Audience::One("billing".into()));

    // No audience on the route: the gateway's default, which is the issuer's default.
    assert_eq!(
        common::status_of(http, &echo, issuer.token("echo:read")).await,
        200
    );
    let challenge = common::refused_as_invalid(http, &echo, &foreign).await;
    assert!(challenge.contains("audience"), "{challenge}");
    let both = issuer.token_for(
        "echo:read",
        Audience::Many(vec!["billing".into(), "gatehouse".into()]),
    );
    assert_eq!(common::status_of(http, &echo, &both).await, 200);
    // Even an anonymous route refuses a token that is sent for someone else.
    common::refused_as_invalid(http, &format!("{}/open", gateway.base), &foreign).await;
    // A route's own audience replaces the default.
    assert_eq!(common::status_of(http, &billing, &foreign).await, 200);
    common::refused_as_invalid(http, &billing, &issuer.token("")).await;
    assert_eq!(
        upstream.count(),
        3,
        "a refused request reached the upstream"
    );

    // [gateway] audience moves the default for every route without its own.
    let rig = self::rig("audience = \"api\"").await;
    let (issuer, gateway, http) = (&rig.issuer, &rig.gateway, &rig.http);
    let echo = format!("{}/echo/x", gateway.base);
    common::refused_as_invalid(http, &echo, &issuer.token("echo:read")).await;
    let for_api = issuer.token_for("echo:read", Audience::One("api".into()));
    assert_eq!(common::status_of(http, &echo, &for_api).await, 200);
    common::refused_as_invalid(http, &format!("{}/billing/x", gateway.base), &for_api).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_revoked_sign_in_session_ends_its_tokens_and_no_others() {
    let rig = rig("").await;
    let (issuer, gateway, http) = (&rig.issuer, &rig.gateway, &rig.http);
    let url = format!("{}/echo/x", gateway.base);
    let session = [
        issuer.person_token("echo:read", "fam-1"),
        issuer.person_token("echo:read", "fam-1"),
    ];
    let other_session = issuer.person_token("echo:read", "fam-2");
    let machine = issuer.token("echo:read");
    // Each is verified once and its verdict cached.
    for token in session.iter().chain([&other_session, &machine]) {
        assert_eq!(common::status_of(http, &url, token).await, 200);
    }
    issuer.await_feed_requests(1).await;

    issuer.revoke_session("fam-1");
    common::within_a_second("the gateway ending a revoked session", || {
        let (http, url, session) = (http.clone(), url.clone(), session.clone());
        async move {
            common::status_of(&http, &url, &session[0]).await == 401
                && common::status_of(&http, &url, &session[1]).await == 401
        }
    })
    .await;
    let challenge = common::refused_as_invalid(http, &url, &session[0]).await;
    assert!(challenge.contains("revoked"), "{challenge}");
    // A token of that session the gateway has not seen before is refused too.
    common::refused_as_invalid(http, &url, &issuer.person_token("echo:read", "fam-1")).await;
    assert_eq!(common::status_of(http, &url, &other_session).await, 200);
    assert_eq!(common::status_of(http, &url, &machine).await, 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn forward_auth_checks_are_answered_only_for_the_listed_proxies() {
    let rig = rig("forward_auth_from = [\"192.0.2.0/24\"]").await;
    let token = rig.issuer.token("echo:read");
    let refused = rig
        .http
        .get(format!("{}/_gatehouse/check", rig.gateway.base))
        .bearer_auth(&token)
        .header("x-forwarded-method", "GET")
        .header("x-forwarded-uri", "/echo/x")
        .header("x-forwarded-for", "198.51.100.7")
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 403);
    assert_eq!(
        refused.headers()["content-type"],
        "application/problem+json"
    );
    assert!(!refused.headers().contains_key("x-gatehouse-subject"));
    // The gateway itself still serves the same request.
    assert_eq!(
        common::status_of(&rig.http, &format!("{}/echo/x", rig.gateway.base), &token).await,
        200
    );
}
