//! The connection's driver: reads, feeds the core, delivers the typed messages to
//! the user's actor and runs the guard, inside that actor's own context.

use std::{
    marker::PhantomData,
    panic::{catch_unwind, AssertUnwindSafe},
    pin::Pin,
    task::{Context as TaskContext, Poll, Waker},
};

use actix::{dev::MessageResponse, ActorContext, ActorFuture, Context, Handler};
use bytes::{Bytes, BytesMut};
use futures_core::Stream;

use super::{
    guard::{Guard, Verdict},
    registry::Registry,
    serve::Control,
    state::LocalRef,
    Conn, Error, Open, WebSocketActor,
};
use crate::{
    proto::{CloseCode, CloseEvent, Event, ReadyState, Role},
    settings::ConnectionSettings,
};

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
#[cfg_attr(not(feature = "web"), allow(dead_code))]
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
pub(crate) struct Driver<A: WebSocketActor, S> {
    local: LocalRef,
    conn: Conn,
    input: S,
    input_done: bool,
    read_buf: BytesMut,
    guard: Guard,
    max_events: usize,
    control: Control<A>,
    error_delivered: bool,
    close_delivered: bool,
    /// The actor panicked: it gets no more events.
    poisoned: bool,
    /// A client's `Close`, held until the server closed the transport (or the close
    /// timed out, or the connection failed): the connection is closed only then
    /// (RFC 6455 §7.1.4), and an actor that stops on `Close` must not cut the
    /// transport while the client waits for the server to close it (§7.1.1).
    parked_close: Option<CloseEvent>,
    registry: Registry,
    /// The waker last registered with the inbox, to skip re-registering it.
    registered: Option<Waker>,
    /// The driver yielded to the writer once since the last read (see `poll`).
    yielded_to_writer: bool,
    span: tracing::Span,
    _actor: PhantomData<fn(A)>,
}

