//! The request path: path, route, method, token, policy, rate limit, then the upstream.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::response::{IntoResponse, Response};
use gatehouse_proto::web::{problem, set_retry_after};
use gatehouse_proto::{BearerError, bearer_token, retry_after_secs};
use gatehouse_sdk::{Rejection, Verified};
use http::header::{self, HeaderValue};
use http::{HeaderMap, StatusCode, Uri, Version};
use http_body_util::Limited;

use crate::config::{LimitKey, RouteRule};
use crate::limits::RouteLimits;
use crate::{Gateway, Route, forward};

/// Why a request ended without an upstream answer, and what the caller gets.
pub(crate) struct Refusal {
    /// Boxed: refusals are the rare path, and `Result`s carrying them stay small.
    pub response: Box<Response>,
    pub reason: &'static str,
}

impl Refusal {
    pub(crate) fn new(status: StatusCode, reason: &'static str, detail: &str) -> Self {
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

pub(crate) type Caller = Option<Arc<Verified>>;

pub(crate) async fn proxy(
    State(gateway): State<Arc<Gateway>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    request: Request,
) -> Response {
    let started = Instant::now();
    let request_id = forward::request_id(request.headers());
    let method = request.method().clone();
    let uri = request.uri().clone();
    let (route, outcome) = match route_for(&gateway, uri.path()) {
        Err(refusal) => (None, Err((refusal, None))),
        Ok((route, path)) => {
            let outcome =
                admit_and_forward(&gateway, &route, peer, request, &path, &request_id).await;
            (Some(route), outcome)
        }
    };
    finish(
        &gateway,
        Exchange {
            started,
            request_id,
            peer,
            method: &method,
            path: uri.path(),
            route,
            kind: "proxy",
        },
        outcome,
    )
}

/// The route a request's path leads to, with the path as it is matched and forwarded.
pub(crate) fn route_for<'p>(
    gateway: &Gateway,
    raw_path: &'p str,
) -> Result<(Arc<Route>, std::borrow::Cow<'p, str>), Refusal> {
    let Some(path) = forward::normalize_path(raw_path) else {
        return Err(Refusal::new(
            StatusCode::BAD_REQUEST,
            "ambiguous_path",
            "the path has dot segments, encoded separators, backslashes or semicolons",
        ));
    };
    // The gateway's own endpoints: a path there that none of them answers is nobody's.
    if path.starts_with("/_gatehouse/") {
        return Err(Refusal::new(
            StatusCode::NOT_FOUND,
            "no_route",
            "no such gateway endpoint",
        ));
    }
    match gateway.table().find(&path).cloned() {
        Some(route) => Ok((route, path)),
        None => Err(Refusal::new(
            StatusCode::NOT_FOUND,
            "no_route",
            "no route serves this path",
        )),
    }
}

/// One request's decision, for its metrics and its access-log line.
pub(crate) struct Exchange<'a> {
    pub started: Instant,
    pub request_id: HeaderValue,
    pub peer: SocketAddr,
    pub method: &'a http::Method,
    pub path: &'a str,
    pub route: Option<Arc<Route>>,
    /// `proxy`, or `check` for the forward-auth endpoint.
    pub kind: &'static str,
}

/// The answer to `exchange`, counted and logged.
pub(crate) fn finish(
    gateway: &Gateway,
    exchange: Exchange<'_>,
    outcome: Result<(Response, Caller), (Refusal, Caller)>,
) -> Response {
    let route = exchange.route.as_ref();
    let metrics = route.map_or(&gateway.unmatched, |r| &r.metrics);
    let (mut response, caller) = match outcome {
        Ok(done) => done,
        Err((refusal, caller)) => {
            metrics.rejection(refusal.reason);
            (*refusal.response, caller)
        }
    };
    response
        .headers_mut()
        .insert(forward::REQUEST_ID, exchange.request_id.clone());
    let status = response.status().as_u16();
    let elapsed = exchange.started.elapsed();
    metrics.request(status, elapsed);
    tracing::info!(
        target: "gatehouse::access",
        request_id = exchange.request_id.to_str().unwrap_or("-"),
        peer = %exchange.peer.ip(),
        kind = exchange.kind,
        method = %exchange.method,
        path = %exchange.path,
        route = route.map_or("unmatched", |r| r.rule.name.as_str()),
        status,
        duration_us = elapsed.as_micros() as u64,
        client_id = caller.as_ref().map(|c| c.claims.client_id.as_str()),
        subject = caller.as_ref().map(|c| c.claims.sub.as_str()),
    );
    response
}

