//! The images one process serves: a directory holding, for each image `ID`, its pyramid file
//! `ID.tdp`, thumbnail `ID.thumb.jpg` and metadata `ID.json`. (The catalog of a real node,
//! over many disks, grows from this.)

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::disk::Disk;
use tiler::{PyramidReader, ReadError};

/// What a content provider says about an image.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageMeta {
    pub title: String,
    #[serde(default)]
    pub artist: String,
    #[serde(default)]
    pub date: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub keywords: Vec<String>,
    #[serde(default)]
    pub rights: String,
}

/// One servable image.
#[derive(Debug)]
pub struct Image {
    pub id: String,
    /// A number unique to this image in this process: a cheap key for caches.
    pub serial: u64,
    pub meta: ImageMeta,
    pub pyramid: PyramidReader,
    pub thumbnail: PathBuf,
    /// The disk it is on (none in the demo's single folder).
    pub disk: Option<Arc<Disk>>,
}

impl Image {
    /// False once its disk has failed: its requests are answered 503 without touching it.
    pub fn readable(&self) -> bool {
        !self.disk.as_ref().is_some_and(|d| d.is_failed())
    }

    /// Takes note of an error reading this image: an I/O error fails the whole disk (damage
    /// to one file does not). Returns the disk if this error failed it just now.
    pub fn read_failed(&self, error: &ReadError) -> Option<&Arc<Disk>> {
        let disk = self.disk.as_ref()?;
        (error.is_io() && disk.mark_failed(error)).then_some(disk)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LibraryError {
    #[error("cannot read the image directory {path}: {source}")]
    Dir { path: PathBuf, source: io::Error },
    #[error("cannot read metadata {path}: {source}")]
    Meta { path: PathBuf, source: io::Error },
    #[error("metadata {path} is not valid: {source}")]
    MetaJson {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error(transparent)]
    Pyramid(#[from] ReadError),
    #[error("{path}: an image with this id was already found on another disk")]
    Duplicate { path: PathBuf },
}

/// Image ids are what URLs carry: short, and safe in a path and in HTML.
pub fn valid_id(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Every image of a directory, by id.
#[derive(Debug, Default)]
pub struct Library {
    images: BTreeMap<String, Arc<Image>>,
    disks: Vec<Arc<Disk>>,
    /// Why images found in the directory are not served, for `/health`.
    skipped: Vec<String>,
}

impl Library {
    /// Loads every `ID.tdp` with its `ID.json` from `dir`. An image whose files are damaged
    /// is skipped and reported in the returned list, never stopping the others.
    pub fn open(dir: &Path) -> Result<(Library, Vec<LibraryError>), LibraryError> {
        let mut images = BTreeMap::new();
        let mut problems = Vec::new();
        add_dir(dir, None, &mut images, &mut problems)?;
        let skipped = problems.iter().map(ToString::to_string).collect();
        let disks = Vec::new();
        Ok((
            Library {
                images,
                disks,
                skipped,
            },
            problems,
        ))
    }

    /// Loads the images of a node's disks. A disk that cannot be read, or an image found
    /// twice, is reported and skipped.
    pub fn open_disks(disks: Vec<Arc<Disk>>) -> (Library, Vec<LibraryError>) {
        let mut images = BTreeMap::new();
        let mut problems = Vec::new();
        for disk in &disks {
            if let Err(e) = add_dir(&disk.images_dir(), Some(disk), &mut images, &mut problems) {
                problems.push(e);
            }
        }
        let skipped = problems.iter().map(ToString::to_string).collect();
        (
            Library {
                images,
                disks,
                skipped,
            },
            problems,
        )
    }

    pub fn disks(&self) -> &[Arc<Disk>] {
        &self.disks
    }

    pub fn get(&self, id: &str) -> Option<&Arc<Image>> {
        self.images.get(id)
    }

    pub fn images(&self) -> impl Iterator<Item = &Arc<Image>> {
        self.images.values()
    }

    pub fn skipped(&self) -> &[String] {
        &self.skipped
    }

    pub fn len(&self) -> usize {
        self.images.len()
    }

    pub fn is_empty(&self) -> bool {
        self.images.is_empty()
    }
}

/// Adds the images of `dir` to `images`; an image already there (from another disk) or damaged
/// is reported in `problems` and skipped.
fn add_dir(
    dir: &Path,
    disk: Option<&Arc<Disk>>,
    images: &mut BTreeMap<String, Arc<Image>>,
    problems: &mut Vec<LibraryError>,
) -> Result<(), LibraryError> {
    let dir_err = |source| LibraryError::Dir {
        path: dir.to_path_buf(),
        source,
    };
    for entry in std::fs::read_dir(dir).map_err(dir_err)? {
        let path = entry.map_err(dir_err)?.path();
        let Some(id) = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_suffix(".tdp"))
            .filter(|id| valid_id(id))
        else {
            continue;
        };
        if images.contains_key(id) {
            problems.push(LibraryError::Duplicate { path });
            continue;
        }
        match load(dir, id, images.len() as u64) {
            Ok(mut image) => {
                image.disk = disk.cloned();
                images.insert(id.to_string(), Arc::new(image));
            }
            Err(e) => problems.push(e),
        }
    }
    Ok(())
}

fn load(dir: &Path, id: &str, serial: u64) -> Result<Image, LibraryError> {
    let meta_path = dir.join(format!("{id}.json"));
    let meta = match std::fs::read(&meta_path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map_err(|source| LibraryError::MetaJson {
            path: meta_path.clone(),
            source,
        })?,
        Err(e) if e.kind() == io::ErrorKind::NotFound => ImageMeta {
            title: id.to_string(),
            ..ImageMeta::default()
        },
        Err(source) => {
            return Err(LibraryError::Meta {
                path: meta_path,
                source,
            })
        }
    };
    Ok(Image {
        id: id.to_string(),
        serial,
        meta,
        pyramid: PyramidReader::open(&dir.join(format!("{id}.tdp")))?,
        thumbnail: dir.join(format!("{id}.thumb.jpg")),
        disk: None,
    })
}
