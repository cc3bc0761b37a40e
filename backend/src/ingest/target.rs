//! The target side: what other nodes' coordinators call here, through the internal API. A
//! staging copy held for the node that received an upload (made, appended, sealed with the
//! sender's sum, cleared), and a replica arriving hidden (begun, its files written, sealed and
//! verified against the sender's manifest, published: renamed visible, in the catalog, served).
//!
//! Every id and file name that arrives here, in the path, the query or the body, is checked as
//! strictly as a visitor's (here, or first thing in [`placement`] and [`Staging`], whose
//! folders they name): a signed request is trusted to come from the cluster, not to be right.
//! Nothing is written before the checks pass.

use std::sync::Arc;

use cluster::{ClusterConfig, FileSum, OffsetAnswer, MAX_CHUNK};
use hyper::body::Bytes;

use super::coordinator::{blocking, Ingest};
use super::facts::NodeFacts;
use super::meta_edit::check_meta;
use super::placement::{self, check_image_id};
use super::receiving::check_filename;
use super::staging::{check_upload_id, Staging, Upload};
use super::{IngestError, MAX_UPLOAD};
use crate::catalog::Catalog;
use crate::disk::Disk;
use crate::library::Library;
use crate::replica::Manifest;

impl Ingest {
    /// `GET /internal/facts/UPLOAD/IMAGE?from=NODE`: what this node holds of an upload. The
    /// asker is heard from (the lease of [`super::handover`] holds both ways).
    pub async fn facts_here(
        self: &Arc<Self>,
        upload: &str,
        image: &str,
        from: Option<&str>,
    ) -> Result<NodeFacts, IngestError> {
        if let Some(node) = from.filter(|n| self.cluster.node(n).is_some()) {
            self.heard.heard(node);
        }
        let (me, upload, image) = (self.clone(), upload.to_string(), image.to_string());
        blocking(move || me.local_facts(&upload, &image)).await
    }

    /// `PUT /internal/staging/UPLOAD`: holds a staging copy of `upload` (or finds the one
    /// already here); answers how many bytes of it are here.
    pub async fn hold_staging(
        &self,
        id: &str,
        upload: Upload,
    ) -> Result<OffsetAnswer, IngestError> {
        check_upload_id(id)?;
        if upload.id != id {
            return Err(IngestError::Invalid(format!(
                "the upload id differs: '{}' in the body, '{id}' in the path",
                upload.id
            )));
        }
        check_upload(&self.cluster, &upload)?;
        // Not beside an expiry of the same copy (see `expiry`).
        let receiving = self.receiving_lock(id);
        let _held = receiving.lock.lock().await;
        let (disks, me) = (self.disks.clone(), self.me.clone());
        let offset = blocking(move || Staging::create(&disks, &me, &upload)?.offset()).await?;
        // The worker watches the copy from now on (it expires if no chunk comes).
        self.wake.notify_one();
        Ok(OffsetAnswer { offset })
    }

    /// `PATCH /internal/staging/UPLOAD?offset=N`: a chunk of a staging copy.
    pub async fn staging_chunk(
        self: &Arc<Self>,
        id: &str,
        offset: u64,
        bytes: Bytes,
    ) -> Result<OffsetAnswer, IngestError> {
        check_upload_id(id)?;
        let receiving = self.receiving_lock(id);
        let held = receiving.lock.lock().await;
        let s = self.held(id)?;
        // The home sends the next chunk before this node answered the one before.
        let (_held, _) = receiving
            .turn(held, &s, offset, |gap| gap <= MAX_CHUNK)
            .await?;
        let me = self.clone();
        let written = blocking(move || {
            let length = s.upload()?.length;
            s.append(length, offset, &bytes, &me.sums)
        })
        .await;
        receiving.tried(offset, written.is_ok());
        Ok(OffsetAnswer { offset: written? })
    }

