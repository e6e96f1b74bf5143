//! The echo server of `examples/echo.rs` written as an [`ws::AsyncEndpoint`]: the
//! same settings (permessage-deflate on), the route or `--standalone`, so the two
//! can be measured side by side (instructions per echo).
//!
//! ```sh
//! cargo run --release --example echo_async                     # ws://127.0.0.1:9001
//! cargo run --release --example echo_async -- --standalone     # without actix-web
//! cargo run --release --example echo_async -- --workers 1 --bind 127.0.0.1:9002
//! cargo run --release --example echo_async -- --wait           # every handler waits once
//! ```
//!
//! By default the handler does not wait, so it ends in the poll that starts it (the
//! async form's own cost); with `--wait` each one waits for the next turn of the
//! runtime (`tokio::task::yield_now`), as a handler awaiting a lookup would: the
//! connection pauses its reading until it ends.

use actix_web::{web, App, HttpServer, Responder};
use websocket_driver as ws;

/// One per connection: every message goes back as it came, after `wait`ing once.
#[derive(Debug, Clone, Copy)]
struct Echo {
    wait: bool,
}

impl ws::AsyncEndpoint for Echo {
    async fn on_message(&mut self, conn: &ws::Conn, msg: ws::Message) {
        if self.wait {
            tokio::task::yield_now().await;
        }
        conn.send(msg);
    }
}

async fn route(
    req: ws::Upgrade,
    server: web::Data<ws::Server>,
    echo: web::Data<Echo>,
) -> impl Responder {
    server.start(ws::async_endpoint(**echo), &req)
}

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    let (mut bind, mut workers, mut standalone, mut wait) =
        ("127.0.0.1:9001".to_owned(), 0, false, false);
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--bind" => bind = args.next().unwrap_or(bind),
            "--workers" => workers = args.next().and_then(|n| n.parse().ok()).unwrap_or(0),
            "--standalone" => standalone = true,
            "--wait" => wait = true,
            other => {
                eprintln!("usage: echo_async [--bind ADDR] [--workers N] [--standalone] [--wait]; not {other:?}");
                std::process::exit(2);
            }
        }
    }
    let mut settings = ws::Settings::default();
    settings.deflate = ws::DeflateSettings::on();
    let server = ws::Server::with_settings(settings);
    let echo = Echo { wait };
    if standalone {
        eprintln!("async echo server (standalone) on ws://{bind}");
        // Ctrl-C closes every connection with 1001 before the server stops.
        return server
            .listen(&bind, workers, move |_| Ok(ws::async_endpoint(echo)))?
            .await;
    }
    let data = (web::Data::new(server.clone()), web::Data::new(echo));
    let mut http = HttpServer::new(move || {
        App::new()
            .app_data(data.0.clone())
            .app_data(data.1.clone())
            .default_service(web::get().to(route))
    })
    .on_connect(|conn, data| {
        ws::on_connect(conn, data);
        if let Some(tcp) = conn.downcast_ref::<actix_web::rt::net::TcpStream>() {
            let _ = tcp.set_nodelay(true);
        }
    })
    .disable_signals();
    if workers > 0 {
        http = http.workers(workers);
    }
    let running = http.bind(&bind)?.run();
    let handle = running.handle();
    actix_web::rt::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            server.shutdown(std::time::Duration::from_secs(5)).await;
            handle.stop(true).await;
        }
    });
    eprintln!("async echo server on ws://{bind}");
    running.await
}
