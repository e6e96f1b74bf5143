//! The connection's driver: reads, feeds the codec, delivers the typed messages to
//! the user's actor and runs the guard, inside that actor's own context.

use std::{
    cell::RefCell,
    marker::PhantomData,
    pin::Pin,
    rc::Rc,
    task::{Context as TaskContext, Poll},
};

use actix::{dev::MessageResponse, ActorFuture, Context, Handler};
use bytes::{Bytes, BytesMut};
use futures_core::Stream;
use tokio_util::codec::Decoder;

use super::{
    guard::{Guard, Verdict},
    registry,
    shared::{Shared, SharedRef},
    Conn, ConnectionSettings, Open, WebSocketActor,
};
use crate::proto::{CloseCode, Event, ReadyState, Role};

/// Read buffer capacity kept while nothing is pending; more is returned.
const MAX_IDLE_READ_BUF: usize = 128 * 1024;

/// At most this much read buffer is reserved ahead of the bytes that arrived, for a
/// frame whose header announced more: a peer has to send data, not just declare
/// it, to make the buffer grow further.
const MAX_READ_AHEAD: usize = 256 * 1024;

/// Where a connection's bytes come from: the driver reads straight into its own
/// buffer, so a transport that can (a socket) costs no copy and no allocation per
/// read.
pub(crate) trait Input: Unpin {
    /// Append what is available to `buf`. `Ready(Ok(0))` is the end of the input;
    /// an error ends it too.
    fn poll_read_into(
        &mut self,
        cx: &mut TaskContext<'_>,
        buf: &mut BytesMut,
    ) -> Poll<std::io::Result<usize>>;
}

/// A stream of byte chunks as [`Input`] (the actix-web request payload): each chunk
/// is copied into the driver's buffer, which reuses its allocation once the
/// messages split off it earlier are dropped.
#[cfg_attr(not(feature = "web"), allow(dead_code))] // The route's; the client reads sockets.
pub(crate) struct StreamInput<S>(pub S);

impl<S, E> Input for StreamInput<S>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
{
    fn poll_read_into(
        &mut self,
        cx: &mut TaskContext<'_>,
        buf: &mut BytesMut,
    ) -> Poll<std::io::Result<usize>> {
        loop {
            return match Pin::new(&mut self.0).poll_next(cx) {
                Poll::Ready(Some(Ok(chunk))) if chunk.is_empty() => continue,
                Poll::Ready(Some(Ok(chunk))) => {
                    buf.extend_from_slice(&chunk);
                    Poll::Ready(Ok(chunk.len()))
                }
                Poll::Ready(Some(Err(_))) => Poll::Ready(Err(std::io::ErrorKind::Other.into())),
                Poll::Ready(None) => Poll::Ready(Ok(0)),
                Poll::Pending => Poll::Pending,
            };
        }
    }
}

/// Drives one connection from inside the user's actor context (spawned there with
/// `ctx.spawn`): a received message is handed to the actor's handler directly, with
/// no mailbox in between, and the actor handles it before the next one is read; so
/// reading stops while the actor is busy, and the input held stays bounded.
pub(crate) struct Driver<A, S> {
    shared: SharedRef,
    input: S,
    input_done: bool,
    read_buf: BytesMut,
    guard: Guard,
    max_events: usize,
    close_delivered: bool,
    /// A client's `Close`, held until the server closed the transport (or the close
    /// timed out, or the connection failed): the connection is closed only then
    /// (RFC 6455 §7.1.4), and an actor that stops on `Close` must not cut the
    /// transport while the client waits for the server to close it (§7.1.1).
    parked_close: Option<crate::proto::CloseEvent>,
    registry_id: u64,
    span: tracing::Span,
    _actor: PhantomData<fn(A)>,
}

impl<A, S> Driver<A, S>
where
    A: WebSocketActor,
    S: Input,
{
    pub fn new(
        shared: SharedRef,
        input: S,
        settings: &ConnectionSettings,
        span: tracing::Span,
    ) -> Self {
        let registry_id = registry::register(&shared);
        Driver {
            shared,
            input,
            input_done: false,
            read_buf: BytesMut::new(),
            guard: Guard::new(settings),
            max_events: settings.max_events_per_poll.max(1),
            close_delivered: false,
            parked_close: None,
            registry_id,
            span,
            _actor: PhantomData,
        }
    }

    /// Read what the transport has; true when something was read or the input ended.
    fn read(&mut self, cx: &mut TaskContext<'_>) -> bool {
        if self.input_done {
            return false;
        }
        match self.input.poll_read_into(cx, &mut self.read_buf) {
            Poll::Ready(Ok(n)) if n > 0 => {
                self.guard.activity();
                true
            }
            Poll::Ready(_) => {
                self.input_done = true;
                let mut s = Shared::lock(&self.shared);
                s.core().receive_buf(&mut self.read_buf);
                s.core().receive_eof();
                true
            }
            Poll::Pending => false,
        }
    }
}

