//! TLS for the cluster's listeners and for the calls between its processes (rustls, with the
//! `ring` provider).
//!
//! - [`ServerTls`]: a host's certificate chain and key, read from their PEM files at start (a
//!   file that cannot be read, holds nothing usable or a key that does not match is an error
//!   naming the file) and read again when either file changes: each handshake stats the two
//!   files (two `stat` calls, no read) and a changed pair is loaded for that handshake on. A
//!   bad new pair keeps the old one in service and is logged once.
//! - [`trust_cluster`]: what this process's [`crate::Client`]s trust (the cluster's CA, else the
//!   system's roots) and which of the cluster's addresses speak https, for calls made by address.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::time::SystemTime;

use cluster::config::{ClusterConfig, TlsFiles};
use rustls::crypto::CryptoProvider;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// What every answer over TLS carries: browsers then go straight to https for a year.
pub const HSTS: &str = "max-age=31536000";

/// Why a certificate, key or trust file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} holds no certificate (PEM, BEGIN CERTIFICATE)")]
    NoCertificate { path: PathBuf },
    #[error("{path} holds no private key (PEM, BEGIN PRIVATE KEY): {detail}")]
    NoKey { path: PathBuf, detail: String },
    #[error("{path} is not PEM as expected: {detail}")]
    Pem { path: PathBuf, detail: String },
    /// rustls refused the pair: most often a key that is not the certificate's.
    #[error("the key {key} does not go with the certificate {cert}: {detail}")]
    Pair {
        cert: PathBuf,
        key: PathBuf,
        detail: String,
    },
    #[error("{path}: {detail}")]
    Trust { path: PathBuf, detail: String },
}

/// ring, the provider the cluster's mail client already uses: aws-lc-rs would add a C build.
/// rustls deprecates ring's provider only for its lack of post-quantum key exchange.
#[allow(deprecated)]
fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The two files' identity as `stat` tells it: modification time, length and inode, so a file
/// replaced by a rename, or rewritten within the clock's resolution, is still seen as changed.
type Stamp = [Option<(SystemTime, u64, u64)>; 2];

fn stamp(files: &TlsFiles) -> Stamp {
    use std::os::unix::fs::MetadataExt;
    [&files.cert, &files.key].map(|p| {
        std::fs::metadata(p).ok().map(|m| {
            (
                m.modified().unwrap_or(SystemTime::UNIX_EPOCH),
                m.len(),
                m.ino(),
            )
        })
    })
}

/// A listener's TLS: the certificate in service, read again when its files change, and the
/// names this host answers to (for sending a plain-http visitor on to https).
#[derive(Clone)]
pub struct ServerTls {
    inner: Arc<Inner>,
}

struct Inner {
    files: TlsFiles,
    /// A `std::sync::Mutex`: held to compare and swap, never across an await or a file read.
    current: Mutex<Current>,
    /// `HOST:PORT`s a plain-http request may name to be sent on to the same host over https;
    /// any other is sent to the first.
    hosts: Vec<String>,
}

struct Current {
    stamp: Stamp,
    config: Arc<rustls::ServerConfig>,
    /// The files as they were when last refused: not tried (nor logged) again until they change.
    refused: Option<Stamp>,
}

impl std::fmt::Debug for ServerTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerTls")
            .field("files", &self.inner.files)
            .field("hosts", &self.inner.hosts)
            .finish()
    }
}

impl ServerTls {
    /// Reads the pair in `files`; `hosts` are the `HOST:PORT`s this listener answers to, the
    /// first being where a request naming another host is sent.
    pub fn load(files: TlsFiles, hosts: Vec<String>) -> Result<ServerTls, TlsError> {
        let before = stamp(&files);
        let config = server_config(&files)?;
        Ok(ServerTls {
            inner: Arc::new(Inner {
                files,
                current: Mutex::new(Current {
                    stamp: before,
                    config,
                    refused: None,
                }),
                hosts,
            }),
        })
    }

    /// The files it serves.
    pub fn files(&self) -> &TlsFiles {
        &self.inner.files
    }

    /// The configuration for the next handshake: the files' pair as they are now, or the last
    /// good one when they changed into something unusable.
    pub fn config(&self) -> Arc<rustls::ServerConfig> {
        let now = stamp(&self.inner.files);
        {
            let current = self.lock();
            if current.stamp == now || current.refused == Some(now) {
                return current.config.clone();
            }
        }
        let loaded = server_config(&self.inner.files);
        let mut current = self.lock();
        match loaded {
            Ok(config) => {
                tracing::info!(cert = %self.inner.files.cert.display(), "serving a new certificate");
                current.stamp = now;
                current.config = config;
                current.refused = None;
            }
            Err(e) => {
                if current.refused != Some(now) {
                    tracing::warn!(cert = %self.inner.files.cert.display(), error = %e, "the changed certificate cannot be used: the previous one stays in service");
                }
                current.refused = Some(now);
            }
        }
        current.config.clone()
    }

