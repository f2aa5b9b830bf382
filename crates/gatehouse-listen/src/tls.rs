//! TLS on a listener: a certificate chain and key read from PEM files, offered with ALPN `h2`
//! and `http/1.1`, and read again on demand (SIGHUP) without touching open connections: the
//! server's configuration never changes, only the certificate its resolver hands to the next
//! handshake.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arc_swap::ArcSwap;
use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use serde::{Deserialize, Serialize};

/// Where a listener's certificate chain (leaf first) and private key are, both PEM.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsFiles {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read the certificate file {path}: {reason}")]
    Certificates { path: PathBuf, reason: String },
    #[error("cannot read the private key file {path}: {reason}")]
    Key { path: PathBuf, reason: String },
    #[error("the private key in {key} does not belong to the first certificate in {cert}")]
    Mismatch { cert: PathBuf, key: PathBuf },
    #[error("TLS setup failed: {0}")]
    Setup(#[from] rustls::Error),
}

/// The aws-lc-rs provider, named explicitly: whichever providers other crates enable, ours is
/// the one in use.
pub fn crypto_provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// A listener's TLS: cheap to clone, one certificate shared by all clones.
#[derive(Clone)]
pub struct Tls {
    files: TlsFiles,
    current: Arc<Current>,
    acceptor: tokio_rustls::TlsAcceptor,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tls").field("files", &self.files).finish()
    }
}

impl Tls {
    /// Reads the files; fails with the reason if they cannot serve (missing, not PEM, no
    /// certificate, a key of another certificate).
    pub fn load(files: TlsFiles) -> Result<Self, TlsError> {
        let provider = crypto_provider();
        let key = certified_key(&files, &provider)?;
        let current = Arc::new(Current(ArcSwap::from(key)));
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_cert_resolver(current.clone());
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Self {
            files,
            current,
            acceptor: tokio_rustls::TlsAcceptor::from(Arc::new(config)),
        })
    }

    /// Reads the files again. On success the next handshakes use the new certificate (open
    /// connections keep theirs); on failure nothing changes and the reason is returned.
    pub fn reload(&self) -> Result<(), TlsError> {
        let key = certified_key(&self.files, &crypto_provider())?;
        self.current.0.store(key);
        Ok(())
    }

    pub fn files(&self) -> &TlsFiles {
        &self.files
    }

    pub(crate) fn acceptor(&self) -> &tokio_rustls::TlsAcceptor {
        &self.acceptor
    }
}

/// Marks a request that arrived over TLS, in its extensions: what the gateway's
/// `X-Forwarded-Proto` follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArrivedOverTls;

#[derive(Debug)]
struct Current(ArcSwap<CertifiedKey>);

impl ResolvesServerCert for Current {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.load_full())
    }
}

fn certified_key(
    files: &TlsFiles,
    provider: &CryptoProvider,
) -> Result<Arc<CertifiedKey>, TlsError> {
    let chain = read_certificates(&files.cert_file)?;
    let key = read_key(&files.key_file)?;
    let signing = provider
        .key_provider
        .load_private_key(key)
        .map_err(|e| TlsError::Key {
            path: files.key_file.clone(),
            reason: e.to_string(),
        })?;
    let certified = CertifiedKey::new(chain, signing);
    certified.keys_match().map_err(|_| TlsError::Mismatch {
        cert: files.cert_file.clone(),
        key: files.key_file.clone(),
    })?;
    Ok(Arc::new(certified))
}

/// Every certificate in a PEM file, in order; at least one.
pub fn read_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let failed = |reason: String| TlsError::Certificates {
        path: path.to_owned(),
        reason,
    };
    let chain = CertificateDer::pem_file_iter(path)
        .map_err(|e| failed(e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| failed(e.to_string()))?;
    if chain.is_empty() {
        return Err(failed("no PEM certificate in it".into()));
    }
    Ok(chain)
}

fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_file(path).map_err(|e| TlsError::Key {
        path: path.to_owned(),
        // The error names the PEM problem, never the key's bytes.
        reason: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    fn self_signed(dir: &Path, prefix: &str) -> TlsFiles {
        let made = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
        TlsFiles {
            cert_file: write(dir, &format!("{prefix}.crt"), &made.cert.pem()),
            key_file: write(
                dir,
                &format!("{prefix}.key"),
                &made.signing_key.serialize_pem(),
            ),
        }
    }

    #[test]
    fn loads_a_pair_and_refuses_what_cannot_serve() {
        let dir = tempfile::tempdir().unwrap();
        let good = self_signed(dir.path(), "a");
        let other = self_signed(dir.path(), "b");
        assert!(Tls::load(good.clone()).is_ok());

        let mismatched = TlsFiles {
            cert_file: good.cert_file.clone(),
            key_file: other.key_file.clone(),
        };
        assert!(matches!(
            Tls::load(mismatched),
            Err(TlsError::Mismatch { .. })
        ));
        let missing = TlsFiles {
            cert_file: dir.path().join("nowhere.crt"),
            key_file: good.key_file.clone(),
        };
        assert!(matches!(
            Tls::load(missing),
            Err(TlsError::Certificates { .. })
        ));
        let not_pem = TlsFiles {
            cert_file: write(dir.path(), "junk.crt", "not a certificate"),
            key_file: good.key_file.clone(),
        };
        assert!(matches!(
            Tls::load(not_pem),
            Err(TlsError::Certificates { .. })
        ));
        let no_key = TlsFiles {
            cert_file: good.cert_file.clone(),
            key_file: good.cert_file.clone(),
        };
        let refused = Tls::load(no_key).unwrap_err().to_string();
        assert!(refused.contains("private key"), "{refused}");
    }

    #[test]
    fn a_failed_reload_keeps_the_certificate_and_a_good_one_replaces_it() {
        let dir = tempfile::tempdir().unwrap();
        let files = self_signed(dir.path(), "live");
        let tls = Tls::load(files.clone()).unwrap();
        let before = tls.current.0.load_full();
        std::fs::write(&files.cert_file, "broken").unwrap();
        assert!(tls.reload().is_err());
        assert!(Arc::ptr_eq(&before, &tls.current.0.load_full()));
        let next = self_signed(dir.path(), "next");
        std::fs::copy(&next.cert_file, &files.cert_file).unwrap();
        std::fs::copy(&next.key_file, &files.key_file).unwrap();
        tls.reload().unwrap();
        let after = tls.current.0.load_full();
        assert!(!Arc::ptr_eq(&before, &after));
        assert_eq!(
            after.cert[0].as_ref(),
            read_certificates(&next.cert_file).unwrap()[0].as_ref()
        );
    }
}
