//! A replica arriving on a target node, hidden from the catalog until it is published. Its
//! folder's name is the fact:
//!
//! ```text
//! images/.ID.incoming/   files arriving (fsynced chunks); debris if the sender died
//! images/.ID.placed/     every file whole, fsynced, and replica.json written ("placed")
//! images/.ID.verified/   every file matched, by its sum as written or read back ("verified")
//! images/ID/             published: in the catalog, served, visible to frontends
//! ```
//!
//! Each step is a rename and an fsync of `images/`, so a crash leaves the replica in exactly
//! one state, and a step asked for again after a crash is done again or found done.
//! `replica::list` (and so the catalog) sees only the last name.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use super::{append_at, io, roomiest, sync_dir, write_durable, IngestError, Write};
use crate::disk::Disk;
use crate::replica::{self, Manifest, MANIFEST, META, PYRAMID, THUMBNAIL};

/// How far a replica has come on this node.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Placement {
    Incoming,
    Placed,
    Verified,
    Published,
}

impl Placement {
    /// Its name, as in the JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Placement::Incoming => "incoming",
            Placement::Placed => "placed",
            Placement::Verified => "verified",
            Placement::Published => "published",
        }
    }
}

const STAGES: [(Placement, &str); 3] = [
    (Placement::Incoming, "incoming"),
    (Placement::Placed, "placed"),
    (Placement::Verified, "verified"),
];

/// The folder of replica `id` at `stage` on `disk`.
pub fn hidden(disk: &Disk, id: &str, stage: Placement) -> PathBuf {
    match STAGES.iter().find(|(s, _)| *s == stage) {
        Some((_, suffix)) => disk.images_dir().join(format!(".{id}.{suffix}")),
        None => disk.images_dir().join(id),
    }
}

/// An image id as it arrives (it names a folder): refused (400) unless it is one.
pub fn check_image_id(id: &str) -> Result<(), IngestError> {
    if cluster::valid_image_id(id) {
        Ok(())
    } else {
        Err(IngestError::Invalid(format!("'{id}' is not an image id")))
    }
}

/// Where replica `id` is on this node and how far it has come (the furthest, if a dead run
/// left more than one).
pub fn find(disks: &[Arc<Disk>], id: &str) -> Option<(Arc<Disk>, Placement)> {
    let mut best: Option<(Arc<Disk>, Placement)> = None;
    for d in disks.iter().filter(|d| !d.is_failed()) {
        for stage in [
            Placement::Published,
            Placement::Verified,
            Placement::Placed,
            Placement::Incoming,
        ] {
            if hidden(d, id, stage).is_dir() {
                if best.as_ref().is_none_or(|(_, b)| stage > *b) {
                    best = Some((d.clone(), stage));
                }
                break;
            }
        }
    }
    best
}

/// Starts receiving replica `id` (`size` bytes in all) on the disk with the most room. Anything
/// a dead transfer left is thrown away. Already placed or further: nothing to do.
pub fn begin(disks: &[Arc<Disk>], node: &str, id: &str, size: u64) -> Result<(), IngestError> {
    check_image_id(id)?;
    match find(disks, id) {
        Some((_, stage)) if stage >= Placement::Placed => return Ok(()),
        Some((d, _)) => {
            let old = hidden(&d, id, Placement::Incoming);
            std::fs::remove_dir_all(&old).map_err(io(&old))?;
        }
        None => {}
    }
    let disk = roomiest(disks, node, size)?;
    let images = disk.images_dir();
    floor::durable::create_dir(&images).map_err(io(&images))?;
    let dir = hidden(&disk, id, Placement::Incoming);
    std::fs::create_dir(&dir).map_err(io(&dir))?;
    sync_dir(&images)
}

/// A file name a replica may hold: a plain name in its folder, never a path.
fn allowed_file(name: &str) -> bool {
    [PYRAMID, THUMBNAIL, META].contains(&name)
        || name.strip_prefix("original.").is_some_and(|ext| {
            (1..=8).contains(&ext.len()) && ext.bytes().all(|b| b.is_ascii_alphanumeric())
        })
}

