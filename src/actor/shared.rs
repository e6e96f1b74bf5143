//! The shared half of a connection's state: what any thread may read or ask.
//!
//! [`Shared`] lives behind an `Arc` held by every [`Conn`](super::Conn): the
//! ready-state and the buffered amount as atomics (mirrored by the owner after each
//! change), the bytes written so far (for [`Sent`](super::Sent)), an inbox of
//! [`Request`]s from other threads, which the owner applies in order when it is
//! woken, and the wakers of the connection's task and driver. It is the waker of
//! the actor its task drives ([`Wake`]): no allocation of its own for that. The
//! owner's half is [`Owned`](super::owned::Owned).

use std::{
    collections::VecDeque,
    sync::{
        atomic::{AtomicBool, AtomicU64, AtomicU8, AtomicUsize, Ordering},
        Arc, Mutex, MutexGuard,
    },
    task::{Wake, Waker},
    time::{Duration, Instant},
};

use atomic_waker::AtomicWaker;
use bytes::Bytes;
use tokio::sync::oneshot;

use super::{id::ConnId, SendError};
use crate::proto::{CloseCode, CloseEvent, Message, PreparedMessage, ReadyState};

/// What any thread may read or ask; see the [module docs](self).
#[derive(Debug)]
pub(crate) struct Shared {
    id: ConnId,
    /// The owner thread ([`ThreadKey`](super::ThreadKey)'s number).
    owner: u64,
    /// The connection's place in its thread's slab.
    slot: u32,
    /// The subprotocol and the extension agreed in the handshake, when either
    /// was (in one box: most connections agree on neither).
    agreed: Option<Box<Agreed>>,
    max_send_buffer: usize,
    /// The core answers pings itself ([`ProtocolSettings::auto_pong`](crate::ProtocolSettings::auto_pong)).
    auto_pong: bool,
    ready_state: AtomicU8,
    buffered: AtomicUsize,
    written: AtomicU64,
    writer_gone: AtomicBool,
    /// The user (or a shutdown) asked for the close: a client does not reconnect.
    closed_by_user: AtomicBool,
    has_requests: AtomicBool,
    has_waiters: AtomicBool,
    has_pings: AtomicBool,
    /// The connection's task drives its actor, and so its driver: the driver's
    /// waker is this state itself, as [`Wake`] (the standalone server, the
    /// route). Otherwise (a client's connection, whose actor runs elsewhere) the
    /// driver registers its waker in `locked`.
    task_drives_actor: bool,
    /// The actor was woken since its task last polled it.
    actor_woken: AtomicBool,
    /// The task handed a chunk to the transport and was not polled since (the
    /// route): the transport may have stopped asking for more, so the actor's
    /// wakes go to the route's stalled task too.
    stalled: AtomicBool,
    /// The connection's task: woken without a lock, for output to write and for
    /// the actor it drives (the socket's readiness wakes the actor once per
    /// message read).
    task: AtomicWaker,
    /// What is behind the lock.
    locked: Mutex<Locked>,
}

/// [`Shared`]'s part behind its lock.
#[derive(Debug, Default)]
struct Locked {
    /// Made on first use: most connections never get a request from another
    /// thread, a `Sent` to wait for or a ping of the user's, and an idle
    /// connection keeps 8 bytes here rather than the inbox's 144.
    inbox: Option<Box<Inbox>>,
    /// When the task does not drive the actor, the driver's waker (woken for a
    /// request); when it does, the route's stalled task's, if there is one.
    waker: Option<Waker>,
}

/// The subprotocol and the extension (by name) a handshake agreed on.
#[derive(Debug)]
struct Agreed {
    protocol: Option<Box<str>>,
    extension: Option<Box<str>>,
}

/// What [`Shared::new`] takes: the connection's fixed facts.
#[derive(Debug)]
pub(crate) struct Facts {
    pub(super) id: ConnId,
    pub(super) owner: u64,
    pub(super) slot: usize,
    pub(super) protocol: Option<Box<str>>,
    pub(super) extension: Option<Box<str>>,
    pub(super) max_send_buffer: usize,
    pub(super) auto_pong: bool,
    pub(super) ready_state: ReadyState,
    /// The connection's task drives its actor (see `Shared::task_drives_actor`).
    pub(super) task_drives_actor: bool,
}

