//! The typed messages a connection's actor receives.

use actix::{Actor, Context, Handler};
use bytes::Bytes;

use super::{Conn, Error};
use crate::proto;

/// The connection is open; carries the [`Conn`] to send through.
/// Always the first message.
#[derive(Debug, Clone, actix::Message)]
#[rtype(result = "()")]
#[doc(alias = "open")]
pub struct Open {
    /// The handle on the connection.
    pub conn: Conn,
}

/// A whole message: text or binary, never a fragment.
pub use proto::Message;

impl actix::Message for proto::Message {
    type Result = ();
}

/// The connection failed: see [`Error`]. At most one, always
/// followed by [`Close`].
impl actix::Message for Error {
    type Result = ();
}

/// The connection closed. Exactly one,
/// always the last message: 1005 when the peer's Close had no code, 1006 when the
/// transport ended without a Close. On a client it comes once the server closed the
/// transport after the closing handshake (RFC 6455 §7.1.1), or the close timeout
/// ran out, so an actor that stops on `Close` never cuts the transport early.
pub use proto::CloseEvent as Close;

impl actix::Message for proto::CloseEvent {
    type Result = ();
}

/// A Ping arrived, with its payload (RFC 6455 §5.5.2). Delivered only to an actor
/// served through [`WithControl`](super::WithControl); with `auto_pong` on (the
/// default) its Pong is already queued, with it off the actor answers with
/// [`Conn::send_pong`].
#[derive(Debug, Clone, PartialEq, Eq, actix::Message)]
#[rtype(result = "()")]
pub struct Ping(pub Bytes);

/// A Pong arrived, with its payload (RFC 6455 §5.5.3): the answer to a ping, or an
/// unsolicited heartbeat. Delivered only to an actor served through
/// [`WithControl`](super::WithControl); the keep-alive and
/// [`Conn::send_ping`]'s `RoundTrip` use it either way.
#[derive(Debug, Clone, PartialEq, Eq, actix::Message)]
#[rtype(result = "()")]
pub struct Pong(pub Bytes);

/// An actor that can serve a WebSocket connection: one that handles [`Open`],
/// [`Message`], [`Error`] and [`Close`]. Implemented for every such actor.
///
/// ```
/// use actix::prelude::*;
/// use websocket_driver as ws;
///
/// struct Echo(Option<ws::Conn>);
/// impl Actor for Echo {
///     type Context = Context<Self>;
/// }
/// impl Handler<ws::Open> for Echo {
///     type Result = ();
///     fn handle(&mut self, open: ws::Open, _: &mut Context<Self>) {
///         self.0 = Some(open.conn);
///     }
/// }
/// impl Handler<ws::Message> for Echo {
///     type Result = ();
///     fn handle(&mut self, msg: ws::Message, _: &mut Context<Self>) {
///         if let Some(conn) = &self.0 {
///             conn.send(msg);
///         }
///     }
/// }
/// impl Handler<ws::Error> for Echo {
///     type Result = ();
///     fn handle(&mut self, _: ws::Error, _: &mut Context<Self>) {}
/// }
/// impl Handler<ws::Close> for Echo {
///     type Result = ();
///     fn handle(&mut self, _: ws::Close, ctx: &mut Context<Self>) {
///         ctx.stop();
///     }
/// }
///
/// fn assert_serves<A: ws::WebSocketActor>() {}
/// assert_serves::<Echo>();
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a WebSocket actor",
    note = "an actor serves a connection when its context is `Context<Self>` and it handles ws::Open, ws::Message, ws::Error and ws::Close; or implement ws::Endpoint and pass ws::endpoint(..)"
)]
pub trait WebSocketActor:
    Actor<Context = Context<Self>> + Handler<Open> + Handler<Message> + Handler<Error> + Handler<Close>
{
}

// Not shown in errors: `Serve` names the missing piece instead.
#[diagnostic::do_not_recommend]
impl<A> WebSocketActor for A where
    A: Actor<Context = Context<A>>
        + Handler<Open>
        + Handler<Message>
        + Handler<Error>
        + Handler<Close>
{
}
