//! The pyramid files a node keeps open: the most recently read, at most as many as its
//! open-file limit leaves room for. A node may hold half a million replicas, far more than a
//! process may keep files open (and each open file costs the kernel memory), so a replica's
//! header is kept (its geometry and tile index, read and checked once) and its file is opened
//! again when it is read after being closed. A reader in use stays open until its last user
//! is done, even after it is closed here.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::{Arc, Mutex};

use tiler::format::Header;
use tiler::reader::ReadError;
use tiler::PyramidReader;

/// Open files a node needs besides its pyramids: its stores, its disks' probes, connections.
const BESIDES_PYRAMIDS: u64 = 512;
/// At most this many pyramids open, whatever the limit.
const MOST: usize = 16_384;
/// At least this many, whatever the limit: a few viewers' images.
const LEAST: usize = 16;

pub struct OpenPyramids {
    most: usize,
    held: Mutex<Held>,
}

#[derive(Default)]
struct Held {
    /// Image serial → its open reader and when it was last used.
    readers: HashMap<u64, (Arc<PyramidReader>, u64)>,
    /// When last used → image serial: the oldest is closed first.
    by_use: BTreeMap<u64, u64>,
    clock: u64,
}

impl Held {
    fn touch(&mut self, serial: u64) -> Option<Arc<PyramidReader>> {
        self.clock += 1;
        let clock = self.clock;
        let (reader, used) = self.readers.get_mut(&serial)?;
        self.by_use.remove(used);
        *used = clock;
        self.by_use.insert(clock, serial);
        Some(reader.clone())
    }

    fn forget(&mut self, serial: u64) {
        if let Some((_, used)) = self.readers.remove(&serial) {
            self.by_use.remove(&used);
        }
    }
}

impl OpenPyramids {
    /// Room for `most` open pyramids.
    pub fn new(most: usize) -> OpenPyramids {
        OpenPyramids {
            most: most.max(1),
            held: Mutex::default(),
        }
    }

    /// As many as this process's open-file limit leaves room for, half of what is left after
    /// the rest the node needs (between 16 and 16,384).
    pub fn within_limit() -> OpenPyramids {
        let mut limit = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit only writes the struct given.
        let soft = if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } == 0 {
            limit.rlim_cur
        } else {
            1024
        };
        let room = (soft.saturating_sub(BESIDES_PYRAMIDS) / 2).min(MOST as u64) as usize;
        OpenPyramids::new(room.max(LEAST))
    }

    fn held(&self) -> std::sync::MutexGuard<'_, Held> {
        self.held.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The open reader of image `serial`, opening `path` again if it was closed (blocking: call
    /// it off the async threads).
    pub fn get(
        &self,
        serial: u64,
        path: &Path,
        header: &Arc<Header>,
    ) -> Result<Arc<PyramidReader>, ReadError> {
        if let Some(reader) = self.held().touch(serial) {
            return Ok(reader);
        }
        let reader = Arc::new(PyramidReader::reopen(path, header.clone())?);
        let mut held = self.held();
        held.forget(serial); // opened meanwhile by another request: this one stays
        held.clock += 1;
        let clock = held.clock;
        held.readers.insert(serial, (reader.clone(), clock));
        held.by_use.insert(clock, serial);
        while held.readers.len() > self.most {
            let Some((_, oldest)) = held.by_use.pop_first() else {
                break;
            };
            held.readers.remove(&oldest);
        }
        Ok(reader)
    }

    /// Closes image `serial`'s file (it is no longer served here).
    pub fn forget(&self, serial: u64) {
        self.held().forget(serial);
    }

    /// How many are open now.
    pub fn len(&self) -> usize {
        self.held().readers.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// How many may be open at once.
    pub fn most(&self) -> usize {
        self.most
    }
}

impl Default for OpenPyramids {
    fn default() -> Self {
        OpenPyramids::within_limit()
    }
}

impl std::fmt::Debug for OpenPyramids {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "OpenPyramids({} of at most {})", self.len(), self.most)
    }
}
