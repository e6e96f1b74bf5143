//! The typed messages a user's actor receives.

use actix::{Actor, Context, Handler};

use super::Conn;
use crate::{proto, Error};

/// The connection is open (the seed's `open`); carries the [`Conn`] to send through.
/// Always the first message.
#[derive(Debug, Clone, actix::Message)]
#[rtype(result = "()")]
pub struct Open {
    /// The handle on the connection.
    pub conn: Conn,
}

/// A whole message (the seed's `message`): text or binary, never a fragment.
pub use proto::Message;

impl actix::Message for proto::Message {
    type Result = ();
}

/// The connection failed (the seed's `error`): the peer broke the protocol or a
/// limit, or a timer ran out. At most one, always followed by [`Close`].
impl actix::Message for Error {
    type Result = ();
}

/// The connection closed (the seed's `close`, with code and reason). Exactly one,
/// always the last message: 1005 when the peer's Close had no code, 1006 when the
/// transport ended without a Close. On a client it comes once the server closed the
/// transport after the closing handshake (RFC 6455 §7.1.1), or the close timeout
/// ran out, so an actor that stops on `Close` never cuts the transport early.
pub use proto::CloseEvent as Close;

impl actix::Message for proto::CloseEvent {
    type Result = ();
}

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
///             let _ = conn.send(msg);
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
pub trait WebSocketActor:
    Actor<Context = Context<Self>> + Handler<Open> + Handler<Message> + Handler<Error> + Handler<Close>
{
}

impl<A> WebSocketActor for A where
    A: Actor<Context = Context<A>>
        + Handler<Open>
        + Handler<Message>
        + Handler<Error>
        + Handler<Close>
{
}