    /// Where a plain-http request naming `host` (its `Host` header) is sent: the same host
    /// if it is one of ours, else our first name.
    pub fn https_authority(&self, host: Option<&str>) -> &str {
        let hosts = &self.inner.hosts;
        host.and_then(|h| hosts.iter().find(|o| o.eq_ignore_ascii_case(h)))
            .or(hosts.first())
            .map_or("localhost", String::as_str)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Current> {
        self.inner.current.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn server_config(files: &TlsFiles) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let certs = read_certificates(&files.cert)?;
    let key = read_key(&files.key)?;
    let mut config = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Pair {
            cert: files.cert.clone(),
            key: files.key.clone(),
            detail: e.to_string(),
        })?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| TlsError::Pair {
            cert: files.cert.clone(),
            key: files.key.clone(),
            detail: e.to_string(),
        })?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        path: path.to_path_buf(),
        source,
    })
}

/// The certificates of a PEM file, in order.
pub fn read_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let text = read(path)?;
    let certs = CertificateDer::pem_slice_iter(&text)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::Pem {
            path: path.to_path_buf(),
            detail: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate {
            path: path.to_path_buf(),
        });
    }
    Ok(certs)
}

fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let text = read(path)?;
    PrivateKeyDer::from_pem_slice(&text).map_err(|e| TlsError::NoKey {
        path: path.to_path_buf(),
        detail: e.to_string(),
    })
}

/// What this process's clients trust, and which addresses speak https.
struct Trust {
    config: Arc<rustls::ClientConfig>,
    https: HashSet<SocketAddr>,
}

/// Set once the configuration is known; a `RwLock` so that a process's later
/// [`trust_cluster`] (tests starting clusters one after another) replaces it.
static TRUST: RwLock<Option<Arc<Trust>>> = RwLock::new(None);

/// Makes the clients this process builds from now on trust `cluster`'s `tls_ca` (or the
/// system's roots without one) and call its TLS hosts' addresses over https.
pub fn trust_cluster(cluster: &ClusterConfig) -> Result<(), TlsError> {
    let roots = match &cluster.tls_ca {
        Some(path) => {
            let mut roots = rustls::RootCertStore::empty();
            for cert in read_certificates(path)? {
                roots.add(cert).map_err(|e| TlsError::Trust {
                    path: path.clone(),
                    detail: e.to_string(),
                })?;
            }
            Arc::new(roots)
        }
        None => system_roots(),
    };
    let https = cluster
        .frontends
        .iter()
        .filter(|f| f.tls().is_some())
        .map(|f| f.address)
        .chain(cluster.canonical.filter(|_| cluster.frontends_tls()))
        .chain(
            cluster
                .nodes
                .iter()
                .filter(|n| n.tls().is_some())
                .map(|n| n.address),
        )
        .collect();
    let trust = Trust {
        config: client_config(roots),
        https,
    };
    *TRUST.write().unwrap_or_else(|p| p.into_inner()) = Some(Arc::new(trust));
    Ok(())
}

/// The client configuration for a new [`crate::Client`].
pub(crate) fn client() -> Arc<rustls::ClientConfig> {
    if let Some(trust) = TRUST.read().unwrap_or_else(|p| p.into_inner()).as_ref() {
        return trust.config.clone();
    }
    static DEFAULT: OnceLock<Arc<rustls::ClientConfig>> = OnceLock::new();
    DEFAULT
        .get_or_init(|| client_config(system_roots()))
        .clone()
}

/// Whether `addr` is one of the cluster's https listeners.
pub(crate) fn speaks_https(addr: SocketAddr) -> bool {
    TRUST
        .read()
        .unwrap_or_else(|p| p.into_inner())
        .as_ref()
        .is_some_and(|t| t.https.contains(&addr))
}

fn client_config(roots: Arc<rustls::RootCertStore>) -> Arc<rustls::ClientConfig> {
    let config = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .expect("ring supports the default protocol versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    Arc::new(config)
}

/// The system's trusted roots, read once per process.
fn system_roots() -> Arc<rustls::RootCertStore> {
    static ROOTS: OnceLock<Arc<rustls::RootCertStore>> = OnceLock::new();
    ROOTS
        .get_or_init(|| {
            let found = rustls_native_certs::load_native_certs();
            for e in &found.errors {
                tracing::debug!(error = %e, "a system root certificate cannot be read");
            }
            let mut roots = rustls::RootCertStore::empty();
            let (added, _) = roots.add_parsable_certificates(found.certs);
            tracing::debug!(roots = added, "system roots");
            Arc::new(roots)
        })
        .clone()
}
