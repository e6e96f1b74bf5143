//! The owned half of a connection's state: what only the connection's thread
//! touches, behind one wall.
//!
//! [`Owned`] holds the protocol core and its output's accounting; the wakers of the
//! connection's driver and task are in the [`Shared`] half (other threads wake
//! them too). Its fields are private: callers (the driver, the
//! connection's task, its timers, a [`Conn`](super::Conn) or
//! [`OnThread`](super::OnThread) used on its thread, the glue through
//! [`ConnTask`](super::ConnTask)) use its operations, and each operation keeps the
//! rule that the [`Shared`] half mirrors the core (ready-state, buffered amount)
//! and that the task is woken when there is output. The driver, the task and the
//! sends on this thread reach it without a lock; the task keeps it borrowed across
//! its system call, which no other thread can be waiting for.

use std::{collections::VecDeque, sync::Arc, task::Waker};

use bytes::{Bytes, BytesMut};

use super::{
    clock::{self, Micros, NEVER},
    id::ConnId,
    shared::{Request, Shared},
    Error, SendError,
};
use crate::{
    metrics::{self, ThreadStats},
    proto::{self, CloseCode, CloseEvent, Connection, Event, PreparedMessage, ReadyState, Role},
    settings::ConnectionSettings,
};

/// How the transport is to end, once asked to end before the closing handshake
/// finished by itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum End {
    /// Write what is queued, then close (the actor stopped with the connection up).
    AfterOutput,
    /// Drop what is queued and reset: the close timed out (or a shutdown's drain
    /// ran out) with the peer not reading, so what the kernel still holds for it
    /// is thrown away (the standalone server sets `SO_LINGER` 0) instead of
    /// staying queued after we let go.
    Reset,
}

/// What a transport that the connection cannot end by dropping it is told (the
/// actix-web route's socket, which actix-http owns: the web glue implements it).
pub(crate) trait TransportEnd {
    /// The output ended in order: the transport may close (and if the peer does not
    /// take what is left in time, reset).
    fn output_ended(&self);
    /// The close timed out: reset the transport now.
    fn abort(&self);
    /// The connection's actor is gone with the transport up: reset it after the
    /// close timeout unless it ended meanwhile.
    fn abandoned(&self);
    /// The connection's task is gone: nothing more is written.
    fn task_dropped(&self);
}

/// The refusal of a [budgeted send](Owned::send_within).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OverBudget {
    /// The connection is closing, closed, or gone.
    Closed,
    /// Its send buffer holds `buffered` bytes, at or over the byte budget.
    Bytes { buffered: usize },
    /// `queued` budgeted messages wait to be written, at the message budget.
    Messages { queued: usize },
}

/// A budgeted send taken: its output offset, and whether the prepared frame was
/// compressed again for this connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Queued {
    pub(super) end: u64,
    pub(super) recompressed: bool,
}

/// What a [grouped budgeted send](Owned::send_many_within) came to: how many were
/// taken (the first ones), how many of those were compressed again for this
/// connection, and why the next one was refused, if one was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct QueuedMany {
    pub(super) taken: usize,
    pub(super) recompressed: usize,
    pub(super) refused: Option<OverBudget>,
}

/// What the driver needs to know before it reads.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ReadView {
    /// Events wait to be handed to the actor.
    pub(super) events_waiting: bool,
    /// Reading is paused.
    pub(super) paused: bool,
    /// Bytes of the current frame not arrived yet.
    pub(super) frame_remaining: usize,
    /// The output holds a payload by reference (perhaps a slice of the read
    /// buffer).
    pub(super) shares_output: bool,
}

/// The owned half's seldom used parts, boxed apart (see `Owned`'s `rare`).
#[derive(Default)]
struct Rare {
    /// Woken when the driver is done (a client's session waits for it).
    done_waiter: Option<Waker>,
    /// A failure detected above the core (idle timeout, a slow peer), handed to
    /// the actor just before the `Close` that the failure queued.
    pending_error: Option<Error>,
    /// Called with the connection's id when it is gone (the hubs it belongs to).
    on_close: Vec<Box<dyn FnOnce(ConnId)>>,
    /// The end offsets of the budgeted sends not known to be written yet (trimmed
    /// as budgeted sends come).
    budgeted: VecDeque<u64>,
    /// The route's socket, when the application registered `ws::on_connect`.
    /// Taken when it is told the end.
    transport: Option<Box<dyn TransportEnd>>,
}

