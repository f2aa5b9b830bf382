//! What every page Gatehouse serves shares, wherever it runs: the hosted sign-in pages and the
//! operators' console on the authorization server, and the reference applications' pages (the
//! shop, the machine client's status page). One stylesheet, one set of security headers, cookies
//! set one way, the same-origin check for form posts, and strict form reading.
//!
//! It knows HTTP and browsers only: nothing of tokens, users or storage.

pub mod docs;

use std::collections::HashMap;
use std::marker::PhantomData;

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::header::{
    CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, COOKIE, REFERRER_POLICY,
    X_CONTENT_TYPE_OPTIONS, X_FRAME_OPTIONS,
};
use axum::http::{HeaderMap, HeaderName, HeaderValue};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use gatehouse_proto::web::{JSON_LIMIT, media_type};

/// The one stylesheet, served by each server at [`STYLESHEET_PATH`].
pub const STYLESHEET: &str = include_str!("../assets/gatehouse.css");
pub const STYLESHEET_PATH: &str = "/assets/gatehouse.css";

/// The policy of every page: nothing from elsewhere, no inline script, never framed.
pub const STRICT_CSP: &str =
    "default-src 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'";

/// `Sec-Fetch-Site`, set by browsers themselves: where a request came from.
pub const SEC_FETCH_SITE: HeaderName = HeaderName::from_static("sec-fetch-site");

/// The stylesheet as a response, cacheable for an hour.
pub async fn stylesheet() -> Response {
    (
        [
            (CONTENT_TYPE, "text/css; charset=utf-8"),
            (CACHE_CONTROL, "public, max-age=3600"),
        ],
        STYLESHEET,
    )
        .into_response()
}

/// Headers for every page: no framing, no script or style from anywhere but here, no sniffing,
/// no referrer (an authorization code never leaks through one), and never cached unless the
/// handler said otherwise (the stylesheet, the scripts).
pub async fn page_headers(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    if !headers.contains_key(CONTENT_SECURITY_POLICY) {
        headers.insert(
            CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(STRICT_CSP),
        );
    }
    headers.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    headers.insert(X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    if !headers.contains_key(CACHE_CONTROL) {
        headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}

/// The cookies a server's pages set, `__Host-` prefixed under https so no other host can plant
/// them.
#[derive(Debug, Clone)]
pub struct CookieNames {
    pub session: &'static str,
    pub csrf: &'static str,
    /// Marks a browser someone signed in from (the login lock's device cookie).
    pub device: &'static str,
    pub secure: bool,
}

impl CookieNames {
    /// `prefix` names the server's cookies (`gatehouse`, `shop`), so two servers on one host do
    /// not overwrite each other's.
    pub fn new(prefix: Prefix, https: bool) -> Self {
        let (session, csrf, secure_session, secure_csrf) = prefix.names();
        if https {
            Self {
                session: secure_session,
                csrf: secure_csrf,
                device: prefix.device_name(true),
                secure: true,
            }
        } else {
            Self {
                session,
                csrf,
                device: prefix.device_name(false),
                secure: false,
            }
        }
    }

    /// A `Set-Cookie` value: host-only, every path, out of scripts' reach, not sent on
    /// cross-site subrequests or posts.
    pub fn set(&self, name: &str, value: &str, max_age_secs: u64) -> HeaderValue {
        let secure = if self.secure { "; Secure" } else { "" };
        let cookie = format!(
            "{name}={value}; Path=/; HttpOnly; SameSite=Lax; Max-Age={max_age_secs}{secure}"
        );
        HeaderValue::from_str(&cookie).unwrap_or_else(|_| HeaderValue::from_static(""))
    }

    pub fn clear(&self, name: &str) -> HeaderValue {
        self.set(name, "", 0)
    }
}

/// Whose cookies: names are fixed strings so a `Set-Cookie` never carries input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Prefix {
    /// The authorization server's pages.
    Gatehouse,
    /// The web shop.
    Shop,
}

impl Prefix {
    fn device_name(self, https: bool) -> &'static str {
        match (self, https) {
            (Prefix::Gatehouse, false) => "gatehouse_device",
            (Prefix::Gatehouse, true) => "__Host-gatehouse_device",
            (Prefix::Shop, false) => "shop_device",
            (Prefix::Shop, true) => "__Host-shop_device",
        }
    }

    fn names(self) -> (&'static str, &'static str, &'static str, &'static str) {
        match self {
            Prefix::Gatehouse => (
                "gatehouse_session",
                "gatehouse_csrf",
                "__Host-gatehouse_session",
                "__Host-gatehouse_csrf",
            ),
            Prefix::Shop => (
                "shop_session",
                "shop_csrf",
                "__Host-shop_session",
                "__Host-shop_csrf",
            ),
        }
    }
}

