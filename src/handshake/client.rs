//! The client side: write the opening handshake request (RFC 6455 §4.1) and check
//! the server's answer ("the client MUST _Fail the WebSocket Connection_" on any
//! mismatch).

use super::{
    headers::{
        check_header, check_offered_protocols, extensions_of, is_field_value, is_token,
        list_contains, one_value, trim_ows, values, CONNECTION, HOST, ORIGIN,
        RESERVED_REQUEST_HEADERS, SEC_WEBSOCKET_ACCEPT, SEC_WEBSOCKET_EXTENSIONS,
        SEC_WEBSOCKET_KEY, SEC_WEBSOCKET_PROTOCOL, SEC_WEBSOCKET_VERSION, UPGRADE,
    },
    http11::{self, write_header, HttpVersion},
    key::{accept_key, generate_key, is_valid_key},
    BuildError, HandshakeError,
};
use crate::settings::Settings;

/// A client's opening handshake: the request to send and what its answer must say.
///
/// ```
/// use websocket_driver::{handshake::ClientRequest, ClientSettings, Settings};
///
/// let mut settings = Settings::default();
/// settings.client = ClientSettings::default().protocols(["chat"]);
/// let request = ClientRequest::new("example.com", "/chat", &settings).unwrap();
/// let mut bytes = Vec::new();
/// request.write(&mut bytes);
/// assert!(bytes.starts_with(b"GET /chat HTTP/1.1\r\nHost: example.com\r\n"));
///
/// // The server's answer, as it would arrive.
/// let answer = format!(
///     "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
///      Sec-WebSocket-Accept: {}\r\nSec-WebSocket-Protocol: chat\r\n\r\n",
///     request.expected_accept(),
/// );
/// let (response, used) = request.parse_response(answer.as_bytes()).unwrap().unwrap();
/// assert_eq!(response.protocol.as_deref(), Some("chat"));
/// assert_eq!(used, answer.len());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientRequest {
    host: String,
    target: String,
    key: String,
    expected_accept: String,
    protocols: Vec<String>,
    extensions: Option<String>,
    extension_names: Vec<String>,
    origin: Option<String>,
    headers: Vec<(String, String)>,
}

impl ClientRequest {
    /// The handshake for `host` (with `:port` when not the scheme's default, RFC 6455
    /// §4.1 item 4) and `target` (the /resource name/: an absolute path and optional
    /// query, e.g. `/chat?room=1`, RFC 6455 §3), with a fresh random key
    /// ([`generate_key`]).
    ///
    /// Errors: a host that is not `host[:port]`, a target that does not start with
    /// `/` or has a space, a control character or a `#` (RFC 6455 §3: fragments "MUST
    /// NOT be used"), a subprotocol that is not a token or is offered twice, an
    /// origin with a control character, an extra header that is not a token, has
    /// a control character in its value or is one the request writes itself
    /// (`Host`, `Upgrade`, `Connection`, `Origin`, `Sec-WebSocket-*`,
    /// `Content-Length`, `Transfer-Encoding`).
    ///
    /// What it offers comes from `settings.client` (subprotocols, origin, extra
    /// headers) and, when `settings.deflate` is enabled, its permessage-deflate offer
    /// ([`DeflateSettings::offer`](crate::settings::DeflateSettings::offer)).
    pub fn new(host: &str, target: &str, settings: &Settings) -> Result<Self, BuildError> {
        Self::with_key(host, target, settings, &generate_key())
    }

    /// The same as [`new`](Self::new) with a given `Sec-WebSocket-Key`, for tests:
    /// RFC 6455 §4.1 requires a fresh random key for each connection. The key must be
    /// the base64 encoding of 16 bytes ([`BuildError::InvalidKey`]).
    pub fn with_key(
        host: &str,
        target: &str,
        settings: &Settings,
        key: &str,
    ) -> Result<Self, BuildError> {
        let opts = &settings.client;
        if !is_valid_host(host) {
            return Err(BuildError::InvalidHost(host.to_owned()));
        }
        if !is_valid_target(target) {
            return Err(BuildError::InvalidTarget(target.to_owned()));
        }
        // RFC 6455 §4.1 item 7: the key is "a randomly selected 16-byte value that has
        // been base64-encoded".
        if !is_valid_key(key.as_bytes()) {
            return Err(BuildError::InvalidKey);
        }
        check_offered_protocols(&opts.protocols)?;
        if let Some(origin) = &opts.origin {
            if !is_field_value(origin.as_bytes()) {
                return Err(BuildError::InvalidHeaderValue(ORIGIN.to_owned()));
            }
        }
        for (name, value) in &opts.headers {
            check_header(name, value, &RESERVED_REQUEST_HEADERS)?;
        }
        let request = ClientRequest {
            host: host.to_owned(),
            target: target.to_owned(),
            key: key.to_owned(),
            expected_accept: accept_key(key.as_bytes()),
            protocols: opts.protocols.clone(),
            extensions: None,
            extension_names: Vec::new(),
            origin: opts.origin.clone(),
            headers: opts
                .headers
                .iter()
                .map(|(n, v)| (n.clone(), v.clone()))
                .collect(),
        };
        let offer = settings.deflate.enabled.then(|| settings.deflate.offer());
        request.with_extensions(offer)
    }

