//! The actix-web request payload as the connection's input.

use std::{
    pin::Pin,
    task::{Context, Poll},
};

use bytes::{Bytes, BytesMut};
use futures_core::Stream;

use crate::actor::{give_spare, land_at, take_spare, Input, LINE, SPARE_MAX};

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
                // A large chunk into an empty buffer lands at its own offset from
                // a line, so that memcpy runs at full speed (see `land_at`).
                // Later chunks cut from the same buffer of actix-http's keep
                // that relation, and so does actix-http's copy of an echoed
                // payload into its write buffer (`scripts/copy-offsets.sh`:
                // neither copy of a 16 KiB or 64 KiB echo at a slow distance).
                let aligned = buf.is_empty() && chunk.len() >= ALIGN_FROM;
                let need = chunk.len() + if aligned { LINE } else { 0 };
                if buf.capacity() - buf.len() < need {
                    // Room for several small messages at once, not for this one
                    // only: the buffer is reused from the start once they are
                    // dropped, rather than grown for every message.
                    buf.reserve(need.max(MIN_RESERVE));
                }
                if aligned {
                    land_at(buf, chunk.as_ptr() as usize, chunk.len());
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

/// A chunk this long is copied to its own offset from a cache line; shorter ones
/// are not worth it.
const ALIGN_FROM: usize = 2048;

#[cfg(test)]
mod tests {
    use std::{
        pin::Pin,
        task::{Context, Poll, Waker},
    };

    use bytes::{Bytes, BytesMut};
    use futures_core::Stream;

    use super::read_chunk;

    /// One chunk, then nothing more for now.
    struct Once(Option<Bytes>);

    impl Stream for Once {
        type Item = Result<Bytes, ()>;
        fn poll_next(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Option<Self::Item>> {
            match self.0.take() {
                Some(chunk) => Poll::Ready(Some(Ok(chunk))),
                None => Poll::Pending,
            }
        }
    }

    #[test]
    fn a_large_chunk_lands_at_its_own_offset_from_a_line_and_a_small_one_where_the_buffer_ends() {
        let source = Bytes::from(vec![7u8; 8192 + 64]);
        let mut cx = Context::from_waker(Waker::noop());
        for skew in 0..64 {
            let chunk = source.slice(skew..skew + 8192);
            for spare in [0, 5, 63, 4096, 9000] {
                let mut buf = BytesMut::with_capacity(spare);
                let read = read_chunk(&mut Once(Some(chunk.clone())), &mut cx, &mut buf);
                assert!(matches!(read, Poll::Ready(Ok(8192))));
                assert_eq!(&buf[..], &chunk[..]);
                let apart = (chunk.as_ptr() as usize).wrapping_sub(buf.as_ptr() as usize);
                assert_eq!(apart % 64, 0, "skew {skew}, spare {spare}");
            }
        }
        // A small chunk is appended where the bytes before it end.
        let mut buf = BytesMut::with_capacity(100);
        buf.extend_from_slice(b"ab");
        let end = buf.as_ptr() as usize + 2;
        let read = read_chunk(&mut Once(Some(source.slice(3..40))), &mut cx, &mut buf);
        assert!(matches!(read, Poll::Ready(Ok(37))));
        assert_eq!(buf.len(), 39);
        assert_eq!(buf[2..].as_ptr() as usize, end);
    }
}
