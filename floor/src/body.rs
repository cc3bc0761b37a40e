//! A request's body read whole the way a node passes it on or writes it to a disk: laid out
//! for direct I/O (its first byte on a page boundary), and with the hash a signature covers
//! ([`cluster::auth::body_sum`]) worked out as the pieces arrive.
//!
//! An upload's chunk crosses two signed hops (frontend → home node → mirror) and a re-mirror's
//! every byte one: hashing a whole 8 MiB body after it arrived took about 3 ms at each end of
//! each hop, on the way of every chunk. Hashed as it is read, the sum is ready with its last
//! byte. And the pieces hyper reads are joined once in any case: joined here, on a page
//! boundary, a disk can take the body as it is (`O_DIRECT`), with no copy added.

use bytes::{Buf, Bytes, BytesMut};
use cluster::auth::BodySummer;
use futures_util::{Stream, StreamExt};
use warp::{Filter, Rejection};

/// What direct I/O aligns memory, offsets and lengths to: a page, which covers every disk's
/// logical block (512 or 4096 bytes).
pub const ALIGN: usize = 4096;

/// A body read whole, and its [`cluster::auth::body_sum`].
#[derive(Debug, Clone)]
pub struct Gathered {
    pub bytes: Bytes,
    pub sum: String,
}

impl Gathered {
    /// Bytes that did not arrive as a body (made here, or read from a disk), summed now.
    pub fn of(bytes: Bytes) -> Gathered {
        let sum = cluster::auth::body_sum(&bytes);
        Gathered { bytes, sum }
    }

    /// No body.
    pub fn empty() -> Gathered {
        Gathered::of(Bytes::new())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum GatherError {
    #[error("the body could not be read: {0}")]
    Read(warp::Error),
    #[error("the body is longer than its Content-Length ({length} bytes)")]
    TooLong { length: u64 },
    #[error("the body ended after {got} of its {length} bytes")]
    Short { got: u64, length: u64 },
}

impl warp::reject::Reject for GatherError {}

/// Reads a body of `length` bytes (its `Content-Length`; the caller has bounded it).
pub async fn gather<B: Buf>(
    length: u64,
    body: impl Stream<Item = Result<B, warp::Error>>,
) -> Result<Gathered, GatherError> {
    let want = usize::try_from(length).map_err(|_| GatherError::TooLong { length })?;
    let (mut buf, pad) = aligned_room(want);
    let mut summer = BodySummer::default();
    let mut body = std::pin::pin!(body);
    while let Some(piece) = body.next().await {
        let mut piece = piece.map_err(GatherError::Read)?;
        if buf.len() - pad + piece.remaining() > want {
            return Err(GatherError::TooLong { length });
        }
        while piece.has_remaining() {
            let part = piece.chunk();
            // A piece is at most hyper's read buffer (a few hundred KiB): a tenth of a
            // millisecond of hashing, as long as any request's work on this thread.
            summer.update(part);
            buf.extend_from_slice(part);
            let n = part.len();
            piece.advance(n);
        }
    }
    if buf.len() - pad != want {
        return Err(GatherError::Short {
            got: (buf.len() - pad) as u64,
            length,
        });
    }
    Ok(Gathered {
        bytes: aligned_freeze(buf, pad),
        sum: summer.finish(),
    })
}

/// The request's body as announced by its `Content-Length` (none: empty), gathered; a body it
/// cannot read is refused with a [`GatherError`]. Bound its length before this filter.
pub fn whole() -> impl Filter<Extract = (Gathered,), Error = Rejection> + Clone {
    warp::header::optional::<u64>("content-length")
        .and(warp::body::stream())
        .and_then(|length: Option<u64>, body| async move {
            gather(length.unwrap_or(0), body)
                .await
                .map_err(warp::reject::custom)
        })
}

/// Room for `length` bytes whose first byte is at an [`ALIGN`]ed address; fill it with
/// [`BytesMut::extend_from_slice`] (or write into its spare capacity) and [`aligned_freeze`] it.
pub fn aligned_room(length: usize) -> (BytesMut, usize) {
    let mut buf = BytesMut::with_capacity(length + ALIGN);
    let pad = buf.as_ptr().align_offset(ALIGN).min(ALIGN);
    buf.resize(pad, 0);
    (buf, pad)
}

/// The bytes put after the padding of [`aligned_room`], without a copy.
pub fn aligned_freeze(buf: BytesMut, pad: usize) -> Bytes {
    buf.freeze().slice(pad..)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pattern(n: usize) -> Vec<u8> {
        (0..n).map(|i| (i * 7 + i / 4096) as u8).collect()
    }

    fn pieces(data: &[u8], size: usize) -> Vec<Result<Bytes, warp::Error>> {
        data.chunks(size.max(1))
            .map(|c| Ok(Bytes::copy_from_slice(c)))
            .collect()
    }

    #[tokio::test]
    async fn a_body_in_pieces_is_gathered_aligned_with_the_sum_of_the_whole() {
        for (n, piece) in [(0, 1), (1, 1), (ALIGN, 1000), (3 * ALIGN + 17, 5000)] {
            let data = pattern(n);
            let body = futures_util::stream::iter(pieces(&data, piece));
            let got = gather(n as u64, body).await.unwrap();
            assert_eq!(&got.bytes[..], &data[..]);
            assert_eq!(got.bytes.as_ptr().align_offset(ALIGN), 0);
            assert_eq!(got.sum, cluster::auth::body_sum(&data));
            assert_eq!(got.sum, Gathered::of(Bytes::from(data)).sum);
        }
    }

    #[tokio::test]
    async fn a_body_longer_or_shorter_than_announced_is_refused() {
        let data = pattern(10_000);
        let long = gather(9_999, futures_util::stream::iter(pieces(&data, 4096))).await;
        assert!(matches!(long, Err(GatherError::TooLong { length: 9_999 })));
        let short = gather(10_001, futures_util::stream::iter(pieces(&data, 4096))).await;
        assert!(matches!(
            short,
            Err(GatherError::Short {
                got: 10_000,
                length: 10_001
            })
        ));
    }
}
