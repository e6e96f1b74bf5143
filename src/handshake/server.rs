//! The server side: check a client's opening handshake (RFC 6455 §4.2.1), choose a
//! subprotocol, and write the `101 Switching Protocols` answer (RFC 6455 §4.2.2).

use super::{
    headers::{
        check_header, extensions_of, is_token, list_contains, list_elements, one_value, trim_ows,
        values, CONNECTION, HOST, RESERVED_RESPONSE_HEADERS, SEC_WEBSOCKET_ACCEPT,
        SEC_WEBSOCKET_EXTENSIONS, SEC_WEBSOCKET_KEY, SEC_WEBSOCKET_PROTOCOL, SEC_WEBSOCKET_VERSION,
        UPGRADE,
    },
    http11::{write_header, HttpVersion, RequestHead},
    key::{accept_key, is_valid_key},
    BuildError, HandshakeError,
};
use crate::{
    proto::{Deflate, DeflateParams, Role},
    settings::Settings,
};

/// A client's opening handshake request as an HTTP layer parsed it: the input of
/// [`validate_request`].
///
/// Header names compare ASCII case-insensitively; a header may appear several times.
/// Values are bytes, as received.
#[derive(Debug, Clone, Copy)]
pub struct RequestParts<'a> {
    /// The request method, e.g. `GET` (case-sensitive, RFC 9110 §9.1).
    pub method: &'a str,
    /// The HTTP version of the request line.
    pub version: HttpVersion,
    /// Every header line, in order.
    pub headers: &'a [(&'a str, &'a [u8])],
}

/// An accepted opening handshake: what the `101` response says, from
/// [`validate_request`].
///
/// Write the response with [`write_response`](Self::write_response) (whole bytes) or
/// take its header list from [`response_headers`](Self::response_headers) (for an
/// HTTP framework that writes the status line itself).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Accept {
    /// The `Sec-WebSocket-Accept` value (see [`accept_key`]).
    pub accept_key: String,
    /// The chosen subprotocol, if any (see
    /// [`ServerSettings::protocols`](crate::settings::ServerSettings::protocols)).
    pub protocol: Option<String>,
    /// The client's `Sec-WebSocket-Extensions` offer, all its headers joined with
    /// `", "` (`None` when it offered none). Its syntax is checked (see
    /// [`parse_extensions`](super::parse_extensions)); what to accept of it is the
    /// extension's business, answered through [`set_extensions`](Self::set_extensions).
    pub offered_extensions: Option<String>,
    extensions: Option<String>,
    deflate: Option<DeflateParams>,
}

impl Accept {
    /// Answer the client's extension offer: the response will carry
    /// `Sec-WebSocket-Extensions: {value}` (RFC 6455 §4.2.2 step 5.6). The value must
    /// follow the grammar of RFC 6455 §9.1 and have no control character, else it is
    /// refused and nothing changes. `None` (the default) sends no such header.
    /// A permessage-deflate agreement made by [`validate_request`] is dropped: the
    /// answer is now the caller's, and [`deflate`](Self::deflate) returns `None`.
    pub fn set_extensions(&mut self, value: Option<String>) -> Result<(), BuildError> {
        if let Some(text) = &value {
            let valid = super::headers::is_field_value(text.as_bytes())
                && super::parse_extensions(text).is_ok_and(|list| !list.is_empty());
            if !valid {
                return Err(BuildError::InvalidExtensions(text.clone()));
            }
        }
        self.extensions = value;
        self.deflate = None;
        Ok(())
    }

    /// The `Sec-WebSocket-Extensions` value the response carries, if any.
    pub fn extensions(&self) -> Option<&str> {
        self.extensions.as_deref()
    }

    /// The permessage-deflate agreement, when the settings' `deflate` section is
    /// enabled and the client made an acceptable offer.
    pub fn deflate_params(&self) -> Option<&DeflateParams> {
        self.deflate.as_ref()
    }

