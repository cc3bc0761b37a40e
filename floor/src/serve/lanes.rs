//! Lanes: a server's plain-HTTP connections served on threads of their own, one per core, each
//! with its own single-threaded runtime accepting from the same listening socket, as nginx's
//! worker processes do.
//!
//! Why: on the runtime's shared worker threads, a redirect server measured no faster with two
//! workers than with one (104,000 answers a second either way) while nginx went from 61,000 to
//! 143,000: each answer woke the other worker through the kernel (futex and an interrupt to the
//! other core, which on a virtual machine exits to the host), and connections moved between
//! cores. A lane's connection stays on one thread from its first byte to its last quick answer.
//!
//! A lane only gives quick answers ([`super::quick`]). At the first request that is not one, the
//! connection moves to the runtime the server was started on (its socket taken out of the lane's
//! event loop and put in the runtime's), and hyper serves the rest there as it serves every
//! other connection: the routes, their handlers and whatever they spawn never run on a lane.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::os::fd::AsFd;
use std::sync::Arc;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use warp::{Filter, Reply};

use super::{quick, Serving};

/// Starts one lane per core on `listener` (each with a descriptor of its own: the caller may
/// close its own), each ending when the server stops (or is dropped) and its last connection
/// has left it. How many started; an error if none could.
pub(super) fn start<F, R>(
    listener: &TcpListener,
    places: &Arc<Semaphore>,
    serving: &Serving<F>,
) -> std::io::Result<usize>
where
    F: Filter<Extract = (R,), Error = Infallible> + Clone + Send + Sync + 'static,
    R: Reply + 'static,
{
    let lanes = std::thread::available_parallelism().map_or(1, |n| n.get());
    let runtime = tokio::runtime::Handle::current();
    let mut started = 0;
    for lane in 0..lanes {
        // Each lane its own descriptor of the one listening socket.
        let prepared = listener.as_fd().try_clone_to_owned().and_then(|own| {
            let built = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            Ok((std::net::TcpListener::from(own), built))
        });
        let (own, built) = match prepared {
            Ok(prepared) => prepared,
            Err(e) if started == 0 => return Err(e),
            Err(e) => {
                tracing::warn!(lane, error = %e, "a lane could not start: fewer lanes");
                break;
            }
        };
        let (places, lane_serving, runtime) = (places.clone(), serving.clone(), runtime.clone());
        let thread = std::thread::Builder::new()
            .name(format!("http-lane-{lane}"))
            .spawn(move || built.block_on(serve_lane(own, places, lane_serving, runtime)));
        match thread {
            Ok(_) => started += 1,
            Err(e) if started == 0 => return Err(e),
            Err(e) => tracing::warn!(lane, error = %e, "a lane's thread could not start"),
        }
    }
    tracing::debug!(lanes = started, "serving on lanes");
    Ok(started)
}

/// One lane: accepts until the server stops, then lets its connections finish.
async fn serve_lane<F, R>(
    listener: std::net::TcpListener,
    places: Arc<Semaphore>,
    serving: Serving<F>,
    runtime: tokio::runtime::Handle,
) where
    F: Filter<Extract = (R,), Error = Infallible> + Clone + Send + Sync + 'static,
    R: Reply + 'static,
{
    let listener = match TcpListener::from_std(listener) {
        Ok(listener) => listener,
        Err(e) => {
            tracing::warn!(error = %e, "a lane cannot take the listener");
            return;
        }
    };
    let mut stopping = serving.stopping.clone();
    let stopped = std::pin::pin!(async move {
        // A server dropped without a word (its sender gone) stops as well.
        let _ = stopping.wait_for(|stop| *stop).await;
    });
    let mut connections = tokio::task::JoinSet::new();
    super::accept(&listener, &places, stopped, |stream, peer, place| {
        while connections.try_join_next().is_some() {}
        let serving = serving.clone();
        connections.spawn(lane_connection(
            stream,
            peer,
            serving,
            place,
            runtime.clone(),
        ));
    })
    .await;
    drop(listener);
    while connections.join_next().await.is_some() {}
}

/// A connection's quick answers on the lane, then the rest on the server's runtime.
async fn lane_connection<F, R>(
    stream: TcpStream,
    peer: SocketAddr,
    serving: Serving<F>,
    place: OwnedSemaphorePermit,
    runtime: tokio::runtime::Handle,
) where
    F: Filter<Extract = (R,), Error = Infallible> + Clone + Send + Sync + 'static,
    R: Reply + 'static,
{
    let (read, stream) = match quick::serve(stream, serving.answering(false)).await {
        quick::Ended::Closed => return,
        quick::Ended::Routes { read, stream } => (read, stream),
    };
    // Out of this lane's event loop; into the runtime's, from a task running there.
    let stream = match stream.into_std() {
        Ok(stream) => stream,
        Err(e) => {
            tracing::debug!(peer = %peer, error = %e, "a connection could not leave its lane");
            return;
        }
    };
    runtime.spawn(async move {
        match TcpStream::from_std(stream) {
            Ok(stream) => super::by_routes((stream, read), peer, false, serving, place).await,
            Err(e) => {
                tracing::debug!(peer = %peer, error = %e, "a connection could not join the runtime")
            }
        }
    });
}
