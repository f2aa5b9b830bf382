//! `revocation-bench seed`: fills a Gatehouse store (SQLite or PostgreSQL) with many clients,
//! users, audit events and revoked access tokens, fast, for `bench/scale.sh`.
//!
//! The schema must exist already (made by the real `gatehouse` binary: start it once on the store,
//! or run `gatehouse admin … user create`, which migrates). Rows are written with SQL straight into
//! the tables the server reads, in the formats it writes them: times in Unix seconds,
//! space-separated lists, client secrets as SHA-256 hex, password hashes as argon2 PHC strings.
//! PostgreSQL fills each table with `INSERT … SELECT … FROM generate_series` in chunks; SQLite
//! with a recursive CTE in chunks (one transaction each), with the client secrets' hashes, which
//! SQLite cannot compute, handed in as a JSON array read with `json_each`.
//!
//! Every name is derived from its number, so the load tools can act as any seeded party:
//!
//! | rows | id | other |
//! |---|---|---|
//! | clients | `seed-client-0000001` | secret `seed-secret-0000001`, `client_secret_basic`, grant `client_credentials`, scope `rates:read` |
//! | users | `seed-uid-0000001` | username `seed-user-0000001`, email `seed-user-0000001@example.com`, role `user`, ONE password hash for all (copied from `--password-hash-from`) |
//! | audit events | `seed-event-00000001` | spread evenly over `--audit-days` up to now, newest first; types cycle (see `audit_kind_case!`), `admin.user.blocked` one in a thousand; subject a seeded user id |
//! | revoked tokens | jti `seed-jti-0000001` | `revoked_tokens` row and `token_revoked` change-log entry, revoked within the last `--revoked-spread-secs`, expiring `--revoked-ttl-secs` from now |
//!
//! Numbers are zero-padded to 7 digits (8 for audit events): sizes up to 9,999,999 (99,999,999).
//! Seeding twice with overlapping numbers fails on the primary keys; `--*-from` shifts the range.

use std::time::Instant;

use anyhow::{Context, bail, ensure};
use clap::Args;
use serde_json::json;
use sqlx::{Connection, Executor, PgConnection, SqliteConnection};

#[derive(Args, Clone)]
pub struct SeedArgs {
    /// The store: `sqlite:///path/to/gatehouse.db` or `postgres://…`. Its schema must exist.
    #[arg(long)]
    store: String,
    /// Clients to add.
    #[arg(long, default_value_t = 0)]
    clients: i64,
    /// Users to add (each holding the role `user`).
    #[arg(long, default_value_t = 0)]
    users: i64,
    /// Audit events to add.
    #[arg(long, default_value_t = 0)]
    audit_events: i64,
    /// Revoked, unexpired access token ids to add (each with its change-log entry, so the
    /// revocation feed sends it and gateways hold it).
    #[arg(long, default_value_t = 0)]
    revoked_tokens: i64,
    /// The number of the first client added (the next ones follow).
    #[arg(long, default_value_t = 1)]
    clients_from: i64,
    #[arg(long, default_value_t = 1)]
    users_from: i64,
    #[arg(long, default_value_t = 1)]
    audit_events_from: i64,
    #[arg(long, default_value_t = 1)]
    revoked_tokens_from: i64,
    /// The username of an existing user whose password hash every seeded user gets (one argon2
    /// hash for all: hashing a million passwords would take hours).
    #[arg(long)]
    password_hash_from: Option<String>,
    /// How many seeded users the audit events' subjects are spread over [default: --users, or
    /// the users already seeded].
    #[arg(long)]
    audit_subjects: Option<i64>,
    /// Audit events are spread evenly over this many days up to now.
    #[arg(long, default_value_t = 30)]
    audit_days: i64,
    /// Revoked tokens expire this long from now.
    #[arg(long, default_value_t = 3600)]
    revoked_ttl_secs: i64,
    /// Revoked tokens were revoked within this many seconds before now; keep it well under the
    /// server's access-token lifetime, so a gateway starting later still replays them all.
    #[arg(long, default_value_t = 120)]
    revoked_spread_secs: i64,
    /// A further jti to revoke (repeatable): a real token's, to check that it is refused.
    #[arg(long = "extra-revoked-jti")]
    extra_revoked_jtis: Vec<String>,
    /// Rows per statement (and, on SQLite, per transaction).
    #[arg(long, default_value_t = 100_000)]
    chunk: i64,
    /// Run ANALYZE afterwards (PostgreSQL's autovacuum would in time; SQLite only when told).
    #[arg(long)]
    analyze: bool,
}

