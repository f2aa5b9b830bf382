//! People's accounts: signup, their own profile, password change, and the bearer-token check that
//! the account endpoints share.

use gatehouse_proto::account::{NewUser, PasswordChange, UserView};
use gatehouse_token::AccessClaims;

use super::AuthService;
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
        let mut errors = Vec::new();
        validate::username(&new.username, &mut errors);
        validate::email(&new.email, &mut errors);
        validate::password("password", &new.password, &mut errors);
        validate::finish(errors)?;
        // Cheap check first, so a taken name costs no hashing; the insert still enforces uniqueness.
        if self.store.user_by_username(&new.username).await?.is_some() {
            return Err(username_taken());
        }
        let user = self
            .new_user(
                &new.username,
                &new.email,
                &new.password,
                vec![USER_ROLE.into()],
            )
            .await?;
        match self.store.insert_user(&user).await {
            Err(StoreError::Conflict(_)) => return Err(username_taken()),
            other => other?,
        }
        self.audit("user.signup", Some(&user.id), None, ctx, &user.username)
            .await;
        Ok(UserView::from(&user))
    }

    pub(super) async fn new_user(
        &self,
        username: &str,
        email: &str,
        password: &str,
        roles: Vec<String>,
    ) -> Result<User, StoreError> {
        let now = self.now();
        Ok(User {
            id: format!("usr_{}", secret::random_string(16)?),
            username: username.to_owned(),
            email: email.to_owned(),
            password_hash: self.hasher.hash(password).await?,
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
        // Same throttle as logins: a stolen access token must not allow unlimited guessing.
        let locked = self
            .throttle
            .is_locked(&user.username, self.clock.since_epoch());
        let matched = self
            .hasher
            .verify(&change.current_password, Some(&user.password_hash))
            .await?;
        if !matched || locked {
            let outcome = self
                .throttle
                .record_failure(&user.username, self.clock.since_epoch());
            self.audit("password.change_failed", Some(&user.id), None, ctx, "")
                .await;
            tokio::time::sleep(outcome.delay).await;
            return Err(ApiError::field(
                "current_password",
                "does not match the current password",
            ));
        }
        self.throttle.record_success(&user.username);
        let hash = self.hasher.hash(&change.new_password).await?;
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
