//! Sans-I/O scenarios for the client role: exact bytes in, exact events and bytes
//! out; the mirror of `tests/proto_server.rs`. The client's frames are masked with
//! a random key: the helpers in `tests/common` decode each header, check every bit
//! and the length encoding, and compare the payload unmasked with the key found.
//!
//! Each test names the line of `/work/shared/conformance.md` (section in quotes) and
//! the RFC 6455 section it covers.

mod common;

use common::*;
use websocket_driver::{
    proto::Error,
    proto::{CapacityError, ProtocolError, SendError},
    proto::{CloseCode, Connection, Event, Message, ReadyState, Role, RSV1, RSV2, RSV3},
    ProtocolSettings,
};

const ROLE: Role = Role::Client;

fn conn() -> Connection {
    open_conn(ROLE)
}

/// The frames as a server sends them (unmasked).
fn w(frames: &[Frame]) -> Vec<u8> {
    wire(ROLE, frames)
}

fn ok(input: &[u8], events: &[Ev], output: &[Frame]) -> Connection {
    check_receive(ROLE, &ProtocolSettings::default(), input, events, output)
}

fn ok_with(config: &ProtocolSettings, input: &[u8], events: &[Ev], output: &[Frame]) -> Connection {
    check_receive(ROLE, config, input, events, output)
}

fn fails(input: &[u8], err: Ev, code: u16) {
    check_fails(
        ROLE,
        &ProtocolSettings::default(),
        input,
        &[],
        &[],
        err,
        code,
    );
}

fn protocol(e: ProtocolError) -> Ev {
    Ev::Protocol(e)
}

fn capacity(e: CapacityError) -> Ev {
    Ev::Capacity(e)
}

/// Take the output, which must be one masked frame: the header bytes before the
/// key, the key, and the unmasked payload.
fn sent_frame(c: &mut Connection) -> (Vec<u8>, [u8; 4], Vec<u8>) {
    let out = c.take_output();
    let frames = decode_output_frames(&out, true);
    assert_eq!(frames.len(), 1, "{frames:?}");
    let (header, payload) = frames.into_iter().next().unwrap();
    let key = header.mask.unwrap();
    let head_len = out.len() - payload.len() - 4;
    assert_eq!(out[head_len..head_len + 4], key);
    let mut masked = payload.clone();
    xor(&mut masked, key, 0);
    assert_eq!(out[head_len + 4..], masked[..]);
    (out[..head_len].to_vec(), key, payload)
}

// ===== Framing =====

// conformance "Framing" (server frames are unmasked); RFC 6455 §5.7, the unmasked
// "Hello", fragmented "Hel"+"lo" and unmasked Ping examples, byte for byte.
#[test]
fn client_receives_rfc_unmasked_examples() {
    let hello = [0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f];
    assert_eq!(w(&[text("Hello")]), hello);
    ok(&hello, &[Ev::text("Hello")], &[]);
    let fragmented = [0x01, 0x03, 0x48, 0x65, 0x6c, 0x80, 0x02, 0x6c, 0x6f];
    ok(&fragmented, &[Ev::text("Hello")], &[]);
    let ping_hello = [0x89, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f];
    ok(
        &ping_hello,
        &[Ev::Ping(b"Hello".to_vec())],
        &[pong(b"Hello")],
    );
    // 256 bytes and 64 KiB binary, unmasked (RFC 6455 §5.7).
    let mut c = conn();
    c.receive(&[&[0x82, 0x7e, 0x01, 0x00][..], &[1; 256]].concat());
    c.receive(&[&[0x82, 0x7f, 0, 0, 0, 0, 0, 1, 0, 0][..], &[2; 65536]].concat());
    assert_eq!(
        drain(&mut c),
        vec![Ev::Binary(vec![1; 256]), Ev::Binary(vec![2; 65536])]
    );
}

// conformance "Framing", "Control frames", "Fragmentation", "Closing": a mixed
// sequence gives the same events and output however the reads split it
// (RFC 6455 §5.2-§5.5).
#[test]
fn client_receives_frames_in_any_split() {
    let input = w(&[
        text("Hello"),
        binary(&[7; 130]),
        ping(b"are you there"),
        text("κό").fin(false),
        pong(b"unsolicited"),
        cont("σμε \u{1F600}".as_bytes()),
        close_frame(1000, "bye"),
    ]);
    ok(
        &input,
        &[
            Ev::text("Hello"),
            Ev::Binary(vec![7; 130]),
            Ev::Ping(b"are you there".to_vec()),
            Ev::Pong(b"unsolicited".to_vec()),
            Ev::text("κόσμε \u{1F600}"),
            close_ev(1000, "bye", true),
        ],
        &[pong(b"are you there"), close_frame(1000, "")],
    );
}

// conformance "Framing": "Client: every server frame must be unmasked, else fail
// 1002" (RFC 6455 §5.1: "A client MUST close a connection if it detects a masked
// frame").
#[test]
fn client_receives_masked_frame_fails_1002() {
    let err = protocol(ProtocolError::MaskedFrameFromServer);
    for frame in [
        text("hi"),
        binary(b"x"),
        ping(b""),
        pong(b"p"),
        close_frame(1000, ""),
    ] {
        fails(&frame.clone().masked(KEY).to(ROLE), err.clone(), 1002);
        fails(&frame.masked([0; 4]).to(ROLE), err.clone(), 1002);
    }
    // After a valid message in the same read, and in the middle of a message.
    let input = [w(&[text("ok")]), text("no").masked(KEY).to(ROLE)].concat();
    check_fails(
        ROLE,
        &ProtocolSettings::default(),
        &input,
        &[Ev::text("ok")],
        &[],
        err.clone(),
        1002,
    );
    let input = [w(&[text("a").fin(false)]), cont(b"b").masked(KEY).to(ROLE)].concat();
    fails(&input, err, 1002);
}

// conformance "Framing": "Outgoing client frames use a fresh random mask"
// (RFC 6455 §5.3: "The masking key is a 32-bit value chosen at random ... MUST pick
// a fresh masking key from the set of allowed 32-bit values" for each frame). Every
// header byte is checked; lengths use the minimal encoding (§5.2).
#[test]
fn client_sends_masked_frames_with_fresh_keys() {
    let mut c = conn();
    let mut keys = std::collections::HashSet::new();
    for i in 0..64u8 {
        let msg = format!("message {i}");
        c.send_text(&msg).unwrap();
        let (head, key, payload) = sent_frame(&mut c);
        assert_eq!(head, [0x81, 0x80 | msg.len() as u8]);
        assert_eq!(payload, msg.as_bytes());
        keys.insert(key);
    }
    assert_eq!(keys.len(), 64, "a fresh key for every frame");
    let cases: [(Vec<u8>, Vec<u8>); 4] = [
        (vec![0xab; 125], vec![0x82, 0x80 | 125]),
        (vec![0xab; 126], vec![0x82, 0x80 | 126, 0, 126]),
        (vec![0xcd; 0xffff], vec![0x82, 0x80 | 126, 0xff, 0xff]),
        (
            vec![0xef; 0x10000],
            vec![0x82, 0x80 | 127, 0, 0, 0, 0, 0, 1, 0, 0],
        ),
    ];
    for (data, want_head) in cases {
        c.send_binary(&data).unwrap();
        let (head, _, payload) = sent_frame(&mut c);
        assert_eq!(head, want_head);
        assert_eq!(payload, data);
    }
    let expect = |c: &mut Connection, head: &[u8], body: &[u8]| {
        let (h, _, p) = sent_frame(c);
        assert_eq!((&h[..], &p[..]), (head, body));
    };
    c.send(&Message::Text("é".into())).unwrap();
    expect(&mut c, &[0x81, 0x82], "é".as_bytes());
    c.send(&Message::Binary(vec![1, 2].into())).unwrap();
    expect(&mut c, &[0x82, 0x82], &[1, 2]);
    c.send_ping(b"ping").unwrap();
    expect(&mut c, &[0x89, 0x84], b"ping");
    c.send_pong(b"").unwrap();
    expect(&mut c, &[0x8a, 0x80], b"");
    c.close(CloseCode::NORMAL, "bye").unwrap();
    expect(&mut c, &[0x88, 0x85], b"\x03\xe8bye");
}

