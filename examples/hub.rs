//! The broadcast hub example: a chat that people open in a browser.
//!
//! ```sh
//! cargo run --release --example hub                  # then open http://127.0.0.1:8080/
//! cargo run --release --example hub -- --bind 0.0.0.0:8080 --config config/default.toml
//! cargo run --release --example hub --features redis -- --redis redis://127.0.0.1:6379
//! ```
//!
//! With `--redis URL` (the `redis` feature), hubs on several servers act as one:
//! start two on two ports against one Redis and open both.
//!
//! `/` serves the page (`examples/hub/`: plain HTML, CSS and JavaScript), `/ws` the
//! WebSocket endpoint, `/metrics` the Prometheus text. The library carries the
//! heartbeat, the registry of rooms, the fan-out, presence and recovery; this file
//! is the wire protocol (JSON, see the README) and its validation.

use std::{
    collections::HashMap,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use actix::prelude::*;
use actix_web::{web, App, HttpResponse, HttpServer};
use serde::{Deserialize, Serialize};
use websocket_driver as ws;

/// Longest room name, nickname and message text, in characters.
pub const MAX_ROOM: usize = 64;
/// Longest nickname.
pub const MAX_NAME: usize = 32;
/// Longest message text.
pub const MAX_TEXT: usize = 2000;
/// Rooms one connection may be in at once.
pub const MAX_ROOMS_PER_CONNECTION: usize = 10;
/// Rooms the server holds at most (a client cannot make it hold more).
pub const MAX_ROOMS: usize = 1000;

/// What a client sends.
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
pub enum ClientMsg {
    /// Join `room` as `name`, recovering from `since`.
    Join {
        /// The room (1 to 64 characters).
        room: String,
        /// The nickname there (1 to 32 characters).
        name: String,
        /// The position of the last message received, to recover from.
        since: Option<ws::Position>,
    },
    /// Say `text` in `room`.
    Say {
        /// A room joined.
        room: String,
        /// 1 to 2,000 characters.
        text: String,
    },
    /// Leave `room`.
    Leave {
        /// A room joined.
        room: String,
    },
}

/// What the server sends.
#[derive(Debug, Serialize, PartialEq)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum ServerMsg<'a> {
    /// The join is done: `offset` is the room's latest message; with `since`,
    /// `recovered` says whether every message after it follows.
    Joined {
        /// The room.
        room: &'a str,
        /// Its epoch.
        epoch: &'a str,
        /// The offset of its latest message (0: none yet).
        offset: u64,
        /// Every message after `since` follows (false without `since`).
        recovered: bool,
    },
    /// A message of the room, as published: the hub's renderer adds its
    /// `offset` (one more than the room's previous message) and `epoch`.
    Message {
        /// The room.
        room: &'a str,
        /// The sender's nickname.
        from: &'a str,
        /// The text.
        text: &'a str,
        /// Milliseconds since the Unix epoch, when the server published it.
        time: u64,
    },
    /// The room's members changed (or the list a joiner starts from).
    Members {
        /// The room.
        room: &'a str,
        /// The nicknames present, sorted.
        members: Vec<String>,
    },
    /// The client sent something wrong; the connection stays open.
    Error {
        /// What was wrong.
        reason: String,
    },
}

fn json(msg: &ServerMsg<'_>) -> String {
    // Serializing these types cannot fail (strings and numbers only).
    serde_json::to_string(msg).unwrap_or_default()
}

/// The topic of a room's member lists: unnumbered, no history.
fn members_topic(room: &str) -> String {
    format!("{room}\u{0}members")
}

/// One connection's side of the chat.
#[derive(Debug)]
pub struct Chat {
    hub: ws::Hub,
    /// Room -> the name this connection has there.
    rooms: HashMap<String, String>,
}

impl Chat {
    /// A connection of the chat on `hub`.
    pub fn new(hub: ws::Hub) -> Chat {
        Chat {
            hub,
            rooms: HashMap::new(),
        }
    }

    fn error(conn: &ws::Conn, reason: impl Into<String>) {
        conn.send_text(json(&ServerMsg::Error {
            reason: reason.into(),
        }));
    }

