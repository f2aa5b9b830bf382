//! Which client a network address stands for, when limits and shares count per client.

use std::net::IpAddr;

/// The address limits and shares count by. IPv4 counts alone, also when it arrives IPv4-mapped
/// on a dual-stack listener; IPv6 by its /64, which one holder usually has whole (RFC 6177).
pub fn source_address(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => IpAddr::V6((u128::from(v6) & !((1u128 << 64) - 1)).into()),
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn one_ipv6_holder_is_its_slash_64_and_ipv4_counts_alone() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert_eq!(
            source_address(ip("2001:db8:1:2:aaaa::1")),
            source_address(ip("2001:db8:1:2:bbbb::2"))
        );
        assert_ne!(
            source_address(ip("2001:db8:1:2::1")),
            source_address(ip("2001:db8:1:3::1"))
        );
        assert_eq!(source_address(ip("192.0.2.7")), ip("192.0.2.7"));
        // Mapped IPv4 from a dual-stack listener: each address on its own, not all of IPv4
        // folded into one /64.
        assert_eq!(source_address(ip("::ffff:192.0.2.7")), ip("192.0.2.7"));
        assert_ne!(
            source_address(ip("::ffff:192.0.2.7")),
            source_address(ip("::ffff:192.0.2.8"))
        );
    }
}
