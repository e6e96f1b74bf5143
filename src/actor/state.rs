//! A connection's state, in two parts.
//!
//! - [`Local`], behind `Rc<RefCell<..>>`, is what only the connection's own thread
//!   touches: the protocol core, its output, the wakers of the driver and the
//!   writer. The driver, the writer, a `Conn` used on that thread and the hub's
//!   fan-out on that thread reach it without any lock; the writer keeps it borrowed
//!   across its system call, which no other thread can be waiting for.
//! - [`Remote`], behind `Arc`, is what any thread may read or ask: the ready-state
//!   and buffered amount as atomics (mirrored by the owner after each change), the
//!   bytes written so far (for [`Sent`](super::Sent)), and an inbox of commands from
//!   other threads, which the owner drains when it is woken.
//!
//! Each thread keeps its connections in a slab ([`with_local`]), so a `Conn` (which
//! is `Send` and holds only the `Remote`) finds its `Local` when it is used on the
//! owner's thread.

use std::{
    cell::{Cell, RefCell},
    collections::VecDeque,
    rc::Rc,
    sync::{
        atomic::{AtomicBool, AtomicU64, AtomicU8, AtomicUsize, Ordering},
        Arc, Mutex, MutexGuard,
    },
    task::Waker,
    time::{Duration, Instant},
};

use bytes::Bytes;
use tokio::sync::oneshot;

use super::{conn::RemoteSent, transport::SocketCut, ConnId, Error, SendError};
use crate::{
    proto::{self, CloseCode, Connection, Message, PreparedMessage, ReadyState},
    settings::ConnectionSettings,
};

/// The thread-owned part of a connection.
pub(crate) type LocalRef = Rc<RefCell<Local>>;

/// What only the connection's thread touches; see the [module docs](self).
pub(crate) struct Local {
    pub core: Connection,
    pub remote: Arc<Remote>,
    pub close_on_backpressure: bool,
    /// The writer waits here for output.
    pub writer: Option<Waker>,
    /// The driver waits here for a command, a resumed read, or the writer's end.
    pub driver: Option<Waker>,
    /// Woken when the driver is done (a client's session waits for it).
    pub done_waiter: Option<Waker>,
    /// Output bytes the writer has handed to the transport so far.
    pub taken: u64,
    /// End the transport once the output is written (close timeout, shutdown).
    pub force_close: bool,
    /// The transport is to be reset, not closed in order: the close timed out (or
    /// a shutdown's drain ran out) with the peer not reading, so what the kernel
    /// still holds for it is thrown away (the standalone server sets `SO_LINGER`
    /// 0 before closing the socket) instead of staying queued after we let go.
    pub reset: bool,
    /// The writer ended or was dropped: nothing more reaches the peer.
    pub writer_gone: bool,
    /// The route's socket, when the application registered
    /// [`ws::on_connect`](crate::on_connect): the connection ends it itself (see
    /// [`SocketCut`]). Taken when the writer ends, after which it may be closed.
    pub socket: Option<SocketCut>,
    /// The driver is gone (its `Close` was delivered, or the actor stopped).
    pub driver_done: bool,
    /// The driver reads and decodes nothing while set ([`Conn::pause_reading`](super::Conn::pause_reading)).
    pub read_paused: bool,
    /// A failure detected above the core (idle timeout, a slow peer), delivered to
    /// the actor just before the `Close` that the failure queued.
    pub pending_error: Option<Error>,
    /// The hubs this connection belongs to, told when it closes.
    pub on_close: Vec<Box<dyn FnOnce(ConnId)>>,
    /// Publications delivered by a hub and not yet written: their end offsets, for
    /// the hub's message budget.
    pub hub_queued: VecDeque<u64>,
    /// When the keep-alive ping in flight went out (its Pong is timed).
    pub keepalive_sent: Option<Instant>,
    /// This thread's counters (messages and bytes in and out).
    pub stats: Arc<crate::metrics::ThreadStats>,
}

