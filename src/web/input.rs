//! The actix-web request payload as the connection's input.

use std::{
    pin::Pin,
    task::{Context, Poll},
};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use futures_core::Stream;

use crate::actor::{give_spare, take_spare, Input, SPARE_MAX};

/// A stream of byte chunks as [`Input`] (the actix-web request payload): each chunk
/// is copied into the driver's buffer (actix-http's chunks share its read buffer,
/// so they cannot be unmasked in place), which reuses its allocation once the
/// messages split off it earlier are dropped. When the payload has nothing more for
/// now and the buffer is drained, the buffer goes to the thread's spare, where the
/// next connection of the thread to read takes it: an idle connection keeps no read
/// buffer, as on the standalone path.
pub(super) struct StreamInput<S>(pub S);

impl<S, E> Input for StreamInput<S>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
{
    fn poll_read_into(
        &mut self,
        cx: &mut Context<'_>,
        buf: &mut BytesMut,
    ) -> Poll<std::io::Result<usize>> {
        read_chunk(&mut self.0, cx, buf)
    }

    /// actix-http polls the response body (the connection's task, which writes
    /// the output) right after the actor, until the body is pending: the output is
    /// taken before the next read without a yield.
    const YIELDS_TO_OUTPUT: bool = false;
}

/// Append the next chunk of `stream` to `buf`.
#[inline]
fn read_chunk<S, E>(
    stream: &mut S,
    cx: &mut Context<'_>,
    buf: &mut BytesMut,
) -> Poll<std::io::Result<usize>>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
{
    loop {
        return match Pin::new(&mut *stream).poll_next(cx) {
            Poll::Ready(Some(Ok(chunk))) if chunk.is_empty() => continue,
            Poll::Ready(Some(Ok(chunk))) => {
                if buf.capacity() == 0 {
                    take_spare(buf);
                }
                if buf.capacity() - buf.len() < chunk.len() {
                    // Room for several small messages at once, not for this one
                    // only: the buffer is reused from the start once they are
                    // dropped, rather than grown for every message.
                    buf.reserve(chunk.len().max(MIN_RESERVE));
                }
                if buf.is_empty() && chunk.len() >= ALIGN_FROM {
                    align_with(buf, &chunk);
                }
                buf.extend_from_slice(&chunk);
                Poll::Ready(Ok(chunk.len()))
            }
            Poll::Ready(Some(Err(_))) => Poll::Ready(Err(std::io::ErrorKind::Other.into())),
            Poll::Ready(None) => Poll::Ready(Ok(0)),
            Poll::Pending => {
                if buf.is_empty() && buf.capacity() > 0 && buf.capacity() <= SPARE_MAX {
                    give_spare(buf);
                }
                Poll::Pending
            }
        };
    }
}

/// The least the read buffer grows by when a chunk does not fit.
const MIN_RESERVE: usize = 4096;

/// A chunk this long is copied so that it lands at the same offset from a cache
/// line as it lies (see [`align_with`]); shorter ones are not worth it.
const ALIGN_FROM: usize = 2048;

/// Where a copy of `chunk` into empty `buf` should land: at the same offset from a
/// 64-byte line as `chunk` itself. `memcpy` copies large blocks with `rep movsb`,
/// which some CPUs (AMD Zen 3 among them) run about 20 times slower when the
/// destination is 1 to 31 bytes past the source modulo 4 KiB; a copy whose ends
/// share their line offset never is, and is the fastest kind besides. Later chunks
/// cut from the same buffer of actix-http's keep that relation. A payload echoed
/// from this buffer is copied once more, by actix-http into its write buffer, whose
/// distance from ours this also sets: measured with `scripts/copy-offsets.sh`,
/// neither copy of a 16 KiB or 64 KiB echo falls at a slow distance.
fn align_with(buf: &mut BytesMut, chunk: &[u8]) {
    const LINE: usize = 64;
    buf.reserve(chunk.len() + LINE);
    let k = (chunk.as_ptr() as usize).wrapping_sub(buf.as_ptr() as usize) % LINE;
    if k != 0 {
        buf.put_bytes(0, k);
        buf.advance(k);
    }
}

#[cfg(test)]
mod tests {
    use bytes::BytesMut;

    use super::align_with;

    #[test]
    fn a_large_chunk_lands_at_its_own_offset_from_a_line() {
        let source = vec![7u8; 8192 + 64];
        for skew in 0..64 {
            let chunk = &source[skew..skew + 8192];
            for spare in [0, 5, 63, 4096] {
                let mut buf = BytesMut::with_capacity(spare);
                align_with(&mut buf, chunk);
                assert!(buf.is_empty());
                assert!(buf.capacity() >= chunk.len());
                let start = buf.as_ptr();
                let apart = (chunk.as_ptr() as usize).wrapping_sub(start as usize);
                assert_eq!(apart % 64, 0, "skew {skew}, spare {spare}");
                buf.extend_from_slice(chunk);
                assert_eq!(buf.as_ptr(), start, "no reallocation after aligning");
                assert_eq!(&buf[..], chunk);
            }
        }
    }
}
