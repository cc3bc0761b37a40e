//! Files that appear whole or not at all: written under a temporary name in the target's
//! directory, flushed to the disk, renamed over the target, and the directory flushed, so that
//! after a crash at any moment there is either the old state or the complete new file.

use std::fs::{File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// A file being written under a temporary name; removed on drop unless committed.
#[derive(Debug)]
pub struct AtomicFile {
    target: PathBuf,
    temp: PathBuf,
    file: Option<File>,
}

static SEQUENCE: AtomicU64 = AtomicU64::new(0);

impl AtomicFile {
    pub fn create(target: &Path) -> io::Result<AtomicFile> {
        let dir = parent_dir(target);
        let name = target
            .file_name()
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "path has no file name"))?;
        let prefix = format!(".{}.tmp-", name.to_string_lossy());
        remove_stale_temps(dir, &prefix);
        let temp = dir.join(format!(
            "{prefix}{}-{}",
            std::process::id(),
            SEQUENCE.fetch_add(1, Ordering::Relaxed)
        ));
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&temp)?;
        Ok(AtomicFile {
            target: target.to_path_buf(),
            temp,
            file: Some(file),
        })
    }

    pub fn file(&mut self) -> &mut File {
        self.file.as_mut().expect("file is open until commit")
    }

    pub fn target(&self) -> &Path {
        &self.target
    }

    pub fn temp_path(&self) -> &Path {
        &self.temp
    }

    /// Flushes the data to the disk. Split from [`AtomicFile::commit`] so that several files can
    /// be made durable before any of them becomes visible.
    pub fn sync(&mut self) -> io::Result<()> {
        self.file().sync_all()
    }

    /// Renames the (synced) file over its target and flushes the directory entry.
    pub fn commit(mut self) -> io::Result<()> {
        self.sync()?;
        drop(self.file.take());
        std::fs::rename(&self.temp, &self.target)?;
        // From here the temp name is gone; nothing to clean up even if the directory sync fails.
        self.temp = PathBuf::new();
        File::open(parent_dir(&self.target))?.sync_all()
    }
}

impl Drop for AtomicFile {
    fn drop(&mut self) {
        if !self.temp.as_os_str().is_empty() {
            drop(self.file.take());
            let _ = std::fs::remove_file(&self.temp);
        }
    }
}

/// Removes temporary files of earlier runs for the same target whose process is gone (killed
/// mid-write, or the machine crashed): they are never part of a committed file.
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn uncommitted_file_leaves_nothing_behind() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("a.tdp");
        {
            let mut f = AtomicFile::create(&target).unwrap();
            f.file().write_all(b"half").unwrap();
        }
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn temp_files_of_dead_processes_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        // PIDs above the kernel's maximum (4 194 304) never run.
        let stale = dir.path().join(".a.tdp.tmp-4999999-0");
        let other = dir.path().join(".b.tdp.tmp-4999999-0");
        std::fs::write(&stale, b"left by a killed run").unwrap();
        std::fs::write(&other, b"another target's").unwrap();
        let f = AtomicFile::create(&dir.path().join("a.tdp")).unwrap();
        assert!(!stale.exists());
        assert!(other.exists(), "only the same target's temps are touched");
        drop(f);
    }

    #[test]
    fn commit_replaces_the_target_whole() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("a.tdp");
        std::fs::write(&target, b"old").unwrap();
        let mut f = AtomicFile::create(&target).unwrap();
        f.file().write_all(b"new contents").unwrap();
        assert_eq!(std::fs::read(&target).unwrap(), b"old");
        f.commit().unwrap();
        assert_eq!(std::fs::read(&target).unwrap(), b"new contents");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
