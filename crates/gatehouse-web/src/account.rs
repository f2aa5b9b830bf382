//! The account page: a person's profile, password, signed-in browsers, application sessions
//! and the applications they have allowed, each of which they can end.

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use gatehouse_core::ApiError;
use gatehouse_core::service::SignedIn;
use gatehouse_proto::account::PasswordChange;
use serde::Deserialize;

use crate::WebState;
use crate::authorize::see_other;
use crate::browser::{Form, Visitor};
use crate::error::PageError;
use crate::pages::{
    AccountPage, BrowserLine, ConsentLine, FieldErrors, SessionLine, device, render, scope_words,
    when,
};
use crate::session::{signed_in, signed_out};

#[derive(Debug, Default, Deserialize)]
pub struct AccountQuery {
    done: Option<String>,
}

pub async fn account_page(
    State(state): State<WebState>,
    visitor: Visitor,
    Query(query): Query<AccountQuery>,
) -> Result<Response, PageError> {
    let Some(current) = &visitor.signed_in else {
        return Ok(sign_in_first());
    };
    let notice = match query.done.as_deref() {
        Some("password") => Some("Your password is changed. Every other sign-in has ended."),
        Some("session") => Some("The session is revoked."),
        Some("browser") => Some("That browser is signed out."),
        Some("consent") => Some("The application's access is withdrawn."),
        _ => None,
    };
    let page = page(&state, &visitor, current, notice, FieldErrors::default()).await?;
    Ok(render(&page).into_response())
}

fn sign_in_first() -> Response {
    see_other("/signin?return_to=%2Faccount")
}

async fn page(
    state: &WebState,
    visitor: &Visitor,
    current: &SignedIn,
    notice: Option<&'static str>,
    errors: FieldErrors,
) -> Result<AccountPage, PageError> {
    let user = &current.user;
    let overview = state.service.account_overview(user).await?;
    Ok(AccountPage {
        csrf: visitor.form_token(state),
        username: user.username.clone(),
        email: user.email.clone(),
        roles: user.roles.join(", "),
        member_since: when(user.created_at),
        notice,
        errors,
        browsers: overview
            .browsers
            .iter()
            .map(|b| BrowserLine {
                id: b.id.clone(),
                device: device(b.user_agent.as_deref()),
                ip: b.ip.clone().unwrap_or_else(|| "unknown address".into()),
                signed_in: when(b.auth_time),
                last_seen: when(b.last_seen_at),
                current: b.id == current.session.id,
            })
            .collect(),
        sessions: overview
            .sessions
            .iter()
            .map(|(f, app)| {
                // A browser sign-in's session was started by the application's server: the
                // person knows the browser they signed in with, so that is what is shown.
                let from = f
                    .browser_session_id
                    .as_ref()
                    .and_then(|id| overview.browsers.iter().find(|b| &b.id == id));
                let (agent, ip) = match from {
                    Some(b) => (b.user_agent.as_deref(), b.ip.clone()),
                    None => (f.user_agent.as_deref(), f.ip.clone()),
                };
                SessionLine {
                    id: f.id.clone(),
                    app: app.clone(),
                    device: device(agent),
                    ip: ip.unwrap_or_else(|| "unknown address".into()),
                    started: when(f.created_at),
                    last_used: when(f.last_used_at),
                }
            })
            .collect(),
        consents: overview
            .consents
            .iter()
            .map(|(c, app)| ConsentLine {
                client_id: c.client_id.clone(),
                app: app.clone(),
                scopes: c.scope.iter().map(scope_words).collect(),
                granted: when(c.granted_at),
            })
            .collect(),
    })
}

pub async fn change_password(
    State(state): State<WebState>,
    visitor: Visitor,
    form: Form,
) -> Result<Response, PageError> {
    visitor.check_form(&state, &form)?;
    let Some(current) = &visitor.signed_in else {
        return Ok(sign_in_first());
    };
    let change = PasswordChange {
        current_password: form.text("current_password"),
        new_password: form.text("new_password"),
    };
    match state
        .service
        .change_password(&current.user, change, &visitor.ctx)
        .await
    {
        Ok(()) => {}
        Err(ApiError::Validation(fields)) => {
            let errors = FieldErrors(
                fields
                    .into_iter()
                    .map(|f| (f.field.to_owned(), f.detail.into_owned()))
                    .collect(),
            );
            let page = page(&state, &visitor, current, None, errors).await?;
            return Ok((StatusCode::UNPROCESSABLE_ENTITY, render(&page)).into_response());
        }
        Err(ApiError::Unavailable) => return Err(PageError::Unavailable),
        Err(_) => return Err(PageError::Internal),
    }
    // Every sign-in ended with the change, this one too: the person just proved who they are,
    // so this browser gets a new one.
    let Some(user) = state.service.store().user(&current.user.id).await? else {
        return Ok(signed_out(&state, sign_in_first()));
    };
    let started = state
        .service
        .start_browser_session(user, &visitor.ctx)
        .await?;
    signed_in(&state, &visitor, started, "/account?done=password").await
}

pub async fn revoke_session(
    State(state): State<WebState>,
    visitor: Visitor,
    form: Form,
) -> Result<Response, PageError> {
    visitor.check_form(&state, &form)?;
    let Some(current) = &visitor.signed_in else {
        return Ok(sign_in_first());
    };
    let id = form.text("id");
    if !state
        .service
        .revoke_own_session(&current.user, &id, &visitor.ctx)
        .await?
    {
        return Err(PageError::NotFound);
    }
    Ok(see_other("/account?done=session"))
}

pub async fn end_browser(
    State(state): State<WebState>,
    visitor: Visitor,
    form: Form,
) -> Result<Response, PageError> {
    visitor.check_form(&state, &form)?;
    let Some(current) = &visitor.signed_in else {
        return Ok(sign_in_first());
    };
    let id = form.text("id");
    if !state
        .service
        .end_own_browser_session(&current.user, &id, &visitor.ctx)
        .await?
    {
        return Err(PageError::NotFound);
    }
    if id == current.session.id {
        return Ok(signed_out(&state, see_other("/signin?signed_out=1")));
    }
    Ok(see_other("/account?done=browser"))
}

pub async fn withdraw_consent(
    State(state): State<WebState>,
    visitor: Visitor,
    form: Form,
) -> Result<Response, PageError> {
    visitor.check_form(&state, &form)?;
    let Some(current) = &visitor.signed_in else {
        return Ok(sign_in_first());
    };
    state
        .service
        .withdraw_consent(&current.user, &form.text("client_id"), &visitor.ctx)
        .await?;
    Ok(see_other("/account?done=consent"))
}
