//! Test peers for the gateway: an upstream that records what reaches it, and an issuer whose keys,
//! tokens and revocation feed the test controls.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Request, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use futures::StreamExt;
use gatehouse_token::{AccessClaims, Audience, JwkSet, SigningKey, now_unix};
use serde_json::{Value, json};
use tokio::net::TcpListener;

/// What the upstream saw of one request.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    pub path_and_query: String,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

#[derive(Clone)]
pub struct Upstream {
    pub url: String,
    pub seen: Arc<Mutex<Vec<Seen>>>,
}

impl Upstream {
    pub fn count(&self) -> usize {
        self.seen.lock().unwrap().len()
    }

    pub fn last(&self) -> Seen {
        self.seen
            .lock()
            .unwrap()
            .last()
            .cloned()
            .expect("the upstream saw nothing")
    }
}

/// An upstream on loopback: `/slow…` answers after 2 s, `/ws` echoes WebSocket messages,
/// everything else records the request and answers 200 with a JSON echo.
pub async fn upstream() -> Upstream {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let app = Router::new()
        .route("/ws", get(ws_echo))
        .fallback(record)
        .with_state(seen.clone());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    Upstream { url, seen }
}

async fn record(State(seen): State<Arc<Mutex<Vec<Seen>>>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let body = axum::body::to_bytes(body, usize::MAX)
        .await
        .unwrap_or_default();
    let path_and_query = parts.uri.path_and_query().unwrap().to_string();
    seen.lock().unwrap().push(Seen {
        method: parts.method.to_string(),
        path_and_query: path_and_query.clone(),
        headers: parts.headers.clone(),
        body: body.to_vec(),
    });
    if path_and_query.starts_with("/slow") {
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    (
        [
            ("connection", "keep-alive, x-upstream-private"),
            ("x-upstream-private", "1"),
        ],
        axum::Json(json!({ "path": path_and_query, "bytes": body.len() })),
    )
        .into_response()
}

async fn ws_echo(ws: WebSocketUpgrade) -> Response {
    ws.on_upgrade(|mut socket: WebSocket| async move {
        while let Some(Ok(message)) = socket.recv().await {
            if let Message::Text(text) = message {
                let reply = format!("echo: {}", text.as_str());
                if socket.send(Message::Text(reply.into())).await.is_err() {
                    return;
                }
            }
        }
    })
}

/// One event for the feed's live subscribers: SSE event name, JSON data, SSE `id` (none: no
/// `id:` line at all).
pub type FeedItem = (String, Value, Option<String>);

/// An issuer the test controls: it publishes `published` keys, signs with `signer`, counts JWKS
/// fetches, and serves a revocation feed that can be cut.
#[derive(Clone)]
pub struct FakeIssuer {
    pub url: String,
    pub published: Arc<Mutex<Vec<Arc<SigningKey>>>>,
    pub signer: Arc<Mutex<Arc<SigningKey>>>,
    pub jwks_fetches: Arc<AtomicUsize>,
    pub feed_up: Arc<AtomicBool>,
    /// Whether a new feed connection is told it has caught up.
    pub catch_up: Arc<AtomicBool>,
    pub feed_events: tokio::sync::broadcast::Sender<FeedItem>,
    /// The `Last-Event-ID` of every request to the feed, in order (refused ones included).
    pub feed_requests: Arc<Mutex<Vec<Option<String>>>>,
    /// How often the feed sends a keep-alive comment (the real issuer: every 5 s).
    pub keep_alive_ms: Arc<AtomicU64>,
    /// The id `announce` gives the next event (ids are issuer-wide, like sequence numbers).
    pub next_id: Arc<AtomicU64>,
    /// `jti`s its introspection endpoint calls inactive; `None` makes the endpoint fail.
    pub inactive: Arc<Mutex<Option<Vec<String>>>>,
    pub introspections: Arc<AtomicUsize>,
}

pub async fn fake_issuer() -> FakeIssuer {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let key = Arc::new(SigningKey::generate().unwrap());
    let issuer = FakeIssuer {
        url: url.clone(),
        published: Arc::new(Mutex::new(vec![key.clone()])),
        signer: Arc::new(Mutex::new(key)),
        jwks_fetches: Arc::new(AtomicUsize::new(0)),
        feed_up: Arc::new(AtomicBool::new(true)),
        catch_up: Arc::new(AtomicBool::new(true)),
        feed_events: tokio::sync::broadcast::channel(64).0,
        feed_requests: Arc::new(Mutex::new(Vec::new())),
        keep_alive_ms: Arc::new(AtomicU64::new(200)),
        next_id: Arc::new(AtomicU64::new(1)),
        inactive: Arc::new(Mutex::new(Some(Vec::new()))),
        introspections: Arc::new(AtomicUsize::new(0)),
    };
    let app = Router::new()
        .route("/.well-known/oauth-authorization-server", get(metadata))
        .route("/jwks", get(jwks))
        .route("/feed", get(feed))
        .route("/introspect", axum::routing::post(introspect))
        .with_state(issuer.clone());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    issuer
}

async fn metadata(State(issuer): State<FakeIssuer>) -> Response {
    let base = &issuer.url;
    axum::Json(json!({
        "issuer": base,
        "jwks_uri": format!("{base}/jwks"),
        "token_endpoint": format!("{base}/token"),
        "revocation_feed_endpoint": format!("{base}/feed"),
        "introspection_endpoint": format!("{base}/introspect"),
    }))
    .into_response()
}

/// RFC 7662, for a client that sent Basic credentials: active unless its jti is listed inactive.
async fn introspect(State(issuer): State<FakeIssuer>, request: Request) -> Response {
    issuer.introspections.fetch_add(1, Ordering::SeqCst);
    if !request.headers().contains_key("authorization") {
        return axum::http::StatusCode::UNAUTHORIZED.into_response();
    }
    let Some(inactive) = issuer.inactive.lock().unwrap().clone() else {
        return axum::http::StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    let body = axum::body::to_bytes(request.into_body(), 65536)
        .await
        .unwrap();
    let token = form_urlencoded::parse(&body)
        .find(|(k, _)| k == "token")
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default();
    let payload = token.split('.').nth(1).unwrap_or_default();
    let claims: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap_or_default())
            .unwrap_or(Value::Null);
    let active = claims["jti"]
        .as_str()
        .is_some_and(|jti| !inactive.iter().any(|j| j == jti));
    axum::Json(json!({"active": active})).into_response()
}

async fn jwks(State(issuer): State<FakeIssuer>) -> Response {
    issuer.jwks_fetches.fetch_add(1, Ordering::SeqCst);
    let keys = issuer
        .published
        .lock()
        .unwrap()
        .iter()
        .map(|key| key.public_jwk())
        .collect();
    axum::Json(JwkSet { keys }).into_response()
}

async fn feed(State(issuer): State<FakeIssuer>, headers: HeaderMap) -> Response {
    let resume = headers
        .get("last-event-id")
        .map(|v| v.to_str().unwrap().to_owned());
    if !issuer.feed_up.load(Ordering::SeqCst) {
        issuer.feed_requests.lock().unwrap().push(resume);
        return axum::http::StatusCode::SERVICE_UNAVAILABLE.into_response();
    }
    // Subscribed before the request is counted: a test that saw the count may announce.
    let events = tokio_stream_of(issuer.feed_events.subscribe());
    issuer.feed_requests.lock().unwrap().push(resume);
    let up = issuer.feed_up.clone();
    let mut hello = vec![Ok::<_, Infallible>(Event::default().comment("subscribed"))];
    if issuer.catch_up.load(Ordering::SeqCst) {
        hello.push(Ok(Event::default()
            .event("caught_up")
            .data(r#"{"type":"caught_up"}"#)));
    }
    let hello = futures::stream::iter(hello);
    // The stream ends as soon as the feed is cut.
    let ticks = futures::stream::unfold((), |()| async {
        tokio::time::sleep(Duration::from_millis(50)).await;
        Some((None, ()))
    });
    let merged = futures::stream::select(events.map(Some), ticks)
        .take_while(move |_| {
            let up = up.load(Ordering::SeqCst);
            async move { up }
        })
        .filter_map(|item| async move { item.map(Ok::<_, Infallible>) });
    let keep_alive = Duration::from_millis(issuer.keep_alive_ms.load(Ordering::SeqCst));
    Sse::new(hello.chain(merged))
        .keep_alive(KeepAlive::new().interval(keep_alive))
        .into_response()
}

fn tokio_stream_of(
    receiver: tokio::sync::broadcast::Receiver<FeedItem>,
) -> impl futures::Stream<Item = Event> {
    futures::stream::unfold(receiver, |mut receiver| async move {
        loop {
            match receiver.recv().await {
                Ok((name, data, id)) => {
                    let event = Event::default().event(name).json_data(data).unwrap();
                    let event = match id {
                        Some(id) => event.id(id),
                        None => event,
                    };
                    return Some((event, receiver));
                }
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                Err(_) => return None,
            }
        }
    })
}

impl FakeIssuer {
    /// Valid claims for a machine token with `scope`.
    pub fn claims(&self, scope: &str) -> AccessClaims {
        let now = now_unix();
        AccessClaims {
            iss: self.url.clone(),
            sub: "svc".into(),
            aud: Audience::One("gatehouse".into()),
            exp: now + 300,
            iat: now,
            jti: format!("j{}", rand_suffix()),
            client_id: "svc".into(),
            scope: scope.into(),
            roles: None,
            sid: None,
        }
    }

    pub fn sign(&self, claims: &AccessClaims) -> String {
        self.signer.lock().unwrap().sign(claims).unwrap()
    }

    pub fn token(&self, scope: &str) -> String {
        self.sign(&self.claims(scope))
    }

    /// A person's token in sign-in session `sid`.
    pub fn person_token(&self, scope: &str, sid: &str) -> String {
        let mut claims = self.claims(scope);
        claims.sub = "alice".into();
        claims.client_id = "gatehouse-web".into();
        claims.sid = Some(sid.into());
        self.sign(&claims)
    }

    /// A machine token whose `aud` is `audience`.
    pub fn token_for(&self, scope: &str, audience: Audience) -> String {
        let mut claims = self.claims(scope);
        claims.aud = audience;
        self.sign(&claims)
    }

    /// Sends an event to the feed's subscribers with the next issuer-wide id.
    pub fn announce(&self, name: &str, data: Value) {
        let id = self.next_id.fetch_add(1, Ordering::SeqCst);
        self.announce_with_id(name, data, Some(&id.to_string()));
    }

    /// Sends an event with exactly this `id`, or with no `id:` line at all.
    pub fn announce_with_id(&self, name: &str, data: Value, id: Option<&str>) {
        let _ = self
            .feed_events
            .send((name.to_owned(), data, id.map(str::to_owned)));
    }

    /// Ends the sign-in session `sid` as the issuer does on logout.
    pub fn revoke_session(&self, sid: &str) {
        self.announce(
            "session_revoked",
            json!({"type": "session_revoked", "sid": sid, "until": now_unix() + 300}),
        );
    }

    /// Requests to the feed so far.
    pub fn feed_request_count(&self) -> usize {
        self.feed_requests.lock().unwrap().len()
    }

    /// Polls until the feed has had `count` requests; fails after 10 s.
    pub async fn await_feed_requests(&self, count: usize) {
        let started = std::time::Instant::now();
        while self.feed_request_count() < count {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "the feed got {} requests, not {count}",
                self.feed_request_count()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Token forgeries that must all fail, by name.
    pub fn forgeries(&self) -> Vec<(&'static str, String)> {
        let key = self.signer.lock().unwrap().clone();
        let jwk = key.public_jwk();
        let claims = self.claims("");
        let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims).unwrap());
        let header = |alg: &str| {
            URL_SAFE_NO_PAD
                .encode(json!({"alg": alg, "typ": "at+jwt", "kid": key.kid()}).to_string())
        };
        let none = format!("{}.{payload}.", header("none"));
        let signing_input = format!("{}.{payload}", header("HS256"));
        let public = URL_SAFE_NO_PAD.decode(jwk.x.as_deref().unwrap()).unwrap();
        let mac = aws_lc_rs::hmac::sign(
            &aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, &public),
            signing_input.as_bytes(),
        );
        let hs256 = format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(mac.as_ref()));
        let mut wrong_issuer = self.claims("");
        wrong_issuer.iss = "https://evil.test".into();
        let mut expired = self.claims("");
        expired.exp = now_unix() - 120;
        expired.iat = now_unix() - 400;
        let stranger = SigningKey::generate().unwrap();
        let mut tampered = self.token("");
        tampered.insert(tampered.len() - 3, 'A');
        vec![
            ("alg none", none),
            ("HS256 keyed with the public key", hs256),
            ("wrong issuer", key.sign(&wrong_issuer).unwrap()),
            ("expired beyond the leeway", key.sign(&expired).unwrap()),
            ("unknown kid", stranger.sign(&self.claims("")).unwrap()),
            ("garbage", "not.a-jwt".into()),
            ("tampered signature", tampered),
        ]
    }
}

fn rand_suffix() -> String {
    let mut bytes = [0u8; 8];
    aws_lc_rs::rand::fill(&mut bytes).unwrap();
    URL_SAFE_NO_PAD.encode(bytes)
}
