//! Every way a page can fail, and the one place each becomes an error page with its status.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use gatehouse_core::{OAuthError, StoreError};

use crate::pages::{ErrorPage, render};

#[derive(Debug, thiserror::Error)]
pub enum PageError {
    /// The request cannot be understood (a form that is not a form, a missing field).
    #[error("{0}")]
    BadRequest(String),
    /// An authorization or logout request that may not be answered by redirect.
    #[error("{}", .0.description)]
    Protocol(OAuthError),
    /// A form post that did not come from our own page.
    #[error("the form expired or came from another site")]
    Forgery,
    #[error("the page does not exist")]
    NotFound,
    #[error("the service is temporarily unavailable")]
    Unavailable,
    #[error("something went wrong on our side")]
    Internal,
}

impl From<gatehouse_look::FormRejection> for PageError {
    fn from(e: gatehouse_look::FormRejection) -> Self {
        Self::BadRequest(e.to_string())
    }
}

impl From<StoreError> for PageError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Unavailable(_) => {
                tracing::warn!(error = %e, "could not serve a page now");
                Self::Unavailable
            }
            _ => {
                tracing::error!(error = %e, "store failure while serving a page");
                Self::Internal
            }
        }
    }
}

impl PageError {
    fn status(&self) -> StatusCode {
        match self {
            Self::BadRequest(_) | Self::Protocol(_) => StatusCode::BAD_REQUEST,
            Self::Forgery => StatusCode::FORBIDDEN,
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn advice(&self) -> &'static str {
        match self {
            Self::BadRequest(_) => "Go back and try again.",
            Self::Protocol(_) => {
                "The application that sent you here made a request Gatehouse cannot answer. \
                 Tell its owners what this page says."
            }
            Self::Forgery => "Go back, reload the page, and send the form again.",
            Self::NotFound => "Check the address, or go to your account.",
            Self::Unavailable | Self::Internal => "Wait a moment and try again.",
        }
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let status = self.status();
        let page = ErrorPage {
            title: match status {
                StatusCode::FORBIDDEN => "This form cannot be accepted",
                StatusCode::NOT_FOUND => "Page not found",
                StatusCode::BAD_REQUEST => "This request cannot be completed",
                _ => "Something went wrong",
            },
            message: self.to_string(),
            code: match &self {
                Self::Protocol(e) => Some(e.code.as_str()),
                _ => None,
            },
            advice: self.advice(),
        };
        (status, render(&page)).into_response()
    }
}
