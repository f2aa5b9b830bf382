//! Clients in the console: list and search, create (the secret shown once), edit scopes, roles
//! and redirect URIs, block and unblock, rotate the secret, revoke everything, delete.

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::http::header::CACHE_CONTROL;
use axum::response::{IntoResponse, Response};
use gatehouse_core::ApiError;
use gatehouse_proto::admin::{ClientPatch, ClientView, NewClient};

use super::error::describe;
use super::{
    Admin, Chrome, ConsoleError, Done, ListQuery, Listing, Posted, after, all_of, lines, matches,
};
use crate::WebState;
use crate::authorize::see_other;
use crate::pages::{render, when};

pub struct ClientRow {
    pub id: String,
    pub href: String,
    pub name: String,
    pub grants: String,
    pub scopes: String,
    pub blocked: bool,
    pub created: String,
}

impl From<&ClientView> for ClientRow {
    fn from(c: &ClientView) -> Self {
        Self {
            href: format!("/console/clients/{}", super::segment(&c.client_id)),
            id: c.client_id.clone(),
            name: c.name.clone(),
            grants: c.grant_types.join(", "),
            scopes: c
                .scopes
                .clone()
                .unwrap_or_else(|| "(its users' scopes)".into()),
            blocked: c.blocked,
            created: when(c.created_at),
        }
    }
}

#[derive(Template)]
#[template(path = "console_clients.html")]
pub struct ClientsPage {
    pub chrome: Chrome,
    pub q: String,
    pub rows: Vec<ClientRow>,
    pub next: Option<String>,
    /// A search that stopped before the end of the list.
    pub partial: bool,
    pub notice: Option<&'static str>,
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
        "/console/clients",
        &query,
        |request| async move { service.admin_list_clients(&request).await },
        |c: &ClientView, needle: &str| matches(needle, &[&c.client_id, &c.name]),
    )
    .await?;
    let notice = query
        .done
        .notice(&[("deleted", "The client is deleted, with its sessions.")]);
    Ok(render(&ClientsPage {
        chrome: admin.chrome(&state, "clients"),
        q: query.q,
        rows,
        next,
        partial,
        notice,
    })
    .into_response())
}

/// A role as a checkbox.
pub struct RoleChoice {
    pub name: String,
    pub checked: bool,
}

pub async fn role_choices(
    state: &WebState,
    held: &[String],
) -> Result<Vec<RoleChoice>, ConsoleError> {
    Ok(state
        .service
        .admin_list_roles()
        .await?
        .into_iter()
        .map(|r| RoleChoice {
            checked: held.contains(&r.name),
            name: r.name,
        })
        .collect())
}

#[derive(Template)]
#[template(path = "console_client_new.html")]
pub struct NewClientPage {
    pub chrome: Chrome,
    pub problem: Option<String>,
    pub name: String,
    pub kind: String,
    pub scope: String,
    pub roles: Vec<RoleChoice>,
    pub redirect_uris: String,
    pub post_logout_redirect_uris: String,
    pub skip_consent: bool,
}

pub async fn new_form(
    State(state): State<WebState>,
    admin: Admin,
) -> Result<Response, ConsoleError> {
    Ok(render(&NewClientPage {
        chrome: admin.chrome(&state, "clients"),
        problem: None,
        name: String::new(),
        kind: "machine".into(),
        scope: String::new(),
        roles: role_choices(&state, &[]).await?,
        redirect_uris: String::new(),
        post_logout_redirect_uris: String::new(),
        skip_consent: false,
    })
    .into_response())
}

#[derive(Template)]
#[template(path = "console_secret.html")]
pub struct SecretPage {
    pub chrome: Chrome,
    pub client_id: String,
    pub href: String,
    pub name: String,
    pub secret: Option<String>,
    /// After a rotation: until when the old secret still works.
    pub old_secret_until: Option<String>,
}

/// A page with a secret on it: never kept by the browser or anything between.
fn secret_response(status: StatusCode, page: &SecretPage) -> Response {
    (status, [(CACHE_CONTROL, "no-store")], render(page)).into_response()
}

