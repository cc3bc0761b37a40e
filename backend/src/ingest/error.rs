//! What can go wrong in ingest, and what each says to whom. A fault of the request (4xx) names
//! what was wrong, as it was sent. A fault of this node (5xx) gives the client a plain sentence;
//! the detail (the io error and its path, the tiler's or the catalog's words) goes to the log,
//! with the upload, the image or the peer it was about. [`IngestError::status`] is the one
//! place an error becomes an HTTP status.

use std::path::PathBuf;

/// An ingest error.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    // ---- the request was wrong (4xx) ----
    /// What was sent is not acceptable: its message says what, in the sender's terms (400).
    #[error("{0}")]
    Invalid(String),
    /// The account may not do it (403).
    #[error("{0}")]
    Forbidden(String),
    /// The account has as many uploads under way as it may (429).
    #[error("{0}")]
    TooMany(String),
    /// No such upload, staging copy or replica here (404).
    #[error("{0}")]
    NotFound(String),
    /// The upload is no more: it received no chunk for too long and was cleared (410). The
    /// message says what to do.
    #[error("{0}")]
    Gone(String),
    /// A chunk at the wrong offset: where to go on from (409, with `Upload-Offset`).
    #[error("the upload is at byte {at}, not {got}: send from byte {at}")]
    Conflict { at: u64, got: u64 },
    /// The bytes that arrived are not the ones the sender meant (422).
    #[error("{what}: SHA-256 {found}, expected {expected}")]
    Checksum {
        what: String,
        expected: String,
        found: String,
    },

    // ---- this node cannot now ----
    /// No disk here has room (507).
    #[error("no disk of node {node} has room for {need} bytes (the most free, after what the uploads under way still need, is {best} bytes)")]
    NoRoom { node: String, need: u64, best: u64 },
    /// This node takes no uploads: it has no cluster secret (503).
    #[error("uploads are off on this node: {0}")]
    Off(String),
    /// Another node failed a call: its status when it answered (a full disk there is 507
    /// here too, a node that is off 503; anything else, or no answer, 502).
    #[error("{message}")]
    Peer {
        node: String,
        status: Option<u16>,
        message: String,
    },

    // ---- a fault of this node (5xx): the client hears a sentence, the log the detail ----
    /// A disk of this node failed to read or write (500; 507 when it is full).
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// Anything else that went wrong here: a tiling crash, the catalog, a task that died, a
    /// file this program wrote that no longer reads (500). The text is for the log.
    #[error("{0}")]
    Fault(String),
}

/// What an error was about, for the log.
#[derive(Debug, Clone, Copy, Default)]
pub struct About<'a> {
    pub upload: Option<&'a str>,
    pub image: Option<&'a str>,
}

