//! What the five services share: the database handle, errors as problem bodies, request parsing,
//! identities and ids.

use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use gatehouse_proto::web::{BodyRejection, JsonBody, problem};
use gatehouse_sdk::Authenticated;
use rust_decimal::Decimal;
use serde::de::DeserializeOwned;
use sqlx::AnyPool;

/// The services' handle on the store they share with the authorization server. Each service
/// keeps to its own tables (named after it) and its own migration history.
#[derive(Clone)]
pub struct Db {
    pub pool: AnyPool,
    engine: Engine,
}

/// Which database is behind the pool; transactions that write start differently on each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Engine {
    Sqlite,
    Postgres,
}

impl Db {
    /// The services' handle on `pool`; which database it is, it says itself.
    pub fn new(pool: AnyPool) -> Self {
        let engine = match pool.connect_options().database_url.scheme() {
            "sqlite" => Engine::Sqlite,
            _ => Engine::Postgres,
        };
        Self { pool, engine }
    }

    /// A transaction that will write. SQLite's default deferred transaction fails with "busy"
    /// when it moves from reading to writing after another connection wrote; taking the write
    /// lock up front makes concurrent writers queue instead.
    pub(crate) async fn begin_write(
        &self,
    ) -> Result<sqlx::Transaction<'static, sqlx::Any>, sqlx::Error> {
        match self.engine {
            Engine::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await,
            Engine::Postgres => self.pool.begin().await,
        }
    }

    /// Applies a service's migrations, tracked in a table of its own so the histories of the
    /// services and the authorization server never mix.
    pub(crate) async fn migrate(
        &self,
        service: &'static str,
        mut migrator: sqlx::migrate::Migrator,
    ) -> Result<(), AppError> {
        migrator.dangerous_set_table_name(format!("_gatehouse_{service}_migrations"));
        migrator
            .run(&self.pool)
            .await
            .map_err(|e| AppError::Unavailable(format!("{service} migrations failed: {e}")))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Unavailable(String),
}

impl From<sqlx::Error> for AppError {
    fn from(error: sqlx::Error) -> Self {
        // Races with a concurrent delete or insert are the caller's news, not an outage.
        if let Some(db) = error.as_database_error() {
            if db.is_foreign_key_violation() {
                return Self::NotFound("what this refers to no longer exists".into());
            }
            if db.is_unique_violation() {
                return Self::Conflict("this exists already".into());
            }
        }
        Self::Unavailable(format!("the store failed: {error}"))
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let status = match &self {
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::Unavailable(detail) => {
                // The details stay in the log; callers learn only that it failed.
                tracing::error!(error = %detail, "a service request failed");
                return problem(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "the service cannot reach its store; try again shortly",
                );
            }
        };
        problem(status, self.to_string())
    }
}

/// A JSON body, read by the one extractor ([`JsonBody`]); the services answer every fault of
/// its content with 400, and a body over the limit with 413.
pub struct Body<T>(pub T);

impl<S, T> FromRequest<S> for Body<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = Response;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        match JsonBody::<T>::from_request(request, state).await {
            Ok(JsonBody(value)) => Ok(Self(value)),
            Err(too_large @ BodyRejection::TooLarge(_)) => Err(too_large.into_response()),
            Err(other) => Err(AppError::BadRequest(other.to_string()).into_response()),
        }
    }
}

/// The person behind a token; machine tokens (which carry no roles) are refused.
pub fn person(caller: &Authenticated) -> Result<&str, AppError> {
    match caller.roles {
        Some(_) => Ok(&caller.sub),
        None => Err(AppError::Forbidden(
            "this needs a person's token (a user's login), not a client's".into(),
        )),
    }
}

/// A new random id with a readable prefix: 16 lower-case hex digits after it.
pub fn new_id(prefix: &str) -> Result<String, AppError> {
    use std::fmt::Write;
    let bytes =
        gatehouse_token::random_bytes(8).map_err(|e| AppError::Unavailable(e.to_string()))?;
    let mut id = format!("{prefix}_");
    for byte in bytes {
        let _ = write!(id, "{byte:02x}");
    }
    Ok(id)
}

/// Unix seconds as RFC 3339.
pub fn rfc3339(at: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(at)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}

/// A decimal stored as text; a malformed value in the store is a store fault.
pub fn stored_decimal(text: &str) -> Result<Decimal, AppError> {
    text.parse()
        .map_err(|_| AppError::Unavailable(format!("a stored amount is not a number: {text:?}")))
}

/// A positive amount from a caller: a JSON string ("12.50") or a whole JSON number. A JSON
/// number with a fraction would already have been rounded through a binary float, so it is
/// refused rather than silently changed.
pub fn positive_decimal(field: &str, value: &serde_json::Value) -> Result<Decimal, AppError> {
    let text = match value {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Number(n) if n.is_i64() || n.is_u64() => n.to_string(),
        serde_json::Value::Number(_) => {
            return Err(AppError::BadRequest(format!(
                "{field}: send decimals as strings (\"0.92\"), so no float rounding changes them"
            )));
        }
        _ => return Err(AppError::BadRequest(format!("{field} must be a number"))),
    };
    parse_positive(field, &text)
}

pub fn parse_positive(field: &str, text: &str) -> Result<Decimal, AppError> {
    let value = text
        .trim()
        .parse::<Decimal>()
        .or_else(|_| Decimal::from_scientific(text.trim()))
        .map_err(|_| AppError::BadRequest(format!("{field} must be a number, got {text:?}")))?;
    if value <= Decimal::ZERO {
        return Err(AppError::BadRequest(format!("{field} must be positive")));
    }
    Ok(value.normalize())
}
