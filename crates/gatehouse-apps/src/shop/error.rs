//! Every way a shop page can fail, and the one place each becomes a page (or a trip to sign-in).

use askama::Template;
use axum::http::StatusCode;
use axum::http::header::LOCATION;
use axum::response::{Html, IntoResponse, Response};

#[derive(Debug, thiserror::Error)]
pub enum ShopError {
    /// The person must sign in (again): not signed in, or their tokens can no longer be renewed.
    /// They come back to `return_to`.
    #[error("please sign in")]
    SignInNeeded { return_to: String },
    #[error("{0}")]
    BadRequest(String),
    /// A form post that did not come from the shop's own page.
    #[error("the form expired or came from another site")]
    Forgery,
    #[error("the sign-in could not be completed: {0}")]
    SignInFailed(String),
    #[error("the page does not exist")]
    NotFound,
    /// The person's account may not do this (the API answered 403).
    #[error("{0}")]
    NotAllowed(String),
    /// The gateway, the issuer or the store cannot be reached; details stay in the log.
    #[error("the shop cannot reach what it needs just now")]
    Unavailable(String),
    #[error("something went wrong on our side")]
    Internal(String),
}

impl From<sqlx::Error> for ShopError {
    fn from(e: sqlx::Error) -> Self {
        Self::Unavailable(format!("the store failed: {e}"))
    }
}

impl From<gatehouse_look::FormRejection> for ShopError {
    fn from(e: gatehouse_look::FormRejection) -> Self {
        Self::BadRequest(e.to_string())
    }
}

impl From<crate::AppError> for ShopError {
    fn from(e: crate::AppError) -> Self {
        Self::Unavailable(e.to_string())
    }
}

#[derive(Template)]
#[template(path = "shop_problem.html")]
struct ProblemPage<'a> {
    title: &'a str,
    message: String,
    advice: &'a str,
}

impl IntoResponse for ShopError {
    fn into_response(self) -> Response {
        let (status, title, advice) = match &self {
            Self::SignInNeeded { return_to } => {
                let location = format!(
                    "{}/signin?return_to={}",
                    super::SHOP_PATH,
                    url::form_urlencoded::byte_serialize(return_to.as_bytes()).collect::<String>()
                );
                return (StatusCode::SEE_OTHER, [(LOCATION, location)]).into_response();
            }
            Self::BadRequest(_) => (
                StatusCode::BAD_REQUEST,
                "That did not work",
                "Go back and try again.",
            ),
            Self::Forgery => (
                StatusCode::FORBIDDEN,
                "This form cannot be accepted",
                "Go back, reload the page, and send the form again.",
            ),
            Self::SignInFailed(_) => (
                StatusCode::BAD_REQUEST,
                "Sign-in did not complete",
                "Start again from the shop's front page.",
            ),
            Self::NotAllowed(_) => (
                StatusCode::FORBIDDEN,
                "Your account cannot do this",
                "Ask an administrator to give your account the orders scope.",
            ),
            Self::NotFound => (
                StatusCode::NOT_FOUND,
                "Page not found",
                "Check the address, or go to the catalog.",
            ),
            Self::Unavailable(detail) => {
                tracing::warn!(error = %detail, "a shop page could not be served now");
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    "The shop is having trouble",
                    "Wait a moment and try again.",
                )
            }
            Self::Internal(detail) => {
                tracing::error!(error = %detail, "a shop page failed");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "Something went wrong",
                    "Wait a moment and try again.",
                )
            }
        };
        let page = ProblemPage {
            title,
            message: self.to_string(),
            advice,
        };
        match page.render() {
            Ok(html) => (status, Html(html)).into_response(),
            Err(_) => (status, self.to_string()).into_response(),
        }
    }
}
