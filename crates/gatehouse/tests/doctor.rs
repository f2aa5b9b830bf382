//! `gatehouse doctor` on real stores, through the real binary: ok on a store a node has started
//! on, FAIL (exit status 1) with the reason on a missing, unmigrated or newer store, a wrong
//! key-encryption key, a bad issuer or a bad route file; and it changes nothing it looks at.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::Path;

/// `gatehouse doctor ARGS` with `env`: (succeeded, stdout).
fn doctor(args: &[&str], env: &[(&str, &str)]) -> (bool, String) {
    let mut all = vec!["doctor"];
    all.extend_from_slice(args);
    let output = common::gatehouse(&all, env).output().unwrap();
    let stdout = String::from_utf8(output.stdout).unwrap();
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(
        output.status.success() || stderr.contains("checks failed"),
        "{stdout}\n{stderr}"
    );
    (output.status.success(), stdout)
}

/// The report's line for `check`, e.g. `("FAIL", "store: no SQLite database …")`.
fn line<'a>(report: &'a str, check: &str) -> (&'a str, &'a str) {
    report
        .lines()
        .find_map(|line| {
            let (level, rest) = line.split_once(' ')?;
            let rest = rest.trim_start();
            rest.starts_with(&format!("{check}:"))
                .then_some((level, rest))
        })
        .unwrap_or_else(|| panic!("no {check} line in\n{report}"))
}

/// Starts `gatehouse auth` on `data_dir` (SQLite) with `env`, waits until it is ready, stops it.
fn start_and_stop(extra: &[&str], env: &[(&str, &str)]) {
    let running = common::start(&[&["auth"], extra].concat(), env);
    assert!(common::terminate(running).success());
}

#[test]
fn a_store_a_node_started_on_is_ok_and_nothing_is_changed() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let data = data.to_str().unwrap();
    start_and_stop(&["--data-dir", data], &[]);
    let db = Path::new(data).join("gatehouse.db");
    let before = std::fs::read(&db).unwrap();

    let (ok, report) = doctor(&["--data-dir", data], &[]);
    assert!(ok, "{report}");
    for check in [
        "configuration",
        "store",
        "migrations",
        "signing keys",
        "issuer",
        "clock",
    ] {
        assert_eq!(line(&report, check).0, "ok", "{report}");
    }
    assert!(
        line(&report, "migrations")
            .1
            .contains("all 3 migrations applied")
    );
    // The key-encryption key is never printed, only where it came from.
    let kek = std::fs::read_to_string(Path::new(data).join("kek.key")).unwrap();
    assert!(!report.contains(kek.trim()), "{report}");
    assert_eq!(
        std::fs::read(&db).unwrap(),
        before,
        "doctor wrote to the store"
    );
}

#[test]
fn a_missing_store_fails_and_is_not_created() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("nothing-here");
    let (ok, report) = doctor(&["--data-dir", data.to_str().unwrap()], &[]);
    assert!(!ok, "{report}");
    let (level, message) = line(&report, "store");
    assert_eq!(level, "FAIL");
    assert!(message.contains("no SQLite database at"), "{report}");
    assert!(message.contains("--data-dir"), "{report}");
    assert_eq!(line(&report, "migrations").0, "skip");
    assert!(!data.exists(), "doctor created the data directory");
}

#[test]
fn a_store_never_migrated_fails_and_stays_unmigrated() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("gatehouse.db");
    std::fs::write(&db, b"").unwrap();
    let (ok, report) = doctor(&["--data-dir", dir.path().to_str().unwrap()], &[]);
    assert!(!ok, "{report}");
    let (level, message) = line(&report, "migrations");
    assert_eq!(level, "FAIL", "{report}");
    assert!(message.contains("no migration history"), "{report}");
    assert_eq!(line(&report, "signing keys").0, "skip");
    assert_eq!(
        std::fs::metadata(&db).unwrap().len(),
        0,
        "doctor migrated it"
    );
}

