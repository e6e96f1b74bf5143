//! permessage-deflate (RFC 7692): the codec a connection uses once the handshake
//! agreed on it, and messages compressed once for many connections.
//!
//! The negotiation that produces a [`Deflate`] lives with the handshake
//! ([`DeflateSettings::accept_offer`], [`DeflateSettings::accept_response`]).

use std::fmt;

use bytes::{Bytes, BytesMut};
use zlib_rs::{DeflateFlush, InflateFlush, Status};

use super::{
    error::{CapacityError, Error, ExtensionError},
    CloseCode, Extension, FrameHeader, Message, OpCode, Role, RSV1,
};
use crate::settings::DeflateSettings;

/// The extension's token (RFC 7692 §7).
pub const PERMESSAGE_DEFLATE: &str = "permessage-deflate";

/// The tail a sync flush leaves, removed by the sender and put back by the receiver
/// (RFC 7692 §7.2.1, §7.2.2).
const TAIL: [u8; 4] = [0x00, 0x00, 0xff, 0xff];

/// How much inflated output is produced at a time: the most a message can overshoot
/// its limit by before it is failed (1009) is one byte, and the most memory spent
/// past the limit is one step.
pub const INFLATE_STEP: usize = 8 * 1024;

/// What the two ends agreed on: the parameters of the server's answer (RFC 7692
/// §7.1). `Display` writes the answer's `Sec-WebSocket-Extensions` value.
///
/// ```
/// use websocket_driver::proto::DeflateParams;
///
/// let params = DeflateParams { server_no_context_takeover: true, server_max_window_bits: Some(10), ..Default::default() };
/// assert_eq!(params.to_string(), "permessage-deflate; server_no_context_takeover; server_max_window_bits=10");
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct DeflateParams {
    /// The server resets its compression context after each message.
    pub server_no_context_takeover: bool,
    /// The client resets its compression context after each message.
    pub client_no_context_takeover: bool,
    /// The largest window the server compresses with (8-15); `None`: 15.
    pub server_max_window_bits: Option<u8>,
    /// The largest window the client compresses with (8-15); `None`: 15.
    pub client_max_window_bits: Option<u8>,
}

impl fmt::Display for DeflateParams {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(PERMESSAGE_DEFLATE)?;
        if self.server_no_context_takeover {
            f.write_str("; server_no_context_takeover")?;
        }
        if self.client_no_context_takeover {
            f.write_str("; client_no_context_takeover")?;
        }
        if let Some(bits) = self.server_max_window_bits {
            write!(f, "; server_max_window_bits={bits}")?;
        }
        if let Some(bits) = self.client_max_window_bits {
            write!(f, "; client_max_window_bits={bits}")?;
        }
        Ok(())
    }
}

/// The window zlib compresses with: 9-15 (zlib refuses a raw deflate stream with an
/// 8-bit window; the negotiation never agrees to compress with 8).
pub(crate) fn compress_bits(bits: u8) -> u8 {
    bits.clamp(9, 15)
}

/// The window we inflate with: at least 9, as zlib's deflate turns a requested 8
/// into 9 (the "256-byte window bug"), so a peer that agreed on 8 may still refer
/// 512 bytes back. A larger window than the peer's always inflates its stream.
fn inflate_bits(bits: u8) -> u8 {
    bits.clamp(9, 15)
}

fn new_compressor(level: u8, mem_level: u8, window_bits: u8) -> zlib_rs::Deflate {
    // Every value clamped to what zlib accepts, so `new_with_config` cannot fail.
    zlib_rs::Deflate::new_with_config(zlib_rs::DeflateConfig {
        level: i32::from(level.min(9)),
        method: zlib_rs::Method::Deflated,
        // Negative: a raw deflate stream, no zlib header (RFC 7692 §7.2.1).
        window_bits: -i32::from(compress_bits(window_bits)),
        mem_level: i32::from(mem_level.clamp(1, 9)),
        strategy: zlib_rs::Strategy::Default,
    })
}

