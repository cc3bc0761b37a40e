//! The disk probes, shared by the backend's own probe and the monitor's: a small write that
//! must reach the disk (fsync) and read back the same, and a read that must come from the disk,
//! not the page cache. Blocking: call them off the async threads.

use std::io::{Read, Seek, SeekFrom, Write};
use std::os::fd::AsRawFd;
use std::path::Path;

/// Writes a line naming `round` into `path`, flushes it to the disk and reads it back.
pub fn write_fsync_read(path: &Path, round: u64) -> std::io::Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(true)
        .read(true)
        .write(true)
        .open(path)?;
    let payload = format!("td disk probe, round {round}\n");
    f.write_all(payload.as_bytes())?;
    f.sync_all()?;
    f.seek(SeekFrom::Start(0))?;
    let mut back = String::new();
    f.read_to_string(&mut back)?;
    if back != payload {
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