/// The value of the cookie `name`, if the browser sent one that could be ours.
pub fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, value)| value.to_owned())
        .filter(|v| !v.is_empty() && v.len() <= 128 && v.bytes().all(|b| b.is_ascii_graphic()))
}

/// Whether a form post came from a page of `expected_origin`, by what the browser says: its
/// `Origin`, and `Sec-Fetch-Site` (a header no page can set).
///
/// Under `Referrer-Policy: no-referrer` browsers send `Origin: null` even from our own pages,
/// so a `null` origin passes only when `Sec-Fetch-Site` says the post came from this origin.
/// A request naming neither (not a browser) passes: the anti-forgery token still has to fit.
pub fn posted_from_same_origin(headers: &HeaderMap, expected_origin: &str) -> bool {
    let header = |name| {
        headers
            .get(name)
            .map(|v: &HeaderValue| v.to_str().unwrap_or("invalid"))
    };
    let fetch_site = header(SEC_FETCH_SITE);
    let same_origin_fetch = fetch_site == Some("same-origin");
    if fetch_site.is_some() && !same_origin_fetch {
        return false;
    }
    match header(axum::http::header::ORIGIN) {
        None => true,
        Some(origin) if origin == expected_origin => true,
        Some("null") => same_origin_fetch,
        Some(_) => false,
    }
}

/// `scheme://host[:port]` of a URL, as browsers send it in `Origin`; `None` for a URL that
/// has no such origin.
pub fn origin_of(url: &str) -> Option<String> {
    let origin = url::Url::parse(url).ok()?.origin();
    origin.is_tuple().then(|| origin.ascii_serialization())
}

/// Why a form could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FormRejection {
    #[error("this page takes forms (application/x-www-form-urlencoded)")]
    NotAForm,
    #[error("the form exceeds {0} bytes")]
    TooLarge(usize),
    #[error("the field {0} was given more than once")]
    Repeated(String),
}

/// The fields of the hosted pages' forms that are lists (a group of checkboxes): the only names
/// a form may repeat.
pub const LIST_FIELDS: &[&str] = &["roles"];

/// Every pair of an `application/x-www-form-urlencoded` text (a body or a query) in order,
/// refusing a name given twice (RFC 6749 §3.1), empty values included: `scope=&scope=x` is
/// two scopes, not one.
pub fn single_valued_pairs(input: &[u8]) -> Result<Vec<(String, String)>, FormRejection> {
    pairs_allowing(input, &[])
}

/// As [`single_valued_pairs`], but the names in `lists` may repeat.
fn pairs_allowing(input: &[u8], lists: &[&str]) -> Result<Vec<(String, String)>, FormRejection> {
    let mut seen = std::collections::HashSet::new();
    let mut pairs = Vec::new();
    for (name, value) in form_urlencoded::parse(input) {
        if !lists.contains(&name.as_ref()) && !seen.insert(name.clone()) {
            return Err(FormRejection::Repeated(name.into_owned()));
        }
        pairs.push((name.into_owned(), value.into_owned()));
    }
    Ok(pairs)
}

/// A form body (`application/x-www-form-urlencoded`). As an extractor it refuses a field given
/// twice, unless it is one of the [`LIST_FIELDS`]. `E` is how the server shows a refused form.
#[derive(Debug, Clone)]
pub struct Form<E = FormRejection> {
    fields: HashMap<String, String>,
    /// Every pair in order, for readers that must see repeats.
    pub pairs: Vec<(String, String)>,
    shown_as: PhantomData<fn() -> E>,
}

impl<E> Default for Form<E> {
    fn default() -> Self {
        Self::from_bytes(b"")
    }
}

impl<E> Form<E> {
    /// Every pair kept, repeats too; [`get`](Self::get) sees the first of a repeated name.
    pub fn from_bytes(body: &[u8]) -> Self {
        let pairs: Vec<(String, String)> = form_urlencoded::parse(body)
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        Self::from_pairs(pairs)
    }

    /// The form, refused if a field other than the [`LIST_FIELDS`] is repeated.
    pub fn strict(body: &[u8]) -> Result<Self, FormRejection> {
        Ok(Self::from_pairs(pairs_allowing(body, LIST_FIELDS)?))
    }

