//! A standalone WebSocket server (no actix-web) that refuses a connection without
//! the right token with 401, and answers each message after a lookup that takes
//! time, in order. Ctrl-C closes every connection with 1001 before it stops.
//!
//! ```sh
//! cargo run --example token_server          # ws://127.0.0.1:9001/?token=secret
//! cargo run --example token_server -- --bind 127.0.0.1:9002
//! ```

use std::{future::Future, time::Duration};

use websocket_driver as ws;

/// Answers `name` with its length, after a lookup (a timer standing in for a
/// database call): the next message waits for it, so replies keep their order.
#[derive(Debug)]
pub struct Lookup;

impl ws::AsyncEndpoint for Lookup {
    async fn on_message(&mut self, conn: &ws::Conn, msg: ws::Message) {
        let Some(name) = msg.as_text() else { return };
        tokio::time::sleep(Duration::from_millis(name.len() as u64 % 7)).await;
        conn.send_text(format!("{name}: {}", name.len()));
    }
}

/// Serve on `listener`: `?token=secret` or `Authorization: Bearer secret`, else 401.
pub fn serve(
    listener: std::net::TcpListener,
) -> std::io::Result<impl Future<Output = std::io::Result<()>>> {
    ws::Server::new().listen_on(listener, 1, |req| {
        let bearer = req
            .header_str("authorization")
            .and_then(|v| v.strip_prefix("Bearer "));
        match req.query_param("token").as_deref().or(bearer) {
            Some("secret") => Ok(ws::async_endpoint(Lookup)),
            _ => Err(ws::Refuse::new(401, "a token is needed")),
        }
    })
}

#[actix_rt::main]
async fn main() -> std::io::Result<()> {
    let bind = std::env::args().skip_while(|a| a != "--bind").nth(1);
    let bind = bind.unwrap_or_else(|| "127.0.0.1:9001".into());
    eprintln!("ws://{bind}/?token=secret");
    serve(std::net::TcpListener::bind(&bind)?)?.await
}