    /// `POST /internal/staging/UPLOAD/seal?sha256=`: the copy is whole; checked against the
    /// sender's sum and recorded "staged".
    pub async fn seal_staging(
        self: &Arc<Self>,
        id: &str,
        sha256: &str,
    ) -> Result<FileSum, IngestError> {
        if sha256.len() != 64 || !sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(IngestError::Invalid(format!(
                "'{sha256}' is not a SHA-256 (64 hex digits)"
            )));
        }
        let s = self.held(id)?;
        let (me, expected) = (self.clone(), sha256.to_string());
        let sum = blocking(move || {
            let length = s.upload()?.length;
            s.seal(length, Some(&expected), &me.sums)
        })
        .await?;
        self.done_receiving(id);
        self.crash_point("copy-sealed");
        Ok(sum)
    }

    /// `DELETE /internal/staging/UPLOAD`: clears a staging copy (gone already is fine).
    pub async fn clear_staging(&self, id: &str) -> Result<(), IngestError> {
        check_upload_id(id)?;
        let (disks, id) = (self.disks.clone(), id.to_string());
        blocking(move || match Staging::find(&disks, &id) {
            Some(s) => s.clear(),
            None => Ok(()),
        })
        .await
    }

    /// The staging copy of upload `id` held here.
    fn held(&self, id: &str) -> Result<Staging, IngestError> {
        check_upload_id(id)?;
        Staging::find(&self.disks, id)
            .ok_or_else(|| IngestError::NotFound(format!("no staging for {id}")))
    }

    /// `POST /internal/replicas/IMAGE/begin?size=N[&epoch=E]`: starts receiving a replica,
    /// hidden. With `epoch` (a re-mirror), a hidden copy of another set, left by an earlier
    /// attempt, is thrown away first, and so is a published replica found damaged here.
    pub async fn begin_replica(
        &self,
        image: &str,
        size: u64,
        epoch: Option<u64>,
    ) -> Result<(), IngestError> {
        let (disks, me, image) = (self.disks.clone(), self.me.clone(), image.to_string());
        let catalog = self.catalog.clone();
        blocking(move || {
            placement::check_image_id(&image)?;
            let gone =
                |e: crate::redundancy::removal::RemovalError| IngestError::Fault(e.to_string());
            match placement::find(&disks, &image) {
                Some((disk, placement::Placement::Published))
                    if catalog.get(&image).is_some_and(|e| !e.state.servable()) =>
                {
                    crate::redundancy::removal::remove_folder(&disk, &image).map_err(gone)?;
                }
                Some((
                    disk,
                    stage @ (placement::Placement::Placed | placement::Placement::Verified),
                )) => {
                    let dir = placement::hidden(&disk, &image, stage);
                    let theirs = crate::replica::read_manifest(&dir, &image).map(|m| m.placed_at);
                    if epoch.is_some() && theirs.ok() != epoch {
                        std::fs::remove_dir_all(&dir).map_err(super::io(&dir))?;
                    }
                }
                _ => {}
            }
            placement::begin(&disks, &me, &image, size)
        })
        .await
    }

    /// `GET /internal/replicas/IMAGE/stage`: how far a copy of `image` came here, and the
    /// epoch of its set. A published replica found damaged counts as nothing.
    pub async fn replica_stage(
        &self,
        image: &str,
    ) -> Result<(Option<placement::Placement>, Option<u64>), IngestError> {
        let (disks, catalog, image) = (self.disks.clone(), self.catalog.clone(), image.to_string());
        blocking(move || {
            placement::check_image_id(&image)?;
            Ok(match placement::find(&disks, &image) {
                Some((_, placement::Placement::Published))
                    if catalog.get(&image).is_some_and(|e| !e.state.servable()) =>
                {
                    (None, None)
                }
                Some((disk, stage)) => {
                    let dir = placement::hidden(&disk, &image, stage);
                    let epoch = crate::replica::read_manifest(&dir, &image)
                        .ok()
                        .map(|m| m.placed_at);
                    (Some(stage), epoch)
                }
                None => (None, None),
            })
        })
        .await
    }

    /// `POST /internal/replicas/IMAGE/discard?epoch=E`: a re-mirror gave this node up as its
    /// target; any copy here of the set of epoch `E` (never adopted by its source, so never
    /// part of a complete set) is removed, hidden or (unless `hidden_only`) published. Other
    /// copies are left alone.
    pub async fn discard_replica(
        &self,
        image: &str,
        epoch: u64,
        hidden_only: bool,
    ) -> Result<bool, IngestError> {
        let (disks, catalog, library, image) = (
            self.disks.clone(),
            self.catalog.clone(),
            self.library.clone(),
            image.to_string(),
        );
        blocking(move || {
            placement::check_image_id(&image)?;
            let Some((disk, stage)) = placement::find(&disks, &image) else {
                return Ok(false);
            };
            let dir = placement::hidden(&disk, &image, stage);
            let theirs = crate::replica::read_manifest(&dir, &image)
                .ok()
                .map(|m| m.placed_at);
            match stage {
                placement::Placement::Incoming => {
                    std::fs::remove_dir_all(&dir).map_err(super::io(&dir))?;
                    Ok(true)
                }
                _ if theirs != Some(epoch) => Ok(false),
                placement::Placement::Published if hidden_only => Ok(false),
                placement::Placement::Published => {
                    crate::redundancy::removal::take_off(
                        &catalog,
                        &library,
                        &disks,
                        &image,
                        cluster::ReplicaState::Removed,
                    )
                    .map_err(|e| IngestError::Fault(e.to_string()))?;
                    Ok(true)
                }
                _ => {
                    std::fs::remove_dir_all(&dir).map_err(super::io(&dir))?;
                    Ok(true)
                }
            }
        })
        .await
    }

    /// `PATCH /internal/replicas/IMAGE/files/NAME?offset=N`: a chunk of one of its files,
    /// hashed as it is written (see [`Ingest::verify_replica`]).
    pub async fn replica_file(
        self: &Arc<Self>,
        image: &str,
        name: &str,
        offset: u64,
        bytes: Bytes,
    ) -> Result<OffsetAnswer, IngestError> {
        let (me, image, name) = (self.clone(), image.to_string(), name.to_string());
        let offset = super::background_call("replica-write", move || {
            me.written
                .write_hashed(&written_key(&image, &name), offset, &bytes, || {
                    placement::write(&me.disks, &image, &name, offset, &bytes)
                })
        })
        .await?;
        Ok(OffsetAnswer { offset })
    }

    /// `POST /internal/replicas/IMAGE/seal` (the sender's manifest): every file is here;
    /// the replica becomes "placed".
    pub async fn seal_replica(&self, image: &str, manifest: Manifest) -> Result<(), IngestError> {
        let (disks, image) = (self.disks.clone(), image.to_string());
        super::background_call("replica-seal", move || {
            placement::seal(&disks, &image, &manifest)
        })
        .await?;
        self.crash_point("target-sealed");
        Ok(())
    }

    /// `POST /internal/replicas/IMAGE/verify` (the sender's manifest): every file matched; the
    /// replica becomes "verified". A file hashed whole as this node wrote it (and sealed: fsynced)
    /// is matched by that sum; one that was not (a restart between its chunks and now) is read
    /// back from the disk. Reading back what was just written would make every copy cost its
    /// target a second pass over the disk, and an image whose other replica was lost waits that
    /// much longer for its second; what the disk does to the bytes later is the scrub's to find.
    pub async fn verify_replica(
        self: &Arc<Self>,
        image: &str,
        manifest: Manifest,
    ) -> Result<(), IngestError> {
        let (me, image) = (self.clone(), image.to_string());
        super::background_call("replica-verify", move || {
            let written: std::collections::HashMap<String, String> = manifest
                .files
                .iter()
                .filter_map(|f| {
                    let sum = me.written.take(&written_key(&image, &f.name), f.size)?;
                    Some((f.name.clone(), sum))
                })
                .collect();
            placement::verify(&me.disks, &image, &manifest, &written)
        })
        .await?;
        self.crash_point("target-verified");
        Ok(())
    }

    /// `POST /internal/replicas/IMAGE/publish`: publishes replica `image` here: visible under
    /// its id, in the catalog, served.
    pub async fn publish_here(&self, image: &str) -> Result<(), IngestError> {
        let disks = self.disks.clone();
        let id = image.to_string();
        let disk = blocking(move || placement::publish(&disks, &id)).await?;
        self.crash_point("target-renamed");
        let (catalog, library) = (self.catalog.clone(), self.library.clone());
        let (id, cluster, me) = (image.to_string(), self.cluster.clone(), self.me.clone());
        blocking(move || {
            let known = catalog.get(&id);
            if known
                .as_ref()
                .is_some_and(|k| k.state.servable() && k.disk == disk.config.id)
            {
                return Ok(());
            }
            let entry = crate::catalog::read_entry(&disk, &id);
            if let cluster::ReplicaState::Unreadable { reason, .. } = &entry.state {
                return Err(IngestError::Fault(format!(
                    "published replica {id} on disk {}: {reason}",
                    disk.config.id
                )));
            }
            serve_now(&catalog, &library, &cluster, &me, entry, &disk)
        })
        .await
    }
}

