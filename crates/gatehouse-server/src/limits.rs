//! Rate limits on the endpoints anyone can call: the token, revocation and introspection endpoints
//! (per client IP, and per client once it is authenticated), registration and signup (per client
//! IP). Over the limit: 429 with `Retry-After`.

use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{ConnectInfo, Request};
use axum::http::{Method, StatusCode};
use axum::response::Response;
use gatehouse_proto::web::{oauth_error, problem, set_retry_after};
use gatehouse_proto::{OAuthErrorCode, retry_after_secs};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota};
use serde::{Deserialize, Serialize};

/// Limits per key; 0 turns a limit off. Bursts of up to twice the rate are allowed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RateLimitConfig {
    /// Token requests per second from one IP address.
    pub token_per_ip_per_second: u32,
    /// Token requests per second for one client id.
    pub token_per_client_per_second: u32,
    /// Revocation requests (RFC 7009) per second from one IP address.
    pub revoke_per_ip_per_second: u32,
    /// Revocation requests per second for one client id.
    pub revoke_per_client_per_second: u32,
    /// Introspection requests (RFC 7662) per second from one IP address.
    pub introspect_per_ip_per_second: u32,
    /// Introspection requests per second for one client id.
    pub introspect_per_client_per_second: u32,
    /// Client registrations per minute from one IP address.
    pub registration_per_ip_per_minute: u32,
    /// Signups per minute from one IP address.
    pub signup_per_ip_per_minute: u32,
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        Self {
            token_per_ip_per_second: 2000,
            token_per_client_per_second: 1000,
            // Revocation writes to the store and reaches every gateway: legitimate callers
            // revoke on logout, far below token issuance.
            revoke_per_ip_per_second: 200,
            revoke_per_client_per_second: 100,
            introspect_per_ip_per_second: 2000,
            introspect_per_client_per_second: 1000,
            registration_per_ip_per_minute: 30,
            signup_per_ip_per_minute: 30,
        }
    }
}

impl RateLimitConfig {
    /// No limits at all (benchmarks, tests of other behaviour).
    pub fn off() -> Self {
        Self {
            token_per_ip_per_second: 0,
            token_per_client_per_second: 0,
            revoke_per_ip_per_second: 0,
            revoke_per_client_per_second: 0,
            introspect_per_ip_per_second: 0,
            introspect_per_client_per_second: 0,
            registration_per_ip_per_minute: 0,
            signup_per_ip_per_minute: 0,
        }
    }
}

type Limiter<K> = Option<DefaultKeyedRateLimiter<K>>;

/// The OAuth endpoints limited per IP and per authenticated client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    Token,
    Revoke,
    Introspect,
}

struct EndpointLimits {
    per_ip: Limiter<IpAddr>,
    per_client: Limiter<String>,
}

impl EndpointLimits {
    fn new(per_ip_per_second: u32, per_client_per_second: u32) -> Self {
        let second = Duration::from_secs(1);
        Self {
            per_ip: limiter(per_ip_per_second, second),
            per_client: limiter(per_client_per_second, second),
        }
    }
}

pub struct RateLimits {
    token: EndpointLimits,
    revoke: EndpointLimits,
    introspect: EndpointLimits,
    registration_per_ip: Limiter<IpAddr>,
    signup_per_ip: Limiter<IpAddr>,
}

fn limiter<K: std::hash::Hash + Eq + Clone>(rate: u32, per: Duration) -> Limiter<K> {
    let rate = NonZeroU32::new(rate)?;
    let burst = rate.saturating_mul(NonZeroU32::MIN.saturating_add(1));
    let quota = Quota::with_period(per / rate.get())?.allow_burst(burst);
    Some(DefaultKeyedRateLimiter::keyed(quota))
}

/// Over a limit: wait this long.
pub struct Limited(pub Duration);

fn check<K: std::hash::Hash + Eq + Clone>(
    limiter: Option<&DefaultKeyedRateLimiter<K>>,
    key: &K,
) -> Result<(), Limited> {
    match limiter {
        None => Ok(()),
        Some(l) => l
            .check_key(key)
            .map_err(|not_until| Limited(not_until.wait_time_from(DefaultClock::default().now()))),
    }
}

