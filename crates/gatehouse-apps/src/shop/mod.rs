//! The web shop: a reference web application built as a backend-for-frontend. People sign in
//! through the authorization server with the code flow (a confidential client, PKCE, OpenID
//! Connect); the shop keeps their tokens in its own tables, sealed, and the browser holds only an
//! opaque `HttpOnly` cookie. It browses the orders application's catalog and places orders through
//! the gateway, renewing an expired or revoked access token silently and retrying once.
//!
//! Like the other apps it knows the issuer and the gateway only over HTTP.

mod api;
mod error;
mod pages;
mod store;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use axum::Router;
use axum::routing::{get, post};
use gatehouse_look::{CookieNames, Prefix};
use gatehouse_sdk::{SignInClient, TokenVerifier};
use gatehouse_token::KeyEncryptionKey;
use serde::{Deserialize, Serialize};

use crate::common::{AppError, Db};
pub(crate) use error::ShopError;

/// The client id the shop is registered under when a node runs it.
pub const SHOP_CLIENT_ID: &str = "shop";
/// What the shop asks for: who you are, and the orders API.
pub const SHOP_SCOPE: &str = "openid profile orders";
/// Where the shop's pages live, on its own listener and through the gateway.
pub const SHOP_PATH: &str = "/shop";

/// The shop's settings (`[apps.shop]`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ShopSettings {
    /// The shop's address as browsers reach it, ending in `/shop`. Under `serve`, unset means
    /// the gateway's address followed by `/shop`.
    pub public_url: Option<String>,
    /// Where the shop calls the APIs: the gateway. Under `serve`, unset means the local gateway.
    pub api_url: Option<String>,
    /// Certificates (PEM) trusted besides the system's roots, for an `https://` issuer and
    /// gateway under a private CA. Under `serve` with TLS, unset means the served certificate.
    pub ca_file: Option<std::path::PathBuf>,
    /// The shop's client registration, given at start (never read from a file).
    #[serde(skip)]
    pub client: Option<ShopClient>,
}

/// The shop's credentials at the issuer, and the key that seals the tokens it keeps.
#[derive(Clone)]
pub struct ShopClient {
    pub client_id: String,
    pub client_secret: String,
    /// 32 bytes, hex or base64.
    pub sealing_key: String,
}

impl std::fmt::Debug for ShopClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShopClient")
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

impl ShopSettings {
    /// The redirect URI the shop registers and signs in with.
    pub fn redirect_uri(public_url: &str) -> String {
        format!("{}/callback", public_url.trim_end_matches('/'))
    }

    /// Where the issuer sends people after signing them out.
    pub fn signed_out_uri(public_url: &str) -> String {
        format!("{}/signed-out", public_url.trim_end_matches('/'))
    }
}

#[derive(Clone)]
pub(crate) struct ShopState {
    db: Db,
    signin: Arc<SignInClient>,
    http: reqwest::Client,
    /// The gateway, without a trailing slash.
    api_url: String,
    /// The shop as browsers see it, without a trailing slash.
    public_url: String,
    /// `scheme://host[:port]` of `public_url`: form posts must come from it.
    origin: String,
    cookies: Arc<CookieNames>,
    /// Seals the tokens kept for each browser.
    sealer: Arc<KeyEncryptionKey>,
    /// Locks held while a browser's tokens are renewed (so two of its tabs never spend the same
    /// refresh token, which the issuer would take for a stolen one) and while a person checks
    /// out (so a double click orders once). They hold within this process: several shop nodes
    /// would need a lease in the store.
    locks: Arc<Mutex<HashMap<String, Weak<tokio::sync::Mutex<()>>>>>,
}

