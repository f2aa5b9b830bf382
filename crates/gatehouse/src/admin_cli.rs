//! `gatehouse admin …`: operators' commands that work on the store directly, for first set-up and
//! for when no admin token is at hand. Changes go through the same service as the admin API, so
//! they are validated and audited alike, and running servers learn of them through the change log.

use std::io::BufRead;
use std::sync::Arc;

use anyhow::Context;
use clap::{Args, Subcommand};
use gatehouse_core::service::Actor;
use gatehouse_core::{ApiError, AuthService, RequestContext};
use gatehouse_proto::account::NewUser;
use gatehouse_proto::admin::{ClientPatch, NewClient, PageRequest, UserPatch};
use serde::Serialize;

use crate::config::Settings;
use gatehouse::files::{load_kek, open_store};

#[derive(Subcommand)]
pub enum AdminCommand {
    /// People's accounts.
    #[command(subcommand)]
    User(UserCommand),
    /// Clients: machines, and applications people sign in to.
    #[command(subcommand)]
    Client(ClientCommand),
    /// Signing keys.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// End every session and kill every token of a user or client.
    RevokeAll {
        /// User id, username, or client id.
        #[arg(long)]
        subject: String,
    },
}

#[derive(Subcommand)]
pub enum UserCommand {
    /// Create a user; the password is read from the first line of standard input.
    Create {
        #[arg(long)]
        username: String,
        #[arg(long)]
        email: String,
        /// A role to hold (repeatable); default `user`.
        #[arg(long = "role")]
        roles: Vec<String>,
    },
    /// List users.
    List(ListArgs),
    /// Block a user (by id or username): every session and token ends.
    Block { user: String },
    /// Unblock a user.
    Unblock { user: String },
}

#[derive(Subcommand)]
pub enum ClientCommand {
    /// Create a client; its secret is printed once.
    Create {
        #[arg(long)]
        name: String,
        /// Space-separated scopes it may have; omit for a first-party client.
        #[arg(long)]
        scope: Option<String>,
        /// A grant type (repeatable); default client_credentials.
        #[arg(long = "grant")]
        grants: Vec<String>,
        /// A role (client category) to hold (repeatable).
        #[arg(long = "role")]
        roles: Vec<String>,
        /// A public client: no secret (for the authorization_code, password and refresh_token
        /// grants; not client_credentials).
        #[arg(long)]
        public: bool,
        /// Where sign-in may send people back (repeatable); needed for the authorization_code
        /// grant, which is the default when one is given.
        #[arg(long = "redirect-uri")]
        redirect_uris: Vec<String>,
        /// Where logout may send people afterwards (repeatable).
        #[arg(long = "post-logout-redirect-uri")]
        post_logout_redirect_uris: Vec<String>,
        /// A first-party application: people are not asked to consent to it.
        #[arg(long)]
        skip_consent: bool,
    },
    /// Change a client: only what is given changes; a repeatable option replaces the whole list.
    Update {
        client_id: String,
        #[arg(long)]
        name: Option<String>,
        /// Space-separated scopes it may have.
        #[arg(long)]
        scope: Option<String>,
        /// A role to hold (repeatable); replaces the roles it holds.
        #[arg(long = "role")]
        roles: Vec<String>,
        /// Where sign-in may send people back (repeatable); replaces the list.
        #[arg(long = "redirect-uri")]
        redirect_uris: Vec<String>,
        /// Where logout may send people afterwards (repeatable); replaces the list.
        #[arg(long = "post-logout-redirect-uri")]
        post_logout_redirect_uris: Vec<String>,
        /// Remove every post-logout redirect URI.
        #[arg(long, conflicts_with = "post_logout_redirect_uris")]
        clear_post_logout_redirect_uris: bool,
        /// Make it first-party: people are no longer asked to consent to it.
        #[arg(long)]
        skip_consent: bool,
        /// Ask people to consent to it again.
        #[arg(long, conflicts_with = "skip_consent")]
        ask_consent: bool,
    },
    /// List clients.
    List(ListArgs),
    /// Block a client: no new tokens, and every token it has is dead.
    Block { client_id: String },
    /// Unblock a client.
    Unblock { client_id: String },
    /// Issue a new secret; the old one works for the configured overlap.
    RotateSecret { client_id: String },
}

#[derive(Subcommand)]
pub enum KeysCommand {
    /// Rotate the signing key (published now, signing after the activation delay).
    Rotate,
    /// List the signing keys.
    List,
}

#[derive(Args)]
pub struct ListArgs {
    #[arg(long, default_value_t = 50)]
    limit: u32,
    /// The `next_cursor` of the previous page.
    #[arg(long)]
    cursor: Option<String>,
}

impl ListArgs {
    fn page(&self) -> PageRequest {
        PageRequest {
            limit: Some(self.limit),
            cursor: self.cursor.clone(),
        }
    }
}

/// Prints a result as JSON, or fails with the error and each invalid field.
fn emit<T: Serialize>(result: Result<T, ApiError>) -> anyhow::Result<()> {
    match result {
        Ok(value) => {
            println!("{}", serde_json::to_string_pretty(&value)?);
            Ok(())
        }
        Err(ApiError::Validation(errors)) => {
            let fields: Vec<String> = errors
                .iter()
                .map(|e| format!("{}: {}", e.field, e.detail))
                .collect();
            anyhow::bail!("invalid input: {}", fields.join("; "))
        }
        Err(e) => Err(e.into()),
    }
}