async fn admit_and_forward(
    gateway: &Gateway,
    route: &Route,
    peer: SocketAddr,
    request: Request,
    path: &str,
    request_id: &HeaderValue,
) -> Result<(Response, Caller), (Refusal, Caller)> {
    let rule = &route.rule;
    let caller = admit(
        gateway,
        route,
        request.method(),
        request.headers(),
        peer.ip(),
    )
    .await?;
    let too_large = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        .is_some_and(|length| length > rule.max_body_bytes);
    if too_large {
        return Err((body_too_large(rule), caller));
    }
    match forward(
        gateway,
        rule,
        peer,
        request,
        path,
        request_id,
        caller.as_deref(),
    )
    .await
    {
        Ok(response) => Ok((response, caller)),
        Err(refusal) => Err((refusal, caller)),
    }
}

/// Everything a request must pass before it may reach the route's upstream: the method, the
/// limits, the token and the route's policy for that method. `client` is the address that
/// limits by address count (its key is made only when the route has such a limit). The proxy and the forward-auth check both ask this, so they cannot disagree.
pub(crate) async fn admit(
    gateway: &Gateway,
    route: &Route,
    method: &http::Method,
    headers: &HeaderMap,
    client: std::net::IpAddr,
) -> Result<Caller, (Refusal, Caller)> {
    let rule = &route.rule;
    // HEAD goes wherever GET does (RFC 9110 §9.3.2), and is passed on as HEAD.
    if !rule.allows(method) {
        let mut refusal = Refusal::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "this route does not accept that method",
        );
        if let Some(allowed) = rule.allowed_methods()
            && let Ok(value) = HeaderValue::from_str(&allowed)
        {
            refusal.response.headers_mut().insert(header::ALLOW, value);
        }
        return Err((refusal, None));
    }
    // Limits by IP come first, so a flood of bad tokens is throttled before any signature check.
    let by_ip = rule
        .rate_limit
        .as_ref()
        .is_some_and(|l| l.key == LimitKey::Ip);
    if by_ip && let Some(limits) = &route.limits {
        limited(limits, &ip_key(client)).map_err(|r| (r, None))?;
    }
    let caller = authenticate(gateway, route, headers)
        .await
        .map_err(|r| (r, None))?;
    if let Some(verified) = &caller {
        rule.policy_for(method)
            .check(&verified.claims)
            .map_err(|r| (r.into(), caller.clone()))?;
    }
    if !by_ip && let Some(limits) = &route.limits {
        limited(limits, &limit_key(rule, caller.as_deref(), client))
            .map_err(|r| (r, caller.clone()))?;
    }
    Ok(caller)
}

/// The verified caller, `None` for an anonymous request on a route that allows it.
async fn authenticate(
    gateway: &Gateway,
    route: &Route,
    headers: &http::HeaderMap,
) -> Result<Caller, Refusal> {
    let token = match bearer_token(headers) {
        Ok(token) => token,
        // Another scheme on an open route is the upstream's business (its own Basic login).
        Err(BearerError::OtherScheme) if route.rule.anonymous => None,
        Err(e) => return Err(Rejection::InvalidToken(e.to_string()).into()),
    };
    let Some(token) = token else {
        if route.rule.anonymous {
            return Ok(None);
        }
        if !gateway.verifier.can_verify() {
            return Err(Rejection::Unavailable.into());
        }
        return Err(Rejection::MissingToken.into());
    };
    // RFC 9068 §4: every route checks `aud`, against its own audience or the gateway's.
    let audience = route
        .rule
        .audience
        .as_deref()
        .unwrap_or(gateway.verifier.audience());
    let (verdict, from_cache) = gateway
        .verifier
        .verify_reporting_cache(token, audience)
        .await;
    route.metrics.cache(from_cache);
    Ok(Some(verdict?))
}

/// 429 with `Retry-After` when `key` is over the route's limit.
fn limited(limits: &RouteLimits, key: &str) -> Result<(), Refusal> {
    let Err(wait) = limits.check(key) else {
        return Ok(());
    };
    let mut refusal = Refusal::new(
        StatusCode::TOO_MANY_REQUESTS,
        "rate_limited",
        "too many requests on this route; slow down",
    );
    set_retry_after(refusal.response.headers_mut(), retry_after_secs(wait));
    Err(refusal)
}

fn limit_key(rule: &RouteRule, caller: Option<&Verified>, client: std::net::IpAddr) -> String {
    let kind = rule.rate_limit.as_ref().map_or(LimitKey::Ip, |l| l.key);
    match (kind, caller) {
        (LimitKey::Client, Some(c)) => format!("c:{}", c.claims.client_id),
        (LimitKey::Subject, Some(c)) => format!("s:{}", c.claims.sub),
        _ => ip_key(client),
    }
}

/// One client's key for limits by address: an IPv6 holder's whole /64 is one client.
fn ip_key(ip: std::net::IpAddr) -> String {
    format!("ip:{}", gatehouse_proto::peer::source_address(ip))
}

fn body_too_large(rule: &RouteRule) -> Refusal {
    Refusal::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "too_large",
        &format!("the body may be at most {} bytes", rule.max_body_bytes),
    )
}

