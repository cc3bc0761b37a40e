//! How the cluster's processes prove a request comes from inside the cluster: an HMAC-SHA256,
//! keyed with the cluster's shared secret, over the method, the path with its query, the
//! portal account the request acts for, and a time stamp, all in one header. Bodies are not
//! signed (they can be gigabytes and carry checksums of their own). A signature is good for
//! five minutes either side of the receiver's clock.
//!
//! The same secret signs the portal's session cookies and CSRF tokens ([`Secret::mac`]), so both
//! frontends accept a session the other one started.

use std::io::Write;
use std::path::{Path, PathBuf};

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The header carrying `TIME.SIGNATURE`.
pub const AUTH_HEADER: &str = "x-td-auth";
/// The portal account a request acts for (signed with it); empty for the cluster itself.
pub const USER_HEADER: &str = "x-td-user";
/// How far a signature's time may be from the receiver's.
pub const MAX_SKEW_SECS: u64 = 300;
/// Shortest secret accepted, in bytes of the file (hex or not).
const MIN_SECRET: usize = 32;

#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error(
        "cannot read the cluster secret {path}: {source} (make one with `td secret --config \
         CLUSTER.toml` and copy it to every node and frontend)"
    )]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the cluster secret {path} is too short ({len} bytes; at least {MIN_SECRET})")]
    Short { path: PathBuf, len: usize },
    #[error("cannot write the cluster secret {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Why a signed request was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    #[error("not signed with the cluster secret (no x-td-auth header)")]
    Missing,
    #[error("the x-td-auth header is malformed")]
    Malformed,
    #[error("the signature's time is more than 5 minutes from this node's clock")]
    Stale,
    #[error("the signature does not match (another cluster's secret, or the request was changed)")]
    Wrong,
}

/// The cluster's shared secret.
#[derive(Clone)]
pub struct Secret(Vec<u8>);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(…)")
    }
}

impl Secret {
    pub fn from_bytes(bytes: &[u8]) -> Secret {
        Secret(bytes.to_vec())
    }

    pub fn load(path: &Path) -> Result<Secret, SecretError> {
        let bytes = std::fs::read(path).map_err(|source| SecretError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let trimmed = bytes.trim_ascii();
        if trimmed.len() < MIN_SECRET {
            return Err(SecretError::Short {
                path: path.to_path_buf(),
                len: trimmed.len(),
            });
        }
        Ok(Secret(trimmed.to_vec()))
    }

    /// Writes a new random secret (32 bytes, as hex) readable by its owner only, unless the
    /// file exists. Returns the secret in the file either way.
    pub fn create(path: &Path) -> Result<Secret, SecretError> {
        if path.exists() {
            return Secret::load(path);
        }
        let err = |source| SecretError::Write {
            path: path.to_path_buf(),
            source,
        };
        let text = random_hex(32).map_err(err)?;
        use std::os::unix::fs::OpenOptionsExt;
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .map_err(err)?;
        file.write_all(format!("{text}\n").as_bytes())
            .and_then(|()| file.sync_all())
            .map_err(err)?;
        Ok(Secret(text.into_bytes()))
    }

    /// HMAC-SHA256 of the parts (joined unambiguously), as hex.
    pub fn mac(&self, parts: &[&str]) -> String {
        hex(&self.hmac(parts).finalize().into_bytes())
    }

    fn hmac(&self, parts: &[&str]) -> Hmac<Sha256> {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.0).expect("any key length");
        for p in parts {
            mac.update(&(p.len() as u64).to_be_bytes());
            mac.update(p.as_bytes());
        }
        mac
    }

    /// Checks `tag` (hex) against the parts, in constant time.
    pub fn check_mac(&self, parts: &[&str], tag: &str) -> bool {
        match unhex(tag) {
            Some(bytes) => self.hmac(parts).verify_slice(&bytes).is_ok(),
            None => false,
        }
    }

