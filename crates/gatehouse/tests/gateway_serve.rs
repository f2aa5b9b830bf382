//! The gateway that `gatehouse serve` runs, in front of a recording upstream, with real tokens
//! from the real authorization server: forwarding, identity headers, revocation within a second,
//! policies, upstream failures, limits and WebSockets.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use common::fakes::{Upstream, upstream};
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};

struct Setup {
    server: common::Running,
    gateway: String,
    upstream: Upstream,
    http: reqwest::Client,
    _dir: tempfile::TempDir,
}

async fn setup() -> Setup {
    let upstream = upstream().await;
    let dir = tempfile::tempdir().unwrap();
    let routes = dir.path().join("routes.toml");
    std::fs::write(
        &routes,
        format!(
            r#"
[[route]]
name = "rates"
prefix = "/rates"
upstream = "{u}/base"
strip_prefix = true
methods = ["GET", "POST"]
scopes = {{ GET = ["rates:read"], "*" = {{ any_of = ["fx:write", "admin"] }} }}

[[route]]
name = "admin-only"
prefix = "/admin-only"
upstream = "{u}"
roles = ["admin"]

[[route]]
name = "billing"
prefix = "/billing"
upstream = "{u}"
audience = "billing"

[[route]]
name = "limited"
prefix = "/limited"
upstream = "{u}"
rate_limit = {{ per_second = 1, burst = 2, key = "client" }}

[[route]]
name = "slow"
prefix = "/slow"
upstream = "{u}"
timeout_ms = 300

[[route]]
name = "down"
prefix = "/down"
upstream = "http://127.0.0.1:1"

[[route]]
name = "small"
prefix = "/small"
upstream = "{u}"
max_body_bytes = 16

[[route]]
name = "ws"
prefix = "/ws"
upstream = "{u}"
websocket = true
"#,
            u = upstream.url
        ),
    )
    .unwrap();
    let data = dir.path().join("data");
    let server = common::start(
        &[
            "serve",
            "--data-dir",
            data.to_str().unwrap(),
            "--gateway-routes",
            routes.to_str().unwrap(),
        ],
        &[
            ("GATEHOUSE_ADMIN_USERNAME", "root"),
            ("GATEHOUSE_ADMIN_PASSWORD", "root-password-1"),
        ],
    );
    let gateway = server
        .gateway
        .clone()
        .expect("serve printed no gateway address");
    Setup {
        server,
        gateway,
        upstream,
        http: reqwest::Client::new(),
        _dir: dir,
    }
}

impl Setup {
    /// A registered machine client's (id, secret).
    async fn machine(&self, scope: &str) -> (String, String) {
        common::register(&self.http, &self.server.base, scope).await
    }

    async fn machine_token(&self, id: &str, secret: &str) -> String {
        common::client_token(&self.http, &self.server.base, id, secret).await
    }

    async fn admin_token(&self) -> String {
        common::login(&self.http, &self.server.base, "root", "root-password-1").await
    }