fn rsv_fails(rsv: u8) {
    let err = protocol(ProtocolError::ReservedBitsSet(rsv));
    for frame in [
        text("hi"),
        binary(b"b"),
        text("a").fin(false),
        ping(b"p"),
        pong(b""),
        close_frame(1000, ""),
    ] {
        fails(&w(&[frame.rsv(rsv)]), err.clone(), 1002);
    }
    // On a continuation frame.
    fails(&w(&[text("a").fin(false), cont(b"b").rsv(rsv)]), err, 1002);
}

// conformance "Framing": "RSV1/2/3 must be 0 unless an extension negotiated them;
// otherwise fail 1002" (RFC 6455 §5.2).
#[test]
fn client_receives_rsv1_without_extension_fails_1002() {
    rsv_fails(RSV1);
}

// conformance "Framing", RSV bits (RFC 6455 §5.2).
#[test]
fn client_receives_rsv2_without_extension_fails_1002() {
    rsv_fails(RSV2);
}

// conformance "Framing", RSV bits (RFC 6455 §5.2).
#[test]
fn client_receives_rsv3_without_extension_fails_1002() {
    rsv_fails(RSV3);
}

// conformance "Framing", RSV bits (RFC 6455 §5.2): every combination.
#[test]
fn client_receives_any_rsv_combination_fails_1002() {
    for rsv in 1..8 {
        rsv_fails(rsv);
    }
}

// conformance "Framing": "Opcodes 3-7 and 11-15 are reserved: fail 1002"
// (RFC 6455 §5.2: "If an unknown opcode is received, the receiving endpoint MUST
// _Fail the WebSocket Connection_").
#[test]
fn client_receives_reserved_opcode_3_to_7_and_11_to_15_fails_1002() {
    for opcode in op::RESERVED {
        let err = protocol(ProtocolError::ReservedOpcode(opcode));
        fails(&w(&[Frame::new(opcode, b"x")]), err.clone(), 1002);
        fails(&w(&[Frame::new(opcode, b"").fin(false)]), err.clone(), 1002);
        // Between the fragments of a message.
        fails(
            &w(&[text("a").fin(false), Frame::new(opcode, b"")]),
            err,
            1002,
        );
    }
}

// conformance "Framing": "64-bit lengths with the top bit set: fail 1002"
// (RFC 6455 §5.2: "the most significant bit MUST be 0"). Only the header is sent.
#[test]
fn client_receives_64bit_length_with_top_bit_fails_1002() {
    for len in [1 << 63, u64::MAX] {
        let header = binary(b"").length(Length::Declared(len)).header_to(ROLE);
        fails(&header, protocol(ProtocolError::InvalidPayloadLength), 1002);
    }
}

// conformance "Framing": "Non-minimal length encodings are accepted" (RFC 6455 §5.2
// says a sender uses the minimal encoding; a receiver need not enforce it).
#[test]
fn client_accepts_non_minimal_length() {
    ok(
        &w(&[
            text("hi").length(Length::Bits16),
            text("hi").length(Length::Bits64),
            binary(b"").length(Length::Bits64),
            text("frag").fin(false).length(Length::Bits64),
            cont(b"ment").length(Length::Bits16),
            ping(b"p").length(Length::Bits16),
        ]),
        &[
            Ev::text("hi"),
            Ev::text("hi"),
            Ev::Binary(vec![]),
            Ev::text("fragment"),
            Ev::Ping(b"p".to_vec()),
        ],
        &[pong(b"p")],
    );
}

// conformance "Framing": the three length encodings at their boundaries
// (RFC 6455 §5.2: 0-125, 126 + 16 bits, 127 + 64 bits), fed whole and in pieces.
#[test]
fn client_receives_7_16_and_64_bit_lengths() {
    let sizes = [0, 125, 126, 0xffff, 0x10000, 100_000];
    let frames: Vec<Frame> = sizes.iter().map(|&n| binary(&vec![n as u8; n])).collect();
    let want: Vec<Ev> = sizes
        .iter()
        .map(|&n| Ev::Binary(vec![n as u8; n]))
        .collect();
    let input = w(&frames);
    for piece in [input.len(), 1000, 7] {
        let mut c = conn();
        for chunk in input.chunks(piece) {
            c.receive(chunk);
        }
        assert_eq!(drain(&mut c), want, "pieces of {piece}");
        assert_no_output(&mut c);
    }
}

// ===== Control frames =====

// conformance "Control frames": "Ping, Pong, Close: payload at most 125 bytes ...
// else fail 1002" (RFC 6455 §5.5). The header alone is enough to fail.
#[test]
fn client_receives_ping_126_bytes_fails_1002() {
    for opcode in [op::PING, op::PONG, op::CLOSE] {
        let err = protocol(ProtocolError::ControlFrameTooLarge(126));
        let frame = Frame::new(opcode, [b'x'; 126]);
        fails(&frame.header_to(ROLE), err.clone(), 1002);
        fails(&frame.to(ROLE), err, 1002);
        let big = Frame::new(opcode, []).length(Length::Declared(0x10000));
        fails(
            &big.header_to(ROLE),
            protocol(ProtocolError::ControlFrameTooLarge(0x10000)),
            1002,
        );
    }
}

// conformance "Control frames": 125 bytes is the largest allowed payload
// (RFC 6455 §5.5), answered with an identical Pong (§5.5.2).
#[test]
fn client_receives_ping_125_bytes_answers_identical_pong() {
    let payload: Vec<u8> = (0..125).collect();
    ok(
        &w(&[ping(&payload)]),
        &[Ev::Ping(payload.clone())],
        &[pong(&payload)],
    );
}

// conformance "Control frames": "... and FIN set, else fail 1002" (RFC 6455 §5.5:
// "Control frames ... MUST NOT be fragmented").
#[test]
fn client_receives_fragmented_ping_fails_1002() {
    let err = protocol(ProtocolError::FragmentedControlFrame);
    for frame in [ping(b"p"), pong(b"p"), close_frame(1000, ""), ping(b"")] {
        fails(&w(&[frame.fin(false)]), err.clone(), 1002);
    }
    // A "fragmented" ping followed by a continuation.
    fails(&w(&[ping(b"a").fin(false), cont(b"b")]), err.clone(), 1002);
    // Between the fragments of a message.
    fails(
        &w(&[text("a").fin(false), ping(b"p").fin(false)]),
        err,
        1002,
    );
}

// conformance "Control frames": "Ping is answered by a Pong with the same payload"
// (RFC 6455 §5.5.2: "with identical Application data").
#[test]
fn client_answers_ping_with_identical_pong() {
    let c = ok(
        &w(&[ping(b"Hello")]),
        &[Ev::Ping(b"Hello".to_vec())],
        &[pong(b"Hello")],
    );
    assert_eq!(c.ready_state(), ReadyState::Open);
    let mut c = conn();
    c.receive(&w(&[ping(b"Hello")]));
    drain(&mut c);
    let (head, _, payload) = sent_frame(&mut c);
    assert_eq!((head, payload), (vec![0x8a, 0x85], b"Hello".to_vec()));
    let all: Vec<u8> = (0..=124).map(|b| b * 2).collect();
    ok(
        &w(&[ping(b""), ping(&all)]),
        &[Ev::Ping(vec![]), Ev::Ping(all.clone())],
        &[pong(b""), pong(&all)],
    );
}

// conformance "Control frames": the Pong goes out "in order with other outgoing
// frames" (RFC 6455 §5.5.2).
#[test]
fn client_pong_follows_queued_frames_in_order() {
    let mut c = conn();
    c.send_text("first").unwrap();
    c.send_binary(b"second").unwrap();
    c.receive(&w(&[ping(b"p")]));
    c.send_text("third").unwrap();
    assert_eq!(drain(&mut c), vec![Ev::Ping(b"p".to_vec())]);
    assert_output(
        &mut c,
        &[text("first"), binary(b"second"), pong(b"p"), text("third")],
    );
}

// conformance "Control frames": "control frames may arrive between the fragments of
// a data message and are handled at once" (RFC 6455 §5.4, §5.5).
#[test]
fn client_receives_ping_between_fragments_answers_at_once() {
    let mut c = conn();
    c.receive(&w(&[text("Hel").fin(false), ping(b"1")]));
    assert_eq!(drain(&mut c), vec![Ev::Ping(b"1".to_vec())]);
    assert_output(&mut c, &[pong(b"1")]);
    c.receive(&w(&[cont(b"lo").fin(false), pong(b"2"), ping(b"3")]));
    assert_eq!(
        drain(&mut c),
        vec![Ev::Pong(b"2".to_vec()), Ev::Ping(b"3".to_vec())]
    );
    assert_output(&mut c, &[pong(b"3")]);
    c.receive(&w(&[cont(b"!")]));
    assert_eq!(drain(&mut c), vec![Ev::text("Hello!")]);
    assert_no_output(&mut c);
    // The same, in one read and split everywhere.
    ok(
        &w(&[
            text("Hel").fin(false),
            ping(b"1"),
            cont(b"lo").fin(false),
            pong(b"2"),
            ping(b"3"),
            cont(b"!"),
        ]),
        &[
            Ev::Ping(b"1".to_vec()),
            Ev::Pong(b"2".to_vec()),
            Ev::Ping(b"3".to_vec()),
            Ev::text("Hello!"),
        ],
        &[pong(b"1"), pong(b"3")],
    );
}

