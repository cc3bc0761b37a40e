//! Round trips of originals made by real tools, in every kind the tiler promises to read:
//! every tile of every level has the right size and shows the right region of the image.

mod common;

use std::path::Path;

use common::{assert_round_trip, make_picture, run};
use tiler::{tile, TileOptions};

/// Mean error per sample, out of 255, that JPEG at quality 85 plus the difference between our
/// 2×2 means and an exact block mean may add. A misplaced tile scores far above it.
const TOLERANCE: f64 = 6.0;

fn tile_and_check(original: &Path, options: &TileOptions) -> tiler::TileReport {
    let pyramid = original.with_extension("tdp");
    let thumb = original.with_extension("thumb.jpg");
    let report = tile(original, &pyramid, &thumb, options, &|_, _| {}).unwrap();
    let worst = assert_round_trip(original, &pyramid, TOLERANCE);
    eprintln!("{}: worst tile error {worst:.2}", original.display());
    let t = image::open(&thumb).unwrap();
    assert_eq!(
        t.width().max(t.height()),
        options
            .thumbnail_size
            .min(report.geometry.width.max(report.geometry.height))
    );
    report
}

/// Odd sides, so that several levels have cropped edge tiles and odd halvings.
const W: u32 = 1537;
const H: u32 = 1023;

#[test]
fn baseline_jpeg() {
    let dir = tempfile::tempdir().unwrap();
    let p = make_picture(dir.path(), "a.jpg", W, H, &["-quality", "92"]);
    let r = tile_and_check(&p, &TileOptions::default());
    assert_eq!(r.geometry.levels.len(), 4);
    assert_eq!(r.channels, 3);
}

#[test]
fn progressive_jpeg() {
    let dir = tempfile::tempdir().unwrap();
    let p = make_picture(
        dir.path(),
        "p.jpg",
        W,
        H,
        &["-interlace", "JPEG", "-quality", "92"],
    );
    assert!(
        String::from_utf8(run("identify", &["-verbose", p.to_str().unwrap()]))
            .unwrap()
            .contains("Interlace: JPEG")
    );
    tile_and_check(&p, &TileOptions::default());
}

#[test]
fn cmyk_jpeg() {
    let dir = tempfile::tempdir().unwrap();
    let p = make_picture(
        dir.path(),
        "c.jpg",
        W,
        H,
        &["-colorspace", "CMYK", "-quality", "95"],
    );
    tile_and_check(&p, &TileOptions::default());
}

#[test]
fn grayscale_jpeg_stays_grey() {
    let dir = tempfile::tempdir().unwrap();
    let p = make_picture(
        dir.path(),
        "g.jpg",
        W,
        H,
        &["-colorspace", "Gray", "-quality", "92"],
    );
    let r = tile_and_check(&p, &TileOptions::default());
    assert_eq!(r.channels, 1);
}

#[test]
fn jpeg_with_exif_orientation_is_turned_upright() {
    let dir = tempfile::tempdir().unwrap();
    let p = make_picture(dir.path(), "o.jpg", W, H, &["-quality", "92"]);
    run(
        "exiftool",
        &[
            "-q",
            "-overwrite_original",
            "-Orientation=6",
            "-n",
            p.to_str().unwrap(),
        ],
    );
    let r = tile_and_check(&p, &TileOptions::default());
    assert_eq!((r.geometry.width, r.geometry.height), (H, W));
}

#[test]
fn png_16_bit() {
    let dir = tempfile::tempdir().unwrap();
    let p = make_picture(dir.path(), "a.png", W, H, &["-depth", "16", "PNG48:"]);
    tile_and_check(&p, &TileOptions::default());
}

#[test]
fn png_with_alpha_is_flattened_onto_white() {
    let dir = tempfile::tempdir().unwrap();
    let p = make_picture(
        dir.path(),
        "a.png",
        W,
        H,
        &[
            "-alpha", "set", "-channel", "A", "-fx", "i/w", "+channel", "PNG32:",
        ],
    );
    tile_and_check(&p, &TileOptions::default());
}

#[test]
fn tiff_16_bit_stripped() {
    let dir = tempfile::tempdir().unwrap();
    let p = make_picture(
        dir.path(),
        "a.tif",
        W,
        H,
        &["-depth", "16", "-compress", "lzw"],
    );
    let r = tile_and_check(&p, &TileOptions::default());
    assert!(r.source.contains("streamed"), "{}", r.source);
}

/// The test picture saved as a TIFF by libvips with the given `tiffsave` options.
fn vips_tiff(dir: &Path, name: &str, options: &[&str]) -> std::path::PathBuf {
    let src = make_picture(dir, "src.png", W, H, &[]);
    let p = dir.join(name);
    let mut args = vec!["tiffsave", src.to_str().unwrap(), p.to_str().unwrap()];
    args.extend_from_slice(options);
    run("vips", &args);
    p
}

#[test]
fn tiff_tiled_by_vips() {
    let dir = tempfile::tempdir().unwrap();
    let options = [
        "--tile",
        "--tile-width",
        "128",
        "--tile-height",
        "128",
        "--compression",
        "deflate",
    ];
    let p = vips_tiff(dir.path(), "t.tif", &options);
    let r = tile_and_check(&p, &TileOptions::default());
    assert!(r.source.contains("tiled TIFF streamed"), "{}", r.source);
}

