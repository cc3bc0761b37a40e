//! `td tile`: original → pyramid file and thumbnail.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use indicatif::{ProgressBar, ProgressStyle};
use tiler::geometry::DEFAULT_TILE_SIZE;
use tiler::source::DEFAULT_MAX_PIXELS;
use tiler::thumbnail::DEFAULT_THUMBNAIL_SIZE;
use tiler::{Limits, TileOptions, DEFAULT_QUALITY};

use super::human_bytes;

/// Tile an original (JPEG, PNG or TIFF) into a pyramid file (.tdp) and a thumbnail.
///
/// The pyramid holds every level of the image as JPEG tiles for deep zoom and IIIF; both files
/// appear whole or not at all. Originals are read a row at a time (JPEG, PNG, stripped and tiled
/// TIFF), so huge scans need little memory; a progressive JPEG keeps its coefficients, and a
/// CMYK JPEG, an interlaced PNG or an original its EXIF orientation turns is decoded whole.
#[derive(clap::Args)]
pub struct Args {
    /// The original image: JPEG, PNG or TIFF (8 or 16 bits, grey, RGB, CMYK, with or without alpha).
    original: PathBuf,
    /// The pyramid file to write, e.g. art.tdp.
    #[arg(short, long)]
    output: PathBuf,
    /// Where to write the thumbnail [default: OUTPUT with extension .thumb.jpg].
    #[arg(long)]
    thumbnail: Option<PathBuf>,
    /// Tile side in pixels (even, 64 to 4096).
    #[arg(long, default_value_t = DEFAULT_TILE_SIZE)]
    tile_size: u32,
    /// JPEG quality of tiles and thumbnail (1 to 100).
    #[arg(long, default_value_t = DEFAULT_QUALITY)]
    quality: u8,
    /// Longest side of the thumbnail in pixels.
    #[arg(long, default_value_t = DEFAULT_THUMBNAIL_SIZE)]
    thumbnail_size: u32,
    /// Refuse originals with more pixels than this (protects against decompression bombs).
    #[arg(long, default_value_t = DEFAULT_MAX_PIXELS / 1_000_000)]
    max_megapixels: u64,
    /// Most memory a JPEG or PNG may take decoded, in MiB [default: half of this machine's memory].
    #[arg(long)]
    max_memory: Option<u64>,
    /// Print nothing but errors.
    #[arg(short, long)]
    quiet: bool,
}

/// Half the machine's memory: a decode that needs more would push the node into swap. Falls
/// back to the library's default where the machine cannot tell.
fn default_max_memory() -> u64 {
    match sysinfo::System::new() {
        Ok(mut sys) => {
            sys.refresh_memory();
            (sys.total_memory() / 2).max(256 << 20)
        }
        Err(_) => tiler::source::DEFAULT_MAX_DECODE_BYTES,
    }
}

pub fn run(args: Args) -> Result<ExitCode> {
    let options = TileOptions {
        tile_size: args.tile_size,
        quality: args.quality,
        thumbnail_size: args.thumbnail_size,
        limits: Limits {
            max_pixels: args.max_megapixels.saturating_mul(1_000_000),
            max_decode_bytes: args
                .max_memory
                .map(|mib| mib.saturating_mul(1 << 20))
                .unwrap_or_else(default_max_memory),
        },
    };
    let thumbnail = args
        .thumbnail
        .clone()
        .unwrap_or_else(|| tiler::default_thumbnail_path(&args.output));
    let bar = if args.quiet {
        ProgressBar::hidden()
    } else {
        // Draws only when stderr is a terminal.
        ProgressBar::new(0).with_style(
            ProgressStyle::with_template(
                "{msg} [{bar:40}] {pos}/{len} tiles, {elapsed} elapsed, ETA {eta}",
            )
            .expect("valid template")
            .progress_chars("=> "),
        )
    };
    bar.set_message(format!("tiling {}", args.original.display()));
    let progress = |done: u64, total: u64| {
        bar.set_length(total);
        bar.set_position(done);
    };
    let report = match tiler::tile(
        &args.original,
        &args.output,
        &thumbnail,
        &options,
        &progress,
    ) {
        Ok(r) => r,
        // An original that cannot be read says so with its own status: a node tiling an
        // upload tells the uploader, rather than trying again.
        Err(tiler::TileError::Source(e)) if !matches!(e, tiler::SourceError::Io { .. }) => {
            bar.finish_and_clear();
            eprintln!("error: {e}");
            return Ok(ExitCode::from(
                backend::ingest::tiling::UNREADABLE_EXIT as u8,
            ));
        }
        Err(e) => return Err(e.into()),
    };
    bar.finish_and_clear();
    if !args.quiet {
        let g = &report.geometry;
        println!(
            "{} → {}: {}×{} px, {} levels, {} tiles of {} px, {} ({}; {}); thumbnail {} {}×{} ({}); {:.2} s, {:.1} MP/s",
            args.original.display(),
            args.output.display(),
            g.width,
            g.height,
            g.levels.len(),
            g.tile_count(),
            g.tile_size,
            human_bytes(report.pyramid_bytes),
            report.source,
            report.colour,
            thumbnail.display(),
            report.thumbnail.0,
            report.thumbnail.1,
            human_bytes(report.thumbnail_bytes),
            report.seconds,
            report.megapixels_per_second(),
        );
    }
    Ok(ExitCode::SUCCESS)
}
