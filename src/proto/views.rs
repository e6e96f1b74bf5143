//! The two views of a [`Connection`] beside its driver calls: its output queue
//! ([`Connection::output`], [`Connection::output_mut`]), for a transport that
//! writes pieces without copying, and what was agreed and what is held
//! ([`Connection::info`]).

use std::io::IoSlice;

use bytes::{Bytes, BytesMut};

use super::{
    connection::FrameKind, Connection, Event, Extension, PreparedMessage, ReadyState, Role, VERSION,
};
use crate::settings::ProtocolSettings;

impl Connection {
    /// The output queue, to read: its pieces for a vectored write
    /// ([`Output::chunks_vectored`]), its first piece ([`Output::front`]). Nothing
    /// is there to write while `Connecting`.
    pub fn output(&self) -> Output<'_> {
        Output { conn: self }
    }

    /// The output queue, to take from: [`advance`](OutputMut::advance) past what the
    /// transport wrote, [`take_chunk`](OutputMut::take_chunk),
    /// [`write_into`](OutputMut::write_into) an encoder's buffer, or
    /// [`discard`](OutputMut::discard) it all.
    pub fn output_mut(&mut self) -> OutputMut<'_> {
        OutputMut { conn: self }
    }

    /// What the handshake agreed (role, settings, subprotocol, extension) and what
    /// the connection holds (input buffered, the next event).
    pub fn info(&self) -> Info<'_> {
        Info { conn: self }
    }
}

/// The output queue of a [`Connection`], read ([`Connection::output`]).
#[derive(Debug, Clone, Copy)]
pub struct Output<'a> {
    conn: &'a Connection,
}

impl<'a> Output<'a> {
    fn connecting(&self) -> bool {
        self.conn.state == ReadyState::Connecting
    }

    /// Bytes queued and not taken yet, including frames queued while `Connecting`
    /// (the same as [`Connection::buffered_amount`]).
    pub fn len(&self) -> usize {
        self.conn.output.len()
    }

    /// Whether nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.conn.output.is_empty()
    }

    /// The first contiguous piece, without taking it: write what the transport
    /// accepts straight from here, then [`OutputMut::advance`] by that much. Empty
    /// while `Connecting`.
    pub fn front(&self) -> &'a [u8] {
        if self.connecting() {
            return &[];
        }
        self.conn.output.front()
    }

    /// Fill `dst` with the pieces, in order, for one vectored write; returns how
    /// many were filled (0 while `Connecting`). Then [`OutputMut::advance`] by what
    /// the transport took.
    pub fn chunks_vectored(&self, dst: &mut [IoSlice<'a>]) -> usize {
        if self.connecting() {
            return 0;
        }
        self.conn.output.chunks_vectored(dst)
    }

    /// Whether a payload is held by reference (queued without a copy: a large one
    /// a server sends, perhaps a slice of the buffer its message was read into),
    /// which stays alive until the transport takes it.
    pub fn shares_payload(&self) -> bool {
        self.conn.output.has_shared()
    }
}

/// The output queue of a [`Connection`], to take from ([`Connection::output_mut`]).
#[derive(Debug)]
pub struct OutputMut<'a> {
    conn: &'a mut Connection,
}

impl OutputMut<'_> {
    fn connecting(&self) -> bool {
        self.conn.state == ReadyState::Connecting
    }

    /// Drop the first `n` bytes: the transport took them. `n` is capped at the
    /// queue's length. Nothing is dropped while `Connecting`.
    pub fn advance(&mut self, n: usize) {
        if !self.connecting() {
            self.conn.output.advance(n);
        }
    }

    /// The next piece, without copying: the frames written since the last piece,
    /// or a large payload queued by reference. Empty when there is nothing to write
    /// (or while `Connecting`).
    pub fn take_chunk(&mut self) -> Bytes {
        if self.connecting() {
            return Bytes::new();
        }
        self.conn.output.take_chunk()
    }

    /// Move everything into `dst` (an encoder's write buffer), without copying
    /// when `dst` is empty.
    pub fn write_into(&mut self, dst: &mut BytesMut) {
        if self.connecting() || self.conn.output.is_empty() {
            return;
        }
        let all = self.conn.output.take_all();
        if dst.is_empty() {
            *dst = all;
        } else {
            dst.extend_from_slice(&all);
        }
    }

    /// Drop everything queued: the transport is being closed without writing it
    /// (the peer stopped reading and the closing handshake timed out).
    pub fn discard(&mut self) {
        self.conn.output.clear();
        self.conn.output.release();
    }
}

/// What a [`Connection`]'s handshake agreed and what it holds
/// ([`Connection::info`]).
#[derive(Debug, Clone, Copy)]
pub struct Info<'a> {
    conn: &'a Connection,
}

impl<'a> Info<'a> {
    /// Our role.
    pub fn role(&self) -> Role {
        self.conn.role
    }

    /// The protocol settings.
    pub fn settings(&self) -> &'a ProtocolSettings {
        &self.conn.config
    }

    /// The subprotocol agreed in the handshake, if any (the Common Lisp
    /// websocket-driver's `protocol`).
    pub fn protocol(&self) -> Option<&'a str> {
        self.conn.protocol.as_deref()
    }

    /// `"hybi-13"` (the Common Lisp websocket-driver's `version`).
    pub fn version(&self) -> &'static str {
        VERSION
    }

    /// The negotiated extension, if any.
    pub fn extension(&self) -> Option<&'a dyn Extension> {
        self.conn.extension.as_deref()
    }

    /// The next event, without taking it (an `Error` does not take effect yet).
    pub fn peek_event(&self) -> Option<&'a Event> {
        self.conn.events.front()
    }

    /// Bytes of input held: an incomplete frame plus the message being assembled.
    /// Bounded by `max_frame_size` + 14 + `max_message_size` plus the last chunk fed.
    pub fn buffered_input(&self) -> usize {
        self.conn.read_buf.as_ref().map_or(0, |b| b.len())
            + self.conn.msg.buf.as_ref().map_or(0, |b| b.len())
    }

    /// How many more input bytes the frame being read needs to be whole (0 between
    /// frames): a transport can make room for that much before its next read,
    /// instead of growing its buffer piece by piece.
    pub fn frame_remaining(&self) -> usize {
        match &self.conn.frame {
            Some(f) if f.kind != FrameKind::Discard => f.len - f.processed,
            _ => 0,
        }
    }

    /// Whether [`Connection::send_prepared`] would compress `prepared` again for
    /// this connection (it has permessage-deflate with context takeover on our
    /// side, or a smaller window), rather than send the frame prepared once.
    pub fn compresses_prepared_again(&self, prepared: &PreparedMessage) -> bool {
        match (&self.conn.extension, prepared.compressed_payload()) {
            (Some(ext), Some((_, bits))) => !ext.accepts_prepared(bits),
            _ => false,
        }
    }
}
