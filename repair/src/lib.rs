//! Repair: turns a node's events into a diagnosis (which component, with what evidence), takes the
//! automatic action (mask, restore redundancy, restart, power-cycle), and writes tickets that are
//! batched into the operator's weekly visit report.
//!
//! It must never open more than one ticket for one fault, never name a component it has no
//! evidence for, and never wake a human for what can wait until the next weekly visit.
