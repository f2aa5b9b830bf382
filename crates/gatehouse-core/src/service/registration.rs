//! Dynamic client registration (RFC 7591) and its management protocol (RFC 7592).

use gatehouse_proto::registration::{ClientMetadata, RegisteredClient, RegistrationRequest};

use super::{AuthService, IDENTITY_SCOPES, INTROSPECT_SCOPE};
use crate::authorization::check_redirect_uri;
use crate::config::RegistrationMode;
use crate::{
    AuthMethod, Client, GrantType, OAuthError, OAuthErrorCode, RequestContext, ScopeSet, Write,
    secret,
};

const NAME_MAX: usize = 200;
const BAD_REGISTRATION_TOKEN: &str = "the registration access token is invalid";

struct ValidMetadata {
    name: String,
    grant_types: Vec<GrantType>,
    scopes: ScopeSet,
    auth_method: AuthMethod,
    redirect_uris: Vec<String>,
    post_logout_redirect_uris: Vec<String>,
}

impl AuthService {
    /// Whether a registration may proceed with the presented initial access token.
    pub fn registration_allowed(&self, bearer: Option<&str>) -> Result<(), OAuthError> {
        let policy = &self.config.registration;
        match policy.mode {
            RegistrationMode::Open => Ok(()),
            RegistrationMode::Closed => Err(OAuthError::new(
                OAuthErrorCode::AccessDenied,
                "client registration is closed on this server",
            )),
            RegistrationMode::InitialAccessToken => {
                let ok = match (&policy.initial_access_token, bearer) {
                    (Some(expected), Some(got)) => {
                        secret::constant_time_eq(expected.as_bytes(), got.as_bytes())
                    }
                    _ => false,
                };
                if ok {
                    Ok(())
                } else {
                    Err(OAuthError::invalid_token(
                        "a valid initial access token is required to register",
                    ))
                }
            }
        }
    }

    /// `POST /oauth2/register`.
    pub async fn register_client(
        &self,
        request: RegistrationRequest,
        ctx: &RequestContext,
    ) -> Result<RegisteredClient, OAuthError> {
        let valid = self.validate_metadata(&request, None)?;
        let now = self.now();
        // A public client is identified by its id alone: it gets no secret.
        let client_secret = (valid.auth_method != AuthMethod::None)
            .then(secret::random_secret)
            .transpose()?;
        let registration_access_token = secret::random_secret()?;
        let id = format!("cl_{}", secret::random_string(16)?);
        let client = Client {
            secret_hash: client_secret.as_deref().map(secret::hash_secret),
            scopes: Some(valid.scopes),
            registration_token_hash: Some(secret::hash_secret(&registration_access_token)),
            redirect_uris: valid.redirect_uris,
            post_logout_redirect_uris: valid.post_logout_redirect_uris,
            // Whoever registered it, people are asked before it acts for them.
            skip_consent: false,
            ..Client::new(id, valid.name, valid.auth_method, valid.grant_types, now)
        };
        self.store.insert_client(&client).await?;
        self.audit(
            "client.registered",
            Some(&client.id),
            Some(&client.id),
            ctx,
            &client.name,
        )
        .await;
        Ok(RegisteredClient {
            metadata: self.metadata_of(&client),
            client_secret_expires_at: client_secret.is_some().then_some(0),
            client_secret,
            registration_access_token,
        })
    }

    /// `GET /oauth2/register/{client_id}`.
    pub async fn read_registration(
        &self,
        client_id: &str,
        registration_token: Option<&str>,
    ) -> Result<ClientMetadata, OAuthError> {
        let client = self
            .client_for_registration(client_id, registration_token)
            .await?;
        Ok(self.metadata_of(&client))
    }

    /// `PUT /oauth2/register/{client_id}`: replaces the metadata (RFC 7592 §2.2).
    pub async fn update_registration(
        &self,
        client_id: &str,
        registration_token: Option<&str>,
        request: RegistrationRequest,
        ctx: &RequestContext,
    ) -> Result<ClientMetadata, OAuthError> {
        let mut client = self
            .client_for_registration(client_id, registration_token)
            .await?;
        if request.client_id.as_deref() != Some(client_id) {
            return Err(OAuthError::invalid_request(
                "client_id in the body must match the client being updated",
            ));
        }
        if let Some(presented) = &request.client_secret {
            let current = client.secret_hash.as_deref().unwrap_or_default();
            if !secret::secret_matches(presented, current) {
                return Err(OAuthError::invalid_request(
                    "client_secret does not match the client's current secret",
                ));
            }
        }
        let valid = self.validate_metadata(&request, Some(&client))?;
        // The secret stays as it is: a client cannot become public, nor public one confidential.
        if (valid.auth_method == AuthMethod::None) != client.is_public() {
            return Err(OAuthError::invalid_client_metadata(format!(
                "token_endpoint_auth_method cannot change from {} to {}; register a new client",
                client.auth_method.as_str(),
                valid.auth_method.as_str()
            )));
        }
        let before = client.clone();
        client.name = valid.name;
        client.grant_types = valid.grant_types;
        client.scopes = Some(valid.scopes);
        client.auth_method = valid.auth_method;
        client.redirect_uris = valid.redirect_uris;
        client.post_logout_redirect_uris = valid.post_logout_redirect_uris;
        client.skip_consent = false;
        client.updated_at = self.now();
        let update = Write::UpdateClient {
            cutoff: before.takes_away(&client).then(|| self.revocation_cutoff()),
            client: client.clone(),
        };
        self.commit(&[update], || {
            OAuthError::invalid_token(BAD_REGISTRATION_TOKEN)
        })
        .await?;
        self.forget_client(client_id);
        self.audit("client.updated", Some(client_id), Some(client_id), ctx, "")
            .await;
        Ok(self.metadata_of(&client))
    }

