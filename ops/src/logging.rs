//! Where the libraries' `tracing` events go: standard error, filtered by `--log-level` (or
//! `RUST_LOG`), as readable lines or, with `--log-json`, one JSON object per line with the
//! event's fields (node, disk, image, upload, peer …) for journald or a log shipper.

use tracing_subscriber::EnvFilter;

/// Set for the processes this one starts (the demo's roles, a monitor's backend), so that
/// they log the same way.
const JSON_ENV: &str = "TD_LOG_JSON";

/// Installs the process's log output. Fails only on a filter that cannot be read.
pub fn init(level: &str, json: bool) -> anyhow::Result<()> {
    let json = json || std::env::var_os(JSON_ENV).is_some_and(|v| v == "1");
    let filter = match std::env::var("RUST_LOG") {
        Ok(from_env) if !from_env.trim().is_empty() => EnvFilter::try_new(&from_env)
            .map_err(|e| anyhow::anyhow!("RUST_LOG={from_env:?} is not a log filter: {e}"))?,
        _ => EnvFilter::try_new(level).map_err(|e| {
            anyhow::anyhow!(
                "--log-level {level:?} is not a log filter ({e}); try error, warn, info, debug \
                 or trace"
            )
        })?,
    };
    // Still one thread here: the environment is the children's to inherit.
    if json {
        std::env::set_var(JSON_ENV, "1");
    }
    if std::env::var_os("RUST_LOG").is_none() {
        std::env::set_var("RUST_LOG", level);
    }
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if json {
        builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .init();
    } else {
        builder
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .init();
    }
    Ok(())
}