/// How seeded numbers are written: `seed-client-{n:07}`, … (the SQL pads the same way).
pub fn client_id(n: i64) -> String {
    format!("seed-client-{n:07}")
}

pub fn client_secret(n: i64) -> String {
    format!("seed-secret-{n:07}")
}

fn sha256_hex(s: &str) -> String {
    use std::fmt::Write;
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, s.as_bytes());
    d.as_ref()
        .iter()
        .fold(String::with_capacity(64), |mut out, b| {
            let _ = write!(out, "{b:02x}");
            out
        })
}

/// The audit event types, by `i % 10`; one event in a thousand is `admin.user.blocked`.
macro_rules! audit_kind_case {
    ($i:literal) => {
        concat!(
            "CASE WHEN ",
            $i,
            " % 1000 = 0 THEN 'admin.user.blocked' ELSE CASE ",
            $i,
            " % 10 WHEN 0 THEN 'login.success' WHEN 1 THEN 'login.success' \
             WHEN 2 THEN 'login.success' WHEN 3 THEN 'login.failure' WHEN 4 THEN 'token.revoked' \
             WHEN 5 THEN 'session.revoked' WHEN 6 THEN 'password.changed' \
             WHEN 7 THEN 'consent.granted' WHEN 8 THEN 'client.updated' \
             ELSE 'refresh.reuse_detected' END END"
        )
    };
}

// ------------------------------------------------------------------------ PostgreSQL SQL --

const PG_CLIENTS: &str = "INSERT INTO clients (id, name, secret_hash, auth_method, grant_types, \
     scopes, registration_token_hash, created_at, updated_at, blocked_at, not_before, \
     previous_secret_hash, previous_secret_expires_at, redirect_uris, post_logout_redirect_uris, \
     skip_consent) \
     SELECT 'seed-client-' || lpad(i::text, 7, '0'), 'seed client ' || i, \
       encode(sha256(convert_to('seed-secret-' || lpad(i::text, 7, '0'), 'UTF8')), 'hex'), \
       'client_secret_basic', 'client_credentials', 'rates:read', NULL, $3 - i, $3 - i, NULL, 0, \
       NULL, NULL, '', '', 0 \
     FROM generate_series($1::bigint, $2::bigint) AS i";

const PG_USERS: &str = "INSERT INTO users (id, username, email, password_hash, created_at, \
     updated_at, blocked_at, not_before) \
     SELECT 'seed-uid-' || lpad(i::text, 7, '0'), 'seed-user-' || lpad(i::text, 7, '0'), \
       'seed-user-' || lpad(i::text, 7, '0') || '@example.com', $4, $3 - i, $3 - i, NULL, 0 \
     FROM generate_series($1::bigint, $2::bigint) AS i";

const PG_USER_ROLES: &str = "INSERT INTO user_roles (user_id, role, position) \
     SELECT 'seed-uid-' || lpad(i::text, 7, '0'), 'user', 0 \
     FROM generate_series($1::bigint, $2::bigint) AS i";

const PG_AUDIT: &str = concat!(
    "INSERT INTO audit_events (id, at, kind, subject, client_id, actor, ip, detail) \
     SELECT 'seed-event-' || lpad(i::text, 8, '0'), $3 - (i * $4 / $5), ",
    audit_kind_case!("i"),
    ", 'seed-uid-' || lpad(((i * 7919) % $6 + 1)::text, 7, '0'), NULL, NULL, \
       '10.0.' || (i / 256 % 256) || '.' || (i % 256), '' \
     FROM generate_series($1::bigint, $2::bigint) AS i"
);

