//! Password guessing over real HTTP: a concurrent burst gets no more checks than the lock allows,
//! a flood from one address leaves hashing capacity for everyone else, and guesses from unknown
//! sources never lock the owner out of a browser or confidential client they signed in from.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use common::browser::Browser;
use common::{Backend, TestApp};
use gatehouse_core::{AuthMethod, Client, GrantType, Store};
use gatehouse_testkit::on_both_stores;

on_both_stores!(
    a_burst_of_guesses_then_the_right_password_is_refused_while_locked,
    a_flood_from_one_address_leaves_room_for_logins_from_others,
    the_owner_signs_in_from_a_browser_used_before_while_strangers_stay_locked,
    the_owner_signs_in_through_a_confidential_client_used_before,
);

const DEVICE: &str = "gatehouse_device";
const SESSION: &str = "gatehouse_session";

/// A client whose requests come from `ip` (any 127.x address is on the loopback interface).
fn client_from(ip: [u8; 4]) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(IpAddr::V4(Ipv4Addr::from(ip)))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// A password grant through the public web client: (status, body).
async fn password_grant(
    app: &TestApp,
    http: &reqwest::Client,
    username: &str,
    password: &str,
) -> (u16, Vec<u8>) {
    let response = http
        .post(app.url("/oauth2/token"))
        .form(&[
            ("grant_type", "password"),
            ("client_id", "gatehouse-web"),
            ("username", username),
            ("password", password),
        ])
        .send()
        .await
        .unwrap();
    (
        response.status().as_u16(),
        response.bytes().await.unwrap().to_vec(),
    )
}

/// A password grant through a confidential client, authenticated with Basic.
async fn confidential_grant(
    app: &TestApp,
    (id, secret): (&str, &str),
    username: &str,
    password: &str,
) -> u16 {
    app.http
        .post(app.url("/oauth2/token"))
        .basic_auth(id, Some(secret))
        .form(&[
            ("grant_type", "password"),
            ("username", username),
            ("password", password),
        ])
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// Stores a confidential client allowed the password grant; returns its secret.
async fn confidential_client(app: &TestApp, id: &str) -> String {
    let mut client = Client::new(
        id.into(),
        format!("App {id}"),
        AuthMethod::ClientSecretBasic,
        vec![GrantType::Password, GrantType::RefreshToken],
        gatehouse_token::now_unix(),
    );
    let secret = format!("{id}-secret-{}", "x".repeat(32));
    client.secret_hash = Some(gatehouse_core::secret::hash_secret(&secret));
    app.store.insert_client(&client).await.unwrap();
    secret
}

async fn locks_recorded(app: &TestApp) -> Vec<String> {
    app.store
        .recent_events(500)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.kind == "login.locked")
        .map(|e| e.detail)
        .collect()
}

/// Settings for the lock tests: no delays (they are the throttle's unit tests' business), the
/// default lock after ten failures.
fn lock_settings(c: &mut gatehouse_core::AuthConfig) {
    c.login_delay_after_failures = 1_000;
    c.login_lock_after_failures = 10;
    c.login_lock_secs = 900;
}

async fn a_burst_of_guesses_then_the_right_password_is_refused_while_locked(backend: Backend) {
    let app = Arc::new(
        TestApp::spawn_with(backend, |c| {
            lock_settings(c);
            // Room for the whole burst in the hashing queue: this is about the lock.
            c.password_checks_per_source = 64;
        })
        .await,
    );
    app.sign_up("alice", "correct-horse").await;
    let burst: Vec<_> = (0..60)
        .map(|i| {
            let app = app.clone();
            tokio::spawn(async move {
                password_grant(&app, &app.http, "alice", &format!("guess-{i}")).await
            })
        })
        .collect();
    let mut answers = Vec::new();
    for guess in burst {
        answers.push(guess.await.unwrap());
    }
    let wrong = answers[0].clone();
    assert_eq!(wrong.0, 400);
    assert!(
        answers.iter().all(|a| *a == wrong),
        "every guess gets the one answer"
    );
    // Only as many guesses as the lock allows had their password checked; the rest were
    // counted first and found locked, however they overlapped.
    let details: Vec<String> = app
        .store
        .recent_events(500)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.kind == "login.failure")
        .map(|e| e.detail)
        .collect();
    assert_eq!(details.len(), 60);
    let checked = details.iter().filter(|d| *d == "wrong password").count();
    assert_eq!(checked, 10, "{details:?}");
    let right = password_grant(&app, &app.http, "alice", "correct-horse").await;
    assert_eq!(right, wrong, "locked: the right password is refused alike");
    assert_eq!(locks_recorded(&app).await.len(), 1);

    app.advance(Duration::from_secs(901));
    let (status, _) = password_grant(&app, &app.http, "alice", "correct-horse").await;
    assert_eq!(status, 200, "the lock ends");
}

