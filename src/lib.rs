//! # websocket-driver
//!
//! A WebSocket library (RFC 6455, RFC 7692) for actix, modelled on the Common Lisp
//! `websocket-driver`: one handler and one route give you whole messages,
//! heartbeats, limits checked before anything is buffered, back-pressure and a
//! clean close, with typed events.
//!
//! ## Quick start: an actix-web echo server
//!
//! The short form: an [`Endpoint`] implements the events it cares about, and the
//! library's own actor serves it.
//!
//! ```no_run
//! use actix_web::{web, App, HttpServer, Responder};
//! use websocket_driver as ws;
//!
//! struct Echo;
//!
//! impl ws::Endpoint for Echo {
//!     fn on_message(&mut self, conn: &ws::Conn, msg: ws::Message, _: &mut ws::EndpointContext<Self>) {
//!         conn.send(msg); // refused (never a panic) once closing or past the send buffer
//!     }
//! }
//!
//! async fn route(req: ws::Upgrade) -> impl Responder {
//!     ws::start(ws::endpoint(Echo), &req)
//! }
//!
//! #[actix_web::main]
//! async fn main() -> std::io::Result<()> {
//!     HttpServer::new(|| App::new().route("/ws", web::get().to(route)))
//!         .on_connect(ws::on_connect) // the connection ends its TCP socket itself
//!         .bind("127.0.0.1:9001")?
//!         .run()
//!         .await
//! }
//! ```
//!
//! Handlers that `.await` (a database call, a timer) implement [`AsyncEndpoint`]
//! instead, served by [`async_endpoint`]: the next event waits for the previous
//! handler's future, and the connection stops reading meanwhile.
//!
//! The full form: an actix actor of your own, which handles four messages:
//! [`Open`] (with the [`Conn`] to send through), [`Message`] (whole text or binary
//! messages), [`Error`] (at most one: what broke the connection) and [`Close`]
//! (exactly one, always last); [`WithControl`] adds [`Ping`] and [`Pong`].
//!
//! ```no_run
//! use actix::prelude::*;
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
//!             if let Some(err) = conn.send(msg).error() {
//!                 tracing::debug!(%err, "echo dropped");
//!             }
//!         }
//!     }
//! }
//!
//! impl Handler<ws::Error> for Echo {
//!     type Result = ();
//!     fn handle(&mut self, err: ws::Error, _: &mut Context<Self>) {
//!         tracing::debug!(%err, code = %err.close_code(), "connection failed");
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
//! async fn route(req: ws::Upgrade) -> impl actix_web::Responder {
//!     ws::Server::new()
//!         .max_length(1 << 20) // 1009 past 1 MiB, before the payload is read
//!         .protocols(["chat"])
//!         .start(Echo::default(), &req)
//! }
//! ```
//!
//! ## Without actix-web, and as a client
//!
//! [`Server::listen`] serves WebSocket on its own (feature `server`, no actix-web
//! compiled), with a factory that sees the [`Request`] and may [`Refuse`] it;
//! [`Client`] connects to a `ws://` or `wss://` URL (rustls) and serves the same
//! actor; it fails with a typed [`ClientError`] and can reconnect
//! ([`ReconnectPolicy`]).
//!
//! ```no_run
//! use websocket_driver as ws;
//!
//! struct Echo;
//!
//! impl ws::Endpoint for Echo {
//!     fn on_message(&mut self, conn: &ws::Conn, msg: ws::Message, _: &mut ws::EndpointContext<Self>) {
//!         conn.send(msg);
//!     }
//! }
//!
//! struct Hello;
//!
//! impl ws::AsyncEndpoint for Hello {
//!     async fn on_open(&mut self, conn: &ws::Conn) {
//!         conn.send_text("hello");
//!     }
//!
//!     async fn on_message(&mut self, conn: &ws::Conn, msg: ws::Message) {
//!         println!("{msg:?}");
//!         conn.close(ws::CloseCode::NORMAL, "done");
//!     }
//! }
//!
//! #[actix_rt::main]
//! async fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     let server = ws::Server::new().listen("127.0.0.1:9001", 1, |req| {
//!         match req.query_param("token").as_deref() {
//!             Some("secret") => Ok(ws::endpoint(Echo)),
//!             _ => Err(ws::Refuse::new(401, "bad token")),
//!         }
//!     })?;
//!     actix_rt::spawn(server);
//!     let close = ws::Client::new("ws://127.0.0.1:9001/?token=secret")?
//!         .run(ws::async_endpoint(Hello))
//!         .await?;
//!     println!("closed with {}", close.code.0);
//!     Ok(())
//! }
//! ```
//!
//! ## The runtime
//!
//! Everything runs on actix's runtime (a tokio current-thread runtime per worker
//! thread). With the actix-web route, `#[actix_web::main]` starts it (actix-web is
//! a dependency already); for the standalone server and the client, add
//! `actix-rt = "2"` and use `#[actix_rt::main]` (tests: `#[actix_rt::test]`). The
//! crate does not re-export a main macro: the macro's expansion names the
//! `actix_rt` crate by its path, so a re-export would still need that dependency.
//!
//! ## Compression, broadcast and settings
//!
//! permessage-deflate (RFC 7692) is negotiated when configured on either end
//! ([`DeflateSettings`]); the message limit applies to the inflated size. For a
//! broadcast, [`Server::prepare`] compresses a message once into a
//! [`PreparedMessage`] that [`Conn::send_prepared`] sends to every connection.
//! Every option lives in one [`Settings`] tree, deserializable from TOML
//! (`config/default.toml` lists them all).
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
//! let mut server = Connection::new(Role::Server, ws::ProtocolSettings::default().max_message_size(1 << 20));
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
//!
//! ## Features
//!
//! | feature | what | default |
//! |---|---|---|
//! | (none) | the sans-I/O core: [`proto`], [`handshake`], [`settings`], [`hub_wire`] (the Redis backplane's wire format) | always |
//! | `actor` | the actor layer: [`Conn`], the typed messages, [`Endpoint`], [`AsyncEndpoint`], [`forward`] | with the others |
//! | `server` | [`Server::listen`] and [`Server::listen_async`], `ws://` and `wss://` (rustls), without actix-web | yes |
//! | `web` | the actix-web route: [`start`], [`Upgrade`] | yes |
//! | `web-rustls` | [`on_connect`] finds the socket under actix-web's rustls listener too (actix-web's `rustls-0_23`) | yes |
//! | `client` | [`Client`], `ws://` and `wss://` (rustls) | yes |

