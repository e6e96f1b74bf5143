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

// The scenarios both roles share word for word (control frames, closing codes,
// the closing handshake, limits), run here with this file's helpers.
#[path = "common/both_roles.rs"]
mod both_roles;

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
