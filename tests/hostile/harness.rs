//! The hostile suite's harness: an example server as a child process (its peak RSS
//! and open descriptors read from `/proc/<pid>/`), the settings it runs with, and a
//! raw peer that writes whatever frames a case wants and reads the server's.
#![allow(dead_code)]

use std::{
    io::{self, BufRead, BufReader},
    net::SocketAddr,
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::Duration,
};

use bytes::{Buf, BytesMut};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpSocket, TcpStream},
};
use websocket_driver as ws;

/// The configuration file every case's server runs with (`--config`).
pub const CONFIG: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/hostile/hostile.toml");

/// What the allocator and the runtime may add to a server's peak RSS on their own
/// while a case runs, beyond what the configuration lets a connection hold: a
/// glibc arena or two (64 KiB heaps grown in 128 KiB steps, not given back at
/// once), the tokio and actix per-connection tasks, the kernel's page-granular
/// accounting. One number for every case, stated here, not tuned per case.
pub const RUNTIME_SLACK: u64 = 4 << 20;

/// The settings of [`CONFIG`], as the servers read them.
pub fn settings() -> ws::Settings {
    let text = std::fs::read_to_string(CONFIG).expect("tests/hostile/hostile.toml");
    toml::from_str(&text).expect("hostile.toml parses")
}

/// Which example serves, and how.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Example {
    /// `examples/echo.rs` on the actix-web route.
    EchoRoute,
    /// `examples/echo.rs --standalone` (`Server::listen`).
    EchoStandalone,
    /// `examples/hub.rs`, the chat on `ws::Hub` (route `/ws`).
    Hub,
}

/// An example's binary, as `cargo test` (or `cargo build --examples`) builds it:
/// the debug profile, like tests/backplane.rs (`HOSTILE_PROFILE=release` for
/// `cargo build --release --examples`).
fn binary(name: &str) -> PathBuf {
    // HOSTILE_PROFILE=release: the binaries of `cargo build --release --examples`.
    let profile = std::env::var("HOSTILE_PROFILE").unwrap_or_else(|_| "debug".into());
    example_binary(name, &profile)
}

/// An example's binary in `profile` (`debug`, `release`), refused when it is
/// missing or older than the sources (tests/soak.rs runs the release builds).
pub fn example_binary(name: &str, profile: &str) -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target"));
    let path = target.join(profile).join("examples").join(name);
    assert!(
        path.exists(),
        "{} is missing: cargo build{} --examples",
        path.display(),
        if profile == "debug" { "" } else { " --release" }
    );
    // `cargo test --test hostile` alone does not rebuild the examples: refuse to
    // measure a binary older than the sources it is built from.
    let built = std::fs::metadata(&path).and_then(|m| m.modified()).unwrap();
    let hint = if profile == "debug" { "" } else { " --release" };
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    // The library's sources and the example's own (not the other examples': cargo
    // does not relink an example for them).
    let source = root.join("examples").join(format!("{name}.rs"));
    let own = std::fs::metadata(&source)
        .and_then(|m| m.modified())
        .ok()
        .map(|modified| (modified, source));
    if let Some(newer) = newest(&root.join("src"))
        .into_iter()
        .chain(own)
        .find(|(modified, _)| *modified > built)
    {
        panic!(
            "{} is older than {}: cargo build{hint} --examples",
            path.display(),
            newer.1.display()
        );
    }
    path
}

/// The most recently modified `.rs` file under `dir`, and when.
fn newest(dir: &std::path::Path) -> Option<(std::time::SystemTime, PathBuf)> {
    let mut best: Option<(std::time::SystemTime, PathBuf)> = None;
    for entry in std::fs::read_dir(dir).ok()?.flatten() {
        let path = entry.path();
        let found = if path.is_dir() {
            newest(&path)
        } else if path.extension().is_some_and(|e| e == "rs") {
            entry
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .map(|t| (t, path))
        } else {
            None
        };
        if let Some(found) = found {
            if best.as_ref().is_none_or(|(t, _)| found.0 > *t) {
                best = Some(found);
            }
        }
    }
    best
}

/// The command that starts the example `binary` on `addr` with one worker and
/// the configuration file `config`, its stderr piped (see [`spawn_listening`]).
pub fn example_command(binary: &std::path::Path, addr: SocketAddr, config: &str) -> Command {
    let mut cmd = Command::new(binary);
    cmd.args([
        "--bind",
        &addr.to_string(),
        "--workers",
        "1",
        "--config",
        config,
    ])
    .env_remove("RUST_LOG")
    .stdin(Stdio::null())
    .stdout(Stdio::null())
    .stderr(Stdio::piped());
    cmd
}