impl<'a> About<'a> {
    pub fn upload(id: &'a str) -> About<'a> {
        About {
            upload: Some(id),
            image: None,
        }
    }

    pub fn image(id: &'a str) -> About<'a> {
        About {
            upload: None,
            image: Some(id),
        }
    }
}

impl IngestError {
    /// A failed call to `node`.
    pub fn peer(node: &str, e: floor::CallError) -> IngestError {
        IngestError::Peer {
            node: node.to_string(),
            status: e.status(),
            message: e.to_string(),
        }
    }

    /// The HTTP status it answers with: the one place errors become statuses.
    pub fn status(&self) -> u16 {
        match self {
            IngestError::Invalid(_) => 400,
            IngestError::Forbidden(_) => 403,
            IngestError::TooMany(_) => 429,
            IngestError::NotFound(_) => 404,
            IngestError::Gone(_) => 410,
            IngestError::Conflict { .. } => 409,
            IngestError::Checksum { .. } => 422,
            IngestError::NoRoom { .. } => 507,
            IngestError::Off(_) => 503,
            IngestError::Peer {
                status: Some(s @ (503 | 507)),
                ..
            } => *s,
            IngestError::Peer { .. } => 502,
            IngestError::Io { source, .. } if is_full(source) => 507,
            IngestError::Io { .. } | IngestError::Fault(_) => 500,
        }
    }

    /// A fault of this node, not of the request nor of another node.
    pub fn is_fault(&self) -> bool {
        matches!(self, IngestError::Io { .. } | IngestError::Fault(_))
    }

    /// What the client is told: the message itself when the request was wrong, a plain
    /// sentence without this node's paths or internals when this node failed.
    pub fn public(&self) -> String {
        match self {
            IngestError::Io { source, .. } if is_full(source) => {
                "the disk is full; try again when there is room".into()
            }
            IngestError::Io { .. } => {
                "a disk of this node could not be read or written; the operator has been told"
                    .into()
            }
            IngestError::Fault(_) => {
                "this node could not do it because of a fault of its own; the operator has been \
                 told"
                    .into()
            }
            IngestError::NoRoom { .. } => format!("the disk is full: {self}"),
            IngestError::Off(_) => "uploads are off on this node: it has no cluster secret".into(),
            _ => self.to_string(),
        }
    }

    /// Logs what a client is not told: a fault of this node with its detail, a failed peer
    /// with its answer. A wrong request is the client's to fix and is not logged.
    pub fn log(&self, about: About<'_>) {
        let About { upload, image } = about;
        match self {
            IngestError::Io { path, source } => tracing::error!(
                upload,
                image,
                path = %path.display(),
                error = %source,
                "ingest: a disk could not be read or written"
            ),
            IngestError::Fault(detail) => {
                tracing::error!(upload, image, error = %detail, "ingest: a fault of this node")
            }
            IngestError::Off(why) => {
                tracing::error!(upload, image, error = %why, "ingest: uploads are off")
            }
            IngestError::Peer {
                node,
                status,
                message,
            } => tracing::warn!(
                upload,
                image,
                peer = %node,
                status,
                error = %message,
                "ingest: another node failed a call"
            ),
            _ => {}
        }
    }
}

/// A disk that filled up, in the error's words.
pub fn is_full(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn io(kind: std::io::ErrorKind) -> IngestError {
        IngestError::Io {
            path: "/srv/td/disk-3/staging/0123abcd/original.part".into(),
            source: std::io::Error::new(kind, "the disk said no"),
        }
    }

    #[test]
    fn a_fault_of_this_node_is_a_5xx_that_names_no_path_and_a_wrong_request_a_4xx_that_says_what() {
        for (e, status) in [
            (io(std::io::ErrorKind::PermissionDenied), 500),
            (io(std::io::ErrorKind::StorageFull), 507),
            (
                IngestError::Fault("tiling /srv/td/x: it crashed".into()),
                500,
            ),
            (IngestError::Fault("the work died: panicked".into()), 500),
        ] {
            assert_eq!(e.status(), status, "{e}");
            assert!(e.is_fault());
            let told = e.public();
            assert!(!told.contains("/srv"), "{told}");
            assert!(
                !told.contains("crashed") && !told.contains("panicked"),
                "{told}"
            );
        }
        assert!(io(std::io::ErrorKind::StorageFull)
            .public()
            .contains("disk is full"));
        for (e, status) in [
            (
                IngestError::Invalid("'../x' is not an image id".into()),
                400,
            ),
            (
                IngestError::Forbidden("x belongs to another account".into()),
                403,
            ),
            (IngestError::NotFound("no upload 0123abcd".into()), 404),
            (IngestError::Conflict { at: 5, got: 7 }, 409),
            (IngestError::Gone(site::portal::EXPIRED.into()), 410),
        ] {
            assert_eq!(e.status(), status, "{e}");
            assert!(!e.is_fault());
            assert_eq!(e.public(), e.to_string(), "said as it is");
        }
    }

    #[test]
    fn a_peers_full_disk_stays_507_and_its_other_failures_are_502() {
        let peer = |status| IngestError::Peer {
            node: "node-c".into(),
            status,
            message: "node-c answered".into(),
        };
        assert_eq!(peer(Some(507)).status(), 507);
        assert_eq!(peer(Some(503)).status(), 503);
        assert_eq!(peer(Some(500)).status(), 502);
        assert_eq!(peer(Some(400)).status(), 502, "our request to it was wrong");
        assert_eq!(peer(None).status(), 502, "it did not answer");
        assert!(!peer(None).is_fault());
    }
}
