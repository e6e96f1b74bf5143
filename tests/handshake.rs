//! The opening handshake (RFC 6455 §4), through the public API only.
//!
//! Each test names the line of `shared/conformance.md` it covers, as
//! "Covers (server|client) N: ...", numbering the bullets of the "Opening handshake
//! (server)" and "Opening handshake (client)" sections from 1. Server bullet 6 (a
//! handshake that does not complete in time is dropped) is a timer of the I/O layer;
//! what this module gives it is bounded, resumable parsing (see the `parse_request`
//! tests), so a slow handshake never makes us buffer without limit.

use proptest::prelude::*;
use websocket_driver::{
    handshake::{
        accept_key, generate_key, parse_extensions, parse_request, validate_request, Accept,
        BuildError, ClientRequest, Extension, HandshakeError, HttpVersion, RequestParts,
        MAX_HEADERS, MAX_HEAD_SIZE,
    },
    ClientSettings, ServerSettings, Settings, SettingsError,
};

/// The sample key of RFC 6455 §1.3 and its accept value.
const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
const ACCEPT: &str = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

/// The sample request of RFC 6455 §1.2.
const RFC_REQUEST: &[u8] = b"GET /chat HTTP/1.1\r\n\
    Host: server.example.com\r\n\
    Upgrade: websocket\r\n\
    Connection: Upgrade\r\n\
    Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
    Origin: http://example.com\r\n\
    Sec-WebSocket-Protocol: chat, superchat\r\n\
    Sec-WebSocket-Version: 13\r\n\
    \r\n";

/// A valid request's headers, without subprotocols or origin.
fn headers() -> Vec<(&'static str, &'static [u8])> {
    vec![
        ("Host", b"example.com"),
        ("Upgrade", b"websocket"),
        ("Connection", b"Upgrade"),
        ("Sec-WebSocket-Key", KEY.as_bytes()),
        ("Sec-WebSocket-Version", b"13"),
    ]
}

/// `headers()` with the header `name` replaced by `value` (or removed when `None`).
fn with<'a>(name: &'static str, value: Option<&'a [u8]>) -> Vec<(&'static str, &'a [u8])> {
    let mut list: Vec<(&'static str, &'a [u8])> = headers()
        .into_iter()
        .filter(|(n, _)| !n.eq_ignore_ascii_case(name))
        .collect();
    if let Some(value) = value {
        list.push((name, value));
    }
    list
}

/// Settings with `server` as their server section.
fn srv(server: &ServerSettings) -> Settings {
    let mut settings = Settings::default();
    settings.server = server.clone();
    settings
}

/// Settings with `client` as their client section.
fn cli(client: &ClientSettings) -> Settings {
    let mut settings = Settings::default();
    settings.client = client.clone();
    settings
}

fn validate(headers: &[(&str, &[u8])], opts: &ServerSettings) -> Result<Accept, HandshakeError> {
    validate_request(
        &RequestParts {
            method: "GET",
            version: HttpVersion::Http11,
            headers,
        },
        &srv(opts),
    )
}

fn response_bytes(accept: &Accept, opts: &ServerSettings) -> String {
    let mut out = Vec::new();
    accept.write_response(&srv(opts), &mut out);
    String::from_utf8(out).unwrap()
}

fn rejection_bytes(err: &HandshakeError) -> String {
    let mut out = Vec::new();
    err.write_rejection(&mut out);
    String::from_utf8(out).unwrap()
}

/// The `400` answer with `reason` as its body.
fn bad_request(reason: &str) -> String {
    format!(
        "HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{reason}\n",
        reason.len() + 1
    )
}

// ---------------------------------------------------------------------------------
// Accept key (RFC 6455 §1.3, §4.2.2).

/// Covers server 2: `Sec-WebSocket-Accept` = base64(SHA-1(key + GUID)).
#[test]
fn accept_key_matches_rfc_sample() {
    assert_eq!(accept_key(KEY.as_bytes()), ACCEPT);
}

// ---------------------------------------------------------------------------------
// Server: accepting.

/// Covers server 1 and 2: the RFC's sample request, read from bytes, is answered
/// with exactly the RFC's sample response.
#[test]
fn server_accepts_rfc_sample_request() {
    let (head, used) = parse_request(RFC_REQUEST).unwrap().unwrap();
    assert_eq!(used, RFC_REQUEST.len());
    assert_eq!(head.method, "GET");
    assert_eq!(head.target, "/chat");
    assert_eq!(head.header("origin"), Some(&b"http://example.com"[..]));
    // The sample's page (example.com) is not the server's host: listed, it may
    // connect; not listed, it is refused.
    let opts = ServerSettings::default().protocols(["chat"]);
    assert_eq!(
        head.validate(&srv(&opts)).unwrap_err(),
        HandshakeError::OriginNotAllowed
    );
    let opts = opts.origins(["http://example.com"]);
    let accept = head.validate(&srv(&opts)).unwrap();
    assert_eq!(accept.accept_key, ACCEPT);
    assert_eq!(accept.protocol.as_deref(), Some("chat"));
    assert_eq!(accept.offered_extensions, None);
    assert_eq!(
        response_bytes(&accept, &opts),
        "HTTP/1.1 101 Switching Protocols\r\n\
         Upgrade: websocket\r\n\
         Connection: Upgrade\r\n\
         Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\
         Sec-WebSocket-Protocol: chat\r\n\
         \r\n"
    );
}

/// Covers server 2: the header list for a framework is the same as the bytes.
#[test]
fn server_response_headers_list_matches_bytes() {
    let opts = ServerSettings::default().header("X-A", "1");
    let accept = validate(&headers(), &opts).unwrap();
    let settings = srv(&opts);
    assert_eq!(
        accept.response_headers(&settings),
        [
            ("Upgrade", "websocket"),
            ("Connection", "Upgrade"),
            ("Sec-WebSocket-Accept", ACCEPT),
            ("X-A", "1"),
        ]
    );
}

/// Covers server 1: `Connection` holding `upgrade` among other tokens
/// (`keep-alive, Upgrade`, as Firefox sends it).
#[test]
fn server_accepts_connection_keep_alive_upgrade() {
    let list = with("Connection", Some(b"keep-alive, Upgrade"));
    assert_eq!(
        validate(&list, &ServerSettings::default())
            .unwrap()
            .accept_key,
        ACCEPT
    );
}