pub async fn create(post: Posted) -> Result<Response, ConsoleError> {
    let Posted { state, admin, form } = post;
    let kind = form.text("kind");
    let (grants, method) = match kind.as_str() {
        "machine" => (vec!["client_credentials"], "client_secret_basic"),
        "web" => (
            vec!["authorization_code", "refresh_token"],
            "client_secret_basic",
        ),
        "public" => (vec!["authorization_code", "refresh_token"], "none"),
        _ => {
            return Err(
                ApiError::field("grant_types", "choose what kind of client this is").into(),
            );
        }
    };
    let scope = form.text("scope").trim().to_owned();
    let new = NewClient {
        name: form.text("name").trim().to_owned(),
        grant_types: Some(grants.into_iter().map(str::to_owned).collect()),
        scope: (!scope.is_empty()).then_some(scope),
        roles: all_of(&form, "roles"),
        token_endpoint_auth_method: Some(method.into()),
        redirect_uris: lines(&form.text("redirect_uris")),
        post_logout_redirect_uris: lines(&form.text("post_logout_redirect_uris")),
        skip_consent: form.get("skip_consent").is_some(),
    };
    let held = new.roles.clone();
    match state
        .service
        .admin_create_client(&admin.actor, new, &admin.visitor.ctx)
        .await
    {
        Ok(created) => {
            let page = SecretPage {
                chrome: admin.chrome(&state, "clients"),
                href: format!(
                    "/console/clients/{}",
                    super::segment(&created.client.client_id)
                ),
                client_id: created.client.client_id,
                name: created.client.name,
                secret: created.client_secret,
                old_secret_until: None,
            };
            Ok(secret_response(StatusCode::CREATED, &page))
        }
        Err(e @ (ApiError::Validation(_) | ApiError::BadRequest(_))) => {
            let page = NewClientPage {
                chrome: admin.chrome(&state, "clients"),
                problem: Some(describe(&e)),
                name: form.text("name"),
                kind,
                scope: form.text("scope"),
                roles: role_choices(&state, &held).await?,
                redirect_uris: form.text("redirect_uris"),
                post_logout_redirect_uris: form.text("post_logout_redirect_uris"),
                skip_consent: form.get("skip_consent").is_some(),
            };
            Ok((StatusCode::UNPROCESSABLE_ENTITY, render(&page)).into_response())
        }
        Err(e) => Err(e.into()),
    }
}

#[derive(Template)]
#[template(path = "console_client.html")]
pub struct ClientPage {
    pub chrome: Chrome,
    pub client: ClientView,
    pub href: String,
    pub audit_href: String,
    pub auth: &'static str,
    pub created: String,
    pub blocked_since: Option<String>,
    pub old_secret_until: Option<String>,
    pub scope: String,
    pub roles: Vec<RoleChoice>,
    pub redirect_uris: String,
    pub post_logout_redirect_uris: String,
    pub notice: Option<&'static str>,
    pub problem: Option<String>,
}

/// What the client's page says after each of its forms.
const NOTICES: &[(&str, &str)] = &[
    ("saved", "The changes are saved."),
    (
        "blocked",
        "The client is blocked: its tokens and sessions are dead.",
    ),
    (
        "unblocked",
        "The client is unblocked. Tokens revoked by the block stay dead.",
    ),
    (
        "revoked",
        "Every session and token of this client is revoked.",
    ),
];

pub async fn show(
    State(state): State<WebState>,
    admin: Admin,
    Path(id): Path<String>,
    Query(done): Query<Done>,
) -> Result<Response, ConsoleError> {
    let notice = done.notice(NOTICES);
    let client = state.service.admin_get_client(&id).await?;
    let page = client_page(&state, &admin, client, notice, None).await?;
    Ok(render(&page).into_response())
}

async fn client_page(
    state: &WebState,
    admin: &Admin,
    client: ClientView,
    notice: Option<&'static str>,
    problem: Option<String>,
) -> Result<ClientPage, ConsoleError> {
    Ok(ClientPage {
        chrome: admin.chrome(state, "clients"),
        href: format!("/console/clients/{}", super::segment(&client.client_id)),
        audit_href: format!(
            "/console/audit?subject={}",
            super::query_value(&client.client_id)
        ),
        auth: match client.token_endpoint_auth_method.as_str() {
            "none" => "None (a public client)",
            "client_secret_basic" => "Secret, HTTP Basic",
            "client_secret_post" => "Secret, in the form",
            "private_key_jwt" => "Signed assertion (private_key_jwt)",
            _ => "Other",
        },
        created: when(client.created_at),
        blocked_since: client.blocked_at.map(when),
        old_secret_until: client.previous_secret_expires_at.map(when),
        scope: client.scopes.clone().unwrap_or_default(),
        roles: role_choices(state, &client.roles).await?,
        redirect_uris: client.redirect_uris.join("\n"),
        post_logout_redirect_uris: client.post_logout_redirect_uris.join("\n"),
        notice,
        problem,
        client,
    })
}

