//! The rules of the authorization endpoint that need no store: reading its parameters, matching
//! redirect URIs (RFC 6749 §3.1.2, RFC 8252 §7.3), PKCE (RFC 7636, S256 only), `prompt` and
//! `max_age` (OpenID Connect Core §3.1.2.1), and building the redirect back (RFC 9207).

use aws_lc_rs::digest;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use url::Url;

use crate::secret::constant_time_eq;

/// The parameters of an authorization request as sent, before any is trusted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuthorizationParams {
    pub client_id: Option<String>,
    pub redirect_uri: Option<String>,
    pub response_type: Option<String>,
    pub response_mode: Option<String>,
    pub scope: Option<String>,
    pub state: Option<String>,
    pub code_challenge: Option<String>,
    pub code_challenge_method: Option<String>,
    pub nonce: Option<String>,
    pub prompt: Option<String>,
    pub max_age: Option<String>,
    pub login_hint: Option<String>,
    pub request: Option<String>,
    pub request_uri: Option<String>,
    /// The first parameter that was given more than once (RFC 6749 §3.1: none may repeat).
    pub repeated: Option<String>,
}

/// The longest value any one parameter may have; longer ones are refused, not truncated.
pub const MAX_PARAM_LEN: usize = 2048;

impl AuthorizationParams {
    /// Reads the parameters from query or form pairs. Unknown parameters are ignored (RFC 6749
    /// §3.1); empty values count as absent.
    pub fn from_pairs<I, K, V>(pairs: I) -> Self
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<str>,
        V: Into<String>,
    {
        let mut params = Self::default();
        // Names seen, empty values included: `scope=&scope=x` repeats scope (RFC 6749 §3.1).
        let mut seen = std::collections::HashSet::new();
        for (name, value) in pairs {
            let name = name.as_ref();
            let first = seen.insert(name.to_owned());
            let Some(slot) = params.slot(name) else {
                continue;
            };
            if !first {
                params.repeated.get_or_insert_with(|| name.to_owned());
                continue;
            }
            let value: String = value.into();
            if !value.is_empty() {
                *slot = Some(value);
            }
        }
        params
    }

    fn slot(&mut self, name: &str) -> Option<&mut Option<String>> {
        Some(match name {
            "client_id" => &mut self.client_id,
            "redirect_uri" => &mut self.redirect_uri,
            "response_type" => &mut self.response_type,
            "response_mode" => &mut self.response_mode,
            "scope" => &mut self.scope,
            "state" => &mut self.state,
            "code_challenge" => &mut self.code_challenge,
            "code_challenge_method" => &mut self.code_challenge_method,
            "nonce" => &mut self.nonce,
            "prompt" => &mut self.prompt,
            "max_age" => &mut self.max_age,
            "login_hint" => &mut self.login_hint,
            "request" => &mut self.request,
            "request_uri" => &mut self.request_uri,
            _ => return None,
        })
    }

    /// The parameters as pairs, to carry the request through a sign-in or a consent form.
    pub fn to_pairs(&self) -> Vec<(&'static str, &str)> {
        [
            ("client_id", &self.client_id),
            ("redirect_uri", &self.redirect_uri),
            ("response_type", &self.response_type),
            ("response_mode", &self.response_mode),
            ("scope", &self.scope),
            ("state", &self.state),
            ("code_challenge", &self.code_challenge),
            ("code_challenge_method", &self.code_challenge_method),
            ("nonce", &self.nonce),
            ("prompt", &self.prompt),
            ("max_age", &self.max_age),
            ("login_hint", &self.login_hint),
        ]
        .into_iter()
        .filter_map(|(name, value)| value.as_deref().map(|v| (name, v)))
        .collect()
    }

    /// The query string of this request (`a=b&c=d`).
    pub fn to_query(&self) -> String {
        let mut query = url::form_urlencoded::Serializer::new(String::new());
        for (name, value) in self.to_pairs() {
            query.append_pair(name, value);
        }
        query.finish()
    }

    /// The request to come back to once the person has signed in: `prompt=login` and `max_age`
    /// have then been honoured, and must not send them to sign in again (a second boundary
    /// crossed on the way back would, for `max_age=0`).
    pub fn after_sign_in(&self) -> Self {
        let prompt = self.prompt.as_deref().map(|p| {
            p.split(' ')
                .filter(|v| !v.is_empty() && *v != "login")
                .collect::<Vec<_>>()
                .join(" ")
        });
        Self {
            prompt: prompt.filter(|p| !p.is_empty()),
            max_age: None,
            ..self.clone()
        }
    }
}

/// What `prompt` asks for (OpenID Connect Core §3.1.2.1).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Prompt {
    /// Show nothing: answer at once, or with an error.
    pub none: bool,
    /// Ask for the password even when signed in.
    pub login: bool,
    /// Ask for consent even when given before.
    pub consent: bool,
}

