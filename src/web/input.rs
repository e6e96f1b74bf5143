//! The actix-web request payload as the connection's input.

use std::{
    pin::Pin,
    task::{Context, Poll},
};

use bytes::{Bytes, BytesMut};
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
        loop {
            return match Pin::new(&mut self.0).poll_next(cx) {
                Poll::Ready(Some(Ok(chunk))) if chunk.is_empty() => continue,
                Poll::Ready(Some(Ok(chunk))) => {
                    if buf.capacity() == 0 {
                        take_spare(buf);
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
}
