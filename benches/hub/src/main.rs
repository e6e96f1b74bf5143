//! `wsd-hubload`: a fan-out load generator for websocket-driver's hub benchmark
//! (`scripts/bench-hub.sh`): one publisher and N subscribers in one room, every
//! delivery checked.
//!
//! # The protocol (what a server under test implements)
//!
//! - Every connection connects to `ws://ADDR/ws`: a plain HTTP/1.1 upgrade, no
//!   subprotocol, no extension (no permessage-deflate). All connections are in one
//!   room.
//! - A text message the server receives from a connection is published, unchanged,
//!   to every *other* connection of the room (never echoed to its sender).
//! - Subscribers never send data (only Pongs to the server's Pings, and nothing
//!   else); the publisher is one more connection, opened last, which only sends
//!   (and answers Pings). A text frame reaching the publisher is an error.
//! - The server binary takes `--bind ADDR` and runs single-threaded (one worker).
//!
//! # The payload (text, exactly `--size` bytes, 20 at least)
//!
//! ```text
//! bytes 0..12   send time: 12 lowercase hex digits, microseconds since the load
//!               generator's start (monotonic clock); in latency mode the
//!               *scheduled* send time, so that a late publisher is not hidden
//! bytes 12..20  publication sequence number: 8 lowercase hex digits
//! bytes 20..    'x' up to the size
//! ```
//!
//! e.g. `0000001344f1000002a7xxxx...`: sent 1,262,833 µs after the start,
//! publication 679. Each subscriber checks every text frame it gets: length, hex
//! digits, padding, the time against what the publisher recorded for that number,
//! and that numbers strictly increase by one; a frame that fails counts as
//! `corrupt`, a skipped number as `missing`, a repeat of the last one as
//! `duplicate`, an older one as `out_of_order`, and a publication that has not
//! reached a subscriber when the run ends as `undelivered`. The latency of a delivery is the
//! time it was read minus the send time the publisher recorded (nanoseconds).
//!
//! # The run
//!
//! 1. The soft descriptor limit is raised to the hard one (N + 64 are needed).
//! 2. N subscribers connect (at most `--handshakes` handshakes at a time), then the
//!    publisher. The server's RSS (`--server-pid`) is read before the first and
//!    after the warm-up below.
//! 3. Warm-up publications (numbered from 0, one at a time, a new one every 2 s)
//!    until one reaches every subscriber: the server has registered them all. Up
//!    to that one, subscribers only require increasing numbers; from the next on,
//!    the strict checks above.
//! 4. `--warmup` seconds of load (checked, not measured), then `--duration`
//!    seconds measured:
//!    - throughput (default): at most `--in-flight` W publications in flight (one
//!      is in flight until every subscriber got it), as fast as they complete;
//!    - latency (`--rate R`): R publications per second on a fixed schedule (open
//!      loop), whatever the deliveries do.
//! 5. Publishing stops; the run waits for every publication to reach every
//!    subscriber, giving up after `--stall` seconds without any delivery or
//!    `--drain` seconds in all (`stalled=yes`); what never came is counted as
//!    `undelivered`. In throughput mode, `--stall` seconds without any delivery
//!    while publications are in flight end the load early.
//!
//! The server's CPU time (utime + stime of `/proc/PID/stat`, all threads) is read
//! at both ends of the measured window, as is the generator's own
//! (`getrusage`): `loadgen_cpu_pct` near 100 means the generator, not the server,
//! was the limit, and the line says `loadgen_saturated=yes`.
//!
//! # Several servers (the Redis backplane, `scripts/bench-backplane.sh`)
//!
//! `--url` may be given several times: subscriber `i` connects to the
//! `i % URLS`-th URL; the publisher connects to `--publisher-url` (by default the
//! first URL). `--server-pid` may be given several times: `server_cpu_s` is the sum
//! of their CPU times (each in `server_cpu_s_each`), the RSS figures the sum of their
//! RSS. Deliveries to subscribers on another server than the publisher's are also
//! counted apart (`remote_deliveries_per_sec`, `remote_p50_us`, `remote_p99_us`):
//! the cross-server path.
//!
//! # A fixed number of publications (`--count C`)
//!
//! Instead of `--duration` seconds, exactly C publications (at most `--in-flight`
//! in flight), with no `--warmup`: the measured window runs from the first of them
//! to the moment the last reached every subscriber. `join_all_s` is the time from
//! the first connection to the moment every subscriber was known to be in the room
//! (the warm-up publication reached all, or with `--chat`, every join answered).
//!
//! # The chat protocol (`--chat ROOM`)
//!
//! The chat example's JSON protocol (`examples/hub.rs`), instead of the plain room:
//! each subscriber, once its handshake is done, sends
//! `{"type":"join","room":ROOM,"name":"sN"}` (N its number) and waits for the
//! text message whose `type` is `joined` (its time from the join to the answer is
//! its join time: `join_max_s` is the longest); the publisher joins as `publisher`
//! and says each payload as `{"type":"say","room":ROOM,"text":PAYLOAD}`. A
//! subscriber takes the `text` of each `{"type":"message",...}` it gets as the
//! payload (checked as above); other text messages (member lists and changes,
//! the publisher's own messages) are counted (`member_frames`); an `error` is an
//! error. There is no warm-up: a joined subscriber gets every message said after
//! its answer, from the first.
//!
//! A subscriber whose connection the server closes (a Close frame, or the end of
//! the stream) is counted in `closed`, and fails the run like any error.
//!
//! # Output: one line on stdout
//!
//! `mode=throughput subscribers=10000 size=20 in_flight=4 rate=0 secs=5.00
//! publications=... deliveries=... deliveries_per_sec=... server_cpu_s=...
//! deliveries_per_server_cpu_s=... rss_before_kib=... rss_after_kib=...
//! mem_per_sub_kib=... p50_us=... p99_us=... p999_us=... max_us=...
//! frames_per_read=... loadgen_cpu_pct=... loadgen_ns_per_delivery=...
//! loadgen_saturated=no stalled=no undelivered=0 missing=0 duplicate=0
//! out_of_order=0 corrupt=0 errors=0 status=ok`
//!
//! Rates and latencies cover the measured window (latencies: deliveries of the
//! publications sent in it, wherever they arrive); the error counts cover the
//! whole run. Any error makes it `status=FAILED`, a message on stderr, and exit
//! code 1. Values that need `--server-pid` are `na` without it.
//!
//! The checks are themselves checked against `raw_fanout --fault drop|dup|reorder`
//! (the 50th publication withheld from, doubled for, or delayed past the 51st
//! for one subscriber): each run ends `status=FAILED` with `missing=1`,
//! `duplicate=1`, or `missing=1 out_of_order=1`.
//!
//! The frame code is written from RFC 6455, independently of the library under
//! test. It is built to stay far below the servers' cost: one current-thread
//! runtime, one read buffer shared by all subscribers (reads never hold it across
//! an await), frames parsed in place, no allocation per message.

use std::{
    cell::RefCell,
    io::{self, Read, Write},
    net::SocketAddr,
    os::fd::{AsRawFd, FromRawFd, OwnedFd},
    rc::Rc,
    time::{Duration, Instant},
};