impl ShopState {
    fn lock_for(&self, key: String) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self.locks.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(lock) = locks.get(&key).and_then(Weak::upgrade) {
            return lock;
        }
        // Locks nobody holds go, so the map stays as small as the requests in flight.
        locks.retain(|_, lock| lock.strong_count() > 0);
        let lock = Arc::new(tokio::sync::Mutex::new(()));
        locks.insert(key, Arc::downgrade(&lock));
        lock
    }

    fn refresh_lock(&self, session: &str) -> Arc<tokio::sync::Mutex<()>> {
        self.lock_for(format!("refresh {session}"))
    }

    fn checkout_lock(&self, subject: &str) -> Arc<tokio::sync::Mutex<()>> {
        self.lock_for(format!("checkout {subject}"))
    }

    /// A path under the shop as the browser addresses it.
    fn page(&self, path: &str) -> String {
        format!("{SHOP_PATH}{path}")
    }
}

/// Prepares the shop's tables and returns its pages.
pub async fn router(
    db: Db,
    verifier: Arc<TokenVerifier>,
    settings: &ShopSettings,
) -> Result<Router, AppError> {
    let missing = |what: &str| AppError::BadRequest(format!("the shop needs {what}"));
    let client = settings
        .client
        .clone()
        .ok_or_else(|| missing("its client id and secret"))?;
    let public_url = settings
        .public_url
        .clone()
        .ok_or_else(|| missing("apps.shop.public_url"))?;
    let public_url = public_url.trim_end_matches('/').to_owned();
    let api_url = settings
        .api_url
        .clone()
        .ok_or_else(|| missing("apps.shop.api_url"))?
        .trim_end_matches('/')
        .to_owned();
    if !public_url.ends_with(SHOP_PATH) {
        return Err(AppError::BadRequest(format!(
            "apps.shop.public_url must end in {SHOP_PATH}, like http://gateway.example{SHOP_PATH}"
        )));
    }
    let origin = gatehouse_look::origin_of(&public_url)
        .ok_or_else(|| AppError::BadRequest("apps.shop.public_url is not an http(s) URL".into()))?;
    let sealer = KeyEncryptionKey::parse(&client.sealing_key).map_err(|_| {
        AppError::BadRequest("the shop's sealing key must be 32 bytes in hex or base64".into())
    })?;
    let mut http = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(15))
        .redirect(reqwest::redirect::Policy::none())
        .user_agent("GatehouseShop/1.0");
    if let Some(path) = &settings.ca_file {
        let unusable =
            |e: String| AppError::BadRequest(format!("apps.shop.ca_file {}: {e}", path.display()));
        let pem = std::fs::read(path).map_err(|e| unusable(e.to_string()))?;
        for certificate in
            reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| unusable(e.to_string()))?
        {
            http = http.add_root_certificate(certificate);
        }
    }
    let http = http
        .build()
        .map_err(|e| AppError::Unavailable(e.to_string()))?;
    let signin = SignInClient::new(
        verifier,
        http.clone(),
        client.client_id,
        client.client_secret,
        ShopSettings::redirect_uri(&public_url),
    )
    .map_err(|e| AppError::Unavailable(e.to_string()))?;
    db.migrate("shop", sqlx::migrate!("migrations/shop"))
        .await?;
    let state = ShopState {
        cookies: Arc::new(CookieNames::new(
            Prefix::Shop,
            public_url.starts_with("https://"),
        )),
        db,
        signin: Arc::new(signin),
        http,
        api_url,
        public_url,
        origin,
        sealer: Arc::new(sealer),
        locks: Arc::default(),
    };
    tokio::spawn(store::purge_sessions(state.db.clone()));
    Ok(Router::new()
        .route("/shop", get(pages::home))
        .route("/shop/", get(pages::home))
        .route("/shop/signin", get(pages::sign_in))
        .route("/shop/callback", get(pages::callback))
        .route("/shop/cart", get(pages::cart))
        .route("/shop/cart/add", post(pages::add_to_cart))
        .route("/shop/cart/remove", post(pages::remove_from_cart))
        .route("/shop/checkout", post(pages::checkout))
        .route("/shop/orders", get(pages::orders))
        .route("/shop/signout", post(pages::sign_out))
        .route("/shop/signed-out", get(pages::signed_out))
        .route(
            "/shop/assets/gatehouse.css",
            get(gatehouse_look::stylesheet),
        )
        .fallback(|| async { ShopError::NotFound })
        .layer(axum::middleware::from_fn(gatehouse_look::page_headers))
        .with_state(state))
}
