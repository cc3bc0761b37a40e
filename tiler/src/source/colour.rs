//! Colour management: an original that carries an ICC profile other than sRGB (Adobe RGB and
//! ProPhoto are common in museum scans) is converted to sRGB, because browsers take untagged
//! JPEG tiles as sRGB and would otherwise show the colours washed out or shifted.

use std::sync::Arc;

use moxcms::{
    ColorProfile, DataColorSpace, Layout, ProfileText, TransformExecutor, TransformOptions,
};

use super::{RowSource, SourceError};

/// What was done about an original's colour profile, for the report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProfileUse {
    /// No profile: the pixels are taken as sRGB.
    None,
    /// The profile is sRGB (or indistinguishable from it): nothing to do.
    AlreadySrgb,
    /// Converted from the named profile to sRGB.
    Converted(String),
    /// A profile that cannot be applied (damaged, or not an RGB profile on RGB pixels).
    Ignored(String),
}

impl std::fmt::Display for ProfileUse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ProfileUse::None => write!(f, "no colour profile, taken as sRGB"),
            ProfileUse::AlreadySrgb => write!(f, "sRGB"),
            ProfileUse::Converted(name) => write!(f, "converted to sRGB from {name}"),
            ProfileUse::Ignored(why) => write!(f, "colour profile ignored: {why}"),
        }
    }
}

/// Wraps `inner` in a conversion to sRGB if `icc` calls for one.
pub fn manage(inner: Box<dyn RowSource>, icc: Option<Vec<u8>>) -> (Box<dyn RowSource>, ProfileUse) {
    let Some(icc) = icc else {
        return (inner, ProfileUse::None);
    };
    let profile = match ColorProfile::new_from_slice(&icc) {
        Ok(p) => p,
        Err(e) => {
            return (
                inner,
                ProfileUse::Ignored(format!("unreadable ICC profile ({e:?})")),
            )
        }
    };
    if inner.channels() != 3 || profile.color_space != DataColorSpace::Rgb {
        let why = format!(
            "{:?} profile on {}-channel pixels",
            profile.color_space,
            inner.channels()
        );
        return (inner, ProfileUse::Ignored(why));
    }
    let name = profile
        .description
        .as_ref()
        .map(profile_name)
        .unwrap_or_else(|| "unnamed".into());
    let transform = match profile.create_transform_8bit(
        Layout::Rgb,
        &ColorProfile::new_srgb(),
        Layout::Rgb,
        TransformOptions::default(),
    ) {
        Ok(t) => t,
        Err(e) => {
            return (
                inner,
                ProfileUse::Ignored(format!("ICC profile {name} cannot be applied ({e:?})")),
            )
        }
    };
    if is_identity(transform.as_ref()) {
        return (inner, ProfileUse::AlreadySrgb);
    }
    let source = ProfiledSource {
        inner,
        transform,
        scratch: Vec::new(),
    };
    (Box::new(source), ProfileUse::Converted(name))
}

fn profile_name(text: &ProfileText) -> String {
    match text {
        ProfileText::PlainString(s) => s.clone(),
        ProfileText::Localizable(l) => l.first().map(|s| s.value.clone()).unwrap_or_default(),
        ProfileText::Description(d) => d.ascii_string.clone(),
    }
    .trim_end_matches('\0')
    .to_string()
}

/// True if the transform leaves primaries, secondaries and a grey ramp where they are: the
/// profile is sRGB in all but name, and converting would only cost time.
fn is_identity(t: &(dyn TransformExecutor<u8> + Send + Sync)) -> bool {
    let mut probe = Vec::new();
    for v in [0u8, 64, 128, 192, 255] {
        probe.extend_from_slice(&[v, v, v]);
    }
    for c in [
        [255, 0, 0],
        [0, 255, 0],
        [0, 0, 255],
        [255, 255, 0],
        [0, 255, 255],
        [255, 0, 255],
        [200, 120, 40],
    ] {
        probe.extend_from_slice(&c);
    }
    let mut out = vec![0u8; probe.len()];
    t.transform(&probe, &mut out).is_ok()
        && probe.iter().zip(&out).all(|(a, b)| a.abs_diff(*b) <= 2)
}

struct ProfiledSource {
    inner: Box<dyn RowSource>,
    transform: Arc<dyn TransformExecutor<u8> + Send + Sync>,
    scratch: Vec<u8>,
}

impl RowSource for ProfiledSource {
    fn width(&self) -> u32 {
        self.inner.width()
    }

    fn height(&self) -> u32 {
        self.inner.height()
    }

    fn channels(&self) -> usize {
        3
    }

    fn read_rows(&mut self, out: &mut [u8], rows: u32) -> Result<(), SourceError> {
        self.scratch.resize(out.len(), 0);
        self.inner.read_rows(&mut self.scratch, rows)?;
        self.transform
            .transform(&self.scratch, out)
            .expect("buffers of equal length and RGB layout");
        Ok(())
    }

    fn describe(&self) -> String {
        self.inner.describe()
    }

    fn take_icc_profile(&mut self) -> Option<Vec<u8>> {
        None
    }
}
