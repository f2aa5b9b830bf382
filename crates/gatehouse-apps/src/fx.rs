//! Currency exchange: currencies, rates between pairs, and conversion (direct, inverse, or across
//! USD). Rates and amounts are exact decimals and travel as strings.

use gatehouse_proto::openapi::BearerSecurity;
use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{FromRef, Path, Query, State};
use axum::handler::Handler;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use gatehouse_sdk::{Policy, TokenVerifier, require};
use rust_decimal::{Decimal, RoundingStrategy};
use serde::{Deserialize, Serialize};

use gatehouse_token::now_unix;

use crate::SERVICE_RESPONSES;
use crate::common::{AppError, Body, Db, positive_decimal, stored_decimal};

/// Decimal places of a rate worked out by inversion or across USD (stored rates are used as
/// they are), and of converted amounts.
pub const RATE_PLACES: u32 = 10;
pub const AMOUNT_PLACES: u32 = 2;

#[derive(Clone)]
pub struct FxState {
    db: Db,
    verifier: Arc<TokenVerifier>,
}

impl FromRef<FxState> for Arc<TokenVerifier> {
    fn from_ref(state: &FxState) -> Self {
        state.verifier.clone()
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Currency {
    /// ISO 4217 style: three letters.
    pub code: String,
    pub name: String,
    pub sign: String,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ExchangeRate {
    pub base: Currency,
    pub target: Currency,
    /// How many `target` one `base` buys, as an exact decimal string.
    #[schema(value_type = String, example = "0.92")]
    pub rate: Decimal,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewRate {
    pub base: String,
    pub target: String,
    /// A positive decimal as a string ("0.92"); a whole JSON number is accepted too.
    #[schema(value_type = String)]
    pub rate: serde_json::Value,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RateChange {
    #[schema(value_type = String)]
    pub rate: serde_json::Value,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Conversion {
    pub base: Currency,
    pub target: Currency,
    #[schema(value_type = String)]
    pub rate: Decimal,
    #[schema(value_type = String)]
    pub amount: Decimal,
    #[schema(value_type = String)]
    pub converted_amount: Decimal,
}

/// Three ASCII letters, upper-cased.
fn currency_code(text: &str) -> Result<String, AppError> {
    if text.len() == 3 && text.bytes().all(|b| b.is_ascii_alphabetic()) {
        Ok(text.to_ascii_uppercase())
    } else {
        Err(AppError::BadRequest(format!(
            "a currency code is three letters, got {text:?}"
        )))
    }
}

/// `USDEUR` → (`USD`, `EUR`).
fn pair(text: &str) -> Result<(String, String), AppError> {
    match (text.get(..3), text.get(3..)) {
        (Some(base), Some(target)) if text.len() == 6 => {
            Ok((currency_code(base)?, currency_code(target)?))
        }
        _ => Err(AppError::BadRequest(format!(
            "a currency pair is two codes together, like USDEUR; got {text:?}"
        ))),
    }
}

type CurrencyRow = (String, String, String);

async fn find_currency(db: &Db, code: &str) -> Result<Option<Currency>, AppError> {
    let row: Option<CurrencyRow> =
        sqlx::query_as("SELECT code, name, sign FROM fx_currencies WHERE code = $1")
            .bind(code)
            .fetch_optional(&db.pool)
            .await?;
    Ok(row.map(|(code, name, sign)| Currency { code, name, sign }))
}

async fn currency(db: &Db, code: &str) -> Result<Currency, AppError> {
    find_currency(db, code)
        .await?
        .ok_or_else(|| AppError::NotFound(format!("no currency {code}")))
}

async fn direct_rate(db: &Db, base: &str, target: &str) -> Result<Option<Decimal>, AppError> {
    let row: Option<(String,)> =
        sqlx::query_as("SELECT rate FROM fx_rates WHERE base = $1 AND target = $2")
            .bind(base)
            .bind(target)
            .fetch_optional(&db.pool)
            .await?;
    row.map(|(rate,)| stored_decimal(&rate)).transpose()
}

/// The rate from `base` to `target`: stored directly, or the inverse of the reverse rate.
async fn rate_either_way(db: &Db, base: &str, target: &str) -> Result<Option<Decimal>, AppError> {
    if base == target {
        return Ok(Some(Decimal::ONE));
    }
    if let Some(rate) = direct_rate(db, base, target).await? {
        return Ok(Some(rate));
    }
    Ok(direct_rate(db, target, base)
        .await?
        .and_then(|reverse| Decimal::ONE.checked_div(reverse)))
}

/// The stored rate when there is one; else the inverse of the reverse rate, else the product
/// across USD, rounded to [`RATE_PLACES`].
pub(crate) async fn conversion_rate(
    db: &Db,
    base: &str,
    target: &str,
) -> Result<Option<Decimal>, AppError> {
    if let Some(rate) = direct_rate(db, base, target).await? {
        return Ok(Some(rate));
    }
    let worked_out = match rate_either_way(db, base, target).await? {
        Some(rate) => Some(rate),
        None => match (
            rate_either_way(db, base, "USD").await?,
            rate_either_way(db, "USD", target).await?,
        ) {
            (Some(to_usd), Some(from_usd)) => to_usd.checked_mul(from_usd),
            _ => None,
        },
    };
    Ok(worked_out.map(|r| {
        r.round_dp_with_strategy(RATE_PLACES, RoundingStrategy::MidpointAwayFromZero)
            .normalize()
    }))
}

#[utoipa::path(get, path = "/api/fx/currencies", tag = "fx",
    responses((status = 200, body = [Currency])), security(("bearer" = ["fx:read"])))]
async fn list_currencies(State(state): State<FxState>) -> Result<Json<Vec<Currency>>, AppError> {
    let rows: Vec<CurrencyRow> =
        sqlx::query_as("SELECT code, name, sign FROM fx_currencies ORDER BY code")
            .fetch_all(&state.db.pool)
            .await?;
    Ok(Json(
        rows.into_iter()
            .map(|(code, name, sign)| Currency { code, name, sign })
            .collect(),
    ))
}

#[utoipa::path(post, path = "/api/fx/currencies", tag = "fx", request_body = Currency,
    responses((status = 201, body = Currency), (status = 400), (status = 409)),
    security(("bearer" = ["fx:write"])))]
async fn create_currency(
    State(state): State<FxState>,
    Body(new): Body<Currency>,
) -> Result<(StatusCode, Json<Currency>), AppError> {
    let code = currency_code(&new.code)?;
    let name = new.name.trim();
    let sign = new.sign.trim();
    if name.is_empty() || name.chars().count() > 100 {
        return Err(AppError::BadRequest(
            "name must be 1 to 100 characters".into(),
        ));
    }
    if sign.is_empty() || sign.chars().count() > 8 {
        return Err(AppError::BadRequest(
            "sign must be 1 to 8 characters".into(),
        ));
    }
    let inserted = sqlx::query(
        "INSERT INTO fx_currencies (code, name, sign) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
    )
    .bind(&code)
    .bind(name)
    .bind(sign)
    .execute(&state.db.pool)
    .await?;
    if inserted.rows_affected() == 0 {
        return Err(AppError::Conflict(format!(
            "the currency {code} exists already"
        )));
    }
    Ok((
        StatusCode::CREATED,
        Json(Currency {
            code,
            name: name.to_owned(),
            sign: sign.to_owned(),
        }),
    ))
}

#[utoipa::path(get, path = "/api/fx/currencies/{code}", tag = "fx",
    params(("code" = String, Path)), responses((status = 200, body = Currency), (status = 404)),
    security(("bearer" = ["fx:read"])))]
