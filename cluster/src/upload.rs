//! An upload on the wire, between the portal (a frontend) and the backend that receives it:
//! what starts one, where its bytes stand, the stage it is at, and what an id may be. Both
//! ends use these types; the JSON they make is what the page script reads.

use serde::{Deserialize, Serialize};

use crate::ImageMeta;

/// Uploaded and transferred bytes arrive in chunks of at most this size.
pub const MAX_CHUNK: u64 = 16 << 20;

/// What the provider sends before the bytes (`POST /portal/api/uploads`, passed on to
/// `POST /internal/uploads`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewUpload {
    pub filename: String,
    pub length: u64,
    pub meta: ImageMeta,
}

/// How many bytes of a file a node holds: where the sender goes on from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct OffsetAnswer {
    pub offset: u64,
}

/// Where an upload is, in the words the portal uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    /// Bytes are arriving.
    Receiving,
    /// All bytes are on the receiving node; the second copy is being made.
    Received,
    /// Durable on two nodes in two power domains: acknowledged.
    Durable,
    Tiling,
    Placing,
    Verifying,
    Published,
    /// It can never be published (not an image, damaged); nothing was published.
    Failed,
    /// It was published, then withdrawn by its owner or an operator.
    Withdrawn,
}

impl Stage {
    /// The stage's key, as in the JSON (`receiving`, `durable`, … `failed`) and the
    /// `Td-Stage` header.
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Receiving => "receiving",
            Stage::Received => "received",
            Stage::Durable => "durable",
            Stage::Tiling => "tiling",
            Stage::Placing => "placing",
            Stage::Verifying => "verifying",
            Stage::Published => "published",
            Stage::Failed => "failed",
            Stage::Withdrawn => "withdrawn",
        }
    }
}

/// One upload as the portal shows it (`GET /internal/uploads`, `GET /portal/api/uploads`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UploadStatus {
    pub id: String,
    /// The image id it is published under.
    pub image: String,
    pub owner: String,
    pub title: String,
    pub filename: String,
    pub length: u64,
    pub received: u64,
    pub stage: Stage,
    /// Why it is not moving on now, in plain words.
    pub waiting: Option<String>,
    /// Why it failed for good.
    pub error: Option<String>,
    pub home: String,
    pub created: u64,
    pub updated: u64,
    /// The image's pixels, once tiled (what the account's daily megapixels count).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pixels: Option<u64>,
}

/// A plain name: 1 to 64 ASCII letters, digits, '-' and '_'. Safe in a URL path, a file name
/// and a page. Node names, disk ids and image ids are plain names.
pub fn plain_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// An image id: what URLs and replica folders carry (a plain name).
pub fn valid_image_id(id: &str) -> bool {
    plain_name(id)
}

/// A URL path segment as a client sent it (`%2D` for `-`, as some clients write), decoded.
/// `None` when it is not UTF-8 once decoded, or decodes to a '/': an encoded slash never
/// names anything here.
pub fn decode_path_segment(raw: &str) -> Option<std::borrow::Cow<'_, str>> {
    let decoded = percent_encoding::percent_decode_str(raw)
        .decode_utf8()
        .ok()?;
    (!decoded.contains('/')).then_some(decoded)
}

/// The image id a URL path segment names, decoded; `None` unless it is a valid id.
pub fn image_id_in_path(raw: &str) -> Option<std::borrow::Cow<'_, str>> {
    decode_path_segment(raw).filter(|id| valid_image_id(id))
}

/// An upload id: random hex, 8 to 64 digits (also the name of its staging folder).
pub fn valid_upload_id(id: &str) -> bool {
    (8..=64).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_hexdigit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_segments_are_decoded_but_an_encoded_slash_is_refused() {
        assert_eq!(
            image_id_in_path("harbour%2Dview").as_deref(),
            Some("harbour-view")
        );
        assert_eq!(
            image_id_in_path("harbour-view").as_deref(),
            Some("harbour-view")
        );
        assert_eq!(image_id_in_path("%68%61rbour").as_deref(), Some("harbour"));
        assert_eq!(image_id_in_path("a%2Fb"), None);
        assert_eq!(image_id_in_path("a%2fb"), None);
        assert_eq!(image_id_in_path("..%2F..%2Fetc"), None);
        assert_eq!(image_id_in_path("%FF"), None);
        assert_eq!(image_id_in_path("a%20b"), None);
        assert_eq!(image_id_in_path("%"), None);
        assert_eq!(decode_path_segment("%5E200,").as_deref(), Some("^200,"));
        assert_eq!(decode_path_segment("pct%3A50"), Some("pct:50".into()));
    }

    #[test]
    fn ids_that_could_leave_their_folder_are_not_ids() {
        for bad in [
            "",
            "..",
            "../x",
            "a/b",
            "/etc",
            "a b",
            "a.b",
            &"x".repeat(65),
        ] {
            assert!(!valid_image_id(bad), "{bad:?}");
            assert!(!valid_upload_id(bad), "{bad:?}");
        }
        assert!(valid_image_id("the-starry-night_1889"));
        assert!(valid_upload_id("0123abcdef"));
        assert!(!valid_upload_id("0123abc"), "too short");
        assert!(!valid_upload_id("the-starry-night"), "not hex");
    }

    #[test]
    fn a_stage_key_is_what_serde_writes() {
        #[derive(Serialize)]
        struct Row {
            stage: Stage,
        }
        for stage in [
            Stage::Receiving,
            Stage::Received,
            Stage::Durable,
            Stage::Tiling,
            Stage::Placing,
            Stage::Verifying,
            Stage::Published,
            Stage::Failed,
        ] {
            // No JSON library here: TOML writes the same string.
            let written = toml::to_string(&Row { stage }).unwrap();
            assert_eq!(written.trim(), format!("stage = \"{}\"", stage.as_str()));
        }
    }
}