    /// `DELETE /oauth2/register/{client_id}`.
    pub async fn delete_registration(
        &self,
        client_id: &str,
        registration_token: Option<&str>,
        ctx: &RequestContext,
    ) -> Result<(), OAuthError> {
        self.client_for_registration(client_id, registration_token)
            .await?;
        let deleted = Write::DeleteClient {
            id: client_id.to_owned(),
            cutoff: self.revocation_cutoff(),
        };
        self.commit(&[deleted], || {
            OAuthError::invalid_token(BAD_REGISTRATION_TOKEN)
        })
        .await?;
        self.forget_client(client_id);
        self.audit("client.deleted", Some(client_id), Some(client_id), ctx, "")
            .await;
        Ok(())
    }

    /// The client, if the registration access token is its own. An unknown client and a wrong token
    /// get the same answer (RFC 7592 §2: 401, and no hint that the client exists).
    async fn client_for_registration(
        &self,
        client_id: &str,
        token: Option<&str>,
    ) -> Result<Client, OAuthError> {
        let token = token.ok_or_else(|| OAuthError::invalid_token(BAD_REGISTRATION_TOKEN))?;
        let client = self.store.client(client_id).await?;
        match client {
            // A blocked client's registration is the operators' until they unblock it: the
            // client may not read, change or delete it (which would erase the block).
            Some(c)
                if c.registration_token_hash
                    .as_deref()
                    .is_some_and(|h| secret::secret_matches(token, h))
                    && c.blocked_at.is_none() =>
            {
                Ok(c)
            }
            _ => Err(OAuthError::invalid_token(BAD_REGISTRATION_TOKEN)),
        }
    }

    fn metadata_of(&self, client: &Client) -> ClientMetadata {
        ClientMetadata {
            client_id: client.id.clone(),
            client_name: client.name.clone(),
            grant_types: client
                .grant_types
                .iter()
                .map(|g| g.as_str().to_owned())
                .collect(),
            scope: client
                .scopes
                .as_ref()
                .map(ToString::to_string)
                .unwrap_or_default(),
            token_endpoint_auth_method: client.auth_method.as_str().into(),
            response_types: if client.allows(GrantType::AuthorizationCode) {
                vec!["code".into()]
            } else {
                Vec::new()
            },
            redirect_uris: client.redirect_uris.clone(),
            post_logout_redirect_uris: client.post_logout_redirect_uris.clone(),
            client_id_issued_at: client.created_at,
            registration_client_uri: format!(
                "{}/oauth2/register/{}",
                self.config.base_url(),
                client.id
            ),
        }
    }