/// Covers server 1: `Connection` tokens spread over several headers and cases.
#[test]
fn server_accepts_connection_upgrade_in_second_header_any_case() {
    let mut list = with("Connection", Some(b"keep-alive"));
    list.push(("connection", b" UPGRADE "));
    assert!(validate(&list, &ServerSettings::default()).is_ok());
}

/// Covers server 1: `Upgrade: websocket` compared case-insensitively, header names
/// too.
#[test]
fn server_accepts_upgrade_websocket_in_any_case() {
    let list: Vec<(&str, &[u8])> = vec![
        ("HOST", b"example.com"),
        ("upgrade", b"WebSocket"),
        ("CONNECTION", b"upgrade"),
        ("sec-websocket-key", KEY.as_bytes()),
        ("SEC-WEBSOCKET-VERSION", b"13"),
    ];
    assert_eq!(
        validate(&list, &ServerSettings::default())
            .unwrap()
            .accept_key,
        ACCEPT
    );
}

// ---------------------------------------------------------------------------------
// Server: refusing (exact status, headers and bytes).

/// Covers server 1: not `GET`. 405 with `Allow: GET` (as actix-web; RFC 6455 §4.2.1
/// asks for "an appropriate error code (such as 400 Bad Request)").
#[test]
fn server_rejects_post_with_405() {
    let err = validate_request(
        &RequestParts {
            method: "POST",
            version: HttpVersion::Http11,
            headers: &headers(),
        },
        &Settings::default(),
    )
    .unwrap_err();
    assert_eq!(err, HandshakeError::MethodNotGet);
    assert_eq!(err.status(), 405);
    assert_eq!(err.response_headers(), [("Allow", "GET")]);
    assert_eq!(
        rejection_bytes(&err),
        "HTTP/1.1 405 Method Not Allowed\r\n\
         Content-Type: text/plain; charset=utf-8\r\n\
         Content-Length: 27\r\n\
         Connection: close\r\n\
         Allow: GET\r\n\
         \r\n\
         request method must be GET\n"
    );
}

/// Covers server 1: methods are case-sensitive; `get` is not `GET`.
#[test]
fn server_rejects_lowercase_get_method() {
    let err = validate_request(
        &RequestParts {
            method: "get",
            version: HttpVersion::Http11,
            headers: &headers(),
        },
        &Settings::default(),
    );
    assert_eq!(err, Err(HandshakeError::MethodNotGet));
}

/// Covers server 1: HTTP/1.1 is required; 1.0 gets 400.
#[test]
fn server_rejects_http_1_0_with_400() {
    let request = b"GET / HTTP/1.0\r\nHost: example.com\r\nUpgrade: websocket\r\n\
        Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
        Sec-WebSocket-Version: 13\r\n\r\n";
    let (head, _) = parse_request(request).unwrap().unwrap();
    assert_eq!(head.version, HttpVersion::Http10);
    let err = head.validate(&srv(&ServerSettings::default())).unwrap_err();
    assert_eq!(err, HandshakeError::UnsupportedHttpVersion);
    assert_eq!(
        rejection_bytes(&err),
        bad_request("http version must be 1.1")
    );
}

/// Covers server 1: an HTTP/2 request cannot be upgraded (RFC 8441 is not handled).
#[test]
fn server_rejects_http_2_with_400() {
    let err = validate_request(
        &RequestParts {
            method: "GET",
            version: HttpVersion::Http2,
            headers: &headers(),
        },
        &Settings::default(),
    )
    .unwrap_err();
    assert_eq!(
        (err.clone(), err.status()),
        (HandshakeError::UnsupportedHttpVersion, 400)
    );
}

/// Covers server 1: missing `Upgrade` gets 400 with a short plain-text reason.
#[test]
fn server_rejects_missing_upgrade_with_400() {
    let err = validate(&with("Upgrade", None), &ServerSettings::default()).unwrap_err();
    assert_eq!(err, HandshakeError::MissingUpgrade);
    assert_eq!(rejection_bytes(&err), bad_request("missing upgrade header"));
}

/// Covers server 1: an `Upgrade` that does not name `websocket`.
#[test]
fn server_rejects_upgrade_h2c_with_400() {
    let err = validate(&with("Upgrade", Some(b"h2c")), &ServerSettings::default()).unwrap_err();
    assert_eq!(
        (err.clone(), err.status()),
        (HandshakeError::UpgradeNotWebSocket, 400)
    );
    assert_eq!(
        rejection_bytes(&err),
        bad_request("upgrade header does not name websocket")
    );
}

/// Covers server 1: `Connection` without the `upgrade` token (`keep-alive` alone,
/// or a token that only contains the word).
#[test]
fn server_rejects_connection_without_upgrade_with_400() {
    for value in [&b"keep-alive"[..], b"upgrades", b"close"] {
        let list = with("Connection", Some(value));
        let err = validate(&list, &ServerSettings::default()).unwrap_err();
        assert_eq!(err, HandshakeError::MissingConnectionUpgrade, "{value:?}");
        assert_eq!(err.status(), 400);
    }
    let err = validate(&with("Connection", None), &ServerSettings::default()).unwrap_err();
    assert_eq!(
        rejection_bytes(&err),
        bad_request("connection header does not contain upgrade")
    );
}

/// Covers server 1: missing `Host` (RFC 6455 §4.2.1 item 2) gets 400.
#[test]
fn server_rejects_missing_host_with_400() {
    let err = validate(&with("Host", None), &ServerSettings::default()).unwrap_err();
    assert_eq!(
        (err.clone(), err.status()),
        (HandshakeError::MissingHost, 400)
    );
}

/// Covers server 1: missing key gets 400 with a short plain-text reason, exact bytes.
#[test]
fn server_rejects_missing_key_with_400() {
    let err = validate(&with("Sec-WebSocket-Key", None), &ServerSettings::default()).unwrap_err();
    assert_eq!(err, HandshakeError::MissingKey);
    assert_eq!(
        rejection_bytes(&err),
        "HTTP/1.1 400 Bad Request\r\n\
         Content-Type: text/plain; charset=utf-8\r\n\
         Content-Length: 33\r\n\
         Connection: close\r\n\
         \r\n\
         missing sec-websocket-key header\n"
    );
}