/// The part of [`Shared`] behind its lock: touched by other threads' sends, by a
/// `Sent` or `RoundTrip` polled on any thread, and by the owner when those exist.
#[derive(Debug, Default)]
struct Inbox {
    requests: VecDeque<Request>,
    /// Payload bytes of the queued sends (counted against the buffer).
    queued_bytes: usize,
    /// Tasks waiting on a [`Sent`](super::Sent): woken once `written` reaches the
    /// offset.
    waiters: Vec<(u64, Waker)>,
    /// Pings waiting for their Pong: payload, when sent, completion.
    pings: VecDeque<(Bytes, Instant, oneshot::Sender<Duration>)>,
    /// How the connection ended, once its driver handed over the `Close` (or was
    /// gone without one); boxed: most connections never have it read.
    closed: Option<Box<CloseEvent>>,
    /// Tasks waiting on [`Conn::closed`](super::Conn::closed).
    close_waiters: Vec<Waker>,
}

/// A request from another thread, applied by the owner in order.
pub(crate) enum Request {
    Send(Message, std::sync::Arc<QueuedSend>),
    Prepared(PreparedMessage, std::sync::Arc<QueuedSend>),
    Ping(Bytes, std::sync::Arc<QueuedSend>),
    Pong(Bytes, std::sync::Arc<QueuedSend>),
    Close(CloseCode, String, std::sync::Arc<QueuedSend>),
    /// A server going away: Close 1001 (or fail, before the connection opened).
    Shutdown,
    /// The drain time ran out: end the transport now.
    Cut,
    /// Read again (a forwarding target caught up).
    Resume,
    /// Run this on the connection's thread ([`Conn::run_on_thread`](super::Conn::run_on_thread)).
    Run(Box<dyn FnOnce() + Send>),
}

impl std::fmt::Debug for Request {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Request::Send(..) => "Send",
            Request::Prepared(..) => "Prepared",
            Request::Ping(..) => "Ping",
            Request::Pong(..) => "Pong",
            Request::Close(..) => "Close",
            Request::Shutdown => "Shutdown",
            Request::Cut => "Cut",
            Request::Resume => "Resume",
            Request::Run(_) => "Run",
        })
    }
}

impl Request {
    /// The request will never be applied: its send fails with `err`.
    fn fail(self, err: SendError) {
        match self {
            Request::Send(_, done)
            | Request::Prepared(_, done)
            | Request::Ping(_, done)
            | Request::Pong(_, done)
            | Request::Close(_, _, done) => done.settle(Err(err)),
            Request::Shutdown | Request::Cut | Request::Resume | Request::Run(_) => {}
        }
    }
}

/// The completion of a send queued from another thread, settled by the owner.
#[derive(Debug, Default)]
pub(crate) struct QueuedSend {
    state: Mutex<QueuedState>,
}

#[derive(Debug, Default)]
struct QueuedState {
    /// `Some(Ok(offset))` once queued on the connection, `Some(Err)` if refused.
    result: Option<Result<u64, SendError>>,
    waker: Option<Waker>,
}

impl QueuedSend {
    fn lock(&self) -> MutexGuard<'_, QueuedState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The owner took the send: its output offset, or why it was refused.
    pub fn settle(&self, result: Result<u64, SendError>) {
        let mut s = self.lock();
        s.result = Some(result);
        if let Some(w) = s.waker.take() {
            drop(s);
            w.wake();
        }
    }

    /// The result once settled; else `waker` is woken when it is.
    pub fn result(&self, waker: &Waker) -> Option<Result<u64, SendError>> {
        let mut s = self.lock();
        if s.result.is_none() {
            s.waker = Some(waker.clone());
        }
        s.result.clone()
    }
}

impl Shared {
    pub fn new(facts: Facts) -> Shared {
        Shared {
            id: facts.id,
            owner: facts.owner,
            slot: u32::try_from(facts.slot).expect("fewer than 2^32 connections per thread"),
            agreed: (facts.protocol.is_some() || facts.extension.is_some()).then(|| {
                Box::new(Agreed {
                    protocol: facts.protocol,
                    extension: facts.extension,
                })
            }),
            max_send_buffer: facts.max_send_buffer,
            auto_pong: facts.auto_pong,
            ready_state: AtomicU8::new(facts.ready_state.as_u8()),
            buffered: AtomicUsize::new(0),
            written: AtomicU64::new(0),
            writer_gone: AtomicBool::new(false),
            closed_by_user: AtomicBool::new(false),
            has_requests: AtomicBool::new(false),
            has_waiters: AtomicBool::new(false),
            has_pings: AtomicBool::new(false),
            task_drives_actor: facts.task_drives_actor,
            // The task's first poll runs the actor.
            actor_woken: AtomicBool::new(true),
            stalled: AtomicBool::new(false),
            task: AtomicWaker::new(),
            locked: Mutex::new(Locked::default()),
        }
    }