// conformance "Control frames": "An unsolicited Pong is ignored" (RFC 6455 §5.5.3:
// "A response to an unsolicited Pong frame is not expected"): reported, not
// answered.
#[test]
fn client_ignores_unsolicited_pong() {
    let c = ok(
        &w(&[pong(b"heartbeat"), pong(b"")]),
        &[Ev::Pong(b"heartbeat".to_vec()), Ev::Pong(vec![])],
        &[],
    );
    assert_eq!(c.ready_state(), ReadyState::Open);
}

// conformance "Control frames": "A Pong that matches a ping we sent completes that
// ping" — the core's part: our Ping goes out as given and the Pong is reported with
// its payload (RFC 6455 §5.5.2-§5.5.3).
#[test]
fn client_sends_ping_and_receives_matching_pong() {
    let mut c = conn();
    c.send_ping(b"42").unwrap();
    assert_output(&mut c, &[ping(b"42")]);
    c.receive(&w(&[pong(b"42")]));
    assert_eq!(drain(&mut c), vec![Ev::Pong(b"42".to_vec())]);
    assert_no_output(&mut c);
}

// conformance "Control frames", with `auto_pong` off: the Ping is reported and the
// application answers (RFC 6455 §5.5.2).
#[test]
fn client_with_auto_pong_off_reports_ping_without_answer() {
    let config = ProtocolSettings::default().auto_pong(false);
    let mut c = check_receive(
        ROLE,
        &config,
        &w(&[ping(b"x")]),
        &[Ev::Ping(b"x".to_vec())],
        &[],
    );
    c.send_pong(b"x").unwrap();
    assert_output(&mut c, &[pong(b"x")]);
}

// ===== Fragmentation =====

// conformance "Fragmentation": "A message is a first frame (text or binary) followed
// by continuation frames until FIN" (RFC 6455 §5.4).
#[test]
fn client_receives_fragmented_text_and_binary() {
    ok(
        &w(&[
            text("Hel").fin(false),
            cont(b"l").fin(false),
            cont(b"o"),
            binary(&[1, 2]).fin(false),
            cont(&[3]),
            text("after"),
        ]),
        &[
            Ev::text("Hello"),
            Ev::Binary(vec![1, 2, 3]),
            Ev::text("after"),
        ],
        &[],
    );
}

// conformance "Fragmentation": "A continuation with no message in progress ... fail
// 1002" (RFC 6455 §5.4).
#[test]
fn client_receives_continuation_without_message_fails_1002() {
    let err = protocol(ProtocolError::UnexpectedContinuation);
    fails(&w(&[cont(b"x")]), err.clone(), 1002);
    fails(&w(&[cont(b"x").fin(false)]), err.clone(), 1002);
    fails(&w(&[cont(b"")]), err.clone(), 1002);
    // After a message that ended.
    let input = w(&[text("a").fin(false), cont(b"b"), cont(b"c")]);
    check_fails(
        ROLE,
        &ProtocolSettings::default(),
        &input,
        &[Ev::text("ab")],
        &[],
        err,
        1002,
    );
}

// conformance "Fragmentation": "... or a new text/binary frame while one is in
// progress: fail 1002" (RFC 6455 §5.4).
#[test]
fn client_receives_text_during_fragmented_message_fails_1002() {
    let err = protocol(ProtocolError::ExpectedContinuation);
    fails(&w(&[text("a").fin(false), text("b")]), err.clone(), 1002);
    fails(&w(&[text("a").fin(false), binary(b"b")]), err.clone(), 1002);
    fails(
        &w(&[binary(b"a").fin(false), text("b").fin(false)]),
        err.clone(),
        1002,
    );
    check_fails(
        ROLE,
        &ProtocolSettings::default(),
        &w(&[
            text("a").fin(false),
            cont(b"b").fin(false),
            ping(b""),
            text("c"),
        ]),
        &[Ev::Ping(vec![])],
        &[pong(b"")],
        err.clone(),
        1002,
    );
    let mut c = conn();
    c.receive(&w(&[text("a").fin(false), ping(b"")]));
    assert_eq!(drain(&mut c), vec![Ev::Ping(vec![])]);
    assert_output(&mut c, &[pong(b"")]);
    c.receive(&w(&[binary(b"b")]));
    assert_fails(&mut c, &[], &[], err, 1002);
}

// conformance "Fragmentation": "Empty fragments are valid" (RFC 6455 §5.4 sets no
// minimum size).
#[test]
fn client_receives_empty_fragments() {
    ok(
        &w(&[
            text("").fin(false),
            cont(b"").fin(false),
            cont(b"ab").fin(false),
            cont(b""),
            text(""),
            binary(b""),
            binary(b"").fin(false),
            cont(b""),
        ]),
        &[
            Ev::text("ab"),
            Ev::text(""),
            Ev::Binary(vec![]),
            Ev::Binary(vec![]),
        ],
        &[],
    );
}

// ===== UTF-8 =====

/// Byte strings that are not UTF-8 (Autobahn 6.x classes).
const INVALID_UTF8: &[&[u8]] = &[
    b"\xff",
    b"\x80",
    b"\xc0\xaf",             // overlong "/"
    b"\xe0\x80\xaf",         // overlong "/"
    b"\xed\xa0\x80",         // UTF-16 surrogate
    b"\xf4\x90\x80\x80",     // past U+10FFFF
    b"\xf8\x88\x80\x80\x80", // 5-byte form
    b"\xe2\x82",             // truncated at the end
    b"Hello-\xc2\xb5@\xc3\x9f\xc3\xb6\xc3\xa4\xc3\xbc\xc3\xa0\xc3\xa1-UTF-8!!\xff",
    b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80edited", // Autobahn 6.3.1
];

// conformance "UTF-8": "Text messages ... must be valid UTF-8; invalid: fail 1007"
// (RFC 6455 §8.1).
#[test]
fn client_receives_text_invalid_utf8_fails_1007() {
    let err = protocol(ProtocolError::InvalidUtf8);
    for bytes in INVALID_UTF8 {
        fails(&w(&[text_bytes(bytes)]), err.clone(), 1007);
        // The same bytes as a fragmented message, one byte per fragment.
        let mut frames: Vec<Frame> = bytes.iter().map(|b| cont(&[*b]).fin(false)).collect();
        frames[0].opcode = op::TEXT;
        frames.push(cont(b""));
        fails(&w(&frames), err.clone(), 1007);
    }
}

// conformance "UTF-8": the boundaries of valid UTF-8 are accepted (RFC 3629).
#[test]
fn client_receives_valid_utf8_edge_code_points() {
    let edges =
        "\u{0}\u{7f}\u{80}\u{7ff}\u{800}\u{d7ff}\u{e000}\u{fffd}\u{ffff}\u{10000}\u{10ffff}";
    ok(&w(&[text(edges)]), &[Ev::text(edges)], &[]);
    for ch in edges.chars() {
        let s = ch.to_string();
        ok(&w(&[text(&s)]), &[Ev::text(&s)], &[]);
    }
}

// conformance "UTF-8": binary messages are not checked (RFC 6455 §5.6).
#[test]
fn client_receives_invalid_utf8_in_binary_is_delivered() {
    ok(
        &w(&[binary(b"\xff\xfe\xed\xa0\x80")]),
        &[Ev::Binary(b"\xff\xfe\xed\xa0\x80".to_vec())],
        &[],
    );
}