/// The client's page, with `done` naming what was done.
fn done_at(id: &str, done: &str) -> String {
    format!("/console/clients/{}?done={done}", super::segment(id))
}

/// Applies `patch` through the admin rules; a refused value re-shows the page with the problem.
async fn patch(
    post: &Posted,
    id: &str,
    patch: ClientPatch,
    done: &str,
) -> Result<Response, ConsoleError> {
    let (state, admin) = (&post.state, &post.admin);
    let result = state
        .service
        .admin_patch_client(&admin.actor, id, patch, &admin.visitor.ctx)
        .await;
    after(result, &done_at(id, done), None, async |problem| {
        let client = state.service.admin_get_client(id).await?;
        Ok(render(
            &client_page(state, admin, client, None, Some(problem)).await?,
        ))
    })
    .await
}

/// Saves what the edit form changed, and only that: a field left as it was is not sent, so the
/// audit record names the real changes.
pub async fn edit(Path(id): Path<String>, post: Posted) -> Result<Response, ConsoleError> {
    let form = &post.form;
    let current = post.state.service.admin_get_client(&id).await?;
    let name = form.text("name").trim().to_owned();
    let scope = lines(&form.text("scope")).join(" ");
    let mut roles = all_of(form, "roles");
    roles.sort();
    let mut held = current.roles.clone();
    held.sort();
    let redirect_uris = lines(&form.text("redirect_uris"));
    let post_logout = lines(&form.text("post_logout_redirect_uris"));
    let changes = ClientPatch {
        name: (name != current.name).then_some(name),
        scope: (scope != current.scopes.clone().unwrap_or_default()).then_some(scope),
        roles: (roles != held).then_some(roles),
        redirect_uris: (redirect_uris != current.redirect_uris).then_some(redirect_uris),
        post_logout_redirect_uris: (post_logout != current.post_logout_redirect_uris)
            .then_some(post_logout),
        ..ClientPatch::default()
    };
    patch(&post, &id, changes, "saved").await
}

pub async fn block(Path(id): Path<String>, post: Posted) -> Result<Response, ConsoleError> {
    let (blocked, done) = post.blocked()?;
    let changes = ClientPatch {
        blocked: Some(blocked),
        ..ClientPatch::default()
    };
    patch(&post, &id, changes, done).await
}

pub async fn rotate(Path(id): Path<String>, post: Posted) -> Result<Response, ConsoleError> {
    let Posted { state, admin, .. } = post;
    // Read first: once rotated, nothing may stand between the new secret and its only showing.
    let client = state.service.admin_get_client(&id).await?;
    let rotated = state
        .service
        .admin_rotate_client_secret(&admin.actor, &id, &admin.visitor.ctx)
        .await?;
    let page = SecretPage {
        chrome: admin.chrome(&state, "clients"),
        href: format!("/console/clients/{}", super::segment(&id)),
        client_id: rotated.client_id,
        name: client.name,
        secret: Some(rotated.client_secret),
        old_secret_until: Some(when(rotated.previous_secret_expires_at)),
    };
    Ok(secret_response(StatusCode::OK, &page))
}

pub async fn revoke_all(Path(id): Path<String>, post: Posted) -> Result<Response, ConsoleError> {
    // A user id is not a client: this form only ever names the client on its page.
    post.state.service.admin_get_client(&id).await?;
    post.revoke_all(&id, &done_at(&id, "revoked")).await
}

pub async fn delete(Path(id): Path<String>, post: Posted) -> Result<Response, ConsoleError> {
    let Posted { state, admin, form } = post;
    if form.get("confirm") != Some("yes") {
        return Err(ApiError::field("confirm", "tick the box to confirm the deletion").into());
    }
    state
        .service
        .admin_delete_client(&admin.actor, &id, &admin.visitor.ctx)
        .await?;
    Ok(see_other("/console/clients?done=deleted"))
}
