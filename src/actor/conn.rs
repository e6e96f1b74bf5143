//! `Conn`: the handle a user's actor (or any thread) sends through, and the futures
//! its sends return.

use std::{
    fmt,
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
    time::Duration,
};

use bytes::Bytes;
use tokio::sync::oneshot;

use super::{
    id::ConnId,
    on_thread::{OnThread, ThreadKey},
    shared::{QueuedSend, Request, Shared},
    slab::{owned_of, thread_number, with_owned},
    SendError,
};
use crate::proto::{CloseCode, Message, PreparedMessage, ReadyState, MAX_REASON_LEN, VERSION};

/// A handle on one WebSocket connection: `Clone`, `Send`, usable from any actor or
/// thread, and comparable ([`id`](Self::id)). It arrives in [`Open`](super::Open).
///
/// On the connection's own thread (its actor, a hub's fan-out) a send writes the
/// frame into the connection's send buffer at once, with no lock and no mailbox on
/// the way to the socket; from another thread it is queued for that thread, which
/// is woken. Every send returns a [`Sent`], which tells at once whether the send was
/// refused ([`Sent::error`]) and can be awaited for the moment its bytes reach the
/// transport. A refused send (the connection closing, the buffer at
/// `max_send_buffer`) never panics and never blocks.
#[derive(Clone)]
pub struct Conn {
    shared: Arc<Shared>,
}

impl fmt::Debug for Conn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Conn")
            .field("id", &self.shared.id())
            .field("ready_state", &self.ready_state())
            .field("buffered_amount", &self.buffered_amount())
            .finish()
    }
}

impl PartialEq for Conn {
    fn eq(&self, other: &Self) -> bool {
        self.shared.id() == other.shared.id()
    }
}

impl Eq for Conn {}

impl std::hash::Hash for Conn {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.shared.id().hash(state);
    }
}