/// The key of a replica's file among the sums of what was written.
fn written_key(image: &str, file: &str) -> String {
    format!("{image}/{file}")
}

/// An upload another node asks this one to hold a copy of: its ids (they name folders), its
/// home (a node of this cluster), its size, file name and metadata, as strictly as a new
/// upload's.
pub(super) fn check_upload(cluster: &ClusterConfig, u: &Upload) -> Result<(), IngestError> {
    check_upload_id(&u.id)?;
    check_image_id(&u.image)?;
    if cluster.node(&u.home).is_none() {
        return Err(IngestError::Invalid(format!(
            "'{}' is not a node of this cluster",
            u.home
        )));
    }
    if u.length == 0 || u.length > MAX_UPLOAD {
        return Err(IngestError::Invalid(format!(
            "an upload of {} bytes cannot be staged",
            u.length
        )));
    }
    check_filename(&u.filename)?;
    check_meta(&u.meta)
}

/// A replica just published or changed here: into the catalog (frontends learn it) and the
/// library (served at once).
pub(crate) fn serve_now(
    catalog: &Catalog,
    library: &Library,
    cluster: &ClusterConfig,
    me: &str,
    entry: cluster::CatalogEntry,
    disk: &Arc<Disk>,
) -> Result<(), IngestError> {
    let id = entry.id.clone();
    let entry = catalog
        .add(entry)
        .map_err(|e| IngestError::Fault(format!("the catalog did not take {id}: {e}")))?;
    catalog.flush();
    let origin_of = |node: &str| {
        (node != me)
            .then(|| cluster.node(node).map(cluster::NodeConfig::origin))
            .flatten()
    };
    library
        .insert(entry, disk, origin_of)
        .map_err(|e| IngestError::Fault(format!("{id} cannot be served: {e}")))
}
