//! The pages and their scripts (viewer, gallery, upload portal, operator dashboard), compiled
//! into the binary so that a node serves them without any file outside its disks.
//!
//! It must never contain behaviour beyond filling a template: the servers own the logic.