impl std::fmt::Debug for Local {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Local")
            .field("id", &self.remote.id)
            .field("ready_state", &self.core.ready_state())
            .field("buffered", &self.core.buffered_amount())
            .finish_non_exhaustive()
    }
}

/// What any thread may read or ask; see the [module docs](self).
#[derive(Debug)]
pub(crate) struct Remote {
    pub id: ConnId,
    /// The owner thread's token ([`thread_token`]).
    owner: u64,
    /// The connection's place in its thread's slab.
    slot: usize,
    /// The subprotocol agreed in the handshake.
    pub protocol: Option<String>,
    /// The extension agreed in the handshake, by name.
    pub extension: Option<String>,
    pub max_send_buffer: usize,
    /// The core answers pings itself ([`ProtocolSettings::auto_pong`](crate::ProtocolSettings::auto_pong)).
    pub auto_pong: bool,
    ready_state: AtomicU8,
    buffered: AtomicUsize,
    written: AtomicU64,
    writer_gone: AtomicBool,
    /// The user (or a shutdown) asked for the close: a client does not reconnect.
    pub closed_by_user: AtomicBool,
    has_commands: AtomicBool,
    has_waiters: AtomicBool,
    has_pings: AtomicBool,
    inbox: Mutex<Inbox>,
}

/// The part of [`Remote`] behind its lock: touched by other threads' sends, by a
/// `Sent` or `RoundTrip` polled on any thread, and by the owner when those exist.
#[derive(Debug, Default)]
struct Inbox {
    commands: VecDeque<Command>,
    /// Payload bytes of the queued `Send` commands (counted against the buffer).
    queued_bytes: usize,
    /// Tasks waiting on a [`Sent`](super::Sent): woken once `written` reaches the
    /// offset.
    waiters: Vec<(u64, Waker)>,
    /// Pings waiting for their Pong: payload, when sent, completion.
    pings: VecDeque<(Bytes, Instant, oneshot::Sender<Duration>)>,
    /// Wakes the owner's driver for a command.
    owner: Option<Waker>,
}

/// A request from another thread, applied by the owner in order.
pub(crate) enum Command {
    Send(Message, Arc<RemoteSent>),
    Prepared(PreparedMessage, Arc<RemoteSent>),
    Ping(Bytes, Arc<RemoteSent>),
    Pong(Bytes, Arc<RemoteSent>),
    Close(CloseCode, String, Arc<RemoteSent>),
    /// A server going away: Close 1001 (or fail, before the connection opened).
    Shutdown,
    /// The drain time ran out: end the transport now.
    Cut,
    /// Read again (a forwarding target caught up).
    Resume,
    /// Run this on the connection's thread (a hub starting its part there).
    Run(Box<dyn FnOnce() + Send>),
}

impl std::fmt::Debug for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Command::Send(..) => "Send",
            Command::Prepared(..) => "Prepared",
            Command::Ping(..) => "Ping",
            Command::Pong(..) => "Pong",
            Command::Close(..) => "Close",
            Command::Shutdown => "Shutdown",
            Command::Cut => "Cut",
            Command::Resume => "Resume",
            Command::Run(_) => "Run",
        })
    }
}

fn ready_state_of(v: u8) -> ReadyState {
    match v {
        0 => ReadyState::Connecting,
        1 => ReadyState::Open,
        2 => ReadyState::Closing,
        _ => ReadyState::Closed,
    }
}

fn ready_state_code(state: ReadyState) -> u8 {
    match state {
        ReadyState::Connecting => 0,
        ReadyState::Open => 1,
        ReadyState::Closing => 2,
        ReadyState::Closed => 3,
    }
}

impl Remote {
    fn lock(&self) -> MutexGuard<'_, Inbox> {
        // The inbox stays consistent between statements; a panic elsewhere must not
        // take the connection down.
        self.inbox.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether the caller runs on the connection's own thread.
    pub fn is_local(&self) -> bool {
        self.owner == thread_token()
    }

    pub fn ready_state(&self) -> ReadyState {
        ready_state_of(self.ready_state.load(Ordering::Acquire))
    }

