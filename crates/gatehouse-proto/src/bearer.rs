//! Bearer tokens in requests (RFC 6750 §2.1) and the challenges that refuse them (§3).

use std::fmt;

use http::HeaderMap;
use http::header::AUTHORIZATION;

/// The realm named in every challenge Gatehouse sends.
pub const REALM: &str = "gatehouse";

/// Why an `Authorization` header holds no usable bearer token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BearerError {
    /// Two headers could name two identities; which one a proxy or a service reads differs.
    #[error("the request carries more than one Authorization header")]
    Repeated,
    #[error("the Authorization header is not readable")]
    Unreadable,
    /// Credentials of another scheme (Basic, …) where a bearer token is expected.
    #[error("the Authorization header must be: Bearer <token>")]
    OtherScheme,
    #[error("the bearer token is empty")]
    Empty,
}

/// The request's bearer token: `Ok(None)` when it sends no `Authorization` header at all.
pub fn bearer_token(headers: &HeaderMap) -> Result<Option<&str>, BearerError> {
    let mut values = headers.get_all(AUTHORIZATION).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(BearerError::Repeated);
    }
    let text = value.to_str().map_err(|_| BearerError::Unreadable)?;
    let (scheme, token) = text.split_once(' ').unwrap_or((text, ""));
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(BearerError::OtherScheme);
    }
    match token.trim() {
        "" => Err(BearerError::Empty),
        token => Ok(Some(token)),
    }
}

/// A `WWW-Authenticate: Bearer` challenge (RFC 6750 §3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Challenge<'a> {
    /// No credentials were sent: no error code (§3.1).
    Bare,
    InvalidToken(&'a str),
    /// `scope`, when given, names what would have been enough.
    InsufficientScope {
        description: &'a str,
        scope: Option<&'a str>,
    },
}

impl fmt::Display for Challenge<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, r#"Bearer realm="{REALM}""#)?;
        match self {
            Self::Bare => Ok(()),
            Self::InvalidToken(description) => write!(
                f,
                r#", error="invalid_token", error_description="{}""#,
                quote_safe(description)
            ),
            Self::InsufficientScope { description, scope } => {
                write!(
                    f,
                    r#", error="insufficient_scope", error_description="{}""#,
                    quote_safe(description)
                )?;
                match scope {
                    Some(scope) => write!(f, r#", scope="{}""#, quote_safe(scope)),
                    None => Ok(()),
                }
            }
        }
    }
}

/// §3: attribute values may not hold `"` or `\`, and only printable ASCII.
fn quote_safe(text: &str) -> String {
    text.chars()
        .filter(|c| *c != '"' && *c != '\\' && (' '..='~').contains(c))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn headers(values: &[&str]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for value in values {
            map.append(AUTHORIZATION, HeaderValue::from_str(value).unwrap());
        }
        map
    }

    #[test]
    fn reads_one_bearer_token_and_nothing_else() {
        assert_eq!(bearer_token(&headers(&[])), Ok(None));
        assert_eq!(bearer_token(&headers(&["Bearer abc"])), Ok(Some("abc")));
        assert_eq!(bearer_token(&headers(&["bearer  abc "])), Ok(Some("abc")));
        assert_eq!(
            bearer_token(&headers(&["Basic YTpi"])),
            Err(BearerError::OtherScheme)
        );
        assert_eq!(bearer_token(&headers(&["Bearer"])), Err(BearerError::Empty));
        assert_eq!(
            bearer_token(&headers(&["Bearer  "])),
            Err(BearerError::Empty)
        );
        assert_eq!(
            bearer_token(&headers(&["Bearer a", "Bearer b"])),
            Err(BearerError::Repeated)
        );
        let mut unreadable = HeaderMap::new();
        unreadable.insert(
            AUTHORIZATION,
            HeaderValue::from_bytes(b"Bearer \xff").unwrap(),
        );
        assert_eq!(bearer_token(&unreadable), Err(BearerError::Unreadable));
    }

    #[test]
    fn challenges_quote_safely() {
        assert_eq!(Challenge::Bare.to_string(), r#"Bearer realm="gatehouse""#);
        assert_eq!(
            Challenge::InvalidToken(r#"bad "token" \ here"#).to_string(),
            r#"Bearer realm="gatehouse", error="invalid_token", error_description="bad token  here""#
        );
        assert_eq!(
            Challenge::InsufficientScope {
                description: "needs more",
                scope: Some("a b"),
            }
            .to_string(),
            r#"Bearer realm="gatehouse", error="insufficient_scope", error_description="needs more", scope="a b""#
        );
    }
}
