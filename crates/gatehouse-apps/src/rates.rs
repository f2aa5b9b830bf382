//! The crypto-rates feed: seeded assets whose rates move by a random step of at most ±0.5% on
//! every tick, with the opening rate of the current 24-hour window kept for `change_24h`.

use gatehouse_proto::openapi::BearerSecurity;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{FromRef, Path, State};
use axum::routing::get;
use axum::{Json, Router};
use gatehouse_sdk::{Policy, TokenVerifier, require};
use rand::Rng;
use rust_decimal::{Decimal, RoundingStrategy};
use serde::{Deserialize, Serialize};

use gatehouse_token::now_unix;

use crate::SERVICE_RESPONSES;
use crate::common::{AppError, Db, rfc3339, stored_decimal};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RatesSettings {
    /// Assets seeded on first start, with their opening rates (in USD).
    pub seed: Vec<SeedAsset>,
    /// How often every rate moves.
    pub tick_secs: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeedAsset {
    pub symbol: String,
    #[serde(with = "rust_decimal::serde::str")]
    pub rate: Decimal,
}

impl Default for RatesSettings {
    fn default() -> Self {
        let asset = |symbol: &str, rate: Decimal| SeedAsset {
            symbol: symbol.into(),
            rate,
        };
        Self {
            seed: vec![
                asset("BTC", Decimal::new(6_500_000, 2)),
                asset("ETH", Decimal::new(350_000, 2)),
                asset("SOL", Decimal::new(15_000, 2)),
            ],
            tick_secs: 3,
        }
    }
}

/// The most a rate moves in one tick: 0.5%, in millionths.
const MAX_STEP_MILLIONTHS: i64 = 5_000;
const DAY_SECS: i64 = 86_400;

#[derive(Clone)]
pub struct RatesState {
    db: Db,
    verifier: Arc<TokenVerifier>,
}

impl FromRef<RatesState> for Arc<TokenVerifier> {
    fn from_ref(state: &RatesState) -> Self {
        state.verifier.clone()
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Rate {
    pub symbol: String,
    /// In USD, as an exact decimal string.
    #[schema(value_type = String, example = "65012.37")]
    pub rate: Decimal,
    /// Percentage change since the opening of the current 24-hour window.
    #[schema(value_type = String, example = "-0.42")]
    pub change_24h: Decimal,
    /// RFC 3339.
    pub updated_at: String,
}

type AssetRow = (String, String, String, i64);

fn to_rate((symbol, rate, open, updated_at): AssetRow) -> Result<Rate, AppError> {
    let rate = stored_decimal(&rate)?;
    let open = stored_decimal(&open)?;
    let change = if open.is_zero() {
        Decimal::ZERO
    } else {
        ((rate - open) / open * Decimal::ONE_HUNDRED)
            .round_dp_with_strategy(2, RoundingStrategy::MidpointAwayFromZero)
    };
    Ok(Rate {
        symbol,
        rate,
        change_24h: change,
        updated_at: rfc3339(updated_at),
    })
}

#[utoipa::path(get, path = "/api/rates", tag = "rates",
    responses((status = 200, body = [Rate])), security(("bearer" = ["rates:read"])))]
async fn list(State(state): State<RatesState>) -> Result<Json<Vec<Rate>>, AppError> {
    let rows: Vec<AssetRow> = sqlx::query_as(
        "SELECT symbol, rate, open_rate, updated_at FROM rates_assets ORDER BY symbol",
    )
    .fetch_all(&state.db.pool)
    .await?;
    Ok(Json(
        rows.into_iter().map(to_rate).collect::<Result<_, _>>()?,
    ))
}

#[utoipa::path(get, path = "/api/rates/{symbol}", tag = "rates",
    params(("symbol" = String, Path, example = "BTC")),
    responses((status = 200, body = Rate), (status = 400), (status = 404)),
    security(("bearer" = ["rates:read"])))]
async fn one(
    State(state): State<RatesState>,
    Path(symbol): Path<String>,
) -> Result<Json<Rate>, AppError> {
    let symbol = asset_symbol(&symbol)?;
    let row: Option<AssetRow> = sqlx::query_as(
        "SELECT symbol, rate, open_rate, updated_at FROM rates_assets WHERE symbol = $1",
    )
    .bind(&symbol)
    .fetch_optional(&state.db.pool)
    .await?;
    let row = row.ok_or_else(|| AppError::NotFound(format!("no asset {symbol}")))?;
    Ok(Json(to_rate(row)?))
}