/// A manifest another node sent: for this replica, and naming only files a replica holds,
/// each once. Checked before anything is read or written by it.
pub fn check_manifest(id: &str, manifest: &Manifest) -> Result<(), IngestError> {
    if manifest.id != id {
        return Err(IngestError::Invalid(format!(
            "the manifest is for {}",
            manifest.id
        )));
    }
    let mut seen = std::collections::BTreeSet::new();
    for f in &manifest.files {
        if !allowed_file(&f.name) {
            return Err(IngestError::Invalid(format!(
                "the manifest names '{}': a replica holds no such file",
                f.name
            )));
        }
        if !seen.insert(f.name.as_str()) {
            return Err(IngestError::Invalid(format!(
                "the manifest names '{}' twice",
                f.name
            )));
        }
    }
    Ok(())
}

/// Appends a chunk to one file of an incoming replica.
pub fn write(
    disks: &[Arc<Disk>],
    id: &str,
    file: &str,
    offset: u64,
    bytes: &[u8],
) -> Result<u64, IngestError> {
    check_image_id(id)?;
    if !allowed_file(file) {
        return Err(IngestError::Invalid(format!(
            "a replica holds no file '{file}'"
        )));
    }
    match find(disks, id) {
        Some((d, Placement::Incoming)) => append_at(
            &hidden(&d, id, Placement::Incoming).join(file),
            offset,
            bytes,
            Write::Direct,
        ),
        Some((_, stage)) => Err(IngestError::Invalid(format!(
            "replica {id} is already {} here",
            stage.as_str()
        ))),
        None => Err(IngestError::NotFound(format!(
            "replica {id} was not begun here"
        ))),
    }
}

/// Every file is here: checks their sizes, writes the manifest, and makes the replica "placed".
pub fn seal(disks: &[Arc<Disk>], id: &str, manifest: &Manifest) -> Result<(), IngestError> {
    check_image_id(id)?;
    check_manifest(id, manifest)?;
    let disk = match find(disks, id) {
        Some((_, stage)) if stage >= Placement::Placed => return Ok(()),
        Some((d, _)) => d,
        None => {
            return Err(IngestError::NotFound(format!(
                "replica {id} was not begun here"
            )))
        }
    };
    let dir = hidden(&disk, id, Placement::Incoming);
    for f in &manifest.files {
        let path = dir.join(&f.name);
        let size = match std::fs::metadata(&path) {
            Ok(m) => m.len(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(IngestError::Invalid(format!(
                    "{}: it never arrived",
                    f.name
                )))
            }
            Err(e) => return Err(io(&path)(e)),
        };
        if size != f.size {
            return Err(IngestError::Invalid(format!(
                "{}: {size} bytes arrived of {}",
                f.name, f.size
            )));
        }
        std::fs::File::open(&path)
            .and_then(|file| file.sync_all())
            .map_err(io(&path))?;
    }
    write_durable(
        &dir,
        MANIFEST,
        &serde_json::to_vec_pretty(manifest).expect("plain data"),
    )?;
    advance(&disk, id, Placement::Incoming, Placement::Placed)
}

