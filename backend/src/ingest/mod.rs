//! Ingest: how an uploaded original becomes a published image with two verified replicas,
//! without ever losing an acknowledged upload or publishing fewer than two copies.
//!
//! Today it holds the protocol's decisions ([`protocol`]), model checked in
//! `backend/tests/ingest_model.rs`; the runtime that carries them out (staging, transfer
//! between nodes, tiling, placement) comes with the upload portal.

pub mod protocol;