    /// Replace the `Sec-WebSocket-Extensions` offer with `offer`, e.g.
    /// `permessage-deflate; client_max_window_bits` (RFC 6455 §4.1 item 11; its
    /// grammar is RFC 6455 §9.1), for an extension of the caller's own; `None` offers
    /// none, and a server that answers with any extension then fails the handshake.
    pub fn with_extensions(mut self, offer: Option<String>) -> Result<Self, BuildError> {
        self.extension_names = Vec::new();
        if let Some(extensions) = &offer {
            let list = super::parse_extensions(extensions)
                .ok()
                .filter(|list| !list.is_empty() && is_field_value(extensions.as_bytes()))
                .ok_or_else(|| BuildError::InvalidExtensions(extensions.clone()))?;
            self.extension_names = list.into_iter().map(|e| e.name).collect();
        }
        self.extensions = offer;
        Ok(self)
    }

    /// The `Sec-WebSocket-Key` sent.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The `Sec-WebSocket-Accept` the server must answer with ([`accept_key`] of
    /// [`key`](Self::key)).
    pub fn expected_accept(&self) -> &str {
        &self.expected_accept
    }

    /// The subprotocols offered.
    pub fn protocols(&self) -> &[String] {
        &self.protocols
    }

    /// The request's headers, in order: `Host`, `Upgrade: websocket`,
    /// `Connection: Upgrade`, `Sec-WebSocket-Key`, `Sec-WebSocket-Version: 13`
    /// (RFC 6455 §4.1 items 4-9), then `Sec-WebSocket-Protocol` (the offered
    /// subprotocols joined with `", "`), `Sec-WebSocket-Extensions` and `Origin` when
    /// set, and the extra headers. For an HTTP client that writes the request line
    /// itself.
    pub fn headers(&self) -> Vec<(&str, String)> {
        let mut list = vec![
            (HOST, self.host.clone()),
            (UPGRADE, "websocket".to_owned()),
            (CONNECTION, "Upgrade".to_owned()),
            (SEC_WEBSOCKET_KEY, self.key.clone()),
            (SEC_WEBSOCKET_VERSION, "13".to_owned()),
        ];
        if !self.protocols.is_empty() {
            list.push((SEC_WEBSOCKET_PROTOCOL, self.protocols.join(", ")));
        }
        if let Some(extensions) = &self.extensions {
            list.push((SEC_WEBSOCKET_EXTENSIONS, extensions.clone()));
        }
        if let Some(origin) = &self.origin {
            list.push((ORIGIN, origin.clone()));
        }
        list.extend(self.headers.iter().map(|(n, v)| (n.as_str(), v.clone())));
        list
    }

    /// Append the whole request head to `dst` (RFC 6455 §4.1 items 1-2: "The method of
    /// the request MUST be GET, and the HTTP version MUST be at least 1.1"):
    ///
    /// ```text
    /// GET {target} HTTP/1.1\r\n
    /// {headers}\r\n
    /// \r\n
    /// ```
    pub fn write(&self, dst: &mut Vec<u8>) {
        dst.extend_from_slice(b"GET ");
        dst.extend_from_slice(self.target.as_bytes());
        dst.extend_from_slice(b" HTTP/1.1\r\n");
        for (name, value) in self.headers() {
            write_header(dst, name, &value);
        }
        dst.extend_from_slice(b"\r\n");
    }

