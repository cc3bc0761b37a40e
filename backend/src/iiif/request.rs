//! Parsing IIIF Image API 3.0 request parameters and resolving them against an image: which
//! pixels of the full image, at what output size, turned and coloured how.
//!
//! Syntax errors name the parameter (400); well-formed requests this server does not do are
//! told apart (501), as the specification asks.

use std::fmt;

/// The region parameter.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Region {
    Full,
    Square,
    Pixels { x: u32, y: u32, w: u32, h: u32 },
    Percent { x: f64, y: f64, w: f64, h: f64 },
}

/// Written as the specification writes it, so that an error quotes the parameter as sent.
impl fmt::Display for Region {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Region::Full => f.write_str("full"),
            Region::Square => f.write_str("square"),
            Region::Pixels { x, y, w, h } => write!(f, "{x},{y},{w},{h}"),
            Region::Percent { x, y, w, h } => write!(f, "pct:{x},{y},{w},{h}"),
        }
    }
}

/// The size parameter. `upscale` is the `^` prefix.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Size {
    Max { upscale: bool },
    Width { w: u32, upscale: bool },
    Height { h: u32, upscale: bool },
    Percent { n: f64, upscale: bool },
    Exact { w: u32, h: u32, upscale: bool },
    Confined { w: u32, h: u32, upscale: bool },
}

impl fmt::Display for Size {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (Size::Max { upscale }
        | Size::Width { upscale, .. }
        | Size::Height { upscale, .. }
        | Size::Percent { upscale, .. }
        | Size::Exact { upscale, .. }
        | Size::Confined { upscale, .. }) = self;
        let up = if *upscale { "^" } else { "" };
        match self {
            Size::Max { .. } => write!(f, "{up}max"),
            Size::Width { w, .. } => write!(f, "{up}{w},"),
            Size::Height { h, .. } => write!(f, "{up},{h}"),
            Size::Percent { n, .. } => write!(f, "{up}pct:{n}"),
            Size::Exact { w, h, .. } => write!(f, "{up}{w},{h}"),
            Size::Confined { w, h, .. } => write!(f, "{up}!{w},{h}"),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Quality {
    Default,
    Color,
    Gray,
    Bitonal,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Jpg,
    Png,
}

impl Format {
    pub fn media_type(self) -> &'static str {
        match self {
            Format::Jpg => "image/jpeg",
            Format::Png => "image/png",
        }
    }
}

/// A parsed image request.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ImageRequest {
    pub region: Region,
    pub size: Size,
    /// Clockwise quarter turns (0 to 3): only multiples of 90° are served.
    pub quarter_turns: u8,
    pub mirror: bool,
    pub quality: Quality,
    pub format: Format,
}

/// Why a request cannot be served, with the HTTP status the specification gives it.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum IiifError {
    /// 400: the parameter is malformed or asks for something impossible.
    #[error("invalid {parameter} '{value}': {why}")]
    Invalid {
        parameter: &'static str,
        value: String,
        why: &'static str,
    },
    /// 501: well-formed, but not something this server does.
    #[error("{parameter} '{value}' is not supported: {why}")]
    NotSupported {
        parameter: &'static str,
        value: String,
        why: &'static str,
    },
}

impl IiifError {
    pub fn status(&self) -> u16 {
        match self {
            IiifError::Invalid { .. } => 400,
            IiifError::NotSupported { .. } => 501,
        }
    }
}

fn invalid(parameter: &'static str, value: &str, why: &'static str) -> IiifError {
    IiifError::Invalid {
        parameter,
        value: value.to_string(),
        why,
    }
}

/// Whole pixel numbers as the specification writes them: digits only, no sign, no padding
/// tricks that overflow.
fn int(parameter: &'static str, value: &str, s: &str) -> Result<u32, IiifError> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(invalid(parameter, value, "expected a whole number"));
    }
    s.parse()
        .map_err(|_| invalid(parameter, value, "number too large"))
}

