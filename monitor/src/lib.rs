//! The node monitor: detectors for disk, bus, enclosure, host and process faults, and the node's
//! event log.
//!
//! Today it holds the [`event_log`] (facts with evidence, in sled on the node) and the
//! [`store`] helper every node-local sled store opens through.
//!
//! It must never depend on another node to do its job, and never share a process with the
//! server it watches.

pub mod event_log;
pub mod store;

pub use event_log::{EventLog, NewEvent};