impl RateLimits {
    pub fn new(config: &RateLimitConfig) -> Self {
        let minute = Duration::from_secs(60);
        Self {
            token: EndpointLimits::new(
                config.token_per_ip_per_second,
                config.token_per_client_per_second,
            ),
            revoke: EndpointLimits::new(
                config.revoke_per_ip_per_second,
                config.revoke_per_client_per_second,
            ),
            introspect: EndpointLimits::new(
                config.introspect_per_ip_per_second,
                config.introspect_per_client_per_second,
            ),
            registration_per_ip: limiter(config.registration_per_ip_per_minute, minute),
            signup_per_ip: limiter(config.signup_per_ip_per_minute, minute),
        }
    }

    fn endpoint(&self, endpoint: Endpoint) -> &EndpointLimits {
        match endpoint {
            Endpoint::Token => &self.token,
            Endpoint::Revoke => &self.revoke,
            Endpoint::Introspect => &self.introspect,
        }
    }

    /// An endpoint's per-client limit, charged once the client is authenticated (so nobody can
    /// spend another client's limit with wrong secrets). A public client is shared by everyone
    /// who signs in through it, so it is limited per caller.
    pub fn check_client(
        &self,
        endpoint: Endpoint,
        client: &gatehouse_core::Client,
        caller_ip: &str,
    ) -> Result<(), Limited> {
        let Some(limiter) = &self.endpoint(endpoint).per_client else {
            return Ok(());
        };
        let key = if client.is_public() {
            // Each caller by the address rule every limit uses (an IPv6 /64 is one caller).
            let caller = caller_ip.parse().map_or_else(
                |_| caller_ip.to_owned(),
                |ip| gatehouse_proto::peer::source_address(ip).to_string(),
            );
            format!("{}|{caller}", client.id)
        } else {
            client.id.clone()
        };
        check(Some(limiter), &key)
    }

    /// The admission check the core asks for once a client is authenticated: `Err` carries
    /// the seconds to wait.
    pub fn admission(
        self: &Arc<Self>,
        endpoint: Endpoint,
        caller_ip: Option<&str>,
    ) -> impl Fn(&gatehouse_core::Client) -> Result<(), u64> + Send + Sync + 'static {
        let limits = self.clone();
        let ip = caller_ip.unwrap_or_default().to_owned();
        move |client| {
            limits
                .check_client(endpoint, client, &ip)
                .map_err(|Limited(wait)| retry_after_secs(wait))
        }
    }

    /// Forgets keys whose limits are back to full, so the maps do not grow without end.
    pub fn forget_idle(&self) {
        let per_ip = [&self.token, &self.revoke, &self.introspect]
            .map(|e| &e.per_ip)
            .into_iter()
            .chain([&self.registration_per_ip, &self.signup_per_ip]);
        for l in per_ip.flatten() {
            l.retain_recent();
        }
        for e in [&self.token, &self.revoke, &self.introspect] {
            if let Some(l) = &e.per_client {
                l.retain_recent();
            }
        }
    }
}

/// 429 with `Retry-After`, in the error form of the endpoint that refused.
pub fn too_many_requests(oauth: bool, Limited(wait): Limited) -> Response {
    const DETAIL: &str = "too many requests; retry later";
    let mut response = if oauth {
        oauth_error(
            StatusCode::TOO_MANY_REQUESTS,
            OAuthErrorCode::TemporarilyUnavailable,
            DETAIL,
        )
    } else {
        problem(StatusCode::TOO_MANY_REQUESTS, DETAIL)
    };
    set_retry_after(response.headers_mut(), retry_after_secs(wait));
    response
}

/// The per-IP limits, applied before a request is parsed: the 429 for `request`, if its
/// address is over the limit of the endpoint it asks for.
pub fn per_ip_refusal(limits: &RateLimits, request: &Request) -> Option<Response> {
    let ip = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| gatehouse_proto::peer::source_address(addr.ip()))?;
    let limiter = match (request.method(), request.uri().path()) {
        (&Method::POST, "/oauth2/token") => &limits.token.per_ip,
        (&Method::POST, "/oauth2/revoke") => &limits.revoke.per_ip,
        (&Method::POST, "/oauth2/introspect") => &limits.introspect.per_ip,
        (&Method::POST, "/oauth2/register") => &limits.registration_per_ip,
        (&Method::POST, "/users" | "/signup") => &limits.signup_per_ip,
        // Password checks through the pages count as token requests do.
        (&Method::POST, "/signin" | "/account/password") => &limits.token.per_ip,
        _ => return None,
    };
    let limited = check(limiter.as_ref(), &ip).err()?;
    let path = request.uri().path();
    metrics::counter!("gatehouse_rate_limited_total", "route" => path.to_owned()).increment(1);
    Some(too_many_requests(path.starts_with("/oauth2/"), limited))
}