use base64::Engine;
use sha1::{Digest, Sha1};
use tokio::{
    io::{unix::AsyncFd, AsyncReadExt, AsyncWriteExt, Interest},
    net::TcpStream,
    sync::{mpsc, Notify, Semaphore},
    task::LocalSet,
};

const USAGE: &str = "\
usage: wsd-hubload [--url ws://127.0.0.1:9001/ws ...] [--publisher-url URL]
                   [-n SUBSCRIBERS=10000] [-s SIZE=20]
                   [-k IN_FLIGHT=4 | --rate PUBLICATIONS_PER_SEC]
                   [-d SECONDS=5 | --count PUBLICATIONS] [--warmup SECONDS=1]
                   [--chat ROOM] [--server-pid PID ...]
                   [--handshakes CONCURRENT=256] [--stall SECONDS=10] [--drain SECONDS=60]
throughput mode by default (at most IN_FLIGHT publications in flight);
--rate R: latency mode (R publications per second; the usual R is 20)";

#[derive(Debug, Clone)]
struct Args {
    /// Where subscribers connect, in turn (at least one).
    urls: Vec<(SocketAddr, String)>,
    /// Where the publisher connects.
    publisher: (SocketAddr, String),
    subscribers: usize,
    size: usize,
    in_flight: usize,
    rate: Option<f64>,
    duration: f64,
    warmup: f64,
    server_pids: Vec<u32>,
    handshakes: usize,
    stall: f64,
    drain: f64,
    /// Exactly this many measured publications (instead of `duration`).
    count: Option<u64>,
    /// The chat protocol, in this room.
    chat: Option<String>,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        urls: Vec::new(),
        publisher: ("127.0.0.1:9001".parse().unwrap(), "/ws".into()),
        subscribers: 10_000,
        size: 20,
        in_flight: 4,
        rate: None,
        duration: 5.0,
        warmup: 1.0,
        server_pids: Vec::new(),
        handshakes: 256,
        stall: 10.0,
        drain: 60.0,
        count: None,
        chat: None,
    };
    let mut it = std::env::args().skip(1);
    fn num<T: std::str::FromStr>(v: Option<String>, name: &str) -> Result<T, String> {
        v.ok_or(format!("{name} needs a value"))?
            .parse()
            .map_err(|_| format!("{name}: not a number"))
    }
    fn url(v: Option<String>, name: &str) -> Result<(SocketAddr, String), String> {
        let url = v.ok_or(format!("{name} needs a value"))?;
        let rest = url
            .strip_prefix("ws://")
            .ok_or("only ws:// URLs (loopback benchmarks)")?;
        let (host, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/ws"),
        };
        let addr = host
            .parse()
            .map_err(|_| format!("{name}: host must be IP:PORT"))?;
        Ok((addr, path.into()))
    }
    let mut publisher = None;
    while let Some(a) = it.next() {
        match a.as_str() {
            "--url" => args.urls.push(url(it.next(), &a)?),
            "--publisher-url" => publisher = Some(url(it.next(), &a)?),
            "-n" | "--subscribers" => args.subscribers = num(it.next(), &a)?,
            "-s" | "--size" => args.size = num(it.next(), &a)?,
            "-k" | "--in-flight" => args.in_flight = num(it.next(), &a)?,
            "--rate" => args.rate = Some(num(it.next(), &a)?),
            "-d" | "--duration" => args.duration = num(it.next(), &a)?,
            "--warmup" => args.warmup = num(it.next(), &a)?,
            "--server-pid" => args.server_pids.push(num(it.next(), &a)?),
            "--handshakes" => args.handshakes = num(it.next(), &a)?,
            "--stall" => args.stall = num(it.next(), &a)?,
            "--drain" => args.drain = num(it.next(), &a)?,
            "--count" => args.count = Some(num(it.next(), &a)?),
            "--chat" => {
                let room: String = it.next().ok_or("--chat needs ROOM")?;
                if room.is_empty() || !room.bytes().all(|b| b.is_ascii_alphanumeric()) {
                    return Err("--chat: the room is letters and digits".into());
                }
                args.chat = Some(room);
            }
            "-h" | "--help" => return Err(USAGE.into()),
            other => return Err(format!("unknown argument {other:?}\n{USAGE}")),
        }
    }
    if args.urls.is_empty() {
        args.urls.push(args.publisher.clone());
    }
    args.publisher = publisher.unwrap_or_else(|| args.urls[0].clone());
    if args.subscribers == 0 || args.in_flight == 0 || args.handshakes == 0 {
        return Err("subscribers, in-flight and handshakes must be at least 1".into());
    }
    if !(20..=65_536).contains(&args.size) {
        return Err("size must be in [20, 65536] bytes (20: time and sequence number)".into());
    }
    if let Some(r) = args.rate {
        if !(r > 0.0 && r <= 1_000_000.0) {
            return Err("rate must be in (0, 1e6] publications per second".into());
        }
    }
    let in_range = |v: f64, low: f64, high: f64| v > low && v <= high;
    if !in_range(args.duration, 0.0, 600.0)
        || !in_range(args.stall, 0.0, 120.0)
        || !in_range(args.drain, 0.0, 600.0)
    {
        return Err(
            "duration must be in (0, 600] s, stall in (0, 120] s, drain in (0, 600] s".into(),
        );
    }
    if !(0.0..=60.0).contains(&args.warmup) {
        return Err("warmup must be in [0, 60] s".into());
    }
    if let Some(count) = args.count {
        if count == 0 || count > 1_000_000 || args.rate.is_some() {
            return Err("--count must be in [1, 1e6], in throughput mode".into());
        }
        args.warmup = 0.0;
    }
    Ok(args)
}

/// xorshift64*: cheap mask keys.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

/// Append one masked client frame (FIN, `opcode`) carrying `payload`.
fn push_frame(out: &mut Vec<u8>, opcode: u8, payload: &[u8], rng: &mut Rng) {
    out.push(0x80 | opcode);
    let len = payload.len();
    if len < 126 {
        out.push(0x80 | len as u8);
    } else if len <= 0xffff {
        out.push(0x80 | 126);
        out.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        out.push(0x80 | 127);
        out.extend_from_slice(&(len as u64).to_be_bytes());
    }
    let key = (rng.next() as u32).to_ne_bytes();
    out.extend_from_slice(&key);
    let start = out.len();
    out.extend_from_slice(payload);
    let wide = u64::from_ne_bytes([
        key[0], key[1], key[2], key[3], key[0], key[1], key[2], key[3],
    ]);
    let mut chunks = out[start..].chunks_exact_mut(8);
    for c in &mut chunks {
        let v = u64::from_ne_bytes((&*c).try_into().unwrap()) ^ wide;
        c.copy_from_slice(&v.to_ne_bytes());
    }
    for (i, b) in chunks.into_remainder().iter_mut().enumerate() {
        *b ^= key[i & 3];
    }
}

/// A server frame at the front of a buffer.
struct Frame {
    opcode: u8,
    /// Offset of the payload.
    head: usize,
    /// Length of the whole frame.
    total: usize,
}

