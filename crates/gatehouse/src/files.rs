//! What a node keeps on disk and in the store: where the store is, the key-encryption key, and
//! the first administrator.

use anyhow::Context;
use gatehouse_core::AuthService;
use gatehouse_sdk::files::write_private_file;
use gatehouse_store::SqlStore;
use gatehouse_token::KeyEncryptionKey;

use crate::config::{Settings, secret_from_env};

/// The configured store: PostgreSQL when a database URL is set, else SQLite in the data directory.
pub async fn open_store(settings: &Settings) -> anyhow::Result<SqlStore> {
    match &settings.database_url {
        Some(url) => SqlStore::connect(url).await,
        None => SqlStore::open_sqlite_dir(&settings.data_dir).await,
    }
    .context("cannot open the store")
}

/// `GATEHOUSE_KEK` (or `GATEHOUSE_KEK_FILE`), else a key generated once into the data directory.
pub fn load_kek(settings: &Settings) -> anyhow::Result<KeyEncryptionKey> {
    if let Some(text) = secret_from_env("GATEHOUSE_KEK")? {
        return KeyEncryptionKey::parse(&text).context("GATEHOUSE_KEK is invalid");
    }
    if settings.database_url.is_some() {
        tracing::warn!(
            "no GATEHOUSE_KEK set: using a key file in the data directory; every node sharing \
             this database needs the same key"
        );
    }
    let path = settings.data_dir.join("kek.key");
    if path.exists() {
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        return KeyEncryptionKey::parse(&text)
            .with_context(|| format!("{} is not a valid key", path.display()));
    }
    std::fs::create_dir_all(&settings.data_dir)?;
    let kek = KeyEncryptionKey::generate()?;
    write_private_file(&path, &kek.to_hex())
        .with_context(|| format!("cannot create {}", path.display()))?;
    tracing::info!(path = %path.display(), "generated a key-encryption key");
    Ok(kek)
}

/// `GATEHOUSE_ADMIN_USERNAME` and `GATEHOUSE_ADMIN_PASSWORD`: an administrator made on first start.
pub async fn bootstrap_admin(service: &AuthService) -> anyhow::Result<()> {
    let username = std::env::var("GATEHOUSE_ADMIN_USERNAME").ok();
    let password = secret_from_env("GATEHOUSE_ADMIN_PASSWORD")?;
    match (username, password) {
        (Some(username), Some(password)) => {
            let created = service
                .ensure_admin(&username, &password)
                .await
                .map_err(|e| anyhow::anyhow!("cannot create the admin user: {e}"))?;
            if created {
                tracing::info!(%username, "created the admin user");
            }
            Ok(())
        }
        (None, None) => Ok(()),
        _ => anyhow::bail!(
            "set both GATEHOUSE_ADMIN_USERNAME and GATEHOUSE_ADMIN_PASSWORD, or neither"
        ),
    }
}
