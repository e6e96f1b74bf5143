//! # websocket-driver
//!
//! A WebSocket library (RFC 6455) for actix, modelled on the Common Lisp
//! `websocket-driver`: one handler actor and one route give you whole messages,
//! heartbeats, limits checked before anything is buffered, back-pressure and a clean
//! close, with typed events.
//!
//! ## Quick start: an actix-web echo server
//!
//! Each connection is served by an actor of yours that handles four messages:
//! [`Open`] (with the [`Conn`] to send through), [`Message`] (whole text or binary
//! messages), [`Error`] (at most one: what broke the connection) and [`Close`]
//! (exactly one, always last).
//!
//! ```no_run
//! use actix::prelude::*;
//! use actix_web::{web, App, HttpServer, Responder};
//! use websocket_driver as ws;
//!
//! #[derive(Default)]
//! struct Echo {
//!     conn: Option<ws::Conn>,
//! }
//!
//! impl Actor for Echo {
//!     type Context = Context<Self>;
//! }
//!
//! impl Handler<ws::Open> for Echo {
//!     type Result = ();
//!     fn handle(&mut self, open: ws::Open, _: &mut Context<Self>) {
//!         self.conn = Some(open.conn);
//!     }
//! }
//!
//! impl Handler<ws::Message> for Echo {
//!     type Result = ();
//!     fn handle(&mut self, msg: ws::Message, _: &mut Context<Self>) {
//!         if let Some(conn) = &self.conn {
//!             // Fails (never panics) once closing, or past the send buffer's mark.
//!             if let Err(err) = conn.send(msg) {
//!                 tracing::debug!(%err, "echo dropped");
//!             }
//!         }
//!     }
//! }
//!
//! impl Handler<ws::Error> for Echo {
//!     type Result = ();
//!     fn handle(&mut self, err: ws::Error, _: &mut Context<Self>) {
//!         tracing::debug!(%err, code = ?err.close_code(), "connection failed");
//!     }
//! }
//!
//! impl Handler<ws::Close> for Echo {
//!     type Result = ();
//!     fn handle(&mut self, close: ws::Close, ctx: &mut Context<Self>) {
//!         tracing::debug!(code = close.code.0, reason = %close.reason, "closed");
//!         ctx.stop();
//!     }
//! }
//!
//! async fn route(req: ws::Request) -> impl Responder {
//!     ws::Server::new()
//!         .max_length(1 << 20) // 1009 past 1 MiB, before the payload is read
//!         .protocols(["chat"])
//!         .start(Echo::default(), &req)
//! }
//!
//! #[actix_web::main]
//! async fn main() -> std::io::Result<()> {
//!     HttpServer::new(|| App::new().route("/ws", web::get().to(route)))
//!         .bind("127.0.0.1:9001")?
//!         .run()
//!         .await
//! }
//! ```
//!
//! ## A client
//!
//! The same actor serves a client connection: [`Client`] connects to a `ws://` or
//! `wss://` URL (rustls), runs the opening handshake and delivers the same
//! [`Open`], [`Message`], [`Error`] and [`Close`]; it fails with a typed
//! [`ClientError`] and can reconnect ([`ReconnectPolicy`]). The complete program is
//! on [`Client`]; `examples/client.rs` is a command-line client.
//!
//! ```no_run
//! # use actix::prelude::*;
//! # use websocket_driver as ws;
//! # #[derive(Default)] struct MyActor;
//! # impl Actor for MyActor { type Context = Context<Self>; }
//! # impl Handler<ws::Open> for MyActor { type Result = (); fn handle(&mut self, _: ws::Open, _: &mut Context<Self>) {} }
//! # impl Handler<ws::Message> for MyActor { type Result = (); fn handle(&mut self, _: ws::Message, _: &mut Context<Self>) {} }
//! # impl Handler<ws::Error> for MyActor { type Result = (); fn handle(&mut self, _: ws::Error, _: &mut Context<Self>) {} }
//! # impl Handler<ws::Close> for MyActor { type Result = (); fn handle(&mut self, _: ws::Close, _: &mut Context<Self>) {} }
//! # async fn run() -> Result<(), ws::ClientError> {
//! let addr = ws::Client::new("wss://example.com/feed")?
//!     .protocols(["feed.v2"])
//!     .connect(MyActor::default())
//!     .await?;
//! # let _ = addr; Ok(()) }
//! ```
//!
//! ## Compression, and serving without actix-web
//!
//! permessage-deflate (RFC 7692) is negotiated when configured on either end:
//! `ws::Server::new().deflate(ws::DeflateConfig::on())`,
//! `ws::Client::new(url)?.deflate(ws::DeflateConfig::on())`, or the `[deflate]`
//! table of the settings; the message limit applies to the inflated size. For a
//! broadcast, [`Server::prepare`] compresses a message once into a
//! [`PreparedMessage`] that [`Conn::send_prepared`] sends to every connection.
//! [`Server::listen`] serves WebSocket without actix-web (an actix-server acceptor,
//! the same actor and messages), holding less per connection than a route.
//!
//! ## The sans-I/O core
//!
//! Underneath, [`proto::Connection`] is the whole protocol without I/O: bytes in,
//! events and bytes out. It runs anywhere (`default-features = false` builds it
//! without actix or tokio):
//!
//! ```
//! use websocket_driver as ws;
//! use ws::proto::{Connection, Event, Message, Role};
//!
//! let mut server = Connection::new(Role::Server, ws::Config::default().max_message_size(1 << 20));
//! server.open();
//! // A masked text frame "Hello" (RFC 6455 §5.7), as a browser would send it.
//! server.receive(&[0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58]);
//! while let Some(event) = server.poll_event() {
//!     if let Event::Message(Message::Text(text)) = event {
//!         server.send_text(&text).unwrap(); // echo
//!     }
//! }
//! assert_eq!(&server.take_output()[..], b"\x81\x05Hello");
//! ```

#![warn(missing_docs, missing_debug_implementations)]

#[cfg(feature = "actor")]
pub mod actor;
#[cfg(feature = "client")]
pub mod client;
#[cfg(feature = "actor")]
pub mod codec;
pub mod config;
pub mod error;
pub mod handshake;
#[cfg(feature = "web")]
pub mod listen;
pub mod proto;
#[cfg(feature = "web")]
pub mod web;

#[cfg(feature = "actor")]
pub use actor::{
    open_connections, shutdown, Close, Conn, ConnectionSettings, Message, Open, Pong, Sent,
    WebSocketActor,
};
#[cfg(feature = "client")]
pub use client::{Client, ClientError, ClientSettings, ReconnectPolicy};
pub use config::{Config, DeflateConfig};
pub use error::Error;
pub use proto::{CloseCode, PreparedMessage, ReadyState};
#[cfg(feature = "web")]
pub use web::{start, start_with, Request, Server};
