//! `td inspect`: what a pyramid file holds, and whether every byte of it is good.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use indicatif::ProgressBar;
use tiler::geometry::Level;
use tiler::PyramidReader;

use super::human_bytes;

/// Print a pyramid file's header and levels, then verify every tile (checksum, JPEG structure,
/// decoded size). Exits non-zero, naming the tile and the check, if anything is wrong.
#[derive(clap::Args)]
pub struct Args {
    /// The pyramid file (.tdp).
    file: PathBuf,
    /// Only read and check the header and index; do not read the tiles.
    #[arg(long)]
    no_verify: bool,
}

pub fn run(args: Args) -> Result<ExitCode> {
    let reader = PyramidReader::open(&args.file)?;
    let h = reader.header();
    let g = &h.geometry;
    println!("file        {}", args.file.display());
    println!(
        "format      Tertiary Disk pyramid, version {}",
        tiler::format::VERSION
    );
    println!(
        "size        {}×{} px, {} channel(s)",
        g.width, g.height, h.channels
    );
    println!(
        "tiles       {} of {} px, JPEG quality {}",
        g.tile_count(),
        g.tile_size,
        h.quality
    );
    println!(
        "bytes       {} ({} header and index)",
        human_bytes(h.file_len),
        human_bytes(h.data_start())
    );
    println!("levels      scale  width × height   cols × rows   bytes");
    for (n, l) in g.levels.iter().enumerate() {
        let bytes: u64 = (0..l.tile_count())
            .map(|i| u64::from(h.index[(l.first_tile + i) as usize].length))
            .sum();
        println!(
            "  {n:>2}       {:>5}  {:>6} × {:<6}  {:>5} × {:<5}  {}",
            Level::scale_factor(n),
            l.width,
            l.height,
            l.cols,
            l.rows,
            human_bytes(bytes)
        );
    }
    if args.no_verify {
        println!("verify      skipped (header and index are valid)");
        return Ok(ExitCode::SUCCESS);
    }
    let bar = ProgressBar::new(g.tile_count());
    let result = reader.verify(|done, _| bar.set_position(done));
    bar.finish_and_clear();
    match result {
        Ok(()) => {
            println!(
                "verify      OK: all {} tiles match their checksums and decode to their size",
                g.tile_count()
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            println!("verify      FAILED: {e}");
            Ok(ExitCode::FAILURE)
        }
    }
}
