//! What the standalone server's factory sees of a request, and how it refuses one.

use std::{borrow::Cow, net::SocketAddr};

use crate::handshake::RequestHead;

/// An opening handshake request, as the standalone server's factory sees it
/// ([`Server::listen`](super::Server::listen)): method, target (path and query),
/// headers, and the addresses of both ends. The handshake itself (RFC 6455 §4.2.1)
/// is checked before the factory is asked.
///
/// ```
/// use websocket_driver as ws;
///
/// let req = ws::Request::from_bytes(
///     b"GET /chat?token=a%20b&room=1 HTTP/1.1\r\nHost: x\r\nCookie: sid=42; theme=dark\r\n\r\n",
/// ).unwrap();
/// assert_eq!(req.path(), "/chat");
/// assert_eq!(req.query(), Some("token=a%20b&room=1"));
/// assert_eq!(req.query_param("token").as_deref(), Some("a b"));
/// assert_eq!(req.cookie("sid"), Some("42"));
/// assert_eq!(req.header_str("host"), Some("x"));
/// ```
#[derive(Clone)]
pub struct Request {
    head: RequestHead,
    peer: Option<SocketAddr>,
    local: Option<SocketAddr>,
}

/// Credentials shown as `***`: the values of query parameters and headers that
/// carry one (`token`, `Authorization`, `Cookie`, ...).
impl std::fmt::Debug for Request {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        use crate::settings::redact;
        let target = redact::url(&format!("ws://x{}", self.target()))
            .trim_start_matches("ws://x")
            .to_owned();
        f.debug_struct("Request")
            .field("method", &self.method())
            .field("target", &target)
            .field("headers", &redact::Headers(&self.head.headers))
            .field("peer", &self.peer)
            .field("local", &self.local)
            .finish()
    }
}

impl Request {
    pub(crate) fn new(
        head: RequestHead,
        peer: Option<SocketAddr>,
        local: Option<SocketAddr>,
    ) -> Self {
        Request { head, peer, local }
    }

    /// A request parsed from the bytes of a whole head (for tests and tools);
    /// `None` when they are not one.
    pub fn from_bytes(bytes: &[u8]) -> Option<Request> {
        let (head, _) = crate::handshake::parse_request(bytes).ok()??;
        Some(Request::new(head, None, None))
    }

    /// The method (`GET` for every handshake the factory sees).
    pub fn method(&self) -> &str {
        &self.head.method
    }

    /// The request target as sent: path and query, e.g. `/chat?room=1`.
    pub fn target(&self) -> &str {
        &self.head.target
    }

    /// The path part of the target, e.g. `/chat` (not percent-decoded).
    pub fn path(&self) -> &str {
        let target = self.target();
        target.split_once('?').map_or(target, |(path, _)| path)
    }

    /// The query part of the target, after `?` (not decoded).
    pub fn query(&self) -> Option<&str> {
        self.target().split_once('?').map(|(_, query)| query)
    }