/// Hand one event to the actor's handler (`Close` is handled by the caller, which
/// may hold it back).
fn dispatch<A: WebSocketActor>(
    shared: &SharedRef,
    act: &mut A,
    ctx: &mut Context<A>,
    event: Event,
) {
    match event {
        Event::Open => {
            let conn = Conn::new(shared.clone());
            handle(act, ctx, Open { conn });
        }
        Event::Message(message) => handle(act, ctx, message),
        Event::Error(error) => handle(act, ctx, error),
        Event::Close(close) => handle(act, ctx, close),
        Event::Ping(_) | Event::Pong(_) => {}
    }
}

/// Call the actor's handler for `msg` the way its mailbox would.
fn handle<A, M>(act: &mut A, ctx: &mut Context<A>, msg: M)
where
    A: Handler<M> + actix::Actor<Context = Context<A>>,
    M: actix::Message<Result = ()>,
{
    let response = <A as Handler<M>>::handle(act, msg, ctx);
    response.handle(ctx, None);
}

impl<A, S> ActorFuture<A> for Driver<A, S>
where
    A: WebSocketActor,
    S: Input,
{
    type Output = ();

    fn poll(
        self: Pin<&mut Self>,
        act: &mut A,
        ctx: &mut Context<A>,
        cx: &mut TaskContext<'_>,
    ) -> Poll<()> {
        let this = self.get_mut();
        // Entering a span costs even when no subscriber wants it (the `log`
        // bridge): only when it is enabled.
        let span = (!this.span.is_disabled()).then(|| this.span.clone());
        let _entered = span.as_ref().map(|span| span.enter());
        let mut budget = this.max_events;
        loop {
            // Decode and deliver what is buffered, holding the lock only while
            // decoding: the handler sends through the same lock.
            let mut s = Shared::lock(&this.shared);
            while budget > 0 && !this.close_delivered && this.parked_close.is_none() {
                let Ok(Some(event)) = s.codec.decode(&mut this.read_buf) else {
                    break;
                };
                if let Event::Pong(payload) = &event {
                    s.pong_received(payload);
                }
                // The failure an Error applies, or the answer to a Close, queues a
                // Close frame.
                s.wake_writer();
                if let Event::Close(close) = event {
                    s.release_waiters();
                    if s.codec.core().role() == Role::Client
                        && !(this.input_done || s.writer_gone || s.force_close)
                    {
                        this.parked_close = Some(close);
                        continue;
                    }
                    this.close_delivered = true;
                    drop(s);
                    handle(act, ctx, close);
                } else {
                    drop(s);
                    dispatch(&this.shared, act, ctx, event);
                }
                budget -= 1;
                s = Shared::lock(&this.shared);
            }
            if !s.driver.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                s.driver = Some(cx.waker().clone());
            }
            if s.writer_gone && s.core().ready_state() != ReadyState::Closed {
                // The transport is gone: nothing more can be said to the peer.
                s.core().receive_eof();
                continue;
            }
            if this.parked_close.is_some() && (this.input_done || s.writer_gone || s.force_close) {
                drop(s);
                if let Some(close) = this.parked_close.take() {
                    this.close_delivered = true;
                    handle(act, ctx, close);
                }
                continue;
            }
            if this.close_delivered && (this.input_done || s.writer_gone || s.force_close) {
                drop(s);
                registry::unregister(this.registry_id);
                return Poll::Ready(());
            }
            let verdict = this.guard.poll(s.core(), cx);
            if verdict == Verdict::CloseTimedOut {
                // RFC 6455 §7.1.1: without the peer's Close (or its closing of the
                // transport) in time, close the transport ourselves.
                s.force_close = true;
                s.core().receive_eof();
                // Nothing more reaches a peer that let the close time out: what
                // waits for it is dropped, not held until the transport goes.
                s.core().discard_output();
            }
            this.guard.watch(s.codec.core(), cx);
            if s.codec.core().buffered_amount() > 0 || s.force_close {
                s.wake_writer();
            }
            let events_waiting = s.codec.core().peek_event().is_some();
            let frame_remaining = s.codec.core().frame_remaining();
            drop(s);
            if verdict == Verdict::Acted && this.read_buf.is_empty() {
                // The guard pinged a quiet connection (or gave up on it): keep no
                // read buffer while nothing comes.
                this.read_buf = BytesMut::new();
            }
            if budget == 0 {
                // Yield to the rest of the actor's work; come back at once.
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            if events_waiting || verdict != Verdict::Quiet {
                continue;
            }
            if frame_remaining > this.read_buf.capacity() - this.read_buf.len() {
                // Make room for the rest of the frame at once (bounded), rather than
                // growing and copying the buffer as its pieces arrive.
                this.read_buf.reserve(frame_remaining.min(MAX_READ_AHEAD));
            }
            if !this.read(cx) {
                if this.read_buf.is_empty() && this.read_buf.capacity() > MAX_IDLE_READ_BUF {
                    // Nothing pending after a large message: give its buffer back.
                    this.read_buf = BytesMut::new();
                }
                return Poll::Pending;
            }
        }
    }
}

