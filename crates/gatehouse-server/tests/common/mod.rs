//! Spawns a real authorization server on a random loopback port, on SQLite or on a fresh
//! PostgreSQL database, and hands the test an HTTP client and the store.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub mod browser;

use std::sync::Arc;
use std::time::{Duration, Instant};

use gatehouse_core::{AdvancingClock, AuthConfig, AuthService, Store};
use gatehouse_server::ServerSettings;
use gatehouse_server::limits::RateLimitConfig;
use gatehouse_store::SqlStore;
use gatehouse_token::{AccessClaims, Audience, KeyEncryptionKey, SigningKey, now_unix};
use serde_json::{Value, json};
use sqlx::Row;
use tokio::net::TcpListener;

pub use gatehouse_testkit::Backend;
use gatehouse_testkit::TestDatabase;

/// The operator's metrics token the test servers are given: `/metrics` answers its bearer.
pub const METRICS_TOKEN: &str = "test-metrics-token-5c2e";

pub struct TestApp {
    pub base: String,
    pub http: reqwest::Client,
    pub store: SqlStore,
    pub config: AuthConfig,
    kek_hex: String,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    /// The server's clock: the system's, unless a test moves it ahead.
    clock: Arc<AdvancingClock>,
    _database: TestDatabase,
}

impl TestApp {
    pub async fn spawn(backend: Backend) -> Self {
        Self::spawn_with(backend, |_| {}).await
    }

    pub async fn spawn_with(backend: Backend, configure: impl FnOnce(&mut AuthConfig)) -> Self {
        Self::spawn_limited(backend, configure, RateLimitConfig::off()).await
    }

    /// With rate limits; every other constructor turns them off.
    pub async fn spawn_limited(
        backend: Backend,
        configure: impl FnOnce(&mut AuthConfig),
        limits: RateLimitConfig,
    ) -> Self {
        Self::spawn_seeded(backend, configure, limits, |_| async {}).await
    }