    /// Read and check the server's response head at the start of `buf`.
    ///
    /// - `Ok(None)`: the head is not complete yet; nothing is consumed, call again
    ///   with more bytes.
    /// - `Ok(Some((response, n)))`: the handshake succeeded and the head took the
    ///   first `n` bytes; what follows them (the server's first frames, perhaps) is
    ///   the caller's to feed to the connection.
    /// - `Err`: fail the connection. Besides the checks of
    ///   [`verify_response`](Self::verify_response): a head that is not HTTP
    ///   ([`HandshakeError::MalformedHead`]), not HTTP/1.1
    ///   ([`HandshakeError::UnsupportedHttpVersion`]), longer than [`MAX_HEAD_SIZE`](super::MAX_HEAD_SIZE)
    ///   bytes ([`HandshakeError::HeadTooLarge`], reported as soon as that many bytes
    ///   arrived without a complete head, so buffering stays bounded) or with more than
    ///   [`MAX_HEADERS`](super::MAX_HEADERS) header lines ([`HandshakeError::TooManyHeaders`]).
    pub fn parse_response(&self, buf: &[u8]) -> Result<Option<(Response, usize)>, HandshakeError> {
        let Some((head, used)) = http11::parse_response(buf)? else {
            return Ok(None);
        };
        // RFC 6455 §4.1: the handshake is an HTTP/1.1 exchange; another status is
        // reported as what it is, whatever the version.
        if head.status == 101 && head.version != HttpVersion::Http11 {
            return Err(HandshakeError::UnsupportedHttpVersion);
        }
        self.verify(head.status, head.headers)
            .map(|response| Some((response, used)))
    }

    /// Check a response that an HTTP layer already parsed (status and headers of an
    /// HTTP/1.1 response), as [`parse_response`](Self::parse_response) does after
    /// parsing. The checks, in the order of RFC 6455 §4.1 (each: "the client MUST
    /// _Fail the WebSocket Connection_"):
    ///
    /// 1. status `101` ([`HandshakeError::UnexpectedStatus`]);
    /// 2. `Upgrade` lists `websocket`, any case;
    /// 3. `Connection` lists `upgrade`, any case;
    /// 4. `Sec-WebSocket-Accept` is [`expected_accept`](Self::expected_accept), once;
    /// 5. every extension in `Sec-WebSocket-Extensions` is one the client offered
    ///    (by name; the parameters are the extension's to check, from
    ///    [`Response::extensions`]);
    /// 6. `Sec-WebSocket-Protocol` is absent, or one token that the client offered.
    pub fn verify_response<N, V>(
        &self,
        status: u16,
        headers: &[(N, V)],
    ) -> Result<Response, HandshakeError>
    where
        N: AsRef<str>,
        V: AsRef<[u8]>,
    {
        let owned = headers
            .iter()
            .map(|(n, v)| (n.as_ref().to_owned(), v.as_ref().to_owned()))
            .collect();
        self.verify(status, owned)
    }

    fn verify(
        &self,
        status: u16,
        headers: Vec<(String, Vec<u8>)>,
    ) -> Result<Response, HandshakeError> {
        // RFC 6455 §4.1: "If the status code received from the server is not 101, the
        // client handles the response per HTTP procedures."
        if status != 101 {
            return Err(HandshakeError::UnexpectedStatus(status));
        }
        // RFC 6455 §4.1 check 2: "If the response lacks an |Upgrade| header field or
        // the |Upgrade| header field contains a value that is not an ASCII
        // case-insensitive match for the value "websocket", the client MUST _Fail the
        // WebSocket Connection_."
        if values(&headers, UPGRADE).next().is_none() {
            return Err(HandshakeError::MissingUpgrade);
        }
        if !list_contains(&headers, UPGRADE, "websocket") {
            return Err(HandshakeError::UpgradeNotWebSocket);
        }
        // RFC 6455 §4.1 check 3: "If the response lacks a |Connection| header field or
        // the |Connection| header field doesn't contain a token that is an ASCII
        // case-insensitive match for the value "Upgrade", the client MUST _Fail the
        // WebSocket Connection_."
        if !list_contains(&headers, CONNECTION, "upgrade") {
            return Err(HandshakeError::MissingConnectionUpgrade);
        }
        // RFC 6455 §4.1 check 4: "If the response lacks a |Sec-WebSocket-Accept|
        // header field or the |Sec-WebSocket-Accept| contains a value other than the
        // base64-encoded SHA-1 of the concatenation of the |Sec-WebSocket-Key| [...]
        // with the string "258EAFA5-E914-47DA-95CA-C5AB0DC85B11" but ignoring any
        // leading and trailing whitespace, the client MUST _Fail the WebSocket
        // Connection_."
        match one_value(&headers, SEC_WEBSOCKET_ACCEPT) {
            None => return Err(HandshakeError::MissingAcceptKey),
            Some(Some(accept)) if trim_ows(accept) == self.expected_accept.as_bytes() => {}
            Some(_) => return Err(HandshakeError::InvalidAcceptKey),
        }
        // RFC 6455 §4.1 check 5: an extension "that was not present in the client's
        // handshake (the server has indicated an extension not requested by the
        // client), the client MUST _Fail the WebSocket Connection_."
        let (list, extensions) = extensions_of(&headers, SEC_WEBSOCKET_EXTENSIONS)?;
        if let Some(unoffered) = list.iter().find(|e| {
            !self
                .extension_names
                .iter()
                .any(|n| n.eq_ignore_ascii_case(&e.name))
        }) {
            return Err(HandshakeError::UnofferedExtension(unoffered.name.clone()));
        }
        // RFC 6455 §4.1 check 6: "If the response includes a |Sec-WebSocket-Protocol|
        // header field and this header field indicates the use of a subprotocol that
        // was not present in the client's handshake [...], the client MUST _Fail the
        // WebSocket Connection_." §4.2.2: its value is one token.
        let protocol = match one_value(&headers, SEC_WEBSOCKET_PROTOCOL) {
            None => None,
            Some(Some(value)) if is_token(trim_ows(value)) => {
                let chosen: String = trim_ows(value).iter().map(|&b| char::from(b)).collect();
                if !self.protocols.contains(&chosen) {
                    return Err(HandshakeError::UnofferedProtocol(chosen));
                }
                Some(chosen)
            }
            _ => return Err(HandshakeError::InvalidProtocolHeader),
        };
        Ok(Response {
            status,
            protocol,
            extensions,
            headers,
        })
    }
}

