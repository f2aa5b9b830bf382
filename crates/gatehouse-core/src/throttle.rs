//! Per-username defence against password guessing: growing delays after a few failures, then a
//! temporary lock. Unknown usernames are tracked exactly like real ones, and a locked account is
//! answered like a wrong password, so neither tells anyone whether a user exists.
//!
//! Every attempt is counted as a failure *before* its password is checked (a success then clears
//! the count), so a burst of concurrent guesses gets no more checks than the lock allows.
//!
//! Each username has one count for guesses from anyone ([`Source::Untrusted`]) and one for each
//! source the person has signed in from before (a browser's device cookie, a confidential client),
//! following OWASP's device-cookie approach: strangers' guesses lock strangers out, never the
//! owner's own browser or application.
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

/// Where a password guess comes from. Each source has its own count and lock per username.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// Anyone: a browser without a valid device cookie for this person, a public client, or a
    /// client the person has never signed in through.
    Untrusted,
    /// A browser carrying a device cookie this server issued when it signed this person in
    /// (the cookie's nonce).
    Device(String),
    /// A confidential client, authenticated, through which this person has signed in before.
    Client(String),
    /// The password change of a person already signed in (their token proves as much).
    PasswordChange,
}

impl Source {
    /// How the audit log names the source of a lock.
    pub fn describe(&self) -> String {
        match self {
            Source::Untrusted => "from unrecognised sources".into(),
            Source::Device(_) => "from a browser signed in before".into(),
            Source::Client(id) => format!("through client {id}, used before"),
            Source::PasswordChange => "at the password change".into(),
        }
    }
}

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

/// Times are since the Unix epoch, from the service's clock. `count` includes attempts still
/// being checked.
struct Failures {
    count: u32,
    last: Duration,
    locked_until: Option<Duration>,
}

pub struct LoginThrottle {
    settings: ThrottleSettings,
    entries: Mutex<HashMap<String, Failures>>,
}

/// An attempt counted before its password is checked: what to do with it, and with its answer
/// if it fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub struct Attempt {
    /// A lock was in force: the attempt fails whatever the password.
    pub locked: bool,
    /// This attempt started a lock (to be audited if it fails; a success lifts it).
    pub locks: bool,
    /// How long to wait before answering, if it fails.
    pub delay: Duration,
}

