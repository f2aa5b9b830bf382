//! Properties of path normalisation, route matching and the routes file, over generated input.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use http::Method;
use proptest::prelude::*;

use crate::RouteTable;
use crate::config::GatewayFile;
use crate::forward::normalize_path;

/// Paths made to hit the normaliser's cases: escapes (valid, invalid, of unreserved and reserved
/// characters), dots, doubled slashes, backslashes, semicolons and non-ASCII text.
fn raw_path() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        "[a-zA-Z0-9._~-]{1,6}",
        Just(".".to_owned()),
        Just("..".to_owned()),
        Just("/".to_owned()),
        Just(";".to_owned()),
        Just("\\".to_owned()),
        "%[0-9a-fA-F]{2}",
        "%[0-9a-zA-Z]{0,2}",
        Just("%2e".to_owned()),
        Just("%2F".to_owned()),
        Just("%5c".to_owned()),
        "[é€\u{1F600}]",
    ];
    (
        prop::bool::weighted(0.95),
        prop::collection::vec(piece, 0..10),
    )
        .prop_map(|(slash, pieces)| {
            let body = pieces.join("");
            if slash { format!("/{body}") } else { body }
        })
}

/// Every `%XX` decoded, for judging what a segment could mean to a lenient upstream.
fn fully_decoded(segment: &str) -> Vec<u8> {
    let bytes = segment.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(byte) = segment
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(byte);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn normalising_any_text_never_panics(text in ".{0,64}") {
        let _ = normalize_path(&text);
    }

    /// What comes out is a path the route table and any upstream read the same way, and
    /// normalising it again changes nothing.
    #[test]
    fn normal_paths_are_unambiguous_and_stable(raw in raw_path()) {
        let Some(normal) = normalize_path(&raw) else {
            return Ok(());
        };
        prop_assert!(normal.starts_with('/'), "{raw} -> {normal}");
        prop_assert!(!normal.contains("//"), "{raw} -> {normal}");
        prop_assert!(!normal.contains(['\\', ';']), "{raw} -> {normal}");
        for segment in normal.split('/').skip(1) {
            let decoded = fully_decoded(segment);
            prop_assert!(decoded != b"." && decoded != b"..", "{raw} -> {normal}");
            prop_assert!(!decoded.contains(&b'/') && !decoded.contains(&b'\\'), "{raw} -> {normal}");
        }
        let again = normalize_path(&normal);
        prop_assert_eq!(again.as_deref(), Some(&*normal), "not stable: {}", raw);
    }

    /// Plain paths (no escapes, dots, doubled slashes, backslashes or semicolons) pass unchanged.
    #[test]
    fn plain_paths_pass_unchanged(segments in prop::collection::vec("[a-zA-Z0-9_~-]{1,8}", 0..6), trailing in any::<bool>()) {
        let mut path = format!("/{}", segments.join("/"));
        if trailing && !segments.is_empty() {
            path.push('/');
        }
        let normal = normalize_path(&path);
        prop_assert_eq!(normal.as_deref(), Some(path.as_str()));
    }
}

/// A route of the generated table: its prefix's segments, and whether it is exact.
#[derive(Debug, Clone)]
struct GeneratedRoute {
    segments: Vec<String>,
    exact: bool,
}

impl GeneratedRoute {
    fn prefix(&self) -> String {
        format!("/{}", self.segments.join("/"))
    }
}

/// Few short segment names, so that prefixes overlap often.
fn segments(max: usize) -> impl Strategy<Value = Vec<String>> {
    prop::collection::vec(
        prop::sample::select(vec!["a", "b", "ab", "openapi.json"]).prop_map(str::to_owned),
        0..max,
    )
}

