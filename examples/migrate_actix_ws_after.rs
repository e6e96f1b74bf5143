//! After: `migrate_actix_ws_before.rs` on websocket-driver. No task and no loop:
//! each arm of the loop's `match` is a method of `ws::Endpoint` (only the echo is
//! written out; pings, pongs and Close are the library's), the heartbeat and the
//! size limits are settings. docs/migrating.md compares the two.
//!
//! ```sh
//! cargo run --example migrate_actix_ws_after   # ws://127.0.0.1:8080/ws
//! cargo run --example migrate_actix_ws_after -- --bind 127.0.0.1:9002
//! ```

use std::time::Duration;

use actix_web::{web, App, HttpServer, Responder};
use websocket_driver as ws;

/// Ping the client after this long without input from it.
const HEARTBEAT_INTERVAL: Duration = Duration::from_secs(5);
/// Close the connection (1001) after this long without any input, pongs included.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(10);

/// One per connection: every message goes back as it came (text stays text).
struct Echo;

impl ws::Endpoint for Echo {
    fn on_message(&mut self, conn: &ws::Conn, msg: ws::Message, _: &mut ws::EndpointContext<Self>) {
        conn.send(msg);
    }
}

async fn echo_ws(req: ws::Upgrade, server: web::Data<ws::Server>) -> impl Responder {
    server.start(ws::endpoint(Echo), &req)
}

/// The app's routes: the WebSocket on `/ws`, with its limits and heartbeat.
pub fn routes(cfg: &mut web::ServiceConfig) {
    let server = ws::Server::new()
        .max_length(2 * 1024 * 1024) // a whole message, fragments included
        .max_frame_size(128 * 1024) // one frame (set after max_length, which lowers it)
        .ping_interval(Some(HEARTBEAT_INTERVAL))
        .idle_timeout(Some(CLIENT_TIMEOUT));
    cfg.app_data(web::Data::new(server))
        .route("/ws", web::get().to(echo_ws));
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
