//! The hub benchmark's server (`scripts/bench-hub.sh`): every connection on `/ws`
//! joins one room, and a text a connection sends is published to every other one,
//! unchanged. One worker thread, the standalone server, no compression.
//!
//! ```sh
//! cargo run --release --example hub_bench -- --bind 127.0.0.1:9400
//! ```
//!
//! With `--redis URL` (the `redis` feature; `scripts/bench-backplane.sh`), the hub
//! runs on the Redis backplane: servers on one Redis are one room.

use websocket_driver as ws;

struct Member {
    hub: ws::Hub,
}

impl ws::Endpoint for Member {
    fn on_open(&mut self, conn: &ws::Conn, _: &mut ws::EndpointContext<Self>) {
        let _ = self.hub.join(conn, "room");
    }

    fn on_message(&mut self, conn: &ws::Conn, msg: ws::Message, _: &mut ws::EndpointContext<Self>) {
        self.hub.publish_except("room", msg, conn.id());
    }
}

#[actix_rt::main]
async fn main() -> std::io::Result<()> {
    let mut bind = "127.0.0.1:9400".to_owned();
    let mut redis = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--bind" => bind = args.next().unwrap_or(bind),
            "--redis" => redis = args.next(),
            other => {
                eprintln!(
                    "usage: hub_bench [--bind ADDR] [--redis URL] (unknown argument {other:?})"
                );
                std::process::exit(2);
            }
        }
    }
    let mut settings = ws::Settings::default();
    // The load generator checks every delivery: a subscriber is never dropped
    // for lagging behind a burst it reads later.
    settings.hub.send_budget_bytes = 64 << 20;
    settings.hub.send_budget_messages = 1 << 20;
    let hub = ws::Hub::named("bench", &settings);
    if let Some(url) = redis {
        settings.redis.url = url;
        start_backplane(&hub, &settings).await?;
    }
    let server = ws::Server::with_settings(settings).listen(&bind, 1, move |req| {
        if req.path() != "/ws" {
            return Err(ws::Refuse::new(404, "not found"));
        }
        Ok(ws::endpoint(Member { hub: hub.clone() }))
    })?;
    eprintln!("hub bench server on ws://{bind}/ws");
    server.await
}

/// Plug the Redis backplane into `hub` (the `redis` feature).
#[cfg(feature = "redis")]
async fn start_backplane(hub: &ws::Hub, settings: &ws::Settings) -> std::io::Result<()> {
    // The hub keeps the backplane: the returned handle is only for its counters.
    ws::hub::redis::RedisBackplane::start(hub, settings.redis.clone())
        .await
        .map_err(std::io::Error::other)?;
    eprintln!("hub bench backplane: {}", settings.redis.url);
    Ok(())
}

#[cfg(not(feature = "redis"))]
async fn start_backplane(_: &ws::Hub, _: &ws::Settings) -> std::io::Result<()> {
    Err(std::io::Error::other(
        "built without Redis: cargo build --release --example hub_bench --features redis",
    ))
}