/// Whether `host` is `host[:port]`: a registered name, IPv4 address or bracketed IPv6
/// literal of RFC 3986 §3.2.2 characters, nothing that could end the header or the
/// authority.
fn is_valid_host(host: &str) -> bool {
    !host.is_empty()
        && host.bytes().all(|b| {
            b.is_ascii_alphanumeric()
                || matches!(
                    b,
                    b'-' | b'.'
                        | b'_'
                        | b'~'
                        | b'%'
                        | b'!'
                        | b'$'
                        | b'&'
                        | b'\''
                        | b'('
                        | b')'
                        | b'*'
                        | b'+'
                        | b','
                        | b';'
                        | b'='
                        | b':'
                        | b'['
                        | b']'
                )
        })
}

/// Whether `target` is an origin-form request target (RFC 9112 §3.2.1) without a
/// fragment: `/`, then visible ASCII other than `#`.
fn is_valid_target(target: &str) -> bool {
    target.starts_with('/')
        && target
            .bytes()
            .all(|b| (0x21..=0x7e).contains(&b) && b != b'#')
}

/// The server's `101` response as the client read and checked it, from
/// [`ClientRequest::parse_response`] or [`ClientRequest::verify_response`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Response {
    /// The status code, `101`.
    pub status: u16,
    /// The subprotocol the server chose, one the client offered, if any.
    pub protocol: Option<String>,
    /// The server's `Sec-WebSocket-Extensions`, all its headers joined with `", "`
    /// (`None` when absent or empty). Only the extension names were checked against
    /// the offer; the negotiated parameters are for the extension to check
    /// (see [`parse_extensions`](super::parse_extensions)).
    pub extensions: Option<String>,
    /// Every header line, in order: names as received, values as bytes.
    pub headers: Vec<(String, Vec<u8>)>,
}