impl Conn {
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        Conn { shared }
    }

    pub(crate) fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    /// The connection's id.
    pub fn id(&self) -> ConnId {
        self.shared.id()
    }

    /// The thread the connection lives on: sends made there take no lock and no
    /// mailbox (a per-thread fan-out, such as a [`Hub`](crate::Hub)'s, keys its
    /// parts by it).
    pub fn thread(&self) -> ThreadKey {
        ThreadKey::new(self.shared.owner())
    }

    /// The connection's state on its own thread, without a lock: `None` when
    /// called on another thread, or once the connection is gone. See
    /// [`OnThread`].
    pub fn on_thread(&self) -> Option<OnThread> {
        owned_of(&self.shared).map(OnThread::new)
    }

    /// Run `f` on the connection's thread: at once when called there, else queued
    /// for that thread like a send from elsewhere (in order with them). Refused
    /// with [`SendError::Closed`] once the connection is gone (`f` is dropped).
    pub fn run_on_thread(&self, f: impl FnOnce() + Send + 'static) -> Result<(), SendError> {
        if self.shared.owner() == thread_number() {
            f();
            return Ok(());
        }
        if self.shared.writer_gone() {
            return Err(SendError::Closed);
        }
        self.shared.push(Request::Run(Box::new(f)), 0)
    }

    /// Resolves with how the connection ended: the [`Close`](super::Close) its actor
    /// was handed (or, when the actor stopped before the connection closed, a
    /// `Close` with 1001, going away, not clean). Usable from any thread or task,
    /// any number of times.
    ///
    /// ```no_run
    /// # async fn f(conn: websocket_driver::Conn) {
    /// conn.close(websocket_driver::CloseCode::NORMAL, "done");
    /// let close = conn.closed().await;
    /// println!("closed with {} ({})", close.code.0, close.reason);
    /// # }
    /// ```
    pub fn closed(&self) -> Closed {
        Closed {
            shared: self.shared.clone(),
        }
    }

    /// Whether the connection's driver still runs (on the connection's thread):
    /// then `waker` is woken when it finishes.
    #[cfg(feature = "client")]
    pub(crate) fn wait_finished(&self, waker: &std::task::Waker) -> bool {
        owned_of(&self.shared).is_some_and(|owned| owned.borrow_mut().wait_finished(waker))
    }

    /// How the connection ended, if it did.
    #[cfg(feature = "client")]
    pub(crate) fn close_event(&self) -> Option<super::Close> {
        self.shared.close_event()
    }

    /// Whether the user (or a shutdown) asked for the close.
    #[cfg(feature = "client")]
    pub(crate) fn closed_by_user(&self) -> bool {
        self.shared.closed_by_user()
    }

    fn local_sent(&self, result: Result<u64, SendError>) -> Sent {
        match result {
            Ok(offset) => Sent(SentState::Local {
                shared: self.shared.clone(),
                offset,
            }),
            Err(err) => Sent::failed(err),
        }
    }

    fn remote_send(&self, request: impl FnOnce(Arc<QueuedSend>) -> Request, bytes: usize) -> Sent {
        if !self.shared.ready_state().can_send() {
            return Sent::failed(SendError::Closed);
        }
        let slot = Arc::new(QueuedSend::default());
        match self.shared.push(request(slot.clone()), bytes) {
            Ok(()) => Sent(SentState::Remote {
                shared: self.shared.clone(),
                slot,
            }),
            Err(err) => Sent::failed(err),
        }
    }

    /// Send a message, by reference: a large payload held in
    /// `Bytes` (an echoed or broadcast message) is not copied on its way out.
    pub fn send(&self, message: impl Into<Message>) -> Sent {
        let message = message.into();
        let local = with_owned(&self.shared, |l| l.send(|core| core.send(&message)));
        match local {
            Some(result) => self.local_sent(result),
            None => {
                let len = message.len().max(1);
                self.remote_send(|done| Request::Send(message, done), len)
            }
        }
    }

    /// Send a text message.
    #[doc(alias = "send-text")]
    pub fn send_text(&self, text: impl AsRef<str>) -> Sent {
        let text = text.as_ref();
        match with_owned(&self.shared, |l| l.send(|core| core.send_text(text))) {
            Some(result) => self.local_sent(result),
            None => self.send(Message::from(text)),
        }
    }

    /// Send a binary message.
    #[doc(alias = "send-binary")]
    pub fn send_binary(&self, data: impl AsRef<[u8]>) -> Sent {
        let data = data.as_ref();
        match with_owned(&self.shared, |l| l.send(|core| core.send_binary(data))) {
            Some(result) => self.local_sent(result),
            None => self.send(Message::Binary(Bytes::copy_from_slice(data))),
        }
    }

    /// Send a message prepared once for many connections (a broadcast; see
    /// [`PreparedMessage`]): the prepared compressed frame goes out as is when this
    /// connection's permessage-deflate agreement allows it, else the message is
    /// compressed for this connection or sent plain.
    pub fn send_prepared(&self, message: &PreparedMessage) -> Sent {
        let local = with_owned(&self.shared, |l| l.send(|core| core.send_prepared(message)));
        match local {
            Some(result) => self.local_sent(result),
            None => {
                let message = message.clone();
                let len = message.payload().len().max(1);
                self.remote_send(|done| Request::Prepared(message, done), len)
            }
        }
    }

    /// Send a Ping. The returned [`RoundTrip`] resolves
    /// with the round-trip time when the Pong with the same payload arrives (or a
    /// later one: a peer may answer only the latest ping).
    #[doc(alias = "send-ping")]
    pub fn send_ping(&self, payload: impl AsRef<[u8]>) -> RoundTrip {
        let payload = Bytes::copy_from_slice(payload.as_ref());
        let (tx, rx) = oneshot::channel();
        // Registered first: from another thread, the Pong may come back before the
        // push returns.
        self.shared.ping_sent(payload.clone(), tx);
        let sent = match with_owned(&self.shared, |l| l.send(|core| core.send_ping(&payload))) {
            Some(result) => self.local_sent(result),
            None => {
                let p = payload.clone();
                self.remote_send(|done| Request::Ping(p, done), 0)
            }
        };
        match sent.error() {
            Some(err) => RoundTrip(Err(Some(err.clone()))),
            None => RoundTrip(Ok(rx)),
        }
    }

    /// Send a Pong (RFC 6455 §5.5.3): the answer to a Ping when `auto_pong` is off,
    /// or an unsolicited one-way heartbeat.
    pub fn send_pong(&self, payload: impl AsRef<[u8]>) -> Sent {
        let payload = payload.as_ref();
        match with_owned(&self.shared, |l| l.send(|core| core.send_pong(payload))) {
            Some(result) => self.local_sent(result),
            None => {
                let p = Bytes::copy_from_slice(payload);
                self.remote_send(|done| Request::Pong(p, done), 0)
            }
        }
    }

    /// Start the closing handshake with `code` and
    /// `reason` (at most 123 bytes; `code` one that
    /// [`CloseCode::is_allowed`] accepts). The actor receives
    /// [`Close`](super::Close) when it completes or times out. The `Sent` resolves
    /// when the Close frame was written. A client with a reconnect policy does not
    /// reconnect after it.
    #[doc(alias = "close-connection")]
    pub fn close(&self, code: CloseCode, reason: &str) -> Sent {
        match with_owned(&self.shared, |l| l.close(code, reason)) {
            Some(result) => self.local_sent(result),
            None => {
                if !code.is_allowed() {
                    return Sent::failed(SendError::InvalidCloseCode(code.0));
                }
                if reason.len() > MAX_REASON_LEN {
                    return Sent::failed(SendError::ControlPayloadTooLarge(2 + reason.len()));
                }
                let reason = reason.to_owned();
                let sent = self.remote_send(|done| Request::Close(code, reason, done), 0);
                if sent.is_ok() {
                    self.shared.mark_closing();
                }
                sent
            }
        }
    }

    /// Stop reading from the peer until [`resume_reading`](Self::resume_reading):
    /// no more messages are delivered, and the kernel's TCP window pushes back on
    /// the peer. Timers keep running (a paused connection still pings and times
    /// out). Only on the connection's own thread; elsewhere it does nothing.
    pub fn pause_reading(&self) {
        with_owned(&self.shared, |l| l.pause_reading());
    }

    /// Read again after [`pause_reading`](Self::pause_reading).
    pub fn resume_reading(&self) {
        with_owned(&self.shared, |l| l.resume_reading());
    }

    /// The ready-state.
    #[doc(alias = "ready-state")]
    pub fn ready_state(&self) -> ReadyState {
        self.shared.ready_state()
    }

    /// The subprotocol agreed in the handshake.
    pub fn protocol(&self) -> Option<&str> {
        self.shared.protocol()
    }

    /// The extension agreed in the handshake, `"permessage-deflate"`, or `""` when
    /// none (the browser's `extensions`, by name).
    pub fn extensions(&self) -> &str {
        self.shared.extension().unwrap_or("")
    }

    /// Whether pings are answered by the library
    /// ([`ProtocolSettings::auto_pong`](crate::ProtocolSettings::auto_pong)); when
    /// not, the application answers with [`send_pong`](Self::send_pong).
    pub fn auto_pong(&self) -> bool {
        self.shared.auto_pong()
    }

    /// `"hybi-13"`.
    pub fn version(&self) -> &'static str {
        VERSION
    }

    /// Bytes accepted by the sends and not yet handed to the transport (the
    /// browser's `bufferedAmount`).
    pub fn buffered_amount(&self) -> usize {
        self.shared.buffered()
    }
}