/// Covers server 1: a key of 15 bytes (`the sample nonc`) is not 16 bytes.
#[test]
fn server_rejects_key_of_15_bytes() {
    let list = with("Sec-WebSocket-Key", Some(b"dGhlIHNhbXBsZSBub25j"));
    let err = validate(&list, &ServerSettings::default()).unwrap_err();
    assert_eq!(
        (err.clone(), err.status()),
        (HandshakeError::InvalidKey, 400)
    );
    assert_eq!(
        rejection_bytes(&err),
        bad_request("sec-websocket-key is not 16 base64-encoded bytes")
    );
}

/// Covers server 1: a key of 17 bytes.
#[test]
fn server_rejects_key_of_17_bytes() {
    let list = with("Sec-WebSocket-Key", Some(b"dGhlIHNhbXBsZSBub25jZXM="));
    assert_eq!(
        validate(&list, &ServerSettings::default()),
        Err(HandshakeError::InvalidKey)
    );
}

/// Covers server 1: a key that is not base64 at all, or unpadded.
#[test]
fn server_rejects_key_not_base64() {
    for key in [
        &b"not a base64 key at all!"[..],
        b"dGhlIHNhbXBsZSBub25jZQ",
        b"",
    ] {
        let list = with("Sec-WebSocket-Key", Some(key));
        assert_eq!(
            validate(&list, &ServerSettings::default()),
            Err(HandshakeError::InvalidKey)
        );
    }
}

/// Covers server 1: the key must appear once (RFC 6455 §11.3.1).
#[test]
fn server_rejects_duplicate_key_with_400() {
    let mut list = headers();
    list.push(("sec-websocket-key", b"AQIDBAUGBwgJCgsMDQ4PEA=="));
    let err = validate(&list, &ServerSettings::default()).unwrap_err();
    assert_eq!(
        (err.clone(), err.status()),
        (HandshakeError::DuplicateKey, 400)
    );
}

/// Covers server 1: wrong version gets 426 with `Sec-WebSocket-Version: 13`, exact
/// bytes.
#[test]
fn server_rejects_version_8_with_426_and_version_header() {
    let err = validate(
        &with("Sec-WebSocket-Version", Some(b"8")),
        &ServerSettings::default(),
    )
    .unwrap_err();
    assert_eq!(err, HandshakeError::UnsupportedVersion);
    assert_eq!(err.status(), 426);
    assert_eq!(
        err.response_headers(),
        [("Sec-WebSocket-Version", "13"), ("Upgrade", "websocket")]
    );
    assert_eq!(
        rejection_bytes(&err),
        "HTTP/1.1 426 Upgrade Required\r\n\
         Content-Type: text/plain; charset=utf-8\r\n\
         Content-Length: 33\r\n\
         Connection: Upgrade, close\r\n\
         Sec-WebSocket-Version: 13\r\n\
         Upgrade: websocket\r\n\
         \r\n\
         sec-websocket-version must be 13\n"
    );
}

/// Covers server 1: a missing version is answered like a wrong one, 426.
#[test]
fn server_rejects_missing_version_with_426() {
    let err = validate(
        &with("Sec-WebSocket-Version", None),
        &ServerSettings::default(),
    )
    .unwrap_err();
    assert_eq!(err, HandshakeError::MissingVersion);
    assert_eq!(err.status(), 426);
    assert_eq!(err.response_headers()[0], ("Sec-WebSocket-Version", "13"));
}

/// Covers server 1: `13` must be the whole value (`13, 8` and `130` are not 13).
#[test]
fn server_rejects_version_lists_and_lookalikes_with_426() {
    for value in [&b"13, 8"[..], b"130", b"", b"13.0"] {
        let list = with("Sec-WebSocket-Version", Some(value));
        let err = validate(&list, &ServerSettings::default()).unwrap_err();
        assert_eq!(
            (err.clone(), err.status()),
            (HandshakeError::UnsupportedVersion, 426)
        );
    }
}

// ---------------------------------------------------------------------------------
// Server: origin allow-list.

/// Covers server 5: an origin outside the configured list gets 403.
#[test]
fn server_rejects_origin_outside_allow_list_with_403() {
    let opts = ServerSettings::default().origins(["https://example.com"]);
    let err = validate(&with("Origin", Some(b"https://evil.example")), &opts).unwrap_err();
    assert_eq!(err, HandshakeError::OriginNotAllowed);
    assert_eq!(err.status(), 403);
    assert_eq!(
        rejection_bytes(&err),
        "HTTP/1.1 403 Forbidden\r\n\
         Content-Type: text/plain; charset=utf-8\r\n\
         Content-Length: 19\r\n\
         Connection: close\r\n\
         \r\n\
         origin not allowed\n"
    );
}

/// Covers server 5: a request without `Origin` (not a browser) is accepted, list or
/// not.
#[test]
fn server_accepts_missing_origin() {
    let opts = ServerSettings::default().origins(["https://example.com"]);
    assert!(validate(&headers(), &opts).is_ok());
    assert!(validate(&headers(), &ServerSettings::default()).is_ok());
}

/// Covers server 5: a listed origin (any case) is accepted.
#[test]
fn server_accepts_origin_in_allow_list() {
    let opts = ServerSettings::default().origins(["https://a.example", "https://example.com"]);
    assert!(validate(&with("Origin", Some(b"https://Example.com")), &opts).is_ok());
}

/// Covers server 5: without a list, only the server's own origin is accepted; with
/// `"*"`, any.
#[test]
fn server_accepts_only_its_own_origin_without_allow_list() {
    let opts = ServerSettings::default();
    let err = validate(&with("Origin", Some(b"https://evil.example")), &opts).unwrap_err();
    assert_eq!(
        (err.clone(), err.status()),
        (HandshakeError::OriginNotAllowed, 403)
    );
    let host = headers()
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("host"))
        .map(|(_, v)| format!("http://{}", String::from_utf8_lossy(v)))
        .unwrap();
    assert!(validate(&with("Origin", Some(host.as_bytes())), &opts).is_ok());
    let any = ServerSettings::default().allow_any_origin();
    assert!(validate(&with("Origin", Some(b"https://evil.example")), &any).is_ok());
}