    /// With `seed` run on the store before the server starts (as data an earlier run left).
    pub async fn spawn_seeded<F: std::future::Future<Output = ()>>(
        backend: Backend,
        configure: impl FnOnce(&mut AuthConfig),
        limits: RateLimitConfig,
        seed: impl FnOnce(SqlStore) -> F,
    ) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let database = TestDatabase::open(backend).await;
        let store = database.store.clone();
        seed(store.clone()).await;
        let mut config = AuthConfig {
            issuer: format!("http://{address}"),
            ..AuthConfig::default()
        };
        configure(&mut config);
        let kek = KeyEncryptionKey::generate().unwrap();
        let kek_hex = kek.to_hex();
        let settings = ServerSettings {
            rate_limits: limits,
            change_poll: Duration::from_millis(100),
            metrics: gatehouse_listen::MetricsAccess::public(gatehouse_listen::MetricsToken::new(
                METRICS_TOKEN,
            )),
            ..ServerSettings::default()
        };
        let clock = Arc::new(AdvancingClock::default());
        let service = AuthService::start_with_clock(
            config.clone(),
            Arc::new(store.clone()),
            kek,
            clock.clone(),
        )
        .await
        .unwrap();
        let (shutdown, stopped) = tokio::sync::oneshot::channel::<()>();
        gatehouse_server::start(listener, settings, Arc::new(service), async {
            let _ = stopped.await;
        })
        .unwrap();
        Self {
            base: format!("http://{address}"),
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            store,
            config,
            kek_hex,
            shutdown: Some(shutdown),
            clock,
            _database: database,
        }
    }

    /// Moves the server's clock ahead, instead of sleeping through a wait.
    pub fn advance(&self, by: Duration) {
        self.clock.advance(by);
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// An access token of a fresh user holding the admin role.
    pub async fn admin_token(&self) -> String {
        self.sign_up("root", "root-password-1").await;
        self.set_roles("root", &["admin", "user"]).await;
        let tokens = self.login("root", "root-password-1").await;
        tokens["access_token"].as_str().unwrap().to_owned()
    }

    /// Gives a user exactly these roles in the store, with no cut-off: tokens already issued
    /// keep theirs.
    pub async fn set_roles(&self, username: &str, roles: &[&str]) {
        let user = self
            .store
            .user_by_username(username)
            .await
            .unwrap()
            .unwrap();
        let write = gatehouse_core::Write::SetUserRoles {
            id: user.id,
            roles: roles.iter().map(|r| (*r).to_owned()).collect(),
            cutoff: None,
            now: now_unix(),
        };
        assert_eq!(
            self.store.commit(&[write]).await.unwrap(),
            gatehouse_core::Committed::Done { sessions_ended: 0 }
        );
    }

    /// POST a form to the token endpoint.
    pub async fn token(&self, form: &[(&str, &str)]) -> reqwest::Response {
        self.http
            .post(self.url("/oauth2/token"))
            .form(form)
            .send()
            .await
            .unwrap()
    }

    /// Registers a machine client; returns (client_id, client_secret, registration body).
    pub async fn register_client(&self, scope: &str) -> (String, String, Value) {
        let response = self
            .http
            .post(self.url("/oauth2/register"))
            .json(&json!({ "client_name": "test client", "scope": scope }))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 201);
        let body: Value = response.json().await.unwrap();
        (
            body["client_id"].as_str().unwrap().to_owned(),
            body["client_secret"].as_str().unwrap().to_owned(),
            body,
        )
    }

    /// A client_credentials request with `client_secret_basic`, the method clients register
    /// by default (and the only one such a client may use).
    pub async fn client_credentials(&self, id: &str, secret: &str) -> reqwest::Response {
        self.http
            .post(self.url("/oauth2/token"))
            .basic_auth(id, Some(secret))
            .form(&[("grant_type", "client_credentials")])
            .send()
            .await
            .unwrap()
    }

    /// Registers a machine client with `scope` and, as an operator would, grants it the
    /// `introspect` scope too (which lets it introspect other clients' access tokens); returns
    /// (client_id, client_secret).
    pub async fn register_introspector(&self, scope: &str) -> (String, String) {
        let (id, secret, _) = self.register_client(scope).await;
        let mut client = self.store.client(&id).await.unwrap().unwrap();
        let mut scopes: Vec<String> = client
            .scopes
            .as_ref()
            .map(|s| s.iter().map(str::to_owned).collect())
            .unwrap_or_default();
        scopes.push(gatehouse_core::service::INTROSPECT_SCOPE.into());
        client.scopes = Some(gatehouse_core::ScopeSet::from_tokens(&scopes).unwrap());
        let write = gatehouse_core::Write::UpdateClient {
            client,
            cutoff: None,
        };
        self.store.commit(&[write]).await.unwrap();
        (id, secret)
    }

    /// Revokes a token through the public web client, which may revoke what it issued.
    pub async fn revoke_as_web(&self, token: &str) -> reqwest::Response {
        self.http
            .post(self.url("/oauth2/revoke"))
            .form(&[("client_id", "gatehouse-web"), ("token", token)])
            .send()
            .await
            .unwrap()
    }

    /// A client_credentials token for the client; panics unless the answer is 200.
    pub async fn machine_token(&self, id: &str, secret: &str) -> String {
        let response = self.client_credentials(id, secret).await;
        assert_eq!(response.status(), 200);
        let body: Value = response.json().await.unwrap();
        body["access_token"].as_str().unwrap().to_owned()
    }

    /// Introspects `token`, authenticating as the given client; returns the RFC 7662 answer.
    pub async fn introspect(&self, id: &str, secret: &str, token: &str) -> Value {
        let response = self
            .http
            .post(self.url("/oauth2/introspect"))
            .basic_auth(id, Some(secret))
            .form(&[("token", token)])
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["cache-control"], "no-store");
        response.json().await.unwrap()
    }

    pub async fn sign_up(&self, username: &str, password: &str) -> Value {
        let response = self
            .http
            .post(self.url("/users"))
            .json(&json!({
                "username": username,
                "password": password,
                "email": format!("{username}@example.com"),
            }))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 201, "{}", response.text().await.unwrap());
        response.json().await.unwrap()
    }

    /// Password login through the built-in web client; returns the token response.
    pub async fn login(&self, username: &str, password: &str) -> Value {
        let response = self
            .token(&[
                ("grant_type", "password"),
                ("client_id", "gatehouse-web"),
                ("username", username),
                ("password", password),
            ])
            .await;
        assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
        response.json().await.unwrap()
    }

    pub async fn refresh(&self, refresh_token: &str) -> reqwest::Response {
        self.token(&[
            ("grant_type", "refresh_token"),
            ("client_id", "gatehouse-web"),
            ("refresh_token", refresh_token),
        ])
        .await
    }

    pub async fn me(&self, token: &str) -> reqwest::Response {
        self.http
            .get(self.url("/users/me"))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
    }

    /// The server's own signing key, unsealed with the test's key-encryption key, for minting
    /// tokens the server would sign but with claims a test chooses.
    pub async fn server_signing_key(&self) -> SigningKey {
        let kek = KeyEncryptionKey::parse(&self.kek_hex).unwrap();
        let stored = self.store.signing_keys().await.unwrap();
        let key = stored.last().unwrap();
        let pkcs8 = kek.open(&key.kid, &key.sealed_private_key).unwrap();
        SigningKey::from_pkcs8(&key.kid, key.alg.parse().unwrap(), &pkcs8).unwrap()
    }

    pub fn claims_for(&self, sub: &str) -> AccessClaims {
        let now = now_unix();
        AccessClaims {
            iss: self.config.issuer.clone(),
            sub: sub.to_owned(),
            aud: Audience::One(self.config.audience.clone()),
            exp: now + 300,
            iat: now,
            jti: "test-jti".into(),
            client_id: "gatehouse-web".into(),
            scope: String::new(),
            roles: Some(vec!["user".into()]),
            sid: None,
        }
    }

    /// Every row of every table a request could change, to prove a rejected request changed
    /// nothing (not only that no row came or went). The audit log is left out: recording a failed
    /// attempt is its purpose.
    pub async fn snapshot(&self) -> Vec<(String, Vec<String>)> {
        let mut tables = Vec::new();
        for table in TABLES {
            let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT * FROM {table} ORDER BY 1, 2"
            )))
            .fetch_all(self.store.pool())
            .await
            .unwrap();
            let rows = rows
                .iter()
                .map(|row| {
                    (0..row.len())
                        .map(|i| cell(row, i))
                        .collect::<Vec<_>>()
                        .join("|")
                })
                .collect();
            tables.push(((*table).to_owned(), rows));
        }
        tables
    }

    /// Row counts per table.
    pub async fn counts(&self) -> Vec<(String, usize)> {
        self.snapshot()
            .await
            .into_iter()
            .map(|(table, rows)| (table, rows.len()))
            .collect()
    }

    pub async fn execute(&self, sql: &'static str) {
        sqlx::query(sql).execute(self.store.pool()).await.unwrap();
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
    }
}

