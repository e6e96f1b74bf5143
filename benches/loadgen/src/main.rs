//! A WebSocket echo load generator, for websocket-driver's benchmarks.
//!
//! Echo mode (default): `--connections N`, each with `--in-flight K` messages of
//! `--size B` bytes outstanding (closed loop), or at a fixed total `--rate R`
//! messages per second (open loop, latency measured from the scheduled send time).
//! Every frame is masked with a fresh key, as a client must (RFC 6455 §5.3); every
//! echo is checked byte for byte (each payload carries its sequence number, so a
//! lost, duplicated or reordered echo is an error). After `--warmup` seconds it
//! measures for `--duration` seconds and prints one line:
//!
//! `connections=100 in_flight=1 size=20 msgs=... secs=... msgs_per_sec=... p50_us=... p99_us=... p999_us=... max_us=... load_cpu_s=... errors=0`
//!
//! The percentiles come from every round trip of the measured window, kept and
//! sorted (microseconds, nearest rank): nothing is binned or sampled away.
//! `load_cpu_s` is this process's CPU time over the window; with `--server-pid PID`
//! the line also has `server_cpu_s`, the CPU time of every thread of PID over the
//! same window (both from `/proc/*/task/*/schedstat`, in nanoseconds).
//!
//! Idle mode: `--idle N --hold S` opens N connections, prints `open N` once all
//! handshakes are done, answers the server's pings, and closes them after S seconds.
//! With `--echo`, once all are open it waits for a line on standard input, then
//! each connection sends one message of `--size` bytes and waits for its echo
//! (checked); `echoed N` is printed once every echo has come back, and the S
//! seconds of the hold count from then. With `--control` (the soak,
//! scripts/soak.sh) it holds them until told on stdin instead: `echo` sends one
//! message on each connection and prints `echoed N` once every open one echoed;
//! `stats` prints `pings total=T min=A max=B pongs=P closed=C failed=F` (pings
//! per connection, the pongs answered, the connections the server closed, those
//! that failed otherwise) and exits.
//!
//! `--source IP` binds every connection to that local address before it connects
//! (for example 127.0.2.1: over the loopback, ephemeral ports of its own, whatever
//! other processes on a shared machine hold).
//!
//! The frame code here is written from RFC 6455 independently of the library under
//! test, so that a bug there cannot hide itself.

use std::{
    cell::RefCell,
    collections::VecDeque,
    io,
    net::{IpAddr, SocketAddr},
    rc::Rc,
    time::{Duration, Instant},
};

use base64::Engine;
use sha1::{Digest, Sha1};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpSocket, TcpStream},
    sync::Semaphore,
    task::LocalSet,
};

#[derive(Debug, Clone)]
struct Args {
    addr: SocketAddr,
    path: String,
    connections: usize,
    in_flight: usize,
    size: usize,
    text: bool,
    duration: f64,
    warmup: f64,
    rate: Option<f64>,
    idle: Option<usize>,
    hold: f64,
    idle_echo: bool,
    control: bool,
    server_pid: Option<u32>,
    source: Option<IpAddr>,
}

