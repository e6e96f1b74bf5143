//! An echo server: every message comes back unchanged (text stays text), on any path.
//!
//! ```sh
//! cargo run --release --example echo                     # ws://127.0.0.1:9001
//! cargo run --release --example echo -- --bind 127.0.0.1:9002
//! cargo run --release --example echo -- --config config/default.toml
//! cargo run --release --example echo -- --workers 1      # one worker thread (benchmarks)
//! cargo run --release --example echo -- --standalone     # without actix-web (Server::listen)
//! ```
//!
//! The external conformance suite and the benchmarks run against it, so it turns on
//! every protocol feature the crate has. Ctrl-C closes every connection with 1001
//! (going away) before the server stops.

use std::time::Duration;

use actix_web::{web, App, HttpServer, Responder};
use websocket_driver as ws;

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
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        bind: "127.0.0.1:9001".into(),
        config: None,
        workers: None,
        standalone: false,
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
            "-h" | "--help" => {
                return Err(
                    "usage: echo [--bind ADDR] [--config FILE.toml] [--workers N] [--standalone]"
                        .into(),
                );
            }
            other => return Err(format!("unknown argument {other:?}; try --help")),
        }
    }
    Ok(args)
}

#[actix_web::main]
async fn main() -> std::io::Result<()> {
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
    settings
        .check()
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
    let drain = Duration::from_secs(5);
    if args.standalone {
        // WebSocket only, without actix-web (ws::Server::listen).
        let ws_server = ws::Server::with_settings(settings);
        let server = ws_server.listen(&args.bind, args.workers.unwrap_or(0), |_| {
            Ok(ws::endpoint(Echo))
        })?;
        let handle = server.handle();
        actix_web::rt::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                ws_server.shutdown(drain).await;
                handle.stop(true).await;
            }
        });
        eprintln!("echo server (standalone) on ws://{}", args.bind);
        return server.await;
    }
    // The route's opening handshake gets the same time as the standalone path's:
    // actix-web's request head timeout (a slow peer gets 408 and the close).
    let handshake_timeout = settings.connection.handshake_timeout;
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
    })
    .client_request_timeout(handshake_timeout)
    .disable_signals();
    if let Some(workers) = args.workers {
        server = server.workers(workers);
    }
    let server = server.bind(&args.bind)?.run();
    let handle = server.handle();
    actix_web::rt::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            ws_server.shutdown(drain).await;
            handle.stop(true).await;
        }
    });
    eprintln!("echo server on ws://{}", args.bind);
    server.await
}