// ---------------------------------------------------------------------------------
// Server: subprotocols.

/// Covers server 3: the server's preference wins, not the client's order.
#[test]
fn server_picks_first_server_protocol_the_client_offered() {
    let opts = ServerSettings::default().protocols(["v3", "v2", "v1"]);
    let list = with("Sec-WebSocket-Protocol", Some(b"v1, v2"));
    let accept = validate(&list, &opts).unwrap();
    assert_eq!(accept.protocol.as_deref(), Some("v2"));
    assert!(response_bytes(&accept, &opts).contains("\r\nSec-WebSocket-Protocol: v2\r\n"));
}

/// Covers server 3: offers spread over several `Sec-WebSocket-Protocol` headers.
#[test]
fn server_picks_protocol_from_repeated_headers() {
    let opts = ServerSettings::default().protocols(["b"]);
    let mut list = with("Sec-WebSocket-Protocol", Some(b"a"));
    list.push(("sec-websocket-protocol", b" c , b"));
    assert_eq!(
        validate(&list, &opts).unwrap().protocol.as_deref(),
        Some("b")
    );
}

/// Covers server 3: no match, no `Sec-WebSocket-Protocol` in the response, and the
/// handshake still succeeds.
#[test]
fn server_echoes_no_protocol_when_none_matches() {
    let opts = ServerSettings::default().protocols(["chat"]);
    let accept = validate(&with("Sec-WebSocket-Protocol", Some(b"superchat")), &opts).unwrap();
    assert_eq!(accept.protocol, None);
    assert_eq!(
        response_bytes(&accept, &opts),
        format!(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Accept: {ACCEPT}\r\n\r\n"
        )
    );
}

/// Covers server 3: a client that offers nothing gets no protocol.
#[test]
fn server_chooses_no_protocol_when_client_offers_none() {
    let opts = ServerSettings::default().protocols(["chat"]);
    assert_eq!(validate(&headers(), &opts).unwrap().protocol, None);
}

/// Covers server 1 (invalid headers get 400): a protocol list that is not tokens.
#[test]
fn server_rejects_protocol_header_with_non_token_with_400() {
    let list = with("Sec-WebSocket-Protocol", Some(b"chat, \"quoted\""));
    let err = validate(&list, &ServerSettings::default()).unwrap_err();
    assert_eq!(
        (err.clone(), err.status()),
        (HandshakeError::InvalidProtocolHeader, 400)
    );
}

// ---------------------------------------------------------------------------------
// Server: additional headers.

/// Covers server 4: configured headers are sent, after the handshake's own, in name
/// order (a TOML table has no order of its own).
#[test]
fn server_sends_additional_headers() {
    let opts = ServerSettings::default()
        .header("X-Powered-By", "websocket-driver")
        .header("Set-Cookie", "a=1; Path=/");
    let accept = validate(&headers(), &opts).unwrap();
    assert_eq!(
        response_bytes(&accept, &opts),
        format!(
            "HTTP/1.1 101 Switching Protocols\r\n\
             Upgrade: websocket\r\n\
             Connection: Upgrade\r\n\
             Sec-WebSocket-Accept: {ACCEPT}\r\n\
             Set-Cookie: a=1; Path=/\r\n\
             X-Powered-By: websocket-driver\r\n\
             \r\n"
        )
    );
}

/// Covers server 4: a header that would inject CRLF, a bad name, or a header the
/// handshake writes itself is left out of the response, and `Settings::check` names it.
#[test]
fn server_refuses_additional_headers_that_inject_or_collide() {
    let opts = ServerSettings::default()
        .header("X-Evil", "a\r\nSet-Cookie: stolen=1")
        .header("X Bad", "1")
        .header("connection", "close")
        .header("X-Good", "1");
    let accept = validate(&headers(), &opts).unwrap();
    let bytes = response_bytes(&accept, &opts);
    assert!(!bytes.contains("stolen") && !bytes.contains("close") && !bytes.contains("X Bad"));
    assert!(bytes.ends_with("X-Good: 1\r\n\r\n"));

    let check = |name: &str, value: &str| {
        srv(&ServerSettings::default().header(name, value))
            .check()
            .map_err(|err| match err {
                SettingsError::Handshake {
                    key: "server.headers",
                    error,
                } => error,
                other => panic!("not a server header error: {other:?}"),
            })
    };
    assert_eq!(
        check("X-Evil", "a\r\nb").unwrap_err(),
        BuildError::InvalidHeaderValue("X-Evil".into())
    );
    assert_eq!(
        check("X-Evil\r\n", "a").unwrap_err(),
        BuildError::InvalidHeaderName("X-Evil\r\n".into())
    );
    assert_eq!(
        check("Sec-WebSocket-Accept", "x").unwrap_err(),
        BuildError::ReservedHeader("Sec-WebSocket-Accept".into())
    );
    assert_eq!(
        check("content-length", "0").unwrap_err(),
        BuildError::ReservedHeader("content-length".into())
    );
    assert!(check("X-Good", "caf\u{e9}\tok").is_ok());
}

// ---------------------------------------------------------------------------------
// Server: extensions (the offer is kept for permessage-deflate).

/// The offer is kept raw, joined over headers; the answer is set by the extension.
#[test]
fn server_keeps_extension_offer_and_sends_chosen_extensions() {
    let mut list = with(
        "Sec-WebSocket-Extensions",
        Some(b"permessage-deflate; client_max_window_bits"),
    );
    list.push(("sec-websocket-extensions", b"x-foo"));
    let opts = ServerSettings::default();
    let mut accept = validate(&list, &opts).unwrap();
    assert_eq!(
        accept.offered_extensions.as_deref(),
        Some("permessage-deflate; client_max_window_bits, x-foo")
    );
    assert!(!response_bytes(&accept, &opts).contains("Extensions"));
    accept
        .set_extensions(Some("permessage-deflate".into()))
        .unwrap();
    assert_eq!(
        response_bytes(&accept, &opts),
        format!(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Accept: {ACCEPT}\r\nSec-WebSocket-Extensions: permessage-deflate\r\n\r\n"
        )
    );
}

