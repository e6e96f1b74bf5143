//! Scale soak: the echo example (release build) holding as many
//! idle connections as one process may, with the keep-alive ping of
//! `tests/soak/soak.toml`, for [`HOLD`]; then 100,000 over several server
//! processes sharing the port (`--reuse-port`, SO_REUSEPORT), the clients in
//! several processes (benches/loadgen `--idle N --control`), each from its own
//! loopback source address (127.0.B.2, 127.0.B.3, ..., see [`source`]: each
//! address has its own ephemeral ports).
//!
//! Each test reports, per server process, the resident set per connection after the
//! handshakes and after one message each plus a quiet second, its descriptors, and
//! its CPU time per second of heartbeats (from `/proc/<pid>/stat`), and asserts:
//! every connection opened and still open at the end (the kernel's table of
//! established connections, the servers' sockets during the hold, and the
//! clients' count of closes), every ping answered, the number of pings each
//! connection got against the ping interval, and the memory per connection against
//! what a connection is known to hold (see [`per_connection_bound`]).
//!
//! The descriptor limit is read at run time (`getrlimit`): one process may hold
//! that many, so the connections per process are that minus a margin.
//!
//! Run by `bash scripts/soak.sh` (it builds the release examples and the load
//! generator); `scripts/test-all.sh` leaves these out (`--skip soak_`): they take
//! about 2 minutes each.

#[path = "hostile/harness.rs"]
mod harness;
#[path = "support/raw_ws.rs"]
mod raw_ws;

use std::{
    io::{BufRead, BufReader, Write},
    net::SocketAddr,
    path::PathBuf,
    process::{Child, ChildStdin, Command, Stdio},
    sync::mpsc,
    time::{Duration, Instant},
};

use websocket_driver as ws;

/// The configuration the servers run with.
const CONFIG: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/soak/soak.toml");

/// How long the connections are held idle once each carried its message.
const HOLD: Duration = Duration::from_secs(60);

/// Descriptors a process keeps for itself besides its connections: stdio, the
/// listener, epoll and event descriptors, the runtime's (the servers hold 10-20
/// when idle; the margin leaves room for what the runtime opens later).
const FD_MARGIN: u64 = 200;

/// The heap one idle connection of the standalone server holds, at most
/// (`tests/idle_memory.rs` asserts it, with the keep-alive ping on, and the same
/// after a message: the read buffer goes back to the thread).
const CONNECTION_HEAP: u64 = 4096;

/// What actix-http's HTTP/1 dispatcher keeps per connection on the route, on top
/// of the connection's own: its read and write buffers, `HW_BUFFER_SIZE` (8 KiB)
/// each (actix-http 3.20, src/h1/dispatcher.rs).
const DISPATCHER_BUFFERS: u64 = 2 * 8 * 1024;

/// The resident set one connection may add to its server: what it holds, doubled
/// for the allocator (glibc rounds each chunk up and keeps freed chunks in its
/// bins; its size classes never double a request, so twice the requests holds).
fn per_connection_bound(standalone: bool) -> u64 {
    let held = if standalone {
        CONNECTION_HEAP
    } else {
        CONNECTION_HEAP + DISPATCHER_BUFFERS
    };
    2 * held
}

fn settings() -> ws::Settings {
    toml::from_str(&std::fs::read_to_string(CONFIG).unwrap()).unwrap()
}

/// The descriptors one process may hold (the soft limit, raised to the hard one
/// first: the children inherit it).
fn fd_limit() -> u64 {
    let (soft, hard) = rlimit::getrlimit(rlimit::Resource::NOFILE).unwrap();
    if soft < hard {
        rlimit::setrlimit(rlimit::Resource::NOFILE, hard, hard).unwrap();
    }
    rlimit::getrlimit(rlimit::Resource::NOFILE).unwrap().0
}

/// The local ephemeral port range (`net.ipv4.ip_local_port_range`): how many
/// connections one source address may open to one server address.
fn ephemeral_ports() -> u64 {
    let range = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").unwrap();
    let mut it = range.split_whitespace().map(|n| n.parse::<u64>().unwrap());
    let (low, high) = (it.next().unwrap(), it.next().unwrap());
    high - low + 1
}

