//! `kill -9` of `gatehouse serve` in the middle of a load of registrations, sign-ups and orders
//! loses nothing it answered with a 2xx: after a restart on the same store, every registered
//! client gets a token with its secret, every person signs in, and every order is there as it was
//! answered. On SQLite and on PostgreSQL.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};

/// What the server answered with a 2xx before it was killed.
#[derive(Default)]
struct Answered {
    clients: Vec<(String, String)>,
    people: Vec<String>,
    /// (order id, its status as answered, the buyer's name)
    orders: Vec<(String, String, String)>,
}

const PASSWORD: &str = "crash-test-password-1";
const WORKERS: usize = 6;

#[tokio::test(flavor = "multi_thread")]
async fn a_killed_server_on_sqlite_keeps_everything_it_answered() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let args = ["serve", "--data-dir", data.to_str().unwrap()];
    survive_a_kill(&args, &[]).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_killed_server_on_postgresql_keeps_everything_it_answered() {
    let Some(server) = gatehouse_testkit::postgres_url() else {
        return;
    };
    let url = common::fresh_database(&server, "gh_crash").await;
    let kek = "33".repeat(32);
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let args = ["serve", "--data-dir", data.to_str().unwrap()];
    let env = [
        ("GATEHOUSE_DATABASE_URL", url.as_str()),
        ("GATEHOUSE_KEK", kek.as_str()),
    ];
    survive_a_kill(&args, &env).await;
}

async fn survive_a_kill(args: &[&str], env: &[(&str, &str)]) {
    let mut env = env.to_vec();
    // Every order paid: an order is checked against the status it was answered with.
    env.push(("GATEHOUSE_APPS__ORDERS__PAYMENT_SUCCESS_RATE", "1.0"));
    // Every request from this one address: its per-address limits would turn the load away.
    env.push(("GATEHOUSE_RATE_LIMITS__REGISTRATION_PER_IP_PER_MINUTE", "0"));
    env.push(("GATEHOUSE_RATE_LIMITS__SIGNUP_PER_IP_PER_MINUTE", "0"));
    let mut server = common::start(args, &env);
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let base = server.base.clone();
    let gateway = server.gateway.clone().unwrap();
    // Buyers signed up before the load; their orders are part of it.
    let mut buyers = Vec::new();
    for i in 0..WORKERS {
        let name = format!("buyer{i}");
        sign_up(&http, &base, &name).await.unwrap();
        let token = common::login(&http, &base, &name, PASSWORD).await;
        buyers.push((name, token));
    }

    let answered = Arc::new(Mutex::new(Answered::default()));
    let mut load = Vec::new();
    for (worker, (buyer, token)) in buyers.into_iter().enumerate() {
        let (http, base, gateway, answered) = (
            http.clone(),
            base.clone(),
            gateway.clone(),
            answered.clone(),
        );
        load.push(tokio::spawn(async move {
            for round in 0.. {
                if let Some(client) = register(&http, &base).await {
                    answered.lock().unwrap().clients.push(client);
                }
                let name = format!("p{worker}x{round}");
                if sign_up(&http, &base, &name).await.is_some() {
                    answered.lock().unwrap().people.push(name);
                }
                if let Some((id, status)) = order(&http, &gateway, &token).await {
                    answered
                        .lock()
                        .unwrap()
                        .orders
                        .push((id, status, buyer.clone()));
                }
            }
        }));
    }
    // Kill once a fair amount was answered, with requests of every kind in flight.
    let started = std::time::Instant::now();
    loop {
        let enough = {
            let a = answered.lock().unwrap();
            a.clients.len() >= 20 && a.people.len() >= 10 && a.orders.len() >= 20
        };
        if enough || started.elapsed() > Duration::from_secs(60) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    server.child.kill().unwrap();
    server.child.wait().unwrap();
    for worker in &load {
        worker.abort();
    }
    for worker in load {
        let _ = worker.await;
    }
    let answered = std::mem::take(&mut *answered.lock().unwrap());
    assert!(
        answered.clients.len() >= 20 && answered.people.len() >= 10 && answered.orders.len() >= 20,
        "too little was answered before the kill: {} clients, {} people, {} orders",
        answered.clients.len(),
        answered.people.len(),
        answered.orders.len()
    );

    let restarted = common::start(args, &env);
    let base = restarted.base.clone();
    let gateway = restarted.gateway.clone().unwrap();
    for (id, secret) in &answered.clients {
        let token = http
            .post(format!("{base}/oauth2/token"))
            .basic_auth(id, Some(secret))
            .form(&[("grant_type", "client_credentials")])
            .send()
            .await
            .unwrap();
        assert_eq!(token.status(), 200, "client {id} was lost");
    }
    for name in &answered.people {
        let token = http
            .post(format!("{base}/oauth2/token"))
            .form(&[
                ("grant_type", "password"),
                ("client_id", "gatehouse-web"),
                ("username", name.as_str()),
                ("password", PASSWORD),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(token.status(), 200, "{name} was lost");
    }
    // New tokens: the restarted server has new ports, so a new issuer URL.
    let mut tokens = std::collections::HashMap::new();
    for i in 0..WORKERS {
        let name = format!("buyer{i}");
        let token = common::login(&http, &base, &name, PASSWORD).await;
        tokens.insert(name, token);
    }
    for (id, status, buyer) in &answered.orders {
        let response = http
            .get(format!("{gateway}/api/orders/{id}"))
            .bearer_auth(&tokens[buyer])
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "order {id} was lost");
        let order: Value = response.json().await.unwrap();
        assert_eq!(order["status"].as_str(), Some(status.as_str()), "{order}");
    }
}

async fn register(http: &reqwest::Client, base: &str) -> Option<(String, String)> {
    let response = http
        .post(format!("{base}/oauth2/register"))
        .json(&json!({"client_name": "crash test", "scope": "rates:read"}))
        .send()
        .await
        .ok()?;
    if !response.status().is_success() {
        return None;
    }
    let body: Value = response.json().await.ok()?;
    Some((
        body["client_id"].as_str()?.to_owned(),
        body["client_secret"].as_str()?.to_owned(),
    ))
}

async fn sign_up(http: &reqwest::Client, base: &str, name: &str) -> Option<()> {
    let response = http
        .post(format!("{base}/users"))
        .json(&json!({"username": name, "password": PASSWORD, "email": format!("{name}@example.com")}))
        .send()
        .await
        .ok()?;
    response.status().is_success().then_some(())
}

/// An order of one cheap item: (id, status) when answered 2xx.
async fn order(http: &reqwest::Client, gateway: &str, buyer: &str) -> Option<(String, String)> {
    let response = http
        .post(format!("{gateway}/api/orders"))
        .bearer_auth(buyer)
        .json(&json!({"items": [{"product_id": "cable", "quantity": 1}]}))
        .send()
        .await
        .ok()?;
    if !response.status().is_success() {
        return None;
    }
    let body: Value = response.json().await.ok()?;
    Some((
        body["id"].as_str()?.to_owned(),
        body["status"].as_str()?.to_owned(),
    ))
}