    /// Checks metadata against the registration policy (`current` is `None`), or, for an update
    /// of `current` (RFC 7592), against what the client holds now: an update may keep or narrow
    /// its scopes and grant types, never widen them, whatever the policy allows. What an
    /// operator narrowed stays narrowed, and what an operator granted beyond the policy can be
    /// kept.
    fn validate_metadata(
        &self,
        request: &RegistrationRequest,
        current: Option<&Client>,
    ) -> Result<ValidMetadata, OAuthError> {
        let policy = &self.config.registration;
        let name = request
            .client_name
            .clone()
            .unwrap_or_else(|| "unnamed client".into());
        if name.trim().is_empty()
            || name.chars().count() > NAME_MAX
            || name.chars().any(char::is_control)
        {
            return Err(OAuthError::invalid_client_metadata(
                "client_name must be 1 to 200 printable characters",
            ));
        }
        let auth_method = match request.token_endpoint_auth_method.as_deref() {
            None => AuthMethod::ClientSecretBasic,
            Some(m) => m.parse::<AuthMethod>().map_err(|()| {
                OAuthError::invalid_client_metadata(
                    "token_endpoint_auth_method must be client_secret_basic, client_secret_post \
                     or none",
                )
            })?,
        };
        let redirect_uris = checked_uris(request.redirect_uris.as_deref().unwrap_or_default())
            .map_err(|problem| {
                OAuthError::new(
                    OAuthErrorCode::InvalidRedirectUri,
                    format!("redirect_uris: {problem}"),
                )
            })?;
        let post_logout_redirect_uris = checked_uris(
            request
                .post_logout_redirect_uris
                .as_deref()
                .unwrap_or_default(),
        )
        .map_err(|problem| {
            OAuthError::invalid_client_metadata(format!("post_logout_redirect_uris: {problem}"))
        })?;
        let requested_grants = match (&request.grant_types, current) {
            (Some(named), _) => named.clone(),
            // An update that names none keeps what the client has.
            (None, Some(client)) => client
                .grant_types
                .iter()
                .map(|g| g.as_str().to_owned())
                .collect(),
            (None, None) => vec![default_grant(!redirect_uris.is_empty()).as_str().into()],
        };
        if requested_grants.is_empty() {
            return Err(OAuthError::invalid_client_metadata(
                "grant_types must not be empty",
            ));
        }
        let mut grant_types = Vec::new();
        for name in &requested_grants {
            let grant = match current {
                None => name
                    .parse::<GrantType>()
                    .ok()
                    .filter(|_| policy.allowed_grant_types.iter().any(|g| g == name))
                    .ok_or_else(|| {
                        OAuthError::invalid_client_metadata(format!(
                            "grant type {name:?} is not available to self-registered clients (allowed: {})",
                            policy.allowed_grant_types.join(", ")
                        ))
                    })?,
                Some(client) => name
                    .parse::<GrantType>()
                    .ok()
                    .filter(|g| client.grant_types.contains(g))
                    .ok_or_else(|| {
                        OAuthError::invalid_client_metadata(format!(
                            "grant type {name:?} is not one this client holds; an update may only \
                             keep or drop grant types (held: {})",
                            client
                                .grant_types
                                .iter()
                                .map(|g| g.as_str())
                                .collect::<Vec<_>>()
                                .join(", ")
                        ))
                    })?,
            };
            if !grant_types.contains(&grant) {
                grant_types.push(grant);
            }
        }
        grant_rules(auth_method, &grant_types).map_err(OAuthError::invalid_client_metadata)?;
        let code_flow = grant_types.contains(&GrantType::AuthorizationCode);
        match request.response_types.as_deref() {
            None => {}
            Some([only]) if only == "code" && code_flow => {}
            Some([]) if !code_flow => {}
            Some(_) if code_flow => {
                return Err(OAuthError::invalid_client_metadata(
                    "response_types must be [\"code\"]: it is the only response type supported",
                ));
            }
            Some(_) => {
                return Err(OAuthError::invalid_client_metadata(
                    "response_types must be empty or omitted without the authorization_code grant",
                ));
            }
        }
        redirect_rules(code_flow, &redirect_uris, &post_logout_redirect_uris).map_err(
            |(_, problem)| {
                if code_flow {
                    // The code flow without a redirect URI (RFC 7591 §3.2.2).
                    OAuthError::new(OAuthErrorCode::InvalidRedirectUri, problem)
                } else {
                    OAuthError::invalid_client_metadata(problem)
                }
            },
        )?;
        // Always a limit, never `None` (which would be a first-party client's "whatever the user
        // holds"): a self-registered client gets at most the policy's scopes, whichever grant it
        // uses, and people's identity scopes only through the browser, where they consent.
        // Even a policy that lists it cannot hand out introspection of others' tokens.
        let allowed = ScopeSet::from_tokens(
            policy
                .allowed_scopes
                .iter()
                .filter(|s| s.as_str() != INTROSPECT_SCOPE),
        )
        .map_err(|e| OAuthError::invalid_client_metadata(e.to_string()))?;
        let askable = if code_flow {
            allowed.union(
                &ScopeSet::from_tokens(IDENTITY_SCOPES)
                    .map_err(|e| OAuthError::invalid_client_metadata(e.to_string()))?,
            )
        } else {
            allowed.clone()
        };
        let scopes = match (&request.scope, current) {
            (None, None) => allowed,
            // An update that names none keeps what the client has.
            (None, Some(client)) => client.scopes.clone().unwrap_or_default(),
            (Some(text), _) => {
                let asked = ScopeSet::parse(text)
                    .map_err(|e| OAuthError::invalid_client_metadata(e.to_string()))?;
                if current.is_none() && asked.contains(INTROSPECT_SCOPE) {
                    return Err(OAuthError::invalid_client_metadata(format!(
                        "scope {INTROSPECT_SCOPE} is granted only by an operator"
                    )));
                }
                // An update is bounded by the client's scopes now (none: a first-party client,
                // which any named set narrows).
                let (bound, whose) = match current.map(|c| c.scopes.as_ref()) {
                    None => (Some(&askable), "available to self-registered clients"),
                    Some(held) => (
                        held,
                        "held by this client; an update may only keep or narrow them",
                    ),
                };
                if let Some(bound) = bound {
                    let outside: Vec<&str> = asked.outside(bound).collect();
                    if !outside.is_empty() {
                        return Err(OAuthError::invalid_client_metadata(format!(
                            "scopes not {whose}: {}",
                            outside.join(" ")
                        )));
                    }
                }
                asked
            }
        };
        Ok(ValidMetadata {
            name,
            grant_types,
            scopes,
            auth_method,
            redirect_uris,
            post_logout_redirect_uris,
        })
    }
}

