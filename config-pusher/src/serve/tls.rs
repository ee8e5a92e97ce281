//! `serve --tls-cert FILE --tls-key FILE`: the table API over TLS (rustls, TLS 1.2/1.3, ALPN
//! `http/1.1`). The pair is re-read every [`RELOAD_EVERY`] and swapped in when it changed and
//! loads, so a rotated certificate (cert-manager, a re-mounted Secret) is served without a
//! restart; a pair that does not load — half-written during the rotation, a key that does not fit
//! — is logged and the previous one stays.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// How often the certificate files are compared with what is served.
pub const RELOAD_EVERY: Duration = Duration::from_secs(1);

/// The PEM files of the server certificate (chain, leaf first) and its private key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// Why the certificate pair cannot be served.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("--tls-cert/--tls-key {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("--tls-cert {0}: no PEM CERTIFICATE block")]
    NoCertificate(PathBuf),
    #[error("--tls-key {0}: no PEM private key (PKCS#8, PKCS#1 or SEC1)")]
    NoKey(PathBuf),
    #[error("--tls-cert {cert} / --tls-key {key}: {source}")]
    Pair {
        cert: PathBuf,
        key: PathBuf,
        #[source]
        source: rustls::Error,
    },
    #[error("TLS settings: {0}")]
    Config(#[source] rustls::Error),
}

/// The files' bytes as last read: a reload happens when they differ.
type Contents = (Vec<u8>, Vec<u8>);

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        path: path.to_path_buf(),
        source,
    })
}

/// Parses the pair (pure): the chain, the key, and that the key belongs to the leaf.
fn certified(
    files: &TlsFiles,
    (cert, key): &Contents,
    provider: &CryptoProvider,
) -> Result<CertifiedKey, TlsError> {
    let chain = CertificateDer::pem_slice_iter(cert)
        .collect::<Result<Vec<_>, _>>()
        .ok()
        .filter(|c| !c.is_empty())
        .ok_or_else(|| TlsError::NoCertificate(files.cert.clone()))?;
    let key = PrivateKeyDer::from_pem_slice(key).map_err(|_| TlsError::NoKey(files.key.clone()))?;
    CertifiedKey::from_der(chain, key, provider).map_err(|source| TlsError::Pair {
        cert: files.cert.clone(),
        key: files.key.clone(),
        source,
    })
}

/// The certificate handed to every handshake; replaced by [`Reloader::check`].
#[derive(Debug)]
struct Current(RwLock<Arc<CertifiedKey>>);

impl ResolvesServerCert for Current {
    fn resolve(&self, _: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(match self.0.read() {
            Ok(c) => c.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        })
    }
}

/// Keeps the served certificate in step with the files.
#[derive(Debug)]
pub struct Reloader {
    files: TlsFiles,
    provider: Arc<CryptoProvider>,
    current: Arc<Current>,
    loaded: Contents,
}

/// Loads the pair; the [`rustls::ServerConfig`] for the acceptor and the [`Reloader`] that keeps
/// its certificate current. Fails at start when the pair does not load (never serves plain text
/// instead).
pub fn load(files: TlsFiles) -> Result<(Arc<rustls::ServerConfig>, Reloader), TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let loaded = (read(&files.cert)?, read(&files.key)?);
    let key = certified(&files, &loaded, &provider)?;
    let current = Arc::new(Current(RwLock::new(Arc::new(key))));
    let mut config = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(TlsError::Config)?
        .with_no_client_auth()
        .with_cert_resolver(current.clone());
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let reloader = Reloader {
        files,
        provider,
        current,
        loaded,
    };
    Ok((Arc::new(config), reloader))
}

/// What [`Reloader::check`] did.
#[derive(Debug, PartialEq, Eq)]
pub enum Reload {
    Unchanged,
    Reloaded,
}

impl Reloader {
    /// Re-reads the files; swaps the certificate in when they changed and load.
    pub fn check(&mut self) -> Result<Reload, TlsError> {
        let now = (read(&self.files.cert)?, read(&self.files.key)?);
        if now == self.loaded {
            return Ok(Reload::Unchanged);
        }
        let key = Arc::new(certified(&self.files, &now, &self.provider)?);
        match self.current.0.write() {
            Ok(mut c) => *c = key,
            Err(poisoned) => *poisoned.into_inner() = key,
        }
        self.loaded = now;
        Ok(Reload::Reloaded)
    }

    /// Checks every [`RELOAD_EVERY`], forever (a task of `serve`). A failure is logged once per
    /// distinct message and retried: the files may be mid-rotation.
    pub async fn run(mut self) {
        let mut last_error = None;
        loop {
            tokio::time::sleep(RELOAD_EVERY).await;
            match self.check() {
                Ok(Reload::Reloaded) => {
                    last_error = None;
                    tracing::info!(cert = %self.files.cert.display(), "TLS certificate reloaded");
                }
                Ok(Reload::Unchanged) => last_error = None,
                Err(e) => {
                    let message = e.to_string();
                    if last_error.as_ref() != Some(&message) {
                        tracing::warn!("{message}: still serving the previous certificate");
                        last_error = Some(message);
                    }
                }
            }
        }
    }
}
