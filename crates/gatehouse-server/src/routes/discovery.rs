use axum::Json;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use gatehouse_core::AuthMethod;
use gatehouse_core::service::IDENTITY_SCOPES;
use gatehouse_proto::ServerMetadata;
use gatehouse_token::JwkSet;

use crate::AppState;
use crate::error::ApiReply;

/// The claims an ID token or the userinfo endpoint may carry.
const CLAIMS_SUPPORTED: [&str; 12] = [
    "iss",
    "sub",
    "aud",
    "exp",
    "iat",
    "auth_time",
    "nonce",
    "at_hash",
    "sid",
    "preferred_username",
    "email",
    "email_verified",
];

async fn metadata(state: &AppState) -> Result<ServerMetadata, ApiReply> {
    let config = state.service.config();
    let base = config.base_url();
    let roles = state.service.store().roles().await?;
    let mut scopes: Vec<String> = roles
        .iter()
        .flat_map(|r| r.scopes.iter().map(str::to_owned).collect::<Vec<_>>())
        .chain(config.registration.allowed_scopes.iter().cloned())
        .chain(IDENTITY_SCOPES.iter().map(|s| (*s).to_owned()))
        .collect();
    scopes.sort();
    scopes.dedup();
    let auth_methods: Vec<String> = AuthMethod::ALL.iter().map(|m| m.as_str().into()).collect();
    let signing_algs = published_algorithms(&state.service.key_view());
    Ok(ServerMetadata {
        issuer: config.issuer.clone(),
        token_endpoint: format!("{base}/oauth2/token"),
        jwks_uri: format!("{base}/oauth2/jwks"),
        registration_endpoint: Some(format!("{base}/oauth2/register")),
        revocation_endpoint: Some(format!("{base}/oauth2/revoke")),
        revocation_endpoint_auth_methods_supported: auth_methods.clone(),
        introspection_endpoint: Some(format!("{base}/oauth2/introspect")),
        introspection_endpoint_auth_methods_supported: [
            AuthMethod::ClientSecretBasic,
            AuthMethod::ClientSecretPost,
        ]
        .iter()
        .map(|m| m.as_str().into())
        .collect(),
        revocation_feed_endpoint: Some(format!("{base}/oauth2/revocations")),
        service_documentation: Some(format!("{base}/docs")),
        grant_types_supported: config
            .grant_types()
            .iter()
            .map(|g| g.as_str().into())
            .collect(),
        response_types_supported: vec!["code".into()],
        token_endpoint_auth_methods_supported: auth_methods,
        scopes_supported: scopes,
        access_token_signing_alg_values_supported: signing_algs.clone(),
        subject_types_supported: vec!["public".into()],
        authorization_endpoint: Some(format!("{base}/oauth2/authorize")),
        userinfo_endpoint: Some(format!("{base}/oauth2/userinfo")),
        end_session_endpoint: Some(format!("{base}/oauth2/logout")),
        response_modes_supported: vec!["query".into()],
        code_challenge_methods_supported: vec!["S256".into()],
        id_token_signing_alg_values_supported: signing_algs,
        claims_supported: CLAIMS_SUPPORTED.iter().map(|c| (*c).into()).collect(),
        prompt_values_supported: ["none", "login", "consent", "select_account"]
            .iter()
            .map(|p| (*p).into())
            .collect(),
        authorization_response_iss_parameter_supported: Some(true),
        claims_parameter_supported: Some(false),
        request_parameter_supported: Some(false),
        request_uri_parameter_supported: Some(false),
    })
}

/// The algorithms of the published keys, the signer's first: what a verifier must accept now,
/// including during a rotation from one algorithm to another.
fn published_algorithms(view: &gatehouse_core::keyring::KeyView) -> Vec<String> {
    let mut algs = vec![view.signer.algorithm().as_str().to_owned()];
    for jwk in &view.jwks.keys {
        if !algs.contains(&jwk.alg) {
            algs.push(jwk.alg.clone());
        }
    }
    algs
}

/// Authorization server metadata (RFC 8414).
#[utoipa::path(get, path = "/.well-known/oauth-authorization-server", tag = "oauth2",
    responses((status = 200, description = "Server metadata", body = ServerMetadata)))]
pub async fn authorization_server_metadata(
    State(state): State<AppState>,
) -> Result<impl IntoResponse, ApiReply> {
    Ok(cached(Json(metadata(&state).await?)))
}

/// The same metadata at the OpenID Connect discovery location, for libraries that look there.
#[utoipa::path(get, path = "/.well-known/openid-configuration", tag = "oauth2",
    responses((status = 200, description = "Server metadata", body = ServerMetadata)))]
pub async fn openid_configuration(
    State(state): State<AppState>,
) -> Result<impl IntoResponse, ApiReply> {
    Ok(cached(Json(metadata(&state).await?)))
}

/// Every public key that may verify a live access token (RFC 7517).
#[utoipa::path(get, path = "/oauth2/jwks", tag = "oauth2",
    responses((status = 200, description = "JSON Web Key Set", body = Object,
        content_type = "application/jwk-set+json")))]
pub async fn jwks(State(state): State<AppState>) -> impl IntoResponse {
    let set: JwkSet = state.service.key_view().jwks.clone();
    (
        [(header::CONTENT_TYPE, "application/jwk-set+json")],
        cached(Json(set)),
    )
}

/// Short public caching: verifiers refetch soon enough to see a new key before it signs.
fn cached<T: IntoResponse>(body: T) -> impl IntoResponse {
    ([(header::CACHE_CONTROL, "public, max-age=60")], body)
}
