//! A replica on a disk: one folder `images/ID/` holding the original as uploaded, the pyramid
//! file, the thumbnail, the metadata, and `replica.json` with the size and SHA-256 of each of
//! them and the nodes that hold the image's replicas.
//!
//! A replica is placed whole or not at all: its files are written into `images/.ID.placing/`,
//! each fsynced, the manifest last, then the folder is renamed into place and its parent
//! fsynced. So a folder named like an id is always complete, and anything else is debris of a
//! placement that died, cleared by the next one.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use cluster::{FileSum, ImageMeta};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

pub const MANIFEST: &str = "replica.json";
pub const PYRAMID: &str = "pyramid.tdp";
pub const THUMBNAIL: &str = "thumb.jpg";
pub const META: &str = "meta.json";
/// The manifest's layout version.
pub const FORMAT: u32 = 1;

/// `replica.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub format: u32,
    pub id: String,
    /// The nodes holding this image's replicas.
    pub nodes: Vec<String>,
    /// Seconds since the Unix epoch.
    pub placed_at: u64,
    /// Every other file of the folder.
    pub files: Vec<FileSum>,
}

impl Manifest {
    pub fn original(&self) -> Option<&FileSum> {
        self.files.iter().find(|f| f.name.starts_with("original."))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ReplicaError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not a valid replica manifest: {source}")]
    Manifest {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("{path}: manifest format {found} is newer than this program knows ({FORMAT})")]
    Format { path: PathBuf, found: u32 },
    #[error("{path}: the manifest is for image '{found}', not '{id}'")]
    WrongId {
        path: PathBuf,
        id: String,
        found: String,
    },
    #[error("{path}: a replica of this image is already on this disk")]
    AlreadyThere { path: PathBuf },
    #[error("{path} is not valid metadata: {source}")]
    Meta {
        path: PathBuf,
        source: serde_json::Error,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> ReplicaError + '_ {
    move |source| ReplicaError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// The files a replica is made from.
pub struct Sources<'a> {
    pub original: &'a Path,
    pub pyramid: &'a Path,
    pub thumbnail: &'a Path,
    pub meta: &'a ImageMeta,
}

/// Places a replica of `id` in `images_dir` (a disk's `images/`), copying and hashing each
/// file once. Returns its manifest.
pub fn place(
    images_dir: &Path,
    id: &str,
    sources: &Sources,
    nodes: &[String],
) -> Result<Manifest, ReplicaError> {
    let target = images_dir.join(id);
    if target.exists() {
        return Err(ReplicaError::AlreadyThere { path: target });
    }
    let temp = images_dir.join(format!(".{id}.placing"));
    if temp.exists() {
        std::fs::remove_dir_all(&temp).map_err(io(&temp))?;
    }
    std::fs::create_dir(&temp).map_err(io(&temp))?;
    let ext = sources
        .original
        .extension()
        .and_then(|e| e.to_str())
        .filter(|e| e.len() <= 8 && e.bytes().all(|b| b.is_ascii_alphanumeric()))
        .map_or_else(|| "bin".to_string(), str::to_ascii_lowercase);
    let mut files = Vec::new();
    for (from, name) in [
        (sources.original, format!("original.{ext}")),
        (sources.pyramid, PYRAMID.to_string()),
        (sources.thumbnail, THUMBNAIL.to_string()),
    ] {
        let mut input = std::fs::File::open(from).map_err(io(from))?;
        files.push(write_hashed(&temp, &name, &mut input)?);
    }
    let meta = serde_json::to_vec_pretty(sources.meta).expect("plain data");
    files.push(write_hashed(&temp, META, &mut meta.as_slice())?);
    let manifest = Manifest {
        format: FORMAT,
        id: id.to_string(),
        nodes: nodes.to_vec(),
        placed_at: cluster::unix_now(),
        files,
    };
    let json = serde_json::to_vec_pretty(&manifest).expect("plain data");
    write_hashed(&temp, MANIFEST, &mut json.as_slice())?;
    sync_dir(&temp)?;
    std::fs::rename(&temp, &target).map_err(io(&target))?;
    sync_dir(images_dir)?;
    Ok(manifest)
}

/// Copies `input` to `dir/name`, fsyncs it, and returns its size and SHA-256.
fn write_hashed(dir: &Path, name: &str, input: &mut dyn Read) -> Result<FileSum, ReplicaError> {
    let path = dir.join(name);
    let mut out = std::fs::File::create(&path).map_err(io(&path))?;
    let (size, sha256) = hash_stream(input, |chunk| out.write_all(chunk)).map_err(io(&path))?;
    out.sync_all().map_err(io(&path))?;
    Ok(FileSum {
        name: name.to_string(),
        size,
        sha256,
    })
}

/// Reads `input` to the end in 1 MiB chunks, handing each to `each`; returns size and SHA-256.
fn hash_stream(
    input: &mut dyn Read,
    mut each: impl FnMut(&[u8]) -> std::io::Result<()>,
) -> std::io::Result<(u64, String)> {
    let mut hasher = Sha256::new();
    let mut buf = vec![0; 1 << 20];
    let mut size = 0;
    loop {
        let n = match input.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        hasher.update(&buf[..n]);
        each(&buf[..n])?;
        size += n as u64;
    }
    Ok((size, hex::encode(hasher.finalize())))
}

/// SHA-256 of bytes, as `sha256sum` prints it.
pub fn sha256(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Size and SHA-256 of a file, calling `progress` with the bytes read so far.
///
/// The file is read on a second thread while the first hashes what was read: a verification
/// or a scrub reads from the disk and hashes at once, not one after the other (each read
/// otherwise waits for the disk with the CPU idle, then the hash waits with the disk idle).
pub fn hash_file(path: &Path, progress: &mut dyn FnMut(u64)) -> std::io::Result<(u64, String)> {
    use std::sync::mpsc::sync_channel;
    const BUFFER: usize = 1 << 20;
    let mut file = std::fs::File::open(path)?;
    // Buffers go round: empty ones to the reader, full ones (or its error) to the hasher.
    let (full_tx, full_rx) = sync_channel::<std::io::Result<Vec<u8>>>(READ_BUFFERS);
    let (empty_tx, empty_rx) = sync_channel::<Vec<u8>>(READ_BUFFERS);
    for _ in 0..READ_BUFFERS {
        let _ = empty_tx.send(Vec::new());
    }
    std::thread::scope(|scope| {
        scope.spawn(move || {
            // Ends when the file does, on an error, or when the hasher stopped taking buffers.
            while let Ok(mut buf) = empty_rx.recv() {
                buf.resize(BUFFER, 0);
                let n = match read_up_to(&mut file, &mut buf) {
                    Ok(0) => break,
                    Ok(n) => n,
                    Err(e) => {
                        let _ = full_tx.send(Err(e));
                        break;
                    }
                };
                buf.truncate(n);
                if full_tx.send(Ok(buf)).is_err() {
                    break;
                }
            }
        });
        let mut hasher = Sha256::new();
        let mut size = 0;
        for buf in full_rx {
            let buf = buf?;
            hasher.update(&buf);
            size += buf.len() as u64;
            progress(size);
            let _ = empty_tx.send(buf);
        }
        Ok((size, hex::encode(hasher.finalize())))
    })
}

/// Buffers of a [`hash_file`] between its reader and its hasher.
const READ_BUFFERS: usize = 3;

/// Reads until `buf` is full or the file ends: the bytes read.
fn read_up_to(file: &mut std::fs::File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match file.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// Asks the kernel to forget a file's cached pages (they are clean once fsynced), so the next
/// read comes from the disk: a verification that reads the page cache proves nothing.
pub fn drop_cache(path: &Path) {
    use std::os::fd::AsRawFd;
    if let Ok(f) = std::fs::File::open(path) {
        // SAFETY: a plain advisory call on a file descriptor we own.
        unsafe { libc::posix_fadvise(f.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
    }
}

fn sync_dir(dir: &Path) -> Result<(), ReplicaError> {
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io(dir))
}

/// Reads a replica folder's manifest and checks it is for `id`.
pub fn read_manifest(dir: &Path, id: &str) -> Result<Manifest, ReplicaError> {
    let path = dir.join(MANIFEST);
    let bytes = std::fs::read(&path).map_err(io(&path))?;
    let manifest: Manifest =
        serde_json::from_slice(&bytes).map_err(|source| ReplicaError::Manifest {
            path: path.clone(),
            source,
        })?;
    if manifest.format > FORMAT {
        return Err(ReplicaError::Format {
            path,
            found: manifest.format,
        });
    }
    if manifest.id != id {
        return Err(ReplicaError::WrongId {
            path,
            id: id.to_string(),
            found: manifest.id,
        });
    }
    Ok(manifest)
}

/// Reads a replica folder's metadata.
pub fn read_meta(dir: &Path) -> Result<ImageMeta, ReplicaError> {
    let path = dir.join(META);
    let bytes = std::fs::read(&path).map_err(io(&path))?;
    serde_json::from_slice(&bytes).map_err(|source| ReplicaError::Meta { path, source })
}

/// What a check of a replica's files against its manifest found wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mismatch {
    pub file: PathBuf,
    pub problem: String,
}

impl std::fmt::Display for Mismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.file.display(), self.problem)
    }
}

/// Reads every file of a replica and compares size and SHA-256 with the manifest, calling
/// `progress` with the bytes read so far.
pub fn verify(dir: &Path, manifest: &Manifest, progress: &mut dyn FnMut(u64)) -> Vec<Mismatch> {
    let mut wrong = Vec::new();
    let mut before = 0;
    for sum in &manifest.files {
        let file = dir.join(&sum.name);
        let problem = match hash_file(&file, &mut |n| progress(before + n)) {
            Err(e) => Some(format!("cannot read: {e}")),
            Ok((size, _)) if size != sum.size => {
                Some(format!("{size} bytes, the manifest says {}", sum.size))
            }
            Ok((_, sha)) if sha != sum.sha256 => Some(format!(
                "SHA-256 {sha}, the manifest says {} (the file is damaged)",
                sum.sha256
            )),
            Ok(_) => None,
        };
        before += sum.size;
        if let Some(problem) = problem {
            wrong.push(Mismatch { file, problem });
        }
    }
    wrong
}

/// The image ids with a replica folder in `images_dir`, sorted. Debris of dead placements and
/// names that are not ids are left out.
pub fn list(images_dir: &Path) -> std::io::Result<Vec<String>> {
    let mut ids = Vec::new();
    for entry in std::fs::read_dir(images_dir)? {
        let entry = entry?;
        if let Some(name) = entry.file_name().to_str() {
            if crate::library::valid_id(name) && entry.file_type()?.is_dir() {
                ids.push(name.to_string());
            }
        }
    }
    ids.sort();
    Ok(ids)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_read_on_one_thread_and_hashed_on_another_gives_its_size_and_sum() {
        let dir = tempfile::tempdir().unwrap();
        // Around the reader's buffer size, and a file of several buffers with a distinct
        // byte in each place, so a buffer handed on twice or out of order changes the sum.
        for size in [
            0usize,
            1,
            (1 << 20) - 1,
            1 << 20,
            (1 << 20) + 1,
            (7 << 20) / 2,
        ] {
            let bytes: Vec<u8> = (0..size).map(|i| (i * 31 + i / 4096) as u8).collect();
            let path = dir.path().join(format!("f{size}"));
            std::fs::write(&path, &bytes).unwrap();
            let mut seen = Vec::new();
            let (n, sum) = hash_file(&path, &mut |done| seen.push(done)).unwrap();
            assert_eq!(n, size as u64);
            assert_eq!(sum, sha256(&bytes), "{size} bytes");
            assert!(seen.windows(2).all(|w| w[0] < w[1]), "{seen:?}");
            assert_eq!(seen.last().copied().unwrap_or(0), size as u64);
        }
        // A folder cannot be read as a file: the reader's error comes back, nothing hangs.
        assert!(hash_file(dir.path(), &mut |_| {}).is_err());
        assert!(hash_file(&dir.path().join("none"), &mut |_| {}).is_err());
    }

    fn sources(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
        let (o, p, t) = (dir.join("scan.TIF"), dir.join("p.tdp"), dir.join("t.jpg"));
        std::fs::write(&o, b"original bytes").unwrap();
        std::fs::write(&p, vec![7u8; 3 << 20]).unwrap();
        std::fs::write(&t, b"thumb").unwrap();
        (o, p, t)
    }

    #[test]
    fn a_placed_replica_verifies_and_damage_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let (o, p, t) = sources(dir.path());
        let images = dir.path().join("images");
        std::fs::create_dir(&images).unwrap();
        // Debris of a placement that died is cleared, not mistaken for a replica.
        std::fs::create_dir(images.join(".art.placing")).unwrap();
        let meta = ImageMeta {
            title: "Art".into(),
            ..ImageMeta::default()
        };
        let src = Sources {
            original: &o,
            pyramid: &p,
            thumbnail: &t,
            meta: &meta,
        };
        let nodes = vec!["node-a".to_string(), "node-b".to_string()];
        let m = place(&images, "art", &src, &nodes).unwrap();
        assert_eq!(list(&images).unwrap(), ["art"]);
        let folder = images.join("art");
        assert_eq!(read_manifest(&folder, "art").unwrap(), m);
        assert_eq!(m.original().unwrap().name, "original.tif");
        assert_eq!(read_meta(&folder).unwrap(), meta);
        // The same sum sha256sum would print.
        let (_, sha) = hash_file(&p, &mut |_| {}).unwrap();
        assert_eq!(m.files[1].sha256, sha);
        let mut seen = 0;
        assert!(verify(&folder, &m, &mut |n| seen = n).is_empty());
        assert_eq!(seen, m.files.iter().map(|f| f.size).sum::<u64>());
        assert!(matches!(
            place(&images, "art", &src, &nodes),
            Err(ReplicaError::AlreadyThere { .. })
        ));
        assert!(matches!(
            read_manifest(&folder, "other"),
            Err(ReplicaError::WrongId { .. })
        ));

        // One byte flipped in the pyramid, the thumbnail cut short.
        let mut bytes = std::fs::read(folder.join(PYRAMID)).unwrap();
        bytes[2 << 20] ^= 1;
        std::fs::write(folder.join(PYRAMID), bytes).unwrap();
        std::fs::write(folder.join(THUMBNAIL), b"thu").unwrap();
        let wrong = verify(&folder, &m, &mut |_| {});
        let text: Vec<_> = wrong.iter().map(ToString::to_string).collect();
        assert_eq!(wrong.len(), 2, "{text:?}");
        assert!(text[0].contains("pyramid.tdp") && text[0].contains("damaged"));
        assert!(text[1].contains("thumb.jpg") && text[1].contains("3 bytes"));
    }
}
