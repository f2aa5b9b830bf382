//! The gateway's file: a `[gateway]` table for the process and one `[[route]]` table per route.
//! Everything is checked when read; a file with any mistake is refused whole, with a message
//! that names the route and the field.

use std::collections::{BTreeMap, HashSet};
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use gatehouse_sdk::{DEFAULT_AUDIENCE, Policy, ScopeRule};
use http::{Method, Uri};
use serde::Deserialize;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is not valid: {message}")]
    Syntax { path: String, message: String },
    #[error("[gateway] {0}")]
    Gateway(String),
    #[error("route {route}: {message}")]
    Route { route: String, message: String },
}

/// The whole file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GatewayFile {
    #[serde(default)]
    pub gateway: GatewaySection,
    #[serde(default, rename = "route")]
    pub routes: Vec<RouteSpec>,
}

/// How the gateway process runs. Only `issuer` is needed: keys, algorithms and the feed's
/// address come from the issuer's metadata.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GatewaySection {
    pub listen: SocketAddr,
    pub issuer: Option<String>,
    /// The confidential client (scope `revocations:read`) that reads the revocation feed. Its
    /// secret comes from `GATEHOUSE_GATEWAY_CLIENT_SECRET` or `feed_client_secret_file`.
    pub feed_client_id: Option<String>,
    pub feed_client_secret_file: Option<String>,
    /// What a token's `aud` must contain on every route that names no `audience` of its own
    /// (RFC 9068 §4). The issuer's configured audience; Gatehouse's default unless changed.
    pub audience: String,
    pub leeway_secs: u64,
    pub jwks_cooldown_secs: u64,
    pub staleness_budget_secs: u64,
    /// Past the staleness budget, ask the issuer's introspection endpoint about each token
    /// (with the feed client's credentials) instead of answering 503.
    pub introspect_when_stale: bool,
    pub token_cache_capacity: usize,
    /// The proxies whose forward-auth checks (`/_gatehouse/check`) are answered, and whose
    /// `X-Forwarded-For` is believed: loopback unless listed.
    pub forward_auth_from: Vec<ipnet::IpNet>,
    /// Serve over TLS with this certificate chain and key (`[gateway.tls]`, `cert_file` and
    /// `key_file`, PEM; read again on SIGHUP).
    pub tls: Option<gatehouse_listen::TlsFiles>,
    /// Certificates (PEM) trusted besides the system's roots, for `https://` upstreams and an
    /// `https://` issuer: a private CA's.
    pub ca_file: Option<std::path::PathBuf>,
}

impl Default for GatewaySection {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8000)),
            issuer: None,
            feed_client_id: None,
            feed_client_secret_file: None,
            audience: DEFAULT_AUDIENCE.to_owned(),
            leeway_secs: 30,
            jwks_cooldown_secs: 10,
            staleness_budget_secs: 30,
            introspect_when_stale: false,
            token_cache_capacity: 100_000,
            forward_auth_from: vec![
                ipnet::IpNet::V4(ipnet::Ipv4Net::new_assert(
                    std::net::Ipv4Addr::new(127, 0, 0, 0),
                    8,
                )),
                ipnet::IpNet::V6(ipnet::Ipv6Net::new_assert(
                    std::net::Ipv6Addr::LOCALHOST,
                    128,
                )),
            ],
            tls: None,
            ca_file: None,
        }
    }
}

/// Scopes as a plain list (all needed) or `{ all_of = [...] }` / `{ any_of = [...] }`.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum ScopeSpec {
    List(Vec<String>),
    Rule(ScopeRule),
}