/// Start `cmd` (an [`example_command`]) and return once the example printed that
/// it listens (it binds before it prints); its stderr is drained from then on (so
/// that it never blocks on a full pipe), shown with the test's output as
/// `[name] ...`.
pub fn spawn_listening(cmd: &mut Command, name: &str) -> Child {
    let mut child = cmd.spawn().expect("start the example");
    let stderr = child.stderr.take().unwrap();
    let mut lines = BufReader::new(stderr).lines();
    loop {
        match lines.next() {
            Some(Ok(line)) if line.contains("://") => break,
            Some(Ok(_)) => continue,
            _ => panic!("{name} exited before listening: {:?}", child.wait()),
        }
    }
    let name = name.to_owned();
    std::thread::spawn(move || {
        for line in lines.map_while(Result::ok) {
            eprintln!("[{name}] {line}");
        }
    });
    child
}

/// A port free a moment ago on 127.0.0.1 (the examples print the address they
/// were given, so the port is chosen here).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A field of `/proc/<pid>/status` given in kB (`"VmRSS:"`, `"VmHWM:"`), in KiB.
pub fn status_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"))
}

/// Open file descriptors of a process (entries of `/proc/<pid>/fd`).
pub fn fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count()
}

/// The CPU time a process has used, user and system, in clock ticks
/// (`utime` + `stime`, fields 14 and 15 of `/proc/<pid>/stat`).
pub fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // The command name (field 2) may hold spaces: count from its closing ')'.
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = rest.split(' ').collect();
    // `rest` starts at field 3 (the state).
    fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
}

/// A running example server, killed when dropped.
pub struct Server {
    child: std::process::Child,
    pub addr: SocketAddr,
    pub example: Example,
}

