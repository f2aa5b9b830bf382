//! The operators' console under `/console`: clients, users, roles, signing keys, the audit log,
//! a live view of the revocation feed and a dashboard of this node's figures, for people who
//! hold the `admin` role.
//!
//! Every action calls the same `AuthService` admin functions as the admin API (`/admin/…`), so
//! the rules and the audit records are the same; the console only turns forms into their
//! arguments and answers into pages. A visitor who is not signed in is sent to sign in; one
//! without the role gets a 403 page; every form post is checked for its anti-forgery token and
//! origin before anything else is read.

mod clients;
mod dashboard;
mod error;
mod feed;
mod people;
mod settings;

use axum::Router;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use gatehouse_core::service::Actor;
use gatehouse_core::{ADMIN_ROLE, ApiError};
use gatehouse_proto::admin::{PAGE_MAX, Page, PageRequest};
use serde::Deserialize;

use crate::WebState;
use crate::authorize::see_other;
use crate::browser::{Form, Visitor};
pub use error::ConsoleError;

/// The console's script: the live feed and the dashboard's refresh. Pages work without it.
pub const SCRIPT: &str = include_str!("../../assets/console.js");
pub const SCRIPT_PATH: &str = "/assets/console.js";

/// Lists scanned for a search, at most: search reads pages of the admin API's lists, which are
/// in id order with no text index.
const SEARCH_SCAN: usize = 2000;
/// Rows a list shows at once.
const PAGE_ROWS: u32 = 50;

pub fn routes() -> Router<WebState> {
    Router::new()
        .route("/console", get(dashboard::dashboard))
        .route("/console/clients", get(clients::list).post(clients::create))
        .route("/console/clients/new", get(clients::new_form))
        .route(
            "/console/clients/{id}",
            get(clients::show).post(clients::edit),
        )
        .route("/console/clients/{id}/block", post(clients::block))
        .route("/console/clients/{id}/rotate-secret", post(clients::rotate))
        .route(
            "/console/clients/{id}/revoke-all",
            post(clients::revoke_all),
        )
        .route("/console/clients/{id}/delete", post(clients::delete))
        .route("/console/users", get(people::list))
        .route("/console/users/{id}", get(people::show))
        .route("/console/users/{id}/roles", post(people::roles))
        .route("/console/users/{id}/block", post(people::block))
        .route("/console/users/{id}/revoke-all", post(people::revoke_all))
        .route(
            "/console/users/{id}/sessions/revoke",
            post(people::revoke_session),
        )
        .route(
            "/console/roles",
            get(settings::roles).post(settings::create_role),
        )
        .route("/console/roles/{name}", post(settings::update_role))
        .route("/console/roles/{name}/delete", post(settings::delete_role))
        .route("/console/keys", get(settings::keys))
        .route("/console/keys/rotate", post(settings::rotate_key))
        .route("/console/audit", get(settings::audit))
        .route("/console/feed", get(feed::page))
        .route("/console/feed/events", get(feed::events))
        .route(SCRIPT_PATH, get(script))
}