/// What only the connection's thread touches; see the [module docs](self).
pub(crate) struct Owned {
    core: Connection,
    shared: Arc<Shared>,
    close_on_backpressure: bool,
    /// The task waits for output (its waker is registered with `shared`); a send
    /// wakes it then, and not while the task itself runs the actor.
    task_waits: bool,
    /// The transport is to end before the closing handshake ends it.
    end: Option<End>,
    /// The task ended or was dropped: nothing more reaches the peer.
    task_gone: bool,
    /// The driver is gone (its `Close` was handed over, or the actor stopped).
    driver_done: bool,
    /// The driver reads and decodes nothing while set
    /// ([`Conn::pause_reading`](super::Conn::pause_reading)).
    read_paused: bool,
    /// The driver reads and decodes nothing while set: the peer went over its
    /// inbound rate limit, which pauses (apart from `read_paused`, which is the
    /// user's).
    throttled: bool,
    /// What most connections never use, made on first use: 8 bytes while
    /// unused rather than the 120 it takes (every idle connection holds this
    /// struct).
    rare: Option<Box<Rare>>,
    /// When the keep-alive ping in flight went out, on the timers' clock (its
    /// Pong is timed; `NEVER`: none). Not in `rare`: every quiet connection is
    /// pinged.
    keepalive_sent: Micros,
    /// The connection's timer fired (its thread's clock set it): the driver
    /// runs its timers.
    timer_due: bool,
}

impl std::fmt::Debug for Owned {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Owned")
            .field("id", &self.shared.id())
            .field("ready_state", &self.core.ready_state())
            .field("buffered", &self.core.buffered_amount())
            .finish_non_exhaustive()
    }
}

impl Owned {
    /// The owned half over `core` (its handshake done), with `shared` as its
    /// shared half.
    pub fn new(core: Connection, shared: Arc<Shared>, settings: &ConnectionSettings) -> Owned {
        let owned = Owned {
            core,
            shared,
            close_on_backpressure: settings.close_on_backpressure,
            task_waits: false,
            end: None,
            task_gone: false,
            driver_done: false,
            read_paused: false,
            throttled: false,
            rare: None,
            keepalive_sent: NEVER,
            timer_due: false,
        };
        owned.sync();
        owned
    }

    pub fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    pub fn id(&self) -> ConnId {
        self.shared.id()
    }

    // ----- the rule: mirror, and wake -----

    /// Mirror the ready-state and the buffered amount for other threads.
    #[inline]
    fn sync(&self) {
        self.shared
            .mirror(self.core.ready_state(), self.core.buffered_amount());
    }

    #[inline]
    fn wake_task(&mut self) {
        if std::mem::take(&mut self.task_waits) {
            self.shared.wake_task();
        }
    }

    fn wake_driver(&mut self) {
        self.shared.wake_driver();
    }

    /// The output offset just past what is queued.
    #[inline]
    fn end_offset(&self) -> u64 {
        self.taken() + self.core.buffered_amount() as u64
    }

    // ----- sends -----

    /// Send through the core with `f` after the ready-state and back-pressure
    /// checks; returns the output offset just past what was queued.
    #[inline]
    pub fn send(
        &mut self,
        f: impl FnOnce(&mut Connection) -> Result<(), proto::SendError>,
    ) -> Result<u64, SendError> {
        if !self.core.ready_state().can_send() {
            return Err(SendError::Closed);
        }
        self.check_backpressure()?;
        f(&mut self.core)?;
        metrics::count(ThreadStats::message_sent);
        self.sync();
        self.wake_task();
        Ok(self.end_offset())
    }

