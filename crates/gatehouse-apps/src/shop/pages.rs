//! The shop's pages and form actions.

use std::collections::HashMap;

use askama::Template;
use axum::extract::{Query, State};
use axum::http::header::{LOCATION, SET_COOKIE};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use gatehouse_look::cookie;
use gatehouse_sdk::{Callback, SdkError, SignInError};
use rust_decimal::Decimal;
use serde::Deserialize;

use super::api::{Answer, Api, Order, Product};
use super::store::{self, CartLine, MAX_QUANTITY, Person, Session, Tokens};
use super::{SHOP_PATH, SHOP_SCOPE, ShopError, ShopState};

type Form = gatehouse_look::Form<ShopError>;

/// The cookie's life in the browser; the server forgets idle sessions sooner.
const COOKIE_MAX_AGE: u64 = 30 * 24 * 3600;

fn render(page: &impl Template) -> Result<Response, ShopError> {
    page.render()
        .map(|html| Html(html).into_response())
        .map_err(|e| ShopError::Internal(format!("a page failed to render: {e}")))
}

fn see_other(location: &str) -> Response {
    (StatusCode::SEE_OTHER, [(LOCATION, location.to_owned())]).into_response()
}

async fn session(state: &ShopState, headers: &HeaderMap) -> Result<Option<Session>, ShopError> {
    match cookie(headers, state.cookies.session) {
        Some(value) => store::load(&state.db, &state.sealer, &value).await,
        None => Ok(None),
    }
}

/// The session of a signed-in person and who it is, or a trip to sign in that comes back to
/// `return_to`.
async fn shopper(
    state: &ShopState,
    headers: &HeaderMap,
    return_to: &str,
) -> Result<(Session, Person), ShopError> {
    match session(state, headers).await? {
        Some(session) => match session.person.clone() {
            Some(person) => Ok((session, person)),
            None => Err(ShopError::SignInNeeded {
                return_to: return_to.to_owned(),
            }),
        },
        None => Err(ShopError::SignInNeeded {
            return_to: return_to.to_owned(),
        }),
    }
}

/// The signed-in person behind a form post from the shop's own pages.
async fn posting_shopper(
    state: &ShopState,
    headers: &HeaderMap,
    form: &Form,
    return_to: &str,
) -> Result<(Session, Person), ShopError> {
    let (session, person) = shopper(state, headers, return_to).await?;
    check_form(state, headers, &session, form)?;
    Ok((session, person))
}

/// A form post must come from the shop's own pages: the browser's word on where it came from,
/// and the session's anti-forgery token.
fn check_form(
    state: &ShopState,
    headers: &HeaderMap,
    session: &Session,
    form: &Form,
) -> Result<(), ShopError> {
    let token = form.get("csrf_token").unwrap_or_default();
    let fits = bool::from(subtle::ConstantTimeEq::ct_eq(
        token.as_bytes(),
        session.csrf.as_bytes(),
    ));
    if gatehouse_look::posted_from_same_origin(headers, &state.origin) && fits {
        Ok(())
    } else {
        Err(ShopError::Forgery)
    }
}

/// Where to go after signing in: a page of the shop, never anywhere else. Dot segments (plain or
/// encoded) could climb out of `/shop` once a browser resolves them, so they are refused.
fn safe_return_to(value: Option<&str>) -> String {
    let home = format!("{SHOP_PATH}/");
    let Some(path) = value else { return home };
    let (route, _query) = path.split_once('?').unwrap_or((path, ""));
    let inside = route == SHOP_PATH || route.starts_with(&home);
    let lower = path.to_ascii_lowercase();
    let plain = path.len() <= 200
        && path.bytes().all(|b| b.is_ascii_graphic())
        && !path.contains("//")
        && !path.contains('\\')
        && !path.contains(';')
        && !lower.contains("%2e")
        && !lower.contains("%2f")
        && !lower.contains("%5c")
        && !route
            .split('/')
            .any(|segment| segment == "." || segment == "..");
    if inside && plain {
        path.to_owned()
    } else {
        home
    }
}

/// What every page's header shows.
struct Header {
    username: String,
    csrf: String,
    cart_count: i64,
}

