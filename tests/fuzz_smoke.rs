//! A stable, seeded stand-in for the cargo-fuzz targets (`fuzz/`), run by plain
//! `cargo test`: for each role, 10 million pseudo-random bytes and 10 million bytes of
//! mostly valid frames, fed in chunks of 1..=4096 bytes to `Connection`s through the
//! shared driver (`fuzz/driver.rs`), which checks the invariants after every chunk and
//! recreates the connection whenever it closes.
//!
//! The structure-aware input comes with a model of what the connection must report
//! (messages, pings, pongs, the error's close code, the close), compared event by
//! event with what the driver saw.

#[path = "../fuzz/driver.rs"]
mod driver;

use std::time::Instant;

use driver::{Driver, Feed, Limits, Seen, Stats, CLOSE_TRIGGER};
use rand::{rngs::StdRng, Rng, RngCore, SeedableRng};
use websocket_driver::proto::Role;

/// Bytes fed per role and kind of input.
const TOTAL: usize = 10_000_000;
/// The connections' limits.
const MAX_MESSAGE: usize = Limits::SMALL.max_message;
const MAX_FRAME: usize = Limits::SMALL.max_frame;
const MAX_FRAGMENTS: usize = Limits::SMALL.max_fragments;
/// The largest chunk fed at once.
const MAX_CHUNK: usize = 4096;

fn print_stats(what: &str, stats: &Stats, started: Instant) {
    eprintln!(
        "{what}: {} bytes in {} chunks, {} connections, {:.1} s\n  \
         messages {} (text {}, binary {}), pings {}, pongs {}, \
         errors {} (1002: {}, 1007: {}, 1009: {}, other: {}), \
         closes {} (clean {}, 1006 at EOF {}, started by us {}), \
         frames sent {}, most input buffered {} bytes\n  errors by kind: {:?}",
        stats.bytes,
        stats.chunks,
        stats.connections,
        started.elapsed().as_secs_f64(),
        stats.messages(),
        stats.text,
        stats.binary,
        stats.pings,
        stats.pongs,
        stats.errors,
        stats.errors_1002,
        stats.errors_1007,
        stats.errors_1009,
        stats.errors_other,
        stats.closes,
        stats.clean_closes,
        stats.eof_closes,
        stats.closes_started,
        stats.frames_out,
        stats.max_buffered,
        stats.error_kinds,
    );
}

fn new_driver(rng: &mut StdRng, role: Role, limits: Limits, record: bool) -> Driver {
    let feed = if rng.random_bool(0.3) {
        Feed::ReceiveBuf
    } else {
        Feed::Receive
    };
    let mut driver = Driver::new(role, limits, rng.random_bool(0.9), feed, record);
    // Now and then the first bytes arrive before the handshake is done.
    if rng.random_bool(0.9) {
        driver.open();
    }
    driver
}

fn feed(driver: &mut Driver, chunk: &[u8]) {
    driver.feed(chunk);
    if !driver.is_open_called() {
        driver.open();
    }
}

// ----- pure random bytes -----

fn random_bytes(role: Role, seed: u64) -> Stats {
    let started = Instant::now();
    let mut rng = StdRng::seed_from_u64(seed);
    let mut total = Stats::default();
    // Half the connections with tiny limits, which random headers hit more often.
    let limits = |rng: &mut StdRng| {
        if rng.random_bool(0.5) {
            Limits::TINY
        } else {
            Limits::SMALL
        }
    };
    let l = limits(&mut rng);
    let mut driver = new_driver(&mut rng, role, l, false);
    let mut chunk = vec![0u8; MAX_CHUNK];
    let mut fed = 0;
    while fed < TOTAL {
        let len = rng.random_range(1..=MAX_CHUNK).min(TOTAL - fed);
        rng.fill_bytes(&mut chunk[..len]);
        fed += len;
        feed(&mut driver, &chunk[..len]);
        if driver.is_closed() {
            driver.eof();
            total.add(&driver.stats);
            let l = limits(&mut rng);
            driver = new_driver(&mut rng, role, l, false);
        }
    }
    driver.eof();
    total.add(&driver.stats);
    print_stats(&format!("random bytes, {role:?}"), &total, started);
    assert_eq!(total.bytes, TOTAL as u64);
    assert_eq!(total.closes, total.connections);
    total
}

