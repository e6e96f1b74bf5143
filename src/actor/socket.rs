//! What the socket paths share: the read buffer's growth policy and reading an HTTP
//! head through an [`Input`] (the standalone server reads a request head, the client
//! a response head).

use std::{future::poll_fn, io};

use bytes::BytesMut;

use super::Input;

/// Read buffer reserved when the transport is readable and the buffer is nearly
/// full: enough for a burst of small frames. The buffer is reused once the messages
/// split off it are dropped.
pub(crate) const READ_CHUNK: usize = 16 * 1024;

/// Make room in `buf` for the next read, when less than a quarter chunk is left.
#[inline]
pub(crate) fn make_room(buf: &mut BytesMut) {
    if buf.capacity() - buf.len() < READ_CHUNK / 4 {
        buf.reserve(READ_CHUNK);
    }
}

/// Why no head was read.
#[derive(Debug)]
pub(crate) enum HeadError<E> {
    /// The head is invalid (the parser's error).
    Parse(E),
    /// The transport ended before the head was complete.
    Closed,
    /// The transport failed.
    Io(io::Error),
}

/// Read from `input` until `parse` finds a complete head; returns the head and the
/// bytes that followed it in the same read (the peer's first frames, perhaps).
///
/// The buffer stays bounded because `parse` fails once the head is longer than
/// [`MAX_HEAD_SIZE`](crate::handshake::MAX_HEAD_SIZE) (both
/// [`parse_request`](crate::handshake::parse_request) and
/// [`ClientRequest::parse_response`](crate::handshake::ClientRequest::parse_response)
/// do); the caller bounds the time.
pub(crate) async fn read_head<I, T, E>(
    input: &mut I,
    mut parse: impl FnMut(&[u8]) -> Result<Option<(T, usize)>, E>,
) -> Result<(T, BytesMut), HeadError<E>>
where
    I: Input,
{
    let mut buf = BytesMut::new();
    loop {
        match poll_fn(|cx| input.poll_read_into(cx, &mut buf)).await {
            Ok(0) => return Err(HeadError::Closed),
            Ok(_) => {}
            Err(e) => return Err(HeadError::Io(e)),
        }
        if let Some((head, used)) = parse(&buf).map_err(HeadError::Parse)? {
            let rest = buf.split_off(used);
            return Ok((head, rest));
        }
    }
}
