//! The real nginx and Caddy (Debian's packages) in front of an upstream, asking the gateway's
//! forward-auth check about every request: the snippets the README gives, run as written.
//! Skipped with a note when a proxy is not installed, unless GATEHOUSE_REQUIRE_PROXIES is set
//! (the test script installs both and sets it).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::{Program as Proxy, free_port};

use common::fakes::{FakeIssuer, Upstream, fake_issuer, upstream};

const ROUTES: &str = r#"
[[route]]
name = "orders"
prefix = "/orders"
upstream = "http://127.0.0.1:9"
methods = ["GET", "POST"]
scopes = { GET = ["orders:read"], POST = ["orders:write"] }

[[route]]
name = "open"
prefix = "/open"
upstream = "http://127.0.0.1:9"
anonymous = true
"#;

/// The proxy's binary, or `None` (and a note) when it is missing and not required.
fn installed(binary: &str) -> Option<&str> {
    if Path::new(binary).exists() {
        return Some(binary);
    }
    assert!(
        std::env::var_os("GATEHOUSE_REQUIRE_PROXIES").is_none(),
        "{binary} is missing (scripts/test installs nginx and caddy)"
    );
    eprintln!("skipped: {binary} is not installed");
    None
}

async fn answering(base: &str, child: &mut Child) {
    let http = reqwest::Client::new();
    for _ in 0..200 {
        if let Some(status) = child.try_wait().unwrap() {
            panic!("the proxy exited ({status})");
        }
        if http.get(format!("{base}/open/ping")).send().await.is_ok() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the proxy did not answer at {base}");
}

async fn nginx(dir: &Path, gateway: &str, upstream: &Upstream) -> Option<Proxy> {
    let binary = installed("/usr/sbin/nginx")?;
    let port = free_port();
    let gateway = gateway.trim_start_matches("http://");
    let upstream = upstream.url.trim_start_matches("http://");
    let temp = dir.join("nginx");
    std::fs::create_dir_all(&temp).unwrap();
    let t = temp.display();
    // The README's snippet, inside a minimal nginx.conf of the test's own.
    let config = format!(
        r#"
worker_processes 1;
pid {t}/nginx.pid;
error_log stderr warn;
events {{ worker_connections 64; }}
http {{
    access_log off;
    client_body_temp_path {t}/body;
    proxy_temp_path {t}/proxy;
    fastcgi_temp_path {t}/fastcgi;
    uwsgi_temp_path {t}/uwsgi;
    scgi_temp_path {t}/scgi;
    server {{
        listen 127.0.0.1:{port};

        location / {{
            auth_request /_gatehouse_check;
            auth_request_set $gatehouse_subject $upstream_http_x_gatehouse_subject;
            auth_request_set $gatehouse_client_id $upstream_http_x_gatehouse_client_id;
            auth_request_set $gatehouse_scopes $upstream_http_x_gatehouse_scopes;
            auth_request_set $gatehouse_roles $upstream_http_x_gatehouse_roles;
            auth_request_set $gatehouse_challenge $upstream_http_www_authenticate;
            add_header WWW-Authenticate $gatehouse_challenge always;
            proxy_set_header X-Gatehouse-Subject $gatehouse_subject;
            proxy_set_header X-Gatehouse-Client-Id $gatehouse_client_id;
            proxy_set_header X-Gatehouse-Scopes $gatehouse_scopes;
            proxy_set_header X-Gatehouse-Roles $gatehouse_roles;
            proxy_pass http://{upstream};
        }}

        location = /_gatehouse_check {{
            internal;
            proxy_pass http://{gateway}/_gatehouse/check;
            proxy_pass_request_body off;
            proxy_set_header Content-Length "";
            proxy_set_header X-Original-Method $request_method;
            proxy_set_header X-Original-URI $request_uri;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
        }}
    }}
}}
"#
    );
    let file = temp.join("nginx.conf");
    std::fs::write(&file, config).unwrap();
    let mut command = Command::new(binary);
    command
        .args(["-p", &t.to_string(), "-c", file.to_str().unwrap()])
        .args(["-g", "daemon off; master_process off;"])
        .stdout(Stdio::null())
        .stderr(Stdio::inherit());
    let mut child = command.spawn().unwrap();
    let base = format!("http://127.0.0.1:{port}");
    answering(&base, &mut child).await;
    Some(Proxy { child, base })
}

async fn caddy(dir: &Path, gateway: &str, upstream: &Upstream) -> Option<Proxy> {
    let binary = installed("/usr/bin/caddy")?;
    let port = free_port();
    let gateway = gateway.trim_start_matches("http://");
    let upstream = upstream.url.trim_start_matches("http://");
    let home = dir.join("caddy");
    std::fs::create_dir_all(&home).unwrap();
    // The README's snippet, inside a Caddyfile of the test's own.
    let config = format!(
        r#"
{{
    admin off
    auto_https off
}}

http://127.0.0.1:{port} {{
    route {{
        request_header -X-Gatehouse-*
        forward_auth {gateway} {{
            uri /_gatehouse/check
            copy_headers X-Gatehouse-Subject X-Gatehouse-Client-Id X-Gatehouse-Scopes X-Gatehouse-Roles
        }}
        reverse_proxy {upstream}
    }}
}}
"#
    );
    let file = home.join("Caddyfile");
    std::fs::write(&file, config).unwrap();
    let mut child = Command::new(binary)
        .args(["run", "--adapter", "caddyfile", "--config"])
        .arg(&file)
        .env("HOME", &home)
        .env("XDG_DATA_HOME", &home)
        .env("XDG_CONFIG_HOME", &home)
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    answering(&base, &mut child).await;
    Some(Proxy { child, base })
}

