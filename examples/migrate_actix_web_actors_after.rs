//! After: `migrate_actix_web_actors_before.rs` on websocket-driver. The heartbeat is
//! the library's (`ping_interval`, `idle_timeout`), pings are answered and Close is
//! handled for you, and the actor is the short `ws::Endpoint` form.
//! docs/migrating.md compares the two.
//!
//! ```sh
//! cargo run --example migrate_actix_web_actors_after   # ws://127.0.0.1:8080/ws
//! cargo run --example migrate_actix_web_actors_after -- --bind 127.0.0.1:9002
//! ```

use std::time::Duration;

use actix_web::{web, App, HttpServer, Responder};
use websocket_driver as ws;

/// Ping the client after this long without input from it.
const HEARTBEAT_INTERVAL: Duration = Duration::from_secs(5);
/// Close the connection (1001) after this long without any input, pongs included.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(10);

/// One per connection: every message goes back as it came (text stays text).
struct MyWs;

impl ws::Endpoint for MyWs {
    fn on_message(&mut self, conn: &ws::Conn, msg: ws::Message, _: &mut ws::EndpointContext<Self>) {
        conn.send(msg);
    }
}

async fn echo_ws(req: ws::Upgrade, server: web::Data<ws::Server>) -> impl Responder {
    server.start(ws::endpoint(MyWs), &req)
}

/// The app's routes: the WebSocket on `/ws`, with its heartbeat settings.
pub fn routes(cfg: &mut web::ServiceConfig) {
    let server = ws::Server::new()
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
