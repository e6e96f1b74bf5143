//! The actix-web request payload as the connection's input.

use std::{
    pin::Pin,
    task::{Context, Poll, Waker},
};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use futures_core::Stream;

use crate::actor::{give_spare, take_spare, ConnTask, Input, SPARE_MAX};

/// A stream of byte chunks as [`Input`] (the actix-web request payload): each chunk
/// is copied into the driver's buffer (actix-http's chunks share its read buffer,
/// so they cannot be unmasked in place), which reuses its allocation once the
/// messages split off it earlier are dropped. When the payload has nothing more for
/// now and the buffer is drained, the buffer goes to the thread's spare, where the
/// next connection of the thread to read takes it: an idle connection keeps no read
/// buffer, as on the standalone path.
pub(super) struct StreamInput<S> {
    stream: S,
    /// Whether only the HTTP/1 dispatcher that polls the connection's task feeds
    /// the stream (actix-http's own request payload), in its poll and before it
    /// polls the task.
    fed_by_dispatcher: bool,
    /// The waker the stream is polled with when it is fed by the dispatcher: it
    /// marks the connection's actor woken without waking the dispatcher again
    /// from inside its own poll (which would cost it one more poll per message,
    /// with a read that finds nothing).
    waker: Option<Waker>,
}

impl<S> StreamInput<S> {
    /// The input of `stream`; `fed_by_dispatcher`: see the field.
    pub fn new(stream: S, fed_by_dispatcher: bool) -> Self {
        StreamInput {
            stream,
            fed_by_dispatcher,
            waker: None,
        }
    }
}

impl<S, E> Input for StreamInput<S>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
{
    fn poll_read_into(
        &mut self,
        cx: &mut Context<'_>,
        buf: &mut BytesMut,
    ) -> Poll<std::io::Result<usize>> {
        match &self.waker {
            Some(waker) => read_chunk(&mut self.stream, &mut Context::from_waker(waker), buf),
            None => read_chunk(&mut self.stream, cx, buf),
        }
    }

    /// actix-http polls the response body (the connection's task, which writes
    /// the output) right after the actor, until the body is pending: the output is
    /// taken before the next read without a yield.
    const YIELDS_TO_OUTPUT: bool = false;

    fn attach(&mut self, task: &ConnTask) {
        if self.fed_by_dispatcher {
            self.waker = Some(task.input_waker());
        }
    }
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
                if buf.is_empty() && chunk.len() >= ALIGN_MIN {
                    align_for_copy(buf, &chunk);
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

/// Chunks from this size on are copied to a position [`align_for_copy`] chooses.
const ALIGN_MIN: usize = 1024;

/// Move the start of empty `buf` forward (by less than 32 bytes, with room for
/// `chunk` kept) so that `chunk` is copied to an address that is a multiple of 32
/// bytes away from its own.
///
/// The copy (and the transport's copy of an echoed payload, which starts from the
/// same buffer) is a `rep movsb` for large sizes, which some CPUs (AMD Zen 3 among
/// them) run some 25 times slower when the destination is 1 to 31 bytes past the
/// source modulo 4 KiB: a 16 KiB copy then takes about 9 µs instead of 0.35 µs.
/// actix-http's buffers and ours, allocated alike, tend to land at such
/// distances; a distance that is a multiple of 32 is never one of them.
fn align_for_copy(buf: &mut BytesMut, chunk: &[u8]) {
    buf.reserve(chunk.len() + 31);
    let skew = (buf.as_ptr() as usize).wrapping_sub(chunk.as_ptr() as usize) & 31;
    if skew != 0 {
        let pad = 32 - skew;
        buf.put_bytes(0, pad);
        buf.advance(pad);
    }
}

#[cfg(test)]
mod tests {
    use bytes::BytesMut;

    use super::align_for_copy;

    #[test]
    fn a_large_chunk_lands_a_multiple_of_32_bytes_from_where_it_is_copied_from() {
        let source = vec![7u8; 64 * 1024 + 64];
        for shift in 0..64 {
            let chunk = &source[shift..shift + 16 * 1024];
            for spare in [0, 5, 31, 4096] {
                let mut buf = BytesMut::with_capacity(spare);
                align_for_copy(&mut buf, chunk);
                assert!(buf.is_empty());
                assert!(buf.capacity() >= chunk.len());
                let start = buf.as_ptr();
                buf.extend_from_slice(chunk);
                assert_eq!(buf.as_ptr(), start, "no reallocation after aligning");
                assert_eq!(
                    (start as usize).wrapping_sub(chunk.as_ptr() as usize) % 32,
                    0
                );
                assert_eq!(&buf[..], chunk);
            }
        }
    }
}
