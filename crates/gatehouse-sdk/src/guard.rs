//! Protecting axum routes: the [`Authenticated`] extractor and the [`require`] layer.

use std::convert::Infallible;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::extract::{FromRef, FromRequestParts, Request};
use axum::http::HeaderMap;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use futures::future::BoxFuture;
use tower::{Layer, Service};

use crate::policy::Policy;
use crate::rejection::Rejection;
use crate::verifier::{TokenVerifier, Verified};

/// The verified caller. As an extractor it needs `Arc<TokenVerifier>` in the router's state
/// (through `FromRef`), or a [`require`] layer on the route that has checked the token already.
#[derive(Debug, Clone)]
pub struct Authenticated(pub Arc<Verified>);

impl std::ops::Deref for Authenticated {
    type Target = gatehouse_token::AccessClaims;
    fn deref(&self) -> &Self::Target {
        &self.0.claims
    }
}

impl<S> FromRequestParts<S> for Authenticated
where
    Arc<TokenVerifier>: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = Rejection;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        if let Some(done) = parts.extensions.get::<Authenticated>() {
            return Ok(done.clone());
        }
        let verifier = Arc::<TokenVerifier>::from_ref(state);
        authorize(&verifier, &Policy::default(), &parts.headers)
            .await
            .map(Authenticated)
    }
}

/// The bearer token of a request: `None` when it sends no `Authorization` header.
pub fn bearer_token(headers: &HeaderMap) -> Result<Option<&str>, Rejection> {
    gatehouse_proto::bearer_token(headers).map_err(|e| Rejection::InvalidToken(e.to_string()))
}

/// Verifies the request's bearer token, for the policy's audience or else the verifier's, and
/// checks it against `policy`.
pub async fn authorize(
    verifier: &TokenVerifier,
    policy: &Policy,
    headers: &HeaderMap,
) -> Result<Arc<Verified>, Rejection> {
    let token = bearer_token(headers)?.ok_or(Rejection::MissingToken)?;
    let audience = policy.audience.as_deref().unwrap_or(verifier.audience());
    let verified = verifier.verify_reporting_cache(token, audience).await.0?;
    policy.check(&verified.claims)?;
    Ok(verified)
}

/// A layer that lets a request through only with a valid token that meets `policy`; the handler
/// can then take [`Authenticated`] without checking again.
///
/// ```ignore
/// Router::new().route("/rates", get(list).route_layer(require(verifier.clone(), Policy::scopes(["rates:read"]))))
/// ```
pub fn require(verifier: Arc<TokenVerifier>, policy: Policy) -> RequireLayer {
    RequireLayer {
        verifier,
        policy: Arc::new(policy),
    }
}

#[derive(Clone)]
pub struct RequireLayer {
    verifier: Arc<TokenVerifier>,
    policy: Arc<Policy>,
}

impl<S> Layer<S> for RequireLayer {
    type Service = Require<S>;
    fn layer(&self, inner: S) -> Self::Service {
        Require {
            inner,
            verifier: self.verifier.clone(),
            policy: self.policy.clone(),
        }
    }
}

#[derive(Clone)]
pub struct Require<S> {
    inner: S,
    verifier: Arc<TokenVerifier>,
    policy: Arc<Policy>,
}

impl<S> Service<Request> for Require<S>
where
    S: Service<Request, Response = Response, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send,
{
    type Response = Response;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<Response, Infallible>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request) -> Self::Future {
        // The readied service handles this request; a fresh clone waits for the next.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let verifier = self.verifier.clone();
        let policy = self.policy.clone();
        Box::pin(async move {
            match authorize(&verifier, &policy, request.headers()).await {
                Ok(verified) => {
                    request.extensions_mut().insert(Authenticated(verified));
                    inner.call(request).await
                }
                Err(rejection) => Ok(rejection.into_response()),
            }
        })
    }
}
