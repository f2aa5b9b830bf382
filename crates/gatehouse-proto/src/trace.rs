//! W3C Trace Context (`traceparent`): which trace a request belongs to and which span called it.

/// The `traceparent` header's name.
pub const TRACEPARENT: &str = "traceparent";

/// A parsed `traceparent` (version `00`): trace id, the calling span's id, and the flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceParent {
    pub trace_id: [u8; 16],
    pub parent_id: [u8; 8],
    pub flags: u8,
}

impl TraceParent {
    /// The value as a caller sent it, or `None` when it is not a valid one (W3C Trace Context
    /// §3.2): then the receiver starts a new trace. A version after `00` is read by its `00`
    /// fields, as the specification asks; `ff` is invalid.
    pub fn parse(value: &str) -> Option<Self> {
        let bytes = value.as_bytes();
        let version = hex_bytes::<1>(bytes.get(0..2)?)?[0];
        let exact = bytes.len() == 55;
        let longer = bytes.len() > 55 && bytes.get(55) == Some(&b'-');
        if version == 0xff || !(exact || (version > 0 && longer)) {
            return None;
        }
        if bytes.get(2) != Some(&b'-')
            || bytes.get(35) != Some(&b'-')
            || bytes.get(52) != Some(&b'-')
        {
            return None;
        }
        let trace_id = hex_bytes::<16>(bytes.get(3..35)?)?;
        let parent_id = hex_bytes::<8>(bytes.get(36..52)?)?;
        let flags = hex_bytes::<1>(bytes.get(53..55)?)?[0];
        if trace_id == [0; 16] || parent_id == [0; 8] {
            return None;
        }
        Some(Self {
            trace_id,
            parent_id,
            flags,
        })
    }

    /// The header value, version `00`.
    pub fn to_header(&self) -> String {
        // "00-", 32 digits, "-", 16 digits, "-", 2 digits: written in place, one allocation
        // (the gateway writes one for every traced request it forwards).
        let mut out = [b'-'; 55];
        out[..2].copy_from_slice(b"00");
        write_hex(&self.trace_id, &mut out[3..35]);
        write_hex(&self.parent_id, &mut out[36..52]);
        write_hex(&[self.flags], &mut out[53..]);
        String::from_utf8_lossy(&out).into_owned()
    }

    /// The trace id as 32 lowercase hex digits, as logs and tracing back ends show it.
    pub fn trace_id_hex(&self) -> String {
        hex(&self.trace_id)
    }

    /// Whether the caller asked for the trace to be recorded (the `sampled` flag).
    pub fn sampled(&self) -> bool {
        self.flags & 1 == 1
    }
}

/// Lowercase hex digits only (the specification forbids uppercase).
fn hex_bytes<const N: usize>(digits: &[u8]) -> Option<[u8; N]> {
    if digits.len() != N * 2 {
        return None;
    }
    let value = |d: u8| match d {
        b'0'..=b'9' => Some(d - b'0'),
        b'a'..=b'f' => Some(d - b'a' + 10),
        _ => None,
    };
    let mut out = [0u8; N];
    for (i, pair) in digits.chunks_exact(2).enumerate() {
        out[i] = value(pair[0])? << 4 | value(pair[1])?;
    }
    Some(out)
}

pub fn hex(bytes: &[u8]) -> String {
    let mut out = vec![0u8; bytes.len() * 2];
    write_hex(bytes, &mut out);
    String::from_utf8(out).unwrap_or_default()
}

/// Lowercase hex of `bytes` into `out` (twice as long), without allocating: for ids written on
/// every request.
pub fn write_hex<'a>(bytes: &[u8], out: &'a mut [u8]) -> &'a str {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for (pair, byte) in out.chunks_exact_mut(2).zip(bytes) {
        pair[0] = DIGITS[usize::from(byte >> 4)];
        pair[1] = DIGITS[usize::from(byte & 0x0f)];
    }
    std::str::from_utf8(out).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_is_lowercase_and_written_in_place() {
        let mut out = [0u8; 6];
        assert_eq!(write_hex(&[0x00, 0xab, 0x7f], &mut out), "00ab7f");
        assert_eq!(hex(&[0xde, 0xad, 0x01]), "dead01");
    }

    const EXAMPLE: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn the_specification_example_round_trips() {
        let parsed = TraceParent::parse(EXAMPLE).unwrap();
        assert_eq!(parsed.trace_id_hex(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(hex(&parsed.parent_id), "00f067aa0ba902b7");
        assert!(parsed.sampled());
        assert_eq!(parsed.to_header(), EXAMPLE);
    }

    #[test]
    fn invalid_values_start_a_new_trace() {
        for bad in [
            "",
            "00",
            &EXAMPLE.to_uppercase(),
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0",
            "0é-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        ] {
            assert_eq!(TraceParent::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn a_later_version_is_read_by_its_first_fields() {
        let later = "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00-more";
        let parsed = TraceParent::parse(later).unwrap();
        assert!(!parsed.sampled());
        assert_eq!(
            parsed.to_header(),
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00"
        );
    }
}
