//! Sans-I/O scenarios for the server role: exact bytes in, exact events and bytes
//! out. `tests/proto_client.rs` mirrors every scenario for the client role.
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

const ROLE: Role = Role::Server;

fn conn() -> Connection {
    open_conn(ROLE)
}

/// The frames as a client sends them (masked with `KEY`).
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

// ===== Framing =====

// conformance "Framing" (client frames are masked); RFC 6455 §5.7, the masked
// "Hello" example, byte for byte.
#[test]
fn server_receives_rfc_masked_hello() {
    let input = [
        0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58,
    ];
    assert_eq!(masked_text("Hello"), input);
    ok(&input, &[Ev::text("Hello")], &[]);
}

// conformance "Framing", "Control frames", "Fragmentation", "Closing": a mixed
// sequence gives the same events and output however the reads split it
// (RFC 6455 §5.2-§5.5).
#[test]
fn server_receives_frames_in_any_split() {
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

// conformance "Framing": "Server: every client frame must be masked, else fail
// 1002" (RFC 6455 §5.1: "a server MUST close the connection upon receiving a frame
// that is not masked").
#[test]
fn server_receives_unmasked_frame_fails_1002() {
    let err = protocol(ProtocolError::UnmaskedFrameFromClient);
    for frame in [
        text("hi"),
        binary(b"x"),
        ping(b""),
        pong(b"p"),
        close_frame(1000, ""),
    ] {
        fails(&frame.unmasked().to(ROLE), err.clone(), 1002);
    }
    // After a valid message in the same read, and in the middle of a message.
    let input = [w(&[text("ok")]), text("no").unmasked().to(ROLE)].concat();
    check_fails(
        ROLE,
        &ProtocolSettings::default(),
        &input,
        &[Ev::text("ok")],
        &[],
        err.clone(),
        1002,
    );
    let input = [w(&[text("a").fin(false)]), cont(b"b").unmasked().to(ROLE)].concat();
    fails(&input, err, 1002);
}

// conformance "Framing": "Outgoing client frames use a fresh random mask" — the
// server side: server frames are never masked (RFC 6455 §5.1: "A server MUST NOT
// mask any frames"), lengths use the minimal encoding (§5.2).
#[test]
fn server_sends_unmasked_frames() {
    let mut c = conn();
    c.send_text("Hello").unwrap();
    assert_eq!(&c.take_output()[..], b"\x81\x05Hello");
    c.send_binary(&[0xab; 125]).unwrap();
    assert_eq!(
        c.take_output().to_vec(),
        [&[0x82, 125][..], &[0xab; 125]].concat()
    );
    c.send_binary(&[0xab; 126]).unwrap();
    assert_eq!(
        c.take_output().to_vec(),
        [&[0x82, 126, 0, 126][..], &[0xab; 126]].concat()
    );
    c.send_binary(&[0xcd; 0xffff]).unwrap();
    assert_eq!(
        c.take_output().to_vec(),
        [&[0x82, 126, 0xff, 0xff][..], &[0xcd; 0xffff]].concat()
    );
    c.send_binary(&[0xef; 0x10000]).unwrap();
    assert_eq!(
        c.take_output().to_vec(),
        [&[0x82, 127, 0, 0, 0, 0, 0, 1, 0, 0][..], &[0xef; 0x10000]].concat()
    );
    c.send(&Message::Text("é".into())).unwrap();
    c.send(&Message::Binary(vec![1, 2].into())).unwrap();
    c.send_ping(b"ping").unwrap();
    c.send_pong(b"").unwrap();
    assert_eq!(
        &c.take_output()[..],
        b"\x81\x02\xc3\xa9\x82\x02\x01\x02\x89\x04ping\x8a\x00"
    );
    c.close(CloseCode::NORMAL, "bye").unwrap();
    assert_eq!(&c.take_output()[..], b"\x88\x05\x03\xe8bye");
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
fn server_receives_rsv1_without_extension_fails_1002() {
    rsv_fails(RSV1);
}

// conformance "Framing", RSV bits (RFC 6455 §5.2).
#[test]
fn server_receives_rsv2_without_extension_fails_1002() {
    rsv_fails(RSV2);
}

// conformance "Framing", RSV bits (RFC 6455 §5.2).
#[test]
fn server_receives_rsv3_without_extension_fails_1002() {
    rsv_fails(RSV3);
}

// conformance "Framing", RSV bits (RFC 6455 §5.2): every combination.
#[test]
fn server_receives_any_rsv_combination_fails_1002() {
    for rsv in 1..8 {
        rsv_fails(rsv);
    }
}

// conformance "Framing": "Opcodes 3-7 and 11-15 are reserved: fail 1002"
// (RFC 6455 §5.2: "If an unknown opcode is received, the receiving endpoint MUST
// _Fail the WebSocket Connection_").
#[test]
fn server_receives_reserved_opcode_3_to_7_and_11_to_15_fails_1002() {
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
fn server_receives_64bit_length_with_top_bit_fails_1002() {
    for len in [1 << 63, u64::MAX] {
        let header = binary(b"").length(Length::Declared(len)).header_to(ROLE);
        fails(&header, protocol(ProtocolError::InvalidPayloadLength), 1002);
    }
}

// conformance "Framing": "Non-minimal length encodings are accepted" (RFC 6455 §5.2
// says a sender uses the minimal encoding; a receiver need not enforce it).
#[test]
fn server_accepts_non_minimal_length() {
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
fn server_receives_7_16_and_64_bit_lengths() {
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

// conformance "Framing" (masking, RFC 6455 §5.3): the key may be anything,
// including zero, and applies by payload offset across reads.
#[test]
fn server_receives_frames_with_varied_keys() {
    let input = [
        text("zero key").masked([0, 0, 0, 0]).to(ROLE),
        binary(&[0xff; 37])
            .masked([0xff, 0x00, 0xaa, 0x55])
            .to(ROLE),
        text("€uro").masked([1, 2, 3, 4]).to(ROLE),
    ]
    .concat();
    ok(
        &input,
        &[
            Ev::text("zero key"),
            Ev::Binary(vec![0xff; 37]),
            Ev::text("€uro"),
        ],
        &[],
    );
}

// ===== Control frames =====

// conformance "Control frames": "Ping, Pong, Close: payload at most 125 bytes ...
// else fail 1002" (RFC 6455 §5.5). The header alone is enough to fail.
#[test]
fn server_receives_ping_126_bytes_fails_1002() {
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
fn server_receives_ping_125_bytes_answers_identical_pong() {
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
fn server_receives_fragmented_ping_fails_1002() {
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
fn server_answers_ping_with_identical_pong() {
    let c = ok(
        &w(&[ping(b"Hello")]),
        &[Ev::Ping(b"Hello".to_vec())],
        &[pong(b"Hello")],
    );
    assert_eq!(c.ready_state(), ReadyState::Open);
    let mut c = conn();
    c.receive(&w(&[ping(b"Hello")]));
    drain(&mut c);
    assert_eq!(&c.take_output()[..], b"\x8a\x05Hello");
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
            assert!(c.should_close_transport());
        }
    )*};
}

close_code_accepted! {
    server_accepts_close_code_1000: 1000,
    server_accepts_close_code_1001: 1001,
    server_accepts_close_code_1002: 1002,
    server_accepts_close_code_1003: 1003,
    server_accepts_close_code_1007: 1007,
    server_accepts_close_code_1008: 1008,
    server_accepts_close_code_1009: 1009,
    server_accepts_close_code_1010: 1010,
    server_accepts_close_code_1011: 1011,
    server_accepts_close_code_1012: 1012,
    server_accepts_close_code_1013: 1013,
    server_accepts_close_code_1014: 1014,
    server_accepts_close_code_3000: 3000,
    server_accepts_close_code_4999: 4999,
}

// conformance "Closing": the whole code space, each code on a fresh connection
// (RFC 6455 §7.4).
#[test]
fn server_receives_every_close_code_classified() {
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
// state Closing -> Closed, then the server closes TCP" (RFC 6455 §5.5.1, §7.1.1).
#[test]
fn server_receives_close_replies_with_same_code_then_closes_transport() {
    let mut c = conn();
    c.receive(&w(&[close_frame(1001, "going away")]));
    assert_no_output(&mut c);
    assert!(
        !c.should_close_transport(),
        "not before the Close event is taken"
    );
    assert_eq!(drain(&mut c), vec![close_ev(1001, "going away", true)]);
    assert_eq!(c.ready_state(), ReadyState::Closed);
    assert!(c.should_close_transport());
    assert_eq!(&c.take_output()[..], b"\x88\x02\x03\xe9");
    // The transport then ends: no second Close event.
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
fn server_receives_empty_close_replies_1000_and_reports_1005() {
    let c = ok(
        &w(&[close_empty()]),
        &[close_ev(1005, "", true)],
        &[close_frame(1000, "")],
    );
    assert_eq!(c.ready_state(), ReadyState::Closed);
    assert!(c.should_close_transport());
    let mut c = conn();
    c.receive(&w(&[close_empty()]));
    drain(&mut c);
    assert_eq!(&c.take_output()[..], b"\x88\x02\x03\xe8");
}

// conformance "Closing": frames after the peer's Close are not processed
// (RFC 6455 §5.5.1: Close is the last frame).
#[test]
fn server_receives_frames_after_close_ignored() {
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
fn server_close_then_discards_data_until_peer_close() {
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
    assert!(c.should_close_transport());
}

// conformance "Closing": the peer's Close in reply to ours may carry another code;
// it is reported (RFC 6455 §7.1.5, the code "contained in the first Close control
// frame received").
#[test]
fn server_close_then_peer_replies_with_its_code() {
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
fn server_receives_close_between_fragments_is_normal_close() {
    let c = ok(
        &w(&[
            text("partial").fin(false),
            cont(b" message").fin(false),
            close_frame(1001, ""),
        ]),
        &[close_ev(1001, "", true)],
        &[close_frame(1001, "")],
    );
    assert!(c.should_close_transport());
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
fn server_valid_message_before_failing_frame_is_delivered_first() {
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
            [w(&[text("echo me")]), text("x").unmasked().to(ROLE)].concat(),
            protocol(ProtocolError::UnmaskedFrameFromClient),
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
fn server_receives_text_then_close_in_same_read_echo_precedes_close_reply() {
    let mut c = conn();
    c.receive(&w(&[text("Hello World!"), close_frame(1000, "")]));
    assert_eq!(
        echo_while_polling(&mut c),
        vec![Ev::text("Hello World!"), close_ev(1000, "", true)]
    );
    assert_output(&mut c, &[text("Hello World!"), close_frame(1000, "")]);
    assert_eq!(c.ready_state(), ReadyState::Closed);
    assert!(c.should_close_transport());
}

// ===== receive_buf =====

// conformance "Framing" (API): the zero-copy `receive_buf` gives the same events as
// `receive`, fed in pieces.
#[test]
fn server_receive_buf_in_pieces_matches_receive() {
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

// The output can be written in place: `output()` shows the pending bytes and
// `advance_output(n)` drops what the transport took, keeping the rest in order.
#[test]
fn output_written_in_place_in_partial_writes() {
    let mut c = Connection::new(ROLE, ProtocolSettings::default());
    c.send_text("queued").unwrap();
    assert_eq!(c.output().front(), b"", "nothing goes out while connecting");
    c.open();
    assert_eq!(c.output().front(), b"\x81\x06queued");
    c.send_binary(b"ab").unwrap();
    c.output_mut().advance(3);
    assert_eq!(c.output().front(), b"ueued\x82\x02ab");
    assert_eq!(c.buffered_amount(), 9);
    c.output_mut().advance(100);
    assert_eq!(c.output().front(), b"");
    assert_eq!(c.buffered_amount(), 0);
    c.send_text("x").unwrap();
    assert_eq!(&c.take_output()[..], b"\x81\x01x");
}

// A large message sent from `Bytes` goes out by reference (a server's frames are
// not masked, RFC 6455 §5.1): its header, then the caller's own buffer, in one
// vectored write; small frames around it keep their order.
#[test]
fn large_payload_is_queued_by_reference_not_copied() {
    let mut c = conn();
    let payload = bytes::Bytes::from(vec![0x5a; 4096]);
    c.send_text("a").unwrap();
    c.send(&Message::Binary(payload.clone())).unwrap();
    c.send_text("b").unwrap();
    let mut slots = [std::io::IoSlice::new(&[]); 8];
    let n = c.output().chunks_vectored(&mut slots);
    assert_eq!(n, 3);
    assert_eq!(&slots[0][..], b"\x81\x01a\x82\x7e\x10\x00");
    assert_eq!(
        slots[1].as_ptr(),
        payload.as_ptr(),
        "the payload was copied"
    );
    assert_eq!(slots[1].len(), 4096);
    assert_eq!(&slots[2][..], b"\x81\x01b");
    assert_eq!(c.buffered_amount(), 7 + 4096 + 3);
    c.output_mut().advance(7 + 100);
    assert_eq!(c.output().front().len(), 4096 - 100);
    assert_eq!(
        c.take_output().to_vec(),
        [&[0x5a; 3996][..], b"\x81\x01b"].concat()
    );
}

// The I/O layer can drop what waits for a peer that stopped reading.
#[test]
fn discard_output_drops_everything_queued() {
    let mut c = conn();
    c.send_text("a").unwrap();
    c.send(&Message::Binary(bytes::Bytes::from(vec![1; 8192])))
        .unwrap();
    assert_eq!(c.buffered_amount(), 3 + 4 + 8192);
    c.output_mut().discard();
    assert_eq!(c.buffered_amount(), 0);
    assert_eq!(c.output().front(), b"");
    c.send_text("b").unwrap();
    assert_eq!(&c.take_output()[..], b"\x81\x01b");
}
