//! Per-username defence against password guessing: growing delays after a few failures, then a
//! temporary lock. Unknown usernames are tracked exactly like real ones, and a locked account is
//! answered like a wrong password, so neither tells anyone whether a user exists.
//!
//! Kept in memory per node: with several nodes an attacker spread across them gets a few more
//! tries, never unlimited ones.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThrottleSettings {
    /// Failures answered at once before delays start.
    pub delay_after: u32,
    /// The first delay; each further failure doubles it, up to `MAX_DELAY`.
    pub base_delay: Duration,
    /// Failures that lock the username; 0 never locks.
    pub lock_after: u32,
    /// How long a lock lasts, and how long failures are remembered.
    pub lock_for: Duration,
}

const MAX_DELAY: Duration = Duration::from_secs(8);
const MAX_TRACKED: usize = 100_000;

/// The delay before answering the `failures`-th consecutive failure.
pub fn delay_for(failures: u32, settings: &ThrottleSettings) -> Duration {
    if failures <= settings.delay_after {
        return Duration::ZERO;
    }
    let doublings = (failures - settings.delay_after - 1).min(16);
    settings
        .base_delay
        .saturating_mul(1 << doublings)
        .min(MAX_DELAY)
}

/// Times are since the Unix epoch, from the service's clock.
struct Failures {
    count: u32,
    last: Duration,
    locked_until: Option<Duration>,
}

pub struct LoginThrottle {
    settings: ThrottleSettings,
    entries: Mutex<HashMap<String, Failures>>,
}

/// What a recorded failure means for the answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FailureOutcome {
    pub delay: Duration,
    /// This failure started a lock.
    pub locked_now: bool,
}

/// Fixed-size keys: an attacker's megabyte-long usernames cost 64 bytes each here.
fn key(username: &str) -> String {
    crate::secret::hash_secret(&username.to_lowercase())
}

impl LoginThrottle {
    pub fn new(settings: ThrottleSettings) -> Self {
        Self {
            settings,
            entries: Mutex::new(HashMap::new()),
        }
    }

    fn with_entries<T>(&self, f: impl FnOnce(&mut HashMap<String, Failures>) -> T) -> T {
        match self.entries.lock() {
            Ok(mut guard) => f(&mut guard),
            Err(poisoned) => f(&mut poisoned.into_inner()),
        }
    }

    pub fn is_locked(&self, username: &str, now: Duration) -> bool {
        self.with_entries(|entries| {
            entries
                .get(&key(username))
                .and_then(|f| f.locked_until)
                .is_some_and(|until| until > now)
        })
    }

    pub fn record_failure(&self, username: &str, now: Duration) -> FailureOutcome {
        let settings = self.settings;
        self.with_entries(|entries| {
            if entries.len() >= MAX_TRACKED {
                entries.retain(|_, f| now.saturating_sub(f.last) < settings.lock_for);
                if entries.len() >= MAX_TRACKED {
                    // Never drop a lock in force to make room.
                    entries.retain(|_, f| f.locked_until.is_some_and(|until| until > now));
                }
            }
            let entry = entries.entry(key(username)).or_insert(Failures {
                count: 0,
                last: now,
                locked_until: None,
            });
            // Forget old failures and finished locks.
            if now.saturating_sub(entry.last) >= settings.lock_for
                && entry.locked_until.is_none_or(|until| until <= now)
            {
                entry.count = 0;
                entry.locked_until = None;
            }
            entry.count = entry.count.saturating_add(1);
            entry.last = now;
            // Past the threshold with no lock in force (none yet, or the last one ran out) locks
            // again: failures during or right after a lock do not earn fresh attempts.
            let locked_now = settings.lock_after > 0
                && entry.count >= settings.lock_after
                && entry.locked_until.is_none_or(|until| until <= now);
            if locked_now {
                entry.locked_until = Some(now + settings.lock_for);
            }
            FailureOutcome {
                delay: delay_for(entry.count, &settings),
                locked_now,
            }
        })
    }

    pub fn record_success(&self, username: &str) {
        self.with_entries(|entries| {
            entries.remove(&key(username));
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> ThrottleSettings {
        ThrottleSettings {
            delay_after: 3,
            base_delay: Duration::from_millis(250),
            lock_after: 5,
            lock_for: Duration::from_secs(60),
        }
    }

    #[test]
    fn delays_start_after_the_free_failures_and_double_up_to_a_cap() {
        let s = settings();
        let delays: Vec<u64> = (1..=10)
            .map(|n| delay_for(n, &s).as_millis() as u64)
            .collect();
        assert_eq!(delays, [0, 0, 0, 250, 500, 1000, 2000, 4000, 8000, 8000]);
        assert_eq!(delay_for(u32::MAX, &s), MAX_DELAY);
    }

    const T0: Duration = Duration::from_secs(1_700_000_000);

    #[test]
    fn locks_after_the_threshold_and_success_clears() {
        let throttle = LoginThrottle::new(settings());
        for n in 1..5 {
            let outcome = throttle.record_failure("Alice", T0);
            assert!(!outcome.locked_now, "failure {n}");
            assert!(!throttle.is_locked("alice", T0));
        }
        assert!(throttle.record_failure("ALICE", T0).locked_now);
        assert!(
            throttle.is_locked("alice", T0),
            "usernames are compared case-insensitively"
        );
        assert!(!throttle.is_locked("bob", T0));
        throttle.record_success("alice");
        assert!(!throttle.is_locked("alice", T0));
    }

    #[test]
    fn a_lock_ends_after_its_time() {
        let throttle = LoginThrottle::new(ThrottleSettings {
            lock_after: 1,
            lock_for: Duration::from_millis(30),
            ..settings()
        });
        assert!(throttle.record_failure("x", T0).locked_now);
        assert!(throttle.is_locked("x", T0 + Duration::from_millis(29)));
        let later = T0 + Duration::from_millis(40);
        assert!(!throttle.is_locked("x", later));
        assert!(
            throttle.record_failure("x", later).locked_now,
            "a new round of failures locks again"
        );
    }

    #[test]
    fn failing_through_a_lock_does_not_earn_fresh_attempts() {
        let throttle = LoginThrottle::new(ThrottleSettings {
            lock_after: 2,
            lock_for: Duration::from_millis(30),
            ..settings()
        });
        throttle.record_failure("x", T0);
        assert!(throttle.record_failure("x", T0).locked_now);
        // An attacker keeps failing through the lock and past its end, never going quiet long
        // enough for the failures to be forgotten: the first failure after the lock re-locks.
        let mut now = T0;
        let mut relocked = false;
        for _ in 0..6 {
            now += Duration::from_millis(10);
            relocked |= throttle.record_failure("x", now).locked_now;
        }
        assert!(relocked, "a failure after the lock ran out must lock again");
        assert!(throttle.is_locked("x", now));
    }
}