#![warn(missing_docs, missing_debug_implementations)]
#![cfg_attr(docsrs, feature(doc_cfg))]

#[cfg(feature = "actor")]
pub mod actor;
#[cfg(feature = "client")]
pub mod client;
pub mod handshake;
#[cfg(feature = "actor")]
pub mod hub;
pub mod hub_wire;
#[cfg(feature = "actor")]
pub mod metrics;
pub mod proto;
#[cfg(any(feature = "web", feature = "server"))]
pub mod server;
pub mod settings;
#[cfg(any(feature = "server", feature = "client"))]
pub mod tls;
#[cfg(feature = "web")]
pub mod web;

/// The README's examples, compiled as doc tests.
#[cfg(all(doctest, feature = "web", feature = "server", feature = "client"))]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;

#[cfg(feature = "actor")]
pub use actor::{
    async_endpoint, endpoint, forward, open_connections, shutdown, AsyncEndpoint, AsyncServe,
    Close, Conn, ConnId, Endpoint, EndpointActor, EndpointContext, Error, Message, Open, Ping,
    Pong, RoundTrip, SendError, Sent, Serve, Tagged, WebSocketActor, WithControl,
};
/// The payload type of binary messages, pings and pongs (`on_ping(conn, payload:
/// ws::Bytes, ..)`): the `bytes` crate's, re-exported so that a handler's signature
/// needs no dependency of its own.
pub use bytes::Bytes;
#[cfg(feature = "client")]
pub use client::{Client, ClientError};
#[cfg(feature = "actor")]
pub use hub::{
    Backplane, Hub, JoinError, JoinOptions, Joined, Member, Position, Presence, PresenceKind,
    Published, ReadyStateCounts, TopicSettings,
};
pub use proto::{CloseCode, PreparedMessage, ReadyState};
#[cfg(any(feature = "web", feature = "server"))]
pub use server::Server;
#[cfg(feature = "server")]
pub use server::{Refuse, Request};
pub use settings::{
    ClientSettings, ConnectionSettings, DeflateSettings, HubSettings, OverLimit, ProtocolSettings,
    RateLimit, ReconnectPolicy, RedisSettings, ServerSettings, Settings, SettingsError,
    SlowConsumer, TlsSettings,
};
#[cfg(feature = "web")]
pub use web::{on_connect, start, start_with, Upgrade, UpgradeRequest};
