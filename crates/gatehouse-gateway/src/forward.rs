//! Shaping requests for the upstream and responses for the caller: hop-by-hop headers, identity
//! headers, forwarding headers, and the upgraded connections of WebSockets.

use std::net::SocketAddr;

use axum::body::Body;
use gatehouse_sdk::AccessClaims;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};

pub(crate) type UpstreamClient = Client<HttpConnector, Body>;

pub(crate) const SUBJECT: &str = "x-gatehouse-subject";
pub(crate) const CLIENT_ID: &str = "x-gatehouse-client-id";
pub(crate) const SCOPES: &str = "x-gatehouse-scopes";
pub(crate) const ROLES: &str = "x-gatehouse-roles";
pub(crate) const REQUEST_ID: &str = "x-request-id";

/// A pooled HTTP/1.1 client: connections to each upstream are kept and reused.
pub(crate) fn upstream_client() -> UpstreamClient {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    connector.set_connect_timeout(Some(std::time::Duration::from_secs(5)));
    Client::builder(TokioExecutor::new())
        .pool_idle_timeout(std::time::Duration::from_secs(60))
        .pool_max_idle_per_host(1024)
        .build(connector)
}

/// Headers that describe one connection, not the message (RFC 9110 §7.6.1).
const HOP_BY_HOP: [HeaderName; 8] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

/// The protocol a request asks to switch to (`Connection: upgrade` plus `Upgrade`).
pub(crate) fn upgrade_of(headers: &HeaderMap) -> Option<HeaderValue> {
    let asks = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|token| token.trim().eq_ignore_ascii_case("upgrade"));
    asks.then(|| headers.get(header::UPGRADE).cloned())
        .flatten()
}

/// Removes hop-by-hop headers, and any header the `Connection` header names. An upgrade being
/// passed through keeps its `Connection: upgrade` and `Upgrade`.
pub(crate) fn strip_hop_by_hop(headers: &mut HeaderMap, upgrade: Option<HeaderValue>) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|token| HeaderName::from_bytes(token.trim().as_bytes()).ok())
        .collect();
    for name in named.iter().chain(HOP_BY_HOP.iter()) {
        headers.remove(name);
    }
    if let Some(protocol) = upgrade {
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        headers.insert(header::UPGRADE, protocol);
    }
}

/// Replaces whatever identity headers came from outside with the verified ones.
pub(crate) fn set_identity(headers: &mut HeaderMap, claims: Option<&AccessClaims>) {
    let outside: Vec<HeaderName> = headers
        .keys()
        .filter(|name| name.as_str().starts_with("x-gatehouse-"))
        .cloned()
        .collect();
    for name in outside {
        headers.remove(name);
    }
    let Some(claims) = claims else {
        return;
    };
    let roles = claims.roles.as_deref().unwrap_or_default().join(" ");
    for (name, value) in [
        (SUBJECT, claims.sub.as_str()),
        (CLIENT_ID, claims.client_id.as_str()),
        (SCOPES, claims.scope.as_str()),
        (ROLES, roles.as_str()),
    ] {
        if let Ok(value) = HeaderValue::from_str(value) {
            headers.insert(HeaderName::from_static(name), value);
        }
    }
}

/// `X-Forwarded-For` (appended to), `-Proto` and `-Host` (set from this connection).
pub(crate) fn set_forwarded(headers: &mut HeaderMap, peer: SocketAddr) {
    let peer_ip = peer.ip().to_string();
    let chain = match headers.get("x-forwarded-for").and_then(|v| v.to_str().ok()) {
        Some(earlier) if !earlier.trim().is_empty() => format!("{earlier}, {peer_ip}"),
        _ => peer_ip,
    };
    if let Ok(value) = HeaderValue::from_str(&chain) {
        headers.insert("x-forwarded-for", value);
    }
    // The gateway is the edge: what a caller claims about the scheme or host is not passed on.
    headers.insert("x-forwarded-proto", HeaderValue::from_static("http"));
    match headers.get(header::HOST).cloned() {
        Some(host) => headers.insert("x-forwarded-host", host),
        None => headers.remove("x-forwarded-host"),
    };
    // The upstream is addressed by its own authority.
    headers.remove(header::HOST);
}

/// The caller's `X-Request-Id` when it is reasonable, else a new one.
pub(crate) fn request_id(headers: &HeaderMap) -> HeaderValue {
    headers
        .get(REQUEST_ID)
        .filter(|v| {
            let bytes = v.as_bytes();
            !bytes.is_empty() && bytes.len() <= 128 && bytes.iter().all(u8::is_ascii_graphic)
        })
        .cloned()
        .unwrap_or_else(|| {
            HeaderValue::from_str(&uuid::Uuid::new_v4().simple().to_string())
                .unwrap_or(HeaderValue::from_static("-"))
        })
}

/// Joins the two ends of an upgraded connection (a WebSocket) until either closes.
pub(crate) fn splice(client: hyper::upgrade::OnUpgrade, upstream: hyper::upgrade::OnUpgrade) {
    tokio::spawn(async move {
        let (Ok(client), Ok(upstream)) = tokio::join!(client, upstream) else {
            tracing::debug!("an upgrade was agreed but a side did not switch");
            return;
        };
        let mut client = TokioIo::new(client);
        let mut upstream = TokioIo::new(upstream);
        let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
    });
}

/// Whether a path could mean something else to the upstream than to the route table: dot
/// segments (`/a/../b`), encoded ones (`%2e%2e`), encoded slashes or backslashes. Such a path
/// could slip from a lenient route into a strict one on the same upstream, so it is refused.
pub(crate) fn ambiguous_path(path: &str) -> bool {
    let lower = path.to_ascii_lowercase();
    lower.contains("%2f")
        || lower.contains("%5c")
        || lower.contains('\\')
        || lower.split('/').any(|segment| {
            let decoded = segment.replace("%2e", ".");
            decoded == "." || decoded == ".."
        })
}

#[cfg(test)]
mod tests {
    use super::ambiguous_path;

    #[test]
    fn dot_segments_and_encoded_separators_are_ambiguous() {
        for path in [
            "/a/../b",
            "/a/./b",
            "/a/..",
            "/a/%2e%2e/b",
            "/a/%2E./b",
            "/a%2fb",
            "/a%5Cb",
            "/a\\b",
        ] {
            assert!(ambiguous_path(path), "{path}");
        }
        for path in ["/", "/a/b", "/a/..b", "/a/b.c", "/a/.well-known", "/a%20b"] {
            assert!(!ambiguous_path(path), "{path}");
        }
    }
}
