//! HTTPS on the real binary, with certificates made here: the authorization server and the
//! gateway over TLS (HTTP/2 by ALPN, HTTP/1.1 otherwise), the gateway calling `https://`
//! upstreams it trusts and refusing those it does not, a truthful `X-Forwarded-Proto`, the
//! toolkit against an `https://` issuer, and certificates swapped by SIGHUP without dropping an
//! open connection.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::{Path, PathBuf};

use axum::Router;
use common::fakes::upstream;
use gatehouse_sdk::{TokenVerifier, VerifierSettings};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};

/// A certificate authority of the test's own.
struct Authority {
    issuer: Issuer<'static, KeyPair>,
    pem: String,
}

impl Authority {
    fn new(name: &str) -> Self {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        let pem = params.self_signed(&key).unwrap().pem();
        Self {
            issuer: Issuer::new(params, key),
            pem,
        }
    }

    /// A server certificate for localhost and 127.0.0.1: (chain file, key file) in `dir`.
    fn server_files(&self, dir: &Path, prefix: &str) -> (PathBuf, PathBuf) {
        let key = KeyPair::generate().unwrap();
        let params =
            CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()]).unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        let (cert_file, key_file) = (
            dir.join(format!("{prefix}.crt")),
            dir.join(format!("{prefix}.key")),
        );
        std::fs::write(&cert_file, cert.pem()).unwrap();
        std::fs::write(&key_file, key.serialize_pem()).unwrap();
        (cert_file, key_file)
    }

    fn write(&self, dir: &Path, name: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, &self.pem).unwrap();
        path
    }

    /// An HTTP client trusting this authority alone (no system roots).
    fn client(&self, http1_only: bool) -> reqwest::Client {
        let mut builder = reqwest::Client::builder()
            .tls_certs_only([reqwest::Certificate::from_pem(self.pem.as_bytes()).unwrap()]);
        if http1_only {
            builder = builder.http1_only();
        }
        builder.build().unwrap()
    }
}

fn https(url: &str) -> String {
    url.replacen("http://", "https://", 1)
}

/// An upstream over TLS with the given files: answers 200 with the `x-forwarded-proto` it got.
async fn tls_upstream(cert_file: PathBuf, key_file: PathBuf) -> String {
    let tls = gatehouse_listen::Tls::load(gatehouse_listen::TlsFiles {
        cert_file,
        key_file,
    })
    .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!(
        "https://localhost:{}",
        listener.local_addr().unwrap().port()
    );
    let app = Router::new().fallback(|headers: axum::http::HeaderMap| async move {
        let proto = headers
            .get("x-forwarded-proto")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        format!("secure upstream; forwarded proto {proto}")
    });
    tokio::spawn(gatehouse_listen::serve_tls(
        listener,
        "upstream",
        app,
        gatehouse_listen::Connections::default(),
        Some(tls),
        std::future::pending(),
    ));
    url
}

