//! Property tests for the sans-I/O core: chunking independence, header round trips,
//! masking, incremental UTF-8 against `std`, close-code classification and the
//! message size limit.
//!
//! Case counts are kept moderate so that the file runs in a few seconds in debug
//! mode.

mod common;

use common::*;
use proptest::{prelude::*, sample::Index};
use websocket_driver::{
    proto::{
        apply_mask, apply_mask_scalar, CloseCode, CloseFrame, Connection, FrameHeader, OpCode,
        Role, Utf8Validator, MAX_HEADER_LEN,
    },
    proto::{CapacityError, ProtocolError},
    ProtocolSettings,
};

// ----- generators -----

/// A control frame that may come between messages or fragments.
#[derive(Debug, Clone)]
enum Control {
    Ping(Vec<u8>),
    Pong(Vec<u8>),
}

/// One data message, cut into fragments, with control frames between them.
#[derive(Debug, Clone)]
struct Msg {
    text: bool,
    payload: Vec<u8>,
    /// Cut points in the payload (may fall inside a code point).
    cuts: Vec<usize>,
    /// A control frame after fragment `i` (the last one is sent after the message).
    controls: Vec<Option<Control>>,
}

/// A scenario: messages, an optional Close, and bytes after it.
#[derive(Debug, Clone)]
struct Scenario {
    messages: Vec<Msg>,
    close: Option<(u16, String)>,
    trailer: Vec<u8>,
}

fn control() -> impl Strategy<Value = Control> {
    let payload = prop::collection::vec(any::<u8>(), 0..=125);
    prop_oneof![
        payload.clone().prop_map(Control::Ping),
        payload.prop_map(Control::Pong),
    ]
}

fn msg() -> impl Strategy<Value = Msg> {
    let payload = prop_oneof![
        ".{0,80}".prop_map(|s: String| (true, s.into_bytes())),
        "[a-z€😀]{100,400}".prop_map(|s: String| (true, s.into_bytes())),
        prop::collection::vec(any::<u8>(), 0..300).prop_map(|b| (false, b)),
    ];
    (
        payload,
        prop::collection::vec(any::<Index>(), 0..5),
        prop::collection::vec(prop::option::weighted(0.3, control()), 6),
    )
        .prop_map(|((text, payload), cuts, controls)| {
            let mut cuts: Vec<usize> = cuts.iter().map(|i| i.index(payload.len() + 1)).collect();
            cuts.sort_unstable();
            Msg {
                text,
                payload,
                cuts,
                controls,
            }
        })
}

fn scenario() -> impl Strategy<Value = Scenario> {
    let allowed = prop_oneof![1000u16..=1003, 1007u16..=1014, 3000u16..=4999];
    (
        prop::collection::vec(msg(), 0..6),
        prop::option::of((allowed, "[a-zé ]{0,20}")),
        prop::collection::vec(any::<u8>(), 0..40),
    )
        .prop_map(|(messages, close, trailer)| Scenario {
            messages,
            close,
            trailer,
        })
}

/// The key of the `i`th frame a client sends in a scenario.
fn key(seed: u32, i: usize) -> [u8; 4] {
    seed.wrapping_add((i as u32).wrapping_mul(0x9e37_79b9))
        .to_le_bytes()
}

/// The bytes the peer of `role` sends, and the events and output expected.
fn build(role: Role, seed: u32, s: &Scenario) -> (Vec<u8>, Vec<Ev>, Vec<OutFrame>) {
    let mut frames = Vec::new();
    let mut events = Vec::new();
    let mut output = Vec::new();
    let mut control_frame = |c: &Control, frames: &mut Vec<Frame>, events: &mut Vec<Ev>| match c {
        Control::Ping(p) => {
            frames.push(ping(p));
            events.push(Ev::Ping(p.clone()));
            output.push(pong(p).out());
        }
        Control::Pong(p) => {
            frames.push(pong(p));
            events.push(Ev::Pong(p.clone()));
        }
    };
    for m in &s.messages {
        let mut bounds = vec![0];
        bounds.extend(&m.cuts);
        bounds.push(m.payload.len());
        let pieces: Vec<&[u8]> = bounds.windows(2).map(|w| &m.payload[w[0]..w[1]]).collect();
        for (i, piece) in pieces.iter().enumerate() {
            let opcode = match (i, m.text) {
                (0, true) => op::TEXT,
                (0, false) => op::BINARY,
                _ => op::CONT,
            };
            frames.push(Frame::new(opcode, piece).fin(i + 1 == pieces.len()));
            if i + 1 < pieces.len() {
                if let Some(c) = &m.controls[i] {
                    control_frame(c, &mut frames, &mut events);
                }
            }
        }
        events.push(if m.text {
            Ev::Text(String::from_utf8(m.payload.clone()).unwrap())
        } else {
            Ev::Binary(m.payload.clone())
        });
        if let Some(c) = &m.controls[5] {
            control_frame(c, &mut frames, &mut events);
        }
    }
    if let Some((code, reason)) = &s.close {
        frames.push(close_frame(*code, reason));
        events.push(close_ev(*code, reason, true));
        output.push(close_frame(*code, "").out());
    }
    let mut input = Vec::new();
    for (i, f) in frames.iter().enumerate() {
        let f = match role {
            Role::Server => f.clone().masked(key(seed, i)),
            Role::Client => f.clone(),
        };
        input.extend(f.to(role));
    }
    if s.close.is_some() {
        input.extend(&s.trailer);
    }
    (input, events, output)
}

