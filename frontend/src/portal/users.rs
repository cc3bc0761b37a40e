//! The portal's accounts: a JSON file (`users_file` in `CLUSTER.toml`, default `users.json`
//! next to it) of names, Argon2id password hashes and roles, written by `td user add` and read
//! at every sign-in, session check and dashboard page, so a change needs no restart. `td user`
//! also hands the file to every node, and each frontend reads the nodes' copy every second
//! (`super::accounts`): the newest `version` wins, so no one copies it between hosts.

use std::path::{Path, PathBuf};

use argon2::password_hash::{Output, PasswordHash, PasswordHasher, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use serde::{Deserialize, Serialize};

/// Shortest password accepted.
pub const MIN_PASSWORD: usize = 10;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Users {
    /// Raised by every change (`td user`): of two copies, the higher is the newer.
    #[serde(default)]
    pub version: u64,
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
    /// What the account may do. Absent in files written before roles existed, and for content
    /// providers (so such a record reads the same to an older frontend).
    #[serde(default, skip_serializing_if = "Role::is_default")]
    pub role: Role,
    /// The account's session generation: a session started under another one is over. A new
    /// password and `td user signout` raise it.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub generation: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// What an account may do.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Uploads originals and changes the details of its own images (`/portal/`).
    #[default]
    ContentProvider,
    /// Also opens the operator's dashboard (`/ops/`) and marks repair tickets there.
    Operator,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::ContentProvider => "content-provider",
            Role::Operator => "operator",
        }
    }

    fn is_default(&self) -> bool {
        *self == Role::default()
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
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

    /// Adds (or, with `replace`, re-keys) account `name`: a new one as a content provider, a
    /// replaced one keeping its role.
    pub fn add(&mut self, name: &str, password: &str, replace: bool) -> Result<(), UsersError> {
        self.add_as(name, password, None, replace)
    }

    /// [`Users::add`] with a role: `None` is a content provider for a new account and the
    /// role it had for a replaced one.
    pub fn add_as(
        &mut self,
        name: &str,
        password: &str,
        role: Option<Role>,
        replace: bool,
    ) -> Result<(), UsersError> {
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
                // A new password ends every session of the old one.
                u.generation += 1;
                if let Some(role) = role {
                    u.role = role;
                }
                Ok(())
            }
            None => {
                self.users.push(User {
                    name: name.to_string(),
                    hash,
                    created: cluster::unix_now(),
                    role: role.unwrap_or_default(),
                    generation: 0,
                });
                Ok(())
            }
        }
    }

    /// Gives account `name` another role (its password stays).
    pub fn set_role(&mut self, name: &str, role: Role) -> Result<(), UsersError> {
        let user = self
            .users
            .iter_mut()
            .find(|u| u.name == name)
            .ok_or_else(|| UsersError::Unknown(name.to_string()))?;
        user.role = role;
        Ok(())
    }

    /// Ends every session of account `name`, wherever it was started.
    pub fn end_sessions(&mut self, name: &str) -> Result<(), UsersError> {
        let user = self
            .users
            .iter_mut()
            .find(|u| u.name == name)
            .ok_or_else(|| UsersError::Unknown(name.to_string()))?;
        user.generation += 1;
        Ok(())
    }

    /// The session generation of account `name`, if it exists.
    pub fn generation(&self, name: &str) -> Option<u64> {
        self.users
            .iter()
            .find(|u| u.name == name)
            .map(|u| u.generation)
    }

    /// The role of account `name`, if it exists.
    pub fn role(&self, name: &str) -> Option<Role> {
        self.users.iter().find(|u| u.name == name).map(|u| u.role)
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
        self.check_with(name, password, &mut Vec::new())
    }

    /// [`Users::check`] with the hash's working memory given (grown to what the hash needs),
    /// so a caller can keep it for the next check rather than allocate it each time.
    pub fn check_with(&self, name: &str, password: &str, memory: &mut Vec<Block>) -> bool {
        let known = self.users.iter().find(|u| u.name == name);
        let hash = known.map_or(DUMMY_HASH.as_str(), |u| u.hash.as_str());
        verify(hash, password.as_bytes(), memory) && known.is_some()
    }
}

/// What `Argon2::verify_password` does (the parameters, salt and output read from the PHC
/// string, the output compared in constant time), in memory the caller keeps.
fn verify(phc: &str, password: &[u8], memory: &mut Vec<Block>) -> bool {
    let Ok(hash) = PasswordHash::new(phc) else {
        return false;
    };
    let (Some(salt), Some(expected)) = (hash.salt, hash.hash) else {
        return false;
    };
    let Ok(algorithm) = Algorithm::try_from(hash.algorithm) else {
        return false;
    };
    let Ok(version) = hash
        .version
        .map_or(Ok(Version::default()), Version::try_from)
    else {
        return false;
    };
    let Ok(params) = Params::try_from(&hash) else {
        return false;
    };
    let mut salt_bytes = [0u8; 64];
    let Ok(salt) = salt.decode_b64(&mut salt_bytes) else {
        return false;
    };
    let blocks = params.block_count();
    if memory.len() < blocks {
        memory.resize(blocks, Block::default());
    }
    let mut output = vec![0u8; expected.len()];
    Argon2::new(algorithm, version, params)
        .hash_password_into_with_memory(password, salt, &mut output, &mut memory[..blocks])
        .is_ok()
        && Output::new(&output).is_ok_and(|o| o == expected)
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
        // The same answers as argon2's own verification, memory kept from one to the next.
        let mut memory = Vec::new();
        for (password, right) in [("correct horse battery", true), ("correct horse", false)] {
            let phc = PasswordHash::new(&users.users[0].hash).unwrap();
            assert_eq!(
                argon2::PasswordVerifier::verify_password(
                    &Argon2::default(),
                    password.as_bytes(),
                    &phc
                )
                .is_ok(),
                right
            );
            assert_eq!(users.check_with("ada", password, &mut memory), right);
        }
        assert_eq!(memory.len(), Params::default().block_count());
    }

    #[test]
    fn roles_default_to_content_provider_and_old_files_still_load() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("users.json");
        // As written before accounts had roles.
        std::fs::write(
            &path,
            r#"{"users":[{"name":"ada","hash":"$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA","created":1}]}"#,
        )
        .unwrap();
        let mut users = Users::load(&path).unwrap();
        assert_eq!(users.role("ada"), Some(Role::ContentProvider));
        assert_eq!(users.role("nobody"), None);
        users
            .add_as("olga", "operator password", Some(Role::Operator), false)
            .unwrap();
        users.save(&path).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains(r#""role": "operator""#), "{text}");
        assert_eq!(
            text.matches("\"role\"").count(),
            1,
            "a content provider's record stays as it was: {text}"
        );
        let mut users = Users::load(&path).unwrap();
        assert_eq!(users.role("olga"), Some(Role::Operator));
        // A new password keeps the role unless another is given.
        users.add("olga", "another password", true).unwrap();
        assert_eq!(users.role("olga"), Some(Role::Operator));
        users.set_role("olga", Role::ContentProvider).unwrap();
        assert_eq!(users.role("olga"), Some(Role::ContentProvider));
        assert!(matches!(
            users.set_role("nobody", Role::Operator),
            Err(UsersError::Unknown(_))
        ));
    }
}