fn header(session: &Session, cart: &[CartLine]) -> Header {
    Header {
        username: session
            .person
            .as_ref()
            .map(|p| p.username.clone())
            .unwrap_or_default(),
        csrf: session.csrf.clone(),
        cart_count: cart.iter().map(|l| l.quantity).sum(),
    }
}

fn money(text: &str) -> Decimal {
    text.parse().unwrap_or_default()
}

/// `quantity` at `unit`, or what the shop cannot show (an absurd price from the catalog).
fn line_total(unit: Decimal, quantity: i64) -> Result<Decimal, ShopError> {
    unit.checked_mul(Decimal::from(quantity))
        .ok_or_else(|| ShopError::Unavailable(format!("{unit} × {quantity} is too large")))
}

fn show_money(amount: Decimal) -> String {
    format!("{:.2}", amount.round_dp(2))
}

#[derive(Template)]
#[template(path = "shop_welcome.html")]
struct WelcomePage {}

#[derive(Template)]
#[template(path = "shop_catalog.html")]
struct CatalogPage {
    header: Header,
    products: Vec<ProductView>,
    notice: Option<String>,
}

struct ProductView {
    id: String,
    name: String,
    price: String,
    stock: i64,
    in_cart: i64,
}

/// The front page: the catalog when signed in, a welcome otherwise.
pub async fn home(
    State(state): State<ShopState>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Response, ShopError> {
    let return_to = state.page("/");
    let (session, person) = match shopper(&state, &headers, &return_to).await {
        Ok(signed_in) => signed_in,
        Err(ShopError::SignInNeeded { .. }) => return render(&WelcomePage {}),
        Err(e) => return Err(e),
    };
    let mut api = Api::new(&state, &session, &return_to)?;
    let products = api.products().await?;
    let cart = store::cart(&state.db, &person.subject).await?;
    let header = header(&session, &cart);
    let added = query.get("added").and_then(|id| {
        products
            .iter()
            .find(|p| &p.id == id)
            .map(|p| format!("{} is in your cart.", p.name))
    });
    render(&CatalogPage {
        header,
        products: products
            .into_iter()
            .map(|p: Product| ProductView {
                in_cart: cart
                    .iter()
                    .find(|l| l.product_id == p.id)
                    .map_or(0, |l| l.quantity),
                price: show_money(money(&p.price)),
                id: p.id,
                name: p.name,
                stock: p.stock,
            })
            .collect(),
        notice: added,
    })
}

#[derive(Deserialize)]
pub struct SignInQuery {
    return_to: Option<String>,
    /// `login`: make the person enter their password again.
    prompt: Option<String>,
}

/// Starts a sign-in: the browser goes to the authorization server and comes back to the
/// callback. A browser without a session gets one now.
pub async fn sign_in(
    State(state): State<ShopState>,
    headers: HeaderMap,
    Query(query): Query<SignInQuery>,
) -> Result<Response, ShopError> {
    let (cookie_value, session) = match session(&state, &headers).await? {
        Some(session) => (None, session),
        None => {
            let (value, session) = store::create(&state.db).await?;
            (Some(value), session)
        }
    };
    let prompt = query.prompt.as_deref().filter(|p| *p == "login");
    let request = state
        .signin
        .begin(SHOP_SCOPE, prompt)
        .map_err(|e| ShopError::Unavailable(e.to_string()))?;
    let return_to = safe_return_to(query.return_to.as_deref());
    store::start_sign_in(&state.db, &session, &request.pending, &return_to).await?;
    let mut response = see_other(&request.url);
    if let Some(value) = cookie_value {
        response.headers_mut().append(
            SET_COOKIE,
            state
                .cookies
                .set(state.cookies.session, &value, COOKIE_MAX_AGE),
        );
    }
    Ok(response)
}

#[derive(Template)]
#[template(path = "shop_message.html")]
struct MessagePage<'a> {
    title: &'a str,
    message: String,
    action: &'a str,
    action_label: &'a str,
}

