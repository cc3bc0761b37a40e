//! A node's shared parts: the floor that the backend, the monitor (and, next, repair) stand on,
//! so that none of them is another's library.
//!
//! - [`store`]: opening a node-local sled store; a damaged one is moved aside, never fatal.
//! - [`event_log`]: the node's log of facts with their evidence ([`EventLog`], [`NewEvent`]).
//! - [`probe`]: the disk probes (a write that must reach the disk; a read that must come from it).
//! - [`durable`]: the one durable write (temp file, fsync, rename, fsync of the folder).
//! - [`client`]: the one HTTP client between the cluster's processes, signing calls to a node's
//!   internal API ([`Client`], [`CallError`]).
//! - [`serve`]: the one HTTP server every process serves its routes with, with the timeouts and
//!   the bound on connections a public address needs ([`serve::serve`], [`serve::Limits`]).
//! - [`tls`]: a listener's certificate, read again when its files change, and what the
//!   client trusts ([`tls::ServerTls`], [`tls::trust_cluster`]).
//! - [`cors`]: what a page on another website may fetch (public answers, read-only).
//! - [`background`]: threads of lower priority for the disk work visitors must not wait behind.
//! - [`body`]: a request's body read whole, aligned for direct I/O and hashed as it arrives.
//!
//! It must never hold policy: what a fault means, where a replica goes or when to retry belongs
//! to the crates above. Every blocking function here (stores, probes, durable writes) must be
//! called off the async threads.

pub mod background;
pub mod body;
pub mod client;
pub mod cors;
pub mod durable;
pub mod event_log;
pub mod probe;
pub mod secret_file;
pub mod serve;
pub mod store;
pub mod tls;

pub use client::{CallError, Client};
pub use event_log::{EventLog, NewEvent};