/// Make room in `out` for `step` more bytes without letting its capacity pass
/// `bound` (a message's limit plus one inflate step). `BytesMut` grows by doubling,
/// which near the limit would reach twice it; there the buffer grows to the bound
/// exactly instead, in place where the allocator can (`realloc`).
fn reserve_bounded(out: &mut BytesMut, step: usize, bound: usize) {
    let needed = out.len().saturating_add(step);
    if out.capacity() >= needed {
        return;
    }
    if out.capacity().saturating_mul(2) <= bound {
        out.reserve(step);
        return;
    }
    let mut exact: Vec<u8> = std::mem::take(out).into();
    exact.reserve_exact(bound.max(needed) - exact.len());
    // A unique `Bytes` made from a `Vec` turns back into a `BytesMut` without a
    // copy, its capacity kept.
    *out = Bytes::from(exact)
        .try_into_mut()
        .unwrap_or_else(|shared| BytesMut::from(&shared[..]));
}

fn internal(message: &str) -> ExtensionError {
    ExtensionError {
        close_code: CloseCode::INTERNAL_ERROR,
        message: message.to_owned(),
    }
}

/// Compress `input` as one sync-flushed piece appended to `out`, without the
/// trailing `00 00 ff ff` (RFC 7692 §7.2.1: "Compress all the octets of the payload
/// of the message using DEFLATE", "If the resulting data does not end with an empty
/// DEFLATE block with no compression (the "BTYPE" bits are set to 00), append an
/// empty DEFLATE block with no compression to the tail end", "Remove 4 octets (that
/// are 0x00 0x00 0xff 0xff) from the tail end").
fn deflate_into(
    c: &mut zlib_rs::Deflate,
    mut input: &[u8],
    out: &mut BytesMut,
) -> Result<(), ExtensionError> {
    let begin = out.len();
    loop {
        let start = out.len();
        // Enough for incompressible input in one call (stored blocks cost 5 bytes per
        // 64 KiB) plus the flush; the loop handles the rare rest.
        let room = input.len() + (input.len() >> 10) + 64;
        out.resize(start + room, 0);
        let (in_before, out_before) = (c.total_in(), c.total_out());
        let result = c.compress(input, &mut out[start..], DeflateFlush::SyncFlush);
        let consumed = (c.total_in() - in_before) as usize;
        let written = (c.total_out() - out_before) as usize;
        out.truncate(start + written);
        if result.is_err() {
            out.truncate(begin);
            return Err(internal("deflate failed"));
        }
        input = input.get(consumed..).unwrap_or_default();
        // zlib: the flush is complete when it returns with output space left.
        if input.is_empty() && written < room {
            break;
        }
    }
    // A sync flush always ends with the empty stored block `00 00 ff ff`.
    if out.len() < begin + TAIL.len() || out[out.len() - TAIL.len()..] != TAIL {
        out.truncate(begin);
        return Err(internal("deflate output does not end with a sync flush"));
    }
    out.truncate(out.len() - TAIL.len());
    Ok(())
}

/// The permessage-deflate codec of one connection (RFC 7692 §6): an [`Extension`]
/// claiming RSV1, installed with
/// [`Connection::set_extension`](super::Connection::set_extension).
///
/// The compressor and the inflater are allocated on the first message that needs
/// them, not at the handshake; a direction without context takeover frees its state
/// after every message, so an idle connection holds none of it.
///
/// ```
/// use bytes::BytesMut;
/// use websocket_driver::proto::{Deflate, DeflateParams, Extension, OpCode, Role};
/// use websocket_driver::DeflateSettings;
///
/// let params = DeflateParams::default();
/// let mut server = Deflate::new(Role::Server, params, &DeflateSettings::on());
/// let mut out = BytesMut::new();
/// assert!(server.encode(OpCode::Text, b"Hello", &mut out).unwrap());
/// assert_eq!(&out[..], [0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00]); // RFC 7692 §7.2.3.1
/// ```
pub struct Deflate {
    role: Role,
    params: DeflateParams,
    compress_bits: u8,
    inflate_bits: u8,
    /// RFC 7692 §7.1.1: our direction's `*_no_context_takeover` was agreed.
    compress_reset: bool,
    /// The peer's direction's `*_no_context_takeover` was agreed.
    inflate_reset: bool,
    level: u8,
    mem_level: u8,
    threshold: usize,
    compressor: Option<zlib_rs::Deflate>,
    inflater: Option<zlib_rs::Inflate>,
    /// The current message's deflate data ended with a BFINAL block: what follows
    /// in this message is ignored and the inflater starts afresh after it.
    stream_ended: bool,
}