/// What a send returns: whether it was accepted, and a future that resolves once
/// its bytes were handed to the transport.
///
/// Nothing needs to be done with it: dropped, it costs nothing. [`error`](Self::error)
/// says at once why a send was refused (a remote send, queued for the connection's
/// thread, can still fail later: awaiting says so). Awaiting resolves with
/// `Err(SendError::Closed)` if the transport ended first.
///
/// ```no_run
/// # async fn f(conn: websocket_driver::Conn) -> Result<(), websocket_driver::SendError> {
/// conn.send_text("fire and forget");
/// conn.send_text("checked").into_result()?;
/// conn.send_text("flushed").await?;
/// # Ok(()) }
/// ```
#[doc(alias = "callback")]
pub struct Sent(SentState);

enum SentState {
    Failed(Option<SendError>),
    Local {
        shared: Arc<Shared>,
        offset: u64,
    },
    Remote {
        shared: Arc<Shared>,
        slot: Arc<QueuedSend>,
    },
}

impl fmt::Debug for Sent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            SentState::Failed(err) => f.debug_tuple("Sent::Failed").field(err).finish(),
            SentState::Local { offset, .. } => {
                f.debug_struct("Sent").field("offset", offset).finish()
            }
            SentState::Remote { .. } => f.write_str("Sent::Queued"),
        }
    }
}

