//! Sending and closing: frames written into the connection's output.

use bytes::Bytes;

use super::{
    apply_mask, connection::Connection, error::SendError, generate_mask, output::SHARE_MIN,
    CloseCode, CloseEvent, FrameHeader, Message, OpCode, PreparedMessage, ReadyState, Role,
    MAX_CONTROL_PAYLOAD, MAX_HEADER_LEN, MAX_REASON_LEN,
};

impl Connection {
    /// Send a text message (the Common Lisp websocket-driver's `send-text`).
    pub fn send_text(&mut self, text: &str) -> Result<(), SendError> {
        self.send_data(OpCode::Text, text.as_bytes())
    }

    /// Send a binary message (the Common Lisp websocket-driver's `send-binary`).
    pub fn send_binary(&mut self, data: &[u8]) -> Result<(), SendError> {
        self.send_data(OpCode::Binary, data)
    }

    /// Send a message (the Common Lisp websocket-driver's `send`).
    pub fn send(&mut self, message: &Message) -> Result<(), SendError> {
        let (opcode, payload) = match message {
            Message::Text(t) => (OpCode::Text, t.as_bytes()),
            Message::Binary(b) => (OpCode::Binary, b),
        };
        if self.extension.is_none() && self.state.can_send() {
            // The message's own bytes can go out as they are: no copy when large.
            self.write_frame_shared(opcode, payload);
            return Ok(());
        }
        self.send_data(opcode, payload)
    }

    /// Send a Ping with up to 125 bytes of payload (the Common Lisp websocket-driver's
    /// `send-ping`).
    pub fn send_ping(&mut self, payload: &[u8]) -> Result<(), SendError> {
        self.send_control(OpCode::Ping, payload)
    }

    /// Send a Pong with up to 125 bytes of payload (an unsolicited Pong is a
    /// one-way heartbeat, RFC 6455 §5.5.3).
    pub fn send_pong(&mut self, payload: &[u8]) -> Result<(), SendError> {
        self.send_control(OpCode::Pong, payload)
    }

    /// Start the closing handshake (the Common Lisp websocket-driver's
    /// `close-connection`): send a Close
    /// frame with `code` and `reason` and wait for the peer's. Before the connection
    /// opened, it closes at once and the queued frames are dropped.
    ///
    /// `code` must be one that [`CloseCode::is_allowed`] accepts and `reason` at most
    /// 123 bytes.
    pub fn close(&mut self, code: CloseCode, reason: &str) -> Result<(), SendError> {
        if !code.is_allowed() {
            return Err(SendError::InvalidCloseCode(code.0));
        }
        if reason.len() > MAX_REASON_LEN {
            return Err(SendError::ControlPayloadTooLarge(2 + reason.len()));
        }
        match self.state {
            ReadyState::Connecting => {
                self.output.clear();
                self.finish(CloseEvent {
                    code,
                    reason: reason.to_owned(),
                    was_clean: false,
                });
                Ok(())
            }
            ReadyState::Open => {
                self.write_close(code, reason);
                self.state = ReadyState::Closing;
                tracing::debug!(code = code.0, "websocket closing");
                Ok(())
            }
            _ => Err(SendError::Closed),
        }
    }

    /// Fail the connection (RFC 6455 §7.1.7): send a Close frame with `code` if the
    /// connection is open, stop reading, and close. Use it for conditions the I/O
    /// layer detects (1001 on shutdown or idle timeout, 1008 on a policy, 1011 on an
    /// internal error). `code` should be one that [`CloseCode::is_allowed`] accepts;
    /// any other code closes without sending a Close frame. The reason is cut to 123
    /// bytes.
    pub fn fail(&mut self, code: CloseCode, reason: &str) {
        let reason = truncate_reason(reason);
        if self.state == ReadyState::Closed || self.pending_close.is_some() {
            return;
        }
        if self.state == ReadyState::Open && code.is_allowed() {
            self.write_close(code, reason);
        }
        if self.state == ReadyState::Connecting {
            self.output.clear();
        }
        self.failed = true;
        self.finish(CloseEvent {
            code,
            reason: reason.to_owned(),
            was_clean: false,
        });
    }

    /// Send a message prepared once for many connections (a broadcast): the
    /// prepared compressed frame when this connection's agreement allows it
    /// ([`Extension::accepts_prepared`](super::Extension::accepts_prepared):
    /// permessage-deflate without context takeover on our side, a window at least
    /// as large), else the message compressed for this
    /// connection, or the plain frame when this connection does not compress. A
    /// server copies the prepared frame's bytes as they are; a client masks them.
    pub fn send_prepared(&mut self, prepared: &PreparedMessage) -> Result<(), SendError> {
        if !self.state.can_send() {
            return Err(SendError::Closed);
        }
        let opcode = prepared.opcode();
        match (&self.extension, prepared.compressed_payload()) {
            (Some(ext), Some((payload, bits))) if ext.accepts_prepared(bits) => {
                let rsv = ext.rsv();
                match (self.role, prepared.compressed_frame()) {
                    (Role::Server, Some(frame)) => self.output.push_frame(frame),
                    _ => self.write_frame(opcode, rsv, payload),
                }
                Ok(())
            }
            (Some(_), Some(_)) => self.send_data(opcode, prepared.payload()),
            _ => {
                // Uncompressed (RSV1 clear) is valid whatever was negotiated.
                match self.role {
                    Role::Server => self.output.push_frame(prepared.frame()),
                    Role::Client => self.write_frame(opcode, 0, prepared.payload()),
                }
                Ok(())
            }
        }
    }

