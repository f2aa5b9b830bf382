//! Orders: a seeded catalog, and orders that check stock, simulate a payment (succeeding at a
//! configurable, seedable rate) and move stock only when paid.

use gatehouse_proto::openapi::BearerSecurity;
use std::sync::{Arc, Mutex};

use axum::extract::{FromRef, Path, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use gatehouse_sdk::{Authenticated, Policy, TokenVerifier, require};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use gatehouse_token::now_unix;

use crate::SERVICE_RESPONSES;
use crate::common::{AppError, Body, Db, new_id, person, rfc3339, stored_decimal};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OrdersSettings {
    /// The share of payments that succeed, from 0 to 1.
    pub payment_success_rate: f64,
    /// Seeds the payment simulation, for repeatable runs; unset draws from the OS.
    pub payment_seed: Option<u64>,
}

impl Default for OrdersSettings {
    fn default() -> Self {
        Self {
            payment_success_rate: 0.8,
            payment_seed: None,
        }
    }
}

#[derive(Clone)]
pub struct OrdersState {
    db: Db,
    verifier: Arc<TokenVerifier>,
    payments: Arc<Mutex<StdRng>>,
    success_rate: f64,
}

impl FromRef<OrdersState> for Arc<TokenVerifier> {
    fn from_ref(state: &OrdersState) -> Self {
        state.verifier.clone()
    }
}

impl OrdersState {
    fn payment_succeeds(&self) -> bool {
        let mut rng = self.payments.lock().unwrap_or_else(|p| p.into_inner());
        rng.random_bool(self.success_rate.clamp(0.0, 1.0))
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Product {
    pub id: String,
    pub name: String,
    #[schema(value_type = String, example = "89.90")]
    pub price: Decimal,
    pub stock: i64,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewOrder {
    pub items: Vec<NewItem>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewItem {
    pub product_id: String,
    pub quantity: i64,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct OrderItem {
    pub product_id: String,
    pub quantity: i64,
    #[schema(value_type = String)]
    pub unit_price: Decimal,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Order {
    pub id: String,
    pub buyer: String,
    /// `paid` or `payment_failed`.
    pub status: String,
    #[schema(value_type = String, example = "179.80")]
    pub total: Decimal,
    pub items: Vec<OrderItem>,
    pub created_at: String,
}

type ProductRow = (String, String, String, i64);

#[utoipa::path(get, path = "/api/products", tag = "orders",
    responses((status = 200, body = [Product]), (status = 403)), security(("bearer" = ["orders"])))]
async fn products(
    State(state): State<OrdersState>,
    caller: Authenticated,
) -> Result<Json<Vec<Product>>, AppError> {
    person(&caller)?;
    let rows: Vec<ProductRow> =
        sqlx::query_as("SELECT id, name, price, stock FROM orders_products ORDER BY id")
            .fetch_all(&state.db.pool)
            .await?;
    let products = rows
        .into_iter()
        .map(|(id, name, price, stock)| {
            Ok(Product {
                id,
                name,
                price: stored_decimal(&price)?,
                stock,
            })
        })
        .collect::<Result<_, AppError>>()?;
    Ok(Json(products))
}

/// Places an order: every product must exist and have the stock; then the payment is simulated.
/// The order is stored either way (`paid` or `payment_failed`); stock moves only when paid.
#[utoipa::path(post, path = "/api/orders", tag = "orders", request_body = NewOrder,
    responses((status = 201, body = Order), (status = 400), (status = 409, description = "Not enough stock")),
    security(("bearer" = ["orders"])))]
async fn place(
    State(state): State<OrdersState>,
    caller: Authenticated,
    Body(new): Body<NewOrder>,
) -> Result<(StatusCode, Json<Order>), AppError> {
    let buyer = person(&caller)?.to_owned();
    if new.items.is_empty() {
        return Err(AppError::BadRequest("the cart is empty".into()));
    }
    if new.items.len() > 100 {
        return Err(AppError::BadRequest(
            "an order has at most 100 lines".into(),
        ));
    }
    for (i, item) in new.items.iter().enumerate() {
        if !(1..=10_000).contains(&item.quantity) {
            return Err(AppError::BadRequest(format!(
                "items[{i}].quantity must be from 1 to 10000"
            )));
        }
        if new.items[..i]
            .iter()
            .any(|earlier| earlier.product_id == item.product_id)
        {
            return Err(AppError::BadRequest(format!(
                "items[{i}]: product {} is listed twice",
                item.product_id
            )));
        }
    }
    // Rows are locked in one order by every buyer, so two carts cannot deadlock.
    let mut items = new.items;
    items.sort_by(|a, b| a.product_id.cmp(&b.product_id));
    let mut tx = state.db.begin_write().await?;
    let mut lines = Vec::with_capacity(items.len());
    let mut total = Decimal::ZERO;
    for item in &items {
        let row: Option<(String, i64)> =
            sqlx::query_as("SELECT price, stock FROM orders_products WHERE id = $1")
                .bind(&item.product_id)
                .fetch_optional(&mut *tx)
                .await?;
        let (price, stock) = row.ok_or_else(|| {
            AppError::BadRequest(format!("there is no product {}", item.product_id))
        })?;
        if stock < item.quantity {
            return Err(AppError::Conflict(format!(
                "only {stock} of product {} left",
                item.product_id
            )));
        }
        let price = stored_decimal(&price)?;
        total = price
            .checked_mul(Decimal::from(item.quantity))
            .and_then(|line| total.checked_add(line))
            .ok_or_else(|| AppError::BadRequest("the order's total is too large".into()))?;
        lines.push(OrderItem {
            product_id: item.product_id.clone(),
            quantity: item.quantity,
            unit_price: price,
        });
    }
    let paid = state.payment_succeeds();
    let created_at = now_unix();
    let order = Order {
        id: new_id("ord")?,
        buyer,
        status: if paid { "paid" } else { "payment_failed" }.into(),
        total,
        items: lines,
        created_at: rfc3339(created_at),
    };
    sqlx::query(
        "INSERT INTO orders_orders (id, buyer, status, total, created_at) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(&order.id)
    .bind(&order.buyer)
    .bind(&order.status)
    .bind(order.total.to_string())
    .bind(created_at)
    .execute(&mut *tx)
    .await?;
    for line in &order.items {
        sqlx::query(
            "INSERT INTO orders_items (order_id, product_id, quantity, unit_price) VALUES ($1, $2, $3, $4)",
        )
        .bind(&order.id)
        .bind(&line.product_id)
        .bind(line.quantity)
        .bind(line.unit_price.to_string())
        .execute(&mut *tx)
        .await?;
        if paid {
            // Conditional, so two buyers of the last item cannot both get it.
            let taken = sqlx::query(
                "UPDATE orders_products SET stock = stock - $1 WHERE id = $2 AND stock >= $1",
            )
            .bind(line.quantity)
            .bind(&line.product_id)
            .execute(&mut *tx)
            .await?;
            if taken.rows_affected() == 0 {
                return Err(AppError::Conflict(format!(
                    "product {} sold out meanwhile",
                    line.product_id
                )));
            }
        }
    }
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(order)))
}

async fn load_orders(db: &Db, buyer: &str, id: Option<&str>) -> Result<Vec<Order>, AppError> {
    let rows: Vec<(String, String, String, String, i64)> = match id {
        Some(id) => {
            sqlx::query_as(
                "SELECT id, buyer, status, total, created_at FROM orders_orders \
                 WHERE buyer = $1 AND id = $2",
            )
            .bind(buyer)
            .bind(id)
            .fetch_all(&db.pool)
            .await?
        }
        None => {
            sqlx::query_as(
                "SELECT id, buyer, status, total, created_at FROM orders_orders \
                 WHERE buyer = $1 ORDER BY created_at DESC, id",
            )
            .bind(buyer)
            .fetch_all(&db.pool)
            .await?
        }
    };
    let mut orders = Vec::with_capacity(rows.len());
    for (id, buyer, status, total, created_at) in rows {
        let items: Vec<(String, i64, String)> = sqlx::query_as(
            "SELECT product_id, quantity, unit_price FROM orders_items WHERE order_id = $1 \
             ORDER BY product_id",
        )
        .bind(&id)
        .fetch_all(&db.pool)
        .await?;
        orders.push(Order {
            id,
            buyer,
            status,
            total: stored_decimal(&total)?,
            items: items
                .into_iter()
                .map(|(product_id, quantity, price)| {
                    Ok(OrderItem {
                        product_id,
                        quantity,
                        unit_price: stored_decimal(&price)?,
                    })
                })
                .collect::<Result<_, AppError>>()?,
            created_at: rfc3339(created_at),
        });
    }
    Ok(orders)
}

#[utoipa::path(get, path = "/api/orders", tag = "orders",
    responses((status = 200, body = [Order])), security(("bearer" = ["orders"])))]
