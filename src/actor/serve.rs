//! What serves a connection: [`Serve`], implemented for every [`WebSocketActor`],
//! for [`WithControl`] (an actor that also takes pings and pongs), and for the
//! library's own actors ([`endpoint`](super::endpoint), [`forward`](super::forward)).

use actix::{dev::MessageResponse, Context, Handler};
use bytes::Bytes;

use super::{
    check::{
        Handlers, HandlesClose, HandlesControl, HandlesError, HandlesMessage, HandlesOpen, IsActor,
    },
    Ping, Pong, WebSocketActor,
};

/// What a connection's pings and pongs are handed to, besides the core.
pub struct Control<A: WebSocketActor> {
    ping: Option<fn(&mut A, &mut Context<A>, Bytes)>,
    pong: Option<fn(&mut A, &mut Context<A>, Bytes)>,
}

impl<A: WebSocketActor> Clone for Control<A> {
    fn clone(&self) -> Self {
        Control {
            ping: self.ping,
            pong: self.pong,
        }
    }
}

impl<A: WebSocketActor> std::fmt::Debug for Control<A> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Control")
            .field("pings", &self.ping.is_some())
            .field("pongs", &self.pong.is_some())
            .finish()
    }
}

impl<A: WebSocketActor> Control<A> {
    /// Pings and pongs stay with the library (the actor has no handlers for them).
    pub(crate) fn none() -> Self {
        Control {
            ping: None,
            pong: None,
        }
    }

    /// Whether the actor answers pings itself (so the library must not when
    /// `auto_pong` is off).
    pub(crate) fn takes_pings(&self) -> bool {
        self.ping.is_some()
    }

    pub(crate) fn ping(&self, act: &mut A, ctx: &mut Context<A>, payload: Bytes) {
        if let Some(f) = self.ping {
            f(act, ctx, payload);
        }
    }

    pub(crate) fn pong(&self, act: &mut A, ctx: &mut Context<A>, payload: Bytes) {
        if let Some(f) = self.pong {
            f(act, ctx, payload);
        }
    }
}

/// Call the actor's handler for `msg` the way its mailbox would (the driver hands
/// every event to the actor through it: no mailbox in between).
pub(super) fn handle<A, M>(act: &mut A, ctx: &mut Context<A>, msg: M)
where
    A: Handler<M> + actix::Actor<Context = Context<A>>,
    M: actix::Message<Result = ()>,
{
    let response = <A as Handler<M>>::handle(act, msg, ctx);
    response.handle(ctx, None);
}

/// Something that can serve a WebSocket connection: the argument of `ws::start`,
/// `Server::start`, `Server::listen`'s factory and `Client::connect`.
///
/// - Any [`WebSocketActor`] (the four handlers): pings are answered for it and not
///   shown to it.
/// - [`WithControl`]`(actor)`, for an actor that also handles [`Ping`] and [`Pong`].
/// - [`endpoint`](super::endpoint)`(handler)`: a [`Endpoint`](super::Endpoint)
///   served by the library's own actor, every event included.
/// - [`forward`](super::forward)`(addr)`: the events go to a shared actor, tagged
///   with the connection's id.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot serve a WebSocket connection",
    note = "an actor serves one when it has `Context<Self>` and handles ws::Open, ws::Message, ws::Error and ws::Close; or implement ws::Endpoint and pass ws::endpoint(..)"
)]
pub trait Serve: 'static {
    /// The actor that runs the connection.
    type Actor: WebSocketActor;

    /// The actor, and where its pings and pongs go.
    fn into_parts(self) -> (Self::Actor, Control<Self::Actor>);
}

// The pieces first, each with its own message when missing (see `check`).
impl<A> Serve for A
where
    Handlers: IsActor<A> + HandlesOpen<A> + HandlesMessage<A> + HandlesError<A> + HandlesClose<A>,
    A: WebSocketActor,
{
    type Actor = A;

    fn into_parts(self) -> (A, Control<A>) {
        (self, Control::none())
    }
}

/// An actor that also receives the connection's [`Ping`]s and [`Pong`]s:
/// `ws::start(ws::WithControl(MyActor), &req)`. With `auto_pong` off
/// ([`ProtocolSettings::auto_pong`](crate::ProtocolSettings::auto_pong)), it answers
/// pings itself with [`Conn::send_pong`](super::Conn::send_pong).
#[derive(Debug, Clone, Copy, Default)]
pub struct WithControl<A>(pub A);

impl<A> Serve for WithControl<A>
where
    Handlers: IsActor<A>
        + HandlesOpen<A>
        + HandlesMessage<A>
        + HandlesError<A>
        + HandlesClose<A>
        + HandlesControl<A>,
    A: WebSocketActor + Handler<Ping> + Handler<Pong>,
{
    type Actor = A;

    fn into_parts(self) -> (A, Control<A>) {
        let control = Control {
            ping: Some(|act: &mut A, ctx: &mut Context<A>, p: Bytes| handle(act, ctx, Ping(p))),
            pong: Some(|act: &mut A, ctx: &mut Context<A>, p: Bytes| handle(act, ctx, Pong(p))),
        };
        (self.0, control)
    }
}
