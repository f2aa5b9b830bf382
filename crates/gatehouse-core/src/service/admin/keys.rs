//! Signing keys through the admin API: their states, and rotation.

use gatehouse_proto::admin::KeyInfo;

use super::*;
use crate::service::AuthService;
use crate::{ApiError, RequestContext};

impl AuthService {
    /// The keys, newest first, as the store has them now.
    pub async fn list_signing_keys(&self) -> Result<Vec<KeyInfo>, ApiError> {
        self.reload_keys().await?;
        let view = self.key_view();
        let now = self.now();
        // From the store: retired keys and any this node cannot read are listed too.
        let mut keys: Vec<KeyInfo> = self
            .store
            .signing_keys()
            .await?
            .into_iter()
            .map(|k| KeyInfo {
                status: if k.retired_at.is_some_and(|at| at <= now) {
                    "retired"
                } else if k.kid == view.signer.kid() {
                    "signing"
                } else if k.activates_at > now {
                    "pending"
                } else {
                    "published"
                },
                kid: k.kid,
                alg: k.alg,
                created_at: k.created_at,
                activates_at: k.activates_at,
                retired_at: k.retired_at,
            })
            .collect();
        keys.sort_by(|a, b| b.created_at.cmp(&a.created_at).then(b.kid.cmp(&a.kid)));
        Ok(keys)
    }

    /// Rotates the signing key: the new one is published now and signs after the activation
    /// delay; every older key retires once the last token it can have signed has expired.
    pub async fn rotate_signing_key(
        &self,
        actor: &Actor,
        ctx: &RequestContext,
    ) -> Result<KeyInfo, ApiError> {
        let now = self.now();
        let crate::keyring::Rotation {
            record,
            retire_others_at: retire_at,
            write,
        } = crate::keyring::rotation(&self.kek, &self.config, now)?;
        self.commit(&[write], || ApiError::Internal).await?;
        self.reload_keys().await?;
        self.admin_audit(
            actor,
            "key.rotated",
            &record.kid,
            ctx,
            &format!(
                "signs from {}; older keys retire at {retire_at}",
                record.activates_at
            ),
        )
        .await;
        let listed = self.list_signing_keys().await?;
        listed
            .into_iter()
            .find(|k| k.kid == record.kid)
            .ok_or(ApiError::Internal)
    }
}
