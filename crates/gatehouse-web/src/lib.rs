//! The hosted pages people see: sign-in, sign-up, consent, their account, sign-out, and the
//! authorization and logout endpoints (RFC 6749 §4.1, OpenID Connect RP-Initiated Logout) that
//! lead to them.
//!
//! Pages are rendered on the server from templates compiled into the binary, with one stylesheet
//! and no script. Every form carries an anti-forgery token and is checked against the browser's
//! `Origin`. This crate knows HTTP, cookies and HTML; it asks the core (`AuthService`) every
//! protocol question and must not decide one itself, nor know how anything is stored.

mod account;
mod authorize;
mod browser;
mod console;
mod error;
mod logout;
mod pages;
mod session;

use std::sync::Arc;

use axum::Router;
use axum::routing::{get, post};
use gatehouse_core::AuthService;

pub use gatehouse_look::CookieNames;

/// What every page handler can reach.
#[derive(Clone)]
pub struct WebState {
    service: Arc<AuthService>,
    cookies: Arc<CookieNames>,
    /// The issuer's origin (`scheme://host[:port]`): form posts must come from it.
    origin: String,
}

/// The pages and the browser-facing endpoints, for any router state (they carry their own).
pub fn pages<S: Clone + Send + Sync + 'static>(service: Arc<AuthService>) -> Router<S> {
    let config = service.config();
    let state = WebState {
        cookies: Arc::new(CookieNames::new(
            gatehouse_look::Prefix::Gatehouse,
            config.issuer_is_https(),
        )),
        origin: gatehouse_look::origin_of(config.base_url())
            .unwrap_or_else(|| config.base_url().to_owned()),
        service,
    };
    Router::new()
        .route(
            "/",
            get(|| async { axum::response::Redirect::to("/account") }),
        )
        .route(
            "/oauth2/authorize",
            get(authorize::authorize_get).post(authorize::authorize_post),
        )
        .route("/oauth2/authorize/decision", post(authorize::decision))
        .route(
            "/oauth2/logout",
            get(logout::logout_get).post(logout::logout_post),
        )
        .route("/oauth2/logout/confirm", post(logout::confirm))
        .route("/signin", get(session::sign_in_page).post(session::sign_in))
        .route("/signup", get(session::sign_up_page).post(session::sign_up))
        .route("/signout", post(session::sign_out))
        .route("/account", get(account::account_page))
        .route("/account/password", post(account::change_password))
        .route("/account/sessions/revoke", post(account::revoke_session))
        .route("/account/browsers/end", post(account::end_browser))
        .route("/account/consents/revoke", post(account::withdraw_consent))
        // The operators' console, for holders of the admin role.
        .merge(console::routes())
        .route(
            gatehouse_look::STYLESHEET_PATH,
            get(gatehouse_look::stylesheet),
        )
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            browser::ensure_form_cookie,
        ))
        .layer(axum::middleware::from_fn(gatehouse_look::page_headers))
        .with_state(state)
}

/// Where the browser goes after signing in: only our own authorization endpoint or account page,
/// so the sign-in form cannot be made to send anyone elsewhere.
fn safe_return_to(value: Option<&str>) -> String {
    match value {
        Some(path)
            if (path.starts_with("/oauth2/authorize?")
                || path == "/account"
                || is_console(path))
                && !path.contains('\\')
                && !path.chars().any(char::is_control) =>
        {
            path.to_owned()
        }
        _ => "/account".to_owned(),
    }
}

/// A console page (`/console`, `/console/…`, `/console?…`).
fn is_console(path: &str) -> bool {
    path.strip_prefix("/console")
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/') || rest.starts_with('?'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_in_returns_only_to_our_own_pages() {
        assert_eq!(
            safe_return_to(Some("/oauth2/authorize?client_id=a")),
            "/oauth2/authorize?client_id=a"
        );
        assert_eq!(safe_return_to(Some("/account")), "/account");
        for console in ["/console", "/console/clients?q=a", "/console?x=1"] {
            assert_eq!(safe_return_to(Some(console)), console);
        }
        for elsewhere in [
            "https://evil.example/",
            "//evil.example/",
            "/\\evil.example",
            "/admin",
            "/oauth2/authorize?\r\nx",
            "/consoles",
            "/console\\evil",
        ] {
            assert_eq!(safe_return_to(Some(elsewhere)), "/account", "{elsewhere}");
        }
        assert_eq!(safe_return_to(None), "/account");
    }
}
