//! The errors of the opening handshake: [`HandshakeError`] for what the peer sent,
//! [`BuildError`] for values given to this crate that cannot be written into a
//! handshake.

use super::{MAX_HEADERS, MAX_HEAD_SIZE};

/// An opening handshake that cannot go on, named for what was received.
///
/// On the server ([`validate_request`](super::validate_request),
/// [`parse_request`](super::parse_request)) each variant maps to an HTTP answer:
/// [`status`](Self::status), [`reason`](Self::reason) (a one-line plain-text body) and
/// [`response_headers`](Self::response_headers), all written at once by
/// [`write_rejection`](Self::write_rejection). A refused request is never upgraded.
///
/// On the client ([`ClientRequest::parse_response`](super::ClientRequest::parse_response))
/// any error means "the client MUST _Fail the WebSocket Connection_" (RFC 6455 §4.1):
/// close the transport. The HTTP mapping is meaningless there.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HandshakeError {
    /// The request method is not `GET` (RFC 6455 §4.2.1 item 1). Answered with
    /// `405 Method Not Allowed` and `Allow: GET` (RFC 9110 §15.5.6), as actix-web does.
    #[error("request method must be GET")]
    MethodNotGet,
    /// The request (or response) is not HTTP/1.1: RFC 6455 §4.2.1 item 1 needs
    /// "HTTP/1.1 or higher", and the upgrade mechanism with its `101` response exists
    /// only in HTTP/1.1 (HTTP/2 and HTTP/3 carry WebSocket with extended CONNECT,
    /// RFC 8441 and RFC 9220, which this module does not handle). `400`.
    #[error("http version must be 1.1")]
    UnsupportedHttpVersion,
    /// No `Host` header, or an empty one (RFC 6455 §4.2.1 item 2). `400`.
    #[error("missing host header")]
    MissingHost,
    /// More than one `Host` header (RFC 9112 §3.2: "a server MUST respond with a 400
    /// (Bad Request) status code to any HTTP/1.1 request message that [...] contains
    /// more than one Host header field line"). `400`.
    #[error("more than one host header")]
    DuplicateHost,
    /// No `Upgrade` header (RFC 6455 §4.2.1 item 3, §4.1 response check 2). `400`.
    #[error("missing upgrade header")]
    MissingUpgrade,
    /// An `Upgrade` header without the token `websocket` (RFC 6455 §4.2.1 item 3,
    /// §4.1 response check 2). `400`.
    #[error("upgrade header does not name websocket")]
    UpgradeNotWebSocket,
    /// No `Connection` header with the token `upgrade` (RFC 6455 §4.2.1 item 4,
    /// §4.1 response check 3). `400`.
    #[error("connection header does not contain upgrade")]
    MissingConnectionUpgrade,
    /// No `Sec-WebSocket-Key` header (RFC 6455 §4.2.1 item 5). `400`.
    #[error("missing sec-websocket-key header")]
    MissingKey,
    /// More than one `Sec-WebSocket-Key` header (RFC 6455 §11.3.1: it "MUST NOT appear
    /// more than once in an HTTP request"). `400`.
    #[error("more than one sec-websocket-key header")]
    DuplicateKey,
    /// A `Sec-WebSocket-Key` that is not the base64 encoding of exactly 16 bytes
    /// (RFC 6455 §4.2.1 item 5). `400`.
    #[error("sec-websocket-key is not 16 base64-encoded bytes")]
    InvalidKey,
    /// No `Sec-WebSocket-Version` header (RFC 6455 §4.2.1 item 6). Answered like
    /// [`UnsupportedVersion`](Self::UnsupportedVersion): `426` with
    /// `Sec-WebSocket-Version: 13`, so the client learns the version to speak.
    #[error("missing sec-websocket-version header")]
    MissingVersion,
    /// A `Sec-WebSocket-Version` other than exactly `13`, or more than one of them
    /// (RFC 6455 §4.2.2 /version/: the server "MUST abort the WebSocket handshake [...]
    /// and instead send an appropriate HTTP error code (such as 426 Upgrade Required)
    /// and a |Sec-WebSocket-Version| header field indicating the version(s) the server
    /// is capable of understanding"). `426`.
    #[error("sec-websocket-version must be 13")]
    UnsupportedVersion,
    /// The request's `Origin` is neither the server's own nor one it lists (see
    /// [`origin_allowed`](super::origin_allowed)), or the request has several
    /// `Origin` headers. `403` (RFC 6455 §4.2.2 /origin/: the server "MUST return an
    /// appropriate HTTP error code (e.g., a 403 Forbidden)").
    #[error("origin not allowed")]
    OriginNotAllowed,
    /// A `Sec-WebSocket-Protocol` header that is not a list of tokens (RFC 6455
    /// §4.2.1 item 8), or, in a response, not exactly one token (RFC 6455 §4.2.2
    /// /subprotocol/). `400`.
    #[error("invalid sec-websocket-protocol header")]
    InvalidProtocolHeader,
    /// A `Sec-WebSocket-Extensions` header that breaks the grammar of RFC 6455 §9.1.
    /// `400`.
    #[error("invalid sec-websocket-extensions header")]
    InvalidExtensionsHeader,
    /// An HTTP head that does not parse (RFC 9112). `400`.
    #[error("malformed http head")]
    MalformedHead,
    /// An HTTP head longer than [`MAX_HEAD_SIZE`](super::MAX_HEAD_SIZE) bytes.
    /// `431 Request Header Fields Too Large` (RFC 6585 §5).
    #[error("http head larger than {MAX_HEAD_SIZE} bytes")]
    HeadTooLarge,
    /// An HTTP head with more than [`MAX_HEADERS`](super::MAX_HEADERS) header lines.
    /// `431`.
    #[error("more than {MAX_HEADERS} headers")]
    TooManyHeaders,
    /// Client only: the server answered with a status other than `101` (RFC 6455
    /// §4.1: "If the status code received from the server is not 101, the client
    /// handles the response per HTTP procedures"; this client does not follow
    /// redirects or authenticate).
    #[error("unexpected status {0}, expected 101")]
    UnexpectedStatus(u16),
    /// Client only: the response has no `Sec-WebSocket-Accept` header (RFC 6455 §4.1
    /// response check 4).
    #[error("missing sec-websocket-accept header")]
    MissingAcceptKey,
    /// Client only: the response's `Sec-WebSocket-Accept` is not the one our key
    /// calls for (RFC 6455 §4.1 response check 4).
    #[error("sec-websocket-accept does not match the key")]
    InvalidAcceptKey,
    /// Client only: the server chose a subprotocol the client did not offer (RFC 6455
    /// §4.1 response check 6).
    #[error("server chose subprotocol {0:?}, which the client did not offer")]
    UnofferedProtocol(String),
    /// Client only: the server chose an extension the client did not offer (RFC 6455
    /// §4.1 response check 5). Holds the extension's name.
    #[error("server chose extension {0:?}, which the client did not offer")]
    UnofferedExtension(String),
    /// Client only: the server's permessage-deflate answer is not one the client's
    /// offer allows (RFC 7692 §7.1: the client "MUST _Fail the WebSocket
    /// Connection_"). Holds what is wrong with it.
    #[error("invalid permessage-deflate answer: {0}")]
    InvalidDeflateAnswer(String),
}

