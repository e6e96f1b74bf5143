//! HTTP/1.1 heads (RFC 9112) for both roles of the opening handshake: reading a
//! request or response head with `httparse` within [`MAX_HEAD_SIZE`] bytes and
//! [`MAX_HEADERS`] header lines, and writing header lines and refusals.

use super::{
    headers::{is_field_value, is_token, SEC_WEBSOCKET_VERSION},
    HandshakeError, MAX_HEADERS, MAX_HEAD_SIZE,
};

/// The HTTP version of a request or a response.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum HttpVersion {
    /// HTTP/0.9.
    Http09,
    /// HTTP/1.0.
    Http10,
    /// HTTP/1.1, the only version the handshake of RFC 6455 runs on.
    Http11,
    /// HTTP/2 (WebSocket over HTTP/2 is RFC 8441, not handled here).
    Http2,
    /// HTTP/3 (WebSocket over HTTP/3 is RFC 9220, not handled here).
    Http3,
}

/// A request head read from bytes by [`parse_request`], for a server that reads its
/// own socket.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RequestHead {
    /// The request method.
    pub method: String,
    /// The request target (path and query), e.g. `/chat?room=1`.
    pub target: String,
    /// The HTTP version ([`HttpVersion::Http10`] or [`HttpVersion::Http11`]).
    pub version: HttpVersion,
    /// Every header line, in order: names as received, values as bytes.
    pub headers: Vec<(String, Vec<u8>)>,
}

impl RequestHead {
    /// The first value of header `name` (compared ASCII case-insensitively).
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_slice())
    }
}

/// Read an HTTP/1.x request head from the start of `buf`, for a server that reads its
/// own socket.
///
/// - `Ok(None)`: the head is not complete yet; nothing is consumed, call again with
///   more bytes.
/// - `Ok(Some((head, n)))`: the head took the first `n` bytes; anything after them
///   belongs to the caller (the client may send frames right after its handshake).
/// - `Err`: not HTTP ([`HandshakeError::MalformedHead`]), or over the limits: a head
///   longer than [`MAX_HEAD_SIZE`] bytes ([`HandshakeError::HeadTooLarge`], reported
///   as soon as that many bytes arrived without a complete head, so buffering stays
///   bounded) or with more than [`MAX_HEADERS`] header lines
///   ([`HandshakeError::TooManyHeaders`]). Answer with
///   [`HandshakeError::write_rejection`].
///
/// Header values that span several lines (obsolete line folding) are refused.
///
/// ```
/// use websocket_driver::handshake::parse_request;
///
/// let bytes = b"GET /chat HTTP/1.1\r\nHost: example.com\r\n\r\n\x81";
/// assert_eq!(parse_request(&bytes[..20]), Ok(None));
/// let (head, used) = parse_request(bytes).unwrap().unwrap();
/// assert_eq!((head.method.as_str(), head.target.as_str(), used), ("GET", "/chat", 41));
/// ```
pub fn parse_request(buf: &[u8]) -> Result<Option<(RequestHead, usize)>, HandshakeError> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut request = httparse::Request::new(&mut headers);
    let Some(used) = complete(request.parse(window(buf)), buf)? else {
        return Ok(None);
    };
    let head = RequestHead {
        method: request.method.unwrap_or_default().to_owned(),
        target: request.path.unwrap_or_default().to_owned(),
        version: version(request.version),
        headers: owned(request.headers),
    };
    Ok(Some((head, used)))
}

/// A response head read from bytes by [`parse_response`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ResponseHead {
    /// The status code.
    pub(crate) status: u16,
    /// The HTTP version of the status line.
    pub(crate) version: HttpVersion,
    /// Every header line, in order: names as received, values as bytes.
    pub(crate) headers: Vec<(String, Vec<u8>)>,
}

/// Read an HTTP/1.x response head from the start of `buf`, for a client that reads
/// its own socket: as [`parse_request`] does, within the same limits.
pub(crate) fn parse_response(buf: &[u8]) -> Result<Option<(ResponseHead, usize)>, HandshakeError> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut response = httparse::Response::new(&mut headers);
    let Some(used) = complete(response.parse(window(buf)), buf)? else {
        return Ok(None);
    };
    let head = ResponseHead {
        status: response.code.unwrap_or_default(),
        version: version(response.version),
        headers: owned(response.headers),
    };
    Ok(Some((head, used)))
}

