//! Before: an echo server with a heartbeat on `actix-web-actors` (deprecated), the
//! classic actor form. The same program on websocket-driver is
//! `migrate_actix_web_actors_after.rs`; docs/migrating.md compares the two.
//!
//! ```sh
//! cargo run --example migrate_actix_web_actors_before   # ws://127.0.0.1:8080/ws
//! cargo run --example migrate_actix_web_actors_before -- --bind 127.0.0.1:9002
//! ```

use std::time::{Duration, Instant};

use actix::prelude::*;
use actix_web::{web, App, Error, HttpRequest, HttpResponse, HttpServer};
use actix_web_actors::ws;

/// How often the server pings.
const HEARTBEAT_INTERVAL: Duration = Duration::from_secs(5);
/// How long without a ping or pong from the client before the connection is dropped.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(10);

/// One actor per connection; `hb` is when the client was last heard from.
struct MyWs {
    hb: Instant,
}

impl MyWs {
    /// Ping every `HEARTBEAT_INTERVAL`; stop once the client was silent for `CLIENT_TIMEOUT`.
    fn heartbeat(&self, ctx: &mut ws::WebsocketContext<Self>) {
        ctx.run_interval(HEARTBEAT_INTERVAL, |act, ctx| {
            if Instant::now().duration_since(act.hb) > CLIENT_TIMEOUT {
                ctx.stop();
                return;
            }
            ctx.ping(b"");
        });
    }
}

impl Actor for MyWs {
    type Context = ws::WebsocketContext<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        self.heartbeat(ctx);
    }
}

impl StreamHandler<Result<ws::Message, ws::ProtocolError>> for MyWs {
    fn handle(&mut self, msg: Result<ws::Message, ws::ProtocolError>, ctx: &mut Self::Context) {
        match msg {
            Ok(ws::Message::Ping(payload)) => {
                self.hb = Instant::now();
                ctx.pong(&payload);
            }
            Ok(ws::Message::Pong(_)) => self.hb = Instant::now(),
            Ok(ws::Message::Text(text)) => ctx.text(text),
            Ok(ws::Message::Binary(bin)) => ctx.binary(bin),
            Ok(ws::Message::Close(reason)) => {
                ctx.close(reason);
                ctx.stop();
            }
            // A fragment of a message (Continuation), Nop, or a protocol error.
            _ => ctx.stop(),
        }
    }
}

async fn echo_ws(req: HttpRequest, stream: web::Payload) -> Result<HttpResponse, Error> {
    ws::start(MyWs { hb: Instant::now() }, &req, stream)
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