    fn from_pairs(pairs: Vec<(String, String)>) -> Self {
        let mut fields = HashMap::new();
        for (name, value) in &pairs {
            fields.entry(name.clone()).or_insert_with(|| value.clone());
        }
        Self {
            fields,
            pairs,
            shown_as: PhantomData,
        }
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.fields.get(name).map(String::as_str)
    }

    /// The field, or empty.
    pub fn text(&self, name: &str) -> String {
        self.get(name).unwrap_or("").to_owned()
    }
}

impl<S, E> FromRequest<S> for Form<E>
where
    S: Send + Sync,
    E: From<FormRejection> + IntoResponse,
{
    type Rejection = E;

    async fn from_request(request: Request, state: &S) -> Result<Self, E> {
        Ok(Self::strict(&form_body(request, state).await?)?)
    }
}

async fn form_body<S: Send + Sync>(request: Request, state: &S) -> Result<Bytes, FormRejection> {
    if media_type(request.headers()).as_deref() != Some("application/x-www-form-urlencoded") {
        return Err(FormRejection::NotAForm);
    }
    Bytes::from_request(request, state)
        .await
        .map_err(|_| FormRejection::TooLarge(JSON_LIMIT))
}

/// A protocol request sent as a form (an authorization request by POST): every pair is kept,
/// repeats too, because the protocol answers them itself (RFC 6749 §4.1.2.1 sends an
/// authorization request's errors back to the client).
#[derive(Debug, Clone)]
pub struct ProtocolForm<E = FormRejection>(pub Form<E>);

impl<S, E> FromRequest<S> for ProtocolForm<E>
where
    S: Send + Sync,
    E: From<FormRejection> + IntoResponse,
{
    type Rejection = E;

    async fn from_request(request: Request, state: &S) -> Result<Self, E> {
        Ok(Self(Form::from_bytes(&form_body(request, state).await?)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_origin_is_scheme_host_and_port() {
        assert_eq!(
            origin_of("https://Auth.Example.com:443/path?x").as_deref(),
            Some("https://auth.example.com")
        );
        assert_eq!(
            origin_of("http://127.0.0.1:8080").as_deref(),
            Some("http://127.0.0.1:8080")
        );
        assert_eq!(
            origin_of("https://id.example/tenant").as_deref(),
            Some("https://id.example")
        );
        assert_eq!(origin_of("data:text/plain,x"), None);
    }

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, HeaderValue::from_static(value));
        }
        map
    }

    #[test]
    fn posts_pass_only_from_the_same_origin() {
        let ours = "http://127.0.0.1:8080";
        assert!(posted_from_same_origin(&headers(&[]), ours));
        assert!(posted_from_same_origin(&headers(&[("origin", ours)]), ours));
        assert!(posted_from_same_origin(
            &headers(&[("origin", "null"), ("sec-fetch-site", "same-origin")]),
            ours
        ));
        assert!(!posted_from_same_origin(
            &headers(&[("origin", "null")]),
            ours
        ));
        assert!(!posted_from_same_origin(
            &headers(&[("origin", "http://evil.example")]),
            ours
        ));
        assert!(!posted_from_same_origin(
            &headers(&[("origin", ours), ("sec-fetch-site", "cross-site")]),
            ours
        ));
    }

    #[test]
    fn a_repeated_field_counts_once_and_cookies_are_read_strictly() {
        let form: Form = Form::from_bytes(b"a=1&a=2&b=x%20y");
        assert_eq!(form.get("a"), Some("1"));
        assert_eq!(form.text("b"), "x y");
        assert_eq!(form.pairs.len(), 3);
        assert_eq!(
            Form::<FormRejection>::strict(b"a=1&a=2").err(),
            Some(FormRejection::Repeated("a".into()))
        );
        assert_eq!(
            Form::<FormRejection>::strict(b"roles=x&roles=y&b=1")
                .map(|f| f.pairs.len())
                .ok(),
            Some(3),
            "a list field may repeat"
        );
        assert_eq!(
            single_valued_pairs(b"scope=&scope=rates%3Aread").err(),
            Some(FormRejection::Repeated("scope".into())),
            "an empty value counts"
        );
        assert_eq!(
            single_valued_pairs(b"a=1&b=").ok(),
            Some(vec![("a".into(), "1".into()), ("b".into(), String::new())])
        );
        let jar = headers(&[("cookie", "x=1; shop_session=abc; y=")]);
        assert_eq!(cookie(&jar, "shop_session").as_deref(), Some("abc"));
        assert_eq!(cookie(&jar, "y"), None);
    }
}