impl Response {
    /// The first value of header `name` (compared ASCII case-insensitively).
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_slice())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::ClientSettings;

    const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
    const ACCEPT: &str = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

    fn request(client: ClientSettings) -> ClientRequest {
        ClientRequest::with_key("example.com", "/", &with(client), KEY).unwrap()
    }

    fn with(client: ClientSettings) -> Settings {
        Settings {
            client,
            ..Default::default()
        }
    }

    #[test]
    fn hosts_and_targets() {
        for host in [
            "example.com",
            "example.com:8080",
            "[::1]:9001",
            "127.0.0.1",
            "a_b",
        ] {
            assert!(is_valid_host(host), "{host}");
        }
        for host in ["", "a b", "a\r\nb", "a/b", "a@b", "a?b", "a#b"] {
            assert!(!is_valid_host(host), "{host:?}");
        }
        for target in ["/", "/chat?room=1&x=%20", "/a/b"] {
            assert!(is_valid_target(target), "{target}");
        }
        for target in ["", "chat", "/a b", "/a#frag", "/a\r\n", "/\u{e9}"] {
            assert!(!is_valid_target(target), "{target:?}");
        }
    }

    #[test]
    fn new_checks_every_option() {
        let opts = Settings::default();
        let base = ClientSettings::default;
        assert_eq!(
            ClientRequest::with_key("a b", "/", &opts, KEY),
            Err(BuildError::InvalidHost("a b".into()))
        );
        assert_eq!(
            ClientRequest::with_key("a", "x", &opts, KEY),
            Err(BuildError::InvalidTarget("x".into()))
        );
        assert_eq!(
            ClientRequest::with_key("a", "/", &opts, "short"),
            Err(BuildError::InvalidKey)
        );
        assert_eq!(
            ClientRequest::new("a", "/", &with(base().protocols(["a b"]))),
            Err(BuildError::InvalidProtocol("a b".into()))
        );
        assert_eq!(
            ClientRequest::new("a", "/", &with(base().protocols(["x", "y", "x"]))),
            Err(BuildError::DuplicateProtocol("x".into()))
        );
        assert_eq!(
            ClientRequest::new("a", "/", &with(base().origin("o\r\nEvil: 1"))),
            Err(BuildError::InvalidHeaderValue("Origin".into()))
        );
        let plain = ClientRequest::new("a", "/", &opts).unwrap();
        assert_eq!(
            plain.clone().with_extensions(Some("x;".into())),
            Err(BuildError::InvalidExtensions("x;".into()))
        );
        assert_eq!(
            plain.with_extensions(Some(" ".into())),
            Err(BuildError::InvalidExtensions(" ".into()))
        );
        assert_eq!(
            ClientRequest::new("a", "/", &with(base().header("X-Bad", "1\r\nEvil: 1"))),
            Err(BuildError::InvalidHeaderValue("X-Bad".into()))
        );
        assert_eq!(
            ClientRequest::new("a", "/", &with(base().header("sec-websocket-key", "x"))),
            Err(BuildError::ReservedHeader("sec-websocket-key".into()))
        );
    }

    #[test]
    fn verify_response_checks_in_rfc_order() {
        let req = request(ClientSettings::default());
        let ok: Vec<(&str, &[u8])> = vec![
            ("Upgrade", b"websocket"),
            ("Connection", b"Upgrade"),
            ("Sec-WebSocket-Accept", ACCEPT.as_bytes()),
        ];
        assert!(req.verify_response(101, &ok).is_ok());
        assert_eq!(
            req.verify_response(200, &ok),
            Err(HandshakeError::UnexpectedStatus(200))
        );
        let drop = |name: &str| -> Vec<(&str, &[u8])> {
            ok.iter().copied().filter(|(n, _)| *n != name).collect()
        };
        assert_eq!(
            req.verify_response(101, &drop("Upgrade")),
            Err(HandshakeError::MissingUpgrade)
        );
        assert_eq!(
            req.verify_response(101, &drop("Connection")),
            Err(HandshakeError::MissingConnectionUpgrade)
        );
        assert_eq!(
            req.verify_response(101, &drop("Sec-WebSocket-Accept")),
            Err(HandshakeError::MissingAcceptKey)
        );
        let mut twice = ok.clone();
        twice.push(("sec-websocket-accept", ACCEPT.as_bytes()));
        assert_eq!(
            req.verify_response(101, &twice),
            Err(HandshakeError::InvalidAcceptKey)
        );
        let mut upgrade = drop("Upgrade");
        upgrade.push(("Upgrade", b"h2c"));
        assert_eq!(
            req.verify_response(101, &upgrade),
            Err(HandshakeError::UpgradeNotWebSocket)
        );
    }

    #[test]
    fn protocol_in_response_must_be_one_token() {
        let req = request(ClientSettings::default().protocols(["a", "b"]));
        let base: Vec<(&str, &[u8])> = vec![
            ("Upgrade", b"websocket"),
            ("Connection", b"Upgrade"),
            ("Sec-WebSocket-Accept", ACCEPT.as_bytes()),
        ];
        for bad in [&b"a, b"[..], b"", b"a b"] {
            let mut headers = base.clone();
            headers.push(("Sec-WebSocket-Protocol", bad));
            assert_eq!(
                req.verify_response(101, &headers),
                Err(HandshakeError::InvalidProtocolHeader),
                "{bad:?}"
            );
        }
        let mut headers = base.clone();
        headers.push(("Sec-WebSocket-Protocol", b"a"));
        headers.push(("Sec-WebSocket-Protocol", b"a"));
        assert_eq!(
            req.verify_response(101, &headers),
            Err(HandshakeError::InvalidProtocolHeader)
        );
        let mut headers = base;
        headers.push(("Sec-WebSocket-Protocol", b" b "));
        assert_eq!(
            req.verify_response(101, &headers)
                .unwrap()
                .protocol
                .as_deref(),
            Some("b")
        );
    }
}
