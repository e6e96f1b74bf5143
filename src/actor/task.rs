//! The connection's task: [`ConnTask`] writes the connection's output to the
//! transport and drives the connection's actor, so actor, driver and transport run
//! in one task; and, on the route, the [`Stalled`] task that drives the actor while
//! the transport does not poll the connection's task.

#[cfg(feature = "web")]
use std::sync::Arc;
#[cfg(feature = "web")]
use std::{cell::RefCell, rc::Rc};
use std::{
    future::Future,
    pin::Pin,
    task::{Context, Poll, Waker},
};

use bytes::Bytes;
use futures_core::Stream;

#[cfg(feature = "server")]
use super::owned::End;
#[cfg(feature = "web")]
use super::owned::TransportEnd;
#[cfg(feature = "web")]
use super::shared::Shared;
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
/// and transport run in one task. The actor's context is polled with the
/// connection's shared state as its waker, which notes that the actor has work, so
/// that the task polls the actor only then, not on every write.
pub(crate) struct ConnTask {
    owned: OwnedRef,
    /// The actor's context, when this task drives it.
    actor: DrivenActor,
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
    #[cfg_attr(not(any(feature = "web", feature = "server")), allow(dead_code))]
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

/// Drives a route connection's actor while the transport does not poll the
/// connection's task.
///
/// actix-http polls a response body only while its write buffer has room: when the
/// peer stops reading, it stops, and an actor driven only by the connection's task
/// would stop too (no timers, no idle timeout, no `Close` for the actor). This
/// task, on the same thread, polls the actor's context when the actor is woken
/// while the connection's task is stalled; otherwise it sleeps, costing nothing per
/// message. It ends with the connection's task.
///
/// It holds two pointers: with tokio's task around it, 128 bytes per connection
/// (one more, its waker, would make it 256: tokio rounds a task to 128 bytes).
#[cfg(feature = "web")]
pub(crate) struct Stalled {
    actor: ActorCell,
    /// The connection's shared state: the actor's waker.
    shared: Arc<Shared>,
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
        let shared = task.owned.borrow().shared().clone();
        Some(Stalled {
            actor: cell,
            shared,
        })
    }
}

#[cfg(feature = "web")]
impl Future for Stalled {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        this.shared.register_stalled_task(cx.waker());
        if this.shared.stalled() && this.shared.take_actor_woken() {
            poll_actor(&this.actor, &Waker::from(this.shared.clone()));
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
        ConnTask {
            owned,
            actor: DrivenActor::None,
        }
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

    /// Register this task's waker (on every poll: a wake takes the waker, it does
    /// not clone it), and poll the actor's context if it was woken since the last
    /// poll.
    fn drive_actor(&mut self, cx: &mut Context<'_>) {
        let shared = {
            let mut owned = self.owned.borrow_mut();
            owned.shared().register_task(cx.waker());
            if matches!(self.actor, DrivenActor::None) || !owned.shared().take_actor_woken() {
                return;
            }
            // Forget that we wait while the actor runs: the sends it makes are
            // taken right after, without waking this task again.
            owned.forget_task_waker();
            owned.shared().clone()
        };
        let waker = Waker::from(shared);
        match &mut self.actor {
            DrivenActor::None => {}
            DrivenActor::Alone(actor) => {
                let mut cx = Context::from_waker(&waker);
                if actor.as_mut().poll(&mut cx).is_ready() {
                    self.actor = DrivenActor::None;
                }
            }
            #[cfg(feature = "web")]
            DrivenActor::Shared(cell) => poll_actor(cell, &waker),
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
                        owned.wait_for_output();
                        return Poll::Pending;
                    }
                    Poll::Pending => {}
                }
            }
            if owned.transport_should_end() {
                owned.task_ended();
                return Poll::Ready(());
            }
            owned.wait_for_output();
            return Poll::Pending;
        }
    }
}

impl Stream for ConnTask {
    type Item = Result<Bytes, std::io::Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.owned.borrow().shared().set_stalled(false);
        self.drive_actor(cx);
        let mut owned = self.owned.borrow_mut();
        if owned.task_gone() {
            return Poll::Ready(None);
        }
        let out = owned.take_output();
        if !out.is_empty() {
            // Until the transport polls again, the actor may have no one to drive it.
            owned.shared().set_stalled(true);
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
        owned.wait_for_output();
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
                // Nothing of ours holds the state borrowed while the task is dropped.
                if let Ok(owned) = self.owned.try_borrow() {
                    owned.shared().wake_stalled_task();
                }
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
