//! Password hashing with argon2id (OWASP parameters), off the async threads and bounded.

use std::sync::Arc;

use argon2::password_hash::{PasswordHasher as _, PasswordVerifier as _};
use argon2::{Algorithm, Argon2, Params, Version};
use tokio::sync::Semaphore;

use crate::StoreError;

/// OWASP's argon2id recommendation: 19 MiB, 2 passes, 1 lane.
fn argon2() -> Result<Argon2<'static>, StoreError> {
    let params = Params::new(19 * 1024, 2, 1, None)
        .map_err(|e| StoreError::Backend(format!("argon2 parameters: {e}")))?;
    Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
}

/// Hashes and verifies passwords on the blocking pool, at most `limit` at once, so a flood of logins
/// queues here instead of starving the async workers that serve every other request.
#[derive(Clone)]
pub struct PasswordHasher {
    permits: Arc<Semaphore>,
    /// Verified against when a username is unknown, so that answer takes as long as a wrong password.
    dummy_hash: Arc<str>,
}

impl PasswordHasher {
    pub fn new(limit: usize) -> Result<Self, StoreError> {
        let dummy_hash = hash_blocking("gatehouse-dummy-password-for-timing")?;
        Ok(Self {
            permits: Arc::new(Semaphore::new(limit.max(1))),
            dummy_hash: dummy_hash.into(),
        })
    }

    pub async fn hash(&self, password: &str) -> Result<String, StoreError> {
        let _permit = self.acquire().await?;
        let password = password.to_owned();
        tokio::task::spawn_blocking(move || hash_blocking(&password))
            .await
            .map_err(|e| StoreError::Backend(format!("hashing task failed: {e}")))?
    }

    /// Verifies `password` against `stored`, or against a dummy hash when there is no user, so
    /// both cases cost the same.
    pub async fn verify(&self, password: &str, stored: Option<&str>) -> Result<bool, StoreError> {
        let _permit = self.acquire().await?;
        let password = password.to_owned();
        let known = stored.is_some();
        let hash = stored.map_or_else(|| self.dummy_hash.to_string(), str::to_owned);
        let matched = tokio::task::spawn_blocking(move || {
            argon2().map(|a| {
                a.verify_password(password.as_bytes(), hash.as_str())
                    .is_ok()
            })
        })
        .await
        .map_err(|e| StoreError::Backend(format!("verification task failed: {e}")))??;
        Ok(known && matched)
    }

    async fn acquire(&self) -> Result<tokio::sync::SemaphorePermit<'_>, StoreError> {
        self.permits
            .acquire()
            .await
            .map_err(|_| StoreError::Backend("password hasher closed".into()))
    }
}

fn hash_blocking(password: &str) -> Result<String, StoreError> {
    argon2()?
        .hash_password(password.as_bytes())
        .map(|h| h.to_string())
        .map_err(|e| StoreError::Backend(format!("argon2 hashing: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn verifies_right_password_only_and_never_for_unknown_users() {
        let hasher = PasswordHasher::new(2).unwrap();
        let hash = hasher.hash("correct horse").await.unwrap();
        assert!(hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
        assert!(hasher.verify("correct horse", Some(&hash)).await.unwrap());
        assert!(!hasher.verify("wrong horse", Some(&hash)).await.unwrap());
        assert!(
            !hasher
                .verify("gatehouse-dummy-password-for-timing", None)
                .await
                .unwrap()
        );
    }
}