const PG_REVOKED: &str = "INSERT INTO revoked_tokens (jti, subject, client_id, expires_at, \
     revoked_at) \
     SELECT 'seed-jti-' || lpad(i::text, 7, '0'), 'seed-client-' || lpad(i::text, 7, '0'), \
       'seed-client-' || lpad(i::text, 7, '0'), $3 + $4, $3 - (i % $5) \
     FROM generate_series($1::bigint, $2::bigint) AS i";

const PG_REVOKED_LOG: &str = "INSERT INTO change_log (at, kind, subject, until) \
     SELECT $3 - (i % $5), 'token_revoked', 'seed-jti-' || lpad(i::text, 7, '0'), $3 + $4 \
     FROM generate_series($1::bigint, $2::bigint) AS i ORDER BY i";

// ---------------------------------------------------------------------------- SQLite SQL --

/// Numbers ?1 to ?2, as the source of an INSERT (a recursive CTE; SQLite has no generate_series
/// unless built with it).
macro_rules! sqlite_series {
    ($select:expr) => {
        concat!(
            "WITH RECURSIVE s(i) AS (SELECT ?1 UNION ALL SELECT i + 1 FROM s WHERE i < ?2) ",
            $select,
            " FROM s"
        )
    };
}

/// The hashes come as a JSON array in ?2: element k is client ?1 + k.
const SQLITE_CLIENTS: &str = "INSERT INTO clients (id, name, secret_hash, auth_method, \
     grant_types, scopes, registration_token_hash, created_at, updated_at, blocked_at, \
     not_before, previous_secret_hash, previous_secret_expires_at, redirect_uris, \
     post_logout_redirect_uris, skip_consent) \
     SELECT printf('seed-client-%07d', ?1 + key), 'seed client ' || (?1 + key), value, \
       'client_secret_basic', 'client_credentials', 'rates:read', NULL, ?3 - (?1 + key), \
       ?3 - (?1 + key), NULL, 0, NULL, NULL, '', '', 0 \
     FROM json_each(?2)";

const SQLITE_USERS: &str = concat!(
    "INSERT INTO users (id, username, email, password_hash, created_at, updated_at, blocked_at, \
     not_before) ",
    sqlite_series!(
        "SELECT printf('seed-uid-%07d', i), printf('seed-user-%07d', i), \
         printf('seed-user-%07d@example.com', i), ?4, ?3 - i, ?3 - i, NULL, 0"
    )
);

const SQLITE_USER_ROLES: &str = concat!(
    "INSERT INTO user_roles (user_id, role, position) ",
    sqlite_series!("SELECT printf('seed-uid-%07d', i), 'user', 0")
);

const SQLITE_AUDIT: &str = concat!(
    "INSERT INTO audit_events (id, at, kind, subject, client_id, actor, ip, detail) ",
    sqlite_series!(concat!(
        "SELECT printf('seed-event-%08d', i), ?3 - (i * ?4 / ?5), ",
        audit_kind_case!("i"),
        ", printf('seed-uid-%07d', (i * 7919) % ?6 + 1), NULL, NULL, \
         '10.0.' || (i / 256 % 256) || '.' || (i % 256), ''"
    ))
);

const SQLITE_REVOKED: &str = concat!(
    "INSERT INTO revoked_tokens (jti, subject, client_id, expires_at, revoked_at) ",
    sqlite_series!(
        "SELECT printf('seed-jti-%07d', i), printf('seed-client-%07d', i), \
         printf('seed-client-%07d', i), ?3 + ?4, ?3 - (i % ?5)"
    )
);

const SQLITE_REVOKED_LOG: &str = concat!(
    "INSERT INTO change_log (at, kind, subject, until) ",
    sqlite_series!("SELECT ?3 - (i % ?5), 'token_revoked', printf('seed-jti-%07d', i), ?3 + ?4")
);

/// Both bind the jti, its expiry and now, in that order.
const EXTRA_REVOKED: &str = "INSERT INTO revoked_tokens (jti, subject, client_id, expires_at, \
     revoked_at) VALUES ($1, 'seed', 'seed', $2, $3)";
