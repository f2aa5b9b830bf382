//! The core's rules, run without HTTP against the real store on SQLite in memory, with a clock
//! the tests move: expiry, grace windows, locks and key activation without sleeping.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::time::Duration;

use gatehouse_core::service::{Actor, ClientAuth, PresentedAuth, TokenRequest};
use gatehouse_core::{
    AuthConfig, AuthService, Client, ManualClock, OAuthErrorCode, RequestContext, TokenProblem,
    WEB_CLIENT_ID,
};
use gatehouse_proto::TokenResponse;
use gatehouse_proto::account::NewUser;
use gatehouse_proto::admin::{NewClient, UserPatch};
use gatehouse_store::SqlStore;
use gatehouse_token::KeyEncryptionKey;

struct Rig {
    service: AuthService,
    clock: Arc<ManualClock>,
}

async fn rig(configure: impl FnOnce(&mut AuthConfig)) -> Rig {
    let store = SqlStore::open_in_memory().await.unwrap();
    let clock = Arc::new(ManualClock::starting_now());
    let mut config = AuthConfig {
        issuer: "http://gatehouse.test".into(),
        // Failures answered at once: delays are the throttle's own unit tests' business.
        login_delay_after_failures: 1_000,
        ..AuthConfig::default()
    };
    configure(&mut config);
    let kek = KeyEncryptionKey::generate().unwrap();
    let service = AuthService::start_with_clock(config, Arc::new(store), kek, clock.clone())
        .await
        .unwrap();
    Rig { service, clock }
}

fn unlimited(_: &Client) -> Result<(), u64> {
    Ok(())
}

fn operator() -> Actor {
    Actor {
        id: "system:test".into(),
    }
}

impl Rig {
    fn advance(&self, secs: u64) {
        self.clock.advance(Duration::from_secs(secs));
    }

    /// A confidential machine client allowed `scope`: (id, secret).
    async fn machine_client(&self, scope: &str) -> (String, String) {
        let created = self
            .service
            .admin_create_client(
                &operator(),
                NewClient {
                    name: "machine".into(),
                    grant_types: Some(vec!["client_credentials".into()]),
                    scope: Some(scope.into()),
                    roles: Vec::new(),
                    token_endpoint_auth_method: None,
                    redirect_uris: Vec::new(),
                    post_logout_redirect_uris: Vec::new(),
                    skip_consent: false,
                },
                &RequestContext::default(),
            )
            .await
            .unwrap();
        (created.client.client_id, created.client_secret.unwrap())
    }

    async fn grant(
        &self,
        auth: ClientAuth,
        request: TokenRequest,
    ) -> Result<TokenResponse, OAuthErrorCode> {
        self.service
            .token(request, auth, &RequestContext::default(), &unlimited)
            .await
            .map(|(_, response)| response)
            .map_err(|e| e.code)
    }

    async fn client_credentials(
        &self,
        (id, secret): &(String, String),
        scope: Option<&str>,
    ) -> Result<TokenResponse, OAuthErrorCode> {
        let auth = ClientAuth {
            client_id: id.clone(),
            secret: Some(secret.clone()),
            method: PresentedAuth::Basic,
        };
        let request = TokenRequest {
            grant_type: Some("client_credentials".into()),
            scope: scope.map(str::to_owned),
            ..TokenRequest::default()
        };
        self.grant(auth, request).await
    }

    fn web() -> ClientAuth {
        ClientAuth {
            client_id: WEB_CLIENT_ID.into(),
            secret: None,
            method: PresentedAuth::None,
        }
    }

    async fn sign_up(&self, username: &str, password: &str) -> String {
        let new = NewUser {
            username: username.into(),
            password: password.into(),
            email: format!("{username}@example.test"),
        };
        self.service
            .sign_up(new, &RequestContext::default())
            .await
            .unwrap()
            .id
    }

    async fn login(&self, username: &str, password: &str) -> Result<TokenResponse, OAuthErrorCode> {
        let request = TokenRequest {
            grant_type: Some("password".into()),
            username: Some(username.into()),
            password: Some(password.into()),
            ..TokenRequest::default()
        };
        self.grant(Self::web(), request).await
    }

