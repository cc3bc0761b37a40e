//! The node monitor: detectors for disk, bus, enclosure, host and process faults, and the node's
//! event log.
//!
//! It must never depend on another node to do its job, and never share a process with the
//! server it watches.