    async fn get(&self, path: &str, token: &str) -> reqwest::Response {
        self.http
            .get(format!("{}{path}", self.gateway))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn forwards_the_verified_identity_and_never_a_spoofed_one() {
    let s = setup().await;
    let (id, secret) = s.machine("rates:read").await;
    let token = s.machine_token(&id, &secret).await;
    let response = s
        .http
        .get(format!("{}/rates/btc?window=24h", s.gateway))
        .bearer_auth(&token)
        .header("x-gatehouse-subject", "someone-else")
        .header("x-gatehouse-roles", "admin")
        .header("X-Gatehouse-Scopes", "everything")
        .header("x-gatehouse-anything", "1")
        .header("connection", "x-hop")
        .header("x-hop", "1")
        .header("x-request-id", "req-42")
        .header("x-forwarded-proto", "https")
        .header("x-forwarded-host", "bank.example")
        .header("x-forwarded-for", "6.6.6.6")
        .header("forwarded", "for=6.6.6.6")
        .header("x-real-ip", "6.6.6.6")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-request-id"], "req-42");
    // Hop-by-hop headers of the upstream's answer stay on its side.
    assert!(!response.headers().contains_key("x-upstream-private"));
    let seen = s.upstream.last();
    assert_eq!(seen.path_and_query, "/base/btc?window=24h");
    assert_eq!(seen.headers["x-gatehouse-subject"], id.as_str());
    assert_eq!(seen.headers["x-gatehouse-client-id"], id.as_str());
    assert_eq!(seen.headers["x-gatehouse-scopes"], "rates:read");
    assert_eq!(seen.headers["x-gatehouse-roles"], "");
    assert!(!seen.headers.contains_key("x-gatehouse-anything"));
    assert_eq!(
        seen.headers["authorization"],
        format!("Bearer {token}").as_str()
    );
    assert!(
        !seen.headers.contains_key("x-hop"),
        "a header named by Connection was forwarded"
    );
    assert_eq!(seen.headers["x-forwarded-for"], "127.0.0.1");
    assert!(!seen.headers.contains_key("forwarded"));
    assert!(!seen.headers.contains_key("x-real-ip"));
    assert_eq!(seen.headers["x-forwarded-proto"], "http");
    assert_eq!(
        seen.headers["x-forwarded-host"],
        s.gateway.trim_start_matches("http://")
    );
    assert_eq!(seen.headers["x-request-id"], "req-42");

    // Without a request id the gateway makes one and both sides see it.
    let response = s.get("/rates/eth", &token).await;
    let made = response.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(made.len() >= 16);
    assert_eq!(s.upstream.last().headers["x-request-id"], made.as_str());

    // A person's roles are forwarded too.
    let admin = s.admin_token().await;
    assert_eq!(s.get("/admin-only/x", &admin).await.status(), 200);
    let seen = s.upstream.last();
    assert!(
        seen.headers["x-gatehouse-roles"]
            .to_str()
            .unwrap()
            .split(' ')
            .any(|r| r == "admin"),
        "{:?}",
        seen.headers
    );

    // A body is relayed as sent.
    let body = "x".repeat(300_000);
    let response = s
        .http
        .post(format!("{}/rates/upload", s.gateway))
        .bearer_auth(&admin)
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let seen = s.upstream.last();
    assert_eq!(seen.method, "POST");
    assert_eq!(seen.body.len(), body.len());
}

#[tokio::test(flavor = "multi_thread")]
async fn revocations_reach_the_gateway_within_a_second() {
    let s = setup().await;
    let (id, secret) = s.machine("rates:read").await;
    let token = s.machine_token(&id, &secret).await;
    // Verified once, so the verdict is cached: the revocation must still end it.
    assert_eq!(s.get("/rates/a", &token).await.status(), 200);
    assert_eq!(s.get("/rates/a", &token).await.status(), 200);
    let revoked = s
        .http
        .post(format!("{}/oauth2/revoke", s.server.base))
        .basic_auth(&id, Some(&secret))
        .form(&[("token", token.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status(), 200);
    common::within_a_second("a revoked token being refused at the gateway", || async {
        s.get("/rates/a", &token).await.status() == 401
    })
    .await;
    let response = s.get("/rates/a", &token).await;
    let challenge = response.headers()["www-authenticate"].to_str().unwrap();
    assert!(challenge.contains("revoked"), "{challenge}");

    // Blocking a client ends every token it holds.
    let other = s.machine_token(&id, &secret).await;
    assert_eq!(s.get("/rates/b", &other).await.status(), 200);
    let admin = s.admin_token().await;
    let blocked = s
        .http
        .patch(format!("{}/admin/clients/{id}", s.server.base))
        .bearer_auth(&admin)
        .json(&json!({"blocked": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(blocked.status(), 200);
    common::within_a_second(
        "a blocked client's token being refused at the gateway",
        || async { s.get("/rates/b", &other).await.status() == 401 },
    )
    .await;

    // Deleting a client or a user ends their tokens too.
    let (doomed_id, doomed_secret) = s.machine("rates:read").await;
    let doomed_client = s.machine_token(&doomed_id, &doomed_secret).await;
    let created = s
        .http
        .post(format!("{}/users", s.server.base))
        .json(&json!({"username": "dora", "password": "dora-password-1", "email": "dora@example.com"}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let dora_id = created.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let dora = common::login(&s.http, &s.server.base, "dora", "dora-password-1").await;
    for (what, path, token) in [
        (
            "client",
            format!("/admin/clients/{doomed_id}"),
            doomed_client,
        ),
        ("user", format!("/admin/users/{dora_id}"), dora),
    ] {
        assert_eq!(s.get("/rates/c", &token).await.status(), 200);
        let deleted = s
            .http
            .delete(format!("{}{path}", s.server.base))
            .bearer_auth(&admin)
            .send()
            .await
            .unwrap();
        assert_eq!(deleted.status(), 204);
        common::within_a_second(
            &format!("a deleted {what}'s token being refused at the gateway"),
            || async { s.get("/rates/c", &token).await.status() == 401 },
        )
        .await;
    }

    // With no metrics token set, the figures are not on the public listeners at all: only on
    // the metrics listener.
    for hidden in [
        format!("{}/_gatehouse/metrics", s.gateway),
        format!("{}/metrics", s.server.base),
    ] {
        let refused = s.http.get(&hidden).send().await.unwrap();
        assert_eq!(refused.status(), 404, "{hidden}");
        let body = refused.text().await.unwrap();
        assert!(!body.contains("gatehouse_"), "{body}");
    }
    let metrics = s
        .http
        .get(format!("{}/metrics", s.server.metrics.as_deref().unwrap()))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains(r#"gatehouse_gateway_token_cache_total{route="rates",result="hit"}"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"gatehouse_gateway_requests_total{route="rates",status="401"}"#),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn scopes_roles_and_audience_are_enforced_before_the_upstream() {
    let s = setup().await;
    let (id, secret) = s.machine("rates:read fx:read").await;
    let token = s.machine_token(&id, &secret).await;
    let before = s.upstream.count();

    let response = s
        .http
        .post(format!("{}/rates/x", s.gateway))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 403);
    let challenge = response.headers()["www-authenticate"].to_str().unwrap();
    assert!(
        challenge.contains(r#"error="insufficient_scope""#),
        "{challenge}"
    );
    assert!(
        challenge.contains(r#"scope="fx:write admin""#),
        "{challenge}"
    );
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["status"], 403);

    let response = s.get("/admin-only/x", &token).await;
    assert_eq!(response.status(), 403);
    assert!(
        response.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .contains("insufficient_scope")
    );

    let response = s.get("/billing/x", &token).await;
    assert_eq!(response.status(), 401);
    assert!(
        response.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .contains("audience")
    );

    let response = s
        .http
        .delete(format!("{}/rates/x", s.gateway))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 405);
    assert_eq!(response.headers()["allow"], "GET, HEAD, POST");
    assert_eq!(
        s.upstream.count(),
        before,
        "a refused request reached the upstream"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn upstream_failures_limits_and_bodies_get_problem_answers() {
    let s = setup().await;
    let (id, secret) = s.machine("rates:read").await;
    let token = s.machine_token(&id, &secret).await;

    let response = s.get("/down/x", &token).await;
    assert_eq!(response.status(), 502);
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json"
    );

    let response = s.get("/slow/x", &token).await;
    assert_eq!(response.status(), 504);
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json"
    );

    let response = s.get("/nowhere", &token).await;
    assert_eq!(response.status(), 404);

    let before = s.upstream.count();
    let response = s
        .http
        .post(format!("{}/small/x", s.gateway))
        .bearer_auth(&token)
        .body("x".repeat(17))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 413);
    assert_eq!(s.upstream.count(), before);

    let mut statuses = Vec::new();
    for _ in 0..4 {
        let response = s.get("/limited/x", &token).await;
        if response.status() == 429 {
            let wait: u64 = response.headers()["retry-after"]
                .to_str()
                .unwrap()
                .parse()
                .unwrap();
            assert!((1..=2).contains(&wait), "Retry-After {wait}");
        }
        statuses.push(response.status().as_u16());
    }
    assert_eq!(&statuses[..2], &[200, 200]);
    assert!(statuses[2..].contains(&429), "{statuses:?}");
    // Keyed by client: another client has its own budget.
    let (other_id, other_secret) = s.machine("rates:read").await;
    let other = s.machine_token(&other_id, &other_secret).await;
    assert_eq!(s.get("/limited/x", &other).await.status(), 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn websocket_upgrades_pass_through() {
    let s = setup().await;
    let (id, secret) = s.machine("rates:read").await;
    let token = s.machine_token(&id, &secret).await;
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let url = format!("{}/ws", s.gateway.replace("http://", "ws://"));
    let mut request = url.clone().into_client_request().unwrap();
    request
        .headers_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    let (mut socket, response) = tokio_tungstenite::connect_async(request).await.unwrap();
    assert_eq!(response.status(), 101);
    for i in 0..3 {
        socket
            .send(tokio_tungstenite::tungstenite::Message::Text(
                format!("hello {i}").into(),
            ))
            .await
            .unwrap();
        let reply = tokio::time::timeout(Duration::from_secs(5), socket.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert_eq!(
            reply.into_text().unwrap().as_str(),
            format!("echo: hello {i}")
        );
    }
    // Without a token the upgrade is refused before the upstream.
    let refused = tokio_tungstenite::connect_async(url).await;
    match refused {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 401)
        }
        other => panic!("expected a 401, got {other:?}"),
    }
}

/// Sends `request` as raw bytes (clients would normalise the path) and returns the status code.
async fn raw_status(gateway: &str, request: String) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(gateway.trim_start_matches("http://"))
        .await
        .unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).await.unwrap();
    let text = String::from_utf8_lossy(&answer);
    text.split(' ').nth(1).unwrap().parse().unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn paths_that_could_slip_into_another_route_are_refused() {
    let s = setup().await;
    let (id, secret) = s.machine("rates:read").await;
    let token = s.machine_token(&id, &secret).await;
    let before = s.upstream.count();
    for path in [
        "/rates/../admin-only/x",
        "/rates/%2e%2e/admin-only/x",
        "/rates/.%2E/admin-only",
        "/rates%2f..%2fadmin-only",
        "/rates/..;/admin-only",
        "/rates\\..\\admin-only",
    ] {
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n"
        );
        assert_eq!(raw_status(&s.gateway, request).await, 400, "{path}");
    }
    assert_eq!(s.upstream.count(), before);
    let fine = format!(
        "GET /rates/a..b HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n"
    );
    assert_eq!(raw_status(&s.gateway, fine).await, 200);
    // Paths are matched and forwarded the way the upstream will read them.
    let doubled = format!(
        "GET //admin-only/x HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n"
    );
    assert_eq!(
        raw_status(&s.gateway, doubled).await,
        403,
        "//admin-only must be /admin-only"
    );
    let encoded = format!(
        "GET /r%61tes//a%7eb HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n"
    );
    assert_eq!(raw_status(&s.gateway, encoded).await, 200);
    assert_eq!(s.upstream.last().path_and_query, "/base/a~b");
}

#[tokio::test(flavor = "multi_thread")]
async fn only_websocket_upgrades_pass_and_only_where_allowed() {
    let s = setup().await;
    let (id, secret) = s.machine("rates:read").await;
    let token = s.machine_token(&id, &secret).await;
    let response = s
        .http
        .get(format!("{}/rates/x", s.gateway))
        .bearer_auth(&token)
        .header("connection", "Upgrade, HTTP2-Settings")
        .header("upgrade", "h2c")
        .header("http2-settings", "AAMAAABkAARAAAAAAAIAAAAA")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let seen = s.upstream.last();
    for name in ["upgrade", "http2-settings", "connection"] {
        assert!(
            !seen.headers.contains_key(name),
            "{name} reached the upstream"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn forward_auth_gives_the_gateways_own_decision_and_forwards_nothing() {
    let s = setup().await;
    let (id, secret) = s.machine("rates:read").await;
    let token = s.machine_token(&id, &secret).await;
    let before = s.upstream.count();
    let check = format!("{}/_gatehouse/check", s.gateway);
    // Caddy and Traefik name the request in X-Forwarded-*, nginx customarily in X-Original-*.
    let ask = |method: &'static str, uri: &'static str, token: Option<&str>, nginx: bool| {
        let (method_header, uri_header) = match nginx {
            true => ("x-original-method", "x-original-uri"),
            false => ("x-forwarded-method", "x-forwarded-uri"),
        };
        let mut request = s
            .http
            .get(&check)
            .header(method_header, method)
            .header(uri_header, uri);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request.send()
    };

    let allowed = ask("GET", "/rates/btc?window=24h", Some(&token), false)
        .await
        .unwrap();
    assert_eq!(allowed.status(), 200);
    assert_eq!(allowed.headers()["x-gatehouse-subject"], id.as_str());
    assert_eq!(allowed.headers()["x-gatehouse-client-id"], id.as_str());
    assert_eq!(allowed.headers()["x-gatehouse-scopes"], "rates:read");
    assert!(allowed.headers().contains_key("x-request-id"));

    let missing = ask("GET", "/rates/btc", None, true).await.unwrap();
    assert_eq!(missing.status(), 401);
    assert_eq!(
        missing.headers()["www-authenticate"],
        r#"Bearer realm="gatehouse""#
    );
    let scope = ask("POST", "/rates/btc", Some(&token), true).await.unwrap();
    assert_eq!(scope.status(), 403);
    assert!(
        scope.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .contains(r#"scope="fx:write admin""#)
    );
    // Refused as the gateway refuses: a method the route does not take, no route, a path
    // with dot segments, a fragment (which could hide the path the upstream sees).
    for (method, uri, status) in [
        ("DELETE", "/rates/btc", 405),
        ("GET", "/nowhere", 404),
        ("GET", "/rates/../admin-only/x", 400),
        ("GET", "/open#/../rates/btc", 400),
    ] {
        let answer = ask(method, uri, Some(&token), false).await.unwrap();
        assert_eq!(answer.status(), status, "{method} {uri}");
    }
    let unnamed = s.http.get(&check).bearer_auth(&token).send().await.unwrap();
    assert_eq!(unnamed.status(), 400);
    assert_eq!(
        unnamed.headers()["content-type"],
        "application/problem+json"
    );

    // Envoy sends the request's own method and path under the check path.
    let envoy = s
        .http
        .post(format!("{check}/rates/btc"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(envoy.status(), 403);
    let envoy = s
        .http
        .get(format!("{check}/rates/btc?window=1h"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(envoy.status(), 200);
    assert_eq!(allowed_roles(&envoy), "");
    // Envoy asking about `/`: answered by the check, never passed to a route's upstream.
    let root = s
        .http
        .get(format!("{check}/"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(root.status(), 404);
    assert!(!root.headers().contains_key("x-gatehouse-subject"));

    // A revocation reaches the check as it reaches the gateway.
    let revoked = s
        .http
        .post(format!("{}/oauth2/revoke", s.server.base))
        .basic_auth(&id, Some(&secret))
        .form(&[("token", token.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status(), 200);
    common::within_a_second("a revoked token being refused by the check", || async {
        ask("GET", "/rates/btc", Some(&token), false)
            .await
            .unwrap()
            .status()
            == 401
    })
    .await;
    assert_eq!(s.upstream.count(), before, "the check forwarded a request");
}

/// The roles header a check's answer carries: present, and empty for a token without roles.
fn allowed_roles(answer: &reqwest::Response) -> &str {
    answer.headers()["x-gatehouse-roles"].to_str().unwrap()
}
