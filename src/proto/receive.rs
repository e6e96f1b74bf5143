//! Receiving: frames decoded in place, messages assembled, control frames answered.

use bytes::{Buf, Bytes, BytesMut};

use super::{
    apply_mask,
    connection::{Connection, FrameKind, InFrame},
    error::{CapacityError, Error, ProtocolError},
    CloseCode, CloseEvent, CloseFrame, Event, FrameHeader, Message, OpCode, ReadyState, Role,
    Utf8Bytes, MAX_CONTROL_PAYLOAD,
};

impl Connection {
    pub(super) fn run(&mut self, buf: &mut BytesMut) {
        if let Err(err) = self.process(buf) {
            self.fail_with(err);
        }
        if self.discarding {
            buf.clear();
        }
    }

    fn process(&mut self, buf: &mut BytesMut) -> Result<(), Error> {
        while !self.discarding {
            if self.frame.is_none() {
                let Some((header, header_len)) = FrameHeader::decode(buf)? else {
                    return Ok(());
                };
                let kind = self.check_header(&header)?;
                buf.advance(header_len);
                // `check_header` bounded the length by `max_frame_size`, a `usize`.
                let len = header.payload_len as usize;
                self.frame = Some(InFrame {
                    header,
                    len,
                    processed: 0,
                    kind,
                });
            }
            let Some(frame) = self.frame.as_mut() else {
                return Ok(());
            };
            let avail = buf.len().min(frame.len);
            match frame.kind {
                FrameKind::Discard => {
                    // Skipped bytes leave the buffer at once: `buf` starts past them.
                    let skip = buf.len().min(frame.len - frame.processed);
                    buf.advance(skip);
                    frame.processed += skip;
                    if frame.processed < frame.len {
                        return Ok(());
                    }
                    self.frame = None;
                }
                FrameKind::Control => {
                    if avail < frame.len {
                        return Ok(());
                    }
                    let header = frame.header;
                    self.frame = None;
                    let mut payload = buf.split_to(header.payload_len as usize);
                    if let Some(mask) = header.mask {
                        apply_mask(&mut payload, mask, 0);
                    }
                    self.handle_control(header.opcode, payload.freeze())?;
                }
                FrameKind::Data { utf8 } => {
                    if avail > frame.processed {
                        let new = &mut buf[frame.processed..avail];
                        if let Some(mask) = frame.header.mask {
                            apply_mask(new, mask, frame.processed);
                        }
                        if utf8 {
                            // RFC 6455 §8.1, checked on partial payloads as they arrive.
                            self.msg.utf8.feed(new)?;
                        }
                        frame.processed = avail;
                    }
                    if frame.processed < frame.len {
                        return Ok(());
                    }
                    let (header, len) = (frame.header, frame.len);
                    self.frame = None;
                    let payload = buf.split_to(len).freeze();
                    self.handle_data(header.fin, payload)?;
                }
            }
        }
        Ok(())
    }

    /// Check a header before any of its payload is read, and start or continue the
    /// message it belongs to.
    fn check_header(&mut self, h: &FrameHeader) -> Result<FrameKind, Error> {
        // RFC 6455 §5.1: "a server MUST close the connection upon receiving a frame
        // that is not masked"; "A client MUST close a connection if it detects a
        // masked frame".
        match self.role {
            Role::Server if h.mask.is_none() => {
                return Err(ProtocolError::UnmaskedFrameFromClient.into())
            }
            Role::Client if h.mask.is_some() => {
                return Err(ProtocolError::MaskedFrameFromServer.into())
            }
            _ => {}
        }
        // RFC 6455 §5.2: "If an unknown opcode is received, the receiving endpoint
        // MUST _Fail the WebSocket Connection_."
        if let OpCode::Reserved(op) = h.opcode {
            return Err(ProtocolError::ReservedOpcode(op).into());
        }
        if h.opcode.is_control() {
            // RFC 6455 §5.2: RSV bits "MUST be 0 unless an extension is negotiated
            // that defines meanings"; no extension we know uses them on control frames
            // (RFC 7692 §6: RSV1 only on the first frame of a data message).
            if h.rsv != 0 {
                return Err(ProtocolError::ReservedBitsSet(h.rsv).into());
            }
            // RFC 6455 §5.5: "All control frames MUST have a payload length of 125
            // bytes or less and MUST NOT be fragmented."
            if !h.fin {
                return Err(ProtocolError::FragmentedControlFrame.into());
            }
            if h.payload_len > MAX_CONTROL_PAYLOAD as u64 {
                return Err(ProtocolError::ControlFrameTooLarge(h.payload_len).into());
            }
            return Ok(FrameKind::Control);
        }
        let allowed_rsv = match (h.opcode, &self.extension) {
            (OpCode::Text | OpCode::Binary, Some(ext)) => ext.rsv(),
            _ => 0,
        };
        if h.rsv & !allowed_rsv != 0 {
            return Err(ProtocolError::ReservedBitsSet(h.rsv).into());
        }
        if h.payload_len > self.config.max_frame_size as u64 {
            return Err(CapacityError::FrameTooLarge {
                size: h.payload_len,
                max: self.config.max_frame_size,
            }
            .into());
        }
        if self.state == ReadyState::Closing {
            // RFC 6455 §5.5.1: after sending a Close frame we wait for the peer's
            // Close; data that comes first is dropped, unbuffered.
            return Ok(FrameKind::Discard);
        }
        // RFC 6455 §5.4: fragments are a first frame, then continuations, then FIN.
        match (h.opcode, self.msg.opcode) {
            (OpCode::Continuation, None) => {
                return Err(ProtocolError::UnexpectedContinuation.into())
            }
            (OpCode::Text | OpCode::Binary, Some(_)) => {
                return Err(ProtocolError::ExpectedContinuation.into())
            }
            (OpCode::Text | OpCode::Binary, None) => {
                self.msg.opcode = Some(h.opcode);
                self.msg.compressed = h.rsv != 0;
            }
            _ => {}
        }
        self.msg.fragments += 1;
        if self.msg.fragments > self.config.max_fragments {
            return Err(CapacityError::TooManyFragments {
                max: self.config.max_fragments,
            }
            .into());
        }
        // The message limit, before the payload is buffered; compressed messages are
        // held to it on their inflated size by the extension.
        if !self.msg.compressed {
            let size = self.msg.size + h.payload_len;
            if size > self.config.max_message_size as u64 {
                return Err(CapacityError::MessageTooLarge {
                    size,
                    max: self.config.max_message_size,
                }
                .into());
            }
            self.msg.size = size;
        }
        let utf8 = self.msg.opcode == Some(OpCode::Text) && !self.msg.compressed;
        Ok(FrameKind::Data { utf8 })
    }

