//! IIIF Image API 3.0 (level 2): request parsing and resolution ([`request`]), rendering or
//! picking the stored tile ([`render`]), and the `info.json` document ([`info`]).

pub mod budget;
pub mod info;
pub mod manifest;
pub mod render;
pub mod request;

pub use request::{IiifError, ImageRequest, OutputLimits, Plan};