impl Prompt {
    /// `Err` names what is wrong: an unknown value, or `none` with anything else.
    pub fn parse(value: Option<&str>) -> Result<Self, String> {
        let mut prompt = Self::default();
        for v in value.unwrap_or("").split(' ').filter(|v| !v.is_empty()) {
            match v {
                "none" => prompt.none = true,
                "login" => prompt.login = true,
                "consent" => prompt.consent = true,
                // Accounts are chosen by signing in; asking to choose shows the sign-in page.
                "select_account" => prompt.login = true,
                other => {
                    return Err(format!(
                        "unsupported prompt value {:?}",
                        other.chars().take(32).collect::<String>()
                    ));
                }
            }
        }
        if prompt.none && (prompt.login || prompt.consent) {
            return Err("prompt=none cannot be combined with other values".into());
        }
        Ok(prompt)
    }
}

/// `max_age` in seconds: a non-negative integer.
pub fn parse_max_age(value: Option<&str>) -> Result<Option<i64>, String> {
    match value {
        None => Ok(None),
        Some(v) => v
            .parse::<u32>()
            .map(|secs| Some(i64::from(secs)))
            .map_err(|_| "max_age must be a number of seconds".to_owned()),
    }
}

/// Whether `requested` may be used as a redirect to a client that registered `registered`: the
/// same string, or, for a loopback IP literal over http, the same but for the port, which native
/// apps choose at run time (RFC 8252 §7.3). `localhost` gets no such leniency (§8.3).
pub fn redirect_matches(registered: &[String], requested: &str) -> bool {
    if registered.iter().any(|r| r == requested) {
        return true;
    }
    let Ok(asked) = Url::parse(requested) else {
        return false;
    };
    if !is_loopback_ip_http(&asked) {
        return false;
    }
    registered.iter().any(|r| {
        Url::parse(r).is_ok_and(|mut reg| {
            if !is_loopback_ip_http(&reg) || reg.set_port(asked.port()).is_err() {
                return false;
            }
            reg == asked && reg.as_str() == asked.as_str()
        })
    })
}

fn is_loopback_ip_http(url: &Url) -> bool {
    let loopback = match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        _ => false,
    };
    url.scheme() == "http" && loopback
}

/// Why a redirect URI cannot be registered.
pub fn check_redirect_uri(value: &str) -> Result<(), String> {
    if value.len() > MAX_PARAM_LEN {
        return Err(format!("longer than {MAX_PARAM_LEN} characters"));
    }
    let url = Url::parse(value).map_err(|_| "not an absolute URI".to_owned())?;
    // Compared as strings: only a URI that is already in its normal form can ever match.
    if url.as_str() != value {
        return Err(format!("not in normal form; register {:?}", url.as_str()));
    }
    if url.fragment().is_some() {
        return Err("must not have a fragment (RFC 6749 §3.1.2)".into());
    }
    match url.scheme() {
        "https" => Ok(()),
        "http" if is_loopback_ip_http(&url) || url.host_str() == Some("localhost") => Ok(()),
        "http" => Err("http is allowed only for loopback addresses; use https".into()),
        // Native apps' private-use schemes are reverse domain names (RFC 8252 §7.1).
        scheme if scheme.contains('.') => Ok(()),
        scheme => Err(format!(
            "scheme {scheme:?} is not allowed; use https, loopback http, or a reverse-domain \
             private-use scheme"
        )),
    }
}

/// `code_challenge` for S256: the base64url SHA-256 of a verifier, always 43 characters.
pub fn check_code_challenge(challenge: &str) -> Result<(), String> {
    if challenge.len() == 43
        && challenge
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        Ok(())
    } else {
        Err("code_challenge must be the 43-character base64url SHA-256 of the verifier".into())
    }
}

/// Whether `verifier` (RFC 7636 §4.1: 43–128 unreserved characters) hashes to `challenge`.
pub fn pkce_matches(verifier: &str, challenge: &str) -> bool {
    let well_formed = (43..=128).contains(&verifier.len())
        && verifier
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'));
    if !well_formed {
        return false;
    }
    let hashed = URL_SAFE_NO_PAD.encode(digest::digest(&digest::SHA256, verifier.as_bytes()));
    constant_time_eq(hashed.as_bytes(), challenge.as_bytes())
}

