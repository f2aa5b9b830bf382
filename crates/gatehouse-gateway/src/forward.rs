//! Shaping requests for the upstream and responses for the caller: the path, hop-by-hop
//! headers, identity headers, forwarding headers, and the upgraded connections of WebSockets.

use std::borrow::Cow;
use std::net::SocketAddr;

use axum::body::Body;
use gatehouse_sdk::AccessClaims;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::cell::RefCell;
use std::sync::{Arc, Weak};

pub(crate) type UpstreamClient = Client<HttpsConnector<HttpConnector>, Body>;

pub(crate) const SUBJECT: &str = "x-gatehouse-subject";
pub(crate) const CLIENT_ID: &str = "x-gatehouse-client-id";
pub(crate) const SCOPES: &str = "x-gatehouse-scopes";
pub(crate) const ROLES: &str = "x-gatehouse-roles";
pub(crate) const REQUEST_ID: &str = "x-request-id";
/// What an upstream is told about the caller.
pub(crate) const IDENTITY_HEADERS: [&str; 4] = [SUBJECT, CLIENT_ID, SCOPES, ROLES];

thread_local! {
    /// Each event loop keeps its own pools: a connection belongs to the loop that opened it.
    /// One pool per gateway (by its TLS settings), so gateways in one process never share one.
    static UPSTREAM: RefCell<Vec<(Weak<rustls::ClientConfig>, UpstreamClient)>> =
        const { RefCell::new(Vec::new()) };
}

/// This thread's upstream client for a gateway whose `https://` upstreams are checked with
/// `tls` (a cheap handle on its pool).
pub(crate) fn upstream(tls: &Arc<rustls::ClientConfig>) -> UpstreamClient {
    UPSTREAM.with(|pools| {
        let mut pools = pools.borrow_mut();
        if let Some((_, client)) = pools
            .iter()
            .find(|(config, _)| std::ptr::eq(config.as_ptr(), Arc::as_ptr(tls)))
        {
            return client.clone();
        }
        pools.retain(|(config, _)| config.strong_count() > 0);
        let client = upstream_client(tls.clone());
        pools.push((Arc::downgrade(tls), client.clone()));
        client
    })
}

/// A pooled HTTP/1.1 client, plain or TLS by the upstream's scheme: connections to each
/// upstream are kept and reused.
fn upstream_client(tls: Arc<rustls::ClientConfig>) -> UpstreamClient {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    connector.set_connect_timeout(Some(std::time::Duration::from_secs(5)));
    connector.enforce_http(false);
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config((*tls).clone())
        .https_or_http()
        .enable_http1()
        .wrap_connector(connector);
    Client::builder(TokioExecutor::new())
        .pool_idle_timeout(std::time::Duration::from_secs(60))
        .pool_max_idle_per_host(1024)
        .build(connector)
}