impl From<ScopeSpec> for ScopeRule {
    fn from(spec: ScopeSpec) -> Self {
        match spec {
            ScopeSpec::List(all) => ScopeRule::AllOf(all),
            ScopeSpec::Rule(rule) => rule,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LimitKey {
    /// Per OAuth client (`client_id` of the token); callers without a token by IP.
    Client,
    /// Per user or machine (`sub`); callers without a token by IP.
    Subject,
    Ip,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitSpec {
    pub per_second: u32,
    pub burst: Option<u32>,
    pub key: LimitKey,
}

/// One `[[route]]` table.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteSpec {
    /// Shown in metrics and logs; defaults to the prefix.
    pub name: Option<String>,
    pub prefix: String,
    /// Match the prefix itself only, nothing below it: for a single anonymous document, so
    /// `/api/posts/openapi.json/vote` is not let through as part of it.
    #[serde(default)]
    pub exact: bool,
    pub upstream: String,
    #[serde(default)]
    pub strip_prefix: bool,
    /// Allowed methods; all when omitted.
    pub methods: Option<Vec<String>>,
    /// Required scopes by method; the key `"*"` applies to methods not listed.
    #[serde(default)]
    pub scopes: BTreeMap<String, ScopeSpec>,
    /// The caller needs one of these roles.
    #[serde(default)]
    pub roles: Vec<String>,
    /// Let requests without a token through (a token that is present must still be valid).
    #[serde(default)]
    pub anonymous: bool,
    /// Pass WebSocket upgrades through (no other protocol is ever upgraded to).
    #[serde(default)]
    pub websocket: bool,
    /// Cookies the upstream may read and set, by name. Every other cookie is taken out of
    /// requests and every other `Set-Cookie` out of responses: the browser sends its cookies for
    /// this host to every route (the sign-in pages' among them, since ports do not separate
    /// cookies), and an API taking bearer tokens has no business with them.
    #[serde(default)]
    pub cookies: Vec<String>,
    /// The token's `aud` must contain this instead of the `[gateway]` audience.
    pub audience: Option<String>,
    /// Time allowed for the upstream's response headers.
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    #[serde(default = "default_max_body_bytes")]
    pub max_body_bytes: u64,
    pub rate_limit: Option<RateLimitSpec>,
}

fn default_timeout_ms() -> u64 {
    30_000
}

fn default_max_body_bytes() -> u64 {
    1024 * 1024
}

/// A route after checking.
#[derive(Debug)]
pub struct RouteRule {
    pub name: String,
    pub prefix: String,
    /// Only the prefix itself, nothing below it.
    pub exact: bool,
    pub upstream: Uri,
    pub strip_prefix: bool,
    pub methods: Option<HashSet<Method>>,
    /// What a token must carry, for the methods with their own scopes.
    pub policy_by_method: BTreeMap<Method, Policy>,
    /// What a token must carry for every other method.
    pub policy: Policy,
    pub anonymous: bool,
    pub websocket: bool,
    /// The cookies that pass, by name; none by default.
    pub cookies: Vec<String>,
    /// The route's own audience; `None` means the gateway's.
    pub audience: Option<String>,
    pub timeout: Duration,
    pub max_body_bytes: u64,
    pub rate_limit: Option<RateLimitSpec>,
}

impl GatewayFile {
    pub fn read(path: &Path) -> Result<Self, ConfigError> {
        Self::read_with(path, &[])
    }

    /// Reads `path` with each `{name}` of `placeholders` replaced by its value first.
    pub fn read_with(path: &Path, placeholders: &[(String, String)]) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::parse(
            &substitute(&text, placeholders),
            &path.display().to_string(),
        )
    }

    pub fn parse(text: &str, origin: &str) -> Result<Self, ConfigError> {
        let file: Self = toml::from_str(text).map_err(|e| ConfigError::Syntax {
            path: origin.to_owned(),
            message: e.to_string(),
        })?;
        if !is_audience(&file.gateway.audience) {
            return Err(ConfigError::Gateway("audience must not be empty".into()));
        }
        file.rules()?;
        Ok(file)
    }

    /// The routes, checked, longest prefix first so the most specific one wins.
    pub fn rules(&self) -> Result<Vec<RouteRule>, ConfigError> {
        let mut seen = HashSet::new();
        let mut rules = Vec::with_capacity(self.routes.len());
        for spec in &self.routes {
            let rule = spec.check()?;
            if !seen.insert(rule.prefix.clone()) {
                return Err(ConfigError::Route {
                    route: rule.name,
                    message: "another route has the same prefix".into(),
                });
            }
            rules.push(rule);
        }
        rules.sort_by_key(|rule| std::cmp::Reverse(rule.prefix.len()));
        Ok(rules)
    }
}

/// `text` with every `{name}` in `placeholders` replaced by its value.
pub fn substitute(text: &str, placeholders: &[(String, String)]) -> String {
    placeholders
        .iter()
        .fold(text.to_owned(), |text, (name, value)| {
            text.replace(&format!("{{{name}}}"), value)
        })
}

impl RouteSpec {
    fn check(&self) -> Result<RouteRule, ConfigError> {
        let name = self.name.clone().unwrap_or_else(|| self.prefix.clone());
        let fail = |message: String| ConfigError::Route {
            route: name.clone(),
            message,
        };
        if !self.prefix.starts_with('/') || self.prefix.contains(['?', '#', ' ']) {
            return Err(fail("prefix must be a path starting with /".into()));
        }
        let prefix = match self.prefix.trim_end_matches('/') {
            "" => "/".to_owned(),
            p => p.to_owned(),
        };
        let upstream: Uri = self
            .upstream
            .parse()
            .map_err(|e| fail(format!("upstream is not a URL: {e}")))?;
        if !matches!(upstream.scheme_str(), Some("http" | "https"))
            || upstream.authority().is_none()
        {
            return Err(fail(
                "upstream must be an http:// or https:// URL with a host".into(),
            ));
        }
        if upstream.query().is_some() {
            return Err(fail("upstream may not have a query".into()));
        }
        let parse_method = |m: &str| {
            Method::from_bytes(m.to_ascii_uppercase().as_bytes())
                .map_err(|_| fail(format!("{m:?} is not an HTTP method")))
        };
        let methods: Option<HashSet<Method>> = match &self.methods {
            None => None,
            Some(list) if list.is_empty() => return Err(fail("methods is empty".into())),
            Some(list) => Some(
                list.iter()
                    .map(|m| parse_method(m))
                    .collect::<Result<_, _>>()?,
            ),
        };
        let mut scopes_by_method = BTreeMap::new();
        let mut scopes_default = None;
        for (method, spec) in &self.scopes {
            let rule = ScopeRule::from(spec.clone());
            let (ScopeRule::AllOf(list) | ScopeRule::AnyOf(list)) = &rule;
            if list.is_empty() || list.iter().any(|s| s.is_empty() || s.contains(' ')) {
                return Err(fail(format!(
                    "scopes for {method} must be a non-empty list of scope names"
                )));
            }
            if method == "*" {
                scopes_default = Some(rule);
            } else {
                scopes_by_method.insert(parse_method(method)?, rule);
            }
        }
        // Scopes for some methods only: every allowed method must be covered, or a method
        // nobody thought of (DELETE, say) would need no scope at all.
        if !scopes_by_method.is_empty() && scopes_default.is_none() {
            let covered = |m: &Method| {
                scopes_by_method.contains_key(m) || scopes_by_method.contains_key(head_as_get(m))
            };
            match &methods {
                Some(allowed) if allowed.iter().all(covered) => {}
                Some(_) => {
                    return Err(fail(
                        "some allowed methods have no scopes: list them in scopes, or add \"*\""
                            .into(),
                    ));
                }
                None => {
                    return Err(fail(
                        "scopes are given for some methods only: set methods, or add \"*\"".into(),
                    ));
                }
            }
        }
        if self.anonymous && (!self.scopes.is_empty() || !self.roles.is_empty()) {
            return Err(fail(
                "an anonymous route cannot also require scopes or roles".into(),
            ));
        }
        if self.audience.as_deref().is_some_and(|a| !is_audience(a)) {
            return Err(fail("audience must not be empty".into()));
        }
        if self.timeout_ms == 0 {
            return Err(fail("timeout_ms must be positive".into()));
        }
        if let Some(bad) = self.cookies.iter().find(|name| !is_cookie_name(name)) {
            return Err(fail(format!("{bad:?} is not a cookie name")));
        }
        if let Some(limit) = &self.rate_limit
            && (limit.per_second == 0 || limit.burst == Some(0))
        {
            return Err(fail(
                "rate_limit needs a positive per_second and burst".into(),
            ));
        }
        let policy_with = |scopes: Option<ScopeRule>| Policy {
            audience: self.audience.clone(),
            scopes,
            roles: self.roles.clone(),
        };
        Ok(RouteRule {
            name,
            prefix,
            exact: self.exact,
            upstream,
            strip_prefix: self.strip_prefix,
            methods,
            policy_by_method: scopes_by_method
                .into_iter()
                .map(|(method, rule)| (method, policy_with(Some(rule))))
                .collect(),
            policy: policy_with(scopes_default),
            anonymous: self.anonymous,
            websocket: self.websocket,
            cookies: self.cookies.clone(),
            audience: self.audience.clone(),
            timeout: Duration::from_millis(self.timeout_ms),
            max_body_bytes: self.max_body_bytes,
            rate_limit: self.rate_limit.clone(),
        })
    }
}

fn is_audience(name: &str) -> bool {
    !name.trim().is_empty()
}

/// A cookie name as RFC 6265 §4.1.1 allows: a token, no separators.
fn is_cookie_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_graphic() && !b"()<>@,;:\\\"/[]?={}".contains(&b))
}