#[test]
fn random_bytes_server() {
    let stats = random_bytes(Role::Server, 0x5eed_0001);
    assert!(stats.errors >= 1000 && stats.closes >= 1000, "{stats:?}");
}

#[test]
fn random_bytes_client() {
    let stats = random_bytes(Role::Client, 0x5eed_0002);
    assert!(stats.errors >= 1000 && stats.closes >= 1000, "{stats:?}");
    // Unmasked random headers sometimes make a whole binary message.
    assert!(stats.messages() >= 3, "{stats:?}");
}

// ----- structure-aware input, with a model -----

/// How a frame's payload length is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LenEnc {
    Minimal,
    /// 16-bit extended length, even when 7 bits would do.
    Ext16,
    /// 64-bit extended length, even when less would do.
    Ext64,
    /// 64-bit length with its most significant bit set (RFC 6455 §5.2: an error).
    TopBit,
}

#[derive(Debug, Clone)]
struct Frame {
    fin: bool,
    rsv: u8,
    opcode: u8,
    masked: bool,
    /// The declared length: the payload's unless a header-only frame claims more.
    len: u64,
    payload: Vec<u8>,
    enc: LenEnc,
}

impl Frame {
    fn new(rng: &mut StdRng, role: Role, opcode: u8, fin: bool, payload: Vec<u8>) -> Self {
        let enc = match rng.random_range(0..100) {
            0..=4 => LenEnc::Ext16,
            5..=7 => LenEnc::Ext64,
            _ => LenEnc::Minimal,
        };
        Frame {
            fin,
            rsv: 0,
            opcode,
            masked: role == Role::Server,
            len: payload.len() as u64,
            payload,
            enc,
        }
    }

    /// Append the frame, masked when `masked`, to `out`.
    fn write(&self, rng: &mut StdRng, out: &mut Vec<u8>) {
        out.push(u8::from(self.fin) << 7 | self.rsv << 4 | self.opcode);
        let mask_bit = if self.masked { 0x80 } else { 0 };
        let enc = match self.enc {
            LenEnc::Ext16 if self.len > 0xffff => LenEnc::Ext64,
            enc => enc,
        };
        match enc {
            LenEnc::Minimal if self.len <= 125 => out.push(mask_bit | self.len as u8),
            LenEnc::Minimal if self.len <= 0xffff => {
                out.push(mask_bit | 126);
                out.extend_from_slice(&(self.len as u16).to_be_bytes());
            }
            LenEnc::Ext16 => {
                out.push(mask_bit | 126);
                out.extend_from_slice(&(self.len as u16).to_be_bytes());
            }
            LenEnc::TopBit => {
                out.push(mask_bit | 127);
                out.extend_from_slice(&(self.len | 1 << 63).to_be_bytes());
            }
            LenEnc::Minimal | LenEnc::Ext64 => {
                out.push(mask_bit | 127);
                out.extend_from_slice(&self.len.to_be_bytes());
            }
        }
        let start = out.len() + if self.masked { 4 } else { 0 };
        let key: [u8; 4] = rng.random();
        if self.masked {
            out.extend_from_slice(&key);
        }
        out.extend_from_slice(&self.payload);
        if self.masked {
            for (i, b) in out[start..].iter_mut().enumerate() {
                *b ^= key[i & 3];
            }
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Open,
    /// The driver sent its Close (after a `CLOSE_TRIGGER` message).
    Closing,
    /// Closed or failed: nothing more is processed.
    Done,
}

/// What RFC 6455 (and the configured limits) say the connection must report, frame by
/// frame, mirroring the order of the core's checks.
struct Model {
    state: State,
    expected: Vec<Seen>,
    /// The message in progress: text or not, and its bytes so far.
    message: Option<(bool, Vec<u8>)>,
    fragments: usize,
    size: u64,
}

fn close_code_allowed(code: u16) -> bool {
    matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999)
}

impl Model {
    fn new() -> Self {
        Model {
            state: State::Open,
            expected: Vec::new(),
            message: None,
            fragments: 0,
            size: 0,
        }
    }

