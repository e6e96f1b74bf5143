//! The connection's output: bytes for the transport, in order.
//!
//! Small frames are written into one growing buffer, so that several go out with one
//! write. A large payload that needs no masking (a server's) is queued by reference
//! instead, after the bytes before it, and the transport writes the pieces with one
//! vectored write: a message echoed or broadcast is not copied on its way out.

use std::{collections::VecDeque, io::IoSlice};

use bytes::{Buf, Bytes, BytesMut};

/// Payloads at least this large are queued by reference rather than copied.
/// Below it, a copy costs less than another piece for the vectored write.
pub(crate) const SHARE_MIN: usize = 4096;

#[derive(Debug, Default)]
pub(crate) struct Output {
    /// Sealed pieces, written before `tail`: the bytes that preceded a shared
    /// payload, and the payload. Made when the first payload is shared (a
    /// connection of small messages never does), kept until the output drains
    /// on a quiet connection.
    #[allow(
        clippy::box_collection,
        reason = "8 bytes on every idle connection rather than a deque's 32"
    )]
    chunks: Option<Box<VecDeque<Bytes>>>,
    chunks_len: usize,
    /// Where new frames are written.
    tail: BytesMut,
}

impl Output {
    pub fn len(&self) -> usize {
        self.chunks_len + self.tail.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether a payload is queued by reference (it keeps its buffer alive until
    /// written).
    pub fn has_shared(&self) -> bool {
        self.chunks.as_ref().is_some_and(|c| !c.is_empty())
    }

    pub fn clear(&mut self) {
        if let Some(chunks) = &mut self.chunks {
            chunks.clear();
        }
        self.chunks_len = 0;
        self.tail.clear();
    }

    /// The buffer new frames are written into.
    pub fn tail_mut(&mut self) -> &mut BytesMut {
        &mut self.tail
    }

    /// Queue `payload` after everything written so far, without copying it.
    pub fn push_shared(&mut self, payload: Bytes) {
        let chunks = self.chunks.get_or_insert_with(Box::default);
        if !self.tail.is_empty() {
            let before = self.tail.split().freeze();
            self.chunks_len += before.len();
            chunks.push_back(before);
        }
        self.chunks_len += payload.len();
        chunks.push_back(payload);
    }

    /// Queue a whole frame prepared elsewhere (a broadcast's): by reference when
    /// large, else copied with the frames around it.
    pub fn push_frame(&mut self, frame: &Bytes) {
        if frame.len() < SHARE_MIN {
            self.tail.extend_from_slice(frame);
        } else {
            self.push_shared(frame.clone());
        }
    }

    /// The first contiguous piece.
    pub fn front(&self) -> &[u8] {
        match self.chunks.as_ref().and_then(|c| c.front()) {
            Some(chunk) => chunk,
            None => &self.tail,
        }
    }

    /// Fill `dst` with the pieces in order; returns how many were filled.
    pub fn chunks_vectored<'a>(&'a self, dst: &mut [IoSlice<'a>]) -> usize {
        let Some(chunks) = self.chunks.as_ref().filter(|c| !c.is_empty()) else {
            // The common case: small frames only, one piece.
            return match dst.first_mut() {
                Some(slot) if !self.tail.is_empty() => {
                    *slot = IoSlice::new(&self.tail);
                    1
                }
                _ => 0,
            };
        };
        let pieces = chunks
            .iter()
            .map(|c| &c[..])
            .chain((!self.tail.is_empty()).then_some(&self.tail[..]));
        let mut n = 0;
        for (slot, piece) in dst.iter_mut().zip(pieces) {
            *slot = IoSlice::new(piece);
            n += 1;
        }
        n
    }

    /// Drop the first `n` bytes (capped at the length).
    pub fn advance(&mut self, mut n: usize) {
        while n > 0 {
            let Some(chunks) = self.chunks.as_mut().filter(|c| !c.is_empty()) else {
                let n = n.min(self.tail.len());
                self.tail.advance(n);
                return;
            };
            let front = &mut chunks[0];
            let k = n.min(front.len());
            front.advance(k);
            self.chunks_len -= k;
            n -= k;
            if front.is_empty() {
                chunks.pop_front();
            }
        }
    }

    /// Take the first piece: a shared payload as it is, or the written bytes.
    pub fn take_chunk(&mut self) -> Bytes {
        match self.chunks.as_mut().and_then(|c| c.pop_front()) {
            Some(chunk) => {
                self.chunks_len -= chunk.len();
                chunk
            }
            // Nothing written: no split (a transport asks once more after each
            // piece, to learn that the output is drained).
            None if self.tail.is_empty() => Bytes::new(),
            None => self.tail.split().freeze(),
        }
    }

    /// Take everything as one buffer (copying the shared pieces, if any).
    pub fn take_all(&mut self) -> BytesMut {
        let len = self.len();
        let Some(chunks) = self.chunks.as_mut().filter(|c| !c.is_empty()) else {
            return self.tail.split();
        };
        let mut all = BytesMut::with_capacity(len);
        for chunk in chunks.drain(..) {
            all.extend_from_slice(&chunk);
        }
        all.extend_from_slice(&self.tail);
        self.chunks_len = 0;
        self.tail.clear();
        all
    }

    /// Give back the written buffer's memory if nothing is pending.
    pub fn release(&mut self) {
        if self.is_empty() {
            self.tail = BytesMut::new();
            self.chunks = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vectored(out: &Output) -> Vec<Vec<u8>> {
        let mut slots = [IoSlice::new(&[]); 8];
        let n = out.chunks_vectored(&mut slots);
        slots[..n].iter().map(|s| s.to_vec()).collect()
    }

    #[test]
    fn shared_payload_keeps_order_with_written_bytes() {
        let mut out = Output::default();
        out.tail_mut().extend_from_slice(b"ab");
        out.push_shared(Bytes::from_static(b"PAYLOAD"));
        out.tail_mut().extend_from_slice(b"cd");
        assert_eq!(out.len(), 11);
        assert_eq!(vectored(&out), [&b"ab"[..], b"PAYLOAD", b"cd"]);
        assert_eq!(out.front(), b"ab");
        out.advance(4);
        assert_eq!(vectored(&out), [&b"YLOAD"[..], b"cd"]);
        assert_eq!(out.len(), 7);
        out.advance(6);
        assert_eq!(vectored(&out), [&b"d"[..]]);
        out.advance(100);
        assert!(out.is_empty());
        assert_eq!(vectored(&out), Vec::<Vec<u8>>::new());
    }

    #[test]
    fn take_chunk_and_take_all_return_the_bytes_in_order() {
        let mut out = Output::default();
        out.push_shared(Bytes::from_static(b"P1"));
        out.tail_mut().extend_from_slice(b"x");
        out.push_shared(Bytes::from_static(b"P2"));
        out.tail_mut().extend_from_slice(b"y");
        assert_eq!(&out.take_chunk()[..], b"P1");
        assert_eq!(&out.take_all()[..], b"xP2y");
        assert!(out.is_empty());
        out.tail_mut().extend_from_slice(b"z");
        assert_eq!(&out.take_chunk()[..], b"z");
        assert_eq!(out.len(), 0);
    }
}