/// Fixed-size keys: an attacker's megabyte-long usernames cost 64 bytes each here. The username
/// is hashed on its own first, so no username (NUL bytes and all) can spell another source's key.
pub(crate) fn key(username: &str, source: &Source) -> String {
    let user = crate::secret::hash_secret(&username.to_lowercase());
    let text = match source {
        Source::Untrusted => return user,
        Source::Device(nonce) => format!("{user}:device:{}", crate::secret::hash_secret(nonce)),
        Source::Client(id) => format!("{user}:client:{}", crate::secret::hash_secret(id)),
        Source::PasswordChange => format!("{user}:password-change"),
    };
    crate::secret::hash_secret(&text)
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

    pub fn is_locked(&self, username: &str, source: &Source, now: Duration) -> bool {
        self.with_entries(|entries| {
            entries
                .get(&key(username, source))
                .and_then(|f| f.locked_until)
                .is_some_and(|until| until > now)
        })
    }

    /// Counts an attempt as a failure before its password is checked, in one step with the look
    /// at the lock: of any number of concurrent attempts, at most `lock_after` are let through.
    pub fn reserve(&self, username: &str, source: &Source, now: Duration) -> Attempt {
        let settings = self.settings;
        self.with_entries(|entries| {
            if entries.len() >= MAX_TRACKED {
                entries.retain(|_, f| now.saturating_sub(f.last) < settings.lock_for);
                if entries.len() >= MAX_TRACKED {
                    // Never drop a lock in force to make room.
                    entries.retain(|_, f| f.locked_until.is_some_and(|until| until > now));
                }
            }
            let entry = entries.entry(key(username, source)).or_insert(Failures {
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
            let locked = entry.locked_until.is_some_and(|until| until > now);
            entry.count = entry.count.saturating_add(1);
            entry.last = now;
            // Past the threshold with no lock in force (none yet, or the last one ran out) locks
            // again: failures during or right after a lock do not earn fresh attempts. The
            // attempt that reaches the threshold is still checked; later ones are not.
            let locks = !locked && settings.lock_after > 0 && entry.count >= settings.lock_after;
            if locks {
                entry.locked_until = Some(now + settings.lock_for);
            }
            Attempt {
                locked,
                locks,
                delay: delay_for(entry.count, &settings),
            }
        })
    }

    /// The right password from `source`: its count (and any lock it started) is cleared. Other
    /// sources' counts stay: the owner signing in from their own browser does not give strangers
    /// fresh guesses.
    pub fn record_success(&self, username: &str, source: &Source) {
        self.with_entries(|entries| {
            entries.remove(&key(username, source));
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

    const ANYONE: Source = Source::Untrusted;

    #[test]
    fn no_username_spells_another_sources_key() {
        let throttle = LoginThrottle::new(settings());
        for _ in 0..5 {
            let _ = throttle.reserve("alice\0password-change", &ANYONE, T0);
            let _ = throttle.reserve("alice\0client\0shop", &ANYONE, T0);
            let _ = throttle.reserve("alice\0device\0n1", &ANYONE, T0);
        }
        assert!(throttle.is_locked("alice\0password-change", &ANYONE, T0));
        for source in [
            Source::PasswordChange,
            Source::Client("shop".into()),
            Source::Device("n1".into()),
            ANYONE,
        ] {
            assert!(!throttle.is_locked("alice", &source, T0), "{source:?}");
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
            let attempt = throttle.reserve("Alice", &ANYONE, T0);
            assert!(!attempt.locks && !attempt.locked, "failure {n}");
            assert!(!throttle.is_locked("alice", &ANYONE, T0));
        }
        let fifth = throttle.reserve("ALICE", &ANYONE, T0);
        assert!(
            fifth.locks && !fifth.locked,
            "the fifth is checked, and locks"
        );
        assert!(
            throttle.is_locked("alice", &ANYONE, T0),
            "usernames are compared case-insensitively"
        );
        assert!(throttle.reserve("alice", &ANYONE, T0).locked);
        assert!(!throttle.is_locked("bob", &ANYONE, T0));
        throttle.record_success("alice", &ANYONE);
        assert!(!throttle.is_locked("alice", &ANYONE, T0));
    }

    #[test]
    fn concurrent_attempts_get_no_more_checks_than_the_lock_allows() {
        let throttle = std::sync::Arc::new(LoginThrottle::new(settings()));
        // Every attempt is reserved before any is answered, as in a burst.
        let attempts: Vec<Attempt> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..60)
                .map(|_| scope.spawn(|| throttle.reserve("alice", &ANYONE, T0)))
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let checked = attempts.iter().filter(|a| !a.locked).count();
        assert_eq!(checked, 5, "exactly lock_after attempts are checked");
        assert_eq!(attempts.iter().filter(|a| a.locks).count(), 1);
        assert!(throttle.reserve("alice", &ANYONE, T0).locked);
    }

    #[test]
    fn each_source_has_its_own_count_and_lock() {
        let throttle = LoginThrottle::new(settings());
        for _ in 0..5 {
            let _ = throttle.reserve("alice", &ANYONE, T0);
        }
        assert!(throttle.is_locked("alice", &ANYONE, T0));
        let browser = Source::Device("n1".into());
        let client = Source::Client("shop".into());
        for source in [&browser, &client, &Source::PasswordChange] {
            assert!(!throttle.reserve("alice", source, T0).locked, "{source:?}");
        }
        // The owner's success in their own browser clears that browser's count only.
        throttle.record_success("alice", &browser);
        assert!(throttle.is_locked("alice", &ANYONE, T0));
        // A browser that guesses locks itself, not the others.
        for _ in 0..5 {
            let _ = throttle.reserve("alice", &Source::Device("n2".into()), T0);
        }
        assert!(throttle.is_locked("alice", &Source::Device("n2".into()), T0));
        assert!(!throttle.is_locked("alice", &browser, T0));
    }

    #[test]
    fn a_lock_ends_after_its_time() {
        let throttle = LoginThrottle::new(ThrottleSettings {
            lock_after: 1,
            lock_for: Duration::from_millis(30),
            ..settings()
        });
        assert!(throttle.reserve("x", &ANYONE, T0).locks);
        assert!(throttle.is_locked("x", &ANYONE, T0 + Duration::from_millis(29)));
        let later = T0 + Duration::from_millis(40);
        assert!(!throttle.is_locked("x", &ANYONE, later));
        let again = throttle.reserve("x", &ANYONE, later);
        assert!(
            again.locks && !again.locked,
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
        let _ = throttle.reserve("x", &ANYONE, T0);
        assert!(throttle.reserve("x", &ANYONE, T0).locks);
        // An attacker keeps failing through the lock and past its end, never going quiet long
        // enough for the failures to be forgotten: the first failure after the lock re-locks.
        let mut now = T0;
        let mut relocked = false;
        for _ in 0..6 {
            now += Duration::from_millis(10);
            relocked |= throttle.reserve("x", &ANYONE, now).locks;
        }
        assert!(relocked, "a failure after the lock ran out must lock again");
        assert!(throttle.is_locked("x", &ANYONE, now));
    }
}