/// The browser's return from the authorization server.
pub async fn callback(
    State(state): State<ShopState>,
    headers: HeaderMap,
    Query(callback): Query<Callback>,
) -> Result<Response, ShopError> {
    let session = session(&state, &headers).await?;
    let claimed = match &session {
        Some(session) => session.claim_sign_in(&state.db).await?,
        None => None,
    };
    let (Some(session), Some(claimed)) = (session, claimed) else {
        return Err(ShopError::SignInFailed(
            "this browser has no sign-in under way (it may have taken too long)".into(),
        ));
    };
    let signed = match state.signin.finish(&callback, &claimed.pending).await {
        Ok(signed) => signed,
        Err(SignInError::Refused { error, .. }) if error == "access_denied" => {
            let page = MessagePage {
                title: "Sign-in cancelled",
                message: "You did not sign in, so the shop cannot show your cart or orders.".into(),
                action: "/shop/signin",
                action_label: "Sign in",
            };
            return render(&page);
        }
        // The issuer refused the code (used, expired, the sign-in ended): start again.
        Err(SignInError::Sdk(SdkError::Refused { error, .. })) => {
            return Err(ShopError::SignInFailed(format!(
                "the authorization server refused the sign-in ({error})"
            )));
        }
        Err(SignInError::Sdk(e)) => return Err(ShopError::Unavailable(e.to_string())),
        Err(e) => return Err(ShopError::SignInFailed(e.to_string())),
    };
    let username = username_of(&state, &signed.tokens.access_token)
        .await
        .unwrap_or_else(|| signed.id_claims.sub.clone());
    if let Some(earlier) = &session.person
        && let Some(refresh_token) = &earlier.tokens.refresh_token
    {
        // Signing in again over a live session: the old one's tokens are revoked, not dropped.
        revoke_quietly(&state, refresh_token).await;
    }
    let tokens = Tokens::from_response(signed.tokens, None);
    let cookie_value = store::complete_sign_in(
        &state.db,
        &state.sealer,
        &session,
        &signed.id_claims.sub,
        &username,
        &tokens,
    )
    .await?
    .ok_or_else(|| ShopError::SignInFailed("this browser's session ended meanwhile".into()))?;
    let mut response = see_other(&claimed.return_to);
    response.headers_mut().append(
        SET_COOKIE,
        state
            .cookies
            .set(state.cookies.session, &cookie_value, COOKIE_MAX_AGE),
    );
    Ok(response)
}

/// Revokes a refresh token (RFC 7009), logging rather than failing: what follows goes on.
async fn revoke_quietly(state: &ShopState, refresh_token: &str) {
    if let Err(e) = state.signin.revoke(refresh_token, "refresh_token").await {
        tracing::warn!(error = %e, "the shop could not revoke a refresh token");
    }
}

/// The person's name for the header, from the userinfo endpoint.
async fn username_of(state: &ShopState, access_token: &str) -> Option<String> {
    #[derive(Deserialize)]
    struct UserInfo {
        preferred_username: Option<String>,
    }
    let endpoint = state.signin.userinfo_endpoint()?;
    let response = state
        .http
        .get(endpoint)
        .bearer_auth(access_token)
        // A name for the header is not worth holding up the sign-in.
        .timeout(std::time::Duration::from_secs(3))
        .send()
        .await
        .ok()?;
    if !response.status().is_success() {
        return None;
    }
    response.json::<UserInfo>().await.ok()?.preferred_username
}

#[derive(Template)]
#[template(path = "shop_cart.html")]
struct CartPage {
    header: Header,
    lines: Vec<CartLineView>,
    total: String,
    problem: Option<String>,
}

struct CartLineView {
    product_id: String,
    name: String,
    quantity: i64,
    unit_price: String,
    line_total: String,
    /// Gone from the catalog: it cannot be ordered.
    unavailable: bool,
}

pub async fn cart(
    State(state): State<ShopState>,
    headers: HeaderMap,
) -> Result<Response, ShopError> {
    let return_to = state.page("/cart");
    let (session, person) = shopper(&state, &headers, &return_to).await?;
    cart_page(&state, &session, &person, &return_to, None).await
}

