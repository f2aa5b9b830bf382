//! The shop's tables: browsers' sessions (with their sealed tokens and a sign-in under way) and
//! people's carts.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use gatehouse_sdk::PendingSignIn;
use gatehouse_token::{KeyEncryptionKey, now_unix, random_string, token_hash};
use serde::{Deserialize, Serialize};

use super::ShopError;
use crate::common::Db;

/// A session left alone this long is forgotten (the person signs in again; the cart stays).
pub const IDLE_SECS: i64 = 7 * 24 * 3600;
/// No session lasts longer than this, however busy (OWASP: an absolute timeout).
pub const LIFETIME_SECS: i64 = 30 * 24 * 3600;
/// A sign-in must come back within this; a session that never completed one goes after it.
const PENDING_SECS: i64 = 600;
/// `last_seen_at` is written at most this often, not on every page.
const SEEN_GRANULARITY_SECS: i64 = 60;

/// A browser's session, as read at the start of a request.
#[derive(Clone)]
pub struct Session {
    pub id_hash: String,
    pub csrf: String,
    pub person: Option<Person>,
    pending: Option<String>,
    pending_at: Option<i64>,
    return_to: Option<String>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("person", &self.person)
            .finish_non_exhaustive()
    }
}

/// Who is signed in, with their tokens.
#[derive(Debug, Clone)]
pub struct Person {
    pub subject: String,
    pub username: String,
    pub tokens: Tokens,
}

/// The tokens kept for a person; never shown to the browser.
#[derive(Clone, Serialize, Deserialize)]
pub struct Tokens {
    pub access_token: String,
    pub refresh_token: Option<String>,
    pub id_token: Option<String>,
    pub access_expires_at: i64,
}

impl Tokens {
    /// What a token response gives, with its expiry from now (a day at most, so a silly
    /// `expires_in` cannot overflow the clock).
    pub fn from_response(
        response: gatehouse_proto::TokenResponse,
        earlier: Option<&Tokens>,
    ) -> Self {
        Self {
            access_expires_at: now_unix() + response.expires_in.min(86_400) as i64,
            access_token: response.access_token,
            // RFC 6749 §6: without a new refresh token the old one stays good.
            refresh_token: response
                .refresh_token
                .or_else(|| earlier.and_then(|t| t.refresh_token.clone())),
            id_token: response
                .id_token
                .or_else(|| earlier.and_then(|t| t.id_token.clone())),
        }
    }
}

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokens")
            .field("access_expires_at", &self.access_expires_at)
            .finish_non_exhaustive()
    }
}

type SessionRow = (
    String,
    String,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<i64>,
    Option<String>,
);

fn seal(sealer: &KeyEncryptionKey, id_hash: &str, tokens: &Tokens) -> Result<String, ShopError> {
    let plain = serde_json::to_vec(tokens).map_err(|e| ShopError::Internal(e.to_string()))?;
    let sealed = sealer
        .seal(&format!("shop tokens {id_hash}"), &plain)
        .map_err(|e| ShopError::Internal(e.to_string()))?;
    Ok(URL_SAFE_NO_PAD.encode(sealed))
}

fn open(sealer: &KeyEncryptionKey, id_hash: &str, sealed: &str) -> Option<Tokens> {
    let bytes = URL_SAFE_NO_PAD.decode(sealed).ok()?;
    let plain = sealer
        .open(&format!("shop tokens {id_hash}"), &bytes)
        .ok()?;
    serde_json::from_slice(&plain).ok()
}

fn new_secret() -> Result<String, ShopError> {
    random_string(32).map_err(|e| ShopError::Internal(e.to_string()))
}