    /// The first value of query parameter `name`, decoded as
    /// `application/x-www-form-urlencoded` (`%20` and `+` are spaces).
    pub fn query_param(&self, name: &str) -> Option<Cow<'_, str>> {
        let query = self.query()?;
        url::form_urlencoded::parse(query.as_bytes())
            .find(|(key, _)| key == name)
            .map(|(_, value)| value)
    }

    /// The first value of header `name` (compared ASCII case-insensitively), as
    /// bytes.
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.head.header(name)
    }

    /// The first value of header `name` as text, when it is UTF-8.
    pub fn header_str(&self, name: &str) -> Option<&str> {
        std::str::from_utf8(self.header(name)?).ok()
    }

    /// Every header line, in order: name as received, value as bytes.
    pub fn headers(&self) -> impl Iterator<Item = (&str, &[u8])> {
        self.head
            .headers
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_slice()))
    }

    /// The value of cookie `name` from the `Cookie` headers (RFC 6265 §5.4:
    /// `name=value` pairs separated by `; `), not decoded.
    pub fn cookie(&self, name: &str) -> Option<&str> {
        self.head
            .headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case("cookie"))
            .filter_map(|(_, v)| std::str::from_utf8(v).ok())
            .flat_map(|v| v.split(';'))
            .filter_map(|pair| pair.trim().split_once('='))
            .find(|(key, _)| *key == name)
            .map(|(_, value)| value.trim_matches('"'))
    }

    /// The bearer token the request carries (RFC 6750): the `Authorization:
    /// Bearer <token>` header (§2.1; the scheme in any case), else the
    /// `access_token` query parameter (§2.3: what a browser, which cannot set
    /// headers on a WebSocket, can send). Query parameters are logged by no part
    /// of this crate, but may be by proxies.
    ///
    /// ```
    /// let req = websocket_driver::Request::from_bytes(
    ///     b"GET /?access_token=q HTTP/1.1\r\nHost: x\r\nAuthorization: bearer h\r\n\r\n",
    /// ).unwrap();
    /// assert_eq!(req.bearer_token().as_deref(), Some("h"));
    /// ```
    pub fn bearer_token(&self) -> Option<Cow<'_, str>> {
        let header = self
            .header_str("authorization")
            .and_then(|value| value.trim().split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, token)| token.trim())
            .filter(|token| !token.is_empty());
        match header {
            Some(token) => Some(Cow::Borrowed(token)),
            None => self.query_param("access_token").filter(|t| !t.is_empty()),
        }
    }

    /// The peer's address.
    pub fn peer_addr(&self) -> Option<SocketAddr> {
        self.peer
    }

    /// The local address the connection came in on.
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.local
    }
}

/// A refused handshake: the HTTP status, the one-line reason (or a body of its
/// own) and the headers the standalone server answers with, before any actor
/// starts.
///
/// ```
/// use websocket_driver as ws;
///
/// let refusal = ws::Refuse::new(401, "missing token").header("WWW-Authenticate", "Bearer");
/// assert_eq!((refusal.status(), refusal.reason()), (401, "missing token"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refuse {
    status: u16,
    reason: String,
    headers: Vec<(String, String)>,
    /// A body of its own, with its content type, in place of the reason's line.
    body: Option<(String, Vec<u8>)>,
}

impl Refuse {
    /// Refuse with `status` (4xx or 5xx; anything outside 100-999 is sent as 500)
    /// and `reason`, sent as a `text/plain` body.
    pub fn new(status: u16, reason: impl Into<String>) -> Self {
        Refuse {
            status,
            reason: reason.into(),
            headers: Vec::new(),
            body: None,
        }
    }

    /// Add a header to the refusal (`WWW-Authenticate`, `Retry-After`); one that is
    /// not valid HTTP is left out.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Answer with `body` of `content_type` instead of the reason's line (the
    /// reason is still what is logged).
    ///
    /// ```
    /// use websocket_driver as ws;
    ///
    /// let refusal = ws::Refuse::new(403, "banned")
    ///     .body("application/json", r#"{"error":"banned","retry":false}"#);
    /// assert_eq!(refusal.body_bytes(), Some(&br#"{"error":"banned","retry":false}"#[..]));
    /// ```
    pub fn body(mut self, content_type: impl Into<String>, body: impl Into<Vec<u8>>) -> Self {
        self.body = Some((content_type.into(), body.into()));
        self
    }

    /// The body set with [`body`](Self::body), if any.
    pub fn body_bytes(&self) -> Option<&[u8]> {
        self.body.as_ref().map(|(_, body)| body.as_slice())
    }

    /// The status.
    pub fn status(&self) -> u16 {
        self.status
    }

    /// The reason.
    pub fn reason(&self) -> &str {
        &self.reason
    }

    /// The response's bytes.
    pub(crate) fn write(&self, dst: &mut Vec<u8>) {
        let headers: Vec<(&str, &str)> = self
            .headers
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect();
        match &self.body {
            None => crate::handshake::write_refusal(self.status, &self.reason, &headers, dst),
            Some((content_type, body)) => {
                crate::handshake::write_refusal_body(self.status, content_type, body, &headers, dst)
            }
        }
    }
}