/// Covers server 1 (invalid headers get 400): an extension offer that breaks
/// RFC 6455 §9.1.
#[test]
fn server_rejects_malformed_extension_offer_with_400() {
    let list = with("Sec-WebSocket-Extensions", Some(b"permessage-deflate; =15"));
    let err = validate(&list, &ServerSettings::default()).unwrap_err();
    assert_eq!(
        (err.clone(), err.status()),
        (HandshakeError::InvalidExtensionsHeader, 400)
    );
}

// ---------------------------------------------------------------------------------
// Server: reading a request from bytes.

/// Covers server 6 (bounded, resumable reading): every prefix of the head is
/// incomplete and consumes nothing; the frame after it is left to the caller.
#[test]
fn server_parse_request_incomplete_consumes_nothing_and_leaves_frame_bytes() {
    let mut bytes = RFC_REQUEST.to_vec();
    bytes.extend_from_slice(&[
        0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58,
    ]);
    for end in 0..RFC_REQUEST.len() {
        assert_eq!(
            parse_request(&bytes[..end]),
            Ok(None),
            "prefix of {end} bytes"
        );
    }
    let (_, used) = parse_request(&bytes).unwrap().unwrap();
    assert_eq!(
        &bytes[used..],
        [0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58]
    );
}

/// Covers server 6: a head that never ends stops at 16 KiB with 431.
#[test]
fn server_parse_request_refuses_head_over_16_kib_with_431() {
    let mut bytes = b"GET / HTTP/1.1\r\nX-Long: ".to_vec();
    bytes.resize(MAX_HEAD_SIZE - 1, b'a');
    assert_eq!(parse_request(&bytes), Ok(None));
    bytes.push(b'a');
    let err = parse_request(&bytes).unwrap_err();
    assert_eq!(
        (err.clone(), err.status()),
        (HandshakeError::HeadTooLarge, 431)
    );
}

/// Covers server 6: more than 64 header lines get 431.
#[test]
fn server_parse_request_refuses_too_many_headers_with_431() {
    let mut bytes = b"GET / HTTP/1.1\r\n".to_vec();
    for i in 0..=MAX_HEADERS {
        bytes.extend_from_slice(format!("X-{i}: 1\r\n").as_bytes());
    }
    bytes.extend_from_slice(b"\r\n");
    let err = parse_request(&bytes).unwrap_err();
    assert_eq!(
        (err.clone(), err.status()),
        (HandshakeError::TooManyHeaders, 431)
    );
}

/// Covers server 1: something that is not HTTP gets 400.
#[test]
fn server_parse_request_refuses_garbage_with_400() {
    let err = parse_request(b"GET / HTTP/1.1\r\nBad Header\r\n\r\n").unwrap_err();
    assert_eq!(
        (err.clone(), err.status()),
        (HandshakeError::MalformedHead, 400)
    );
}

// ---------------------------------------------------------------------------------
// Client: the request.

/// Covers client 1: the request, byte for byte.
#[test]
fn client_request_bytes_exact() {
    let opts = ClientSettings::default()
        .protocols(["chat", "superchat"])
        .origin("http://example.com")
        .header("Cookie", "a=1");
    let request =
        ClientRequest::with_key("server.example.com", "/chat?x=1", &cli(&opts), KEY).unwrap();
    let mut bytes = Vec::new();
    request.write(&mut bytes);
    assert_eq!(
        String::from_utf8(bytes).unwrap(),
        "GET /chat?x=1 HTTP/1.1\r\n\
         Host: server.example.com\r\n\
         Upgrade: websocket\r\n\
         Connection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
         Sec-WebSocket-Version: 13\r\n\
         Sec-WebSocket-Protocol: chat, superchat\r\n\
         Origin: http://example.com\r\n\
         Cookie: a=1\r\n\
         \r\n"
    );
    assert_eq!(request.expected_accept(), ACCEPT);
}

/// Covers client 1: the minimal request, and the extension offer's place.
#[test]
fn client_request_bytes_minimal_and_with_extensions() {
    let request =
        ClientRequest::with_key("localhost:9001", "/", &Settings::default(), KEY).unwrap();
    let mut bytes = Vec::new();
    request.write(&mut bytes);
    assert_eq!(
        String::from_utf8(bytes).unwrap(),
        "GET / HTTP/1.1\r\nHost: localhost:9001\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    );
    let request = ClientRequest::with_key("h", "/", &Settings::default(), KEY)
        .and_then(|r| r.with_extensions(Some("permessage-deflate; client_max_window_bits".into())))
        .unwrap();
    let mut bytes = Vec::new();
    request.write(&mut bytes);
    assert!(String::from_utf8(bytes).unwrap().ends_with(
        "Sec-WebSocket-Version: 13\r\n\
         Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n\r\n"
    ));
}

/// Covers client 1: a random 16-byte key per connection.
#[test]
fn client_generates_fresh_16_byte_keys() {
    let opts = Settings::default();
    let a = ClientRequest::new("h", "/", &opts).unwrap();
    let b = ClientRequest::new("h", "/", &opts).unwrap();
    assert_ne!(a.key(), b.key());
    for key in [a.key().to_owned(), b.key().to_owned(), generate_key()] {
        // 16 bytes in base64: 22 characters and "==" padding.
        assert_eq!(key.len(), 24);
        assert!(key.ends_with("=="));
        // The server side agrees it is a valid key.
        let list = with("Sec-WebSocket-Key", Some(key.as_bytes()));
        assert!(validate(&list, &ServerSettings::default()).is_ok());
    }
    assert_eq!(a.expected_accept(), accept_key(a.key().as_bytes()));
}

/// Covers client 1: the request cannot be made to carry injected headers.
#[test]
fn client_refuses_options_that_inject_headers() {
    let opts = ClientSettings::default();
    assert_eq!(
        ClientRequest::new("h\r\nX: 1", "/", &cli(&opts)),
        Err(BuildError::InvalidHost("h\r\nX: 1".into()))
    );
    assert_eq!(
        ClientRequest::new("h", "/ HTTP/1.1\r\nX: 1", &cli(&opts)),
        Err(BuildError::InvalidTarget("/ HTTP/1.1\r\nX: 1".into()))
    );
    assert_eq!(
        ClientRequest::new("h", "/", &cli(&opts.clone().protocols(["a\r\nX: 1"]))),
        Err(BuildError::InvalidProtocol("a\r\nX: 1".into()))
    );
    assert_eq!(
        ClientRequest::new("h", "/", &cli(&opts))
            .and_then(|r| r.with_extensions(Some("x\r\nX: 1".into()))),
        Err(BuildError::InvalidExtensions("x\r\nX: 1".into()))
    );
    assert_eq!(
        ClientRequest::new(
            "h",
            "/",
            &cli(&opts.clone().header("Sec-WebSocket-Version", "8"))
        ),
        Err(BuildError::ReservedHeader("Sec-WebSocket-Version".into()))
    );
}

// ---------------------------------------------------------------------------------
// Client: the response.

fn client(opts: &ClientSettings) -> ClientRequest {
    ClientRequest::with_key("server.example.com", "/chat", &cli(opts), KEY).unwrap()
}

/// A request offering `extensions` as they are.
fn client_offering(extensions: &str) -> ClientRequest {
    client(&ClientSettings::default())
        .with_extensions(Some(extensions.into()))
        .unwrap()
}

/// The RFC's sample response, with `extra` header lines before the blank line.
fn response_with(extra: &str) -> String {
    format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Accept: {ACCEPT}\r\n{extra}\r\n"
    )
}