#[tokio::test]
async fn a_store_migrated_by_a_newer_version_fails() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap();
    start_and_stop(&["--data-dir", data], &[]);
    sqlx::any::install_default_drivers();
    let url = format!("sqlite://{}/gatehouse.db", data);
    let pool = sqlx::AnyPool::connect(&url).await.unwrap();
    sqlx::query(
        "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
         VALUES (9999, 'from the future', TRUE, x'00', 1)",
    )
    .execute(&pool)
    .await
    .unwrap();
    pool.close().await;
    let (ok, report) = doctor(&["--data-dir", data], &[]);
    assert!(!ok, "{report}");
    let (level, message) = line(&report, "migrations");
    assert_eq!(level, "FAIL", "{report}");
    assert!(message.contains("9999"), "{report}");
    assert!(message.contains("newer Gatehouse"), "{report}");
}

#[test]
fn a_wrong_key_encryption_key_fails_without_showing_either_key() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap();
    let right = "11".repeat(32);
    let wrong = "22".repeat(32);
    start_and_stop(&["--data-dir", data], &[("GATEHOUSE_KEK", &right)]);

    let (ok, report) = doctor(&["--data-dir", data], &[("GATEHOUSE_KEK", &right)]);
    assert!(ok, "{report}");
    assert!(line(&report, "signing keys").1.contains("GATEHOUSE_KEK"));

    let (ok, report) = doctor(&["--data-dir", data], &[("GATEHOUSE_KEK", &wrong)]);
    assert!(!ok, "{report}");
    let (level, message) = line(&report, "signing keys");
    assert_eq!(level, "FAIL", "{report}");
    assert!(
        message.contains("not the key they were sealed with"),
        "{report}"
    );
    assert!(
        !report.contains(&right) && !report.contains(&wrong),
        "{report}"
    );

    // No key at all, with keys in the store.
    let (ok, report) = doctor(&["--data-dir", data], &[]);
    assert!(!ok, "{report}");
    assert!(
        line(&report, "signing keys")
            .1
            .contains("no key-encryption key")
    );
}

#[test]
fn issuers_clients_cannot_use_fail_and_doubtful_ones_warn() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap();
    start_and_stop(&["--data-dir", data], &[]);
    for (issuer, level, says) in [
        ("http://0.0.0.0:8080", "FAIL", "unspecified address"),
        (
            "https://auth.example.com?tenant=a",
            "FAIL",
            "no query or fragment",
        ),
        ("http://auth.example.com", "warn", "in the clear"),
        ("https://auth.example.com/", "warn", "ends with '/'"),
        (
            "https://auth.example.com",
            "ok",
            "/.well-known/oauth-authorization-server",
        ),
    ] {
        let (ok, report) = doctor(&["--data-dir", data, "--issuer", issuer], &[]);
        let (found, message) = line(&report, "issuer");
        assert_eq!(found, level, "{issuer}: {report}");
        assert!(message.contains(says), "{issuer}: {report}");
        assert_eq!(ok, level != "FAIL", "{issuer}: {report}");
    }
}

