//! `gatehouse doctor` on real stores, through the real binary: ok on a store a node has started
//! on, FAIL (exit status 1) with the reason on a missing, unmigrated or newer store, a wrong
//! key-encryption key, a signing key that does not load, a bad issuer, a bad route file or TLS
//! files that do not load; and it changes nothing it looks at (SQLite is opened read-only).
//! `gatehouse healthcheck` probes a TLS listener under a private CA with `--ca-file`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::{Path, PathBuf};

use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};

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

/// A certificate authority of the test's own: (its certificate's file, a certificate for
/// localhost and 127.0.0.1 with its key, a key of another certificate), written into `dir`.
fn private_ca(dir: &Path) -> (PathBuf, PathBuf, PathBuf, PathBuf) {
    let ca_key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_pem = params.self_signed(&ca_key).unwrap().pem();
    let issuer = Issuer::new(params, ca_key);
    let key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
        .unwrap()
        .signed_by(&key, &issuer)
        .unwrap();
    let files = ["ca.pem", "server.crt", "server.key", "other.key"].map(|f| dir.join(f));
    std::fs::write(&files[0], ca_pem).unwrap();
    std::fs::write(&files[1], leaf.pem()).unwrap();
    std::fs::write(&files[2], key.serialize_pem()).unwrap();
    std::fs::write(&files[3], KeyPair::generate().unwrap().serialize_pem()).unwrap();
    let [ca, cert, key, other] = files;
    (ca, cert, key, other)
}

#[tokio::test]
async fn signing_keys_are_loaded_as_the_node_loads_them_and_retired_ones_ignored() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap();
    start_and_stop(&["--data-dir", data], &[]);
    sqlx::any::install_default_drivers();
    let url = format!("sqlite://{data}/gatehouse.db");
    let pool = sqlx::AnyPool::connect(&url).await.unwrap();
    let (kid,): (String,) = sqlx::query_as("SELECT kid FROM signing_keys")
        .fetch_one(&pool)
        .await
        .unwrap();
    // The key opens, but as an algorithm no node signs with.
    sqlx::query("UPDATE signing_keys SET alg = 'HS256'")
        .execute(&pool)
        .await
        .unwrap();
    let (ok, report) = doctor(&["--data-dir", data], &[]);
    assert!(!ok, "{report}");
    let (level, message) = line(&report, "signing keys");
    assert_eq!(level, "FAIL", "{report}");
    assert!(
        message.contains(&kid) && message.contains("cannot be loaded"),
        "{report}"
    );
    // An Ed25519 key (the default algorithm's) said to be ES256.
    sqlx::query("UPDATE signing_keys SET alg = 'ES256'")
        .execute(&pool)
        .await
        .unwrap();
    let (ok, report) = doctor(&["--data-dir", data], &[]);
    assert!(!ok, "{report}");
    assert_eq!(line(&report, "signing keys").0, "FAIL", "{report}");

    // A key that does not load is left aside once retired, as the node leaves it.
    sqlx::query("UPDATE signing_keys SET alg = 'EdDSA'")
        .execute(&pool)
        .await
        .unwrap();
    sqlx::query(
        "INSERT INTO signing_keys (kid, alg, sealed_private_key, public_jwk, created_at, \
         activates_at, retired_at) SELECT 'retired-and-broken', 'HS256', sealed_private_key, \
         public_jwk, created_at, activates_at, 1 FROM signing_keys",
    )
    .execute(&pool)
    .await
    .unwrap();
    pool.close().await;
    let (ok, report) = doctor(&["--data-dir", data], &[]);
    assert!(ok, "{report}");
    let (level, message) = line(&report, "signing keys");
    assert_eq!(level, "ok", "{report}");
    assert!(message.contains("1 retired, ignored"), "{report}");
}

