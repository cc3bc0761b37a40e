//! The identity file at the root of every adopted disk: what a disk says about itself, so that
//! a disk moved to another slot or node, or swapped for a blank one, is recognised by what it
//! is, not by where it is mounted. The backend writes it; the monitor reads it.

use serde::{Deserialize, Serialize};

/// The identity file's name, at the root of the disk.
pub const IDENTITY_FILE: &str = "td-disk.json";

/// What a disk says about itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    pub disk_id: String,
    pub node: String,
    pub serial: Option<String>,
    pub slot: Option<u32>,
    /// Seconds since the Unix epoch.
    pub adopted_at: u64,
}
