//! `td demo`: the appliance in one process on this machine, with a few sample artworks.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result};
use backend::Library;
use tiler::TileOptions;

use crate::samples::SAMPLES;

/// Render and tile a few built-in sample artworks, then serve them on this machine.
///
/// The first run renders the samples and tiles them (a minute or less); later runs reuse them.
/// Stop it with Ctrl-C.
#[derive(clap::Args)]
pub struct Args {
    /// Where the demo keeps its originals and images.
    #[arg(long, default_value = "demo-data")]
    data: PathBuf,
    /// Address to serve on (loopback by default: the demo is for this machine).
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Another server of the same images (e.g. http://127.0.0.1:8081), offered to the viewer
    /// for tiles when this one fails. Repeat for more.
    #[arg(long = "replica", value_name = "URL")]
    replicas: Vec<String>,
}

pub fn run(args: Args) -> Result<ExitCode> {
    let originals = args.data.join("originals");
    let images = args.data.join("images");
    for dir in [&originals, &images] {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    for sample in &SAMPLES {
        prepare(sample, &originals, &images)?;
    }
    let (library, problems) = Library::open(&images)?;
    for p in problems {
        eprintln!("td demo: skipping an image: {p}");
    }
    let library = Arc::new(library);
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(args.listen)
            .await
            .with_context(|| {
                format!(
                    "cannot listen on {} (is another demo running? try --listen 127.0.0.1:8081)",
                    args.listen
                )
            })?;
        let addr = listener.local_addr()?;
        println!(
            "Tertiary Disk demo: {} images from {}",
            library.len(),
            images.display()
        );
        println!("Open http://{addr}/ in a browser. Stop with Ctrl-C.");
        let shutdown = async {
            let _ = tokio::signal::ctrl_c().await;
        };
        backend::http::serve(
            listener,
            library,
            args.replicas,
            backend::worker::Runner::new(),
            shutdown,
        )
        .await;
        println!("stopped");
        Ok(ExitCode::SUCCESS)
    })
}

/// Renders and tiles one sample unless its pyramid is already there.
fn prepare(sample: &crate::samples::Sample, originals: &Path, images: &Path) -> Result<()> {
    let pyramid = images.join(format!("{}.tdp", sample.id));
    let meta_path = images.join(format!("{}.json", sample.id));
    if tiler::PyramidReader::open(&pyramid).is_ok() && meta_path.exists() {
        return Ok(());
    }
    let original = originals.join(format!("{}.jpg", sample.id));
    if !original.exists() {
        eprintln!(
            "rendering {} ({}×{}) …",
            sample.id, sample.width, sample.height
        );
        sample.render(&original)?;
    }
    eprintln!("tiling {} …", sample.id);
    let thumb = tiler::default_thumbnail_path(&pyramid);
    let report = tiler::tile(
        &original,
        &pyramid,
        &thumb,
        &TileOptions::default(),
        &|_, _| {},
    )?;
    eprintln!(
        "  {} levels, {} tiles in {:.1} s",
        report.geometry.levels.len(),
        report.geometry.tile_count(),
        report.seconds
    );
    let meta = serde_json::to_vec_pretty(&(sample.meta)())?;
    std::fs::write(&meta_path, meta)
        .with_context(|| format!("cannot write {}", meta_path.display()))?;
    Ok(())
}