/// Decimal numbers: digits with at most one point, no sign or exponent.
fn float(parameter: &'static str, value: &str, s: &str) -> Result<f64, IiifError> {
    let ok = !s.is_empty()
        && s.bytes().all(|b| b.is_ascii_digit() || b == b'.')
        && s.bytes().filter(|&b| b == b'.').count() <= 1
        && s != ".";
    if !ok {
        return Err(invalid(parameter, value, "expected a decimal number"));
    }
    s.parse::<f64>()
        .ok()
        .filter(|v| v.is_finite())
        .ok_or_else(|| invalid(parameter, value, "expected a decimal number"))
}

fn four<T>(
    parameter: &'static str,
    value: &str,
    list: &str,
    each: impl Fn(&'static str, &str, &str) -> Result<T, IiifError>,
) -> Result<[T; 4], IiifError> {
    let parts: Vec<_> = list.split(',').collect();
    if parts.len() != 4 {
        return Err(invalid(
            parameter,
            value,
            "expected four comma-separated numbers",
        ));
    }
    Ok([
        each(parameter, value, parts[0])?,
        each(parameter, value, parts[1])?,
        each(parameter, value, parts[2])?,
        each(parameter, value, parts[3])?,
    ])
}

pub fn parse_region(v: &str) -> Result<Region, IiifError> {
    match v {
        "full" => Ok(Region::Full),
        "square" => Ok(Region::Square),
        _ => {
            if let Some(p) = v.strip_prefix("pct:") {
                let [x, y, w, h] = four("region", v, p, float)?;
                if w <= 0.0 || h <= 0.0 {
                    return Err(invalid(
                        "region",
                        v,
                        "width and height must be greater than zero",
                    ));
                }
                Ok(Region::Percent { x, y, w, h })
            } else {
                let [x, y, w, h] = four("region", v, v, int)?;
                if w == 0 || h == 0 {
                    return Err(invalid(
                        "region",
                        v,
                        "width and height must be greater than zero",
                    ));
                }
                Ok(Region::Pixels { x, y, w, h })
            }
        }
    }
}

pub fn parse_size(v: &str) -> Result<Size, IiifError> {
    let (upscale, s) = match v.strip_prefix('^') {
        Some(rest) => (true, rest),
        None => (false, v),
    };
    if s == "max" {
        return Ok(Size::Max { upscale });
    }
    if s == "full" {
        return Err(invalid(
            "size",
            v,
            "'full' was removed in version 3; use 'max'",
        ));
    }
    if let Some(p) = s.strip_prefix("pct:") {
        let n = float("size", v, p)?;
        if n <= 0.0 {
            return Err(invalid("size", v, "percentage must be greater than zero"));
        }
        return Ok(Size::Percent { n, upscale });
    }
    let (confined, s) = match s.strip_prefix('!') {
        Some(rest) => (true, rest),
        None => (false, s),
    };
    let Some((w, h)) = s.split_once(',') else {
        return Err(invalid(
            "size",
            v,
            "expected max, w,, ,h, pct:n, w,h or !w,h",
        ));
    };
    let size = match (w.is_empty(), h.is_empty()) {
        (true, true) => return Err(invalid("size", v, "give a width, a height or both")),
        (false, true) if !confined => Size::Width {
            w: int("size", v, w)?,
            upscale,
        },
        (true, false) if !confined => Size::Height {
            h: int("size", v, h)?,
            upscale,
        },
        (false, false) => {
            let (w, h) = (int("size", v, w)?, int("size", v, h)?);
            if confined {
                Size::Confined { w, h, upscale }
            } else {
                Size::Exact { w, h, upscale }
            }
        }
        _ => return Err(invalid("size", v, "'!' needs both a width and a height")),
    };
    match size {
        Size::Width { w: 0, .. }
        | Size::Height { h: 0, .. }
        | Size::Exact { w: 0, .. }
        | Size::Exact { h: 0, .. }
        | Size::Confined { w: 0, .. }
        | Size::Confined { h: 0, .. } => Err(invalid("size", v, "sizes must be greater than zero")),
        ok => Ok(ok),
    }
}

/// Returns (quarter turns, mirror).
pub fn parse_rotation(v: &str) -> Result<(u8, bool), IiifError> {
    let (mirror, s) = match v.strip_prefix('!') {
        Some(rest) => (true, rest),
        None => (false, v),
    };
    let degrees = float("rotation", v, s)?;
    if degrees > 360.0 {
        return Err(invalid("rotation", v, "must be between 0 and 360"));
    }
    if degrees % 90.0 != 0.0 {
        return Err(IiifError::NotSupported {
            parameter: "rotation",
            value: v.to_string(),
            why: "only multiples of 90 degrees",
        });
    }
    Ok((((degrees / 90.0) as u8) % 4, mirror))
}

/// Parses `{quality}.{format}`.
pub fn parse_quality_format(v: &str) -> Result<(Quality, Format), IiifError> {
    let Some((q, f)) = v.rsplit_once('.') else {
        return Err(invalid(
            "quality.format",
            v,
            "expected quality.format, e.g. default.jpg",
        ));
    };
    let quality = match q {
        "default" => Quality::Default,
        "color" => Quality::Color,
        "gray" => Quality::Gray,
        "bitonal" => Quality::Bitonal,
        _ => {
            return Err(invalid(
                "quality",
                q,
                "expected default, color, gray or bitonal",
            ))
        }
    };
    let format = match f {
        "jpg" => Format::Jpg,
        "png" => Format::Png,
        "tif" | "gif" | "pdf" | "jp2" | "webp" => {
            return Err(IiifError::NotSupported {
                parameter: "format",
                value: f.to_string(),
                why: "this server produces jpg and png",
            })
        }
        _ => return Err(invalid("format", f, "unknown format")),
    };
    Ok((quality, format))
}

impl ImageRequest {
    pub fn parse(
        region: &str,
        size: &str,
        rotation: &str,
        quality_format: &str,
    ) -> Result<Self, IiifError> {
        let region = parse_region(region)?;
        let size = parse_size(size)?;
        let (quarter_turns, mirror) = parse_rotation(rotation)?;
        let (quality, format) = parse_quality_format(quality_format)?;
        Ok(ImageRequest {
            region,
            size,
            quarter_turns,
            mirror,
            quality,
            format,
        })
    }
}

/// The server's limits on output, advertised in `info.json`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutputLimits {
    pub max_width: u32,
    pub max_height: u32,
    pub max_area: u64,
}