async fn script() -> axum::response::Response {
    use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
    use axum::response::IntoResponse;
    (
        [
            (CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (CACHE_CONTROL, "public, max-age=3600"),
        ],
        SCRIPT,
    )
        .into_response()
}

/// A signed-in administrator, as every console handler takes one.
pub struct Admin {
    pub visitor: Visitor,
    pub actor: Actor,
    pub username: String,
}

impl FromRequestParts<WebState> for Admin {
    type Rejection = ConsoleError;

    async fn from_request_parts(parts: &mut Parts, state: &WebState) -> Result<Self, ConsoleError> {
        let visitor = Visitor::from_request_parts(parts, state).await?;
        let Some(current) = &visitor.signed_in else {
            // Back to this page after signing in; a form post goes back to the console.
            let back = if parts.method == axum::http::Method::GET {
                parts
                    .uri
                    .path_and_query()
                    .map_or("/console", |p| p.as_str())
                    .to_owned()
            } else {
                "/console".to_owned()
            };
            return Err(ConsoleError::SignInFirst(back));
        };
        // The stored roles (the session carries none): a demoted admin loses the console at once.
        if !current.user.roles.iter().any(|r| r == ADMIN_ROLE) {
            return Err(ConsoleError::NotAdmin {
                csrf: visitor.form_token(state),
                username: current.user.username.clone(),
            });
        }
        let actor = Actor {
            id: current.user.id.clone(),
        };
        let username = current.user.username.clone();
        Ok(Self {
            visitor,
            actor,
            username,
        })
    }
}

impl Admin {
    /// The top of every console page: who, the sign-out form's token, which section.
    pub fn chrome(&self, state: &WebState, section: &'static str) -> Chrome {
        Chrome {
            csrf: self.visitor.form_token(state),
            username: self.username.clone(),
            section,
        }
    }

    /// Refuses a form that did not come from our own pages.
    pub fn check(&self, state: &WebState, form: &Form) -> Result<(), ConsoleError> {
        Ok(self.visitor.check_form(state, form)?)
    }
}

/// A console form post, already checked: from a signed-in administrator, with its
/// anti-forgery token and origin checked before any handler reads a field.
pub struct Posted {
    pub state: WebState,
    pub admin: Admin,
    pub form: Form,
}

impl FromRequest<WebState> for Posted {
    type Rejection = ConsoleError;

    async fn from_request(request: Request, state: &WebState) -> Result<Self, ConsoleError> {
        let (mut parts, body) = request.into_parts();
        let admin = Admin::from_request_parts(&mut parts, state).await?;
        let form = Form::from_request(Request::from_parts(parts, body), state).await?;
        admin.check(state, &form)?;
        Ok(Self {
            state: state.clone(),
            admin,
            form,
        })
    }
}

impl Posted {
    /// The block form's choice, and the word its page's notice is found by.
    pub fn blocked(&self) -> Result<(bool, &'static str), ConsoleError> {
        match self.form.get("blocked") {
            Some("true") => Ok((true, "blocked")),
            Some("false") => Ok((false, "unblocked")),
            _ => Err(ApiError::BadRequest("blocked must be true or false".into()).into()),
        }
    }

    /// Revokes every session and token of `subject` (a client or a user the caller has found),
    /// then sends the browser to `to`.
    pub async fn revoke_all(&self, subject: &str, to: &str) -> Result<Response, ConsoleError> {
        let admin = &self.admin;
        self.state
            .service
            .admin_revoke_all(&admin.actor, subject, &admin.visitor.ctx)
            .await?;
        Ok(see_other(to))
    }
}

/// How a form's action ends. Done: the browser goes to `to`, whose page says what was done.
/// Refused for a reason the form can fix (a value, or with `conflict` a clash, shown with that
/// status): `again` shows the form's page with the problem. Anything else: the error page.
pub async fn after<T, R: IntoResponse>(
    result: Result<T, ApiError>,
    to: &str,
    conflict: Option<StatusCode>,
    again: impl AsyncFnOnce(String) -> Result<R, ConsoleError>,
) -> Result<Response, ConsoleError> {
    let e = match result {
        Ok(_) => return Ok(see_other(to)),
        Err(e) => e,
    };
    let status = match (&e, conflict) {
        (ApiError::Validation(_) | ApiError::BadRequest(_), _) => StatusCode::UNPROCESSABLE_ENTITY,
        (ApiError::Conflict(_), Some(status)) => status,
        _ => return Err(e.into()),
    };
    Ok((status, again(error::describe(&e)).await?).into_response())
}

/// A list page's address: a search, or a place in the list, and what was just done.
#[derive(Debug, Default, Deserialize)]
pub struct ListQuery {
    #[serde(default)]
    pub q: String,
    pub cursor: Option<String>,
    #[serde(flatten)]
    pub done: Done,
}

/// A list page's rows: one page of the list, or for a search the items that match among at
/// most [`SEARCH_SCAN`].
pub struct Listing<R> {
    pub rows: Vec<R>,
    /// The next page's address.
    pub next: Option<String>,
    /// A search that stopped before the end of the list.
    pub partial: bool,
}

impl<R> Listing<R> {
    /// Reads the list at `path` through `fetch` (an admin API list); `found` says whether an
    /// item matches a search (already lower case).
    pub async fn read<T, F>(
        path: &str,
        query: &ListQuery,
        fetch: impl Fn(PageRequest) -> F,
        found: fn(&T, &str) -> bool,
    ) -> Result<Self, ConsoleError>
    where
        F: Future<Output = Result<Page<T>, ApiError>>,
        R: for<'t> From<&'t T>,
    {
        let needle = query.q.trim().to_lowercase();
        if needle.is_empty() {
            let page = fetch(PageRequest {
                limit: Some(PAGE_ROWS),
                cursor: query.cursor.clone(),
            })
            .await?;
            return Ok(Self {
                rows: page.items.iter().map(R::from).collect(),
                next: (page.next_cursor).map(|c| format!("{path}?cursor={}", query_value(&c))),
                partial: false,
            });
        }
        let mut rows = Vec::new();
        let mut cursor = None;
        let mut scanned = 0;
        loop {
            let page = fetch(PageRequest {
                limit: Some(PAGE_MAX),
                cursor,
            })
            .await?;
            scanned += page.items.len();
            rows.extend(
                page.items
                    .iter()
                    .filter(|item| found(item, &needle))
                    .map(R::from),
            );
            let partial = match page.next_cursor {
                Some(next) if scanned < SEARCH_SCAN => {
                    cursor = Some(next);
                    continue;
                }
                Some(_) => true,
                None => false,
            };
            return Ok(Self {
                rows,
                next: None,
                partial,
            });
        }
    }
}

/// A page's `?done=` word, which names what the form before it did.
#[derive(Debug, Default, Deserialize)]
pub struct Done {
    done: Option<String>,
}

impl Done {
    /// The sentence `notices` gives for the word, if any.
    pub fn notice(&self, notices: &[(&str, &'static str)]) -> Option<&'static str> {
        let done = self.done.as_deref()?;
        notices
            .iter()
            .find(|(word, _)| *word == done)
            .map(|(_, n)| *n)
    }
}

/// What every console page's header and section menu need.
pub struct Chrome {
    pub csrf: String,
    pub username: String,
    pub section: &'static str,
}

impl Chrome {
    pub const SECTIONS: [(&'static str, &'static str, &'static str); 7] = [
        ("dashboard", "/console", "Dashboard"),
        ("clients", "/console/clients", "Clients"),
        ("users", "/console/users", "Users"),
        ("roles", "/console/roles", "Roles"),
        ("keys", "/console/keys", "Signing keys"),
        ("audit", "/console/audit", "Audit log"),
        ("feed", "/console/feed", "Revocation feed"),
    ];

    pub fn sections(&self) -> &'static [(&'static str, &'static str, &'static str)] {
        &Self::SECTIONS
    }

    /// Whether `key` is the section shown.
    pub fn current(&self, key: &str) -> bool {
        self.section == key
    }
}

/// One value per line (or separated by spaces), trimmed, empty lines dropped.
pub fn lines(text: &str) -> Vec<String> {
    text.split(['\n', '\r', ' ', '\t'])
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Every value a repeated form field (checkboxes) carries.
pub fn all_of(form: &Form, name: &str) -> Vec<String> {
    form.pairs
        .iter()
        .filter(|(n, _)| n == name)
        .map(|(_, v)| v.clone())
        .collect()
}

/// Whether `needle` (already lower case) is in any of `haystack`, ignoring case.
pub fn matches(needle: &str, haystack: &[&str]) -> bool {
    needle.is_empty() || haystack.iter().any(|h| h.to_lowercase().contains(needle))
}

/// A path segment for a link or a form action: ids are made by the server, but a name is not.
pub fn segment(value: &str) -> String {
    url::form_urlencoded::byte_serialize(value.as_bytes())
        .collect::<String>()
        .replace('+', "%20")
}

/// A query value.
pub fn query_value(value: &str) -> String {
    url::form_urlencoded::byte_serialize(value.as_bytes()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_and_searches_read_as_people_write_them() {
        assert_eq!(
            lines(" https://a.example/cb\r\n\nhttps://b.example/cb "),
            ["https://a.example/cb", "https://b.example/cb"]
        );
        assert!(matches("shop", &["id-1", "The Shop"]));
        assert!(!matches("shop", &["id-1", "Rates"]));
        assert!(matches("", &[]));
        assert_eq!(segment("a b/c"), "a%20b%2Fc");
    }
}