    /// A close asked from another thread: closing from now on (until the owner
    /// applies it, which keeps it so).
    pub fn mark_closing(&self) {
        self.closed_by_user.store(true, Ordering::Release);
        let _ = self.ready_state.compare_exchange(
            ready_state_code(ReadyState::Open),
            ready_state_code(ReadyState::Closing),
            Ordering::AcqRel,
            Ordering::Acquire,
        );
    }

    pub fn buffered(&self) -> usize {
        self.buffered.load(Ordering::Acquire)
    }

    pub fn written(&self) -> u64 {
        self.written.load(Ordering::Acquire)
    }

    pub fn writer_gone(&self) -> bool {
        self.writer_gone.load(Ordering::Acquire)
    }

    /// Queue `command` for the owner and wake it. `bytes` counts against the send
    /// buffer: refused (and not queued) at or over `max_send_buffer`.
    pub fn push(&self, command: Command, bytes: usize) -> Result<(), SendError> {
        let mut inbox = self.lock();
        if self.writer_gone() {
            drop(inbox);
            command.fail(SendError::Closed);
            return Ok(());
        }
        if bytes > 0 {
            let buffered = self.buffered() + inbox.queued_bytes;
            if buffered >= self.max_send_buffer {
                return Err(SendError::Backpressure {
                    buffered,
                    limit: self.max_send_buffer,
                });
            }
            inbox.queued_bytes += bytes;
        }
        inbox.commands.push_back(command);
        self.has_commands.store(true, Ordering::Release);
        // The owner registers its waker once, so it stays here for the next push.
        let waker = inbox.owner.clone();
        drop(inbox);
        if let Some(waker) = waker {
            waker.wake();
        }
        Ok(())
    }

    /// The owner's driver: wake me for commands.
    pub fn register_owner(&self, waker: &Waker) {
        let mut inbox = self.lock();
        if !inbox.owner.as_ref().is_some_and(|w| w.will_wake(waker)) {
            inbox.owner = Some(waker.clone());
        }
    }

    fn take_commands(&self) -> VecDeque<Command> {
        if !self.has_commands.swap(false, Ordering::AcqRel) {
            return VecDeque::new();
        }
        let mut inbox = self.lock();
        inbox.queued_bytes = 0;
        std::mem::take(&mut inbox.commands)
    }

    /// A `Sent` waits for `written` to reach `offset`. False when it already has.
    pub fn wait_written(&self, offset: u64, waker: &Waker) -> bool {
        let mut inbox = self.lock();
        self.has_waiters.store(true, Ordering::Release);
        // Re-read under the lock: the writer takes it to wake the waiters.
        if self.written() >= offset || self.writer_gone() {
            return false;
        }
        inbox.waiters.push((offset, waker.clone()));
        true
    }

    fn wake_written(&self, written: u64) {
        if !self.has_waiters.load(Ordering::Acquire) {
            return;
        }
        let mut inbox = self.lock();
        let mut woken = Vec::new();
        inbox.waiters.retain(|(offset, waker)| {
            let done = *offset <= written;
            if done {
                woken.push(waker.clone());
            }
            !done
        });
        if inbox.waiters.is_empty() {
            self.has_waiters.store(false, Ordering::Release);
        }
        drop(inbox);
        woken.into_iter().for_each(Waker::wake);
    }

    /// A ping went out: its `RoundTrip` (if any: the keep-alive's has none)
    /// completes on the matching Pong.
    pub fn ping_sent(&self, payload: Bytes, done: oneshot::Sender<Duration>) {
        self.lock().pings.push_back((payload, Instant::now(), done));
        self.has_pings.store(true, Ordering::Release);
    }

