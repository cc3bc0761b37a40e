//! The cluster's vocabulary: the configuration every process reads (nodes, their disks and
//! where each disk physically is), what a backend's catalog says on the wire, what an upload
//! says on the wire ([`upload`]: its request, stage and status, and what an id may be), and
//! the events a node records, the repair [`ticket`]s made from them, how redundancy is counted ([`redundancy`]), as plain serde types
//! with their validation; and the [`worker`]
//! runner that every process (backend, frontend, monitor) runs its background work under.
//!
//! It must never hold behaviour beyond parsing, checking and running workers: the crates that
//! run things own what the workers do.

pub mod accounts;
pub mod auth;
pub mod catalog;
pub mod config;
pub mod event;
pub mod identity;
pub mod join;
pub mod redundancy;
pub mod ticket;
pub mod upload;
pub mod worker;

pub use catalog::{CatalogEntry, CatalogPage, FileSum, ImageMeta, ReplicaState};
pub use config::{
    ClusterConfig, ConfigError, DiskConfig, FrontendConfig, Location, MailConfig, MailSecurity,
    NodeConfig, ParseError, PowerSwitch, Problem, QuotaConfig, RepairConfig, DEFAULT_MONITOR_PORT,
    DEFAULT_REPORT_SCHEDULE,
};
pub use event::{Component, Event, EventKind, EventPage};
pub use ticket::{Part, Suspect, Ticket, TicketPage, TicketState};
pub use upload::{
    decode_path_segment, image_id_in_path, valid_image_id, valid_upload_id, NewUpload,
    OffsetAnswer, Stage, UploadStatus, MAX_CHUNK,
};

/// Seconds since the Unix epoch, the time stamp of every record on a node.
pub fn unix_now() -> u64 {
    unix_now_ms() / 1000
}

/// Milliseconds since the Unix epoch, where seconds are too coarse (a grace period's start).
pub fn unix_now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}