    /// The permessage-deflate codec for the agreement, to install with
    /// [`Connection::set_extension`](crate::proto::Connection::set_extension)
    /// before the connection opens; `None` without an agreement. `settings` are
    /// the ones the request was validated with (their level, memory level and
    /// threshold apply).
    pub fn deflate(&self, settings: &Settings) -> Option<Deflate> {
        self.deflate
            .map(|params| Deflate::new(Role::Server, params, &settings.deflate))
    }

    /// The headers of the `101` response, in order (RFC 6455 §4.2.2 step 5):
    /// `Upgrade: websocket`, `Connection: Upgrade`, `Sec-WebSocket-Accept`, then
    /// `Sec-WebSocket-Protocol` when a subprotocol was chosen,
    /// `Sec-WebSocket-Extensions` when set, and the extra headers of
    /// `settings.server` (those that are valid and not reserved: the others are
    /// left out, with a warning through `tracing`).
    ///
    /// A framework that sets `Upgrade` and `Connection` itself skips those two. A
    /// `protocol` changed by hand to something that is not a token is left out rather
    /// than written.
    pub fn response_headers<'a>(&'a self, settings: &'a Settings) -> Vec<(&'a str, &'a str)> {
        let mut list = vec![
            (UPGRADE, "websocket"),
            (CONNECTION, "Upgrade"),
            (SEC_WEBSOCKET_ACCEPT, self.accept_key.as_str()),
        ];
        // RFC 6455 §4.2.2 /subprotocol/: the ABNF of the value is a single token.
        if let Some(protocol) = self.protocol.as_deref().filter(|p| is_token(p.as_bytes())) {
            list.push((SEC_WEBSOCKET_PROTOCOL, protocol));
        }
        if let Some(extensions) = self.extensions.as_deref() {
            list.push((SEC_WEBSOCKET_EXTENSIONS, extensions));
        }
        for (name, value) in &settings.server.headers {
            match check_header(name, value, &RESERVED_RESPONSE_HEADERS) {
                Ok(()) => list.push((name.as_str(), value.as_str())),
                Err(err) => {
                    tracing::warn!(error = %err, "extra websocket response header left out")
                }
            }
        }
        // Every value above was checked when it was set; the accept key is only made
        // by `accept_key`. Keep that promise even for fields changed by hand.
        list.retain(|(_, value)| super::headers::is_field_value(value.as_bytes()));
        list
    }

    /// Append to `dst` the whole `101` response head, for a server that writes its
    /// own bytes:
    ///
    /// ```text
    /// HTTP/1.1 101 Switching Protocols\r\n
    /// {response_headers}\r\n
    /// \r\n
    /// ```
    ///
    /// WebSocket frames follow it directly.
    pub fn write_response(&self, settings: &Settings, dst: &mut Vec<u8>) {
        dst.extend_from_slice(b"HTTP/1.1 101 Switching Protocols\r\n");
        for (name, value) in self.response_headers(settings) {
            write_header(dst, name, value);
        }
        dst.extend_from_slice(b"\r\n");
    }
}