impl HandshakeError {
    /// The HTTP status a server answers this error with: `405` for
    /// [`MethodNotGet`](Self::MethodNotGet), `426` for a missing or unsupported
    /// `Sec-WebSocket-Version`, `403` for the origin check, `431` for a head over the
    /// limits and `400` for everything else (client-only variants included: they have
    /// no answer of their own).
    pub fn status(&self) -> u16 {
        match self {
            HandshakeError::MethodNotGet => 405,
            HandshakeError::MissingVersion | HandshakeError::UnsupportedVersion => 426,
            HandshakeError::OriginNotAllowed => 403,
            HandshakeError::HeadTooLarge | HandshakeError::TooManyHeaders => 431,
            _ => 400,
        }
    }

    /// A short plain-text reason, lowercase with no trailing period, for the body of
    /// the error response. The same as the `Display` text, without the peer's data.
    pub fn reason(&self) -> &'static str {
        match self {
            HandshakeError::MethodNotGet => "request method must be GET",
            HandshakeError::UnsupportedHttpVersion => "http version must be 1.1",
            HandshakeError::MissingHost => "missing host header",
            HandshakeError::DuplicateHost => "more than one host header",
            HandshakeError::MissingUpgrade => "missing upgrade header",
            HandshakeError::UpgradeNotWebSocket => "upgrade header does not name websocket",
            HandshakeError::MissingConnectionUpgrade => {
                "connection header does not contain upgrade"
            }
            HandshakeError::MissingKey => "missing sec-websocket-key header",
            HandshakeError::DuplicateKey => "more than one sec-websocket-key header",
            HandshakeError::InvalidKey => "sec-websocket-key is not 16 base64-encoded bytes",
            HandshakeError::MissingVersion => "missing sec-websocket-version header",
            HandshakeError::UnsupportedVersion => "sec-websocket-version must be 13",
            HandshakeError::OriginNotAllowed => "origin not allowed",
            HandshakeError::InvalidProtocolHeader => "invalid sec-websocket-protocol header",
            HandshakeError::InvalidExtensionsHeader => "invalid sec-websocket-extensions header",
            HandshakeError::MalformedHead => "malformed http head",
            HandshakeError::HeadTooLarge => "http head too large",
            HandshakeError::TooManyHeaders => "too many headers",
            HandshakeError::UnexpectedStatus(_) => "unexpected status, expected 101",
            HandshakeError::MissingAcceptKey => "missing sec-websocket-accept header",
            HandshakeError::InvalidAcceptKey => "sec-websocket-accept does not match the key",
            HandshakeError::UnofferedProtocol(_) => {
                "server chose a subprotocol the client did not offer"
            }
            HandshakeError::UnofferedExtension(_) => {
                "server chose an extension the client did not offer"
            }
            HandshakeError::InvalidDeflateAnswer(_) => "invalid permessage-deflate answer",
        }
    }
}

