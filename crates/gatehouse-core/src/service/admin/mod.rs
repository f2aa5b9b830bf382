//! The admin API's behaviour: who may use it, and what it does to clients and users. Every change
//! is recorded in the audit log with the acting administrator.

mod audit;
mod clients;
mod keys;
mod roles;
mod sessions;
mod users;

use std::borrow::Cow;

use gatehouse_proto::admin::{PAGE_DEFAULT, PAGE_MAX, Page, PageRequest};

use super::AuthService;
use crate::{ADMIN_ROLE, ApiError, FieldError, RequestContext, ScopeSet, TokenProblem};

/// Who is acting through the admin API: a person with the `admin` role, or a machine client that
/// holds it (for automation).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    pub id: String,
}

/// The scope a token needs, besides its holder's role, to use the admin API.
pub const ADMIN_SCOPE: &str = "admin";

/// The cursor and size of the page asked for.
pub fn page_bounds(request: &PageRequest) -> Result<(String, u32), ApiError> {
    let limit = request.limit.unwrap_or(PAGE_DEFAULT);
    if limit == 0 || limit > PAGE_MAX {
        return Err(ApiError::BadRequest(
            format!("limit must be between 1 and {PAGE_MAX}").into(),
        ));
    }
    Ok((request.cursor.clone().unwrap_or_default(), limit))
}

fn page<T, K: Fn(&T) -> String>(items: Vec<T>, limit: u32, key: K) -> Page<T> {
    let next_cursor = (items.len() == limit as usize)
        .then(|| items.last().map(&key))
        .flatten();
    Page { items, next_cursor }
}

fn not_found(what: &str) -> ApiError {
    ApiError::NotFound(format!("no such {what}").into())
}

impl AuthService {
    /// The administrator a bearer token speaks for; 401 for a bad token, 403 without the role.
    pub async fn authorize_admin(&self, token: &str) -> Result<Actor, ApiError> {
        let live = self
            .check_access_token(token)
            .await
            .map_err(ApiError::Unauthorized)?;
        let is_admin = match &live.user {
            // The stored roles, not the token's: a demoted admin loses access at once.
            Some(user) => user.roles.iter().any(|r| r == ADMIN_ROLE),
            None => live.client.client.roles.iter().any(|r| r == ADMIN_ROLE),
        };
        if !is_admin {
            return Err(ApiError::Forbidden(
                "the admin API needs the admin role".into(),
            ));
        }
        // The role alone is not enough: a token narrowed to other scopes (one handed to a
        // downstream service, say) must not carry the account's admin powers.
        if !live.claims.scopes().any(|s| s == ADMIN_SCOPE) {
            return Err(ApiError::Unauthorized(TokenProblem::InsufficientScope(
                "the admin API needs a token with the admin scope".into(),
            )));
        }
        Ok(Actor {
            id: live.user.map_or(live.claims.sub, |u| u.id),
        })
    }

    pub(super) async fn admin_audit(
        &self,
        actor: &Actor,
        kind: &str,
        subject: &str,
        ctx: &RequestContext,
        detail: &str,
    ) {
        self.record_audit(kind, Some(subject), None, Some(&actor.id), ctx, detail)
            .await;
    }

    async fn known_roles(
        &self,
        roles: &[String],
        errors: &mut Vec<FieldError>,
    ) -> Result<(), ApiError> {
        let existing = self.store.roles().await?;
        let unknown: Vec<&str> = roles
            .iter()
            .filter(|r| !existing.iter().any(|e| &e.name == *r))
            .map(String::as_str)
            .collect();
        if !unknown.is_empty() {
            errors.push(FieldError {
                field: "roles",
                detail: format!("unknown roles: {}", unknown.join(", ")).into(),
            });
        }
        Ok(())
    }
}

impl From<TokenProblem> for ApiError {
    fn from(p: TokenProblem) -> Self {
        ApiError::Unauthorized(p)
    }
}

/// Space-separated scopes from an admin request; a fault is recorded against `scope`.
fn parse_scopes(text: &str, errors: &mut Vec<FieldError>) -> Option<ScopeSet> {
    match ScopeSet::parse(text) {
        Ok(s) => Some(s),
        Err(e) => {
            errors.push(FieldError {
                field: "scope",
                detail: Cow::Owned(e.to_string()),
            });
            None
        }
    }
}

/// Roles as held: each once, where it was first named.
fn distinct(roles: Vec<String>) -> Vec<String> {
    let mut held: Vec<String> = Vec::with_capacity(roles.len());
    for role in roles {
        if !held.contains(&role) {
            held.push(role);
        }
    }
    held
}