// conformance "UTF-8": "Fail fast ... A message that turns invalid in its first
// fragment is failed before later fragments arrive" (RFC 6455 §8.1; Autobahn 6.4.x).
#[test]
fn client_receives_text_invalid_utf8_in_first_fragment_fails_before_rest() {
    let err = protocol(ProtocolError::InvalidUtf8);
    let mut c = conn();
    c.receive(&w(&[text_bytes(b"\xce\xba\xff").fin(false)]));
    // Failed now; the rest of the message (fed by `assert_fails`) is discarded.
    assert_fails(&mut c, &[], &[], err.clone(), 1007);
    // Autobahn 6.4.1: a valid first fragment, an invalid second, then a third.
    let mut c = conn();
    c.receive(&w(&[text("κόσμε").fin(false)]));
    assert_eq!(drain(&mut c), vec![]);
    c.receive(&w(&[cont(b"\xf4\x90\x80\x80").fin(false)]));
    assert_fails(&mut c, &[], &[], err.clone(), 1007);
    // A surrogate split across fragments fails on the fragment that completes it.
    let mut c = conn();
    c.receive(&w(&[text_bytes(b"a\xed").fin(false)]));
    assert_eq!(drain(&mut c), vec![]);
    assert_no_output(&mut c);
    c.receive(&w(&[cont(b"\xa0").fin(false)]));
    assert_fails(&mut c, &[], &[], err, 1007);
}

// conformance "UTF-8": "Fail fast: the check runs ... on partial payloads of a large
// frame" (RFC 6455 §8.1; Autobahn 6.4.3-6.4.4).
#[test]
fn client_receives_invalid_utf8_in_partial_frame_fails_at_once() {
    let mut payload = vec![b'a'; 1000];
    payload[500] = 0xff;
    let input = w(&[text_bytes(&payload)]);
    let header_len = input.len() - 1000;
    let mut c = conn();
    c.receive(&input[..header_len + 400]);
    assert_eq!(drain(&mut c), vec![]);
    assert_no_output(&mut c);
    c.receive(&input[header_len + 400..header_len + 600]);
    // Failed before the last 400 bytes of the frame arrive; those are discarded.
    assert_fails(&mut c, &[], &[], protocol(ProtocolError::InvalidUtf8), 1007);
    c.receive(&input[header_len + 600..]);
    assert_eq!(drain(&mut c), vec![]);
    assert_no_output(&mut c);
    // Byte by byte: the failure comes with the 0xff byte itself.
    let mut c = conn();
    for (i, b) in input.iter().enumerate() {
        c.receive(&[*b]);
        let events = drain(&mut c);
        if i < header_len + 500 {
            assert_eq!(events, vec![], "byte {i}");
        } else {
            assert_eq!(events[0], protocol(ProtocolError::InvalidUtf8), "byte {i}");
            break;
        }
    }
    // A valid code point split between reads of one frame is fine.
    let input = w(&[text("€€€")]);
    for at in 0..input.len() {
        let run = run_chunks(
            ROLE,
            &ProtocolSettings::default(),
            &[&input[..at], &input[at..]],
        );
        assert_eq!(run.events, vec![Ev::text("€€€")], "split at {at}");
    }
}

// conformance "UTF-8": "keeping the bytes of an incomplete code point for the next
// piece" — a code point split across fragments is valid (RFC 6455 §5.4, §8.1).
#[test]
fn client_receives_code_point_split_across_fragments() {
    let s = "a\u{1F600}b";
    let bytes = s.as_bytes();
    for i in 0..=bytes.len() {
        for j in i..=bytes.len() {
            let input = w(&[
                text_bytes(&bytes[..i]).fin(false),
                cont(&bytes[i..j]).fin(false),
                cont(&bytes[j..]),
            ]);
            let mut c = conn();
            c.receive(&input);
            assert_eq!(drain(&mut c), vec![Ev::text(s)], "cuts {i} {j}");
        }
    }
    ok(
        &w(&[
            text_bytes(b"\xe2").fin(false),
            cont(b"\x82").fin(false),
            cont(b"\xac"),
        ]),
        &[Ev::text("€")],
        &[],
    );
}

// conformance "UTF-8": a message that ends inside a code point fails at its last
// frame, not before (RFC 6455 §8.1).
#[test]
fn client_receives_truncated_code_point_at_message_end_fails_1007() {
    let mut c = conn();
    c.receive(&w(&[text_bytes(b"a\xe2\x82").fin(false)]));
    assert_eq!(drain(&mut c), vec![]);
    assert_no_output(&mut c);
    c.receive(&w(&[cont(b"")]));
    assert_fails(&mut c, &[], &[], protocol(ProtocolError::InvalidUtf8), 1007);
}

// conformance "UTF-8": "... and close reasons must be valid UTF-8; invalid: fail
// 1007" (RFC 6455 §5.5.1, §8.1).
#[test]
fn client_receives_close_reason_invalid_utf8_fails_1007() {
    let err = protocol(ProtocolError::InvalidUtf8);
    for reason in [&b"\xff"[..], b"ok\xe2\x82", b"\xed\xa0\x80", b"\xc0\xaf"] {
        let payload = [&[0x03, 0xe8][..], reason].concat();
        fails(&w(&[Frame::new(op::CLOSE, payload)]), err.clone(), 1007);
    }
}

// ===== Closing =====

// conformance "Closing": "A 1-byte payload: fail 1002" (RFC 6455 §5.5.1).
#[test]
fn client_receives_close_with_1_byte_payload_fails_1002() {
    for byte in [0x00, 0x03, 0xe8] {
        fails(
            &w(&[Frame::new(op::CLOSE, [byte])]),
            protocol(ProtocolError::OneByteClosePayload),
            1002,
        );
    }
}

macro_rules! close_code_fails {
    ($($name:ident: $code:expr,)*) => {$(
        // conformance "Closing": "Anything else (0-999, 1004, 1005, 1006, 1015,
        // 1016-2999, 5000+): fail 1002" (RFC 6455 §7.4.1-§7.4.2).
        #[test]
        fn $name() {
            let err = protocol(ProtocolError::InvalidCloseCode($code));
            fails(&w(&[close_frame($code, "")]), err.clone(), 1002);
            fails(&w(&[close_frame($code, "reason")]), err, 1002);
        }
    )*};
}

close_code_fails! {
    client_receives_close_code_0_fails_1002: 0,
    client_receives_close_code_999_fails_1002: 999,
    client_receives_close_code_1004_fails_1002: 1004,
    client_receives_close_code_1005_fails_1002: 1005,
    client_receives_close_code_1006_fails_1002: 1006,
    client_receives_close_code_1015_fails_1002: 1015,
    client_receives_close_code_1016_fails_1002: 1016,
    client_receives_close_code_2999_fails_1002: 2999,
    client_receives_close_code_5000_fails_1002: 5000,
    client_receives_close_code_65535_fails_1002: 65535,
}

macro_rules! close_code_accepted {
    ($($name:ident: $code:expr,)*) => {$(
        // conformance "Closing": "Codes that may be sent on the wire: 1000-1003,
        // 1007-1011 (and 1012-1014 are accepted), 3000-4999"; the reply echoes the
        // code (RFC 6455 §5.5.1, §7.4).
        #[test]
        fn $name() {
            let c = ok(
                &w(&[close_frame($code, "why")]),
                &[close_ev($code, "why", true)],
                &[close_frame($code, "")],
            );
            assert_eq!(c.ready_state(), ReadyState::Closed);
            // A client waits for the server to close TCP (RFC 6455 §7.1.1).
            assert!(!c.should_close_transport());
            assert!(c.close_expected());
        }
    )*};
}

close_code_accepted! {
    client_accepts_close_code_1000: 1000,
    client_accepts_close_code_1001: 1001,
    client_accepts_close_code_1002: 1002,
    client_accepts_close_code_1003: 1003,
    client_accepts_close_code_1007: 1007,
    client_accepts_close_code_1008: 1008,
    client_accepts_close_code_1009: 1009,
    client_accepts_close_code_1010: 1010,
    client_accepts_close_code_1011: 1011,
    client_accepts_close_code_1012: 1012,
    client_accepts_close_code_1013: 1013,
    client_accepts_close_code_1014: 1014,
    client_accepts_close_code_3000: 3000,
    client_accepts_close_code_4999: 4999,
}

// conformance "Closing": the whole code space, each code on a fresh connection
// (RFC 6455 §7.4).
#[test]
fn client_receives_every_close_code_classified() {
    for code in 0..=u16::MAX {
        let allowed = matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999);
        let mut c = conn();
        c.receive(&w(&[close_frame(code, "")]));
        let events = drain(&mut c);
        let out = out_frames(ROLE, &c.take_output());
        if allowed {
            assert_eq!(events, vec![close_ev(code, "", true)], "code {code}");
            assert_eq!(out, vec![close_frame(code, "").out()], "code {code}");
        } else {
            assert_eq!(
                events[0],
                protocol(ProtocolError::InvalidCloseCode(code)),
                "code {code}"
            );
            assert_eq!(out[0].payload[..2], [0x03, 0xea], "code {code}");
        }
    }
}