const USAGE: &str = "usage: loadgen [--url ws://127.0.0.1:9001/] [-c CONNECTIONS=100] \
[-k IN_FLIGHT=1] [-s SIZE=20] [--text] [--raw: accept our masked frames echoed back] [-d SECONDS=5] [--warmup SECONDS=1] [--rate MSGS_PER_SEC] \
[--server-pid PID] [--source IP: bind every connection to this local address] | loadgen --idle N [--hold SECONDS=10] [--echo: one echo of -s SIZE each after a line on stdin] [--control: stdin commands echo, stats] [--url ...]";

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        addr: "127.0.0.1:9001".parse().unwrap(),
        path: "/".into(),
        connections: 100,
        in_flight: 1,
        size: 20,
        text: false,
        duration: 5.0,
        warmup: 1.0,
        rate: None,
        idle: None,
        hold: 10.0,
        idle_echo: false,
        control: false,
        server_pid: None,
        source: None,
    };
    let mut it = std::env::args().skip(1);
    fn num<T: std::str::FromStr>(v: Option<String>, name: &str) -> Result<T, String> {
        v.ok_or(format!("{name} needs a value"))?
            .parse()
            .map_err(|_| format!("{name}: not a number"))
    }
    while let Some(a) = it.next() {
        match a.as_str() {
            "--url" => {
                let url = it.next().ok_or("--url needs a value")?;
                let rest = url
                    .strip_prefix("ws://")
                    .ok_or("only ws:// URLs (loopback benchmarks)")?;
                let (host, path) = match rest.find('/') {
                    Some(i) => (&rest[..i], &rest[i..]),
                    None => (rest, "/"),
                };
                args.addr = host.parse().map_err(|_| "--url: host must be IP:PORT")?;
                args.path = path.into();
            }
            "-c" | "--connections" => args.connections = num(it.next(), &a)?,
            "-k" | "--in-flight" => args.in_flight = num(it.next(), &a)?,
            "-s" | "--size" => args.size = num(it.next(), &a)?,
            "--text" => args.text = true,
            "-d" | "--duration" => args.duration = num(it.next(), &a)?,
            "--warmup" => args.warmup = num(it.next(), &a)?,
            "--rate" => args.rate = Some(num(it.next(), &a)?),
            "--idle" => args.idle = Some(num(it.next(), &a)?),
            "--hold" => args.hold = num(it.next(), &a)?,
            "--echo" => args.idle_echo = true,
            "--control" => args.control = true,
            "--server-pid" => args.server_pid = Some(num(it.next(), &a)?),
            "--source" => args.source = Some(num(it.next(), &a)?),
            "--raw" => RAW.store(true, std::sync::atomic::Ordering::Relaxed),
            "-h" | "--help" => return Err(USAGE.into()),
            other => return Err(format!("unknown argument {other:?}\n{USAGE}")),
        }
    }
    if args.connections == 0 || args.in_flight == 0 {
        return Err("connections and in-flight must be at least 1".into());
    }
    if !((0.0..=600.0).contains(&args.duration)
        && args.duration > 0.0
        && (0.0..=60.0).contains(&args.warmup))
    {
        return Err("duration must be in (0, 600] s, warmup in [0, 60] s".into());
    }
    Ok(args)
}

/// xorshift64*: cheap mask keys, so that the generator's own cost stays low.
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
    let body = &mut out[start..];
    let wide = u64::from_ne_bytes([
        key[0], key[1], key[2], key[3], key[0], key[1], key[2], key[3],
    ]);
    let mut chunks = body.chunks_exact_mut(8);
    for c in &mut chunks {
        let v = u64::from_ne_bytes(c.try_into().unwrap()) ^ wide;
        c.copy_from_slice(&v.to_ne_bytes());
    }
    for (i, b) in chunks.into_remainder().iter_mut().enumerate() {
        *b ^= key[i & 3];
    }
}

/// Whether echoed frames may come back masked: against the raw TCP echo (`--raw`),
/// which returns our own masked frames unchanged.
static RAW: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// One server frame parsed off the front of `buf`: (opcode, payload start, total
/// length). With `--raw`, a masked frame's payload is unmasked in place.
fn parse_frame(buf: &mut [u8]) -> io::Result<Option<(u8, usize, usize)>> {
    if buf.len() < 2 {
        return Ok(None);
    }
    let masked = buf[1] & 0x80 != 0;
    if masked && !RAW.load(std::sync::atomic::Ordering::Relaxed) {
        return Err(io::Error::other("server frame is masked"));
    }
    if buf[0] & 0x80 == 0 {
        return Err(io::Error::other(
            "fragmented echo (not expected from an echo of whole frames)",
        ));
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
            if n > 1 << 30 {
                return Err(io::Error::other("server frame over 1 GiB"));
            }
            (n as usize, 10)
        }
        n => (n as usize, 2),
    };
    let head = if masked { head + 4 } else { head };
    if buf.len() < head + len {
        return Ok(None);
    }
    if masked {
        let key = [buf[head - 4], buf[head - 3], buf[head - 2], buf[head - 1]];
        for (i, b) in buf[head..head + len].iter_mut().enumerate() {
            *b ^= key[i & 3];
        }
    }
    Ok(Some((buf[0] & 0x0f, head, head + len)))
}

