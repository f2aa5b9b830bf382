//! Cut-offs: a user's or client's not-before time moves forward (tokens issued before it die),
//! and with some writes their live sessions end.

use gatehouse_core::{StoreError, WriteEffect};
use sqlx::{Any, Transaction};

use crate::{Subject, backend_error};

/// A cut-off at `$2`: the not-before time moves there, or, if a cut-off in the same second (or
/// later) already put it there, one second past it, since tokens issued meanwhile carry it as
/// their `iat`. It only ever moves forward, and the statement returns where it now stands.
macro_rules! forward_not_before {
    () => {
        "not_before = CASE WHEN not_before >= $2 THEN not_before + 1 ELSE $2 END"
    };
}
pub(crate) use forward_not_before;

/// The effect of a write that left its user's or client's not-before time at `stored`.
pub(crate) fn cut_off_at(stored: i64) -> WriteEffect {
    WriteEffect {
        not_before: Some(stored),
        ..WriteEffect::default()
    }
}

/// The effect of deleting a user or client whose not-before time was `stored`: its tokens die
/// where a cut-off at `cutoff` would have moved it.
pub(crate) fn deleted_at(stored: i64, cutoff: i64) -> WriteEffect {
    cut_off_at(gatehouse_core::model::advance_not_before(stored, cutoff))
}

/// Cuts off every user and client holding `role`; their ids with their new not-before times.
pub(crate) async fn cut_off_holders(
    tx: &mut Transaction<'static, Any>,
    role: &str,
    not_before: i64,
) -> Result<Vec<(String, i64)>, StoreError> {
    let mut holders = Vec::new();
    for sql in [
        concat!(
            "UPDATE users SET ",
            forward_not_before!(),
            " WHERE id IN (SELECT user_id FROM user_roles WHERE role = $1) \
             RETURNING id, not_before"
        ),
        concat!(
            "UPDATE clients SET ",
            forward_not_before!(),
            " WHERE id IN (SELECT client_id FROM client_roles WHERE role = $1) \
             RETURNING id, not_before"
        ),
    ] {
        let ids: Vec<(String, i64)> = sqlx::query_as(sql)
            .bind(role)
            .bind(not_before)
            .fetch_all(&mut **tx)
            .await
            .map_err(backend_error)?;
        holders.extend(ids);
    }
    Ok(holders)
}

/// Moves a user's or client's not-before time forward (blocking it too when asked), then ends its
/// sessions.
pub(crate) async fn cut_off(
    tx: &mut Transaction<'static, Any>,
    subject: Subject,
    id: &str,
    not_before: i64,
    now: i64,
    block: bool,
) -> Result<Option<WriteEffect>, StoreError> {
    macro_rules! update {
        ($table:literal, $block:literal) => {
            concat!(
                "UPDATE ",
                $table,
                " SET ",
                forward_not_before!(),
                $block,
                ", updated_at = $3 WHERE id = $1 RETURNING not_before"
            )
        };
    }
    let sql = match (subject, block) {
        (Subject::User, false) => update!("users", ""),
        (Subject::User, true) => update!("users", ", blocked_at = COALESCE(blocked_at, $3)"),
        (Subject::Client, false) => update!("clients", ""),
        (Subject::Client, true) => update!("clients", ", blocked_at = COALESCE(blocked_at, $3)"),
    };
    let stored: Option<i64> = sqlx::query_scalar(sql)
        .bind(id)
        .bind(not_before)
        .bind(now)
        .fetch_optional(&mut **tx)
        .await
        .map_err(backend_error)?;
    and_end_sessions(tx, stored, subject, id, now).await
}

/// After a cut-off that left the not-before time at `stored` (`None`: no such user or client):
/// ends that one's live sessions too.
pub(crate) async fn and_end_sessions(
    tx: &mut Transaction<'static, Any>,
    stored: Option<i64>,
    subject: Subject,
    id: &str,
    now: i64,
) -> Result<Option<WriteEffect>, StoreError> {
    let Some(stored) = stored else {
        return Ok(None);
    };
    let sql = match subject {
        Subject::User => {
            "UPDATE refresh_families SET revoked_at = $2 WHERE user_id = $1 \
             AND revoked_at IS NULL RETURNING id"
        }
        Subject::Client => {
            "UPDATE refresh_families SET revoked_at = $2 WHERE client_id = $1 \
             AND revoked_at IS NULL RETURNING id"
        }
    };
    let ended_sessions: Vec<String> = sqlx::query_scalar(sql)
        .bind(id)
        .bind(now)
        .fetch_all(&mut **tx)
        .await
        .map_err(backend_error)?;
    Ok(Some(WriteEffect {
        ended_sessions,
        ..cut_off_at(stored)
    }))
}
