//! The settings every listener shares, and the process-wide count of open connections.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// How long a client may take, and how many connections may be open.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ListenerLimits {
    /// A request head must arrive whole within this long of the connection opening or, on a
    /// kept-alive HTTP/1 connection, of the previous response. The same timer therefore closes
    /// an HTTP/1 connection left idle between requests.
    pub header_read_timeout_ms: u64,
    /// A connection on which no byte moves either way for this long is closed: an HTTP/2
    /// connection without streams, or one stalled mid-request. Upgraded connections (WebSocket)
    /// are left to the application.
    pub idle_timeout_ms: u64,
    /// Once a handler waits for the request body, the rest of it must arrive within this long;
    /// otherwise the answer is 408 and the connection is closed.
    pub body_read_timeout_ms: u64,
    /// Open connections across every listener of the process. 0: the open-files limit (raised
    /// to its hard limit at start) less `reserved_descriptors`.
    pub max_connections: u64,
    /// Files kept out of the derived `max_connections`, for outbound connections, the
    /// database, logs and files.
    pub reserved_descriptors: u64,
    /// Open connections from one address (one /64 for IPv6) across every listener. 0: a
    /// quarter of `max_connections`, at most 1,024.
    pub max_connections_per_ip: u64,
}

impl Default for ListenerLimits {
    fn default() -> Self {
        Self {
            header_read_timeout_ms: 10_000,
            idle_timeout_ms: 60_000,
            body_read_timeout_ms: 30_000,
            max_connections: 0,
            reserved_descriptors: 256,
            max_connections_per_ip: 0,
        }
    }
}

impl ListenerLimits {
    pub fn header_read_timeout(&self) -> Duration {
        Duration::from_millis(self.header_read_timeout_ms.max(1))
    }

    pub fn idle_timeout(&self) -> Duration {
        Duration::from_millis(self.idle_timeout_ms.max(1))
    }

    pub fn body_read_timeout(&self) -> Duration {
        Duration::from_millis(self.body_read_timeout_ms.max(1))
    }
}

/// Why a connection was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// The process-wide budget is spent.
    Total,
    /// The peer's address has its share.
    PerIp,
}

impl Refusal {
    pub(crate) fn label(self) -> &'static str {
        match self {
            Refusal::Total => "total",
            Refusal::PerIp => "per_ip",
        }
    }
}

/// The process's budget of open connections, shared by every listener given a clone of it
/// (and by the gateway's per-core loops): one per process, made at start.
#[derive(Clone)]
pub struct Connections {
    shared: Arc<Shared>,
}

struct Shared {
    limits: ListenerLimits,
    total: usize,
    per_ip: usize,
    open: AtomicUsize,
    by_ip: Mutex<HashMap<IpAddr, usize>>,
    /// Refusals are warned of at most once per [`WARN_EVERY`].
    warned: RateLimitedWarning,
}

impl std::fmt::Debug for Connections {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connections")
            .field("limits", &self.shared.limits)
            .field("total", &self.shared.total)
            .field("per_ip", &self.shared.per_ip)
            .field("open", &self.open())
            .finish()
    }
}

impl Default for Connections {
    fn default() -> Self {
        Self::new(ListenerLimits::default())
    }
}

impl Connections {
    /// Raises the soft open-files limit to the hard one, then derives the caps `limits` leave
    /// open from it.
    pub fn new(limits: ListenerLimits) -> Self {
        let descriptors = raise_open_files_limit();
        let total = match limits.max_connections {
            0 => derived_total(descriptors, limits.reserved_descriptors),
            n => n,
        };
        let total = usize::try_from(total).unwrap_or(usize::MAX).max(1);
        let per_ip = match limits.max_connections_per_ip {
            0 => (total / 4).clamp(1, 1024),
            n => usize::try_from(n).unwrap_or(usize::MAX).min(total),
        };
        tracing::debug!(
            open_files = descriptors,
            max_connections = total,
            max_connections_per_ip = per_ip,
            "connection limits"
        );
        Self {
            shared: Arc::new(Shared {
                limits,
                total,
                per_ip,
                open: AtomicUsize::new(0),
                by_ip: Mutex::new(HashMap::new()),
                warned: RateLimitedWarning::default(),
            }),
        }
    }

    pub fn limits(&self) -> &ListenerLimits {
        &self.shared.limits
    }

    /// The cap on open connections across the process.
    pub fn max_connections(&self) -> usize {
        self.shared.total
    }

    /// The cap on open connections from one address.
    pub fn max_connections_per_ip(&self) -> usize {
        self.shared.per_ip
    }

    /// Connections open now, across every listener sharing this budget.
    pub fn open(&self) -> usize {
        self.shared.open.load(Ordering::Relaxed)
    }

