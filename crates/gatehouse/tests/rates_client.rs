//! `gatehouse rates-client`, the reference machine client, against a real `gatehouse serve`:
//! it registers itself, reads the rates through the gateway, and rides out the server being
//! down (before it ever started, and across a restart) without exiting.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use serde_json::Value;

use common::free_port;

/// Starts `gatehouse ARGS` and waits until it is ready.
fn spawn(args: &[&str]) -> common::Running {
    let mut command = common::gatehouse(
        args,
        &[
            ("GATEHOUSE_ADMIN_USERNAME", "root"),
            ("GATEHOUSE_ADMIN_PASSWORD", "root-password-1"),
        ],
    );
    command.env("GATEHOUSE_LOG", "error");
    common::spawn_ready(command)
}

fn serve(data: &str, auth: u16, gateway: u16) -> common::Running {
    let auth_listen = format!("127.0.0.1:{auth}");
    let gateway_listen = format!("127.0.0.1:{gateway}");
    spawn(&[
        "serve",
        "--data-dir",
        data,
        "--auth-listen",
        &auth_listen,
        "--gateway-listen",
        &gateway_listen,
        "--apps-ports-from",
        "0",
    ])
}

async fn status(http: &reqwest::Client, url: &str) -> Value {
    http.get(url).send().await.unwrap().json().await.unwrap()
}

/// Polls `/status` until `check` holds, for at most `limit`.
async fn wait_for(
    http: &reqwest::Client,
    url: &str,
    limit: Duration,
    what: &str,
    check: impl Fn(&Value) -> bool,
) -> Value {
    let started = std::time::Instant::now();
    loop {
        let now = status(http, url).await;
        if check(&now) {
            return now;
        }
        assert!(started.elapsed() < limit, "{what}: still {now}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_machine_client_registers_reads_rates_and_survives_the_server_going_away() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let data = data.to_str().unwrap();
    let credentials = dir.path().join("client/credentials.json");
    let (auth, gateway) = (free_port(), free_port());
    let issuer = format!("http://127.0.0.1:{auth}");
    let gateway_url = format!("http://127.0.0.1:{gateway}");

    // The client starts first, while nothing is listening: it waits and says why.
    let mut client = spawn(&[
        "rates-client",
        "--issuer",
        &issuer,
        "--gateway",
        &gateway_url,
        "--listen",
        "127.0.0.1:0",
        "--credentials",
        credentials.to_str().unwrap(),
        "--poll-secs",
        "1",
    ]);
    let status_url = client.base.clone();
    let http = reqwest::Client::new();
    let early = wait_for(
        &http,
        &status_url,
        Duration::from_secs(10),
        "reporting the failed registration",
        |s| {
            s["registered"] == false
                && s["last_poll_outcome"]
                    .as_str()
                    .is_some_and(|o| o.contains("cannot register"))
        },
    )
    .await;
    assert!(early["client_id"].is_null());
    let currencies = http
        .get(status_url.replace("/status", "/currencies"))
        .send()
        .await
        .unwrap();
    assert_eq!(currencies.status(), 503);

    let server = serve(data, auth, gateway);
    let ready = wait_for(
        &http,
        &status_url,
        Duration::from_secs(20),
        "registering and reading",
        |s| s["last_poll_outcome"] == "ok",
    )
    .await;
    let client_id = ready["client_id"].as_str().unwrap().to_owned();
    assert!(ready["token_expires_in_secs"].as_u64().unwrap() > 0);
    let stored: Value =
        serde_json::from_str(&std::fs::read_to_string(&credentials).unwrap()).unwrap();
    assert_eq!(stored["client_id"], client_id.as_str());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&credentials)
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o600);
    }
    let snapshot: Value = http
        .get(status_url.replace("/status", "/currencies"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let symbols: Vec<&str> = snapshot
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["symbol"].as_str().unwrap())
        .collect();
    assert_eq!(symbols, ["BTC", "ETH", "SOL"]);

    // The server goes away: the client reports it and keeps running.
    assert!(common::terminate(server).success());
    wait_for(
        &http,
        &status_url,
        Duration::from_secs(10),
        "reporting the outage",
        |s| s["consecutive_failures"].as_u64().unwrap_or(0) > 0,
    )
    .await;
    assert!(
        client.child.try_wait().unwrap().is_none(),
        "the client exited"
    );

    // Back on the same data: the same registration works again.
    let _server = serve(data, auth, gateway);
    let recovered = wait_for(
        &http,
        &status_url,
        Duration::from_secs(20),
        "recovering",
        |s| s["last_poll_outcome"] == "ok" && s["consecutive_failures"] == 0,
    )
    .await;
    assert_eq!(recovered["client_id"], client_id.as_str());
    assert!(client.child.try_wait().unwrap().is_none());

    // The server forgets the client (deleted by an administrator): it registers again. Its
    // cached token is revoked too, so the next poll meets the unknown client.
    let admin = common::login(&http, &issuer, "root", "root-password-1").await;
    let deleted = http
        .delete(format!("{issuer}/admin/clients/{client_id}"))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), 204);
    let again = wait_for(
        &http,
        &status_url,
        Duration::from_secs(30),
        "registering again",
        |s| {
            s["registered"] == true
                && s["client_id"].as_str().is_some_and(|id| id != client_id)
                && s["last_poll_outcome"] == "ok"
        },
    )
    .await;
    let stored: Value =
        serde_json::from_str(&std::fs::read_to_string(&credentials).unwrap()).unwrap();
    assert_eq!(stored["client_id"], again["client_id"]);
    assert!(client.child.try_wait().unwrap().is_none());
}