async fn mine(
    State(state): State<OrdersState>,
    caller: Authenticated,
) -> Result<Json<Vec<Order>>, AppError> {
    Ok(Json(load_orders(&state.db, person(&caller)?, None).await?))
}

/// One of the caller's orders; anyone else's is 404, as if it did not exist.
#[utoipa::path(get, path = "/api/orders/{id}", tag = "orders", params(("id" = String, Path)),
    responses((status = 200, body = Order), (status = 404)), security(("bearer" = ["orders"])))]
async fn one(
    State(state): State<OrdersState>,
    caller: Authenticated,
    Path(id): Path<String>,
) -> Result<Json<Order>, AppError> {
    load_orders(&state.db, person(&caller)?, Some(&id))
        .await?
        .pop()
        .map(Json)
        .ok_or_else(|| AppError::NotFound(format!("no order {id}")))
}

async fn seed(db: &Db) -> Result<(), AppError> {
    for (id, name, price, stock) in [
        ("keyboard", "Mechanical keyboard", "89.90", 50),
        ("mouse", "Wireless mouse", "24.50", 100),
        ("monitor", "27-inch monitor", "279.00", 20),
        ("headset", "Noise-cancelling headset", "149.99", 30),
        ("cable", "USB-C cable", "9.99", 500),
    ] {
        sqlx::query(
            "INSERT INTO orders_products (id, name, price, stock) VALUES ($1, $2, $3, $4) \
             ON CONFLICT DO NOTHING",
        )
        .bind(id)
        .bind(name)
        .bind(price)
        .bind(stock)
        .execute(&db.pool)
        .await?;
    }
    Ok(())
}