#[test]
fn bigtiff_tiled_jpeg_compressed() {
    let dir = tempfile::tempdir().unwrap();
    let options = ["--tile", "--bigtiff", "--compression", "jpeg", "-Q", "95"];
    let p = vips_tiff(dir.path(), "b.tif", &options);
    assert_eq!(&std::fs::read(&p).unwrap()[..4], b"II\x2b\x00", "a BigTIFF");
    tile_and_check(&p, &TileOptions::default());
}

#[test]
fn bigtiff_stripped_grey_16_bit() {
    let dir = tempfile::tempdir().unwrap();
    let src = make_picture(
        dir.path(),
        "src.png",
        W,
        H,
        &["-colorspace", "Gray", "-depth", "16"],
    );
    let p = dir.path().join("g.tif");
    run(
        "convert",
        &[
            src.to_str().unwrap(),
            "-depth",
            "16",
            &format!("TIFF64:{}", p.display()),
        ],
    );
    let r = tile_and_check(&p, &TileOptions::default());
    assert_eq!(r.channels, 1);
}

#[test]
fn tiff_with_orientation_is_turned_upright() {
    let dir = tempfile::tempdir().unwrap();
    let p = make_picture(dir.path(), "o.tif", W, H, &["-orient", "RightTop"]);
    let r = tile_and_check(&p, &TileOptions::default());
    assert_eq!((r.geometry.width, r.geometry.height), (H, W));
}

#[test]
fn other_tile_sizes() {
    let dir = tempfile::tempdir().unwrap();
    let p = make_picture(dir.path(), "a.jpg", W, H, &["-quality", "92"]);
    let r = tile_and_check(
        &p,
        &TileOptions {
            tile_size: 128,
            ..TileOptions::default()
        },
    );
    assert_eq!(r.geometry.levels.len(), 5);
    let r = tile_and_check(
        &p,
        &TileOptions {
            tile_size: 512,
            thumbnail_size: 100,
            ..TileOptions::default()
        },
    );
    assert_eq!(r.geometry.levels.len(), 3);
}

#[test]
fn tiny_image_is_one_tile() {
    let dir = tempfile::tempdir().unwrap();
    // Smooth, since 4:2:0 chroma on a 3×2 texture is mostly loss.
    let p = dir.path().join("t.png");
    run(
        "convert",
        &["-size", "3x2", "gradient:white-gray", p.to_str().unwrap()],
    );
    let r = tile_and_check(&p, &TileOptions::default());
    assert_eq!(r.geometry.tile_count(), 1);
}

const ICC_DIR: &str = "/usr/share/color/icc/ghostscript";

/// Originals in wide-gamut spaces (ProPhoto TIFF, Adobe RGB JPEG) come out as sRGB tiles that
/// match ImageMagick's own ICC conversion, and clearly not the unconverted numbers.
#[test]
fn wide_gamut_originals_are_converted_to_srgb() {
    let dir = tempfile::tempdir().unwrap();
    // Saturated colours, where the spaces differ most.
    let src = make_picture(dir.path(), "src.png", W, H, &["-modulate", "100,200"]);
    let srgb = format!("{ICC_DIR}/srgb.icc");
    for (profile, name) in [("rommrgb.icc", "prophoto.tif"), ("a98.icc", "adobe.jpg")] {
        let original = dir.path().join(name);
        run(
            "convert",
            &[
                src.to_str().unwrap(),
                "-profile",
                &srgb,
                "-profile",
                &format!("{ICC_DIR}/{profile}"),
                "-quality",
                "95",
                original.to_str().unwrap(),
            ],
        );
        // ImageMagick's conversion back to sRGB is the reference; the raw numbers are the trap.
        let reference = dir.path().join(format!("{name}.srgb.png"));
        run(
            "convert",
            &[
                original.to_str().unwrap(),
                "-profile",
                &srgb,
                reference.to_str().unwrap(),
            ],
        );
        let raw = dir.path().join(format!("{name}.raw.png"));
        run(
            "convert",
            &[
                original.to_str().unwrap(),
                "+profile",
                "*",
                raw.to_str().unwrap(),
            ],
        );

        let pyramid = dir.path().join(format!("{name}.tdp"));
        let report = tile(
            &original,
            &pyramid,
            &dir.path().join("t.jpg"),
            &TileOptions::default(),
            &|_, _| {},
        )
        .unwrap();
        assert!(
            matches!(report.colour, tiler::source::ProfileUse::Converted(_)),
            "{}",
            report.colour
        );
        let converted = assert_round_trip(&reference, &pyramid, TOLERANCE);
        let unconverted = common::worst_tile_error(&raw, &pyramid, false);
        eprintln!(
            "{name}: error {converted:.2} against sRGB, {unconverted:.2} against raw numbers"
        );
        assert!(
            unconverted > 2.0 * TOLERANCE,
            "{name}: conversion made no visible difference"
        );
    }
}

