//! Calling the APIs through the gateway as the signed-in person: a token near its end is renewed
//! first; a 401 (expired or revoked) renews it and retries once; when renewal is refused the
//! person must sign in again.

use gatehouse_sdk::SdkError;
use gatehouse_token::now_unix;
use reqwest::{Method, StatusCode};
use serde::Deserialize;
use serde::de::DeserializeOwned;

use super::store::{self, Session, Tokens};
use super::{ShopError, ShopState};

/// Renew this long before the access token's end rather than be refused.
const RENEW_AHEAD_SECS: i64 = 5;

/// A product of the catalog, as the orders API describes it.
#[derive(Debug, Clone, Deserialize)]
pub struct Product {
    pub id: String,
    pub name: String,
    pub price: String,
    pub stock: i64,
}

#[derive(Debug, Clone, Deserialize)]
pub struct OrderLine {
    pub product_id: String,
    pub quantity: i64,
    pub unit_price: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Order {
    pub id: String,
    /// `paid` or `payment_failed`.
    pub status: String,
    pub total: String,
    pub items: Vec<OrderLine>,
    pub created_at: String,
}

/// What the orders API said when it refused an order.
#[derive(Debug, Deserialize)]
struct Problem {
    #[serde(default)]
    detail: Option<String>,
    #[serde(default)]
    title: Option<String>,
}

/// The APIs as one signed-in person, for one request of theirs.
pub struct Api<'a> {
    state: &'a ShopState,
    session: &'a Session,
    tokens: Tokens,
    /// Where the person comes back to if they must sign in again.
    return_to: &'a str,
}

/// An answer the page shows rather than an error: the API refused what was asked.
pub enum Answer<T> {
    Done(T),
    Refused { message: String },
}

impl<'a> Api<'a> {
    pub fn new(
        state: &'a ShopState,
        session: &'a Session,
        return_to: &'a str,
    ) -> Result<Self, ShopError> {
        let person = session
            .person
            .as_ref()
            .ok_or_else(|| ShopError::SignInNeeded {
                return_to: return_to.to_owned(),
            })?;
        Ok(Self {
            state,
            session,
            tokens: person.tokens.clone(),
            return_to,
        })
    }

    pub async fn products(&mut self) -> Result<Vec<Product>, ShopError> {
        self.get("/api/products").await
    }

    pub async fn orders(&mut self) -> Result<Vec<Order>, ShopError> {
        self.get("/api/orders").await
    }

    /// Places an order: the order (paid or not), or the API's reason for refusing it.
    pub async fn place_order(
        &mut self,
        items: &[(String, i64)],
    ) -> Result<Answer<Order>, ShopError> {
        let body = serde_json::json!({
            "items": items
                .iter()
                .map(|(product_id, quantity)| {
                    serde_json::json!({"product_id": product_id, "quantity": quantity})
                })
                .collect::<Vec<_>>(),
        });
        let response = self.send(Method::POST, "/api/orders", Some(&body)).await?;
        let status = response.status();
        if status.is_client_error() && status != StatusCode::FORBIDDEN {
            let problem: Problem = response.json().await.unwrap_or(Problem {
                detail: None,
                title: None,
            });
            return Ok(Answer::Refused {
                message: problem
                    .detail
                    .or(problem.title)
                    .unwrap_or_else(|| format!("the order was refused ({status})")),
            });
        }
        Ok(Answer::Done(read_json(response).await?))
    }

    async fn get<T: DeserializeOwned>(&mut self, path: &str) -> Result<T, ShopError> {
        let response = self.send(Method::GET, path, None).await?;
        read_json(response).await
    }

    /// Sends with the person's token, renewing it ahead of its end, and once more after a 401.
    async fn send(
        &mut self,
        method: Method,
        path: &str,
        body: Option<&serde_json::Value>,
    ) -> Result<reqwest::Response, ShopError> {
        if self.tokens.access_expires_at - RENEW_AHEAD_SECS <= now_unix() {
            self.renew().await?;
        }
        let response = self.send_once(&method, path, body).await?;
        if response.status() != StatusCode::UNAUTHORIZED {
            return Ok(response);
        }
        self.renew().await?;
        let response = self.send_once(&method, path, body).await?;
        if response.status() == StatusCode::UNAUTHORIZED {
            // A fresh token refused too: the person's standing changed. Start over, leaving
            // no live refresh token behind.
            return Err(self.sign_out_here().await);
        }
        Ok(response)
    }