    async fn refresh(&self, refresh_token: &str) -> Result<TokenResponse, OAuthErrorCode> {
        let request = TokenRequest {
            grant_type: Some("refresh_token".into()),
            refresh_token: Some(refresh_token.into()),
            ..TokenRequest::default()
        };
        self.grant(Self::web(), request).await
    }

    async fn live(&self, access_token: &str) -> Result<(), TokenProblem> {
        self.service
            .check_access_token(access_token)
            .await
            .map(|_| ())
    }
}

fn kid_of(token: &str) -> String {
    gatehouse_token::key_id(token).unwrap()
}

#[tokio::test]
async fn client_credentials_grant_what_is_asked_within_what_is_allowed() {
    let rig = rig(|_| {}).await;
    let client = rig.machine_client("rates:read fx:read").await;
    let all = rig.client_credentials(&client, None).await.unwrap();
    assert_eq!(all.scope.as_deref(), Some("fx:read rates:read"));
    let narrowed = rig
        .client_credentials(&client, Some("rates:read"))
        .await
        .unwrap();
    assert_eq!(narrowed.scope.as_deref(), Some("rates:read"));
    assert_eq!(narrowed.token_type, "Bearer");
    assert_eq!(
        narrowed.refresh_token, None,
        "machines get no refresh token"
    );
    rig.live(&narrowed.access_token).await.unwrap();
    assert_eq!(
        rig.client_credentials(&client, Some("rates:read admin"))
            .await
            .unwrap_err(),
        OAuthErrorCode::InvalidScope
    );
    let wrong_secret = (client.0.clone(), "not-the-secret".to_owned());
    assert_eq!(
        rig.client_credentials(&wrong_secret, None)
            .await
            .unwrap_err(),
        OAuthErrorCode::InvalidClient
    );
}

#[tokio::test]
async fn access_tokens_die_at_their_expiry_plus_the_leeway() {
    let rig = rig(|c| {
        c.access_token_ttl_secs = 300;
        c.token_leeway_secs = 30;
    })
    .await;
    let client = rig.machine_client("rates:read").await;
    let token = rig.client_credentials(&client, None).await.unwrap();
    assert_eq!(token.expires_in, 300);
    rig.advance(300 + 29);
    rig.live(&token.access_token).await.unwrap();
    rig.advance(2);
    match rig.live(&token.access_token).await {
        Err(TokenProblem::Invalid(why)) => assert!(why.contains("expired"), "{why}"),
        other => panic!("an expired token passed: {other:?}"),
    }
}

#[tokio::test]
async fn refresh_tokens_rotate_and_a_reuse_after_the_grace_window_ends_the_session() {
    let rig = rig(|c| c.refresh_reuse_grace_secs = 10).await;
    rig.sign_up("alice", "correct-horse-1").await;
    let first = rig.login("alice", "correct-horse-1").await.unwrap();
    let first_refresh = first.refresh_token.unwrap();
    let second = rig.refresh(&first_refresh).await.unwrap();
    let second_refresh = second.refresh_token.unwrap();
    assert_ne!(first_refresh, second_refresh, "every refresh rotates");

    // Within the grace window a retry (a lost answer) gets the same successor, not a new one.
    rig.advance(5);
    let retried = rig.refresh(&first_refresh).await.unwrap();
    assert_eq!(
        retried.refresh_token.as_deref(),
        Some(second_refresh.as_str())
    );

    // Past it, the old token is a stolen copy: the whole session ends, its newest token too.
    rig.advance(10);
    assert_eq!(
        rig.refresh(&first_refresh).await.unwrap_err(),
        OAuthErrorCode::InvalidGrant
    );
    assert_eq!(
        rig.refresh(&second_refresh).await.unwrap_err(),
        OAuthErrorCode::InvalidGrant
    );
    assert!(rig.live(&second.access_token).await.is_err());
}