/// Covers client 1: a valid `101` is accepted, and its headers are kept.
#[test]
fn client_accepts_valid_response() {
    let request = client(&ClientSettings::default().protocols(["chat", "superchat"]));
    let bytes = response_with("Sec-WebSocket-Protocol: chat\r\nX-Server: a\r\n");
    let (response, used) = request.parse_response(bytes.as_bytes()).unwrap().unwrap();
    assert_eq!(used, bytes.len());
    assert_eq!(response.status, 101);
    assert_eq!(response.protocol.as_deref(), Some("chat"));
    assert_eq!(response.extensions, None);
    assert_eq!(response.header("x-server"), Some(&b"a"[..]));
    assert_eq!(response.headers.len(), 5);
    assert_eq!(
        response.headers[0],
        ("Upgrade".to_string(), b"websocket".to_vec())
    );
}

/// Covers client 1: `Upgrade`, `Connection` compared case-insensitively, among
/// other tokens; whitespace around the accept key ignored (RFC 6455 §4.1 check 4).
#[test]
fn client_accepts_response_headers_in_any_case() {
    let bytes = format!(
        "HTTP/1.1 101 OK\r\nupgrade: WebSocket\r\nCONNECTION: keep-alive, UPGRADE\r\n\
         sec-websocket-accept:   {ACCEPT}  \r\n\r\n"
    );
    assert!(client(&ClientSettings::default())
        .parse_response(bytes.as_bytes())
        .unwrap()
        .is_some());
}

/// Covers client 1: anything but `101` fails.
#[test]
fn client_rejects_status_200() {
    let bytes = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
    assert_eq!(
        client(&ClientSettings::default()).parse_response(bytes),
        Err(HandshakeError::UnexpectedStatus(200))
    );
}

/// Covers client 1: a server refusing with 426 is reported with its status.
#[test]
fn client_rejects_status_426() {
    let mut bytes = Vec::new();
    HandshakeError::UnsupportedVersion.write_rejection(&mut bytes);
    assert_eq!(
        client(&ClientSettings::default()).parse_response(&bytes),
        Err(HandshakeError::UnexpectedStatus(426))
    );
}

/// Covers client 1: a `101` from HTTP/1.0 is not a valid upgrade.
#[test]
fn client_rejects_http_1_0_response() {
    let bytes = response_with("").replacen("HTTP/1.1", "HTTP/1.0", 1);
    assert_eq!(
        client(&ClientSettings::default()).parse_response(bytes.as_bytes()),
        Err(HandshakeError::UnsupportedHttpVersion)
    );
}

/// Covers client 1: `Upgrade` checked.
#[test]
fn client_rejects_missing_or_wrong_upgrade() {
    let request = client(&ClientSettings::default());
    let missing = response_with("").replace("Upgrade: websocket\r\n", "");
    assert_eq!(
        request.parse_response(missing.as_bytes()),
        Err(HandshakeError::MissingUpgrade)
    );
    let wrong = response_with("").replace("Upgrade: websocket", "Upgrade: h2c");
    assert_eq!(
        request.parse_response(wrong.as_bytes()),
        Err(HandshakeError::UpgradeNotWebSocket)
    );
}

/// Covers client 1: `Connection` checked.
#[test]
fn client_rejects_missing_connection_upgrade() {
    let request = client(&ClientSettings::default());
    let bytes = response_with("").replace("Connection: Upgrade", "Connection: keep-alive");
    assert_eq!(
        request.parse_response(bytes.as_bytes()),
        Err(HandshakeError::MissingConnectionUpgrade)
    );
}

/// Covers client 1: `Sec-WebSocket-Accept` checked: wrong, missing, repeated.
#[test]
fn client_rejects_wrong_accept_key() {
    let request = client(&ClientSettings::default());
    let wrong = response_with("").replace(ACCEPT, &accept_key(b"AQIDBAUGBwgJCgsMDQ4PEA=="));
    assert_eq!(
        request.parse_response(wrong.as_bytes()),
        Err(HandshakeError::InvalidAcceptKey)
    );
    // The brief's typo of the RFC value must not pass either.
    let typo = response_with("").replace(ACCEPT, "s3pPLMBiTxaQ9kYGzzhZRbxk+oo=");
    assert_eq!(
        request.parse_response(typo.as_bytes()),
        Err(HandshakeError::InvalidAcceptKey)
    );
    let missing = response_with("").replace(&format!("Sec-WebSocket-Accept: {ACCEPT}\r\n"), "");
    assert_eq!(
        request.parse_response(missing.as_bytes()),
        Err(HandshakeError::MissingAcceptKey)
    );
    let twice = response_with(&format!("Sec-WebSocket-Accept: {ACCEPT}\r\n"));
    assert_eq!(
        request.parse_response(twice.as_bytes()),
        Err(HandshakeError::InvalidAcceptKey)
    );
}

