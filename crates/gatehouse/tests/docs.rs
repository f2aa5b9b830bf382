//! The API docs through the gateway of a real `gatehouse serve`: one Swagger UI listing the
//! server's and every app's OpenAPI document, a ReDoc page per document, all from the gateway's
//! origin, under a docs policy that still allows scripts from that origin only. Then the same
//! pages in a headless Chromium: every document renders in Swagger UI, and a ReDoc page renders,
//! with screenshots in `target/screenshots/docs-*.png`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::{Duration, Instant};

use gatehouse_testkit::browser::Browser;
use serde_json::Value;

/// The documents the docs list, by name, in order.
const DOCUMENTS: [(&str, &str); 6] = [
    ("server", "/openapi.json"),
    ("rates", "/api/rates/openapi.json"),
    ("fx", "/api/fx/openapi.json"),
    ("messages", "/api/messages/openapi.json"),
    ("orders", "/api/orders/openapi.json"),
    ("posts", "/api/posts/openapi.json"),
];

struct Node {
    server: common::Running,
    gateway: String,
    http: reqwest::Client,
    _dir: tempfile::TempDir,
}

fn node() -> Node {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = common::start(
        &["serve", "--data-dir", data.to_str().unwrap()],
        &[
            ("GATEHOUSE_ADMIN_USERNAME", "root"),
            ("GATEHOUSE_ADMIN_PASSWORD", "root-password-1"),
        ],
    );
    let gateway = server.gateway.clone().unwrap();
    Node {
        server,
        gateway,
        http: reqwest::Client::new(),
        _dir: dir,
    }
}

impl Node {
    async fn get(&self, path: &str) -> reqwest::Response {
        self.http
            .get(format!("{}{path}", self.gateway))
            .send()
            .await
            .unwrap()
    }

    /// The title of a document, as the viewers show it.
    async fn title_of(&self, path: &str) -> String {
        let doc: Value = self.get(path).await.json().await.unwrap();
        doc["info"]["title"].as_str().unwrap().to_owned()
    }
}