const EXTRA_REVOKED_LOG: &str =
    "INSERT INTO change_log (subject, until, at, kind) VALUES ($1, $2, $3, 'token_revoked')";

// ------------------------------------------------------------------------------- running --

enum Db {
    Pg(PgConnection),
    Sqlite(SqliteConnection),
}

/// What one table's seeding took.
struct Filled {
    table: &'static str,
    rows: i64,
    seconds: f64,
}

pub async fn seed(args: SeedArgs) -> anyhow::Result<()> {
    for (name, n) in [
        ("--clients", args.clients),
        ("--users", args.users),
        ("--audit-events", args.audit_events),
        ("--revoked-tokens", args.revoked_tokens),
    ] {
        ensure!(n >= 0, "{name} must not be negative");
    }
    ensure!(args.chunk > 0, "--chunk must be positive");
    ensure!(
        args.clients_from + args.clients <= 10_000_000
            && args.users_from + args.users <= 10_000_000
            && args.revoked_tokens_from + args.revoked_tokens <= 10_000_000
            && args.audit_events_from + args.audit_events <= 100_000_000,
        "numbers are padded to 7 digits (8 for audit events): too many rows"
    );
    ensure!(
        args.revoked_spread_secs > 0 && args.audit_days > 0,
        "--revoked-spread-secs and --audit-days must be positive"
    );
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .context("the clock is before 1970")?
        .as_secs() as i64;
    let started = Instant::now();
    let mut db = connect(&args.store).await?;
    let mut filled = Vec::new();

    if args.users > 0 {
        let hash = password_hash(&mut db, &args).await?;
        filled.push(fill_users(&mut db, &args, now, &hash).await?);
    }
    if args.clients > 0 {
        filled.push(fill_clients(&mut db, &args, now).await?);
    }
    if args.audit_events > 0 {
        let subjects = match args.audit_subjects {
            Some(n) => n,
            None if args.users > 0 => args.users,
            None => count_seeded_users(&mut db).await?,
        };
        ensure!(
            subjects > 0,
            "audit events need seeded users as subjects: give --users or --audit-subjects"
        );
        filled.push(fill_audit(&mut db, &args, now, subjects).await?);
    }
    if args.revoked_tokens > 0 || !args.extra_revoked_jtis.is_empty() {
        filled.push(fill_revoked(&mut db, &args, now).await?);
    }
    if args.analyze {
        let t = Instant::now();
        match &mut db {
            Db::Pg(c) => c.execute("ANALYZE").await.map(|_| ()),
            Db::Sqlite(c) => c.execute("ANALYZE").await.map(|_| ()),
        }
        .context("ANALYZE failed")?;
        eprintln!("seed: ANALYZE took {:.1} s", t.elapsed().as_secs_f64());
    }
    match db {
        Db::Pg(c) => c.close().await,
        Db::Sqlite(c) => c.close().await,
    }
    .context("closing the store's connection failed")?;

    let total = started.elapsed().as_secs_f64();
    for f in &filled {
        println!(
            "seeded {} {}: {:.1} s ({:.0} rows/s)",
            f.rows,
            f.table,
            f.seconds,
            f.rows as f64 / f.seconds.max(1e-9)
        );
    }
    println!("seeding took {total:.1} s in all");
    let tables: serde_json::Map<String, serde_json::Value> = filled
        .iter()
        .map(|f| {
            (
                f.table.to_owned(),
                json!({"rows": f.rows, "seconds": (f.seconds * 100.0).round() / 100.0}),
            )
        })
        .collect();
    println!(
        "{}",
        json!({"seconds": (total * 100.0).round() / 100.0, "tables": tables})
    );
    Ok(())
}

