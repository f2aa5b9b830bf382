//! `GET`/`POST /oauth2/authorize` and the consent page's answer: the browser side of the
//! authorization code flow. Every decision is the core's; this turns them into pages and
//! redirects.

use axum::extract::{RawQuery, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use gatehouse_core::ScopeSet;
use gatehouse_core::authorization::AuthorizationParams;
use gatehouse_core::service::{AuthorizationRequest, AuthorizeError, NextStep};
use gatehouse_look::ProtocolForm;

use crate::WebState;
use crate::browser::{Form, Visitor};
use crate::error::PageError;
use crate::pages::{ConsentPage, ScopeLine, render, scope_words};

pub async fn authorize_get(
    State(state): State<WebState>,
    visitor: Visitor,
    RawQuery(query): RawQuery,
) -> Result<Response, PageError> {
    let query = query.unwrap_or_default();
    let params = AuthorizationParams::from_pairs(url::form_urlencoded::parse(query.as_bytes()));
    authorize(&state, &visitor, params).await
}

pub async fn authorize_post(
    State(state): State<WebState>,
    visitor: Visitor,
    // Repeats are the core's to answer: they go back to the client like every other error.
    ProtocolForm(form): ProtocolForm<PageError>,
) -> Result<Response, PageError> {
    let params = AuthorizationParams::from_pairs(form.pairs);
    authorize(&state, &visitor, params).await
}

async fn authorize(
    state: &WebState,
    visitor: &Visitor,
    params: AuthorizationParams,
) -> Result<Response, PageError> {
    let request = checked(state, params).await?;
    let request = match request {
        Ok(request) => request,
        Err(redirect) => return Ok(redirect),
    };
    Ok(
        match state
            .service
            .authorize(&request, visitor.signed_in.as_ref())
            .await?
        {
            NextStep::SignIn => see_other(&sign_in_url(&request)),
            NextStep::Consent { scopes } => consent_page(state, visitor, &request, &scopes),
            NextStep::Redirect(url) => see_other(&url),
        },
    )
}

/// The consent page's answer.
pub async fn decision(
    State(state): State<WebState>,
    visitor: Visitor,
    form: Form,
) -> Result<Response, PageError> {
    visitor.check_form(&state, &form)?;
    let allow = match form.get("decision") {
        Some("allow") => true,
        Some("deny") => false,
        _ => {
            return Err(PageError::BadRequest(
                "decision must be allow or deny".into(),
            ));
        }
    };
    let params = AuthorizationParams::from_pairs(form.pairs);
    let request = match checked(&state, params).await? {
        Ok(request) => request,
        Err(redirect) => return Ok(redirect),
    };
    let Some(signed_in) = visitor.signed_in.as_ref() else {
        return Ok(see_other(&sign_in_url(&request)));
    };
    let url = state
        .service
        .decide_consent(&request, signed_in, allow, &visitor.ctx)
        .await?;
    Ok(see_other(&url))
}

/// The checked request, or the redirect that carries its error back to the client; a request
/// that may not be redirected is an error page.
async fn checked(
    state: &WebState,
    params: AuthorizationParams,
) -> Result<Result<AuthorizationRequest, Response>, PageError> {
    match state.service.authorization_request(params).await {
        Ok(request) => Ok(Ok(request)),
        Err(AuthorizeError::Redirect(url)) => Ok(Err(see_other(&url))),
        Err(AuthorizeError::Page(error)) => Err(PageError::Protocol(error)),
    }
}

fn sign_in_url(request: &AuthorizationRequest) -> String {
    let return_to = format!(
        "/oauth2/authorize?{}",
        request.params.after_sign_in().to_query()
    );
    let mut query = url::form_urlencoded::Serializer::new(String::new());
    query.append_pair("return_to", &return_to);
    if let Some(hint) = &request.login_hint {
        query.append_pair("login_hint", hint);
    }
    format!("/signin?{}", query.finish())
}

fn consent_page(
    state: &WebState,
    visitor: &Visitor,
    request: &AuthorizationRequest,
    scopes: &ScopeSet,
) -> Response {
    let page = ConsentPage {
        csrf: visitor.form_token(state),
        client_name: request.client.client.name.clone(),
        username: visitor
            .user()
            .map(|u| u.username.clone())
            .unwrap_or_default(),
        scopes: scopes
            .iter()
            .map(|s| ScopeLine {
                name: s.to_owned(),
                words: scope_words(s),
            })
            .collect(),
        params: request
            .params
            .to_pairs()
            .into_iter()
            .map(|(name, value)| (name, value.to_owned()))
            .collect(),
    };
    render(&page).into_response()
}

/// `303 See Other` to `location`: the browser follows with a GET whatever the request was.
pub fn see_other(location: &str) -> Response {
    match HeaderValue::from_str(location) {
        Ok(value) => (StatusCode::SEE_OTHER, [(header::LOCATION, value)]).into_response(),
        Err(_) => PageError::Internal.into_response(),
    }
}
