//! How a console request fails, and the one place each failure becomes a page with its status.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use gatehouse_core::{ApiError, StoreError};

use super::Chrome;
use crate::authorize::see_other;
use crate::error::PageError;
use crate::pages::{ErrorPage, render};

#[derive(askama::Template)]
#[template(path = "console_refused.html")]
struct RefusedPage {
    chrome: Chrome,
}

#[derive(Debug, thiserror::Error)]
pub enum ConsoleError {
    /// Not signed in: to the sign-in page, then back to this path.
    #[error("sign in first")]
    SignInFirst(String),
    /// Signed in, without the role: the page offers to sign out (with this form token).
    #[error("the console is for administrators: this account does not hold the admin role")]
    NotAdmin { csrf: String, username: String },
    /// Refused by the admin rules (the same answer the admin API would give).
    #[error("{}", describe(.0))]
    Refused(ApiError),
    #[error(transparent)]
    Page(#[from] PageError),
}

impl From<ApiError> for ConsoleError {
    fn from(e: ApiError) -> Self {
        Self::Refused(e)
    }
}

impl From<StoreError> for ConsoleError {
    fn from(e: StoreError) -> Self {
        Self::Page(e.into())
    }
}

/// What the admin rules said, in a sentence (field problems named one by one).
pub fn describe(e: &ApiError) -> String {
    match e {
        ApiError::Validation(fields) => fields
            .iter()
            .map(|f| format!("{}: {}", field_label(f.field), f.detail))
            .collect::<Vec<_>>()
            .join("; "),
        ApiError::BadRequest(why) => why.to_string(),
        other => other.to_string(),
    }
}

/// A request field as the console's forms label it.
fn field_label(field: &str) -> &str {
    match field {
        "scope" => "Scopes",
        "roles" => "Roles",
        "redirect_uris" => "Redirect URIs",
        "post_logout_redirect_uris" => "Post-logout redirect URIs",
        "name" => "Name",
        "grant_types" => "Grant types",
        "token_endpoint_auth_method" => "Client authentication",
        "description" => "Description",
        other => other,
    }
}

impl ConsoleError {
    fn status(&self) -> StatusCode {
        match self {
            Self::SignInFirst(_) => StatusCode::SEE_OTHER,
            Self::NotAdmin { .. } => StatusCode::FORBIDDEN,
            Self::Refused(e) => match e {
                ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
                ApiError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
                ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
                ApiError::Validation(_) => StatusCode::UNPROCESSABLE_ENTITY,
                ApiError::Conflict(_) => StatusCode::CONFLICT,
                ApiError::NotFound(_) => StatusCode::NOT_FOUND,
                ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
                ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
                ApiError::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
                ApiError::Internal => StatusCode::INTERNAL_SERVER_ERROR,
            },
            Self::Page(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl IntoResponse for ConsoleError {
    fn into_response(self) -> Response {
        let this = match self {
            Self::SignInFirst(back) => {
                let back: String = url::form_urlencoded::byte_serialize(back.as_bytes()).collect();
                return see_other(&format!("/signin?return_to={back}"));
            }
            Self::Page(e) => return e.into_response(),
            Self::NotAdmin { csrf, username } => {
                let page = RefusedPage {
                    chrome: Chrome {
                        csrf,
                        username,
                        section: "",
                    },
                };
                return (StatusCode::FORBIDDEN, render(&page)).into_response();
            }
            other => other,
        };
        let status = this.status();
        let (title, advice) = match &this {
            Self::SignInFirst(_) | Self::Page(_) | Self::NotAdmin { .. } => {
                ("Something went wrong", "Wait a moment and try again.")
            }
            Self::Refused(ApiError::Validation(_)) => (
                "Some values cannot be accepted",
                "Go back, correct them, and send the form again.",
            ),
            Self::Refused(ApiError::NotFound(_)) => (
                "Not found",
                "It may have been deleted. Go back to the list.",
            ),
            Self::Refused(ApiError::Conflict(_)) => (
                "This cannot be done now",
                "Go back and check what the message names.",
            ),
            Self::Refused(ApiError::Unavailable) => {
                ("Something went wrong", "Wait a moment and try again.")
            }
            Self::Refused(_) => ("This request cannot be completed", "Go back and try again."),
        };
        let page = ErrorPage {
            title,
            message: this.to_string(),
            code: None,
            advice,
        };
        (status, render(&page)).into_response()
    }
}
