//! The connection's task: [`ConnTask`] writes the connection's output to the
//! transport and drives the connection's actor, so actor, driver and transport run
//! in one task; and, on the route, the [`Stalled`] task that drives the actor while
//! the transport does not poll the connection's task.

#[cfg(feature = "web")]
use std::{cell::RefCell, rc::Rc};
use std::{
    future::Future,
    pin::Pin,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc, Mutex,
    },
    task::{Context, Poll, Wake, Waker},
};

use atomic_waker::AtomicWaker;
use bytes::Bytes;
use futures_core::Stream;

#[cfg(feature = "server")]
use super::owned::End;
#[cfg(feature = "web")]
use super::owned::TransportEnd;
use super::slab::OwnedRef;

/// At most this many pieces of output go into one vectored write.
#[cfg(feature = "server")]
const MAX_WRITE_SLICES: usize = 8;

/// An actor's context as a future, shared by the connection's task that drives it
/// and, on the route, the [`Stalled`] task that takes over while the connection's
/// task is not polled.
#[cfg(feature = "web")]
pub(crate) type ActorCell = Rc<RefCell<Option<Pin<Box<dyn Future<Output = ()>>>>>>;

/// The connection's task: the root of the work of one connection. It hands the
/// connection's output to the transport, as a stream of byte chunks (the actix-web
/// response body, the client's pump) or by writing to a socket directly
/// ([`poll_write_to`](Self::poll_write_to), the standalone server), and ends when
/// the transport should close. When the connection's actor was created for it, it
/// also drives that actor's context (whose driver reads the input): actor, driver
/// and transport run in one task.
pub(crate) struct ConnTask {
    owned: OwnedRef,
    /// The actor's context, when this task drives it.
    actor: DrivenActor,
    /// The waker the actor's context is polled with: it notes that the actor has
    /// work, so that the task polls the actor only then, not on every write.
    actor_wake: Arc<ActorWake>,
    /// `actor_wake` as a `Waker`, made once.
    actor_waker: Waker,
}

impl std::fmt::Debug for ConnTask {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnTask")
            .field("drives_actor", &!matches!(self.actor, DrivenActor::None))
            .finish_non_exhaustive()
    }
}

/// The actor's context a [`ConnTask`] drives.
enum DrivenActor {
    /// None (a client's connection runs in an actor driven elsewhere), or the
    /// actor is done.
    None,
    /// Driven by this task alone (in place: no cell to share).
    Alone(Pin<Box<dyn Future<Output = ()>>>),
    /// Shared with the route's [`Stalled`] task.
    #[cfg(feature = "web")]
    Shared(ActorCell),
}

/// Poll the actor's context in `cell` once with `waker`; the cell is emptied when
/// the actor is done. Does nothing if the context is being polled already.
#[cfg(feature = "web")]
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

/// Wakes the connection's task and records that the actor it drives was woken.
#[derive(Debug)]
pub(crate) struct ActorWake {
    woken: AtomicBool,
    /// The connection's task: woken without a lock (the socket's readiness wakes
    /// the actor once per message read).
    outer: AtomicWaker,
    /// The task handed a chunk to the transport and has not been polled since:
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

    /// A wake from the route's input (actix-http's request payload, which only the
    /// dispatcher that polls the connection's task feeds, in the same poll and
    /// before it polls that task): the actor has work, and the dispatcher polls
    /// the task next anyway, unless the task is stalled (then the wake goes
    /// everywhere, as any other). Waking the dispatcher from inside its own poll
    /// would only make it poll once more, with a read that finds nothing.
    #[cfg(feature = "web")]
    fn wake_from_input(self: &Arc<Self>) {
        if self.stalled.load(Ordering::Acquire) {
            self.wake_by_ref();
        } else {
            self.woken.store(true, Ordering::Release);
        }
    }