/// What every proxy must do with the gateway's answers.
async fn behaves(proxy: &Proxy, issuer: &FakeIssuer, upstream: &Upstream) {
    let http = reqwest::Client::new();
    let url = format!("{}/orders/42?expand=lines", proxy.base);
    let before = upstream.count();

    let missing = http.get(&url).send().await.unwrap();
    assert_eq!(missing.status(), 401);
    assert_eq!(
        missing.headers()["www-authenticate"],
        r#"Bearer realm="gatehouse""#
    );
    let forged = http
        .get(&url)
        .bearer_auth("not.a.token")
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 401);
    assert!(
        forged.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .contains(r#"error="invalid_token""#)
    );
    let reader = issuer.token("orders:read");
    let refused = http.post(&url).bearer_auth(&reader).send().await.unwrap();
    assert_eq!(refused.status(), 403);
    assert!(
        refused.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .contains(r#"scope="orders:write""#)
    );
    assert_eq!(
        upstream.count(),
        before,
        "a refused request reached the upstream"
    );

    let allowed = http
        .get(&url)
        .bearer_auth(&reader)
        // Whatever a caller claims about itself is replaced by what the gateway verified.
        .header("x-gatehouse-subject", "someone-else")
        .header("x-gatehouse-scopes", "everything")
        .send()
        .await
        .unwrap();
    assert_eq!(allowed.status(), 200);
    let seen = upstream.last();
    assert_eq!(seen.path_and_query, "/orders/42?expand=lines");
    let claims = issuer.claims("orders:read");
    assert_eq!(seen.headers["x-gatehouse-subject"], claims.sub.as_str());
    assert_eq!(seen.headers["x-gatehouse-scopes"], "orders:read");

    // A token without roles: a caller's own roles header does not pass as verified.
    let forged_roles = http
        .get(&url)
        .bearer_auth(&reader)
        .header("x-gatehouse-roles", "admin")
        .send()
        .await
        .unwrap();
    assert_eq!(forged_roles.status(), 200);
    assert_no_identity(upstream, "x-gatehouse-roles");

    // An open route needs no token, and a caller's identity headers do not pass as verified.
    let open = http
        .get(format!("{}/open/ping", proxy.base))
        .header("x-gatehouse-subject", "someone-else")
        .header("x-gatehouse-roles", "admin")
        .send()
        .await
        .unwrap();
    assert_eq!(open.status(), 200);
    assert_no_identity(upstream, "x-gatehouse-subject");
    assert_no_identity(upstream, "x-gatehouse-roles");
}

/// The last request reached the upstream with nothing in its `name` header: no header, an
/// empty one, or (Caddy 2.6, for a header the check sends empty) the text of Caddy's own
/// placeholder. Never what the caller sent.
fn assert_no_identity(upstream: &Upstream, name: &str) {
    let seen: Vec<String> = upstream
        .last()
        .headers
        .get_all(name)
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect();
    let placeholder = format!("{{http.reverse_proxy.header.{name}}}");
    assert!(
        seen.iter()
            .all(|v| v.is_empty() || v.eq_ignore_ascii_case(&placeholder)),
        "{name} reached the upstream as {seen:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn nginx_and_caddy_ask_the_gateway_and_follow_its_answer() {
    let issuer = fake_issuer().await;
    let upstream = upstream().await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("gateway.toml");
    std::fs::write(
        &config,
        format!(
            "[gateway]\nissuer = \"{}\"\nfeed_client_id = \"gw\"\n{ROUTES}",
            issuer.url
        ),
    )
    .unwrap();
    let gateway = common::start_gateway(
        &config,
        &[("GATEHOUSE_GATEWAY_CLIENT_SECRET", "feed-secret")],
    );
    if let Some(proxy) = nginx(dir.path(), &gateway.base, &upstream).await {
        behaves(&proxy, &issuer, &upstream).await;
    }
    if let Some(proxy) = caddy(dir.path(), &gateway.base, &upstream).await {
        behaves(&proxy, &issuer, &upstream).await;
    }
}
