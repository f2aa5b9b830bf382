//! Roles, signing keys and the audit log in the console.

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use gatehouse_core::ApiError;
use gatehouse_proto::admin::{AuditQuery, KeyInfo, RoleUpdate, RoleView};
use serde::Deserialize;

use super::error::describe;
use super::{
    Admin, Chrome, ConsoleError, Done, PAGE_ROWS, Posted, after, lines, query_value, segment,
};
use crate::WebState;
use crate::authorize::see_other;
use crate::pages::{render, when};

pub struct RoleRow {
    pub name: String,
    pub action: String,
    pub description: String,
    pub scope: String,
    /// Built in: cannot be deleted.
    pub fixed: bool,
}

#[derive(Template)]
#[template(path = "console_roles.html")]
pub struct RolesPage {
    pub chrome: Chrome,
    pub roles: Vec<RoleRow>,
    pub notice: Option<&'static str>,
    pub problem: Option<String>,
    pub new_name: String,
    pub new_description: String,
    pub new_scope: String,
}

/// What the roles page says after each of its forms.
const NOTICES: &[(&str, &str)] = &[
    ("created", "The role is created."),
    (
        "saved",
        "The role is saved. Its holders get the new scopes on their next token.",
    ),
    ("deleted", "The role is deleted."),
];

pub async fn roles(
    State(state): State<WebState>,
    admin: Admin,
    Query(done): Query<Done>,
) -> Result<Response, ConsoleError> {
    let notice = done.notice(NOTICES);
    let page = roles_page(&state, &admin, notice, None, ("", "", "")).await?;
    Ok(render(&page).into_response())
}

async fn roles_page(
    state: &WebState,
    admin: &Admin,
    notice: Option<&'static str>,
    problem: Option<String>,
    (new_name, new_description, new_scope): (&str, &str, &str),
) -> Result<RolesPage, ConsoleError> {
    let roles = state.service.admin_list_roles().await?;
    Ok(RolesPage {
        chrome: admin.chrome(state, "roles"),
        roles: roles
            .into_iter()
            .map(|r| RoleRow {
                action: format!("/console/roles/{}", segment(&r.name)),
                fixed: r.name == gatehouse_core::ADMIN_ROLE || r.name == "user",
                name: r.name,
                description: r.description,
                scope: r.scope,
            })
            .collect(),
        notice,
        problem,
        new_name: new_name.to_owned(),
        new_description: new_description.to_owned(),
        new_scope: new_scope.to_owned(),
    })
}

/// Back to the roles page, saying what was done; a refusal by the role rules re-shows it with
/// the problem (and the new role's fields as they were sent).
async fn after_role<T>(
    post: &Posted,
    result: Result<T, ApiError>,
    done: &str,
    new: (&str, &str, &str),
) -> Result<Response, ConsoleError> {
    let (state, admin) = (&post.state, &post.admin);
    let to = format!("/console/roles?done={done}");
    after(result, &to, Some(StatusCode::CONFLICT), async |problem| {
        Ok(render(
            &roles_page(state, admin, None, Some(problem), new).await?,
        ))
    })
    .await
}

pub async fn create_role(post: Posted) -> Result<Response, ConsoleError> {
    let (admin, form) = (&post.admin, &post.form);
    let name = form.text("name").trim().to_owned();
    let description = form.text("description").trim().to_owned();
    let scope = lines(&form.text("scope")).join(" ");
    let role = RoleView {
        name: name.clone(),
        description: description.clone(),
        scope: scope.clone(),
    };
    let result = post
        .state
        .service
        .admin_create_role(&admin.actor, role, &admin.visitor.ctx)
        .await;
    after_role(&post, result, "created", (&name, &description, &scope)).await
}

pub async fn update_role(Path(name): Path<String>, post: Posted) -> Result<Response, ConsoleError> {
    let (admin, form) = (&post.admin, &post.form);
    let update = RoleUpdate {
        description: form.text("description").trim().to_owned(),
        scope: lines(&form.text("scope")).join(" "),
    };
    let result = post
        .state
        .service
        .admin_update_role(&admin.actor, &name, update, &admin.visitor.ctx)
        .await;
    after_role(&post, result, "saved", ("", "", "")).await
}

