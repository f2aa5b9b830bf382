//! Signing in, signing up and signing out in the browser. The rules are the API's: the same
//! login throttle and lock, password hashing queue, password policy and failure messages.

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use gatehouse_core::ApiError;
use gatehouse_core::authorization::AuthorizationParams;
use gatehouse_core::service::BAD_LOGIN;
use gatehouse_core::service::{LoginError, NewBrowserSession};
use gatehouse_proto::account::NewUser;
use serde::Deserialize;

use crate::authorize::see_other;
use crate::browser::{Form, Visitor};
use crate::error::PageError;
use crate::pages::{FieldErrors, SignInPage, SignUpPage, render};
use crate::{WebState, safe_return_to};

#[derive(Debug, Default, Deserialize)]
pub struct SignInQuery {
    return_to: Option<String>,
    login_hint: Option<String>,
    signed_out: Option<String>,
}

pub async fn sign_in_page(
    State(state): State<WebState>,
    visitor: Visitor,
    Query(query): Query<SignInQuery>,
) -> Result<Response, PageError> {
    let return_to = safe_return_to(query.return_to.as_deref());
    let page = SignInPage {
        csrf: visitor.form_token(&state),
        client_name: client_name(&state, &return_to).await?,
        username: query.login_hint.unwrap_or_default(),
        error: None,
        notice: query.signed_out.map(|_| "You have signed out."),
        return_to,
    };
    Ok(render(&page).into_response())
}

/// The application a sign-in will continue to, named on the page.
async fn client_name(state: &WebState, return_to: &str) -> Result<Option<String>, PageError> {
    let Some(query) = return_to.strip_prefix("/oauth2/authorize?") else {
        return Ok(None);
    };
    let params = AuthorizationParams::from_pairs(url::form_urlencoded::parse(query.as_bytes()));
    match params.client_id {
        Some(id) => Ok(state.service.client_display_name(&id).await?),
        None => Ok(None),
    }
}

pub async fn sign_in(
    State(state): State<WebState>,
    visitor: Visitor,
    headers: HeaderMap,
    form: Form,
) -> Result<Response, PageError> {
    visitor.check_form(&state, &form)?;
    let return_to = safe_return_to(form.get("return_to"));
    let username = form.text("username");
    let password = form.text("password");
    let outcome = if username.is_empty() || password.is_empty() {
        Err(LoginError::Failed)
    } else {
        state
            .service
            .sign_in_browser(
                &username,
                &password,
                gatehouse_look::cookie(&headers, state.cookies.device).as_deref(),
                &visitor.ctx,
            )
            .await
    };
    match outcome {
        Ok(started) => signed_in(&state, &visitor, started, &return_to).await,
        Err(LoginError::Store(e)) => Err(e.into()),
        Err(LoginError::Failed) => {
            let page = SignInPage {
                csrf: visitor.form_token(&state),
                client_name: client_name(&state, &return_to).await?,
                username,
                error: Some(BAD_LOGIN.into()),
                notice: None,
                return_to,
            };
            Ok((StatusCode::UNAUTHORIZED, render(&page)).into_response())
        }
    }
}

/// The browser holds a new sign-in: a fresh session cookie (never the one it came with, so a
/// planted cookie is worth nothing), and any earlier sign-in in this browser ends. It also gets
/// a fresh device cookie naming the person, which outlives the sign-in: guesses at their password
/// from elsewhere do not lock them out of this browser.
pub(crate) async fn signed_in(
    state: &WebState,
    visitor: &Visitor,
    started: NewBrowserSession,
    return_to: &str,
) -> Result<Response, PageError> {
    if let Some(earlier) = &visitor.signed_in
        && earlier.session.id != started.signed_in.session.id
    {
        state
            .service
            .end_browser_session(&earlier.session.id, &earlier.user.id, &visitor.ctx)
            .await?;
    }
    let names = &state.cookies;
    let lifetime = state.service.config().browser_session_lifetime_secs;
    let mut response = see_other(return_to);
    response.headers_mut().append(
        header::SET_COOKIE,
        names.set(names.session, &started.cookie, lifetime),
    );
    response.headers_mut().append(
        header::SET_COOKIE,
        names.set(
            names.device,
            &started.device_cookie,
            state.service.config().device_cookie_lifetime_secs,
        ),
    );
    Ok(response)
}

pub async fn sign_up_page(
    State(state): State<WebState>,
    visitor: Visitor,
    Query(query): Query<SignInQuery>,
) -> Result<Response, PageError> {
    let page = SignUpPage {
        csrf: visitor.form_token(&state),
        return_to: safe_return_to(query.return_to.as_deref()),
        username: query.login_hint.unwrap_or_default(),
        email: String::new(),
        errors: FieldErrors::default(),
    };
    Ok(render(&page).into_response())
}

pub async fn sign_up(
    State(state): State<WebState>,
    visitor: Visitor,
    form: Form,
) -> Result<Response, PageError> {
    visitor.check_form(&state, &form)?;
    let return_to = safe_return_to(form.get("return_to"));
    let new = NewUser {
        username: form.text("username"),
        email: form.text("email"),
        password: form.text("password"),
    };
    let (username, email) = (new.username.clone(), new.email.clone());
    let refused = |status: StatusCode, errors: FieldErrors| {
        let page = SignUpPage {
            csrf: visitor.form_token(&state),
            return_to: return_to.clone(),
            username: username.clone(),
            email: email.clone(),
            errors,
        };
        Ok((status, render(&page)).into_response())
    };
    let user = match state.service.sign_up_user(new, &visitor.ctx).await {
        Ok(user) => user,
        Err(ApiError::Validation(fields)) => {
            let errors = fields
                .into_iter()
                .map(|f| (f.field.to_owned(), f.detail.into_owned()))
                .collect();
            return refused(StatusCode::UNPROCESSABLE_ENTITY, FieldErrors(errors));
        }
        Err(ApiError::Conflict(_)) => {
            let errors = vec![("username".to_owned(), "is taken".to_owned())];
            return refused(StatusCode::CONFLICT, FieldErrors(errors));
        }
        Err(ApiError::Unavailable) => return Err(PageError::Unavailable),
        Err(_) => return Err(PageError::Internal),
    };
    let started = state
        .service
        .start_browser_session(user, &visitor.ctx)
        .await?;
    signed_in(&state, &visitor, started, &return_to).await
}

pub async fn sign_out(
    State(state): State<WebState>,
    visitor: Visitor,
    form: Form,
) -> Result<Response, PageError> {
    visitor.check_form(&state, &form)?;
    if let Some(current) = &visitor.signed_in {
        state
            .service
            .end_browser_session(&current.session.id, &current.user.id, &visitor.ctx)
            .await?;
    }
    Ok(signed_out(&state, see_other("/signin?signed_out=1")))
}

/// `response` with the session cookie removed.
pub(crate) fn signed_out(state: &WebState, mut response: Response) -> Response {
    let names = &state.cookies;
    response
        .headers_mut()
        .append(header::SET_COOKIE, names.clear(names.session));
    response
}
