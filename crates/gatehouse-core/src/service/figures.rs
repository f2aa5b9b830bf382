//! The server's own figures for the operators' console: tokens issued by grant, sign-ins and
//! their failures, and the revocation feed's subscribers, over the last minutes and the last hour.
//!
//! The Prometheus metrics live in the server crate and cannot be read back; these are kept
//! beside them for people to look at. Counting costs one relaxed atomic increment on the hot
//! path; a background task samples the counters once a second into two bounded rings (one point
//! a second for two minutes, one point per ten seconds for an hour), so memory stays fixed.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use super::changes::ChangeHub;
use crate::{Clock, GrantType};

/// Points kept at one a second: two minutes.
pub const SECOND_POINTS: usize = 120;
/// Points kept at one per ten seconds: an hour.
pub const TEN_SECOND_POINTS: usize = 360;

/// What happened during one interval (counts are of that interval, not running totals).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Point {
    /// Unix seconds at the interval's end.
    pub at: i64,
    /// Tokens issued, in the order of [`GrantType::ALL`].
    pub issued: [u64; 4],
    pub sign_ins: u64,
    pub sign_in_failures: u64,
    /// Feed subscribers at the interval's end (the highest seen, for a ten-second point).
    pub subscribers: u64,
}

impl Point {
    pub fn issued_total(&self) -> u64 {
        self.issued.iter().sum()
    }

    fn absorb(&mut self, other: &Point) {
        for (mine, theirs) in self.issued.iter_mut().zip(other.issued) {
            *mine += theirs;
        }
        self.sign_ins += other.sign_ins;
        self.sign_in_failures += other.sign_in_failures;
        self.subscribers = self.subscribers.max(other.subscribers);
        self.at = other.at;
    }
}

/// A copy of the figures as they stand, oldest point first.
#[derive(Debug, Clone, Default)]
pub struct FiguresView {
    pub seconds: Vec<Point>,
    pub ten_seconds: Vec<Point>,
    /// Since this node started, in the order of [`GrantType::ALL`].
    pub issued_since_start: [u64; 4],
    pub sign_ins_since_start: u64,
    pub sign_in_failures_since_start: u64,
}

#[derive(Debug, Default)]
struct Series {
    seconds: VecDeque<Point>,
    ten_seconds: VecDeque<Point>,
    /// The totals at the last sample, to turn totals into per-interval counts.
    last: Point,
    /// The ten-second point being filled, and how many one-second points are in it.
    filling: Point,
    filled: u32,
}

/// The counters and their sampled history. One per node.
#[derive(Debug, Default)]
pub struct Figures {
    issued: [AtomicU64; 4],
    sign_ins: AtomicU64,
    sign_in_failures: AtomicU64,
    series: Mutex<Series>,
}

fn grant_index(grant: GrantType) -> usize {
    match grant {
        GrantType::AuthorizationCode => 0,
        GrantType::ClientCredentials => 1,
        GrantType::Password => 2,
        GrantType::RefreshToken => 3,
    }
}

impl Figures {
    /// A token was issued through `grant`.
    pub fn count_issued(&self, grant: GrantType) {
        self.issued[grant_index(grant)].fetch_add(1, Ordering::Relaxed);
    }