// conformance "Closing": "On receiving Close: reply with Close echoing the code ...
// state Closing -> Closed ... a client waits for the server to close TCP, with a
// timeout" (RFC 6455 §5.5.1; §7.1.1: "the client SHOULD wait for the server to
// close the connection").
#[test]
fn client_receives_close_waits_for_server_eof() {
    let mut c = conn();
    c.receive(&w(&[close_frame(1001, "going away")]));
    assert_eq!(drain(&mut c), vec![close_ev(1001, "going away", true)]);
    assert_eq!(c.ready_state(), ReadyState::Closed);
    let (head, _, payload) = sent_frame(&mut c);
    assert_eq!((head, payload), (vec![0x88, 0x82], vec![0x03, 0xe9]));
    assert!(
        !c.should_close_transport(),
        "the client waits for the server's EOF"
    );
    assert!(c.close_expected(), "the I/O layer arms the close timeout");
    // The server closes TCP: now the client closes its side; no second Close event.
    c.receive_eof();
    assert_eq!(drain(&mut c), vec![]);
    assert_no_output(&mut c);
    assert!(c.should_close_transport());
    assert!(!c.close_expected());
    // A reason of the largest size is reported whole.
    let reason = "r".repeat(123);
    ok(
        &w(&[close_frame(4000, &reason)]),
        &[close_ev(4000, &reason, true)],
        &[close_frame(4000, "")],
    );
}

// conformance "Closing": "reply with Close echoing the code (1000 for an empty
// payload)"; "1005 when the peer sent no code" (RFC 6455 §7.1.5, §7.4.1).
#[test]
fn client_receives_empty_close_replies_1000_and_reports_1005() {
    let c = ok(
        &w(&[close_empty()]),
        &[close_ev(1005, "", true)],
        &[close_frame(1000, "")],
    );
    assert_eq!(c.ready_state(), ReadyState::Closed);
    assert!(!c.should_close_transport());
    assert!(c.close_expected());
    let mut c = conn();
    c.receive(&w(&[close_empty()]));
    drain(&mut c);
    let (head, _, payload) = sent_frame(&mut c);
    assert_eq!((head, payload), (vec![0x88, 0x82], vec![0x03, 0xe8]));
}

// conformance "Closing": frames after the peer's Close are not processed
// (RFC 6455 §5.5.1: Close is the last frame).
#[test]
fn client_receives_frames_after_close_ignored() {
    ok(
        &w(&[
            text("before"),
            close_frame(1000, ""),
            text("after"),
            ping(b"p"),
        ]),
        &[Ev::text("before"), close_ev(1000, "", true)],
        &[close_frame(1000, "")],
    );
}

// conformance "Closing": "On our own close: send Close, wait for the peer's Close
// ..., discard data frames that arrive in between" (RFC 6455 §5.5.1, §7.1.2).
#[test]
fn client_close_then_discards_data_until_peer_close() {
    let mut c = conn();
    c.close(CloseCode::NORMAL, "bye").unwrap();
    assert_output(&mut c, &[close_frame(1000, "bye")]);
    assert_eq!(c.ready_state(), ReadyState::Closing);
    assert!(c.close_expected());
    assert!(!c.should_close_transport());
    let data = w(&[
        text("dropped"),
        binary(&[9; 300]),
        text("a").fin(false),
        cont(b"b"),
        binary(&[1; 70_000]),
    ]);
    for chunk in data.chunks(1000) {
        c.receive(chunk);
        assert!(
            c.info().buffered_input() < 14,
            "discarded data is not buffered"
        );
    }
    for b in w(&[text("byte by byte")]) {
        c.receive(&[b]);
    }
    assert_eq!(drain(&mut c), vec![]);
    assert_no_output(&mut c);
    assert_eq!(c.ready_state(), ReadyState::Closing);
    c.receive(&w(&[close_frame(1000, "")]));
    assert_eq!(drain(&mut c), vec![close_ev(1000, "", true)]);
    // Our Close was already sent: no second one.
    assert_no_output(&mut c);
    assert_eq!(c.ready_state(), ReadyState::Closed);
    // The client waits for the server to close TCP (RFC 6455 §7.1.1).
    assert!(!c.should_close_transport());
    assert!(c.close_expected());
    c.receive_eof();
    assert_eq!(drain(&mut c), vec![]);
    assert!(c.should_close_transport());
    assert!(!c.close_expected());
}

// conformance "Closing": the peer's Close in reply to ours may carry another code;
// it is reported (RFC 6455 §7.1.5, the code "contained in the first Close control
// frame received").
#[test]
fn client_close_then_peer_replies_with_its_code() {
    let mut c = conn();
    c.close(CloseCode(4001), "").unwrap();
    assert_output(&mut c, &[close_frame(4001, "")]);
    c.receive(&w(&[close_frame(1001, "gone")]));
    assert_eq!(drain(&mut c), vec![close_ev(1001, "gone", true)]);
    assert_no_output(&mut c);
    let mut c = conn();
    c.close(CloseCode::NORMAL, "").unwrap();
    c.take_output();
    c.receive(&w(&[close_empty()]));
    assert_eq!(drain(&mut c), vec![close_ev(1005, "", true)]);
    assert_no_output(&mut c);
}

// conformance "Closing": "A Close that arrives between the fragments of a message is
// a normal close: drop the partial message and answer with the peer's code (not
// 1002)" (RFC 6455 §5.4: control frames may be injected between fragments).
#[test]
fn client_receives_close_between_fragments_is_normal_close() {
    let c = ok(
        &w(&[
            text("partial").fin(false),
            cont(b" message").fin(false),
            close_frame(1001, ""),
        ]),
        &[close_ev(1001, "", true)],
        &[close_frame(1001, "")],
    );
    assert!(!c.should_close_transport());
    assert!(c.close_expected());
    ok(
        &w(&[binary(b"x").fin(false), close_empty()]),
        &[close_ev(1005, "", true)],
        &[close_frame(1000, "")],
    );
}

// conformance "Closing": "After Close is sent, no data frame is sent" (RFC 6455
// §5.5.1: "The application MUST NOT send any more data frames after sending a Close
// frame").
#[test]
fn client_no_data_frame_after_close_sent() {
    let mut c = conn();
    c.close(CloseCode::NORMAL, "").unwrap();
    assert!(matches!(c.send_text("late"), Err(SendError::Closed)));
    assert!(matches!(c.send_binary(b"late"), Err(SendError::Closed)));
    assert!(matches!(
        c.send(&Message::Text("late".into())),
        Err(SendError::Closed)
    ));
    assert!(matches!(c.send_ping(b""), Err(SendError::Closed)));
    assert!(matches!(c.send_pong(b""), Err(SendError::Closed)));
    assert!(matches!(
        c.close(CloseCode::NORMAL, ""),
        Err(SendError::Closed)
    ));
    assert_output(&mut c, &[close_frame(1000, "")]);
    // Also after we replied to the peer's Close.
    let mut c = conn();
    c.receive(&w(&[close_frame(1000, "")]));
    drain(&mut c);
    assert!(matches!(c.send_text("late"), Err(SendError::Closed)));
    assert!(matches!(c.send_binary(b"late"), Err(SendError::Closed)));
    assert!(matches!(
        c.close(CloseCode::NORMAL, ""),
        Err(SendError::Closed)
    ));
    assert_output(&mut c, &[close_frame(1000, "")]);
    // And after a failure.
    let mut c = conn();
    c.receive(&w(&[cont(b"")]));
    drain(&mut c);
    c.take_output();
    assert!(matches!(c.send_text("late"), Err(SendError::Closed)));
    assert_no_output(&mut c);
}

