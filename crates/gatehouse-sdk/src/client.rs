//! Getting tokens: a client that caches its access token, refreshes it ahead of expiry, lets one
//! refresh run at a time, and retries a request once on 401.

use std::time::{Duration, Instant};

use gatehouse_proto::trace::TRACEPARENT;
use gatehouse_proto::{ErrorResponse, TokenResponse};

use crate::error::SdkError;

/// How the client obtains a token.
#[derive(Clone)]
pub enum Grant {
    /// A machine acting for itself.
    ClientCredentials {
        client_id: String,
        client_secret: String,
        scope: Option<String>,
    },
    /// A person's password, through a (usually public) first-party client.
    Password {
        client_id: String,
        client_secret: Option<String>,
        username: String,
        password: String,
        scope: Option<String>,
    },
}

impl std::fmt::Debug for Grant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::ClientCredentials { client_id, .. } => f
                .debug_struct("ClientCredentials")
                .field("client_id", client_id)
                .finish_non_exhaustive(),
            Self::Password {
                client_id,
                username,
                ..
            } => f
                .debug_struct("Password")
                .field("client_id", client_id)
                .field("username", username)
                .finish_non_exhaustive(),
        }
    }
}

impl Grant {
    fn credentials(&self) -> (&str, Option<&str>) {
        match self {
            Self::ClientCredentials {
                client_id,
                client_secret,
                ..
            } => (client_id, Some(client_secret)),
            Self::Password {
                client_id,
                client_secret,
                ..
            } => (client_id, client_secret.as_deref()),
        }
    }
}

#[derive(Debug, Clone)]
pub struct TokenClientConfig {
    pub token_endpoint: String,
    pub grant: Grant,
    /// Refresh when less than this share of the token's lifetime is left (default 0.2).
    pub refresh_ahead: f64,
}

impl TokenClientConfig {
    pub fn new(token_endpoint: impl Into<String>, grant: Grant) -> Self {
        Self {
            token_endpoint: token_endpoint.into(),
            grant,
            refresh_ahead: 0.2,
        }
    }
}

struct Held {
    access_token: String,
    refresh_token: Option<String>,
    expires_at: Instant,
    refresh_at: Instant,
}

/// A token source for one grant. Cheap to share behind an `Arc`.
pub struct TokenClient {
    http: reqwest::Client,
    config: TokenClientConfig,
    /// Held across a refresh, so many tasks wanting a token at once cause one request.
    held: tokio::sync::Mutex<Option<Held>>,
}

