//! # websocket-driver
//!
//! A WebSocket library (RFC 6455) for actix, modelled on the Common Lisp
//! `websocket-driver`. This release holds the sans-I/O protocol core: [`proto`]
//! (framing, masking, assembly, UTF-8, close handshake) and [`handshake`] (the
//! opening handshake as pure functions).
//!
//! ## Quick start (the core)
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
#[cfg(feature = "actor")]
pub mod codec;
pub mod config;
pub mod error;
pub mod handshake;
pub mod proto;
#[cfg(feature = "web")]
pub mod web;

#[cfg(feature = "actor")]
pub use actor::{
    open_connections, shutdown, Close, Conn, ConnectionSettings, Message, Open, Pong, Sent,
    WebSocketActor,
};
pub use config::Config;
pub use error::Error;
pub use proto::{CloseCode, ReadyState};
#[cfg(feature = "web")]
pub use web::{start, start_with, Request, Server};