impl Server {
    /// Start `example` with one worker and [`CONFIG`]; returns once it printed
    /// that it listens (it binds before it prints).
    pub fn start(example: Example) -> Server {
        let name = match example {
            Example::EchoRoute | Example::EchoStandalone => "echo",
            Example::Hub => "hub",
        };
        let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let mut cmd = example_command(&binary(name), addr, CONFIG);
        if example == Example::EchoStandalone {
            cmd.arg("--standalone");
        }
        if example == Example::Hub {
            // The cases push a subscriber past its send budget from one publisher:
            // faster than the chat's message rate limit lets one connection speak.
            cmd.args(["--rate", "1000000", "--burst", "1000000"]);
        }
        let child = spawn_listening(&mut cmd, name);
        Server {
            child,
            addr,
            example,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    fn status_kib(&self, field: &str) -> u64 {
        status_kib(self.pid(), field)
    }

    /// The peak resident set (VmHWM), in bytes.
    pub fn peak_rss(&self) -> u64 {
        self.status_kib("VmHWM:") * 1024
    }

    /// The anonymous and the file-backed parts of the resident set now
    /// (RssAnon, RssFile), in bytes: the heap and stacks; the binary's pages.
    pub fn rss_parts(&self) -> (u64, u64) {
        (
            self.status_kib("RssAnon:") * 1024,
            self.status_kib("RssFile:") * 1024,
        )
    }

    /// The resident set now (VmRSS), in bytes.
    pub fn rss(&self) -> u64 {
        self.status_kib("VmRSS:") * 1024
    }

    /// Open file descriptors (entries of `/proc/<pid>/fd`).
    pub fn fds(&self) -> usize {
        fds(self.pid())
    }

    /// Whether the process still runs.
    pub fn alive(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    /// Send SIGINT (the examples' Ctrl-C: Close 1001 to every peer, then stop).
    pub fn interrupt(&self) {
        let ok = Command::new("kill")
            .args(["-INT", &self.pid().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill -INT");
    }

    /// Wait for the process to exit; its exit status.
    pub fn wait(&mut self) -> std::process::ExitStatus {
        self.child.wait().unwrap()
    }

    /// The WebSocket path: the hub serves `/ws`, the echo any.
    pub fn path(&self) -> &'static str {
        match self.example {
            Example::Hub => "/ws",
            _ => "/",
        }
    }

    /// A connected, upgraded peer.
    pub async fn peer(&self) -> Peer {
        Peer::connect(self.addr, self.path(), "", None).await.0
    }

    /// Wait until `f` holds of the server's `/proc` figures, reading them each
    /// time the server's state may have changed (every 10 ms: `/proc` notifies
    /// nothing); panics after `within`.
    pub async fn until(&self, what: &str, within: Duration, mut f: impl FnMut(&Self) -> bool) {
        let deadline = tokio::time::Instant::now() + within;
        let mut tick = tokio::time::interval(Duration::from_millis(10));
        loop {
            tick.tick().await;
            if f(self) {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{what}: not within {within:?} (fds {}, rss {})",
                self.fds(),
                self.rss()
            );
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The client frames (masked) and the server-frame parser are the hub tests'
/// (tests/support/raw_ws.rs).
#[allow(unused_imports)] // tests/soak.rs includes this file and uses neither
pub use crate::raw_ws::{frame, header_64};

/// The payload of a Close frame with `code` and `reason` (RFC 6455 §5.5.1).
pub fn close_payload(code: u16, reason: &str) -> Vec<u8> {
    let mut p = code.to_be_bytes().to_vec();
    p.extend_from_slice(reason.as_bytes());
    p
}

/// A server frame: its first byte (FIN, RSV, opcode) and its payload.
pub type Frame = (u8, Vec<u8>);

/// A raw WebSocket client: the handshake, then bytes as the case writes them; it
/// decodes the server's (unmasked) frames itself.
pub struct Peer {
    pub stream: TcpStream,
    buf: BytesMut,
}

impl Peer {
    /// Connect and upgrade with `extra` header lines (each ending in `\r\n`); with
    /// `rcvbuf`, the socket's receive buffer is that small (a peer that reads
    /// nothing then stops the server's writes sooner). Returns the response head.
    pub async fn connect(
        addr: SocketAddr,
        path: &str,
        extra: &str,
        rcvbuf: Option<u32>,
    ) -> (Peer, String) {
        let socket = TcpSocket::new_v4().unwrap();
        if let Some(size) = rcvbuf {
            socket.set_recv_buffer_size(size).unwrap();
        }
        let stream = socket.connect(addr).await.expect("connect");
        stream.set_nodelay(true).unwrap();
        let mut peer = Peer {
            stream,
            buf: BytesMut::new(),
        };
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n{extra}\r\n"
        );
        peer.stream.write_all(request.as_bytes()).await.unwrap();
        loop {
            if let Some(end) = peer.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&peer.buf[..end + 4]).into_owned();
                assert!(head.starts_with("HTTP/1.1 101 "), "{head}");
                peer.buf.advance(end + 4);
                return (peer, head);
            }
            assert!(
                peer.fill().await.unwrap() > 0,
                "closed during the handshake"
            );
        }
    }

    /// Read more (5 s at most); `Ok(0)` at EOF.
    pub async fn fill(&mut self) -> io::Result<usize> {
        self.buf.reserve(64 * 1024);
        tokio::time::timeout(Duration::from_secs(5), self.stream.read_buf(&mut self.buf))
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "no bytes within 5 s"))?
    }

    /// Write `bytes`; an error (the server closed or reset) is returned, not
    /// raised: hostile peers write past the server's Close.
    pub async fn send(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.stream.write_all(bytes).await
    }

    /// The next whole frame other than a Ping or Pong, `None` at EOF (or a
    /// reset). hostile.toml's keep-alive ping (every second) may come before any
    /// answer that takes the server longer than that, as on a loaded machine.
    pub async fn frame(&mut self) -> Option<Frame> {
        loop {
            match self.any_frame().await {
                Some((0x89 | 0x8a, _)) => continue,
                other => return other,
            }
        }
    }

    /// The next whole frame, control frames included; `None` at EOF (or a reset).
    pub async fn any_frame(&mut self) -> Option<Frame> {
        loop {
            if let Some(frame) = self.parse() {
                return Some(frame);
            }
            match self.fill().await {
                Ok(0) => return None,
                Ok(_) => {}
                Err(err) if err.kind() == io::ErrorKind::TimedOut => panic!("{err}"),
                Err(_) => return None,
            }
        }
    }

    fn parse(&mut self) -> Option<Frame> {
        crate::raw_ws::parse_server_frame(&mut self.buf)
    }

    /// Read until the server's Close frame, skipping data and control frames;
    /// returns its whole payload. Panics at EOF without one.
    pub async fn close_frame(&mut self) -> Vec<u8> {
        loop {
            match self.frame().await {
                Some((0x88, payload)) => return payload,
                Some(_) => continue,
                None => panic!("the connection ended without a Close frame"),
            }
        }
    }

    /// The server's Close code (the frame's first two bytes).
    pub async fn close_code(&mut self) -> u16 {
        let payload = self.close_frame().await;
        assert!(payload.len() >= 2, "a Close with a code: {payload:?}");
        u16::from_be_bytes([payload[0], payload[1]])
    }

    /// After the server's Close: answer it and read to the end; true when the
    /// server then closed the TCP connection (EOF or reset), nothing else sent.
    pub async fn answer_close_and_see_eof(&mut self) -> bool {
        let _ = self.send(&frame(true, false, 0x8, &[])).await;
        self.frame().await.is_none()
    }
}