/// The session a cookie names, if it is live. Tokens that cannot be opened (sealed under an
/// earlier secret) count as signed out.
pub async fn load(
    db: &Db,
    sealer: &KeyEncryptionKey,
    cookie: &str,
) -> Result<Option<Session>, ShopError> {
    let id_hash = token_hash(cookie);
    let now = now_unix();
    let row: Option<SessionRow> = sqlx::query_as(
        "SELECT id_hash, csrf, subject, username, sealed_tokens, pending_sign_in, pending_at, \
         return_to FROM shop_sessions \
         WHERE id_hash = $1 AND last_seen_at > $2 AND created_at > $3",
    )
    .bind(&id_hash)
    .bind(now - IDLE_SECS)
    .bind(now - LIFETIME_SECS)
    .fetch_optional(&db.pool)
    .await?;
    let Some((id_hash, csrf, subject, username, sealed, pending, pending_at, return_to)) = row
    else {
        return Ok(None);
    };
    sqlx::query(
        "UPDATE shop_sessions SET last_seen_at = $1 WHERE id_hash = $2 AND last_seen_at < $3",
    )
    .bind(now)
    .bind(&id_hash)
    .bind(now - SEEN_GRANULARITY_SECS)
    .execute(&db.pool)
    .await?;
    let tokens = sealed.and_then(|s| open(sealer, &id_hash, &s));
    let person = match (subject, tokens) {
        (Some(subject), Some(tokens)) => Some(Person {
            subject,
            username: username.unwrap_or_default(),
            tokens,
        }),
        _ => None,
    };
    Ok(Some(Session {
        id_hash,
        csrf,
        person,
        pending,
        pending_at,
        return_to,
    }))
}

/// A new, signed-out session; the cookie value to give the browser.
pub async fn create(db: &Db) -> Result<(String, Session), ShopError> {
    let cookie = new_secret()?;
    let session = Session {
        id_hash: token_hash(&cookie),
        csrf: new_secret()?,
        person: None,
        pending: None,
        pending_at: None,
        return_to: None,
    };
    let now = now_unix();
    sqlx::query(
        "INSERT INTO shop_sessions (id_hash, csrf, created_at, last_seen_at) VALUES ($1, $2, $3, $3)",
    )
    .bind(&session.id_hash)
    .bind(&session.csrf)
    .bind(now)
    .execute(&db.pool)
    .await?;
    Ok((cookie, session))
}

/// Remembers a sign-in under way (one per browser: a newer one replaces it).
pub async fn start_sign_in(
    db: &Db,
    session: &Session,
    pending: &PendingSignIn,
    return_to: &str,
) -> Result<(), ShopError> {
    let pending = serde_json::to_string(pending).map_err(|e| ShopError::Internal(e.to_string()))?;
    sqlx::query(
        "UPDATE shop_sessions SET pending_sign_in = $1, pending_at = $2, return_to = $3 \
         WHERE id_hash = $4",
    )
    .bind(pending)
    .bind(now_unix())
    .bind(return_to)
    .bind(&session.id_hash)
    .execute(&db.pool)
    .await?;
    Ok(())
}

/// A sign-in under way, claimed by the request that completes it.
pub struct PendingSignInOf {
    pub pending: PendingSignIn,
    /// Where to go afterwards.
    pub return_to: String,
}

impl Session {
    /// Claims the sign-in under way, if it is recent enough: only one request can (a second
    /// callback, racing or replayed, finds none), so a code is never redeemed twice here.
    pub async fn claim_sign_in(&self, db: &Db) -> Result<Option<PendingSignInOf>, ShopError> {
        let (Some(raw), Some(at)) = (&self.pending, self.pending_at) else {
            return Ok(None);
        };
        if at + PENDING_SECS < now_unix() {
            return Ok(None);
        }
        let claimed = sqlx::query(
            "UPDATE shop_sessions SET pending_sign_in = NULL, pending_at = NULL \
             WHERE id_hash = $1 AND pending_sign_in = $2",
        )
        .bind(&self.id_hash)
        .bind(raw)
        .execute(&db.pool)
        .await?;
        if claimed.rows_affected() == 0 {
            return Ok(None);
        }
        let Ok(pending) = serde_json::from_str(raw) else {
            return Ok(None);
        };
        Ok(Some(PendingSignInOf {
            pending,
            return_to: self.return_to.clone().unwrap_or_default(),
        }))
    }
}