/// Check a client's opening handshake (RFC 6455 §4.2.1) against `settings` (its
/// `server` and `deflate` sections), and on success say what to answer.
///
/// The checks, in order, each answered as [`HandshakeError::status`] says (RFC 6455
/// §4.2.1: a server that finds the handshake does not match "MUST stop processing the
/// client's handshake and return an HTTP response with an appropriate error code
/// (such as 400 Bad Request)"):
///
/// 1. method `GET` (else `405`, with `Allow: GET`);
/// 2. HTTP/1.1 (`400`);
/// 3. exactly one non-empty `Host` (`400`);
/// 4. `Upgrade` lists `websocket`, any case (`400`);
/// 5. `Connection` lists `upgrade`, any case, among other tokens (`400`);
/// 6. `Sec-WebSocket-Version` is exactly `13` (missing or other: `426` with
///    `Sec-WebSocket-Version: 13`); checked before the key, as another version's
///    client may send another key format and should learn which version to speak;
/// 7. exactly one `Sec-WebSocket-Key`, the base64 encoding of 16 bytes (`400`);
/// 8. `Origin`, when sent, is the server's own or one it lists (`403`; see
///    [`origin_allowed`](super::origin_allowed));
/// 9. `Sec-WebSocket-Protocol` is a list of tokens and `Sec-WebSocket-Extensions`
///    follows RFC 6455 §9.1 (`400`).
///
/// ```
/// use websocket_driver::handshake::{validate_request, HttpVersion, RequestParts};
/// use websocket_driver::{ServerSettings, Settings};
///
/// let headers: &[(&str, &[u8])] = &[
///     ("Host", b"server.example.com"),
///     ("Upgrade", b"websocket"),
///     ("Connection", b"Upgrade"),
///     ("Sec-WebSocket-Key", b"dGhlIHNhbXBsZSBub25jZQ=="),
///     ("Sec-WebSocket-Protocol", b"chat, superchat"),
///     ("Sec-WebSocket-Version", b"13"),
/// ];
/// let request = RequestParts { method: "GET", version: HttpVersion::Http11, headers };
/// let mut settings = Settings::default();
/// settings.server = ServerSettings::default().protocols(["chat"]);
/// let accept = validate_request(&request, &settings).unwrap();
/// assert_eq!(accept.accept_key, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
/// assert_eq!(accept.protocol.as_deref(), Some("chat"));
/// ```
pub fn validate_request(
    req: &RequestParts<'_>,
    settings: &Settings,
) -> Result<Accept, HandshakeError> {
    validate(req.method, req.version, req.headers, settings)
}

fn validate<N, V>(
    method: &str,
    version: HttpVersion,
    headers: &[(N, V)],
    settings: &Settings,
) -> Result<Accept, HandshakeError>
where
    N: AsRef<str>,
    V: AsRef<[u8]>,
{
    // RFC 6455 §4.2.1 item 1: "An HTTP/1.1 or higher GET request".
    if method != "GET" {
        return Err(HandshakeError::MethodNotGet);
    }
    if version != HttpVersion::Http11 {
        return Err(HandshakeError::UnsupportedHttpVersion);
    }

    // RFC 6455 §4.2.1 item 2: "A |Host| header field containing the server's
    // authority". Which authority the server answers to is the HTTP layer's business.
    let host = match one_value(headers, HOST) {
        None => return Err(HandshakeError::MissingHost),
        Some(None) => return Err(HandshakeError::DuplicateHost),
        Some(Some(host)) if trim_ows(host).is_empty() => return Err(HandshakeError::MissingHost),
        Some(Some(host)) => host,
    };

    // RFC 6455 §4.2.1 item 3: "An |Upgrade| header field containing the value
    // "websocket", treated as an ASCII case-insensitive value."
    if values(headers, UPGRADE).next().is_none() {
        return Err(HandshakeError::MissingUpgrade);
    }
    if !list_contains(headers, UPGRADE, "websocket") {
        return Err(HandshakeError::UpgradeNotWebSocket);
    }

    // RFC 6455 §4.2.1 item 4: "A |Connection| header field that includes the token
    // "Upgrade", treated as an ASCII case-insensitive value."
    if !list_contains(headers, CONNECTION, "upgrade") {
        return Err(HandshakeError::MissingConnectionUpgrade);
    }

    // RFC 6455 §4.2.1 item 6: "A |Sec-WebSocket-Version| header field, with a value
    // of 13." §4.2.2 /version/: otherwise the server "MUST abort" with e.g. 426 and a
    // |Sec-WebSocket-Version| header (see `HandshakeError::response_headers`).
    // §11.3.5: the header "MUST NOT appear more than once in an HTTP request".
    match one_value(headers, SEC_WEBSOCKET_VERSION) {
        None => return Err(HandshakeError::MissingVersion),
        Some(Some(version)) if trim_ows(version) == b"13" => {}
        Some(_) => return Err(HandshakeError::UnsupportedVersion),
    }

    // RFC 6455 §4.2.1 item 5: "A |Sec-WebSocket-Key| header field with a
    // base64-encoded value that, when decoded, is 16 bytes in length." §11.3.1: it
    // "MUST NOT appear more than once in an HTTP request".
    let key = match one_value(headers, SEC_WEBSOCKET_KEY) {
        None => return Err(HandshakeError::MissingKey),
        Some(None) => return Err(HandshakeError::DuplicateKey),
        Some(Some(key)) => trim_ows(key),
    };
    if !is_valid_key(key) {
        return Err(HandshakeError::InvalidKey);
    }

    // RFC 6455 §4.2.2 /origin/ and §10.2: the server's own origin, a listed one,
    // or none (not a browser); else 403.
    super::origin::check(headers, host, &settings.server.origins)?;

    // RFC 6455 §4.2.1 item 8 and §4.2.2 /subprotocol/: the value "MUST be derived from
    // the client's handshake, specifically by selecting one of the values from the
    // |Sec-WebSocket-Protocol| field that the server is willing to use". We take the
    // server's preference: its first protocol that the client offered.
    let mut offered = Vec::new();
    for element in values(headers, SEC_WEBSOCKET_PROTOCOL).flat_map(list_elements) {
        if !is_token(element) {
            return Err(HandshakeError::InvalidProtocolHeader);
        }
        offered.push(element);
    }
    let protocol = settings
        .server
        .protocols
        .iter()
        .find(|p| offered.contains(&p.as_bytes()))
        .cloned();

    // RFC 6455 §4.2.1 item 9: the extensions header, with the grammar of §9.1.
    let (offers, offered_extensions) = extensions_of(headers, SEC_WEBSOCKET_EXTENSIONS)?;
    // RFC 7692 §5.1: accept one permessage-deflate offer (the first acceptable), or
    // none; declining is not an error, the connection goes on uncompressed.
    let deflate = settings.deflate.accept_offers(&offers);
    let extensions = deflate.map(|params| params.to_string());

    Ok(Accept {
        accept_key: accept_key(key),
        protocol,
        offered_extensions,
        extensions,
        deflate,
    })
}