// conformance "Closing": "1006 when TCP dropped without a Close" (RFC 6455 §7.1.5).
#[test]
fn client_receive_eof_reports_1006() {
    let mut c = conn();
    c.receive_eof();
    assert_eq!(drain(&mut c), vec![close_ev(1006, "", false)]);
    assert_no_output(&mut c);
    assert_eq!(c.ready_state(), ReadyState::Closed);
    assert!(c.should_close_transport());
    // In the middle of a message.
    let mut c = conn();
    let half = w(&[text("half").fin(false)]);
    c.receive(&half[..half.len() - 1]);
    c.receive_eof();
    assert_eq!(drain(&mut c), vec![close_ev(1006, "", false)]);
    assert_no_output(&mut c);
    // After our Close, before the peer's.
    let mut c = conn();
    c.close(CloseCode::NORMAL, "").unwrap();
    c.take_output();
    c.receive_eof();
    assert_eq!(drain(&mut c), vec![close_ev(1006, "", false)]);
    assert!(c.should_close_transport());
    assert!(!c.close_expected());
    // Before the connection opened.
    let mut c = Connection::new(ROLE, ProtocolSettings::default());
    c.receive_eof();
    assert_eq!(drain(&mut c), vec![close_ev(1006, "", false)]);
}

// conformance "Closing": "The user's actor gets Close { code, reason } once,
// whatever ended the connection".
#[test]
fn client_reports_close_once() {
    let mut c = conn();
    c.receive(&w(&[close_frame(1000, "")]));
    c.receive_eof();
    c.receive_eof();
    c.fail(CloseCode::GOING_AWAY, "x");
    assert_eq!(drain(&mut c), vec![close_ev(1000, "", true)]);
    let mut c = conn();
    c.receive(&w(&[cont(b"")]));
    c.receive_eof();
    let events = drain(&mut c);
    let closes = events.iter().filter(|e| matches!(e, Ev::Close(_))).count();
    assert_eq!(closes, 1, "{events:?}");
}

// conformance "Closing" (API): a close code that may not be sent is refused and
// nothing is sent (RFC 6455 §7.4.1: 1005, 1006, 1015 "MUST NOT be set").
#[test]
fn client_close_with_disallowed_code_errors() {
    let mut c = conn();
    for code in [0, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000, 65535] {
        let got = c.close(CloseCode(code), "");
        assert!(
            matches!(got, Err(SendError::InvalidCloseCode(c)) if c == code),
            "{code}: {got:?}"
        );
    }
    assert_no_output(&mut c);
    assert_eq!(drain(&mut c), vec![]);
    assert_eq!(c.ready_state(), ReadyState::Open);
}

// conformance "Control frames" (API): a close reason over 123 bytes does not fit in
// a control frame (RFC 6455 §5.5).
#[test]
fn client_close_reason_over_123_bytes_errors() {
    let mut c = conn();
    let got = c.close(CloseCode::NORMAL, &"x".repeat(124));
    assert!(
        matches!(got, Err(SendError::ControlPayloadTooLarge(126))),
        "{got:?}"
    );
    assert_no_output(&mut c);
    assert_eq!(c.ready_state(), ReadyState::Open);
    let reason = "x".repeat(123);
    c.close(CloseCode::NORMAL, &reason).unwrap();
    assert_output(&mut c, &[close_frame(1000, &reason)]);
}

// conformance "Control frames" (API): `send_ping`/`send_pong` over 125 bytes error
// (RFC 6455 §5.5).
#[test]
fn client_send_ping_over_125_bytes_errors() {
    let mut c = conn();
    let got = c.send_ping(&[0; 126]);
    assert!(
        matches!(got, Err(SendError::ControlPayloadTooLarge(126))),
        "{got:?}"
    );
    let got = c.send_pong(&[0; 200]);
    assert!(
        matches!(got, Err(SendError::ControlPayloadTooLarge(200))),
        "{got:?}"
    );
    assert_no_output(&mut c);
    c.send_ping(&[7; 125]).unwrap();
    c.send_pong(&[8; 125]).unwrap();
    assert_output(&mut c, &[ping(&[7; 125]), pong(&[8; 125])]);
}

// conformance "Closing": ready-state Connecting -> Open -> Closing -> Closed
// (RFC 6455 §4, §7; the browser API's readyState).
#[test]
fn client_ready_state_transitions() {
    let mut c = Connection::new(ROLE, ProtocolSettings::default());
    assert_eq!(c.ready_state(), ReadyState::Connecting);
    assert!(!c.close_expected());
    c.open();
    assert_eq!(c.ready_state(), ReadyState::Open);
    assert_eq!(drain(&mut c), vec![Ev::Open]);
    c.open();
    assert_eq!(drain(&mut c), vec![], "open twice reports Open once");
    c.close(CloseCode::NORMAL, "").unwrap();
    assert_eq!(c.ready_state(), ReadyState::Closing);
    assert!(c.close_expected());
    c.receive(&w(&[close_frame(1000, "")]));
    assert_eq!(
        c.ready_state(),
        ReadyState::Closing,
        "Closed once the Close event is taken"
    );
    assert_eq!(drain(&mut c), vec![close_ev(1000, "", true)]);
    assert_eq!(c.ready_state(), ReadyState::Closed);
    // Open -> Closed directly when the peer closes first.
    let mut c = conn();
    c.receive(&w(&[close_frame(1000, "")]));
    assert_eq!(
        c.ready_state(),
        ReadyState::Open,
        "until the Close event is taken"
    );
    assert_eq!(drain(&mut c), vec![close_ev(1000, "", true)]);
    assert_eq!(c.ready_state(), ReadyState::Closed);
}

// conformance "Framing" (API): sends before open are queued and released at open.
#[test]
fn client_sends_before_open_are_queued_until_open() {
    let mut c = Connection::new(ROLE, ProtocolSettings::default());
    c.send_text("early").unwrap();
    c.send_ping(b"p").unwrap();
    assert_no_output(&mut c);
    // Header, key (a client's frames only) and payload of both frames.
    let key_len = if ROLE == Role::Client { 4 } else { 0 };
    assert_eq!(c.buffered_amount(), 2 + key_len + 5 + 2 + key_len + 1);
    c.open();
    assert_eq!(drain(&mut c), vec![Ev::Open]);
    assert_output(&mut c, &[text("early"), ping(b"p")]);
    c.send_text("late").unwrap();
    assert_output(&mut c, &[text("late")]);
}

// conformance "Framing" (API): bytes read before the handshake finished are
// processed at open, after the Open event.
#[test]
fn client_receives_bytes_before_open_processed_at_open() {
    let mut c = Connection::new(ROLE, ProtocolSettings::default());
    c.receive(&w(&[text("hi"), ping(b"p")]));
    assert_eq!(drain(&mut c), vec![]);
    assert_no_output(&mut c);
    c.open();
    assert_eq!(
        drain(&mut c),
        vec![Ev::Open, Ev::text("hi"), Ev::Ping(b"p".to_vec())]
    );
    assert_output(&mut c, &[pong(b"p")]);
}

// conformance "Closing" (API): closing before open drops the queued frames; nothing
// is sent.
#[test]
fn client_close_before_open_drops_queued_frames() {
    let mut c = Connection::new(ROLE, ProtocolSettings::default());
    c.send_text("never").unwrap();
    c.close(CloseCode::NORMAL, "").unwrap();
    assert_eq!(drain(&mut c), vec![close_ev(1000, "", false)]);
    c.open();
    assert_eq!(drain(&mut c), vec![]);
    assert_no_output(&mut c);
    assert_eq!(c.ready_state(), ReadyState::Closed);
}

// conformance "Limits and liveness" (going away), client side: `fail` with 1001
// sends that Close frame and reports Close once (RFC 6455 §7.1.7, §7.4.1: 1001 "an
// endpoint is going away, such as ... a browser having navigated away").
#[test]
fn client_fail_going_away_sends_close_1001() {
    let mut c = conn();
    c.fail(CloseCode::GOING_AWAY, "shutting down");
    assert_eq!(drain(&mut c), vec![close_ev(1001, "shutting down", false)]);
    assert_output(&mut c, &[close_frame(1001, "shutting down")]);
    assert_eq!(c.ready_state(), ReadyState::Closed);
    assert!(c.should_close_transport());
    assert_discards_input(&mut c);
}

// conformance "Limits and liveness": "no Pong (or any frame) within the timeout:
// close with 1001/1006 and report it" — the core's part: the I/O layer fails the connection with 1001.
#[test]
fn client_fail_with_idle_timeout_closes_1001() {
    let mut c = conn();
    c.fail(CloseCode::GOING_AWAY, "no input for 60s");
    let events = drain_events(&mut c);
    assert_eq!(events.len(), 1);
    assert_eq!(
        Ev::from(events.into_iter().next().unwrap()),
        close_ev(1001, "no input for 60s", false)
    );
    assert_output(&mut c, &[close_frame(1001, "no input for 60s")]);
    assert!(c.should_close_transport());
}

// ===== Limits =====

