//! An independent OpenID Connect client library (`openidconnect`), used unchanged, through the
//! whole flow against the server: discovery, the code flow with PKCE for a confidential and a
//! public client, the ID token's signature, nonce and access-token hash, userinfo, and
//! refresh-token rotation.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use common::browser::{Browser, CALLBACK, code_client};
use common::{Backend, TestApp};
use gatehouse_core::Store;
use gatehouse_testkit::on_both_stores;
use gatehouse_token::SigningAlgorithm;
use openidconnect::core::{
    CoreAuthenticationFlow, CoreClient, CoreClientAuthMethod, CoreErrorResponseType,
    CoreJsonWebKeyType, CoreJwsSigningAlgorithm, CoreResponseType, CoreTokenResponse,
    CoreUserInfoClaims,
};
use openidconnect::{
    AccessTokenHash, AuthorizationCode, ClientId, ClientSecret, CsrfToken, EndpointMaybeSet,
    EndpointNotSet, EndpointSet, IssuerUrl, JsonWebKey, Nonce, OAuth2TokenResponse,
    PkceCodeChallenge, ProviderMetadataWithLogout, RedirectUrl, RefreshToken, RequestTokenError,
    ResponseTypes, Scope, SubjectIdentifier, TokenResponse, reqwest,
};

on_both_stores!(
    discovery_through_the_library_names_our_endpoints,
    a_confidential_client_signs_in_through_the_library,
    a_public_client_signs_in_through_the_library_with_pkce_alone,
    the_library_rotates_refresh_tokens_and_a_rotated_one_is_refused,
    a_refreshed_access_token_keeps_the_scope_first_granted,
    es256_and_rs256_id_tokens_pass_the_library,
);

/// The client `from_provider_metadata` makes: an authorization endpoint always, a token and a
/// userinfo endpoint if discovery named them.
type LibraryClient = CoreClient<
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointMaybeSet,
    EndpointMaybeSet,
>;

/// What a relying party holds once the library has signed someone in.
struct SignedIn {
    http: reqwest::Client,
    client: LibraryClient,
    tokens: CoreTokenResponse,
    subject: SubjectIdentifier,
}