    fn fail(&mut self, code: u16) {
        self.expected.push(Seen::Error { code });
        self.expected.push(Seen::Close { code, clean: false });
        self.state = State::Done;
    }

    /// The connection reads `f`. Returns true when the frame was a message's last and
    /// the driver is to start the closing handshake after it.
    fn frame(&mut self, f: &Frame, role: Role) -> bool {
        assert_ne!(self.state, State::Done);
        if f.enc == LenEnc::TopBit {
            self.fail(1002);
            return false;
        }
        if f.masked != (role == Role::Server) || matches!(f.opcode, 3..=7 | 11..=15) {
            self.fail(1002);
            return false;
        }
        if f.opcode >= 8 {
            if f.rsv != 0 || !f.fin || f.len > 125 {
                self.fail(1002);
                return false;
            }
            let p = &f.payload;
            match f.opcode {
                9 => self.expected.push(Seen::Ping(p.clone())),
                10 => self.expected.push(Seen::Pong(p.clone())),
                _ => match p.len() {
                    0 => {
                        self.expected.push(Seen::Close {
                            code: 1005,
                            clean: true,
                        });
                        self.state = State::Done;
                    }
                    1 => self.fail(1002),
                    _ => {
                        let code = u16::from_be_bytes([p[0], p[1]]);
                        if !close_code_allowed(code) {
                            self.fail(1002);
                        } else if std::str::from_utf8(&p[2..]).is_err() {
                            self.fail(1007);
                        } else {
                            self.expected.push(Seen::Close { code, clean: true });
                            self.state = State::Done;
                        }
                    }
                },
            }
            return false;
        }
        if f.rsv != 0 {
            self.fail(1002);
            return false;
        }
        if f.len > MAX_FRAME as u64 {
            self.fail(1009);
            return false;
        }
        if self.state == State::Closing {
            return false; // dropped unread
        }
        match (f.opcode, &self.message) {
            (0, None) | (1 | 2, Some(_)) => {
                self.fail(1002);
                return false;
            }
            (1 | 2, None) => self.message = Some((f.opcode == 1, Vec::new())),
            _ => {}
        }
        self.fragments += 1;
        self.size += f.len;
        if self.fragments > MAX_FRAGMENTS || self.size > MAX_MESSAGE as u64 {
            self.fail(1009);
            return false;
        }
        let (text, data) = self.message.as_mut().expect("a message in progress");
        data.extend_from_slice(&f.payload);
        if *text {
            if let Err(e) = std::str::from_utf8(data) {
                if e.error_len().is_some() || f.fin {
                    self.fail(1007);
                    return false;
                }
            }
        }
        if !f.fin {
            return false;
        }
        let (text, data) = self.message.take().expect("a message in progress");
        self.fragments = 0;
        self.size = 0;
        let trigger = data.starts_with(CLOSE_TRIGGER);
        self.expected.push(Seen::Message { text, data });
        if trigger {
            self.state = State::Closing;
        }
        trigger
    }
}

/// Random text: mostly valid UTF-8 of 1 to 4 bytes a character, now and then with an
/// invalid sequence in it.
fn text(rng: &mut StdRng, len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + 4);
    while out.len() < len {
        let c = match rng.random_range(0..20) {
            0..=11 => char::from(rng.random_range(0x20u8..0x7f)),
            12..=14 => char::from_u32(rng.random_range(0x80..0x800)).unwrap(),
            15..=17 => {
                let c = rng.random_range(0x800..0x1_0000);
                char::from_u32(c).unwrap_or('\u{fffd}')
            }
            _ => char::from_u32(rng.random_range(0x1_0000..0x11_0000)).unwrap(),
        };
        if out.len() + c.len_utf8() > len {
            out.push(b'.');
        } else {
            let mut buf = [0u8; 4];
            out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
        }
    }
    if len > 0 && rng.random_bool(0.04) {
        const BAD: [&[u8]; 8] = [
            &[0xff],
            &[0x80],
            &[0xc0, 0x80],
            &[0xed, 0xa0, 0x80],
            &[0xf4, 0x90, 0x80, 0x80],
            &[0xe2, 0x82],
            &[0xf0, 0x9f],
            &[0xc3],
        ];
        let bad = BAD[rng.random_range(0..BAD.len())];
        let at = rng.random_range(0..len);
        let end = (at + bad.len()).min(len);
        out[at..end].copy_from_slice(&bad[..end - at]);
    }
    out
}

