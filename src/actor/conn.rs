//! `Conn`: the handle a user's actor (or any thread) sends through.

use std::{
    fmt,
    future::Future,
    pin::Pin,
    task::{Context, Poll},
    time::{Duration, Instant},
};

use bytes::Bytes;
use tokio::sync::oneshot;

use super::shared::{Shared, SharedRef};
use crate::{
    proto::{CloseCode, Message, PreparedMessage, ReadyState, VERSION},
    Error,
};

/// A handle on one WebSocket connection: `Clone`, `Send`, usable from any actor or
/// thread. It arrives in [`Open`](super::Open).
///
/// Sends write the frame into the connection's send buffer at once (no mailbox on
/// the way to the socket) and fail with [`Error::ConnectionClosed`] once the
/// connection is closing, or with [`Error::Backpressure`] while the buffer is at or
/// over `max_send_buffer`. None of them panics.
#[derive(Clone)]
pub struct Conn {
    shared: SharedRef,
}

impl fmt::Debug for Conn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Conn")
            .field("ready_state", &self.ready_state())
            .field("buffered_amount", &self.buffered_amount())
            .finish()
    }
}

impl Conn {
    pub(crate) fn new(shared: SharedRef) -> Self {
        Conn { shared }
    }

    fn with_send<T>(&self, f: impl FnOnce(&mut Shared) -> Result<T, Error>) -> Result<T, Error> {
        let mut s = Shared::lock(&self.shared);
        if !s.codec.core().ready_state().can_send() {
            return Err(Error::ConnectionClosed);
        }
        s.check_backpressure()?;
        let out = f(&mut s)?;
        s.wake_writer();
        Ok(out)
    }

    /// Send a text message (the seed's `send-text`).
    pub fn send_text(&self, text: impl AsRef<str>) -> Result<(), Error> {
        self.with_send(|s| s.core().send_text(text.as_ref()))
    }

    /// Send a binary message (the seed's `send-binary`).
    pub fn send_binary(&self, data: impl AsRef<[u8]>) -> Result<(), Error> {
        self.with_send(|s| s.core().send_binary(data.as_ref()))
    }

    /// Send a message (the seed's `send`). The returned [`Sent`] resolves once the
    /// message's bytes are handed to the transport (the seed's `:callback`); it can
    /// be dropped when that is of no interest.
    pub fn send(&self, message: impl Into<Message>) -> Result<Sent, Error> {
        let message = message.into();
        self.with_send(|s| {
            s.core().send(&message)?;
            let offset = s.taken + s.codec.core().buffered_amount() as u64;
            Ok(Sent {
                shared: self.shared.clone(),
                offset,
            })
        })
    }

    /// Send a message prepared once for many connections (a broadcast; see
    /// [`PreparedMessage`] and [`Server::prepare`](crate::Server::prepare)): the
    /// prepared compressed frame goes out as is when this connection's
    /// permessage-deflate agreement allows it, else the message is compressed for
    /// this connection or sent plain. Resolves like [`send`](Self::send).
    pub fn send_prepared(&self, message: &PreparedMessage) -> Result<Sent, Error> {
        self.with_send(|s| {
            s.core().send_prepared(message)?;
            let offset = s.taken + s.codec.core().buffered_amount() as u64;
            Ok(Sent {
                shared: self.shared.clone(),
                offset,
            })
        })
    }

    /// Send a Ping (the seed's `send-ping`). The returned [`Pong`] resolves with the
    /// round-trip time when the Pong with the same payload arrives (or a later one:
    /// a peer may answer only the latest ping).
    pub fn send_ping(&self, payload: impl AsRef<[u8]>) -> Result<Pong, Error> {
        let payload = Bytes::copy_from_slice(payload.as_ref());
        self.with_send(|s| {
            s.core().send_ping(&payload)?;
            let (tx, rx) = oneshot::channel();
            s.pings.push_back((payload, Instant::now(), tx));
            Ok(Pong { rx })
        })
    }

    /// Start the closing handshake (the seed's `close-connection`). The user's actor
    /// receives [`Close`](super::Close) when it completes or times out. On a client
    /// with a reconnect policy, a connection closed this way (or that was closing
    /// already when this was called) is not reconnected.
    pub fn close(&self, code: CloseCode, reason: &str) -> Result<(), Error> {
        let mut s = Shared::lock(&self.shared);
        #[cfg(feature = "client")]
        {
            // Even when the connection is closing already: the user wants it over.
            s.close_requested = true;
        }
        s.core().close(code, reason)?;
        s.wake_writer();
        s.wake_driver();
        Ok(())
    }

    /// The ready-state (the seed's `ready-state`).
    pub fn ready_state(&self) -> ReadyState {
        Shared::lock(&self.shared).codec.core().ready_state()
    }

    /// The subprotocol agreed in the handshake (the seed's `protocol`).
    pub fn protocol(&self) -> Option<String> {
        Shared::lock(&self.shared)
            .codec
            .core()
            .protocol()
            .map(str::to_owned)
    }

    /// The extension agreed in the handshake, `"permessage-deflate"`, or `""` when
    /// none (the browser's `extensions`, by name).
    pub fn extensions(&self) -> String {
        Shared::lock(&self.shared)
            .codec
            .core()
            .extension()
            .map(|ext| ext.name().to_owned())
            .unwrap_or_default()
    }

    /// `"hybi-13"` (the seed's `version`).
    pub fn version(&self) -> &'static str {
        VERSION
    }

    /// Bytes accepted by `send*` and not yet handed to the transport (the browser's
    /// `bufferedAmount`).
    pub fn buffered_amount(&self) -> usize {
        Shared::lock(&self.shared).codec.core().buffered_amount()
    }
}

/// Resolves when a sent message has been handed to the transport; fails with
/// [`Error::ConnectionClosed`] if the transport ended first.
///
/// Costs nothing unless polled: dropped unpolled, it allocates and registers nothing.
#[must_use = "a Sent does nothing unless awaited; drop it if the completion is of no interest"]
pub struct Sent {
    shared: SharedRef,
    /// The output offset just past the message.
    offset: u64,
}

impl fmt::Debug for Sent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sent")
            .field("offset", &self.offset)
            .finish()
    }
}

impl Future for Sent {
    type Output = Result<(), Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut s = Shared::lock(&self.shared);
        if s.taken >= self.offset {
            return Poll::Ready(Ok(()));
        }
        if s.writer_gone {
            return Poll::Ready(Err(Error::ConnectionClosed));
        }
        // Ordered by offset, so the writer wakes a prefix of the queue.
        let at = s.sent.partition_point(|(o, _)| *o <= self.offset);
        s.sent.insert(at, (self.offset, cx.waker().clone()));
        Poll::Pending
    }
}

/// Resolves with the round-trip time when the Pong for a ping arrives; fails with
/// [`Error::ConnectionClosed`] if the connection ended first.
#[derive(Debug)]
#[must_use = "a Pong does nothing unless awaited"]
pub struct Pong {
    rx: oneshot::Receiver<Duration>,
}

impl Future for Pong {
    type Output = Result<Duration, Error>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.rx)
            .poll(cx)
            .map(|r| r.map_err(|_| Error::ConnectionClosed))
    }
}