/// The bytes a head is looked for in: at most [`MAX_HEAD_SIZE`].
fn window(buf: &[u8]) -> &[u8] {
    buf.get(..MAX_HEAD_SIZE).unwrap_or(buf)
}

/// What `httparse` said of the window, as the length of a complete head, `None` for
/// "not complete yet", or the error: a head still incomplete once [`MAX_HEAD_SIZE`]
/// bytes arrived is too large (so buffering stays bounded), more than
/// [`MAX_HEADERS`] lines are too many, anything else is not HTTP.
fn complete(
    parsed: Result<httparse::Status<usize>, httparse::Error>,
    buf: &[u8],
) -> Result<Option<usize>, HandshakeError> {
    match parsed {
        Ok(httparse::Status::Complete(used)) => Ok(Some(used)),
        Ok(httparse::Status::Partial) if buf.len() >= MAX_HEAD_SIZE => {
            Err(HandshakeError::HeadTooLarge)
        }
        Ok(httparse::Status::Partial) => Ok(None),
        Err(httparse::Error::TooManyHeaders) => Err(HandshakeError::TooManyHeaders),
        Err(_) => Err(HandshakeError::MalformedHead),
    }
}

/// `httparse`'s minor version of HTTP/1.x.
fn version(minor: Option<u8>) -> HttpVersion {
    match minor {
        Some(1) => HttpVersion::Http11,
        _ => HttpVersion::Http10,
    }
}

