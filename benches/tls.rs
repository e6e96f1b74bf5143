//! `ws://` and `wss://` side by side on the standalone server, in one run:
//! the opening handshake's time (TCP connect, TLS, upgrade: median and p99 of 200
//! in a row) and echoes (50 connections, one 20-byte message each in flight, 3 s)
//! per second and per CPU-second of the server's worker thread (read from
//! `/proc`, so that a busy machine shows less in the first and the same in the
//! second), the server with one worker thread, the clients on one thread.
//!
//! ```sh
//! cargo bench --bench tls
//! ```

use std::{
    net::SocketAddr,
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use tokio::{
    io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt},
    net::TcpStream,
};
use tokio_rustls::rustls;
use websocket_driver as ws;

const CONNECTIONS: usize = 50;
const SIZE: usize = 20;
const SECONDS: u64 = 3;
const HANDSHAKES: usize = 200;

struct Echo;

impl ws::Endpoint for Echo {
    fn on_message(&mut self, conn: &ws::Conn, msg: ws::Message, _: &mut ws::EndpointContext<Self>) {
        conn.send(msg);
    }
}

/// An echo server on 127.0.0.1:0 with one worker, in a thread of its own; its
/// address, and the worker thread's id once it served a connection.
fn serve(server: ws::Server) -> (SocketAddr, Arc<AtomicU64>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let worker = Arc::new(AtomicU64::new(0));
    let seen = worker.clone();
    std::thread::spawn(move || {
        actix_rt::System::new().block_on(async move {
            server
                .listen_on(listener, 1, move |_: &ws::Request| {
                    // SAFETY: gettid has no preconditions.
                    seen.store(unsafe { libc::gettid() } as u64, Ordering::Relaxed);
                    Ok(ws::endpoint(Echo))
                })
                .unwrap()
                .await
        })
    });
    (addr, worker)
}

/// CPU time the thread `tid` of this process used so far, in seconds.
fn thread_cpu(tid: u64) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/self/task/{tid}/stat")).unwrap();
    // After the command's closing parenthesis: field 3 on; utime and stime are the
    // 14th and 15th fields, in clock ticks.
    let fields: Vec<&str> = stat[stat.rfind(')').unwrap() + 2..].split(' ').collect();
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    // SAFETY: sysconf has no preconditions.
    ticks as f64 / unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64
}

trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// Connect (TLS when `tls` is given) and upgrade; the stream, once the 101 is in.
async fn open(addr: SocketAddr, tls: Option<&tokio_rustls::TlsConnector>) -> Box<dyn Io> {
    let tcp = TcpStream::connect(addr).await.unwrap();
    tcp.set_nodelay(true).unwrap();
    let mut io: Box<dyn Io> = match tls {
        Some(connector) => {
            let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
            Box::new(connector.connect(name, tcp).await.unwrap())
        }
        None => Box::new(tcp),
    };
    io.write_all(
        b"GET / HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
          Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
    )
    .await
    .unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        assert_eq!(
            io.read(&mut byte).await.unwrap(),
            1,
            "closed in the handshake"
        );
        head.push(byte[0]);
    }
    assert!(head.starts_with(b"HTTP/1.1 101"));
    io
}

/// Median and p99 of `HANDSHAKES` handshakes in a row, in microseconds.
async fn handshakes(addr: SocketAddr, tls: Option<&tokio_rustls::TlsConnector>) -> (u128, u128) {
    let mut times = Vec::with_capacity(HANDSHAKES);
    for _ in 0..HANDSHAKES {
        let start = Instant::now();
        let io = open(addr, tls).await;
        times.push(start.elapsed().as_micros());
        drop(io);
    }
    times.sort_unstable();
    (times[times.len() / 2], times[times.len() * 99 / 100])
}

/// Echoes per second and per CPU-second of the server's worker over
/// `CONNECTIONS` connections for `SECONDS`.
async fn echoes(
    (addr, worker): &(SocketAddr, Arc<AtomicU64>),
    tls: Option<&tokio_rustls::TlsConnector>,
) -> (f64, f64) {
    let addr = *addr;
    let count = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for _ in 0..CONNECTIONS {
        let mut io = open(addr, tls).await;
        let (count, stop) = (count.clone(), stop.clone());
        tasks.push(tokio::spawn(async move {
            // A masked binary frame of SIZE bytes (mask 0: the payload as is).
            let mut frame = vec![0x82, 0x80 | SIZE as u8, 0, 0, 0, 0];
            frame.extend(std::iter::repeat_n(7u8, SIZE));
            let mut echo = [0u8; 2 + SIZE];
            while !stop.load(Ordering::Relaxed) {
                io.write_all(&frame).await.unwrap();
                io.read_exact(&mut echo).await.unwrap();
                count.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    let tid = worker.load(Ordering::Relaxed);
    let start = Instant::now();
    let cpu_before = thread_cpu(tid);
    let before = count.load(Ordering::Relaxed);
    tokio::time::sleep(Duration::from_secs(SECONDS)).await;
    let done = count.load(Ordering::Relaxed) - before;
    let cpu = thread_cpu(tid) - cpu_before;
    let rate = (
        done as f64 / start.elapsed().as_secs_f64(),
        done as f64 / cpu,
    );
    stop.store(true, Ordering::Relaxed);
    for task in tasks {
        let _ = task.await;
    }
    rate
}

fn main() {
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(certified.signing_key.serialize_der().into());
    let provider = ws::tls::crypto_provider();
    let mut server_config = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![certified.cert.der().clone()], key)
        .unwrap();
    server_config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let plain = serve(ws::Server::new());
    let secure = serve(ws::Server::new().tls_config(Arc::new(server_config)));

    let mut roots = rustls::RootCertStore::empty();
    roots.add(certified.cert.der().clone()).unwrap();
    let mut client_config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    client_config.alpn_protocols = vec![b"http/1.1".to_vec()];
    // Each handshake a full one, as a new visitor's.
    client_config.resumption = rustls::client::Resumption::disabled();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(client_config));

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let (plain_median, plain_p99) = handshakes(plain.0, None).await;
        let (tls_median, tls_p99) = handshakes(secure.0, Some(&connector)).await;
        let (plain_rate, plain_per_cpu) = echoes(&plain, None).await;
        let (tls_rate, tls_per_cpu) = echoes(&secure, Some(&connector)).await;
        println!(
            "| standalone | handshake median | handshake p99 | echoes/s ({CONNECTIONS} conns, {SIZE} B) | echoes per server CPU-second |"
        );
        println!("|---|---|---|---|---|");
        println!("| ws:// | {plain_median} µs | {plain_p99} µs | {plain_rate:.0} | {plain_per_cpu:.0} |");
        println!(
            "| wss:// (TLS 1.3, ring) | {tls_median} µs | {tls_p99} µs | {tls_rate:.0} | {tls_per_cpu:.0} |"
        );
        println!(
            "wss/ws: handshake median {:.2}x, echoes/s {:.2}x, echoes per server CPU-second {:.2}x",
            tls_median as f64 / plain_median as f64,
            tls_rate / plain_rate,
            tls_per_cpu / plain_per_cpu
        );
    });
}