impl fmt::Debug for Deflate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Deflate")
            .field("role", &self.role)
            .field("params", &self.params)
            .field("compress_bits", &self.compress_bits)
            .field("inflate_bits", &self.inflate_bits)
            .field("level", &self.level)
            .field("mem_level", &self.mem_level)
            .field("threshold", &self.threshold)
            .field("compressor_allocated", &self.compressor.is_some())
            .field("inflater_allocated", &self.inflater.is_some())
            .finish()
    }
}

impl Deflate {
    /// The codec for `role` under the agreement `params`, compressing with the
    /// level, memory level and threshold of `config` (its window and context
    /// choices were already folded into `params` by the negotiation).
    pub fn new(role: Role, params: DeflateParams, config: &DeflateSettings) -> Self {
        let server_bits = params.server_max_window_bits.unwrap_or(15);
        let client_bits = params.client_max_window_bits.unwrap_or(15);
        let (ours, theirs, our_reset, their_reset) = match role {
            Role::Server => (
                server_bits,
                client_bits,
                params.server_no_context_takeover,
                params.client_no_context_takeover,
            ),
            Role::Client => (
                client_bits,
                server_bits,
                params.client_no_context_takeover,
                params.server_no_context_takeover,
            ),
        };
        Deflate {
            role,
            params,
            compress_bits: compress_bits(ours),
            inflate_bits: inflate_bits(theirs),
            compress_reset: our_reset,
            inflate_reset: their_reset,
            level: config.level.min(9),
            mem_level: config.mem_level.clamp(1, 9),
            threshold: config.threshold,
            compressor: None,
            inflater: None,
            stream_ended: false,
        }
    }

    /// The agreement this codec follows.
    pub fn params(&self) -> &DeflateParams {
        &self.params
    }

    /// The window bits this end compresses with (9-15).
    pub fn compress_window_bits(&self) -> u8 {
        self.compress_bits
    }

    /// The window bits this end inflates with (9-15).
    pub fn inflate_window_bits(&self) -> u8 {
        self.inflate_bits
    }

    /// Whether the compressor is allocated now (it is freed after each message when
    /// this end has no context takeover).
    pub fn compressor_allocated(&self) -> bool {
        self.compressor.is_some()
    }

    /// Whether the inflater is allocated now (it is freed after each message when
    /// the peer has no context takeover).
    pub fn inflater_allocated(&self) -> bool {
        self.inflater.is_some()
    }

    /// Inflate `input`, appending to `out` in steps of at most [`INFLATE_STEP`]
    /// bytes, and never more than `*budget + 1` bytes in all: past `*budget` the
    /// message is too big and the work stops there.
    fn inflate(
        &mut self,
        mut input: &[u8],
        out: &mut BytesMut,
        budget: &mut usize,
        max: usize,
    ) -> Result<(), Error> {
        let bits = self.inflate_bits;
        let inflater = self
            .inflater
            .get_or_insert_with(|| zlib_rs::Inflate::new(false, bits));
        // The buffer's capacity stays within the limit plus one step.
        let bound = max.saturating_add(INFLATE_STEP);
        loop {
            let step = INFLATE_STEP.min(budget.saturating_add(1));
            let start = out.len();
            reserve_bounded(out, step, bound);
            out.resize(start + step, 0);
            let (in_before, out_before) = (inflater.total_in(), inflater.total_out());
            let result = inflater.decompress(input, &mut out[start..], InflateFlush::NoFlush);
            let consumed = (inflater.total_in() - in_before) as usize;
            let written = (inflater.total_out() - out_before) as usize;
            out.truncate(start + written);
            input = input.get(consumed..).unwrap_or_default();
            if written > *budget {
                // RFC 6455 §7.4.1 1009; the limit counts inflated bytes (conformance:
                // "fails with 1009 without inflating it all").
                return Err(CapacityError::MessageTooLarge {
                    size: (max as u64).saturating_add(1),
                    max,
                }
                .into());
            }
            *budget -= written;
            match result {
                Ok(Status::StreamEnd) => {
                    // A block with BFINAL set ended the deflate data (RFC 7692
                    // §7.2.3.4): whatever follows in this message is not deflate data.
                    self.stream_ended = true;
                    return Ok(());
                }
                Ok(_) => {}
                Err(_) => {
                    // RFC 7692 §7.2.2: the payload must be valid deflate data; an
                    // endpoint that cannot inflate it fails the connection.
                    return Err(ExtensionError {
                        close_code: CloseCode::PROTOCOL_ERROR,
                        message: "invalid deflate data".to_owned(),
                    }
                    .into());
                }
            }
            // Done when the input is used up and the output was not filled (zlib
            // keeps nothing back then); stop too if no progress is possible.
            let filled = written == step;
            if (input.is_empty() && !filled) || (consumed == 0 && written == 0) {
                return Ok(());
            }
        }
    }