/// Covers client 1: a subprotocol the client did not offer fails the connection.
#[test]
fn client_rejects_unoffered_protocol() {
    let request = client(&ClientSettings::default().protocols(["chat"]));
    let bytes = response_with("Sec-WebSocket-Protocol: superchat\r\n");
    assert_eq!(
        request.parse_response(bytes.as_bytes()),
        Err(HandshakeError::UnofferedProtocol("superchat".into()))
    );
    // Compared exactly.
    let bytes = response_with("Sec-WebSocket-Protocol: Chat\r\n");
    assert_eq!(
        request.parse_response(bytes.as_bytes()),
        Err(HandshakeError::UnofferedProtocol("Chat".into()))
    );
}

/// Covers client 1: a subprotocol when the client offered none fails too.
#[test]
fn client_rejects_protocol_when_none_offered() {
    let bytes = response_with("Sec-WebSocket-Protocol: chat\r\n");
    assert_eq!(
        client(&ClientSettings::default()).parse_response(bytes.as_bytes()),
        Err(HandshakeError::UnofferedProtocol("chat".into()))
    );
}

/// Covers client 1: no subprotocol in the answer is fine even when some were offered.
#[test]
fn client_accepts_no_protocol_when_some_offered() {
    let request = client(&ClientSettings::default().protocols(["chat"]));
    let (response, _) = request
        .parse_response(response_with("").as_bytes())
        .unwrap()
        .unwrap();
    assert_eq!(response.protocol, None);
}

/// Covers client 1: an extension the client did not offer fails the connection.
#[test]
fn client_rejects_unoffered_extension() {
    let bytes = response_with("Sec-WebSocket-Extensions: permessage-deflate\r\n");
    assert_eq!(
        client(&ClientSettings::default()).parse_response(bytes.as_bytes()),
        Err(HandshakeError::UnofferedExtension(
            "permessage-deflate".into()
        ))
    );
    let request = client_offering("permessage-deflate");
    let bytes = response_with("Sec-WebSocket-Extensions: permessage-deflate, x-other\r\n");
    assert_eq!(
        request.parse_response(bytes.as_bytes()),
        Err(HandshakeError::UnofferedExtension("x-other".into()))
    );
}

/// Covers client 1: an offered extension is accepted and its raw answer returned for
/// the extension to check its parameters.
#[test]
fn client_accepts_offered_extension_and_returns_raw_value() {
    let request = client_offering("permessage-deflate; client_max_window_bits");
    let bytes = response_with(
        "Sec-WebSocket-Extensions: permessage-deflate; server_max_window_bits=10\r\n",
    );
    let (response, _) = request.parse_response(bytes.as_bytes()).unwrap().unwrap();
    assert_eq!(
        response.extensions.as_deref(),
        Some("permessage-deflate; server_max_window_bits=10")
    );
}

/// Covers client 1: a malformed extensions answer fails the connection.
#[test]
fn client_rejects_malformed_extensions_header() {
    let request = client_offering("permessage-deflate");
    let bytes = response_with("Sec-WebSocket-Extensions: permessage-deflate;\r\n");
    assert_eq!(
        request.parse_response(bytes.as_bytes()),
        Err(HandshakeError::InvalidExtensionsHeader)
    );
}

/// Covers client 1: every prefix of the head is incomplete and consumes nothing.
#[test]
fn client_incomplete_response_consumes_nothing() {
    let request = client(&ClientSettings::default());
    let bytes = response_with("");
    for end in 0..bytes.len() {
        assert_eq!(
            request.parse_response(&bytes.as_bytes()[..end]),
            Ok(None),
            "{end}"
        );
    }
    assert!(request.parse_response(bytes.as_bytes()).unwrap().is_some());
}

/// Covers client 1: a frame in the same packet as the head is left to the caller.
#[test]
fn client_leaves_trailing_frame_bytes() {
    let request = client(&ClientSettings::default());
    let head = response_with("");
    let mut bytes = head.clone().into_bytes();
    bytes.extend_from_slice(b"\x81\x05Hello");
    let (_, used) = request.parse_response(&bytes).unwrap().unwrap();
    assert_eq!(used, head.len());
    assert_eq!(&bytes[used..], b"\x81\x05Hello");
}

/// Covers client 1: a head that never ends stops at 16 KiB; one just under fits.
#[test]
fn client_rejects_head_over_16_kib() {
    let request = client(&ClientSettings::default());
    let mut bytes = response_with("").into_bytes();
    bytes.truncate(bytes.len() - 2);
    bytes.extend_from_slice(b"X-Pad: ");
    let pad = MAX_HEAD_SIZE - bytes.len() - 4;
    bytes.resize(bytes.len() + pad, b'a');
    bytes.extend_from_slice(b"\r\n\r\n");
    assert_eq!(bytes.len(), MAX_HEAD_SIZE);
    assert!(request.parse_response(&bytes).unwrap().is_some());

    let mut endless = b"HTTP/1.1 101 Switching Protocols\r\nX-Pad: ".to_vec();
    endless.resize(MAX_HEAD_SIZE - 1, b'a');
    assert_eq!(request.parse_response(&endless), Ok(None));
    endless.push(b'a');
    assert_eq!(
        request.parse_response(&endless),
        Err(HandshakeError::HeadTooLarge)
    );
}

/// Covers client 1: more than 64 headers fail.
#[test]
fn client_rejects_too_many_headers() {
    let extra: String = (0..MAX_HEADERS).map(|i| format!("X-{i}: 1\r\n")).collect();
    assert_eq!(
        client(&ClientSettings::default()).parse_response(response_with(&extra).as_bytes()),
        Err(HandshakeError::TooManyHeaders)
    );
}

