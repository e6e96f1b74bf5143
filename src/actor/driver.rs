//! The connection's driver: reads, feeds the core, hands the typed messages to the
//! user's actor and runs the timers, inside that actor's own context.
//!
//! Its life has three phases ([`Phase`]): open (events are handed to the actor as
//! they are decoded), a client's Close parked until the server closed the
//! transport, and closed (the `Close` handed over; input is discarded until the
//! transport is done). [`Driver::poll`] runs a few small steps in a loop:
//! [`hand_events`](Driver::hand_events), [`after_close`](Driver::after_close),
//! [`poll_timers`](Driver::poll_timers) and [`poll_read`](Driver::poll_read),
//! each saying whether to go on, yield or wait.

use std::{
    marker::PhantomData,
    panic::{catch_unwind, AssertUnwindSafe},
    pin::Pin,
    task::{Context as TaskContext, Poll},
};

use actix::{ActorContext, ActorFuture, Context};
use bytes::BytesMut;

use super::{
    owned::End,
    rate::{Limiter, Verdict as RateVerdict},
    registry::Registry,
    serve::{handle, Control},
    slab::{self, OwnedRef},
    timers::{Timers, Verdict},
    Conn, Error, Open, WebSocketActor,
};
use crate::{
    proto::{CloseEvent, Event},
    settings::ConnectionSettings,
};

/// Read buffer capacity kept while nothing is pending; more is returned.
const MAX_IDLE_READ_BUF: usize = 128 * 1024;

/// For a frame whose header announced more than the read buffer has room for, the
/// buffer is grown at once by the rest of the frame, but by no more than this or the
/// bytes it holds already, whichever is more: a 64 KiB frame gets its room in one
/// step, and a peer has to send data, not just declare it, to make the buffer grow
/// further (it holds at most twice what arrived, plus this).
const READ_AHEAD_STEP: usize = 64 * 1024 + 64;

thread_local! {
    /// A read buffer no connection of this thread holds. A connection whose reads
    /// drained everything gives its buffer here, and the next connection of the
    /// thread to read takes it: an idle connection keeps no read buffer, whether it
    /// ever carried traffic or not, and a busy thread allocates none per message.
    static SPARE: std::cell::Cell<Option<BytesMut>> = const { std::cell::Cell::new(None) };
}

/// The most a drained read buffer may hold to become the thread's spare (one
/// 64 KiB frame with its header): larger ones, grown for large frames, stay with
/// their connection until it goes quiet.
#[cfg(feature = "web")]
pub(crate) const SPARE_MAX: usize = 64 * 1024 + 64;

/// Give an empty `buf` (its connection's reads found nothing left) the thread's
/// spare read buffer, if there is one.
#[inline]
pub(crate) fn take_spare(buf: &mut BytesMut) {
    if let Some(spare) = SPARE.take() {
        *buf = spare;
    }
}

/// Make drained `buf` the thread's spare read buffer (keeping the larger of it and
/// the spare there), for whichever connection of the thread reads next: `buf` is
/// left without an allocation.
#[inline]
pub(crate) fn give_spare(buf: &mut BytesMut) {
    let drained = std::mem::take(buf);
    let kept = SPARE.take();
    SPARE.set(Some(match kept {
        Some(k) if k.capacity() >= drained.capacity() => k,
        _ => drained,
    }));
}

/// A cache line: a large copy into a read buffer lands at a chosen offset from one
/// (see [`land_at`]).
pub(crate) const LINE: usize = 64;

