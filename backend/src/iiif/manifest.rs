//! The IIIF Presentation API 3.0 manifest of one image: a single canvas painted with the image,
//! its IIIF Image service, thumbnail and metadata, as Mirador and Universal Viewer read it.

use serde_json::{json, Value};

use cluster::ImageMeta;

/// The IIIF Presentation API 3.0 context.
pub const CONTEXT: &str = "http://iiif.io/api/presentation/3/context.json";

/// `base` is the image service URI (`http://host/iiif/3/{id}`), `thumbnail` the thumbnail URL.
pub fn manifest(base: &str, thumbnail: &str, meta: &ImageMeta, width: u32, height: u32) -> Value {
    let text = |s: &str| json!({ "none": [s] });
    let label = |s: &str| json!({ "en": [s] });
    let mut metadata = Vec::new();
    for (name, value) in [("Artist", &meta.artist), ("Date", &meta.date)] {
        if !value.is_empty() {
            metadata.push(json!({ "label": label(name), "value": text(value) }));
        }
    }
    if !meta.keywords.is_empty() {
        metadata
            .push(json!({ "label": label("Keywords"), "value": text(&meta.keywords.join(", ")) }));
    }
    let canvas = format!("{base}/canvas/1");
    let mut m = json!({
        "@context": CONTEXT,
        "id": format!("{base}/manifest.json"),
        "type": "Manifest",
        "label": text(&meta.title),
        "metadata": metadata,
        "thumbnail": [{ "id": thumbnail, "type": "Image", "format": "image/jpeg" }],
        "items": [{
            "id": canvas,
            "type": "Canvas",
            "label": text(&meta.title),
            "width": width,
            "height": height,
            "items": [{
                "id": format!("{base}/page/1"),
                "type": "AnnotationPage",
                "items": [{
                    "id": format!("{base}/annotation/1"),
                    "type": "Annotation",
                    "motivation": "painting",
                    "target": canvas,
                    "body": {
                        "id": format!("{base}/full/max/0/default.jpg"),
                        "type": "Image",
                        "format": "image/jpeg",
                        "width": width,
                        "height": height,
                        "service": [{ "id": base, "type": "ImageService3", "profile": "level2" }],
                    },
                }],
            }],
        }],
    });
    if !meta.description.is_empty() {
        m["summary"] = text(&meta.description);
    }
    if !meta.rights.is_empty() {
        m["requiredStatement"] = json!({ "label": label("Rights"), "value": text(&meta.rights) });
    }
    m
}
