//! The one durable write of a node: a file appears whole or not at all, and once this returns it
//! survives a crash or a power cut. Written under a temporary name beside the target, flushed
//! (`fsync`), renamed over the target, and the folder flushed so the rename itself is on the
//! disk. Temporary files left by a process that died mid-write are removed on the next write of
//! the same target.
//!
//! Every marker of the upload protocol, a disk's identity file, the portal's accounts and the
//! cluster secret go through here. (The tiler keeps its own `AtomicFile`, the same steps, so
//! that it stays a library free of the cluster's crates.)

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// A durable write that failed: which file, at which step, and the system's error.
#[derive(Debug, thiserror::Error)]
#[error("cannot write {path} ({step}): {source}")]
pub struct WriteError {
    pub path: PathBuf,
    pub step: &'static str,
    #[source]
    pub source: io::Error,
}

impl WriteError {
    /// The disk is full (or the quota used up): a fault of room, not of the disk.
    pub fn is_full(&self) -> bool {
        matches!(
            self.source.raw_os_error(),
            Some(libc::ENOSPC) | Some(libc::EDQUOT)
        )
    }
}

/// How the file is made.
#[derive(Debug, Clone, Copy, Default)]
pub struct Options {
    /// Permission bits of the new file (default: the process's umask on 0666).
    pub mode: Option<u32>,
    /// Refuse to replace an existing target (`AlreadyExists`).
    pub keep_existing: bool,
}

impl Options {
    /// Readable and writable by its owner only (secrets, password hashes).
    pub const PRIVATE: Options = Options {
        mode: Some(0o600),
        keep_existing: false,
    };
}

static SEQUENCE: AtomicU64 = AtomicU64::new(0);

/// Writes `bytes` to `path` whole or not at all, durably.
pub fn write(path: &Path, bytes: &[u8]) -> Result<(), WriteError> {
    write_with(path, bytes, Options::default())
}

/// [`write`] with [`Options`].
pub fn write_with(path: &Path, bytes: &[u8], options: Options) -> Result<(), WriteError> {
    let fail = |step| {
        move |source| WriteError {
            path: path.to_path_buf(),
            step,
            source,
        }
    };
    let dir = parent_dir(path);
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "the path has no file name"))
        .map_err(fail("naming it"))?;
    if options.keep_existing && path.exists() {
        return Err(fail("checking it is new")(io::Error::new(
            io::ErrorKind::AlreadyExists,
            "the file exists and is kept",
        )));
    }
    let prefix = format!(".{}.tmp-", name.to_string_lossy());
    remove_stale_temps(dir, &prefix);
    let temp = dir.join(format!(
        "{prefix}{}-{}",
        std::process::id(),
        SEQUENCE.fetch_add(1, Ordering::Relaxed)
    ));
    let mut open = OpenOptions::new();
    open.write(true).create_new(true);
    if let Some(mode) = options.mode {
        open.mode(mode);
    }
    let written = open
        .open(&temp)
        .and_then(|mut f| f.write_all(bytes).and_then(|()| f.sync_all()))
        .map_err(fail("writing the temporary file"));
    let renamed = written.and_then(|()| {
        if options.keep_existing {
            // A hard link fails if the target appeared meanwhile, where a rename would replace it.
            std::fs::hard_link(&temp, path).map_err(fail("linking it into place"))
        } else {
            std::fs::rename(&temp, path).map_err(fail("renaming it into place"))
        }
    });
    if renamed.is_err() || options.keep_existing {
        let _ = std::fs::remove_file(&temp);
    }
    renamed?;
    sync_dir(dir).map_err(fail("flushing its folder"))
}

/// Flushes a folder, so that the names created, renamed or removed in it are on the disk.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Makes folder `dir`, and any of its parents missing, so that it survives a power cut: each
/// folder made is flushed into its parent (a folder made and never flushed into its parent can
/// vanish with everything later written in it, fsynced or not). One already there is left.
pub fn create_dir(dir: &Path) -> io::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        create_dir(parent)?;
    }
    match std::fs::create_dir(dir) {
        Err(e) if e.kind() != io::ErrorKind::AlreadyExists => return Err(e),
        _ => {}
    }
    match dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        Some(parent) => sync_dir(parent),
        None => Ok(()),
    }
}

/// Removes temporary files of earlier writes of the same target whose process is gone (killed
/// mid-write, or the machine crashed): they are never part of a written file. Temps of a
/// running process (this one included: another thread may be writing) are left alone.
fn remove_stale_temps(dir: &Path, prefix: &str) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(rest) = name.to_str().and_then(|n| n.strip_prefix(prefix)) else {
            continue;
        };
        let Some(pid) = rest.split('-').next().and_then(|p| p.parse::<u32>().ok()) else {
            continue;
        };
        if pid != std::process::id() && !Path::new(&format!("/proc/{pid}")).exists() {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// Is this name one of our temporary files (so a scan of a folder can skip it)?
pub fn is_temp_name(name: &str) -> bool {
    name.starts_with('.') && name.contains(".tmp-")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn a_write_replaces_the_target_whole_and_leaves_no_temp() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("upload.json");
        std::fs::write(&target, b"old").unwrap();
        write(&target, b"new contents").unwrap();
        assert_eq!(std::fs::read(&target).unwrap(), b"new contents");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn temps_of_dead_processes_are_removed_and_others_kept() {
        let dir = tempfile::tempdir().unwrap();
        // PIDs above the kernel's maximum (4 194 304) never run.
        let stale = dir.path().join(".a.json.tmp-4999999-0");
        let other = dir.path().join(".b.json.tmp-4999999-0");
        let running = dir
            .path()
            .join(format!(".a.json.tmp-{}-999", std::process::id()));
        for f in [&stale, &other, &running] {
            std::fs::write(f, b"left behind").unwrap();
        }
        write(&dir.path().join("a.json"), b"{}").unwrap();
        assert!(!stale.exists());
        assert!(other.exists(), "only the same target's temps are touched");
        assert!(running.exists(), "a live process's temp is its own");
        assert!(is_temp_name(".a.json.tmp-4999999-0"));
        assert!(!is_temp_name("a.json"));
    }

    #[test]
    fn private_files_are_the_owners_and_kept_files_are_not_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("cluster.secret");
        let keep = Options {
            keep_existing: true,
            ..Options::PRIVATE
        };
        write_with(&target, b"first", keep).unwrap();
        let mode = std::fs::metadata(&target).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "{mode:o}");
        let again = write_with(&target, b"second", keep).unwrap_err();
        assert_eq!(again.source.kind(), io::ErrorKind::AlreadyExists);
        assert_eq!(std::fs::read(&target).unwrap(), b"first");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn a_write_into_a_missing_folder_names_the_file_and_step() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("gone").join("x.json");
        let e = write(&target, b"{}").unwrap_err();
        assert_eq!(e.path, target);
        assert_eq!(e.step, "writing the temporary file");
        assert!(e.to_string().contains("gone/x.json"), "{e}");
    }
}
