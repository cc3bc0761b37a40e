//! Node-local sled stores (catalog, event log). Each is an index over facts kept elsewhere
//! (files on the disks, faults the detectors find again), so a damaged one is moved aside and
//! started afresh: it never stops a node from working.

use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(
        "{path} is in use by another process (is this node's server already running? stop it \
         first, or ask it over HTTP)"
    )]
    Locked { path: PathBuf },
    #[error("cannot open the store {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("store {path}: {source}")]
    Sled { path: PathBuf, source: sled::Error },
}

impl StoreError {
    pub fn sled(path: &Path) -> impl Fn(sled::Error) -> StoreError + '_ {
        move |source| StoreError::Sled {
            path: path.to_path_buf(),
            source,
        }
    }
}

/// How a store was opened.
#[derive(Debug)]
pub enum Opened {
    /// It was there and opened.
    Existing,
    /// There was none: it is new and empty.
    New,
    /// It was damaged: moved to the given path, and a new empty one opened.
    MovedAside { to: PathBuf, why: String },
}

/// The page cache each store keeps in memory. sled's default is 1 GiB per database, which a
/// node with three stores and a large catalog fills: at 35,000 replicas a node held 1.2 GiB.
/// What is read most (the catalog's recent changes, the events of the day) fits in this.
pub const CACHE_BYTES: u64 = 64 << 20;

fn open_db(path: &Path) -> sled::Result<sled::Db> {
    sled::Config::new()
        .path(path)
        .cache_capacity(CACHE_BYTES)
        .open()
}

/// Opens (or creates) the sled database at `path`. A damaged one is renamed to
/// `path.damaged-TIME` and replaced by an empty one; one held by another process is an error.
pub fn open(path: &Path) -> Result<(sled::Db, Opened), StoreError> {
    let existed = path.exists();
    match open_db(path) {
        Ok(db) => Ok((
            db,
            if existed {
                Opened::Existing
            } else {
                Opened::New
            },
        )),
        Err(sled::Error::Io(e)) if e.to_string().contains("could not acquire lock") => {
            Err(StoreError::Locked {
                path: path.to_path_buf(),
            })
        }
        Err(sled::Error::Io(e)) if e.kind() != std::io::ErrorKind::UnexpectedEof => {
            Err(StoreError::Io {
                path: path.to_path_buf(),
                source: e,
            })
        }
        Err(damage) => {
            let why = damage.to_string();
            let to = aside_name(path);
            std::fs::rename(path, &to).map_err(|source| StoreError::Io {
                path: path.to_path_buf(),
                source,
            })?;
            let db = open_db(path).map_err(StoreError::sled(path))?;
            Ok((db, Opened::MovedAside { to, why }))
        }
    }
}

fn aside_name(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(format!(".damaged-{}", cluster::unix_now()));
    PathBuf::from(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_damaged_store_is_moved_aside_and_a_held_one_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("catalog");
        {
            let (db, how) = open(&path).unwrap();
            assert!(matches!(how, Opened::New));
            db.insert(b"k", b"v").unwrap();
            db.flush().unwrap();
            assert!(matches!(open(&path), Err(StoreError::Locked { .. })));
        }
        let (db, how) = open(&path).unwrap();
        assert!(matches!(how, Opened::Existing), "{how:?}");
        assert_eq!(db.get(b"k").unwrap().unwrap(), b"v"[..]);
        drop(db);
        // Overwrite the start of every file sled keeps: its own checks must find the damage.
        for entry in std::fs::read_dir(&path).unwrap() {
            let file = entry.unwrap().path();
            if file.is_file() && std::fs::metadata(&file).unwrap().len() > 0 {
                std::fs::write(&file, vec![0xA5; 64]).unwrap();
            }
        }
        let (db, how) = open(&path).unwrap();
        let Opened::MovedAside { to, .. } = how else {
            panic!("damage not noticed: {how:?}")
        };
        assert!(to.exists(), "the damaged store is kept for a post-mortem");
        assert!(
            db.get(b"k").unwrap().is_none(),
            "the new store starts empty"
        );
    }
}
