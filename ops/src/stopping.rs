//! How the long-running roles stop: on SIGTERM (what systemd and the demo send) or SIGINT
//! (Ctrl-C) they stop taking connections, finish the requests in flight within a deadline,
//! then stop their workers and flush their stores.

use std::future::Future;
use std::time::Duration;

use anyhow::{Context, Result};
use tokio::signal::unix::{signal, SignalKind};

/// How long requests in flight may take to finish once a stop is asked.
pub const DRAIN: Duration = Duration::from_secs(10);

/// Listens for SIGTERM and SIGINT. Made before serving, so a signal that arrives early is not
/// lost (and does not kill the process with the default action).
pub struct StopSignal {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
}

impl StopSignal {
    pub fn new() -> Result<StopSignal> {
        Ok(StopSignal {
            term: signal(SignalKind::terminate()).context("cannot listen for SIGTERM")?,
            int: signal(SignalKind::interrupt()).context("cannot listen for SIGINT")?,
        })
    }

    /// Waits for either; says which.
    pub async fn recv(&mut self) -> &'static str {
        tokio::select! {
            _ = self.term.recv() => "SIGTERM",
            _ = self.int.recv() => "SIGINT",
        }
    }
}

/// Runs `serve` (an HTTP server that stops gracefully when the future it is given ends) until a
/// stop signal, then lets it finish its requests in flight for at most [`DRAIN`].
pub async fn serve_until_stopped<S, F>(role: &str, mut stop: StopSignal, serve: S)
where
    S: FnOnce(tokio::sync::oneshot::Receiver<()>) -> F,
    F: Future<Output = ()> + Send + 'static,
{
    let (tell, told) = tokio::sync::oneshot::channel();
    let mut server = tokio::spawn(serve(told));
    tokio::select! {
        signal = stop.recv() => {
            tracing::info!(role, signal, "stopping: finishing the requests in flight");
        }
        // The server ended by itself (its listener failed): nothing to drain.
        _ = &mut server => return,
    }
    let _ = tell.send(());
    if tokio::time::timeout(DRAIN, &mut server).await.is_err() {
        tracing::warn!(role, drain = ?DRAIN, "requests still open after the deadline; stopping anyway");
        server.abort();
    }
}
