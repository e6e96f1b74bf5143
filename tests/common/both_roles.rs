//! The scenarios both roles share, word for word: included by
//! `tests/proto_client.rs` and `tests/proto_server.rs`, each with its own helpers
//! (`conn`, `w`, `ok`, the frames it expects: masked from a client, not from a
//! server), so each runs once per role.

use super::*;

// conformance "Control frames": the Pong goes out "in order with other outgoing
// frames" (RFC 6455 §5.5.2).
#[test]
fn pong_follows_queued_frames_in_order() {
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
fn receives_ping_between_fragments_answers_at_once() {
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
fn ignores_unsolicited_pong() {
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
fn sends_ping_and_receives_matching_pong() {
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
fn with_auto_pong_off_reports_ping_without_answer() {
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
fn receives_fragmented_text_and_binary() {
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
fn receives_continuation_without_message_fails_1002() {
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
fn receives_text_during_fragmented_message_fails_1002() {
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
fn receives_empty_fragments() {
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
fn receives_text_invalid_utf8_fails_1007() {
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
fn receives_valid_utf8_edge_code_points() {
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
fn receives_invalid_utf8_in_binary_is_delivered() {
    ok(
        &w(&[binary(b"\xff\xfe\xed\xa0\x80")]),
        &[Ev::Binary(b"\xff\xfe\xed\xa0\x80".to_vec())],
        &[],
    );
}

// conformance "UTF-8": "Fail fast ... A message that turns invalid in its first
// fragment is failed before later fragments arrive" (RFC 6455 §8.1; Autobahn 6.4.x).
#[test]
fn receives_text_invalid_utf8_in_first_fragment_fails_before_rest() {
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
fn receives_invalid_utf8_in_partial_frame_fails_at_once() {
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
fn receives_code_point_split_across_fragments() {
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
fn receives_truncated_code_point_at_message_end_fails_1007() {
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
fn receives_close_reason_invalid_utf8_fails_1007() {
    let err = protocol(ProtocolError::InvalidUtf8);
    for reason in [&b"\xff"[..], b"ok\xe2\x82", b"\xed\xa0\x80", b"\xc0\xaf"] {
        let payload = [&[0x03, 0xe8][..], reason].concat();
        fails(&w(&[Frame::new(op::CLOSE, payload)]), err.clone(), 1007);
    }
}

// ===== Closing =====

// conformance "Closing": "A 1-byte payload: fail 1002" (RFC 6455 §5.5.1).
#[test]
fn receives_close_with_1_byte_payload_fails_1002() {
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
    receives_close_code_0_fails_1002: 0,
    receives_close_code_999_fails_1002: 999,
    receives_close_code_1004_fails_1002: 1004,
    receives_close_code_1005_fails_1002: 1005,
    receives_close_code_1006_fails_1002: 1006,
    receives_close_code_1015_fails_1002: 1015,
    receives_close_code_1016_fails_1002: 1016,
    receives_close_code_2999_fails_1002: 2999,
    receives_close_code_5000_fails_1002: 5000,
    receives_close_code_65535_fails_1002: 65535,
}

// conformance "Closing": "After Close is sent, no data frame is sent" (RFC 6455
// §5.5.1: "The application MUST NOT send any more data frames after sending a Close
// frame").
#[test]
fn no_data_frame_after_close_sent() {
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
fn receive_eof_reports_1006() {
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
fn reports_close_once() {
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
fn close_with_disallowed_code_errors() {
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
fn close_reason_over_123_bytes_errors() {
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
fn send_ping_over_125_bytes_errors() {
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
fn ready_state_transitions() {
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
fn sends_before_open_are_queued_until_open() {
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
fn receives_bytes_before_open_processed_at_open() {
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
fn close_before_open_drops_queued_frames() {
    let mut c = Connection::new(ROLE, ProtocolSettings::default());
    c.send_text("never").unwrap();
    c.close(CloseCode::NORMAL, "").unwrap();
    assert_eq!(drain(&mut c), vec![close_ev(1000, "", false)]);
    c.open();
    assert_eq!(drain(&mut c), vec![]);
    assert_no_output(&mut c);
    assert_eq!(c.ready_state(), ReadyState::Closed);
}

// conformance "Limits and liveness": "Server shutdown: every open connection
// receives Close 1001 (going away) and the user's actor its Close", and a client
// going away: the core's `fail` with 1001 sends that Close frame and reports Close
// once (RFC 6455 §7.1.7, §7.4.1: 1001 "an endpoint is going away, such as a server
// going down or a browser having navigated away from a page").
#[test]
fn fail_going_away_sends_close_1001() {
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
fn fail_with_idle_timeout_closes_1001() {
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
fn message_over_max_length_fails_1009_before_payload() {
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
fn message_at_max_length_is_delivered() {
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
fn fragmented_message_over_max_length_fails_1009() {
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
fn default_max_length_is_0x3ffffff() {
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
fn receives_huge_declared_length_fails_1009_without_buffering() {
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
fn frame_over_max_frame_size_fails_1009() {
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
fn too_many_fragments_fails_1009() {
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
fn default_fragment_cap_admits_4mib_in_64_byte_fragments() {
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
fn default_fragment_cap_is_131072() {
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