async fn connect(url: &str) -> anyhow::Result<Db> {
    if url.starts_with("postgres:") || url.starts_with("postgresql:") {
        let mut c = PgConnection::connect(url)
            .await
            .context("cannot connect to the PostgreSQL store")?;
        // A lost seed is re-run, not recovered: no need to wait for each commit's flush.
        c.execute("SET synchronous_commit = off")
            .await
            .context("SET synchronous_commit failed")?;
        Ok(Db::Pg(c))
    } else if url.starts_with("sqlite:") {
        use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqliteSynchronous};
        use std::str::FromStr;
        let options = SqliteConnectOptions::from_str(url)
            .with_context(|| format!("bad SQLite URL {url}"))?
            .create_if_missing(false)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Off)
            .foreign_keys(true)
            .busy_timeout(std::time::Duration::from_secs(30));
        let mut c = SqliteConnection::connect_with(&options)
            .await
            .with_context(|| format!("cannot open the SQLite store {url}"))?;
        // Room for the chunks' index pages; the default cache is 2 MiB.
        c.execute("PRAGMA cache_size = -262144")
            .await
            .context("PRAGMA cache_size failed")?;
        Ok(Db::Sqlite(c))
    } else {
        bail!("--store must start with sqlite: or postgres:")
    }
}

async fn password_hash(db: &mut Db, args: &SeedArgs) -> anyhow::Result<String> {
    let Some(username) = &args.password_hash_from else {
        bail!(
            "seeding users needs --password-hash-from USERNAME: a user made by the real binary, \
             whose argon2 hash every seeded user gets"
        );
    };
    let sql = "SELECT password_hash FROM users WHERE lower(username) = lower($1)";
    let hash: Option<String> = match db {
        Db::Pg(c) => {
            sqlx::query_scalar(sql)
                .bind(username)
                .fetch_optional(&mut *c)
                .await
        }
        Db::Sqlite(c) => {
            sqlx::query_scalar(sql)
                .bind(username)
                .fetch_optional(&mut *c)
                .await
        }
    }
    .context("reading the template user's password hash failed")?;
    let hash = hash.with_context(|| format!("no user {username:?} in the store"))?;
    ensure!(
        hash.starts_with("$argon2"),
        "user {username:?}'s password hash is not an argon2 PHC string"
    );
    Ok(hash)
}

async fn count_seeded_users(db: &mut Db) -> anyhow::Result<i64> {
    let sql = "SELECT COUNT(*) FROM users WHERE id LIKE 'seed-uid-%'";
    match db {
        Db::Pg(c) => sqlx::query_scalar(sql).fetch_one(&mut *c).await,
        Db::Sqlite(c) => sqlx::query_scalar(sql).fetch_one(&mut *c).await,
    }
    .context("counting the seeded users failed")
}

/// The chunks [from, to] of `n` rows starting at `first`.
fn chunks(first: i64, n: i64, chunk: i64) -> impl Iterator<Item = (i64, i64)> {
    let end = first + n - 1;
    (first..=end)
        .step_by(chunk as usize)
        .map(move |from| (from, (from + chunk - 1).min(end)))
}

fn progress(table: &str, done: i64, total: i64, started: Instant) {
    eprintln!(
        "seed: {table}: {done}/{total} rows, {:.1} s",
        started.elapsed().as_secs_f64()
    );
}

