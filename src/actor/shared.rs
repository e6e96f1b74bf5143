//! State shared by a connection's driver, its writer and its `Conn` handles.

use std::{
    cell::RefCell,
    collections::VecDeque,
    io::IoSlice,
    pin::Pin,
    rc::Rc,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc, Mutex, MutexGuard,
    },
    task::{Context, Poll, Wake, Waker},
    time::{Duration, Instant},
};

use bytes::Bytes;
use futures_core::Stream;
use std::future::Future;
use tokio::sync::oneshot;

use super::ConnectionSettings;
use crate::{codec::Codec, proto::Connection, Error};

/// What the driver, the writer and every `Conn` share, behind one mutex.
///
/// Sends lock it and write frames into the core's output directly: no mailbox
/// between a send and the socket.
#[derive(Debug)]
pub(crate) struct Shared {
    pub codec: Codec,
    pub max_send_buffer: usize,
    pub close_on_backpressure: bool,
    /// The writer waits here for output.
    pub writer: Option<Waker>,
    /// The driver waits here for a close request, a shutdown or the writer's end.
    pub driver: Option<Waker>,
    /// Output bytes the writer has taken so far.
    pub taken: u64,
    /// Tasks waiting on a [`Sent`](super::Sent): woken once `taken` reaches the
    /// offset. Only a `Sent` that is polled registers here.
    pub sent: VecDeque<(u64, Waker)>,
    /// Pings waiting for their Pong: payload, when sent, completion.
    pub pings: VecDeque<(Bytes, Instant, oneshot::Sender<Duration>)>,
    /// End the transport once the output is written (close timeout, shutdown).
    pub force_close: bool,
    /// The writer ended or was dropped: nothing more reaches the peer.
    pub writer_gone: bool,
    /// The client's reconnect logic: the user (or `ws::shutdown`) started the closing
    /// handshake, so the connection's end is not a reason to reconnect.
    #[cfg(feature = "client")]
    pub close_requested: bool,
    /// The client's reconnect logic: the driver is gone (its `Close` was delivered,
    /// or the actor stopped).
    #[cfg(feature = "client")]
    pub driver_done: bool,
    /// Woken when `driver_done` is set.
    #[cfg(feature = "client")]
    pub on_driver_done: Option<Waker>,
}

/// At most this many pieces of output go into one vectored write.
const MAX_WRITE_SLICES: usize = 8;

/// A handle on the shared state.
pub(crate) type SharedRef = Arc<Mutex<Shared>>;

impl Shared {
    pub fn new(core: Connection, settings: &ConnectionSettings) -> SharedRef {
        Arc::new(Mutex::new(Shared {
            codec: Codec::new(core),
            max_send_buffer: settings.max_send_buffer,
            close_on_backpressure: settings.close_on_backpressure,
            writer: None,
            driver: None,
            taken: 0,
            sent: VecDeque::new(),
            pings: VecDeque::new(),
            force_close: false,
            writer_gone: false,
            #[cfg(feature = "client")]
            close_requested: false,
            #[cfg(feature = "client")]
            driver_done: false,
            #[cfg(feature = "client")]
            on_driver_done: None,
        }))
    }

    /// Lock, ignoring poisoning: the state stays consistent between statements, and a
    /// panic in user code elsewhere must not take the connection down.
    pub fn lock(shared: &SharedRef) -> MutexGuard<'_, Shared> {
        shared.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn core(&mut self) -> &mut Connection {
        self.codec.core_mut()
    }