// conformance "Framing"/"Limits": "A frame whose declared length would push the
// message past max-length fails with 1009 *before* its payload is buffered"
// (RFC 6455 §10.4). Only the header is fed.
#[test]
fn client_message_over_max_length_fails_1009_before_payload() {
    // max-length set alone also caps the frame size.
    let config = ProtocolSettings::default().max_message_size(1000);
    let header = binary(&[0; 1001]).header_to(ROLE);
    let mut c = open_conn_with(ROLE, config.clone());
    c.receive(&header[..header.len() - 1]);
    assert_eq!(drain(&mut c), vec![]);
    assert_eq!(c.info().buffered_input(), header.len() - 1);
    c.receive(&header[header.len() - 1..]);
    assert_eq!(c.info().buffered_input(), 0);
    let err = capacity(CapacityError::FrameTooLarge {
        size: 1001,
        max: 1000,
    });
    assert_fails(&mut c, &[], &[], err.clone(), 1009);
    check_fails(ROLE, &config, &header, &[], &[], err, 1009);
    // With a larger frame limit, the message limit is what fails.
    let config = ProtocolSettings::default()
        .max_message_size(1000)
        .max_frame_size(1 << 20);
    let err = capacity(CapacityError::MessageTooLarge {
        size: 1001,
        max: 1000,
    });
    check_fails(ROLE, &config, &header, &[], &[], err, 1009);
    // The header and part of the payload: fails without waiting for the rest.
    let input = binary(&[0; 1001]).to(ROLE);
    let mut c = open_conn_with(ROLE, config);
    c.receive(&input[..header.len() + 10]);
    assert_eq!(c.info().buffered_input(), 0);
    assert_fails(
        &mut c,
        &[],
        &[],
        capacity(CapacityError::MessageTooLarge {
            size: 1001,
            max: 1000,
        }),
        1009,
    );
}

// conformance "Limits": a message of exactly max-length is delivered.
#[test]
fn client_message_at_max_length_is_delivered() {
    let config = ProtocolSettings::default().max_message_size(1000);
    let mut c = open_conn_with(ROLE, config.clone());
    let input = w(&[binary(&[5; 1000])]);
    let header_len = input.len() - 1000;
    c.receive(&input[..header_len]);
    assert_eq!(drain(&mut c), vec![]);
    assert_eq!(c.info().buffered_input(), 0);
    c.receive(&input[header_len..]);
    assert_eq!(drain(&mut c), vec![Ev::Binary(vec![5; 1000])]);
    let input = w(&[text(&"a".repeat(600)).fin(false), cont(&[b'b'; 400])]);
    let mut c = open_conn_with(ROLE, config);
    c.receive(&input);
    assert_eq!(
        drain(&mut c),
        vec![Ev::Text("a".repeat(600) + &"b".repeat(400))]
    );
}

// conformance "Limits": the limit counts the whole message, across fragments; the
// frame that crosses it fails on its header (RFC 6455 §10.4).
#[test]
fn client_fragmented_message_over_max_length_fails_1009() {
    let config = ProtocolSettings::default().max_message_size(1000);
    let mut c = open_conn_with(ROLE, config.clone());
    c.receive(&w(&[
        binary(&[1; 600]).fin(false),
        cont(&[2; 300]).fin(false),
    ]));
    assert_eq!(drain(&mut c), vec![]);
    assert_eq!(c.info().buffered_input(), 900);
    c.receive(&cont(&[3; 101]).header_to(ROLE));
    assert_eq!(c.info().buffered_input(), 0);
    let err = capacity(CapacityError::MessageTooLarge {
        size: 1001,
        max: 1000,
    });
    assert_fails(&mut c, &[], &[], err.clone(), 1009);
    let input = w(&[
        text("a").fin(false),
        cont(&[b'b'; 999]).fin(false),
        cont(b"c"),
    ]);
    check_fails(ROLE, &config, &input, &[], &[], err, 1009);
    // Control frames in between do not count.
    let input = w(&[binary(&[1; 999]).fin(false), ping(&[0; 125]), cont(&[2])]);
    ok_with(
        &config,
        &input,
        &[
            Ev::Ping(vec![0; 125]),
            Ev::Binary([vec![1; 999], vec![2]].concat()),
        ],
        &[pong(&[0; 125])],
    );
}

// conformance "Framing": "Default max-length is 0x3ffffff bytes"; checked with
// headers only (no payload is sent).
#[test]
fn client_default_max_length_is_0x3ffffff() {
    assert_eq!(ProtocolSettings::default().max_message_size, 0x3ff_ffff);
    let at_limit = binary(b"")
        .length(Length::Declared(0x3ff_ffff))
        .header_to(ROLE);
    let mut c = conn();
    c.receive(&at_limit);
    assert_eq!(drain(&mut c), vec![]);
    assert_eq!(c.ready_state(), ReadyState::Open);
    let over = binary(b"")
        .length(Length::Declared(0x400_0000))
        .header_to(ROLE);
    let err = capacity(CapacityError::FrameTooLarge {
        size: 0x400_0000,
        max: 0x3ff_ffff,
    });
    fails(&over, err, 1009);
    // Across fragments: 16 bytes, then a header taking the message to the limit or
    // one past it.
    let first = w(&[binary(&[0; 16]).fin(false)]);
    let to_limit = cont(b"")
        .length(Length::Declared(0x3ff_ffff - 16))
        .header_to(ROLE);
    let mut c = conn();
    c.receive(&[first.clone(), to_limit].concat());
    assert_eq!(drain(&mut c), vec![]);
    assert_eq!(c.ready_state(), ReadyState::Open);
    let past = cont(b"")
        .length(Length::Declared(0x3ff_ffff - 15))
        .header_to(ROLE);
    let err = capacity(CapacityError::MessageTooLarge {
        size: 0x400_0000,
        max: 0x3ff_ffff,
    });
    fails(&[first, past].concat(), err, 1009);
}

// conformance "Framing": a huge declared length fails on the header, without
// allocating for it (RFC 6455 §10.4).
#[test]
fn client_receives_huge_declared_length_fails_1009_without_buffering() {
    for len in [1 << 32, 1 << 62, (1 << 63) - 1] {
        let header = binary(b"").length(Length::Declared(len)).header_to(ROLE);
        let mut c = conn();
        c.receive(&header);
        assert_eq!(c.info().buffered_input(), 0);
        let err = capacity(CapacityError::FrameTooLarge {
            size: len,
            max: 0x3ff_ffff,
        });
        assert_fails(&mut c, &[], &[], err, 1009);
    }
}

// conformance "Limits": a frame over `max_frame_size` fails with 1009 on its header,
// even when the message limit is larger.
#[test]
fn client_frame_over_max_frame_size_fails_1009() {
    let config = ProtocolSettings::default().max_frame_size(100);
    ok_with(
        &config,
        &w(&[
            binary(&[1; 100]),
            text(&"a".repeat(100)).fin(false),
            cont(&[b'b'; 100]),
        ]),
        &[
            Ev::Binary(vec![1; 100]),
            Ev::Text("a".repeat(100) + &"b".repeat(100)),
        ],
        &[],
    );
    let err = capacity(CapacityError::FrameTooLarge {
        size: 101,
        max: 100,
    });
    check_fails(
        ROLE,
        &config,
        &binary(&[1; 101]).header_to(ROLE),
        &[],
        &[],
        err.clone(),
        1009,
    );
    let input = w(&[text("a").fin(false), cont(&[b'b'; 101])]);
    check_fails(ROLE, &config, &input, &[], &[], err, 1009);
}

// conformance "Fragmentation": "A cap on fragments per message guards against floods
// of tiny or empty fragments" (1009).
#[test]
fn client_too_many_fragments_fails_1009() {
    let config = ProtocolSettings::default().max_fragments(4);
    let four = w(&[
        text("a").fin(false),
        cont(b"b").fin(false),
        cont(b"c").fin(false),
        cont(b"d"),
    ]);
    let c = ok_with(&config, &four, &[Ev::text("abcd")], &[]);
    assert_eq!(c.ready_state(), ReadyState::Open);
    let five = w(&[
        binary(b"").fin(false),
        cont(b"").fin(false),
        ping(b""),
        cont(b"").fin(false),
        cont(b"").fin(false),
        cont(b""),
    ]);
    check_fails(
        ROLE,
        &config,
        &five,
        &[Ev::Ping(vec![])],
        &[pong(b"")],
        capacity(CapacityError::TooManyFragments { max: 4 }),
        1009,
    );
    // The count starts again with each message.
    let input = [four.clone(), four].concat();
    ok_with(&config, &input, &[Ev::text("abcd"), Ev::text("abcd")], &[]);
}