/// Parse one unmasked server frame off the front of `buf` (`Ok(None)`: incomplete).
/// Fragments, reserved bits, masks and frames over `max` bytes of payload are
/// protocol errors here: no server of this protocol sends them.
fn parse_frame(buf: &[u8], max: usize) -> io::Result<Option<Frame>> {
    if buf.len() < 2 {
        return Ok(None);
    }
    if buf[0] & 0x70 != 0 {
        return Err(io::Error::other(
            "server frame with RSV bits (no extension was negotiated)",
        ));
    }
    if buf[0] & 0x80 == 0 || buf[0] & 0x0f == 0 {
        return Err(io::Error::other(
            "fragmented server message (none expected)",
        ));
    }
    if buf[1] & 0x80 != 0 {
        return Err(io::Error::other("server frame is masked"));
    }
    let (len, head) = match buf[1] & 0x7f {
        126 => {
            if buf.len() < 4 {
                return Ok(None);
            }
            (u16::from_be_bytes([buf[2], buf[3]]) as usize, 4)
        }
        127 => {
            if buf.len() < 10 {
                return Ok(None);
            }
            let n = u64::from_be_bytes(buf[2..10].try_into().unwrap());
            (n.min(u64::MAX >> 1) as usize, 10)
        }
        n => (n as usize, 2),
    };
    if len > max {
        return Err(io::Error::other(format!(
            "server frame of {len} bytes (at most {max} expected)"
        )));
    }
    if buf.len() < head + len {
        return Ok(None);
    }
    Ok(Some(Frame {
        opcode: buf[0] & 0x0f,
        head,
        total: head + len,
    }))
}