fn asset_symbol(text: &str) -> Result<String, AppError> {
    if (1..=10).contains(&text.len()) && text.bytes().all(|b| b.is_ascii_alphanumeric()) {
        Ok(text.to_ascii_uppercase())
    } else {
        Err(AppError::BadRequest(format!(
            "an asset symbol is 1 to 10 letters or digits, got {text:?}"
        )))
    }
}

async fn seed(db: &Db, settings: &RatesSettings) -> Result<(), AppError> {
    let now = now_unix();
    for asset in &settings.seed {
        let symbol = asset_symbol(&asset.symbol)?;
        if asset.rate <= Decimal::ZERO {
            return Err(AppError::BadRequest(format!(
                "apps.rates.seed: the rate of {symbol} must be positive"
            )));
        }
        sqlx::query(
            "INSERT INTO rates_assets (symbol, rate, open_rate, opened_at, updated_at) \
             VALUES ($1, $2, $2, $3, $3) ON CONFLICT DO NOTHING",
        )
        .bind(symbol)
        .bind(asset.rate.to_string())
        .bind(now)
        .execute(&db.pool)
        .await?;
    }
    Ok(())
}

/// One move of every rate; a window older than a day reopens at the current rate.
pub(crate) async fn tick(db: &Db) -> Result<(), AppError> {
    let rows: Vec<(String, String, String, i64)> =
        sqlx::query_as("SELECT symbol, rate, open_rate, opened_at FROM rates_assets")
            .fetch_all(&db.pool)
            .await?;
    let now = now_unix();
    for (symbol, rate, open, opened_at) in rows {
        let rate = stored_decimal(&rate)?;
        let step = rand::rng().random_range(-MAX_STEP_MILLIONTHS..=MAX_STEP_MILLIONTHS);
        // Twelve significant digits: cheap assets keep moving instead of rounding to zero.
        let Some(moved) = rate
            .checked_mul(Decimal::ONE + Decimal::new(step, 6))
            .and_then(|m| m.round_sf(12))
            .map(|m| m.normalize())
            .filter(|m| !m.is_zero())
        else {
            continue;
        };
        let (open, opened_at) = if now - opened_at >= DAY_SECS {
            (rate.to_string(), now)
        } else {
            (open, opened_at)
        };
        sqlx::query(
            "UPDATE rates_assets SET rate = $1, open_rate = $2, opened_at = $3, updated_at = $4 \
             WHERE symbol = $5",
        )
        .bind(moved.to_string())
        .bind(open)
        .bind(opened_at)
        .bind(now)
        .bind(symbol)
        .execute(&db.pool)
        .await?;
    }
    Ok(())
}

async fn keep_moving(db: Db, every: Duration) {
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticks.tick().await;
    loop {
        ticks.tick().await;
        if let Err(e) = tick(&db).await {
            tracing::warn!(error = %e, "the rates did not move this tick");
        }
    }
}

#[derive(utoipa::OpenApi)]
#[openapi(
    info(title = "Gatehouse crypto rates", description = "Crypto-asset rates in USD; needs rates:read."),
    paths(list, one),
    components(schemas(Rate)),
    modifiers(&BearerSecurity, &SERVICE_RESPONSES)
)]
pub struct Doc;

pub async fn router(
    db: Db,
    verifier: Arc<TokenVerifier>,
    settings: &RatesSettings,
) -> Result<Router, AppError> {
    db.migrate("rates", sqlx::migrate!("migrations/rates"))
        .await?;
    seed(&db, settings).await?;
    tokio::spawn(keep_moving(
        db.clone(),
        Duration::from_secs(settings.tick_secs.max(1)),
    ));
    let read = require(verifier.clone(), Policy::scopes(["rates:read"]));
    Ok(Router::new()
        .route("/api/rates", get(list).route_layer(read.clone()))
        .route("/api/rates/{symbol}", get(one).route_layer(read))
        .route("/api/rates/openapi.json", get(crate::openapi::<Doc>))
        .with_state(RatesState { db, verifier }))
}