/// Why the trust for `https://` upstreams could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamTlsError {
    #[error("cannot read the CA file: {0}")]
    CaFile(#[from] gatehouse_listen::TlsError),
    #[error("no certificate in the CA file {0} could be used: {1}")]
    Unusable(String, String),
    #[error("TLS setup failed: {0}")]
    Setup(#[from] rustls::Error),
}

/// The TLS client settings for `https://` upstreams: the system's trusted roots, and the
/// certificates in `ca_file` (PEM) besides, for a private CA.
pub fn upstream_tls(
    ca_file: Option<&std::path::Path>,
) -> Result<Arc<rustls::ClientConfig>, UpstreamTlsError> {
    let mut roots = rustls::RootCertStore::empty();
    let system = rustls_native_certs::load_native_certs();
    if roots.add_parsable_certificates(system.certs).0 == 0 && ca_file.is_none() {
        tracing::warn!("no system root certificates found: https:// upstreams will be refused");
    }
    if let Some(path) = ca_file {
        for certificate in gatehouse_listen::read_certificates(path)? {
            roots.add(certificate).map_err(|e| {
                UpstreamTlsError::Unusable(path.display().to_string(), e.to_string())
            })?;
        }
    }
    // No ALPN here: the connector offers HTTP/1.1, which the pool speaks (as nginx does).
    let config = rustls::ClientConfig::builder_with_provider(gatehouse_listen::crypto_provider())
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// Headers that describe one connection, not the message (RFC 9110 §7.6.1), and
/// `HTTP2-Settings`, which only means something with an h2c upgrade.
const HOP_BY_HOP: [HeaderName; 9] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("http2-settings"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

/// The WebSocket upgrade a request or response asks for (`Connection: upgrade` and
/// `Upgrade: websocket`). No other protocol is passed through: after a switch the gateway only
/// copies bytes, so an upgrade to, say, h2c would carry requests that no route ever checked.
pub(crate) fn websocket_upgrade(headers: &HeaderMap) -> Option<HeaderValue> {
    let asks = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|token| token.trim().eq_ignore_ascii_case("upgrade"));
    let protocol = headers.get(header::UPGRADE)?;
    (asks && protocol.as_bytes().eq_ignore_ascii_case(b"websocket")).then(|| protocol.clone())
}

/// Removes hop-by-hop headers, and any header the `Connection` header names. A WebSocket
/// upgrade being passed through keeps its `Connection: upgrade` and `Upgrade`.
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

/// Keeps only the cookies named in `allowed` in a request's `Cookie` headers (RFC 6265 §5.4:
/// `name=value` pairs separated by `; `).
pub(crate) fn keep_cookies(headers: &mut HeaderMap, allowed: &[String]) {
    if !headers.contains_key(header::COOKIE) {
        return;
    }
    let kept: Vec<String> = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .map(str::trim)
        .filter(|pair| {
            let name = pair.split_once('=').map_or(*pair, |(name, _)| name);
            allowed.iter().any(|a| a == name)
        })
        .map(str::to_owned)
        .collect();
    headers.remove(header::COOKIE);
    if kept.is_empty() {
        return;
    }
    if let Ok(value) = HeaderValue::from_str(&kept.join("; ")) {
        headers.insert(header::COOKIE, value);
    }
}

/// Keeps only the `Set-Cookie` headers of a response that set a cookie named in `allowed`.
pub(crate) fn keep_set_cookies(headers: &mut HeaderMap, allowed: &[String]) {
    if !headers.contains_key(header::SET_COOKIE) {
        return;
    }
    let kept: Vec<HeaderValue> = headers
        .get_all(header::SET_COOKIE)
        .iter()
        .filter(|value| {
            let name = value
                .to_str()
                .ok()
                .and_then(|v| v.split_once('='))
                .map(|(name, _)| name.trim());
            name.is_some_and(|name| allowed.iter().any(|a| a == name))
        })
        .cloned()
        .collect();
    headers.remove(header::SET_COOKIE);
    for value in kept {
        headers.append(header::SET_COOKIE, value);
    }
}

/// Replaces whatever identity headers came from outside with the verified ones. `Err` when a
/// value cannot be a header: the request must not go on without its identity.
pub(crate) fn set_identity(
    headers: &mut HeaderMap,
    claims: Option<&AccessClaims>,
) -> Result<(), ()> {
    let from_outside = |name: &HeaderName| name.as_str().starts_with("x-gatehouse-");
    if headers.keys().any(from_outside) {
        let outside: Vec<HeaderName> = headers
            .keys()
            .filter(|n| from_outside(n))
            .cloned()
            .collect();
        for name in outside {
            headers.remove(name);
        }
    }
    let Some(claims) = claims else {
        return Ok(());
    };
    let roles = claims.roles.as_deref().unwrap_or_default().join(" ");
    for (name, value) in [
        (SUBJECT, claims.sub.as_str()),
        (CLIENT_ID, claims.client_id.as_str()),
        (SCOPES, claims.scope.as_str()),
        (ROLES, roles.as_str()),
    ] {
        let value = HeaderValue::from_str(value).map_err(|_| ())?;
        headers.insert(HeaderName::from_static(name), value);
    }
    Ok(())
}

/// What callers may claim about the connection, the request or themselves, in the names
/// frameworks and proxies read: never passed on. Rack reads `X-Forwarded-Ssl` before
/// `X-Forwarded-Proto`; a method override would run DELETE where the route admitted GET; a path
/// override would reach what no route admitted; identity headers are the proxy's to set.
const CALLER_CLAIMS: [HeaderName; 23] = [
    HeaderName::from_static("x-real-ip"),
    HeaderName::from_static("x-forwarded-ssl"),
    HeaderName::from_static("x-forwarded-scheme"),
    HeaderName::from_static("x-forwarded-port"),
    HeaderName::from_static("x-forwarded-prefix"),
    HeaderName::from_static("x-forwarded-server"),
    HeaderName::from_static("front-end-https"),
    HeaderName::from_static("x-url-scheme"),
    HeaderName::from_static("x-http-method-override"),
    HeaderName::from_static("x-http-method"),
    HeaderName::from_static("x-method-override"),
    HeaderName::from_static("x-original-url"),
    HeaderName::from_static("x-rewrite-url"),
    HeaderName::from_static("x-forwarded-uri"),
    HeaderName::from_static("x-original-uri"),
    HeaderName::from_static("x-original-method"),
    HeaderName::from_static("x-forwarded-method"),
    HeaderName::from_static("x-forwarded-user"),
    HeaderName::from_static("remote-user"),
    HeaderName::from_static("x-auth-request-user"),
    HeaderName::from_static("x-auth-request-email"),
    HeaderName::from_static("x-forwarded-client-cert"),
    HeaderName::from_static("ssl-client-cert"),
];

/// `X-Forwarded-For`, `-Proto` and `-Host`, from this connection. The gateway is the edge, so
/// what a caller claims about addresses and schemes (`Forwarded`, `X-Forwarded-*`,
/// `X-Real-IP`, ...) is dropped. `authority` is the request's own (HTTP/2 has no `Host`).
pub(crate) fn set_forwarded(
    headers: &mut HeaderMap,
    peer: SocketAddr,
    over_tls: bool,
    authority: Option<&http::uri::Authority>,
) {
    // One pass over the request's few headers, not a lookup per name: most requests carry none.
    let is_claim = |name: &HeaderName| *name == header::FORWARDED || CALLER_CLAIMS.contains(name);
    if headers.keys().any(is_claim) {
        let claimed: Vec<HeaderName> = headers.keys().filter(|n| is_claim(n)).cloned().collect();
        for name in claimed {
            headers.remove(name);
        }
    }
    if let Ok(value) = HeaderValue::from_str(&peer.ip().to_string()) {
        headers.insert("x-forwarded-for", value);
    }
    let proto = if over_tls { "https" } else { "http" };
    headers.insert("x-forwarded-proto", HeaderValue::from_static(proto));
    let host = headers
        .get(header::HOST)
        .cloned()
        .or_else(|| authority.and_then(|authority| HeaderValue::from_str(authority.as_str()).ok()));
    match host {
        Some(host) => headers.insert("x-forwarded-host", host),
        None => headers.remove("x-forwarded-host"),
    };
    // The upstream is addressed by its own authority.
    headers.remove(header::HOST);
}

/// The request's id: the listener has set it on every request (the caller's when reasonable),
/// so it is read, not checked again.
pub(crate) fn request_id(headers: &HeaderMap) -> HeaderValue {
    match headers.get(REQUEST_ID) {
        Some(id) => id.clone(),
        None => gatehouse_listen::request_id(headers),
    }
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

/// The path as the route table and the upstream will both see it, or `None` when it could mean
/// different things to them. Percent-encoded unreserved characters are decoded (`%61` → `a`),
/// other escapes are upper-cased, and repeated slashes collapse. Dot segments (plain or encoded),
/// encoded slashes or backslashes, backslashes and `;` are refused: each has been used to slip
/// from a lenient route into a strict one on the same upstream.
pub(crate) fn normalize_path(raw: &str) -> Option<Cow<'_, str>> {
    let rest = raw.strip_prefix('/')?;
    if raw.contains(['\\', ';']) {
        return None;
    }
    // Most paths need nothing done: no escapes, no empty or dot segments.
    if !raw.contains(['%', '.']) && !raw.contains("//") {
        return Some(Cow::Borrowed(raw));
    }
    let segments: Vec<&str> = rest.split('/').collect();
    let last = segments.len() - 1;
    let mut out = String::with_capacity(raw.len());
    for (i, segment) in segments.iter().enumerate() {
        if segment.is_empty() && i != last {
            continue;
        }
        let decoded = decode_unreserved(segment)?;
        if decoded == "." || decoded == ".." {
            return None;
        }
        out.push('/');
        out.push_str(&decoded);
    }
    if out.is_empty() {
        out.push('/');
    }
    Some(Cow::Owned(out))
}

fn decode_unreserved(segment: &str) -> Option<String> {
    let bytes = segment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != b'%' {
            out.push(bytes[i]);
            i += 1;
            continue;
        }
        let hex = segment.get(i + 1..i + 3)?;
        let byte = u8::from_str_radix(hex, 16).ok()?;
        match byte {
            b'/' | b'\\' => return None,
            b if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') => out.push(b),
            _ => {
                out.push(b'%');
                out.extend_from_slice(hex.to_ascii_uppercase().as_bytes());
            }
        }
        i += 3;
    }
    // Raw bytes are kept as they came (the path is UTF-8 already); only escapes change.
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::{keep_cookies, keep_set_cookies, normalize_path};
    use http::header::{COOKIE, HeaderMap, HeaderValue, SET_COOKIE};

    #[test]
    fn only_the_routes_own_cookies_pass_either_way() {
        let allowed = vec!["shop_session".to_owned()];
        let mut request = HeaderMap::new();
        request.append(
            COOKIE,
            HeaderValue::from_static("gatehouse_session=s3cret; shop_session=abc"),
        );
        request.append(COOKIE, HeaderValue::from_static("other=1"));
        keep_cookies(&mut request, &allowed);
        assert_eq!(request.get_all(COOKIE).iter().count(), 1);
        assert_eq!(request[COOKIE], "shop_session=abc");
        keep_cookies(&mut request, &[]);
        assert!(request.get(COOKIE).is_none());

        let mut response = HeaderMap::new();
        response.append(
            SET_COOKIE,
            HeaderValue::from_static("shop_session=x; Path=/"),
        );
        response.append(
            SET_COOKIE,
            HeaderValue::from_static("gatehouse_session=y; Path=/"),
        );
        keep_set_cookies(&mut response, &allowed);
        let kept: Vec<_> = response.get_all(SET_COOKIE).iter().collect();
        assert_eq!(kept, ["shop_session=x; Path=/"]);
    }

    #[test]
    fn paths_are_normalised_or_refused() {
        for (raw, normal) in [
            ("/", "/"),
            ("/a/b", "/a/b"),
            ("/a//b", "/a/b"),
            ("//a", "/a"),
            ("/a/", "/a/"),
            ("/api/%61dmin", "/api/admin"),
            ("/a%7eb", "/a~b"),
            ("/a%20b", "/a%20b"),
            ("/a%c3%a9", "/a%C3%A9"),
            ("/a/..b", "/a/..b"),
            ("/a/.well-known", "/a/.well-known"),
            ("/files/résumé.pdf", "/files/résumé.pdf"),
            (
                "/files//r%C3%A9sum%c3%a9.pdf",
                "/files/r%C3%A9sum%C3%A9.pdf",
            ),
        ] {
            assert_eq!(normalize_path(raw).as_deref(), Some(normal), "{raw}");
        }
        for raw in [
            "/a/../b",
            "/a/./b",
            "/a/..",
            "/a/%2e%2e/b",
            "/a/%2E./b",
            "/a%2fb",
            "/a%5Cb",
            "/a\\b",
            "/pub/..;/admin",
            "/a;b",
            "/a%zz",
            "/a%2",
            "a/b",
        ] {
            assert_eq!(normalize_path(raw), None, "{raw}");
        }
    }
}
