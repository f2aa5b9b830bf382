//! RP-initiated logout (OpenID Connect RP-Initiated Logout 1.0): an application sends the
//! browser here to end the person's sign-in, and may name where the browser goes afterwards.

use axum::extract::{RawQuery, State};
use axum::response::{IntoResponse, Response};
use gatehouse_core::service::{LogoutParams, LogoutPlan};

use crate::WebState;
use crate::authorize::see_other;
use crate::browser::{Form, Visitor};
use crate::error::PageError;
use crate::pages::{LogoutPage, SignedOutPage, render};
use crate::session::signed_out;

pub async fn logout_get(
    State(state): State<WebState>,
    visitor: Visitor,
    RawQuery(query): RawQuery,
) -> Result<Response, PageError> {
    let query = query.unwrap_or_default();
    let pairs = gatehouse_look::single_valued_pairs(query.as_bytes())?;
    logout(&state, &visitor, params(&pairs)?, false).await
}

pub async fn logout_post(
    State(state): State<WebState>,
    visitor: Visitor,
    form: Form,
) -> Result<Response, PageError> {
    logout(&state, &visitor, params(&form.pairs)?, false).await
}

/// The person confirmed on our own page.
pub async fn confirm(
    State(state): State<WebState>,
    visitor: Visitor,
    form: Form,
) -> Result<Response, PageError> {
    visitor.check_form(&state, &form)?;
    logout(&state, &visitor, params(&form.pairs)?, true).await
}

fn params(pairs: &[(String, String)]) -> Result<LogoutParams, PageError> {
    let mut params = LogoutParams::default();
    let mut seen = std::collections::HashSet::new();
    for (name, value) in pairs {
        let first = seen.insert(name.as_str());
        let slot = match name.as_str() {
            "id_token_hint" => &mut params.id_token_hint,
            "client_id" => &mut params.client_id,
            "post_logout_redirect_uri" => &mut params.post_logout_redirect_uri,
            "state" => &mut params.state,
            _ => continue,
        };
        if !first {
            return Err(PageError::BadRequest(format!(
                "{name} was given more than once"
            )));
        }
        if !value.is_empty() {
            *slot = Some(value.clone());
        }
    }
    Ok(params)
}

async fn logout(
    state: &WebState,
    visitor: &Visitor,
    params: LogoutParams,
    confirmed: bool,
) -> Result<Response, PageError> {
    let plan: LogoutPlan = state
        .service
        .plan_logout(&params, visitor.signed_in.as_ref())
        .await
        .map_err(PageError::Protocol)?;
    if plan.confirm && !confirmed {
        let page = LogoutPage {
            csrf: visitor.form_token(state),
            client_name: plan.client_name,
            params: [
                ("id_token_hint", params.id_token_hint),
                ("client_id", params.client_id),
                ("post_logout_redirect_uri", params.post_logout_redirect_uri),
                ("state", params.state),
            ]
            .into_iter()
            .filter_map(|(name, value)| value.map(|v| (name, v)))
            .collect(),
        };
        return Ok(render(&page).into_response());
    }
    if let (Some(session), Some(user)) = (&plan.end_session, &plan.user_id) {
        state
            .service
            .end_browser_session(session, user, &visitor.ctx)
            .await?;
    }
    let response = match &plan.redirect {
        Some(url) => see_other(url),
        None => render(&SignedOutPage {}).into_response(),
    };
    Ok(signed_out(state, response))
}