async fn handshake(
    addr: SocketAddr,
    path: &str,
    rng: &mut Rng,
) -> io::Result<(TcpStream, Vec<u8>)> {
    let mut stream = TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    // Closed with a reset when the run ends: no TIME_WAIT left on 10,000 local
    // ports from one run to the next.
    stream.set_zero_linger()?;
    let mut key_bytes = [0u8; 16];
    key_bytes[..8].copy_from_slice(&rng.next().to_ne_bytes());
    key_bytes[8..].copy_from_slice(&rng.next().to_ne_bytes());
    let b64 = base64::engine::general_purpose::STANDARD;
    let key = b64.encode(key_bytes);
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await?;
    let mut buf = Vec::with_capacity(512);
    let end = loop {
        if buf.len() > 16 * 1024 {
            return Err(io::Error::other("handshake response over 16 KiB"));
        }
        let mut chunk = [0u8; 1024];
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Err(io::Error::other("connection closed during the handshake"));
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
    };
    let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
    if !head.starts_with("http/1.1 101") {
        return Err(io::Error::other(format!(
            "handshake refused: {}",
            head.lines().next().unwrap_or("")
        )));
    }
    let mut sha = Sha1::new();
    sha.update(key.as_bytes());
    sha.update(b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11");
    let accept = b64.encode(sha.finalize()).to_ascii_lowercase();
    if !head.contains(&format!("sec-websocket-accept: {accept}")) {
        return Err(io::Error::other("wrong Sec-WebSocket-Accept"));
    }
    if head.contains("sec-websocket-extensions") {
        return Err(io::Error::other(
            "the server negotiated an extension (none was offered)",
        ));
    }
    Ok((stream, buf.split_off(end)))
}

/// The largest frame payload in the chat protocol (member lists included).
const CHAT_MAX: usize = 64 * 1024;

/// An error that means the server closed the connection (counted in `closed`).
fn closed_by_server(what: String) -> io::Error {
    io::Error::new(io::ErrorKind::ConnectionAborted, what)
}

/// The chat protocol's join: send `join`, then read until the `joined` answer
/// (Pings answered, other text messages skipped). Returns what came after it.
async fn join_room(
    stream: &mut TcpStream,
    mut buf: Vec<u8>,
    join: &str,
    rng: &mut Rng,
) -> io::Result<Vec<u8>> {
    let mut out = Vec::new();
    push_frame(&mut out, 1, join.as_bytes(), rng);
    stream.write_all(&out).await?;
    loop {
        let mut at = 0;
        out.clear();
        while let Some(f) = parse_frame(&buf[at..], CHAT_MAX)? {
            let body = &buf[at + f.head..at + f.total];
            at += f.total;
            match f.opcode {
                1 if body.starts_with(b"{\"type\":\"joined\"") => {
                    stream.write_all(&out).await?;
                    return Ok(buf.split_off(at));
                }
                1 if body.starts_with(b"{\"type\":\"error\"") => {
                    return Err(io::Error::other(format!(
                        "join refused: {}",
                        String::from_utf8_lossy(body)
                    )))
                }
                9 => push_frame(&mut out, 10, body, rng),
                8 => return Err(closed_by_server("server sent Close while joining".into())),
                _ => {}
            }
        }
        stream.write_all(&out).await?;
        buf.drain(..at);
        let mut chunk = [0u8; 4096];
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Err(closed_by_server("server closed while joining".into()));
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// What a text message of the chat protocol is.
enum ChatText<'a> {
    /// A `message`: its `text`.
    Message(&'a [u8]),
    /// An `error`.
    Error,
    /// Anything else (member lists, changes).
    Other,
}

fn chat_text(body: &[u8]) -> ChatText<'_> {
    const MESSAGE: &[u8] = b"{\"type\":\"message\"";
    const TEXT: &[u8] = b"\"text\":\"";
    if body.starts_with(MESSAGE) {
        // The payload is hex digits and 'x': never escaped, no quote in it.
        let Some(i) = body.windows(TEXT.len()).position(|w| w == TEXT) else {
            return ChatText::Message(b"");
        };
        let text = &body[i + TEXT.len()..];
        let end = text.iter().position(|&b| b == b'"').unwrap_or(0);
        ChatText::Message(&text[..end])
    } else if body.starts_with(b"{\"type\":\"error\"") {
        ChatText::Error
    } else {
        ChatText::Other
    }
}

/// A log-linear histogram: exact below 128, then 128 buckets per power of two
/// (a value is known to within 1/256 of itself, reported at its bucket's middle).
struct Histogram {
    counts: Vec<u64>,
    total: u64,
    max: u64,
}

const SUB_BITS: u32 = 7;
const SUB: usize = 1 << SUB_BITS;

impl Histogram {
    fn new() -> Self {
        Histogram {
            counts: vec![0; (64 - SUB_BITS as usize + 1) * SUB],
            total: 0,
            max: 0,
        }
    }

    fn index(v: u64) -> usize {
        if v < SUB as u64 {
            v as usize
        } else {
            let shift = 63 - v.leading_zeros() - SUB_BITS;
            (shift as usize + 1) * SUB + ((v >> shift) as usize - SUB)
        }
    }

    fn middle(i: usize) -> u64 {
        if i < SUB {
            i as u64
        } else {
            let shift = (i / SUB - 1) as u32;
            let low = ((i % SUB + SUB) as u64) << shift;
            low + ((1u64 << shift) - 1) / 2
        }
    }

    #[inline]
    fn record(&mut self, v: u64) {
        self.counts[Self::index(v)] += 1;
        self.total += 1;
        self.max = self.max.max(v);
    }

    fn percentile(&self, p: f64) -> u64 {
        if self.total == 0 {
            return 0;
        }
        let rank = ((p * self.total as f64).ceil() as u64).clamp(1, self.total);
        let mut seen = 0;
        for (i, &c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return Self::middle(i).min(self.max);
            }
        }
        self.max
    }
}

const HEX: &[u8; 16] = b"0123456789abcdef";
static PAD: [u8; 65_536] = [b'x'; 65_536];
const TIME_DIGITS: usize = 12;
const SEQ_DIGITS: usize = 8;

fn write_hex(out: &mut [u8], mut v: u64) {
    for b in out.iter_mut().rev() {
        *b = HEX[(v & 15) as usize];
        v >>= 4;
    }
}

#[inline]
fn read_hex(digits: &[u8]) -> Option<u64> {
    let mut v = 0u64;
    for &c in digits {
        let d = match c {
            b'0'..=b'9' => c - b'0',
            b'a'..=b'f' => c - b'a' + 10,
            _ => return None,
        };
        v = (v << 4) | d as u64;
    }
    Some(v)
}

/// What the subscribers and the publisher share (one thread: `RefCell`).
struct Shared {
    origin: Instant,
    subscribers: u32,
    size: usize,
    /// The chat protocol.
    chat: bool,
    st: RefCell<State>,
    /// Per subscriber: connected to another server than the publisher.
    remote: Vec<bool>,
    /// Woken when a publication has reached every subscriber.
    progress: Notify,
}

#[derive(Default)]
struct State {
    /// Per publication: its send time (ns since `origin`), as in its payload.
    sent_ns: Vec<u64>,
    /// Per publication: how many subscribers got it.
    got: Vec<u32>,
    /// Per subscriber: the next number it expects.
    expected: Vec<u32>,
    /// The first number checked strictly (`u32::MAX` during the warm-up).
    strict_from: u32,
    /// The first number whose latencies are recorded (`u32::MAX` before the window).
    measure_from: u32,
    /// Publications from `strict_from` on that reached every subscriber.
    completed: u64,
    /// When the last delivery came (ns since the origin).
    last_delivery_ns: u64,
    /// Deliveries of publications from `strict_from` on.
    deliveries: u64,
    reads: u64,
    missing: u64,
    duplicate: u64,
    out_of_order: u64,
    corrupt: u64,
    first_corrupt: Option<String>,
    errors: u64,
    first_error: Option<String>,
    /// Subscribers the server closed.
    closed: u64,
    /// Text messages of the chat protocol that were not publications.
    member_frames: u64,
    hist: Option<Histogram>,
    /// Deliveries (as `deliveries`) and latencies of subscribers on another server.
    remote_deliveries: u64,
    remote_hist: Option<Histogram>,
}

impl Shared {
    /// The instant `ns` nanoseconds after the origin.
    fn at(&self, ns: u64) -> Instant {
        self.origin + Duration::from_nanos(ns)
    }
}

impl State {
    fn error(&mut self, what: String) {
        self.errors += 1;
        self.first_error.get_or_insert(what);
    }

    fn corrupt(&mut self, sub: usize, what: &str) {
        self.corrupt += 1;
        self.first_corrupt
            .get_or_insert_with(|| format!("subscriber {sub}: {what}"));
    }

    /// One text message received by subscriber `sub` at `now_ns`.
    #[inline]
    fn deliver(&mut self, shared: &Shared, sub: usize, payload: &[u8], now_ns: u64) {
        if payload.len() != shared.size {
            return self.corrupt(
                sub,
                &format!("{} bytes instead of {}", payload.len(), shared.size),
            );
        }
        let (Some(time_us), Some(seq)) = (
            read_hex(&payload[..TIME_DIGITS]),
            read_hex(&payload[TIME_DIGITS..TIME_DIGITS + SEQ_DIGITS]),
        ) else {
            return self.corrupt(sub, "time or sequence number is not lowercase hex");
        };
        let seq = seq as u32;
        let Some(&sent) = self.sent_ns.get(seq as usize) else {
            return self.corrupt(sub, &format!("publication {seq} was never sent"));
        };
        if sent / 1000 != time_us {
            return self.corrupt(sub, &format!("publication {seq}: wrong send time"));
        }
        if payload[TIME_DIGITS + SEQ_DIGITS..] != PAD[..shared.size - TIME_DIGITS - SEQ_DIGITS] {
            return self.corrupt(sub, &format!("publication {seq}: padding altered"));
        }
        let expected = self.expected[sub];
        if seq < self.strict_from {
            // Warm-up: a subscriber the server had not registered yet misses some.
            if seq < expected {
                self.out_of_order += 1;
                return;
            }
        } else if seq != expected {
            if seq > expected {
                self.missing += (seq - expected) as u64;
            } else {
                if seq + 1 == expected {
                    self.duplicate += 1;
                } else {
                    self.out_of_order += 1;
                }
                return;
            }
        }
        self.expected[sub] = seq + 1;
        let got = &mut self.got[seq as usize];
        *got += 1;
        let complete = *got == shared.subscribers;
        if seq >= self.strict_from {
            self.deliveries += 1;
            let remote = shared.remote[sub];
            self.remote_deliveries += remote as u64;
            if seq >= self.measure_from {
                let latency = now_ns.saturating_sub(sent);
                if let Some(h) = &mut self.hist {
                    h.record(latency);
                }
                if remote {
                    if let Some(h) = &mut self.remote_hist {
                        h.record(latency);
                    }
                }
            }
            if complete {
                self.completed += 1;
            }
        }
        self.last_delivery_ns = now_ns;
        if complete {
            shared.progress.notify_one();
        }
    }
}

/// A subscriber's answers to Pings, and the mask keys for them.
struct Pongs {
    out: Vec<u8>,
    rng: Rng,
}

/// Frames of `buf` for subscriber `sub`: deliveries and Pings (answered into
/// `pongs`). Returns how many bytes were consumed (the rest is an incomplete frame).
fn on_bytes(
    shared: &Shared,
    st: &mut State,
    sub: usize,
    buf: &[u8],
    now_ns: u64,
    pongs: &mut Pongs,
) -> io::Result<usize> {
    let max = max_payload(shared.size, shared.chat);
    let mut at = 0;
    while let Some(f) = parse_frame(&buf[at..], max)? {
        let body = &buf[at + f.head..at + f.total];
        match f.opcode {
            1 if shared.chat => match chat_text(body) {
                ChatText::Message(payload) => st.deliver(shared, sub, payload, now_ns),
                ChatText::Error => st.error(format!(
                    "subscriber {sub}: {}",
                    String::from_utf8_lossy(body)
                )),
                ChatText::Other => st.member_frames += 1,
            },
            1 => st.deliver(shared, sub, body, now_ns),
            9 => push_frame(&mut pongs.out, 10, body, &mut pongs.rng),
            10 => {}
            8 => {
                let code = if body.len() >= 2 {
                    u16::from_be_bytes([body[0], body[1]])
                } else {
                    1005
                };
                return Err(closed_by_server(format!("server sent Close ({code})")));
            }
            2 => st.corrupt(sub, "binary message (text expected)"),
            op => return Err(io::Error::other(format!("unknown opcode {op}"))),
        }
        at += f.total;
    }
    Ok(at)
}

/// The biggest frame payload accepted (a delivery or a control frame).
fn max_payload(size: usize, chat: bool) -> usize {
    if chat {
        CHAT_MAX
    } else {
        size.max(125)
    }
}

/// All subscribers, read by one task: their sockets are in an epoll set of their
/// own, whose descriptor the runtime watches (`AsyncFd`). A ready socket is read
/// into the one buffer until it is drained and its frames handled in place; only an
/// incomplete frame's bytes are kept per subscriber. No task, waker or buffer per
/// subscriber: a read costs about its system call.
struct Subscribers {
    epoll: OwnedFd,
    socks: Vec<Option<std::net::TcpStream>>,
    leftover: Vec<Vec<u8>>,
    pongs: Pongs,
    buf: Vec<u8>,
    /// Bytes kept in front of each read in `buf`, for an incomplete frame.
    room: usize,
}

impl Subscribers {
    fn new(n: usize, size: usize, chat: bool) -> io::Result<Self> {
        let fd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        let room = max_payload(size, chat) + 14;
        Ok(Subscribers {
            // SAFETY: a new descriptor, owned from here on.
            epoll: unsafe { OwnedFd::from_raw_fd(fd) },
            socks: (0..n).map(|_| None).collect(),
            leftover: vec![Vec::new(); n],
            pongs: Pongs {
                out: Vec::new(),
                rng: Rng(0x9e37_79b9_7f4a_7c15),
            },
            buf: vec![0u8; room + 64 * 1024],
            room,
        })
    }

    /// Take subscriber `sub`'s connection (after its handshake; `rest`: what came
    /// after the response) into the epoll set (edge-triggered: `drain` reads until
    /// a short read or `WouldBlock`).
    fn add(
        &mut self,
        shared: &Shared,
        sub: usize,
        stream: TcpStream,
        rest: Vec<u8>,
    ) -> io::Result<()> {
        let stream = stream.into_std()?;
        let mut ev = libc::epoll_event {
            events: libc::EPOLLIN as u32 | libc::EPOLLRDHUP as u32 | libc::EPOLLET as u32,
            u64: sub as u64,
        };
        let r = unsafe {
            libc::epoll_ctl(
                self.epoll.as_raw_fd(),
                libc::EPOLL_CTL_ADD,
                stream.as_raw_fd(),
                &mut ev,
            )
        };
        if r != 0 {
            return Err(io::Error::last_os_error());
        }
        self.socks[sub] = Some(stream);
        if !rest.is_empty() {
            // Frames that came with the handshake's response.
            let now_ns = shared.origin.elapsed().as_nanos() as u64;
            let mut st = shared.st.borrow_mut();
            let used = on_bytes(shared, &mut st, sub, &rest, now_ns, &mut self.pongs)?;
            self.leftover[sub].extend_from_slice(&rest[used..]);
            drop(st);
            self.send_pongs(sub)?;
        }
        Ok(())
    }

    /// Read subscriber `sub` until its socket is drained.
    fn drain(&mut self, shared: &Shared, sub: usize) -> io::Result<()> {
        let room = self.room;
        loop {
            let Some(sock) = self.socks[sub].as_ref() else {
                return Ok(());
            };
            let n = match (&*sock).read(&mut self.buf[room..]) {
                Ok(0) => return Err(closed_by_server("server closed the connection".into())),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            let leftover = &mut self.leftover[sub];
            let begin = room - leftover.len();
            self.buf[begin..room].copy_from_slice(leftover);
            let now_ns = shared.origin.elapsed().as_nanos() as u64;
            let mut st = shared.st.borrow_mut();
            st.reads += 1;
            let data = &self.buf[begin..room + n];
            let used = on_bytes(shared, &mut st, sub, data, now_ns, &mut self.pongs)?;
            leftover.clear();
            leftover.extend_from_slice(&data[used..]);
            drop(st);
            if !self.pongs.out.is_empty() {
                self.send_pongs(sub)?;
            }
            if room + n < self.buf.len() {
                return Ok(()); // a short read: the socket is drained
            }
        }
    }

    /// Write the Pongs queued for `sub`. A subscriber sends nothing else, so its
    /// send buffer has room: not writing them at once is an error.
    fn send_pongs(&mut self, sub: usize) -> io::Result<()> {
        if let Some(sock) = self.socks[sub].as_ref() {
            match (&*sock).write(&self.pongs.out) {
                Ok(n) if n == self.pongs.out.len() => {}
                Ok(_) | Err(_) => return Err(io::Error::other("could not write a Pong at once")),
            }
        }
        self.pongs.out.clear();
        Ok(())
    }

    /// Drop a failed subscriber (its missing deliveries are counted at the end).
    fn remove(&mut self, sub: usize) {
        if let Some(sock) = self.socks[sub].take() {
            unsafe {
                libc::epoll_ctl(
                    self.epoll.as_raw_fd(),
                    libc::EPOLL_CTL_DEL,
                    sock.as_raw_fd(),
                    std::ptr::null_mut(),
                )
            };
        }
    }

    /// The reading task: ready sockets, 1024 at a time; after 8 such batches it
    /// yields, so that the publisher runs even when deliveries never stop.
    async fn run(mut self, shared: Rc<Shared>) {
        let mut events = vec![libc::epoll_event { events: 0, u64: 0 }; 1024];
        let epfd = self.epoll.as_raw_fd();
        // SAFETY: `self.epoll` owns the descriptor and outlives `watch`.
        let watch = match unsafe { AsyncFd::register_with_interest(epfd, Interest::READABLE) } {
            Ok(w) => w,
            Err(e) => {
                shared
                    .st
                    .borrow_mut()
                    .error(format!("subscribers' epoll: {e}"));
                return;
            }
        };
        loop {
            let mut guard = match watch.readable().await {
                Ok(g) => g,
                Err(e) => {
                    shared
                        .st
                        .borrow_mut()
                        .error(format!("subscribers' epoll: {e}"));
                    return;
                }
            };
            let mut batches = 0;
            loop {
                let n = unsafe {
                    libc::epoll_wait(
                        guard.get_inner().as_raw_fd(),
                        events.as_mut_ptr(),
                        events.len() as i32,
                        0,
                    )
                };
                if n < 0 {
                    let e = io::Error::last_os_error();
                    if e.kind() == io::ErrorKind::Interrupted {
                        continue;
                    }
                    shared
                        .st
                        .borrow_mut()
                        .error(format!("subscribers' epoll_wait: {e}"));
                    return;
                }
                if n == 0 {
                    guard.clear_ready();
                    break;
                }
                for ev in &events[..n as usize] {
                    let sub = ev.u64 as usize;
                    if let Err(e) = self.drain(&shared, sub) {
                        let mut st = shared.st.borrow_mut();
                        if e.kind() == io::ErrorKind::ConnectionAborted {
                            st.closed += 1;
                        }
                        st.error(format!("subscriber {sub}: {e}"));
                        drop(st);
                        self.remove(sub);
                    }
                }
                batches += 1;
                if batches == 8 {
                    break;
                }
            }
            if batches == 8 {
                drop(guard);
                tokio::task::yield_now().await;
            }
        }
    }
}

/// The publishing connection.
struct Publisher {
    stream: TcpStream,
    rbuf: Vec<u8>,
    wbuf: Vec<u8>,
    payload: Vec<u8>,
    /// With the chat protocol: what goes before the payload (`{"type":"say",...`).
    say: Vec<u8>,
    rng: Rng,
    shared: Rc<Shared>,
}

impl Publisher {
    /// Queue publication number `sent_ns.len()`, sent at `at` (ns since the origin).
    fn queue(&mut self, at_ns: u64) -> u32 {
        let mut st = self.shared.st.borrow_mut();
        let seq = st.sent_ns.len() as u32;
        st.sent_ns.push(at_ns);
        st.got.push(0);
        drop(st);
        self.payload.clear();
        self.payload.extend_from_slice(&self.say);
        let at = self.payload.len();
        self.payload.extend_from_slice(&PAD[..self.shared.size]);
        write_hex(&mut self.payload[at..at + TIME_DIGITS], at_ns / 1000);
        write_hex(
            &mut self.payload[at + TIME_DIGITS..at + TIME_DIGITS + SEQ_DIGITS],
            seq as u64,
        );
        if !self.say.is_empty() {
            self.payload.extend_from_slice(b"\"}");
        }
        push_frame(&mut self.wbuf, 1, &self.payload, &mut self.rng);
        seq
    }

    async fn flush(&mut self) -> io::Result<()> {
        if !self.wbuf.is_empty() {
            self.stream.write_all(&self.wbuf).await?;
            self.wbuf.clear();
        }
        Ok(())
    }

    /// What the server sent the publisher: Pings are answered; anything else is an
    /// error (the publisher must not get its own publications back), but with the
    /// chat protocol, where only an `error` is.
    fn on_readable(&mut self) -> io::Result<()> {
        let mut chunk = [0u8; 4096];
        loop {
            match self.stream.try_read(&mut chunk) {
                Ok(0) => return Err(io::Error::other("server closed the publisher's connection")),
                Ok(n) => self.rbuf.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => return Err(e),
            }
        }
        let mut at = 0;
        let max = max_payload(self.shared.size, self.shared.chat);
        while let Some(f) = parse_frame(&self.rbuf[at..], max)? {
            let body = &self.rbuf[at + f.head..at + f.total];
            match f.opcode {
                1 if self.shared.chat => {
                    if let ChatText::Error = chat_text(body) {
                        return Err(io::Error::other(format!(
                            "the publisher got {}",
                            String::from_utf8_lossy(body)
                        )));
                    }
                }
                9 => {
                    let body = self.rbuf[at + f.head..at + f.total].to_vec();
                    push_frame(&mut self.wbuf, 10, &body, &mut self.rng);
                }
                10 => {}
                8 => {
                    return Err(io::Error::other(
                        "server closed the publisher (Close frame)",
                    ))
                }
                _ => {
                    return Err(io::Error::other(
                        "the publisher received a message: the server echoes to the sender",
                    ))
                }
            }
            at += f.total;
        }
        self.rbuf.drain(..at);
        Ok(())
    }

    /// Wait until `deadline`, a publication's completion, or a Ping (answered).
    async fn wait(&mut self, deadline: Instant) -> io::Result<()> {
        tokio::select! {
            _ = self.shared.progress.notified() => {}
            _ = tokio::time::sleep_until(deadline.into()) => {}
            r = self.stream.readable() => { r?; self.on_readable()?; }
        }
        self.flush().await
    }

    fn now_ns(&self) -> u64 {
        self.shared.origin.elapsed().as_nanos() as u64
    }
}

/// utime + stime of a process, in seconds (all its threads).
fn proc_cpu_s(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    Some(ticks as f64 / if hz > 0 { hz as f64 } else { 100.0 })
}

fn proc_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn own_cpu_s() -> f64 {
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

/// Raise the soft descriptor limit to the hard one; fail if `need` do not fit.
fn raise_fd_limit(need: u64) -> io::Result<()> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return Err(io::Error::last_os_error());
    }
    if lim.rlim_cur < lim.rlim_max {
        lim.rlim_cur = lim.rlim_max;
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) } != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    if lim.rlim_cur < need {
        return Err(io::Error::other(format!(
            "{need} file descriptors needed, the limit is {} (hard {})",
            lim.rlim_cur, lim.rlim_max
        )));
    }
    Ok(())
}

