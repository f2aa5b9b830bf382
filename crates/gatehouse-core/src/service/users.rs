//! People's accounts: signup, their own profile, password change, and the bearer-token check that
//! the account endpoints share.

use gatehouse_proto::account::{NewUser, PasswordChange, UserView};
use gatehouse_token::AccessClaims;

use super::AuthService;
use crate::password::HashSource;
use crate::throttle::Source;
use crate::{
    ADMIN_ROLE, ApiError, RequestContext, StoreError, TokenProblem, USER_ROLE, User, secret,
    validate,
};

impl From<&User> for UserView {
    fn from(u: &User) -> Self {
        Self {
            id: u.id.clone(),
            username: u.username.clone(),
            email: u.email.clone(),
            roles: u.roles.clone(),
            created_at: u.created_at,
        }
    }
}

impl AuthService {
    /// `POST /users`: a new account with the `user` role.
    pub async fn sign_up(&self, new: NewUser, ctx: &RequestContext) -> Result<UserView, ApiError> {
        self.sign_up_user(new, ctx)
            .await
            .map(|u| UserView::from(&u))
    }

    /// [`AuthService::sign_up`], giving the account as stored (the hosted sign-up page signs it
    /// in at once).
    pub async fn sign_up_user(&self, new: NewUser, ctx: &RequestContext) -> Result<User, ApiError> {
        let mut errors = Vec::new();
        validate::username(&new.username, &mut errors);
        validate::email(&new.email, &mut errors);
        validate::password("password", &new.password, &mut errors);
        validate::finish(errors)?;
        // Cheap check first, so a taken name costs no hashing; the insert still enforces uniqueness.
        if self.store.user_by_username(&new.username).await?.is_some() {
            return Err(username_taken());
        }
        // Sign-ups hash too: one address gets only its share of the hashing queue.
        let source = HashSource {
            ip: ctx.ip.clone(),
            username: Some(new.username.clone()),
        };
        let password_hash = self.hasher.hash(&new.password, &source).await?;
        let user = self.user_record(
            &new.username,
            &new.email,
            password_hash,
            vec![USER_ROLE.into()],
        )?;
        match self.store.insert_user(&user).await {
            Err(StoreError::Conflict(_)) => return Err(username_taken()),
            other => other?,
        }
        self.audit("user.signup", Some(&user.id), None, ctx, &user.username)
            .await;
        Ok(user)
    }

    pub(super) async fn new_user(
        &self,
        username: &str,
        email: &str,
        password: &str,
        roles: Vec<String>,
    ) -> Result<User, StoreError> {
        let password_hash = self.hasher.hash(password, &HashSource::default()).await?;
        self.user_record(username, email, password_hash, roles)
    }

    fn user_record(
        &self,
        username: &str,
        email: &str,
        password_hash: String,
        roles: Vec<String>,
    ) -> Result<User, StoreError> {
        let now = self.now();
        Ok(User {
            id: format!("usr_{}", secret::random_string(16)?),
            username: username.to_owned(),
            email: email.to_owned(),
            password_hash,
            roles,
            created_at: now,
            updated_at: now,
            blocked_at: None,
            not_before: 0,
        })
    }

    /// Creates the first administrator when no user of that name exists; returns whether it did.
    pub async fn ensure_admin(&self, username: &str, password: &str) -> Result<bool, ApiError> {
        let mut errors = Vec::new();
        validate::username(username, &mut errors);
        validate::password("password", password, &mut errors);
        validate::finish(errors)?;
        if self.store.user_by_username(username).await?.is_some() {
            return Ok(false);
        }
        let user = self
            .new_user(
                username,
                &format!("{username}@localhost.invalid"),
                password,
                vec![ADMIN_ROLE.into(), USER_ROLE.into()],
            )
            .await?;
        match self.store.insert_user(&user).await {
            Ok(()) => Ok(true),
            Err(StoreError::Conflict(_)) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// The user a bearer token presented to the account endpoints speaks for, after every check of
    /// [`AuthService::check_access_token`]. A machine token is refused with 403.
    pub async fn user_from_token(&self, token: &str) -> Result<(User, AccessClaims), ApiError> {
        let live = self
            .check_access_token(token)
            .await
            .map_err(ApiError::Unauthorized)?;
        match live.user {
            Some(user) => Ok((user, live.claims)),
            None => Err(ApiError::Unauthorized(TokenProblem::InsufficientScope(
                "this endpoint needs a user's token, not a client's".into(),
            ))),
        }
    }

    /// `PUT /users/me/password`: needs the current password; ends every session of the user.
    pub async fn change_password(
        &self,
        user: &User,
        change: PasswordChange,
        ctx: &RequestContext,
    ) -> Result<(), ApiError> {
        let mut errors = Vec::new();
        validate::password("new_password", &change.new_password, &mut errors);
        validate::finish(errors)?;
        // Counted like a login, before the check, with a count of its own: a stolen access token
        // must not allow unlimited guessing, and guesses at the sign-in do not block the change.
        let source = Source::PasswordChange;
        let attempt = self
            .throttle
            .reserve(&user.username, &source, self.clock.since_epoch());
        let hash_source = HashSource {
            ip: ctx.ip.clone(),
            username: Some(user.username.clone()),
        };
        let matched = self
            .hasher
            .verify(
                &change.current_password,
                Some(&user.password_hash),
                &hash_source,
            )
            .await?;
        if !matched || attempt.locked {
            self.audit("password.change_failed", Some(&user.id), None, ctx, "")
                .await;
            self.audit_lock(&attempt, &user.username, &source, Some(&user.id), None, ctx)
                .await;
            tokio::time::sleep(attempt.delay).await;
            return Err(ApiError::field(
                "current_password",
                "does not match the current password",
            ));
        }
        self.throttle.record_success(&user.username, &source);
        let hash = self.hasher.hash(&change.new_password, &hash_source).await?;
        // Sessions end in the same transaction: a refresh racing this change then fails on its
        // revoked family, or its token dies with the session it names.
        let now = self.now();
        let changed = crate::Write::SetUserPassword {
            id: user.id.clone(),
            password_hash: hash,
            not_before: self.revocation_cutoff(),
            now,
            tokens_expire_by: self.tokens_expire_by(now),
        };
        self.commit(&[changed], || ApiError::NotFound("user".into()))
            .await?;
        self.audit(
            "password.changed",
            Some(&user.id),
            None,
            ctx,
            "every session and token revoked",
        )
        .await;
        Ok(())
    }
}

fn username_taken() -> ApiError {
    ApiError::Conflict("that username is taken".into())
}