    /// A waker that wakes with [`wake_from_input`](Self::wake_from_input), on the
    /// same allocation.
    #[cfg(feature = "web")]
    fn input_waker(self: &Arc<Self>) -> Waker {
        use std::task::{RawWaker, RawWakerVTable};

        // SAFETY (all four): the data pointer is always one from `Arc::into_raw`
        // of an `Arc<ActorWake>` that this waker owns one count of.
        unsafe fn clone(data: *const ()) -> RawWaker {
            unsafe { Arc::increment_strong_count(data.cast::<ActorWake>()) };
            RawWaker::new(data, &VTABLE)
        }
        unsafe fn wake(data: *const ()) {
            let wake = unsafe { Arc::from_raw(data.cast::<ActorWake>()) };
            wake.wake_from_input();
        }
        unsafe fn wake_by_ref(data: *const ()) {
            let wake =
                std::mem::ManuallyDrop::new(unsafe { Arc::from_raw(data.cast::<ActorWake>()) });
            wake.wake_from_input();
        }
        unsafe fn drop(data: *const ()) {
            std::mem::drop(unsafe { Arc::from_raw(data.cast::<ActorWake>()) });
        }
        static VTABLE: RawWakerVTable = RawWakerVTable::new(clone, wake, wake_by_ref, drop);

        let data = Arc::into_raw(self.clone()).cast::<()>();
        // SAFETY: the vtable's functions keep the contract above.
        unsafe { Waker::from_raw(RawWaker::new(data, &VTABLE)) }
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

/// Drives a route connection's actor while the transport does not poll the
/// connection's task.
///
/// actix-http polls a response body only while its write buffer has room: when the
/// peer stops reading, it stops, and an actor driven only by the connection's task
/// would stop too (no timers, no idle timeout, no `Close` for the actor). This
/// task, on the same thread, polls the actor's context when the actor is woken
/// while the connection's task is stalled; otherwise it sleeps, costing nothing per
/// message. It ends with the connection's task.
#[cfg(feature = "web")]
pub(crate) struct Stalled {
    actor: ActorCell,
    wake: Arc<ActorWake>,
    waker: Waker,
}

#[cfg(feature = "web")]
impl Stalled {
    /// The task for `task`'s actor (which the two share from now on); `None`
    /// when it drives no actor.
    pub fn new(task: &mut ConnTask) -> Option<Stalled> {
        let cell = match std::mem::replace(&mut task.actor, DrivenActor::None) {
            DrivenActor::None => return None,
            DrivenActor::Alone(actor) => Rc::new(RefCell::new(Some(actor))),
            DrivenActor::Shared(cell) => cell,
        };
        task.actor = DrivenActor::Shared(cell.clone());
        Some(Stalled {
            actor: cell,
            wake: task.actor_wake.clone(),
            waker: task.actor_waker.clone(),
        })
    }
}

#[cfg(feature = "web")]
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

impl ConnTask {
    /// The task of the connection `owned`, driving no actor (yet).
    pub fn new(owned: OwnedRef) -> ConnTask {
        let actor_wake = ActorWake::new();
        ConnTask {
            owned,
            actor: DrivenActor::None,
            actor_waker: Waker::from(actor_wake.clone()),
            actor_wake,
        }
    }

    /// The waker for the route's input: a wake marks the actor woken without
    /// waking the dispatcher, which polls this task right after it fed the input
    /// (see `ActorWake::wake_from_input`).
    #[cfg(feature = "web")]
    pub fn input_waker(&self) -> Waker {
        self.actor_wake.input_waker()
    }

    /// Drive `actor` (the connection's actor's context, as a future) from now on.
    #[cfg(any(feature = "web", feature = "server"))]
    pub fn drive(&mut self, actor: Pin<Box<dyn Future<Output = ()>>>) {
        self.actor = DrivenActor::Alone(actor);
    }

    /// The connection's end, when the transport cannot be ended by dropping it
    /// (the route's socket).
    #[cfg(feature = "web")]
    pub fn set_transport(&self, transport: Box<dyn TransportEnd>) {
        self.owned.borrow_mut().set_transport(transport);
    }

    /// How the transport was asked to end, if it was.
    #[cfg(feature = "server")]
    pub fn end_asked(&self) -> Option<End> {
        self.owned.try_borrow().ok().and_then(|o| o.end_asked())
    }

    /// Ready once the transport is being cut (asked to end, or this task gone);
    /// `cx` is woken then (the client's pump, which writes).
    #[cfg(feature = "client")]
    pub fn poll_cut(&self, cx: &mut Context<'_>) -> Poll<()> {
        if self.owned.borrow_mut().cut_or_register(cx.waker()) {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }

    /// Poll the actor's context if it was woken since the last poll.
    fn drive_actor(&mut self, cx: &mut Context<'_>) {
        if matches!(self.actor, DrivenActor::None) {
            return;
        }
        // Registered on every poll: a wake takes the waker (it does not clone it).
        self.actor_wake.set_outer(cx.waker());
        if self.actor_wake.woken.swap(false, Ordering::AcqRel) {
            // Forget our waker while the actor runs: the sends it makes are taken
            // right after, without waking this task again.
            self.owned.borrow_mut().forget_task_waker();
            match &mut self.actor {
                DrivenActor::None => {}
                DrivenActor::Alone(actor) => {
                    let mut cx = Context::from_waker(&self.actor_waker);
                    if actor.as_mut().poll(&mut cx).is_ready() {
                        self.actor = DrivenActor::None;
                    }
                }
                #[cfg(feature = "web")]
                DrivenActor::Shared(cell) => poll_actor(cell, &self.actor_waker),
            }
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
    #[cfg(feature = "server")]
    pub fn poll_write_to(
        &mut self,
        cx: &mut Context<'_>,
        mut write: impl FnMut(&mut Context<'_>, &[std::io::IoSlice<'_>]) -> Poll<std::io::Result<usize>>,
    ) -> Poll<()> {
        self.drive_actor(cx);
        let mut owned = self.owned.borrow_mut();
        loop {
            if owned.task_gone() {
                return Poll::Ready(());
            }
            let mut slices = [std::io::IoSlice::new(&[]); MAX_WRITE_SLICES];
            let n = owned.output_vectored(&mut slices);
            if n > 0 {
                match write(cx, &slices[..n]) {
                    Poll::Ready(Ok(n)) if n > 0 => {
                        owned.output_written(n);
                        continue;
                    }
                    Poll::Ready(_) => {
                        owned.task_ended();
                        return Poll::Ready(());
                    }
                    Poll::Pending if owned.end_asked().is_none() => {
                        // Sends from elsewhere wake us too; the socket wakes us
                        // when it can take more.
                        owned.register_task(cx.waker());
                        return Poll::Pending;
                    }
                    Poll::Pending => {}
                }
            }
            if owned.transport_should_end() {
                owned.task_ended();
                return Poll::Ready(());
            }
            owned.register_task(cx.waker());
            return Poll::Pending;
        }
    }
}

impl Stream for ConnTask {
    type Item = Result<Bytes, std::io::Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.actor_wake.stalled.store(false, Ordering::Release);
        self.drive_actor(cx);
        let mut owned = self.owned.borrow_mut();
        if owned.task_gone() {
            return Poll::Ready(None);
        }
        let out = owned.take_output();
        if !out.is_empty() {
            // Until the transport polls again, the actor may have no one to drive it.
            self.actor_wake.stalled.store(true, Ordering::Release);
            return Poll::Ready(Some(Ok(out)));
        }
        if owned.transport_should_end() {
            if let Some(transport) = owned.take_transport() {
                // The route (RFC 6455 §5.5.1: "the server MUST close the underlying
                // TCP connection immediately"): actix-http closes once it wrote
                // what it holds; if the peer does not take it, the close timeout
                // resets the socket.
                transport.output_ended();
            }
            owned.task_ended();
            return Poll::Ready(None);
        }
        owned.register_task(cx.waker());
        Poll::Pending
    }
}

impl Drop for ConnTask {
    fn drop(&mut self) {
        // The transport goes with the task: the actor's driver must not arrange
        // to reset the socket later.
        let transport = self
            .owned
            .try_borrow_mut()
            .ok()
            .and_then(|mut o| o.take_transport());
        // Stop the actor first (its driver borrows the state as it goes), and let
        // the stalled task see that it is gone.
        match std::mem::replace(&mut self.actor, DrivenActor::None) {
            DrivenActor::None => {}
            DrivenActor::Alone(actor) => drop(actor),
            #[cfg(feature = "web")]
            DrivenActor::Shared(actor) => {
                let stopped = actor.try_borrow_mut().map(|mut slot| slot.take());
                drop(stopped);
                self.actor_wake.wake_stalled_task();
            }
        }
        if let Ok(mut owned) = self.owned.try_borrow_mut() {
            owned.task_ended();
        }
        if let Some(transport) = transport {
            transport.task_dropped();
        }
    }
}