async fn get_currency(
    State(state): State<FxState>,
    Path(code): Path<String>,
) -> Result<Json<Currency>, AppError> {
    Ok(Json(currency(&state.db, &currency_code(&code)?).await?))
}

#[utoipa::path(delete, path = "/api/fx/currencies/{code}", tag = "fx",
    params(("code" = String, Path)),
    responses((status = 204), (status = 403, description = "Needs the admin role"), (status = 404)),
    security(("bearer" = [])))]
async fn delete_currency(
    State(state): State<FxState>,
    Path(code): Path<String>,
) -> Result<StatusCode, AppError> {
    let code = currency_code(&code)?;
    let deleted = sqlx::query("DELETE FROM fx_currencies WHERE code = $1")
        .bind(&code)
        .execute(&state.db.pool)
        .await?;
    match deleted.rows_affected() {
        0 => Err(AppError::NotFound(format!("no currency {code}"))),
        _ => Ok(StatusCode::NO_CONTENT),
    }
}

async fn exchange_rate(db: &Db, base: &str, target: &str) -> Result<ExchangeRate, AppError> {
    let rate = direct_rate(db, base, target)
        .await?
        .ok_or_else(|| AppError::NotFound(format!("no rate {base}{target}")))?;
    Ok(ExchangeRate {
        base: currency(db, base).await?,
        target: currency(db, target).await?,
        rate,
    })
}

#[utoipa::path(get, path = "/api/fx/rates", tag = "fx",
    responses((status = 200, body = [ExchangeRate])), security(("bearer" = ["fx:read"])))]