/// The most URIs either redirect list of a client may hold.
pub(crate) const MAX_REDIRECT_URIS: usize = 10;

/// The longest piece of a refused URI quoted back in an error.
const QUOTED_URI_MAX: usize = 100;

/// A list of redirect (or post-logout redirect) URIs, each checked with [`check_redirect_uri`]
/// and kept once, in the order given. `Err` names the first bad URI and what is wrong with it.
pub(crate) fn checked_uris(uris: &[String]) -> Result<Vec<String>, String> {
    match uri_problems(uris).into_iter().next() {
        Some(problem) => Err(problem),
        None => {
            let mut kept: Vec<String> = Vec::with_capacity(uris.len());
            for uri in uris {
                if !kept.contains(uri) {
                    kept.push(uri.clone());
                }
            }
            Ok(kept)
        }
    }
}

/// What is wrong with a list of redirect URIs: too many of them, or each bad URI named with
/// why it is refused. Empty when the list is fine.
pub(crate) fn uri_problems(uris: &[String]) -> Vec<String> {
    if uris.len() > MAX_REDIRECT_URIS {
        return vec![format!(
            "at most {MAX_REDIRECT_URIS} URIs may be registered, not {}",
            uris.len()
        )];
    }
    uris.iter()
        .filter_map(|uri| {
            check_redirect_uri(uri)
                .err()
                .map(|why| format!("{} is refused: {why}", quoted(uri)))
        })
        .collect()
}

/// `uri` quoted for an error description, cut short if long.
fn quoted(uri: &str) -> String {
    match uri.char_indices().nth(QUOTED_URI_MAX) {
        Some((end, _)) => format!("{:?}…", &uri[..end]),
        None => format!("{uri:?}"),
    }
}

/// The grant a client gets when it names none: the code flow for one with redirect URIs (RFC 7591
/// §2's default), else `client_credentials` (a machine client, as before the code flow).
pub(crate) fn default_grant(has_redirect_uris: bool) -> GrantType {
    if has_redirect_uris {
        GrantType::AuthorizationCode
    } else {
        GrantType::ClientCredentials
    }
}

/// Which grant types go together: a public client has no credentials of its own to use
/// `client_credentials` with, and `refresh_token` only refreshes what a grant for a person issued.
pub(crate) fn grant_rules(auth_method: AuthMethod, grants: &[GrantType]) -> Result<(), String> {
    if auth_method == AuthMethod::None && grants.contains(&GrantType::ClientCredentials) {
        return Err("a public client (auth method none) cannot use client_credentials".into());
    }
    if grants.contains(&GrantType::RefreshToken)
        && !grants.contains(&GrantType::AuthorizationCode)
        && !grants.contains(&GrantType::Password)
    {
        return Err("refresh_token needs the authorization_code (or password) grant".into());
    }
    Ok(())
}

/// The list a redirect-rule problem is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RedirectField {
    RedirectUris,
    PostLogout,
}

impl RedirectField {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::RedirectUris => "redirect_uris",
            Self::PostLogout => "post_logout_redirect_uris",
        }
    }
}

/// The code flow needs somewhere to send people back; without it, redirect URIs of either kind
/// would never be used, and are refused rather than kept unused.
pub(crate) fn redirect_rules(
    code_flow: bool,
    redirect_uris: &[String],
    post_logout_redirect_uris: &[String],
) -> Result<(), (RedirectField, String)> {
    let field = RedirectField::RedirectUris;
    if code_flow && redirect_uris.is_empty() {
        return Err((
            field,
            "the authorization_code grant needs at least one redirect URI in redirect_uris".into(),
        ));
    }
    if !code_flow {
        for (field, uris) in [
            (field, redirect_uris),
            (RedirectField::PostLogout, post_logout_redirect_uris),
        ] {
            if !uris.is_empty() {
                return Err((
                    field,
                    format!(
                        "{} are only for clients with the authorization_code grant",
                        field.name()
                    ),
                ));
            }
        }
    }
    Ok(())
}
