//! The actor layer: each connection served by an actix actor that receives typed
//! [`Open`], [`Message`], [`Error`] and [`Close`] messages (and, if it wants them,
//! [`Ping`] and [`Pong`]), with a [`Conn`] to send through, and the guard's timers.
//!
//! The seam below is the core's [`Connection`]: the
//! driver feeds it the bytes it reads and hands its events to the actor; the writer
//! writes its output. The connection's driver runs inside the user's actor context,
//! so a received message reaches the actor's handler without crossing a mailbox,
//! and a sent one reaches the socket's buffer directly.

mod conn;
mod driver;
mod endpoint;
mod error;
mod forward;
mod guard;
mod messages;
mod registry;
mod serve;
#[cfg(any(feature = "server", feature = "client"))]
pub(crate) mod socket;
pub(crate) mod state;
pub(crate) mod transport;
mod writer;

use actix::{Addr, AsyncContext, Context};

pub use conn::{Conn, ConnId, RoundTrip, Sent};
#[allow(unused_imports)] // `StreamInput` serves the route, `attach` the client.
pub(crate) use driver::{attach, Input, StreamInput};
pub use endpoint::{endpoint, Endpoint, EndpointActor, EndpointContext};
pub use error::{Error, SendError};
pub use forward::{forward, Forward, Forwarder};
pub use messages::{Close, Message, Open, Ping, Pong, Tagged, WebSocketActor};
pub(crate) use registry::{count_by_state, Registry};
pub use registry::{open_connections, shutdown};
pub use serve::{Control, Serve, WithControl};
#[allow(unused_imports)] // The route's.
pub(crate) use writer::{Stalled, Writer};

use crate::{proto::Connection, settings::ConnectionSettings};

/// Create the actor of `serve` with the driver of a connection over `core` (its
/// handshake done) and `input` in its context; returns its address and the writer
/// (the bytes for the peer).
///
/// The actor does not get a task of its own: its context is polled by the writer,
/// so the actor, the connection's driver and the transport (the actix-web
/// dispatcher that polls the response body, or the standalone server's socket
/// writer) share one task. A received message reaches the actor's handler and the
/// reply reaches the socket buffer without a task switch. The actor lives as long
/// as the connection: when the transport is done, the writer is dropped and the
/// actor stopped (its `stopping` and `stopped` still run).
#[cfg_attr(not(any(feature = "web", feature = "server")), allow(dead_code))]
pub(crate) fn spawn<S, I>(
    serve: S,
    core: Connection,
    input: I,
    settings: &ConnectionSettings,
    registry: Registry,
    span: tracing::Span,
) -> (Addr<S::Actor>, Writer)
where
    S: Serve,
    I: Input + 'static,
{
    let (actor, control) = serve.into_parts();
    let mut ctx = Context::<S::Actor>::new();
    let local = state::Local::create(core, settings);
    attach(
        &mut ctx,
        local.clone(),
        input,
        control,
        settings,
        registry,
        span,
    );
    let addr = ctx.address();
    let mut writer = Writer::new(local);
    writer.actor = Some(std::rc::Rc::new(std::cell::RefCell::new(Some(Box::pin(
        ctx.into_future(actor),
    )))));
    (addr, writer)
}
