//! The gateway's Prometheus metrics, labelled by route name (never the raw path). Each route
//! registers its handles once, so the request path does no label look-ups for the common cases.

use std::collections::HashMap;
use std::sync::{RwLock, Weak};
use std::time::Duration;

use metrics::{Counter, Histogram};

use crate::Gateway;

pub const REQUESTS: &str = "gatehouse_gateway_requests_total";
pub const DURATION: &str = "gatehouse_gateway_request_duration_seconds";
pub const REJECTIONS: &str = "gatehouse_gateway_rejections_total";
pub const TOKEN_CACHE: &str = "gatehouse_gateway_token_cache_total";
/// Seconds since the revocation feed last proved current (its keep-alives come every 5 s, so a
/// healthy feed stays under that).
pub const FEED_SILENCE: &str = "gatehouse_gateway_feed_silence_seconds";

pub(crate) struct RouteMetrics {
    route: String,
    duration: Histogram,
    cache_hit: Counter,
    cache_miss: Counter,
    by_status: RwLock<HashMap<u16, Counter>>,
}

impl RouteMetrics {
    pub(crate) fn new(route: &str) -> Self {
        let label = route.to_owned();
        Self {
            duration: metrics::histogram!(DURATION, "route" => label.clone()),
            cache_hit: metrics::counter!(TOKEN_CACHE, "route" => label.clone(), "result" => "hit"),
            cache_miss: metrics::counter!(TOKEN_CACHE, "route" => label.clone(), "result" => "miss"),
            by_status: RwLock::default(),
            route: label,
        }
    }

    pub(crate) fn request(&self, status: u16, elapsed: Duration) {
        self.duration.record(elapsed.as_secs_f64());
        if let Some(counter) = self
            .by_status
            .read()
            .ok()
            .and_then(|m| m.get(&status).cloned())
        {
            counter.increment(1);
            return;
        }
        let counter = metrics::counter!(REQUESTS, "route" => self.route.clone(), "status" => status.to_string());
        counter.increment(1);
        if let Ok(mut map) = self.by_status.write() {
            map.insert(status, counter);
        }
    }

    pub(crate) fn rejection(&self, reason: &'static str) {
        metrics::counter!(REJECTIONS, "route" => self.route.clone(), "reason" => reason)
            .increment(1);
    }

    pub(crate) fn cache(&self, hit: bool) {
        match hit {
            true => self.cache_hit.increment(1),
            false => self.cache_miss.increment(1),
        }
    }
}

/// Publishes how long the revocation feed has been silent, every second.
pub(crate) async fn report_feed_silence(gateway: Weak<Gateway>) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tick.tick().await;
        let Some(gateway) = gateway.upgrade() else {
            return;
        };
        metrics::gauge!(FEED_SILENCE).set(gateway.verifier.feed_silence().as_secs_f64());
    }
}
