//! Users in the console: list and search, block and unblock, roles, sessions, revoke everything.

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use gatehouse_proto::admin::{AdminUserView, SessionQuery, UserPatch};

use super::clients::{RoleChoice, role_choices};
use super::{
    Admin, Chrome, ConsoleError, Done, ListQuery, Listing, PAGE_ROWS, Posted, after, all_of,
    matches, segment,
};
use crate::WebState;
use crate::authorize::see_other;
use crate::pages::{device, render, when};

pub struct UserRow {
    pub href: String,
    pub username: String,
    pub email: String,
    pub roles: String,
    pub blocked: bool,
    pub created: String,
}

impl From<&AdminUserView> for UserRow {
    fn from(u: &AdminUserView) -> Self {
        Self {
            href: format!("/console/users/{}", segment(&u.id)),
            username: u.username.clone(),
            email: u.email.clone(),
            roles: u.roles.join(", "),
            blocked: u.blocked,
            created: when(u.created_at),
        }
    }
}

#[derive(Template)]
#[template(path = "console_users.html")]
pub struct UsersPage {
    pub chrome: Chrome,
    pub q: String,
    pub rows: Vec<UserRow>,
    pub next: Option<String>,
    pub partial: bool,
}

pub async fn list(
    State(state): State<WebState>,
    admin: Admin,
    Query(query): Query<ListQuery>,
) -> Result<Response, ConsoleError> {
    let service = &state.service;
    let Listing {
        rows,
        next,
        partial,
    } = Listing::read(
        "/console/users",
        &query,
        |request| async move { service.admin_list_users(&request).await },
        |u: &AdminUserView, needle: &str| matches(needle, &[&u.id, &u.username, &u.email]),
    )
    .await?;
    Ok(render(&UsersPage {
        chrome: admin.chrome(&state, "users"),
        q: query.q,
        rows,
        next,
        partial,
    })
    .into_response())
}

pub struct SessionRow {
    pub id: String,
    pub client_id: String,
    pub scope: String,
    pub device: String,
    pub ip: String,
    pub started: String,
    pub last_used: String,
}

#[derive(Template)]
#[template(path = "console_user.html")]
pub struct UserPage {
    pub chrome: Chrome,
    pub user: AdminUserView,
    pub href: String,
    pub audit_href: String,
    pub created: String,
    pub blocked_since: Option<String>,
    pub roles: Vec<RoleChoice>,
    pub sessions: Vec<SessionRow>,
    pub more_sessions: bool,
    pub notice: Option<&'static str>,
    pub problem: Option<String>,
}

/// What the user's page says after each of its forms.
const NOTICES: &[(&str, &str)] = &[
    ("roles", "The roles are saved."),
    (
        "blocked",
        "The user is blocked: every session and token is dead.",
    ),
    ("unblocked", "The user is unblocked and may sign in again."),
    (
        "revoked",
        "Every session and token of this user is revoked.",
    ),
    ("session", "The session is revoked."),
];

pub async fn show(
    State(state): State<WebState>,
    admin: Admin,
    Path(id): Path<String>,
    Query(done): Query<Done>,
) -> Result<Response, ConsoleError> {
    let notice = done.notice(NOTICES);
    let page = user_page(&state, &admin, &id, notice, None).await?;
    Ok(render(&page).into_response())
}

async fn user_page(
    state: &WebState,
    admin: &Admin,
    id: &str,
    notice: Option<&'static str>,
    problem: Option<String>,
) -> Result<UserPage, ConsoleError> {
    let user = state.service.admin_get_user(id).await?;
    let sessions = state
        .service
        .admin_list_sessions(&SessionQuery {
            user_id: Some(user.id.clone()),
            limit: Some(PAGE_ROWS),
            ..SessionQuery::default()
        })
        .await?;
    Ok(UserPage {
        chrome: admin.chrome(state, "users"),
        href: format!("/console/users/{}", segment(&user.id)),
        audit_href: format!("/console/audit?subject={}", super::query_value(&user.id)),
        created: when(user.created_at),
        blocked_since: user.blocked_at.map(when),
        roles: role_choices(state, &user.roles).await?,
        more_sessions: sessions.next_cursor.is_some(),
        sessions: sessions
            .items
            .into_iter()
            .filter(|s| s.revoked_at.is_none())
            .map(|s| SessionRow {
                device: device(s.user_agent.as_deref()),
                ip: s.ip.unwrap_or_else(|| "unknown address".into()),
                started: when(s.created_at),
                last_used: when(s.last_used_at),
                id: s.id,
                client_id: s.client_id,
                scope: s.scope,
            })
            .collect(),
        notice,
        problem,
        user,
    })
}

/// The user's page, with `done` naming what was done.
fn done_at(id: &str, done: &str) -> String {
    format!("/console/users/{}?done={done}", segment(id))
}

/// Applies `patch` through the admin rules; a refused value re-shows the page with the problem.
async fn patch(
    post: &Posted,
    id: &str,
    patch: UserPatch,
    done: &str,
) -> Result<Response, ConsoleError> {
    let (state, admin) = (&post.state, &post.admin);
    let result = state
        .service
        .admin_patch_user(&admin.actor, id, patch, &admin.visitor.ctx)
        .await;
    let refused = Some(StatusCode::UNPROCESSABLE_ENTITY);
    after(result, &done_at(id, done), refused, async |problem| {
        Ok(render(
            &user_page(state, admin, id, None, Some(problem)).await?,
        ))
    })
    .await
}

pub async fn roles(Path(id): Path<String>, post: Posted) -> Result<Response, ConsoleError> {
    let changes = UserPatch {
        roles: Some(all_of(&post.form, "roles")),
        ..UserPatch::default()
    };
    patch(&post, &id, changes, "roles").await
}

pub async fn block(Path(id): Path<String>, post: Posted) -> Result<Response, ConsoleError> {
    let (blocked, done) = post.blocked()?;
    let changes = UserPatch {
        blocked: Some(blocked),
        ..UserPatch::default()
    };
    patch(&post, &id, changes, done).await
}

pub async fn revoke_all(Path(id): Path<String>, post: Posted) -> Result<Response, ConsoleError> {
    // This form only ever names the user on its page.
    post.state.service.admin_get_user(&id).await?;
    post.revoke_all(&id, &done_at(&id, "revoked")).await
}

pub async fn revoke_session(
    Path(id): Path<String>,
    post: Posted,
) -> Result<Response, ConsoleError> {
    let Posted { state, admin, form } = post;
    state
        .service
        .admin_revoke_session(&admin.actor, &form.text("session"), &admin.visitor.ctx)
        .await?;
    Ok(see_other(&done_at(&id, "session")))
}
