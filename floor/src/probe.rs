//! The disk probes, shared by the backend's own probe and the monitor's: a small write that
//! must reach the disk (fsync) and read back the same, and a read that must come from the disk,
//! not the page cache. Blocking: call them off the async threads.

use std::io::Read;
use std::os::fd::AsRawFd;
use std::path::Path;

/// Writes a line naming `round` over the start of `path`, flushes it to the disk and reads it
/// back. The line has a fixed length, so after the first round the file keeps its size and
/// the flush is of one data block (`fdatasync`), not a journal commit: cheap enough to run
/// every half second on every disk, and still stuck on a frozen filesystem and failing on a
/// dead one.
pub fn write_fsync_read(path: &Path, round: u64) -> std::io::Result<()> {
    use std::os::unix::fs::FileExt;
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(path)?;
    let payload = format!("td disk probe, round {round:>20}\n");
    let fresh = f.metadata()?.len() != payload.len() as u64;
    f.write_all_at(payload.as_bytes(), 0)?;
    if fresh {
        f.set_len(payload.len() as u64)?;
        f.sync_all()?;
    } else {
        f.sync_data()?;
    }
    let mut back = vec![0u8; payload.len()];
    f.read_exact_at(&mut back, 0)?;
    if back != payload.as_bytes() {
        return Err(std::io::Error::other(
            "probe file read back different bytes",
        ));
    }
    Ok(())
}

/// Reads `path` whole after asking the kernel to drop its cached pages, so that the read
/// reaches the disk.
pub fn read_uncached(path: &Path) -> std::io::Result<Vec<u8>> {
    let mut f = std::fs::File::open(path)?;
    // SAFETY: a plain advisory call on a file descriptor we own.
    unsafe { libc::posix_fadvise(f.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
    let mut bytes = Vec::new();
    f.read_to_end(&mut bytes)?;
    Ok(bytes)
}
