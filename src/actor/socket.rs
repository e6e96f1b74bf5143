//! What the socket paths share: the socket as the driver's [`Input`] and reading an
//! HTTP head through it (the standalone server reads a request head, the client
//! a response head).

use std::{
    future::poll_fn,
    io,
    pin::Pin,
    task::{Context, Poll},
};

use bytes::{Bytes, BytesMut};
use tokio::io::AsyncRead;
use tokio_util::io::poll_read_buf;

use super::{
    driver::{give_spare, land_at, take_spare, LINE},
    Input,
};
use crate::handshake::MAX_HEAD_SIZE;

/// Read buffer first reserved: enough for a burst of small frames.
const READ_CHUNK_MIN: usize = 4 * 1024;

/// The most the read reservation grows to while reads keep filling it: one 64 KiB
/// frame with its header in one read. The slack past 64 KiB matters: a frame of a
/// power-of-two size plus its header would otherwise fill the buffer just short of
/// its end, and the buffer would have to grow (a copy of all of it) for the last
/// few bytes; and a large read starts up to a `LINE` in.
const READ_CHUNK_MAX: usize = 64 * 1024 + 64 + LINE;

/// A transport's read half (a TCP socket's, a TLS stream's) as the driver's
/// [`Input`]: it reads straight into the driver's buffer.
///
/// It reads with `AsyncRead::poll_read`, which for a socket notes a short read as
/// the end of what the socket holds: the next poll waits for readiness instead of
/// trying a read that would block (one system call fewer per message). The
/// reservation starts small and doubles each time a read fills it, so a
/// connection of small messages keeps a small buffer and one of large messages
/// reads them whole. A read that finds nothing with the buffer drained gives the
/// buffer to the thread's spare (unless it grew past `READ_CHUNK_MAX` for large
/// frames: that one stays until the keep-alive ping), where the next connection
/// to read takes it: idle connections hold no read buffer.
pub(crate) struct ReadInput<R> {
    io: R,
    /// Bytes that came after the handshake's head, in the same read (boxed: few
    /// peers send frames before the 101 reached them, and every idle connection
    /// holds this struct).
    first: Option<Box<Bytes>>,
    /// The current read reservation (at most `READ_CHUNK_MAX`).
    chunk: u32,
    /// The buffer was seen larger than `READ_CHUNK_MAX` (a large frame's room):
    /// once drained it is not made the thread's spare (whose capacity would no
    /// longer show the allocation behind it); the connection keeps it until the
    /// driver lets it go (the keep-alive ping on a quiet connection), and the next
    /// buffer starts afresh.
    grown: bool,
}

impl<R> ReadInput<R> {
    pub fn new(io: R) -> Self {
        ReadInput {
            io,
            first: None,
            chunk: READ_CHUNK_MIN as u32,
            grown: false,
        }
    }

    /// Bytes read past the handshake's head: the input's first bytes.
    pub fn set_first(&mut self, rest: BytesMut) {
        self.first = (!rest.is_empty()).then(|| Box::new(rest.freeze()));
    }
}

impl<R: AsyncRead + Unpin> Input for ReadInput<R> {
    fn poll_read_into(
        &mut self,
        cx: &mut Context<'_>,
        buf: &mut BytesMut,
    ) -> Poll<io::Result<usize>> {
        if let Some(first) = self.first.take() {
            buf.extend_from_slice(&first);
            return Poll::Ready(Ok(first.len()));
        }
        if buf.capacity() == 0 {
            // A fresh buffer (the last one was let go): the spare, if any.
            self.grown = false;
            take_spare(buf);
        }
        // Between frames, once reads have filled their buffer (large messages), a
        // read gets room for a whole chunk: a large frame that starts in what is
        // left at the end of the buffer would otherwise be read in part and then
        // copied when the driver makes room for its rest (reserving room in an
        // empty buffer moves nothing). Small messages keep the cheaper check.
        let chunk = self.chunk as usize;
        let whole = buf.is_empty() && chunk > READ_CHUNK_MIN;
        let room = if whole { chunk } else { chunk / 4 };
        if buf.capacity() - buf.len() < room {
            buf.reserve(chunk);
        }
        if whole {
            // On a line: the kernel's copy of a page-aligned payload is then at
            // full speed (see `land_at`).
            land_at(buf, 0, chunk - LINE);
        }
        self.grown |= buf.capacity() > READ_CHUNK_MAX;
        let spare = buf.capacity() - buf.len();
        let read = poll_read_buf(Pin::new(&mut self.io), cx, buf);
        match read {
            Poll::Ready(Ok(n)) if n == spare => {
                self.chunk = (chunk * 2).min(READ_CHUNK_MAX) as u32;
            }
            Poll::Pending if buf.is_empty() && !self.grown => {
                // Nothing waits: the buffer goes to the thread, for whichever
                // connection reads next. (One that grew for large frames stays
                // with its connection, which frees it when the keep-alive ping
                // finds the connection quiet: freeing each at once, while other
                // connections' large buffers live, fragments the heap for good.)
                give_spare(buf);
            }
            _ => {}
        }
        read
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
    // Bytes already scanned for the head's end: each byte is looked at once, and
    // the head is parsed once it is complete (or too long), so a peer sending one
    // byte at a time costs work linear in what it sent, not quadratic.
    let mut scanned = 0;
    loop {
        match poll_fn(|cx| input.poll_read_into(cx, &mut buf)).await {
            Ok(0) => return Err(HeadError::Closed),
            Ok(_) => {}
            Err(e) => return Err(HeadError::Io(e)),
        }
        let complete = head_end(&buf, scanned);
        scanned = buf.len();
        if !complete && buf.len() < MAX_HEAD_SIZE {
            continue;
        }
        if let Some((head, used)) = parse(&buf).map_err(HeadError::Parse)? {
            let rest = buf.split_off(used);
            return Ok((head, rest));
        }
    }
}

/// Whether `buf` holds the blank line that ends an HTTP head (`\n\n` or
/// `\n\r\n`: line endings may be bare LFs, RFC 9112 §2.2), looking only at what
/// came after the first `from` bytes (and the two before them).
fn head_end(buf: &[u8], from: usize) -> bool {
    let start = from.saturating_sub(2);
    buf[start..].iter().enumerate().any(|(i, &b)| {
        b == b'\n' && {
            let rest = &buf[start + i + 1..];
            rest.first() == Some(&b'\n') || rest.starts_with(b"\r\n")
        }
    })
}

#[cfg(test)]
mod tests {
    use super::head_end;

    #[test]
    fn head_end_finds_the_blank_line_across_reads() {
        let head = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n";
        assert!(head_end(head, 0));
        assert!(!head_end(&head[..head.len() - 1], 0));
        // Fed one byte at a time, it is found exactly at the last byte.
        let found: Vec<usize> = (1..=head.len())
            .filter(|&n| head_end(&head[..n], n - 1))
            .collect();
        assert_eq!(found, [head.len()]);
        assert!(head_end(b"GET / HTTP/1.1\nHost: x\n\n", 0));
        assert!(!head_end(b"GET / HTTP/1.1\r\nHost: x\r\n", 0));
    }
}