    /// A Pong arrived: complete the ping it answers and every earlier one (a peer may
    /// answer only the latest of several pings, RFC 6455 §5.5.3). The round-trip
    /// time, if it answered one of ours.
    pub fn pong_received(&self, payload: &[u8]) -> Option<Duration> {
        if !self.has_pings.load(Ordering::Acquire) {
            return None;
        }
        let mut inbox = self.lock();
        let at = inbox.pings.iter().position(|(p, _, _)| p[..] == *payload)?;
        let mut rtt = None;
        for (_, sent_at, tx) in inbox.pings.drain(..=at) {
            let elapsed = sent_at.elapsed();
            rtt = Some(elapsed);
            let _ = tx.send(elapsed);
        }
        if inbox.pings.is_empty() {
            self.has_pings.store(false, Ordering::Release);
        }
        drop(inbox);
        if let Some(rtt) = rtt {
            crate::metrics::ping_rtt(rtt);
        }
        rtt
    }

    /// The transport is done: every waiter is woken (its `Sent` fails), every ping
    /// fails, queued commands are dropped.
    fn release(&self) {
        self.writer_gone.store(true, Ordering::Release);
        let mut inbox = self.lock();
        let waiters = std::mem::take(&mut inbox.waiters);
        inbox.pings.clear();
        let commands = std::mem::take(&mut inbox.commands);
        inbox.queued_bytes = 0;
        drop(inbox);
        for command in commands {
            command.fail(SendError::Closed);
        }
        waiters.into_iter().for_each(|(_, w)| w.wake());
    }
}

impl Command {
    fn fail(self, err: SendError) {
        match self {
            Command::Send(_, done)
            | Command::Prepared(_, done)
            | Command::Ping(_, done)
            | Command::Pong(_, done)
            | Command::Close(_, _, done) => done.fail(err),
            Command::Shutdown | Command::Cut | Command::Resume | Command::Run(_) => {}
        }
    }
}

impl Local {
    /// A connection over `core` (its handshake done), registered in this thread's
    /// slab.
    pub fn create(core: Connection, settings: &ConnectionSettings) -> LocalRef {
        let id = ConnId::next();
        let remote = Arc::new(Remote {
            id,
            owner: thread_token(),
            slot: 0,
            protocol: core.protocol().map(str::to_owned),
            extension: core.extension().map(|e| e.name().to_owned()),
            max_send_buffer: settings.max_send_buffer,
            auto_pong: core.config().auto_pong,
            ready_state: AtomicU8::new(ready_state_code(core.ready_state())),
            buffered: AtomicUsize::new(core.buffered_amount()),
            written: AtomicU64::new(0),
            writer_gone: AtomicBool::new(false),
            closed_by_user: AtomicBool::new(false),
            has_commands: AtomicBool::new(false),
            has_waiters: AtomicBool::new(false),
            has_pings: AtomicBool::new(false),
            inbox: Mutex::new(Inbox::default()),
        });
        let local = Rc::new(RefCell::new(Local {
            core,
            remote,
            close_on_backpressure: settings.close_on_backpressure,
            writer: None,
            driver: None,
            done_waiter: None,
            taken: 0,
            force_close: false,
            reset: false,
            writer_gone: false,
            socket: None,
            driver_done: false,
            read_paused: false,
            pending_error: None,
            on_close: Vec::new(),
            hub_queued: VecDeque::new(),
            keepalive_sent: None,
            stats: crate::metrics::thread_stats(),
        }));
        let slot = SLAB.with(|slab| slab.borrow_mut().insert(id, &local));
        // The slot is known only now; `Remote` is not shared yet.
        let mut l = local.borrow_mut();
        if let Some(remote) = Arc::get_mut(&mut l.remote) {
            remote.slot = slot;
        }
        drop(l);
        local
    }

    /// Mirror the ready-state and the buffered amount for other threads.
    #[inline]
    pub fn sync(&self) {
        let mut state = self.core.ready_state();
        if state == ReadyState::Open && self.remote.closed_by_user.load(Ordering::Acquire) {
            // A close asked from another thread, not applied yet: closing already,
            // as a browser's `close()` is at once.
            state = ReadyState::Closing;
        }
        self.remote
            .ready_state
            .store(ready_state_code(state), Ordering::Release);
        self.remote
            .buffered
            .store(self.core.buffered_amount(), Ordering::Release);
    }

    pub fn wake_writer(&mut self) {
        if let Some(w) = self.writer.take() {
            w.wake();
        }
    }

