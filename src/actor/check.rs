//! What makes an actor one that serves a connection, one piece at a time, so that
//! the compiler names the piece that is missing ("`MyWs` does not handle
//! `ws::Close`") instead of repeating one message per missing handler with the
//! library's own types in it.
//!
//! Each piece is a trait implemented for [`Handlers`] when the actor `A` has that
//! handler; the implementations are not shown in errors
//! (`diagnostic::do_not_recommend`), so the error stops at the piece and prints
//! its own message.

use actix::{Actor, Context, Handler};

use super::{Close, Error, Message, Open, Ping, Pong};

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