impl OutputLimits {
    /// Whether an output of `w × h` is within the limits.
    pub fn fit(&self, w: u32, h: u32) -> bool {
        w <= self.max_width && h <= self.max_height && u64::from(w) * u64::from(h) <= self.max_area
    }
}

/// A request resolved against an image of a given size: everything in pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Plan {
    /// Region of the full-resolution image: x, y, width, height.
    pub region: (u32, u32, u32, u32),
    /// Output size before rotation.
    pub width: u32,
    pub height: u32,
}

impl fmt::Display for Plan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (x, y, w, h) = self.region;
        write!(f, "{x},{y},{w},{h} → {}×{}", self.width, self.height)
    }
}

fn round(v: f64) -> u32 {
    v.round().clamp(0.0, f64::from(u32::MAX)) as u32
}

/// Resolves `req` for an image of `width × height`, under `limits`.
pub fn resolve(
    req: &ImageRequest,
    width: u32,
    height: u32,
    limits: OutputLimits,
) -> Result<Plan, IiifError> {
    let region_text = || req.region.to_string();
    let (x, y, w, h) = match req.region {
        Region::Full => (0, 0, width, height),
        Region::Square => {
            let side = width.min(height);
            ((width - side) / 2, (height - side) / 2, side, side)
        }
        Region::Pixels { x, y, w, h } => (x, y, w, h),
        Region::Percent { x, y, w, h } => {
            let (fw, fh) = (f64::from(width), f64::from(height));
            (
                round(x * fw / 100.0),
                round(y * fh / 100.0),
                round(w * fw / 100.0).max(1),
                round(h * fh / 100.0).max(1),
            )
        }
    };
    if x >= width || y >= height {
        return Err(IiifError::Invalid {
            parameter: "region",
            value: region_text(),
            why: "lies entirely outside the image",
        });
    }
    // Partly outside: cropped to the image, as the specification says.
    let (w, h) = (w.min(width - x), h.min(height - y));
    let (rw, rh) = (f64::from(w), f64::from(h));
    let too_big = |upscale: bool, ow: u32, oh: u32| !upscale && (ow > w || oh > h);
    let (ow, oh, upscale) = match req.size {
        Size::Max { upscale } => {
            // As large as allowed, keeping the aspect ratio.
            let mut scale: f64 = if upscale { f64::INFINITY } else { 1.0 };
            scale = scale
                .min(f64::from(limits.max_width) / rw)
                .min(f64::from(limits.max_height) / rh)
                .min((limits.max_area as f64 / (rw * rh)).sqrt());
            let nearest = (round(rw * scale).max(1), round(rh * scale).max(1));
            // Rounded down when rounding to nearest lands over a limit (6000×4000 under 16 MP
            // rounds to 4899×3266, 16,000,134 pixels): `max` must always be a size this
            // server serves, as info.json and the manifest hand it out.
            let (ow, oh) = if limits.fit(nearest.0, nearest.1) {
                nearest
            } else {
                (
                    round((rw * scale).floor()).max(1),
                    round((rh * scale).floor()).max(1),
                )
            };
            (ow, oh, upscale)
        }
        Size::Width { w: ow, upscale } => (ow, round(rh * f64::from(ow) / rw).max(1), upscale),
        Size::Height { h: oh, upscale } => (round(rw * f64::from(oh) / rh).max(1), oh, upscale),
        Size::Percent { n, upscale } => (
            round(rw * n / 100.0).max(1),
            round(rh * n / 100.0).max(1),
            upscale,
        ),
        Size::Exact {
            w: ow,
            h: oh,
            upscale,
        } => (ow, oh, upscale),
        Size::Confined {
            w: cw,
            h: ch,
            upscale,
        } => {
            let scale = (f64::from(cw) / rw).min(f64::from(ch) / rh);
            let scale = if upscale { scale } else { scale.min(1.0) };
            (round(rw * scale).max(1), round(rh * scale).max(1), true)
        }
    };
    if too_big(upscale, ow, oh) {
        return Err(IiifError::Invalid {
            parameter: "size",
            value: req.size.to_string(),
            why: "larger than the region; prefix the size with ^ to ask for upscaling",
        });
    }
    if !limits.fit(ow, oh) {
        return Err(IiifError::Invalid {
            parameter: "size",
            value: req.size.to_string(),
            why: "the output would exceed this server's maxWidth, maxHeight or maxArea (see info.json)",
        });
    }
    Ok(Plan {
        region: (x, y, w, h),
        width: ow,
        height: oh,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: OutputLimits = OutputLimits {
        max_width: 4000,
        max_height: 4000,
        max_area: 4_000_000,
    };

    fn plan(r: &str, s: &str) -> Result<Plan, IiifError> {
        let req = ImageRequest::parse(r, s, "0", "default.jpg")?;
        resolve(&req, 6000, 4000, LIMITS)
    }

    #[test]
    fn regions_resolve_to_pixels() {
        assert_eq!(plan("full", "max").unwrap().region, (0, 0, 6000, 4000));
        assert_eq!(plan("square", "max").unwrap().region, (1000, 0, 4000, 4000));
        assert_eq!(
            plan("10,20,300,400", "max").unwrap().region,
            (10, 20, 300, 400)
        );
        assert_eq!(
            plan("pct:50,25,50,50", "max").unwrap().region,
            (3000, 1000, 3000, 2000)
        );
        // Partly outside is cropped; wholly outside is an error.
        assert_eq!(
            plan("5900,3900,500,500", "max").unwrap().region,
            (5900, 3900, 100, 100)
        );
        assert_eq!(plan("6000,0,10,10", "max").unwrap_err().status(), 400);
    }

    #[test]
    fn sizes_keep_aspect_and_respect_limits() {
        let p = plan("full", "max").unwrap();
        // 6000×4000 = 24 MP, over maxArea 4 MP: scaled by sqrt(1/6).
        assert_eq!((p.width, p.height), (2449, 1633));
        let p = plan("full", "600,").unwrap();
        assert_eq!((p.width, p.height), (600, 400));
        let p = plan("full", ",400").unwrap();
        assert_eq!((p.width, p.height), (600, 400));
        let p = plan("full", "pct:10").unwrap();
        assert_eq!((p.width, p.height), (600, 400));
        let p = plan("full", "!500,500").unwrap();
        assert_eq!((p.width, p.height), (500, 333));
        let p = plan("full", "300,300").unwrap();
        assert_eq!((p.width, p.height), (300, 300));
        let p = plan("0,0,100,100", "^200,").unwrap();
        assert_eq!((p.width, p.height), (200, 200));
        assert_eq!(
            plan("0,0,100,100", "200,").unwrap_err().status(),
            400,
            "upscale without ^"
        );
        assert_eq!(
            plan("full", "5000,").unwrap_err().status(),
            400,
            "over maxWidth"
        );
    }

    #[test]
    fn malformed_parameters_name_themselves() {
        for (r, s, rot, qf, parameter) in [
            ("1,2,3", "max", "0", "default.jpg", "region"),
            ("0,0,0,5", "max", "0", "default.jpg", "region"),
            ("-1,0,5,5", "max", "0", "default.jpg", "region"),
            ("pct:1,2,3,x", "max", "0", "default.jpg", "region"),
            ("full", "full", "0", "default.jpg", "size"),
            ("full", ",", "0", "default.jpg", "size"),
            ("full", "!100,", "0", "default.jpg", "size"),
            ("full", "99999999999,", "0", "default.jpg", "size"),
            ("full", "max", "400", "default.jpg", "rotation"),
            ("full", "max", "-90", "default.jpg", "rotation"),
            ("full", "max", "0", "best.jpg", "quality"),
            ("full", "max", "0", "default", "quality.format"),
            ("full", "max", "0", "default.exe", "format"),
        ] {
            match ImageRequest::parse(r, s, rot, qf) {
                Err(IiifError::Invalid { parameter: p, .. }) => {
                    assert_eq!(p, parameter, "{r} {s} {rot} {qf}")
                }
                other => panic!("{r}/{s}/{rot}/{qf}: expected invalid {parameter}, got {other:?}"),
            }
        }
    }

    #[test]
    fn unsupported_but_valid_requests_are_501() {
        assert_eq!(
            ImageRequest::parse("full", "max", "22.5", "default.jpg")
                .unwrap_err()
                .status(),
            501
        );
        assert_eq!(
            ImageRequest::parse("full", "max", "0", "default.webp")
                .unwrap_err()
                .status(),
            501
        );
        let r = ImageRequest::parse("full", "max", "!270", "gray.png").unwrap();
        assert_eq!(
            (r.quarter_turns, r.mirror, r.quality, r.format),
            (3, true, Quality::Gray, Format::Png)
        );
        assert_eq!(
            ImageRequest::parse("full", "max", "360", "color.jpg")
                .unwrap()
                .quarter_turns,
            0
        );
    }

    #[test]
    fn errors_quote_the_parameters_as_iiif_writes_them() {
        let e = plan("0,0,100,100", "1500,").unwrap_err().to_string();
        assert!(e.contains("'1500,'"), "{e}");
        assert!(!e.contains("upscale"), "{e}");
        let e = plan("full", "^!5000,5000").unwrap_err().to_string();
        assert!(e.contains("'^!5000,5000'"), "{e}");
        let e = plan("7000,0,10,10", "max").unwrap_err().to_string();
        assert!(e.contains("'7000,0,10,10'"), "{e}");
    }

    /// The image request the issue found refused: 6000×4000 under 16 MP.
    #[test]
    fn max_of_a_6000_by_4000_image_fits_16_megapixels() {
        let limits = OutputLimits {
            max_width: 8192,
            max_height: 8192,
            max_area: 16_000_000,
        };
        let req = ImageRequest::parse("full", "max", "0", "default.jpg").unwrap();
        let p = resolve(&req, 6000, 4000, limits).unwrap();
        assert!(u64::from(p.width) * u64::from(p.height) <= 16_000_000);
        assert_eq!((p.width, p.height), (4898, 3265));
    }

    proptest::proptest! {
        /// `max` and `^max` are always served, whatever the image's size and the limits: the
        /// size `info.json` advertises (and a manifest paints) is never refused.
        #[test]
        fn max_always_fits_the_limits(
            w in 1u32..200_000,
            h in 1u32..200_000,
            max_width in 1u32..20_000,
            max_height in 1u32..20_000,
            area_factor in 1u64..400,
            up in proptest::bool::ANY,
            region in "(full|square|pct:[0-9]{1,2},[0-9]{1,2},[1-9][0-9]{0,2},[1-9][0-9]{0,2})",
        ) {
            // maxArea at least the larger side, as any sane server sets it.
            let max_area = u64::from(max_width.max(max_height)) * area_factor;
            let limits = OutputLimits { max_width, max_height, max_area };
            let size = if up { "^max" } else { "max" };
            let req = ImageRequest::parse(&region, size, "0", "default.jpg").unwrap();
            if let Ok(p) = resolve(&req, w, h, limits) {
                proptest::prop_assert!(p.width <= max_width && p.height <= max_height);
                proptest::prop_assert!(u64::from(p.width) * u64::from(p.height) <= max_area);
            } else {
                // Only a region wholly outside the image may be refused.
                let outside = matches!(req.region, Region::Percent { x, y, .. } if x >= 100.0 || y >= 100.0);
                proptest::prop_assert!(outside, "max refused for {w}×{h} {region}");
            }
        }
    }

    proptest::proptest! {
        /// Whatever a client sends, parsing and resolving answer with a plan or an error.
        #[test]
        fn any_parameters_get_an_answer_never_a_panic(
            region in "(full|square|pct:[0-9.,]{0,20}|[0-9,]{0,30}|.{0,12})",
            size in "\\^?!?(max|full|pct:[0-9.]{0,12}|[0-9]{0,12},[0-9]{0,12}|.{0,8})",
            rotation in "!?[0-9.]{0,12}",
            qf in "(default|color|gray|bitonal|x)\\.(jpg|png|webp|x)",
            w in 1u32..100_000,
            h in 1u32..100_000,
        ) {
            if let Ok(req) = ImageRequest::parse(&region, &size, &rotation, &qf) {
                if let Ok(p) = resolve(&req, w, h, LIMITS) {
                    let (x, y, rw, rh) = p.region;
                    proptest::prop_assert!(rw >= 1 && rh >= 1 && x + rw <= w && y + rh <= h);
                    proptest::prop_assert!(p.width >= 1 && p.width <= LIMITS.max_width);
                    proptest::prop_assert!(p.height >= 1 && p.height <= LIMITS.max_height);
                }
            }
        }
    }
}
