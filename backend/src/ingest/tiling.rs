//! Tiling an upload's original, in a child process with a memory and a time limit.
//!
//! Any account holder can send an original, and a small file can be a huge image: a 937 KB
//! PNG that really is 30000×30000 took the node to 917 MB. Decoding runs in `td tile` as a
//! child whose address space is capped (`RLIMIT_AS`) and whose run is timed, so a bomb can
//! only kill that child, and the upload then fails with a plain reason. Library tests, which
//! have no `td` binary, tile in their own process ([`Tiler::InProcess`]).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::io::AsyncReadExt;

/// Default cap on a tiling child's memory (its address space), in MiB.
pub const DEFAULT_TILE_MEMORY_MB: u64 = 4096;
/// Default time a tiling may take.
pub const DEFAULT_TILE_TIME: Duration = Duration::from_secs(60 * 60);
/// The exit status `td tile` gives an original it cannot read (not a fault of the node).
pub const UNREADABLE_EXIT: i32 = 3;

/// Where and how an upload is tiled.
#[derive(Debug, Clone)]
pub enum Tiler {
    /// In this process, unbounded: tests of the library only.
    InProcess,
    /// `program tile …` as a child process.
    Child {
        program: PathBuf,
        memory_bytes: u64,
        time: Duration,
    },
}

/// What became of a tiling.
#[derive(Debug)]
pub enum Outcome {
    /// The pyramid and thumbnail are written.
    Tiled { width: u32, height: u32 },
    /// The original cannot be published: why, in the uploader's words (the file's name, not
    /// the staging path).
    Refused(String),
    /// Something of this node failed (its disk, the tiler); tried again later.
    Fault(String),
}

/// Tiles `original` into `pyramid` and `thumbnail`; `filename` is what the uploader called it.
pub async fn tile(
    tiler: &Tiler,
    original: &Path,
    pyramid: &Path,
    thumbnail: &Path,
    filename: &str,
) -> Outcome {
    // The uploader's words: their file's name, and no command-line advice.
    let plain = |text: String| {
        text.replace(&original.display().to_string(), filename)
            .replace(", or raise --max-memory", "")
            .replace(" (raise it with --max-megapixels if this is real)", "")
    };
    match tiler {
        Tiler::InProcess => {
            let (o, p, t) = (
                original.to_owned(),
                pyramid.to_owned(),
                thumbnail.to_owned(),
            );
            let result = tokio::task::spawn_blocking(move || {
                tiler::tile(&o, &p, &t, &tiler::TileOptions::default(), &|_, _| {})
            })
            .await;
            match result {
                Ok(Ok(r)) => Outcome::Tiled {
                    width: r.geometry.width,
                    height: r.geometry.height,
                },
                Ok(Err(tiler::TileError::Source(e)))
                    if !matches!(e, tiler::SourceError::Io { .. }) =>
                {
                    Outcome::Refused(plain(e.to_string()))
                }
                Ok(Err(e)) => Outcome::Fault(format!("tiling failed: {e}")),
                Err(e) => Outcome::Fault(format!("tiling died: {e}")),
            }
        }
        Tiler::Child {
            program,
            memory_bytes,
            time,
        } => {
            child(
                program,
                *memory_bytes,
                *time,
                original,
                pyramid,
                thumbnail,
                plain,
            )
            .await
        }
    }
}

