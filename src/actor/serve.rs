//! What serves a connection: [`Serve`], implemented for every [`WebSocketActor`],
//! for [`WithControl`] (an actor that also takes pings and pongs), and for the
//! library's own actors ([`endpoint`](super::endpoint), [`forward`](super::forward)).

use actix::{dev::MessageResponse, Actor, Context, Handler};
use bytes::Bytes;

use super::{Close, Error, Message, Open, Ping, Pong, WebSocketActor};

/// What a connection's pings and pongs are handed to, besides the core.
pub struct Control<A: WebSocketActor> {
    /// The actor's handler for a ping (`false`) or a pong (`true`): one pointer,
    /// as the driver of every connection holds it.
    control: Option<ControlFn<A>>,
}

/// Hands a ping (`false`) or a pong (`true`) to the actor.
type ControlFn<A> = fn(&mut A, &mut Context<A>, Bytes, bool);

impl<A: WebSocketActor> Clone for Control<A> {
    fn clone(&self) -> Self {
        Control {
            control: self.control,
        }
    }
}

impl<A: WebSocketActor> std::fmt::Debug for Control<A> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Control")
            .field("pings_and_pongs", &self.control.is_some())
            .finish()
    }
}

impl<A: WebSocketActor> Control<A> {
    /// Pings and pongs stay with the library (the actor has no handlers for them).
    pub(crate) fn none() -> Self {
        Control { control: None }
    }

    /// Whether the actor answers pings itself (so the library must not when
    /// `auto_pong` is off).
    pub(crate) fn takes_pings(&self) -> bool {
        self.control.is_some()
    }

    pub(crate) fn ping(&self, act: &mut A, ctx: &mut Context<A>, payload: Bytes) {
        if let Some(f) = self.control {
            f(act, ctx, payload, false);
        }
    }

    pub(crate) fn pong(&self, act: &mut A, ctx: &mut Context<A>, payload: Bytes) {
        if let Some(f) = self.control {
            f(act, ctx, payload, true);
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
            control: Some(|act: &mut A, ctx: &mut Context<A>, p: Bytes, pong: bool| {
                if pong {
                    handle(act, ctx, Pong(p));
                } else {
                    handle(act, ctx, Ping(p));
                }
            }),
        };
        (self.0, control)
    }
}

// What makes an actor one that serves a connection, one piece at a time, so that
// the compiler names the piece that is missing ("`MyWs` does not handle
// `ws::Close`") instead of repeating one message per missing handler with the
// library's own types in it. Each piece is a trait implemented for `Handlers` when
// the actor `A` has that handler; the implementations are not shown in errors
// (`diagnostic::do_not_recommend`), so an error stops at the piece and prints its
// own message. Public (they bound public impls), not re-exported.

/// The one type the pieces are implemented for (a name in the compiler's notes).
#[derive(Debug)]
pub struct Handlers;

/// `A` is an actix actor whose context is `Context<A>`.
#[diagnostic::on_unimplemented(
    message = "`{A}` is not an actor that can serve a WebSocket connection",
    label = "needs `impl Actor for {A} {{ type Context = Context<Self>; }}`",
    note = "an actor serves a connection when its context is actix's plain `Context<Self>` (actix-web-actors' `ws::WebsocketContext` has no counterpart: the library runs the connection) and it handles ws::Open, ws::Message, ws::Error and ws::Close; or implement ws::Endpoint and pass ws::endpoint(..)"
)]
pub trait IsActor<A> {}

#[diagnostic::do_not_recommend]
impl<A: Actor<Context = Context<A>>> IsActor<A> for Handlers {}

/// `A` handles [`Open`].
#[diagnostic::on_unimplemented(
    message = "`{A}` does not handle `ws::Open`",
    label = "needs `impl Handler<ws::Open> for {A}`",
    note = "ws::Open is the first event; it brings the ws::Conn to send through (actix-web-actors' `started` and `ctx`)"
)]
pub trait HandlesOpen<A> {}

#[diagnostic::do_not_recommend]
impl<A: Handler<Open>> HandlesOpen<A> for Handlers {}

/// `A` handles [`Message`].
#[diagnostic::on_unimplemented(
    message = "`{A}` does not handle `ws::Message`",
    label = "needs `impl Handler<ws::Message> for {A}`",
    note = "ws::Message is a whole text or binary message (actix-web-actors' `StreamHandler<Result<ws::Message, ws::ProtocolError>>`: pings, pongs and the Close are the library's)"
)]
pub trait HandlesMessage<A> {}

#[diagnostic::do_not_recommend]
impl<A: Handler<Message>> HandlesMessage<A> for Handlers {}

/// `A` handles [`Error`].
#[diagnostic::on_unimplemented(
    message = "`{A}` does not handle `ws::Error`",
    label = "needs `impl Handler<ws::Error> for {A}`",
    note = "ws::Error says what broke the connection (at most one, before ws::Close; actix-web-actors' `ws::ProtocolError`)"
)]
pub trait HandlesError<A> {}

#[diagnostic::do_not_recommend]
impl<A: Handler<Error>> HandlesError<A> for Handlers {}

/// `A` handles [`Close`].
#[diagnostic::on_unimplemented(
    message = "`{A}` does not handle `ws::Close`",
    label = "needs `impl Handler<ws::Close> for {A}`",
    note = "ws::Close is the last event, exactly once: the closing handshake is the library's"
)]
pub trait HandlesClose<A> {}

#[diagnostic::do_not_recommend]
impl<A: Handler<Close>> HandlesClose<A> for Handlers {}

/// `A` handles [`Ping`] and [`Pong`] (for [`WithControl`](super::WithControl)).
#[diagnostic::on_unimplemented(
    message = "`{A}` does not handle `ws::Ping` and `ws::Pong`",
    label = "ws::WithControl needs `impl Handler<ws::Ping> for {A}` and `impl Handler<ws::Pong> for {A}`",
    note = "without them, pass the actor itself: pings are answered for it"
)]
pub trait HandlesControl<A> {}

#[diagnostic::do_not_recommend]
impl<A: Handler<Ping> + Handler<Pong>> HandlesControl<A> for Handlers {}