fn read_password() -> anyhow::Result<String> {
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .context("cannot read the password from standard input")?;
    Ok(line.trim_end_matches(['\r', '\n']).to_owned())
}

pub async fn run(settings: Settings, command: AdminCommand) -> anyhow::Result<()> {
    let store = open_store(&settings).await?;
    let kek = load_kek(&settings)?;
    let service = Arc::new(
        AuthService::start(settings.auth.clone(), Arc::new(store.clone()), kek)
            .await
            .context("cannot open the authorization server's data")?,
    );
    let actor = Actor {
        id: format!(
            "cli:{}",
            std::env::var("USER").unwrap_or_else(|_| "operator".into())
        ),
    };
    let ctx = RequestContext::default();
    let s = &service;
    let result = match command {
        AdminCommand::User(UserCommand::Create {
            username,
            email,
            roles,
        }) => {
            let password = read_password()?;
            let roles = if roles.is_empty() {
                vec![gatehouse_core::USER_ROLE.to_owned()]
            } else {
                roles
            };
            let new = NewUser {
                username,
                password,
                email,
            };
            emit(s.admin_create_user(&actor, new, roles, &ctx).await)
        }
        AdminCommand::User(UserCommand::List(list)) => emit(s.admin_list_users(&list.page()).await),
        AdminCommand::User(UserCommand::Block { user }) => {
            let id = match s.resolve_user(&user).await {
                Ok(id) => id,
                Err(e) => return emit::<()>(Err(e)),
            };
            let patch = UserPatch {
                blocked: Some(true),
                roles: None,
            };
            emit(s.admin_patch_user(&actor, &id, patch, &ctx).await)
        }
        AdminCommand::User(UserCommand::Unblock { user }) => {
            let id = match s.resolve_user(&user).await {
                Ok(id) => id,
                Err(e) => return emit::<()>(Err(e)),
            };
            let patch = UserPatch {
                blocked: Some(false),
                roles: None,
            };
            emit(s.admin_patch_user(&actor, &id, patch, &ctx).await)
        }
        AdminCommand::Client(ClientCommand::Create {
            name,
            scope,
            grants,
            roles,
            public,
            redirect_uris,
            post_logout_redirect_uris,
            skip_consent,
        }) => {
            let new = NewClient {
                name,
                grant_types: (!grants.is_empty()).then_some(grants),
                scope,
                roles,
                token_endpoint_auth_method: public.then(|| "none".to_owned()),
                redirect_uris,
                post_logout_redirect_uris,
                skip_consent,
            };
            emit(s.admin_create_client(&actor, new, &ctx).await)
        }
        AdminCommand::Client(ClientCommand::Update {
            client_id,
            name,
            scope,
            roles,
            redirect_uris,
            post_logout_redirect_uris,
            clear_post_logout_redirect_uris,
            skip_consent,
            ask_consent,
        }) => {
            let post_logout_redirect_uris = if clear_post_logout_redirect_uris {
                Some(Vec::new())
            } else {
                (!post_logout_redirect_uris.is_empty()).then_some(post_logout_redirect_uris)
            };
            let patch = ClientPatch {
                name,
                scope,
                roles: (!roles.is_empty()).then_some(roles),
                redirect_uris: (!redirect_uris.is_empty()).then_some(redirect_uris),
                post_logout_redirect_uris,
                skip_consent: (skip_consent || ask_consent).then_some(skip_consent),
                ..ClientPatch::default()
            };
            emit(s.admin_patch_client(&actor, &client_id, patch, &ctx).await)
        }
        AdminCommand::Client(ClientCommand::List(list)) => {
            emit(s.admin_list_clients(&list.page()).await)
        }
        AdminCommand::Client(ClientCommand::Block { client_id }) => {
            let patch = ClientPatch {
                blocked: Some(true),
                ..ClientPatch::default()
            };
            emit(s.admin_patch_client(&actor, &client_id, patch, &ctx).await)
        }
        AdminCommand::Client(ClientCommand::Unblock { client_id }) => {
            let patch = ClientPatch {
                blocked: Some(false),
                ..ClientPatch::default()
            };
            emit(s.admin_patch_client(&actor, &client_id, patch, &ctx).await)
        }
        AdminCommand::Client(ClientCommand::RotateSecret { client_id }) => {
            emit(s.admin_rotate_client_secret(&actor, &client_id, &ctx).await)
        }
        AdminCommand::Keys(KeysCommand::Rotate) => emit(s.rotate_signing_key(&actor, &ctx).await),
        AdminCommand::Keys(KeysCommand::List) => emit(s.list_signing_keys().await),
        AdminCommand::RevokeAll { subject } => {
            let id = match s.resolve_user(&subject).await {
                Ok(user_id) => user_id,
                Err(_) => subject,
            };
            emit(s.admin_revoke_all(&actor, &id, &ctx).await)
        }
    };
    store.close().await;
    result
}