    /// Queue `frames`: the plain [`PreparedMessage::frame`]s of several messages,
    /// back to back, as [`send_prepared`](Self::send_prepared) queues each when it
    /// sends the plain frame (a server whose agreement does not take a compressed
    /// frame, or messages without one: the caller checks). One copy for them all.
    #[cfg(feature = "actor")]
    pub(crate) fn send_prepared_frames(&mut self, frames: &Bytes) -> Result<(), SendError> {
        if !self.state.can_send() || self.role != Role::Server {
            return Err(SendError::Closed);
        }
        self.output.push_frame(frames);
        Ok(())
    }

    fn send_data(&mut self, opcode: OpCode, payload: &[u8]) -> Result<(), SendError> {
        if !self.state.can_send() {
            return Err(SendError::Closed);
        }
        if let Some(ext) = self.extension.as_mut() {
            // The extension writes its payload into the output after room for the
            // largest header; the header goes in front once the length is known and
            // the payload moves up against it (no buffer of the extension's own).
            let out = self.output.tail_mut();
            let frame_start = out.len();
            let payload_start = frame_start + MAX_HEADER_LEN;
            out.resize(payload_start, 0);
            let encoded = match ext.encode(opcode, payload, out) {
                Ok(encoded) => encoded,
                Err(err) => {
                    out.truncate(frame_start);
                    return Err(err.into());
                }
            };
            if encoded {
                let rsv = ext.rsv();
                let len = out.len() - payload_start;
                let mask = self.role.masks_outgoing().then(generate_mask);
                let header = FrameHeader {
                    fin: true,
                    rsv,
                    opcode,
                    mask,
                    payload_len: len as u64,
                };
                let mut bytes = [0u8; MAX_HEADER_LEN];
                let header_len = header.encode(&mut bytes);
                out.copy_within(payload_start.., frame_start + header_len);
                out.truncate(frame_start + header_len + len);
                out[frame_start..frame_start + header_len].copy_from_slice(&bytes[..header_len]);
                if let Some(mask) = mask {
                    apply_mask(&mut out[frame_start + header_len..], mask, 0);
                }
                return Ok(());
            }
            out.truncate(frame_start);
        }
        self.write_frame(opcode, 0, payload);
        Ok(())
    }

    fn send_control(&mut self, opcode: OpCode, payload: &[u8]) -> Result<(), SendError> {
        if payload.len() > MAX_CONTROL_PAYLOAD {
            return Err(SendError::ControlPayloadTooLarge(payload.len()));
        }
        if !self.state.can_send() {
            return Err(SendError::Closed);
        }
        self.write_frame(opcode, 0, payload);
        Ok(())
    }

    pub(super) fn write_close(&mut self, code: CloseCode, reason: &str) {
        let mut payload = [0u8; MAX_CONTROL_PAYLOAD];
        payload[..2].copy_from_slice(&code.0.to_be_bytes());
        payload[2..2 + reason.len()].copy_from_slice(reason.as_bytes());
        self.write_frame(OpCode::Close, 0, &payload[..2 + reason.len()]);
    }

    /// Append one whole frame to the output; a client masks it with a fresh key
    /// (RFC 6455 §5.3: "The masking key ... MUST" be fresh for each frame).
    pub(super) fn write_frame(&mut self, opcode: OpCode, rsv: u8, payload: &[u8]) {
        let mask = self.role.masks_outgoing().then(generate_mask);
        let header = FrameHeader {
            fin: true,
            rsv,
            opcode,
            mask,
            payload_len: payload.len() as u64,
        };
        let out = self.output.tail_mut();
        out.reserve(header.encoded_len() + payload.len());
        header.encode_into(out);
        let start = out.len();
        out.extend_from_slice(payload);
        if let Some(mask) = mask {
            apply_mask(&mut out[start..], mask, 0);
        }
    }

    /// [`write_frame`](Self::write_frame) for a payload held in `Bytes`: a large one
    /// that needs no mask (RFC 6455 §5.1: a server's frames are not masked) is
    /// queued by reference after its header, not copied.
    fn write_frame_shared(&mut self, opcode: OpCode, payload: &Bytes) {
        if self.role.masks_outgoing() || payload.len() < SHARE_MIN {
            return self.write_frame(opcode, 0, payload);
        }
        let header = FrameHeader {
            fin: true,
            rsv: 0,
            opcode,
            mask: None,
            payload_len: payload.len() as u64,
        };
        header.encode_into(self.output.tail_mut());
        self.output.push_shared(payload.clone());
    }
}

/// Cut a reason to at most 123 bytes, on a character boundary.
fn truncate_reason(reason: &str) -> &str {
    if reason.len() <= MAX_REASON_LEN {
        return reason;
    }
    let mut end = MAX_REASON_LEN;
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    &reason[..end]
}