/// A value given to this crate (an option, a header, a host or path) that cannot be
/// written into a handshake: it would break the HTTP grammar or inject headers (CR,
/// LF and other control characters are refused everywhere), or it collides with a
/// header the handshake writes itself.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// A header name that is not an RFC 9110 §5.1 token.
    #[error("invalid header name {0:?}")]
    InvalidHeaderName(String),
    /// A header value with a control character other than a tab (CR, LF, NUL, ...;
    /// RFC 9110 §5.5). Holds the header's name.
    #[error("invalid value for header {0:?}")]
    InvalidHeaderValue(String),
    /// A header the handshake writes itself (`Upgrade`, `Connection`,
    /// `Sec-WebSocket-*`, ...) or that a `101` response or a `GET` request may not
    /// carry (`Content-Length`, `Transfer-Encoding`). Holds the header's name.
    #[error("header {0:?} is written by the handshake itself")]
    ReservedHeader(String),
    /// A subprotocol that is not a token (RFC 6455 §4.1 item 10).
    #[error("invalid subprotocol {0:?}")]
    InvalidProtocol(String),
    /// A subprotocol offered twice (RFC 6455 §4.1 item 10: the elements "MUST all be
    /// unique strings").
    #[error("duplicate subprotocol {0:?}")]
    DuplicateProtocol(String),
    /// A `Sec-WebSocket-Extensions` value that breaks the grammar of RFC 6455 §9.1.
    #[error("invalid extensions {0:?}")]
    InvalidExtensions(String),
    /// A host that is not `host[:port]` (RFC 3986 §3.2.2).
    #[error("invalid host {0:?}")]
    InvalidHost(String),
    /// A request target that is not an absolute path with an optional query, with no
    /// fragment (RFC 6455 §3: fragment identifiers "MUST NOT be used").
    #[error("invalid request target {0:?}")]
    InvalidTarget(String),
    /// A `Sec-WebSocket-Key` that is not the base64 encoding of 16 bytes
    /// (RFC 6455 §4.1 item 7).
    #[error("sec-websocket-key is not 16 base64-encoded bytes")]
    InvalidKey,
}
