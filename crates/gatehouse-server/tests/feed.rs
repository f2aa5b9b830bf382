//! The revocation feed over real HTTP: authorized readers get each revocation as a server-sent
//! event within a second, a fresh reader gets what can still matter, and a reader can resume.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use gatehouse_testkit::on_both_stores;

use std::time::Duration;

use common::{Backend, TestApp, event_ids, jti_of, read_until, subscribe};
use gatehouse_server::limits::RateLimitConfig;
use gatehouse_token::now_unix;
use serde_json::{Value, json};

on_both_stores!(
    revocations_reach_a_reader_within_a_second,
    a_fresh_reader_gets_recent_revocations_and_a_reader_can_resume,
    only_authorized_clients_may_read_the_feed,
    a_new_revocation_is_not_queued_behind_a_long_backlog,
    a_backlog_the_node_is_still_reading_is_sent_once,
    a_late_commit_below_newer_entries_still_reaches_readers,
    a_node_that_cannot_read_its_change_log_ends_its_feeds,
);

async fn app_with_reader(backend: Backend) -> (TestApp, String, String) {
    let app = TestApp::spawn_with(backend, |c| {
        c.registration
            .allowed_scopes
            .push("revocations:read".into());
    })
    .await;
    let (id, secret, _) = app.register_client("revocations:read").await;
    (app, id, secret)
}

async fn revocations_reach_a_reader_within_a_second(backend: Backend) {
    let (app, id, secret) = app_with_reader(backend).await;
    let user = app.sign_up("alice", "correct-horse").await;
    let session = app.login("alice", "correct-horse").await;
    let access = session["access_token"].as_str().unwrap();
    let mut feed = subscribe(&app, &id, &secret, None).await;
    let mut seen = String::new();
    read_until(&mut feed, &mut seen, ": subscribed", Duration::from_secs(2)).await;

    assert_eq!(app.revoke_as_web(access).await.status(), 200);
    let jti = jti_of(access);
    read_until(&mut feed, &mut seen, &jti, Duration::from_secs(1)).await;
    assert!(seen.contains("event: token_revoked"));

    // A password change cuts off every earlier token of the user.
    let fresh = app.login("alice", "correct-horse").await;
    let changed = app
        .http
        .put(app.url("/users/me/password"))
        .bearer_auth(fresh["access_token"].as_str().unwrap())
        .json(&json!({"current_password": "correct-horse", "new_password": "battery-staple"}))
        .send()
        .await
        .unwrap();
    assert_eq!(changed.status(), 204);
    let user_id = user["id"].as_str().unwrap();
    read_until(&mut feed, &mut seen, user_id, Duration::from_secs(1)).await;
    assert!(seen.contains("event: subject_cutoff"));
}

async fn a_fresh_reader_gets_recent_revocations_and_a_reader_can_resume(backend: Backend) {
    let (app, id, secret) = app_with_reader(backend).await;
    app.sign_up("alice", "correct-horse").await;
    let first = app.login("alice", "correct-horse").await;
    let first_access = first["access_token"].as_str().unwrap();
    assert_eq!(app.revoke_as_web(first_access).await.status(), 200);

    // Connected after the revocation: it is replayed, since the token could still be in use.
    let mut feed = subscribe(&app, &id, &secret, None).await;
    let mut seen = String::new();
    let first_jti = jti_of(first_access);
    read_until(&mut feed, &mut seen, &first_jti, Duration::from_secs(2)).await;
    read_until(&mut feed, &mut seen, "caught_up", Duration::from_secs(2)).await;
    // `caught_up` carries an id, so there is always one to resume from.
    let resume_from = *event_ids(&seen).last().expect("caught_up has an id");
    drop(feed);

    // Revoked while no one listened; a reader resuming from its last event gets it.
    let second = app.login("alice", "correct-horse").await;
    let second_access = second["access_token"].as_str().unwrap();
    assert_eq!(app.revoke_as_web(second_access).await.status(), 200);
    let mut resumed = subscribe(&app, &id, &secret, Some(&resume_from.to_string())).await;
    let mut seen = String::new();
    let second_jti = jti_of(second_access);
    read_until(&mut resumed, &mut seen, &second_jti, Duration::from_secs(2)).await;
    read_until(&mut resumed, &mut seen, "caught_up", Duration::from_secs(2)).await;
    // An id never goes back. It may stay put: it only passes an entry once every earlier
    // sequence number is read, and on PostgreSQL a number can be taken by a transaction that is
    // still open or rolled back.
    let ids = event_ids(&seen);
    assert!(
        !ids.is_empty(),
        "the resumed feed gives a place to resume from"
    );
    assert!(
        ids.iter().all(|&id| id >= resume_from) && ids.is_sorted(),
        "ids never go back: resumed from {resume_from}, got {ids:?}"
    );
}