/// Start empty `buf`'s next bytes at `phase` past a 64-byte line, skipping fewer
/// than `LINE` bytes of its room, when `room` is left after them. Large copies, the
/// kernel's into a read buffer and `memcpy`'s, use `rep movsb`, which some CPUs (AMD
/// Zen 3 among them) run about 20 times slower when the destination is 1 to 31
/// bytes past the source modulo 4 KiB: a copy landing at its source's offset from a
/// line (or on a line, for a source that starts on a page, as a loopback or NIC
/// payload often does) is never in that band.
#[inline]
pub(crate) fn land_at(buf: &mut BytesMut, phase: usize, room: usize) {
    use bytes::{Buf, BufMut};
    debug_assert!(buf.is_empty());
    let k = phase.wrapping_sub(buf.as_ptr() as usize) % LINE;
    if k != 0 && buf.capacity() >= room + k {
        buf.put_bytes(0, k);
        buf.advance(k);
    }
}

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

    /// Whether the driver yields once to the connection's task, after a payload was
    /// queued by reference, before it reads again (so that the task writes it first
    /// and the read reuses the buffer it shares). A transport that polls the
    /// connection's output right after the driver anyway (actix-http polls the
    /// response body until it is pending) says no: there the yield's wake-up would
    /// only make it poll the connection once more, with a read that finds nothing.
    const YIELDS_TO_OUTPUT: bool = true;
}

/// Where the driver is in the connection's life.
enum Phase {
    /// Events are handed to the actor as they are decoded.
    Open,
    /// A client's `Close`, held until the server closed the transport (or the
    /// close timed out, or the connection failed): the connection is closed only
    /// then (RFC 6455 §7.1.4), and an actor that stops on `Close` must not cut the
    /// transport while the client waits for the server to close it (§7.1.1).
    Parked(Box<CloseEvent>),
    /// The `Close` was handed over: what still arrives is discarded until the
    /// transport is done.
    Closed,
}

/// What few connections have: an inbound rate limit, a span a subscriber wants.
struct Extras {
    limiter: Option<Box<Limiter>>,
    span: Option<tracing::Span>,
}

impl Extras {
    fn new(limiter: Option<Box<Limiter>>, span: Option<tracing::Span>) -> Option<Box<Extras>> {
        (limiter.is_some() || span.is_some()).then(|| Box::new(Extras { limiter, span }))
    }
}

/// What a step of the poll loop says.
enum Step {
    /// Go on with the next step.
    Next,
    /// Start the loop again.
    Again,
    /// Yield to the rest of the actor's work and come back at once.
    Yield,
    /// Wait to be woken.
    Wait,
    /// The driver is done.
    Done,
}

/// Drives one connection from inside the user's actor context (spawned there with
/// `ctx.spawn`): a received message is handed to the actor's handler directly, with
/// no mailbox in between, and the actor handles it before the next one is read; so
/// reading stops while the actor is busy, and the input held stays bounded.
pub(crate) struct Driver<A: WebSocketActor, S> {
    owned: OwnedRef,
    input: S,
    input_done: bool,
    read_buf: BytesMut,
    timers: Timers,
    max_events: u32,
    control: Control<A>,
    phase: Phase,
    error_handed: bool,
    /// The actor panicked: it gets no more events.
    poisoned: bool,
    registry: Registry,
    /// The driver yielded to the task once since the last read (see `poll_read`).
    yielded_to_task: bool,
    /// The inbound rate limit and the span, when either is there (8 bytes on
    /// every idle connection that has neither).
    extras: Option<Box<Extras>>,
    _actor: PhantomData<fn(A)>,
}

impl<A: WebSocketActor, S: Input> Driver<A, S> {
    pub fn new(
        owned: OwnedRef,
        input: S,
        control: Control<A>,
        settings: &ConnectionSettings,
        registry: Registry,
        span: tracing::Span,
    ) -> Self {
        registry.add(owned.borrow().shared());
        Driver {
            owned,
            input,
            input_done: false,
            read_buf: BytesMut::new(),
            timers: Timers::new(settings),
            max_events: u32::try_from(settings.max_events_per_poll.max(1)).unwrap_or(u32::MAX),
            control,
            phase: Phase::Open,
            error_handed: false,
            poisoned: false,
            registry,
            yielded_to_task: false,
            extras: Extras::new(
                Limiter::new(settings.rate_limit.as_ref()),
                (!span.is_disabled()).then_some(span),
            ),
            _actor: PhantomData,
        }
    }

