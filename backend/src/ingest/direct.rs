//! Chunks written to a disk without the page cache (`O_DIRECT`).
//!
//! A copy between nodes writes gigabytes that nobody reads again soon (a placed replica is
//! read only as visitors ask for its tiles). (An upload's chunks are written through the page
//! cache: their sender waits for each answer; see `ingest::Write`.)
//! Through the page cache, each byte is copied into a page the kernel must first find and
//! account for: writing 1 GiB of a copy from memory cost this machine 0.40-3.0 s of kernel time
//! against 0.21 s written direct (`dd conv=fsync` against `oflag=direct`, the 3.0 s right after
//! the cache was dropped), and a re-mirror spent a fifth of both cores in that copy (perf).
//!
//! Direct I/O needs the memory, the file offset and the length aligned to the disk's block:
//! [`floor::body`] gathers a request's body where it can be written from as it is, and
//! [`write_at`] writes the aligned part direct and only the file's last, partial block through
//! the page cache. Anything else (a body from elsewhere, an offset a client chose, a filesystem
//! that refuses `O_DIRECT`) is written through the page cache as before: the same bytes, the same
//! durability (the file is fsynced before it counts, either way).

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;
use std::path::Path;

use bytes::Bytes;

pub use floor::body::ALIGN;
use floor::body::{aligned_freeze, aligned_room};

/// Whether `bytes` at file offset `offset` can be written direct: memory and offset aligned,
/// and at least one whole block.
pub fn can_write_direct(offset: u64, bytes: &[u8]) -> bool {
    offset.is_multiple_of(ALIGN as u64)
        && bytes.as_ptr().align_offset(ALIGN) == 0
        && bytes.len() >= ALIGN
}

/// Writes `bytes` at `offset` of the file open (without `O_DIRECT`) as `file`: the whole blocks
/// direct, the rest through the page cache. `Ok(false)` when the filesystem refuses direct I/O
/// and nothing was written: the caller writes the bytes as it would have.
pub fn write_at(file: &File, offset: u64, bytes: &[u8]) -> io::Result<bool> {
    debug_assert!(can_write_direct(offset, bytes));
    let whole = bytes.len() / ALIGN * ALIGN;
    if !set_direct(file, true)? {
        return Ok(false);
    }
    let direct = file.write_all_at(&bytes[..whole], offset);
    // The fd goes back to the page cache whatever happened, for the tail and for any caller
    // that writes to it after.
    let back = set_direct(file, false);
    match direct {
        // Refused at the first write (some filesystems take the flag and not the I/O).
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
            back?;
            file.set_len(offset)?;
            return Ok(false);
        }
        r => r?,
    }
    back?;
    file.write_all_at(&bytes[whole..], offset + whole as u64)?;
    Ok(true)
}

/// Up to `size` bytes of `path` from `offset` (fewer at its end), read around the page cache
/// into memory a disk can take direct again. `Ok(None)` when the filesystem or the offset and
/// size do not allow it: the caller reads as it would have.
///
/// A copy reads each replica once: through the page cache it would evict the tiles visitors
/// are looking at, and pay a copy per page.
pub fn read(path: &Path, offset: u64, size: usize) -> io::Result<Option<Bytes>> {
    use std::os::unix::fs::OpenOptionsExt;
    if !offset.is_multiple_of(ALIGN as u64) || !size.is_multiple_of(ALIGN) {
        return Ok(None);
    }
    let file = match std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECT)
        .open(path)
    {
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => return Ok(None),
        r => r?,
    };
    let (mut buf, pad) = aligned_room(size);
    let mut done = 0;
    while done < size {
        let room = &mut buf.spare_capacity_mut()[done..size];
        // SAFETY: pread writes at most `room.len()` bytes into `room`, memory this buffer
        // owns and nothing else refers to.
        let n = unsafe {
            libc::pread(
                file.as_raw_fd(),
                room.as_mut_ptr().cast(),
                room.len(),
                (offset + done as u64) as libc::off_t,
            )
        };
        match n {
            0 => break,
            n if n > 0 => done += n as usize,
            _ => {
                let e = io::Error::last_os_error();
                match e.raw_os_error() {
                    Some(libc::EINTR) => continue,
                    Some(libc::EINVAL) if done == 0 => return Ok(None),
                    _ => return Err(e),
                }
            }
        }
        if !done.is_multiple_of(ALIGN) {
            // A direct read ends short only at the file's end; whatever was not read (a
            // filesystem that ends short elsewhere) is read through the page cache.
            let rest = std::fs::File::open(path)?;
            let mut more = vec![0; size - done];
            let n = read_full_at(&rest, &mut more, offset + done as u64)?;
            // SAFETY: the first `done` bytes after the padding were written by pread.
            unsafe { buf.set_len(pad + done) };
            buf.extend_from_slice(&more[..n]);
            return Ok(Some(aligned_freeze(buf, pad)));
        }
    }
    // SAFETY: the first `done` bytes after the padding were written by pread.
    unsafe { buf.set_len(pad + done) };
    Ok(Some(aligned_freeze(buf, pad)))
}