impl<A: WebSocketActor, S: Input> Driver<A, S> {
    pub fn new(
        local: LocalRef,
        input: S,
        control: Control<A>,
        settings: &ConnectionSettings,
        registry: Registry,
        span: tracing::Span,
    ) -> Self {
        let conn = Conn::new(local.borrow().remote.clone());
        registry.add(conn.remote());
        Driver {
            local,
            conn,
            input,
            input_done: false,
            read_buf: BytesMut::new(),
            guard: Guard::new(settings),
            max_events: settings.max_events_per_poll.max(1),
            control,
            error_delivered: false,
            close_delivered: false,
            poisoned: false,
            parked_close: None,
            registry,
            registered: None,
            yielded_to_writer: false,
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
                self.yielded_to_writer = false;
                true
            }
            Poll::Ready(_) => {
                self.input_done = true;
                let mut l = self.local.borrow_mut();
                l.core.receive_buf(&mut self.read_buf);
                l.core.receive_eof();
                l.sync();
                true
            }
            Poll::Pending => false,
        }
    }

    /// Hand `event` to the actor; a panic there fails the connection with 1011 and
    /// the actor gets nothing more (it is stopped).
    fn dispatch(&mut self, act: &mut A, ctx: &mut Context<A>, event: Event) {
        if self.poisoned {
            return;
        }
        let conn = &self.conn;
        let control = &self.control;
        let outcome = catch_unwind(AssertUnwindSafe(|| match event {
            Event::Open => handle(act, ctx, Open { conn: conn.clone() }),
            Event::Message(message) => handle(act, ctx, message),
            // Errors and the Close go through `deliver_error`/`deliver_close`.
            Event::Error(error) => handle(act, ctx, Error::from(error)),
            Event::Close(close) => handle(act, ctx, close),
            Event::Ping(payload) => control.ping(act, ctx, payload),
            Event::Pong(payload) => control.pong(act, ctx, payload),
        }));
        if outcome.is_err() {
            tracing::error!(id = %self.conn.id(), "websocket handler panicked; closing with 1011");
            self.poisoned = true;
            self.local.borrow_mut().fail_local(Error::HandlerPanicked);
            ctx.stop();
        }
    }

    fn deliver_error(&mut self, act: &mut A, ctx: &mut Context<A>, error: Error) {
        if self.error_delivered || self.poisoned {
            return;
        }
        self.error_delivered = true;
        let outcome = catch_unwind(AssertUnwindSafe(|| handle(act, ctx, error)));
        if outcome.is_err() {
            self.poisoned = true;
            ctx.stop();
        }
    }

    fn deliver_close(&mut self, act: &mut A, ctx: &mut Context<A>, close: CloseEvent) {
        self.close_delivered = true;
        crate::metrics::closed(close.code);
        let pending = self.local.borrow_mut().pending_error.take();
        if let Some(error) = pending {
            self.deliver_error(act, ctx, error);
        }
        if self.poisoned {
            return;
        }
        self.dispatch(act, ctx, Event::Close(close));
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

/// What to do with the next event of the core.
enum Next {
    /// Hand it to the actor.
    Deliver(Event),
    /// The connection's `Close`.
    Close(CloseEvent),
    /// Nothing (now).
    None,
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
        if !this
            .registered
            .as_ref()
            .is_some_and(|w| w.will_wake(cx.waker()))
        {
            this.conn.remote().register_owner(cx.waker());
            this.registered = Some(cx.waker().clone());
        }
        let mut budget = this.max_events;
        loop {
            // Decode and deliver what is buffered, holding the state only while
            // decoding: the handler sends through it.
            while budget > 0 && !this.close_delivered && this.parked_close.is_none() {
                let next = {
                    let mut l = this.local.borrow_mut();
                    l.apply_commands();
                    if l.read_paused {
                        Next::None
                    } else {
                        if l.core.peek_event().is_none() && !this.read_buf.is_empty() {
                            l.core.receive_buf(&mut this.read_buf);
                        }
                        match l.core.poll_event() {
                            None => Next::None,
                            Some(event) => {
                                // The failure an Error applies, or the answer to a
                                // Close, queues a Close frame.
                                l.sync();
                                l.wake_writer();
                                match event {
                                    Event::Pong(payload) => {
                                        if payload.is_empty() {
                                            if let Some(sent) = l.keepalive_sent.take() {
                                                crate::metrics::ping_rtt(sent.elapsed());
                                            }
                                        }
                                        l.remote.pong_received(&payload);
                                        Next::Deliver(Event::Pong(payload))
                                    }
                                    Event::Ping(payload) => {
                                        if !l.core.config().auto_pong && !this.control.takes_pings()
                                        {
                                            // Nobody else answers it (RFC 6455 §5.5.2:
                                            // an endpoint "MUST send a Pong frame in
                                            // response").
                                            let _ = l.core.send_pong(&payload);
                                            l.sync();
                                        }
                                        Next::Deliver(Event::Ping(payload))
                                    }
                                    Event::Close(close)
                                        if l.core.role() == Role::Client
                                            && !(this.input_done
                                                || l.writer_gone
                                                || l.force_close) =>
                                    {
                                        this.parked_close = Some(close);
                                        continue;
                                    }
                                    Event::Close(close) => Next::Close(close),
                                    Event::Error(error) => {
                                        l.pending_error = None;
                                        if this.error_delivered {
                                            continue;
                                        }
                                        Next::Deliver(Event::Error(error))
                                    }
                                    Event::Message(message) => {
                                        l.stats.message_received(message.len());
                                        Next::Deliver(Event::Message(message))
                                    }
                                    other => Next::Deliver(other),
                                }
                            }
                        }
                    }
                };
                match next {
                    Next::None => break,
                    Next::Close(close) => this.deliver_close(act, ctx, close),
                    Next::Deliver(Event::Error(error)) => {
                        this.deliver_error(act, ctx, Error::from(error));
                    }
                    Next::Deliver(event) => this.dispatch(act, ctx, event),
                }
                budget -= 1;
            }
            let mut l = this.local.borrow_mut();
            if (this.close_delivered || this.parked_close.is_some()) && !this.read_buf.is_empty() {
                // Nothing the peer sends after the Close (or the failure) is
                // processed (RFC 6455 §5.5.1, §7.1.7: an endpoint "MUST NOT continue
                // to attempt to process data"): the core drops it, and what keeps
                // arriving until the transport ends is dropped as it is read, not
                // buffered (a peer flooding through the close timeout would
                // otherwise grow the read buffer without bound). Each such read
                // counts against the budget, so that a flood cannot keep this
                // loop from yielding (the writer sends our Close meanwhile).
                l.core.receive_buf(&mut this.read_buf);
                budget = budget.saturating_sub(1);
            }
            if !l.driver.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                l.driver = Some(cx.waker().clone());
            }
            if l.writer_gone && l.core.ready_state() != ReadyState::Closed {
                // The transport is gone: nothing more can be said to the peer.
                l.core.receive_eof();
                l.sync();
                continue;
            }
            let transport_done = this.input_done || l.writer_gone || l.force_close;
            if this.parked_close.is_some() && transport_done {
                drop(l);
                if let Some(close) = this.parked_close.take() {
                    this.deliver_close(act, ctx, close);
                }
                continue;
            }
            if this.close_delivered && transport_done {
                l.driver_finished();
                drop(l);
                this.registry.remove(this.conn.id());
                return Poll::Ready(());
            }
            let verdict = this.guard.poll(&mut l, cx);
            if verdict == Verdict::CloseTimedOut {
                // RFC 6455 §7.1.1: without the peer's Close (or its closing of the
                // transport) in time, close the transport ourselves.
                l.force_close = true;
                // The standalone writer resets the socket (SO_LINGER 0).
                l.reset = true;
                if let Some(socket) = l.socket.take() {
                    // On the route, actix-http would keep a socket whose peer does
                    // not read: free it now.
                    socket.abort();
                }
                l.core.receive_eof();
                // Nothing more reaches a peer that let the close time out: what
                // waits for it is dropped, not held until the transport goes.
                l.core.discard_output();
                l.sync();
            }
            this.guard.watch(&l.core, cx);
            if l.core.buffered_amount() > 0 || l.force_close {
                l.wake_writer();
            }
            let events_waiting = l.core.peek_event().is_some() && !l.read_paused;
            let paused = l.read_paused;
            let frame_remaining = l.core.frame_remaining();
            let shares = l.core.output_shares_payload();
            drop(l);
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
            if paused {
                return Poll::Pending;
            }
            if shares && this.read_buf.is_empty() && !this.yielded_to_writer {
                // A large payload waits to be written by reference, perhaps a
                // slice of the read buffer (an echo): let the writer take it
                // before the next read, so that the read reuses that buffer
                // (warm in the cache) instead of allocating another for every
                // large message. Once per read: a writer that cannot write does
                // not keep us from reading.
                this.yielded_to_writer = true;
                cx.waker().wake_by_ref();
                return Poll::Pending;
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

impl<A: WebSocketActor, S> Drop for Driver<A, S> {
    fn drop(&mut self) {
        // The actor stopped (or its arbiter went away) with the connection still up:
        // the endpoint is going away (RFC 6455 §7.4.1, 1001).
        let Ok(mut l) = self.local.try_borrow_mut() else {
            return;
        };
        if l.core.ready_state() == ReadyState::Open {
            let _ = l.core.close(CloseCode::GOING_AWAY, "");
        }
        l.force_close = true;
        if let Some(socket) = l.socket.filter(|_| !l.driver_done) {
            // Nothing runs the close timeout any more, and the writer may not be
            // polled again (actix-http waits for a peer that does not read): the
            // socket is reset after it unless actix-http let it go meanwhile.
            socket.abort_later();
        }
        l.sync();
        l.wake_writer();
        l.driver_finished();
        drop(l);
        self.registry.remove(self.conn.id());
    }
}

/// Run the driver of the connection `local`, read from `input`, in the context of
/// an actor (created for it, or running already: a client reconnecting runs one
/// connection after another in the same actor).
pub(crate) fn attach<A, I>(
    ctx: &mut Context<A>,
    local: LocalRef,
    input: I,
    control: Control<A>,
    settings: &ConnectionSettings,
    registry: Registry,
    span: tracing::Span,
) where
    A: WebSocketActor,
    I: Input + 'static,
{
    use actix::AsyncContext;

    ctx.spawn(Driver::<A, I>::new(
        local, input, control, settings, registry, span,
    ));
}