#[derive(utoipa::OpenApi)]
#[openapi(
    info(title = "Gatehouse orders", description = "A catalog and orders with a simulated payment; needs a person's token with the orders scope."),
    paths(products, place, mine, one),
    components(schemas(Product, NewOrder, NewItem, Order, OrderItem)),
    modifiers(&BearerSecurity, &SERVICE_RESPONSES)
)]
pub struct Doc;

pub async fn router(
    db: Db,
    verifier: Arc<TokenVerifier>,
    settings: &OrdersSettings,
) -> Result<Router, AppError> {
    if !(0.0..=1.0).contains(&settings.payment_success_rate) {
        return Err(AppError::BadRequest(
            "apps.orders.payment_success_rate must be between 0 and 1".into(),
        ));
    }
    db.migrate("orders", sqlx::migrate!("migrations/orders"))
        .await?;
    seed(&db).await?;
    let rng = match settings.payment_seed {
        Some(seed) => StdRng::seed_from_u64(seed),
        None => StdRng::from_os_rng(),
    };
    let state = OrdersState {
        db,
        verifier: verifier.clone(),
        payments: Arc::new(Mutex::new(rng)),
        success_rate: settings.payment_success_rate,
    };
    let guard = require(verifier, Policy::scopes(["orders"]));
    Ok(Router::new()
        .route("/api/products", get(products).route_layer(guard.clone()))
        .route(
            "/api/orders",
            get(mine).post(place).route_layer(guard.clone()),
        )
        .route("/api/orders/{id}", get(one).route_layer(guard))
        .route("/api/orders/openapi.json", get(crate::openapi::<Doc>))
        .with_state(state))
}