async fn cart_page(
    state: &ShopState,
    session: &Session,
    person: &Person,
    return_to: &str,
    problem: Option<String>,
) -> Result<Response, ShopError> {
    let mut api = Api::new(state, session, return_to)?;
    let products = api.products().await?;
    let cart = store::cart(&state.db, &person.subject).await?;
    let mut total = Decimal::ZERO;
    let mut lines = Vec::with_capacity(cart.len());
    for line in &cart {
        let product = products.iter().find(|p| p.id == line.product_id);
        let unit = product.map(|p| money(&p.price)).unwrap_or_default();
        let line_total = line_total(unit, line.quantity)?;
        total = total
            .checked_add(line_total)
            .ok_or_else(|| ShopError::Unavailable("the cart's total is too large".into()))?;
        lines.push(CartLineView {
            name: product.map_or_else(|| line.product_id.clone(), |p| p.name.clone()),
            unavailable: product.is_none(),
            product_id: line.product_id.clone(),
            quantity: line.quantity,
            unit_price: show_money(unit),
            line_total: show_money(line_total),
        });
    }
    // A refused checkout answers with the cart and why, as a 409.
    let status = match problem {
        Some(_) => StatusCode::CONFLICT,
        None => StatusCode::OK,
    };
    let page = CartPage {
        header: header(session, &cart),
        lines,
        total: show_money(total),
        problem,
    };
    let mut response = render(&page)?;
    *response.status_mut() = status;
    Ok(response)
}

/// A product id as the catalog writes them; anything else is not worth a lookup.
fn product_id(form: &Form) -> Result<String, ShopError> {
    let id = form.text("product_id");
    let plausible = !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if plausible {
        Ok(id)
    } else {
        Err(ShopError::BadRequest("there is no such product".into()))
    }
}

pub async fn add_to_cart(
    State(state): State<ShopState>,
    headers: HeaderMap,
    form: Form,
) -> Result<Response, ShopError> {
    let return_to = state.page("/");
    let (session, person) = posting_shopper(&state, &headers, &form, &return_to).await?;
    let product_id = product_id(&form)?;
    let quantity = match form.get("quantity").unwrap_or("1").trim().parse::<i64>() {
        Ok(q) if (1..=MAX_QUANTITY).contains(&q) => q,
        _ => {
            return Err(ShopError::BadRequest(format!(
                "the quantity must be a whole number from 1 to {MAX_QUANTITY}"
            )));
        }
    };
    let mut api = Api::new(&state, &session, &return_to)?;
    if !api.products().await?.iter().any(|p| p.id == product_id) {
        return Err(ShopError::BadRequest("there is no such product".into()));
    }
    store::add_to_cart(&state.db, &person.subject, &product_id, quantity).await?;
    Ok(see_other(&format!("{SHOP_PATH}/?added={product_id}")))
}

pub async fn remove_from_cart(
    State(state): State<ShopState>,
    headers: HeaderMap,
    form: Form,
) -> Result<Response, ShopError> {
    let return_to = state.page("/cart");
    let (_, person) = posting_shopper(&state, &headers, &form, &return_to).await?;
    let product_id = product_id(&form)?;
    store::remove_from_cart(&state.db, &person.subject, &product_id).await?;
    Ok(see_other(&return_to))
}

/// Places the cart as an order through the gateway. A paid order takes what it bought out of
/// the cart; a failed payment keeps it, so the person can try again. One checkout at a time per
/// person: a double click or a second tab waits, then finds the cart already ordered.
pub async fn checkout(
    State(state): State<ShopState>,
    headers: HeaderMap,
    form: Form,
) -> Result<Response, ShopError> {
    let return_to = state.page("/cart");
    let (session, person) = posting_shopper(&state, &headers, &form, &return_to).await?;
    let lock = state.checkout_lock(&person.subject);
    let _one_at_a_time = lock.lock().await;
    let lines = store::cart(&state.db, &person.subject).await?;
    if lines.is_empty() {
        let problem = Some("Your cart is empty.".into());
        return cart_page(&state, &session, &person, &return_to, problem).await;
    }
    let items: Vec<(String, i64)> = lines
        .iter()
        .map(|l| (l.product_id.clone(), l.quantity))
        .collect();
    let mut api = Api::new(&state, &session, &return_to)?;
    match api.place_order(&items).await? {
        Answer::Done(order) => {
            if order.status == "paid" {
                store::remove_ordered(&state.db, &person.subject, &lines).await?;
            }
            Ok(see_other(&format!(
                "{SHOP_PATH}/orders?placed={}",
                order.id
            )))
        }
        Answer::Refused { message } => {
            let problem = Some(format!("The order was not placed: {message}."));
            cart_page(&state, &session, &person, &return_to, problem).await
        }
    }
}

#[derive(Template)]
#[template(path = "shop_orders.html")]
struct OrdersPage {
    header: Header,
    orders: Vec<OrderView>,
    placed: Option<OrderView>,
}