async fn handshake(
    addr: SocketAddr,
    source: Option<IpAddr>,
    path: &str,
    rng: &mut Rng,
) -> io::Result<(TcpStream, Vec<u8>)> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    if let Some(ip) = source {
        // A local address of its own: ephemeral ports that other processes'
        // connections over the loopback (a shared machine) have not used up.
        // SO_REUSEADDR: a port whose earlier connection is in TIME_WAIT may be taken.
        socket.set_reuseaddr(true)?;
        socket.bind(SocketAddr::new(ip, 0))?;
    }
    let mut stream = socket.connect(addr).await?;
    stream.set_nodelay(true)?;
    let key_bytes: [u8; 16] = {
        let mut k = [0u8; 16];
        k[..8].copy_from_slice(&rng.next().to_ne_bytes());
        k[8..].copy_from_slice(&rng.next().to_ne_bytes());
        k
    };
    let b64 = base64::engine::general_purpose::STANDARD;
    let key = b64.encode(key_bytes);
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await?;
    let mut buf = Vec::with_capacity(1024);
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
    Ok((stream, buf[end..].to_vec()))
}

#[derive(Default)]
struct Totals {
    msgs: u64,
    errors: u64,
    first_error: Option<String>,
    rtts_us: Vec<u32>,
}

struct Window {
    start: Instant,
    end: Instant,
}

/// The payload of message `seq`: a fixed pattern with the sequence number in front.
fn payload(template: &[u8], seq: u64, text: bool, out: &mut Vec<u8>) {
    out.clear();
    out.extend_from_slice(template);
    if text {
        let digits = format!("{seq:016x}");
        let n = out.len().min(16);
        out[..n].copy_from_slice(&digits.as_bytes()[16 - n..]);
    } else {
        let n = out.len().min(8);
        out[..n].copy_from_slice(&seq.to_le_bytes()[8 - n..]);
    }
}

async fn echo_connection(
    args: Rc<Args>,
    id: usize,
    window: Rc<Window>,
    totals: Rc<RefCell<Totals>>,
) -> io::Result<()> {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ ((id as u64 + 1) << 17));
    let (mut stream, mut rbuf) = handshake(args.addr, args.source, &args.path, &mut rng).await?;
    let opcode = if args.text { 1 } else { 2 };
    let template: Vec<u8> = (0..args.size).map(|i| b'a' + (i % 26) as u8).collect();
    let mut sent: VecDeque<(u64, Instant)> = VecDeque::new();
    let mut next_seq = 0u64;
    let mut wbuf = Vec::new();
    let mut scratch = Vec::new();
    let mut expect = Vec::new();
    let interval = args
        .rate
        .map(|r| Duration::from_secs_f64(args.connections as f64 / r));
    let mut next_send = Instant::now();
    if interval.is_none() {
        for _ in 0..args.in_flight {
            payload(&template, next_seq, args.text, &mut scratch);
            push_frame(&mut wbuf, opcode, &scratch, &mut rng);
            sent.push_back((next_seq, Instant::now()));
            next_seq += 1;
        }
        stream.write_all(&wbuf).await?;
    }
    let mut local_rtts = Vec::new();
    let mut local_msgs = 0u64;
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        let now = Instant::now();
        if now >= window.end {
            break;
        }
        let n = if let Some(iv) = interval {
            let sleep = tokio::time::sleep_until(next_send.into());
            tokio::select! {
                r = stream.read(&mut chunk) => r?,
                _ = sleep => {
                    // Open loop: the latency counts from the scheduled time.
                    wbuf.clear();
                    while next_send <= Instant::now() {
                        payload(&template, next_seq, args.text, &mut scratch);
                        push_frame(&mut wbuf, opcode, &scratch, &mut rng);
                        sent.push_back((next_seq, next_send));
                        next_seq += 1;
                        next_send += iv;
                    }
                    stream.write_all(&wbuf).await?;
                    continue;
                }
            }
        } else {
            let deadline = tokio::time::sleep_until(window.end.into());
            tokio::select! {
                r = stream.read(&mut chunk) => r?,
                _ = deadline => break,
            }
        };
        if n == 0 {
            return Err(io::Error::other("server closed the connection"));
        }
        rbuf.extend_from_slice(&chunk[..n]);
        let mut at = 0;
        wbuf.clear();
        let now = Instant::now();
        while let Some((op, head, total)) = parse_frame(&mut rbuf[at..])? {
            let body = &rbuf[at + head..at + total];
            match op {
                9 => {
                    let body = body.to_vec();
                    push_frame(&mut wbuf, 10, &body, &mut rng);
                }
                10 => {}
                8 => return Err(io::Error::other("server sent Close")),
                op if op == opcode => {
                    let (seq, t0) = sent
                        .pop_front()
                        .ok_or_else(|| io::Error::other("echo of a message never sent"))?;
                    payload(&template, seq, args.text, &mut expect);
                    if body != &expect[..] {
                        return Err(io::Error::other(format!(
                            "echo {seq} differs from what was sent"
                        )));
                    }
                    if now >= window.start {
                        local_msgs += 1;
                        local_rtts
                            .push(now.duration_since(t0).as_micros().min(u32::MAX as u128) as u32);
                    }
                    if interval.is_none() {
                        payload(&template, next_seq, args.text, &mut scratch);
                        push_frame(&mut wbuf, opcode, &scratch, &mut rng);
                        sent.push_back((next_seq, now));
                        next_seq += 1;
                    }
                }
                other => return Err(io::Error::other(format!("unexpected opcode {other}"))),
            }
            at += total;
        }
        rbuf.drain(..at);
        if !wbuf.is_empty() {
            stream.write_all(&wbuf).await?;
        }
    }
    let mut t = totals.borrow_mut();
    t.msgs += local_msgs;
    t.rtts_us.extend_from_slice(&local_rtts);
    Ok(())
}