/// A verified identity that cannot be written as a header: the request must not go on without it.
pub(crate) fn unforwardable_identity() -> Refusal {
    Refusal::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "identity_unforwardable",
        "the caller's identity cannot be put in a header",
    )
}

fn upstream_failed(detail: &str) -> Refusal {
    Refusal::new(StatusCode::BAD_GATEWAY, "upstream_error", detail)
}

async fn forward(
    gateway: &Gateway,
    rule: &RouteRule,
    peer: SocketAddr,
    mut request: Request,
    path: &str,
    request_id: &HeaderValue,
    caller: Option<&Verified>,
) -> Result<Response, Refusal> {
    let upgrade = match rule.websocket {
        true => forward::websocket_upgrade(request.headers()),
        false => None,
    };
    let client_side = upgrade.is_some().then(|| hyper::upgrade::on(&mut request));
    let uri = upstream_uri(rule, path, request.uri().query())?;
    let (mut parts, body) = request.into_parts();
    let authority = parts.uri.authority().cloned();
    parts.uri = uri;
    parts.version = Version::HTTP_11;
    forward::strip_hop_by_hop(&mut parts.headers, upgrade);
    forward::keep_cookies(&mut parts.headers, &rule.cookies);
    forward::set_identity(&mut parts.headers, caller.map(|c| &c.claims))
        .map_err(|()| unforwardable_identity())?;
    let over_tls = parts
        .extensions
        .get::<gatehouse_listen::ArrivedOverTls>()
        .is_some();
    forward::set_forwarded(&mut parts.headers, peer, over_tls, authority.as_ref());
    // The upstream's call belongs to the request's trace (W3C Trace Context): as a child of
    // this request's span when it is exported, else as the caller sent it. `tracestate` goes
    // only with the caller's own trace.
    let trace = parts
        .extensions
        .get::<gatehouse_listen::RequestTrace>()
        .copied();
    match trace {
        Some(trace) => {
            parts.headers.insert("traceparent", trace.traceparent());
            if !trace.continued {
                parts.headers.remove("tracestate");
            }
        }
        None => {
            parts.headers.remove("traceparent");
            parts.headers.remove("tracestate");
        }
    }
    parts
        .headers
        .insert(forward::REQUEST_ID, request_id.clone());
    let limit = usize::try_from(rule.max_body_bytes).unwrap_or(usize::MAX);
    let upstream_request = http::Request::from_parts(parts, Body::new(Limited::new(body, limit)));

    let mut response = match tokio::time::timeout(
        rule.timeout,
        forward::upstream(&gateway.upstream_tls).request(upstream_request),
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
        Ok(Err(error)) if caused_by_body_limit(&error) => return Err(body_too_large(rule)),
        Ok(Err(error)) => {
            tracing::warn!(route = %rule.name, error = %error, "upstream request failed");
            return Err(upstream_failed(if error.is_connect() {
                "the upstream refused the connection"
            } else {
                "the upstream failed to answer"
            }));
        }
        Ok(Ok(response)) => response,
    };
    if response.status() == StatusCode::SWITCHING_PROTOCOLS {
        let agreed = forward::websocket_upgrade(response.headers());
        let (Some(client_side), Some(_)) = (client_side, &agreed) else {
            return Err(upstream_failed(
                "the upstream switched protocols without a WebSocket upgrade being asked for",
            ));
        };
        let upstream_side = hyper::upgrade::on(&mut response);
        forward::splice(client_side, upstream_side);
        forward::strip_hop_by_hop(response.headers_mut(), agreed);
    } else {
        forward::strip_hop_by_hop(response.headers_mut(), None);
    }
    forward::keep_set_cookies(response.headers_mut(), &rule.cookies);
    Ok(response.map(Body::new))
}

/// Whether the upstream request failed because the body passed the route's limit (a body
/// without a length, cut off while streaming).
fn caused_by_body_limit(error: &hyper_util::client::legacy::Error) -> bool {
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        if cause.is::<http_body_util::LengthLimitError>() {
            return true;
        }
        source = cause.source();
    }
    false
}

/// The upstream's address for this request: its base path, then the normalised request path
/// (without the route's prefix when `strip_prefix`), then the query.
fn upstream_uri(rule: &RouteRule, path: &str, query: Option<&str>) -> Result<Uri, Refusal> {
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
    if let Some(query) = query {
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
    match gateway.verifier.can_verify() {
        false => problem(
            StatusCode::SERVICE_UNAVAILABLE,
            "the revocation feed has been silent for longer than the staleness budget",
        ),
        true => "ready".into_response(),
    }
}

pub(crate) async fn render_metrics(
    State(gateway): State<Arc<Gateway>>,
    headers: HeaderMap,
) -> Response {
    gatehouse_listen::metrics_response(&gateway.metrics, &gateway.metrics_access, &headers)
}
