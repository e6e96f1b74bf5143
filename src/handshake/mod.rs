//! The opening handshake (RFC 6455 §4) as pure functions: bytes and strings in,
//! values out, no I/O.
//!
//! - Server: [`validate_request`] checks a parsed request against the
//!   [`Settings`](crate::settings::Settings)' `server` and `deflate` sections
//!   and returns an [`Accept`] that writes the `101` answer, or a
//!   [`HandshakeError`] that writes the refusal ([`HandshakeError::write_rejection`]).
//!   [`parse_request`] reads a request head from bytes for a server that reads its
//!   own socket.
//! - Client: [`ClientRequest`] writes the request for the `client` and `deflate`
//!   sections with a random
//!   key and checks the server's answer ([`ClientRequest::parse_response`]).
//! - Both: [`accept_key`], [`generate_key`] and the header grammar in [`headers`],
//!   including the `Sec-WebSocket-Extensions` parser [`parse_extensions`].

mod client;
pub(crate) mod deflate;
mod error;
pub mod headers;
mod http11;
mod key;
mod origin;
mod server;

pub use client::{ClientRequest, Response};
pub use error::{BuildError, HandshakeError};
pub use headers::{parse_extensions, Extension};
pub use http11::{parse_request, write_refusal, write_refusal_body, HttpVersion, RequestHead};
pub use key::{accept_key, generate_key, GUID};
pub use origin::{origin_allowed, ANY_ORIGIN};
pub use server::{validate_request, Accept, RequestParts};

/// The longest HTTP head [`parse_request`] and [`ClientRequest::parse_response`]
/// accept, in bytes (16 KiB): a peer cannot make us buffer more while waiting for the
/// end of a head.
pub const MAX_HEAD_SIZE: usize = 16 * 1024;

/// The most header lines [`parse_request`] and [`ClientRequest::parse_response`]
/// accept in one head.
pub const MAX_HEADERS: usize = 64;
