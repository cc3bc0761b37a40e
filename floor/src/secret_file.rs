//! The cluster secret's file: made once, readable by its owner only, written durably, and
//! never replaced (every node and frontend must hold the same one).

use std::path::Path;

use cluster::auth::{Secret, SecretError};

use crate::durable::{self, Options};

/// Writes a new random secret to `path` unless the file exists; returns the secret in the file
/// either way.
pub fn create(path: &Path) -> Result<Secret, SecretError> {
    if path.exists() {
        return Secret::load(path);
    }
    let (secret, text) = Secret::generate().map_err(SecretError::Random)?;
    let keep = Options {
        keep_existing: true,
        ..Options::PRIVATE
    };
    match durable::write_with(path, text.as_bytes(), keep) {
        Ok(()) => Ok(secret),
        // Another process made it first: theirs is the cluster's.
        Err(e) if e.source.kind() == std::io::ErrorKind::AlreadyExists => Secret::load(path),
        Err(e) => Err(SecretError::Write {
            path: path.to_path_buf(),
            source: e.source,
        }),
    }
}

/// What [`install`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Installed {
    /// The file was written.
    Written,
    /// The file was there already, holding this same secret.
    AlreadyThere,
}

/// Writes `secret` (one received from the cluster) to `path`, privately and durably. A file
/// already there is never replaced: holding the same secret is fine, another one is an error
/// naming the file (a host of another cluster, or one given the wrong configuration).
pub fn install(path: &Path, secret: &Secret) -> Result<Installed, SecretError> {
    let same = |there: &Secret| there.bytes() == secret.bytes();
    if path.exists() {
        let there = Secret::load(path)?;
        return if same(&there) {
            Ok(Installed::AlreadyThere)
        } else {
            Err(SecretError::Other {
                path: path.to_path_buf(),
            })
        };
    }
    let mut text = secret.bytes().to_vec();
    text.push(b'\n');
    let keep = Options {
        keep_existing: true,
        ..Options::PRIVATE
    };
    match durable::write_with(path, &text, keep) {
        Ok(()) => Ok(Installed::Written),
        Err(e) if e.source.kind() == std::io::ErrorKind::AlreadyExists => install(path, secret),
        Err(e) => Err(SecretError::Write {
            path: path.to_path_buf(),
            source: e.source,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn a_created_secret_is_private_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cluster.secret");
        let a = create(&path).unwrap();
        let b = create(&path).unwrap();
        assert_eq!(a.mac(&["x"]), b.mac(&["x"]));
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "{mode:o}");
        std::fs::write(&path, "short\n").unwrap();
        assert!(matches!(
            Secret::load(&path),
            Err(SecretError::Short { len: 5, .. })
        ));
    }

    #[test]
    fn an_installed_secret_is_private_and_never_replaces_another() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cluster.secret");
        let (ours, _) = Secret::generate().unwrap();
        assert_eq!(install(&path, &ours).unwrap(), Installed::Written);
        assert_eq!(install(&path, &ours).unwrap(), Installed::AlreadyThere);
        assert_eq!(Secret::load(&path).unwrap().bytes(), ours.bytes());
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "{mode:o}");
        let (theirs, _) = Secret::generate().unwrap();
        let e = install(&path, &theirs).unwrap_err().to_string();
        assert!(e.contains("another cluster secret"), "{e}");
        assert_eq!(Secret::load(&path).unwrap().bytes(), ours.bytes());
    }
}