impl<A, S> Drop for Driver<A, S> {
    fn drop(&mut self) {
        // The actor stopped (or its arbiter went away) with the connection still up:
        // the endpoint is going away (RFC 6455 §7.4.1, 1001).
        let mut s = Shared::lock(&self.shared);
        if s.codec.core().ready_state() == ReadyState::Open {
            let _ = s.core().close(CloseCode::GOING_AWAY, "");
        }
        s.force_close = true;
        s.release_waiters();
        s.wake_writer();
        #[cfg(feature = "client")]
        {
            s.driver_done = true;
            if let Some(waker) = s.on_driver_done.take() {
                waker.wake();
            }
        }
        drop(s);
        registry::unregister(self.registry_id);
    }
}

/// Create `actor` with the driver of a connection over `core` and `input` in its
/// context; returns its address and the writer (the stream of bytes for the peer).
///
/// The actor does not get a task of its own: its context is polled by the writer, so
/// the actor, the connection's driver and the transport (the actix-web dispatcher
/// that polls the response body) share one task. A received message reaches the
/// actor's handler and the reply reaches the socket buffer without a task switch.
/// The actor lives as long as the connection: when the transport is done, the writer
/// is dropped and the actor stopped (its `stopping` and `stopped` still run).
#[cfg_attr(not(feature = "web"), allow(dead_code))]
pub(crate) fn spawn<A, S, E>(
    actor: A,
    core: crate::proto::Connection,
    input: S,
    settings: &ConnectionSettings,
    span: tracing::Span,
) -> (actix::Addr<A>, super::Writer)
where
    A: WebSocketActor,
    S: Stream<Item = Result<Bytes, E>> + Unpin + 'static,
    E: 'static,
{
    spawn_input(actor, core, StreamInput(input), settings, span)
}

/// [`spawn`] with any [`Input`].
#[cfg_attr(not(feature = "web"), allow(dead_code))]
pub(crate) fn spawn_input<A, I>(
    actor: A,
    core: crate::proto::Connection,
    input: I,
    settings: &ConnectionSettings,
    span: tracing::Span,
) -> (actix::Addr<A>, super::Writer)
where
    A: WebSocketActor,
    I: Input + 'static,
{
    let mut ctx = Context::<A>::new();
    let mut writer = attach_input(&mut ctx, core, input, settings, span);
    let addr = actix::AsyncContext::address(&ctx);
    writer.actor = Some(Rc::new(RefCell::new(Some(Box::pin(
        ctx.into_future(actor),
    )))));
    (addr, writer)
}

/// Run the driver of a connection over `core` and `input` in the context of a
/// running actor (a client reconnecting runs one connection after another in the
/// same actor); returns the writer (the stream of bytes for the peer).
pub(crate) fn attach_input<A, I>(
    ctx: &mut Context<A>,
    core: crate::proto::Connection,
    input: I,
    settings: &ConnectionSettings,
    span: tracing::Span,
) -> super::Writer
where
    A: WebSocketActor,
    I: Input + 'static,
{
    use actix::AsyncContext;

    let shared = Shared::new(core, settings);
    ctx.spawn(Driver::<A, I>::new(shared.clone(), input, settings, span));
    let actor_wake = super::shared::ActorWake::new();
    super::Writer {
        shared,
        actor: None,
        actor_waker: std::task::Waker::from(actor_wake.clone()),
        actor_wake,
    }
}