#[test]
fn srgb_profile_is_recognised_and_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let p = make_picture(
        dir.path(),
        "s.jpg",
        W,
        H,
        &["-profile", &format!("{ICC_DIR}/srgb.icc")],
    );
    let r = tile_and_check(&p, &TileOptions::default());
    assert_eq!(r.colour, tiler::source::ProfileUse::AlreadySrgb);
}

/// Limits that allow a third of what decoding the W×H test pictures whole as RGB needs.
fn too_little_for_a_whole_decode() -> TileOptions {
    TileOptions {
        limits: tiler::Limits {
            max_decode_bytes: u64::from(W * H),
            ..tiler::Limits::default()
        },
        ..TileOptions::default()
    }
}

/// Sequential JPEGs and PNGs are decoded row by row: they tile within a memory limit that a
/// whole decode would exceed, and come out the same. What must be decoded whole (progressive
/// coefficients, CMYK, an orientation to apply, interlaced rows) is held to the limit.
#[test]
fn jpegs_and_pngs_stream_row_by_row() {
    let dir = tempfile::tempdir().unwrap();
    let streamed = [
        (
            "rgb.jpg",
            &["-quality", "92"][..],
            "JPEG streamed row by row",
        ),
        (
            "grey.jpg",
            &["-colorspace", "Gray"][..],
            "JPEG streamed row by row",
        ),
        ("rgb.png", &["PNG24:"][..], "PNG streamed row by row"),
        (
            "deep.png",
            &["-depth", "16", "PNG48:"][..],
            "PNG streamed row by row",
        ),
        (
            "alpha.png",
            &[
                "-alpha", "set", "-channel", "A", "-fx", "i/w", "+channel", "PNG32:",
            ][..],
            "PNG streamed row by row",
        ),
        (
            "palette.png",
            &["+dither", "-colors", "64", "PNG8:"][..],
            "PNG streamed row by row",
        ),
        (
            "grey.png",
            &["-colorspace", "Gray", "PNG8:"][..],
            "PNG streamed row by row",
        ),
    ];
    for (name, args, how) in streamed {
        let p = make_picture(dir.path(), name, W, H, args);
        let r = tile_and_check(&p, &too_little_for_a_whole_decode());
        assert_eq!(r.source, how, "{name}");
    }
    let whole = [
        ("progressive.jpg", &["-interlace", "JPEG"][..]),
        ("cmyk.jpg", &["-colorspace", "CMYK"][..]),
        ("interlaced.png", &["-interlace", "PNG", "PNG24:"][..]),
    ];
    for (name, args) in whole {
        let p = make_picture(dir.path(), name, W, H, args);
        let err = tile(
            &p,
            &dir.path().join("x.tdp"),
            &dir.path().join("x.jpg"),
            &too_little_for_a_whole_decode(),
            &|_, _| {},
        )
        .unwrap_err();
        assert!(
            matches!(
                err,
                tiler::TileError::Source(tiler::SourceError::TooMuchMemory { .. })
            ),
            "{name}: {err}"
        );
        // With room, the same original tiles, decoded whole.
        let r = tile_and_check(&p, &TileOptions::default());
        assert_ne!(r.source, "JPEG streamed row by row", "{name}");
        assert_ne!(r.source, "PNG streamed row by row", "{name}");
    }
}

/// libjpeg's fatal errors come back as errors naming the file, never as a panic or a process
/// abort: here a scan that asks for a Huffman table the file never defines.
#[test]
fn a_jpeg_libjpeg_cannot_decode_is_an_error_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let p = make_picture(dir.path(), "h.jpg", 64, 48, &["-quality", "90"]);
    let mut bytes = std::fs::read(&p).unwrap();
    let sos = bytes.windows(2).position(|m| m == [0xFF, 0xDA]).unwrap();
    // FF DA, length (2), component count (1), then per component its id and table choice.
    bytes[sos + 6] = 0x33;
    std::fs::write(&p, &bytes).unwrap();
    let err = tile(
        &p,
        &dir.path().join("h.tdp"),
        &dir.path().join("h.thumb.jpg"),
        &TileOptions::default(),
        &|_, _| {},
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("h.jpg") && err.contains("Huffman"), "{err}");
    assert!(!dir.path().join("h.tdp").exists());
}

/// Bytes changed anywhere in a small JPEG or PNG give a pyramid or an error, never a panic.
#[test]
fn damaged_jpegs_and_pngs_never_panic() {
    let dir = tempfile::tempdir().unwrap();
    for name in ["d.jpg", "d.png"] {
        let p = make_picture(dir.path(), name, 300, 200, &[]);
        let good = std::fs::read(&p).unwrap();
        let damaged = dir.path().join(format!("damaged-{name}"));
        for at in (0..good.len()).step_by(good.len() / 97 + 1) {
            let mut bytes = good.clone();
            bytes[at] ^= 0x5A;
            std::fs::write(&damaged, &bytes).unwrap();
            let _ = tile(
                &damaged,
                &dir.path().join("d.tdp"),
                &dir.path().join("d.thumb.jpg"),
                &TileOptions::default(),
                &|_, _| {},
            );
        }
    }
}