/// Covers client 1 and server 2 together: our client accepts our server's answer.
#[test]
fn client_accepts_our_server_response() {
    let copts = ClientSettings::default()
        .protocols(["b", "a"])
        .origin("https://example.com");
    let request = ClientRequest::new("example.com", "/ws", &cli(&copts)).unwrap();
    let mut wire = Vec::new();
    request.write(&mut wire);
    let (head, used) = parse_request(&wire).unwrap().unwrap();
    assert_eq!(used, wire.len());
    let sopts = ServerSettings::default()
        .protocols(["a", "b"])
        .origins(["https://example.com"]);
    let accept = head.validate(&srv(&sopts)).unwrap();
    let mut answer = Vec::new();
    accept.write_response(&srv(&sopts), &mut answer);
    let (response, _) = request.parse_response(&answer).unwrap().unwrap();
    assert_eq!(response.protocol.as_deref(), Some("a"));
}

// ---------------------------------------------------------------------------------
// The extensions grammar (used by permessage-deflate).

#[test]
fn extensions_parser_reads_a_browser_offer() {
    let list =
        parse_extensions("permessage-deflate; client_max_window_bits, permessage-deflate; server_max_window_bits=\"10\"")
            .unwrap();
    assert_eq!(
        list,
        [
            Extension {
                name: "permessage-deflate".into(),
                params: vec![("client_max_window_bits".into(), None)],
            },
            Extension {
                name: "permessage-deflate".into(),
                params: vec![("server_max_window_bits".into(), Some("10".into()))],
            },
        ]
    );
    assert_eq!(list[1].param("SERVER_MAX_WINDOW_BITS"), Some(Some("10")));
    assert_eq!(list[1].param("client_max_window_bits"), None);
}

#[test]
fn extensions_parser_refuses_bad_syntax() {
    for bad in ["a;", "a b", "a; b=\"c d\"", "a; b=", "a,;b", "a; b=\"c"] {
        assert_eq!(
            parse_extensions(bad),
            Err(HandshakeError::InvalidExtensionsHeader),
            "{bad}"
        );
    }
}

// ---------------------------------------------------------------------------------
// Properties: no panic on any input, splitting never changes the outcome.

fn valid_response() -> Vec<u8> {
    response_with("Sec-WebSocket-Protocol: chat\r\n").into_bytes()
}

proptest! {
    #[test]
    fn parse_response_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let request = client(&ClientSettings::default().protocols(["chat"]));
        let _ = request.parse_response(&bytes);
    }

    #[test]
    fn parse_response_never_panics_after_a_valid_start(
        cut in 0usize..200,
        tail in proptest::collection::vec(any::<u8>(), 0..512),
    ) {
        let request = client(&ClientSettings::default().protocols(["chat"]));
        let mut bytes = valid_response();
        bytes.truncate(cut.min(bytes.len()));
        bytes.extend_from_slice(&tail);
        let _ = request.parse_response(&bytes);
    }

    #[test]
    fn parse_response_is_none_until_complete(split in 0usize..400) {
        let request = client(&ClientSettings::default().protocols(["chat"]));
        let mut bytes = valid_response();
        let head_len = bytes.len();
        bytes.extend_from_slice(b"\x81\x02hi");
        let split = split.min(bytes.len());
        match request.parse_response(&bytes[..split]) {
            Ok(None) => prop_assert!(split < head_len),
            Ok(Some((response, used))) => {
                prop_assert!(split >= head_len);
                prop_assert_eq!(used, head_len);
                prop_assert_eq!(response.protocol.as_deref(), Some("chat"));
            }
            Err(err) => prop_assert!(false, "error {:?} at split {}", err, split),
        }
    }

    #[test]
    fn parse_request_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        if let Ok(Some((head, used))) = parse_request(&bytes) {
            prop_assert!(used <= bytes.len());
            let _ = head.validate(&srv(&ServerSettings::default().origins(["x"]).protocols(["a"])));
        }
    }

    #[test]
    fn validate_request_never_panics(
        method in "[A-Za-z]{0,8}",
        headers in proptest::collection::vec(
            (
                prop_oneof![
                    Just("Host".to_string()),
                    Just("Upgrade".to_string()),
                    Just("Connection".to_string()),
                    Just("Sec-WebSocket-Key".to_string()),
                    Just("Sec-WebSocket-Version".to_string()),
                    Just("Sec-WebSocket-Protocol".to_string()),
                    Just("Sec-WebSocket-Extensions".to_string()),
                    Just("Origin".to_string()),
                    "[ -~]{0,12}",
                ],
                proptest::collection::vec(any::<u8>(), 0..40),
            ),
            0..12,
        ),
    ) {
        let list: Vec<(&str, &[u8])> =
            headers.iter().map(|(n, v)| (n.as_str(), v.as_slice())).collect();
        let opts = ServerSettings::default().protocols(["a", "b"]).origins(["https://x"]);
        if let Ok(accept) =
            validate_request(&RequestParts { method: &method, version: HttpVersion::Http11, headers: &list }, &srv(&opts))
        {
            let mut out = Vec::new();
            accept.write_response(&srv(&opts), &mut out);
            prop_assert!(out.starts_with(b"HTTP/1.1 101 Switching Protocols\r\n"));
        }
    }

    #[test]
    fn parse_extensions_never_panics(value in "\\PC{0,64}") {
        if let Ok(list) = parse_extensions(&value) {
            // What parsed writes back to something that parses the same.
            let text: Vec<String> = list.iter().map(ToString::to_string).collect();
            prop_assert_eq!(parse_extensions(&text.join(", ")), Ok(list));
        }
    }

    #[test]
    fn parse_extensions_round_trips_generated_lists(
        list in proptest::collection::vec(
            (
                "[a-z][a-z0-9_-]{0,8}",
                proptest::collection::vec(("[a-z_]{1,8}", proptest::option::of("[A-Za-z0-9]{1,4}")), 0..4),
            ),
            1..4,
        ),
    ) {
        let list: Vec<Extension> = list
            .into_iter()
            .map(|(name, params)| Extension { name, params })
            .collect();
        let text: Vec<String> = list.iter().map(ToString::to_string).collect();
        prop_assert_eq!(parse_extensions(&text.join(" ,")), Ok(list));
    }
}