    fn end_of_message(&mut self) {
        // RFC 7692 §7.1.1: without context takeover the peer starts each message
        // with an empty window; so do we, and the inflater is freed until needed.
        if self.inflate_reset || self.stream_ended {
            self.inflater = None;
        }
        self.stream_ended = false;
    }
}

impl Extension for Deflate {
    fn name(&self) -> &str {
        PERMESSAGE_DEFLATE
    }

    fn rsv(&self) -> u8 {
        // RFC 7692 §6: "This extension uses the RSV1 bit" as "Per-Message Compressed".
        RSV1
    }

    fn decode(
        &mut self,
        payload: &[u8],
        fin: bool,
        out: &mut BytesMut,
        limit: usize,
    ) -> Result<(), Error> {
        let max = out.len().saturating_add(limit);
        let mut budget = limit;
        let result = (|| {
            if !self.stream_ended {
                self.inflate(payload, out, &mut budget, max)?;
            }
            // RFC 7692 §7.2.2: "Append 4 octets of 0x00 0x00 0xff 0xff to the tail
            // end of the payload of the message", then decompress.
            if fin && !self.stream_ended {
                self.inflate(&TAIL, out, &mut budget, max)?;
            }
            Ok(())
        })();
        if fin || result.is_err() {
            self.end_of_message();
        }
        result
    }

    fn encode(
        &mut self,
        _opcode: OpCode,
        payload: &[u8],
        out: &mut BytesMut,
    ) -> Result<bool, ExtensionError> {
        if payload.len() < self.threshold {
            // RFC 7692 §6.1: a message may be sent uncompressed, RSV1 clear.
            return Ok(false);
        }
        if payload.is_empty() {
            // RFC 7692 §7.2.3.6: an empty message is a single 0x00 octet (an empty
            // stored block once the tail is appended). zlib would write nothing for
            // a second flush without input, so the compressor is left out of it.
            out.extend_from_slice(&[0x00]);
            return Ok(true);
        }
        let start = out.len();
        let (level, mem_level, bits) = (self.level, self.mem_level, self.compress_bits);
        let compressor = self
            .compressor
            .get_or_insert_with(|| new_compressor(level, mem_level, bits));
        let result = deflate_into(compressor, payload, out);
        if self.compress_reset || result.is_err() {
            // RFC 7692 §7.1.1.1/§7.1.1.2: no context takeover: the next message
            // starts from an empty window; the compressor is freed until needed.
            self.compressor = None;
        }
        result?;
        if self.compress_reset && out.len() - start >= payload.len() {
            // Compression did not pay; with no context to keep in step with the peer,
            // the message can go as is (RFC 7692 §6.1).
            out.truncate(start);
            return Ok(false);
        }
        Ok(true)
    }

    fn accepts_prepared(&self, window_bits: u8) -> bool {
        // A message compressed on its own may go to a peer that expects no context
        // from us, if its window is no larger than the agreed one.
        self.compress_reset && window_bits <= self.compress_bits
    }
}

