//! The five reference applications, each story replayed through the gateway that `gatehouse
//! serve` runs, with real tokens from its authorization server.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

struct Stack {
    server: common::Running,
    http: reqwest::Client,
    _dir: tempfile::TempDir,
}

fn stack(extra: &[(&str, &str)]) -> Stack {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut env = vec![
        ("GATEHOUSE_ADMIN_USERNAME", "root"),
        ("GATEHOUSE_ADMIN_PASSWORD", "root-password-1"),
        ("GATEHOUSE_APPS__RATES__TICK_SECS", "1"),
        ("GATEHOUSE_APPS__ORDERS__PAYMENT_SEED", "7"),
    ];
    env.extend_from_slice(extra);
    let server = common::start(&["serve", "--data-dir", data.to_str().unwrap()], &env);
    Stack {
        server,
        http: reqwest::Client::new(),
        _dir: dir,
    }
}

impl Stack {
    fn gateway(&self, path: &str) -> String {
        format!("{}{path}", self.server.gateway.as_deref().unwrap())
    }

    fn app(&self, name: &str, path: &str) -> String {
        format!("{}{path}", self.server.apps[name])
    }

    /// Signs `name` up (role `user`) and logs in without asking for scopes: all of the user's.
    async fn user(&self, name: &str) -> String {
        let password = format!("{name}-password-1");
        let response = self
            .http
            .post(format!("{}/users", self.server.base))
            .json(&json!({"username": name, "password": password, "email": format!("{name}@example.com")}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 201);
        self.login(name, &password).await
    }

    async fn login(&self, name: &str, password: &str) -> String {
        common::login(&self.http, &self.server.base, name, password).await
    }

    async fn admin(&self) -> String {
        self.login("root", "root-password-1").await
    }

    /// A self-registered machine client's token with `scope`: (client id, token).
    async fn machine(&self, scope: &str) -> (String, String) {
        let (id, secret) = common::register(&self.http, &self.server.base, scope).await;
        let token = common::client_token(&self.http, &self.server.base, &id, &secret).await;
        (id, token)
    }

    async fn call(
        &self,
        method: reqwest::Method,
        url: &str,
        token: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut request = self.http.request(method, url).bearer_auth(token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        let text = response.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    async fn delete(&self, path: &str, token: &str) -> (StatusCode, Value) {
        self.call(reqwest::Method::DELETE, &self.gateway(path), token, None)
            .await
    }

    /// A POST without a body (votes).
    async fn post_empty(&self, path: &str, token: &str) -> (StatusCode, Value) {
        self.call(reqwest::Method::POST, &self.gateway(path), token, None)
            .await
    }

    async fn get(&self, path: &str, token: &str) -> (StatusCode, Value) {
        self.call(reqwest::Method::GET, &self.gateway(path), token, None)
            .await
    }

    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        token: &str,
        body: Value,
    ) -> (StatusCode, Value) {
        self.call(method, &self.gateway(path), token, Some(body))
            .await
    }
}

fn problem(status: StatusCode, body: &Value, expected: u16) {
    assert_eq!(status.as_u16(), expected, "{body}");
    assert_eq!(body["status"], expected, "not a problem body: {body}");
    assert!(body["detail"].is_string(), "{body}");
}

fn decimal(value: &Value) -> rust_decimal::Decimal {
    value
        .as_str()
        .expect("decimals travel as strings")
        .parse()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn rates_are_listed_move_over_time_and_need_rates_read() {
    let s = stack(&[]);
    let (_, machine) = s.machine("rates:read").await;
    let (status, first) = s.get("/api/rates", &machine).await;
    assert_eq!(status, 200);
    let symbols: Vec<&str> = first
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["symbol"].as_str().unwrap())
        .collect();
    assert_eq!(symbols, ["BTC", "ETH", "SOL"]);
    for rate in first.as_array().unwrap() {
        assert!(decimal(&rate["rate"]) > rust_decimal::Decimal::ZERO);
        decimal(&rate["change_24h"]);
        assert!(rate["updated_at"].as_str().unwrap().ends_with('Z'));
    }
    let (status, btc) = s.get("/api/rates/btc", &machine).await;
    assert_eq!(status, 200);
    assert_eq!(btc["symbol"], "BTC");
    let (status, body) = s.get("/api/rates/DOGE", &machine).await;
    problem(status, &body, 404);
    let (status, body) = s.get("/api/rates/B-T", &machine).await;
    problem(status, &body, 400);

    // A person with the default role reads them too; a client without the scope does not.
    let alice = s.user("alice").await;
    assert_eq!(s.get("/api/rates", &alice).await.0, 200);
    let (_, fx_only) = s.machine("fx:read").await;
    let (status, body) = s.get("/api/rates", &fx_only).await;
    problem(status, &body, 403);
    // The app checks too, when called directly.
    let (status, body) = s
        .call(
            reqwest::Method::GET,
            &s.app("rates", "/api/rates"),
            &fx_only,
            None,
        )
        .await;
    problem(status, &body, 403);
    let (status, _) = s
        .call(
            reqwest::Method::GET,
            &s.app("rates", "/api/rates"),
            "garbage",
            None,
        )
        .await;
    assert_eq!(status, 401);

    // Ticks every second: within a few the rates move, by at most 0.5% a tick.
    let before: Vec<rust_decimal::Decimal> = first
        .as_array()
        .unwrap()
        .iter()
        .map(|r| decimal(&r["rate"]))
        .collect();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let (_, later) = s.get("/api/rates", &machine).await;
    let after: Vec<rust_decimal::Decimal> = later
        .as_array()
        .unwrap()
        .iter()
        .map(|r| decimal(&r["rate"]))
        .collect();
    assert_ne!(before, after, "no rate moved in 2.5 s");
    for (b, a) in before.iter().zip(&after) {
        let change = ((a - b) / b).abs();
        assert!(
            change <= rust_decimal::Decimal::new(16, 3),
            "{b} → {a} is more than 4 ticks of 0.5%"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn currency_exchange_converts_directly_inversely_and_across_usd() {
    let s = stack(&[]);
    let alice = s.user("alice").await;
    let convert = |from: &str, to: &str, amount: &str| {
        format!("/api/fx/convert?from={from}&to={to}&amount={amount}")
    };
    // Hand-computed: rates worked out are rounded to 10 places, amounts to 2 (half away from zero).
    for (from, to, amount, rate, converted) in [
        ("USD", "EUR", "100", "0.92", "92.00"),            // direct
        ("EUR", "USD", "50", "1.0869565217", "54.35"),     // 1 / 0.92 = 1.08695652173…
        ("GBP", "JPY", "10", "191.7721518987", "1917.72"), // (1 / 0.79) × 151.50 = 191.77215189873…
        ("AUD", "EUR", "100", "0.6072", "60.72"),          // 0.66 × 0.92
        ("JPY", "AUD", "1000", "0.0100010001", "10.00"), // (1 / 151.50) × (1 / 0.66) = 0.01000100010001…
        ("usd", "gbp", "0.5", "0.79", "0.40"),           // 0.395 rounds away from zero
    ] {
        let (status, body) = s.get(&convert(from, to, amount), &alice).await;
        assert_eq!(status, 200, "{from}{to}: {body}");
        assert_eq!(body["rate"], rate, "{from}{to}");
        assert_eq!(body["converted_amount"], converted, "{from}{to}");
        assert_eq!(body["base"]["code"], from.to_uppercase());
        assert_eq!(body["target"]["code"], to.to_uppercase());
    }
    // Every refusal is a problem body, axum's own included.
    let (status, body) = s.get("/api/fx/nothing", &alice).await;
    problem(status, &body, 404);
    let (status, body) = s
        .get("/api/fx/convert?from=%FF&to=EUR&amount=1", &alice)
        .await;
    problem(status, &body, 400);
    let (status, body) = s
        .call(
            reqwest::Method::PUT,
            &s.app("fx", "/api/fx/currencies"),
            &alice,
            None,
        )
        .await;
    problem(status, &body, 405);
    // No rate touches CHF and USD together: no way to convert.
    let (status, body) = s.get(&convert("CHF", "JPY", "1"), &alice).await;
    problem(status, &body, 404);
    for (bad, expected) in [
        (convert("XYZ", "USD", "1"), 404),
        (convert("US", "EUR", "1"), 400),
        (convert("USD", "EUR", "-1"), 400),
        (convert("USD", "EUR", "0"), 400),
        (convert("USD", "EUR", "lots"), 400),
        ("/api/fx/convert?from=USD".to_owned(), 400),
    ] {
        let (status, body) = s.get(&bad, &alice).await;
        problem(status, &body, expected);
    }

    // Writing needs fx:write: refused for a user at the gateway and at the app.
    let sek = json!({"code": "SEK", "name": "Swedish Krona", "sign": "kr"});
    let (status, body) = s
        .send(
            reqwest::Method::POST,
            "/api/fx/currencies",
            &alice,
            sek.clone(),
        )
        .await;
    problem(status, &body, 403);
    let (status, body) = s
        .call(
            reqwest::Method::POST,
            &s.app("fx", "/api/fx/currencies"),
            &alice,
            Some(sek.clone()),
        )
        .await;
    problem(status, &body, 403);

    let admin = s.admin().await;
    let (_, currencies) = s.get("/api/fx/currencies", &admin).await;
    let (status, created) = s
        .send(
            reqwest::Method::POST,
            "/api/fx/currencies",
            &admin,
            sek.clone(),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created, sek);
    let (status, body) = s
        .send(
            reqwest::Method::POST,
            "/api/fx/currencies",
            &admin,
            sek.clone(),
        )
        .await;
    problem(status, &body, 409);
    for bad in [
        json!({"code": "S1K", "name": "x", "sign": "x"}),
        json!({"code": "NOK", "name": "", "sign": "kr"}),
        json!({"code": "NOK"}),
        json!("NOK"),
    ] {
        let (status, body) = s
            .send(
                reqwest::Method::POST,
                "/api/fx/currencies",
                &admin,
                bad.clone(),
            )
            .await;
        problem(status, &body, 400);
    }
    let (_, now) = s.get("/api/fx/currencies", &admin).await;
    assert_eq!(
        now.as_array().unwrap().len(),
        currencies.as_array().unwrap().len() + 1
    );

    // Rates travel as exact decimals.
    let precise = "0.123456789012345678";
    let (status, rate) = s
        .send(
            reqwest::Method::POST,
            "/api/fx/rates",
            &admin,
            json!({"base": "USD", "target": "SEK", "rate": precise}),
        )
        .await;
    assert_eq!(status, 201, "{rate}");
    assert_eq!(rate["rate"], precise);
    let (_, fetched) = s.get("/api/fx/rates/USDSEK", &alice).await;
    assert_eq!(fetched["rate"], precise);
    let (status, body) = s
        .send(
            reqwest::Method::POST,
            "/api/fx/rates",
            &admin,
            json!({"base": "USD", "target": "SEK", "rate": "1"}),
        )
        .await;
    problem(status, &body, 409);
    let (status, body) = s
        .send(
            reqwest::Method::POST,
            "/api/fx/rates",
            &admin,
            json!({"base": "USD", "target": "XYZ", "rate": "1"}),
        )
        .await;
    problem(status, &body, 404);
    for bad in [
        json!({"rate": "0"}),
        json!({"rate": "-2"}),
        json!({"rate": "abc"}),
        json!({"rate": true}),
        json!({"rate": 10.5}),
        json!({}),
    ] {
        let (status, body) = s
            .send(
                reqwest::Method::PATCH,
                "/api/fx/rates/USDSEK",
                &admin,
                bad.clone(),
            )
            .await;
        problem(status, &body, 400);
    }
    let (_, unchanged) = s.get("/api/fx/rates/USDSEK", &alice).await;
    assert_eq!(
        unchanged["rate"], precise,
        "a refused change changed the rate"
    );
    let (status, patched) = s
        .send(
            reqwest::Method::PATCH,
            "/api/fx/rates/USDSEK",
            &admin,
            json!({"rate": "10.5"}),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(patched["rate"], "10.5");
    let (status, body) = s.get("/api/fx/rates/USDXYZ", &alice).await;
    problem(status, &body, 404);
    let (status, body) = s.get("/api/fx/rates/USD", &alice).await;
    problem(status, &body, 400);

    // Deleting needs the admin role.
    let (status, body) = s.delete("/api/fx/rates/USDSEK", &alice).await;
    problem(status, &body, 403);
    let (status, _) = s.delete("/api/fx/rates/USDSEK", &admin).await;
    assert_eq!(status, 204);
    let (status, body) = s.delete("/api/fx/rates/USDSEK", &admin).await;
    problem(status, &body, 404);
    let (status, _) = s.delete("/api/fx/currencies/SEK", &admin).await;
    assert_eq!(status, 204);
}

#[tokio::test(flavor = "multi_thread")]
async fn welcome_messages_depend_on_who_is_asking() {
    let s = stack(&[]);
    let (status, body) = s.get("/api/messages/welcome", &s.admin().await).await;
    assert_eq!(status, 200);
    assert_eq!(
        body,
        json!({"message": "Welcome, Admin! You have full access."})
    );
    let (_, body) = s.get("/api/messages/welcome", &s.user("bob").await).await;
    assert_eq!(
        body,
        json!({"message": "Welcome, Authenticated user! Limited access."})
    );
    let (id, machine) = s.machine("rates:read").await;
    let (_, body) = s.get("/api/messages/welcome", &machine).await;
    assert!(body["message"].as_str().unwrap().contains(&id), "{body}");
    let (status, _) = s.get("/api/messages/welcome", "garbage").await;
    assert_eq!(status, 401);
}

#[tokio::test(flavor = "multi_thread")]
async fn orders_check_stock_pay_about_four_times_in_five_and_stay_private() {
    let s = stack(&[]);
    let alice = s.user("alice").await;
    let (status, products) = s.get("/api/products", &alice).await;
    assert_eq!(status, 200);
    let stock_of = |products: &Value, id: &str| {
        products
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["id"] == id)
            .unwrap()["stock"]
            .as_i64()
            .unwrap()
    };
    let cables = stock_of(&products, "cable");
    let order = |product: &str, quantity: i64| json!({"items": [{"product_id": product, "quantity": quantity}]});

    // Refused carts store nothing and move no stock.
    for (bad, expected) in [
        (json!({"items": []}), 400),
        (order("cable", 0), 400),
        (order("cable", -3), 400),
        (order("nothing", 1), 400),
        (order("monitor", 21), 409),
        (
            json!({"items": [{"product_id": "cable", "quantity": 1}, {"product_id": "cable", "quantity": 1}]}),
            400,
        ),
        (
            json!({"items": [{"product_id": "cable", "quantity": 1.5}]}),
            400,
        ),
        (json!({"basket": []}), 400),
    ] {
        let (status, body) = s
            .send(reqwest::Method::POST, "/api/orders", &alice, bad.clone())
            .await;
        problem(status, &body, expected);
    }
    assert_eq!(s.get("/api/orders", &alice).await.1, json!([]));

    // A seeded run of 40 one-cable orders: about 80% are paid, and only those take stock.
    let mut paid = 0;
    for _ in 0..40 {
        let (status, placed) = s
            .send(
                reqwest::Method::POST,
                "/api/orders",
                &alice,
                order("cable", 1),
            )
            .await;
        assert_eq!(status, 201, "{placed}");
        assert_eq!(placed["total"], "9.99");
        match placed["status"].as_str().unwrap() {
            "paid" => paid += 1,
            "payment_failed" => {}
            other => panic!("status {other}"),
        }
    }
    assert!((26..=38).contains(&paid), "{paid} of 40 paid");
    let (_, products) = s.get("/api/products", &alice).await;
    assert_eq!(stock_of(&products, "cable"), cables - paid);
    let (_, mine) = s.get("/api/orders", &alice).await;
    let mine = mine.as_array().unwrap();
    assert_eq!(mine.len(), 40);
    assert_eq!(
        mine.iter().filter(|o| o["status"] == "paid").count() as i64,
        paid
    );
    let total: rust_decimal::Decimal = mine.iter().map(|o| decimal(&o["total"])).sum();
    assert_eq!(total, rust_decimal::Decimal::new(39_960, 2));

    // Another person sees none of them.
    let bob = s.user("bob").await;
    assert_eq!(s.get("/api/orders", &bob).await.1, json!([]));
    let id = mine[0]["id"].as_str().unwrap();
    let (status, body) = s.get(&format!("/api/orders/{id}"), &bob).await;
    problem(status, &body, 404);
    let (status, own) = s.get(&format!("/api/orders/{id}"), &alice).await;
    assert_eq!(status, 200);
    assert_eq!(own["items"][0]["product_id"], "cable");

    // Machines cannot shop: the scope is not theirs, and the app wants a person anyway.
    let (_, machine) = s.machine("rates:read").await;
    let (status, body) = s.get("/api/orders", &machine).await;
    problem(status, &body, 403);
}

#[tokio::test(flavor = "multi_thread")]
async fn posts_belong_to_their_authors_and_take_one_vote_per_person() {
    let s = stack(&[]);
    let alice = s.user("alice").await;
    let bob = s.user("bob").await;
    let mut ids = Vec::new();
    for text in ["first", "second", "third"] {
        let (status, post) = s
            .send(
                reqwest::Method::POST,
                "/api/posts",
                &alice,
                json!({"content": text}),
            )
            .await;
        assert_eq!(status, 201);
        assert_eq!(post["votes"], 0);
        ids.push(post["id"].as_str().unwrap().to_owned());
    }
    for bad in [
        json!({"content": "   "}),
        json!({"content": "x".repeat(5001)}),
        json!({"text": "hi"}),
        json!({}),
    ] {
        let (status, body) = s
            .send(reqwest::Method::POST, "/api/posts", &alice, bad)
            .await;
        problem(status, &body, 400);
    }
    let (_, page) = s.get("/api/posts?per_page=2", &alice).await;
    assert_eq!(page["total"], 3);
    assert_eq!(page["items"].as_array().unwrap().len(), 2);
    let (_, page2) = s.get("/api/posts?per_page=2&page=2", &alice).await;
    assert_eq!(page2["items"].as_array().unwrap().len(), 1);
    for bad in [
        "/api/posts?per_page=0",
        "/api/posts?page=x",
        "/api/posts?per_page=101",
    ] {
        let (status, body) = s.get(bad, &alice).await;
        problem(status, &body, 400);
    }
    assert_eq!(s.get("/api/posts", &bob).await.1["total"], 0);

    let post = format!("/api/posts/{}", ids[0]);
    let (status, body) = s
        .send(
            reqwest::Method::PUT,
            &post,
            &bob,
            json!({"content": "mine now"}),
        )
        .await;
    problem(status, &body, 403);
    let (status, body) = s.delete(&post, &bob).await;
    problem(status, &body, 403);
    let (status, body) = s
        .send(
            reqwest::Method::PUT,
            "/api/posts/post_none",
            &alice,
            json!({"content": "x"}),
        )
        .await;
    problem(status, &body, 404);
    let (status, edited) = s
        .send(
            reqwest::Method::PUT,
            &post,
            &alice,
            json!({"content": "first, edited"}),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(edited["content"], "first, edited");

    let vote = format!("{post}/vote");
    let (status, count) = s.post_empty(&vote, &bob).await;
    assert_eq!(status, 201);
    assert_eq!(count["votes"], 1);
    let (status, body) = s.post_empty(&vote, &bob).await;
    problem(status, &body, 409);
    assert_eq!(s.post_empty(&vote, &alice).await.0, 201);
    assert_eq!(s.get(&post, &bob).await.1["votes"], 2);
    let (_, listed) = s.get("/api/posts?per_page=3", &alice).await;
    let listed_votes: i64 = listed["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["votes"].as_i64().unwrap())
        .sum();
    assert_eq!(listed_votes, 2);
    assert_eq!(s.delete(&vote, &bob).await.0, 204);
    let (status, body) = s.delete(&vote, &bob).await;
    problem(status, &body, 404);
    assert_eq!(s.get(&post, &alice).await.1["votes"], 1);

    assert_eq!(s.delete(&post, &alice).await.0, 204);
    let (status, body) = s.get(&post, &alice).await;
    problem(status, &body, 404);
    let (status, body) = s.post_empty(&vote, &bob).await;
    problem(status, &body, 404);
}

#[tokio::test(flavor = "multi_thread")]
async fn every_app_publishes_its_openapi_document_and_a_revoked_token_stops_working() {
    let s = stack(&[]);
    for app in ["rates", "fx", "messages", "orders", "posts"] {
        let response = s
            .http
            .get(s.gateway(&format!("/api/{app}/openapi.json")))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{app}");
        let doc: Value = response.json().await.unwrap();
        assert!(doc["openapi"].as_str().unwrap().starts_with("3."), "{app}");
        assert!(!doc["paths"].as_object().unwrap().is_empty(), "{app}");
        // The document's anonymous route is that one path, not the API below it.
        let below = s
            .http
            .get(s.gateway(&format!("/api/{app}/openapi.json/anything")))
            .send()
            .await
            .unwrap();
        assert_eq!(below.status(), 401, "{app}");
    }
    let alice = s.user("alice").await;
    assert_eq!(s.get("/api/messages/welcome", &alice).await.0, 200);
    let revoked = s
        .http
        .post(format!("{}/oauth2/revoke", s.server.base))
        .form(&[("client_id", "gatehouse-web"), ("token", alice.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status(), 200);
    common::within_a_second("the gateway refusing a revoked token", || async {
        s.get("/api/messages/welcome", &alice).await.0 == 401
    })
    .await;
    // The app itself refuses it too.
    let (status, _) = s
        .call(
            reqwest::Method::GET,
            &s.app("messages", "/api/messages/welcome"),
            &alice,
            None,
        )
        .await;
    assert_eq!(status, 401);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_apps_keep_their_tables_in_postgresql_when_configured() {
    let Some(server) = gatehouse_testkit::postgres_url() else {
        return;
    };
    let url = common::fresh_database(&server, "gh_apps").await;
    let kek = "22".repeat(32);
    let s = stack(&[
        ("GATEHOUSE_DATABASE_URL", url.as_str()),
        ("GATEHOUSE_KEK", kek.as_str()),
        ("GATEHOUSE_APPS__ORDERS__PAYMENT_SUCCESS_RATE", "1.0"),
    ]);
    let alice = s.user("alice").await;
    let (status, _) = s.get("/api/rates/BTC", &alice).await;
    assert_eq!(status, 200);
    let (_, conversion) = s
        .get("/api/fx/convert?from=GBP&to=JPY&amount=10", &alice)
        .await;
    assert_eq!(conversion["converted_amount"], "1917.72");
    let (status, placed) = s
        .send(
            reqwest::Method::POST,
            "/api/orders",
            &alice,
            json!({"items": [{"product_id": "mouse", "quantity": 2}]}),
        )
        .await;
    assert_eq!(status, 201, "{placed}");
    assert_eq!(placed["total"], "49.00");
    let (status, post) = s
        .send(
            reqwest::Method::POST,
            "/api/posts",
            &alice,
            json!({"content": "on postgres"}),
        )
        .await;
    assert_eq!(status, 201);
    let id = post["id"].as_str().unwrap();
    assert_eq!(
        s.post_empty(&format!("/api/posts/{id}/vote"), &alice)
            .await
            .0,
        201
    );
    assert_eq!(s.get("/api/posts", &alice).await.1["items"][0]["votes"], 1);

    // The rows really are in PostgreSQL, in the apps' own tables.
    use sqlx::Connection;
    let mut db = sqlx::PgConnection::connect(&url).await.unwrap();
    let (orders,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM orders_orders")
        .fetch_one(&mut db)
        .await
        .unwrap();
    assert_eq!(orders, 1);
    let (posts,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM posts_posts")
        .fetch_one(&mut db)
        .await
        .unwrap();
    assert_eq!(posts, 1);
    drop(db);
    race_for_the_last_monitors(std::sync::Arc::new(s)).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_app_runs_alone_against_a_remote_issuer() {
    let s = stack(&[]);
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("fx-data");
    let command = common::gatehouse(
        &[
            "app",
            "fx",
            "--listen",
            "127.0.0.1:0",
            "--issuer",
            &s.server.base,
            "--data-dir",
            data.to_str().unwrap(),
        ],
        &[],
    );
    let app = common::spawn_ready(command);
    let url = app.apps["fx"].clone();
    let alice = s.user("alice").await;
    let (status, body) = s
        .call(
            reqwest::Method::GET,
            &format!("{url}/api/fx/convert?from=USD&to=EUR&amount=10"),
            &alice,
            None,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["converted_amount"], "9.20");
    let (status, _) = s
        .call(
            reqwest::Method::GET,
            &format!("{url}/api/fx/currencies"),
            "garbage",
            None,
        )
        .await;
    assert_eq!(status, 401);
    the_shop_runs_alone_with_a_client_an_operator_registered(&s).await;
}

/// `gatehouse app shop` needs its client's credentials, and says so before reaching anything;
/// with a code-flow client registered through the admin API it serves its pages and sends
/// people to the issuer to sign in.
async fn the_shop_runs_alone_with_a_client_an_operator_registered(s: &Stack) {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("shop-data");
    let args = [
        "app",
        "shop",
        "--listen",
        "127.0.0.1:0",
        "--issuer",
        &s.server.base,
        "--data-dir",
        data.to_str().unwrap(),
    ];
    let refused = common::gatehouse(&args, &[]).output().unwrap();
    assert!(!refused.status.success());
    let said = String::from_utf8_lossy(&refused.stderr);
    assert!(said.contains("GATEHOUSE_SHOP_CLIENT_ID"), "{said}");

    let public_url = "https://shop.example/shop";
    let admin = common::login(&s.http, &s.server.base, "root", "root-password-1").await;
    let created: Value = s
        .http
        .post(format!("{}/admin/clients", s.server.base))
        .bearer_auth(&admin)
        .json(&json!({
            "name": "Own shop",
            "grant_types": ["authorization_code", "refresh_token"],
            "redirect_uris": [format!("{public_url}/callback")],
            "post_logout_redirect_uris": [format!("{public_url}/signed-out")],
            "scope": "openid profile orders",
        }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let client_id = created["client_id"]
        .as_str()
        .unwrap_or_else(|| panic!("{created}"));
    let gateway = s.server.gateway.clone().unwrap();
    let command = common::gatehouse(
        &args,
        &[
            ("GATEHOUSE_SHOP_CLIENT_ID", client_id),
            (
                "GATEHOUSE_SHOP_CLIENT_SECRET",
                created["client_secret"].as_str().unwrap(),
            ),
            (
                "GATEHOUSE_SHOP_SEALING_KEY",
                "0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0",
            ),
            ("GATEHOUSE_APPS__SHOP__PUBLIC_URL", public_url),
            ("GATEHOUSE_APPS__SHOP__API_URL", &gateway),
        ],
    );
    let shop = common::spawn_ready(command);
    let url = shop.apps["shop"].clone();
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let welcome = http.get(format!("{url}/shop/")).send().await.unwrap();
    assert_eq!(welcome.status(), 200);
    assert!(
        welcome
            .text()
            .await
            .unwrap()
            .contains("Welcome to the shop")
    );
    let sign_in = http.get(format!("{url}/shop/signin")).send().await.unwrap();
    assert_eq!(sign_in.status(), 303);
    let location = sign_in.headers()["location"].to_str().unwrap();
    assert!(
        location.starts_with(&format!("{}/oauth2/authorize?", s.server.base)),
        "{location}"
    );
    for expected in [
        format!("client_id={client_id}"),
        "code_challenge_method=S256".into(),
        "redirect_uri=https%3A%2F%2Fshop.example%2Fshop%2Fcallback".into(),
    ] {
        assert!(location.contains(&expected), "{expected} in {location}");
    }
    // Served over https to browsers: the cookie is host-only and never sent in the clear.
    let cookie = sign_in.headers()["set-cookie"].to_str().unwrap();
    assert!(
        cookie.starts_with("__Host-shop_session=")
            && cookie.contains("HttpOnly")
            && cookie.contains("Secure"),
        "{cookie}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_orders_for_the_last_items_never_oversell_or_fail() {
    let s = std::sync::Arc::new(stack(&[(
        "GATEHOUSE_APPS__ORDERS__PAYMENT_SUCCESS_RATE",
        "1.0",
    )]));
    race_for_the_last_monitors(s).await;
}

/// 20 monitors in stock, 30 buyers at once with carts in both product orders: exactly 20 sell,
/// 10 get 409, none fails, and stock ends at 0.
async fn race_for_the_last_monitors(s: std::sync::Arc<Stack>) {
    let alice = s.user("racer").await;
    let mut buyers = Vec::new();
    for i in 0..30 {
        let (s, alice) = (s.clone(), alice.clone());
        buyers.push(tokio::spawn(async move {
            let cart = if i % 2 == 0 {
                json!({"items": [{"product_id": "monitor", "quantity": 1}, {"product_id": "cable", "quantity": 1}]})
            } else {
                json!({"items": [{"product_id": "cable", "quantity": 1}, {"product_id": "monitor", "quantity": 1}]})
            };
            s.send(reqwest::Method::POST, "/api/orders", &alice, cart).await
        }));
    }
    let (mut sold, mut refused) = (0, 0);
    for buyer in buyers {
        let (status, body) = buyer.await.unwrap();
        match status.as_u16() {
            201 => sold += 1,
            409 => refused += 1,
            other => panic!("{other}: {body}"),
        }
    }
    assert_eq!((sold, refused), (20, 10));
    let (_, products) = s.get("/api/products", &alice).await;
    let monitor = products
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["id"] == "monitor")
        .unwrap();
    assert_eq!(monitor["stock"], 0);
}
