//! The opening handshake (RFC 6455 §4) as pure functions: bytes and strings in,
//! values out, no I/O.
//!
//! - Server: [`validate_request`] checks a parsed request against the
//!   [`Settings`](crate::Settings)' `server` and `deflate` sections
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
mod deflate;
mod error;
pub mod headers;
mod key;
mod origin;
mod server;

pub use client::{ClientRequest, Response};
pub use error::{write_refusal, write_refusal_body, BuildError, HandshakeError};
pub use headers::{parse_extensions, Extension};
pub use key::{accept_key, generate_key, GUID};
pub use origin::{origin_allowed, ANY_ORIGIN};
pub use server::{parse_request, validate_request, Accept, HttpVersion, RequestHead, RequestParts};

/// The longest HTTP head [`parse_request`] and [`ClientRequest::parse_response`]
/// accept, in bytes (16 KiB): a peer cannot make us buffer more while waiting for the
/// end of a head.
pub const MAX_HEAD_SIZE: usize = 16 * 1024;

/// The most header lines [`parse_request`] and [`ClientRequest::parse_response`]
/// accept in one head.
pub const MAX_HEADERS: usize = 64;

impl crate::Settings {
    /// Check what the settings would write into a handshake: the server's and the
    /// client's extra headers (names are tokens, values have no control character,
    /// none is one the handshake writes itself), their subprotocols (tokens, each
    /// once) and the client's `Origin`. A server leaves a bad extra header out of
    /// its responses, and a client refuses to connect; this says so up front, for
    /// settings read from a file.
    ///
    /// ```
    /// let mut settings = websocket_driver::Settings::default();
    /// assert!(settings.check().is_ok());
    /// settings.server.headers.insert("X-Bad".into(), "a\r\nInjected: 1".into());
    /// assert_eq!(
    ///     settings.check(),
    ///     Err(websocket_driver::handshake::BuildError::InvalidHeaderValue("X-Bad".into()))
    /// );
    /// ```
    pub fn check(&self) -> Result<(), BuildError> {
        for (name, value) in &self.server.headers {
            headers::check_header(name, value, &server::RESERVED_RESPONSE_HEADERS)?;
        }
        for protocol in &self.server.protocols {
            if !headers::is_token(protocol.as_bytes()) {
                return Err(BuildError::InvalidProtocol(protocol.clone()));
            }
        }
        // The client's parts are checked as its request would be built.
        ClientRequest::new("localhost", "/", self).map(drop)
    }
}