impl RouteRule {
    /// Whether `path` falls under this route: the prefix itself, or anything below it unless
    /// the route is exact.
    pub fn matches(&self, path: &str) -> bool {
        if self.exact {
            return path == self.prefix;
        }
        self.prefix == "/"
            || path == self.prefix
            || path
                .strip_prefix(&self.prefix)
                .is_some_and(|rest| rest.starts_with('/'))
    }

    /// What a token must carry for a request with `method`. HEAD is a GET without the body,
    /// so it needs what GET needs.
    pub fn policy_for(&self, method: &Method) -> &Policy {
        self.policy_by_method
            .get(head_as_get(method))
            .unwrap_or(&self.policy)
    }

    /// Whether the route takes `method`: any, unless `methods` lists some; HEAD wherever GET.
    pub fn allows(&self, method: &Method) -> bool {
        self.methods
            .as_ref()
            .is_none_or(|methods| methods.contains(method) || methods.contains(head_as_get(method)))
    }

    /// The methods the route takes, for an `Allow` header (HEAD where GET is); `None` for any.
    pub fn allowed_methods(&self) -> Option<String> {
        let methods = self.methods.as_ref()?;
        let mut allowed: Vec<&str> = methods.iter().map(Method::as_str).collect();
        if methods.contains(&Method::GET) && !methods.contains(&Method::HEAD) {
            allowed.push("HEAD");
        }
        allowed.sort_unstable();
        Some(allowed.join(", "))
    }
}