/// A snapshot at one end of the measured window.
struct Mark {
    at: Instant,
    deliveries: u64,
    remote_deliveries: u64,
    reads: u64,
    /// Each server's CPU time (`None`: no PID given, or one could not be read).
    server_cpu: Option<Vec<f64>>,
    own_cpu: f64,
}

fn mark(shared: &Shared, pids: &[u32]) -> Mark {
    let st = shared.st.borrow();
    Mark {
        at: Instant::now(),
        deliveries: st.deliveries,
        remote_deliveries: st.remote_deliveries,
        reads: st.reads,
        server_cpu: if pids.is_empty() {
            None
        } else {
            pids.iter().map(|&p| proc_cpu_s(p)).collect()
        },
        own_cpu: own_cpu_s(),
    }
}

/// The servers' RSS summed (`None`: no PID given, or one could not be read).
fn rss_kib(pids: &[u32]) -> Option<u64> {
    if pids.is_empty() {
        return None;
    }
    pids.iter().map(|&p| proc_rss_kib(p)).sum()
}

fn bail_if_errors(shared: &Shared) -> io::Result<()> {
    let st = shared.st.borrow();
    match &st.first_error {
        Some(e) => Err(io::Error::other(format!(
            "{} connection errors, the first: {e}",
            st.errors
        ))),
        None => Ok(()),
    }
}

