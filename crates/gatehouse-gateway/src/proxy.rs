//! The request path: route, method, token, policy, rate limit, then the upstream.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::response::{IntoResponse, Response};
use gatehouse_sdk::{FeedStatus, Rejection, Verified, bearer_token, problem};
use http::header::{self, HeaderValue};
use http::{StatusCode, Uri, Version};
use http_body_util::Limited;

use crate::config::{LimitKey, RouteRule};
use crate::forward;
use crate::limits::RouteLimits;
use crate::{Gateway, metrics};

/// Why a request ended without an upstream answer, and what the caller gets.
struct Refusal {
    /// Boxed: refusals are the rare path, and `Result`s carrying them stay small.
    response: Box<Response>,
    reason: &'static str,
}

impl Refusal {
    fn new(status: StatusCode, reason: &'static str, detail: &str) -> Self {
        Self {
            response: Box::new(problem(status, detail)),
            reason,
        }
    }
}

impl From<Rejection> for Refusal {
    fn from(rejection: Rejection) -> Self {
        Self {
            reason: rejection.reason(),
            response: Box::new(rejection.into_response()),
        }
    }
}

pub(crate) async fn proxy(
    State(gateway): State<Arc<Gateway>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    request: Request,
) -> Response {
    let started = Instant::now();
    let request_id = forward::request_id(request.headers());
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let route = match forward::ambiguous_path(&path) {
        true => Err(()),
        false => Ok(gateway.table().find(&path).cloned()),
    };
    let (route_name, mut response, caller) = match route {
        Err(()) => (
            "unmatched".to_owned(),
            problem(
                StatusCode::BAD_REQUEST,
                "the path has dot segments or encoded separators",
            ),
            None,
        ),
        Ok(None) => (
            "unmatched".to_owned(),
            problem(StatusCode::NOT_FOUND, "no route serves this path"),
            None,
        ),
        Ok(Some((rule, limits))) => {
            let (response, caller) = match admit_and_forward(
                &gateway,
                &rule,
                limits.as_deref(),
                peer,
                request,
                &request_id,
            )
            .await
            {
                Ok(done) => done,
                Err((refusal, caller)) => {
                    metrics::rejection(&rule.name, refusal.reason);
                    (*refusal.response, caller)
                }
            };
            (rule.name.clone(), response, caller)
        }
    };
    response
        .headers_mut()
        .insert(forward::REQUEST_ID, request_id.clone());
    let status = response.status().as_u16();
    let elapsed = started.elapsed();
    metrics::request(&route_name, status, elapsed);
    tracing::info!(
        target: "gatehouse::access",
        request_id = request_id.to_str().unwrap_or("-"),
        peer = %peer.ip(),
        method = %method,
        path = %path,
        route = %route_name,
        status,
        duration_us = elapsed.as_micros() as u64,
        client_id = caller.as_ref().map(|c| c.claims.client_id.as_str()),
        subject = caller.as_ref().map(|c| c.claims.sub.as_str()),
    );
    response
}

type Caller = Option<Arc<Verified>>;

async fn admit_and_forward(
    gateway: &Gateway,
    rule: &RouteRule,
    limits: Option<&RouteLimits>,
    peer: SocketAddr,
    request: Request,
    request_id: &HeaderValue,
) -> Result<(Response, Caller), (Refusal, Caller)> {
    if let Some(methods) = &rule.methods
        && !methods.contains(request.method())
    {
        let mut refusal = Refusal::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "this route does not accept that method",
        );
        let mut allowed: Vec<&str> = methods.iter().map(|m| m.as_str()).collect();
        allowed.sort_unstable();
        if let Ok(value) = HeaderValue::from_str(&allowed.join(", ")) {
            refusal.response.headers_mut().insert(header::ALLOW, value);
        }
        return Err((refusal, None));
    }
    let caller = authenticate(gateway, rule, request.headers())
        .await
        .map_err(|r| (r, None))?;
    if let Some(verified) = &caller {
        rule.policy_for(request.method())
            .check(&verified.claims)
            .map_err(|r| (r.into(), caller.clone()))?;
    }
    if let Some(limits) = limits {
        let key = limit_key(rule, caller.as_deref(), peer);
        if let Err(wait) = limits.check(&key) {
            let mut refusal = Refusal::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                "too many requests on this route; slow down",
            );
            let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
            refusal
                .response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds.max(1)));
            return Err((refusal, caller));
        }
    }
    let too_large = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        .is_some_and(|length| length > rule.max_body_bytes);
    if too_large {
        return Err((
            Refusal::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "too_large",
                &format!("the body may be at most {} bytes", rule.max_body_bytes),
            ),
            caller,
        ));
    }
    let response = forward(gateway, rule, peer, request, request_id, caller.as_deref())
        .await
        .map_err(|r| (r, caller.clone()))?;
    Ok((response, caller))
}