fn routes_text(routes: &[GeneratedRoute]) -> String {
    routes
        .iter()
        .map(|r| {
            format!(
                "[[route]]\nprefix = {:?}\nupstream = \"http://127.0.0.1:9\"\nexact = {}\n",
                r.prefix(),
                r.exact
            )
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// The route a path gets is the one with the longest prefix that covers it segment by
    /// segment (an exact route only its own path), and none when no prefix covers it.
    #[test]
    fn the_longest_covering_prefix_wins(
        generated in prop::collection::vec((segments(4), any::<bool>()), 1..6),
        path in segments(6),
        trailing in any::<bool>(),
    ) {
        let mut routes: Vec<GeneratedRoute> = Vec::new();
        for (segments, exact) in generated {
            let route = GeneratedRoute { segments, exact };
            if !routes.iter().any(|r| r.prefix() == route.prefix()) {
                routes.push(route);
            }
        }
        let file = GatewayFile::parse(&routes_text(&routes), "generated.toml").unwrap();
        let table = RouteTable::new(file.rules().unwrap());
        let mut request = format!("/{}", path.join("/"));
        if trailing && !path.is_empty() {
            request.push('/');
        }
        let expected = routes
            .iter()
            .filter(|r| {
                if r.exact {
                    request == r.prefix()
                } else {
                    path.starts_with(&r.segments)
                }
            })
            .max_by_key(|r| r.prefix().len())
            .map(GeneratedRoute::prefix);
        let found = table.find(&request).map(|route| route.rule.prefix.clone());
        prop_assert_eq!(found, expected, "path {}", request);
    }
}

/// One generated `[[route]]` table and what checking it must give.
#[derive(Debug, Clone)]
struct RouteFields {
    name: Option<String>,
    segments: Vec<String>,
    trailing_slash: bool,
    port: u16,
    base: String,
    methods: Option<Vec<Method>>,
    scope: Option<Vec<String>>,
    roles: Vec<String>,
    anonymous: bool,
    exact: bool,
    strip_prefix: bool,
    websocket: bool,
    cookies: Vec<String>,
    audience: Option<String>,
    timeout_ms: u64,
    max_body_bytes: u64,
    rate_limit: Option<(u32, Option<u32>, &'static str)>,
}

fn route_fields() -> impl Strategy<Value = RouteFields> {
    let methods = prop::option::of(prop::sample::subsequence(
        vec![
            Method::GET,
            Method::POST,
            Method::PUT,
            Method::PATCH,
            Method::DELETE,
        ],
        1..=5,
    ));
    let access = prop_oneof![
        // Anonymous: no scopes or roles.
        Just((None, Vec::new(), true)),
        (
            prop::option::of(prop::collection::vec("[a-z]{1,6}(:[a-z]{1,6})?", 1..3)),
            prop::collection::vec("[a-z]{1,8}", 0..3),
        )
            .prop_map(|(scope, roles)| (scope, roles, false)),
    ];
    (
        (
            prop::option::of("[a-z][a-z0-9-]{0,10}"),
            prop::collection::vec("[a-z0-9_.~-]{1,8}", 1..4),
            any::<bool>(),
            1u16..,
            "(/[a-z]{1,6}){0,2}",
            methods,
        ),
        access,
        (any::<bool>(), any::<bool>(), any::<bool>()),
        prop::collection::vec("[a-zA-Z_][a-zA-Z0-9_-]{0,10}", 0..3),
        prop::option::of("[a-z]{1,10}"),
        (1u64..100_000, 0u64..10_000_000),
        prop::option::of((
            1u32..1000,
            prop::option::of(1u32..1000),
            prop::sample::select(vec!["client", "subject", "ip"]),
        )),
    )
        .prop_map(
            |(
                (name, segments, trailing_slash, port, base, methods),
                (scope, roles, anonymous),
                (exact, strip_prefix, websocket),
                cookies,
                audience,
                (timeout_ms, max_body_bytes),
                rate_limit,
            )| RouteFields {
                name,
                segments,
                trailing_slash,
                port,
                base,
                methods,
                scope,
                roles,
                anonymous,
                exact,
                strip_prefix,
                websocket,
                cookies,
                audience,
                timeout_ms,
                max_body_bytes,
                rate_limit,
            },
        )
}

impl RouteFields {
    fn prefix(&self) -> String {
        format!("/{}", self.segments.join("/"))
    }

    /// The table as TOML, through the toml crate's own writer.
    fn table(&self) -> toml::Table {
        let mut t = toml::Table::new();
        let mut put = |key: &str, value: toml::Value| {
            t.insert(key.to_owned(), value);
        };
        let strings = |list: &[String]| {
            toml::Value::Array(list.iter().cloned().map(toml::Value::String).collect())
        };
        if let Some(name) = &self.name {
            put("name", name.clone().into());
        }
        let slash = if self.trailing_slash { "/" } else { "" };
        put("prefix", format!("{}{slash}", self.prefix()).into());
        put(
            "upstream",
            format!("http://127.0.0.1:{}{}", self.port, self.base).into(),
        );
        if let Some(methods) = &self.methods {
            let names: Vec<String> = methods
                .iter()
                .map(|m| m.as_str().to_ascii_lowercase())
                .collect();
            put("methods", strings(&names));
        }
        if let Some(scope) = &self.scope {
            let mut scopes = toml::Table::new();
            scopes.insert("*".into(), strings(scope));
            put("scopes", toml::Value::Table(scopes));
        }
        if !self.roles.is_empty() {
            put("roles", strings(&self.roles));
        }
        put("anonymous", self.anonymous.into());
        put("exact", self.exact.into());
        put("strip_prefix", self.strip_prefix.into());
        put("websocket", self.websocket.into());
        put("cookies", strings(&self.cookies));
        if let Some(audience) = &self.audience {
            put("audience", audience.clone().into());
        }
        put("timeout_ms", i64::try_from(self.timeout_ms).unwrap().into());
        put(
            "max_body_bytes",
            i64::try_from(self.max_body_bytes).unwrap().into(),
        );
        if let Some((per_second, burst, key)) = self.rate_limit {
            let mut limit = toml::Table::new();
            limit.insert("per_second".into(), i64::from(per_second).into());
            if let Some(burst) = burst {
                limit.insert("burst".into(), i64::from(burst).into());
            }
            limit.insert("key".into(), key.into());
            put("rate_limit", toml::Value::Table(limit));
        }
        t
    }
}

fn file_text(routes: &[RouteFields]) -> String {
    let mut file = toml::Table::new();
    file.insert(
        "route".into(),
        toml::Value::Array(
            routes
                .iter()
                .map(|r| toml::Value::Table(r.table()))
                .collect(),
        ),
    );
    toml::to_string(&file).unwrap()
}

/// Ways to spoil a valid file.
fn spoiled(text: &str, at: usize, edit: u8, with: char) -> String {
    let chars: Vec<char> = text.chars().collect();
    let at = at % chars.len().max(1);
    let mut out = chars.clone();
    match edit % 4 {
        0 if !out.is_empty() => out[at] = with,
        1 => out.insert(at.min(out.len()), with),
        2 if !out.is_empty() => {
            out.remove(at);
        }
        _ => out.truncate(at),
    }
    out.into_iter().collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Whatever the text, reading it gives routes or an error, never a panic.
    #[test]
    fn any_text_is_read_or_refused(text in prop_oneof![
        ".{0,200}",
        "(\\[\\[route\\]\\]\n|\\[gateway\\]\n|[a-z_]{1,12} = (\"[^\"\n]{0,12}\"|[0-9-]{1,6}|true|\\[\\]|\\{ *\\})\n){0,8}",
    ]) {
        let _ = GatewayFile::parse(&text, "fuzzed.toml").map(|f| f.rules());
    }

    /// A valid file with one character changed, added, removed, or cut off: read or refused,
    /// never a panic.
    #[test]
    fn a_spoiled_file_is_read_or_refused(
        routes in prop::collection::vec(route_fields(), 1..3),
        at in any::<usize>(),
        edit in any::<u8>(),
        with in any::<char>(),
    ) {
        let text = spoiled(&file_text(&routes), at, edit, with);
        let _ = GatewayFile::parse(&text, "spoiled.toml").map(|f| f.rules());
    }

    /// A file written from generated routes reads back as those routes.
    #[test]
    fn a_valid_file_round_trips(routes in prop::collection::vec(route_fields(), 1..4)) {
        let mut unique: Vec<RouteFields> = Vec::new();
        for route in routes {
            if !unique.iter().any(|r| r.prefix() == route.prefix()) {
                unique.push(route);
            }
        }
        let text = file_text(&unique);
        let file = GatewayFile::parse(&text, "generated.toml")
            .unwrap_or_else(|e| panic!("{e}\n{text}"));
        let rules = file.rules().unwrap();
        prop_assert_eq!(rules.len(), unique.len());
        for window in rules.windows(2) {
            prop_assert!(window[0].prefix.len() >= window[1].prefix.len());
        }
        for want in &unique {
            let rule = rules.iter().find(|r| r.prefix == want.prefix()).unwrap();
            // Unnamed routes are named by their prefix as written.
            let written = format!("{}{}", want.prefix(), if want.trailing_slash { "/" } else { "" });
            let name = want.name.clone().unwrap_or(written);
            prop_assert_eq!(&rule.name, &name);
            prop_assert_eq!(
                rule.upstream.to_string(),
                format!("http://127.0.0.1:{}{}", want.port, if want.base.is_empty() { "/" } else { &want.base })
            );
            prop_assert_eq!(
                rule.methods.clone(),
                want.methods.clone().map(|m| m.into_iter().collect())
            );
            let scopes = rule.policy_for(&Method::GET).scopes.clone();
            prop_assert_eq!(scopes, want.scope.clone().map(gatehouse_sdk::ScopeRule::AllOf));
            prop_assert_eq!(&rule.policy.roles, &want.roles);
            prop_assert_eq!(rule.anonymous, want.anonymous);
            prop_assert_eq!(rule.exact, want.exact);
            prop_assert_eq!(rule.strip_prefix, want.strip_prefix);
            prop_assert_eq!(rule.websocket, want.websocket);
            prop_assert_eq!(&rule.cookies, &want.cookies);
            prop_assert_eq!(&rule.audience, &want.audience);
            prop_assert_eq!(rule.timeout.as_millis(), u128::from(want.timeout_ms));
            prop_assert_eq!(rule.max_body_bytes, want.max_body_bytes);
            prop_assert_eq!(
                rule.rate_limit.as_ref().map(|l| (l.per_second, l.burst)),
                want.rate_limit.map(|(p, b, _)| (p, b))
            );
        }
    }
}