fn header<'a>(response: &'a reqwest::Response, name: &str) -> &'a str {
    response
        .headers()
        .get(name)
        .map(|v| v.to_str().unwrap())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_gateway_serves_swagger_ui_redoc_and_every_listed_document() {
    let node = node();

    // /docs leads to Swagger UI, a page of the gateway's origin.
    let redirect = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .get(format!("{}/docs", node.gateway))
        .send()
        .await
        .unwrap();
    assert_eq!(redirect.status(), 303);
    assert_eq!(header(&redirect, "location"), "/docs/");
    let page = node.get("/docs/").await;
    assert_eq!(page.status(), 200);
    let csp = header(&page, "content-security-policy").to_owned();
    assert!(csp.contains("script-src 'self';"), "{csp}");
    assert!(!csp.contains("unsafe-eval"), "{csp}");
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    assert_eq!(header(&page, "x-frame-options"), "DENY");
    let html = page.text().await.unwrap();
    assert!(html.contains(r#"<script src="/docs/swagger-initializer.js">"#));
    assert!(!html.contains("<script>"), "no inline script");
    for (name, _) in DOCUMENTS {
        assert!(
            html.contains(&format!(r#"href="/docs/redoc/{name}""#)),
            "no ReDoc link for {name}"
        );
    }

    // Swagger UI's start-up script lists every document, in order, by its path on this origin.
    let initializer = node.get("/docs/swagger-initializer.js").await;
    assert_eq!(initializer.status(), 200);
    let script = initializer.text().await.unwrap();
    let mut from = 0;
    for (name, path) in DOCUMENTS {
        let entry = format!("\"name\": \"{name}\",\n      \"url\": \"{path}\"");
        let at = script[from..]
            .find(&entry)
            .unwrap_or_else(|| panic!("{name} missing or out of order in {script}"));
        from += at + entry.len();
    }
    for file in [
        "swagger-ui.css",
        "swagger-ui-bundle.js",
        "swagger-ui-standalone-preset.js",
    ] {
        let response = node.get(&format!("/docs/{file}")).await;
        assert_eq!(response.status(), 200, "{file}");
        assert!(!response.bytes().await.unwrap().is_empty(), "{file}");
    }

    // Every listed document loads from the gateway, anonymously.
    for (name, path) in DOCUMENTS {
        let response = node.get(path).await;
        assert_eq!(response.status(), 200, "{name}");
        assert!(header(&response, "content-type").starts_with("application/json"));
        let doc: Value = response.json().await.unwrap();
        assert!(doc["openapi"].as_str().unwrap().starts_with("3."), "{name}");
        assert!(!doc["paths"].as_object().unwrap().is_empty(), "{name}");
    }

    // A ReDoc page per document, with ReDoc from this origin.
    for (name, path) in DOCUMENTS {
        let response = node.get(&format!("/docs/redoc/{name}")).await;
        assert_eq!(response.status(), 200, "{name}");
        assert!(header(&response, "content-security-policy").contains("worker-src 'self' blob:"));
        let html = response.text().await.unwrap();
        assert!(
            html.contains(&format!(r#"<redoc spec-url="{path}">"#)),
            "{html}"
        );
        assert!(html.contains(r#"<script src="/docs/redoc.standalone.js">"#));
    }
    let redoc = node.get("/docs/redoc.standalone.js").await;
    assert_eq!(redoc.status(), 200);
    assert!(header(&redoc, "content-type").starts_with("text/javascript"));
    assert!(redoc.text().await.unwrap().contains("Redoc"));
    let unknown = node.get("/docs/redoc/nothing-here").await;
    assert_eq!(unknown.status(), 404);
    assert_eq!(header(&unknown, "content-type"), "application/problem+json");
    let outside = node.get("/docs/%2e%2e/Cargo.toml").await;
    assert_eq!(outside.status(), 404);

    // The docs routes reach the server's docs and document only: what lies below the document
    // is the server's 404, and other server paths stay off the gateway.
    assert_eq!(node.get("/openapi.json/anything").await.status(), 404);
    assert_eq!(node.get("/admin/clients").await.status(), 404);

    // The looser policy is the docs' alone: the sign-in page keeps the strict one.
    let signin = node
        .http
        .get(format!("{}/signin", node.server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(
        header(&signin, "content-security-policy"),
        gatehouse_look_strict_csp()
    );
}

/// The sign-in pages' policy, as `gatehouse_look::STRICT_CSP` has it.
fn gatehouse_look_strict_csp() -> &'static str {
    "default-src 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'"
}

/// How long a viewer may take to fetch and draw a document.
const RENDER_TIMEOUT: Duration = Duration::from_secs(20);

/// Waits until `script` (which returns a string) returns `expected`.
async fn wait_for_text(browser: &Browser, what: &str, script: &str, expected: &str) {
    let started = Instant::now();
    loop {
        let got = browser
            .client()
            .execute(script, vec![])
            .await
            .unwrap_or(Value::Null);
        if got.as_str() == Some(expected) {
            return;
        }
        if started.elapsed() > RENDER_TIMEOUT {
            let _ = browser.screenshot(&format!("docs-failed-{what}")).await;
            panic!("{what}: wanted {expected:?}, the page shows {got}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The title Swagger UI shows for the document it has drawn.
const SWAGGER_TITLE: &str = "const t = document.querySelector('.swagger-ui .info .title'); \
     return t ? t.childNodes[0].textContent.trim() : null;";

/// Whether the page overflows sideways.
async fn overflows(browser: &Browser) -> bool {
    browser
        .client()
        .execute(
            "return document.documentElement.scrollWidth > window.innerWidth + 1;",
            vec![],
        )
        .await
        .unwrap()
        .as_bool()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn swagger_ui_renders_every_document_and_redoc_renders_in_chromium() {
    let Some(browser) = Browser::start().await.unwrap() else {
        eprintln!("no Chromium: the docs page test is skipped");
        return;
    };
    let node = node();
    let mut titles = Vec::new();
    for (name, path) in DOCUMENTS {
        titles.push((name, node.title_of(path).await));
    }

    // The first document is shown first; each other one is picked in the selector.
    browser
        .goto(&format!("{}/docs/", node.gateway))
        .await
        .unwrap();
    wait_for_text(&browser, "server", SWAGGER_TITLE, &titles[0].1).await;
    browser
        .screenshot("docs-swagger-server-1280")
        .await
        .unwrap();
    for (name, title) in &titles[1..] {
        let selector = browser.find("select#select").await.unwrap();
        selector
            .select_by_value(&format!("/api/{name}/openapi.json"))
            .await
            .unwrap();
        wait_for_text(&browser, name, SWAGGER_TITLE, title).await;
        browser
            .screenshot(&format!("docs-swagger-{name}-1280"))
            .await
            .unwrap();
    }
    // And by address, as a link would.
    browser
        .goto(&format!("{}/docs/?urls.primaryName=posts", node.gateway))
        .await
        .unwrap();
    wait_for_text(&browser, "posts by address", SWAGGER_TITLE, &titles[5].1).await;

    // ReDoc draws a document, from this origin, with its worker.
    browser
        .goto(&format!("{}/docs/redoc/rates", node.gateway))
        .await
        .unwrap();
    let redoc_title = "const t = document.querySelector('redoc h1, .api-info h1, h1'); \
         return t ? t.textContent.trim() : null;";
    let rates_title = &titles[1].1;
    let started = Instant::now();
    loop {
        let got = browser
            .client()
            .execute(redoc_title, vec![])
            .await
            .unwrap_or(Value::Null);
        if got
            .as_str()
            .is_some_and(|t| t.starts_with(rates_title.as_str()))
        {
            break;
        }
        if started.elapsed() > RENDER_TIMEOUT {
            let _ = browser.screenshot("docs-failed-redoc").await;
            panic!("ReDoc did not draw the rates document: {got}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // An operation of the document is listed.
    let body = browser.text_of("body").await.unwrap();
    assert!(body.contains("/api/rates/{symbol}"), "{body}");
    browser.screenshot("docs-redoc-rates-1280").await.unwrap();

    // Narrow: the bar wraps instead of pushing the page sideways.
    browser.set_window_size(390, 844).await.unwrap();
    browser
        .goto(&format!("{}/docs/redoc/server", node.gateway))
        .await
        .unwrap();
    let server_title = &titles[0].1;
    let started = Instant::now();
    loop {
        let got = browser
            .client()
            .execute(redoc_title, vec![])
            .await
            .unwrap_or(Value::Null);
        if got
            .as_str()
            .is_some_and(|t| t.starts_with(server_title.as_str()))
        {
            break;
        }
        assert!(
            started.elapsed() < RENDER_TIMEOUT,
            "ReDoc did not draw the server's document: {got}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    browser.screenshot("docs-redoc-server-390").await.unwrap();
    browser
        .goto(&format!("{}/docs/", node.gateway))
        .await
        .unwrap();
    wait_for_text(&browser, "server at 390", SWAGGER_TITLE, &titles[0].1).await;
    assert!(
        !overflows(&browser).await,
        "the docs page overflows at 390 px"
    );
    browser.screenshot("docs-swagger-server-390").await.unwrap();

    browser.close().await.unwrap();
}