async fn child(
    program: &Path,
    memory_bytes: u64,
    time: Duration,
    original: &Path,
    pyramid: &Path,
    thumbnail: &Path,
    plain: impl Fn(String) -> String,
) -> Outcome {
    let mib = memory_bytes >> 20;
    let mut command = tokio::process::Command::new(program);
    command
        .arg("tile")
        .arg(original)
        .arg("--output")
        .arg(pyramid)
        .arg("--thumbnail")
        .arg(thumbnail)
        .arg("--quiet")
        // The decoder refuses, from the header, what would not fit in half the cap: a clear
        // reason rather than a child killed for its memory.
        .arg("--max-memory")
        .arg((mib / 2).max(1).to_string())
        // Few malloc arenas: their address-space reservations would count against the cap
        // without holding anything.
        .env("MALLOC_ARENA_MAX", "2")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let limit = libc::rlimit {
        rlim_cur: memory_bytes,
        rlim_max: memory_bytes,
    };
    // SAFETY: setrlimit is async-signal-safe and touches nothing of the parent's.
    unsafe {
        command.pre_exec(move || {
            if libc::setrlimit(libc::RLIMIT_AS, &limit) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut running = match command.spawn() {
        Ok(c) => c,
        Err(e) => {
            return Outcome::Fault(format!("cannot start the tiler {}: {e}", program.display()))
        }
    };
    let mut stderr = running.stderr.take().expect("piped");
    // Its last words, bounded: a child cannot fill the node's memory through its errors.
    let said = async move {
        let mut text = Vec::new();
        let _ = (&mut stderr).take(64 << 10).read_to_end(&mut text).await;
        String::from_utf8_lossy(&text).trim().to_string()
    };
    let waited = tokio::time::timeout(time, async {
        let (status, said) = tokio::join!(running.wait(), said);
        (status, said)
    })
    .await;
    let (status, said) = match waited {
        Ok((Ok(status), said)) => (status, said),
        Ok((Err(e), _)) => return Outcome::Fault(format!("waiting for the tiler failed: {e}")),
        Err(_) => {
            // Dropping the child kills it (kill_on_drop).
            return Outcome::Refused(format!(
                "tiling this image took longer than {} minutes, the most this node allows",
                time.as_secs() / 60
            ));
        }
    };
    use std::os::unix::process::ExitStatusExt;
    if status.success() {
        return match tiler::PyramidReader::open(pyramid) {
            Ok(p) => Outcome::Tiled {
                width: p.geometry().width,
                height: p.geometry().height,
            },
            Err(e) => Outcome::Fault(format!("the tiler's pyramid does not open: {e}")),
        };
    }
    let last = said.lines().last().unwrap_or("").to_string();
    let out_of_memory = said.contains("memory allocation") || said.contains("capacity overflow");
    match (status.code(), status.signal()) {
        (Some(UNREADABLE_EXIT), _) => Outcome::Refused(plain(
            last.trim_start_matches("error: ")
                .trim_start_matches("Error: ")
                .to_string(),
        )),
        (_, Some(libc::SIGABRT | libc::SIGSEGV | libc::SIGKILL)) | (Some(_), _)
            if out_of_memory =>
        {
            Outcome::Refused(format!(
                "this image needs more than {mib} MiB of memory to tile, the most this node allows"
            ))
        }
        (_, Some(libc::SIGKILL)) => Outcome::Refused(format!(
            "tiling this image was stopped for taking more than {mib} MiB of memory"
        )),
        _ => Outcome::Fault(format!("the tiler failed ({status}): {last}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A stand-in for `td tile` that ends the way the script says: the classification of a
    /// child's end is the contract tested here (the real child runs in the system tests).
    fn program(dir: &Path, script: &str) -> PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let path = dir.join("tiler.sh");
        std::fs::write(&path, format!("#!/bin/sh\n{script}\n")).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        path
    }

    async fn run(script: &str, time: Duration) -> Outcome {
        let dir = tempfile::tempdir().unwrap();
        let tiler = Tiler::Child {
            program: program(dir.path(), script),
            memory_bytes: 256 << 20,
            time,
        };
        let original = dir.path().join("staging/abc/original");
        tile(
            &tiler,
            &original,
            &dir.path().join("p.tdp"),
            &dir.path().join("t.jpg"),
            "harbour.png",
        )
        .await
    }

    #[tokio::test]
    async fn a_child_s_end_is_a_reason_for_the_uploader_or_a_fault_of_the_node() {
        let minute = Duration::from_secs(60);
        // The original cannot be read: its reason, naming the uploader's file.
        match run(
            "echo \"error: $2: file is truncated: the file ends inside the image data\" >&2; exit 3",
            minute,
        )
        .await
        {
            Outcome::Refused(r) => {
                assert_eq!(r, "harbour.png: file is truncated: the file ends inside the image data")
            }
            other => panic!("{other:?}"),
        }
        // Out of memory under the cap (Rust's allocation failure aborts the child).
        match run(
            "echo 'memory allocation of 6000000 bytes failed' >&2; kill -ABRT $$",
            minute,
        )
        .await
        {
            Outcome::Refused(r) => assert!(r.contains("256 MiB"), "{r}"),
            other => panic!("{other:?}"),
        }
        // Too long: stopped, and said so.
        match run("sleep 30", Duration::from_millis(300)).await {
            Outcome::Refused(r) => assert!(r.contains("longer than"), "{r}"),
            other => panic!("{other:?}"),
        }
        // Anything else is this node's fault, tried again.
        match run("echo 'error: disk full' >&2; exit 1", minute).await {
            Outcome::Fault(f) => assert!(f.contains("disk full"), "{f}"),
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn the_cap_is_set_on_the_child() {
        // `ulimit -v` reports the address-space limit in KiB.
        match run("ulimit -v >&2; exit 1", Duration::from_secs(60)).await {
            Outcome::Fault(f) => assert!(f.ends_with(&(256 * 1024).to_string()), "{f}"),
            other => panic!("{other:?}"),
        }
    }
}
