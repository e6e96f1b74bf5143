//! The outgoing half of a connection, which also drives its actor: [`Writer`], and
//! the route's [`Stalled`] task that drives the actor while the transport does not
//! poll the writer.

use std::{
    cell::RefCell,
    future::Future,
    io::IoSlice,
    pin::Pin,
    rc::Rc,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc, Mutex,
    },
    task::{Context, Poll, Wake, Waker},
};

use atomic_waker::AtomicWaker;
use bytes::Bytes;
use futures_core::Stream;

use super::state::LocalRef;

/// At most this many pieces of output go into one vectored write.
#[cfg_attr(not(feature = "server"), allow(dead_code))]
const MAX_WRITE_SLICES: usize = 8;

/// An actor's context as a future, shared by the writer that drives it and, on the
/// route, the [`Stalled`] task that takes over while the writer is not polled.
pub(crate) type ActorCell = Rc<RefCell<Option<Pin<Box<dyn Future<Output = ()>>>>>>;

/// The outgoing half: a stream of byte chunks for the transport (the actix-web
/// response body) or a direct writer to a socket ([`poll_write_to`](Self::poll_write_to)),
/// ending when the transport should close. When the connection's actor was created
/// for it, the writer also drives that actor's context: actor, driver and transport
/// run in one task.
pub(crate) struct Writer {
    pub local: LocalRef,
    /// The actor's context, when this writer drives it.
    pub actor: Option<ActorCell>,
    /// The waker the actor's context is polled with: it notes that the actor has
    /// work, so that the writer polls the actor only then, not on every write.
    pub actor_wake: Arc<ActorWake>,
    /// `actor_wake` as a `Waker`, made once.
    pub actor_waker: Waker,
}

impl std::fmt::Debug for Writer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Writer")
            .field("drives_actor", &self.actor.is_some())
            .finish_non_exhaustive()
    }
}

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
    /// The writer's task: woken without a lock (the socket's readiness wakes the
    /// actor once per message read).
    outer: AtomicWaker,
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
            outer: AtomicWaker::new(),
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
        self.outer.register(waker);
    }
}

impl Wake for ActorWake {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.woken.store(true, Ordering::Release);
        self.outer.wake();
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
#[cfg_attr(not(feature = "web"), allow(dead_code))]
pub(crate) struct Stalled {
    actor: ActorCell,
    wake: Arc<ActorWake>,
    waker: Waker,
}

#[cfg_attr(not(feature = "web"), allow(dead_code))]
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

impl Writer {
    /// A writer for `local`, driving no actor (yet).
    pub fn new(local: LocalRef) -> Writer {
        let actor_wake = ActorWake::new();
        Writer {
            local,
            actor: None,
            actor_waker: Waker::from(actor_wake.clone()),
            actor_wake,
        }
    }

    /// Poll the actor's context if it was woken since the last poll.
    fn drive_actor(&mut self, cx: &mut Context<'_>) {
        let Some(actor) = &self.actor else {
            return;
        };
        // Registered on every poll: a wake takes the waker (it does not clone it).
        self.actor_wake.set_outer(cx.waker());
        if self.actor_wake.woken.swap(false, Ordering::AcqRel) {
            // Forget our waker while the actor runs: the sends it makes are taken
            // right after, without waking this task again.
            self.local.borrow_mut().writer = None;
            poll_actor(actor, &self.actor_waker);
        }
    }

    /// Write the output straight from the core's buffers with `write` (a socket's
    /// non-blocking vectored write), without taking it out: no buffer changes
    /// hands, and a large payload queued by reference goes out with the frames
    /// around it in one write. The connection's state stays borrowed across
    /// `write`: only this thread ever touches it, and nothing runs on this thread
    /// meanwhile. Returns `Ready` when the transport should be closed (the
    /// connection ended, or `write` failed); `Pending` when the output is written
    /// or `write` is not ready.
    #[cfg_attr(not(feature = "server"), allow(dead_code))]
    pub fn poll_write_to(
        &mut self,
        cx: &mut Context<'_>,
        mut write: impl FnMut(&mut Context<'_>, &[IoSlice<'_>]) -> Poll<std::io::Result<usize>>,
    ) -> Poll<()> {
        self.drive_actor(cx);
        let mut l = self.local.borrow_mut();
        loop {
            if l.writer_gone {
                return Poll::Ready(());
            }
            let mut slices = [IoSlice::new(&[]); MAX_WRITE_SLICES];
            let n = l.core.output_vectored(&mut slices);
            if n > 0 {
                match write(cx, &slices[..n]) {
                    Poll::Ready(Ok(n)) if n > 0 => {
                        l.core.advance_output(n);
                        l.output_taken(n);
                        l.sync();
                        continue;
                    }
                    Poll::Ready(_) => {
                        l.end_writer();
                        return Poll::Ready(());
                    }
                    Poll::Pending if !l.force_close => {
                        // Sends from elsewhere wake us too; the socket wakes us
                        // when it can take more.
                        l.register_writer(cx.waker());
                        return Poll::Pending;
                    }
                    Poll::Pending => {}
                }
            }
            if l.core.should_close_transport() || l.force_close {
                l.end_writer();
                return Poll::Ready(());
            }
            l.register_writer(cx.waker());
            return Poll::Pending;
        }
    }
}

impl Stream for Writer {
    type Item = Result<Bytes, std::io::Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.actor_wake.stalled.store(false, Ordering::Release);
        self.drive_actor(cx);
        let mut l = self.local.borrow_mut();
        if l.writer_gone {
            return Poll::Ready(None);
        }
        let out = l.core.take_output_chunk();
        if !out.is_empty() {
            l.output_taken(out.len());
            l.sync();
            // Until the transport polls again, the actor may have no one to drive it.
            self.actor_wake.stalled.store(true, Ordering::Release);
            return Poll::Ready(Some(Ok(out)));
        }
        if l.core.should_close_transport() || l.force_close {
            if let Some(socket) = l.socket.take() {
                // The route (RFC 6455 §5.5.1: "the server MUST close the underlying
                // TCP connection immediately"): actix-http closes once it wrote
                // what it holds; if the peer does not take it, the close timeout
                // resets the socket.
                socket.watch_end();
            }
            l.end_writer();
            return Poll::Ready(None);
        }
        l.register_writer(cx.waker());
        Poll::Pending
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        // The transport goes with the writer: the actor's driver must not arrange
        // to reset the socket later.
        let socket = self
            .local
            .try_borrow_mut()
            .ok()
            .and_then(|mut l| l.socket.take());
        // Stop the actor first (its driver borrows the state as it goes), and let
        // the stalled task see that it is gone.
        if let Some(actor) = self.actor.take() {
            let stopped = actor.try_borrow_mut().map(|mut slot| slot.take());
            drop(stopped);
            self.actor_wake.wake_stalled_task();
        }
        if let Ok(mut l) = self.local.try_borrow_mut() {
            l.end_writer();
        }
        if let Some(socket) = socket {
            socket.end_read();
        }
    }
}