/// HEAD is a GET without the body (RFC 9110 §9.3.2): it goes where GET goes and needs what GET
/// needs.
fn head_as_get(method: &Method) -> &Method {
    match *method {
        Method::HEAD => &Method::GET,
        _ => method,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Vec<RouteRule>, ConfigError> {
        GatewayFile::parse(text, "test.toml")?.rules()
    }

    #[test]
    fn reads_a_full_route() {
        let rules = parse(
            r#"
            [gateway]
            issuer = "http://127.0.0.1:8080"
            [[route]]
            prefix = "/api/fx/"
            upstream = "http://127.0.0.1:9000/base"
            strip_prefix = true
            methods = ["get", "POST", "HEAD"]
            roles = ["admin"]
            audience = "fx"
            timeout_ms = 500
            max_body_bytes = 10
            scopes = { GET = ["fx:read"], "*" = { any_of = ["fx:write", "admin"] } }
            rate_limit = { per_second = 5, key = "client" }
            "#,
        )
        .unwrap();
        let rule = &rules[0];
        assert_eq!(rule.prefix, "/api/fx");
        assert!(rule.matches("/api/fx") && rule.matches("/api/fx/rates"));
        assert!(!rule.matches("/api/fxy"));
        assert_eq!(
            rule.policy_for(&Method::GET).scopes,
            Some(ScopeRule::AllOf(vec!["fx:read".into()]))
        );
        assert_eq!(
            rule.policy_for(&Method::POST).scopes,
            Some(ScopeRule::AnyOf(vec!["fx:write".into(), "admin".into()]))
        );
        assert_eq!(rule.audience.as_deref(), Some("fx"));
        assert_eq!(
            rule.policy_for(&Method::GET).audience.as_deref(),
            Some("fx")
        );
        assert_eq!(
            rule.policy_for(&Method::POST).roles,
            vec!["admin".to_owned()]
        );
        assert!(rule.methods.as_ref().unwrap().contains(&Method::GET));
    }

    #[test]
    fn the_readme_example_is_a_valid_file() {
        let readme = include_str!("../../../README.md");
        let section = readme.split("## The gateway").nth(1).unwrap();
        let example = section
            .split("```toml")
            .nth(1)
            .unwrap()
            .split("```")
            .next()
            .unwrap();
        let file = GatewayFile::parse(example, "README.md").unwrap();
        assert_eq!(
            file.gateway.issuer.as_deref(),
            Some("https://auth.example.com")
        );
        assert_eq!(
            file.gateway.forward_auth_from,
            GatewaySection::default().forward_auth_from
        );
        let rules = file.rules().unwrap();
        assert_eq!(rules.len(), 3);
        assert!(rules.iter().any(|r| r.exact));
        assert!(rules.iter().any(|r| r.anonymous));
    }

    #[test]
    fn the_audience_is_the_gateways_unless_a_route_names_its_own() {
        let file = GatewayFile::parse(
            "[[route]]\nprefix = \"/a\"\nupstream = \"http://a\"\n",
            "test.toml",
        )
        .unwrap();
        assert_eq!(file.gateway.audience, DEFAULT_AUDIENCE);
        assert_eq!(file.rules().unwrap()[0].audience, None);
        let file = GatewayFile::parse(
            "[gateway]\naudience = \"api\"\n[[route]]\nprefix = \"/a\"\nupstream = \"http://a\"\n",
            "test.toml",
        )
        .unwrap();
        assert_eq!(file.gateway.audience, "api");
        for empty in ["[gateway]\naudience = \"\"", "[gateway]\naudience = \" \""] {
            let error = GatewayFile::parse(empty, "test.toml")
                .unwrap_err()
                .to_string();
            assert!(error.contains("[gateway] audience"), "{error}");
        }
    }

    #[test]
    fn longest_prefix_comes_first() {
        let rules = parse(
            r#"
            [[route]]
            prefix = "/"
            upstream = "http://a"
            [[route]]
            prefix = "/api/x"
            upstream = "http://b"
            "#,
        )
        .unwrap();
        assert_eq!(rules[0].prefix, "/api/x");
        assert!(rules[1].matches("/anything"));
    }

    #[test]
    fn an_exact_route_matches_its_path_only() {
        let rules = parse(
            r#"
            [[route]]
            prefix = "/api/posts"
            upstream = "http://a"
            [[route]]
            prefix = "/api/posts/openapi.json"
            exact = true
            anonymous = true
            upstream = "http://a"
            "#,
        )
        .unwrap();
        let first_match = |path: &str| rules.iter().find(|r| r.matches(path)).map(|r| r.anonymous);
        assert_eq!(first_match("/api/posts/openapi.json"), Some(true));
        assert_eq!(first_match("/api/posts/openapi.json/vote"), Some(false));
        assert_eq!(first_match("/api/posts/openapi.jsonx"), Some(false));
        assert_eq!(first_match("/api/posts/1/vote"), Some(false));
    }

    #[test]
    fn mistakes_are_refused_with_the_route_named() {
        for (body, needle) in [
            ("prefix = \"api\"\nupstream = \"http://a\"", "prefix must"),
            (
                "prefix = \"/a\"\nupstream = \"ftp://a\"",
                "http:// or https://",
            ),
            ("prefix = \"/a\"\nupstream = \"not a url\"", "upstream"),
            (
                "prefix = \"/a\"\nupstream = \"http://a\"\nmethods = [\"G T\"]",
                "HTTP method",
            ),
            (
                "prefix = \"/a\"\nupstream = \"http://a\"\nscopes = { GET = [] }",
                "non-empty",
            ),
            (
                "prefix = \"/a\"\nupstream = \"http://a\"\nanonymous = true\nroles = [\"x\"]",
                "anonymous",
            ),
            (
                "prefix = \"/a\"\nupstream = \"http://a\"\nrate_limit = { per_second = 0, key = \"ip\" }",
                "positive",
            ),
            (
                "prefix = \"/a\"\nupstream = \"http://a\"\ntimeout_ms = 0",
                "timeout_ms",
            ),
            (
                "prefix = \"/a\"\nupstream = \"http://a\"\nbogus = 1",
                "bogus",
            ),
            (
                "prefix = \"/a\"\nupstream = \"http://a\"\naudience = \"\"",
                "audience",
            ),
            (
                "prefix = \"/a\"\nupstream = \"http://a\"\nscopes = { GET = [\"r\"] }",
                "some methods only",
            ),
            (
                "prefix = \"/a\"\nupstream = \"http://a\"\nmethods = [\"GET\", \"POST\"]\nscopes = { GET = [\"r\"] }",
                "have no scopes",
            ),
        ] {
            let error = parse(&format!("[[route]]\n{body}"))
                .unwrap_err()
                .to_string();
            assert!(error.contains(needle), "{body}: {error}");
        }
        let twice = "[[route]]\nprefix = \"/a\"\nupstream = \"http://a\"\n[[route]]\nprefix = \"/a/\"\nupstream = \"http://b\"";
        assert!(
            parse(twice)
                .unwrap_err()
                .to_string()
                .contains("same prefix")
        );
    }
}