async fn only_authorized_clients_may_read_the_feed(backend: Backend) {
    let (app, _, _) = app_with_reader(backend).await;
    let (plain, plain_secret, _) = app.register_client("rates:read").await;
    let anonymous = app
        .http
        .get(app.url("/oauth2/revocations"))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);
    assert_eq!(
        anonymous.json::<Value>().await.unwrap()["error"],
        "invalid_client"
    );
    let wrong = app
        .http
        .get(app.url("/oauth2/revocations"))
        .basic_auth(&plain, Some("wrong"))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
    let unprivileged = app
        .http
        .get(app.url("/oauth2/revocations"))
        .basic_auth(&plain, Some(&plain_secret))
        .send()
        .await
        .unwrap();
    assert_eq!(unprivileged.status(), 403);
    assert_eq!(
        unprivileged.json::<Value>().await.unwrap()["error"],
        "access_denied"
    );
    let (reader, reader_secret, _) = app.register_client("revocations:read").await;
    let bad_resume = app
        .http
        .get(app.url("/oauth2/revocations"))
        .basic_auth(&reader, Some(&reader_secret))
        .header("last-event-id", "yesterday")
        .send()
        .await
        .unwrap();
    assert_eq!(bad_resume.status(), 400);
}

/// Entries logged a minute ago: inside a fresh reader's replay window, and old enough that the
/// server's own reader, starting after them, never broadcasts them.
const BACKLOG: i64 = 100_000;

async fn a_new_revocation_is_not_queued_behind_a_long_backlog(backend: Backend) {
    let app = TestApp::spawn_seeded(
        backend,
        |c| {
            c.registration
                .allowed_scopes
                .push("revocations:read".into())
        },
        RateLimitConfig::off(),
        |store| async move { log_revocations(&store, backend, "old", BACKLOG).await },
    )
    .await;
    let (id, secret, _) = app.register_client("revocations:read").await;
    app.sign_up("alice", "correct-horse").await;
    let session = app.login("alice", "correct-horse").await;
    let access = session["access_token"].as_str().unwrap();

    let mut feed = subscribe(&app, &id, &secret, None).await;
    assert_eq!(app.revoke_as_web(access).await.status(), 200);
    let mut seen = String::new();
    let jti = jti_of(access);
    read_until(&mut feed, &mut seen, &jti, Duration::from_secs(5)).await;
    assert!(
        !seen.contains("caught_up"),
        "the new revocation came before the end of the backlog"
    );
    // Sent out of turn, it carries no id: resuming from it would skip the rest of the backlog.
    let event = seen.split("\n\n").find(|e| e.contains(&jti)).unwrap();
    assert!(
        !event.contains("\nid:") && !event.starts_with("id:"),
        "{event}"
    );
    read_until(&mut feed, &mut seen, "caught_up", Duration::from_secs(60)).await;
    assert!(
        seen.contains(&format!("old-{BACKLOG}")),
        "the whole backlog is replayed"
    );
}

