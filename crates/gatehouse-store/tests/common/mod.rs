//! A fresh store per test, on SQLite (a file in a temporary directory) or on a new database of
//! the test PostgreSQL server, and records to put in it.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use gatehouse_core::{
    AuthMethod, AuthorizationCode, BrowserSession, Client, Consent, GrantType, RefreshFamily,
    RefreshTokenRecord, Role, ScopeSet, User,
};

pub use gatehouse_testkit::{Backend, TestDatabase as TestStore};

pub fn roles(names: &[&str]) -> Vec<String> {
    names.iter().map(|n| (*n).to_owned()).collect()
}

pub fn scopes(text: &str) -> ScopeSet {
    ScopeSet::parse(text).unwrap()
}

/// A confidential machine client with every column set.
pub fn client(id: &str, held: &[&str]) -> Client {
    Client {
        id: id.into(),
        name: format!("client {id}"),
        secret_hash: Some(format!("hash-of-{id}")),
        auth_method: AuthMethod::ClientSecretBasic,
        grant_types: vec![GrantType::ClientCredentials, GrantType::RefreshToken],
        scopes: Some(scopes("rates:read fx:read")),
        roles: roles(held),
        registration_token_hash: Some(format!("registration-of-{id}")),
        previous_secret_hash: Some(format!("old-hash-of-{id}")),
        previous_secret_expires_at: Some(1_700_000_500),
        created_at: 1_700_000_000,
        updated_at: 1_700_000_100,
        blocked_at: None,
        not_before: 0,
        redirect_uris: vec![
            format!("https://{id}.example.test/callback"),
            "http://127.0.0.1/callback".into(),
        ],
        post_logout_redirect_uris: vec![format!("https://{id}.example.test/")],
        skip_consent: true,
    }
}

pub fn user(id: &str, username: &str, held: &[&str]) -> User {
    User {
        id: id.into(),
        username: username.into(),
        email: format!("{username}@example.test"),
        password_hash: format!("argon2-of-{username}"),
        roles: roles(held),
        created_at: 1_700_000_000,
        updated_at: 1_700_000_000,
        blocked_at: None,
        not_before: 0,
    }
}

pub fn role(name: &str, scope: &str) -> Role {
    Role {
        name: name.into(),
        description: format!("the {name} role"),
        scopes: scopes(scope),
    }
}

pub fn family(id: &str, user_id: &str, client_id: &str, expires_at: i64) -> RefreshFamily {
    RefreshFamily {
        id: id.into(),
        user_id: user_id.into(),
        client_id: client_id.into(),
        scope: "rates:read".into(),
        created_at: 1_700_000_000,
        last_used_at: 1_700_000_000,
        expires_at,
        revoked_at: None,
        ip: Some("192.0.2.1".into()),
        user_agent: Some("tests".into()),
        browser_session_id: None,
    }
}

pub fn token(hash: &str, family_id: &str, expires_at: i64) -> RefreshTokenRecord {
    RefreshTokenRecord {
        hash: hash.into(),
        family_id: family_id.into(),
        created_at: 1_700_000_000,
        expires_at,
        rotated_at: None,
    }
}

/// A live browser session whose cookie hashes to `secret-of-{id}`.
pub fn browser_session(
    id: &str,
    user_id: &str,
    created_at: i64,
    expires_at: i64,
) -> BrowserSession {
    BrowserSession {
        id: id.into(),
        secret_hash: format!("secret-of-{id}"),
        user_id: user_id.into(),
        auth_time: created_at - 5,
        created_at,
        last_seen_at: created_at,
        expires_at,
        ended_at: None,
        ip: Some("192.0.2.2".into()),
        user_agent: Some("a browser".into()),
    }
}

/// An unused code with every column set, from the browser session `bs_1`.
pub fn code(hash: &str, client_id: &str, user_id: &str, expires_at: i64) -> AuthorizationCode {
    AuthorizationCode {
        hash: hash.into(),
        client_id: client_id.into(),
        user_id: user_id.into(),
        redirect_uri: format!("https://{client_id}.example.test/callback"),
        code_challenge: "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM".into(),
        nonce: Some(format!("nonce-of-{hash}")),
        scope: "openid rates:read".into(),
        auth_time: 1_700_000_000,
        browser_session_id: "bs_1".into(),
        created_at: 1_700_000_010,
        expires_at,
        used_at: None,
        family_id: None,
    }
}

pub fn consent(user_id: &str, client_id: &str, scope: &str, granted_at: i64) -> Consent {
    Consent {
        user_id: user_id.into(),
        client_id: client_id.into(),
        scope: scopes(scope),
        granted_at,
    }
}
