//! Repair: turns a node's events into a diagnosis (which part, with what evidence), and the
//! diagnosis into tickets, one per physical fault, that are batched into the operator's weekly
//! visit report.
//!
//! It must never open more than one ticket for one fault, never name a part it has no evidence
//! for, and never wake a human for what can wait until the next weekly visit. It holds no
//! state of its own: tickets are recomputed from the node's event logs, where the operator's
//! marks are recorded too.

pub mod diagnosis;
pub mod mail;
pub mod report;
pub mod ticket_text;

pub use diagnosis::{tickets, Input, Settings};