/// Clock ticks per second, the unit of `/proc/<pid>/stat`'s times.
fn clock_ticks() -> u64 {
    let out = Command::new("getconf").arg("CLK_TCK").output().unwrap();
    String::from_utf8(out.stdout)
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

fn loadgen() -> PathBuf {
    let path = std::env::var_os("SOAK_LOADGEN")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/benches/loadgen/target/release/wsd-loadgen"
            ))
        });
    assert!(
        path.exists(),
        "{} is missing: (cd benches/loadgen && cargo build --release)",
        path.display()
    );
    path
}

/// The inodes of a process's sockets (its `socket:[inode]` descriptors).
fn socket_inodes(pid: u32) -> Vec<u64> {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .flatten()
        .filter_map(|e| {
            let link = std::fs::read_link(e.path()).ok()?;
            link.to_str()?
                .strip_prefix("socket:[")?
                .strip_suffix(']')?
                .parse()
                .ok()
        })
        .collect()
}

/// The inodes of the established TCP connections whose local port is `port`
/// (`/proc/net/tcp`, state `01`): the servers' ends of the connections.
fn established(port: u16) -> std::collections::HashSet<u64> {
    let table = std::fs::read_to_string("/proc/net/tcp").unwrap();
    let local = format!(":{port:04X}");
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            (f[1].ends_with(&local) && f[3] == "01").then(|| f[9].parse().unwrap())
        })
        .collect()
}

/// An echo server process, killed when dropped.
struct EchoServer {
    child: Child,
    /// Descriptors and resident set once it listened, before any connection (the
    /// runtime may open a descriptor or two more later: connections are counted
    /// from the kernel's table, [`established`]).
    base_fds: u64,
    base_rss: u64,
}

impl EchoServer {
    fn start(addr: SocketAddr, standalone: bool, reuse_port: bool) -> EchoServer {
        let mut cmd =
            harness::example_command(&harness::example_binary("echo", "release"), addr, CONFIG);
        if standalone {
            cmd.arg("--standalone");
        }
        if reuse_port {
            cmd.arg("--reuse-port");
        }
        let child = harness::spawn_listening(&mut cmd, "echo");
        let pid = child.id();
        EchoServer {
            base_fds: harness::fds(pid) as u64,
            base_rss: harness::status_kib(pid, "VmRSS:") * 1024,
            child,
        }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn fds(&self) -> u64 {
        harness::fds(self.pid()) as u64
    }

    fn rss(&self) -> u64 {
        harness::status_kib(self.pid(), "VmRSS:") * 1024
    }

    /// Its connections: its sockets that are established connections on the
    /// server's port (`open`: [`established`] read once for every server).
    fn connections(&self, open: &std::collections::HashSet<u64>) -> u64 {
        socket_inodes(self.pid())
            .iter()
            .filter(|i| open.contains(i))
            .count() as u64
    }

    /// Its sockets: the listener's and its connections' (read each second of the
    /// hold: a connection lost shows as one fewer).
    fn sockets(&self) -> u64 {
        socket_inodes(self.pid()).len() as u64
    }
}

impl Drop for EchoServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What a load generator's `pings` line says.
#[derive(Debug, Default, Clone, Copy)]
struct Pings {
    total: u64,
    min: u64,
    max: u64,
    pongs: u64,
    closed: u64,
    failed: u64,
}

impl Pings {
    fn parse(line: &str) -> Pings {
        let field = |name: &str| -> u64 {
            line.split_whitespace()
                .find_map(|w| w.strip_prefix(name)?.strip_prefix('='))
                .unwrap_or_else(|| panic!("no {name} in {line:?}"))
                .parse()
                .unwrap()
        };
        Pings {
            total: field("total"),
            min: field("min"),
            max: field("max"),
            pongs: field("pongs"),
            closed: field("closed"),
            failed: field("failed"),
        }
    }
}

/// A load generator process holding `count` idle connections from `source`,
/// driven over its stdin (`echo`, `stats`), its stdout read line by line.
struct Clients {
    child: Child,
    stdin: ChildStdin,
    lines: mpsc::Receiver<String>,
    count: u64,
}

impl Clients {
    fn start(server: SocketAddr, source: &str, count: u64) -> Clients {
        let mut child = Command::new(loadgen())
            .args([
                "--idle",
                &count.to_string(),
                "--control",
                "--source",
                source,
                "--url",
                &format!("ws://{server}/"),
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start the load generator");
        let stdin = child.stdin.take().unwrap();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in stdout.lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Clients {
            child,
            stdin,
            lines,
            count,
        }
    }

    /// The next line that starts with `prefix` (the generator gives up on its own
    /// after 120 s of handshakes; this waits 300 s at most).
    fn expect(&mut self, prefix: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(300);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if line.starts_with(prefix) => return line,
                Ok(line) => eprintln!("[loadgen] {line}"),
                Err(e) => panic!(
                    "loadgen: no {prefix:?} line ({e}); exit {:?}",
                    self.child.try_wait()
                ),
            }
        }
    }