/// Compares every file of the placed replica with `expected` (the sender's manifest): by the
/// SHA-256 it had as it was written (`written`: file name → sum, for files hashed whole as
/// their chunks were written and sealed since), or else read back from the disk. A match makes
/// it "verified"; a mismatch throws the replica away so it is placed again, and says what was
/// wrong.
pub fn verify(
    disks: &[Arc<Disk>],
    id: &str,
    expected: &Manifest,
    written: &HashMap<String, String>,
) -> Result<(), IngestError> {
    check_image_id(id)?;
    check_manifest(id, expected)?;
    let disk = match find(disks, id) {
        Some((_, stage)) if stage >= Placement::Verified => return Ok(()),
        Some((d, Placement::Placed)) => d,
        _ => {
            return Err(IngestError::NotFound(format!(
                "replica {id} is not placed here"
            )))
        }
    };
    let dir = hidden(&disk, id, Placement::Placed);
    // What was wrong goes back to the sender without this node's paths; the log has them.
    let mut wrong: Vec<String> = match replica::read_manifest(&dir, id) {
        Ok(m) if m == *expected => Vec::new(),
        Ok(_) => vec!["its manifest differs from the sender's".into()],
        Err(e) => {
            tracing::error!(image = id, disk = %disk.config.id, error = %e, "a placed replica's manifest does not read");
            vec!["its manifest cannot be read".into()]
        }
    };
    // The files without a sum as written are read back from the disk, page cache dropped.
    let mut unhashed = expected.clone();
    unhashed.files.retain(|f| match written.get(&f.name) {
        Some(sum) => {
            if *sum != f.sha256 {
                wrong.push(format!(
                    "{}: written with SHA-256 {sum}, not {}",
                    f.name, f.sha256
                ));
            }
            false
        }
        None => {
            replica::drop_cache(&dir.join(&f.name));
            true
        }
    });
    if wrong.is_empty() {
        let mismatches = replica::verify(&dir, &unhashed, &mut |_| {});
        for m in &mismatches {
            tracing::warn!(image = id, disk = %disk.config.id, file = %m.file.display(), problem = %m.problem, "a placed replica does not verify");
        }
        wrong = mismatches
            .iter()
            .map(|m| {
                let name = m.file.file_name().unwrap_or_default().to_string_lossy();
                format!("{name}: {}", m.problem)
            })
            .collect();
    }
    if !wrong.is_empty() {
        std::fs::remove_dir_all(&dir).map_err(io(&dir))?;
        return Err(IngestError::Checksum {
            what: format!("replica {id} on disk {}", disk.config.id),
            expected: "every file as sent".into(),
            found: wrong.join("; "),
        });
    }
    advance(&disk, id, Placement::Placed, Placement::Verified)
}

/// Makes the verified replica visible: renamed to its id. Returns its disk, for the catalog.
pub fn publish(disks: &[Arc<Disk>], id: &str) -> Result<Arc<Disk>, IngestError> {
    check_image_id(id)?;
    match find(disks, id) {
        Some((d, Placement::Published)) => Ok(d),
        Some((d, Placement::Verified)) => {
            advance(&d, id, Placement::Verified, Placement::Published)?;
            Ok(d)
        }
        _ => Err(IngestError::NotFound(format!(
            "replica {id} is not verified here"
        ))),
    }
}

fn advance(disk: &Disk, id: &str, from: Placement, to: Placement) -> Result<(), IngestError> {
    let (a, b) = (hidden(disk, id, from), hidden(disk, id, to));
    std::fs::rename(&a, &b).map_err(io(&b))?;
    sync_dir(&disk.images_dir())
}