async fn list_rates(State(state): State<FxState>) -> Result<Json<Vec<ExchangeRate>>, AppError> {
    let currencies: HashMap<String, Currency> = list_currencies(State(state.clone()))
        .await?
        .0
        .into_iter()
        .map(|c| (c.code.clone(), c))
        .collect();
    let rows: Vec<(String, String, String)> =
        sqlx::query_as("SELECT base, target, rate FROM fx_rates ORDER BY base, target")
            .fetch_all(&state.db.pool)
            .await?;
    let mut rates = Vec::with_capacity(rows.len());
    for (base, target, rate) in rows {
        if let (Some(b), Some(t)) = (currencies.get(&base), currencies.get(&target)) {
            rates.push(ExchangeRate {
                base: b.clone(),
                target: t.clone(),
                rate: stored_decimal(&rate)?,
            });
        }
    }
    Ok(Json(rates))
}

#[utoipa::path(post, path = "/api/fx/rates", tag = "fx", request_body = NewRate,
    responses((status = 201, body = ExchangeRate), (status = 400), (status = 404), (status = 409)),
    security(("bearer" = ["fx:write"])))]
async fn create_rate(
    State(state): State<FxState>,
    Body(new): Body<NewRate>,
) -> Result<(StatusCode, Json<ExchangeRate>), AppError> {
    let base = currency_code(&new.base)?;
    let target = currency_code(&new.target)?;
    let rate = positive_decimal("rate", &new.rate)?;
    if base == target {
        return Err(AppError::BadRequest("base and target must differ".into()));
    }
    currency(&state.db, &base).await?;
    currency(&state.db, &target).await?;
    let inserted = sqlx::query(
        "INSERT INTO fx_rates (base, target, rate, updated_at) VALUES ($1, $2, $3, $4) \
         ON CONFLICT DO NOTHING",
    )
    .bind(&base)
    .bind(&target)
    .bind(rate.to_string())
    .bind(now_unix())
    .execute(&state.db.pool)
    .await?;
    if inserted.rows_affected() == 0 {
        return Err(AppError::Conflict(format!(
            "the rate {base}{target} exists already"
        )));
    }
    Ok((
        StatusCode::CREATED,
        Json(exchange_rate(&state.db, &base, &target).await?),
    ))
}

#[utoipa::path(get, path = "/api/fx/rates/{pair}", tag = "fx",
    params(("pair" = String, Path, example = "USDEUR")),
    responses((status = 200, body = ExchangeRate), (status = 400), (status = 404)),
    security(("bearer" = ["fx:read"])))]
async fn get_rate(
    State(state): State<FxState>,
    Path(text): Path<String>,
) -> Result<Json<ExchangeRate>, AppError> {
    let (base, target) = pair(&text)?;
    Ok(Json(exchange_rate(&state.db, &base, &target).await?))
}

#[utoipa::path(patch, path = "/api/fx/rates/{pair}", tag = "fx", request_body = RateChange,
    params(("pair" = String, Path, example = "USDEUR")),
    responses((status = 200, body = ExchangeRate), (status = 400), (status = 404)),
    security(("bearer" = ["fx:write"])))]
async fn update_rate(
    State(state): State<FxState>,
    Path(text): Path<String>,
    Body(change): Body<RateChange>,
) -> Result<Json<ExchangeRate>, AppError> {
    let (base, target) = pair(&text)?;
    let rate = positive_decimal("rate", &change.rate)?;
    let updated = sqlx::query(
        "UPDATE fx_rates SET rate = $1, updated_at = $2 WHERE base = $3 AND target = $4",
    )
    .bind(rate.to_string())
    .bind(now_unix())
    .bind(&base)
    .bind(&target)
    .execute(&state.db.pool)
    .await?;
    if updated.rows_affected() == 0 {
        return Err(AppError::NotFound(format!("no rate {base}{target}")));
    }
    Ok(Json(exchange_rate(&state.db, &base, &target).await?))
}

#[utoipa::path(delete, path = "/api/fx/rates/{pair}", tag = "fx",
    params(("pair" = String, Path, example = "USDEUR")),
    responses((status = 204), (status = 403, description = "Needs the admin role"), (status = 404)),
    security(("bearer" = [])))]
async fn delete_rate(
    State(state): State<FxState>,
    Path(text): Path<String>,
) -> Result<StatusCode, AppError> {
    let (base, target) = pair(&text)?;
    let deleted = sqlx::query("DELETE FROM fx_rates WHERE base = $1 AND target = $2")
        .bind(&base)
        .bind(&target)
        .execute(&state.db.pool)
        .await?;
    match deleted.rows_affected() {
        0 => Err(AppError::NotFound(format!("no rate {base}{target}"))),
        _ => Ok(StatusCode::NO_CONTENT),
    }
}