impl RequestHead {
    /// Check this head as the opening handshake: the same as [`validate_request`].
    pub fn validate(&self, settings: &Settings) -> Result<Accept, HandshakeError> {
        validate(&self.method, self.version, &self.headers, settings)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::ServerSettings;

    const KEY: &[u8] = b"dGhlIHNhbXBsZSBub25jZQ==";

    fn base() -> Vec<(&'static str, &'static [u8])> {
        vec![
            ("Host", b"example.com"),
            ("Upgrade", b"websocket"),
            ("Connection", b"Upgrade"),
            ("Sec-WebSocket-Key", KEY),
            ("Sec-WebSocket-Version", b"13"),
        ]
    }

    fn check(headers: &[(&str, &[u8])], opts: &ServerSettings) -> Result<Accept, HandshakeError> {
        let settings = Settings {
            server: opts.clone(),
            ..Default::default()
        };
        validate_request(
            &RequestParts {
                method: "GET",
                version: HttpVersion::Http11,
                headers,
            },
            &settings,
        )
    }

    fn without(name: &str) -> Vec<(&'static str, &'static [u8])> {
        base()
            .into_iter()
            .filter(|(n, _)| !n.eq_ignore_ascii_case(name))
            .collect()
    }

    #[test]
    fn header_checks_report_the_first_failure_in_order() {
        let opts = ServerSettings::default();
        assert_eq!(
            check(&without("host"), &opts),
            Err(HandshakeError::MissingHost)
        );
        assert_eq!(
            check(&without("upgrade"), &opts),
            Err(HandshakeError::MissingUpgrade)
        );
        assert_eq!(
            check(&without("connection"), &opts),
            Err(HandshakeError::MissingConnectionUpgrade)
        );
        assert_eq!(
            check(&without("sec-websocket-version"), &opts),
            Err(HandshakeError::MissingVersion)
        );
        assert_eq!(
            check(&without("sec-websocket-key"), &opts),
            Err(HandshakeError::MissingKey)
        );
        let mut both = without("sec-websocket-key");
        both.retain(|(n, _)| *n != "Sec-WebSocket-Version");
        assert_eq!(check(&both, &opts), Err(HandshakeError::MissingVersion));
    }

    #[test]
    fn empty_host_is_missing_and_two_hosts_are_refused() {
        let opts = ServerSettings::default();
        let mut headers = without("host");
        headers.push(("host", b" "));
        assert_eq!(check(&headers, &opts), Err(HandshakeError::MissingHost));
        let mut headers = base();
        headers.push(("HOST", b"other.example"));
        assert_eq!(check(&headers, &opts), Err(HandshakeError::DuplicateHost));
    }

    #[test]
    fn key_is_trimmed_before_hashing() {
        let mut headers = without("sec-websocket-key");
        headers.push(("sec-websocket-key", b" \tdGhlIHNhbXBsZSBub25jZQ== "));
        let accept = check(&headers, &ServerSettings::default()).unwrap();
        assert_eq!(accept.accept_key, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    }

    #[test]
    fn repeated_version_header_is_unsupported() {
        let mut headers = base();
        headers.push(("Sec-WebSocket-Version", b"13"));
        assert_eq!(
            check(&headers, &ServerSettings::default()),
            Err(HandshakeError::UnsupportedVersion)
        );
    }

    #[test]
    fn origin_compares_case_insensitively_and_refuses_two_origins() {
        let opts = ServerSettings::default().origins(["https://Example.com"]);
        let mut headers = base();
        headers.push(("Origin", b" https://example.COM "));
        assert!(check(&headers, &opts).is_ok());
        headers.push(("Origin", b"https://example.com"));
        assert_eq!(
            check(&headers, &opts),
            Err(HandshakeError::OriginNotAllowed)
        );
        let mut headers = base();
        headers.push(("Origin", b"https://elsewhere.example"));
        assert_eq!(
            check(&headers, &ServerSettings::default()),
            Err(HandshakeError::OriginNotAllowed)
        );
        assert!(check(&headers, &ServerSettings::default().allow_any_origin()).is_ok());
    }

    #[test]
    fn protocol_header_must_be_tokens() {
        let mut headers = base();
        headers.push(("Sec-WebSocket-Protocol", b"chat, a b"));
        assert_eq!(
            check(&headers, &ServerSettings::default()),
            Err(HandshakeError::InvalidProtocolHeader)
        );
    }

    #[test]
    fn protocols_compare_exactly() {
        let mut headers = base();
        headers.push(("Sec-WebSocket-Protocol", b"Chat"));
        let accept = check(&headers, &ServerSettings::default().protocols(["chat"])).unwrap();
        assert_eq!(accept.protocol, None);
    }

    #[test]
    fn set_extensions_checks_grammar() {
        let mut accept = check(&base(), &ServerSettings::default()).unwrap();
        assert_eq!(
            accept.set_extensions(Some("permessage-deflate\r\nEvil: 1".into())),
            Err(BuildError::InvalidExtensions(
                "permessage-deflate\r\nEvil: 1".into()
            ))
        );
        assert_eq!(
            accept.set_extensions(Some("".into())),
            Err(BuildError::InvalidExtensions("".into()))
        );
        assert_eq!(accept.extensions(), None);
        accept
            .set_extensions(Some("permessage-deflate".into()))
            .unwrap();
        assert_eq!(accept.extensions(), Some("permessage-deflate"));
        accept.set_extensions(None).unwrap();
        assert_eq!(accept.extensions(), None);
    }

    #[test]
    fn response_headers_leave_out_a_protocol_changed_to_a_non_token() {
        let mut accept = check(&base(), &ServerSettings::default()).unwrap();
        accept.protocol = Some("chat\r\nEvil: 1".into());
        let opts = Settings::default();
        let headers = accept.response_headers(&opts);
        assert_eq!(headers.len(), 3);
        accept.accept_key = "x\r\ny".into();
        assert_eq!(accept.response_headers(&opts).len(), 2);
    }
}