/// Revocations logged by another node (here: written straight into the log) that this node's
/// reader has not read yet reach a new reader by the replay and by the node's broadcast: each
/// goes out once. (Whether the two overlap depends on when the node's reader polls; the rule
/// that keeps them apart is unit-tested in gatehouse-core's `changes`.)
async fn a_backlog_the_node_is_still_reading_is_sent_once(backend: Backend) {
    let (app, id, secret) = app_with_reader(backend).await;
    const LOGGED: i64 = 3000;
    log_revocations(&app.store, backend, "late", LOGGED).await;
    let mut feed = subscribe(&app, &id, &secret, None).await;
    let mut seen = String::new();
    read_until(&mut feed, &mut seen, "caught_up", Duration::from_secs(60)).await;
    // Logged after all of them, it reaches the reader only by the broadcast, after whatever the
    // node's reader still had to broadcast of the others.
    log_revocations(&app.store, backend, "last", 1).await;
    read_until(&mut feed, &mut seen, "\"last-1\"", Duration::from_secs(10)).await;
    let mut times = std::collections::HashMap::<String, usize>::new();
    for data in seen.lines().filter_map(|l| l.strip_prefix("data:")) {
        let event: Value = serde_json::from_str(data.trim()).unwrap();
        if let Some(jti) = event["jti"].as_str().filter(|j| j.starts_with("late-")) {
            *times.entry(jti.to_owned()).or_default() += 1;
        }
    }
    assert_eq!(times.len(), LOGGED as usize, "every revocation arrives");
    let twice: Vec<_> = times.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "sent more than once: {}", twice.len());
}

/// Logs `count` revocations of tokens `PREFIX-1`, `PREFIX-2`, … straight into the change log, as
/// another node would have, a minute ago and expiring in an hour.
async fn log_revocations(
    store: &gatehouse_testkit::SqlStore,
    backend: Backend,
    prefix: &str,
    count: i64,
) {
    let at = now_unix() - 60;
    let sql = match backend {
        Backend::Sqlite => {
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < $3) \
             INSERT INTO change_log (at, kind, subject, until) \
             SELECT $1, 'token_revoked', $4 || '-' || i, $2 FROM n"
        }
        Backend::Postgres => {
            "INSERT INTO change_log (at, kind, subject, until) \
             SELECT $1, 'token_revoked', $4 || '-' || i, $2 FROM generate_series(1, $3) AS i"
        }
    };
    sqlx::query(sql)
        .bind(at)
        .bind(at + 3600)
        .bind(count)
        .bind(prefix)
        .execute(store.pool())
        .await
        .unwrap();
}

async fn a_late_commit_below_newer_entries_still_reaches_readers(backend: Backend) {
    if backend == Backend::Sqlite {
        // SQLite commits one writer at a time, in sequence order: no entry can commit late.
        return;
    }
    let (app, id, secret) = app_with_reader(backend).await;
    let mut feed = subscribe(&app, &id, &secret, None).await;
    let mut seen = String::new();
    read_until(&mut feed, &mut seen, "caught_up", Duration::from_secs(5)).await;

    // A transaction takes its sequence number now and commits after a later one.
    let mut slow = app.store.pool().begin().await.unwrap();
    sqlx::query(
        "INSERT INTO change_log (at, kind, subject, until) \
         VALUES ($1, 'token_revoked', 'committed-late', $2)",
    )
    .bind(now_unix())
    .bind(now_unix() + 600)
    .execute(&mut *slow)
    .await
    .unwrap();
    app.sign_up("alice", "correct-horse").await;
    let session = app.login("alice", "correct-horse").await;
    let access = session["access_token"].as_str().unwrap();
    assert_eq!(app.revoke_as_web(access).await.status(), 200);
    read_until(
        &mut feed,
        &mut seen,
        &jti_of(access),
        Duration::from_secs(1),
    )
    .await;
    assert!(!seen.contains("committed-late"));
    slow.commit().await.unwrap();
    read_until(
        &mut feed,
        &mut seen,
        "committed-late",
        Duration::from_secs(1),
    )
    .await;
}

async fn a_node_that_cannot_read_its_change_log_ends_its_feeds(backend: Backend) {
    let (app, id, secret) = app_with_reader(backend).await;
    let mut feed = subscribe(&app, &id, &secret, None).await;
    let mut seen = String::new();
    read_until(&mut feed, &mut seen, "caught_up", Duration::from_secs(5)).await;
    // Keep-alives alone would keep a gateway trusting a view that no longer moves.
    app.execute("ALTER TABLE change_log RENAME TO change_log_unreadable")
        .await;
    let ended = tokio::time::timeout(Duration::from_secs(20), async {
        while let Some(bytes) = feed.chunk().await.ok()? {
            seen.push_str(&String::from_utf8_lossy(&bytes));
        }
        Some(())
    })
    .await;
    assert!(ended.is_ok(), "the feed went on; got:\n{seen}");
}