#[test]
fn tls_files_are_loaded_as_the_listener_loads_them() {
    let dir = tempfile::tempdir().unwrap();
    let (ca, cert, key, other) = private_ca(dir.path());
    let data = dir.path().join("data");
    let data = data.to_str().unwrap();
    start_and_stop(&["--data-dir", data], &[]);
    let tls = |key: &Path| {
        [
            (
                "GATEHOUSE_TLS__CERT_FILE",
                cert.to_str().unwrap().to_owned(),
            ),
            ("GATEHOUSE_TLS__KEY_FILE", key.to_str().unwrap().to_owned()),
            ("GATEHOUSE_TLS__CA_FILE", ca.to_str().unwrap().to_owned()),
        ]
    };
    let env = tls(&key);
    let env: Vec<(&str, &str)> = env.iter().map(|(n, v)| (*n, v.as_str())).collect();
    let (ok, report) = doctor(&["--data-dir", data], &env);
    assert!(ok, "{report}");
    assert_eq!(line(&report, "tls").0, "ok", "{report}");

    let wrong = tls(&other);
    let wrong: Vec<(&str, &str)> = wrong.iter().map(|(n, v)| (*n, v.as_str())).collect();
    let (ok, report) = doctor(&["--data-dir", data], &wrong);
    assert!(!ok, "{report}");
    let (level, message) = line(&report, "tls");
    assert_eq!(level, "FAIL", "{report}");
    assert!(message.contains("does not belong"), "{report}");

    // The gateway file's [gateway.tls] and ca_file.
    let file = dir.path().join("gateway.toml");
    let gateway = |key: &Path, ca: &Path| {
        format!(
            "[gateway]\nissuer = \"http://127.0.0.1:8080\"\nca_file = {ca:?}\n\
             [gateway.tls]\ncert_file = {cert:?}\nkey_file = {key:?}\n"
        )
    };
    std::fs::write(&file, gateway(&key, &ca)).unwrap();
    let args = [
        "--data-dir",
        data,
        "--gateway-config",
        file.to_str().unwrap(),
    ];
    let (_, report) = doctor(&args, &[]);
    assert_eq!(line(&report, "gateway tls").0, "ok", "{report}");
    std::fs::write(&file, gateway(&key, &key)).unwrap();
    let (ok, report) = doctor(&args, &[]);
    assert!(!ok, "{report}");
    let (level, message) = line(&report, "gateway tls");
    assert_eq!(level, "FAIL", "{report}");
    assert!(message.contains("ca_file"), "{report}");
    std::fs::write(&file, gateway(&dir.path().join("missing.key"), &ca)).unwrap();
    let (ok, report) = doctor(&args, &[]);
    assert!(!ok, "{report}");
    assert_eq!(line(&report, "gateway tls").0, "FAIL", "{report}");
}

#[test]
fn healthcheck_trusts_a_private_ca_only_when_given_its_file() {
    let dir = tempfile::tempdir().unwrap();
    let (ca, cert, key, _) = private_ca(dir.path());
    let data = dir.path().join("data");
    let auth = common::start(
        &["auth", "--data-dir", data.to_str().unwrap()],
        &[
            ("GATEHOUSE_TLS__CERT_FILE", cert.to_str().unwrap()),
            ("GATEHOUSE_TLS__KEY_FILE", key.to_str().unwrap()),
        ],
    );
    let port = auth.base.rsplit_once(':').unwrap().1.to_owned();
    let healthcheck = |url: &str, args: &[&str], env: &[(&str, &str)]| {
        let mut all = vec!["healthcheck", url];
        all.extend_from_slice(args);
        let output = common::gatehouse(&all, env).output().unwrap();
        (
            output.status.success(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    };
    let ca = ca.to_str().unwrap();
    for host in ["localhost", "127.0.0.1"] {
        let url = format!("https://{host}:{port}/healthz");
        let (ok, stderr) = healthcheck(&url, &["--ca-file", ca], &[]);
        assert!(ok, "{url}: {stderr}");
        let (ok, stderr) = healthcheck(&url, &[], &[("GATEHOUSE_HEALTHCHECK_CA_FILE", ca)]);
        assert!(ok, "{url}: {stderr}");
        // Without the CA the certificate is not trusted.
        let (ok, stderr) = healthcheck(&url, &[], &[]);
        assert!(!ok, "{url}: trusted without the CA");
        assert!(stderr.contains(&url), "{stderr}");
    }
    // A file without certificates is refused as such.
    let url = format!("https://localhost:{port}/healthz");
    let (ok, stderr) = healthcheck(&url, &["--ca-file", key.to_str().unwrap()], &[]);
    assert!(!ok && stderr.contains("--ca-file"), "{stderr}");
    assert!(common::terminate(auth).success());
}
