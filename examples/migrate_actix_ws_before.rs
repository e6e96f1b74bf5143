//! Before: an echo server with a heartbeat on `actix-ws`: a task per connection
//! that reads the message stream and pings on a timer. The same program on
//! websocket-driver is `migrate_actix_ws_after.rs`; docs/migrating.md compares the two.
//!
//! ```sh
//! cargo run --example migrate_actix_ws_before   # ws://127.0.0.1:8080/ws
//! cargo run --example migrate_actix_ws_before -- --bind 127.0.0.1:9002
//! ```

use std::time::{Duration, Instant};

use actix_web::{web, App, Error, HttpRequest, HttpResponse, HttpServer};
use actix_ws::{AggregatedMessage, AggregatedMessageStream, Session};

/// How often the server pings.
const HEARTBEAT_INTERVAL: Duration = Duration::from_secs(5);
/// How long without a ping or pong from the client before the connection is closed.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(10);

async fn echo_ws(req: HttpRequest, body: web::Payload) -> Result<HttpResponse, Error> {
    let (response, session, msg_stream) = actix_ws::handle(&req, body)?;
    let msg_stream = msg_stream
        .max_frame_size(128 * 1024)
        .aggregate_continuations()
        .max_continuation_size(2 * 1024 * 1024);
    actix_web::rt::spawn(echo_heartbeat(session, msg_stream));
    Ok(response)
}

/// Echo text and binary messages, answer pings, ping every `HEARTBEAT_INTERVAL`,
/// and close once the client was silent for `CLIENT_TIMEOUT`.
async fn echo_heartbeat(mut session: Session, mut msg_stream: AggregatedMessageStream) {
    let mut last_heartbeat = Instant::now();
    let mut interval = tokio::time::interval(HEARTBEAT_INTERVAL);
    let reason = loop {
        tokio::select! {
            msg = msg_stream.recv() => {
                let sent = match msg {
                    Some(Ok(AggregatedMessage::Text(text))) => session.text(text).await,
                    Some(Ok(AggregatedMessage::Binary(bin))) => session.binary(bin).await,
                    Some(Ok(AggregatedMessage::Ping(bytes))) => {
                        last_heartbeat = Instant::now();
                        session.pong(&bytes).await
                    }
                    Some(Ok(AggregatedMessage::Pong(_))) => {
                        last_heartbeat = Instant::now();
                        Ok(())
                    }
                    Some(Ok(AggregatedMessage::Close(reason))) => break reason,
                    // A protocol error (a frame over the limit, bad UTF-8, ...) or the end.
                    Some(Err(_)) | None => break None,
                };
                if sent.is_err() {
                    break None;
                }
            }
            _ = interval.tick() => {
                if Instant::now().duration_since(last_heartbeat) > CLIENT_TIMEOUT {
                    break None;
                }
                let _ = session.ping(b"").await;
            }
        }
    };
    let _ = session.close(reason).await;
}

/// The app's routes: the WebSocket on `/ws`.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/ws", web::get().to(echo_ws));
}

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    let bind = std::env::args().skip_while(|a| a != "--bind").nth(1);
    let bind = bind.unwrap_or_else(|| "127.0.0.1:8080".into());
    HttpServer::new(|| App::new().configure(routes))
        .bind(bind)?
        .run()
        .await
}