#[derive(Clone)]
struct OrderView {
    id: String,
    paid: bool,
    total: String,
    when: String,
    lines: Vec<String>,
}

fn order_view(order: &Order, products: &[Product]) -> OrderView {
    OrderView {
        id: order.id.clone(),
        paid: order.status == "paid",
        total: show_money(money(&order.total)),
        when: order.created_at.replace('T', " ").replace('Z', " UTC"),
        lines: order
            .items
            .iter()
            .map(|line| {
                let name = products
                    .iter()
                    .find(|p| p.id == line.product_id)
                    .map_or(line.product_id.as_str(), |p| p.name.as_str());
                format!(
                    "{} × {name} at {}",
                    line.quantity,
                    show_money(money(&line.unit_price))
                )
            })
            .collect(),
    }
}

pub async fn orders(
    State(state): State<ShopState>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Response, ShopError> {
    let return_to = state.page("/orders");
    let (session, person) = shopper(&state, &headers, &return_to).await?;
    let mut api = Api::new(&state, &session, &return_to)?;
    let orders = api.orders().await?;
    let products = api.products().await?;
    let cart = store::cart(&state.db, &person.subject).await?;
    let views: Vec<OrderView> = orders.iter().map(|o| order_view(o, &products)).collect();
    // Only the person's own orders can be highlighted: the id is looked up in their list.
    let placed = query
        .get("placed")
        .and_then(|id| views.iter().find(|o| &o.id == id).cloned());
    render(&OrdersPage {
        header: header(&session, &cart),
        orders: views,
        placed,
    })
}

/// Signs out: the refresh token is revoked (RFC 7009), the shop ends its session, and the
/// browser goes to the issuer to end its sign-in there too (RP-Initiated Logout), coming back
/// to the signed-out page.
pub async fn sign_out(
    State(state): State<ShopState>,
    headers: HeaderMap,
    form: Form,
) -> Result<Response, ShopError> {
    let Some(session) = session(&state, &headers).await? else {
        return Ok(see_other(&state.page("/signed-out")));
    };
    check_form(&state, &headers, &session, &form)?;
    let Some(person) = &session.person else {
        return Ok(see_other(&state.page("/signed-out")));
    };
    if let Some(refresh_token) = &person.tokens.refresh_token {
        // Signing out goes on if this fails: the issuer's session ends below, and that ends
        // the refresh token too.
        revoke_quietly(&state, refresh_token).await;
    }
    store::end(&state.db, &session.id_hash).await?;
    let signed_out = super::ShopSettings::signed_out_uri(&state.public_url);
    let at_issuer = person
        .tokens
        .id_token
        .as_deref()
        .and_then(|hint| state.signin.end_session_url(hint, &signed_out));
    let mut response = see_other(&at_issuer.unwrap_or(signed_out));
    response
        .headers_mut()
        .append(SET_COOKIE, state.cookies.clear(state.cookies.session));
    Ok(response)
}

pub async fn signed_out() -> Result<Response, ShopError> {
    render(&MessagePage {
        title: "You are signed out",
        message: "You are signed out of the shop and of Gatehouse. Your cart is kept for \
                  the next time you sign in."
            .into(),
        action: "/shop/signin",
        action_label: "Sign in again",
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_in_returns_only_to_the_shop() {
        assert_eq!(safe_return_to(Some("/shop/cart")), "/shop/cart");
        assert_eq!(safe_return_to(Some("/shop")), "/shop");
        assert_eq!(
            safe_return_to(Some("/shop/orders?placed=ord_1")),
            "/shop/orders?placed=ord_1"
        );
        for elsewhere in [
            "/shop/../oauth2/authorize?client_id=x",
            "/shop/%2e%2e/x",
            "/shop/%2E%2e/x",
            "/shopping",
            "/shop/a;b",
            "https://evil.example/shop",
            "//evil.example/shop",
            "/shop//evil.example",
            "/shop\\x",
            "/account",
            "/shop/\r\nx",
        ] {
            assert_eq!(safe_return_to(Some(elsewhere)), "/shop/", "{elsewhere}");
        }
    }

    #[test]
    fn money_shows_two_places() {
        assert_eq!(show_money(money("89.9")), "89.90");
        assert_eq!(show_money(money("9.99") * Decimal::from(3)), "29.97");
    }
}