async fn run(args: Args) -> io::Result<bool> {
    let n = args.subscribers;
    raise_fd_limit(n as u64 + 64)?;
    let shared = Rc::new(Shared {
        origin: Instant::now(),
        subscribers: n as u32,
        size: args.size,
        chat: args.chat.is_some(),
        st: RefCell::new(State {
            expected: vec![0; n],
            strict_from: u32::MAX,
            measure_from: u32::MAX,
            hist: Some(Histogram::new()),
            remote_hist: Some(Histogram::new()),
            ..State::default()
        }),
        remote: (0..n)
            .map(|i| args.urls[i % args.urls.len()] != args.publisher)
            .collect(),
        progress: Notify::new(),
    });
    let rss_before = rss_kib(&args.server_pids);
    let cpu_before = mark(&shared, &args.server_pids).server_cpu;
    let mut subs = Subscribers::new(n, args.size, shared.chat)?;

    // Subscribers: handshakes (at most `--handshakes` at a time) and, with the chat
    // protocol, joins; then the socket goes to the reading task's epoll set.
    let gate = Rc::new(Semaphore::new(args.handshakes));
    type Opened = Result<(usize, TcpStream, Vec<u8>, f64), String>;
    let (opened, mut opens) = mpsc::unbounded_channel::<Opened>();
    let began = Instant::now();
    for sub in 0..n {
        let (gate, opened) = (gate.clone(), opened.clone());
        let (addr, path) = args.urls[sub % args.urls.len()].clone();
        let join = args
            .chat
            .as_ref()
            .map(|room| format!("{{\"type\":\"join\",\"room\":\"{room}\",\"name\":\"s{sub}\"}}"));
        tokio::task::spawn_local(async move {
            let mut rng = Rng(0x2545_f491_4f6c_dd1d ^ ((sub as u64 + 1) << 11));
            let conn = async {
                let (mut stream, rest) = {
                    let _permit = gate.acquire().await;
                    handshake(addr, &path, &mut rng).await?
                };
                let Some(join) = join else {
                    return Ok((stream, rest, 0.0));
                };
                let asked = Instant::now();
                let rest = join_room(&mut stream, rest, &join, &mut rng).await?;
                Ok::<_, io::Error>((stream, rest, asked.elapsed().as_secs_f64()))
            };
            let _ = opened.send(match conn.await {
                Ok((stream, rest, join_secs)) => Ok((sub, stream, rest, join_secs)),
                Err(e) => Err(format!("subscriber {sub}: {e}")),
            });
        });
    }
    drop(opened);
    let connect_deadline = began + Duration::from_secs(120);
    let mut open = 0;
    let mut join_max_secs = 0f64;
    while open < n {
        match tokio::time::timeout_at(connect_deadline.into(), opens.recv()).await {
            Ok(Some(Ok((sub, stream, rest, join_secs)))) => {
                subs.add(&shared, sub, stream, rest)?;
                join_max_secs = join_max_secs.max(join_secs);
                open += 1;
            }
            Ok(Some(Err(e))) => return Err(io::Error::other(format!("connecting: {e}"))),
            Ok(None) => return Err(io::Error::other("subscriber tasks ended")),
            Err(_) => {
                return Err(io::Error::other(format!(
                    "only {open} of {n} subscribers open after 120 s"
                )))
            }
        }
    }
    let reader = tokio::task::spawn_local(subs.run(shared.clone()));
    let connect_secs = began.elapsed().as_secs_f64();
    let mut prng = Rng(0x6a09_e667_f3bc_c909);
    let (mut stream, mut rest) = handshake(args.publisher.0, &args.publisher.1, &mut prng).await?;
    let mut say = Vec::new();
    if let Some(room) = &args.chat {
        let join = format!("{{\"type\":\"join\",\"room\":\"{room}\",\"name\":\"publisher\"}}");
        rest = join_room(&mut stream, rest, &join, &mut prng).await?;
        say = format!("{{\"type\":\"say\",\"room\":\"{room}\",\"text\":\"").into_bytes();
    }
    let mut publisher = Publisher {
        stream,
        rbuf: rest,
        wbuf: Vec::with_capacity(64 * 1024),
        payload: Vec::with_capacity(args.size + say.len() + 2),
        say,
        rng: prng,
        shared: shared.clone(),
    };

    // Warm-up publications, one at a time, until one reaches every subscriber
    // (with the chat protocol, every join was answered: none).
    let warm_deadline = Instant::now() + Duration::from_secs(30);
    let warm_seq = if shared.chat {
        None
    } else {
        Some(loop {
            let at = publisher.now_ns();
            let seq = publisher.queue(at);
            publisher.flush().await?;
            let retry = Instant::now() + Duration::from_secs(2);
            loop {
                bail_if_errors(&shared)?;
                if shared.st.borrow().got[seq as usize] == n as u32 {
                    break;
                }
                let now = Instant::now();
                if now >= retry || now >= warm_deadline {
                    break;
                }
                publisher.wait(retry.min(warm_deadline)).await?;
            }
            let got = shared.st.borrow().got[seq as usize];
            if got == n as u32 {
                break seq;
            }
            if Instant::now() >= warm_deadline {
                return Err(io::Error::other(format!(
                    "warm-up: after 30 s, publication {seq} reached only {got} of {n} subscribers"
                )));
            }
        })
    };
    let warm_count = warm_seq.map_or(0, |s| s + 1);
    shared.st.borrow_mut().strict_from = warm_count;
    let join_all_secs = began.elapsed().as_secs_f64();
    let warm_secs = join_all_secs - connect_secs;
    let join_cpu = mark(&shared, &args.server_pids).server_cpu;
    let rss_after = rss_kib(&args.server_pids);
    if shared.chat {
        eprintln!(
            "wsd-hubload: {n} subscribers joined in {connect_secs:.1} s (the slowest join answered in \
             {join_max_secs:.2} s)"
        );
    } else {
        eprintln!(
            "wsd-hubload: {n} subscribers open in {connect_secs:.1} s, warm-up delivered in {warm_secs:.1} s \
             ({warm_count} warm-up publications)"
        );
    }

    // Load: `--warmup` seconds unmeasured, then `--duration` seconds measured.
    let load_start = Instant::now();
    let window_start = load_start + Duration::from_secs_f64(args.warmup);
    // With `--count`, the window ends when the last publication is complete (the
    // drain's bound still applies).
    let end = window_start
        + match args.count {
            Some(_) => Duration::from_secs_f64(args.drain),
            None => Duration::from_secs_f64(args.duration),
        };
    let stall = Duration::from_secs_f64(args.stall);
    let mut start_mark: Option<Mark> = None;
    let mut stalled = false;
    let mut next_send = load_start;
    let interval = args.rate.map(|r| Duration::from_secs_f64(1.0 / r));
    shared.st.borrow_mut().last_delivery_ns =
        load_start.duration_since(shared.origin).as_nanos() as u64;
    loop {
        bail_if_errors(&shared)?;
        let now = Instant::now();
        if now >= end {
            break;
        }
        if start_mark.is_none() && now >= window_start {
            start_mark = Some(mark(&shared, &args.server_pids));
            let next = shared.st.borrow().sent_ns.len() as u32;
            shared.st.borrow_mut().measure_from = next;
        }
        let mut wake = if start_mark.is_none() {
            window_start.min(end)
        } else {
            end
        };
        match interval {
            None => {
                let (sent, completed, last) = {
                    let st = shared.st.borrow();
                    let sent = st.sent_ns.len() as u64 - st.strict_from as u64;
                    (sent, st.completed, shared.at(st.last_delivery_ns))
                };
                if sent - completed > 0 && now.saturating_duration_since(last) > stall {
                    // Reported like any run, with what never arrived counted.
                    eprintln!("wsd-hubload: {}", stall_report(&shared, args.stall));
                    stalled = true;
                    break;
                }
                let limit = args.count.unwrap_or(u64::MAX);
                if completed >= limit {
                    break;
                }
                let at = publisher.now_ns();
                for _ in sent - completed..(args.in_flight as u64).min(limit - completed) {
                    publisher.queue(at);
                }
                wake = wake.min(last + stall + Duration::from_millis(1));
            }
            Some(iv) => {
                // Open loop: each publication carries its scheduled time.
                while next_send <= now {
                    let at = next_send.duration_since(shared.origin).as_nanos() as u64;
                    publisher.queue(at);
                    next_send += iv;
                }
                wake = wake.min(next_send);
            }
        }
        publisher.flush().await?;
        publisher.wait(wake).await?;
    }
    let end_mark = mark(&shared, &args.server_pids);
    let start_mark = start_mark.unwrap_or_else(|| mark(&shared, &args.server_pids));

    // Drain: every publication must reach every subscriber, as long as deliveries
    // keep coming (at most `--drain` seconds).
    let drain_end = end + Duration::from_secs_f64(args.drain);
    while !stalled {
        bail_if_errors(&shared)?;
        let (sent, completed, last) = {
            let st = shared.st.borrow();
            (
                st.sent_ns.len() as u64 - st.strict_from as u64,
                st.completed,
                shared.at(st.last_delivery_ns),
            )
        };
        if completed >= sent {
            break;
        }
        let give_up = (last.max(end) + stall).min(drain_end);
        if Instant::now() >= give_up {
            if give_up == drain_end {
                eprintln!(
                    "wsd-hubload: {} of {sent} publications reached every subscriber within the \
                     {} s of draining",
                    completed, args.drain
                );
            } else {
                eprintln!("wsd-hubload: {}", stall_report(&shared, args.stall));
            }
            stalled = true;
            break;
        }
        publisher.wait(give_up).await?;
    }
    reader.abort();

    let mut st = shared.st.borrow_mut();
    let published = st.sent_ns.len() as u32;
    let tail: u64 = st
        .expected
        .iter()
        .map(|&e| published.saturating_sub(e) as u64)
        .sum();
    let undelivered = tail;
    let secs = end_mark.at.duration_since(start_mark.at).as_secs_f64();
    let deliveries = end_mark.deliveries - start_mark.deliveries;
    let reads = end_mark.reads - start_mark.reads;
    let remote_deliveries = end_mark.remote_deliveries - start_mark.remote_deliveries;
    let server_cpu_each: Option<Vec<f64>> = match (&start_mark.server_cpu, &end_mark.server_cpu) {
        (Some(a), Some(b)) => Some(a.iter().zip(b).map(|(a, b)| b - a).collect()),
        _ => None,
    };
    let server_cpu = server_cpu_each
        .as_ref()
        .map(|each| each.iter().sum::<f64>());
    let own_pct = 100.0 * (end_mark.own_cpu - start_mark.own_cpu) / secs;
    let na = |v: Option<String>| v.unwrap_or_else(|| "na".into());
    let h = st.hist.take().unwrap();
    let rh = st.remote_hist.take().unwrap();
    let us = |ns: u64| format!("{:.1}", ns as f64 / 1000.0);
    let bad = st.missing
        + undelivered
        + st.duplicate
        + st.out_of_order
        + st.corrupt
        + st.errors
        + stalled as u64;
    print!(
        "mode={} subscribers={n} size={} in_flight={} rate={} secs={secs:.2} publications={} \
         deliveries={deliveries} deliveries_per_sec={:.0} server_cpu_s={} deliveries_per_server_cpu_s={} \
         rss_before_kib={} rss_after_kib={} mem_per_sub_kib={} p50_us={} p99_us={} p999_us={} max_us={} \
         frames_per_read={:.2} loadgen_cpu_pct={own_pct:.0} loadgen_ns_per_delivery={:.0} loadgen_saturated={} stalled={} undelivered={undelivered} missing={} \
         duplicate={} out_of_order={} corrupt={} errors={} ",
        if interval.is_some() { "latency" } else { "throughput" },
        args.size,
        if interval.is_some() { 0 } else { args.in_flight },
        args.rate.unwrap_or(0.0),
        published - st.strict_from,
        deliveries as f64 / secs,
        na(server_cpu.map(|c| format!("{c:.3}"))),
        na(server_cpu.map(|c| if c > 0.0 { format!("{:.0}", deliveries as f64 / c) } else { "inf".into() })),
        na(rss_before.map(|v| v.to_string())),
        na(rss_after.map(|v| v.to_string())),
        na(rss_before
            .zip(rss_after)
            .map(|(b, a)| format!("{:.2}", (a as f64 - b as f64) / n as f64))),
        us(h.percentile(0.50)),
        us(h.percentile(0.99)),
        us(h.percentile(0.999)),
        us(h.max),
        if reads > 0 { deliveries as f64 / reads as f64 } else { 0.0 },
        if deliveries > 0 {
            (end_mark.own_cpu - start_mark.own_cpu) * 1e9 / deliveries as f64
        } else {
            0.0
        },
        if own_pct >= 90.0 { "yes" } else { "no" },
        if stalled { "yes" } else { "no" },
        st.missing,
        st.duplicate,
        st.out_of_order,
        st.corrupt,
        st.errors,
    );
    let join_cpu_s = match (&cpu_before, &join_cpu) {
        (Some(a), Some(b)) => Some(b.iter().sum::<f64>() - a.iter().sum::<f64>()),
        _ => None,
    };
    print!(
        "join_all_s={join_all_secs:.2} join_max_s={} join_server_cpu_s={} closed={} member_frames={} ",
        if shared.chat { format!("{join_max_secs:.2}") } else { "na".into() },
        na(join_cpu_s.map(|c| format!("{c:.3}"))),
        st.closed,
        st.member_frames,
    );
    println!(
        "server_cpu_s_each={} remote_deliveries={remote_deliveries} remote_deliveries_per_sec={:.0} \
         remote_p50_us={} remote_p99_us={} status={}",
        na(server_cpu_each.map(|each| {
            each.iter()
                .map(|c| format!("{c:.3}"))
                .collect::<Vec<_>>()
                .join(",")
        })),
        remote_deliveries as f64 / secs,
        if remote_deliveries > 0 { us(rh.percentile(0.50)) } else { "na".into() },
        if remote_deliveries > 0 { us(rh.percentile(0.99)) } else { "na".into() },
        if bad == 0 { "ok" } else { "FAILED" },
    );
    if own_pct >= 90.0 {
        eprintln!("wsd-hubload: WARNING: the load generator used {own_pct:.0}% of its core: it may be the bottleneck");
    }
    if bad > 0 {
        eprintln!(
            "wsd-hubload: DELIVERY ERRORS: undelivered={undelivered} missing={} duplicate={} out_of_order={} corrupt={} errors={}",
            st.missing, st.duplicate, st.out_of_order, st.corrupt, st.errors
        );
        if let Some(e) = &st.first_corrupt {
            eprintln!("wsd-hubload: first corrupt delivery: {e}");
        }
        if let Some(e) = &st.first_error {
            eprintln!("wsd-hubload: first connection error: {e}");
        }
    }
    Ok(bad == 0)
}

/// Which publication is stuck, and how many subscribers got it.
fn stall_report(shared: &Shared, stall: f64) -> String {
    let st = shared.st.borrow();
    let n = shared.subscribers;
    let stuck = (st.strict_from as usize..st.got.len()).find(|&s| st.got[s] < n);
    match stuck {
        Some(s) => format!(
            "stalled: no delivery for {stall} s; publication {s} reached {} of {n} subscribers",
            st.got[s]
        ),
        None => format!("stalled: no delivery for {stall} s"),
    }
}

fn main() {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(2);
        }
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let local = LocalSet::new();
    let ok = match local.block_on(&rt, run(args)) {
        Ok(good) => good,
        Err(e) => {
            // Still one line on stdout, so that a script's parser sees the failure.
            println!("status=FAILED");
            eprintln!("wsd-hubload: FAILED: {e}");
            false
        }
    };
    // The subscribers' sockets close with the process.
    std::process::exit(if ok { 0 } else { 1 });
}