impl Sent {
    fn failed(err: SendError) -> Sent {
        Sent(SentState::Failed(Some(err)))
    }

    /// Why the send was refused, if it was (known at once on the connection's
    /// thread; for a send from another thread, once that thread took it).
    pub fn error(&self) -> Option<&SendError> {
        match &self.0 {
            SentState::Failed(err) => err.as_ref(),
            _ => None,
        }
    }

    /// Whether the send was accepted (not [refused](Self::error) so far).
    pub fn is_ok(&self) -> bool {
        self.error().is_none()
    }

    /// `Err` with the reason when the send was refused, else the `Sent` itself (to
    /// `?` a refusal without waiting for the write).
    pub fn into_result(self) -> Result<Sent, SendError> {
        match self.0 {
            SentState::Failed(Some(err)) => Err(err),
            state => Ok(Sent(state)),
        }
    }
}

fn poll_written(shared: &Shared, offset: u64, cx: &mut Context<'_>) -> Poll<Result<(), SendError>> {
    if shared.written() >= offset {
        return Poll::Ready(Ok(()));
    }
    if shared.writer_gone() {
        return Poll::Ready(Err(SendError::Closed));
    }
    if shared.wait_written(offset, cx.waker()) {
        return Poll::Pending;
    }
    if shared.written() >= offset {
        Poll::Ready(Ok(()))
    } else {
        Poll::Ready(Err(SendError::Closed))
    }
}

impl Future for Sent {
    type Output = Result<(), SendError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match &mut self.0 {
            SentState::Failed(err) => Poll::Ready(Err(err.take().unwrap_or(SendError::Closed))),
            SentState::Local { shared, offset } => poll_written(shared, *offset, cx),
            SentState::Remote { shared, slot } => match slot.result(cx.waker()) {
                Some(Ok(offset)) => poll_written(shared, offset, cx),
                Some(Err(err)) => Poll::Ready(Err(err)),
                None if shared.writer_gone() => Poll::Ready(Err(SendError::Closed)),
                None => Poll::Pending,
            },
        }
    }
}

/// What [`Conn::closed`] returns: resolves with the connection's
/// [`Close`](super::Close).
#[derive(Debug, Clone)]
pub struct Closed {
    shared: Arc<Shared>,
}

impl Future for Closed {
    type Output = super::Close;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.shared.closed(cx.waker()) {
            Some(close) => Poll::Ready(close),
            None => Poll::Pending,
        }
    }
}

/// What [`Conn::send_ping`] returns: resolves with the round-trip time when the
/// Pong arrives; fails if the ping was refused or the connection ended first.
#[derive(Debug)]
pub struct RoundTrip(Result<oneshot::Receiver<Duration>, Option<SendError>>);

impl RoundTrip {
    /// Why the ping was refused, if it was.
    pub fn error(&self) -> Option<&SendError> {
        self.0.as_ref().err().and_then(Option::as_ref)
    }
}

impl Future for RoundTrip {
    type Output = Result<Duration, SendError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match &mut self.0 {
            Ok(rx) => Pin::new(rx)
                .poll(cx)
                .map(|r| r.map_err(|_| SendError::Closed)),
            Err(err) => Poll::Ready(Err(err.take().unwrap_or(SendError::Closed))),
        }
    }
}