    /// Decode what is buffered and hand it to the actor, holding the state only
    /// while decoding (the handler sends through it), until the budget is spent,
    /// nothing is left, or the `Close` came.
    #[inline]
    fn hand_events(
        &mut self,
        act: &mut A,
        ctx: &mut Context<A>,
        cx: &mut TaskContext<'_>,
        budget: &mut usize,
    ) {
        while *budget > 0 && matches!(self.phase, Phase::Open) {
            let event = {
                let mut owned = self.owned.borrow_mut();
                let Some(event) = owned.next_event(&mut self.read_buf, self.control.takes_pings())
                else {
                    return;
                };
                match event {
                    Event::Close(close) if owned.parks_close(self.input_done) => {
                        self.phase = Phase::Parked(Box::new(close));
                        return;
                    }
                    // At most one Error: a second one is not handed over.
                    Event::Error(_) if self.error_handed => continue,
                    event => event,
                }
            };
            let mut pause = false;
            if let Some(limiter) = self.extras.as_mut().and_then(|e| e.limiter.as_mut()) {
                match charge(limiter, &event, cx) {
                    RateVerdict::Within => {}
                    RateVerdict::Close => {
                        // Nothing from this message on is handed over: the core is
                        // closed, and what follows it in the read is dropped below.
                        self.owned.borrow_mut().fail(Error::RateLimited);
                        continue;
                    }
                    RateVerdict::Drop => continue,
                    RateVerdict::Pause(_) => pause = limiter.is_paused(),
                }
            }
            match event {
                Event::Close(close) => self.hand_close(act, ctx, close),
                Event::Error(error) => self.hand_error(act, ctx, Error::from(error)),
                event => self.dispatch(act, ctx, event),
            }
            *budget -= 1;
            if pause {
                // Handed over; nothing more is read or decoded until the buckets
                // are back (`poll_resume` lifts it).
                self.owned.borrow_mut().set_throttled(true);
                return;
            }
        }
    }

    /// Lift the rate limit's pause once it is over.
    #[inline]
    fn poll_resume(&mut self, cx: &mut TaskContext<'_>) {
        if let Some(limiter) = self.extras.as_mut().and_then(|e| e.limiter.as_mut()) {
            if limiter.is_paused() && limiter.poll_resume(cx) {
                self.owned.borrow_mut().set_throttled(false);
            }
        }
    }

    /// After the `Close` (or while it is parked): discard what arrives, hand the
    /// parked `Close` over once the transport is done, and finish once both the
    /// `Close` was handed over and the transport is done.
    fn after_close(&mut self, act: &mut A, ctx: &mut Context<A>, budget: &mut usize) -> Step {
        let mut owned = self.owned.borrow_mut();
        if !matches!(self.phase, Phase::Open) && !self.read_buf.is_empty() {
            // Nothing the peer sends after the Close (or the failure) is
            // processed, and what keeps arriving until the transport ends is
            // dropped as it is read, not buffered (a peer flooding through the
            // close timeout would otherwise grow the read buffer without bound).
            // Each such read counts against the budget, so that a flood cannot keep
            // the loop from yielding (the task sends our Close meanwhile).
            owned.discard_input(&mut self.read_buf);
            *budget = budget.saturating_sub(1);
        }
        if owned.task_lost() {
            return Step::Again;
        }
        if !owned.transport_done(self.input_done) {
            return Step::Next;
        }
        match std::mem::replace(&mut self.phase, Phase::Closed) {
            Phase::Open => {
                self.phase = Phase::Open;
                Step::Next
            }
            Phase::Parked(close) => {
                drop(owned);
                self.hand_close(act, ctx, *close);
                Step::Again
            }
            Phase::Closed => {
                owned.finish();
                let shared = owned.shared().clone();
                drop(owned);
                slab::remove(&shared);
                self.registry.remove(&shared);
                Step::Done
            }
        }
    }

