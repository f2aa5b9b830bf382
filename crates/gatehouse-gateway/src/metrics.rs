//! The gateway's Prometheus metrics, labelled by route name (never the raw path).

use std::sync::Weak;
use std::time::Duration;

use crate::Gateway;

pub const REQUESTS: &str = "gatehouse_gateway_requests_total";
pub const DURATION: &str = "gatehouse_gateway_request_duration_seconds";
pub const REJECTIONS: &str = "gatehouse_gateway_rejections_total";
pub const TOKEN_CACHE: &str = "gatehouse_gateway_token_cache_total";
pub const FEED_LAG: &str = "gatehouse_gateway_feed_lag_seconds";

pub(crate) fn request(route: &str, status: u16, elapsed: Duration) {
    metrics::counter!(REQUESTS, "route" => route.to_owned(), "status" => status.to_string())
        .increment(1);
    metrics::histogram!(DURATION, "route" => route.to_owned()).record(elapsed.as_secs_f64());
}

pub(crate) fn rejection(route: &str, reason: &'static str) {
    metrics::counter!(REJECTIONS, "route" => route.to_owned(), "reason" => reason).increment(1);
}

pub(crate) fn cache(route: &str, hit: bool) {
    metrics::counter!(TOKEN_CACHE, "route" => route.to_owned(), "result" => if hit { "hit" } else { "miss" })
        .increment(1);
}

/// Publishes how long the revocation feed has been lost (0 while connected), every second.
pub(crate) async fn report_feed_lag(gateway: Weak<Gateway>) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tick.tick().await;
        let Some(gateway) = gateway.upgrade() else {
            return;
        };
        metrics::gauge!(FEED_LAG).set(gateway.verifier.feed_lag().as_secs_f64());
    }
}
