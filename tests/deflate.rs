//! permessage-deflate (RFC 7692), both roles, sans-I/O: exact header values and
//! exact bytes in and out.
//!
//! Each test names the rule of the "permessage-deflate (RFC 7692)" section of
//! `/work/shared/conformance.md` it covers (`rule N` below, in the section's order):
//!
//! 1. negotiate the four parameters;
//! 2. decline offers with unknown, duplicate or out-of-range parameters;
//! 3. accept the first acceptable offer of several;
//! 4. decline an offer that would make us compress with 8 bits; inflate a peer's
//!    8-bit stream with a larger window;
//! 5. inflate messages with RSV1 set, appending `00 00 ff ff`; strip it after
//!    deflating;
//! 6. honour context takeover on both sides;
//! 7. the message limit applies to the inflated size: 1009 without inflating it all.
//!
//! Plus the framing rules deflate touches: RSV1 only on the first frame of a data
//! message, and UTF-8 checked after inflating.

use bytes::BytesMut;
use websocket_driver::{
    handshake::{validate_request, ClientRequest, HandshakeError, HttpVersion, RequestParts},
    proto::Error,
    proto::{
        apply_mask, Connection, Deflate, DeflateParams, Event, Extension, FrameHeader, Message,
        OpCode, PreparedMessage, Role, INFLATE_STEP,
    },
    proto::{CapacityError, ProtocolError},
    DeflateSettings, ProtocolSettings, Settings,
};

/// Settings with `deflate` as their permessage-deflate section.
fn with_deflate(deflate: DeflateSettings) -> Settings {
    let mut settings = Settings::default();
    settings.deflate = deflate;
    settings
}

// ===== helpers =====

const KEY: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

/// A client frame: `b0` (FIN, RSV, opcode) and `payload`, masked with `KEY`.
fn masked(b0: u8, payload: &[u8]) -> Vec<u8> {
    let header = FrameHeader {
        fin: b0 & 0x80 != 0,
        rsv: (b0 >> 4) & 7,
        opcode: OpCode::from_bits(b0),
        mask: Some(KEY),
        payload_len: payload.len() as u64,
    };
    let mut out = BytesMut::new();
    header.encode_into(&mut out);
    let start = out.len();
    out.extend_from_slice(payload);
    apply_mask(&mut out[start..], KEY, 0);
    out.to_vec()
}

/// A server frame: `b0` and `payload`, unmasked.
fn plain(b0: u8, payload: &[u8]) -> Vec<u8> {
    let header = FrameHeader {
        fin: b0 & 0x80 != 0,
        rsv: (b0 >> 4) & 7,
        opcode: OpCode::from_bits(b0),
        mask: None,
        payload_len: payload.len() as u64,
    };
    let mut out = BytesMut::new();
    header.encode_into(&mut out);
    out.extend_from_slice(payload);
    out.to_vec()
}

/// The frames in `bytes`: first byte and unmasked payload.
fn frames(bytes: &[u8]) -> Vec<(u8, Vec<u8>)> {
    let mut rest = bytes;
    let mut list = Vec::new();
    while !rest.is_empty() {
        let (h, n) = FrameHeader::decode(rest).unwrap().unwrap();
        let len = h.payload_len as usize;
        let mut payload = rest[n..n + len].to_vec();
        if let Some(mask) = h.mask {
            apply_mask(&mut payload, mask, 0);
        }
        list.push((rest[0], payload));
        rest = &rest[n + len..];
    }
    list
}

fn conn_with(
    role: Role,
    params: DeflateParams,
    deflate: &DeflateSettings,
    config: ProtocolSettings,
) -> Connection {
    let mut c = Connection::new(role, config);
    c.set_extension(Box::new(Deflate::new(role, params, deflate)));
    c.open();
    assert!(matches!(c.poll_event(), Some(Event::Open)));
    c
}

fn conn(role: Role, params: DeflateParams) -> Connection {
    conn_with(
        role,
        params,
        &DeflateSettings::on(),
        ProtocolSettings::default(),
    )
}

fn events(c: &mut Connection) -> Vec<Event> {
    c.events().collect()
}

fn text_of(e: &Event) -> &str {
    match e {
        Event::Message(Message::Text(t)) => t.as_str(),
        other => panic!("expected a text message, got {other:?}"),
    }
}

fn binary_of(e: &Event) -> &[u8] {
    match e {
        Event::Message(Message::Binary(b)) => b,
        other => panic!("expected a binary message, got {other:?}"),
    }
}

