//! An echo server: every message comes back unchanged (text stays text), on any path.
//!
//! ```sh
//! cargo run --release --example echo                     # ws://127.0.0.1:9001
//! cargo run --release --example echo -- --bind 127.0.0.1:9002
//! cargo run --release --example echo -- --config config/default.toml
//! cargo run --release --example echo -- --workers 1      # one worker thread (benchmarks)
//! cargo run --release --example echo -- --standalone     # without actix-web (Server::listen)
//! cargo run --release --example echo -- --reuse-port     # SO_REUSEPORT: several processes, one port
//! cargo run --release --example echo -- --tls-cert cert.pem --tls-key key.pem   # wss://
//! ```
//!
//! With `--tls-cert` and `--tls-key` (PEM files) it serves `wss://`: the standalone
//! server through `[server.tls]`, the route through actix-web's rustls listener
//! (with `ws::on_connect`, which finds the socket inside the TLS stream).
//!
//! The external conformance suite and the benchmarks run against it, so it turns on
//! every protocol feature the crate has. Ctrl-C closes every connection with 1001
//! (going away) before the server stops.

use std::time::Duration;

use actix_web::{web, App, HttpServer, Responder};
use websocket_driver as ws;

/// What actix-web's rustls listener hands `on_connect`.
type TlsStream = actix_tls::accept::rustls_0_23::TlsStream<actix_web::rt::net::TcpStream>;

/// One per connection: every message goes back as it came.
#[derive(Debug, Default)]
pub struct Echo;

impl ws::Endpoint for Echo {
    fn on_message(&mut self, conn: &ws::Conn, msg: ws::Message, _: &mut ws::EndpointContext<Self>) {
        // Back-pressure or a closing connection: the message is dropped, as an
        // echo may; the peer learns of it by the missing echo.
        conn.send(msg);
    }
}

/// The route: every path serves the WebSocket handshake with the app's `ws::Server`.
pub async fn route(req: ws::Upgrade, server: web::Data<ws::Server>) -> impl Responder {
    server.start(ws::endpoint(Echo), &req)
}

struct Args {
    bind: String,
    config: Option<String>,
    workers: Option<usize>,
    standalone: bool,
    reuse_port: bool,
    tls_cert: Option<String>,
    tls_key: Option<String>,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        bind: "127.0.0.1:9001".into(),
        config: None,
        workers: None,
        standalone: false,
        reuse_port: false,
        tls_cert: None,
        tls_key: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--bind" => args.bind = it.next().ok_or("--bind needs ADDR")?,
            "--config" => args.config = Some(it.next().ok_or("--config needs FILE")?),
            "--workers" => {
                let n = it.next().ok_or("--workers needs N")?;
                args.workers = Some(n.parse().map_err(|_| "--workers: not a number")?);
            }
            "--standalone" => args.standalone = true,
            "--reuse-port" => args.reuse_port = true,
            "--tls-cert" => args.tls_cert = Some(it.next().ok_or("--tls-cert needs FILE")?),
            "--tls-key" => args.tls_key = Some(it.next().ok_or("--tls-key needs FILE")?),
            "-h" | "--help" => {
                return Err(
                    "usage: echo [--bind ADDR] [--config FILE.toml] [--workers N] [--standalone] \
                     [--reuse-port] [--tls-cert FILE.pem --tls-key FILE.pem]"
                        .into(),
                );
            }
            other => return Err(format!("unknown argument {other:?}; try --help")),
        }
    }
    if args.tls_cert.is_some() != args.tls_key.is_some() {
        return Err("--tls-cert and --tls-key go together".into());
    }
    Ok(args)
}

