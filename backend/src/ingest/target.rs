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

use cluster::{ClusterConfig, FileSum, OffsetAnswer};
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
    /// `GET /internal/facts/UPLOAD/IMAGE`: what this node holds of an upload.
    pub async fn facts_here(
        self: &Arc<Self>,
        upload: &str,
        image: &str,
    ) -> Result<NodeFacts, IngestError> {
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
        let (disks, me) = (self.disks.clone(), self.me.clone());
        let offset = blocking(move || Staging::create(&disks, &me, &upload)?.offset()).await?;
        Ok(OffsetAnswer { offset })
    }

    /// `PATCH /internal/staging/UPLOAD?offset=N`: a chunk of a staging copy.
    pub async fn staging_chunk(
        self: &Arc<Self>,
        id: &str,
        offset: u64,
        bytes: Bytes,
    ) -> Result<OffsetAnswer, IngestError> {
        let s = self.held(id)?;
        let me = self.clone();
        let offset = blocking(move || {
            let length = s.upload()?.length;
            s.append(length, offset, &bytes, &me.sums)
        })
        .await?;
        Ok(OffsetAnswer { offset })
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

    /// `POST /internal/replicas/IMAGE/begin?size=N`: starts receiving a replica, hidden.
    pub async fn begin_replica(&self, image: &str, size: u64) -> Result<(), IngestError> {
        let (disks, me, image) = (self.disks.clone(), self.me.clone(), image.to_string());
        blocking(move || placement::begin(&disks, &me, &image, size)).await
    }

    /// `PATCH /internal/replicas/IMAGE/files/NAME?offset=N`: a chunk of one of its files.
    pub async fn replica_file(
        &self,
        image: &str,
        name: &str,
        offset: u64,
        bytes: Bytes,
    ) -> Result<OffsetAnswer, IngestError> {
        let (disks, image, name) = (self.disks.clone(), image.to_string(), name.to_string());
        let offset =
            blocking(move || placement::write(&disks, &image, &name, offset, &bytes)).await?;
        Ok(OffsetAnswer { offset })
    }

    /// `POST /internal/replicas/IMAGE/seal` (the sender's manifest): every file is here;
    /// the replica becomes "placed".
    pub async fn seal_replica(&self, image: &str, manifest: Manifest) -> Result<(), IngestError> {
        let (disks, image) = (self.disks.clone(), image.to_string());
        blocking(move || placement::seal(&disks, &image, &manifest)).await?;
        self.crash_point("target-sealed");
        Ok(())
    }

    /// `POST /internal/replicas/IMAGE/verify` (the sender's manifest): every file read back
    /// and matched; the replica becomes "verified".
    pub async fn verify_replica(&self, image: &str, manifest: Manifest) -> Result<(), IngestError> {
        let (disks, image) = (self.disks.clone(), image.to_string());
        blocking(move || placement::verify(&disks, &image, &manifest)).await?;
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
            if let cluster::ReplicaState::Unreadable { reason } = &entry.state {
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