    /// The value of [`AUTH_HEADER`] for a request.
    pub fn sign(&self, method: &str, path_and_query: &str, user: &str, now: u64) -> String {
        let time = now.to_string();
        let tag = self.mac(&["td-internal", method, path_and_query, user, &time]);
        format!("{time}.{tag}")
    }

    /// Checks a request's [`AUTH_HEADER`].
    pub fn verify(
        &self,
        header: Option<&str>,
        method: &str,
        path_and_query: &str,
        user: &str,
        now: u64,
    ) -> Result<(), Refused> {
        let header = header.ok_or(Refused::Missing)?;
        let (time, tag) = header.split_once('.').ok_or(Refused::Malformed)?;
        let t: u64 = time.parse().map_err(|_| Refused::Malformed)?;
        if t.abs_diff(now) > MAX_SKEW_SECS {
            return Err(Refused::Stale);
        }
        if self.check_mac(&["td-internal", method, path_and_query, user, time], tag) {
            Ok(())
        } else {
            Err(Refused::Wrong)
        }
    }
}

/// `n` random bytes from the kernel, as hex.
pub fn random_hex(n: usize) -> std::io::Result<String> {
    let mut bytes = vec![0; n];
    std::io::Read::read_exact(&mut std::fs::File::open("/dev/urandom")?, &mut bytes)?;
    Ok(hex(&bytes))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) || !text.is_ascii() {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signature_holds_only_for_its_request_secret_and_time() {
        let s = Secret::from_bytes(b"0123456789abcdef0123456789abcdef");
        let h = s.sign("PATCH", "/internal/uploads/x?offset=0", "ada", 1000);
        let ok = |h: &str, m, p, u, now| s.verify(Some(h), m, p, u, now);
        assert_eq!(
            ok(&h, "PATCH", "/internal/uploads/x?offset=0", "ada", 1200),
            Ok(())
        );
        assert_eq!(
            ok(&h, "PATCH", "/internal/uploads/x?offset=9", "ada", 1000),
            Err(Refused::Wrong)
        );
        assert_eq!(
            ok(&h, "PATCH", "/internal/uploads/x?offset=0", "bob", 1000),
            Err(Refused::Wrong)
        );
        assert_eq!(
            ok(&h, "DELETE", "/internal/uploads/x?offset=0", "ada", 1000),
            Err(Refused::Wrong)
        );
        assert_eq!(
            ok(&h, "PATCH", "/internal/uploads/x?offset=0", "ada", 1400),
            Err(Refused::Stale)
        );
        let other = Secret::from_bytes(b"another secret, of another cluster!!");
        assert_eq!(
            other.verify(
                Some(&h),
                "PATCH",
                "/internal/uploads/x?offset=0",
                "ada",
                1000
            ),
            Err(Refused::Wrong)
        );
        assert_eq!(s.verify(None, "GET", "/", "", 1000), Err(Refused::Missing));
        assert_eq!(
            s.verify(Some("garbage"), "GET", "/", "", 1000),
            Err(Refused::Malformed)
        );
        assert_eq!(
            s.verify(Some("1000.zz"), "GET", "/", "", 1000),
            Err(Refused::Wrong)
        );
    }

    #[test]
    fn a_created_secret_is_private_and_kept() {
        let dir = tempfile_dir();
        let path = dir.join("cluster.secret");
        let a = Secret::create(&path).unwrap();
        let b = Secret::create(&path).unwrap();
        assert_eq!(a.0, b.0);
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "{mode:o}");
        std::fs::write(&path, "short\n").unwrap();
        assert!(matches!(
            Secret::load(&path),
            Err(SecretError::Short { len: 5, .. })
        ));
        std::fs::remove_dir_all(dir).unwrap();
    }

    fn tempfile_dir() -> PathBuf {
        let dir = std::env::temp_dir().join(format!("td-secret-{}", random_hex(8).unwrap()));
        std::fs::create_dir(&dir).unwrap();
        dir
    }
}
