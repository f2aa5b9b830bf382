//! The time the service's rules are judged by, passed in rather than read: the system's in
//! production, a hand-moved one in tests, so expiry, grace windows and locks are tested without
//! sleeping.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub trait Clock: Send + Sync {
    /// Time since the Unix epoch.
    fn since_epoch(&self) -> Duration;

    /// Whole Unix seconds, as tokens and the store count time.
    fn now(&self) -> i64 {
        self.since_epoch().as_secs() as i64
    }
}

/// The system's clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn since_epoch(&self) -> Duration {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
    }
}

/// A clock that stands still until moved: for tests.
#[derive(Debug, Default)]
pub struct ManualClock {
    millis: AtomicU64,
}

impl ManualClock {
    /// Starts at the system's time, so tokens it dates verify against real clocks too.
    pub fn starting_now() -> Self {
        Self::at(SystemClock.since_epoch())
    }

    pub fn at(since_epoch: Duration) -> Self {
        Self {
            millis: AtomicU64::new(since_epoch.as_millis() as u64),
        }
    }

    pub fn advance(&self, by: Duration) {
        self.millis
            .fetch_add(by.as_millis() as u64, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn since_epoch(&self) -> Duration {
        Duration::from_millis(self.millis.load(Ordering::SeqCst))
    }
}

/// The system's clock, moved ahead by hand: for tests of a running server, where time must pass
/// as usual for everything else but a wait (a lock, a grace window) is too long to sleep through.
#[derive(Debug, Default)]
pub struct AdvancingClock {
    ahead_millis: AtomicU64,
}

impl AdvancingClock {
    pub fn advance(&self, by: Duration) {
        self.ahead_millis
            .fetch_add(by.as_millis() as u64, Ordering::SeqCst);
    }
}

impl Clock for AdvancingClock {
    fn since_epoch(&self) -> Duration {
        SystemClock.since_epoch() + Duration::from_millis(self.ahead_millis.load(Ordering::SeqCst))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manual_clock_moves_only_when_told() {
        let clock = ManualClock::at(Duration::from_secs(1_000));
        assert_eq!(clock.now(), 1_000);
        clock.advance(Duration::from_millis(1_500));
        assert_eq!(clock.since_epoch(), Duration::from_millis(1_001_500));
        assert_eq!(clock.now(), 1_001);
        assert!(SystemClock.now() > 1_700_000_000);
    }

    #[test]
    fn an_advancing_clock_runs_ahead_of_the_system_by_what_it_was_moved() {
        let clock = AdvancingClock::default();
        clock.advance(Duration::from_secs(3_600));
        let ahead = clock
            .since_epoch()
            .saturating_sub(SystemClock.since_epoch());
        assert!(ahead > Duration::from_secs(3_599) && ahead <= Duration::from_secs(3_600));
    }
}
