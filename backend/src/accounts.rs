//! The node's copy of the portal's account book ([`cluster::accounts::AccountBook`]), in
//! `state_dir/accounts.json`: the accounts file `td user` hands to every node and the sessions
//! the frontends signed out. Both frontends read it from every node, so neither keeps its own.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use cluster::accounts::{AccountBook, AccountsUpdate, Revocation};

pub const FILE: &str = "accounts.json";
/// Sessions signed out and not yet expired, at most: a flood of sign-outs stays bounded.
pub const MAX_REVOKED: usize = 100_000;

#[derive(Debug, thiserror::Error)]
pub enum AccountsError {
    #[error("this node has accounts version {have}; version {offered} is not newer")]
    Stale { have: u64, offered: u64 },
    #[error("the node's account book {path} cannot be written: {source}")]
    Write {
        path: PathBuf,
        source: floor::durable::WriteError,
    },
    #[error("too many sessions signed out at once ({MAX_REVOKED} not yet expired)")]
    Full,
}

pub struct AccountStore {
    path: PathBuf,
    /// A `std::sync::Mutex`: held to change the book and write it (a small file), on a
    /// blocking thread, never across an await.
    book: Mutex<AccountBook>,
}

impl AccountStore {
    /// The book in `state_dir`; an empty one when there is none or it does not read (the
    /// frontends then keep using the newest copy another node or their own file has).
    pub fn open(state_dir: &Path) -> AccountStore {
        let path = state_dir.join(FILE);
        let book = match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).unwrap_or_else(|e| {
                tracing::warn!(path = %path.display(), error = %e, "the account book does not read; starting empty");
                AccountBook::default()
            }),
            Err(_) => AccountBook::default(),
        };
        AccountStore {
            path,
            book: Mutex::new(book),
        }
    }

    /// The book, without sessions that have expired by `now`.
    pub fn get(&self, now: u64) -> AccountBook {
        let mut book = self.book.lock().unwrap_or_else(|p| p.into_inner());
        book.revoked.retain(|_, until| *until > now);
        book.clone()
    }

    /// Takes a newer accounts file.
    pub fn put(&self, update: AccountsUpdate) -> Result<(), AccountsError> {
        let mut book = self.book.lock().unwrap_or_else(|p| p.into_inner());
        if update.version <= book.version {
            return Err(AccountsError::Stale {
                have: book.version,
                offered: update.version,
            });
        }
        let mut next = book.clone();
        next.version = update.version;
        next.users = update.users;
        self.save(&next)?;
        *book = next;
        Ok(())
    }

    /// Records a session signed out.
    pub fn revoke(&self, r: Revocation, now: u64) -> Result<(), AccountsError> {
        let mut book = self.book.lock().unwrap_or_else(|p| p.into_inner());
        if r.until <= now || book.revoked.contains_key(&r.id) {
            return Ok(());
        }
        let mut next = book.clone();
        next.revoked.retain(|_, until| *until > now);
        if next.revoked.len() >= MAX_REVOKED {
            return Err(AccountsError::Full);
        }
        next.revoked.insert(r.id, r.until);
        self.save(&next)?;
        *book = next;
        Ok(())
    }

    fn save(&self, book: &AccountBook) -> Result<(), AccountsError> {
        let bytes = serde_json::to_vec(book).expect("plain data");
        floor::durable::write_with(&self.path, &bytes, floor::durable::Options::PRIVATE).map_err(
            |source| AccountsError::Write {
                path: self.path.clone(),
                source,
            },
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_newer_accounts_file_is_taken_and_the_book_survives_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let store = AccountStore::open(dir.path());
        let update = |version: u64, users: &str| AccountsUpdate {
            version,
            users: users.into(),
        };
        store.put(update(2, "two")).unwrap();
        assert!(matches!(
            store.put(update(2, "stale")),
            Err(AccountsError::Stale {
                have: 2,
                offered: 2
            })
        ));
        store
            .revoke(
                Revocation {
                    id: "ab".into(),
                    until: 200,
                },
                100,
            )
            .unwrap();
        let again = AccountStore::open(dir.path());
        let book = again.get(150);
        assert_eq!((book.version, book.users.as_str()), (2, "two"));
        assert_eq!(book.revoked.get("ab"), Some(&200));
        assert!(again.get(200).revoked.is_empty(), "expired sessions go");
    }
}
