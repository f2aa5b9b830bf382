//! Forward-auth: the gateway's checks for a proxy that forwards the request itself (nginx
//! `auth_request`, Caddy `forward_auth`, Traefik `forwardAuth`, Envoy's HTTP `ext_authz`).
//!
//! The proxy asks `/_gatehouse/check` about a request it holds, naming it in headers
//! (`X-Forwarded-Method` and `X-Forwarded-Uri`, or nginx's customary `X-Original-Method` and
//! `X-Original-URI`), or, as Envoy does, by sending the request's own method and path under
//! `/_gatehouse/check/`. The answer is the gateway's own decision for that request, with the same
//! routes, limits, token checks, policies and revocations: `200` with the identity headers the
//! upstream would get, or the refusal the gateway would give (401/403 with the RFC 6750
//! challenge, 404 for no route, 405, 429). Nothing is forwarded.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;

use axum::extract::{ConnectInfo, Request, State};
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, Method, StatusCode, Uri};

use crate::proxy::{Caller, Exchange, Refusal, admit, finish, route_for, unforwardable_identity};
use crate::{Gateway, forward};

/// Where Envoy's `path_prefix` points: the original path follows it.
pub(crate) const CHECK_PATH: &str = "/_gatehouse/check";

/// The request a proxy asks about.
struct Original {
    method: Method,
    uri: Uri,
}

pub(crate) async fn check(
    State(gateway): State<Arc<Gateway>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    request: Request,
) -> Response {
    let started = Instant::now();
    let headers = request.headers();
    let request_id = forward::request_id(headers);
    let peer_ip = peer.ip().to_canonical();
    let original = match gateway
        .forward_auth_from
        .iter()
        .any(|n| n.contains(&peer_ip))
    {
        true => original_request(request.method(), request.uri(), headers),
        // Anyone else could name any client in X-Forwarded-For and spend its limits.
        false => Err(Refusal::new(
            StatusCode::FORBIDDEN,
            "check_not_allowed",
            "forward-auth checks are answered only for the proxies in forward_auth_from",
        )),
    };
    let (method, path) = match &original {
        Ok(original) => (original.method.clone(), original.uri.path().to_owned()),
        Err(_) => (request.method().clone(), request.uri().path().to_owned()),
    };
    let (route, outcome) = match original {
        Err(refusal) => (None, Err((refusal, None))),
        Ok(original) => match route_for(&gateway, original.uri.path()) {
            Err(refusal) => (None, Err((refusal, None))),
            Ok((route, _)) => {
                let client = client_address(headers, peer);
                let outcome = admit(&gateway, &route, &original.method, headers, client)
                    .await
                    .and_then(allowed);
                (Some(route), outcome)
            }
        },
    };
    finish(
        &gateway,
        Exchange {
            started,
            request_id,
            peer,
            method: &method,
            path: &path,
            route,
            kind: "check",
        },
        outcome,
    )
}

/// `200` with the identity headers the upstream is to be given. All four are always there,
/// empty for an anonymous request on an open route, so that a proxy copying them replaces
/// whatever the caller sent under those names rather than letting it through.
fn allowed(caller: Caller) -> Result<(Response, Caller), (Refusal, Caller)> {
    let mut response = StatusCode::OK.into_response();
    let headers = response.headers_mut();
    for name in forward::IDENTITY_HEADERS {
        headers.insert(name, http::HeaderValue::from_static(""));
    }
    match forward::set_identity(headers, caller.as_deref().map(|c| &c.claims)) {
        Ok(()) => Ok((response, caller)),
        Err(()) => Err((unforwardable_identity(), caller)),
    }
}

fn original_request(method: &Method, uri: &Uri, headers: &HeaderMap) -> Result<Original, Refusal> {
    // Envoy: the original method and path, under the check path.
    if let Some(rest) = uri.path().strip_prefix(CHECK_PATH)
        && rest.starts_with('/')
    {
        let original = match uri.query() {
            Some(query) => format!("{rest}?{query}"),
            None => rest.to_owned(),
        };
        return Ok(Original {
            method: method.clone(),
            uri: origin_form(&original)?,
        });
    }
    let named = |names: [&str; 2]| -> Result<Option<&str>, Refusal> {
        let mut values = names.iter().flat_map(|name| headers.get_all(*name).iter());
        let Some(value) = values.next() else {
            return Ok(None);
        };
        if values.next().is_some() {
            return Err(bad_request("the original request is named more than once"));
        }
        value
            .to_str()
            .map(Some)
            .map_err(|_| bad_request("the original request's headers are not readable"))
    };
    let method = named(["x-forwarded-method", "x-original-method"])?;
    let uri = named(["x-forwarded-uri", "x-original-uri"])?;
    let (Some(method), Some(uri)) = (method, uri) else {
        return Err(bad_request(
            "name the request to check: X-Forwarded-Method and X-Forwarded-Uri (or \
             X-Original-Method and X-Original-URI), or send it under /_gatehouse/check/",
        ));
    };
    let method = Method::from_bytes(method.trim().as_bytes())
        .map_err(|_| bad_request("the original method is not a method"))?;
    Ok(Original {
        method,
        uri: origin_form(uri.trim())?,
    })
}