    /// Run the timers; when the closing handshake timed out, end the transport
    /// (RFC 6455 §7.1.1: without the peer's Close, or its closing of the
    /// transport, in time, close the transport ourselves).
    #[inline]
    fn poll_timers(&mut self, budget: usize) -> Step {
        let mut owned = self.owned.borrow_mut();
        let verdict = self.timers.poll(&mut owned);
        if verdict == Verdict::CloseTimedOut {
            owned.end_transport(End::Reset);
        }
        self.timers.watch(&owned);
        owned.kick_task();
        let view = owned.read_view();
        drop(owned);
        if verdict == Verdict::Acted && self.read_buf.is_empty() {
            // The timers pinged a quiet connection (or gave up on it): keep no read
            // buffer while nothing comes.
            self.read_buf = BytesMut::new();
        }
        if budget == 0 {
            return Step::Yield;
        }
        if view.events_waiting || verdict != Verdict::Quiet {
            return Step::Again;
        }
        if view.paused {
            return Step::Wait;
        }
        if S::YIELDS_TO_OUTPUT
            && view.shares_output
            && self.read_buf.is_empty()
            && !self.yielded_to_task
        {
            // A large payload waits to be written by reference, perhaps a slice of
            // the read buffer (an echo): let the task take it before the next
            // read, so that the read reuses that buffer (warm in the cache)
            // instead of allocating another for every large message. Once per
            // read: a task that cannot write does not keep us from reading.
            self.yielded_to_task = true;
            return Step::Yield;
        }
        if view.frame_remaining > self.read_buf.capacity() - self.read_buf.len() {
            // Make room for the rest of the frame at once (bounded), rather than
            // growing and copying the buffer as its pieces arrive.
            let step = READ_AHEAD_STEP.max(self.read_buf.len());
            self.read_buf.reserve(view.frame_remaining.min(step));
        }
        Step::Next
    }

    /// Read what the transport has: `Again` when something was read or the input
    /// ended, else `Wait`.
    #[inline]
    fn poll_read(&mut self, cx: &mut TaskContext<'_>) -> Step {
        if self.input_done {
            return Step::Wait;
        }
        match self.input.poll_read_into(cx, &mut self.read_buf) {
            Poll::Ready(Ok(n)) if n > 0 => {
                self.timers.activity();
                self.yielded_to_task = false;
                Step::Again
            }
            Poll::Ready(_) => {
                self.input_done = true;
                self.owned.borrow_mut().input_ended(&mut self.read_buf);
                Step::Again
            }
            Poll::Pending => {
                if self.read_buf.is_empty() && self.read_buf.capacity() > MAX_IDLE_READ_BUF {
                    // Nothing pending after a large message: give its buffer back.
                    self.read_buf = BytesMut::new();
                }
                Step::Wait
            }
        }
    }

    /// Hand `event` to the actor; a panic there fails the connection with 1011 and
    /// the actor gets nothing more (it is stopped).
    fn dispatch(&mut self, act: &mut A, ctx: &mut Context<A>, event: Event) {
        if self.poisoned {
            return;
        }
        let open =
            matches!(event, Event::Open).then(|| Conn::new(self.owned.borrow().shared().clone()));
        let control = &self.control;
        let outcome = catch_unwind(AssertUnwindSafe(|| match event {
            Event::Open => {
                if let Some(conn) = open {
                    handle(act, ctx, Open { conn });
                }
            }
            Event::Message(message) => handle(act, ctx, message),
            // Errors and the Close go through `hand_error`/`hand_close`.
            Event::Error(error) => handle(act, ctx, Error::from(error)),
            Event::Close(close) => handle(act, ctx, close),
            Event::Ping(payload) => control.ping(act, ctx, payload),
            Event::Pong(payload) => control.pong(act, ctx, payload),
        }));
        if outcome.is_err() {
            let id = self.owned.borrow().id();
            tracing::error!(%id, "websocket handler panicked; closing with 1011");
            self.poisoned = true;
            self.owned.borrow_mut().fail(Error::HandlerPanicked);
            ctx.stop();
        }
    }

    fn hand_error(&mut self, act: &mut A, ctx: &mut Context<A>, error: Error) {
        if self.error_handed || self.poisoned {
            return;
        }
        self.error_handed = true;
        let outcome = catch_unwind(AssertUnwindSafe(|| handle(act, ctx, error)));
        if outcome.is_err() {
            self.poisoned = true;
            ctx.stop();
        }
    }

