//! The short form: an [`Endpoint`] (a trait with a method per event, each with a
//! default) served by the library's own actor.

use actix::{Actor, ActorContext, Context, Handler};
use bytes::Bytes;

use super::{Close, Conn, Error, Message, Open, Ping, Pong, WithControl};

/// The application's end of a connection, as callbacks: implement the methods you
/// need, the others do nothing (pings are answered either way while `auto_pong` is
/// on). Served by [`EndpointActor`], an actix actor of the library's: wrap it with
/// [`endpoint`] wherever an actor goes (`ws::start`, `Server::listen`,
/// `Client::connect`). Each method gets the connection's [`Conn`] and the actor's
/// context (timers, `ctx.address()` for other actors, `ctx.stop()`).
///
/// ```no_run
/// use websocket_driver as ws;
///
/// struct Echo;
///
/// impl ws::Endpoint for Echo {
///     fn on_message(&mut self, conn: &ws::Conn, msg: ws::Message, _: &mut ws::EndpointContext<Self>) {
///         conn.send(msg);
///     }
/// }
///
/// async fn route(req: ws::Upgrade) -> impl actix_web::Responder {
///     ws::start(ws::endpoint(Echo), &req)
/// }
/// ```
///
/// The full form, an actor of your own with `Handler`s of [`Open`], [`Message`],
/// [`Error`] and [`Close`], serves the same connections.
///
/// Coming from actix-web-actors: the actor with `ws::WebsocketContext<Self>` and a
/// `StreamHandler<Result<ws::Message, ws::ProtocolError>>` becomes an `Endpoint`
/// (or the full form with a plain `Context<Self>`); pings, pongs, the heartbeat
/// and the Close are the library's. The [migration guide](https://github.com/websocket-driver/websocket-driver/blob/main/docs/migrating.md) maps every
/// piece, with the classic echo before and after.
#[doc(alias = "StreamHandler")]
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a `ws::Endpoint`",
    label = "`ws::endpoint(..)` takes a `ws::Endpoint`",
    note = "implement it (`impl ws::Endpoint for {Self} {{}}`: every method has a default), or pass an actor that handles ws::Open, ws::Message, ws::Error and ws::Close as it is"
)]
#[allow(unused_variables)]
pub trait Endpoint: Sized + Unpin + 'static {
    /// The connection is open; first of all.
    fn on_open(&mut self, conn: &Conn, ctx: &mut EndpointContext<Self>) {}

    /// A whole message arrived.
    fn on_message(&mut self, conn: &Conn, message: Message, ctx: &mut EndpointContext<Self>) {}

    /// A Ping arrived. With `auto_pong` on (the default) its Pong is queued already;
    /// with it off, answer with [`Conn::send_pong`] (the default method does).
    fn on_ping(&mut self, conn: &Conn, payload: Bytes, ctx: &mut EndpointContext<Self>) {
        if !conn.auto_pong() {
            conn.send_pong(&payload);
        }
    }

    /// A Pong arrived.
    fn on_pong(&mut self, conn: &Conn, payload: Bytes, ctx: &mut EndpointContext<Self>) {}

    /// The connection failed (at most once, before [`on_close`](Self::on_close)).
    fn on_error(&mut self, conn: &Conn, error: Error, ctx: &mut EndpointContext<Self>) {}

    /// The connection closed: the last call. The actor stops after it.
    fn on_close(&mut self, conn: &Conn, close: Close, ctx: &mut EndpointContext<Self>) {}
}

/// The actor context an [`Endpoint`]'s methods get: a plain actix `Context`
/// (timers, `ctx.address()`, `ctx.stop()`).
///
/// Coming from actix-web-actors: it takes the place of `ws::WebsocketContext<Self>`,
/// whose `ctx.text(..)`, `ctx.binary(..)`, `ctx.ping(..)` and `ctx.close(..)` are
/// the [`Conn`]'s `send_text`, `send_binary`, `send_ping` and `close`; see the
/// [migration guide](https://github.com/websocket-driver/websocket-driver/blob/main/docs/migrating.md).
#[doc(alias = "WebsocketContext")]
pub type EndpointContext<E> = Context<EndpointActor<E>>;