#[tokio::test]
async fn repeated_failures_lock_a_username_until_the_lock_runs_out() {
    let rig = rig(|c| {
        c.login_lock_after_failures = 3;
        c.login_lock_secs = 60;
    })
    .await;
    rig.sign_up("bob", "correct-horse-2").await;
    for _ in 0..3 {
        assert_eq!(
            rig.login("bob", "wrong-guess").await.unwrap_err(),
            OAuthErrorCode::InvalidGrant
        );
    }
    assert_eq!(
        rig.login("bob", "correct-horse-2").await.unwrap_err(),
        OAuthErrorCode::InvalidGrant,
        "locked: even the right password is refused"
    );
    rig.advance(59);
    assert!(rig.login("bob", "correct-horse-2").await.is_err());
    rig.advance(2);
    rig.login("bob", "correct-horse-2").await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_concurrent_guesses_gets_no_more_checks_than_the_lock_allows() {
    let rig = Arc::new(
        rig(|c| {
            c.login_lock_after_failures = 10;
            c.login_lock_secs = 60;
            // Room for the whole burst: this is about the lock, not the hashing shares.
            c.password_checks_per_source = 100;
        })
        .await,
    );
    rig.sign_up("carol", "correct-horse-3").await;
    let burst: Vec<_> = (0..60)
        .map(|i| {
            let rig = rig.clone();
            tokio::spawn(async move { rig.login("carol", &format!("guess-{i}")).await })
        })
        .collect();
    for guess in burst {
        assert_eq!(
            guess.await.unwrap().unwrap_err(),
            OAuthErrorCode::InvalidGrant
        );
    }
    assert_eq!(
        rig.login("carol", "correct-horse-3").await.unwrap_err(),
        OAuthErrorCode::InvalidGrant,
        "the burst locked the username before most of it was checked"
    );
    let locks = rig
        .service
        .store()
        .recent_events(200)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.kind == "login.locked")
        .count();
    assert_eq!(locks, 1, "one lock, recorded once");
    rig.advance(61);
    rig.login("carol", "correct-horse-3").await.unwrap();
}

#[tokio::test]
async fn revoking_everything_cuts_off_earlier_tokens_only() {
    let rig = rig(|_| {}).await;
    let client = rig.machine_client("rates:read").await;
    let before = rig.client_credentials(&client, None).await.unwrap();
    let revoked = rig
        .service
        .admin_revoke_all(&operator(), &client.0, &RequestContext::default())
        .await
        .unwrap();
    assert!(
        revoked.not_before > rig.service.now(),
        "the cut-off covers this second"
    );
    assert!(rig.live(&before.access_token).await.is_err());
    // Minted at the cut-off, a new token lives.
    let after = rig.client_credentials(&client, None).await.unwrap();
    rig.live(&after.access_token).await.unwrap();
    rig.advance(1);
    rig.live(&after.access_token).await.unwrap();
    assert!(rig.live(&before.access_token).await.is_err());
}

#[tokio::test]
async fn a_new_key_signs_only_after_its_activation_delay_and_old_tokens_still_verify() {
    let rig = rig(|c| c.key_activation_delay_secs = 120).await;
    let client = rig.machine_client("rates:read").await;
    let old = rig.client_credentials(&client, None).await.unwrap();
    let rotated = rig
        .service
        .rotate_signing_key(&operator(), &RequestContext::default())
        .await
        .unwrap();
    assert_eq!(rotated.status, "pending");
    assert!(
        rig.service
            .key_view()
            .jwks
            .keys
            .iter()
            .any(|k| k.kid == rotated.kid),
        "published before it signs"
    );
    let during = rig.client_credentials(&client, None).await.unwrap();
    assert_eq!(kid_of(&during.access_token), kid_of(&old.access_token));
    rig.advance(121);
    let after = rig.client_credentials(&client, None).await.unwrap();
    assert_eq!(kid_of(&after.access_token), rotated.kid);
    rig.live(&during.access_token).await.unwrap();
}

#[tokio::test]
async fn a_role_named_twice_is_held_once_in_the_answer_and_the_store() {
    let rig = rig(|_| {}).await;
    let id = rig.sign_up("carol", "correct-horse-3").await;
    let patch = UserPatch {
        blocked: None,
        roles: Some(vec!["admin".into(), "user".into(), "admin".into()]),
    };
    let answered = rig
        .service
        .admin_patch_user(&operator(), &id, patch, &RequestContext::default())
        .await
        .unwrap();
    assert_eq!(answered.roles, ["admin", "user"]);
    let stored = rig.service.admin_get_user(&id).await.unwrap();
    assert_eq!(stored.roles, answered.roles);
}