async fn a_flood_from_one_address_leaves_room_for_logins_from_others(backend: Backend) {
    let app = Arc::new(
        TestApp::spawn_with(backend, |c| {
            c.max_concurrent_password_hashes = 1;
        })
        .await,
    );
    app.sign_up("alice", "correct-horse").await;
    let attacker = client_from([127, 0, 0, 2]);
    let stop = Arc::new(AtomicBool::new(false));
    let refused = Arc::new(AtomicUsize::new(0));
    let first_refusal = Arc::new(tokio::sync::Notify::new());
    // More concurrent guesses than the whole hashing queue holds (64 for one thread), each for a
    // different unknown name so no lock or delay slows the flood down.
    let flood: Vec<_> = (0..100)
        .map(|worker| {
            let (app, attacker) = (app.clone(), attacker.clone());
            let (stop, refused, first_refusal) =
                (stop.clone(), refused.clone(), first_refusal.clone());
            tokio::spawn(async move {
                let mut n = 0;
                while !stop.load(Ordering::Relaxed) {
                    n += 1;
                    let name = format!("nobody-{worker}-{n}");
                    let (status, _) = password_grant(&app, &attacker, &name, "guess").await;
                    assert!(matches!(status, 400 | 503), "flood answered {status}");
                    if status == 503 {
                        refused.fetch_add(1, Ordering::Relaxed);
                        first_refusal.notify_one();
                    }
                }
            })
        })
        .collect();
    // The flood has filled its share of the queue.
    first_refusal.notified().await;
    let visitor = client_from([127, 0, 0, 3]);
    for n in 0..5 {
        let (status, body) = password_grant(&app, &visitor, "alice", "correct-horse").await;
        assert_eq!(
            status,
            200,
            "login {n} from elsewhere during the flood: {}",
            String::from_utf8_lossy(&body)
        );
    }
    stop.store(true, Ordering::Relaxed);
    for worker in flood {
        worker.await.unwrap();
    }
    assert!(refused.load(Ordering::Relaxed) > 0);
}