#[tokio::test(flavor = "multi_thread")]
async fn the_server_the_gateway_and_the_toolkit_over_tls() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Authority::new("Gatehouse test CA");
    let stranger = Authority::new("Someone else's CA");
    let ca_file = ca.write(dir.path(), "ca.pem");
    let (cert, key) = ca.server_files(dir.path(), "server");
    let data = dir.path().join("data");
    let auth = common::start(
        &["auth", "--data-dir", data.to_str().unwrap()],
        &[
            ("GATEHOUSE_TLS__CERT_FILE", cert.to_str().unwrap()),
            ("GATEHOUSE_TLS__KEY_FILE", key.to_str().unwrap()),
        ],
    );
    let base = https(&auth.base);

    // HTTP/2 by ALPN for a client that offers it, HTTP/1.1 for one that does not.
    let h2 = ca.client(false);
    let discovery = h2
        .get(format!("{base}/.well-known/openid-configuration"))
        .send()
        .await
        .unwrap();
    assert_eq!(discovery.version(), reqwest::Version::HTTP_2);
    let metadata: serde_json::Value = discovery.json().await.unwrap();
    assert_eq!(
        metadata["issuer"],
        base.as_str(),
        "the derived issuer is https"
    );
    assert!(
        metadata["token_endpoint"]
            .as_str()
            .unwrap()
            .starts_with("https://")
    );
    let h1 = ca.client(true);
    let health = h1.get(format!("{base}/healthz")).send().await.unwrap();
    assert_eq!(health.version(), reqwest::Version::HTTP_11);
    assert_eq!(health.status(), 200);
    // Plain HTTP on the TLS port gets no answer; a client that trusts another CA, no connection.
    assert!(
        reqwest::get(format!("{}/healthz", auth.base))
            .await
            .is_err()
    );
    assert!(
        stranger
            .client(false)
            .get(format!("{base}/healthz"))
            .send()
            .await
            .is_err()
    );

    // The toolkit reaches the https issuer with a client that trusts its CA.
    let (id, secret) = common::register(&h1, &base, "rates:read").await;
    let token = common::client_token(&h1, &base, &id, &secret).await;
    let toolkit = TokenVerifier::connect(VerifierSettings {
        http: Some(ca.client(false)),
        ..VerifierSettings::new(&base)
    })
    .await
    .unwrap();
    assert_eq!(toolkit.verify(&token).await.unwrap().claims.client_id, id);
    assert!(
        TokenVerifier::connect(VerifierSettings {
            http: Some(stranger.client(false)),
            ..VerifierSettings::new(&base)
        })
        .await
        .is_err(),
        "an issuer whose certificate is not trusted is not believed"
    );

    // A gateway over TLS, trusting the CA for its issuer and its https:// upstreams.
    let plain = upstream().await;
    let (up_cert, up_key) = ca.server_files(dir.path(), "upstream");
    let secure = tls_upstream(up_cert, up_key).await;
    let (odd_cert, odd_key) = stranger.server_files(dir.path(), "odd");
    let untrusted = tls_upstream(odd_cert, odd_key).await;
    let (gw_cert, gw_key) = ca.server_files(dir.path(), "gateway");
    let config = dir.path().join("gateway.toml");
    std::fs::write(
        &config,
        format!(
            r#"[gateway]
issuer = "{base}"
ca_file = "{ca}"

[gateway.tls]
cert_file = "{gw_cert}"
key_file = "{gw_key}"

[[route]]
prefix = "/plain"
upstream = "{plain}"
scopes = {{ "*" = ["rates:read"] }}

[[route]]
prefix = "/secure"
upstream = "{secure}"
scopes = {{ "*" = ["rates:read"] }}

[[route]]
prefix = "/untrusted"
upstream = "{untrusted}"
scopes = {{ "*" = ["rates:read"] }}
"#,
            ca = ca_file.display(),
            gw_cert = gw_cert.display(),
            gw_key = gw_key.display(),
            plain = plain.url,
        ),
    )
    .unwrap();
    let gateway = common::start_gateway(&config, &[]);
    let gateway_base = https(&gateway.base);
    let get = |path: &str| {
        h2.get(format!("{gateway_base}{path}"))
            .bearer_auth(&token)
            .send()
    };

    let answer = get("/plain/x").await.unwrap();
    assert_eq!(answer.version(), reqwest::Version::HTTP_2);
    assert_eq!(answer.status(), 200);
    let seen = plain.last();
    assert_eq!(seen.headers["x-forwarded-proto"], "https");
    assert!(seen.headers.get("x-gatehouse-client-id").is_some());

    let answer = get("/secure/y").await.unwrap();
    assert_eq!(answer.status(), 200);
    assert_eq!(
        answer.text().await.unwrap(),
        "secure upstream; forwarded proto https"
    );
    let refused = get("/untrusted/z").await.unwrap();
    assert_eq!(refused.status(), 502, "an upstream certified by a stranger");
    let without_token = h2
        .get(format!("{gateway_base}/plain/x"))
        .send()
        .await
        .unwrap();
    assert_eq!(without_token.status(), 401);
}

