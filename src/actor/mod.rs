//! The actor layer: each connection served by an actix actor that receives typed
//! [`Open`], [`Message`], [`Error`](crate::Error) and [`Close`] messages, a [`Conn`] handle to send
//! through, and the guard's timers.
//!
//! The connection's driver runs inside the user's actor context, so a received
//! message reaches the actor's handler without crossing a mailbox, and a sent one
//! reaches the socket's buffer directly.

mod conn;
mod driver;
mod guard;
mod messages;
mod registry;
pub(crate) mod settings;
pub(crate) mod shared;
#[cfg(any(feature = "web", feature = "client"))]
pub(crate) mod socket;

pub use conn::{Conn, Pong, Sent};
#[allow(unused_imports)] // `spawn*` serve the server paths, `attach_input` the client.
pub(crate) use driver::{attach_input, spawn, spawn_input, Input, StreamInput};
pub use messages::{Close, Message, Open, WebSocketActor};
pub use registry::{open_connections, shutdown};
pub use settings::ConnectionSettings;
pub(crate) use shared::{Stalled, Writer};