    async fn send_once(
        &self,
        method: &Method,
        path: &str,
        body: Option<&serde_json::Value>,
    ) -> Result<reqwest::Response, ShopError> {
        let url = format!("{}{path}", self.state.api_url);
        let mut request = self
            .state
            .http
            .request(method.clone(), &url)
            .bearer_auth(&self.tokens.access_token);
        if let Some(body) = body {
            request = request.json(body);
        }
        request
            .send()
            .await
            .map_err(|e| ShopError::Unavailable(format!("cannot reach {url}: {e}")))
    }

    /// New tokens from the refresh token, one renewal at a time per browser: a request that
    /// waited finds the tokens another just renewed. A refused refresh signs the person out here.
    async fn renew(&mut self) -> Result<(), ShopError> {
        let lock = self.state.refresh_lock(&self.session.id_hash);
        let _one_at_a_time = lock.lock().await;
        let stored =
            store::current_tokens(&self.state.db, &self.state.sealer, &self.session.id_hash)
                .await?;
        let Some(stored) = stored else {
            return Err(self.sign_in_again());
        };
        if stored.access_token != self.tokens.access_token {
            self.tokens = stored;
            return Ok(());
        }
        let Some(refresh_token) = stored.refresh_token.clone() else {
            return Err(self.sign_out_here().await);
        };
        let mut renewed = self.state.signin.refresh(&refresh_token).await;
        if matches!(renewed, Err(SdkError::Unreachable { .. })) {
            // The answer may have been lost after the issuer rotated the token: asking again
            // at once stays within its grace for a repeated refresh, where a later retry would
            // look like a stolen token and end the person's sessions.
            renewed = self.state.signin.refresh(&refresh_token).await;
        }
        match renewed {
            Ok(fresh) => {
                let tokens = Tokens::from_response(fresh, Some(&stored));
                store::store_tokens(
                    &self.state.db,
                    &self.state.sealer,
                    &self.session.id_hash,
                    &tokens,
                )
                .await?;
                self.tokens = tokens;
                Ok(())
            }
            // Only a refused grant means the sign-in is over; a throttled or misconfigured
            // issuer is an outage, not a reason to sign everyone out.
            Err(SdkError::Refused { error, .. }) if error == "invalid_grant" => {
                tracing::info!("the shop's refresh was refused; the person signs in again");
                store::forget_person(&self.state.db, &self.session.id_hash).await?;
                Err(self.sign_in_again())
            }
            Err(e) => Err(ShopError::Unavailable(e.to_string())),
        }
    }

    /// Forgets the person here after revoking their refresh token; then they sign in again.
    async fn sign_out_here(&self) -> ShopError {
        if let Some(refresh_token) = &self.tokens.refresh_token
            && let Err(e) = self
                .state
                .signin
                .revoke(refresh_token, "refresh_token")
                .await
        {
            tracing::warn!(error = %e, "the shop could not revoke a refresh token");
        }
        match store::forget_person(&self.state.db, &self.session.id_hash).await {
            Ok(()) => self.sign_in_again(),
            Err(e) => e,
        }
    }

    fn sign_in_again(&self) -> ShopError {
        ShopError::SignInNeeded {
            return_to: self.return_to.to_owned(),
        }
    }
}

async fn read_json<T: DeserializeOwned>(response: reqwest::Response) -> Result<T, ShopError> {
    let url = response.url().to_string();
    let status = response.status();
    if status == StatusCode::FORBIDDEN {
        return Err(ShopError::NotAllowed(
            "your account may not use the orders service".into(),
        ));
    }
    if !status.is_success() {
        return Err(ShopError::Unavailable(format!("{url} answered {status}")));
    }
    response
        .json()
        .await
        .map_err(|e| ShopError::Unavailable(format!("{url} answered something unreadable: {e}")))
}