fn binary(rng: &mut StdRng, len: usize) -> Vec<u8> {
    let mut out = vec![0u8; len];
    rng.fill_bytes(&mut out);
    out
}

/// A random control frame (mostly valid).
fn control(rng: &mut StdRng, role: Role) -> Frame {
    let (opcode, payload) = match rng.random_range(0..100) {
        0..=44 => {
            let len = rng.random_range(0..=125);
            (9, binary(rng, len))
        }
        45..=79 => {
            let len = rng.random_range(0..=125);
            (10, binary(rng, len))
        }
        80 => {
            let len = rng.random_range(126..=200);
            (9, binary(rng, len))
        }
        _ => {
            let payload = match rng.random_range(0..12) {
                0 => Vec::new(),
                1 => vec![0x03],
                2..=6 => {
                    let codes = [1000u16, 1001, 1002, 1003, 1007, 1008, 1009, 1011, 1014];
                    let code = if rng.random_bool(0.3) {
                        rng.random_range(3000..=4999)
                    } else {
                        codes[rng.random_range(0..codes.len())]
                    };
                    let reason_len = rng.random_range(0..=30);
                    let mut p = code.to_be_bytes().to_vec();
                    p.extend(text(rng, reason_len));
                    p
                }
                7 => {
                    let codes = [0u16, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000, 65535];
                    let mut p = codes[rng.random_range(0..codes.len())]
                        .to_be_bytes()
                        .to_vec();
                    p.extend_from_slice(b"bad code");
                    p
                }
                8 => {
                    let mut p = 1000u16.to_be_bytes().to_vec();
                    p.extend_from_slice(&[b'x', 0xff, b'y']);
                    p
                }
                9 => {
                    let mut p = 4000u16.to_be_bytes().to_vec();
                    p.extend_from_slice(&[b'r'; 123]);
                    p
                }
                _ => {
                    let mut p = 1000u16.to_be_bytes().to_vec();
                    let extra = rng.random_range(124..=140);
                    p.resize(2 + extra, b'r');
                    p
                }
            };
            (8, payload)
        }
    };
    let mut frame = Frame::new(rng, role, opcode, true, payload);
    if rng.random_bool(0.005) {
        frame.fin = false;
    }
    frame
}

/// Random damage to a frame, now and then.
fn damage(rng: &mut StdRng, frame: &mut Frame) {
    match rng.random_range(0..1000) {
        0..=2 => frame.rsv = rng.random_range(1..8),
        3..=5 => frame.masked = !frame.masked,
        6..=8 => frame.opcode = [3, 4, 5, 6, 7, 11, 12, 13, 14, 15][rng.random_range(0..10)],
        9 => frame.enc = LenEnc::TopBit,
        _ => {}
    }
}