impl TokenClient {
    pub fn new(config: TokenClientConfig) -> Self {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(15))
            .build()
            .unwrap_or_default();
        Self::with_http(http, config)
    }

    pub fn with_http(http: reqwest::Client, config: TokenClientConfig) -> Self {
        Self {
            http,
            config,
            held: tokio::sync::Mutex::new(None),
        }
    }

    /// A valid access token: the cached one, or a fresh one when it is near its end. If renewing
    /// fails while the held token is still good, the held token is used and renewal is tried
    /// again on the next call.
    pub async fn access_token(&self) -> Result<String, SdkError> {
        let mut held = self.held.lock().await;
        let now = Instant::now();
        if let Some(current) = held.as_ref()
            && now < current.refresh_at
        {
            return Ok(current.access_token.clone());
        }
        let refresh_token = held.as_ref().and_then(|h| h.refresh_token.clone());
        let renewed = match &refresh_token {
            Some(refresh_token) => match self.refresh(refresh_token).await {
                // A refresh token can be revoked or expire: start over with the grant.
                Err(SdkError::Refused { .. }) => self.request_grant().await,
                other => other,
            },
            None => self.request_grant().await,
        };
        match renewed {
            Ok(mut fresh) => {
                // RFC 6749 §6: without a new refresh token, the old one stays good.
                if fresh.refresh_token.is_none() {
                    fresh.refresh_token = refresh_token;
                }
                let token = fresh.access_token.clone();
                *held = Some(fresh);
                Ok(token)
            }
            Err(e) => match held.as_ref() {
                Some(current) if !current.access_token.is_empty() && now < current.expires_at => {
                    tracing::warn!(error = %e, "renewing the token failed; using the current one");
                    Ok(current.access_token.clone())
                }
                _ => Err(e),
            },
        }
    }

    /// When the cached token expires, if one is held.
    pub async fn expires_in(&self) -> Option<Duration> {
        let held = self.held.lock().await;
        held.as_ref()
            .map(|h| h.expires_at.saturating_duration_since(Instant::now()))
    }

    /// Drops `token` from the cache (the server refused it), so the next call gets a new one.
    pub async fn invalidate(&self, token: &str) {
        let mut held = self.held.lock().await;
        if held.as_ref().is_some_and(|h| h.access_token == token) {
            // Keep the refresh token: it may still be good.
            if let Some(h) = held.as_mut() {
                h.refresh_at = Instant::now();
                h.access_token.clear();
            }
        }
    }

    /// Sends the request `build` makes, with the bearer token; on 401 gets a fresh token and
    /// sends it once more.
    pub async fn send<F>(&self, build: F) -> Result<reqwest::Response, SdkError>
    where
        F: Fn(&reqwest::Client) -> reqwest::RequestBuilder,
    {
        let token = self.access_token().await?;
        let response = self.send_with(&build, &token).await?;
        if response.status() != reqwest::StatusCode::UNAUTHORIZED {
            return Ok(response);
        }
        self.invalidate(&token).await;
        let token = self.access_token().await?;
        self.send_with(&build, &token).await
    }

    async fn send_with<F>(&self, build: &F, token: &str) -> Result<reqwest::Response, SdkError>
    where
        F: Fn(&reqwest::Client) -> reqwest::RequestBuilder,
    {
        let unreachable = |e: reqwest::Error| {
            SdkError::unreachable(&e.url().map(|u| u.to_string()).unwrap_or_default(), e)
        };
        let mut request = build(&self.http)
            .bearer_auth(token)
            .build()
            .map_err(unreachable)?;
        // The call belongs to the caller's trace (W3C Trace Context), unless it says otherwise.
        if !request.headers().contains_key(TRACEPARENT)
            && let Some(traceparent) = crate::trace::current_traceparent()
        {
            request.headers_mut().insert(TRACEPARENT, traceparent);
        }
        self.http.execute(request).await.map_err(unreachable)
    }

    async fn request_grant(&self) -> Result<Held, SdkError> {
        let mut form: Vec<(&str, &str)> = Vec::new();
        match &self.config.grant {
            Grant::ClientCredentials { scope, .. } => {
                form.push(("grant_type", "client_credentials"));
                if let Some(scope) = scope {
                    form.push(("scope", scope));
                }
            }
            Grant::Password {
                username,
                password,
                scope,
                ..
            } => {
                form.push(("grant_type", "password"));
                form.push(("username", username));
                form.push(("password", password));
                if let Some(scope) = scope {
                    form.push(("scope", scope));
                }
            }
        }
        self.token_request(form).await
    }

    async fn refresh(&self, refresh_token: &str) -> Result<Held, SdkError> {
        self.token_request(vec![
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token),
        ])
        .await
    }

    async fn token_request(&self, form: Vec<(&str, &str)>) -> Result<Held, SdkError> {
        let (client_id, secret) = self.config.grant.credentials();
        let started = Instant::now();
        let body = post_token_form(
            &self.http,
            &self.config.token_endpoint,
            client_id,
            secret,
            form,
        )
        .await?;
        // A year at most, so a silly expires_in cannot overflow the clock.
        let lifetime = Duration::from_secs(body.expires_in.min(365 * 86_400));
        let share = match self.config.refresh_ahead {
            r if r.is_finite() => r.clamp(0.0, 0.9),
            _ => 0.2,
        };
        let ahead = lifetime.mul_f64(share);
        Ok(Held {
            access_token: body.access_token,
            refresh_token: body.refresh_token,
            expires_at: started + lifetime,
            refresh_at: started + lifetime.saturating_sub(ahead),
        })
    }
}

/// One token request (RFC 6749 §3.2): the client authenticates with HTTP Basic when it has a
/// secret, or names itself in the form when it is public. A 4xx is the endpoint's refusal, with
/// its error code.
pub(crate) async fn post_token_form(
    http: &reqwest::Client,
    url: &str,
    client_id: &str,
    secret: Option<&str>,
    mut form: Vec<(&str, &str)>,
) -> Result<TokenResponse, SdkError> {
    let mut request = http.post(url);
    match secret {
        Some(secret) => request = request.basic_auth(client_id, Some(secret)),
        None => form.push(("client_id", client_id)),
    }
    let response = request
        .form(&form)
        .send()
        .await
        .map_err(|e| SdkError::unreachable(url, e))?;
    let status = response.status();
    if status.is_client_error() {
        let body: ErrorResponse = response
            .json()
            .await
            .map_err(|e| SdkError::invalid(url, e))?;
        return Err(SdkError::Refused {
            error: body.error,
            description: body.error_description,
        });
    }
    if !status.is_success() {
        return Err(SdkError::Status {
            url: url.to_owned(),
            status: status.as_u16(),
        });
    }
    response.json().await.map_err(|e| SdkError::invalid(url, e))
}