    /// Refuse a send while the buffer is at or over its high-water mark (failing
    /// the connection with 1008 when so configured).
    fn check_backpressure(&mut self) -> Result<(), SendError> {
        let buffered = self.core.buffered_amount();
        let limit = self.shared.max_send_buffer();
        if buffered < limit {
            return Ok(());
        }
        if self.close_on_backpressure {
            self.fail(Error::SlowPeer {
                buffered,
                limit,
                code: CloseCode::POLICY_VIOLATION,
            });
        }
        Err(SendError::Backpressure { buffered, limit })
    }

    /// Send `message` within a budget: refused while `max_bytes` or more are
    /// buffered, or `max_messages` budgeted sends wait to be written. One message
    /// is always taken below the marks, however large: a connection holds at most
    /// its budget plus one message.
    pub fn send_within(
        &mut self,
        message: &PreparedMessage,
        max_bytes: usize,
        max_messages: usize,
    ) -> Result<Queued, OverBudget> {
        if self.driver_done || !self.core.ready_state().can_send() {
            return Err(OverBudget::Closed);
        }
        let buffered = self.core.buffered_amount();
        if buffered >= max_bytes {
            return Err(OverBudget::Bytes { buffered });
        }
        let taken = self.taken();
        let budgeted = &mut self.rare_mut().budgeted;
        while budgeted.front().is_some_and(|end| *end <= taken) {
            budgeted.pop_front();
        }
        if budgeted.len() >= max_messages {
            return Err(OverBudget::Messages {
                queued: budgeted.len(),
            });
        }
        let recompressed = self.core.info().compresses_prepared_again(message);
        if self.core.send_prepared(message).is_err() {
            return Err(OverBudget::Closed);
        }
        let end = self.end_offset();
        self.rare_mut().budgeted.push_back(end);
        metrics::count(ThreadStats::message_sent);
        self.sync();
        self.wake_task();
        Ok(Queued { end, recompressed })
    }