    /// A password check at sign-in passed (`true`) or failed.
    pub fn count_sign_in(&self, succeeded: bool) {
        let counter = if succeeded {
            &self.sign_ins
        } else {
            &self.sign_in_failures
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    fn totals(&self, at: i64, subscribers: u64) -> Point {
        Point {
            at,
            issued: std::array::from_fn(|i| self.issued[i].load(Ordering::Relaxed)),
            sign_ins: self.sign_ins.load(Ordering::Relaxed),
            sign_in_failures: self.sign_in_failures.load(Ordering::Relaxed),
            subscribers,
        }
    }

    /// Takes one one-second sample at `now`.
    pub fn sample(&self, now: i64, subscribers: u64) {
        let totals = self.totals(now, subscribers);
        let mut series = match self.series.lock() {
            Ok(series) => series,
            Err(poisoned) => poisoned.into_inner(),
        };
        let last = series.last;
        let point = Point {
            at: now,
            issued: std::array::from_fn(|i| totals.issued[i].saturating_sub(last.issued[i])),
            sign_ins: totals.sign_ins.saturating_sub(last.sign_ins),
            sign_in_failures: totals
                .sign_in_failures
                .saturating_sub(last.sign_in_failures),
            subscribers,
        };
        series.last = totals;
        push_bounded(&mut series.seconds, point, SECOND_POINTS);
        series.filling.absorb(&point);
        series.filled += 1;
        if series.filled == 10 {
            let full = std::mem::take(&mut series.filling);
            series.filled = 0;
            push_bounded(&mut series.ten_seconds, full, TEN_SECOND_POINTS);
        }
    }

    pub fn view(&self) -> FiguresView {
        let totals = self.totals(0, 0);
        let series = match self.series.lock() {
            Ok(series) => series,
            Err(poisoned) => poisoned.into_inner(),
        };
        FiguresView {
            seconds: series.seconds.iter().copied().collect(),
            ten_seconds: series.ten_seconds.iter().copied().collect(),
            issued_since_start: totals.issued,
            sign_ins_since_start: totals.sign_ins,
            sign_in_failures_since_start: totals.sign_in_failures,
        }
    }

    /// Starts the once-a-second sampler on the current runtime (none outside one). It holds the
    /// figures and the hub weakly and stops when they are gone.
    pub(super) fn start_sampling(
        figures: &Arc<Figures>,
        hub: &Arc<ChangeHub>,
        clock: Arc<dyn Clock>,
    ) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let figures: Weak<Figures> = Arc::downgrade(figures);
        let hub: Weak<ChangeHub> = Arc::downgrade(hub);
        runtime.spawn(async move {
            let mut every = tokio::time::interval(Duration::from_secs(1));
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            every.tick().await;
            loop {
                every.tick().await;
                let (Some(figures), Some(hub)) = (figures.upgrade(), hub.upgrade()) else {
                    return;
                };
                figures.sample(clock.now(), hub.subscribers() as u64);
            }
        });
    }
}

fn push_bounded(ring: &mut VecDeque<Point>, point: Point, capacity: usize) {
    if ring.len() == capacity {
        ring.pop_front();
    }
    ring.push_back(point);
}

impl super::AuthService {
    /// This node's figures, for the console's dashboard.
    pub fn figures(&self) -> &Figures {
        &self.figures
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_count_what_happened_in_each_interval() {
        let figures = Figures::default();
        figures.count_issued(GrantType::ClientCredentials);
        figures.count_issued(GrantType::ClientCredentials);
        figures.count_sign_in(false);
        figures.sample(100, 3);
        figures.count_issued(GrantType::Password);
        figures.count_sign_in(true);
        figures.sample(101, 2);
        let view = figures.view();
        assert_eq!(view.seconds.len(), 2);
        assert_eq!(view.seconds[0].issued, [0, 2, 0, 0]);
        assert_eq!(view.seconds[0].sign_in_failures, 1);
        assert_eq!(view.seconds[0].subscribers, 3);
        assert_eq!(view.seconds[1].issued, [0, 0, 1, 0]);
        assert_eq!(view.seconds[1].sign_ins, 1);
        assert_eq!(view.seconds[1].sign_in_failures, 0);
        assert_eq!(view.issued_since_start, [0, 2, 1, 0]);
        assert!(view.ten_seconds.is_empty());
    }

    #[test]
    fn the_rings_are_bounded_and_ten_seconds_add_up() {
        let figures = Figures::default();
        for second in 0..(SECOND_POINTS as i64 + 30) {
            figures.count_issued(GrantType::RefreshToken);
            figures.sample(second, (second % 4) as u64);
        }
        let view = figures.view();
        assert_eq!(view.seconds.len(), SECOND_POINTS);
        assert_eq!(view.seconds.last().map(|p| p.at), Some(149));
        assert_eq!(view.ten_seconds.len(), 15);
        for point in &view.ten_seconds {
            assert_eq!(point.issued[3], 10);
            assert_eq!(point.subscribers, 3);
        }
    }
}