    /// Refuse a send while the buffer is at or over its high-water mark.
    pub fn check_backpressure(&mut self) -> Result<(), Error> {
        let buffered = self.codec.core().buffered_amount();
        if buffered < self.max_send_buffer {
            return Ok(());
        }
        let limit = self.max_send_buffer;
        let err = Error::Backpressure { buffered, limit };
        if self.close_on_backpressure {
            self.core()
                .fail_with(Error::Backpressure { buffered, limit });
            self.wake_driver();
        }
        Err(err)
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

    /// A Pong arrived: complete the ping it answers and every earlier one (a peer may
    /// answer only the latest of several pings, RFC 6455 §5.5.3).
    pub fn pong_received(&mut self, payload: &[u8]) {
        let Some(at) = self.pings.iter().position(|(p, _, _)| p[..] == *payload) else {
            return;
        };
        for (_, sent_at, tx) in self.pings.drain(..=at) {
            let _ = tx.send(sent_at.elapsed());
        }
    }

    /// The connection is over: pending completions fail.
    pub fn release_waiters(&mut self) {
        for (_, waker) in self.sent.drain(..) {
            waker.wake();
        }
        self.pings.clear();
    }
}

/// The outgoing half: a stream of byte chunks for the transport (the actix-web
/// response body), ending when the transport should close. When the connection's
/// actor was created for it, the writer also drives that actor's context: actor,
/// driver and transport run in one task.
pub(crate) struct Writer {
    pub shared: SharedRef,
    /// The actor's context, when this writer drives it (shared with the route's
    /// [`Stalled`] task).
    pub actor: Option<ActorCell>,
    /// The waker the actor's context is polled with: it notes that the actor has
    /// work, so that the writer polls the actor only then, not on every write.
    pub actor_wake: Arc<ActorWake>,
    /// `actor_wake` as a `Waker`, made once.
    pub actor_waker: Waker,
}

/// An actor's context as a future, shared by the writer that drives it and, on the
/// route, the [`Stalled`] task that takes over while the writer is not polled.
pub(crate) type ActorCell = Rc<RefCell<Option<Pin<Box<dyn Future<Output = ()>>>>>>;

/// Poll the actor's context in `cell` once with `waker`; the cell is emptied when
/// the actor is done. Does nothing if the context is being polled already.
fn poll_actor(cell: &ActorCell, waker: &Waker) {
    let Ok(mut slot) = cell.try_borrow_mut() else {
        return;
    };
    let mut cx = Context::from_waker(waker);
    if slot
        .as_mut()
        .is_some_and(|a| a.as_mut().poll(&mut cx).is_ready())
    {
        *slot = None;
    }
}

/// Wakes the writer's task and records that the actor it drives was woken.
#[derive(Debug)]
pub(crate) struct ActorWake {
    woken: AtomicBool,
    outer: Mutex<Option<Waker>>,
    /// The writer handed a chunk to the transport and has not been polled since:
    /// the transport may have stopped asking for more (its buffer is full, the
    /// peer does not read), so wakes go to the [`Stalled`] task too.
    stalled: AtomicBool,
    /// The [`Stalled`] task's waker.
    stalled_task: Mutex<Option<Waker>>,
}

impl ActorWake {
    pub fn new() -> Arc<Self> {
        Arc::new(ActorWake {
            woken: AtomicBool::new(true),
            outer: Mutex::new(None),
            stalled: AtomicBool::new(false),
            stalled_task: Mutex::new(None),
        })
    }

    fn wake_stalled_task(&self) {
        if let Some(w) = self
            .stalled_task
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
        {
            w.wake_by_ref();
        }
    }

    fn set_outer(&self, waker: &Waker) {
        let mut outer = self.outer.lock().unwrap_or_else(|e| e.into_inner());
        if !outer.as_ref().is_some_and(|w| w.will_wake(waker)) {
            *outer = Some(waker.clone());
        }
    }
}

impl Wake for ActorWake {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.woken.store(true, Ordering::Release);
        if let Some(w) = self
            .outer
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
        {
            w.wake_by_ref();
        }
        if self.stalled.load(Ordering::Acquire) {
            self.wake_stalled_task();
        }
    }
}

/// Drives a route connection's actor while the transport does not poll the writer.
///
/// actix-http polls a response body only while its write buffer has room: when the
/// peer stops reading, it stops, and an actor driven only by the writer would stop
/// too (no timers, no idle timeout, no `Close` for the actor). This task, on the
/// same thread, polls the actor's context when the actor is woken while the writer
/// is stalled; otherwise it sleeps, costing nothing per message. It ends with the
/// writer.
pub(crate) struct Stalled {
    actor: ActorCell,
    wake: Arc<ActorWake>,
    waker: Waker,
}

impl Stalled {
    /// The task for `writer`'s actor; `None` when the writer drives no actor.
    pub fn new(writer: &Writer) -> Option<Stalled> {
        Some(Stalled {
            actor: writer.actor.clone()?,
            wake: writer.actor_wake.clone(),
            waker: writer.actor_waker.clone(),
        })
    }
}

impl Future for Stalled {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        {
            let mut task = this
                .wake
                .stalled_task
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            if !task.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                *task = Some(cx.waker().clone());
            }
        }
        if this.wake.stalled.load(Ordering::Acquire)
            && this.wake.woken.swap(false, Ordering::AcqRel)
        {
            poll_actor(&this.actor, &this.waker);
        }
        match this.actor.try_borrow() {
            Ok(slot) if slot.is_none() => Poll::Ready(()),
            _ => Poll::Pending,
        }
    }
}

