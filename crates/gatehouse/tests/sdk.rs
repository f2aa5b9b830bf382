//! The service toolkit against a real `gatehouse serve`: the extractor and route guard in a
//! service of the test's own, and the token client's caching, single flight, refresh and retry.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use gatehouse_sdk::{
    Authenticated, FeedCredentials, Grant, Policy, TokenClient, TokenClientConfig, TokenVerifier,
    VerifierSettings, require,
};

fn start_server(dir: &std::path::Path, extra_env: &[(&str, &str)]) -> common::Running {
    let data = dir.join("data");
    let mut env = vec![
        ("GATEHOUSE_ADMIN_USERNAME", "root"),
        ("GATEHOUSE_ADMIN_PASSWORD", "root-password-1"),
    ];
    env.extend_from_slice(extra_env);
    common::start(&["auth", "--data-dir", data.to_str().unwrap()], &env)
}

async fn password_token(http: &reqwest::Client, base: &str) -> String {
    common::login(http, base, "root", "root-password-1").await
}

/// A client made through the admin API: (id, secret).
async fn admin_client(http: &reqwest::Client, base: &str, scope: &str) -> (String, String) {
    let admin = password_token(http, base).await;
    common::admin_client(http, base, &admin, scope).await
}

async fn serve_app(app: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    url
}

/// A verifier following the server's revocation feed, with its backlog received.
async fn following_verifier(http: &reqwest::Client, base: &str) -> Arc<TokenVerifier> {
    let (feed_id, feed_secret) = admin_client(http, base, "revocations:read").await;
    let verifier = TokenVerifier::connect(VerifierSettings {
        feed: Some(FeedCredentials {
            client_id: feed_id,
            client_secret: feed_secret,
        }),
        ..VerifierSettings::new(base)
    })
    .await
    .unwrap();
    assert!(verifier.wait_until_current(Duration::from_secs(5)).await);
    verifier
}

