//! Keeps a client that revokes its own tokens from growing the audit log without bound: per
//! client, the first revocation in each minute is recorded as it happens and the rest are counted
//! and recorded as one summary event. Administrators' actions and security events are never
//! summarised; they do not go through here.

use std::collections::HashMap;
use std::sync::Mutex;

/// How long one client's revocations are summed before the sum is recorded.
pub(crate) const WINDOW_SECS: i64 = 60;

/// Clients tracked at once; past this every pending sum is handed out and the map starts over.
const MAX_CLIENTS: usize = 10_000;

/// What to record for one revocation.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct TallyOutcome {
    /// Record this revocation as its own event.
    pub record_this: bool,
    /// Revocations counted but not recorded: (client id, how many, since when).
    pub summaries: Vec<(String, u64, i64)>,
}

#[derive(Debug)]
struct Window {
    opened_at: i64,
    unrecorded: u64,
}

#[derive(Debug, Default)]
pub(crate) struct RevocationTally {
    windows: Mutex<HashMap<String, Window>>,
}

impl RevocationTally {
    pub(crate) fn count(&self, client_id: &str, now: i64) -> TallyOutcome {
        let mut windows = match self.windows.lock() {
            Ok(w) => w,
            Err(poisoned) => poisoned.into_inner(),
        };
        let mut summaries = Vec::new();
        if windows.len() >= MAX_CLIENTS && !windows.contains_key(client_id) {
            summaries = drain(&mut windows, |_| true);
        }
        let record_this = match windows.get_mut(client_id) {
            Some(window) if now - window.opened_at < WINDOW_SECS => {
                window.unrecorded += 1;
                false
            }
            Some(window) => {
                if window.unrecorded > 0 {
                    summaries.push((client_id.to_owned(), window.unrecorded, window.opened_at));
                }
                *window = Window {
                    opened_at: now,
                    unrecorded: 0,
                };
                true
            }
            None => {
                windows.insert(
                    client_id.to_owned(),
                    Window {
                        opened_at: now,
                        unrecorded: 0,
                    },
                );
                true
            }
        };
        TallyOutcome {
            record_this,
            summaries,
        }
    }

    /// The sums of windows that have closed by `now`, for the periodic flush.
    pub(crate) fn closed(&self, now: i64) -> Vec<(String, u64, i64)> {
        let mut windows = match self.windows.lock() {
            Ok(w) => w,
            Err(poisoned) => poisoned.into_inner(),
        };
        drain(&mut windows, |w| now - w.opened_at >= WINDOW_SECS)
    }
}

fn drain(
    windows: &mut HashMap<String, Window>,
    closed: impl Fn(&Window) -> bool,
) -> Vec<(String, u64, i64)> {
    let mut summaries = Vec::new();
    windows.retain(|client, window| {
        if !closed(window) {
            return true;
        }
        if window.unrecorded > 0 {
            summaries.push((client.clone(), window.unrecorded, window.opened_at));
        }
        false
    });
    summaries
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_event_per_client_per_window_and_a_sum_of_the_rest() {
        let tally = RevocationTally::default();
        assert!(tally.count("a", 100).record_this);
        for _ in 0..999 {
            let outcome = tally.count("a", 130);
            assert!(!outcome.record_this);
            assert!(outcome.summaries.is_empty());
        }
        // Another client has its own window.
        assert!(tally.count("b", 130).record_this);
        let next = tally.count("a", 100 + WINDOW_SECS);
        assert!(next.record_this);
        assert_eq!(next.summaries, [("a".to_owned(), 999, 100)]);
    }

    #[test]
    fn closed_windows_are_flushed_and_forgotten() {
        let tally = RevocationTally::default();
        tally.count("a", 100);
        tally.count("a", 101);
        tally.count("b", 150);
        assert_eq!(tally.closed(160), [("a".to_owned(), 1, 100)]);
        assert!(tally.closed(160).is_empty());
        // "b" had nothing unrecorded: closing it records nothing.
        assert!(tally.closed(1000).is_empty());
        assert!(tally.count("a", 1000).record_this);
    }
}
