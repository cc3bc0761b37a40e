//! Transfers: the bytes the coordinator sends to other nodes. The original to a node's staging
//! (from where its copy stopped, sealed with its sum), the replica set to a target (begun,
//! every file in chunks, sealed with the manifest), and the staging copies cleared after
//! publication.

use cluster::{FileSum, OffsetAnswer};
use hyper::body::Bytes;

use super::coordinator::{blocking, Ingest, ASK, CHUNK_DEADLINE};
use super::driving::Tiled;
use super::meta_edit::meta_bytes;
use super::staging::{self, Acknowledged, Staging, Upload};
use super::{IngestError, SEND_CHUNK};
use crate::replica::{Manifest, FORMAT, META, PYRAMID, THUMBNAIL};
use floor::client::Call;
use floor::CallError;

impl Ingest {
    /// Sends the original to `node`'s staging, from where its copy stopped.
    pub(super) async fn stage_copy(
        &self,
        staging: &Staging,
        upload: &Upload,
        node: &str,
    ) -> Result<(), IngestError> {
        let peers = self.peers()?;
        let peer = |e: CallError| IngestError::peer(node, e);
        let body = Bytes::from(serde_json::to_vec(upload).expect("plain data"));
        let path = format!("/internal/staging/{}", upload.id);
        let at: OffsetAnswer = peers
            .call_json(node, Call::new("PUT", &path).body(body), ASK)
            .await
            .map_err(peer)?;
        let sum = staging.staged()?.ok_or_else(|| {
            IngestError::Fault(format!("upload {} is not staged here", upload.id))
        })?;
        if at.offset < upload.length {
            let first = at.offset;
            self.send_file(node, &staging.path(staging::ORIGINAL), first, |off| {
                format!("/internal/staging/{}?offset={off}", upload.id)
            })
            .await?;
        }
        // Once sealed there, that node may take the upload over if this one falls silent: this
        // node must know it even after a crash before the acknowledgement (see `handover`).
        self.note_copy_holder(staging, node)?;
        let path = format!("/internal/staging/{}/seal?sha256={}", upload.id, sum.sha256);
        peers
            .call(node, Call::new("POST", &path), slow(upload.length))
            .await
            .map_err(peer)?;
        self.crash_point("staged-copy");
        Ok(())
    }

    /// PATCHes `file` to `node` in chunks from byte `from`, each to the path `at(offset)`.
    async fn send_file(
        &self,
        node: &str,
        file: &std::path::Path,
        from: u64,
        at: impl Fn(u64) -> String,
    ) -> Result<(), IngestError> {
        let peers = self.peers()?;
        let size = std::fs::metadata(file).map_err(super::io(file))?.len();
        let mut offset = from;
        let mut sent_chunks = 0;
        while offset < size {
            let (path, o) = (file.to_path_buf(), offset);
            let chunk = blocking(move || read_chunk(&path, o, SEND_CHUNK)).await?;
            let n = chunk.bytes.len() as u64;
            peers
                .call(
                    node,
                    Call::new("PATCH", &at(offset)).body_summed(chunk.bytes, chunk.sum),
                    CHUNK_DEADLINE,
                )
                .await
                .map_err(|e| IngestError::peer(node, e))?;
            offset += n;
            sent_chunks += 1;
            if sent_chunks == 1 {
                self.crash_point("mid-transfer");
            }
        }
        Ok(())
    }

    /// The replica's manifest, the same every time it is asked (a restart places the same).
    pub(super) fn manifest(
        &self,
        staging: &Staging,
        upload: &Upload,
    ) -> Result<Manifest, IngestError> {
        let missing = |what: &str| {
            IngestError::Fault(format!(
                "upload {}: {what} is missing in staging",
                upload.id
            ))
        };
        let original = staging.staged()?.ok_or_else(|| missing("staged.json"))?;
        let tiled: Tiled = staging
            .marker(staging::TILED)?
            .ok_or_else(|| missing("tiled.json"))?;
        staging
            .marker::<Acknowledged>(staging::ACKNOWLEDGED)?
            .ok_or_else(|| missing("acknowledged.json"))?;
        let targets: [String; 2] = staging
            .marker(staging::TARGETS)?
            .ok_or_else(|| missing("targets.json"))?;
        let meta = meta_bytes(&upload.meta);
        let mut files = vec![FileSum {
            name: original_name(&upload.filename),
            ..original
        }];
        files.extend(tiled.files);
        files.push(FileSum {
            name: META.into(),
            size: meta.len() as u64,
            sha256: crate::replica::sha256(&meta),
        });
        Ok(Manifest {
            format: FORMAT,
            id: upload.image.clone(),
            nodes: targets.to_vec(),
            // The upload's creation, known to the home and to the node holding the second copy
            // alike: if that node takes the upload over, the set it places is the same one.
            placed_at: upload.created,
            files,
        })
    }