    fn command(&mut self, cmd: &str) {
        writeln!(self.stdin, "{cmd}").unwrap();
        self.stdin.flush().unwrap();
    }
}

impl Drop for Clients {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What one server process held, at each step.
#[derive(Debug)]
struct Figures {
    connections: u64,
    rss_per_conn_open: u64,
    rss_per_conn_message: u64,
    fds_at_end: u64,
    peak_rss: u64,
    cpu_per_sec: f64,
}

/// Hold `servers.len()` servers' worth of connections, opened by one client
/// process per entry of `clients` (source address, count); asserts and returns
/// each server's figures, and the clients' pings.
fn soak(servers: &[EchoServer], clients: &[(String, u64)], addr: SocketAddr) -> Vec<Figures> {
    let interval = settings()
        .connection
        .ping_interval
        .expect("soak.toml sets a keep-alive ping");
    let total: u64 = clients.iter().map(|(_, n)| n).sum();
    let began = Instant::now();
    // One client process after the other: all of them handshaking at once on 2
    // cores starve the servers' timers and the clients' pongs alike.
    let mut procs: Vec<Clients> = Vec::new();
    for (source, n) in clients {
        let mut c = Clients::start(addr, source, *n);
        let line = c.expect("open ");
        assert!(line.starts_with(&format!("open {n} ")), "{line}");
        eprintln!("{source}: {line}");
        procs.push(c);
    }
    let opened = began.elapsed();
    // Every handshake done: each server holds its share of the connections (the
    // last accepts may still be on their way to the kernel's table and /proc).
    let port = addr.port();
    let count = |servers: &[EchoServer]| -> Vec<u64> {
        let open = established(port);
        servers.iter().map(|s| s.connections(&open)).collect()
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    let open_conns = loop {
        let now = count(servers);
        if now.iter().sum::<u64>() == total {
            break now;
        }
        assert!(
            Instant::now() < deadline,
            "servers hold {now:?}, not {total} connections"
        );
        std::thread::sleep(Duration::from_millis(10));
    };
    let open_rss: Vec<u64> = servers.iter().map(EchoServer::rss).collect();
    eprintln!(
        "{total} connections open in {:.1} s: {open_conns:?} per server",
        opened.as_secs_f64()
    );

    // One message each, echoed, then a quiet second.
    for c in &mut procs {
        c.command("echo");
    }
    for c in &mut procs {
        let line = c.expect("echoed ");
        assert_eq!(line, format!("echoed {}", c.count));
    }
    let echoed_at = Instant::now();
    std::thread::sleep(Duration::from_secs(1));
    let message_rss: Vec<u64> = servers.iter().map(EchoServer::rss).collect();

    // The hold: nothing but keep-alive pings and their pongs.
    let ticks = clock_ticks();
    let cpu_before: Vec<u64> = servers
        .iter()
        .map(|s| harness::cpu_ticks(s.pid()))
        .collect();
    let hold_began = Instant::now();
    let open_sockets: Vec<u64> = servers.iter().map(EchoServer::sockets).collect();
    let mut lowest = open_sockets.clone();
    while hold_began.elapsed() < HOLD {
        std::thread::sleep(Duration::from_secs(1));
        for (low, s) in lowest.iter_mut().zip(servers) {
            *low = (*low).min(s.sockets());
        }
    }
    let held = hold_began.elapsed();
    let cpu_after: Vec<u64> = servers
        .iter()
        .map(|s| harness::cpu_ticks(s.pid()))
        .collect();
    let end_fds: Vec<u64> = servers.iter().map(EchoServer::fds).collect();
    let end_conns = count(servers);
    let peak_rss: Vec<u64> = servers
        .iter()
        .map(|s| harness::status_kib(s.pid(), "VmHWM:") * 1024)
        .collect();
    for c in &mut procs {
        c.command("stats");
    }
    let stats: Vec<Pings> = procs
        .iter_mut()
        .map(|c| Pings::parse(&c.expect("pings ")))
        .collect();
    let life = began.elapsed();
    let quiet = echoed_at.elapsed();

    // Every connection open at the end, none closed on the way.
    assert_eq!(end_conns, open_conns, "connections at the end of the hold");
    assert_eq!(
        lowest, open_sockets,
        "sockets at their lowest during the hold"
    );
    for (s, (source, n)) in stats.iter().zip(clients) {
        eprintln!("clients from {source}: {s:?}");
        assert_eq!((s.closed, s.failed), (0, 0), "{source}: connections closed");
        // Every ping answered (and an unanswered one would have closed its
        // connection at the idle timeout, 20 s after it).
        assert_eq!(s.pongs, s.total, "{source}: pings answered");
        // A ping after each `interval` without input: after the echo, at least
        // one per whole interval of the quiet time but the last (it may be on its
        // way); never two within one interval over the connection's life.
        let least =
            ((quiet.as_secs_f64() / interval.as_secs_f64()).floor() as u64).saturating_sub(1);
        let most = (life.as_secs_f64() / interval.as_secs_f64()).floor() as u64;
        assert!(
            s.min >= least && s.max <= most,
            "{source}: {} to {} pings per connection, not within {least}..={most}",
            s.min,
            s.max
        );
        assert!(s.total >= least * n, "{source}: {} pings", s.total);
    }

    let mut figures = Vec::new();
    for (i, s) in servers.iter().enumerate() {
        let n = open_conns[i].max(1);
        let f = Figures {
            connections: open_conns[i],
            rss_per_conn_open: open_rss[i].saturating_sub(s.base_rss) / n,
            rss_per_conn_message: message_rss[i].saturating_sub(s.base_rss) / n,
            fds_at_end: end_fds[i],
            peak_rss: peak_rss[i],
            cpu_per_sec: (cpu_after[i] - cpu_before[i]) as f64 / ticks as f64 / held.as_secs_f64(),
        };
        eprintln!(
            "server {i} (pid {}): {} connections, {} B/conn after the handshake, {} B/conn \
             after a message and a quiet second (base {:.1} MiB, peak {:.1} MiB), {} fds \
             (base {}), {:.4} CPU-s per s of heartbeats ({:.0} pings/s expected)",
            s.pid(),
            f.connections,
            f.rss_per_conn_open,
            f.rss_per_conn_message,
            s.base_rss as f64 / 1048576.0,
            f.peak_rss as f64 / 1048576.0,
            f.fds_at_end,
            s.base_fds,
            f.cpu_per_sec,
            f.connections as f64 / interval.as_secs_f64(),
        );
        figures.push(f);
    }
    let pings: u64 = stats.iter().map(|s| s.total).sum();
    let cpu: f64 = cpu_after
        .iter()
        .zip(&cpu_before)
        .map(|(a, b)| (a - b) as f64 / ticks as f64)
        .sum();
    eprintln!(
        "{total} connections, {pings} pings in all, servers' CPU over the {:.0} s hold: \
         {cpu:.2} s ({:.1} us per connection-interval)",
        held.as_secs_f64(),
        cpu * 1e6 / (total as f64 * held.as_secs_f64() / interval.as_secs_f64())
    );
    figures
}

/// The memory per connection against [`per_connection_bound`].
fn check_memory(figures: &[Figures], standalone: bool) {
    let bound = per_connection_bound(standalone);
    for f in figures {
        assert!(
            f.rss_per_conn_open <= bound && f.rss_per_conn_message <= bound,
            "{} / {} bytes per connection, bound {bound}",
            f.rss_per_conn_open,
            f.rss_per_conn_message
        );
    }
}

/// The loopback source addresses of a test: `127.0.BLOCK.2`, `127.0.BLOCK.3`, ...
/// Each test has its own block: the client side closes first, so the ports of a
/// run stay in TIME_WAIT for 60 s, and a second run from the same address within
/// that minute finds too few left (bind: address in use).
fn source(block: u8, i: u64) -> String {
    format!("127.0.{block}.{}", 2 + i)
}

/// One server process with as many connections as it may hold.
fn one_process(standalone: bool, block: u8) {
    let limit = fd_limit();
    let addr: SocketAddr = format!("127.0.0.1:{}", harness::free_port())
        .parse()
        .unwrap();
    let server = EchoServer::start(addr, standalone, false);
    // The server's own descriptors and a margin; the client process holds as many
    // connections plus its own (the same margin covers them).
    let count = 19_000.min(limit - server.base_fds - FD_MARGIN);
    assert!(
        count <= ephemeral_ports(),
        "one source address has too few ports"
    );
    eprintln!(
        "descriptor limit {limit}: {count} connections (server holds {} idle)",
        server.base_fds
    );
    let figures = soak(
        std::slice::from_ref(&server),
        &[(source(block, 0), count)],
        addr,
    );
    assert_eq!(figures[0].connections, count);
    assert!(
        figures[0].fds_at_end <= limit,
        "{} descriptors",
        figures[0].fds_at_end
    );
    check_memory(&figures, standalone);
}

#[test]
#[ignore = "needs release builds, 19,000 descriptors and 2 minutes; scripts/soak.sh runs it"]
fn soak_19000_idle_connections_with_heartbeat_on_the_route() {
    one_process(false, 1);
}

#[test]
#[ignore = "needs release builds, 19,000 descriptors and 2 minutes; scripts/soak.sh runs it"]
fn soak_19000_idle_connections_with_heartbeat_standalone() {
    one_process(true, 2);
}

/// [`TOTAL`] connections over server processes sharing one port.
fn many_processes(standalone: bool, block: u8) {
    const TOTAL: u64 = 100_000;
    let limit = fd_limit();
    let per_process = limit - FD_MARGIN;
    // SO_REUSEPORT spreads connections by a hash of the addresses: with n servers
    // each gets TOTAL/n, give or take a few sqrt(TOTAL/n). A third of headroom
    // keeps every server under its limit.
    let servers_needed = (TOTAL * 3 / 2).div_ceil(per_process);
    // Each client process: at most its descriptor limit, and one source address's
    // ephemeral ports.
    let per_client = per_process.min(ephemeral_ports());
    let clients_needed = TOTAL.div_ceil(per_client);
    let addr: SocketAddr = format!("127.0.0.1:{}", harness::free_port())
        .parse()
        .unwrap();
    let servers: Vec<EchoServer> = (0..servers_needed)
        .map(|_| EchoServer::start(addr, standalone, true))
        .collect();
    let clients: Vec<(String, u64)> = (0..clients_needed)
        .map(|i| {
            let n = TOTAL / clients_needed + u64::from(i < TOTAL % clients_needed);
            (source(block, i), n)
        })
        .collect();
    eprintln!(
        "descriptor limit {limit}: {servers_needed} servers, {clients_needed} client processes \
         ({clients:?})"
    );
    let figures = soak(&servers, &clients, addr);
    assert_eq!(figures.iter().map(|f| f.connections).sum::<u64>(), TOTAL);
    for (f, s) in figures.iter().zip(&servers) {
        assert!(f.connections > 0, "SO_REUSEPORT gave a server nothing");
        assert!(
            f.fds_at_end <= limit,
            "server {}: {} descriptors",
            s.pid(),
            f.fds_at_end
        );
    }
    check_memory(&figures, standalone);
}

#[test]
#[ignore = "needs release builds, 100,000 connections in about 14 processes and 3 minutes; scripts/soak.sh runs it"]
fn soak_100000_idle_connections_over_reuse_port_servers_standalone() {
    many_processes(true, 3);
}

#[test]
#[ignore = "needs release builds, 100,000 connections in about 14 processes and 3 minutes; scripts/soak.sh runs it"]
fn soak_100000_idle_connections_over_reuse_port_servers_on_the_route() {
    many_processes(false, 4);
}
