//! Redundancy restores itself: every node looks after the images it holds a readable replica
//! of. It follows the other nodes' catalogs ([`peers`]), asks the re-mirror rules
//! ([`protocol`], pure and model checked) what each image needs, and does it: a lost partner's
//! replica is copied again from here to a new node in another power domain ([`remirror`], a
//! worker with a visible status and an operator's throttle), a superseded or withdrawn replica
//! is taken off ([`removal`], with tombstones), and a disk that answers again is checked before
//! it serves ([`disk_return`]); hidden copies nothing will publish are swept ([`hidden`]);
//! every replica is read back against its manifest now and then
//! ([`scrub`]).
//!
//! It must never remove a replica unless two others are readable in two power domains (or the
//! image was withdrawn), never publish a copy that was not read back against its manifest, and
//! never copy from a replica it has not found readable.

pub mod disk_return;
pub mod hidden;
pub mod peers;
pub mod protocol;
pub mod remirror;
pub mod removal;
pub mod scrub;
pub mod throttle;

pub use remirror::Redundancy;