#[tokio::test(flavor = "multi_thread")]
async fn the_extractor_and_route_guards_protect_a_service() {
    let dir = tempfile::tempdir().unwrap();
    let server = start_server(dir.path(), &[]);
    let http = reqwest::Client::new();
    let verifier = following_verifier(&http, &server.base).await;
    let app = Router::new()
        .route(
            "/me",
            get(|caller: Authenticated| async move { caller.sub.clone() }),
        )
        .route(
            "/rates",
            get(|caller: Authenticated| async move { caller.client_id.clone() })
                .route_layer(require(verifier.clone(), Policy::scopes(["rates:read"]))),
        )
        .route(
            "/admin",
            get(|| async { "welcome" })
                .route_layer(require(verifier.clone(), Policy::roles(["admin"]))),
        )
        .with_state(verifier);
    let service = serve_app(app).await;

    let missing = http.get(format!("{service}/me")).send().await.unwrap();
    assert_eq!(missing.status(), 401);
    assert_eq!(
        missing.headers()["www-authenticate"],
        "Bearer realm=\"gatehouse\""
    );
    let garbage = http
        .get(format!("{service}/me"))
        .bearer_auth("x.y.z")
        .send()
        .await
        .unwrap();
    assert_eq!(garbage.status(), 401);
    assert!(
        garbage.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .contains("invalid_token")
    );
    assert_eq!(
        garbage.headers()["content-type"],
        "application/problem+json"
    );

    let (id, secret) = admin_client(&http, &server.base, "fx:read").await;
    let client = TokenClient::new(TokenClientConfig::new(
        format!("{}/oauth2/token", server.base),
        Grant::ClientCredentials {
            client_id: id.clone(),
            client_secret: secret,
            scope: None,
        },
    ));
    let token = client.access_token().await.unwrap();
    let me = http
        .get(format!("{service}/me"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(me.status(), 200);
    assert_eq!(me.text().await.unwrap(), id);
    let rates = http
        .get(format!("{service}/rates"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(rates.status(), 403);
    let challenge = rates.headers()["www-authenticate"].to_str().unwrap();
    assert!(
        challenge.contains(r#"error="insufficient_scope""#)
            && challenge.contains(r#"scope="rates:read""#),
        "{challenge}"
    );
    assert_eq!(
        common::status_of(&http, format!("{service}/admin"), &token).await,
        403
    );

    let admin = password_token(&http, &server.base).await;
    let welcome = http
        .get(format!("{service}/admin"))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(welcome.status(), 200);

    // The service follows the feed too: a revocation ends the token within a second.
    let revoked = http
        .post(format!("{}/oauth2/revoke", server.base))
        .form(&[("client_id", "gatehouse-web"), ("token", admin.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status(), 200);
    common::within_a_second("the service refusing a revoked token", || {
        let (http, url, admin) = (http.clone(), format!("{service}/admin"), admin.clone());
        async move { common::status_of(&http, url, admin).await == 401 }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_token_client_caches_lets_one_request_run_and_refreshes_ahead_of_expiry() {
    let dir = tempfile::tempdir().unwrap();
    let server = start_server(
        dir.path(),
        &[("GATEHOUSE_AUTH__ACCESS_TOKEN_TTL_SECS", "4")],
    );
    let http = reqwest::Client::new();
    let (id, secret) = admin_client(&http, &server.base, "fx:read").await;
    let mut config = TokenClientConfig::new(
        format!("{}/oauth2/token", server.base),
        Grant::ClientCredentials {
            client_id: id,
            client_secret: secret,
            scope: Some("fx:read".into()),
        },
    );
    config.refresh_ahead = 0.5;
    let client = Arc::new(TokenClient::new(config));

    let before = common::tokens_issued(&http, &server, "client_credentials").await;
    let tasks: Vec<_> = (0..50)
        .map(|_| {
            let client = client.clone();
            tokio::spawn(async move { client.access_token().await.unwrap() })
        })
        .collect();
    let mut tokens = Vec::new();
    for task in tasks {
        tokens.push(task.await.unwrap());
    }
    assert!(
        tokens.iter().all(|t| t == &tokens[0]),
        "tasks got different tokens"
    );
    assert_eq!(
        common::tokens_issued(&http, &server, "client_credentials").await,
        before + 1
    );
    // Cached while fresh.
    assert_eq!(client.access_token().await.unwrap(), tokens[0]);
    assert_eq!(
        common::tokens_issued(&http, &server, "client_credentials").await,
        before + 1
    );
    let left = client.expires_in().await.unwrap();
    assert!(
        left <= Duration::from_secs(4) && left > Duration::from_secs(2),
        "{left:?}"
    );

    // Past half its 4 s life, the next call gets a new one before the old expires.
    tokio::time::sleep(Duration::from_millis(2300)).await;
    let renewed = client.access_token().await.unwrap();
    assert_ne!(renewed, tokens[0]);
    assert_eq!(
        common::tokens_issued(&http, &server, "client_credentials").await,
        before + 2
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_token_client_refreshes_a_person_and_retries_once_on_401() {
    let dir = tempfile::tempdir().unwrap();
    let server = start_server(
        dir.path(),
        &[("GATEHOUSE_AUTH__ACCESS_TOKEN_TTL_SECS", "4")],
    );
    let http = reqwest::Client::new();
    let mut config = TokenClientConfig::new(
        format!("{}/oauth2/token", server.base),
        Grant::Password {
            client_id: "gatehouse-web".into(),
            client_secret: None,
            username: "root".into(),
            password: "root-password-1".into(),
            scope: None,
        },
    );
    config.refresh_ahead = 0.5;
    let client = TokenClient::new(config);
    let me = format!("{}/users/me", server.base);
    let response = client.send(|http| http.get(&me)).await.unwrap();
    assert_eq!(response.status(), 200);
    let first = client.access_token().await.unwrap();

    // Ahead of expiry it uses the refresh token, not the password.
    let refreshes = common::tokens_issued(&http, &server, "refresh_token").await;
    let logins = common::tokens_issued(&http, &server, "password").await;
    tokio::time::sleep(Duration::from_millis(2300)).await;
    let second = client.access_token().await.unwrap();
    assert_ne!(second, first);
    assert_eq!(
        common::tokens_issued(&http, &server, "refresh_token").await,
        refreshes + 1
    );
    assert_eq!(
        common::tokens_issued(&http, &server, "password").await,
        logins
    );

    // The server stops accepting the cached token: one 401, a fresh token, one retry.
    let revoked = http
        .post(format!("{}/oauth2/revoke", server.base))
        .form(&[("client_id", "gatehouse-web"), ("token", second.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status(), 200);
    let response = client.send(|http| http.get(&me)).await.unwrap();
    assert_eq!(response.status(), 200);
    assert_ne!(client.access_token().await.unwrap(), second);

    // Wrong credentials are an error, not a retry loop.
    let wrong = TokenClient::new(TokenClientConfig::new(
        format!("{}/oauth2/token", server.base),
        Grant::Password {
            client_id: "gatehouse-web".into(),
            client_secret: None,
            username: "root".into(),
            password: "wrong-password-1".into(),
            scope: None,
        },
    ));
    let error = wrong.access_token().await.unwrap_err().to_string();
    assert!(error.contains("invalid_grant"), "{error}");
}

#[tokio::test(flavor = "multi_thread")]
async fn logging_out_ends_the_sessions_access_tokens_at_the_service() {
    let dir = tempfile::tempdir().unwrap();
    let server = start_server(dir.path(), &[]);
    let http = reqwest::Client::new();
    let verifier = following_verifier(&http, &server.base).await;
    let login = || async {
        let body = common::sign_in(&http, &server.base, "root", "root-password-1").await;
        (
            body["access_token"].as_str().unwrap().to_owned(),
            body["refresh_token"].as_str().unwrap().to_owned(),
        )
    };
    let (access, refresh) = login().await;
    let (other_access, _) = login().await;
    let claims = &verifier.verify(&access).await.unwrap().claims;
    assert!(claims.sid.is_some(), "a person's token carries its session");
    assert!(verifier.verify(&other_access).await.is_ok());

    // Logout (RFC 7009): the refresh token is revoked, and with it the session.
    let revoked = http
        .post(format!("{}/oauth2/revoke", server.base))
        .form(&[("client_id", "gatehouse-web"), ("token", refresh.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status(), 200);
    common::within_a_second("the service refusing the ended session's token", || {
        let (verifier, access) = (verifier.clone(), access.clone());
        async move { verifier.verify(&access).await.is_err() }
    })
    .await;
    // Another sign-in of the same person is another session.
    assert!(verifier.verify(&other_access).await.is_ok());
}

/// The token client's calls carry the caller's trace: the current span's OpenTelemetry context
/// as `traceparent`, unless the request names its own.
#[tokio::test(flavor = "current_thread")]
async fn the_token_client_passes_the_current_trace_on() {
    use opentelemetry::trace::{TraceContextExt, TracerProvider as _};
    use tracing::Instrument;
    use tracing_opentelemetry::OpenTelemetrySpanExt;
    use tracing_subscriber::layer::SubscriberExt;

    let dir = tempfile::tempdir().unwrap();
    let server = start_server(dir.path(), &[]);
    let http = reqwest::Client::new();
    let (id, secret) = admin_client(&http, &server.base, "fx:read").await;
    let seen = Arc::new(std::sync::Mutex::new(Vec::<Option<String>>::new()));
    let kept = seen.clone();
    let echo = serve_app(Router::new().route(
        "/echo",
        get(move |headers: axum::http::HeaderMap| async move {
            let value = headers
                .get("traceparent")
                .map(|v| v.to_str().unwrap().to_owned());
            kept.lock().unwrap().push(value);
            "ok"
        }),
    ))
    .await;
    let client = TokenClient::new(TokenClientConfig::new(
        format!("{}/oauth2/token", server.base),
        Grant::ClientCredentials {
            client_id: id,
            client_secret: secret,
            scope: None,
        },
    ));

    // No OpenTelemetry layer: nothing to pass on.
    let url = format!("{echo}/echo");
    client.send(|http| http.get(&url)).await.unwrap();
    assert_eq!(seen.lock().unwrap().last().unwrap(), &None);

    let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder().build();
    let subscriber = tracing_subscriber::registry()
        .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("test")));
    let _installed = tracing::subscriber::set_default(subscriber);
    let span = tracing::info_span!("handling a request");
    let expected = span.context().span().span_context().clone();
    assert!(expected.is_valid());
    client
        .send(|http| http.get(&url))
        .instrument(span.clone())
        .await
        .unwrap();
    assert_eq!(
        seen.lock().unwrap().last().unwrap().as_deref(),
        Some(
            format!(
                "00-{}-{}-{:02x}",
                expected.trace_id(),
                expected.span_id(),
                expected.trace_flags().to_u8()
            )
            .as_str()
        )
    );
    // A request that names its own trace keeps it.
    let own = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    client
        .send(|http| http.get(&url).header("traceparent", own))
        .instrument(span)
        .await
        .unwrap();
    assert_eq!(seen.lock().unwrap().last().unwrap().as_deref(), Some(own));
}
