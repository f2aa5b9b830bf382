//! What every page needs of the browser: who it is (cookies and the signed-in session), where it
//! connects from, and its forms (read strictly, with an anti-forgery check).

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, FromRequestParts, Request};
use axum::http::header::{SET_COOKIE, USER_AGENT};
use axum::http::request::Parts;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use gatehouse_core::service::SignedIn;
use gatehouse_core::{RequestContext, secret};
use gatehouse_look::{cookie, posted_from_same_origin};

use crate::WebState;
use crate::error::PageError;

/// The anti-forgery cookie's value for this request: the browser's, or one made for it now
/// (sent back by [`ensure_form_cookie`]).
#[derive(Debug, Clone)]
pub struct FormCookie(pub String);

/// Gives every browser a random anti-forgery cookie before it sees a form.
pub async fn ensure_form_cookie(
    axum::extract::State(state): axum::extract::State<WebState>,
    mut request: Request,
    next: Next,
) -> Response {
    let names = &state.cookies;
    let existing = cookie(request.headers(), names.csrf);
    let (value, fresh) = match existing {
        Some(value) => (value, false),
        None => match secret::random_secret() {
            Ok(value) => (value, true),
            Err(_) => return PageError::Internal.into_response(),
        },
    };
    request.extensions_mut().insert(FormCookie(value.clone()));
    let mut response = next.run(request).await;
    if fresh {
        // A year: it guards forms and means nothing by itself.
        response
            .headers_mut()
            .append(SET_COOKIE, names.set(names.csrf, &value, 365 * 24 * 3600));
    }
    response
}

/// A visitor to the pages: where from, which anti-forgery cookie, and who, if signed in.
pub struct Visitor {
    pub ctx: RequestContext,
    pub form_cookie: String,
    pub signed_in: Option<SignedIn>,
    /// Whether the browser says the request came from our own pages.
    same_origin: bool,
}

impl Visitor {
    /// The anti-forgery token this visitor's forms carry: bound to its cookie and its sign-in,
    /// so a token taken from another browser, or from before signing in, does not fit.
    pub fn form_token(&self, state: &WebState) -> String {
        state.service.form_token(&self.binding())
    }

    fn binding(&self) -> String {
        let session = self
            .signed_in
            .as_ref()
            .map_or("", |s| s.session.id.as_str());
        format!("{}|{session}", self.form_cookie)
    }

    /// A form post must come from our own pages: the same origin (when the browser says, see
    /// [`posted_from_same_origin`]) and the token only our pages hand out.
    pub fn check_form(&self, state: &WebState, form: &Form) -> Result<(), PageError> {
        if !self.same_origin {
            return Err(PageError::Forgery);
        }
        match form.get("csrf_token") {
            Some(token) if state.service.form_token_matches(&self.binding(), token) => Ok(()),
            _ => Err(PageError::Forgery),
        }
    }

    pub fn user(&self) -> Option<&gatehouse_core::User> {
        self.signed_in.as_ref().map(|s| &s.user)
    }
}

impl FromRequestParts<WebState> for Visitor {
    type Rejection = PageError;

    async fn from_request_parts(parts: &mut Parts, state: &WebState) -> Result<Self, PageError> {
        let ip = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(addr)| addr.ip().to_string());
        let user_agent = parts
            .headers
            .get(USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(|s| s.chars().take(256).collect());
        let form_cookie = parts
            .extensions
            .get::<FormCookie>()
            .map(|c| c.0.clone())
            .ok_or(PageError::Internal)?;
        let signed_in = match cookie(&parts.headers, state.cookies.session) {
            Some(value) => state.service.signed_in(&value).await?,
            None => None,
        };
        Ok(Self {
            ctx: RequestContext { ip, user_agent },
            form_cookie,
            signed_in,
            same_origin: posted_from_same_origin(&parts.headers, &state.origin),
        })
    }
}

/// A form body, refused as an error page.
pub type Form = gatehouse_look::Form<PageError>;