/// The verified caller, `None` for an anonymous request on a route that allows it.
async fn authenticate(
    gateway: &Gateway,
    rule: &RouteRule,
    headers: &http::HeaderMap,
) -> Result<Caller, Refusal> {
    let token = bearer_token(headers)?;
    let Some(token) = token else {
        if rule.anonymous {
            return Ok(None);
        }
        if gateway.verifier.feed_status() == FeedStatus::Stale {
            return Err(Rejection::Unavailable.into());
        }
        return Err(Rejection::MissingToken.into());
    };
    let (verdict, from_cache) = gateway.verifier.verify_counted(token).await;
    metrics::cache(&rule.name, from_cache);
    Ok(Some(verdict?))
}

fn limit_key(rule: &RouteRule, caller: Option<&Verified>, peer: SocketAddr) -> String {
    let kind = rule.rate_limit.as_ref().map_or(LimitKey::Ip, |l| l.key);
    match (kind, caller) {
        (LimitKey::Client, Some(c)) => format!("c:{}", c.claims.client_id),
        (LimitKey::Subject, Some(c)) => format!("s:{}", c.claims.sub),
        _ => format!("ip:{}", peer.ip()),
    }
}

async fn forward(
    gateway: &Gateway,
    rule: &RouteRule,
    peer: SocketAddr,
    mut request: Request,
    request_id: &HeaderValue,
    caller: Option<&Verified>,
) -> Result<Response, Refusal> {
    let upgrade = forward::upgrade_of(request.headers());
    let client_side = upgrade.is_some().then(|| hyper::upgrade::on(&mut request));
    let uri = upstream_uri(rule, request.uri())?;
    let (mut parts, body) = request.into_parts();
    parts.uri = uri;
    parts.version = Version::HTTP_11;
    forward::strip_hop_by_hop(&mut parts.headers, upgrade.clone());
    forward::set_identity(&mut parts.headers, caller.map(|c| &c.claims));
    forward::set_forwarded(&mut parts.headers, peer);
    parts
        .headers
        .insert(forward::REQUEST_ID, request_id.clone());
    let body = Body::new(Limited::new(body, rule.max_body_bytes as usize));
    let upstream_request = http::Request::from_parts(parts, body);

    let mut response = match tokio::time::timeout(
        rule.timeout,
        gateway.upstream.request(upstream_request),
    )
    .await
    {
        Err(_) => {
            return Err(Refusal::new(
                StatusCode::GATEWAY_TIMEOUT,
                "upstream_timeout",
                "the upstream did not answer in time",
            ));
        }
        Ok(Err(error)) => {
            tracing::warn!(route = %rule.name, error = %error, "upstream request failed");
            let detail = if error.is_connect() {
                "the upstream refused the connection"
            } else {
                "the upstream failed to answer"
            };
            return Err(Refusal::new(
                StatusCode::BAD_GATEWAY,
                "upstream_error",
                detail,
            ));
        }
        Ok(Ok(response)) => response,
    };
    if response.status() == StatusCode::SWITCHING_PROTOCOLS {
        if let Some(client_side) = client_side {
            let upstream_side = hyper::upgrade::on(&mut response);
            forward::splice(client_side, upstream_side);
        }
        let kept = forward::upgrade_of(response.headers());
        forward::strip_hop_by_hop(response.headers_mut(), kept);
    } else {
        forward::strip_hop_by_hop(response.headers_mut(), None);
    }
    Ok(response.map(Body::new))
}

/// The upstream's address for this request: its base path, then the request path (without the
/// route's prefix when `strip_prefix`), then the query.
fn upstream_uri(rule: &RouteRule, original: &Uri) -> Result<Uri, Refusal> {
    let path = original.path();
    let rest = if rule.strip_prefix && rule.prefix != "/" {
        path.get(rule.prefix.len()..).unwrap_or_default()
    } else {
        path
    };
    let base = rule.upstream.path().trim_end_matches('/');
    let mut target = String::with_capacity(base.len() + rest.len() + 64);
    target.push_str(base);
    if !rest.starts_with('/') {
        target.push('/');
    }
    target.push_str(rest);
    if let Some(query) = original.query() {
        target.push('?');
        target.push_str(query);
    }
    let mut parts = rule.upstream.clone().into_parts();
    parts.path_and_query = target.parse().ok();
    Uri::from_parts(parts).map_err(|_| {
        Refusal::new(
            StatusCode::BAD_REQUEST,
            "bad_path",
            "the request path cannot be forwarded",
        )
    })
}

pub(crate) async fn readyz(State(gateway): State<Arc<Gateway>>) -> Response {
    match gateway.verifier.feed_status() {
        FeedStatus::Stale => problem(
            StatusCode::SERVICE_UNAVAILABLE,
            "the revocation feed has been lost for longer than the staleness budget",
        ),
        _ => "ready".into_response(),
    }
}

pub(crate) async fn render_metrics(State(gateway): State<Arc<Gateway>>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        gateway.metrics.render(),
    )
        .into_response()
}
