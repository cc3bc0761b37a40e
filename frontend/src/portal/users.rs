//! The portal's accounts: a JSON file (`users_file` in `CLUSTER.toml`, default `users.json`
//! next to it) of names and Argon2id password hashes, written by `td user add` and read at
//! every sign-in, so a new account needs no restart. Copy it to both frontends.

use std::path::{Path, PathBuf};

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use serde::{Deserialize, Serialize};

/// Shortest password accepted.
pub const MIN_PASSWORD: usize = 10;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Users {
    pub users: Vec<User>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct User {
    pub name: String,
    /// The PHC string of an Argon2id hash (salt and parameters included).
    pub hash: String,
    /// Seconds since the Unix epoch.
    pub created: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum UsersError {
    #[error("cannot read the accounts file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the accounts file {path} is damaged: {source}")]
    Parse {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("cannot write the accounts file {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("'{0}' is not a usable account name: 1 to 32 lower-case letters, digits, '-' or '_'")]
    BadName(String),
    #[error("the password is too short: at least {MIN_PASSWORD} characters")]
    ShortPassword,
    #[error("there is already an account '{0}' (use --replace to set a new password)")]
    Exists(String),
    #[error("no account '{0}'")]
    Unknown(String),
    #[error("cannot hash the password: {0}")]
    Hash(String),
}

pub fn valid_name(name: &str) -> bool {
    (1..=32).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

impl Users {
    /// The accounts in `path`; none when the file does not exist.
    pub fn load(path: &Path) -> Result<Users, UsersError> {
        match std::fs::read(path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|source| UsersError::Parse {
                path: path.to_path_buf(),
                source,
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Users::default()),
            Err(source) => Err(UsersError::Read {
                path: path.to_path_buf(),
                source,
            }),
        }
    }

    /// Writes the file whole and durably, readable by its owner only.
    pub fn save(&self, path: &Path) -> Result<(), UsersError> {
        let bytes = serde_json::to_vec_pretty(self).expect("plain data");
        floor::durable::write_with(path, &bytes, floor::durable::Options::PRIVATE).map_err(|e| {
            UsersError::Write {
                path: path.to_path_buf(),
                source: e.source,
            }
        })
    }

    /// Adds (or, with `replace`, re-keys) account `name`.
    pub fn add(&mut self, name: &str, password: &str, replace: bool) -> Result<(), UsersError> {
        if !valid_name(name) {
            return Err(UsersError::BadName(name.to_string()));
        }
        if password.chars().count() < MIN_PASSWORD {
            return Err(UsersError::ShortPassword);
        }
        let hash = hash(password)?;
        match self.users.iter_mut().find(|u| u.name == name) {
            Some(_) if !replace => Err(UsersError::Exists(name.to_string())),
            Some(u) => {
                u.hash = hash;
                Ok(())
            }
            None => {
                self.users.push(User {
                    name: name.to_string(),
                    hash,
                    created: cluster::unix_now(),
                });
                Ok(())
            }
        }
    }

    pub fn remove(&mut self, name: &str) -> Result<(), UsersError> {
        let before = self.users.len();
        self.users.retain(|u| u.name != name);
        if self.users.len() == before {
            return Err(UsersError::Unknown(name.to_string()));
        }
        Ok(())
    }

    /// True when `name` exists and `password` is its password. Costs one Argon2 hash either
    /// way, so timing does not tell which names exist.
    pub fn check(&self, name: &str, password: &str) -> bool {
        let known = self.users.iter().find(|u| u.name == name);
        let hash = known.map_or(DUMMY_HASH.as_str(), |u| u.hash.as_str());
        let ok = PasswordHash::new(hash)
            .map(|h| {
                Argon2::default()
                    .verify_password(password.as_bytes(), &h)
                    .is_ok()
            })
            .unwrap_or(false);
        ok && known.is_some()
    }
}

static DUMMY_HASH: std::sync::LazyLock<String> =
    std::sync::LazyLock::new(|| hash("not a password of anyone").unwrap_or_default());

fn hash(password: &str) -> Result<String, UsersError> {
    let bytes = cluster::auth::random_hex(16).map_err(|e| UsersError::Hash(e.to_string()))?;
    let salt =
        SaltString::encode_b64(bytes.as_bytes()).map_err(|e| UsersError::Hash(e.to_string()))?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| UsersError::Hash(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accounts_keep_argon2_hashes_and_check_passwords() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("users.json");
        let mut users = Users::load(&path).unwrap();
        users.add("ada", "correct horse battery", false).unwrap();
        assert!(matches!(
            users.add("ada", "another password", false),
            Err(UsersError::Exists(_))
        ));
        assert!(matches!(
            users.add("Ada!", "correct horse", false),
            Err(UsersError::BadName(_))
        ));
        assert!(matches!(
            users.add("bob", "short", false),
            Err(UsersError::ShortPassword)
        ));
        users.save(&path).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(
            text.contains("$argon2id$") && !text.contains("correct horse"),
            "{text}"
        );
        let users = Users::load(&path).unwrap();
        assert!(users.check("ada", "correct horse battery"));
        assert!(!users.check("ada", "correct horse batterx"));
        assert!(!users.check("nobody", "correct horse battery"));
    }
}