    pub fn wake_driver(&mut self) {
        if let Some(w) = self.driver.take() {
            w.wake();
        }
    }

    /// Fail the connection for a reason found above the core: `err` is delivered
    /// to the actor just before the `Close` it causes. Nothing once closed.
    pub fn fail_local(&mut self, err: Error) {
        if self.core.ready_state() == ReadyState::Closed {
            return;
        }
        let code = err.close_code();
        let reason = err.to_string();
        tracing::debug!(error = %err, code = code.0, "failing websocket connection");
        self.pending_error.get_or_insert(err);
        self.core.fail(code, &reason);
        self.sync();
        self.wake_writer();
        self.wake_driver();
    }

    /// Refuse a send while the buffer is at or over its high-water mark (failing
    /// the connection with 1008 when so configured).
    pub fn check_backpressure(&mut self) -> Result<(), SendError> {
        let buffered = self.core.buffered_amount();
        let limit = self.remote.max_send_buffer;
        if buffered < limit {
            return Ok(());
        }
        if self.close_on_backpressure {
            self.fail_local(Error::SlowPeer {
                buffered,
                limit,
                code: CloseCode::POLICY_VIOLATION,
            });
        }
        Err(SendError::Backpressure { buffered, limit })
    }

    /// Send through the core with `f` after the ready-state and back-pressure
    /// checks; returns the output offset just past what was queued.
    pub fn send_with(
        &mut self,
        f: impl FnOnce(&mut Connection) -> Result<(), proto::SendError>,
    ) -> Result<u64, SendError> {
        if !self.core.ready_state().can_send() {
            return Err(SendError::Closed);
        }
        self.check_backpressure()?;
        f(&mut self.core)?;
        self.stats.message_sent();
        self.sync();
        self.wake_writer();
        Ok(self.taken + self.core.buffered_amount() as u64)
    }

    /// Start the closing handshake for the user (or a shutdown); returns the offset
    /// just past the Close frame.
    pub fn close(&mut self, code: CloseCode, reason: &str) -> Result<u64, SendError> {
        // Even when closing already: the user wants it over (no reconnect).
        self.remote.closed_by_user.store(true, Ordering::Release);
        self.core.close(code, reason)?;
        self.sync();
        self.wake_writer();
        self.wake_driver();
        Ok(self.taken + self.core.buffered_amount() as u64)
    }

    /// Apply what other threads asked for, in order. Only an atomic load when
    /// nothing was asked (the driver calls it before every event).
    #[inline]
    pub fn apply_commands(&mut self) {
        if self.remote.has_commands.load(Ordering::Acquire) {
            self.apply_queued_commands();
        }
    }

    #[inline(never)]
    fn apply_queued_commands(&mut self) {
        for command in self.remote.take_commands() {
            match command {
                Command::Send(message, done) => {
                    let r = self.send_with(|core| core.send(&message));
                    done.settle(r);
                }
                Command::Prepared(message, done) => {
                    let r = self.send_with(|core| core.send_prepared(&message));
                    done.settle(r);
                }
                Command::Ping(payload, done) => {
                    let r = self.send_with(|core| core.send_ping(&payload));
                    done.settle(r);
                }
                Command::Pong(payload, done) => {
                    let r = self.send_with(|core| core.send_pong(&payload));
                    done.settle(r);
                }
                Command::Close(code, reason, done) => {
                    let r = self.close(code, &reason);
                    done.settle(r);
                }
                Command::Shutdown => {
                    self.remote.closed_by_user.store(true, Ordering::Release);
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
                    self.wake_writer();
                }
                Command::Resume => self.read_paused = false,
                Command::Run(f) => f(),
                Command::Cut => {
                    self.force_close = true;
                    self.reset = true;
                    self.core.receive_eof();
                    self.sync();
                    self.wake_writer();
                }
            }
        }
    }

    /// The writer handed `n` output bytes to the transport.
    #[inline]
    pub fn output_taken(&mut self, n: usize) {
        self.taken += n as u64;
        self.stats.bytes_sent(n);
        self.remote.written.store(self.taken, Ordering::Release);
        self.remote.wake_written(self.taken);
        while self
            .hub_queued
            .front()
            .is_some_and(|end| *end <= self.taken)
        {
            self.hub_queued.pop_front();
        }
    }