    /// Send `messages` in order within a budget, as [`send_within`](Self::send_within)
    /// one after the other would, with one check of the connection, one mirror for
    /// other threads and one wake of the task for them all. Stops at the first
    /// refused: what follows it is not tried.
    pub fn send_many_within<'a>(
        &mut self,
        messages: impl IntoIterator<Item = &'a PreparedMessage>,
        max_bytes: usize,
        max_messages: usize,
    ) -> QueuedMany {
        let mut done = QueuedMany {
            taken: 0,
            recompressed: 0,
            refused: None,
        };
        if self.driver_done || !self.core.ready_state().can_send() {
            done.refused = Some(OverBudget::Closed);
            return done;
        }
        let taken = self.taken();
        let budgeted = &mut self.rare.get_or_insert_with(Box::default).budgeted;
        while budgeted.front().is_some_and(|end| *end <= taken) {
            budgeted.pop_front();
        }
        for message in messages {
            let buffered = self.core.buffered_amount();
            if buffered >= max_bytes {
                done.refused = Some(OverBudget::Bytes { buffered });
                break;
            }
            if budgeted.len() >= max_messages {
                done.refused = Some(OverBudget::Messages {
                    queued: budgeted.len(),
                });
                break;
            }
            if self.core.info().compresses_prepared_again(message) {
                done.recompressed += 1;
            }
            if self.core.send_prepared(message).is_err() {
                done.refused = Some(OverBudget::Closed);
                break;
            }
            budgeted.push_back(taken + self.core.buffered_amount() as u64);
            done.taken += 1;
        }
        if done.taken > 0 {
            metrics::count(|s| s.messages_sent(done.taken));
            self.sync();
            self.wake_task();
        }
        done
    }

    /// Send the messages whose plain frames are `frames`, back to back (message
    /// `i` ends at `ends[i]`), as [`send_many_within`](Self::send_many_within)
    /// would, with one copy for all it takes. `None` when this connection would
    /// send them otherwise: it is a client (it masks), or it compresses and a
    /// message has a compressed form (`compressed`).
    pub fn send_frames_within(
        &mut self,
        frames: &Bytes,
        ends: &[usize],
        compressed: bool,
        max_bytes: usize,
        max_messages: usize,
    ) -> Option<QueuedMany> {
        let info = self.core.info();
        if info.role() != Role::Server || (compressed && info.extension().is_some()) {
            return None;
        }
        let mut done = QueuedMany {
            taken: 0,
            recompressed: 0,
            refused: None,
        };
        if self.driver_done || !self.core.ready_state().can_send() {
            done.refused = Some(OverBudget::Closed);
            return Some(done);
        }
        let taken = self.taken();
        let budgeted = &mut self.rare.get_or_insert_with(Box::default).budgeted;
        // The sends written since: their ends are the lowest, at the front.
        let written = budgeted.partition_point(|end| *end <= taken);
        if written > 0 {
            budgeted.drain(..written);
        }
        let buffered = self.core.buffered_amount();
        let queued = budgeted.len();
        // Message `i` is taken while the buffer holds less than `max_bytes` before
        // it (the bytes budget) and fewer than `max_messages` budgeted sends wait
        // (the messages budget), the bytes checked first, as one by one.
        let by_bytes = match ends.split_last() {
            Some(_) if buffered >= max_bytes => 0,
            Some((_, before)) => 1 + before.partition_point(|end| buffered + end < max_bytes),
            None => 0,
        };
        let by_messages = max_messages.saturating_sub(queued);
        let n = by_bytes.min(by_messages).min(ends.len());
        if n < ends.len() {
            let before = if n == 0 { 0 } else { ends[n - 1] };
            done.refused = Some(if n == by_bytes {
                OverBudget::Bytes {
                    buffered: buffered + before,
                }
            } else {
                OverBudget::Messages { queued: queued + n }
            });
        }
        let base = taken + buffered as u64;
        budgeted.extend(ends[..n].iter().map(|end| base + *end as u64));
        done.taken = n;
        let length = if n == 0 { 0 } else { ends[n - 1] };
        if done.taken == 0 {
            return Some(done);
        }
        let sent = if length == frames.len() {
            self.core.send_prepared_frames(frames)
        } else {
            self.core.send_prepared_frames(&frames.slice(..length))
        };
        // The ready-state was checked above: nothing refuses them.
        debug_assert!(sent.is_ok());
        metrics::count(|s| s.messages_sent(done.taken));
        self.sync();
        self.wake_task();
        Some(done)
    }

    /// Start the closing handshake for the user (or a shutdown); returns the offset
    /// just past the Close frame.
    pub fn close(&mut self, code: CloseCode, reason: &str) -> Result<u64, SendError> {
        // Even when closing already: the user wants it over (no reconnect).
        self.shared.set_closed_by_user();
        self.core.close(code, reason)?;
        self.sync();
        self.wake_task();
        self.wake_driver();
        Ok(self.end_offset())
    }

    /// Fail the connection for a reason found above the core: `err` is handed to
    /// the actor just before the `Close` it causes. Nothing once closed.
    pub fn fail(&mut self, err: Error) {
        if self.core.ready_state() == ReadyState::Closed {
            return;
        }
        let code = err.close_code();
        let reason = err.to_string();
        tracing::debug!(error = %err, code = code.0, "failing websocket connection");
        self.rare_mut().pending_error.get_or_insert(err);
        self.core.fail(code, &reason);
        self.sync();
        self.wake_task();
        self.wake_driver();
    }

    // ----- requests from other threads -----

    /// Apply what other threads asked for, in order. Only an atomic load when
    /// nothing was asked (the driver calls it before every event).
    #[inline]
    pub fn apply_requests(&mut self) {
        if self.shared.has_requests() {
            self.apply_queued_requests();
        }
    }

    #[inline(never)]
    fn apply_queued_requests(&mut self) {
        for request in self.shared.take_requests() {
            match request {
                Request::Send(message, done) => {
                    done.settle(self.send(|core| core.send(&message)));
                }
                Request::Prepared(message, done) => {
                    done.settle(self.send(|core| core.send_prepared(&message)));
                }
                Request::Ping(payload, done) => {
                    done.settle(self.send(|core| core.send_ping(&payload)));
                }
                Request::Pong(payload, done) => {
                    done.settle(self.send(|core| core.send_pong(&payload)));
                }
                Request::Close(code, reason, done) => {
                    done.settle(self.close(code, &reason));
                }
                Request::Shutdown => {
                    self.shared.set_closed_by_user();
                    match self.core.ready_state() {
                        ReadyState::Open => {
                            let _ = self
                                .core
                                .close(CloseCode::GOING_AWAY, "server shutting down");
                        }
                        ReadyState::Connecting => self.core.fail(CloseCode::GOING_AWAY, ""),
                        _ => {}
                    }
                    self.sync();
                    self.wake_task();
                }
                Request::Resume => self.read_paused = false,
                Request::Run(f) => f(),
                Request::Cut => {
                    self.end = Some(End::Reset);
                    self.core.receive_eof();
                    self.sync();
                    self.wake_task();
                }
            }
        }
    }

    // ----- reading (the driver) -----

    pub fn pause_reading(&mut self) {
        self.read_paused = true;
    }

    pub fn resume_reading(&mut self) {
        if self.read_paused {
            self.read_paused = false;
            self.wake_driver();
        }
    }

    /// Read nothing while `on` (the inbound rate limit's pause; the driver lifts
    /// it).
    pub fn set_throttled(&mut self, on: bool) {
        self.throttled = on;
    }

    /// The next event for the actor: requests applied first, then what the core
    /// has (fed from `read_buf` when it has nothing). `None` while reading is
    /// paused or nothing is there. Pongs are matched with their pings, a Ping
    /// nobody else answers is answered (`answers_pings`: the actor takes pings
    /// itself), and the event's effect on the output (a Close frame in answer,
    /// a failure's Close) reaches the task.
    #[inline]
    pub fn next_event(&mut self, read_buf: &mut BytesMut, answers_pings: bool) -> Option<Event> {
        self.apply_requests();
        if self.read_paused || self.throttled {
            return None;
        }
        if self.core.info().peek_event().is_none() && !read_buf.is_empty() {
            self.core.receive_buf(read_buf);
        }
        let event = self.core.poll_event()?;
        // The failure an Error applies, or the answer to a Close, queues a Close
        // frame.
        self.sync();
        self.wake_task();
        match &event {
            Event::Pong(payload) => {
                if payload.is_empty() {
                    let sent = std::mem::replace(&mut self.keepalive_sent, NEVER);
                    if sent != NEVER {
                        crate::metrics::ping_rtt(clock::since(sent));
                    }
                }
                self.shared.pong_received(payload);
            }
            Event::Ping(payload) if !self.core.info().settings().auto_pong && !answers_pings => {
                // Nobody else answers it (RFC 6455 §5.5.2: an endpoint "MUST send a
                // Pong frame in response").
                let _ = self.core.send_pong(payload);
                self.sync();
            }
            Event::Error(_) => {
                if let Some(rare) = &mut self.rare {
                    rare.pending_error = None;
                }
            }
            Event::Message(message) => metrics::count(|s| s.message_received(message.len())),
            _ => {}
        }
        Some(event)
    }

    /// Input that comes after the Close (or the failure) is not processed
    /// (RFC 6455 §5.5.1, §7.1.7: an endpoint "MUST NOT continue to attempt to
    /// process data"): the core drops it as it is read.
    pub fn discard_input(&mut self, read_buf: &mut BytesMut) {
        self.core.receive_buf(read_buf);
    }

    /// The input ended (after `rest`, the last bytes read).
    pub fn input_ended(&mut self, rest: &mut BytesMut) {
        self.core.receive_buf(rest);
        self.core.receive_eof();
        self.sync();
    }

    /// The task is gone with the core not closed yet: nothing more can be said to
    /// the peer, the connection is over. True when that was news.
    pub fn task_lost(&mut self) -> bool {
        if self.task_gone && self.core.ready_state() != ReadyState::Closed {
            self.core.receive_eof();
            self.sync();
            return true;
        }
        false
    }

    /// Whether the transport is done or ending: the input ended (`input_done`),
    /// the task is gone, or the transport was asked to end.
    pub fn transport_done(&self, input_done: bool) -> bool {
        input_done || self.task_gone || self.end.is_some()
    }

    /// Whether a Close from the peer must wait for the transport's end before it
    /// is handed over (a client's: RFC 6455 §7.1.4, the connection is closed only
    /// once the server closed TCP).
    pub fn parks_close(&self, input_done: bool) -> bool {
        self.core.info().role() == Role::Client && !self.transport_done(input_done)
    }

    /// The connection's timer fired: wake the driver to run its timers.
    pub fn timer_fired(&mut self) {
        self.timer_due = true;
        self.wake_driver();
    }

    /// Whether the timer fired since the last call.
    #[inline]
    pub fn take_timer_due(&mut self) -> bool {
        std::mem::take(&mut self.timer_due)
    }

    pub fn read_view(&self) -> ReadView {
        ReadView {
            events_waiting: self.core.info().peek_event().is_some()
                && !self.read_paused
                && !self.throttled,
            paused: self.read_paused || self.throttled,
            frame_remaining: self.core.info().frame_remaining(),
            shares_output: self.core.output().shares_payload(),
        }
    }

    /// The driver hands `close` to the actor: how the connection ended, for
    /// [`Conn::closed`](super::Conn::closed).
    pub fn closing(&self, close: &CloseEvent) {
        self.shared.set_closed(close);
    }

    /// The failure found above the core, to hand over before the `Close`.
    pub fn take_pending_error(&mut self) -> Option<Error> {
        self.rare.as_mut()?.pending_error.take()
    }

    /// The seldom used parts, made now if they were not.
    fn rare_mut(&mut self) -> &mut Rare {
        self.rare.get_or_insert_with(Box::default)
    }

    /// Wake the task when it has output to write or an end to make.
    #[inline]
    pub fn kick_task(&mut self) {
        if self.core.buffered_amount() > 0 || self.end.is_some() {
            self.wake_task();
        }
    }

    // ----- timers -----

    pub fn is_open(&self) -> bool {
        self.core.ready_state() == ReadyState::Open
    }

    /// The core waits for the peer's Close (the close timer runs).
    pub fn close_expected(&self) -> bool {
        self.core.close_expected()
    }

    /// A keep-alive ping on a quiet connection, whose empty buffers go back to the
    /// allocator first. True when it was queued.
    pub fn keepalive_ping(&mut self, now: Micros) -> bool {
        self.core.release_buffers();
        let sent = self.core.send_ping(b"").is_ok();
        if sent {
            // Its Pong gives the round-trip time (the metrics').
            self.keepalive_sent = now;
        }
        self.sync();
        sent
    }

    /// End the transport before the closing handshake does, as `end` says; the
    /// connection is over for the actor.
    pub fn end_transport(&mut self, end: End) {
        self.end = Some(end);
        if end == End::Reset {
            if let Some(transport) = self.rare.as_mut().and_then(|r| r.transport.take()) {
                // On the route, actix-http would keep a socket whose peer does not
                // read: free it now.
                transport.abort();
            }
            self.core.receive_eof();
            // Nothing more reaches a peer that let the close time out: what waits
            // for it is dropped, not held until the transport goes.
            self.core.output_mut().discard();
        }
        self.sync();
    }

    // ----- the driver's end -----

    /// The driver is gone: the hooks are told, whoever waits is woken. The caller
    /// takes the connection out of its thread's slab.
    pub fn finish(&mut self) {
        if self.driver_done {
            return;
        }
        self.driver_done = true;
        // Without a `Close` handed over (the actor stopped first): we went away.
        self.shared.set_closed(&CloseEvent {
            code: CloseCode::GOING_AWAY,
            reason: String::new(),
            was_clean: false,
        });
        let id = self.shared.id();
        let Some(rare) = &mut self.rare else {
            return;
        };
        let (hooks, waiter) = (std::mem::take(&mut rare.on_close), rare.done_waiter.take());
        for hook in hooks {
            hook(id);
        }
        if let Some(w) = waiter {
            w.wake();
        }
    }

    /// The driver is dropped (its actor stopped, or its arbiter went away) with
    /// the connection perhaps still up: the endpoint is going away (RFC 6455
    /// §7.4.1, 1001), and the task ends once it wrote what is queued.
    pub fn abandon(&mut self) {
        if self.core.ready_state() == ReadyState::Open {
            let _ = self.core.close(CloseCode::GOING_AWAY, "");
        }
        if self.end.is_none() {
            self.end = Some(End::AfterOutput);
        }
        if !self.driver_done {
            if let Some(transport) = self.rare.as_ref().and_then(|r| r.transport.as_ref()) {
                // Nothing runs the close timeout any more, and the task may not be
                // polled again (actix-http waits for a peer that does not read).
                transport.abandoned();
            }
        }
        self.sync();
        self.wake_task();
        self.finish();
    }

    pub fn is_finished(&self) -> bool {
        self.driver_done
    }

    /// Call `hook` with the connection's id once it is gone; false (and not
    /// kept) when it is gone already.
    pub fn on_close(&mut self, hook: Box<dyn FnOnce(ConnId)>) -> bool {
        if self.driver_done {
            return false;
        }
        self.rare_mut().on_close.push(hook);
        true
    }

    /// Wake `waker` when the driver is done; false when it is done already.
    #[cfg(feature = "client")]
    pub fn wait_finished(&mut self, waker: &Waker) -> bool {
        if self.driver_done {
            return false;
        }
        self.rare_mut().done_waiter = Some(waker.clone());
        true
    }

    // ----- writing (the connection's task) -----

    /// The transport to tell of the end (the route's socket).
    #[cfg(feature = "web")]
    pub fn set_transport(&mut self, transport: Box<dyn TransportEnd>) {
        self.rare_mut().transport = Some(transport);
    }

    /// The transport, taken: its end is the caller's to tell now.
    pub fn take_transport(&mut self) -> Option<Box<dyn TransportEnd>> {
        self.rare.as_mut()?.transport.take()
    }

    /// The task, which registered its waker with the shared half in this poll,
    /// waits for output.
    pub fn wait_for_output(&mut self) {
        self.task_waits = true;
    }

    /// The task does not wait while the actor runs inside it: what the actor sends
    /// is written right after, without waking the task again.
    pub fn forget_task_waker(&mut self) {
        self.task_waits = false;
    }

    pub fn task_gone(&self) -> bool {
        self.task_gone
    }

    /// The output as slices for a vectored write, without taking it.
    #[cfg(feature = "server")]
    #[inline]
    pub fn output_vectored<'a>(&'a self, dst: &mut [std::io::IoSlice<'a>]) -> usize {
        self.core.output().chunks_vectored(dst)
    }

    /// `n` bytes of the output were written.
    #[cfg(feature = "server")]
    #[inline]
    pub fn output_written(&mut self, n: usize) {
        self.core.output_mut().advance(n);
        self.output_taken(n);
    }

    /// The next chunk of output, handed to the transport.
    #[inline]
    pub fn take_output(&mut self) -> Bytes {
        let out = self.core.output_mut().take_chunk();
        if !out.is_empty() {
            self.output_taken(out.len());
        }
        out
    }

    /// Output bytes handed to the transport so far (kept in the shared half,
    /// which only this thread changes).
    #[inline]
    fn taken(&self) -> u64 {
        self.shared.written()
    }

    #[inline]
    fn output_taken(&mut self, n: usize) {
        metrics::count(|s| s.bytes_sent(n));
        self.shared.set_written(self.taken() + n as u64);
        self.sync();
    }

    /// The transport should end now: the closing handshake is over (or the
    /// connection failed), or the transport was asked to end.
    #[inline]
    pub fn transport_should_end(&self) -> bool {
        self.core.should_close_transport() || self.end.is_some()
    }

    /// How the transport was asked to end, if it was.
    #[cfg(feature = "server")]
    pub fn end_asked(&self) -> Option<End> {
        self.end
    }

    /// The task is done: nothing more reaches the peer.
    pub fn task_ended(&mut self) {
        if !self.task_gone {
            self.task_gone = true;
            self.shared.release();
        }
        self.wake_driver();
    }

    /// Ready once the transport is being cut (asked to end, or the task gone);
    /// else `waker` (the task's, which owns it while it writes) is woken then.
    #[cfg(feature = "client")]
    pub fn cut_or_register(&mut self, waker: &Waker) -> bool {
        if self.end.is_some() || self.task_gone {
            return true;
        }
        self.shared.register_task(waker);
        self.task_waits = true;
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        actor::shared::Facts,
        proto::{Connection, PreparedMessage, Role},
        settings::{DeflateSettings, ProtocolSettings},
    };

    fn open_server() -> Owned {
        let mut core = Connection::new(Role::Server, ProtocolSettings::default());
        core.open();
        let shared = Arc::new(Shared::new(Facts {
            id: ConnId::from_raw(1),
            owner: 0,
            slot: 0,
            protocol: None,
            extension: None,
            max_send_buffer: usize::MAX,
            auto_pong: true,
            ready_state: core.ready_state(),
            task_drives_actor: true,
        }));
        Owned::new(core, shared, &ConnectionSettings::default())
    }

    /// The output, the budgeted ends and the outcome after `queued` messages
    /// sent one by one with `written` bytes of them taken, then `messages`
    /// sent either as frames back to back or one by one.
    fn run(
        batch: bool,
        queued: &[PreparedMessage],
        written: usize,
        messages: &[PreparedMessage],
        max_bytes: usize,
        max_messages: usize,
    ) -> (QueuedMany, Bytes, Vec<u64>) {
        let mut owned = open_server();
        for m in queued {
            owned.send_within(m, usize::MAX, usize::MAX).unwrap();
        }
        owned.output_written(written);
        let many = if batch {
            let mut frames = BytesMut::new();
            let mut ends = Vec::new();
            for m in messages {
                frames.extend_from_slice(m.frame());
                ends.push(frames.len());
            }
            let frames = frames.freeze();
            owned
                .send_frames_within(&frames, &ends, false, max_bytes, max_messages)
                .unwrap()
        } else {
            owned.send_many_within(messages, max_bytes, max_messages)
        };
        let output = Bytes::copy_from_slice(owned.core.output().front());
        let mut budgeted: Vec<u64> = owned.rare_mut().budgeted.iter().copied().collect();
        // What was written is gone from either (trimmed at the next send).
        budgeted.retain(|end| *end > owned.taken());
        (many, output, budgeted)
    }

    /// Frames back to back are taken, refused and accounted for exactly as the
    /// same messages one by one, at every bytes and messages budget around what
    /// is queued and what they add.
    #[test]
    fn frames_back_to_back_are_budgeted_as_one_by_one() {
        let deflate = DeflateSettings::default();
        let msg = |n: usize| PreparedMessage::new("x".repeat(n), &deflate);
        let queued: Vec<_> = [3, 10, 1].into_iter().map(msg).collect();
        let messages: Vec<_> = [5, 1, 130, 2, 7].into_iter().map(msg).collect();
        for written in [0, 4, 12, 20] {
            for max_bytes in [0, 1, 10, 19, 20, 27, 30, 170, 200, 10_000] {
                for max_messages in [1, 2, 3, 4, 5, 8, 100] {
                    let args = (&queued[..], written, &messages[..], max_bytes, max_messages);
                    let together = run(true, args.0, args.1, args.2, args.3, args.4);
                    let one_by_one = run(false, args.0, args.1, args.2, args.3, args.4);
                    assert_eq!(
                        together, one_by_one,
                        "written {written}, max_bytes {max_bytes}, max_messages {max_messages}"
                    );
                }
            }
        }
        // The cases reach both refusals and none.
        let (many, ..) = run(true, &queued, 0, &messages, 30, 100);
        assert_eq!(many.refused, Some(OverBudget::Bytes { buffered: 30 }));
        let (many, ..) = run(true, &queued, 0, &messages, 10_000, 5);
        assert_eq!(many.refused, Some(OverBudget::Messages { queued: 5 }));
        assert_eq!(run(true, &queued, 20, &messages, 10_000, 100).0.taken, 5);
    }
}