/// Completes a sign-in: the session gets a new id (the old cookie is worthless from now on, so
/// a cookie planted before sign-in cannot follow the person in) and a new anti-forgery token.
/// Returns the new cookie value; `None` if the session ended meanwhile.
pub async fn complete_sign_in(
    db: &Db,
    sealer: &KeyEncryptionKey,
    old: &Session,
    subject: &str,
    username: &str,
    tokens: &Tokens,
) -> Result<Option<String>, ShopError> {
    let cookie = new_secret()?;
    let id_hash = token_hash(&cookie);
    let sealed = seal(sealer, &id_hash, tokens)?;
    let now = now_unix();
    let mut tx = db.begin_write().await?;
    let ended = sqlx::query("DELETE FROM shop_sessions WHERE id_hash = $1")
        .bind(&old.id_hash)
        .execute(&mut *tx)
        .await?;
    if ended.rows_affected() == 0 {
        return Ok(None);
    }
    sqlx::query(
        "INSERT INTO shop_sessions (id_hash, csrf, subject, username, sealed_tokens, \
         access_expires_at, created_at, last_seen_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $7)",
    )
    .bind(&id_hash)
    .bind(new_secret()?)
    .bind(subject)
    .bind(username)
    .bind(sealed)
    .bind(tokens.access_expires_at)
    .bind(now)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(Some(cookie))
}

/// The tokens stored for a session now (another request may have renewed them).
pub async fn current_tokens(
    db: &Db,
    sealer: &KeyEncryptionKey,
    id_hash: &str,
) -> Result<Option<Tokens>, ShopError> {
    let sealed: Option<(Option<String>,)> =
        sqlx::query_as("SELECT sealed_tokens FROM shop_sessions WHERE id_hash = $1")
            .bind(id_hash)
            .fetch_optional(&db.pool)
            .await?;
    Ok(sealed
        .and_then(|(s,)| s)
        .and_then(|s| open(sealer, id_hash, &s)))
}

pub async fn store_tokens(
    db: &Db,
    sealer: &KeyEncryptionKey,
    id_hash: &str,
    tokens: &Tokens,
) -> Result<(), ShopError> {
    sqlx::query(
        "UPDATE shop_sessions SET sealed_tokens = $1, access_expires_at = $2 WHERE id_hash = $3",
    )
    .bind(seal(sealer, id_hash, tokens)?)
    .bind(tokens.access_expires_at)
    .bind(id_hash)
    .execute(&db.pool)
    .await?;
    Ok(())
}

/// Signs the session out here: tokens and who it was are forgotten; the cart stays with the
/// person.
pub async fn forget_person(db: &Db, id_hash: &str) -> Result<(), ShopError> {
    sqlx::query(
        "UPDATE shop_sessions SET subject = NULL, username = NULL, sealed_tokens = NULL, \
         access_expires_at = NULL WHERE id_hash = $1",
    )
    .bind(id_hash)
    .execute(&db.pool)
    .await?;
    Ok(())
}

/// Ends a session: its row goes, and with it the tokens (the cart stays with the person).
pub async fn end(db: &Db, id_hash: &str) -> Result<(), ShopError> {
    sqlx::query("DELETE FROM shop_sessions WHERE id_hash = $1")
        .bind(id_hash)
        .execute(&db.pool)
        .await?;
    Ok(())
}

/// One line of a cart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CartLine {
    pub product_id: String,
    pub quantity: i64,
}

/// At most this many of one product in a cart.
pub const MAX_QUANTITY: i64 = 99;
/// At most this many different products in a cart.
pub const MAX_LINES: i64 = 50;