/// A path with an optional query, as in a request line (RFC 9112 §3.2.1).
fn origin_form(text: &str) -> Result<Uri, Refusal> {
    // A request line has no fragment; one here could hide the path the upstream will see.
    if text.contains('#') {
        return Err(bad_request("the original URI has a fragment"));
    }
    let uri: Uri = text
        .parse()
        .map_err(|_| bad_request("the original URI is not a path"))?;
    if uri.scheme().is_some() || uri.authority().is_some() || !uri.path().starts_with('/') {
        return Err(bad_request(
            "the original URI must be a path such as /api/orders?page=2",
        ));
    }
    Ok(uri)
}

/// The client a trusted proxy is asking for, for limits by address: the last `X-Forwarded-For`
/// entry, which the proxy itself added; else the proxy's own address.
fn client_address(headers: &HeaderMap, peer: SocketAddr) -> IpAddr {
    headers
        .get_all("x-forwarded-for")
        .iter()
        .next_back()
        .and_then(|value| value.to_str().ok())
        .and_then(|list| list.rsplit(',').next())
        .and_then(|last| last.trim().parse().ok())
        .unwrap_or(peer.ip())
}

fn bad_request(detail: &str) -> Refusal {
    Refusal::new(StatusCode::BAD_REQUEST, "bad_check", detail)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, value.parse().unwrap());
        }
        map
    }

    fn named(pairs: &[(&'static str, &'static str)]) -> Result<(Method, String), u16> {
        let uri: Uri = CHECK_PATH.parse().unwrap();
        original_request(&Method::GET, &uri, &headers(pairs))
            .map(|o| (o.method, o.uri.to_string()))
            .map_err(|r| r.response.status().as_u16())
    }

    #[test]
    fn the_original_request_is_read_from_each_proxys_headers() {
        assert_eq!(
            named(&[
                ("x-forwarded-method", "POST"),
                ("x-forwarded-uri", "/api/orders?x=1")
            ]),
            Ok((Method::POST, "/api/orders?x=1".into()))
        );
        assert_eq!(
            named(&[
                ("x-original-method", "DELETE"),
                ("x-original-uri", "/api/posts/7")
            ]),
            Ok((Method::DELETE, "/api/posts/7".into()))
        );
    }

    #[test]
    fn envoy_sends_the_original_under_the_check_path() {
        let uri: Uri = "/_gatehouse/check/api/fx/rates?base=EUR".parse().unwrap();
        let Ok(original) = original_request(&Method::PUT, &uri, &HeaderMap::new()) else {
            panic!("refused");
        };
        assert_eq!(original.method, Method::PUT);
        assert_eq!(original.uri.to_string(), "/api/fx/rates?base=EUR");
        // A look-alike prefix is not the check path.
        let uri: Uri = "/_gatehouse/checkout".parse().unwrap();
        assert!(original_request(&Method::GET, &uri, &HeaderMap::new()).is_err());
    }

    #[test]
    fn a_missing_repeated_or_odd_original_is_a_400() {
        assert_eq!(named(&[]), Err(400));
        assert_eq!(named(&[("x-forwarded-method", "GET")]), Err(400));
        assert_eq!(
            named(&[
                ("x-forwarded-method", "GET"),
                ("x-original-method", "POST"),
                ("x-forwarded-uri", "/a"),
            ]),
            Err(400)
        );
        for uri in ["http://elsewhere/a", "a/b", "*", "/open#/../orders/1"] {
            assert_eq!(
                named(&[("x-forwarded-method", "GET"), ("x-forwarded-uri", uri)]),
                Err(400),
                "{uri}"
            );
        }
        assert_eq!(
            named(&[("x-forwarded-method", "G E T"), ("x-forwarded-uri", "/a")]),
            Err(400)
        );
    }

    #[test]
    fn limits_count_the_client_the_proxy_names() {
        let peer: SocketAddr = "10.0.0.1:5000".parse().unwrap();
        let from = |pairs| client_address(&headers(pairs), peer).to_string();
        assert_eq!(from(&[]), "10.0.0.1");
        assert_eq!(
            from(&[("x-forwarded-for", "203.0.113.9, 198.51.100.4")]),
            "198.51.100.4"
        );
        assert_eq!(from(&[("x-forwarded-for", "not an address")]), "10.0.0.1");
    }
}