impl std::fmt::Debug for Writer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Writer")
            .field("drives_actor", &self.actor.is_some())
            .finish_non_exhaustive()
    }
}

impl Writer {
    /// Poll the actor's context if it was woken since the last poll.
    fn drive_actor(&mut self, cx: &mut Context<'_>) {
        let Some(actor) = &self.actor else {
            return;
        };
        self.actor_wake.set_outer(cx.waker());
        if self.actor_wake.woken.swap(false, Ordering::AcqRel) {
            // Forget our waker while the actor runs: the sends it makes are taken
            // right after, without waking this task again.
            Shared::lock(&self.shared).writer = None;
            poll_actor(actor, &self.actor_waker);
        }
    }

    /// Write the output straight from the core's buffers with `write` (a socket's
    /// non-blocking vectored write), without taking it out: no buffer changes
    /// hands, and a large payload queued by reference goes out with the frames
    /// around it in one write. Returns `Ready` when the transport should be closed
    /// (the connection ended, or `write` failed); `Pending` when the output is
    /// written or `write` is not ready.
    pub fn poll_write_to(
        &mut self,
        cx: &mut Context<'_>,
        mut write: impl FnMut(&mut Context<'_>, &[IoSlice<'_>]) -> Poll<std::io::Result<usize>>,
    ) -> Poll<()> {
        self.drive_actor(cx);
        let mut s = Shared::lock(&self.shared);
        loop {
            if s.writer_gone {
                return Poll::Ready(());
            }
            let mut slices = [IoSlice::new(&[]); MAX_WRITE_SLICES];
            let n = s.codec.core().output_vectored(&mut slices);
            if n > 0 {
                match write(cx, &slices[..n]) {
                    Poll::Ready(Ok(n)) if n > 0 => {
                        s.core().advance_output(n);
                        s.output_taken(n);
                        continue;
                    }
                    Poll::Ready(_) => {
                        s.end_writer();
                        return Poll::Ready(());
                    }
                    Poll::Pending if !s.force_close => {
                        // Sends from elsewhere wake us too; the socket wakes us
                        // when it can take more.
                        s.register_writer(cx.waker());
                        return Poll::Pending;
                    }
                    Poll::Pending => {}
                }
            }
            if s.codec.core().should_close_transport() || s.force_close {
                s.end_writer();
                return Poll::Ready(());
            }
            s.register_writer(cx.waker());
            return Poll::Pending;
        }
    }
}

impl Shared {
    /// The writer took `n` output bytes: complete the `Sent`s they finish.
    fn output_taken(&mut self, n: usize) {
        self.taken += n as u64;
        let taken = self.taken;
        while self
            .sent
            .front()
            .is_some_and(|(offset, _)| *offset <= taken)
        {
            if let Some((_, waker)) = self.sent.pop_front() {
                waker.wake();
            }
        }
    }

    /// The transport is done: nothing more reaches the peer.
    fn end_writer(&mut self) {
        self.writer_gone = true;
        self.release_waiters();
        self.wake_driver();
    }

    fn register_writer(&mut self, waker: &Waker) {
        if !self.writer.as_ref().is_some_and(|w| w.will_wake(waker)) {
            self.writer = Some(waker.clone());
        }
    }
}

impl Stream for Writer {
    type Item = Result<Bytes, Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.actor_wake.stalled.store(false, Ordering::Release);
        self.drive_actor(cx);
        let mut s = Shared::lock(&self.shared);
        if s.writer_gone {
            return Poll::Ready(None);
        }
        let out = s.core().take_output_chunk();
        if !out.is_empty() {
            s.output_taken(out.len());
            // Until the transport polls again, the actor may have no one to drive it.
            self.actor_wake.stalled.store(true, Ordering::Release);
            return Poll::Ready(Some(Ok(out)));
        }
        if s.codec.core().should_close_transport() || s.force_close {
            s.end_writer();
            return Poll::Ready(None);
        }
        s.register_writer(cx.waker());
        Poll::Pending
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        // Stop the actor first (its driver locks the shared state as it goes), and
        // let the stalled task see that it is gone.
        if let Some(actor) = self.actor.take() {
            let stopped = actor.try_borrow_mut().map(|mut slot| slot.take());
            drop(stopped);
            self.actor_wake.wake_stalled_task();
        }
        Shared::lock(&self.shared).end_writer();
    }
}