/// The library's actor that serves an [`Endpoint`]; made by [`endpoint`]. It
/// dereferences to the endpoint, so a timer's closure, which gets the actor,
/// reaches the endpoint's fields and methods as they are:
///
/// ```
/// use std::time::Duration;
///
/// use actix::AsyncContext;
/// use websocket_driver as ws;
///
/// struct Ticker {
///     ticks: u32,
/// }
///
/// impl ws::Endpoint for Ticker {
///     fn on_open(&mut self, _: &ws::Conn, ctx: &mut ws::EndpointContext<Self>) {
///         ctx.run_interval(Duration::from_secs(1), |ticker, _| {
///             ticker.ticks += 1; // the endpoint's field
///             if let Some(conn) = ticker.conn() {
///                 conn.send_text(format!("tick {}", ticker.ticks));
///             }
///         });
///     }
/// }
/// ```
#[derive(Debug)]
pub struct EndpointActor<E> {
    endpoint: E,
    conn: Option<Conn>,
}

impl<E> EndpointActor<E> {
    /// The endpoint.
    pub fn get_ref(&self) -> &E {
        &self.endpoint
    }

    /// The endpoint, to change it.
    pub fn get_mut(&mut self) -> &mut E {
        &mut self.endpoint
    }

    /// The connection, once open.
    pub fn conn(&self) -> Option<&Conn> {
        self.conn.as_ref()
    }
}

impl<E> std::ops::Deref for EndpointActor<E> {
    type Target = E;

    fn deref(&self) -> &E {
        &self.endpoint
    }
}

impl<E> std::ops::DerefMut for EndpointActor<E> {
    fn deref_mut(&mut self) -> &mut E {
        &mut self.endpoint
    }
}

/// Serve `endpoint` with the library's actor, every event included (pings and
/// pongs too): `ws::start(ws::endpoint(Echo), &req)`.
pub fn endpoint<E: Endpoint>(endpoint: E) -> WithControl<EndpointActor<E>> {
    WithControl(EndpointActor {
        endpoint,
        conn: None,
    })
}

impl<E: Endpoint> Actor for EndpointActor<E> {
    type Context = Context<Self>;
}

impl<E: Endpoint> Handler<Open> for EndpointActor<E> {
    type Result = ();
    fn handle(&mut self, open: Open, ctx: &mut Context<Self>) {
        self.endpoint.on_open(&open.conn, ctx);
        self.conn = Some(open.conn);
    }
}

impl<E: Endpoint> Handler<Message> for EndpointActor<E> {
    type Result = ();
    fn handle(&mut self, message: Message, ctx: &mut Context<Self>) {
        if let Some(conn) = &self.conn {
            self.endpoint.on_message(conn, message, ctx);
        }
    }
}

impl<E: Endpoint> Handler<Ping> for EndpointActor<E> {
    type Result = ();
    fn handle(&mut self, ping: Ping, ctx: &mut Context<Self>) {
        if let Some(conn) = &self.conn {
            self.endpoint.on_ping(conn, ping.0, ctx);
        }
    }
}

impl<E: Endpoint> Handler<Pong> for EndpointActor<E> {
    type Result = ();
    fn handle(&mut self, pong: Pong, ctx: &mut Context<Self>) {
        if let Some(conn) = &self.conn {
            self.endpoint.on_pong(conn, pong.0, ctx);
        }
    }
}

impl<E: Endpoint> Handler<Error> for EndpointActor<E> {
    type Result = ();
    fn handle(&mut self, error: Error, ctx: &mut Context<Self>) {
        if let Some(conn) = &self.conn {
            self.endpoint.on_error(conn, error, ctx);
        }
    }
}

impl<E: Endpoint> Handler<Close> for EndpointActor<E> {
    type Result = ();
    fn handle(&mut self, close: Close, ctx: &mut Context<Self>) {
        if let Some(conn) = self.conn.clone() {
            self.endpoint.on_close(&conn, close, ctx);
        }
        ctx.stop();
    }
}
