//! Metadata: the rules a provider's words must follow, the metadata file's bytes, and the owner
//! changing an image's metadata on a node that holds a published replica
//! (`POST /internal/replicas/IMAGE/meta`, sent by the portal to both replica nodes).

use cluster::ImageMeta;

use super::coordinator::{blocking, Ingest};
use super::placement::{self, check_image_id, Placement};
use super::target::serve_now;
use super::IngestError;
use crate::replica::META;

impl Ingest {
    /// The owner changes the metadata of an image published here. Only the account that
    /// uploaded it may; an image no account owns (placed by hand) cannot be changed here.
    pub async fn edit_meta(
        &self,
        user: &str,
        image: &str,
        meta: ImageMeta,
    ) -> Result<(), IngestError> {
        check_image_id(image)?;
        check_meta(&meta)?;
        let (disks, catalog, library) = (
            self.disks.clone(),
            self.catalog.clone(),
            self.library.clone(),
        );
        let (user, image, cluster, me) = (
            user.to_string(),
            image.to_string(),
            self.cluster.clone(),
            self.me.clone(),
        );
        blocking(move || {
            let Some((disk, Placement::Published)) = placement::find(&disks, &image) else {
                return Err(IngestError::NotFound(format!(
                    "no image {image} is published here"
                )));
            };
            let dir = disk.images_dir().join(&image);
            // The replica's own files, written by this program: one that does not read is a
            // fault here (the audit names it), not of the request.
            let unreadable = |e: crate::replica::ReplicaError| IngestError::Fault(e.to_string());
            let old = crate::replica::read_meta(&dir).map_err(unreadable)?;
            if old.owner.is_empty() {
                return Err(IngestError::Forbidden(format!(
                    "no account owns {image}: it was placed by an operator"
                )));
            }
            if old.owner != user {
                return Err(IngestError::Forbidden(format!(
                    "{image} belongs to another account"
                )));
            }
            let new = ImageMeta {
                owner: old.owner,
                ..meta
            };
            let bytes = meta_bytes(&new);
            let mut manifest = crate::replica::read_manifest(&dir, &image).map_err(unreadable)?;
            for f in manifest.files.iter_mut().filter(|f| f.name == META) {
                f.size = bytes.len() as u64;
                f.sha256 = crate::replica::sha256(&bytes);
            }
            // The metadata first, then the manifest that names its sum: a crash in between
            // leaves a mismatch the audit names, never a wrong picture.
            super::write_durable(&dir, META, &bytes)?;
            super::write_durable(
                &dir,
                crate::replica::MANIFEST,
                &serde_json::to_vec_pretty(&manifest).expect("plain data"),
            )?;
            let entry = crate::catalog::read_entry(&disk, &image);
            serve_now(&catalog, &library, &cluster, &me, entry, &disk)
        })
        .await
    }
}

/// The metadata file's bytes, the same for the same metadata.
pub fn meta_bytes(meta: &ImageMeta) -> Vec<u8> {
    serde_json::to_vec_pretty(meta).expect("plain data")
}

/// Limits on what a provider may write, in characters.
pub const LIMITS: [(&str, usize); 6] = [
    ("title", 200),
    ("artist", 200),
    ("date", 100),
    ("description", 5000),
    ("rights", 1000),
    ("keywords", 2000),
];

/// Checks metadata before anything is stored: a title, lengths within [`LIMITS`], no control
/// characters. Markup is allowed as text: every page escapes it.
pub fn check_meta(meta: &ImageMeta) -> Result<(), IngestError> {
    let bad = |m: String| Err(IngestError::Invalid(m));
    if meta.title.trim().is_empty() {
        return bad("a title is needed".into());
    }
    let keywords = meta.keywords.join(", ");
    for ((field, limit), value) in LIMITS.iter().zip([
        &meta.title,
        &meta.artist,
        &meta.date,
        &meta.description,
        &meta.rights,
        &keywords,
    ]) {
        let n = value.chars().count();
        if n > *limit {
            return bad(format!(
                "the {field} is {n} characters long; at most {limit}"
            ));
        }
        let newline_ok = *field == "description";
        if value
            .chars()
            .any(|c| c.is_control() && !(newline_ok && (c == '\n' || c == '\r' || c == '\t')))
        {
            return bad(format!("the {field} has control characters"));
        }
    }
    if meta.keywords.len() > 50 {
        return bad(format!("{} keywords; at most 50", meta.keywords.len()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_is_checked_but_markup_is_only_text() {
        let ok = ImageMeta {
            title: "<b>Bold</b> & co".into(),
            description: "two\nlines".into(),
            ..ImageMeta::default()
        };
        assert!(check_meta(&ok).is_ok());
        let long = ImageMeta {
            title: "x".repeat(201),
            ..ImageMeta::default()
        };
        let e = check_meta(&long).unwrap_err().to_string();
        assert!(
            e.contains("201 characters") && e.contains("at most 200"),
            "{e}"
        );
        let ctl = ImageMeta {
            title: "a\u{0}b".into(),
            ..ImageMeta::default()
        };
        assert!(check_meta(&ctl)
            .unwrap_err()
            .to_string()
            .contains("control"));
        assert!(check_meta(&ImageMeta::default()).is_err());
    }
}
