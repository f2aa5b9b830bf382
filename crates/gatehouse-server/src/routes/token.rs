use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, header};
use axum::response::IntoResponse;
use gatehouse_core::OAuthError;
use gatehouse_core::service::{ClientAuth, PresentedAuth, TokenRequest};
use gatehouse_proto::TokenResponse;

use crate::AppState;
use crate::error::OAuthReply;
use crate::extract::{Ctx, OAuthForm, basic_credentials};

/// The token endpoint (RFC 6749 §3.2): `client_credentials`, `password` and `refresh_token`.
#[utoipa::path(post, path = "/oauth2/token", tag = "oauth2",
    request_body(content_type = "application/x-www-form-urlencoded", content = Object,
        description = "grant_type plus the grant's parameters; client_id/client_secret here or in Basic auth"),
    responses(
        (status = 200, description = "Tokens issued", body = TokenResponse),
        (status = 400, description = "RFC 6749 §5.2 error"),
        (status = 401, description = "Client authentication failed"),
        (status = 429, description = "Over a rate limit; see Retry-After"),
        (status = 503, description = "Too many password checks are waiting; see Retry-After"),
    ),
    security((), ("client_basic" = [])))]
pub async fn token(
    State(state): State<AppState>,
    Ctx(ctx): Ctx,
    headers: HeaderMap,
    mut form: OAuthForm,
) -> Result<axum::response::Response, OAuthReply> {
    let auth = client_auth(&headers, &mut form)?;
    let request = TokenRequest {
        grant_type: form.take("grant_type"),
        scope: form.take("scope"),
        username: form.take("username"),
        password: form.take("password"),
        refresh_token: form.take("refresh_token"),
        code: form.take("code"),
        redirect_uri: form.take("redirect_uri"),
        code_verifier: form.take("code_verifier"),
    };
    let admit = state
        .limits
        .admission(crate::limits::Endpoint::Token, ctx.ip.as_deref());
    let (grant, response) = state.service.token(request, auth, &ctx, &admit).await?;
    crate::metrics::token_issued(grant.as_str());
    Ok((
        [
            (header::CACHE_CONTROL, "no-store"),
            (header::PRAGMA, "no-cache"),
        ],
        Json(response),
    )
        .into_response())
}

/// Works out how the client authenticated. Using two methods at once is refused (RFC 6749 §2.3).
pub(super) fn client_auth(
    headers: &HeaderMap,
    form: &mut OAuthForm,
) -> Result<ClientAuth, OAuthError> {
    let form_id = form.take("client_id");
    let form_secret = form.take("client_secret");
    match (basic_credentials(headers)?, form_id, form_secret) {
        (Some(_), _, Some(_)) => Err(OAuthError::invalid_request(
            "use one client authentication method, not Basic and client_secret together",
        )),
        (Some((id, secret)), form_id, None) => {
            if form_id.is_some_and(|f| f != id) {
                return Err(OAuthError::invalid_request(
                    "client_id in the form differs from the Basic credentials",
                ));
            }
            Ok(ClientAuth {
                client_id: id,
                secret: Some(secret),
                method: PresentedAuth::Basic,
            })
        }
        (None, Some(id), Some(secret)) => Ok(ClientAuth {
            client_id: id,
            secret: Some(secret),
            method: PresentedAuth::Post,
        }),
        (None, Some(id), None) => Ok(ClientAuth {
            client_id: id,
            secret: None,
            method: PresentedAuth::None,
        }),
        (None, None, _) => Err(OAuthError::invalid_client(
            "client authentication is required",
        )),
    }
}
