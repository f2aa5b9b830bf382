//! Per-route rate limits, keyed by client, subject or IP.

use std::num::NonZeroU32;
use std::sync::Weak;
use std::time::Duration;

use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use crate::Gateway;
use crate::config::RateLimitSpec;

pub(crate) struct RouteLimits {
    limiter: DefaultKeyedRateLimiter<String>,
}

impl RouteLimits {
    pub(crate) fn new(spec: &RateLimitSpec) -> Self {
        let per_second = NonZeroU32::new(spec.per_second).unwrap_or(NonZeroU32::MIN);
        let burst = spec.burst.and_then(NonZeroU32::new).unwrap_or(per_second);
        Self {
            limiter: RateLimiter::keyed(Quota::per_second(per_second).allow_burst(burst)),
        }
    }

    /// `Err(wait)` when `key` is over its limit.
    pub(crate) fn check(&self, key: &str) -> Result<(), Duration> {
        self.limiter
            .check_key(&key.to_owned())
            .map_err(|not_until| {
                not_until.wait_time_from(governor::clock::Clock::now(
                    &governor::clock::DefaultClock::default(),
                ))
            })
    }

    fn forget_idle(&self) {
        self.limiter.retain_recent();
        self.limiter.shrink_to_fit();
    }
}

/// Drops the state of callers that have been quiet long enough to be back at a full bucket.
pub(crate) async fn forget_idle(gateway: Weak<Gateway>) {
    let mut tick = tokio::time::interval(Duration::from_secs(60));
    loop {
        tick.tick().await;
        let Some(gateway) = gateway.upgrade() else {
            return;
        };
        for route in &gateway.table().routes {
            if let Some(limits) = &route.limits {
                limits.forget_idle();
            }
        }
    }
}
