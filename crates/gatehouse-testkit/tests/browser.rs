//! The browser harness against a two-page site of its own: fill a labelled field, submit the
//! form, read the answer and its cookie, and take screenshots at phone and laptop sizes.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashMap;

use axum::extract::Form;
use axum::response::{Html, IntoResponse};
use axum::routing::get;
use gatehouse_testkit::browser::Browser;

const FORM_PAGE: &str = r#"<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Echo</title></head>
<body style="font-family: sans-serif; margin: 2rem">
  <h1>Echo</h1>
  <form method="post" action="/">
    <label for="name">Your name</label>
    <input id="name" name="name" autocomplete="off">
    <button type="submit">Send</button>
  </form>
</body>
</html>"#;

async fn echo(Form(form): Form<HashMap<String, String>>) -> impl IntoResponse {
    let name = form.get("name").map(String::as_str).unwrap_or_default();
    let escaped = name
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;");
    (
        [("set-cookie", "echoed=yes; Path=/; HttpOnly; SameSite=Lax")],
        Html(format!(
            "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Echoed</title></head>\
             <body><p id=\"echo\">Hello, {escaped}!</p></body></html>"
        )),
    )
}

/// Width and height from a PNG's header.
fn png_size(png: &[u8]) -> (u32, u32) {
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "not a PNG");
    let word = |at: usize| u32::from_be_bytes(png[at..at + 4].try_into().unwrap());
    (word(16), word(20))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fills_submits_and_screenshots_a_form() {
    let Some(browser) = Browser::start().await.unwrap() else {
        return;
    };

    let app = axum::Router::new().route("/", get(|| async { Html(FORM_PAGE) }).post(echo));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}/", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });

    browser.goto(&base).await.unwrap();
    browser.fill("#name", "Ada <Lovelace> & co").await.unwrap();

    browser.set_window_size(390, 844).await.unwrap();
    let phone = browser
        .screenshot("testkit-browser-form-390x844")
        .await
        .unwrap();
    browser.set_window_size(1280, 900).await.unwrap();
    let laptop = browser
        .screenshot("testkit-browser-form-1280x900")
        .await
        .unwrap();
    for (path, size) in [(&phone, (390, 844)), (&laptop, (1280, 900))] {
        let png = std::fs::read(path).unwrap();
        assert!(!png.is_empty(), "{} is empty", path.display());
        assert_eq!(png_size(&png), size, "{}", path.display());
    }

    browser.click("button[type=submit]").await.unwrap();
    assert_eq!(
        browser.text_of("#echo").await.unwrap(),
        "Hello, Ada <Lovelace> & co!"
    );
    assert_eq!(browser.current_url().await.unwrap(), base);
    let cookies = browser.cookies().await.unwrap();
    assert!(
        cookies
            .iter()
            .any(|c| c.name() == "echoed" && c.value() == "yes"),
        "cookies: {cookies:?}"
    );

    browser.close().await.unwrap();
}
