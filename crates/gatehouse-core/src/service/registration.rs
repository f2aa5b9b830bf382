//! Dynamic client registration (RFC 7591) and its management protocol (RFC 7592).

use gatehouse_proto::registration::{ClientMetadata, RegisteredClient, RegistrationRequest};

use super::AuthService;
use crate::config::RegistrationMode;
use crate::{AuthMethod, Client, GrantType, OAuthError, RequestContext, ScopeSet, Write, secret};

const NAME_MAX: usize = 200;
const BAD_REGISTRATION_TOKEN: &str = "the registration access token is invalid";

struct ValidMetadata {
    name: String,
    grant_types: Vec<GrantType>,
    scopes: ScopeSet,
    auth_method: AuthMethod,
}

impl AuthService {
    /// Whether a registration may proceed with the presented initial access token.
    pub fn registration_allowed(&self, bearer: Option<&str>) -> Result<(), OAuthError> {
        let policy = &self.config.registration;
        match policy.mode {
            RegistrationMode::Open => Ok(()),
            RegistrationMode::Closed => Err(OAuthError::new(
                crate::OAuthErrorCode::AccessDenied,
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
        let valid = self.validate_metadata(&request)?;
        let now = self.now();
        let client_secret = secret::random_secret()?;
        let registration_access_token = secret::random_secret()?;
        let id = format!("cl_{}", secret::random_string(16)?);
        let client = Client {
            secret_hash: Some(secret::hash_secret(&client_secret)),
            scopes: Some(valid.scopes),
            registration_token_hash: Some(secret::hash_secret(&registration_access_token)),
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
            client_secret,
            client_secret_expires_at: 0,
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
        let valid = self.validate_metadata(&request)?;
        let before = client.clone();
        client.name = valid.name;
        client.grant_types = valid.grant_types;
        client.scopes = Some(valid.scopes);
        client.auth_method = valid.auth_method;
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
            Some(c)
                if c.registration_token_hash
                    .as_deref()
                    .is_some_and(|h| secret::secret_matches(token, h)) =>
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
            client_id_issued_at: client.created_at,
            registration_client_uri: format!(
                "{}/oauth2/register/{}",
                self.config.base_url(),
                client.id
            ),
        }
    }

    fn validate_metadata(
        &self,
        request: &RegistrationRequest,
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
        let requested_grants = request
            .grant_types
            .clone()
            .unwrap_or_else(|| vec![GrantType::ClientCredentials.as_str().into()]);
        if requested_grants.is_empty() {
            return Err(OAuthError::invalid_client_metadata(
                "grant_types must not be empty",
            ));
        }
        let mut grant_types = Vec::new();
        for name in &requested_grants {
            let grant = name
                .parse::<GrantType>()
                .ok()
                .filter(|_| policy.allowed_grant_types.iter().any(|g| g == name))
                .ok_or_else(|| {
                    OAuthError::invalid_client_metadata(format!(
                        "grant type {name:?} is not available to self-registered clients (allowed: {})",
                        policy.allowed_grant_types.join(", ")
                    ))
                })?;
            if !grant_types.contains(&grant) {
                grant_types.push(grant);
            }
        }
        let allowed = ScopeSet::from_tokens(&policy.allowed_scopes)
            .map_err(|e| OAuthError::invalid_client_metadata(e.to_string()))?;
        let scopes = match &request.scope {
            None => allowed.clone(),
            Some(text) => {
                let asked = ScopeSet::parse(text)
                    .map_err(|e| OAuthError::invalid_client_metadata(e.to_string()))?;
                let outside: Vec<&str> = asked.outside(&allowed).collect();
                if !outside.is_empty() {
                    return Err(OAuthError::invalid_client_metadata(format!(
                        "scopes not available to self-registered clients: {}",
                        outside.join(" ")
                    )));
                }
                asked
            }
        };
        let auth_method = match request.token_endpoint_auth_method.as_deref() {
            None => AuthMethod::ClientSecretBasic,
            Some(m) => match m.parse::<AuthMethod>() {
                Ok(method @ (AuthMethod::ClientSecretBasic | AuthMethod::ClientSecretPost)) => {
                    method
                }
                _ => {
                    return Err(OAuthError::invalid_client_metadata(
                        "token_endpoint_auth_method must be client_secret_basic or client_secret_post",
                    ));
                }
            },
        };
        Ok(ValidMetadata {
            name,
            grant_types,
            scopes,
            auth_method,
        })
    }
}