/// The `csrf_token` the status page's forms carry.
fn csrf_of(page: &str) -> String {
    let marker = r#"name="csrf_token" value=""#;
    let start = page.find(marker).unwrap() + marker.len();
    page[start..start + page[start..].find('"').unwrap()].to_owned()
}

async fn page(http: &reqwest::Client, url: &str) -> reqwest::Response {
    http.get(url)
        .header("accept", "text/html,application/xhtml+xml,*/*;q=0.8")
        .send()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_status_page_shows_the_client_and_its_actions_work_only_from_it_or_as_json() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let credentials = dir.path().join("client/credentials.json");
    let (auth, gateway) = (free_port(), free_port());
    let issuer = format!("http://127.0.0.1:{auth}");
    let gateway_url = format!("http://127.0.0.1:{gateway}");
    let _server = serve(data.to_str().unwrap(), auth, gateway);
    let client = spawn(&[
        "rates-client",
        "--issuer",
        &issuer,
        "--gateway",
        &gateway_url,
        "--listen",
        "127.0.0.1:0",
        "--credentials",
        credentials.to_str().unwrap(),
        "--poll-secs",
        "1",
    ]);
    let base = client.base.trim_end_matches("/status").to_owned();
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let status_url = format!("{base}/status");
    let ready = wait_for(
        &http,
        &status_url,
        Duration::from_secs(20),
        "registering and reading",
        |s| s["last_poll_outcome"] == "ok",
    )
    .await;
    let client_id = ready["client_id"].as_str().unwrap().to_owned();
    assert_eq!(ready["scope"], "rates:read");
    assert!(ready["registered_at"].as_str().is_some());
    let poll = &ready["recent_polls"][0];
    assert_eq!(poll["outcome"], "ok");
    assert!(poll["latency_ms"].is_u64());

    // Programs get the JSON status at / as before; browsers get the page.
    let json: Value = http
        .get(format!("{base}/"))
        .header("accept", "application/json")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(json["client_id"], client_id.as_str());
    let response = page(&http, &format!("{base}/")).await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-security-policy"],
        "default-src 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'"
    );
    let html = response.text().await.unwrap();
    let stored: Value =
        serde_json::from_str(&std::fs::read_to_string(&credentials).unwrap()).unwrap();
    let secret = stored["client_secret"].as_str().unwrap();
    assert!(html.contains(&client_id), "the page names the client");
    assert!(!html.contains(secret), "the page shows the secret");
    assert!(html.contains("rates:read"));
    assert!(html.contains(r#"id="rates""#) && html.contains(">BTC</a>"));
    assert!(html.contains(r#"id="polls""#));
    assert!(!html.contains("<script"));
    let css = http
        .get(format!("{base}/assets/gatehouse.css"))
        .send()
        .await
        .unwrap();
    assert_eq!(css.status(), 200);
    assert!(
        css.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/css")
    );

    // One currency, case-insensitively; an unknown or malformed one is refused.
    let btc: Value = http
        .get(format!("{base}/currencies/btc"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(btc["symbol"], "BTC");
    assert!(btc["rate"].is_string());
    let unknown = http
        .get(format!("{base}/currencies/XYZ"))
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), 404);
    assert_eq!(
        unknown.headers()["content-type"],
        "application/problem+json"
    );
    let malformed = http
        .get(format!("{base}/currencies/B%20TC"))
        .send()
        .await
        .unwrap();
    assert_eq!(malformed.status(), 400);

    // Reachability of both servers, with what each answered.
    let check: Value = http
        .get(format!("{base}/test-server"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(check["authorization_server"]["reachable"], true);
    assert_eq!(check["authorization_server"]["status"], 200);
    assert_eq!(check["gateway"]["reachable"], true);
    assert_eq!(check["gateway"]["status"], 401);

    // Forged or malformed action requests change nothing.
    let csrf = csrf_of(&html);
    let login = format!("{base}/login");
    let refused = [
        http.post(&login).form(&[("csrf_token", "wrong")]),
        http.post(&login).form(&[("other", "x")]),
        http.post(&login)
            .header("origin", "http://evil.example")
            .form(&[("csrf_token", csrf.as_str())]),
        http.post(&login)
            .header("sec-fetch-site", "cross-site")
            .json(&serde_json::json!({})),
    ];
    for (i, request) in refused.into_iter().enumerate() {
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 403);
        let content_type = response.headers()["content-type"]
            .to_str()
            .unwrap()
            .to_owned();
        let body = response.text().await.unwrap();
        if i < 3 {
            // A form: the page again, saying why.
            assert!(content_type.starts_with("text/html"), "{content_type}");
            assert!(body.contains("did not come from this page"), "{body}");
        } else {
            assert_eq!(content_type, "application/problem+json");
        }
    }
    let plain = http
        .post(&login)
        .header("content-type", "text/plain")
        .body("csrf_token=x")
        .send()
        .await
        .unwrap();
    assert_eq!(plain.status(), 415);
    assert_eq!(
        status(&http, &status_url).await["client_id"],
        client_id.as_str()
    );

    // A new token: from the page's form (back to the page, which says so) and as JSON.
    let from_page = http
        .post(&login)
        .header("origin", base.as_str())
        .form(&[("csrf_token", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(from_page.status(), 303);
    assert_eq!(from_page.headers()["location"], "/?done=login");
    let after = page(&http, &format!("{base}/?done=login"))
        .await
        .text()
        .await
        .unwrap();
    assert!(
        after.contains(r#"id="notice""#) && after.contains("New token"),
        "{after}"
    );
    let by_program: Value = http
        .post(&login)
        .json(&serde_json::json!({}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(by_program["action"], "login");
    assert!(
        by_program["outcome"]
            .as_str()
            .unwrap()
            .starts_with("new token")
    );
    assert_eq!(by_program["client_id"], client_id.as_str());

    // Registering again: a new client, the old one deleted at the server, polls go on.
    let again = http
        .post(format!("{base}/register"))
        .json(&serde_json::json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 200);
    let again: Value = again.json().await.unwrap();
    let new_id = again["client_id"].as_str().unwrap().to_owned();
    assert_ne!(new_id, client_id);
    assert!(
        again["outcome"].as_str().unwrap().contains("was deleted"),
        "{again}"
    );
    let stored: Value =
        serde_json::from_str(&std::fs::read_to_string(&credentials).unwrap()).unwrap();
    assert_eq!(stored["client_id"], new_id.as_str());
    let admin = common::login(&http, &issuer, "root", "root-password-1").await;
    let old = http
        .get(format!("{issuer}/admin/clients/{client_id}"))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(old.status(), 404);
    let new = http
        .get(format!("{issuer}/admin/clients/{new_id}"))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(new.status(), 200);
    wait_for(
        &http,
        &status_url,
        Duration::from_secs(20),
        "polling as the new client",
        |s| {
            s["client_id"] == new_id.as_str()
                && s["last_poll_outcome"] == "ok"
                && s["recent_polls"][0]["outcome"] == "ok"
        },
    )
    .await;

    // Its own API document, and a docs page for it.
    let doc: Value = http
        .get(format!("{base}/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    for path in [
        "/",
        "/status",
        "/currencies",
        "/currencies/{symbol}",
        "/register",
        "/login",
        "/test-server",
    ] {
        assert!(doc["paths"].get(path).is_some(), "{path} missing");
    }
    let docs = http.get(format!("{base}/docs/")).send().await.unwrap();
    assert_eq!(docs.status(), 200);
    assert!(
        docs.text()
            .await
            .unwrap()
            .contains("swagger-initializer.js")
    );
    let initializer = http
        .get(format!("{base}/docs/swagger-initializer.js"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(initializer.contains("\"/openapi.json\""), "{initializer}");
}

/// Whether the page overflows sideways, and the smallest button's height in CSS pixels.
async fn layout(browser: &gatehouse_testkit::browser::Browser) -> (bool, f64) {
    let measured = browser
        .client()
        .execute(
            "const buttons = [...document.querySelectorAll('button')]; \
             return [document.documentElement.scrollWidth > window.innerWidth + 1, \
                     Math.min(...buttons.map(b => b.getBoundingClientRect().height))];",
            vec![],
        )
        .await
        .unwrap();
    (
        measured[0].as_bool().unwrap(),
        measured[1].as_f64().unwrap(),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn the_status_page_in_chromium() {
    let Some(browser) = gatehouse_testkit::browser::Browser::start().await.unwrap() else {
        eprintln!("no Chromium: the status page test is skipped");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let credentials = dir.path().join("credentials.json");
    let (auth, gateway) = (free_port(), free_port());
    let issuer = format!("http://127.0.0.1:{auth}");
    let gateway_url = format!("http://127.0.0.1:{gateway}");
    let _server = serve(data.to_str().unwrap(), auth, gateway);
    let client = spawn(&[
        "rates-client",
        "--issuer",
        &issuer,
        "--gateway",
        &gateway_url,
        "--listen",
        "127.0.0.1:0",
        "--credentials",
        credentials.to_str().unwrap(),
        "--poll-secs",
        "1",
    ]);
    let base = client.base.trim_end_matches("/status").to_owned();
    let http = reqwest::Client::new();
    let ready = wait_for(
        &http,
        &client.base,
        Duration::from_secs(20),
        "registering and reading",
        |s| s["last_poll_outcome"] == "ok",
    )
    .await;
    let client_id = ready["client_id"].as_str().unwrap().to_owned();

    browser.goto(&format!("{base}/")).await.unwrap();
    assert_eq!(browser.text_of("#client-id").await.unwrap(), client_id);
    assert_eq!(browser.text_of("#scope").await.unwrap(), "rates:read");
    let rates = browser.text_of("#rates").await.unwrap();
    assert!(rates.contains("BTC") && rates.contains("ETH"), "{rates}");
    browser
        .screenshot("rates-client-status-1280")
        .await
        .unwrap();
    let (overflow, smallest) = layout(&browser).await;
    assert!(!overflow, "the status page overflows at 1280 px");
    assert!(smallest >= 40.0, "a button is {smallest} px high");

    // The page's own button works in a real browser (its same-origin check and token pass).
    browser.click("#login").await.unwrap();
    let notice = browser.text_of("#notice").await.unwrap();
    assert!(notice.starts_with("New token"), "{notice}");
    assert!(
        browser
            .current_url()
            .await
            .unwrap()
            .ends_with("/?done=login")
    );

    browser.set_window_size(390, 844).await.unwrap();
    browser.goto(&format!("{base}/")).await.unwrap();
    browser.find("#rates").await.unwrap();
    browser.screenshot("rates-client-status-390").await.unwrap();
    let (overflow, smallest) = layout(&browser).await;
    assert!(!overflow, "the status page overflows at 390 px");
    assert!(smallest >= 40.0, "a button is {smallest} px high");
    browser.close().await.unwrap();
}