/// Feed `input`, take the events: the last must be `Error` with `code`, and the
/// output must end with a Close frame carrying `code`.
fn assert_fails(c: &mut Connection, input: &[u8], code: u16) -> Error {
    c.receive(input);
    let evs = events(c);
    let err = evs
        .iter()
        .find_map(|e| match e {
            Event::Error(err) => Some(err),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no error in {evs:?}"));
    assert_eq!(err.close_code().0, code, "{err}");
    let out = c.take_output();
    let (b0, payload) = frames(&out).pop().expect("a Close frame");
    assert_eq!(b0, 0x88);
    assert_eq!(&payload[..2], code.to_be_bytes());
    match evs.into_iter().find(|e| matches!(e, Event::Error(_))) {
        Some(Event::Error(err)) => err,
        _ => unreachable!(),
    }
}

fn offer_request(offer: &[u8]) -> Vec<(&'static str, &[u8])> {
    vec![
        ("Host", b"example.com"),
        ("Upgrade", b"websocket"),
        ("Connection", b"Upgrade"),
        ("Sec-WebSocket-Key", b"dGhlIHNhbXBsZSBub25jZQ=="),
        ("Sec-WebSocket-Version", b"13"),
        ("Sec-WebSocket-Extensions", offer),
    ]
}

/// The server's `Sec-WebSocket-Extensions` answer to `offer` under `config`, through
/// the whole handshake (`validate_request`).
fn answer(config: DeflateSettings, offer: &str) -> Option<String> {
    let headers = offer_request(offer.as_bytes());
    let request = RequestParts {
        method: "GET",
        version: HttpVersion::Http11,
        headers: &headers,
    };
    let accept = validate_request(&request, &with_deflate(config)).unwrap();
    assert_eq!(
        accept.extensions().is_some(),
        accept.deflate_params().is_some()
    );
    accept.extensions().map(str::to_owned)
}

/// Text that compresses, of `len` bytes.
fn json_like(len: usize, seed: u32) -> String {
    let mut s = String::with_capacity(len + 64);
    let mut i = seed;
    while s.len() < len {
        i = i.wrapping_mul(1_103_515_245).wrapping_add(12_345);
        s.push_str(&format!(
            "{{\"id\":{},\"user\":\"u{}\",\"kind\":\"{}\",\"ok\":{}}},",
            i % 100_000,
            (i >> 8) % 977,
            ["join", "leave", "chat", "ping"][(i >> 3) as usize % 4],
            i.is_multiple_of(2)
        ));
    }
    s.truncate(len);
    s
}

/// Bytes that do not compress (xorshift).
fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

// ===== rule 1: negotiate the four parameters =====

#[test]
fn rule1_server_accepts_plain_offer_with_its_configured_windows() {
    assert_eq!(
        answer(DeflateSettings::on(), "permessage-deflate").as_deref(),
        Some("permessage-deflate; server_max_window_bits=12")
    );
    let wide = DeflateSettings::on()
        .server_max_window_bits(15)
        .client_max_window_bits(15);
    assert_eq!(
        answer(wide, "permessage-deflate").as_deref(),
        Some("permessage-deflate")
    );
}

#[test]
fn rule1_server_echoes_server_no_context_takeover() {
    let wide = DeflateSettings::on().server_max_window_bits(15);
    assert_eq!(
        answer(
            wide.clone(),
            "permessage-deflate; server_no_context_takeover"
        )
        .as_deref(),
        Some("permessage-deflate; server_no_context_takeover")
    );
    // Configured: said even when not asked (RFC 7692 §7.1.1.1 "MAY include").
    assert_eq!(
        answer(wide.server_no_context_takeover(true), "permessage-deflate").as_deref(),
        Some("permessage-deflate; server_no_context_takeover")
    );
}

#[test]
fn rule1_server_answers_client_no_context_takeover() {
    let wide = DeflateSettings::on().server_max_window_bits(15);
    assert_eq!(
        answer(
            wide.clone(),
            "permessage-deflate; client_no_context_takeover"
        )
        .as_deref(),
        Some("permessage-deflate; client_no_context_takeover")
    );
    assert_eq!(
        answer(wide.client_no_context_takeover(true), "permessage-deflate").as_deref(),
        Some("permessage-deflate; client_no_context_takeover")
    );
}

#[test]
fn rule1_server_max_window_bits_9_to_15_answered_with_the_smaller() {
    for bits in 9..=15u8 {
        let offer = format!("permessage-deflate; server_max_window_bits={bits}");
        let config = DeflateSettings::on().server_max_window_bits(12);
        let expected = format!(
            "permessage-deflate; server_max_window_bits={}",
            bits.min(12)
        );
        assert_eq!(answer(config, &offer), Some(expected), "offer {bits}");
    }
}

#[test]
fn rule1_client_max_window_bits_with_and_without_value() {
    let config = DeflateSettings::on()
        .server_max_window_bits(15)
        .client_max_window_bits(12);
    assert_eq!(
        answer(config.clone(), "permessage-deflate; client_max_window_bits").as_deref(),
        Some("permessage-deflate; client_max_window_bits=12")
    );
    for bits in 8..=15u8 {
        let offer = format!("permessage-deflate; client_max_window_bits={bits}");
        let expected = format!(
            "permessage-deflate; client_max_window_bits={}",
            bits.min(12)
        );
        assert_eq!(
            answer(config.clone(), &offer),
            Some(expected),
            "offer {bits}"
        );
    }
    // Not offered: "MUST NOT include" it (RFC 7692 §7.1.2.2).
    assert_eq!(
        answer(config, "permessage-deflate").as_deref(),
        Some("permessage-deflate")
    );
}

#[test]
fn rule1_quoted_values_read_as_unquoted() {
    let config = DeflateSettings::on().server_max_window_bits(15);
    assert_eq!(
        answer(
            config,
            r#"permessage-deflate; server_max_window_bits="10"; client_max_window_bits="9""#
        )
        .as_deref(),
        Some("permessage-deflate; server_max_window_bits=10; client_max_window_bits=9")
    );
}

#[test]
fn rule1_server_handshake_response_bytes_carry_the_answer() {
    let headers = offer_request(b"permessage-deflate; client_max_window_bits");
    let request = RequestParts {
        method: "GET",
        version: HttpVersion::Http11,
        headers: &headers,
    };
    let opts = with_deflate(DeflateSettings::on());
    let accept = validate_request(&request, &opts).unwrap();
    let mut bytes = Vec::new();
    accept.write_response(&opts, &mut bytes);
    assert_eq!(
        String::from_utf8(bytes).unwrap(),
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\
         Sec-WebSocket-Extensions: permessage-deflate; server_max_window_bits=12; client_max_window_bits=12\r\n\r\n"
    );
    let codec = accept.deflate(&opts).unwrap();
    assert_eq!(codec.compress_window_bits(), 12);
    assert_eq!(codec.inflate_window_bits(), 12);
}

#[test]
fn rule1_server_with_deflate_off_answers_nothing() {
    assert_eq!(
        answer(DeflateSettings::default(), "permessage-deflate"),
        None
    );
}

#[test]
fn rule1_client_offer_lists_its_choices() {
    // The default is the browsers' offer: no window asked of the server, and
    // client_max_window_bits without a value (any window up to 15).
    assert_eq!(
        DeflateSettings::on().offer(),
        "permessage-deflate; client_max_window_bits"
    );
    // Configured windows under 15 are offered as values.
    assert_eq!(
        DeflateSettings::on()
            .server_max_window_bits(12)
            .client_max_window_bits(12)
            .offer(),
        "permessage-deflate; server_max_window_bits=12; client_max_window_bits=12"
    );
    assert_eq!(
        DeflateSettings::on()
            .server_no_context_takeover(true)
            .client_no_context_takeover(true)
            .server_max_window_bits(15)
            .client_max_window_bits(15)
            .offer(),
        "permessage-deflate; server_no_context_takeover; client_no_context_takeover; client_max_window_bits"
    );
    // The offer goes into the request as is, from the settings' deflate section.
    let opts = with_deflate(DeflateSettings::on());
    let request =
        ClientRequest::with_key("example.com", "/", &opts, "dGhlIHNhbXBsZSBub25jZQ==").unwrap();
    let mut bytes = Vec::new();
    request.write(&mut bytes);
    assert!(String::from_utf8(bytes)
        .unwrap()
        .contains("\r\nSec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n"));
}

#[test]
fn rule1_client_with_the_browsers_offer_accepts_any_window() {
    let config = DeflateSettings::on();
    // No parameters: both windows 15.
    let codec = config.accept_response("permessage-deflate").unwrap();
    assert_eq!(codec.inflate_window_bits(), 15);
    assert_eq!(codec.compress_window_bits(), 15);
    // What the Autobahn|Testsuite's server answers in cases 13.4 and 13.6.
    let codec = config
        .accept_response("permessage-deflate; client_max_window_bits=15")
        .unwrap();
    assert_eq!(codec.compress_window_bits(), 15);
    let codec = config
        .accept_response("permessage-deflate; server_max_window_bits=9; client_max_window_bits=9")
        .unwrap();
    assert_eq!(
        (codec.inflate_window_bits(), codec.compress_window_bits()),
        (9, 9)
    );
    // 8 still cannot be honoured: zlib compresses with 9 at least.
    assert!(config
        .accept_response("permessage-deflate; client_max_window_bits=8")
        .is_err());
}

#[test]
fn rule1_client_with_a_configured_window_refuses_a_larger_answer() {
    // RFC 7692 §7.1.2.2: the server may answer the offered value or a smaller one.
    let config = DeflateSettings::on().client_max_window_bits(12);
    assert_eq!(
        config.offer(),
        "permessage-deflate; client_max_window_bits=12"
    );
    assert!(matches!(
        config.accept_response("permessage-deflate; client_max_window_bits=15"),
        Err(HandshakeError::InvalidDeflateAnswer(_))
    ));
    let codec = config
        .accept_response("permessage-deflate; client_max_window_bits=10")
        .unwrap();
    assert_eq!(codec.compress_window_bits(), 10);
    // No answer: the offered window still bounds ours.
    let codec = config.accept_response("permessage-deflate").unwrap();
    assert_eq!(codec.compress_window_bits(), 12);
}

#[test]
fn rule1_client_accepts_answers_within_its_offer() {
    let config = DeflateSettings::on()
        .server_max_window_bits(12)
        .client_max_window_bits(12);
    let codec = config
        .accept_response("permessage-deflate; server_max_window_bits=10; client_max_window_bits=11")
        .unwrap();
    assert_eq!(codec.inflate_window_bits(), 10);
    assert_eq!(codec.compress_window_bits(), 11);
    let codec = config
        .accept_response(
            "permessage-deflate; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=12",
        )
        .unwrap();
    assert_eq!(
        *codec.params(),
        DeflateParams {
            server_no_context_takeover: true,
            client_no_context_takeover: true,
            server_max_window_bits: Some(12),
            client_max_window_bits: Some(12),
        }
    );
    // server_no_context_takeover unasked is fine (RFC 7692 §7.1.1.1).
    let wide = DeflateSettings::on().server_max_window_bits(15);
    assert!(wide
        .accept_response("permessage-deflate; server_no_context_takeover")
        .is_ok());
}

#[test]
fn rule1_client_fails_answers_outside_its_offer() {
    let config = DeflateSettings::on()
        .server_max_window_bits(12)
        .client_max_window_bits(12);
    let invalid = |answer: &str| match config.accept_response(answer) {
        Err(HandshakeError::InvalidDeflateAnswer(_)) => {}
        other => panic!("{answer:?}: {other:?}"),
    };
    invalid("permessage-deflate"); // server_max_window_bits=12 asked, not answered
    invalid("permessage-deflate; server_max_window_bits=13"); // larger than asked
    invalid("permessage-deflate; server_max_window_bits=12; client_max_window_bits=13");
    invalid("permessage-deflate; server_max_window_bits=12; client_max_window_bits");
    invalid("permessage-deflate; server_max_window_bits=12; x=1");
    invalid("permessage-deflate; server_max_window_bits=12; server_max_window_bits=12");
    invalid("permessage-deflate; server_max_window_bits=7");
    invalid("permessage-deflate; server_max_window_bits=12, permessage-deflate; server_max_window_bits=12");
    assert_eq!(
        config.accept_response("x-other").unwrap_err(),
        HandshakeError::UnofferedExtension("x-other".into())
    );
}

// ===== rule 2: decline unknown, duplicate or out-of-range parameters =====

#[test]
fn rule2_server_declines_unknown_parameter() {
    assert_eq!(
        answer(DeflateSettings::on(), "permessage-deflate; x_unknown"),
        None
    );
    assert_eq!(
        answer(
            DeflateSettings::on(),
            "permessage-deflate; Server_No_Context_Takeover"
        ),
        None
    );
}

#[test]
fn rule2_server_declines_duplicate_parameter() {
    for offer in [
        "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
        "permessage-deflate; client_no_context_takeover; client_no_context_takeover",
        "permessage-deflate; server_max_window_bits=10; server_max_window_bits=10",
        "permessage-deflate; client_max_window_bits; client_max_window_bits=10",
    ] {
        assert_eq!(answer(DeflateSettings::on(), offer), None, "{offer}");
    }
}

#[test]
fn rule2_server_declines_out_of_range_or_malformed_values() {
    for offer in [
        "permessage-deflate; server_max_window_bits=7",
        "permessage-deflate; server_max_window_bits=16",
        "permessage-deflate; server_max_window_bits=010",
        "permessage-deflate; server_max_window_bits",
        "permessage-deflate; client_max_window_bits=7",
        "permessage-deflate; client_max_window_bits=16",
        "permessage-deflate; client_max_window_bits=abc",
        r#"permessage-deflate; client_max_window_bits="08""#,
        "permessage-deflate; server_no_context_takeover=1",
        "permessage-deflate; client_no_context_takeover=true",
    ] {
        assert_eq!(answer(DeflateSettings::on(), offer), None, "{offer}");
    }
}

#[test]
fn rule2_declined_offer_still_upgrades_without_extensions_header() {
    let headers = offer_request(b"permessage-deflate; x_unknown");
    let request = RequestParts {
        method: "GET",
        version: HttpVersion::Http11,
        headers: &headers,
    };
    let opts = with_deflate(DeflateSettings::on());
    let accept = validate_request(&request, &opts).unwrap();
    let mut bytes = Vec::new();
    accept.write_response(&opts, &mut bytes);
    assert_eq!(
        String::from_utf8(bytes).unwrap(),
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n"
    );
    assert!(accept.deflate(&opts).is_none());
}

// ===== rule 3: the first acceptable offer of several =====

#[test]
fn rule3_server_accepts_first_acceptable_offer_of_several() {
    let config = DeflateSettings::on().server_max_window_bits(15);
    assert_eq!(
        answer(
            config.clone(),
            "x-webkit-deflate-frame, permessage-deflate; x_bad, \
             permessage-deflate; client_no_context_takeover, permessage-deflate"
        )
        .as_deref(),
        Some("permessage-deflate; client_no_context_takeover")
    );
    // Over several header lines, too.
    let headers = vec![
        ("Host", &b"example.com"[..]),
        ("Upgrade", b"websocket"),
        ("Connection", b"Upgrade"),
        ("Sec-WebSocket-Key", b"dGhlIHNhbXBsZSBub25jZQ=="),
        ("Sec-WebSocket-Version", b"13"),
        (
            "Sec-WebSocket-Extensions",
            b"permessage-deflate; server_max_window_bits=8",
        ),
        (
            "Sec-WebSocket-Extensions",
            b"permessage-deflate; server_max_window_bits=10",
        ),
    ];
    let request = RequestParts {
        method: "GET",
        version: HttpVersion::Http11,
        headers: &headers,
    };
    let accept = validate_request(&request, &with_deflate(config)).unwrap();
    assert_eq!(
        accept.extensions(),
        Some("permessage-deflate; server_max_window_bits=10")
    );
}

// ===== rule 4: 8-bit windows =====

#[test]
fn rule4_server_declines_offer_to_compress_with_8_bits() {
    assert_eq!(
        answer(
            DeflateSettings::on(),
            "permessage-deflate; server_max_window_bits=8"
        ),
        None
    );
    assert_eq!(
        answer(
            DeflateSettings::on(),
            r#"permessage-deflate; server_max_window_bits="8""#
        ),
        None
    );
}

#[test]
fn rule4_client_fails_answer_asking_it_to_compress_with_8_bits() {
    let config = DeflateSettings::on().server_max_window_bits(15);
    assert!(matches!(
        config.accept_response("permessage-deflate; client_max_window_bits=8"),
        Err(HandshakeError::InvalidDeflateAnswer(_))
    ));
    // The server's 8 is fine: we only inflate with it.
    let codec = DeflateSettings::on()
        .accept_response("permessage-deflate; server_max_window_bits=8")
        .unwrap();
    assert_eq!(codec.inflate_window_bits(), 9);
}

#[test]
fn rule4_server_inflates_8_bit_client_stream_with_a_larger_window() {
    // The client was asked for 8 bits; zlib compresses with 9 when asked for 8 (its
    // matches still reach at most 2^9 - 262 = 250 bytes back); we inflate with 9.
    let params = DeflateParams {
        client_max_window_bits: Some(8),
        ..Default::default()
    };
    let mut server = conn(Role::Server, params);
    let mut client = conn(Role::Client, params);
    let block = noise(200, 7);
    let message = [block.clone(), block.clone(), block].concat();
    client.send_binary(&message).unwrap();
    let out = client.take_output();
    assert_eq!(frames(&out)[0].0, 0xc2);
    assert!(
        out.len() < 450,
        "compressed with back-references: {}",
        out.len()
    );
    server.receive(&out);
    let evs = events(&mut server);
    assert_eq!(binary_of(&evs[0]), &message[..]);
}

// ===== rule 5: inflate with the tail appended; strip it after deflating =====

// RFC 7692 §7.2.3.1: "Hello" compressed, in one frame.
#[test]
fn rule5_rfc_7692_7_2_3_1_hello_byte_for_byte_both_roles() {
    let mut server = conn(Role::Server, DeflateParams::default());
    server.send_text("Hello").unwrap();
    assert_eq!(
        &server.take_output()[..],
        [0xc1, 0x07, 0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00]
    );
    server.receive(&masked(0xc1, &[0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00]));
    assert_eq!(text_of(&events(&mut server)[0]), "Hello");

    let mut client = conn(Role::Client, DeflateParams::default());
    client.send_text("Hello").unwrap();
    assert_eq!(
        frames(&client.take_output()),
        [(0xc1, vec![0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00])]
    );
    client.receive(&[0xc1, 0x07, 0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00]);
    assert_eq!(text_of(&events(&mut client)[0]), "Hello");
}

// RFC 7692 §7.2.3.1: the same compressed "Hello" in two fragments, RSV1 on the
// first only.
#[test]
fn rule5_rfc_7692_7_2_3_1_fragmented_hello_both_roles() {
    let first = [0x41, 0x03, 0xf2, 0x48, 0xcd];
    let second = [0x80, 0x04, 0xc9, 0xc9, 0x07, 0x00];
    let mut client = conn(Role::Client, DeflateParams::default());
    client.receive(&[&first[..], &second[..]].concat());
    assert_eq!(text_of(&events(&mut client)[0]), "Hello");

    let mut server = conn(Role::Server, DeflateParams::default());
    let input = [
        masked(0x41, &[0xf2, 0x48, 0xcd]),
        masked(0x80, &[0xc9, 0xc9, 0x07, 0x00]),
    ]
    .concat();
    // Byte by byte: inflating each fragment as it completes.
    for b in &input {
        server.receive(std::slice::from_ref(b));
    }
    assert_eq!(text_of(&events(&mut server)[0]), "Hello");
}

// RFC 7692 §7.2.3.3: "Hello" in an uncompressed DEFLATE block.
#[test]
fn rule5_rfc_7692_7_2_3_3_uncompressed_deflate_block() {
    let frame = [
        0xc1, 0x0b, 0x00, 0x05, 0x00, 0xfa, 0xff, 0x48, 0x65, 0x6c, 0x6c, 0x6f, 0x00,
    ];
    let mut client = conn(Role::Client, DeflateParams::default());
    client.receive(&frame);
    assert_eq!(text_of(&events(&mut client)[0]), "Hello");
    let mut server = conn(Role::Server, DeflateParams::default());
    server.receive(&masked(0xc1, &frame[2..]));
    assert_eq!(text_of(&events(&mut server)[0]), "Hello");
    // Level 0 compresses into stored blocks: the same bytes.
    let mut stored = conn_with(
        Role::Server,
        DeflateParams::default(),
        &DeflateSettings::on().level(0),
        ProtocolSettings::default(),
    );
    stored.send_text("Hello").unwrap();
    assert_eq!(&stored.take_output()[..], frame);
}

// RFC 7692 §7.2.3.4: "Hello" in a block with BFINAL set; what follows it in the
// message is ignored, and the next message starts a new stream.
#[test]
fn rule5_rfc_7692_7_2_3_4_bfinal_block() {
    let frame = [0xc1, 0x08, 0xf3, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00, 0x00];
    let mut client = conn(Role::Client, DeflateParams::default());
    client.receive(&frame);
    client.receive(&frame);
    let evs = events(&mut client);
    assert_eq!(text_of(&evs[0]), "Hello");
    assert_eq!(text_of(&evs[1]), "Hello");
    let mut server = conn(Role::Server, DeflateParams::default());
    server.receive(&masked(0xc1, &frame[2..]));
    assert_eq!(text_of(&events(&mut server)[0]), "Hello");
}

// RFC 7692 §7.2.3.6: an empty message compresses to a single 0x00 octet.
#[test]
fn rule5_empty_message_is_one_zero_octet_both_ways() {
    let mut server = conn(Role::Server, DeflateParams::default());
    server.send_binary(b"").unwrap();
    assert_eq!(&server.take_output()[..], [0xc2, 0x01, 0x00]);
    // Again, with context: the same (zlib alone would write nothing the second time).
    server.send_text("").unwrap();
    server.send_text("Hello").unwrap();
    assert_eq!(
        &server.take_output()[..],
        [0xc1, 0x01, 0x00, 0xc1, 0x07, 0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00]
    );
    server.receive(&masked(0xc2, &[0x00]));
    // And an RSV1 frame with no payload at all is an empty message too.
    server.receive(&masked(0xc1, &[]));
    let evs = events(&mut server);
    assert_eq!(binary_of(&evs[0]), b"");
    assert_eq!(text_of(&evs[1]), "");
}

#[test]
fn rule5_messages_0_to_1_mib_round_trip_both_directions() {
    let mut server = conn(Role::Server, DeflateParams::default());
    let mut client = conn(Role::Client, DeflateParams::default());
    for len in [0, 1, 125, 126, 1024, 65_535, 65_536, 300_000, 1 << 20] {
        let text = json_like(len, len as u32);
        client.send_text(&text).unwrap();
        let wire = client.take_output();
        assert_eq!(wire[0], 0xc1, "RSV1 set, len {len}");
        server.receive(&wire);
        let evs = events(&mut server);
        assert_eq!(text_of(&evs[0]), text, "len {len}");
        let bin = noise(len, len as u64 + 1);
        server.send_binary(&bin).unwrap();
        client.receive(&server.take_output());
        let evs = events(&mut client);
        assert_eq!(binary_of(&evs[0]), &bin[..], "len {len}");
    }
}

#[test]
fn rule5_compressed_text_is_utf8_checked_after_inflating_1007() {
    // 0xff alone, deflated by a client of ours as binary, then sent as text.
    let mut client = conn(Role::Client, DeflateParams::default());
    client.send_binary(&[b'o', b'k', 0xff]).unwrap();
    let (_, payload) = frames(&client.take_output()).remove(0);
    let mut server = conn(Role::Server, DeflateParams::default());
    let err = assert_fails(&mut server, &masked(0xc1, &payload), 1007);
    assert!(matches!(err, Error::Protocol(ProtocolError::InvalidUtf8)));
}

#[test]
fn rule5_invalid_deflate_data_fails_1002() {
    let mut server = conn(Role::Server, DeflateParams::default());
    // BTYPE 11 is reserved (RFC 1951 §3.2.3).
    let err = assert_fails(&mut server, &masked(0xc2, &[0xff, 0xff, 0xff]), 1002);
    assert!(matches!(err, Error::Extension(_)), "{err}");
}

#[test]
fn rsv1_on_continuation_frame_fails_1002() {
    let mut server = conn(Role::Server, DeflateParams::default());
    let input = [
        masked(0x41, &[0xf2, 0x48, 0xcd]),
        masked(0xc0, &[0xc9, 0xc9, 0x07, 0x00]),
    ]
    .concat();
    let err = assert_fails(&mut server, &input, 1002);
    assert!(matches!(
        err,
        Error::Protocol(ProtocolError::ReservedBitsSet(0b100))
    ));
    let mut client = conn(Role::Client, DeflateParams::default());
    let input = [plain(0x41, &[0xf2, 0x48, 0xcd]), plain(0xc0, &[0xc9])].concat();
    assert_fails(&mut client, &input, 1002);
}

#[test]
fn rsv1_on_control_frame_fails_1002() {
    let mut server = conn(Role::Server, DeflateParams::default());
    let err = assert_fails(&mut server, &masked(0xc9, b"x"), 1002);
    assert!(matches!(
        err,
        Error::Protocol(ProtocolError::ReservedBitsSet(0b100))
    ));
}

#[test]
fn control_frames_are_never_compressed_and_may_interleave() {
    let mut server = conn(Role::Server, DeflateParams::default());
    let input = [
        masked(0x41, &[0xf2, 0x48, 0xcd]),
        masked(0x89, b"ping"),
        masked(0x80, &[0xc9, 0xc9, 0x07, 0x00]),
    ]
    .concat();
    server.receive(&input);
    let evs = events(&mut server);
    assert!(matches!(&evs[0], Event::Ping(p) if &p[..] == b"ping"));
    assert_eq!(text_of(&evs[1]), "Hello");
    server.send_ping(b"hi").unwrap();
    assert_eq!(&server.take_output()[..], b"\x8a\x04ping\x89\x02hi");
}

#[test]
fn uncompressed_message_on_a_deflate_connection_passes_as_is() {
    let mut server = conn(Role::Server, DeflateParams::default());
    server.receive(&masked(0x81, b"plain"));
    assert_eq!(text_of(&events(&mut server)[0]), "plain");
}

#[test]
fn threshold_sends_short_messages_uncompressed() {
    let mut server = conn_with(
        Role::Server,
        DeflateParams::default(),
        &DeflateSettings::on().threshold(6),
        ProtocolSettings::default(),
    );
    server.send_text("Hello").unwrap();
    assert_eq!(&server.take_output()[..], b"\x81\x05Hello");
    server.send_text("Hello!").unwrap();
    assert_eq!(server.take_output()[0], 0xc1);
    let codec = Deflate::new(
        Role::Server,
        DeflateParams::default(),
        &DeflateSettings::on().threshold(6),
    );
    assert!(!codec.compressor_allocated());
}

// ===== every window size =====

#[test]
fn every_window_size_9_to_15_round_trips_both_directions() {
    for bits in 9..=15u8 {
        let params = DeflateParams {
            server_max_window_bits: Some(bits),
            client_max_window_bits: Some(bits),
            ..Default::default()
        };
        let mut server = conn(Role::Server, params);
        let mut client = conn(Role::Client, params);
        // Repeats 40 KiB apart, beyond every window, and short ones within.
        let block = json_like(40 * 1024, u32::from(bits));
        let text = format!("{block}{block}");
        for _ in 0..2 {
            server.send_text(&text).unwrap();
            client.receive(&server.take_output());
            assert_eq!(text_of(&events(&mut client)[0]), text, "bits {bits}");
            client.send_text(&text).unwrap();
            server.receive(&client.take_output());
            assert_eq!(text_of(&events(&mut server)[0]), text, "bits {bits}");
        }
    }
}

#[test]
fn window_size_8_agreed_for_client_inflates_and_compresses_with_9() {
    let params = DeflateParams {
        client_max_window_bits: Some(8),
        ..Default::default()
    };
    let server = Deflate::new(Role::Server, params, &DeflateSettings::on());
    assert_eq!(server.inflate_window_bits(), 9);
    let client = Deflate::new(Role::Client, params, &DeflateSettings::on());
    assert_eq!(client.compress_window_bits(), 9);
}

// ===== rule 6: context takeover =====

// RFC 7692 §7.2.3.2: with context takeover, a second "Hello" refers to the first.
#[test]
fn rule6_context_takeover_second_hello_is_f2_00_11_00_00_both_roles() {
    // The RFC's bytes are zlib's at its usual levels (here 6); level 1 (the
    // default) finds the same match and codes it in a fixed block of its own.
    let level6 = DeflateSettings::on().level(6);
    let mut server = conn_with(
        Role::Server,
        DeflateParams::default(),
        &level6,
        ProtocolSettings::default(),
    );
    server.send_text("Hello").unwrap();
    server.send_text("Hello").unwrap();
    assert_eq!(
        &server.take_output()[..],
        [
            0xc1, 0x07, 0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00, //
            0xc1, 0x05, 0xf2, 0x00, 0x11, 0x00, 0x00
        ]
    );
    let mut client = conn(Role::Client, DeflateParams::default());
    client.receive(&[
        0xc1, 0x07, 0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00, //
        0xc1, 0x05, 0xf2, 0x00, 0x11, 0x00, 0x00,
    ]);
    let evs = events(&mut client);
    assert_eq!(text_of(&evs[0]), "Hello");
    assert_eq!(text_of(&evs[1]), "Hello");
    let mut client = conn_with(
        Role::Client,
        DeflateParams::default(),
        &level6,
        ProtocolSettings::default(),
    );
    client.send_text("Hello").unwrap();
    client.send_text("Hello").unwrap();
    let sent = frames(&client.take_output());
    assert_eq!(sent[1], (0xc1, vec![0xf2, 0x00, 0x11, 0x00, 0x00]));

    let mut fast = conn(Role::Server, DeflateParams::default());
    fast.send_text("Hello").unwrap();
    fast.send_text("Hello").unwrap();
    let out = fast.take_output();
    assert_eq!(
        &out[..],
        [
            0xc1, 0x07, 0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00, //
            0xc1, 0x04, 0x02, 0x13, 0x00, 0x00
        ]
    );
    let mut reader = conn(Role::Client, DeflateParams::default());
    reader.receive(&out);
    let evs = events(&mut reader);
    assert_eq!((text_of(&evs[0]), text_of(&evs[1])), ("Hello", "Hello"));
}

#[test]
fn rule6_server_no_context_takeover_compresses_each_message_alone() {
    let params = DeflateParams {
        server_no_context_takeover: true,
        ..Default::default()
    };
    let mut server = conn(Role::Server, params);
    let text = "HelloHelloHelloHello";
    server.send_text(text).unwrap();
    server.send_text(text).unwrap();
    let sent = frames(&server.take_output());
    // Both compressed, and alike: the second does not refer to the first.
    assert_eq!(sent[0].0, 0xc1);
    assert!(sent[0].1.len() < text.len());
    assert_eq!(sent[0], sent[1]);
    // The client inflates with a reset per message: a reference to the previous
    // message is then invalid (1002).
    let mut client = conn(Role::Client, params);
    client.receive(&[0xc1, 0x07, 0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00]);
    assert_eq!(text_of(&events(&mut client)[0]), "Hello");
    assert_fails(
        &mut client,
        &[0xc1, 0x05, 0xf2, 0x00, 0x11, 0x00, 0x00],
        1002,
    );
}

#[test]
fn rule6_client_no_context_takeover_both_sides() {
    let params = DeflateParams {
        client_no_context_takeover: true,
        ..Default::default()
    };
    let mut client = conn(Role::Client, params);
    let text = "HelloHelloHelloHello";
    client.send_text(text).unwrap();
    client.send_text(text).unwrap();
    let sent = frames(&client.take_output());
    assert_eq!(sent[0].0, 0xc1);
    assert!(sent[0].1.len() < text.len());
    assert_eq!(sent[0], sent[1]);
    let hello = vec![0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00];
    let mut server = conn(Role::Server, params);
    server.receive(&[masked(0xc1, &hello), masked(0xc1, &hello)].concat());
    let evs = events(&mut server);
    assert_eq!((text_of(&evs[0]), text_of(&evs[1])), ("Hello", "Hello"));
    assert_fails(
        &mut server,
        &masked(0xc1, &[0xf2, 0x00, 0x11, 0x00, 0x00]),
        1002,
    );
}

#[test]
fn rule6_no_context_takeover_frees_state_after_each_message() {
    let config = DeflateSettings::on();
    let params = DeflateParams {
        server_no_context_takeover: true,
        client_no_context_takeover: true,
        ..Default::default()
    };
    let mut codec = Deflate::new(Role::Server, params, &config);
    let mut out = BytesMut::new();
    assert!(codec
        .encode(OpCode::Text, json_like(1000, 1).as_bytes(), &mut out)
        .unwrap());
    assert!(!codec.compressor_allocated());
    codec
        .decode(
            &[0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00],
            true,
            &mut BytesMut::new(),
            100,
        )
        .unwrap();
    assert!(!codec.inflater_allocated());
    // With context takeover both are kept, and only once used.
    let mut codec = Deflate::new(Role::Server, DeflateParams::default(), &config);
    assert!(!codec.compressor_allocated() && !codec.inflater_allocated());
    codec.encode(OpCode::Text, b"Hello", &mut out).unwrap();
    codec
        .decode(
            &[0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00],
            true,
            &mut BytesMut::new(),
            100,
        )
        .unwrap();
    assert!(codec.compressor_allocated() && codec.inflater_allocated());
}

#[test]
fn rule6_incompressible_message_without_context_goes_uncompressed() {
    let params = DeflateParams {
        server_no_context_takeover: true,
        ..Default::default()
    };
    let mut server = conn(Role::Server, params);
    let data = noise(1000, 3);
    server.send_binary(&data).unwrap();
    let out = server.take_output();
    assert_eq!(frames(&out), [(0x82, data)]);
}

// ===== rule 7: the limit counts inflated bytes =====

/// A deflate bomb: `inflated` zero bytes compressed at level 9.
fn bomb(inflated: usize) -> Vec<u8> {
    let mut codec = Deflate::new(
        Role::Client,
        DeflateParams::default(),
        &DeflateSettings::on().level(9),
    );
    let mut out = BytesMut::new();
    assert!(codec
        .encode(OpCode::Binary, &vec![0u8; inflated], &mut out)
        .unwrap());
    out.to_vec()
}

#[test]
fn rule7_small_compressed_message_inflating_past_limit_fails_1009() {
    let payload = bomb(10 << 20);
    assert!(payload.len() < 11 * 1024, "{} bytes", payload.len());
    let limit = 64 * 1024;
    let mut server = conn_with(
        Role::Server,
        DeflateParams::default(),
        &DeflateSettings::on(),
        ProtocolSettings::default().max_message_size(limit),
    );
    let err = assert_fails(&mut server, &masked(0xc2, &payload), 1009);
    assert!(matches!(
        err,
        Error::Capacity(CapacityError::MessageTooLarge { max, .. }) if max == limit
    ));
    // Exactly at the limit is fine.
    let mut server = conn_with(
        Role::Server,
        DeflateParams::default(),
        &DeflateSettings::on(),
        ProtocolSettings::default().max_message_size(limit),
    );
    server.receive(&masked(0xc2, &bomb(limit)));
    assert_eq!(binary_of(&events(&mut server)[0]).len(), limit);
}

#[test]
fn rule7_bomb_stops_within_one_step_past_the_limit() {
    let payload = bomb(10 << 20);
    let limit = 64 * 1024;
    let mut codec = Deflate::new(
        Role::Server,
        DeflateParams::default(),
        &DeflateSettings::on(),
    );
    let mut out = BytesMut::new();
    let err = codec.decode(&payload, true, &mut out, limit).unwrap_err();
    assert!(matches!(
        err,
        Error::Capacity(CapacityError::MessageTooLarge { .. })
    ));
    // Never more than limit + 1 bytes produced, never more than one step reserved
    // past the limit (twice that for the buffer's doubling growth).
    assert!(out.len() <= limit + 1, "{}", out.len());
    assert!(
        out.capacity() <= 2 * (limit + INFLATE_STEP),
        "{}",
        out.capacity()
    );
}

#[test]
fn rule7_fragmented_compressed_message_limit_counts_all_fragments() {
    let limit = 10_000;
    let mut client = conn(Role::Client, DeflateParams::default());
    client.send_text(&json_like(6_000, 1)).unwrap();
    let (_, first) = frames(&client.take_output()).remove(0);
    let mut server = conn_with(
        Role::Server,
        DeflateParams::default(),
        &DeflateSettings::on(),
        ProtocolSettings::default().max_message_size(limit),
    );
    // Under the limit in two fragments: fine.
    let half = first.len() / 2;
    let input = [masked(0x41, &first[..half]), masked(0x80, &first[half..])].concat();
    server.receive(&input);
    assert_eq!(text_of(&events(&mut server)[0]).len(), 6_000);
    let big = json_like(12_000, 9);
    client.send_text(&big).unwrap();
    let (_, whole) = frames(&client.take_output()).remove(0);
    let half = whole.len() / 2;
    let input = [masked(0x41, &whole[..half]), masked(0x80, &whole[half..])].concat();
    assert_fails(&mut server, &input, 1009);
}

// ===== broadcast: prepared messages =====

#[test]
fn prepared_message_shares_compressed_frame_without_context_takeover() {
    let config = DeflateSettings::on().server_no_context_takeover(true);
    let text = json_like(1024, 5);
    let prepared = PreparedMessage::new(Message::from(text.clone()), &config);
    // The frame a fresh connection compresses the message into.
    let mut fresh = conn_with(
        Role::Server,
        config.accept_offer("permessage-deflate").unwrap(),
        &config,
        ProtocolSettings::default(),
    );
    fresh.send_text(&text).unwrap();
    let hello = fresh.take_output().to_vec();
    assert_eq!(hello[0], 0xc1);
    assert_eq!(&prepared.compressed_frame().unwrap()[..], hello);
    let params = config.accept_offer("permessage-deflate").unwrap();
    let mut a = conn_with(Role::Server, params, &config, ProtocolSettings::default());
    let mut b = conn_with(Role::Server, params, &config, ProtocolSettings::default());
    a.send_prepared(&prepared).unwrap();
    b.send_prepared(&prepared).unwrap();
    assert_eq!(&a.take_output()[..], hello);
    assert_eq!(&b.take_output()[..], hello);
}

#[test]
fn prepared_message_falls_back_per_connection() {
    let config = DeflateSettings::on();
    let prepared = PreparedMessage::new(Message::from("Hello"), &config);
    // "Hello" alone does not shrink: sent plain where no context is kept.
    assert!(prepared.compressed_frame().is_none());
    let prepared = PreparedMessage::new(Message::from("HelloHelloHelloHello"), &config);
    let alone = prepared.compressed_payload().unwrap().0.to_vec();
    // Context takeover on: compressed by the connection itself, so its context
    // stays in step (the second "Hello" refers to the first).
    let mut takeover = conn(Role::Server, DeflateParams::default());
    let mut reference = conn(Role::Server, DeflateParams::default());
    takeover.send_prepared(&prepared).unwrap();
    takeover.send_prepared(&prepared).unwrap();
    reference.send_text("HelloHelloHelloHello").unwrap();
    reference.send_text("HelloHelloHelloHello").unwrap();
    let sent = frames(&takeover.take_output());
    assert_eq!(sent, frames(&reference.take_output()));
    assert_eq!(sent[0], (0xc1, alone.clone()));
    assert_ne!(sent[1], sent[0]);
    // A smaller agreed window than the prepared one: compressed again.
    let small = DeflateParams {
        server_no_context_takeover: true,
        server_max_window_bits: Some(9),
        ..Default::default()
    };
    let mut narrow = conn(Role::Server, small);
    narrow.send_prepared(&prepared).unwrap();
    assert_eq!(frames(&narrow.take_output()), [(0xc1, alone.clone())]);
    // No permessage-deflate: the plain frame.
    let mut none = Connection::new(Role::Server, ProtocolSettings::default());
    none.open();
    none.send_prepared(&prepared).unwrap();
    assert_eq!(&none.take_output()[..], b"\x81\x14HelloHelloHelloHello");
    // A client masks the prepared payload.
    let params = DeflateParams {
        client_no_context_takeover: true,
        ..Default::default()
    };
    let mut client = conn(Role::Client, params);
    client.send_prepared(&prepared).unwrap();
    assert_eq!(frames(&client.take_output()), [(0xc1, alone)]);
}

#[test]
fn prepared_message_without_deflate_config_is_plain() {
    let prepared = PreparedMessage::new(
        Message::Binary(vec![1, 2, 3].into()),
        &DeflateSettings::default(),
    );
    assert!(prepared.compressed_frame().is_none());
    assert_eq!(&prepared.frame()[..], [0x82, 0x03, 1, 2, 3]);
}

// ===== no panic on damaged input =====

#[test]
fn damaged_compressed_frames_never_panic_and_fail_with_1002_1007_or_1009() {
    use rand::{rngs::StdRng, Rng, SeedableRng};

    let mut rng = StdRng::seed_from_u64(7692);
    let mut failures = [0usize; 3];
    for round in 0..2000u32 {
        let takeover = rng.random_bool(0.5);
        let params = DeflateParams {
            client_no_context_takeover: !takeover,
            client_max_window_bits: Some(rng.random_range(9..=15)),
            ..Default::default()
        };
        let mut client = conn(Role::Client, params);
        let mut server = conn_with(
            Role::Server,
            params,
            &DeflateSettings::on(),
            ProtocolSettings::default().max_message_size(4096),
        );
        for _ in 0..4 {
            let len = rng.random_range(0..6000);
            let message = if rng.random_bool(0.5) {
                json_like(len, round).into_bytes()
            } else {
                noise(len, u64::from(round))
            };
            client.send_binary(&message).unwrap();
            let (_, mut payload) = frames(&client.take_output()).remove(0);
            match rng.random_range(0..4) {
                0 if !payload.is_empty() => {
                    let at = rng.random_range(0..payload.len());
                    payload[at] ^= 1 << rng.random_range(0..8);
                }
                1 => payload.truncate(rng.random_range(0..=payload.len())),
                2 => payload.extend(noise(rng.random_range(1..64), u64::from(round) + 9)),
                _ => {}
            }
            let b0 = if rng.random_bool(0.5) { 0xc1 } else { 0xc2 };
            // Sometimes in two fragments.
            let input = if payload.len() > 2 && rng.random_bool(0.3) {
                let cut = rng.random_range(1..payload.len());
                [
                    masked(b0 & 0x7f, &payload[..cut]),
                    masked(0x80, &payload[cut..]),
                ]
                .concat()
            } else {
                masked(b0, &payload)
            };
            server.receive(&input);
            for event in events(&mut server) {
                if let Event::Error(err) = event {
                    let code = Some(err.close_code().0);
                    match code {
                        Some(1002) => failures[0] += 1,
                        Some(1007) => failures[1] += 1,
                        Some(1009) => failures[2] += 1,
                        other => panic!("round {round}: {err} with {other:?}"),
                    }
                }
            }
        }
    }
    // Each kind of failure happened.
    assert!(failures.iter().all(|&n| n > 0), "{failures:?}");
}