/// Runs one chunk's statements (those of the store's backend) in one transaction, binding
/// `numbers` in order and then `text`, if any.
async fn run_chunk(
    db: &mut Db,
    what: &str,
    pg: &[&'static str],
    sqlite: &[&'static str],
    numbers: &[i64],
    text: Option<&str>,
) -> anyhow::Result<()> {
    macro_rules! run {
        ($conn:expr, $statements:expr) => {{
            let mut tx = $conn.begin().await.context("BEGIN failed")?;
            for sql in $statements {
                let mut q = sqlx::query(*sql);
                for n in numbers {
                    q = q.bind(*n);
                }
                if let Some(t) = text {
                    q = q.bind(t);
                }
                q.execute(&mut *tx)
                    .await
                    .with_context(|| format!("seeding {what} failed"))?;
            }
            tx.commit().await.context("COMMIT failed")?;
        }};
    }
    match db {
        Db::Pg(c) => run!(c, pg),
        Db::Sqlite(c) => run!(c, sqlite),
    }
    Ok(())
}

async fn fill_users(db: &mut Db, args: &SeedArgs, now: i64, hash: &str) -> anyhow::Result<Filled> {
    let started = Instant::now();
    for (from, to) in chunks(args.users_from, args.users, args.chunk) {
        // ?4 / $4 is the hash; user_roles binds three numbers only, so it gets its own call.
        run_chunk(
            db,
            "users",
            &[PG_USERS],
            &[SQLITE_USERS],
            &[from, to, now],
            Some(hash),
        )
        .await?;
        run_chunk(
            db,
            "user_roles",
            &[PG_USER_ROLES],
            &[SQLITE_USER_ROLES],
            &[from, to],
            None,
        )
        .await?;
        progress("users", to - args.users_from + 1, args.users, started);
    }
    Ok(Filled {
        table: "users",
        rows: args.users,
        seconds: started.elapsed().as_secs_f64(),
    })
}

async fn fill_clients(db: &mut Db, args: &SeedArgs, now: i64) -> anyhow::Result<Filled> {
    let started = Instant::now();
    for (from, to) in chunks(args.clients_from, args.clients, args.chunk) {
        match db {
            Db::Pg(_) => {
                run_chunk(db, "clients", &[PG_CLIENTS], &[], &[from, to, now], None).await?;
            }
            Db::Sqlite(c) => {
                let hashes: Vec<String> =
                    (from..=to).map(|n| sha256_hex(&client_secret(n))).collect();
                let hashes =
                    serde_json::to_string(&hashes).context("cannot encode the secrets' hashes")?;
                // ?1 is the first number, ?2 the hashes, ?3 now: bound in that order.
                let mut tx = c.begin().await.context("BEGIN failed")?;
                sqlx::query(SQLITE_CLIENTS)
                    .bind(from)
                    .bind(&hashes)
                    .bind(now)
                    .execute(&mut *tx)
                    .await
                    .context("seeding clients failed")?;
                tx.commit().await.context("COMMIT failed")?;
            }
        }
        progress("clients", to - args.clients_from + 1, args.clients, started);
    }
    Ok(Filled {
        table: "clients",
        rows: args.clients,
        seconds: started.elapsed().as_secs_f64(),
    })
}

async fn fill_audit(
    db: &mut Db,
    args: &SeedArgs,
    now: i64,
    subjects: i64,
) -> anyhow::Result<Filled> {
    let started = Instant::now();
    let span = args.audit_days * 86_400;
    let total = args.audit_events_from + args.audit_events - 1;
    for (from, to) in chunks(args.audit_events_from, args.audit_events, args.chunk) {
        run_chunk(
            db,
            "audit events",
            &[PG_AUDIT],
            &[SQLITE_AUDIT],
            &[from, to, now, span, total, subjects],
            None,
        )
        .await?;
        progress(
            "audit_events",
            to - args.audit_events_from + 1,
            args.audit_events,
            started,
        );
    }
    Ok(Filled {
        table: "audit_events",
        rows: args.audit_events,
        seconds: started.elapsed().as_secs_f64(),
    })
}

async fn fill_revoked(db: &mut Db, args: &SeedArgs, now: i64) -> anyhow::Result<Filled> {
    let started = Instant::now();
    let binds = |from, to| {
        [
            from,
            to,
            now,
            args.revoked_ttl_secs,
            args.revoked_spread_secs,
        ]
    };
    if args.revoked_tokens > 0 {
        for (from, to) in chunks(args.revoked_tokens_from, args.revoked_tokens, args.chunk) {
            run_chunk(
                db,
                "revoked tokens",
                &[PG_REVOKED, PG_REVOKED_LOG],
                &[SQLITE_REVOKED, SQLITE_REVOKED_LOG],
                &binds(from, to),
                None,
            )
            .await?;
            progress(
                "revoked_tokens",
                to - args.revoked_tokens_from + 1,
                args.revoked_tokens,
                started,
            );
        }
    }
    // Last, so the extra ones are the newest entries of the log.
    for jti in &args.extra_revoked_jtis {
        let until = now + args.revoked_ttl_secs;
        for sql in [EXTRA_REVOKED, EXTRA_REVOKED_LOG] {
            match db {
                Db::Pg(c) => sqlx::query(sql)
                    .bind(jti)
                    .bind(until)
                    .bind(now)
                    .execute(&mut *c)
                    .await
                    .map(|_| ()),
                Db::Sqlite(c) => sqlx::query(sql)
                    .bind(jti)
                    .bind(until)
                    .bind(now)
                    .execute(&mut *c)
                    .await
                    .map(|_| ()),
            }
            .with_context(|| format!("revoking the extra jti {jti:?} failed"))?;
        }
    }
    Ok(Filled {
        table: "revoked_tokens",
        rows: args.revoked_tokens + args.extra_revoked_jtis.len() as i64,
        seconds: started.elapsed().as_secs_f64(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_hashes_match_what_the_sql_writes() {
        assert_eq!(client_id(42), "seed-client-0000042");
        assert_eq!(client_secret(1_000_000), "seed-secret-1000000");
        // SHA-256 of "abc".
        assert_eq!(
            sha256_hex("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        let c: Vec<_> = chunks(1, 250, 100).collect();
        assert_eq!(c, vec![(1, 100), (101, 200), (201, 250)]);
        assert_eq!(chunks(5, 0, 100).count(), 0);
    }

    #[tokio::test]
    async fn seeds_an_sqlite_store_the_way_the_server_reads_it() {
        let dir = std::env::temp_dir().join(format!("seed-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("t.db");
        let url = format!("sqlite://{}?mode=rwc", path.display());
        let mut c = SqliteConnection::connect(&url).await.unwrap();
        for sql in [
            "CREATE TABLE clients (id TEXT PRIMARY KEY, name TEXT, secret_hash TEXT, \
             auth_method TEXT, grant_types TEXT, scopes TEXT, registration_token_hash TEXT, \
             created_at BIGINT, updated_at BIGINT, blocked_at BIGINT, not_before BIGINT, \
             previous_secret_hash TEXT, previous_secret_expires_at BIGINT, redirect_uris TEXT, \
             post_logout_redirect_uris TEXT, skip_consent BIGINT)",
            "CREATE TABLE audit_events (id TEXT PRIMARY KEY, at BIGINT, kind TEXT, subject TEXT, \
             client_id TEXT, actor TEXT, ip TEXT, detail TEXT)",
        ] {
            c.execute(sql).await.unwrap();
        }
        c.close().await.unwrap();
        let mut args = SeedArgs {
            store: format!("sqlite://{}", path.display()),
            clients: 25,
            users: 0,
            audit_events: 30,
            revoked_tokens: 0,
            clients_from: 1,
            users_from: 1,
            audit_events_from: 1,
            revoked_tokens_from: 1,
            password_hash_from: None,
            audit_subjects: Some(3),
            audit_days: 1,
            revoked_ttl_secs: 60,
            revoked_spread_secs: 10,
            extra_revoked_jtis: vec![],
            chunk: 10,
            analyze: false,
        };
        seed(args.clone()).await.unwrap();
        let mut c = SqliteConnection::connect(&url).await.unwrap();
        let (id, hash): (String, String) =
            sqlx::query_as("SELECT id, secret_hash FROM clients WHERE id = 'seed-client-0000017'")
                .fetch_one(&mut c)
                .await
                .unwrap();
        assert_eq!(id, client_id(17));
        assert_eq!(hash, sha256_hex(&client_secret(17)));
        let (n, subject, kind): (i64, String, String) = sqlx::query_as(
            "SELECT COUNT(*), MAX(subject), MIN(kind) FROM audit_events WHERE kind = 'login.failure'",
        )
        .fetch_one(&mut c)
        .await
        .unwrap();
        assert_eq!((n, kind.as_str()), (3, "login.failure"));
        assert!(subject.starts_with("seed-uid-000000"));
        c.close().await.unwrap();
        // Seeding the same numbers again fails on the keys; shifted, it adds.
        assert!(seed(args.clone()).await.is_err());
        args.clients_from = 26;
        args.audit_events = 0;
        seed(args).await.unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
