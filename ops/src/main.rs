//! `td`: one command for everything on a Tertiary Disk node: tiling originals, inspecting
//! pyramid files, running a backend node, its monitor or a frontend, reading the nodes' events, the
//! portal's accounts and the cluster secret, and the demo appliance.

// The backend's warp route tree is a deep type; the default limit is too low for it in release.
#![recursion_limit = "256"]

mod commands;
mod logging;
mod samples;
mod stopping;

use std::process::ExitCode;

/// mimalloc, not glibc's malloc: serving catalog pages (a new frontend's table, the nodes
/// following each other) is allocation-heavy, and glibc spent 45% of it merging and splitting
/// free chunks (`malloc_consolidate`, `unlink_chunk`); the same pages take half the time here.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// No transparent huge pages for this process: mimalloc maps its memory in large aligned
/// regions, and with THP on (`always`, as on Debian) each touched 2 MiB of them became resident
/// whole: a tiling held 62-86 MiB against glibc's 35 for a 25 MP JPEG, at the same speed; 36
/// without. (Its own switch, `MIMALLOC_ALLOW_THP=0`, is read before `main`.)
fn lean_allocator() {
    // SAFETY: PR_SET_THP_DISABLE only sets a flag of this process's memory.
    unsafe {
        libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0);
    }
}

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "td",
    version,
    about = "Tertiary Disk: a self-maintaining web image storage appliance",
    long_about = "Tertiary Disk: a self-maintaining web image storage appliance.\n\n\
                  Start with `td demo` to see it serve a few sample artworks on this machine."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Which log lines to print: error, warn, info, debug or trace, or a filter such as
    /// `info,backend=debug`. RUST_LOG, when set, takes precedence.
    #[arg(long, global = true, default_value = "info", value_name = "FILTER")]
    log_level: String,
    /// Log as JSON lines (one object per line, with its fields), for journald or a log
    /// shipper, instead of readable lines.
    #[arg(long, global = true)]
    log_json: bool,
}

#[derive(Subcommand)]
enum Command {
    Tile(commands::tile::Args),
    Inspect(commands::inspect::Args),
    Demo(commands::demo::Args),
    Backend(commands::backend::Args),
    Frontend(commands::frontend::Args),
    Monitor(commands::monitor::Args),
    Events(commands::events::Args),
    User(commands::user::Args),
    Secret(commands::secret::Args),
    Status(commands::status::Args),
    Image(commands::image::Args),
    Remirror(commands::remirror::Args),
    Report(commands::report::Args),
    Tickets(commands::tickets::ListArgs),
    Ticket(commands::tickets::MarkArgs),
}

fn main() -> ExitCode {
    lean_allocator();
    let cli = Cli::parse();
    if let Err(e) = logging::init(&cli.log_level, cli.log_json) {
        eprintln!("td: error: {e}");
        return ExitCode::FAILURE;
    }
    let result = match cli.command {
        Command::Tile(args) => commands::tile::run(args),
        Command::Inspect(args) => commands::inspect::run(args),
        Command::Demo(args) => commands::demo::run(args),
        Command::Backend(args) => commands::backend::run(args),
        Command::Frontend(args) => commands::frontend::run(args),
        Command::Monitor(args) => commands::monitor::run(args),
        Command::Events(args) => commands::events::run(args),
        Command::User(args) => commands::user::run(args),
        Command::Secret(args) => commands::secret::run(args),
        Command::Status(args) => commands::status::run(args),
        Command::Image(args) => commands::image::run(args),
        Command::Remirror(args) => commands::remirror::run(args),
        Command::Report(args) => commands::report::run(args),
        Command::Tickets(args) => commands::tickets::list(args),
        Command::Ticket(args) => commands::tickets::mark(args),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            // Our errors carry their causes in their own message; `{:#}` would repeat them.
            eprintln!("td: error: {err}");
            ExitCode::FAILURE
        }
    }
}