/// Removes transfers that died before their replica was placed, and replicas whose removal a
/// crash or a power cut interrupted (`.ID.removing`: renamed aside to be removed, so never to
/// be served again; a cut can bring one back after its removal). Called when the node starts
/// (nothing is arriving yet).
pub fn clear_debris(disks: &[Arc<Disk>]) {
    for d in disks.iter().filter(|d| !d.is_failed()) {
        let Ok(entries) = std::fs::read_dir(d.images_dir()) else {
            continue;
        };
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') && (name.ends_with(".incoming") || name.ends_with(".removing"))
            {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest(id: &str, names: &[&str]) -> Manifest {
        Manifest {
            format: crate::replica::FORMAT,
            id: id.into(),
            nodes: vec!["a".into(), "b".into()],
            placed_at: 0,
            files: names
                .iter()
                .map(|n| cluster::FileSum {
                    name: n.to_string(),
                    size: 1,
                    sha256: "0".repeat(64),
                })
                .collect(),
        }
    }

    fn sha256(bytes: &[u8]) -> String {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(bytes))
    }

    /// A replica of `files` placed (written, sealed) on the one disk, and its manifest.
    fn placed(disks: &[Arc<Disk>], id: &str, files: &[(&str, &[u8])]) -> Manifest {
        let size = files.iter().map(|(_, b)| b.len() as u64).sum();
        begin(disks, "node-a", id, size).unwrap();
        for (name, bytes) in files {
            write(disks, id, name, 0, bytes).unwrap();
        }
        let m = Manifest {
            format: crate::replica::FORMAT,
            id: id.into(),
            nodes: vec!["node-a".into(), "node-b".into()],
            placed_at: 1,
            files: files
                .iter()
                .map(|(name, bytes)| cluster::FileSum {
                    name: name.to_string(),
                    size: bytes.len() as u64,
                    sha256: sha256(bytes),
                })
                .collect(),
        };
        seal(disks, id, &m).unwrap();
        m
    }

    #[test]
    fn a_file_hashed_as_written_is_matched_by_that_sum_and_the_others_are_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let disks = vec![Arc::new(Disk::new(cluster::DiskConfig {
            id: "d1".into(),
            path: dir.path().to_path_buf(),
            serial: None,
            location: Default::default(),
        }))];
        let (pyramid, meta): (&[u8], &[u8]) = (b"the pyramid's bytes", b"{\"title\": \"Art\"}");
        let files = [(PYRAMID, pyramid), (META, meta)];
        let on_disk = |name: &str| hidden(&disks[0], "art", Placement::Placed).join(name);
        let flip = |path: PathBuf| {
            let mut b = std::fs::read(&path).unwrap();
            b[3] ^= 1;
            std::fs::write(&path, b).unwrap();
        };
        let sums = |names: &[(&str, String)]| -> HashMap<String, String> {
            names
                .iter()
                .map(|(n, s)| (n.to_string(), s.clone()))
                .collect()
        };

        // The pyramid has its sum as written; the metadata has none, so it is read back, and
        // a byte changed on the disk is found: the replica is thrown away to be placed again.
        let m = placed(&disks, "art", &files);
        flip(on_disk(META));
        let err = verify(&disks, "art", &m, &sums(&[(PYRAMID, sha256(pyramid))])).unwrap_err();
        assert!(err.to_string().contains(META), "{err}");
        assert!(find(&disks, "art").is_none());

        // A sum as written that is not the sender's fails it, naming the file and both sums.
        let m = placed(&disks, "art", &files);
        let err = verify(&disks, "art", &m, &sums(&[(PYRAMID, sha256(b"other"))])).unwrap_err();
        assert!(
            err.to_string().contains(PYRAMID) && err.to_string().contains(&sha256(b"other")),
            "{err}"
        );
        assert!(find(&disks, "art").is_none());

        // With both sums as written, nothing is read again: what the disk does to the bytes
        // after they were written and flushed is the scrub's to find.
        let m = placed(&disks, "art", &files);
        flip(on_disk(PYRAMID));
        let all = sums(&[(PYRAMID, sha256(pyramid)), (META, sha256(meta))]);
        verify(&disks, "art", &m, &all).unwrap();
        assert_eq!(
            find(&disks, "art").map(|(_, s)| s),
            Some(Placement::Verified)
        );
    }

    #[test]
    fn a_manifest_names_only_the_files_a_replica_holds() {
        let good = [PYRAMID, THUMBNAIL, META, "original.png"];
        assert!(check_manifest("art", &manifest("art", &good)).is_ok());
        for bad in [
            "../x",
            "a/b",
            "/etc/passwd",
            "original./",
            "original.png/../../x",
            "",
        ] {
            let e = check_manifest("art", &manifest("art", &[PYRAMID, bad])).unwrap_err();
            assert_eq!(e.status(), 400, "{bad:?}: {e}");
            assert!(e.to_string().contains(&format!("'{bad}'")), "{e}");
        }
        let twice = check_manifest("art", &manifest("art", &[META, META])).unwrap_err();
        assert!(twice.to_string().contains("twice"), "{twice}");
        let other = check_manifest("art", &manifest("other", &good)).unwrap_err();
        assert_eq!(other.status(), 400);
    }
}