/// A listener on `addr` with SO_REUSEPORT set before it binds (`--reuse-port`):
/// several echo processes then listen on one port, and the kernel spreads the
/// connections over them (scripts/soak.sh runs the 100,000-connection soak so).
fn reuse_port_listener(addr: &str) -> std::io::Result<std::net::TcpListener> {
    let addr: std::net::SocketAddr = addr
        .parse()
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    let socket = if addr.is_ipv4() {
        actix_web::rt::net::TcpSocket::new_v4()?
    } else {
        actix_web::rt::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.set_reuseport(true)?;
    socket.bind(addr)?;
    // The kernel caps the backlog at net.core.somaxconn.
    socket.listen(4096)?.into_std()
}

/// Give large buffers back to the system when they are freed (glibc only).
///
/// glibc serves allocations of 128 KiB and more with `mmap`, and returns them on
/// `free`, until the first such block is freed: from then on it raises that
/// threshold to the freed size, and later large buffers come from its heap, whose
/// free space in the middle is not returned. After a burst of 1 MiB messages on
/// 1,000 connections the standalone server kept 202 MiB of a 12 MiB idle resident
/// set that way, although it had freed every buffer (tests/hostile's burst case).
/// A fixed threshold (what `MALLOC_MMAP_THRESHOLD_=131072` does) keeps them
/// mapped: back to 12.6 MiB. A process-wide setting, so the application's choice,
/// not the library's; another allocator (jemalloc, mimalloc) returns memory too.
fn return_large_buffers_to_the_system() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt sets one parameter of the allocator, under the allocator's
    // own lock; no memory is touched.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 128 * 1024);
    }
}

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    return_large_buffers_to_the_system();
    let args =
        parse_args().map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    let settings: ws::Settings = match &args.config {
        Some(path) => {
            let text = std::fs::read_to_string(path)?;
            toml::from_str(&text)
                .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?
        }
        None => {
            let mut settings = ws::Settings::default();
            // Every protocol feature on: permessage-deflate too (the library's default
            // is off). A `--config` file says for itself.
            settings.deflate = ws::DeflateSettings::on();
            settings
        }
    };
    let mut settings = settings;
    if let (Some(cert), Some(key)) = (&args.tls_cert, &args.tls_key) {
        settings.server.tls = Some(ws::TlsSettings::new(cert, key));
    }
    settings
        .check()
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
    let scheme = if settings.server.tls.is_some() {
        "wss"
    } else {
        "ws"
    };
    let drain = Duration::from_secs(5);
    if args.standalone {
        // WebSocket only, without actix-web (ws::Server::listen).
        let ws_server = ws::Server::with_settings(settings);
        let workers = args.workers.unwrap_or(0);
        let factory = |_: &ws::Request| Ok(ws::endpoint(Echo));
        let server = if args.reuse_port {
            ws_server.listen_on(reuse_port_listener(&args.bind)?, workers, factory)?
        } else {
            ws_server.listen(&args.bind, workers, factory)?
        };
        // listen answers Ctrl-C and SIGTERM itself: Close 1001, a drain, a stop.
        eprintln!("echo server (standalone) on {scheme}://{}", args.bind);
        return server.await;
    }
    // The route's opening handshake gets the same time as the standalone path's:
    // actix-web's request head timeout (a slow peer gets 408 and the close).
    let handshake_timeout = settings.connection.handshake_timeout;
    let tls = match &settings.server.tls {
        Some(files) => Some(ws::server::tls_server_config(files)?),
        None => None,
    };
    let ws_server = ws::Server::with_settings(settings);
    let server_settings = web::Data::new(ws_server.clone());
    let mut server = HttpServer::new(move || {
        App::new()
            .app_data(server_settings.clone())
            .default_service(web::get().to(route))
    })
    .on_connect(|conn, data| {
        // The connection closes its TCP socket as soon as the WebSocket is done,
        // and frees the socket of a peer that stopped reading.
        ws::on_connect(conn, data);
        // actix-web 4.18 no longer sets TCP_NODELAY: small echoes would wait for Nagle.
        if let Some(tcp) = conn.downcast_ref::<actix_web::rt::net::TcpStream>() {
            let _ = tcp.set_nodelay(true);
        }
        if let Some(tls) = conn.downcast_ref::<TlsStream>() {
            let _ = tls.get_ref().0.set_nodelay(true);
        }
    })
    .client_request_timeout(handshake_timeout)
    .disable_signals();
    if let Some(workers) = args.workers {
        server = server.workers(workers);
    }
    let listener = if args.reuse_port {
        reuse_port_listener(&args.bind)?
    } else {
        std::net::TcpListener::bind(&args.bind)?
    };
    let server = match tls {
        Some(config) => server.listen_rustls_0_23(listener, config)?,
        None => server.listen(listener)?,
    }
    .run();
    let handle = server.handle();
    actix_web::rt::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            ws_server.shutdown(drain).await;
            handle.stop(true).await;
        }
    });
    eprintln!("echo server on {scheme}://{}", args.bind);
    server.await
}