    /// The inbox, made if it was not.
    fn lock(&self) -> InboxGuard<'_> {
        let mut guard = self.lock_if_made();
        guard.inbox.get_or_insert_with(Box::default);
        InboxGuard(guard)
    }

    /// What is behind the lock, the inbox as it is (`None` when it was never
    /// made).
    fn lock_if_made(&self) -> MutexGuard<'_, Locked> {
        // The inbox stays consistent between statements; a panic elsewhere must not
        // take the connection down.
        self.locked.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn id(&self) -> ConnId {
        self.id
    }

    /// The owner thread's number.
    pub fn owner(&self) -> u64 {
        self.owner
    }

    /// The connection's place in its thread's slab.
    pub fn slot(&self) -> usize {
        self.slot as usize
    }

    pub fn protocol(&self) -> Option<&str> {
        self.agreed.as_ref()?.protocol.as_deref()
    }

    pub fn extension(&self) -> Option<&str> {
        self.agreed.as_ref()?.extension.as_deref()
    }

    pub fn auto_pong(&self) -> bool {
        self.auto_pong
    }

    pub fn max_send_buffer(&self) -> usize {
        self.max_send_buffer
    }

    pub fn ready_state(&self) -> ReadyState {
        ReadyState::try_from(self.ready_state.load(Ordering::Acquire)).unwrap_or(ReadyState::Closed)
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

    pub fn closed_by_user(&self) -> bool {
        self.closed_by_user.load(Ordering::Acquire)
    }

    /// The user (or a shutdown) asked for the close.
    pub fn set_closed_by_user(&self) {
        self.closed_by_user.store(true, Ordering::Release);
    }

    /// The owner's mirror of the core: its ready-state (closing already when a
    /// close was asked from another thread and not applied yet, as a browser's
    /// `close()` is at once) and its buffered amount.
    #[inline]
    pub fn mirror(&self, mut state: ReadyState, buffered: usize) {
        if state == ReadyState::Open && self.closed_by_user() {
            state = ReadyState::Closing;
        }
        self.ready_state.store(state.as_u8(), Ordering::Release);
        self.buffered.store(buffered, Ordering::Release);
    }

    /// A close asked from another thread: closing from now on (until the owner
    /// applies it, which keeps it so).
    pub fn mark_closing(&self) {
        self.set_closed_by_user();
        let _ = self.ready_state.compare_exchange(
            ReadyState::Open.as_u8(),
            ReadyState::Closing.as_u8(),
            Ordering::AcqRel,
            Ordering::Acquire,
        );
    }

    /// Queue `request` for the owner and wake it. `bytes` counts against the send
    /// buffer: refused (and not queued) at or over `max_send_buffer`.
    pub fn push(&self, request: Request, bytes: usize) -> Result<(), SendError> {
        let mut inbox = self.lock();
        if self.writer_gone() {
            drop(inbox);
            request.fail(SendError::Closed);
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
        inbox.requests.push_back(request);
        self.has_requests.store(true, Ordering::Release);
        drop(inbox);
        self.wake_driver();
        Ok(())
    }

    /// Keep `waker` behind the lock (the driver's or the stalled task's).
    fn set_waker(&self, waker: &Waker) {
        let mut locked = self.lock_if_made();
        if !locked.waker.as_ref().is_some_and(|w| w.will_wake(waker)) {
            locked.waker = Some(waker.clone());
        }
    }

    /// Wake the waker kept behind the lock, if there is one (it stays there).
    fn wake_kept_waker(&self) {
        let waker = self.lock_if_made().waker.clone();
        if let Some(waker) = waker {
            waker.wake();
        }
    }

    /// The driver's waker, when it is not this state itself (a client's
    /// connection, whose actor runs elsewhere): wake me for requests.
    #[inline]
    pub fn register_driver(&self, waker: &Waker) {
        if !self.task_drives_actor {
            self.set_waker(waker);
        }
    }

    /// Wake the connection's driver (a request, a resumed read, the task's end, a
    /// timer).
    pub fn wake_driver(&self) {
        if self.task_drives_actor {
            self.wake_actor();
        } else {
            self.wake_kept_waker();
        }
    }

    /// The actor that the task drives was woken: note it, and wake the task (and
    /// the route's stalled task, while the transport may not poll the task).
    fn wake_actor(&self) {
        self.actor_woken.store(true, Ordering::Release);
        self.task.wake();
        if self.stalled.load(Ordering::Acquire) {
            self.wake_stalled_task();
        }
    }

    /// Whether the actor was woken since the last call.
    #[inline]
    pub fn take_actor_woken(&self) -> bool {
        self.actor_woken.swap(false, Ordering::AcqRel)
    }

    /// Wake the route's stalled task, if there is one.
    pub fn wake_stalled_task(&self) {
        // Otherwise the waker kept is the driver's.
        if self.task_drives_actor {
            self.wake_kept_waker();
        }
    }

    /// The route's stalled task waits here (its task drives the actor).
    #[cfg(feature = "web")]
    pub fn register_stalled_task(&self, waker: &Waker) {
        debug_assert!(self.task_drives_actor);
        self.set_waker(waker);
    }

    /// Whether the task handed a chunk to the transport and was not polled since.
    #[cfg(feature = "web")]
    pub fn stalled(&self) -> bool {
        self.stalled.load(Ordering::Acquire)
    }

    /// The task handed a chunk to the transport (`true`), or is polled again.
    #[inline]
    pub fn set_stalled(&self, stalled: bool) {
        self.stalled.store(stalled, Ordering::Release);
    }

    /// The connection's task waits here (registered on every poll: a wake takes
    /// the waker, it does not clone it).
    #[inline]
    pub fn register_task(&self, waker: &Waker) {
        self.task.register(waker);
    }

    /// Wake the connection's task.
    #[inline]
    pub fn wake_task(&self) {
        self.task.wake();
    }

    /// Whether requests wait (one atomic load).
    #[inline]
    pub fn has_requests(&self) -> bool {
        self.has_requests.load(Ordering::Acquire)
    }

    /// The requests queued so far, in order.
    pub fn take_requests(&self) -> VecDeque<Request> {
        if !self.has_requests.swap(false, Ordering::AcqRel) {
            return VecDeque::new();
        }
        let mut inbox = self.lock();
        inbox.queued_bytes = 0;
        std::mem::take(&mut inbox.requests)
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

    /// The owner handed output up to `written` to the transport: the `Sent`s it
    /// completes are woken.
    #[inline]
    pub fn set_written(&self, written: u64) {
        self.written.store(written, Ordering::Release);
        if self.has_waiters.load(Ordering::Acquire) {
            self.wake_written(written);
        }
    }

    #[inline(never)]
    fn wake_written(&self, written: u64) {
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

    /// How the connection ended: `close` is what its actor was handed. The first
    /// one counts; whoever waits on [`Conn::closed`](super::Conn::closed) is woken.
    pub fn set_closed(&self, close: &CloseEvent) {
        let mut inbox = self.lock();
        if inbox.closed.is_some() {
            return;
        }
        inbox.closed = Some(Box::new(close.clone()));
        let waiters = std::mem::take(&mut inbox.close_waiters);
        drop(inbox);
        waiters.into_iter().for_each(Waker::wake);
    }

    /// How the connection ended, if it did.
    pub fn close_event(&self) -> Option<CloseEvent> {
        self.lock_if_made()
            .inbox
            .as_ref()?
            .closed
            .as_deref()
            .cloned()
    }

    /// How the connection ended, once it did; else `waker` is woken then.
    pub fn closed(&self, waker: &Waker) -> Option<CloseEvent> {
        let mut inbox = self.lock();
        if let Some(close) = &inbox.closed {
            return Some((**close).clone());
        }
        if !inbox.close_waiters.iter().any(|w| w.will_wake(waker)) {
            inbox.close_waiters.push(waker.clone());
        }
        None
    }

    /// The transport is done: every waiter is woken (its `Sent` fails), every ping
    /// fails, queued requests are dropped.
    pub fn release(&self) {
        self.writer_gone.store(true, Ordering::Release);
        // The task ends: its waker is not kept for as long as a `Conn` is.
        drop(self.task.take());
        let mut made = self.lock_if_made();
        let Some(inbox) = made.inbox.as_mut() else {
            return;
        };
        let waiters = std::mem::take(&mut inbox.waiters);
        inbox.pings.clear();
        let requests = std::mem::take(&mut inbox.requests);
        inbox.queued_bytes = 0;
        drop(made);
        for request in requests {
            request.fail(SendError::Closed);
        }
        waiters.into_iter().for_each(|(_, w)| w.wake());
    }
}

/// The actor that the connection's task drives is woken through its connection's
/// shared state.
impl Wake for Shared {
    fn wake(self: Arc<Self>) {
        self.wake_actor();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.wake_actor();
    }
}

/// The inbox, locked (and made).
struct InboxGuard<'a>(MutexGuard<'a, Locked>);

impl std::ops::Deref for InboxGuard<'_> {
    type Target = Inbox;
    fn deref(&self) -> &Inbox {
        self.0.inbox.as_deref().expect("made by `Shared::lock`")
    }
}

impl std::ops::DerefMut for InboxGuard<'_> {
    fn deref_mut(&mut self) -> &mut Inbox {
        self.0.inbox.as_deref_mut().expect("made by `Shared::lock`")
    }
}
