//! What a route asks of a verified token: audience, scopes, roles.

use gatehouse_token::AccessClaims;
use serde::Deserialize;

use crate::rejection::Rejection;

/// Scopes a route needs: every one of them, or at least one.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum ScopeRule {
    AllOf(Vec<String>),
    AnyOf(Vec<String>),
}

/// The requirements of one route. The default asks only for a valid token (whose `aud` holds
/// the verifier's audience).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Policy {
    /// `aud` must contain this instead of the verifier's audience.
    pub audience: Option<String>,
    pub scopes: Option<ScopeRule>,
    /// The holder needs at least one of these roles.
    pub roles: Vec<String>,
}

impl Policy {
    /// Needs every one of `scopes`.
    pub fn scopes<I: IntoIterator<Item = S>, S: Into<String>>(scopes: I) -> Self {
        Self {
            scopes: Some(ScopeRule::AllOf(
                scopes.into_iter().map(Into::into).collect(),
            )),
            ..Self::default()
        }
    }

    /// Needs at least one of `roles`.
    pub fn roles<I: IntoIterator<Item = S>, S: Into<String>>(roles: I) -> Self {
        Self {
            roles: roles.into_iter().map(Into::into).collect(),
            ..Self::default()
        }
    }

    pub fn check(&self, claims: &AccessClaims) -> Result<(), Rejection> {
        if let Some(audience) = &self.audience
            && !claims.aud.contains(audience)
        {
            return Err(Rejection::InvalidToken(
                gatehouse_token::VerifyError::WrongAudience.to_string(),
            ));
        }
        match &self.scopes {
            Some(ScopeRule::AllOf(needed)) if !needed.iter().all(|s| has_scope(claims, s)) => {
                return Err(Rejection::InsufficientScope {
                    required: needed.join(" "),
                    description: format!("the token needs the scopes: {}", needed.join(" ")),
                });
            }
            Some(ScopeRule::AnyOf(needed)) if !needed.iter().any(|s| has_scope(claims, s)) => {
                return Err(Rejection::InsufficientScope {
                    required: needed.join(" "),
                    description: format!("the token needs one of the scopes: {}", needed.join(" ")),
                });
            }
            _ => {}
        }
        if !self.roles.is_empty() && !self.roles.iter().any(|r| claims.has_role(r)) {
            return Err(Rejection::MissingRole {
                description: format!("this needs the role: {}", self.roles.join(" or ")),
            });
        }
        Ok(())
    }
}

fn has_scope(claims: &AccessClaims, wanted: &str) -> bool {
    claims.scopes().any(|s| s == wanted)
}