/// One connection's worth of input, as segments (a chunk never spans two, so that the
/// driver's closing handshake happens just where the model says), and the events the
/// model expects.
fn session(rng: &mut StdRng, role: Role) -> (Vec<Vec<u8>>, Vec<Seen>) {
    let mut model = Model::new();
    let mut segments = vec![Vec::new()];
    let steps = rng.random_range(1..=40);
    let emit = |rng: &mut StdRng, model: &mut Model, segments: &mut Vec<Vec<u8>>, f: &Frame| {
        f.write(rng, segments.last_mut().expect("a segment"));
        if model.frame(f, role) {
            segments.push(Vec::new());
        }
    };
    'steps: for _ in 0..steps {
        if model.state == State::Done {
            break;
        }
        match rng.random_range(0..100) {
            0..=59 => {
                let is_text = rng.random_bool(0.5);
                let len = match rng.random_range(0..100) {
                    0..=44 => rng.random_range(0..=125),
                    45..=84 => rng.random_range(126..=2000),
                    85..=95 => rng.random_range(2001..=20_000),
                    _ => rng.random_range(20_001..=100_000),
                };
                let mut data = if is_text {
                    text(rng, len)
                } else {
                    binary(rng, len)
                };
                if rng.random_bool(0.02) && data.len() >= CLOSE_TRIGGER.len() {
                    data[..CLOSE_TRIGGER.len()].copy_from_slice(CLOSE_TRIGGER);
                }
                // Fragment boundaries: none, a few, or around the fragment limit; or
                // evenly spaced so that each fragment is within the frame limit (and
                // a message over 64 KiB trips the message limit instead).
                let pieces = match rng.random_range(0..100) {
                    _ if len > MAX_FRAME && rng.random_bool(0.5) => 0,
                    0..=44 => 1,
                    45..=89 => rng.random_range(2..=8),
                    _ => rng.random_range(MAX_FRAGMENTS - 2..=MAX_FRAGMENTS + 6),
                };
                let mut cuts: Vec<usize> = if pieces == 0 {
                    let even = len.div_ceil(MAX_FRAME).max(1) + rng.random_range(0..=2);
                    (1..even).map(|i| len * i / even).collect()
                } else {
                    (1..pieces).map(|_| rng.random_range(0..=len)).collect()
                };
                cuts.sort_unstable();
                cuts.push(len);
                let mut start = 0;
                for (i, &end) in cuts.iter().enumerate() {
                    let first = i == 0;
                    let last = i == cuts.len() - 1;
                    let mut opcode = if first { 2 - u8::from(is_text) } else { 0 };
                    match rng.random_range(0..1000) {
                        // A new message inside this one, or a continuation first.
                        0..=4 if !first => opcode = 1 + u8::from(rng.random_bool(0.5)),
                        5..=7 if first => opcode = 0,
                        _ => {}
                    }
                    let mut frame = Frame::new(rng, role, opcode, last, data[start..end].to_vec());
                    damage(rng, &mut frame);
                    emit(rng, &mut model, &mut segments, &frame);
                    start = end;
                    if model.state == State::Done {
                        break 'steps;
                    }
                    if !last && rng.random_bool(0.1) {
                        let frame = control(rng, role);
                        emit(rng, &mut model, &mut segments, &frame);
                        if model.state == State::Done {
                            break 'steps;
                        }
                    }
                }
            }
            60..=61 => {
                // A header alone, declaring more than the frame limit.
                let len = match rng.random_range(0..3) {
                    0 => rng.random_range(MAX_FRAME as u64 + 1..=MAX_MESSAGE as u64 * 2),
                    1 => u64::from(u32::MAX),
                    _ => rng.random_range(1 << 32..1 << 63),
                };
                let opcode = if rng.random_bool(0.5) { 2 } else { 0 };
                let mut frame = Frame::new(rng, role, opcode, true, Vec::new());
                frame.len = len;
                emit(rng, &mut model, &mut segments, &frame);
                // Any payload bytes that follow are never read.
                let junk = rng.random_range(0..64);
                segments.last_mut().unwrap().extend(binary(rng, junk));
            }
            _ => {
                let mut frame = control(rng, role);
                damage(rng, &mut frame);
                emit(rng, &mut model, &mut segments, &frame);
            }
        }
    }
    if model.state == State::Done {
        // Whatever follows the end must be ignored.
        let junk = rng.random_range(0..200);
        segments.last_mut().unwrap().extend(binary(rng, junk));
    } else {
        // The driver feeds EOF after the last byte.
        model.expected.push(Seen::Close {
            code: 1006,
            clean: false,
        });
    }
    (segments, model.expected)
}