#[test]
fn gateway_files_are_read_with_the_gateways_own_checks() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let data = data.to_str().unwrap();
    start_and_stop(&["--data-dir", data], &[]);
    let file = dir.path().join("gateway.toml");

    std::fs::write(
        &file,
        "[gateway]\nissuer = \"http://127.0.0.1:8080\"\n\n[[route]]\nprefix = \"/api/rates\"\n\
         upstream = \"http://127.0.0.1:9101\"\nmethods = [\"GET\"]\n\
         scopes = { GET = [\"rates:read\"] }\n",
    )
    .unwrap();
    let (ok, report) = doctor(
        &[
            "--data-dir",
            data,
            "--gateway-config",
            file.to_str().unwrap(),
        ],
        &[],
    );
    assert!(ok, "{report}");
    let (level, message) = line(&report, "gateway routes");
    // Valid, but without a feed client it cannot follow revocations.
    assert_eq!(level, "warn", "{report}");
    assert!(message.contains("1 routes valid"), "{report}");
    assert!(message.contains("feed_client_id"), "{report}");

    for (text, says) in [
        (
            "[gateway]\nissuer = \"http://127.0.0.1:8080\"\n[[route]]\nprefix = \"/a\"\n\
             upstream = \"not a url\"\n",
            "route /a",
        ),
        (
            "[gateway]\nissuer = \"http://127.0.0.1:8080\"\n[[route]]\nprefix = \"/a\"\n\
             upstream = \"http://x\"\ncolour = \"blue\"\n",
            "colour",
        ),
        (
            "[[route]]\nprefix = \"/a\"\nupstream = \"http://x\"\n",
            "issuer is missing",
        ),
        (
            "[gateway]\nissuer = \"http://127.0.0.1:8080\"\nfeed_client_id = \"cl_x\"\n",
            "GATEHOUSE_GATEWAY_CLIENT_SECRET",
        ),
    ] {
        std::fs::write(&file, text).unwrap();
        let (ok, report) = doctor(
            &[
                "--data-dir",
                data,
                "--gateway-config",
                file.to_str().unwrap(),
            ],
            &[],
        );
        assert!(!ok, "{report}");
        let (level, message) = line(&report, "gateway routes");
        assert_eq!(level, "FAIL", "{report}");
        assert!(message.contains(says), "{says}: {report}");
    }

    // serve's own route file, with its placeholders, when --gateway-routes names one.
    std::fs::write(
        &file,
        "[[route]]\nprefix = \"/api/rates\"\nupstream = \"http://{app:rates}\"\n",
    )
    .unwrap();
    let (ok, report) = doctor(
        &[
            "--data-dir",
            data,
            "--gateway-routes",
            file.to_str().unwrap(),
        ],
        &[],
    );
    assert!(ok, "{report}");
    assert_eq!(line(&report, "gateway routes").0, "ok", "{report}");
    std::fs::write(&file, "[[route]]\nprefix = \"/api/rates\"\n").unwrap();
    let (ok, report) = doctor(
        &[
            "--data-dir",
            data,
            "--gateway-routes",
            file.to_str().unwrap(),
        ],
        &[],
    );
    assert!(!ok, "{report}");
    assert_eq!(line(&report, "gateway routes").0, "FAIL", "{report}");
}

#[test]
fn a_configuration_that_does_not_load_fails_first() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("gatehouse.toml");
    std::fs::write(&file, "colour = \"blue\"\n").unwrap();
    let (ok, report) = doctor(&["--config", file.to_str().unwrap()], &[]);
    assert!(!ok, "{report}");
    assert_eq!(line(&report, "configuration").0, "FAIL", "{report}");
}

#[tokio::test]
async fn postgresql_stores_are_checked_with_the_database_clock() {
    let Some(server) = gatehouse_testkit::postgres_url() else {
        return;
    };
    let url = common::fresh_database(&server, "gh_doctor").await;
    let kek = "33".repeat(32);
    let env = [("GATEHOUSE_KEK", kek.as_str())];

    let (ok, report) = doctor(&["--database-url", &url], &env);
    assert!(!ok, "{report}");
    assert_eq!(line(&report, "migrations").0, "FAIL", "{report}");
    assert!(
        line(&report, "migrations")
            .1
            .contains("no migration history")
    );

    start_and_stop(&["--database-url", &url], &env);
    let (ok, report) = doctor(&["--database-url", &url], &env);
    assert!(ok, "{report}");
    assert_eq!(line(&report, "store").0, "ok", "{report}");
    assert_eq!(line(&report, "migrations").0, "ok", "{report}");
    assert_eq!(line(&report, "signing keys").0, "ok", "{report}");
    let (level, message) = line(&report, "clock");
    assert_eq!(level, "ok", "{report}");
    assert!(message.contains("PostgreSQL"), "{report}");

    let wrong = "44".repeat(32);
    let (ok, report) = doctor(&["--database-url", &url], &[("GATEHOUSE_KEK", &wrong)]);
    assert!(!ok, "{report}");
    assert_eq!(line(&report, "signing keys").0, "FAIL", "{report}");

    let (ok, report) = doctor(
        &["--database-url", "postgres://nobody@127.0.0.1:1/none"],
        &env,
    );
    assert!(!ok, "{report}");
    assert_eq!(line(&report, "store").0, "FAIL", "{report}");
}
