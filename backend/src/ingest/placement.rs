//! A replica arriving on a target node, hidden from the catalog until it is published. Its
//! folder's name is the fact:
//!
//! ```text
//! images/.ID.incoming/   files arriving (fsynced chunks); debris if the sender died
//! images/.ID.placed/     every file whole, fsynced, and replica.json written ("placed")
//! images/.ID.verified/   every file read back from the disk and matched ("verified")
//! images/ID/             published: in the catalog, served, visible to frontends
//! ```
//!
//! Each step is a rename and an fsync of `images/`, so a crash leaves the replica in exactly
//! one state, and a step asked for again after a crash is done again or found done.
//! `replica::list` (and so the catalog) sees only the last name.

use std::path::PathBuf;
use std::sync::Arc;

use super::{append_at, io, roomiest, sync_dir, write_durable, IngestError};
use crate::disk::Disk;
use crate::library::valid_id;
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

const STAGES: [(Placement, &str); 3] = [
    (Placement::Incoming, "incoming"),
    (Placement::Placed, "placed"),
    (Placement::Verified, "verified"),
];

fn hidden(disk: &Disk, id: &str, stage: Placement) -> PathBuf {
    match STAGES.iter().find(|(s, _)| *s == stage) {
        Some((_, suffix)) => disk.images_dir().join(format!(".{id}.{suffix}")),
        None => disk.images_dir().join(id),
    }
}

fn check_id(id: &str) -> Result<(), IngestError> {
    if valid_id(id) {
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
    check_id(id)?;
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
    std::fs::create_dir_all(&images).map_err(io(&images))?;
    let dir = hidden(&disk, id, Placement::Incoming);
    std::fs::create_dir(&dir).map_err(io(&dir))?;
    sync_dir(&images)
}

/// A file name a replica may hold.
fn allowed_file(name: &str) -> bool {
    [PYRAMID, THUMBNAIL, META].contains(&name)
        || name.strip_prefix("original.").is_some_and(|ext| {
            (1..=8).contains(&ext.len()) && ext.bytes().all(|b| b.is_ascii_alphanumeric())
        })
}

/// Appends a chunk to one file of an incoming replica.
pub fn write(
    disks: &[Arc<Disk>],
    id: &str,
    file: &str,
    offset: u64,
    bytes: &[u8],
) -> Result<u64, IngestError> {
    check_id(id)?;
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
        ),
        Some((_, stage)) => Err(IngestError::Invalid(format!(
            "replica {id} is already {stage:?} here"
        ))),
        None => Err(IngestError::NotFound(format!(
            "replica {id} was not begun here"
        ))),
    }
}

/// Every file is here: checks their sizes, writes the manifest, and makes the replica "placed".
pub fn seal(disks: &[Arc<Disk>], id: &str, manifest: &Manifest) -> Result<(), IngestError> {
    check_id(id)?;
    if manifest.id != id {
        return Err(IngestError::Invalid(format!(
            "the manifest is for {}",
            manifest.id
        )));
    }
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
        let size = std::fs::metadata(&path).map_err(io(&path))?.len();
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

/// Reads every file of the placed replica back from the disk and compares it with `expected`
/// (the sender's manifest). A match makes it "verified"; a mismatch throws the replica away so
/// it is placed again, and says what was wrong.
pub fn verify(disks: &[Arc<Disk>], id: &str, expected: &Manifest) -> Result<(), IngestError> {
    check_id(id)?;
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
    let stored = replica::read_manifest(&dir, id).map_err(|e| IngestError::Invalid(e.to_string()));
    let mut wrong: Vec<String> = match stored {
        Ok(m) if m == *expected => Vec::new(),
        Ok(_) => vec!["its manifest differs from the sender's".into()],
        Err(e) => vec![e.to_string()],
    };
    if wrong.is_empty() {
        for f in &expected.files {
            replica::drop_cache(&dir.join(&f.name));
        }
        wrong = replica::verify(&dir, expected, &mut |_| {})
            .iter()
            .map(ToString::to_string)
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
    check_id(id)?;
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

/// Removes transfers that died before their replica was placed. Called when the node starts
/// (nothing is arriving yet).
pub fn clear_debris(disks: &[Arc<Disk>]) {
    for d in disks.iter().filter(|d| !d.is_failed()) {
        let Ok(entries) = std::fs::read_dir(d.images_dir()) else {
            continue;
        };
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') && name.ends_with(".incoming") {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
    }
}