#[tokio::test(flavor = "multi_thread")]
async fn sighup_swaps_the_certificate_and_open_connections_stay() {
    let dir = tempfile::tempdir().unwrap();
    let first = Authority::new("First CA");
    let second = Authority::new("Second CA");
    let (cert, key) = first.server_files(dir.path(), "live");
    let data = dir.path().join("data");
    let auth = common::start(
        &["auth", "--data-dir", data.to_str().unwrap()],
        &[
            ("GATEHOUSE_TLS__CERT_FILE", cert.to_str().unwrap()),
            ("GATEHOUSE_TLS__KEY_FILE", key.to_str().unwrap()),
        ],
    );
    let base = https(&auth.base);
    let healthz = format!("{base}/healthz");
    // One HTTP/2 connection, trusting the first CA only: kept open across the swap.
    let kept = first.client(false);
    assert_eq!(kept.get(&healthz).send().await.unwrap().status(), 200);
    let newcomer = second.client(false);
    assert!(newcomer.get(&healthz).send().await.is_err());

    let (next_cert, next_key) = second.server_files(dir.path(), "next");
    std::fs::copy(&next_cert, &cert).unwrap();
    std::fs::copy(&next_key, &key).unwrap();
    common::signal(&auth, "-HUP");
    common::within_a_second("new connections getting the new certificate", || async {
        second
            .client(false)
            .get(&healthz)
            .send()
            .await
            .is_ok_and(|r| r.status() == 200)
    })
    .await;
    // The open connection still answers (a new one would meet a certificate it distrusts).
    assert_eq!(kept.get(&healthz).send().await.unwrap().status(), 200);
    assert!(first.client(false).get(&healthz).send().await.is_err());

    // A broken file is refused and the certificate in force stays; the node keeps running.
    std::fs::write(&cert, "not a certificate").unwrap();
    common::signal(&auth, "-HUP");
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(
        second
            .client(false)
            .get(&healthz)
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(common::terminate(auth).code(), Some(0));
}

#[test]
fn unusable_tls_files_stop_the_start_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Authority::new("CA");
    let other = Authority::new("Other");
    let (cert, _) = ca.server_files(dir.path(), "a");
    let (_, wrong_key) = other.server_files(dir.path(), "b");
    let data = dir.path().join("data");
    let output = common::gatehouse(
        &[
            "auth",
            "--auth-listen",
            "127.0.0.1:0",
            "--data-dir",
            data.to_str().unwrap(),
        ],
        &[
            ("GATEHOUSE_TLS__CERT_FILE", cert.to_str().unwrap()),
            ("GATEHOUSE_TLS__KEY_FILE", wrong_key.to_str().unwrap()),
        ],
    )
    .output()
    .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("does not belong"), "{stderr}");
    assert!(!stderr.contains("PRIVATE KEY"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread")]
async fn serve_with_tls_runs_every_part_over_https() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Authority::new("Serve CA");
    let (cert, key) = ca.server_files(dir.path(), "serve");
    let ca_file = ca.write(dir.path(), "ca.pem");
    let data = dir.path().join("data");
    let node = common::start(
        &["serve", "--data-dir", data.to_str().unwrap()],
        &[
            ("GATEHOUSE_TLS__CERT_FILE", cert.to_str().unwrap()),
            ("GATEHOUSE_TLS__KEY_FILE", key.to_str().unwrap()),
            ("GATEHOUSE_TLS__CA_FILE", ca_file.to_str().unwrap()),
        ],
    );
    let (base, gateway) = (https(&node.base), https(node.gateway.as_deref().unwrap()));
    let http = ca.client(false);
    let (id, secret) = common::register(&http, &base, "rates:read").await;
    let token = common::client_token(&http, &base, &id, &secret).await;
    let rates = http
        .get(format!("{gateway}/api/rates"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(
        rates.status(),
        200,
        "the built-in gateway trusts its own issuer"
    );
    assert_eq!(rates.version(), reqwest::Version::HTTP_2);
    let shop = http.get(format!("{gateway}/shop/")).send().await.unwrap();
    assert_eq!(shop.status(), 200);
    // Signing in to the shop starts at the authorization endpoint, over https.
    let no_redirects = reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(ca.pem.as_bytes()).unwrap()])
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let sign_in = no_redirects
        .get(format!("{gateway}/shop/signin"))
        .send()
        .await
        .unwrap();
    let location = sign_in
        .headers()
        .get("location")
        .map(|l| l.to_str().unwrap().to_owned())
        .unwrap_or_default();
    assert!(
        location.starts_with(&format!("{base}/oauth2/authorize?")),
        "{} {location}",
        sign_in.status()
    );
}