    /// Sends the whole replica set to `node`, hidden, and has it sealed there.
    pub(super) async fn place(
        &self,
        staging: &Staging,
        upload: &Upload,
        node: &str,
    ) -> Result<(), IngestError> {
        let peers = self.peers()?;
        let peer = |e: CallError| IngestError::peer(node, e);
        let manifest = self.manifest(staging, upload)?;
        let total: u64 = manifest.files.iter().map(|f| f.size).sum();
        let image = &upload.image;
        let path = format!("/internal/replicas/{image}/begin?size={total}");
        peers
            .call(node, Call::new("POST", &path), ASK * 10)
            .await
            .map_err(peer)?;
        for f in &manifest.files {
            let name = f.name.clone();
            let at = |off: u64| format!("/internal/replicas/{image}/files/{name}?offset={off}");
            if f.name == META {
                peers
                    .call(
                        node,
                        Call::new("PATCH", &at(0)).body(Bytes::from(meta_bytes(&upload.meta))),
                        ASK * 10,
                    )
                    .await
                    .map_err(peer)?;
                continue;
            }
            let source = if f.name == PYRAMID || f.name == THUMBNAIL {
                staging.path(&f.name)
            } else {
                staging.path(staging::ORIGINAL)
            };
            self.send_file(node, &source, 0, at).await?;
        }
        let body = Bytes::from(serde_json::to_vec(&manifest).expect("plain data"));
        let path = format!("/internal/replicas/{image}/seal");
        peers
            .call(node, Call::new("POST", &path).body(body), ASK * 10)
            .await
            .map_err(peer)?;
        Ok(())
    }

    /// Clears the staging copy of `upload` on `node` (this one or another).
    pub(super) async fn clear(
        &self,
        staging: &Staging,
        upload: &Upload,
        node: &str,
    ) -> Result<(), IngestError> {
        if node == self.me {
            let s = staging.clone();
            return blocking(move || s.clear()).await;
        }
        let path = format!("/internal/staging/{}", upload.id);
        self.peers()?
            .call(node, Call::new("DELETE", &path), ASK * 10)
            .await
            .map(|_| ())
            .map_err(|e| IngestError::peer(node, e))
    }
}

/// A deadline for reading `bytes` back from a disk (at least 20 MB/s) and answering.
pub(super) fn slow(bytes: u64) -> std::time::Duration {
    std::time::Duration::from_secs(30 + bytes / 20_000_000)
}

/// Up to `size` bytes of `path` from `offset` (fewer at its end), with the sum a signature
/// covers, worked out here on the blocking thread that read them (for a re-mirror, while the
/// chunk before is on its way).
pub(crate) fn read_chunk(
    path: &std::path::Path,
    offset: u64,
    size: usize,
) -> Result<floor::body::Gathered, IngestError> {
    use std::io::{Read, Seek, SeekFrom};
    if let Some(chunk) = super::direct::read(path, offset, size).map_err(super::io(path))? {
        return Ok(floor::body::Gathered::of(chunk));
    }
    let mut file = std::fs::File::open(path).map_err(super::io(path))?;
    file.seek(SeekFrom::Start(offset))
        .map_err(super::io(path))?;
    // Read into room not zeroed first: zeroing 8 MiB before every read was 3% of both cores
    // while a re-mirror ran.
    let mut buf = Vec::with_capacity(size);
    file.take(size as u64)
        .read_to_end(&mut buf)
        .map_err(super::io(path))?;
    Ok(floor::body::Gathered::of(Bytes::from(buf)))
}

/// `original.EXT` from the provider's file name.
fn original_name(filename: &str) -> String {
    let ext = std::path::Path::new(filename)
        .extension()
        .and_then(|e| e.to_str())
        .filter(|e| (1..=8).contains(&e.len()) && e.bytes().all(|b| b.is_ascii_alphanumeric()))
        .map_or_else(|| "bin".to_string(), str::to_ascii_lowercase);
    format!("original.{ext}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_original_keeps_only_a_plain_extension() {
        assert_eq!(original_name("Scan 01.TIF"), "original.tif");
        assert_eq!(original_name("noext"), "original.bin");
        assert_eq!(original_name("a.../../etc"), "original.bin");
    }
}
