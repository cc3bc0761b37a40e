//! `td demo`: placeholder until the demo server lands.

use std::process::ExitCode;

use anyhow::Result;

/// Tile a few built-in sample artworks and serve them on this machine.
#[derive(clap::Args)]
pub struct Args {}

pub fn run(_args: Args) -> Result<ExitCode> {
    anyhow::bail!("not yet")
}