    fn handle_data(&mut self, fin: bool, payload: Bytes) -> Result<(), Error> {
        let text = self.msg.opcode == Some(OpCode::Text);
        if self.msg.compressed {
            let buf = self.msg.buf.get_or_insert_with(Box::default);
            let start = buf.len();
            let limit = self.config.max_message_size.saturating_sub(start);
            if let Some(ext) = self.extension.as_mut() {
                ext.decode(&payload, fin, buf, limit)?;
            }
            if text {
                self.msg.utf8.feed(&buf[start..])?;
            }
        } else if fin && self.msg.fragments == 1 {
            // A single-frame message: its payload is the message, not copied.
            if text {
                self.msg.utf8.finish()?;
            }
            self.msg.reset();
            self.events.push_back(Event::Message(if text {
                Message::Text(Utf8Bytes::from_validated(payload))
            } else {
                Message::Binary(payload)
            }));
            return Ok(());
        } else {
            self.msg
                .buf
                .get_or_insert_with(Box::default)
                .extend_from_slice(&payload);
        }
        if fin {
            if text {
                self.msg.utf8.finish()?;
            }
            let data = self
                .msg
                .buf
                .as_mut()
                .map_or_else(Bytes::new, |buf| buf.split().freeze());
            self.msg.reset();
            self.events.push_back(Event::Message(if text {
                Message::Text(Utf8Bytes::from_validated(data))
            } else {
                Message::Binary(data)
            }));
        }
        Ok(())
    }

    fn handle_control(&mut self, opcode: OpCode, payload: Bytes) -> Result<(), Error> {
        match opcode {
            OpCode::Ping => {
                // RFC 6455 §5.5.2: "Upon receipt of a Ping frame, an endpoint MUST send
                // a Pong frame in response ... with identical Application data", in
                // order with the frames already queued.
                if self.state == ReadyState::Open && self.config.auto_pong {
                    self.write_frame(OpCode::Pong, 0, &payload);
                }
                self.events.push_back(Event::Ping(payload));
            }
            OpCode::Pong => self.events.push_back(Event::Pong(payload)),
            OpCode::Close => {
                let frame = CloseFrame::decode(&payload)?;
                // The reply (RFC 6455 §5.5.1) is written when the Close event is
                // taken, after any reply to the messages before it.
                self.pending_close = Some(frame.as_ref().map_or(CloseCode::NORMAL, |f| f.code));
                let (code, reason) = match frame {
                    Some(f) => (f.code, f.reason),
                    None => (CloseCode::NO_STATUS, String::new()),
                };
                tracing::debug!(code = code.0, "websocket close received");
                // RFC 6455 §5.5.1: after the Close frame nothing more is read.
                self.discarding = true;
                self.frame = None;
                self.msg.reset();
                self.read_buf = None;
                self.events.push_back(Event::Close(CloseEvent {
                    code,
                    reason,
                    was_clean: true,
                }));
            }
            _ => {}
        }
        Ok(())
    }

    /// Fail the connection because of `err`: stop reading (RFC 6455 §7.1.7: "MUST NOT
    /// continue to attempt to process data ... after being instructed to _Fail the
    /// WebSocket Connection_") and queue [`Event::Error`]; [`poll_event`](Self::poll_event)
    /// applies the failure, with `err.close_code()` (1011 when it has none), when it
    /// takes that event. The core calls it for what the peer sent; the I/O layer for
    /// what it detects (an idle timeout, back-pressure). Does nothing once closed or
    /// already failing.
    pub(super) fn fail_with(&mut self, err: Error) {
        if self.state == ReadyState::Closed
            || self.pending_failure.is_some()
            || self.pending_close.is_some()
        {
            return;
        }
        let code = err.close_code();
        tracing::debug!(error = %err, code = code.0, "failing websocket connection");
        self.pending_failure = Some(Box::new((code, err.to_string())));
        self.discarding = true;
        self.frame = None;
        self.msg.reset();
        self.read_buf = None;
        self.events.push_back(Event::Error(err));
    }

    /// Enter `Closed`, report it once, and drop whatever input follows.
    pub(super) fn finish(&mut self, event: CloseEvent) {
        tracing::debug!(
            code = event.code.0,
            clean = event.was_clean,
            "websocket closed"
        );
        self.state = ReadyState::Closed;
        self.discarding = true;
        self.frame = None;
        self.msg.reset();
        self.read_buf = None;
        self.events.push_back(Event::Close(event));
    }
}