    /// Counts a new connection from `ip` in, or says which cap it is over.
    pub(crate) fn admit(&self, ip: IpAddr) -> Result<Admission, Refusal> {
        let shared = &self.shared;
        if shared.open.fetch_add(1, Ordering::AcqRel) >= shared.total {
            shared.open.fetch_sub(1, Ordering::AcqRel);
            return Err(Refusal::Total);
        }
        let key = gatehouse_proto::peer::source_address(ip);
        let mut by_ip = shared.by_ip.lock().unwrap_or_else(|e| e.into_inner());
        let count = by_ip.entry(key).or_insert(0);
        if *count >= shared.per_ip {
            drop(by_ip);
            shared.open.fetch_sub(1, Ordering::AcqRel);
            return Err(Refusal::PerIp);
        }
        *count += 1;
        Ok(Admission {
            shared: self.shared.clone(),
            key,
        })
    }

    /// True when a refusal should be logged now (at most once per [`WARN_EVERY`]).
    pub(crate) fn warn_now(&self) -> bool {
        self.shared.warned.due()
    }
}

/// One open connection's place in the budget, given back when dropped.
pub(crate) struct Admission {
    shared: Arc<Shared>,
    key: IpAddr,
}

impl Drop for Admission {
    fn drop(&mut self) {
        let mut by_ip = self.shared.by_ip.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(count) = by_ip.get_mut(&self.key) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                by_ip.remove(&self.key);
            }
        }
        drop(by_ip);
        self.shared.open.fetch_sub(1, Ordering::AcqRel);
    }
}

fn derived_total(descriptors: Option<u64>, reserved: u64) -> u64 {
    match descriptors {
        Some(n) if n > reserved.saturating_mul(2) => n - reserved,
        // A low limit: keep half for everything else.
        Some(n) => (n / 2).max(1),
        None => 1024,
    }
}

/// The soft open-files limit after raising it as far as the hard one allows.
fn raise_open_files_limit() -> Option<u64> {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(n) => Some(n),
        Err(e) => {
            tracing::warn!(error = %e, "cannot raise the open-files limit");
            rlimit::getrlimit(rlimit::Resource::NOFILE)
                .ok()
                .map(|(soft, _)| soft)
        }
    }
}

/// At most one warning of a kind in this long.
pub(crate) const WARN_EVERY: Duration = Duration::from_secs(10);

/// Says "now" at most once per [`WARN_EVERY`], so a flood cannot flood the log too.
pub(crate) struct RateLimitedWarning {
    start: Instant,
    /// Milliseconds after `start` of the next allowed warning.
    next_ms: AtomicU64,
}

impl Default for RateLimitedWarning {
    fn default() -> Self {
        Self {
            start: Instant::now(),
            next_ms: AtomicU64::new(0),
        }
    }
}

impl RateLimitedWarning {
    pub(crate) fn due(&self) -> bool {
        let now = u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX);
        let next = self.next_ms.load(Ordering::Relaxed);
        now >= next
            && self
                .next_ms
                .compare_exchange(
                    next,
                    now.saturating_add(WARN_EVERY.as_millis() as u64),
                    Ordering::AcqRel,
                    Ordering::Relaxed,
                )
                .is_ok()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn caps(total: u64, per_ip: u64) -> Connections {
        Connections::new(ListenerLimits {
            max_connections: total,
            max_connections_per_ip: per_ip,
            ..ListenerLimits::default()
        })
    }

    #[test]
    fn a_peer_gets_its_share_and_the_process_its_total() {
        let connections = caps(3, 2);
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let first = connections.admit(a).unwrap();
        let _second = connections.admit(a).unwrap();
        assert_eq!(connections.admit(a).err(), Some(Refusal::PerIp));
        let _third = connections.admit(b).unwrap();
        assert_eq!(connections.admit(b).err(), Some(Refusal::Total));
        drop(first);
        assert_eq!(connections.open(), 2);
        let _again = connections.admit(a).unwrap();
    }

    #[test]
    fn an_ipv6_slash_64_is_one_peer_and_mapped_ipv4_is_ipv4() {
        let connections = caps(10, 1);
        let _one = connections.admit("2001:db8::1".parse().unwrap()).unwrap();
        assert_eq!(
            connections.admit("2001:db8::2".parse().unwrap()).err(),
            Some(Refusal::PerIp)
        );
        let _v4 = connections.admit("10.0.0.1".parse().unwrap()).unwrap();
        assert_eq!(
            connections.admit("::ffff:10.0.0.1".parse().unwrap()).err(),
            Some(Refusal::PerIp)
        );
    }

    #[test]
    fn the_derived_budget_leaves_the_reserve() {
        assert_eq!(derived_total(Some(1024), 256), 768);
        assert_eq!(derived_total(Some(300), 256), 150);
        let connections = caps(0, 0);
        assert!(connections.max_connections() >= 1);
        assert!(connections.max_connections_per_ip() <= 1024);
    }

    #[test]
    fn warnings_are_rate_limited() {
        let warning = RateLimitedWarning::default();
        assert!(warning.due());
        assert!(!warning.due());
    }
}
