//! Helpers for tests that make originals with real tools (ImageMagick, libvips, exiftool) and
//! check what the tiler made of them against an independent decode.

#![allow(dead_code)] // each test file uses its own subset

use std::path::{Path, PathBuf};
use std::process::Command;

use tiler::PyramidReader;

/// Runs an external tool and returns its stdout; panics with its stderr if it fails.
pub fn run(program: &str, args: &[&str]) -> Vec<u8> {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| {
            panic!(
            "cannot run {program}: {e}. The README's test command installs the tools the tests \
             need (imagemagick, libvips-tools, libimage-exiftool-perl)."
        )
        });
    assert!(
        out.status.success(),
        "{program} {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// A textured, structured test picture: a seeded plasma (texture, so JPEG has work to do) over
/// a diagonal gradient (structure, so a misplaced tile shows).
pub fn make_picture(dir: &Path, name: &str, width: u32, height: u32, im_args: &[&str]) -> PathBuf {
    let path = dir.join(name);
    let size = format!("{width}x{height}");
    let mut args = vec![
        "-seed",
        "7",
        "-size",
        &size,
        "plasma:fractal",
        "(",
        "-size",
        &size,
        "gradient:red-blue",
        "-rotate",
        "0",
        ")",
        "-compose",
        "blend",
        "-define",
        "compose:args=50",
        "-composite",
    ];
    // A last argument like "PNG48:" is an output format prefix.
    let (prefix, im_args) = match im_args.split_last() {
        Some((last, rest)) if last.ends_with(':') => (*last, rest),
        _ => ("", im_args),
    };
    args.extend_from_slice(im_args);
    let out = format!("{prefix}{}", path.display());
    args.push(&out);
    run("convert", &args);
    path
}

/// An 8-bit sRGB decode of `path` by ImageMagick, upright, alpha flattened onto white.
pub fn reference_rgb(path: &Path) -> (u32, u32, Vec<u8>) {
    let p = path.to_str().unwrap();
    let dims = String::from_utf8(run("identify", &["-format", "%w %h\n", p])).unwrap();
    let first = dims.lines().next().unwrap().to_string();
    let mut it = first.split(' ').map(|v| v.parse::<u32>().unwrap());
    let (w, h) = (it.next().unwrap(), it.next().unwrap());
    let pixels = run(
        "convert",
        &[
            p,
            "-auto-orient",
            "-background",
            "white",
            "-alpha",
            "remove",
            "-alpha",
            "off",
            "-colorspace",
            "sRGB",
            "-depth",
            "8",
            "rgb:-",
        ],
    );
    // -auto-orient may swap the sides.
    let (w, h) = if pixels.len() == (w * h * 3) as usize && rotated(path) {
        (h, w)
    } else {
        (w, h)
    };
    assert_eq!(pixels.len(), (w * h * 3) as usize, "reference decode size");
    (w, h, pixels)
}

fn rotated(path: &Path) -> bool {
    let o = String::from_utf8(run(
        "identify",
        &["-format", "%[orientation]", path.to_str().unwrap()],
    ))
    .unwrap();
    matches!(
        o.trim(),
        "LeftTop" | "RightTop" | "RightBottom" | "LeftBottom"
    )
}

/// The reference for a pyramid level with scale factor `s`: each pixel is the mean of the
/// `s × s` block of the full image it covers (clipped at the edges).
pub fn reference_level(full: &[u8], w: u32, h: u32, s: u32) -> (u32, u32, Vec<u8>) {
    let (lw, lh) = (w.div_ceil(s), h.div_ceil(s));
    let mut out = vec![0u8; (lw * lh * 3) as usize];
    for ly in 0..lh {
        for lx in 0..lw {
            let mut sum = [0u64; 3];
            let mut n = 0u64;
            for y in ly * s..((ly + 1) * s).min(h) {
                for x in lx * s..((lx + 1) * s).min(w) {
                    let i = ((y * w + x) * 3) as usize;
                    for c in 0..3 {
                        sum[c] += u64::from(full[i + c]);
                    }
                    n += 1;
                }
            }
            let o = ((ly * lw + lx) * 3) as usize;
            for c in 0..3 {
                out[o + c] = ((sum[c] + n / 2) / n) as u8;
            }
        }
    }
    (lw, lh, out)
}

/// Mean absolute difference between a decoded tile and the region of a level reference whose
/// top-left corner is (x0, y0).
pub fn tile_error(tile: &image::RgbImage, level: &[u8], level_w: u32, x0: u32, y0: u32) -> f64 {
    let mut total = 0u64;
    for (x, y, p) in tile.enumerate_pixels() {
        let i = (((y0 + y) * level_w + x0 + x) * 3) as usize;
        for c in 0..3 {
            total += u64::from(p[c].abs_diff(level[i + c]));
        }
    }
    total as f64 / (tile.width() * tile.height() * 3) as f64
}

/// Checks every tile of every level of `pyramid` against the reference decode of `original`:
/// right size, and content matching its region (mean error under `tolerance`) better than the
/// region of a neighbouring tile would. Returns the worst tile error seen.
pub fn assert_round_trip(original: &Path, pyramid: &Path, tolerance: f64) -> f64 {
    let worst = worst_tile_error(original, pyramid, true);
    assert!(
        worst <= tolerance,
        "{}: worst tile mean error {worst:.2} > {tolerance}",
        original.display()
    );
    worst
}

/// The largest mean error of any tile of `pyramid` against the same region of `reference`
/// (decoded by ImageMagick). With `check_placement`, also asserts for every tile that its own
/// region fits it better than a region shifted by a quarter tile, so a misplaced tile fails.
pub fn worst_tile_error(reference: &Path, pyramid: &Path, check_placement: bool) -> f64 {
    let (w, h, full) = reference_rgb(reference);
    let reader = PyramidReader::open(pyramid).unwrap();
    let g = reader.geometry().clone();
    assert_eq!(
        (g.width, g.height),
        (w, h),
        "pyramid size vs. upright original"
    );
    let t = g.tile_size;
    let mut worst = 0f64;
    for (n, level) in g.levels.iter().enumerate() {
        let (lw, lh, reference) = reference_level(&full, w, h, 1 << n);
        assert_eq!((lw, lh), (level.width, level.height), "level {n} size");
        for row in 0..level.rows {
            for col in 0..level.cols {
                let jpeg = reader.read_tile(n, col, row).unwrap();
                let tile = image::load_from_memory(&jpeg).unwrap().to_rgb8();
                let (tw, th) = g.tile_dimensions(n, col, row).unwrap();
                assert_eq!(tile.dimensions(), (tw, th), "tile {n}/{col}/{row} size");
                let err = tile_error(&tile, &reference, lw, col * t, row * t);
                let (sx, sy) = (
                    (col * t + tw / 4).min(lw - tw),
                    (row * t + th / 4).min(lh - th),
                );
                if check_placement && tw >= 64 && th >= 64 && (sx, sy) != (col * t, row * t) {
                    let shifted = tile_error(&tile, &reference, lw, sx, sy);
                    assert!(
                        shifted > err,
                        "tile {n}/{col}/{row}: shifted region fits as well ({shifted:.2} vs {err:.2})"
                    );
                }
                worst = worst.max(err);
            }
        }
    }
    worst
}