/// The nearest-rank percentile of sorted samples: the smallest sample with at
/// least `p` of all samples at or below it.
fn percentile(sorted: &[u32], p: f64) -> u32 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = (p * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// CPU time of every thread of process `pid` ("self" for this one), in seconds:
/// the first field of each `/proc/PID/task/TID/schedstat` (nanoseconds on a CPU).
fn cpu_secs(pid: &str) -> io::Result<f64> {
    let mut ns = 0u64;
    for task in std::fs::read_dir(format!("/proc/{pid}/task"))? {
        let path = task?.path().join("schedstat");
        // A thread that ended between the listing and the read counted nothing more.
        let Ok(text) = std::fs::read_to_string(path) else {
            continue;
        };
        let first = text.split_whitespace().next().unwrap_or("0");
        ns += first.parse::<u64>().map_err(io::Error::other)?;
    }
    Ok(ns as f64 / 1e9)
}

/// This process's and the server's CPU seconds over the measured window.
#[derive(Default)]
struct CpuSpan {
    load: Option<f64>,
    server: Option<f64>,
}

async fn measure_cpu(window: Rc<Window>, server: Option<u32>, out: Rc<RefCell<CpuSpan>>) {
    let read = |pid: Option<u32>| match pid {
        Some(p) => cpu_secs(&p.to_string()).ok(),
        None => None,
    };
    tokio::time::sleep_until(window.start.into()).await;
    let (load0, server0) = (cpu_secs("self").ok(), read(server));
    tokio::time::sleep_until(window.end.into()).await;
    let (load1, server1) = (cpu_secs("self").ok(), read(server));
    let mut o = out.borrow_mut();
    o.load = load0.zip(load1).map(|(a, b)| b - a);
    o.server = server0.zip(server1).map(|(a, b)| b - a);
}

async fn run_echo(args: Args) -> io::Result<()> {
    let args = Rc::new(args);
    let start = Instant::now() + Duration::from_secs_f64(args.warmup);
    let window = Rc::new(Window {
        start,
        end: start + Duration::from_secs_f64(args.duration),
    });
    let totals = Rc::new(RefCell::new(Totals::default()));
    let cpu = Rc::new(RefCell::new(CpuSpan::default()));
    let meter = tokio::task::spawn_local(measure_cpu(window.clone(), args.server_pid, cpu.clone()));
    let mut tasks = Vec::new();
    for id in 0..args.connections {
        let (a, w, t) = (args.clone(), window.clone(), totals.clone());
        tasks.push(tokio::task::spawn_local(async move {
            if let Err(e) = echo_connection(a, id, w, t.clone()).await {
                let mut t = t.borrow_mut();
                t.errors += 1;
                t.first_error.get_or_insert_with(|| e.to_string());
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    let meter_deadline = window.end + Duration::from_secs(1);
    if tokio::time::timeout_at(meter_deadline.into(), meter)
        .await
        .is_err()
    {
        eprintln!("the CPU meter did not finish with the window");
    }
    let mut t = totals.borrow_mut();
    t.rtts_us.sort_unstable();
    let secs = args.duration;
    let cpu = cpu.borrow();
    let server_cpu = match (args.server_pid, cpu.server) {
        (Some(_), Some(c)) => format!(" server_cpu_s={c:.4}"),
        (Some(_), None) => " server_cpu_s=unknown".into(),
        (None, _) => String::new(),
    };
    println!(
        "connections={} in_flight={} size={} msgs={} secs={:.2} msgs_per_sec={:.0} p50_us={} p99_us={} p999_us={} max_us={} load_cpu_s={:.4}{} errors={}",
        args.connections,
        if args.rate.is_some() { 0 } else { args.in_flight },
        args.size,
        t.msgs,
        secs,
        t.msgs as f64 / secs,
        percentile(&t.rtts_us, 0.50),
        percentile(&t.rtts_us, 0.99),
        percentile(&t.rtts_us, 0.999),
        t.rtts_us.last().copied().unwrap_or(0),
        cpu.load.unwrap_or(0.0),
        server_cpu,
        t.errors
    );
    if let Some(e) = &t.first_error {
        eprintln!("first error: {e}");
    }
    if t.errors > 0 {
        return Err(io::Error::other(format!("{} connections failed", t.errors)));
    }
    Ok(())
}

/// What an idle connection reports to `run_idle`.
enum Idle {
    Open,
    Echoed,
    Failed(String),
}

/// What the idle connections share, for `--control`'s `stats`: pings per
/// connection, Pongs sent, connections the server closed.
#[derive(Default)]
struct IdleCounts {
    pings: Vec<u32>,
    pongs: u64,
    closed: u64,
}

/// An idle connection: the handshake, then only Pongs to the server's Pings, until
/// the task is aborted. With `echo` (the go signal and the size), one message sent
/// once the signal is given, its echo checked and reported.
#[allow(clippy::too_many_arguments)]
async fn idle_connection(
    addr: SocketAddr,
    source: Option<IpAddr>,
    path: String,
    id: usize,
    gate: Rc<Semaphore>,
    events: tokio::sync::mpsc::UnboundedSender<Idle>,
    mut echo: Option<(tokio::sync::watch::Receiver<bool>, usize)>,
    counts: Rc<RefCell<IdleCounts>>,
) -> io::Result<()> {
    let mut rng = Rng(0x2545_f491_4f6c_dd1d ^ ((id as u64 + 1) << 11));
    let (mut stream, mut rbuf) = {
        let _permit = gate.acquire().await.map_err(io::Error::other)?;
        handshake(addr, source, &path, &mut rng).await?
    };
    let _ = events.send(Idle::Open);
    let mut waiting = echo.is_some();
    let mut expect: Option<Vec<u8>> = None;
    let mut chunk = [0u8; 512];
    loop {
        let n = tokio::select! {
            r = stream.read(&mut chunk) => r?,
            size = wait_go(&mut echo), if waiting => {
                waiting = false;
                let template: Vec<u8> = (0..size?).map(|i| b'a' + (i % 26) as u8).collect();
                let mut body = Vec::new();
                payload(&template, id as u64, false, &mut body);
                let mut out = Vec::new();
                push_frame(&mut out, 2, &body, &mut rng);
                stream.write_all(&out).await?;
                expect = Some(body);
                continue;
            }
        };
        if n == 0 {
            counts.borrow_mut().closed += 1;
            return Err(io::Error::other("server closed an idle connection"));
        }
        rbuf.extend_from_slice(&chunk[..n]);
        let mut at = 0;
        let mut out = Vec::new();
        while let Some((op, head, total)) = parse_frame(&mut rbuf[at..])? {
            let body = &rbuf[at + head..at + total];
            match op {
                9 => {
                    let mut c = counts.borrow_mut();
                    if let Some(p) = c.pings.get_mut(id) {
                        *p += 1;
                    }
                    c.pongs += 1;
                    let body = body.to_vec();
                    push_frame(&mut out, 10, &body, &mut rng);
                }
                10 => {}
                8 => {
                    counts.borrow_mut().closed += 1;
                    return Err(io::Error::other("server sent Close"));
                }
                2 => match expect.take() {
                    Some(e) if e == body => {
                        let _ = events.send(Idle::Echoed);
                    }
                    Some(_) => return Err(io::Error::other("the echo differs from what was sent")),
                    None => return Err(io::Error::other("echo of a message never sent")),
                },
                other => return Err(io::Error::other(format!("unexpected opcode {other}"))),
            }
            at += total;
        }
        rbuf.drain(..at);
        if !out.is_empty() {
            stream.write_all(&out).await?;
        }
    }
}

/// Waits for the go signal; the size of the message to send then.
async fn wait_go(
    echo: &mut Option<(tokio::sync::watch::Receiver<bool>, usize)>,
) -> io::Result<usize> {
    let Some((go, size)) = echo else {
        return std::future::pending().await;
    };
    go.wait_for(|g| *g).await.map_err(io::Error::other)?;
    Ok(*size)
}

/// `--control`: the commands on stdin (`echo`, `stats`), until `stats` or the end
/// of stdin.
async fn control(
    mut rx: tokio::sync::mpsc::UnboundedReceiver<Idle>,
    go_tx: tokio::sync::watch::Sender<bool>,
    counts: &RefCell<IdleCounts>,
    open: usize,
    tasks: Vec<tokio::task::JoinHandle<()>>,
) -> io::Result<()> {
    use std::io::Write as _;
    let _ = std::io::stdout().flush();
    // Commands from stdin, read on a thread of their own.
    let (cmd_tx, mut cmd_rx) = tokio::sync::mpsc::unbounded_channel::<String>();
    std::thread::spawn(move || {
        for line in std::io::stdin().lines().map_while(Result::ok) {
            if cmd_tx.send(line.trim().to_owned()).is_err() {
                break;
            }
        }
    });
    let mut failed = 0u64;
    loop {
        tokio::select! {
            cmd = cmd_rx.recv() => match cmd.as_deref() {
                Some("echo") => {
                    go_tx.send_replace(true);
                    let mut back = 0;
                    // Every connection still open echoes once.
                    while back + failed < open as u64 {
                        match rx.recv().await {
                            Some(Idle::Echoed) => back += 1,
                            Some(Idle::Failed(_)) => failed += 1,
                            Some(Idle::Open) => {}
                            None => break,
                        }
                    }
                    println!("echoed {back}");
                    let _ = std::io::stdout().flush();
                }
                Some("stats") | None => break,
                Some(other) => eprintln!("loadgen: unknown command {other:?}"),
            },
            event = rx.recv() => match event {
                Some(Idle::Failed(_)) => failed += 1,
                Some(_) => {}
                None => break,
            },
        }
    }
    let c = counts.borrow();
    let (min, max) = c
        .pings
        .iter()
        .fold((u32::MAX, 0), |(lo, hi), &p| (lo.min(p), hi.max(p)));
    let total: u64 = c.pings.iter().map(|&p| u64::from(p)).sum();
    println!(
        "pings total={total} min={min} max={max} pongs={} closed={} failed={failed}",
        c.pongs, c.closed
    );
    let _ = std::io::stdout().flush();
    for t in tasks {
        t.abort();
    }
    Ok(())
}

async fn run_idle(args: Args, count: usize) -> io::Result<()> {
    // At most 256 handshakes at a time: the server's listen backlog is not flooded.
    let gate = Rc::new(Semaphore::new(256));
    let began = Instant::now();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Idle>();
    let (go_tx, go_rx) = tokio::sync::watch::channel(false);
    let counts = Rc::new(RefCell::new(IdleCounts {
        pings: vec![0; count],
        ..IdleCounts::default()
    }));
    let mut tasks = Vec::new();
    for id in 0..count {
        let (addr, source, path) = (args.addr, args.source, args.path.clone());
        let (gate, tx) = (gate.clone(), tx.clone());
        let echo = (args.idle_echo || args.control).then(|| (go_rx.clone(), args.size));
        let counts = counts.clone();
        tasks.push(tokio::task::spawn_local(async move {
            let result = idle_connection(addr, source, path, id, gate, tx.clone(), echo, counts);
            if let Err(e) = result.await {
                let _ = tx.send(Idle::Failed(e.to_string()));
            }
        }));
    }
    drop(tx);
    let deadline = began + Duration::from_secs(120);
    let mut open = 0;
    while open < count {
        match tokio::time::timeout_at(deadline.into(), rx.recv()).await {
            Ok(Some(Idle::Open)) => open += 1,
            Ok(Some(Idle::Echoed)) => {
                return Err(io::Error::other("an echo before any message was sent"))
            }
            Ok(Some(Idle::Failed(e))) => {
                return Err(io::Error::other(format!("connection failed: {e}")))
            }
            Ok(None) => break,
            Err(_) => {
                return Err(io::Error::other(format!(
                    "only {open} of {count} open after 120 s"
                )))
            }
        }
    }
    println!("open {open} ({:.1} s)", began.elapsed().as_secs_f64());
    if args.control {
        return control(rx, go_tx, &counts, open, tasks).await;
    }
    if args.idle_echo {
        // The caller measures the server between the two steps, then sends a line.
        let line = tokio::task::spawn_blocking(|| {
            let mut l = String::new();
            std::io::stdin().read_line(&mut l).map(|n| n > 0)
        });
        match tokio::time::timeout(Duration::from_secs(120), line).await {
            Ok(Ok(Ok(true))) => {}
            _ => {
                return Err(io::Error::other(
                    "--echo: no line on standard input (it closed, or 120 s passed)",
                ))
            }
        }
        let sent = Instant::now();
        go_tx.send_replace(true);
        let deadline = sent + Duration::from_secs(60);
        let mut echoed = 0;
        while echoed < open {
            match tokio::time::timeout_at(deadline.into(), rx.recv()).await {
                Ok(Some(Idle::Echoed)) => echoed += 1,
                Ok(Some(Idle::Open)) => {}
                Ok(Some(Idle::Failed(e))) => {
                    return Err(io::Error::other(format!("connection failed: {e}")))
                }
                Ok(None) => break,
                Err(_) => {
                    return Err(io::Error::other(format!(
                        "only {echoed} of {open} echoed after 60 s"
                    )))
                }
            }
        }
        println!("echoed {echoed} ({:.1} s)", sent.elapsed().as_secs_f64());
    }
    let hold_end = Instant::now() + Duration::from_secs_f64(args.hold);
    let mut failed = 0;
    while let Ok(Some(r)) = tokio::time::timeout_at(hold_end.into(), rx.recv()).await {
        if let Idle::Failed(_) = r {
            failed += 1;
        }
    }
    println!("held {open} for {:.1} s, {failed} closed early", args.hold);
    for t in tasks {
        t.abort();
    }
    if failed > 0 {
        return Err(io::Error::other(format!(
            "{failed} idle connections were closed"
        )));
    }
    Ok(())
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
    let result = local.block_on(&rt, async move {
        match args.idle {
            Some(n) => run_idle(args, n).await,
            None => run_echo(args).await,
        }
    });
    if let Err(e) = result {
        eprintln!("loadgen: {e}");
        std::process::exit(1);
    }
}