/// Reads into `buf` from `offset` until it is full or the file ends; how much was read.
fn read_full_at(file: &File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match file.read_at(&mut buf[n..], offset + n as u64) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// Turns `O_DIRECT` on or off for `file`; `Ok(false)` when the filesystem does not take it.
fn set_direct(file: &File, on: bool) -> io::Result<bool> {
    let fd = file.as_raw_fd();
    // SAFETY: fcntl on a descriptor owned by `file`, reading then setting its status flags.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
    if flags < 0 {
        return Err(io::Error::last_os_error());
    }
    let wanted = if on {
        flags | libc::O_DIRECT
    } else {
        flags & !libc::O_DIRECT
    };
    // SAFETY: as above.
    if unsafe { libc::fcntl(fd, libc::F_SETFL, wanted) } < 0 {
        let e = io::Error::last_os_error();
        return match e.raw_os_error() {
            Some(libc::EINVAL) if on => Ok(false),
            _ => Err(e),
        };
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pattern(n: usize) -> Vec<u8> {
        (0..n).map(|i| (i * 7 + i / 4096) as u8).collect()
    }

    #[test]
    fn a_chunk_written_direct_reads_back_whole_with_its_partial_last_block() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(&path)
            .unwrap();
        let data = pattern(5 * ALIGN + 123);
        let (mut first, pad) = aligned_room(2 * ALIGN);
        first.extend_from_slice(&data[..2 * ALIGN]);
        let first = aligned_freeze(first, pad);
        let (mut rest, pad) = aligned_room(data.len() - 2 * ALIGN);
        rest.extend_from_slice(&data[2 * ALIGN..]);
        let rest = aligned_freeze(rest, pad);
        assert!(can_write_direct(0, &first));
        assert!(can_write_direct(2 * ALIGN as u64, &rest));
        // A filesystem without direct I/O (tmpfs before Linux 6.6) says so; either way the
        // bytes are there.
        if write_at(&file, 0, &first).unwrap() {
            assert!(write_at(&file, 2 * ALIGN as u64, &rest).unwrap());
            // Around the page cache: of the file's six pages, only the last (partial) one.
            assert_eq!(
                pages_cached(&file, 6),
                [false, false, false, false, false, true]
            );
        } else {
            file.write_all_at(&data, 0).unwrap();
        }
        assert_eq!(std::fs::read(&path).unwrap(), data);
    }

    /// Which of the first `n` pages of `file` the page cache holds (mincore).
    fn pages_cached(file: &File, n: usize) -> Vec<bool> {
        let len = n * ALIGN;
        // SAFETY: a shared read-only map of a file we hold open, unmapped before returning;
        // mincore writes one byte per page into a vector of that many.
        unsafe {
            let at = libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ,
                libc::MAP_SHARED,
                file.as_raw_fd(),
                0,
            );
            assert_ne!(at, libc::MAP_FAILED);
            let mut resident = vec![0u8; n];
            assert_eq!(libc::mincore(at, len, resident.as_mut_ptr()), 0);
            libc::munmap(at, len);
            resident.iter().map(|r| r & 1 == 1).collect()
        }
    }

    #[test]
    fn a_file_read_direct_is_its_bytes_to_the_end_and_not_cached() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let data = pattern(3 * ALIGN + 99);
        std::fs::write(&path, &data).unwrap();
        let file = File::open(&path).unwrap();
        // Out of the page cache first (written back, then dropped), so that what is read
        // direct could only come from the disk.
        file.sync_all().unwrap();
        // SAFETY: advice on a descriptor we own.
        unsafe { libc::posix_fadvise(file.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
        let Some(first) = read(&path, 0, 2 * ALIGN).unwrap() else {
            return; // this filesystem has no direct I/O: nothing to check here
        };
        assert_eq!(&first[..], &data[..2 * ALIGN]);
        assert_eq!(first.as_ptr().align_offset(ALIGN), 0);
        let rest = read(&path, 2 * ALIGN as u64, 2 * ALIGN).unwrap().unwrap();
        assert_eq!(&rest[..], &data[2 * ALIGN..]);
        assert!(read(&path, 4 * ALIGN as u64, ALIGN)
            .unwrap()
            .unwrap()
            .is_empty());
        assert_eq!(pages_cached(&file, 4), [false, false, false, false]);
        // Offsets or sizes a disk cannot take direct are left to the caller.
        assert!(read(&path, 1, ALIGN).unwrap().is_none());
        assert!(read(&path, 0, 100).unwrap().is_none());
    }

    #[test]
    fn unaligned_memory_offsets_or_short_chunks_are_not_written_direct() {
        let (mut buf, pad) = aligned_room(2 * ALIGN + 1);
        buf.extend_from_slice(&pattern(2 * ALIGN + 1));
        let body = aligned_freeze(buf, pad);
        assert!(can_write_direct(0, &body));
        assert!(!can_write_direct(0, &body[1..]));
        assert!(!can_write_direct(100, &body));
        assert!(!can_write_direct(0, &body[..ALIGN - 1]));
    }
}
