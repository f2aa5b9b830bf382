//! A fresh store per test, on SQLite (a file in a temporary directory) or on a new database of
//! the test PostgreSQL server, and records to put in it.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use gatehouse_core::{
    AuthMethod, Client, GrantType, RefreshFamily, RefreshTokenRecord, Role, ScopeSet, User,
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