    fn handle(&mut self, conn: &ws::Conn, msg: ClientMsg) -> Result<(), String> {
        match msg {
            ClientMsg::Join { room, name, since } => {
                check("room", &room, MAX_ROOM)?;
                check("name", &name, MAX_NAME)?;
                if !self.rooms.contains_key(&room) && self.rooms.len() >= MAX_ROOMS_PER_CONNECTION {
                    return Err(format!("at most {MAX_ROOMS_PER_CONNECTION} rooms at once"));
                }
                if self.hub.position(&room).is_none() && self.hub.topics().len() >= 2 * MAX_ROOMS {
                    return Err("too many rooms on this server".into());
                }
                if let Some(old) = self.rooms.get(&room) {
                    if *old != name {
                        // A new name in the same room: leave as the old one first.
                        self.hub.leave(conn.id(), &room);
                    }
                }
                let mut options = ws::JoinOptions::default()
                    .user(name.clone())
                    .meta(name.clone());
                if let Some(since) = since {
                    options = options.since(since);
                }
                // The answer, then the member list, go out before the replay and the
                // live messages, when the hub knows the room's position.
                let (hub, answer_room) = (self.hub.clone(), room.clone());
                let options = options.on_joined(move |joined| {
                    let answer = json(&ServerMsg::Joined {
                        room: &answer_room,
                        epoch: &joined.position.epoch,
                        offset: joined.position.offset,
                        recovered: joined.recovered.unwrap_or(false),
                    });
                    let members = json(&ServerMsg::Members {
                        room: &answer_room,
                        members: hub.users(&answer_room),
                    });
                    vec![answer.into(), members.into()]
                });
                self.hub
                    .join_with(conn, &room, options)
                    .map_err(|e| e.to_string())?;
                // After the room: its answer goes out before any member list.
                let _ = self.hub.join(conn, &members_topic(&room));
                self.rooms.insert(room, name);
                Ok(())
            }
            ClientMsg::Say { room, text } => {
                let Some(name) = self.rooms.get(&room) else {
                    return Err(format!("not in room {room:?}: join it first"));
                };
                check("text", &text, MAX_TEXT)?;
                let body = json(&ServerMsg::Message {
                    room: &room,
                    from: name,
                    text: &text,
                    time: now_ms(),
                });
                self.hub.publish(&room, body);
                Ok(())
            }
            ClientMsg::Leave { room } => {
                if self.rooms.remove(&room).is_none() {
                    return Err(format!("not in room {room:?}"));
                }
                self.hub.leave(conn.id(), &room);
                self.hub.leave(conn.id(), &members_topic(&room));
                Ok(())
            }
        }
    }
}

/// A field is 1 to `max` characters, none of them a control character.
fn check(field: &str, value: &str, max: usize) -> Result<(), String> {
    let chars = value.chars().count();
    if chars == 0 || chars > max {
        return Err(format!("{field} must be 1 to {max} characters"));
    }
    if value.chars().any(char::is_control) {
        return Err(format!("{field} may not hold control characters"));
    }
    Ok(())
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl ws::Endpoint for Chat {
    fn on_message(&mut self, conn: &ws::Conn, msg: ws::Message, _: &mut ws::EndpointContext<Self>) {
        let ws::Message::Text(text) = msg else {
            return Self::error(conn, "binary messages are not part of the protocol");
        };
        match serde_json::from_str::<ClientMsg>(&text) {
            Ok(msg) => {
                if let Err(reason) = self.handle(conn, msg) {
                    Self::error(conn, reason);
                }
            }
            Err(err) => Self::error(conn, format!("invalid message: {err}")),
        }
    }
}

/// Turns presence changes into member lists for the room's members.
struct MembersRelay {
    hub: ws::Hub,
}

impl Actor for MembersRelay {
    type Context = Context<Self>;
}

impl Handler<ws::Presence> for MembersRelay {
    type Result = ();
    fn handle(&mut self, presence: ws::Presence, _: &mut Context<Self>) {
        if presence.topic.contains('\u{0}') {
            return;
        }
        let members = self.hub.users(&presence.topic);
        let list = json(&ServerMsg::Members {
            room: &presence.topic,
            members,
        });
        self.hub
            .publish_transient(&members_topic(&presence.topic), list, None);
    }
}

/// The example's settings: the library's defaults, plus what a chat wants: a
/// 64 KiB message limit, presence and 200 messages of history per room.
pub fn chat_settings() -> ws::Settings {
    let mut settings = ws::Settings::default();
    settings.protocol = settings.protocol.max_message_size(64 * 1024);
    settings.hub.presence = true;
    settings.hub.history_size = 200;
    settings.hub.history_ttl = Some(Duration::from_secs(3600));
    settings
}

/// Stamp a published chat message with its position: the hub runs it once per
/// message on each server, where the position is known (with Redis, that is on
/// delivery). The body is a JSON object this file wrote, so its position goes in
/// before the closing brace.
pub fn render(_room: &str, position: &ws::Position, message: ws::Message) -> ws::Message {
    let text = match &message {
        ws::Message::Text(text) if text.ends_with('}') => text.as_str(),
        _ => return message,
    };
    let epoch = serde_json::to_string(&position.epoch).unwrap_or_default();
    ws::Message::from(format!(
        "{},\"offset\":{},\"epoch\":{epoch}}}",
        &text[..text.len() - 1],
        position.offset
    ))
}

/// The chat's hub, with its member lists relayed (needs a running actix system).
pub fn chat_hub(settings: &ws::Settings) -> ws::Hub {
    let hub = ws::Hub::named("chat", settings);
    hub.set_renderer(render);
    let relay = MembersRelay { hub: hub.clone() }.start();
    hub.on_presence(relay.recipient());
    hub
}

const INDEX: &str = include_str!("hub/index.html");
const SCRIPT: &str = include_str!("hub/app.js");
const STYLE: &str = include_str!("hub/style.css");

fn asset(content_type: &'static str, body: &'static str) -> HttpResponse {
    HttpResponse::Ok()
        .content_type(content_type)
        .insert_header(("Cache-Control", "no-cache"))
        .body(body)
}

/// The routes: the page, `/ws`, `/metrics`.
pub fn routes(hub: ws::Hub, server: ws::Server) -> impl Fn(&mut web::ServiceConfig) + Clone {
    move |cfg| {
        let (hub, server) = (hub.clone(), server.clone());
        cfg.route(
            "/",
            web::get().to(|| async { asset("text/html; charset=utf-8", INDEX) }),
        )
        .route(
            "/app.js",
            web::get().to(|| async { asset("text/javascript; charset=utf-8", SCRIPT) }),
        )
        .route(
            "/style.css",
            web::get().to(|| async { asset("text/css; charset=utf-8", STYLE) }),
        )
        .route(
            "/metrics",
            web::get().to(|| async {
                HttpResponse::Ok()
                    .content_type("application/openmetrics-text; version=1.0.0; charset=utf-8")
                    .body(ws::metrics::encode_text())
            }),
        )
        .route(
            "/ws",
            web::get().to(move |req: ws::Upgrade| {
                let (hub, server) = (hub.clone(), server.clone());
                async move { server.start(ws::endpoint(Chat::new(hub)), &req) }
            }),
        );
    }
}

/// Plug the Redis backplane into `hub` (the `redis` feature).
#[cfg(feature = "redis")]
async fn start_backplane(hub: &ws::Hub, settings: &ws::Settings) -> std::io::Result<()> {
    ws::hub::redis::RedisBackplane::start(hub, settings.redis.clone())
        .await
        .map(|_| eprintln!("hub backplane: {}", settings.redis.url))
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::ConnectionRefused, e))
}

