//! The actor layer: each connection served by an actix actor that receives typed
//! [`Open`], [`Message`], [`Error`] and [`Close`] messages (and, if it wants them,
//! [`Ping`] and [`Pong`]), with a [`Conn`] to send through, and the connection's
//! timers.
//!
//! The seam below is the core's [`Connection`](crate::proto::Connection): the
//! driver feeds it the bytes it reads and hands its events to the actor; the
//! connection's task writes its output. The driver runs inside the user's actor
//! context, so a received message reaches the actor's handler without crossing a
//! mailbox, and a sent one reaches the socket's buffer directly.
//!
//! A connection's state is behind one wall: the owner thread's half
//! (`owned`, no lock) and the half any thread may read or ask (`shared`), each
//! with private fields and operations that keep their rules.

// Without a transport (the feature `actor` alone) nothing starts a connection:
// the connection's machinery is compiled, unused.
#![cfg_attr(
    not(any(feature = "web", feature = "server", feature = "client")),
    allow(dead_code, unused_imports)
)]

mod async_endpoint;
mod clock;
mod conn;
mod driver;
mod endpoint;
mod error;
mod forward;
mod id;
mod messages;
mod on_thread;
mod owned;
mod rate;
mod registry;
mod serve;
mod shared;
mod slab;
#[cfg(any(feature = "server", feature = "client"))]
pub(crate) mod socket;
mod spawn;
mod task;
mod timers;

pub use async_endpoint::{async_endpoint, AsyncEndpoint, AsyncEndpointActor, AsyncServe};
pub use conn::{Closed, Conn, RoundTrip, Sent};
pub(crate) use driver::Input;
#[cfg(feature = "web")]
pub(crate) use driver::{give_spare, land_at, take_spare, LINE, SPARE_MAX};
pub use endpoint::{endpoint, Endpoint, EndpointActor, EndpointContext};
pub use error::{Error, SendError};
pub use forward::{forward, Forward, Forwarder, Tagged};
pub use id::{ConnId, ParseConnIdError};
pub use messages::{Close, Message, Open, Ping, Pong, WebSocketActor};
pub use on_thread::{Accepted, AcceptedMany, Budget, OnThread, PreparedBatch, Refused, ThreadKey};
#[cfg(feature = "server")]
pub(crate) use owned::End;
#[cfg(feature = "web")]
pub(crate) use owned::TransportEnd;
#[cfg(any(feature = "web", feature = "server"))]
pub(crate) use registry::Registry;
pub use registry::{open_connections, shutdown};
pub use serve::{Control, Serve, WithControl};
#[cfg(feature = "client")]
pub(crate) use spawn::attach;
pub(crate) use spawn::open_core;
#[cfg(any(feature = "web", feature = "server"))]
pub(crate) use spawn::spawn;
#[cfg(any(feature = "server", feature = "client"))]
pub(crate) use task::ConnTask;
#[cfg(feature = "web")]
pub(crate) use task::Stalled;