const TABLES: &[&str] = &[
    "change_log",
    "clients",
    "users",
    "roles",
    "user_roles",
    "client_roles",
    "refresh_families",
    "refresh_tokens",
    "revoked_tokens",
    "signing_keys",
    "browser_sessions",
    "authorization_codes",
    "consents",
];

/// One cell as text, whatever its type.
fn cell(row: &sqlx::any::AnyRow, i: usize) -> String {
    if let Ok(v) = row.try_get::<Option<i64>, _>(i) {
        return format!("{v:?}");
    }
    if let Ok(v) = row.try_get::<Option<String>, _>(i) {
        return format!("{v:?}");
    }
    if let Ok(v) = row.try_get::<Option<Vec<u8>>, _>(i) {
        return format!("{v:?}");
    }
    "<undecodable>".to_owned()
}

/// Subscribes to the revocation feed as the given client, resuming after `last` if given.
pub async fn subscribe(
    app: &TestApp,
    id: &str,
    secret: &str,
    last: Option<&str>,
) -> reqwest::Response {
    let mut request = app
        .http
        .get(app.url("/oauth2/revocations"))
        .basic_auth(id, Some(secret));
    if let Some(last) = last {
        request = request.header("last-event-id", last);
    }
    let response = request.send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    response
}

/// Reads the stream until `needle` appears in it, for at most `within`; returns all read so far.
pub async fn read_until(
    stream: &mut reqwest::Response,
    seen: &mut String,
    needle: &str,
    within: Duration,
) {
    let deadline = Instant::now() + within;
    // Only what arrived since the last look is searched: a long replay stays linear.
    let mut searched: usize = 0;
    loop {
        let from = seen.floor_char_boundary(searched.saturating_sub(needle.len()));
        if seen[from..].contains(needle) {
            return;
        }
        searched = seen.len();
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(
            !left.is_zero(),
            "{needle:?} did not arrive within {within:?}; got ({} bytes), ending:\n{}",
            seen.len(),
            &seen[seen.floor_char_boundary(seen.len().saturating_sub(2000))..]
        );
        match tokio::time::timeout(left, stream.chunk()).await {
            Ok(Ok(Some(bytes))) => seen.push_str(&String::from_utf8_lossy(&bytes)),
            Ok(Ok(None)) => panic!("the feed ended; got:\n{seen}"),
            Ok(Err(e)) => panic!("reading the feed failed: {e}"),
            Err(_) => {}
        }
    }
}

pub fn jti_of(token: &str) -> String {
    use base64::Engine;
    let payload = token.split('.').nth(1).unwrap();
    let claims: Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap(),
    )
    .unwrap();
    claims["jti"].as_str().unwrap().to_owned()
}

/// Every `id:` in the stream so far, in order. Events that come out of turn (while a backlog is
/// being replayed) carry none, so a reader resumes from the last id it saw, as EventSource does.
pub fn event_ids(stream_text: &str) -> Vec<i64> {
    stream_text
        .lines()
        .filter_map(|l| l.strip_prefix("id:"))
        .map(|id| id.trim().parse().expect("event ids are numbers"))
        .collect()
}