    /// The transport is done: nothing more reaches the peer.
    pub fn end_writer(&mut self) {
        if !self.writer_gone {
            self.writer_gone = true;
            self.remote.release();
        }
        self.wake_driver();
    }

    pub fn register_writer(&mut self, waker: &Waker) {
        if !self.writer.as_ref().is_some_and(|w| w.will_wake(waker)) {
            self.writer = Some(waker.clone());
        }
    }

    /// The driver is gone: leave the slab, tell the hubs, wake whoever waits.
    pub fn driver_finished(&mut self) {
        if self.driver_done {
            return;
        }
        self.driver_done = true;
        let id = self.remote.id;
        let slot = self.remote.slot;
        SLAB.with(|slab| slab.borrow_mut().remove(slot, id));
        for hook in std::mem::take(&mut self.on_close) {
            hook(id);
        }
        if let Some(w) = self.done_waiter.take() {
            w.wake();
        }
    }
}

thread_local! {
    static TOKEN: Cell<u64> = const { Cell::new(0) };
    static SLAB: RefCell<Slab> = const { RefCell::new(Slab { entries: Vec::new(), free: Vec::new() }) };
}

/// A number unique to the calling thread (cheaper to read than its `ThreadId`).
pub(crate) fn thread_token() -> u64 {
    TOKEN.with(|t| {
        let token = t.get();
        if token != 0 {
            return token;
        }
        static NEXT: AtomicU64 = AtomicU64::new(1);
        let token = NEXT.fetch_add(1, Ordering::Relaxed);
        t.set(token);
        token
    })
}

/// This thread's connections, by slot.
struct Slab {
    entries: Vec<Option<(ConnId, LocalRef)>>,
    free: Vec<usize>,
}

impl Slab {
    fn insert(&mut self, id: ConnId, local: &LocalRef) -> usize {
        let entry = Some((id, local.clone()));
        match self.free.pop() {
            Some(slot) => {
                self.entries[slot] = entry;
                slot
            }
            None => {
                self.entries.push(entry);
                self.entries.len() - 1
            }
        }
    }

    fn remove(&mut self, slot: usize, id: ConnId) {
        if let Some(entry) = self.entries.get_mut(slot) {
            if entry.as_ref().is_some_and(|(i, _)| *i == id) {
                *entry = None;
                self.free.push(slot);
            }
        }
        if self.free.len() == self.entries.len() && self.entries.capacity() > 64 {
            // No connection left on this thread: give the memory back.
            self.entries = Vec::new();
            self.free = Vec::new();
        }
    }
}

/// Run `f` on the local part of `remote`'s connection, when called on its thread
/// and the connection is still there and not borrowed already (a send from inside
/// the connection's own writer or driver); `None` otherwise.
pub(crate) fn with_local<T>(remote: &Remote, f: impl FnOnce(&mut Local) -> T) -> Option<T> {
    if !remote.is_local() {
        return None;
    }
    let local = SLAB.with(|slab| {
        let slab = slab.borrow();
        match slab.entries.get(remote.slot) {
            Some(Some((id, local))) if *id == remote.id => Some(local.clone()),
            _ => None,
        }
    })?;
    let mut l = local.try_borrow_mut().ok()?;
    Some(f(&mut l))
}

/// The local part of the connection `id` in slot `slot`, when called on its
/// thread and it is still there (a hub's part on that thread).
pub(crate) fn local_at(slot: usize, id: ConnId) -> Option<LocalRef> {
    SLAB.with(|slab| match slab.borrow().entries.get(slot) {
        Some(Some((i, local))) if *i == id => Some(local.clone()),
        _ => None,
    })
}

impl Remote {
    /// The connection's place in its thread's slab.
    pub fn slot(&self) -> usize {
        self.slot
    }

    /// The owner thread's token.
    pub fn owner(&self) -> u64 {
        self.owner
    }
}