fn describe(seen: &Seen) -> String {
    match seen {
        Seen::Message { text, data } => format!(
            "Message {{ text: {text}, {} bytes, starting {:?} }}",
            data.len(),
            &data[..data.len().min(16)]
        ),
        other => format!("{other:?}"),
    }
}

fn structured(role: Role, seed: u64) -> Stats {
    let started = Instant::now();
    let mut rng = StdRng::seed_from_u64(seed);
    let mut total = Stats::default();
    let mut fed = 0;
    let mut sessions = 0u64;
    while fed < TOTAL {
        sessions += 1;
        let (segments, expected) = session(&mut rng, role);
        let max_chunk = match rng.random_range(0..100) {
            0..=59 => MAX_CHUNK,
            60..=84 => 256,
            _ => 16,
        };
        let mut driver = new_driver(&mut rng, role, Limits::SMALL, true);
        for segment in &segments {
            let mut rest = &segment[..];
            while !rest.is_empty() && fed < TOTAL {
                let len = rng
                    .random_range(1..=max_chunk)
                    .min(rest.len())
                    .min(TOTAL - fed);
                let (chunk, tail) = rest.split_at(len);
                feed(&mut driver, chunk);
                fed += len;
                rest = tail;
            }
        }
        driver.eof();
        total.add(&driver.stats);
        if fed >= TOTAL {
            // The last session was cut short: its model no longer applies.
            break;
        }
        let seen = driver.seen();
        let first_difference = seen
            .iter()
            .zip(&expected)
            .position(|(a, b)| a != b)
            .unwrap_or(seen.len().min(expected.len()));
        assert!(
            seen == expected,
            "{role:?} session {sessions} (seed {seed:#x}): events differ from the model at \
             #{first_difference}: saw {:?}, expected {:?}\n(saw {} events, expected {})",
            seen.get(first_difference).map(describe),
            expected.get(first_difference).map(describe),
            seen.len(),
            expected.len(),
        );
    }
    print_stats(
        &format!("structured, {role:?} ({sessions} sessions)"),
        &total,
        started,
    );
    assert_eq!(total.bytes, TOTAL as u64);
    assert_eq!(total.closes, total.connections);
    let kind = |name: &str| total.error_kinds.get(name).copied().unwrap_or(0);
    for (what, count) in [
        ("messages", total.messages()),
        ("text messages", total.text),
        ("binary messages", total.binary),
        ("pings", total.pings),
        ("pongs", total.pongs),
        ("errors", total.errors),
        ("1002 errors", total.errors_1002),
        ("1007 errors", total.errors_1007),
        ("1009 errors", total.errors_1009),
        ("frames over the limit", kind("Capacity::FrameTooLarge")),
        ("messages over the limit", kind("Capacity::MessageTooLarge")),
        (
            "messages with too many fragments",
            kind("Capacity::TooManyFragments"),
        ),
        ("invalid UTF-8", kind("Protocol::InvalidUtf8")),
        ("closes", total.closes),
        ("clean closes", total.clean_closes),
        ("closes at EOF", total.eof_closes),
        ("closing handshakes started", total.closes_started),
    ] {
        assert!(count >= 5, "only {count} {what}: {total:?}");
    }
    total
}

#[test]
fn structured_server() {
    structured(Role::Server, 0x5eed_0003);
}

#[test]
fn structured_client() {
    structured(Role::Client, 0x5eed_0004);
}
