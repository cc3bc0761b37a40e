//! The `info.json` document of an image: what a IIIF client needs to ask for tiles.

use serde_json::{json, Value};
use tiler::{Geometry, Level};

use super::request::OutputLimits;

/// The IIIF Image API 3.0 context.
pub const CONTEXT: &str = "http://iiif.io/api/image/3/context.json";

/// `info.json` for an image served at `id` (the full base URI).
pub fn info_json(id: &str, g: &Geometry, channels: u8, limits: OutputLimits) -> Value {
    // Sizes a client can ask for cheaply: every level that the limits allow, smallest first.
    let sizes: Vec<Value> = g
        .levels
        .iter()
        .rev()
        .filter(|l| limits.fit(l.width, l.height))
        .map(|l| json!({"width": l.width, "height": l.height}))
        .collect();
    let scale_factors: Vec<u64> = (0..g.levels.len()).map(Level::scale_factor).collect();
    let qualities: &[&str] = if channels == 3 {
        &["color", "gray", "bitonal"]
    } else {
        &["gray", "bitonal"]
    };
    json!({
        "@context": CONTEXT,
        "id": id,
        "type": "ImageService3",
        "protocol": "http://iiif.io/api/image",
        "profile": "level2",
        "width": g.width,
        "height": g.height,
        "maxWidth": limits.max_width,
        "maxHeight": limits.max_height,
        "maxArea": limits.max_area,
        "sizes": sizes,
        "tiles": [{"width": g.tile_size, "height": g.tile_size, "scaleFactors": scale_factors}],
        "extraFormats": ["png"],
        "extraQualities": qualities,
        "extraFeatures": ["mirroring", "sizeUpscaling"],
    })
}