/// `input` cut at the given points.
fn chunks<'a>(input: &'a [u8], cuts: &[Index]) -> Vec<&'a [u8]> {
    let mut at: Vec<usize> = cuts.iter().map(|i| i.index(input.len() + 1)).collect();
    at.sort_unstable();
    at.insert(0, 0);
    at.push(input.len());
    at.windows(2).map(|w| &input[w[0]..w[1]]).collect()
}

fn role() -> impl Strategy<Value = Role> {
    prop_oneof![Just(Role::Server), Just(Role::Client)]
}

// ----- decoding any split equals decoding whole -----

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    // conformance "Framing", "Control frames", "Fragmentation", "UTF-8", "Closing":
    // valid frames (fragmented messages, control frames between fragments, a Close
    // and junk after it) give the expected events and output, and the same ones
    // whether fed whole or in random chunks.
    #[test]
    fn valid_frames_decode_the_same_in_any_chunks(
        role in role(),
        seed in any::<u32>(),
        s in scenario(),
        cuts in prop::collection::vec(any::<Index>(), 0..24),
    ) {
        let (input, events, output) = build(role, seed, &s);
        let config = ProtocolSettings::default();
        let whole = run_chunks(role, &config, &[&input]);
        prop_assert_eq!(&whole.events, &events);
        prop_assert_eq!(&whole.output, &output);
        let pieces = run_chunks(role, &config, &chunks(&input, &cuts));
        prop_assert_eq!(&pieces, &whole);
        let bytes: Vec<&[u8]> = input.chunks(1).collect();
        prop_assert_eq!(&run_chunks(role, &config, &bytes), &whole);
    }

    // conformance "Framing" (and every failure rule): arbitrary bytes after valid
    // frames give the same events, output and state in any chunks, failures
    // included.
    #[test]
    fn any_bytes_decode_the_same_in_any_chunks(
        role in role(),
        seed in any::<u32>(),
        s in scenario(),
        junk in prop::collection::vec(any::<u8>(), 0..200),
        cuts in prop::collection::vec(any::<Index>(), 0..24),
    ) {
        let (mut input, _, _) = build(role, seed, &s);
        input.extend(&junk);
        let config = ProtocolSettings::default().max_message_size(1 << 16).max_fragments(64);
        let whole = run_chunks(role, &config, &[&input]);
        let pieces = run_chunks(role, &config, &chunks(&input, &cuts));
        prop_assert_eq!(pieces, whole);
    }
}

// ----- frame headers -----