pub async fn cart(db: &Db, subject: &str) -> Result<Vec<CartLine>, ShopError> {
    let rows: Vec<(String, i64)> = sqlx::query_as(
        "SELECT product_id, quantity FROM shop_cart_lines WHERE subject = $1 \
         ORDER BY added_at, product_id",
    )
    .bind(subject)
    .fetch_all(&db.pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(product_id, quantity)| CartLine {
            product_id,
            quantity,
        })
        .collect())
}

/// Adds `quantity` of a product, up to [`MAX_QUANTITY`]; a cart is full at [`MAX_LINES`].
pub async fn add_to_cart(
    db: &Db,
    subject: &str,
    product_id: &str,
    quantity: i64,
) -> Result<(), ShopError> {
    let mut tx = db.begin_write().await?;
    let (lines,): (i64,) = sqlx::query_as(
        "SELECT COUNT(*) FROM shop_cart_lines WHERE subject = $1 AND product_id <> $2",
    )
    .bind(subject)
    .bind(product_id)
    .fetch_one(&mut *tx)
    .await?;
    if lines >= MAX_LINES {
        return Err(ShopError::BadRequest(format!(
            "a cart holds at most {MAX_LINES} different products"
        )));
    }
    // One statement, so two adds of a new product at once both count (on either database).
    sqlx::query(
        "INSERT INTO shop_cart_lines (subject, product_id, quantity, added_at) \
         VALUES ($1, $2, $3, $4) \
         ON CONFLICT (subject, product_id) DO UPDATE SET quantity = \
           CASE WHEN shop_cart_lines.quantity + excluded.quantity > $5 THEN $5 \
                ELSE shop_cart_lines.quantity + excluded.quantity END",
    )
    .bind(subject)
    .bind(product_id)
    .bind(quantity.min(MAX_QUANTITY))
    .bind(now_unix())
    .bind(MAX_QUANTITY)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(())
}

pub async fn remove_from_cart(db: &Db, subject: &str, product_id: &str) -> Result<(), ShopError> {
    sqlx::query("DELETE FROM shop_cart_lines WHERE subject = $1 AND product_id = $2")
        .bind(subject)
        .bind(product_id)
        .execute(&db.pool)
        .await?;
    Ok(())
}

/// Takes what was ordered out of the cart: lines added or grown meanwhile (another tab) keep
/// what was not ordered.
pub async fn remove_ordered(db: &Db, subject: &str, ordered: &[CartLine]) -> Result<(), ShopError> {
    let mut tx = db.begin_write().await?;
    for line in ordered {
        sqlx::query(
            "DELETE FROM shop_cart_lines WHERE subject = $1 AND product_id = $2 AND quantity <= $3",
        )
        .bind(subject)
        .bind(&line.product_id)
        .bind(line.quantity)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "UPDATE shop_cart_lines SET quantity = quantity - $1 \
             WHERE subject = $2 AND product_id = $3",
        )
        .bind(line.quantity)
        .bind(subject)
        .bind(&line.product_id)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(())
}

/// Every ten minutes, forgets sessions idle for longer than [`IDLE_SECS`] or older than
/// [`LIFETIME_SECS`], and those that started a sign-in and never completed it.
pub async fn purge_sessions(db: Db) {
    let mut every = tokio::time::interval(Duration::from_secs(600));
    loop {
        every.tick().await;
        let now = now_unix();
        let purged = sqlx::query(
            "DELETE FROM shop_sessions WHERE last_seen_at < $1 OR created_at < $2 \
             OR (subject IS NULL AND created_at < $3)",
        )
        .bind(now - IDLE_SECS)
        .bind(now - LIFETIME_SECS)
        .bind(now - PENDING_SECS)
        .execute(&db.pool)
        .await;
        if let Err(e) = purged {
            tracing::warn!(error = %e, "the shop could not purge idle sessions");
        }
    }
}