async fn the_owner_signs_in_from_a_browser_used_before_while_strangers_stay_locked(
    backend: Backend,
) {
    let app = TestApp::spawn_with(backend, lock_settings).await;
    app.sign_up("alice", "correct-horse").await;
    app.sign_up("bob", "battery-staple").await;

    // Alice signs in once in her browser, and signs out: the browser keeps its device cookie.
    let mut own = Browser::new(&app);
    assert_eq!(own.sign_in("alice", "correct-horse").await.status, 303);
    let issued = own.cookies.get(DEVICE).cloned().expect("a device cookie");
    let set_cookie: Vec<String> = own
        .get("/signin")
        .await
        .headers
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect();
    assert!(set_cookie.iter().all(|c| !c.starts_with(DEVICE)));
    own.cookies.remove(SESSION);
    // Bob's browser has a device cookie of its own.
    let mut bobs = Browser::new(&app);
    assert_eq!(bobs.sign_in("bob", "battery-staple").await.status, 303);
    let bobs_cookie = bobs.cookies.get(DEVICE).cloned().unwrap();

    // Strangers guess: through the API and on the sign-in page, from another address.
    let attacker = client_from([127, 0, 0, 4]);
    for i in 0..8 {
        let (status, _) = password_grant(&app, &attacker, "alice", &format!("guess-{i}")).await;
        assert_eq!(status, 400);
    }
    let mut stranger = Browser::new(&app);
    for _ in 0..4 {
        assert_eq!(stranger.sign_in("alice", "guess").await.status, 401);
    }
    assert_eq!(
        stranger.sign_in("alice", "correct-horse").await.status,
        401,
        "an unknown browser stays locked out"
    );
    let (status, _) = password_grant(&app, &app.http, "alice", "correct-horse").await;
    assert_eq!(status, 400, "so does the public client");
    assert!(
        locks_recorded(&app).await[0].contains("from unrecognised sources"),
        "the lock is audited"
    );

    // Another user's device cookie, and one altered to name Alice, give no trust.
    let mut thief = Browser::new(&app);
    thief.cookies.insert(DEVICE.into(), bobs_cookie.clone());
    assert_eq!(thief.sign_in("alice", "correct-horse").await.status, 401);
    let alices_id = issued.split('.').next().unwrap();
    let (_, rest) = bobs_cookie.split_once('.').unwrap();
    thief
        .cookies
        .insert(DEVICE.into(), format!("{alices_id}.{rest}"));
    assert_eq!(thief.sign_in("alice", "correct-horse").await.status, 401);
    let (payload, _) = issued.rsplit_once('.').unwrap();
    thief
        .cookies
        .insert(DEVICE.into(), format!("{payload}.{}", "A".repeat(43)));
    assert_eq!(thief.sign_in("alice", "correct-horse").await.status, 401);

    // Alice's own browser still signs her in, and gets a fresh device cookie.
    let answer = own.sign_in("alice", "correct-horse").await;
    assert_eq!(answer.status, 303, "{}", answer.body);
    assert!(own.cookies.contains_key(SESSION));
    let renewed = own.cookies.get(DEVICE).unwrap();
    assert_ne!(renewed, &issued);
    let header = answer
        .headers
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap())
        .find(|c| c.starts_with(DEVICE))
        .unwrap()
        .to_owned();
    assert!(header.contains("HttpOnly"), "{header}");

    // Her success there lifts nothing for strangers.
    assert_eq!(stranger.sign_in("alice", "correct-horse").await.status, 401);
    // The browser's own guesses lock only that browser.
    for _ in 0..10 {
        assert_eq!(own.sign_in("alice", "wrong").await.status, 401);
    }
    assert_eq!(own.sign_in("alice", "correct-horse").await.status, 401);
    assert_eq!(locks_recorded(&app).await.len(), 2);
    app.advance(Duration::from_secs(901));
    assert_eq!(own.sign_in("alice", "correct-horse").await.status, 303);
}

async fn the_owner_signs_in_through_a_confidential_client_used_before(backend: Backend) {
    let app = TestApp::spawn_with(backend, lock_settings).await;
    app.sign_up("alice", "correct-horse").await;
    let partner_secret = confidential_client(&app, "partner").await;
    let other_secret = confidential_client(&app, "other").await;
    let partner = ("partner", partner_secret.as_str());
    let other = ("other", other_secret.as_str());
    assert_eq!(
        confidential_grant(&app, partner, "alice", "correct-horse").await,
        200
    );

    let attacker = client_from([127, 0, 0, 5]);
    for i in 0..12 {
        password_grant(&app, &attacker, "alice", &format!("guess-{i}")).await;
    }
    let (status, _) = password_grant(&app, &app.http, "alice", "correct-horse").await;
    assert_eq!(status, 400, "the public client is anyone: locked");
    assert_eq!(
        confidential_grant(&app, other, "alice", "correct-horse").await,
        400,
        "a confidential client she never used is a stranger"
    );
    assert_eq!(
        confidential_grant(&app, partner, "alice", "correct-horse").await,
        200,
        "the client she signed in through before still signs her in"
    );
}