fn header() -> impl Strategy<Value = FrameHeader> {
    let len = prop_oneof![0u64..126, 126u64..=0xffff, 0x1_0000u64..(1 << 63)];
    (
        any::<bool>(),
        0u8..8,
        0u8..16,
        prop::option::of(any::<[u8; 4]>()),
        len,
    )
        .prop_map(|(fin, rsv, opcode, mask, payload_len)| FrameHeader {
            fin,
            rsv,
            opcode: OpCode::from_bits(opcode),
            mask,
            payload_len,
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    // RFC 6455 §5.2: encode then decode gives the same header, with the minimal
    // length encoding; a prefix of a header is "not yet", never an error.
    #[test]
    fn header_encode_decode_round_trip(h in header(), extra in prop::collection::vec(any::<u8>(), 0..8)) {
        let mut buf = [0u8; MAX_HEADER_LEN];
        let n = h.encode(&mut buf);
        prop_assert_eq!(n, h.encoded_len());
        let len_bytes = match h.payload_len { 0..=125 => 0, 126..=0xffff => 2, _ => 8 };
        prop_assert_eq!(n, 2 + len_bytes + if h.mask.is_some() { 4 } else { 0 });
        prop_assert_eq!(FrameHeader::decode(&buf[..n]), Ok(Some((h, n))));
        let mut longer = buf[..n].to_vec();
        longer.extend(&extra);
        prop_assert_eq!(FrameHeader::decode(&longer), Ok(Some((h, n))));
        for cut in 0..n {
            prop_assert_eq!(FrameHeader::decode(&buf[..cut]), Ok(None));
        }
        let mut dst = bytes::BytesMut::new();
        h.encode_into(&mut dst);
        prop_assert_eq!(&dst[..], &buf[..n]);
    }

    // conformance "Framing": non-minimal length encodings decode to the same length;
    // a 64-bit length with its top bit set is an error (RFC 6455 §5.2).
    #[test]
    fn header_decodes_any_length_encoding(
        b0 in any::<u8>(),
        mask in prop::option::of(any::<[u8; 4]>()),
        len in any::<u64>(),
        form in 0u8..3,
    ) {
        let mask_bit = if mask.is_some() { 0x80 } else { 0 };
        let mut bytes = vec![b0];
        let declared = match form {
            0 if len < 126 => { bytes.push(mask_bit | len as u8); len }
            0 | 1 => {
                let len = len & 0xffff;
                bytes.push(mask_bit | 126);
                bytes.extend((len as u16).to_be_bytes());
                len
            }
            _ => {
                bytes.push(mask_bit | 127);
                bytes.extend(len.to_be_bytes());
                len
            }
        };
        if let Some(key) = mask {
            bytes.extend(key);
        }
        let got = FrameHeader::decode(&bytes);
        if declared >> 63 != 0 {
            prop_assert_eq!(got, Err(ProtocolError::InvalidPayloadLength));
        } else {
            let (h, n) = got.unwrap().unwrap();
            prop_assert_eq!(n, bytes.len());
            prop_assert_eq!(h.payload_len, declared);
            prop_assert_eq!(h.mask, mask);
            prop_assert_eq!(h.fin, b0 & 0x80 != 0);
            prop_assert_eq!(h.rsv, (b0 >> 4) & 7);
            prop_assert_eq!(h.opcode.bits(), b0 & 0xf);
        }
    }
}

// ----- masking -----

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    // RFC 6455 §5.3: masking twice with the same key and offset is the identity, and
    // the word-at-a-time `apply_mask` equals the byte loop at any offset and
    // alignment.
    #[test]
    fn mask_twice_is_identity_and_matches_scalar(
        data in prop::collection::vec(any::<u8>(), 0..300),
        key in any::<[u8; 4]>(),
        offset in 0usize..1000,
        start in 0usize..16,
    ) {
        let start = start.min(data.len());
        let mut fast = data.clone();
        apply_mask(&mut fast[start..], key, offset);
        let mut slow = data.clone();
        apply_mask_scalar(&mut slow[start..], key, offset);
        prop_assert_eq!(&fast, &slow);
        let mut reference = data.clone();
        xor(&mut reference[start..], key, offset);
        prop_assert_eq!(&fast, &reference);
        apply_mask(&mut fast[start..], key, offset);
        prop_assert_eq!(&fast, &data);
    }

    // RFC 6455 §5.3: masking piece by piece with running offsets equals masking
    // whole (how a frame is unmasked as its bytes arrive).
    #[test]
    fn mask_in_pieces_equals_whole(
        data in prop::collection::vec(any::<u8>(), 0..300),
        key in any::<[u8; 4]>(),
        cuts in prop::collection::vec(any::<Index>(), 0..6),
    ) {
        let mut whole = data.clone();
        apply_mask(&mut whole, key, 0);
        let mut pieces = data.clone();
        let mut at = 0;
        for piece in chunks(&data, &cuts) {
            let len = piece.len();
            apply_mask(&mut pieces[at..at + len], key, at);
            at += len;
        }
        prop_assert_eq!(pieces, whole);
    }
}

// ----- UTF-8 -----

fn utf8_input() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..40),
        any::<String>().prop_map(String::into_bytes),
        "[a-zé€😀\u{10ffff}\u{ffff}\u{d7ff}\u{e000}]{0,30}".prop_map(String::into_bytes),
        // Mostly valid: one byte replaced.
        ("[a-zé€😀]{1,30}", any::<Index>(), any::<u8>()).prop_map(|(s, i, b)| {
            let mut v = s.into_bytes();
            let at = i.index(v.len());
            v[at] = b;
            v
        }),
        // Mostly valid: cut short, or with a byte inserted.
        ("[a-zé€😀]{1,30}", any::<Index>()).prop_map(|(s, i)| {
            let v = s.into_bytes();
            v[..i.index(v.len())].to_vec()
        }),
        ("[a-zé€😀]{0,30}", any::<Index>(), any::<u8>()).prop_map(|(s, i, b)| {
            let mut v = s.into_bytes();
            v.insert(i.index(v.len() + 1), b);
            v
        }),
        // Classic invalid sequences inside valid text.
        (
            "[a-zé😀]{0,10}",
            prop::sample::select(vec![
                &b"\xed\xa0\x80"[..],
                b"\xc0\xaf",
                b"\xf4\x90\x80\x80",
                b"\xe0\x80\xaf",
                b"\xf8\x88\x80\x80\x80",
                b"\xef\xbf\xbf",
                b"\xf4\x8f\xbf\xbf",
            ]),
            "[a-zé😀]{0,10}",
        )
            .prop_map(|(a, mid, b)| [a.as_bytes(), mid, b.as_bytes()].concat()),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1024))]

    // conformance "UTF-8": the incremental validator agrees with `std::str::from_utf8`
    // at any split, and fails fast: on the piece that holds the first byte that makes
    // the text invalid, never earlier, never later (RFC 6455 §8.1).
    #[test]
    fn utf8_validator_agrees_with_std_at_any_split(
        bytes in utf8_input(),
        cuts in prop::collection::vec(any::<Index>(), 0..6),
    ) {
        let pieces = chunks(&bytes, &cuts);
        let mut v = Utf8Validator::new();
        let mut failed_at = None;
        let mut start = 0;
        for (i, piece) in pieces.iter().enumerate() {
            if v.feed(piece).is_err() {
                failed_at = Some((start, start + piece.len(), i));
                break;
            }
            start += piece.len();
        }
        let finished = failed_at.is_none().then(|| v.finish());
        match std::str::from_utf8(&bytes) {
            Ok(_) => {
                prop_assert_eq!(failed_at, None);
                prop_assert_eq!(finished, Some(Ok(())));
            }
            Err(e) => match e.error_len() {
                Some(len) => {
                    let Some((piece_start, piece_end, _)) = failed_at else {
                        return Err(TestCaseError::fail(format!("{bytes:02x?} accepted")));
                    };
                    // Not before the bad sequence starts...
                    prop_assert!(piece_end > e.valid_up_to(), "{:?}", (piece_start, piece_end, &e));
                    // ...and no later than the byte after it.
                    let latest = (e.valid_up_to() + len).min(bytes.len() - 1);
                    prop_assert!(piece_start <= latest, "{:?}", (piece_start, piece_end, &e));
                }
                None => {
                    // A valid prefix cut inside a code point: only the end fails.
                    prop_assert_eq!(failed_at, None);
                    prop_assert_eq!(finished, Some(Err(ProtocolError::InvalidUtf8)));
                }
            },
        }
        // `finish` leaves the validator ready for a new text.
        v.reset();
        prop_assert_eq!(v.feed(b"ok"), Ok(()));
        prop_assert_eq!(v.finish(), Ok(()));
    }

    // conformance "UTF-8" through the connection: a text message cut into random
    // fragments is delivered iff it is UTF-8, else fails with 1007.
    #[test]
    fn text_message_delivered_iff_utf8(
        bytes in utf8_input(),
        cuts in prop::collection::vec(any::<Index>(), 0..4),
    ) {
        let pieces = chunks(&bytes, &cuts);
        let frames: Vec<Frame> = pieces
            .iter()
            .enumerate()
            .map(|(i, p)| {
                Frame::new(if i == 0 { op::TEXT } else { op::CONT }, p).fin(i + 1 == pieces.len())
            })
            .collect();
        let run = run_chunks(Role::Server, &ProtocolSettings::default(), &[&wire(Role::Server, &frames)]);
        match String::from_utf8(bytes) {
            Ok(s) => prop_assert_eq!(run.events, vec![Ev::Text(s)]),
            Err(_) => {
                prop_assert_eq!(&run.events[0], &Ev::Protocol(ProtocolError::InvalidUtf8));
                prop_assert_eq!(run.output[0].payload[..2].to_vec(), vec![0x03, 0xef]);
            }
        }
    }
}