pub async fn delete_role(Path(name): Path<String>, post: Posted) -> Result<Response, ConsoleError> {
    let admin = &post.admin;
    let result = post
        .state
        .service
        .admin_delete_role(&admin.actor, &name, &admin.visitor.ctx)
        .await;
    after_role(&post, result, "deleted", ("", "", "")).await
}

pub struct KeyRow {
    pub kid: String,
    pub alg: String,
    pub status: &'static str,
    pub created: String,
    pub activates: String,
    pub retires: String,
}

impl From<KeyInfo> for KeyRow {
    fn from(k: KeyInfo) -> Self {
        Self {
            kid: k.kid,
            alg: k.alg,
            status: k.status,
            created: when(k.created_at),
            activates: when(k.activates_at),
            retires: k.retired_at.map_or_else(|| "—".into(), when),
        }
    }
}

#[derive(Template)]
#[template(path = "console_keys.html")]
pub struct KeysPage {
    pub chrome: Chrome,
    pub keys: Vec<KeyRow>,
    pub notice: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
pub struct RotatedQuery {
    rotated: Option<String>,
}

pub async fn keys(
    State(state): State<WebState>,
    admin: Admin,
    Query(query): Query<RotatedQuery>,
) -> Result<Response, ConsoleError> {
    let keys = state.service.list_signing_keys().await?;
    let notice = query.rotated.as_deref().and_then(|kid| {
        keys.iter().find(|k| k.kid == kid).map(|k| {
            format!(
                "A new key ({}) is published and signs from {}. Older keys retire once the \
                 tokens they signed have expired.",
                k.kid,
                when(k.activates_at)
            )
        })
    });
    Ok(render(&KeysPage {
        chrome: admin.chrome(&state, "keys"),
        keys: keys.into_iter().map(KeyRow::from).collect(),
        notice,
    })
    .into_response())
}

pub async fn rotate_key(post: Posted) -> Result<Response, ConsoleError> {
    let Posted { state, admin, .. } = post;
    let key = state
        .service
        .rotate_signing_key(&admin.actor, &admin.visitor.ctx)
        .await?;
    Ok(see_other(&format!(
        "/console/keys?rotated={}",
        query_value(&key.kid)
    )))
}

#[derive(Debug, Default, Deserialize)]
pub struct AuditFilter {
    #[serde(default)]
    subject: String,
    #[serde(default, rename = "type")]
    kind: String,
    #[serde(default)]
    since: String,
    #[serde(default)]
    until: String,
    cursor: Option<String>,
}

pub struct AuditRow {
    pub at: String,
    pub kind: String,
    pub subject: String,
    pub client_id: String,
    pub actor: String,
    /// The acting administrator's username, when the actor is a person.
    pub actor_name: Option<String>,
    pub ip: String,
    pub detail: String,
}

#[derive(Template)]
#[template(path = "console_audit.html")]
pub struct AuditPage {
    pub chrome: Chrome,
    pub subject: String,
    pub kind: String,
    pub since: String,
    pub until: String,
    pub problem: Option<String>,
    pub rows: Vec<AuditRow>,
    pub next: Option<String>,
    pub filtered: bool,
}

/// A time as the filter takes it: `YYYY-MM-DD`, `YYYY-MM-DDTHH:MM` (what a date-time input
/// sends), or `YYYY-MM-DD HH:MM`, in UTC; `end` makes a bare day or minute inclusive.
fn parse_time(text: &str, end: bool) -> Result<Option<i64>, String> {
    let text = text.trim();
    if text.is_empty() {
        return Ok(None);
    }
    let bad = || format!("{text:?} is not a date (YYYY-MM-DD) or date and time (YYYY-MM-DD HH:MM)");
    let (day, clock) = match text.split_once(['T', ' ']) {
        Some((day, clock)) => (day, Some(clock)),
        None => (text, None),
    };
    let day_format = time::macros::format_description!("[year]-[month]-[day]");
    let date = time::Date::parse(day, &day_format).map_err(|_| bad())?;
    let (at, span) = match clock {
        None => (time::Time::MIDNIGHT, 86_400),
        Some(clock) => {
            let clock_format = time::macros::format_description!("[hour]:[minute]");
            (
                time::Time::parse(clock, &clock_format).map_err(|_| bad())?,
                60,
            )
        }
    };
    let start = date.with_time(at).assume_utc().unix_timestamp();
    Ok(Some(if end { start + span - 1 } else { start }))
}

pub async fn audit(
    State(state): State<WebState>,
    admin: Admin,
    Query(filter): Query<AuditFilter>,
) -> Result<Response, ConsoleError> {
    let times = parse_time(&filter.since, false)
        .and_then(|since| Ok((since, parse_time(&filter.until, true)?)));
    let (since, until) = match times {
        Ok(times) => times,
        Err(problem) => {
            let page = audit_page(&state, &admin, &filter, Some(problem), Vec::new(), None);
            return Ok((StatusCode::BAD_REQUEST, render(&page)).into_response());
        }
    };
    let text = |s: &str| (!s.trim().is_empty()).then(|| s.trim().to_owned());
    let query = AuditQuery {
        subject: text(&filter.subject),
        kind: text(&filter.kind),
        since,
        until,
        limit: Some(PAGE_ROWS),
        cursor: filter.cursor.clone(),
    };
    let page = match state.service.admin_list_audit(&query).await {
        Ok(page) => page,
        Err(e @ ApiError::BadRequest(_)) => {
            let page = audit_page(
                &state,
                &admin,
                &filter,
                Some(describe(&e)),
                Vec::new(),
                None,
            );
            return Ok((StatusCode::BAD_REQUEST, render(&page)).into_response());
        }
        Err(e) => return Err(e.into()),
    };
    let next = page.next_cursor.map(|cursor| {
        format!(
            "/console/audit?subject={}&type={}&since={}&until={}&cursor={}",
            query_value(&filter.subject),
            query_value(&filter.kind),
            query_value(&filter.since),
            query_value(&filter.until),
            query_value(&cursor)
        )
    });
    // People read names better than ids: each acting administrator is looked up once a page.
    let mut names: Vec<(String, Option<String>)> = Vec::new();
    for actor in page.items.iter().filter_map(|e| e.actor.as_deref()) {
        if !names.iter().any(|(id, _)| id == actor) {
            let name = state.service.store().user(actor).await?.map(|u| u.username);
            names.push((actor.to_owned(), name));
        }
    }
    let rows = page
        .items
        .into_iter()
        .map(|e| {
            let actor = e.actor.unwrap_or_default();
            AuditRow {
                at: when(e.at),
                kind: e.kind,
                subject: e.subject.unwrap_or_default(),
                client_id: e.client_id.unwrap_or_default(),
                actor_name: names
                    .iter()
                    .find(|(id, _)| *id == actor)
                    .and_then(|(_, name)| name.clone()),
                actor,
                ip: e.ip.unwrap_or_default(),
                detail: e.detail,
            }
        })
        .collect();
    let page = audit_page(&state, &admin, &filter, None, rows, next);
    Ok(render(&page).into_response())
}

fn audit_page(
    state: &WebState,
    admin: &Admin,
    filter: &AuditFilter,
    problem: Option<String>,
    rows: Vec<AuditRow>,
    next: Option<String>,
) -> AuditPage {
    AuditPage {
        chrome: admin.chrome(state, "audit"),
        filtered: [&filter.subject, &filter.kind, &filter.since, &filter.until]
            .iter()
            .any(|f| !f.trim().is_empty()),
        subject: filter.subject.clone(),
        kind: filter.kind.clone(),
        since: filter.since.clone(),
        until: filter.until.clone(),
        problem,
        rows,
        next,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filter_times_read_as_utc_and_bad_ones_are_named() {
        assert_eq!(parse_time("", false), Ok(None));
        assert_eq!(parse_time("1970-01-02", false), Ok(Some(86_400)));
        assert_eq!(parse_time("1970-01-01", true), Ok(Some(86_399)));
        assert_eq!(parse_time("1970-01-01T00:01", false), Ok(Some(60)));
        assert_eq!(parse_time("1970-01-01 00:01", true), Ok(Some(119)));
        assert!(
            parse_time("yesterday", false)
                .unwrap_err()
                .contains("yesterday")
        );
    }
}