/// Converts `amount` of `from` into `to`. The rate is the stored one, else the inverse of the
/// reverse one, else the product across USD; a rate worked out is rounded to 10 places and the
/// converted amount to 2 (half away from zero).
#[utoipa::path(get, path = "/api/fx/convert", tag = "fx",
    params(("from" = String, Query), ("to" = String, Query), ("amount" = String, Query)),
    responses((status = 200, body = Conversion), (status = 400), (status = 404)),
    security(("bearer" = ["fx:read"])))]
async fn convert(
    State(state): State<FxState>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Json<Conversion>, AppError> {
    let field = |name: &str| {
        query
            .get(name)
            .ok_or_else(|| AppError::BadRequest(format!("the query needs {name}")))
    };
    let from = currency_code(field("from")?)?;
    let to = currency_code(field("to")?)?;
    let amount = crate::common::parse_positive("amount", field("amount")?)?;
    let base = currency(&state.db, &from).await?;
    let target = currency(&state.db, &to).await?;
    let rate = conversion_rate(&state.db, &from, &to)
        .await?
        .ok_or_else(|| AppError::NotFound(format!("no way to convert {from} to {to}")))?;
    if rate.is_zero() {
        return Err(AppError::BadRequest(format!(
            "the rate from {from} to {to} is too small to express"
        )));
    }
    let converted = amount
        .checked_mul(rate)
        .ok_or_else(|| AppError::BadRequest("the amount is too large".into()))?
        .round_dp_with_strategy(AMOUNT_PLACES, RoundingStrategy::MidpointAwayFromZero);
    Ok(Json(Conversion {
        base,
        target,
        rate,
        amount,
        converted_amount: converted,
    }))
}

/// Seeds a handful of currencies and rates into an empty table.
async fn seed(db: &Db) -> Result<(), AppError> {
    let (count,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM fx_currencies")
        .fetch_one(&db.pool)
        .await?;
    if count > 0 {
        return Ok(());
    }
    for (code, name, sign) in [
        ("USD", "US Dollar", "$"),
        ("EUR", "Euro", "€"),
        ("GBP", "Pound Sterling", "£"),
        ("JPY", "Yen", "¥"),
        ("CHF", "Swiss Franc", "Fr"),
        ("AUD", "Australian Dollar", "A$"),
    ] {
        sqlx::query(
            "INSERT INTO fx_currencies (code, name, sign) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
        )
            .bind(code)
            .bind(name)
            .bind(sign)
            .execute(&db.pool)
            .await?;
    }
    for (base, target, rate) in [
        ("USD", "EUR", "0.92"),
        ("USD", "GBP", "0.79"),
        ("USD", "JPY", "151.50"),
        ("EUR", "CHF", "0.96"),
        ("AUD", "USD", "0.66"),
    ] {
        sqlx::query(
            "INSERT INTO fx_rates (base, target, rate, updated_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(base)
        .bind(target)
        .bind(rate)
        .bind(now_unix())
        .execute(&db.pool)
        .await?;
    }
    Ok(())
}

#[derive(utoipa::OpenApi)]
#[openapi(
    info(title = "Gatehouse currency exchange",
         description = "Currencies, exchange rates and conversion. Reading needs fx:read, writing fx:write, deleting the admin role. Amounts and rates are decimal strings."),
    paths(list_currencies, create_currency, get_currency, delete_currency, list_rates, create_rate,
          get_rate, update_rate, delete_rate, convert),
    components(schemas(Currency, ExchangeRate, NewRate, RateChange, Conversion)),
    modifiers(&BearerSecurity, &SERVICE_RESPONSES)
)]
pub struct Doc;

pub async fn router(db: Db, verifier: Arc<TokenVerifier>) -> Result<Router, AppError> {
    db.migrate("fx", sqlx::migrate!("migrations/fx")).await?;
    seed(&db).await?;
    let read = || require(verifier.clone(), Policy::scopes(["fx:read"]));
    let write = || require(verifier.clone(), Policy::scopes(["fx:write"]));
    let admin = || require(verifier.clone(), Policy::roles(["admin"]));
    let state = FxState {
        db,
        verifier: verifier.clone(),
    };
    Ok(Router::new()
        .route(
            "/api/fx/currencies",
            get(list_currencies.layer(read())).post(create_currency.layer(write())),
        )
        .route(
            "/api/fx/currencies/{code}",
            get(get_currency.layer(read())).delete(delete_currency.layer(admin())),
        )
        .route(
            "/api/fx/rates",
            get(list_rates.layer(read())).post(create_rate.layer(write())),
        )
        .route(
            "/api/fx/rates/{pair}",
            get(get_rate.layer(read()))
                .patch(update_rate.layer(write()))
                .delete(delete_rate.layer(admin())),
        )
        .route("/api/fx/convert", get(convert.layer(read())))
        .route("/api/fx/openapi.json", get(crate::openapi::<Doc>))
        .with_state(state))
}