fn owned(headers: &[httparse::Header<'_>]) -> Vec<(String, Vec<u8>)> {
    headers
        .iter()
        .map(|h| (h.name.to_owned(), h.value.to_owned()))
        .collect()
}

/// Append `name: value\r\n`. Callers have checked both.
pub(crate) fn write_header(dst: &mut Vec<u8>, name: &str, value: &str) {
    dst.extend_from_slice(name.as_bytes());
    dst.extend_from_slice(b": ");
    dst.extend_from_slice(value.as_bytes());
    dst.extend_from_slice(b"\r\n");
}

impl HandshakeError {
    /// Headers the error response must carry besides the body's:
    ///
    /// - `405`: `Allow: GET` (RFC 9110 §15.5.6: the server "MUST generate an Allow
    ///   header field").
    /// - `426`: `Sec-WebSocket-Version: 13` (RFC 6455 §4.2.2 /version/) and
    ///   `Upgrade: websocket` (RFC 9110 §15.5.22: the server "MUST send an Upgrade
    ///   header field").
    /// - otherwise none.
    pub fn response_headers(&self) -> Vec<(&'static str, &'static str)> {
        match self.status() {
            405 => vec![("Allow", "GET")],
            426 => vec![(SEC_WEBSOCKET_VERSION, "13"), ("Upgrade", "websocket")],
            _ => Vec::new(),
        }
    }

    /// Append to `dst` the whole HTTP/1.1 error response, for a server that writes
    /// its own bytes:
    ///
    /// ```text
    /// HTTP/1.1 {status} {phrase}\r\n
    /// Content-Type: text/plain; charset=utf-8\r\n
    /// Content-Length: {length}\r\n
    /// Connection: close\r\n            ("Upgrade, close" when an Upgrade header follows)
    /// {response_headers}\r\n
    /// \r\n
    /// {reason}\n
    /// ```
    ///
    /// The connection is meant to be closed once this is written. A `426` also lists
    /// `upgrade` in `Connection`, as RFC 9110 §7.8 requires of a sender of `Upgrade`.
    ///
    /// ```
    /// use websocket_driver::handshake::HandshakeError;
    ///
    /// let mut out = Vec::new();
    /// HandshakeError::MissingKey.write_rejection(&mut out);
    /// assert_eq!(
    ///     out,
    ///     b"HTTP/1.1 400 Bad Request\r\n\
    ///       Content-Type: text/plain; charset=utf-8\r\n\
    ///       Content-Length: 33\r\n\
    ///       Connection: close\r\n\
    ///       \r\n\
    ///       missing sec-websocket-key header\n"
    /// );
    /// ```
    pub fn write_rejection(&self, dst: &mut Vec<u8>) {
        write_refusal(self.status(), self.reason(), &self.response_headers(), dst);
    }
}

/// Append to `dst` a whole HTTP/1.1 refusal of an opening handshake: `status`, a
/// `text/plain` body of `reason` and a newline, `Connection: close` (with
/// `Upgrade` when `headers` carry an `Upgrade` header, as a 426 does), then
/// `headers`. A reason or header with a control character (which could inject
/// headers) is left out. The transport should be closed once it is written.
///
/// ```
/// let mut out = Vec::new();
/// websocket_driver::handshake::write_refusal(401, "bad token", &[("WWW-Authenticate", "Bearer")], &mut out);
/// assert_eq!(
///     out,
///     b"HTTP/1.1 401 Unauthorized\r\n\
///       Content-Type: text/plain; charset=utf-8\r\n\
///       Content-Length: 10\r\n\
///       Connection: close\r\n\
///       WWW-Authenticate: Bearer\r\n\
///       \r\n\
///       bad token\n"
/// );
/// ```
pub fn write_refusal(status: u16, reason: &str, headers: &[(&str, &str)], dst: &mut Vec<u8>) {
    let reason = if is_field_value(reason.as_bytes()) {
        reason
    } else {
        ""
    };
    let mut body = Vec::with_capacity(reason.len() + 1);
    body.extend_from_slice(reason.as_bytes());
    body.push(b'\n');
    write_refusal_body(status, "text/plain; charset=utf-8", &body, headers, dst);
}

/// [`write_refusal`] with a body of its own: `body` as it is, with `content_type`
/// (left out when it has a control character).
///
/// ```
/// let mut out = Vec::new();
/// websocket_driver::handshake::write_refusal_body(
///     403, "application/json", br#"{"error":"banned"}"#, &[], &mut out,
/// );
/// assert_eq!(
///     out,
///     b"HTTP/1.1 403 Forbidden\r\n\
///       Content-Type: application/json\r\n\
///       Content-Length: 18\r\n\
///       Connection: close\r\n\
///       \r\n\
///       {\"error\":\"banned\"}"
/// );
/// ```
pub fn write_refusal_body(
    status: u16,
    content_type: &str,
    body: &[u8],
    headers: &[(&str, &str)],
    dst: &mut Vec<u8>,
) {
    let status = if (100..=999).contains(&status) {
        status
    } else {
        500
    };
    dst.extend_from_slice(b"HTTP/1.1 ");
    dst.extend_from_slice(status.to_string().as_bytes());
    dst.push(b' ');
    dst.extend_from_slice(status_phrase(status).as_bytes());
    dst.extend_from_slice(b"\r\n");
    if is_field_value(content_type.as_bytes()) {
        write_header(dst, "Content-Type", content_type);
    }
    write_header(dst, "Content-Length", &body.len().to_string());
    let upgrade = headers
        .iter()
        .any(|(name, _)| name.eq_ignore_ascii_case("upgrade"));
    write_header(
        dst,
        "Connection",
        if upgrade { "Upgrade, close" } else { "close" },
    );
    for (name, value) in headers {
        if is_token(name.as_bytes()) && is_field_value(value.as_bytes()) {
            write_header(dst, name, value);
        }
    }
    dst.extend_from_slice(b"\r\n");
    dst.extend_from_slice(body);
}

/// The reason phrase of the statuses this module answers with (RFC 9110 §15).
fn status_phrase(status: u16) -> &'static str {
    match status {
        101 => "Switching Protocols",
        400 => "Bad Request",
        403 => "Forbidden",
        401 => "Unauthorized",
        404 => "Not Found",
        405 => "Method Not Allowed",
        409 => "Conflict",
        429 => "Too Many Requests",
        426 => "Upgrade Required",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Error",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::Settings;

    #[test]
    fn parse_request_handles_http_1_0_and_garbage() {
        let (head, _) = parse_request(b"GET / HTTP/1.0\r\n\r\n").unwrap().unwrap();
        assert_eq!(head.version, HttpVersion::Http10);
        assert_eq!(
            head.validate(&Settings::default()),
            Err(HandshakeError::UnsupportedHttpVersion)
        );
        assert_eq!(
            parse_request(b"\x16\x03\x01"),
            Err(HandshakeError::MalformedHead)
        );
        assert_eq!(
            parse_request(b"PRI * HTTP/2.0\r\n\r\n"),
            Err(HandshakeError::MalformedHead)
        );
    }
}