// ----- close codes -----

fn allowed_by_conformance(code: u16) -> bool {
    matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    // conformance "Closing": codes 1000-1003, 1007-1014, 3000-4999 are allowed,
    // everything else is not (RFC 6455 §7.4.1-§7.4.2); decoding a Close payload
    // agrees.
    #[test]
    fn close_code_classification(code in any::<u16>(), reason in "[a-zé]{0,20}") {
        prop_assert_eq!(CloseCode(code).is_allowed(), allowed_by_conformance(code));
        let payload = [&code.to_be_bytes()[..], reason.as_bytes()].concat();
        let want = if allowed_by_conformance(code) {
            Ok(Some(CloseFrame::new(code, reason.clone())))
        } else {
            Err(ProtocolError::InvalidCloseCode(code))
        };
        prop_assert_eq!(CloseFrame::decode(&payload), want);
    }

    // conformance "Closing" through the connection, both roles: an allowed code is
    // echoed and reported; any other fails with 1002.
    #[test]
    fn close_code_received(role in role(), code in prop_oneof![any::<u16>(), 990u16..1020, 2990u16..3010, 4990u16..5010]) {
        let run = run_chunks(role, &ProtocolSettings::default(), &[&close_frame(code, "").to(role)]);
        if allowed_by_conformance(code) {
            prop_assert_eq!(run.events, vec![close_ev(code, "", true)]);
            prop_assert_eq!(run.output, vec![close_frame(code, "").out()]);
        } else {
            prop_assert_eq!(&run.events[0], &Ev::Protocol(ProtocolError::InvalidCloseCode(code)));
            prop_assert_eq!(run.output[0].payload[..2].to_vec(), vec![0x03, 0xea]);
        }
    }
}