/// A message prepared once to be sent to many connections
/// ([`Connection::send_prepared`](super::Connection::send_prepared)): its payload,
/// its frame as a server sends it, and, when compression pays, its compressed frame.
///
/// The compressed frame is made with a fresh compressor (no context) and the
/// server's window of the configuration it was prepared with, so it is valid on every
/// connection whose agreement has `server_no_context_takeover` and a window at least
/// that large; any other connection compresses the message itself (or, without
/// permessage-deflate, sends the plain frame). A server's frames are not masked,
/// so the bytes are shared as they are, without a copy per connection.
///
/// ```
/// use websocket_driver::proto::{Message, PreparedMessage};
/// use websocket_driver::DeflateSettings;
///
/// let config = DeflateSettings::on().server_no_context_takeover(true);
/// let prepared = PreparedMessage::new(Message::from("Hello"), &config);
/// assert_eq!(&prepared.frame()[..], b"\x81\x05Hello");
/// // Compressed, "Hello" alone would grow (7 bytes): it is sent plain.
/// assert!(prepared.compressed_frame().is_none());
///
/// let prepared = PreparedMessage::new(Message::from("Hello ".repeat(20)), &config);
/// let frame = prepared.compressed_frame().unwrap();
/// assert_eq!(frame[0], 0xc1); // FIN, RSV1, text
/// assert!(frame.len() < 20);
/// ```
#[derive(Debug, Clone)]
pub struct PreparedMessage {
    opcode: OpCode,
    payload: Bytes,
    frame: Bytes,
    compressed: Option<Compressed>,
}

#[derive(Debug, Clone)]
struct Compressed {
    window_bits: u8,
    header_len: usize,
    frame: Bytes,
}

fn server_frame(opcode: OpCode, rsv: u8, payload: &[u8]) -> Bytes {
    let header = FrameHeader {
        fin: true,
        rsv,
        opcode,
        mask: None,
        payload_len: payload.len() as u64,
    };
    let mut frame = BytesMut::with_capacity(header.encoded_len() + payload.len());
    header.encode_into(&mut frame);
    frame.extend_from_slice(payload);
    frame.freeze()
}

impl PreparedMessage {
    /// Prepare `message`, compressed as `config` says when it is enabled, the
    /// message is at least its threshold long, and the compressed form is smaller.
    pub fn new(message: impl Into<Message>, config: &DeflateSettings) -> Self {
        let (opcode, payload) = match message.into() {
            Message::Text(text) => (OpCode::Text, text.into_bytes()),
            Message::Binary(data) => (OpCode::Binary, data),
        };
        let frame = server_frame(opcode, 0, &payload);
        let mut compressed = None;
        if config.enabled && payload.len() >= config.threshold {
            let window_bits = compress_bits(
                config
                    .server_max_window_bits
                    .unwrap_or(crate::settings::DEFAULT_DEFLATE_WINDOW_BITS),
            );
            let mut c = new_compressor(config.level, config.mem_level, window_bits);
            let mut out = BytesMut::new();
            if deflate_into(&mut c, &payload, &mut out).is_ok() && out.len() < payload.len() {
                let frame = server_frame(opcode, RSV1, &out);
                compressed = Some(Compressed {
                    window_bits,
                    header_len: frame.len() - out.len(),
                    frame,
                });
            }
        }
        PreparedMessage {
            opcode,
            payload,
            frame,
            compressed,
        }
    }

    /// The message's opcode (text or binary).
    pub fn opcode(&self) -> OpCode {
        self.opcode
    }

    /// The message's payload, uncompressed.
    pub fn payload(&self) -> &Bytes {
        &self.payload
    }

    /// The whole frame a server sends without compression.
    pub fn frame(&self) -> &Bytes {
        &self.frame
    }

    /// The whole compressed frame (RSV1 set) a server sends, if compression paid.
    pub fn compressed_frame(&self) -> Option<&Bytes> {
        self.compressed.as_ref().map(|c| &c.frame)
    }

    /// The compressed payload and the window it was compressed with, if any.
    pub fn compressed_payload(&self) -> Option<(&[u8], u8)> {
        self.compressed
            .as_ref()
            .map(|c| (&c.frame[c.header_len..], c.window_bits))
    }
}
