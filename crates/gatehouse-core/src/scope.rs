use std::collections::BTreeSet;
use std::fmt;

/// A set of OAuth scope tokens (RFC 6749 §3.3), kept sorted so its wire form is stable.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScopeSet(BTreeSet<String>);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("scope token {0:?} has characters RFC 6749 does not allow")]
pub struct BadScope(pub String);

impl ScopeSet {
    /// Parses a space-delimited scope string. Empty tokens (double spaces) are ignored.
    pub fn parse(text: &str) -> Result<Self, BadScope> {
        let mut set = BTreeSet::new();
        for token in text.split(' ').filter(|t| !t.is_empty()) {
            if !is_scope_token(token) {
                return Err(BadScope(token.chars().take(64).collect()));
            }
            set.insert(token.to_owned());
        }
        Ok(Self(set))
    }

    pub fn from_tokens<I, S>(tokens: I) -> Result<Self, BadScope>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut set = BTreeSet::new();
        for t in tokens {
            let t = t.as_ref();
            if t.is_empty() || !is_scope_token(t) {
                return Err(BadScope(t.chars().take(64).collect()));
            }
            set.insert(t.to_owned());
        }
        Ok(Self(set))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn contains(&self, scope: &str) -> bool {
        self.0.contains(scope)
    }

    pub fn is_subset(&self, other: &ScopeSet) -> bool {
        self.0.is_subset(&other.0)
    }

    /// The members of `self` that `allowed` does not contain.
    pub fn outside<'a>(&'a self, allowed: &'a ScopeSet) -> impl Iterator<Item = &'a str> {
        self.0.difference(&allowed.0).map(String::as_str)
    }

    pub fn intersection(&self, other: &ScopeSet) -> ScopeSet {
        ScopeSet(self.0.intersection(&other.0).cloned().collect())
    }

    pub fn union(&self, other: &ScopeSet) -> ScopeSet {
        ScopeSet(self.0.union(&other.0).cloned().collect())
    }

    pub fn iter(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(String::as_str)
    }
}

impl fmt::Display for ScopeSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for s in &self.0 {
            if !first {
                f.write_str(" ")?;
            }
            f.write_str(s)?;
            first = false;
        }
        Ok(())
    }
}

/// `scope-token = 1*( %x21 / %x23-5B / %x5D-7E )`, bounded in length.
fn is_scope_token(token: &str) -> bool {
    token.len() <= 128
        && token
            .bytes()
            .all(|b| b == 0x21 || (0x23..=0x5B).contains(&b) || (0x5D..=0x7E).contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_sorts_and_dedups() {
        let s = ScopeSet::parse("b a  b").unwrap();
        assert_eq!(s.to_string(), "a b");
        assert!(ScopeSet::parse("").unwrap().is_empty());
    }

    #[test]
    fn rejects_quotes_backslashes_and_control_characters() {
        assert!(ScopeSet::parse("a\"b").is_err());
        assert!(ScopeSet::parse("a\\b").is_err());
        assert!(ScopeSet::parse("a\tb").is_err());
        assert!(ScopeSet::parse("ünicode").is_err());
        assert!(ScopeSet::from_tokens(["ok", ""]).is_err());
    }

    #[test]
    fn subset_and_outside() {
        let allowed = ScopeSet::parse("read write").unwrap();
        let asked = ScopeSet::parse("read admin").unwrap();
        assert!(!asked.is_subset(&allowed));
        assert_eq!(asked.outside(&allowed).collect::<Vec<_>>(), vec!["admin"]);
        assert_eq!(asked.intersection(&allowed).to_string(), "read");
    }
}