/// `redirect_uri` with the response's parameters added to its query, keeping any it had.
pub fn redirect_with(redirect_uri: &str, params: &[(&str, &str)]) -> Option<String> {
    let mut url = Url::parse(redirect_uri).ok()?;
    if params.is_empty() {
        return Some(url.into());
    }
    {
        let mut query = url.query_pairs_mut();
        for (name, value) in params {
            query.append_pair(name, value);
        }
    }
    Some(url.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn uris(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn redirects_match_exactly() {
        let registered = uris(&["https://app.example/cb"]);
        assert!(redirect_matches(&registered, "https://app.example/cb"));
        for near in [
            "https://app.example/cb/",
            "https://app.example/c",
            "https://app.example/cb/more",
            "https://APP.example/cb",
            "https://app.example/CB",
            "https://app.example:443/cb",
            "https://app.example:8443/cb",
            "http://app.example/cb",
            "https://app.example/cb?x=1",
            "https://app.example/cb#x",
            "https://app.example.evil/cb",
        ] {
            assert!(!redirect_matches(&registered, near), "{near}");
        }
    }

    #[test]
    fn a_loopback_ip_redirect_matches_on_any_port_but_localhost_does_not() {
        let registered = uris(&[
            "http://127.0.0.1/cb",
            "http://[::1]:8000/cb",
            "http://localhost:3000/cb",
        ]);
        assert!(redirect_matches(&registered, "http://127.0.0.1:51234/cb"));
        assert!(redirect_matches(&registered, "http://127.0.0.1/cb"));
        assert!(redirect_matches(&registered, "http://[::1]:9/cb"));
        assert!(!redirect_matches(&registered, "http://127.0.0.1:51234/cb2"));
        assert!(!redirect_matches(
            &registered,
            "http://127.0.0.1:51234/cb?x"
        ));
        assert!(!redirect_matches(&registered, "http://localhost:3001/cb"));
        assert!(redirect_matches(&registered, "http://localhost:3000/cb"));
        assert!(!redirect_matches(&registered, "https://127.0.0.1:51234/cb"));
    }

    #[test]
    fn only_safe_redirect_uris_register() {
        for good in [
            "https://app.example/cb",
            "http://127.0.0.1:8000/cb",
            "http://[::1]/cb",
            "http://localhost:3000/cb",
            "com.example.app:/oauth2redirect",
        ] {
            assert_eq!(check_redirect_uri(good), Ok(()), "{good}");
        }
        for bad in [
            "/relative",
            "https://app.example/cb#frag",
            "http://app.example/cb",
            "javascript:alert(1)",
            "data:text/html,hi",
            "file:///etc/passwd",
            "HTTPS://APP.example/cb",
            "https://app.example",
        ] {
            assert!(check_redirect_uri(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn pkce_s256_takes_only_the_right_verifier() {
        // RFC 7636 Appendix B.
        let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
        let challenge = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
        assert_eq!(check_code_challenge(challenge), Ok(()));
        assert!(pkce_matches(verifier, challenge));
        assert!(!pkce_matches(
            "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXj",
            challenge
        ));
        // The plain method's answer (the challenge itself) is refused.
        assert!(!pkce_matches(challenge, challenge));
        assert!(!pkce_matches("short", challenge));
        assert!(check_code_challenge("plain-text").is_err());
    }

    #[test]
    fn parameters_read_once_and_carry_through_sign_in() {
        let p = AuthorizationParams::from_pairs([
            ("client_id", "app"),
            ("scope", "openid"),
            ("prompt", "login consent"),
            ("unknown", "x"),
            ("state", ""),
        ]);
        assert_eq!(p.client_id.as_deref(), Some("app"));
        assert_eq!(p.state, None);
        assert_eq!(p.repeated, None);
        assert_eq!(p.after_sign_in().prompt.as_deref(), Some("consent"));
        let aged = AuthorizationParams::from_pairs([("max_age", "0")]);
        assert_eq!(aged.after_sign_in().max_age, None);
        let q = p.to_query();
        assert_eq!(
            AuthorizationParams::from_pairs(url::form_urlencoded::parse(q.as_bytes())),
            p
        );

        let twice = AuthorizationParams::from_pairs([("scope", "a"), ("scope", "b")]);
        assert_eq!(twice.repeated.as_deref(), Some("scope"));
        assert_eq!(twice.scope.as_deref(), Some("a"));
        let empty_first = AuthorizationParams::from_pairs([("scope", ""), ("scope", "b")]);
        assert_eq!(empty_first.repeated.as_deref(), Some("scope"));
        assert_eq!(empty_first.scope, None);
    }

    #[test]
    fn prompt_values_are_checked() {
        assert_eq!(Prompt::parse(None), Ok(Prompt::default()));
        assert!(Prompt::parse(Some("none")).unwrap().none);
        assert!(Prompt::parse(Some("none login")).is_err());
        assert!(Prompt::parse(Some("bogus")).is_err());
        assert_eq!(parse_max_age(Some("0")), Ok(Some(0)));
        assert!(parse_max_age(Some("-1")).is_err());
    }

    #[test]
    fn the_redirect_keeps_the_clients_query() {
        assert_eq!(
            redirect_with(
                "https://app.example/cb?tenant=a",
                &[("code", "c d"), ("state", "s")]
            ),
            Some("https://app.example/cb?tenant=a&code=c+d&state=s".into())
        );
        assert_eq!(
            redirect_with("https://app.example/out", &[]),
            Some("https://app.example/out".into())
        );
    }
}