// ----- size limit -----

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    // conformance "Framing"/"Limits": a fragmented message is delivered iff it fits
    // `max-length`; otherwise the first frame that crosses it fails with 1009 on its
    // header, naming the size reached.
    #[test]
    fn message_size_limit(
        role in role(),
        sizes in prop::collection::vec(0usize..60, 1..12),
        limit in 0usize..400,
    ) {
        let config = ProtocolSettings::default().max_message_size(limit);
        let last = sizes.len() - 1;
        let frames: Vec<Frame> = sizes
            .iter()
            .enumerate()
            .map(|(i, &n)| {
                Frame::new(if i == 0 { op::BINARY } else { op::CONT }, vec![i as u8; n]).fin(i == last)
            })
            .collect();
        let run = run_chunks(role, &config, &[&wire(role, &frames)]);
        let mut total = 0;
        let mut want_err = None;
        for &n in &sizes {
            total += n;
            if n > limit {
                want_err = Some(CapacityError::FrameTooLarge { size: n as u64, max: limit });
                break;
            }
            if total > limit {
                want_err = Some(CapacityError::MessageTooLarge { size: total as u64, max: limit });
                break;
            }
        }
        match want_err {
            None => {
                let payload: Vec<u8> = sizes.iter().enumerate().flat_map(|(i, &n)| vec![i as u8; n]).collect();
                prop_assert_eq!(run.events, vec![Ev::Binary(payload)]);
            }
            Some(err) => {
                prop_assert_eq!(&run.events[0], &Ev::Capacity(err));
                prop_assert_eq!(run.output[0].payload[..2].to_vec(), vec![0x03, 0xf1]);
            }
        }
    }

    // conformance "Framing": "Outgoing client frames use a fresh random mask": every
    // frame a client sends decodes (independently) to what was sent, masked, with
    // the minimal length encoding (RFC 6455 §5.2-§5.3).
    #[test]
    fn client_output_decodes_to_what_was_sent(
        messages in prop::collection::vec(prop_oneof![
            ".{0,60}".prop_map(|s: String| (true, s.into_bytes())),
            prop::collection::vec(any::<u8>(), 0..70_000).prop_map(|b| (false, b)),
        ], 1..4),
    ) {
        let mut conn = Connection::new(Role::Client, ProtocolSettings::default());
        conn.open();
        for (text, payload) in &messages {
            if *text {
                conn.send_text(std::str::from_utf8(payload).unwrap()).unwrap();
            } else {
                conn.send_binary(payload).unwrap();
            }
        }
        let frames = decode_output_frames(&conn.take_output(), true);
        prop_assert_eq!(frames.len(), messages.len());
        for ((h, payload), (text, sent)) in frames.iter().zip(&messages) {
            prop_assert!(h.fin);
            prop_assert_eq!(h.rsv, 0);
            prop_assert_eq!(h.opcode, if *text { OpCode::Text } else { OpCode::Binary });
            prop_assert_eq!(payload, sent);
        }
    }
}