/// The library's HTTP client, which must not follow redirects (its documentation's SSRF advice).
fn library_http() -> reqwest::Client {
    reqwest::ClientBuilder::new()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

async fn discover(app: &TestApp, http: &reqwest::Client) -> ProviderMetadataWithLogout {
    let issuer = IssuerUrl::new(app.base.clone()).unwrap();
    ProviderMetadataWithLogout::discover_async(issuer, http)
        .await
        .unwrap()
}

async fn person(app: &TestApp, username: &str, password: &str) -> SubjectIdentifier {
    app.sign_up(username, password).await;
    let user = app.store.user_by_username(username).await.unwrap().unwrap();
    SubjectIdentifier::new(user.id)
}

/// The whole flow as the library drives it: discovery, an authorization URL with PKCE, state and
/// nonce, the person signing in and consenting in a browser, the code exchange, the ID token
/// checked (signature, issuer, audience, nonce, access-token hash) and userinfo.
async fn sign_in_with_library(
    app: &TestApp,
    client_id: &str,
    secret: Option<String>,
    (username, password): (&str, &str),
) -> SignedIn {
    let http = library_http();
    let metadata = discover(app, &http).await;
    let issuer = metadata.issuer().clone();
    let client = CoreClient::from_provider_metadata(
        metadata,
        ClientId::new(client_id.into()),
        secret.map(ClientSecret::new),
    )
    .set_redirect_uri(RedirectUrl::new(CALLBACK.into()).unwrap());

    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let (url, csrf, nonce) = client
        .authorize_url(
            CoreAuthenticationFlow::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        )
        .add_scope(Scope::new("profile".into()))
        .add_scope(Scope::new("email".into()))
        .set_pkce_challenge(challenge)
        .url();

    // The browser is sent to the library's URL, which is on our authorization endpoint.
    let query = url.query().unwrap();
    assert_eq!(
        url.as_str(),
        format!("{}?{query}", app.url("/oauth2/authorize"))
    );
    let redirect = Browser::new(app)
        .authorize(query, Some((username, password)))
        .await;
    assert_eq!(redirect.status, 303, "{}", redirect.body);
    let location = redirect.location.clone().unwrap();
    assert!(location.starts_with(&format!("{CALLBACK}?")), "{location}");
    assert_eq!(
        redirect.location_param("state").as_deref(),
        Some(csrf.secret().as_str()),
        "the state comes back unchanged"
    );
    assert_eq!(
        redirect.location_param("iss").as_deref(),
        Some(issuer.as_str()),
        "the response names its issuer (RFC 9207)"
    );
    let code = AuthorizationCode::new(redirect.location_param("code").expect("a code"));

    let tokens = client
        .exchange_code(code)
        .unwrap()
        .set_pkce_verifier(verifier)
        .request_async(&http)
        .await
        .unwrap();
    let id_token = tokens.id_token().expect("an ID token");
    // The client's verifier takes the algorithms discovery lists; this one allows the server's
    // configured algorithm alone.
    let alg = match app.config.signing_algorithm {
        SigningAlgorithm::EdDSA => CoreJwsSigningAlgorithm::EdDsa,
        SigningAlgorithm::ES256 => CoreJwsSigningAlgorithm::EcdsaP256Sha256,
        SigningAlgorithm::RS256 => CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256,
    };
    let id_verifier = client.id_token_verifier().set_allowed_algs([alg.clone()]);
    assert!(
        id_token
            .claims(&id_verifier, &Nonce::new("another-nonce".into()))
            .is_err(),
        "the nonce is checked"
    );
    let claims = id_token.claims(&id_verifier, &nonce).unwrap();
    assert_eq!(claims.issuer(), &issuer);
    assert_eq!(claims.audiences().len(), 1);
    assert_eq!(claims.audiences()[0].as_str(), client_id);
    assert_eq!(id_token.signing_alg().unwrap(), &alg);
    assert!(claims.auth_time().is_some());

    let at_hash = claims.access_token_hash().expect("an at_hash");
    let computed = AccessTokenHash::from_token(
        tokens.access_token(),
        id_token.signing_alg().unwrap(),
        id_token.signing_key(&id_verifier).unwrap(),
    )
    .unwrap();
    assert_eq!(
        &computed, at_hash,
        "the access token is the one the ID token names"
    );

    let subject = claims.subject().clone();
    drop(id_verifier);
    let info: CoreUserInfoClaims = client
        .user_info(tokens.access_token().clone(), Some(subject.clone()))
        .unwrap()
        .request_async(&http)
        .await
        .unwrap();
    assert_eq!(info.subject(), &subject);
    assert_eq!(
        info.preferred_username().map(|u| u.as_str()),
        Some(username)
    );
    assert_eq!(
        info.email().map(|e| e.as_str()),
        Some(format!("{username}@example.com").as_str())
    );
    assert_eq!(info.email_verified(), Some(false));

    SignedIn {
        http,
        client,
        tokens,
        subject,
    }
}

async fn discovery_through_the_library_names_our_endpoints(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let metadata = discover(&app, &library_http()).await;
    assert_eq!(metadata.issuer().as_str(), app.config.issuer);
    assert_eq!(
        metadata.authorization_endpoint().as_str(),
        app.url("/oauth2/authorize")
    );
    assert_eq!(
        metadata.token_endpoint().map(|u| u.as_str()),
        Some(app.url("/oauth2/token").as_str())
    );
    assert_eq!(
        metadata.userinfo_endpoint().map(|u| u.as_str()),
        Some(app.url("/oauth2/userinfo").as_str())
    );
    assert_eq!(metadata.jwks_uri().as_str(), app.url("/oauth2/jwks"));
    assert_eq!(
        metadata
            .additional_metadata()
            .end_session_endpoint
            .as_ref()
            .map(|u| u.as_str()),
        Some(app.url("/oauth2/logout").as_str())
    );
    assert_eq!(
        metadata.response_types_supported(),
        &vec![ResponseTypes::new(vec![CoreResponseType::Code])]
    );
    assert_eq!(
        metadata.id_token_signing_alg_values_supported(),
        &vec![CoreJwsSigningAlgorithm::EdDsa]
    );
    assert!(
        metadata
            .scopes_supported()
            .unwrap()
            .contains(&Scope::new("openid".into()))
    );
    let methods = metadata.token_endpoint_auth_methods_supported().unwrap();
    for method in [
        CoreClientAuthMethod::ClientSecretBasic,
        CoreClientAuthMethod::None,
    ] {
        assert!(methods.contains(&method), "{method:?}");
    }
    // Discovery fetched the key set too: every key is an Ed25519 key for EdDSA.
    let keys = metadata.jwks().keys();
    assert!(!keys.is_empty());
    for key in keys {
        assert_eq!(key.key_type(), &CoreJsonWebKeyType::OctetKeyPair);
        assert!(key.key_id().is_some());
    }
}

async fn a_confidential_client_signs_in_through_the_library(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let alice = person(&app, "alice", "alice-password-1").await;
    let secret = code_client(&app, "shop", false).await.unwrap();
    let signed_in =
        sign_in_with_library(&app, "shop", Some(secret), ("alice", "alice-password-1")).await;
    assert_eq!(signed_in.subject, alice);
    let scopes = signed_in.tokens.scopes().expect("the granted scope");
    for scope in ["openid", "profile", "email"] {
        assert!(scopes.contains(&Scope::new(scope.into())), "{scope}");
    }
    assert!(signed_in.tokens.refresh_token().is_some());
    assert!(signed_in.tokens.expires_in().is_some());

    // The same library with a wrong secret is refused at the token endpoint.
    let wrong = CoreClient::from_provider_metadata(
        discover(&app, &signed_in.http).await,
        ClientId::new("shop".into()),
        Some(ClientSecret::new("not-the-secret".into())),
    )
    .set_redirect_uri(RedirectUrl::new(CALLBACK.into()).unwrap());
    let refused = wrong
        .exchange_refresh_token(signed_in.tokens.refresh_token().unwrap())
        .unwrap()
        .request_async(&signed_in.http)
        .await;
    assert_eq!(error_of(refused), CoreErrorResponseType::InvalidClient);
}

/// The signature, and the access-token hash (SHA-256 here, SHA-512 for EdDSA), as the library
/// computes them for each algorithm.
async fn es256_and_rs256_id_tokens_pass_the_library(backend: Backend) {
    for alg in [SigningAlgorithm::ES256, SigningAlgorithm::RS256] {
        let app = TestApp::spawn_with(backend, |c| c.signing_algorithm = alg).await;
        let carol = person(&app, "carol", "carol-password-1").await;
        let secret = code_client(&app, "shop", false).await.unwrap();
        let signed_in =
            sign_in_with_library(&app, "shop", Some(secret), ("carol", "carol-password-1")).await;
        assert_eq!(signed_in.subject, carol, "{alg}");
    }
}

async fn a_public_client_signs_in_through_the_library_with_pkce_alone(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let bob = person(&app, "bob", "bob-password-1").await;
    assert!(code_client(&app, "spa", true).await.is_none());
    let signed_in = sign_in_with_library(&app, "spa", None, ("bob", "bob-password-1")).await;
    assert_eq!(signed_in.subject, bob);
    assert!(signed_in.tokens.refresh_token().is_some());
}

async fn the_library_rotates_refresh_tokens_and_a_rotated_one_is_refused(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    person(&app, "alice", "alice-password-1").await;
    person(&app, "bob", "bob-password-1").await;
    let secret = code_client(&app, "shop", false).await.unwrap();
    code_client(&app, "spa", true).await;
    // One person per client: a reused refresh token ends every session of its person.
    let sessions = [
        sign_in_with_library(&app, "shop", Some(secret), ("alice", "alice-password-1")).await,
        sign_in_with_library(&app, "spa", None, ("bob", "bob-password-1")).await,
    ];

    let mut rotated = Vec::new();
    for signed_in in &sessions {
        let old = signed_in.tokens.refresh_token().unwrap();
        let fresh = refresh(signed_in, old).await.unwrap();
        let new = fresh.refresh_token().expect("a new refresh token");
        assert_ne!(new.secret(), old.secret(), "the refresh token rotates");
        assert_ne!(
            fresh.access_token().secret(),
            signed_in.tokens.access_token().secret()
        );
        rotated.push(new.clone());
    }

    // Past the grace window for concurrent duplicates, the rotated token is refused, and its
    // reuse ends what its successor would have carried on.
    app.advance(Duration::from_secs(app.config.refresh_reuse_grace_secs + 1));
    for (signed_in, new) in sessions.iter().zip(&rotated) {
        let old = signed_in.tokens.refresh_token().unwrap();
        assert_eq!(
            error_of(refresh(signed_in, old).await),
            CoreErrorResponseType::InvalidGrant
        );
        assert_eq!(
            error_of(refresh(signed_in, new).await),
            CoreErrorResponseType::InvalidGrant
        );
    }
}

/// RFC 6749 §6: a refresh that names no scope is granted the scope first granted; so the new
/// access token still carries `openid`, which userinfo requires (OpenID Connect Core §5.3).
async fn a_refreshed_access_token_keeps_the_scope_first_granted(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    person(&app, "alice", "alice-password-1").await;
    let secret = code_client(&app, "shop", false).await.unwrap();
    let signed_in =
        sign_in_with_library(&app, "shop", Some(secret), ("alice", "alice-password-1")).await;
    let first = signed_in.tokens.scopes().expect("the granted scope");

    let fresh = refresh(&signed_in, signed_in.tokens.refresh_token().unwrap())
        .await
        .unwrap();
    let mut granted: Vec<&str> = first.iter().map(|s| s.as_str()).collect();
    let mut refreshed: Vec<&str> = fresh
        .scopes()
        .map(|s| s.iter().map(|s| s.as_str()).collect())
        .unwrap_or_default();
    granted.sort_unstable();
    refreshed.sort_unstable();
    assert_eq!(
        refreshed, granted,
        "a refresh without a scope keeps the scope first granted (RFC 6749 §6)"
    );
    let info: CoreUserInfoClaims = signed_in
        .client
        .user_info(
            fresh.access_token().clone(),
            Some(signed_in.subject.clone()),
        )
        .unwrap()
        .request_async(&signed_in.http)
        .await
        .expect("userinfo accepts the refreshed access token");
    assert_eq!(info.subject(), &signed_in.subject);
    assert_eq!(info.preferred_username().map(|u| u.as_str()), Some("alice"));
}

type TokenResult = Result<
    CoreTokenResponse,
    RequestTokenError<
        openidconnect::HttpClientError<reqwest::Error>,
        openidconnect::StandardErrorResponse<CoreErrorResponseType>,
    >,
>;

async fn refresh(signed_in: &SignedIn, token: &RefreshToken) -> TokenResult {
    signed_in
        .client
        .exchange_refresh_token(token)
        .unwrap()
        .request_async(&signed_in.http)
        .await
}

/// The OAuth error code of a refused token request.
fn error_of(result: TokenResult) -> CoreErrorResponseType {
    match result {
        Err(RequestTokenError::ServerResponse(response)) => response.error().clone(),
        Err(other) => panic!("not an error response: {other:?}"),
        Ok(tokens) => panic!("accepted: {:?}", tokens.access_token()),
    }
}