// conformance "Fragmentation": "its default must admit a 4 MiB message sent in
// 64-byte fragments (65,536 fragments)".
#[test]
fn client_default_fragment_cap_admits_4mib_in_64_byte_fragments() {
    let mut frames = Vec::with_capacity(65_536);
    let chunk: Vec<u8> = (0..64).map(|i| b'a' + (i % 26)).collect();
    frames.push(text_bytes(&chunk).fin(false));
    for _ in 1..65_535 {
        frames.push(cont(&chunk).fin(false));
    }
    frames.push(cont(&chunk));
    let mut c = conn();
    c.receive(&w(&frames));
    let events = drain(&mut c);
    assert_eq!(events.len(), 1, "{:?}", &events[..events.len().min(3)]);
    let Ev::Text(got) = &events[0] else {
        panic!("{:?}", events[0]);
    };
    assert_eq!(got.len(), 4 << 20);
    assert!(got.as_bytes().chunks(64).all(|c| c == chunk));
    assert_no_output(&mut c);
}

// conformance "Fragmentation": "take at least 131,072, as Node's ws does": 131,072
// fragments pass, a flood of empty fragments is stopped at the next one.
#[test]
fn client_default_fragment_cap_is_131072() {
    let mut frames = vec![binary(b"x").fin(false)];
    frames.extend((1..131_071).map(|_| cont(b"").fin(false)));
    frames.push(cont(b"y"));
    let mut c = conn();
    c.receive(&w(&frames));
    assert_eq!(drain(&mut c), vec![Ev::Binary(b"xy".to_vec())]);
    let mut frames = vec![binary(b"").fin(false)];
    frames.extend((0..131_071).map(|_| cont(b"").fin(false)));
    let mut c = conn();
    c.receive(&w(&frames));
    assert_eq!(drain(&mut c), vec![]);
    c.receive(&w(&[cont(b"").fin(false)]));
    assert_fails(
        &mut c,
        &[],
        &[],
        capacity(CapacityError::TooManyFragments { max: 131_072 }),
        1009,
    );
}

// ===== Strict ordering around a failure =====

/// Poll events one at a time, echoing each message as it is seen (before reading
/// further events), as an echo server's actor does; returns the events.
fn echo_while_polling(c: &mut Connection) -> Vec<Ev> {
    let mut seen = Vec::new();
    while let Some(event) = c.poll_event() {
        if let Event::Message(m) = &event {
            c.send(m)
                .expect("a reply to a message seen before the Error/Close is sent");
        }
        seen.push(Ev::from(event));
    }
    seen
}

// conformance "Strict ordering around a failure": a valid message and a failing
// frame in the SAME read: the Message comes before the Error, and the echo sent on
// seeing it goes out before our Close frame (RFC 6455 §7.1.7; Autobahn "strict").
#[test]
fn client_valid_message_before_failing_frame_is_delivered_first() {
    let cases: [(Vec<u8>, Ev, u16); 5] = [
        (
            w(&[text("echo me"), text_bytes(b"\xff")]),
            protocol(ProtocolError::InvalidUtf8),
            1007,
        ),
        (
            w(&[text("echo me"), close_frame(1005, "")]),
            protocol(ProtocolError::InvalidCloseCode(1005)),
            1002,
        ),
        (
            w(&[text("echo me"), cont(b"")]),
            protocol(ProtocolError::UnexpectedContinuation),
            1002,
        ),
        (
            w(&[text("echo me"), Frame::new(op::RESERVED[0], b"")]),
            protocol(ProtocolError::ReservedOpcode(op::RESERVED[0])),
            1002,
        ),
        (
            [w(&[text("echo me")]), text("x").masked(KEY).to(ROLE)].concat(),
            protocol(ProtocolError::MaskedFrameFromServer),
            1002,
        ),
    ];
    for (input, err, code) in cases {
        let mut c = conn();
        c.receive(&input);
        let reason = err.error().to_string();
        assert_eq!(
            echo_while_polling(&mut c),
            vec![Ev::text("echo me"), err, close_ev(code, &reason, false)]
        );
        assert_output(&mut c, &[text("echo me"), close_frame(code, &reason)]);
        assert!(c.should_close_transport());
    }
    // Several messages and a ping, then a frame that fails on UTF-8 mid-message.
    let mut c = conn();
    c.receive(&w(&[
        text("one"),
        ping(b"p"),
        binary(b"two"),
        text("th").fin(false),
        cont(b"ree"),
        text_bytes(b"ok\xc0\xaf"),
    ]));
    let reason = Error::Protocol(ProtocolError::InvalidUtf8).to_string();
    assert_eq!(
        echo_while_polling(&mut c),
        vec![
            Ev::text("one"),
            Ev::Ping(b"p".to_vec()),
            Ev::Binary(b"two".to_vec()),
            Ev::text("three"),
            protocol(ProtocolError::InvalidUtf8),
            close_ev(1007, &reason, false),
        ]
    );
    // The automatic Pong is queued when the Ping is read ("handled at once"), so
    // it precedes the echoes the actor sends later; the Close frame comes last.
    assert_output(
        &mut c,
        &[
            pong(b"p"),
            text("one"),
            binary(b"two"),
            text("three"),
            close_frame(1007, &reason),
        ],
    );
}

// conformance "Strict ordering" applied to the closing handshake: a message and the
// peer's Close in the same read (Autobahn 7.1.1 "Send a message followed by a close
// frame" expects the echo, then a clean close): the echo sent on seeing the message
// goes out before our Close reply (RFC 6455 §5.5.1: the reply is sent "as soon as
// practical", and no data frame may follow it).
#[test]
fn client_receives_text_then_close_in_same_read_echo_precedes_close_reply() {
    let mut c = conn();
    c.receive(&w(&[text("Hello World!"), close_frame(1000, "")]));
    assert_eq!(
        echo_while_polling(&mut c),
        vec![Ev::text("Hello World!"), close_ev(1000, "", true)]
    );
    assert_output(&mut c, &[text("Hello World!"), close_frame(1000, "")]);
    assert_eq!(c.ready_state(), ReadyState::Closed);
    assert!(!c.should_close_transport());
    assert!(c.close_expected());
}

// ===== receive_buf =====

// conformance "Framing" (API): the zero-copy `receive_buf` gives the same events as
// `receive`, fed in pieces.
#[test]
fn client_receive_buf_in_pieces_matches_receive() {
    let input = w(&[
        text("Hello"),
        ping(b"p"),
        text("κό").fin(false),
        cont("σμε".as_bytes()),
        binary(&[3; 300]),
        close_frame(1000, ""),
    ]);
    for piece in [1, 2, 3, 7, 64, input.len()] {
        let mut c = conn();
        let mut buf = bytes::BytesMut::new();
        let mut events = Vec::new();
        for chunk in input.chunks(piece) {
            buf.extend_from_slice(chunk);
            c.receive_buf(&mut buf);
            events.extend(drain(&mut c));
        }
        assert_eq!(
            events,
            vec![
                Ev::text("Hello"),
                Ev::Ping(b"p".to_vec()),
                Ev::text("κόσμε"),
                Ev::Binary(vec![3; 300]),
                close_ev(1000, "", true),
            ],
            "pieces of {piece}"
        );
        assert_output(&mut c, &[pong(b"p"), close_frame(1000, "")]);
    }
}

// A client masks every frame (RFC 6455 §5.3), so a large payload is copied and
// masked into the output, never queued by reference.
#[test]
fn large_payload_is_masked_into_one_piece() {
    let mut c = conn();
    let payload = bytes::Bytes::from(vec![0x5a; 4096]);
    c.send(&Message::Binary(payload.clone())).unwrap();
    let mut slots = [std::io::IoSlice::new(&[]); 8];
    assert_eq!(c.output().chunks_vectored(&mut slots), 1);
    let frame = slots[0].to_vec();
    assert_eq!(frame.len(), 8 + 4096);
    assert_eq!(&frame[..4], b"\x82\xfe\x10\x00");
    let key = [frame[4], frame[5], frame[6], frame[7]];
    let unmasked: Vec<u8> = frame[8..]
        .iter()
        .enumerate()
        .map(|(i, b)| b ^ key[i % 4])
        .collect();
    assert_eq!(unmasked, payload.to_vec());
}