#[cfg(not(feature = "redis"))]
async fn start_backplane(_: &ws::Hub, _: &ws::Settings) -> std::io::Result<()> {
    Err(std::io::Error::new(
        std::io::ErrorKind::Unsupported,
        "built without Redis: cargo run --release --example hub --features redis -- --redis URL",
    ))
}

struct Args {
    bind: String,
    config: Option<String>,
    workers: Option<usize>,
    redis: Option<String>,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        bind: "127.0.0.1:8080".into(),
        config: None,
        workers: None,
        redis: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--bind" => args.bind = it.next().ok_or("--bind needs ADDR")?,
            "--config" => args.config = Some(it.next().ok_or("--config needs FILE")?),
            "--redis" => args.redis = Some(it.next().ok_or("--redis needs URL")?),
            "--workers" => {
                let n = it.next().ok_or("--workers needs N")?;
                args.workers = Some(n.parse().map_err(|_| "--workers: not a number")?);
            }
            "-h" | "--help" => {
                return Err(
                    "usage: hub [--bind ADDR] [--config FILE.toml] [--workers N] [--redis URL]"
                        .into(),
                )
            }
            other => return Err(format!("unknown argument {other:?}; try --help")),
        }
    }
    Ok(args)
}

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    let invalid = |e: String| std::io::Error::new(std::io::ErrorKind::InvalidInput, e);
    let args = parse_args().map_err(invalid)?;
    let mut settings = match &args.config {
        Some(path) => {
            let text = std::fs::read_to_string(path)?;
            toml::from_str::<ws::Settings>(&text).map_err(|e| invalid(e.to_string()))?
        }
        None => chat_settings(),
    };
    settings.check().map_err(|e| invalid(e.to_string()))?;
    if let Some(url) = &args.redis {
        settings.redis.url = url.clone();
    }
    let hub = chat_hub(&settings);
    if !settings.redis.url.is_empty() {
        start_backplane(&hub, &settings).await?;
    }
    // The route's opening handshake gets the same time as the standalone path's:
    // actix-web's request head timeout (a slow peer gets 408 and the close).
    let handshake_timeout = settings.connection.handshake_timeout;
    let server = ws::Server::with_settings(settings);
    let routes = routes(hub, server.clone());
    let mut http = HttpServer::new(move || App::new().configure(routes.clone()))
        .on_connect(|conn, data| {
            // Sockets closed as soon as their WebSocket is done (see ws::on_connect).
            ws::on_connect(conn, data);
            if let Some(tcp) = conn.downcast_ref::<actix_web::rt::net::TcpStream>() {
                let _ = tcp.set_nodelay(true);
            }
        })
        .client_request_timeout(handshake_timeout)
        .disable_signals();
    if let Some(workers) = args.workers {
        http = http.workers(workers);
    }
    let running = http.bind(&args.bind)?.run();
    let handle = running.handle();
    actix_web::rt::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            server.shutdown(Duration::from_secs(5)).await;
            handle.stop(true).await;
        }
    });
    eprintln!(
        "chat on http://{}/ (WebSocket /ws, metrics /metrics)",
        args.bind
    );
    running.await
}
