//! Starting a connection: its core opened from an accepted handshake, its state
//! (both halves, in its thread's slab), its driver in an actor's context, and its
//! task.

use std::sync::Arc;

use actix::{AsyncContext, Context};

use super::{
    driver::{Driver, Input},
    id::ConnId,
    owned::Owned,
    registry::Registry,
    shared::{Facts, Shared},
    slab::{self, thread_number, OwnedRef},
    task::ConnTask,
};
use crate::{
    proto::{Connection, Deflate, Role},
    settings::{ConnectionSettings, ProtocolSettings},
};

/// The core of a connection whose opening handshake succeeded (either role): the
/// subprotocol and the permessage-deflate agreement it made, open.
pub(crate) fn open_core(
    role: Role,
    settings: &ProtocolSettings,
    protocol: Option<String>,
    deflate: Option<Deflate>,
) -> Connection {
    let mut core = Connection::new(role, settings.clone());
    core.set_protocol(protocol);
    if let Some(deflate) = deflate {
        core.set_extension(Box::new(deflate));
    }
    core.open();
    core
}

/// The state of a connection over `core`, in this thread's slab.
fn create(core: Connection, settings: &ConnectionSettings) -> OwnedRef {
    let id = ConnId::next();
    slab::insert(id, |slot| {
        let shared = Arc::new(Shared::new(Facts {
            id,
            owner: thread_number(),
            slot,
            protocol: core.info().protocol().map(Box::from),
            extension: core.info().extension().map(|e| Box::from(e.name())),
            max_send_buffer: settings.max_send_buffer,
            auto_pong: core.info().settings().auto_pong,
            ready_state: core.ready_state(),
        }));
        Owned::new(core, shared, settings)
    })
}

/// Create the actor of `serve` with the driver of a connection over `core` (its
/// handshake done) and `input` in its context; returns the connection's task
/// (which writes the bytes for the peer).
///
/// No address of the actor is made here (the actor makes one with
/// `ctx.address()` when it wants one): an address held for the connection's
/// life would cost two allocations per connection, and the actor lives as long
/// as its driver runs in its context, address or not.
///
/// The actor does not get a task of its own: its context is polled by the
/// connection's task, so the actor, the connection's driver and the transport (the
/// actix-web dispatcher that polls the response body, or the standalone server's
/// socket writer) share one task. A received message reaches the actor's handler
/// and the reply reaches the socket buffer without a task switch. The actor lives
/// as long as the connection: when the transport is done, the task is dropped and
/// the actor stopped (its `stopping` and `stopped` still run).
#[cfg(any(feature = "web", feature = "server"))]
pub(crate) fn spawn<S, I>(
    serve: S,
    core: Connection,
    mut input: I,
    settings: &ConnectionSettings,
    registry: Registry,
    span: tracing::Span,
) -> ConnTask
where
    S: super::Serve,
    I: Input + 'static,
{
    let (actor, control) = serve.into_parts();
    let mut ctx = Context::<S::Actor>::new();
    let owned = create(core, settings);
    let mut task = ConnTask::new(owned.clone());
    input.attach(&task);
    ctx.spawn(Driver::<S::Actor, I>::new(
        owned, input, control, settings, registry, span,
    ));
    task.drive(Box::pin(ctx.into_future(actor)));
    task
}

/// Run a connection over `core`, read from `input`, in the context of an actor
/// running already (a client reconnecting runs one connection after another in the
/// same actor): its driver there; returns its `Conn` and its task, which the caller
/// runs (it drives no actor).
#[cfg(feature = "client")]
pub(crate) fn attach<A, I>(
    ctx: &mut Context<A>,
    core: Connection,
    input: I,
    control: super::Control<A>,
    settings: &ConnectionSettings,
    span: tracing::Span,
) -> (super::Conn, ConnTask)
where
    A: super::WebSocketActor,
    I: Input + 'static,
{
    let owned = create(core, settings);
    let conn = super::Conn::new(owned.borrow().shared().clone());
    ctx.spawn(Driver::<A, I>::new(
        owned.clone(),
        input,
        control,
        settings,
        Registry::clients(),
        span,
    ));
    (conn, ConnTask::new(owned))
}