    fn hand_close(&mut self, act: &mut A, ctx: &mut Context<A>, close: CloseEvent) {
        self.phase = Phase::Closed;
        crate::metrics::closed(close.code);
        let pending = {
            let mut owned = self.owned.borrow_mut();
            owned.closing(&close);
            owned.take_pending_error()
        };
        if let Some(error) = pending {
            self.hand_error(act, ctx, error);
        }
        if self.poisoned {
            return;
        }
        self.dispatch(act, ctx, Event::Close(close));
    }
}

/// Charge `event` to the rate limit (messages, pings and pongs), pausing it when
/// the limit says so.
#[inline(never)]
fn charge(limiter: &mut Limiter, event: &Event, cx: &mut TaskContext<'_>) -> RateVerdict {
    let len = match event {
        Event::Message(message) => message.len(),
        Event::Ping(payload) | Event::Pong(payload) => payload.len(),
        _ => return RateVerdict::Within,
    };
    let verdict = limiter.charge(len, std::time::Instant::now());
    if let RateVerdict::Pause(wait) = verdict {
        limiter.pause(wait, cx);
    }
    verdict
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
        let span = this.extras.as_ref().and_then(|e| e.span.clone());
        let _entered = span.as_ref().map(|span| span.enter());
        // Nothing to register when the connection's task drives the actor: the
        // waker is the connection's shared state then.
        this.owned.borrow().shared().register_driver(cx.waker());
        let mut budget = this.max_events as usize;
        loop {
            this.poll_resume(cx);
            this.hand_events(act, ctx, cx, &mut budget);
            let step = match this.after_close(act, ctx, &mut budget) {
                Step::Next => match this.poll_timers(budget) {
                    Step::Next => this.poll_read(cx),
                    step => step,
                },
                step => step,
            };
            match step {
                Step::Next | Step::Again => continue,
                Step::Yield => {
                    cx.waker().wake_by_ref();
                    return Poll::Pending;
                }
                Step::Wait => return Poll::Pending,
                Step::Done => return Poll::Ready(()),
            }
        }
    }
}

impl<A: WebSocketActor, S> Drop for Driver<A, S> {
    fn drop(&mut self) {
        // The actor stopped (or its arbiter went away) with the connection perhaps
        // still up.
        let Ok(mut owned) = self.owned.try_borrow_mut() else {
            return;
        };
        let finished = owned.is_finished();
        owned.abandon();
        let shared = owned.shared().clone();
        drop(owned);
        if !finished {
            slab::remove(&shared);
        }
        self.registry.remove(&shared);
    }
}

#[cfg(test)]
mod tests {
    use bytes::BytesMut;

    use super::{land_at, LINE};

    /// An empty buffer whose start is `skew` bytes past a line, with `room` after it.
    fn skewed(skew: usize, room: usize) -> BytesMut {
        let mut buf = BytesMut::with_capacity(room + 3 * LINE);
        let start = buf.as_ptr().align_offset(LINE) + skew;
        buf.resize(start, 0);
        let _ = buf.split_to(start);
        buf
    }

    #[test]
    fn an_empty_buffer_lands_at_the_phase_when_room_is_left_and_stays_put_otherwise() {
        for skew in 0..LINE {
            for phase in [0, 1, 14, 31, 32, 63] {
                let mut buf = skewed(skew, 4096);
                land_at(&mut buf, phase, 4096);
                assert!(buf.is_empty());
                assert_eq!(buf.as_ptr() as usize % LINE, phase, "skew {skew}");
                assert!(buf.capacity() >= 4096);
            }
            // Exactly `room` left: nothing may be skipped.
            let mut tight = skewed(skew, 0);
            let room = tight.capacity();
            let before = tight.as_ptr();
            land_at(&mut tight, 0, room);
            assert_eq!(tight.as_ptr(), before, "skew {skew}");
        }
    }
}
