//! Why a client could not connect.

use std::{io, net::SocketAddr};

use super::{rustls, UrlError};
use crate::handshake::{BuildError, HandshakeError};

/// Why [`Client::connect`](super::Client::connect) failed: one variant per stage
/// (URL, request, DNS, TCP, TLS, HTTP, WebSocket handshake), so a caller can tell
/// a typo from an outage.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The URL cannot be connected to.
    #[error("invalid url: {0}")]
    Url(#[from] UrlError),
    /// An option cannot be written into the request (a header with a control
    /// character or a reserved name, a subprotocol that is not a token, ...).
    #[error("invalid request: {0}")]
    Request(#[from] BuildError),
    /// A root certificate given with `Client::root_certificate_der` or
    /// `root_certificate_pem` is not one rustls can use.
    #[error("invalid root certificate: {0}")]
    RootCertificate(String),
    /// The host name did not resolve to any address.
    #[error("cannot resolve {host:?}: {source}")]
    Dns {
        /// The host name.
        host: String,
        /// The resolver's error.
        #[source]
        source: io::Error,
    },
    /// No address of the host accepted the TCP connection (refused, unreachable);
    /// the error of the last address tried.
    #[error("cannot connect to {addr}: {source}")]
    Connect {
        /// The last address tried.
        addr: SocketAddr,
        /// Its error.
        #[source]
        source: io::Error,
    },
    /// A timer ran out: [`Timeout::Connect`] (`connect_timeout`: name resolution
    /// and TCP connection) or [`Timeout::Handshake`] (`handshake_timeout`: the TLS
    /// handshake and the opening handshake).
    #[error("{0} timed out")]
    Timeout(Timeout),
    /// The TLS handshake failed: the server's certificate is not trusted, has
    /// expired or names another host, or no protocol version or cipher suite was
    /// agreed.
    #[error("tls handshake failed: {0}")]
    Tls(rustls::Error),
    /// The connection failed or was closed by the server during the opening
    /// handshake (`UnexpectedEof` when it closed before a complete response).
    #[error("i/o error during the handshake: {0}")]
    Io(#[source] io::Error),
    /// The server answered with a status other than `101 Switching Protocols`
    /// (RFC 6455 §4.1: "If the status code received from the server is not 101, the
    /// client handles the response per HTTP procedures"; this client follows no
    /// redirect and does not authenticate: the headers carry `Location`,
    /// `WWW-Authenticate`, `Retry-After` for the caller).
    #[error("server answered with status {status}, not 101")]
    Status {
        /// The status code.
        status: u16,
        /// The response's headers, in order (values decoded lossily as UTF-8).
        headers: Vec<(String, String)>,
        /// The response's body (a refusal's reason, say), decoded lossily as
        /// UTF-8: its first 4 KiB, read within the handshake's time and at most
        /// one second more; empty when there was none.
        body: String,
    },
    /// The server answered `101`, but the response breaks RFC 6455 §4.1 (a wrong
    /// `Sec-WebSocket-Accept`, a missing `Upgrade` or `Connection`, a subprotocol or
    /// an extension the client did not offer) or HTTP: "the client MUST _Fail the
    /// WebSocket Connection_".
    #[error("invalid handshake response: {0}")]
    Handshake(#[source] HandshakeError),
}

impl ClientError {
    /// Whether trying again later may succeed: a name that did not resolve, a
    /// refused or dropped connection, a timeout, and the statuses that say "later"
    /// (408, 429, 500, 502, 503, 504). A reconnect policy retries only these; a bad
    /// URL, an untrusted certificate or a server that breaks the protocol stop it.
    pub fn is_transient(&self) -> bool {
        match self {
            ClientError::Dns { .. }
            | ClientError::Connect { .. }
            | ClientError::Timeout(_)
            | ClientError::Io(_) => true,
            ClientError::Status { status, .. } => {
                matches!(status, 408 | 429 | 500 | 502 | 503 | 504)
            }
            _ => false,
        }
    }
}

/// Which of the client's timers ran out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Timeout {
    /// Name resolution and the TCP connection took longer than `connect_timeout`.
    Connect,
    /// The TLS handshake and the opening handshake took longer than
    /// `handshake_timeout`.
    Handshake,
}

impl std::fmt::Display for Timeout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Timeout::Connect => "connect",
            Timeout::Handshake => "opening handshake",
        })
    }
}
