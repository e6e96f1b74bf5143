//! The broadcast hub example: a chat that people open in a browser.
//!
//! ```sh
//! cargo run --release --example hub                  # then open http://127.0.0.1:8080/
//! cargo run --release --example hub -- --bind 0.0.0.0:8080 --metrics 127.0.0.1:9090
//! cargo run --release --example hub -- --ws-bind 127.0.0.1:8081  # WebSockets on their own port
//! cargo run --release --example hub --features redis -- --redis redis://127.0.0.1:6379
//! ```
//!
//! With `--redis URL` (the `redis` feature), hubs on several servers act as one:
//! start two on two ports against one Redis and open both.
//!
//! `/` serves the page (`examples/hub/`: plain HTML, CSS and JavaScript), `/ws` the
//! WebSocket endpoint, `/rooms/{room}/events` a room's messages as Server-Sent
//! Events (the same JSON; `Last-Event-ID` or `?since=EPOCH:OFFSET` resumes);
//! `--ws-bind ADDR` serves WebSockets on a listener of their own too (the standalone server, without actix-web in the way: less memory and
//! CPU per connection), and the page connects there; `--metrics ADDR` serves the
//! Prometheus text on a listener of its own (never on the public one). The library carries the heartbeat, the
//! registry of rooms, the fan-out, presence and recovery; this file is the wire
//! protocol (JSON, see the README), its validation, and the chat's own policies:
//! a message rate per connection and one nickname per member of a room
//! (`hub/policy.rs`), and member lists sent as batched changes (`hub/members.rs`).

use std::{
    collections::HashMap,
    sync::Arc,
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use actix::prelude::*;
use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use serde::{Deserialize, Serialize};
use websocket_driver as ws;

#[path = "hub/members.rs"]
mod members;
#[path = "hub/policy.rs"]
mod policy;

use members::{Flush, Gone, MembersRelay, Newcomer};
use policy::{Names, RateLimit, Verdict};

/// Longest room name, in characters.
pub const MAX_ROOM: usize = 64;
/// Longest nickname.
pub const MAX_NAME: usize = 32;
/// Longest message text.
pub const MAX_TEXT: usize = 2000;
/// Rooms one connection may be in at once.
pub const MAX_ROOMS_PER_CONNECTION: usize = 10;
/// Rooms the server holds at most (a client cannot make it hold more).
pub const MAX_ROOMS: usize = 1000;
/// Largest WebSocket message accepted: a `say` of 2,000 characters, each escaped
/// as `\uXXXX`, fits; anything larger is closed with 1009 by the library.
pub const MAX_MESSAGE_BYTES: usize = 16 * 1024;

/// The chat's policies (all but `count_interval` are command-line options).
#[derive(Debug, Clone)]
pub struct ChatOptions {
    /// Messages a connection may send per second, on average (`--rate`).
    /// Default 20.
    pub rate: f64,
    /// Messages a connection may send at once, above the rate (`--burst`).
    /// Default 40.
    pub burst: f64,
    /// Messages refused for the rate that close the connection with 1008
    /// (`--flood-close`): refused messages fill a second bucket of this size,
    /// which drains at the rate. Default 100.
    pub flood_close: f64,
    /// Rooms up to this many members list them by name; larger rooms send only
    /// their count (`--list-limit`). Default 100.
    pub list_limit: usize,
    /// Member changes are batched per room and sent once per tick (`--tick-ms`).
    /// Default 100 ms.
    pub tick: Duration,
    /// A room over `list_limit` sends its count at most this often. Default 1 s.
    pub count_interval: Duration,
}

impl Default for ChatOptions {
    fn default() -> Self {
        ChatOptions {
            rate: 20.0,
            burst: 40.0,
            flood_close: 100.0,
            list_limit: 100,
            tick: Duration::from_millis(100),
            count_interval: Duration::from_secs(1),
        }
    }
}

/// What a client sends.
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
pub enum ClientMsg {
    /// Join `room` as `name`, recovering from `since`.
    Join {
        /// The room (1 to 64 characters).
        room: String,
        /// The nickname there (1 to 32 characters), unique in the room.
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
    /// The room's members: to a joiner once, shortly after its `joined`.
    Members {
        /// The room.
        room: &'a str,
        /// The nicknames, sorted; absent when the room is over the list limit.
        #[serde(skip_serializing_if = "Option::is_none")]
        members: Option<Vec<&'a str>>,
        /// How many members.
        count: usize,
    },
    /// What changed in the room's members since the last `presence` (at most one
    /// per room per tick).
    Presence {
        /// The room.
        room: &'a str,
        /// Nicknames that came; absent when the room is over the list limit.
        #[serde(skip_serializing_if = "Option::is_none")]
        joined: Option<Vec<&'a str>>,
        /// Nicknames that went; absent when the room is over the list limit.
        #[serde(skip_serializing_if = "Option::is_none")]
        left: Option<Vec<&'a str>>,
        /// How many members now.
        count: usize,
    },
    /// The client sent something wrong; the connection stays open.
    Error {
        /// What kind: `invalid`, `rate`, `name-taken`, `limit`.
        code: &'a str,
        /// The room it is about, if any.
        #[serde(skip_serializing_if = "Option::is_none")]
        room: Option<&'a str>,
        /// What was wrong.
        reason: String,
    },
}

fn json(msg: &ServerMsg<'_>) -> String {
    // Serializing these types cannot fail (strings and numbers only).
    serde_json::to_string(msg).unwrap_or_default()
}

/// Why a client message was refused.
#[derive(Debug)]
struct Refused {
    code: &'static str,
    room: Option<String>,
    reason: String,
}

impl Refused {
    fn invalid(reason: impl Into<String>) -> Refused {
        Refused {
            code: "invalid",
            room: None,
            reason: reason.into(),
        }
    }
}

/// What every connection of the chat shares.
#[derive(Debug)]
pub struct ChatApp {
    hub: ws::Hub,
    options: ChatOptions,
    names: Arc<Names>,
    relay: Addr<MembersRelay>,
    /// This process's user keys start with it: random, so that keys of two
    /// servers on one Redis never collide.
    prefix: String,
}

impl ChatApp {
    /// The chat on a hub named `name` (the `hub` label of its metrics), with its
    /// member relay started (needs a running actix system).
    pub fn new(name: &str, settings: &ws::Settings, options: ChatOptions) -> Arc<ChatApp> {
        let hub = ws::Hub::named(name, settings);
        hub.set_renderer(render);
        // Rooms starting with `$` are the server's own: no client joins them.
        hub.set_authorizer(|access: &ws::hub::Access| {
            if access.topic.starts_with('$') {
                ws::hub::Decision::deny(format!("room {:?} is reserved", access.topic))
            } else {
                ws::hub::Decision::allow()
            }
        });
        let names = Arc::new(Names::default());
        let prefix = format!("{:016x}", rand::random::<u64>());
        let relay =
            MembersRelay::new(hub.clone(), options.clone(), names.clone(), prefix.clone()).start();
        hub.on_presence(relay.clone().recipient());
        Arc::new(ChatApp {
            hub,
            options,
            names,
            relay,
            prefix,
        })
    }

    /// The hub.
    pub fn hub(&self) -> &ws::Hub {
        &self.hub
    }

    /// Send the member changes now, as each tick does (for tests: a long
    /// [`ChatOptions::tick`] and this make the batches deterministic).
    pub fn flush_members(&self) {
        self.relay.do_send(Flush);
    }

    /// A new connection's side of the chat.
    pub fn connection(self: &Arc<Self>) -> Chat {
        Chat {
            app: self.clone(),
            key: String::new(),
            rooms: HashMap::new(),
            limit: RateLimit::new(&self.options, Instant::now()),
            closing: false,
        }
    }
}

/// One connection's side of the chat.
#[derive(Debug)]
pub struct Chat {
    app: Arc<ChatApp>,
    /// Its user key in the hub: this process's prefix and the connection's id.
    key: String,
    /// Room -> the name this connection has there.
    rooms: HashMap<String, String>,
    limit: RateLimit,
    closing: bool,
}

impl Chat {
    fn error(conn: &ws::Conn, refused: Refused) {
        conn.send_text(json(&ServerMsg::Error {
            code: refused.code,
            room: refused.room.as_deref(),
            reason: refused.reason,
        }));
    }

    fn handle(&mut self, conn: &ws::Conn, msg: ClientMsg) -> Result<(), Refused> {
        let hub = &self.app.hub;
        match msg {
            ClientMsg::Join { room, name, since } => {
                check("room", &room, MAX_ROOM)?;
                check("name", &name, MAX_NAME)?;
                let limit = |reason: String| Refused {
                    code: "limit",
                    room: Some(room.clone()),
                    reason,
                };
                if !self.rooms.contains_key(&room) && self.rooms.len() >= MAX_ROOMS_PER_CONNECTION {
                    return Err(limit(format!(
                        "at most {MAX_ROOMS_PER_CONNECTION} rooms at once"
                    )));
                }
                if hub.position(&room).is_none() && hub.topics().len() >= MAX_ROOMS {
                    return Err(limit("too many rooms on this server".into()));
                }
                if self.rooms.get(&room) == Some(&name) {
                    return Err(Refused {
                        code: "invalid",
                        room: Some(room.clone()),
                        reason: format!("already in room {room:?} as {name:?}"),
                    });
                }
                if !self.app.names.claim(&room, &name, &self.key) {
                    return Err(Refused {
                        code: "name-taken",
                        room: Some(room.clone()),
                        reason: format!("the name {name:?} is taken in room {room:?}"),
                    });
                }
                if let Some(old) = self.rooms.remove(&room) {
                    // A new name in a room joined: leave as the old one, so that this
                    // join is answered and the others see the change.
                    self.app.names.release(&room, &old, &self.key);
                    hub.leave(conn.id(), &room);
                }
                let mut options = ws::JoinOptions::default()
                    .user(self.key.clone())
                    .meta(name.clone());
                if let Some(since) = since {
                    options = options.since(since);
                }
                // The answer goes out before the replay and the live messages, when
                // the hub knows the room's position; the member list comes with the
                // relay's next tick after it (asked from here, never before it).
                let answer_room = room.clone();
                let (relay, id) = (self.app.relay.clone(), conn.id());
                let options = options.on_joined(move |joined| {
                    relay.do_send(Newcomer {
                        room: answer_room.clone(),
                        id,
                    });
                    vec![json(&ServerMsg::Joined {
                        room: &answer_room,
                        epoch: &joined.position.epoch,
                        offset: joined.position.offset,
                        recovered: joined.recovered.unwrap_or(false),
                    })
                    .into()]
                });
                if let Err(e) = hub.join_with(conn, &room, options) {
                    self.app.names.release(&room, &name, &self.key);
                    return Err(match e {
                        ws::JoinError::Denied { reason } => Refused {
                            code: "denied",
                            room: Some(room.clone()),
                            reason,
                        },
                        e => Refused::invalid(e.to_string()),
                    });
                }
                self.rooms.insert(room, name);
                Ok(())
            }
            ClientMsg::Say { room, text } => {
                let Some(name) = self.rooms.get(&room) else {
                    return Err(Refused::invalid(format!(
                        "not in room {room:?}: join it first"
                    )));
                };
                check("text", &text, MAX_TEXT)?;
                let body = json(&ServerMsg::Message {
                    room: &room,
                    from: name,
                    text: &text,
                    time: now_ms(),
                });
                hub.publish(&room, body);
                Ok(())
            }
            ClientMsg::Leave { room } => {
                let Some(name) = self.rooms.remove(&room) else {
                    return Err(Refused::invalid(format!("not in room {room:?}")));
                };
                hub.leave(conn.id(), &room);
                self.app.names.release(&room, &name, &self.key);
                self.app.relay.do_send(Gone {
                    room,
                    id: conn.id(),
                });
                Ok(())
            }
        }
    }
}

/// A field is 1 to `max` characters, none of them a control character.
fn check(field: &str, value: &str, max: usize) -> Result<(), Refused> {
    let chars = value.chars().count();
    if chars == 0 || chars > max {
        return Err(Refused::invalid(format!(
            "{field} must be 1 to {max} characters"
        )));
    }
    if value.chars().any(char::is_control) {
        return Err(Refused::invalid(format!(
            "{field} may not hold control characters"
        )));
    }
    Ok(())
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl ws::Endpoint for Chat {
    fn on_open(&mut self, conn: &ws::Conn, _: &mut ws::EndpointContext<Self>) {
        self.key = format!("{}-{}", self.app.prefix, conn.id().get());
    }

    fn on_message(&mut self, conn: &ws::Conn, msg: ws::Message, _: &mut ws::EndpointContext<Self>) {
        if self.closing {
            return;
        }
        let options = &self.app.options;
        match self.limit.check(options, Instant::now()) {
            Verdict::Pass => {}
            Verdict::Refuse => {
                return Self::error(
                    conn,
                    Refused {
                        code: "rate",
                        room: None,
                        reason: format!(
                            "too many messages: at most {} a second (bursts of {}); this one was dropped",
                            options.rate, options.burst
                        ),
                    },
                )
            }
            Verdict::Close => {
                // The flooder's own close; the others' budgets never see its load.
                self.closing = true;
                conn.close(ws::CloseCode::POLICY_VIOLATION, "too many messages");
                return;
            }
        }
        let ws::Message::Text(text) = msg else {
            return Self::error(
                conn,
                Refused::invalid("binary messages are not part of the protocol"),
            );
        };
        match serde_json::from_str::<ClientMsg>(&text) {
            Ok(msg) => {
                if let Err(refused) = self.handle(conn, msg) {
                    Self::error(conn, refused);
                }
            }
            Err(err) => Self::error(conn, Refused::invalid(format!("invalid message: {err}"))),
        }
    }

    fn on_close(&mut self, conn: &ws::Conn, _: ws::Close, _: &mut ws::EndpointContext<Self>) {
        // The hub takes the connection out of its rooms; its names go back.
        for (room, name) in self.rooms.drain() {
            self.app.names.release(&room, &name, &self.key);
            self.app.relay.do_send(Gone {
                room,
                id: conn.id(),
            });
        }
    }
}

/// The example's settings: the library's defaults, plus what a chat wants:
/// messages of at most 16 KiB, presence, 200 messages of history per room for
/// 15 minutes.
pub fn chat_settings() -> ws::Settings {
    let mut settings = ws::Settings::default();
    settings.protocol = settings.protocol.max_message_size(MAX_MESSAGE_BYTES);
    settings.hub.presence = true;
    settings.hub.history_size = 200;
    settings.hub.history_ttl = Some(Duration::from_secs(15 * 60));
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

const INDEX: &str = include_str!("hub/index.html");
/// Where the page learns that WebSockets have a listener of their own.
const WS_PORT: &str = "<meta name=\"ws-port\" content=\"\">";
const SCRIPT: &str = include_str!("hub/app.js");
const STYLE: &str = include_str!("hub/style.css");

fn asset(content_type: &'static str, body: impl Into<String>) -> HttpResponse {
    let body: String = body.into();
    HttpResponse::Ok()
        .content_type(content_type)
        .insert_header(("Cache-Control", "no-cache"))
        .body(body)
}

/// The public routes: the page and `/ws`.
pub fn routes(app: Arc<ChatApp>, server: ws::Server) -> impl Fn(&mut web::ServiceConfig) + Clone {
    routes_with(app, server, None)
}

/// The public routes, with a page that connects to the WebSocket listener on
/// `ws_port` (the same host) instead of this one's `/ws`.
pub fn routes_with(
    app: Arc<ChatApp>,
    server: ws::Server,
    ws_port: Option<u16>,
) -> impl Fn(&mut web::ServiceConfig) + Clone {
    let index: Arc<str> = match ws_port {
        None => INDEX.into(),
        Some(port) => INDEX
            .replace(
                WS_PORT,
                &format!("<meta name=\"ws-port\" content=\"{port}\">"),
            )
            .into(),
    };
    let events = ws::hub::Events::new(&app.hub);
    move |cfg| {
        let (app, server, index) = (app.clone(), server.clone(), index.clone());
        let (events, hub) = (events.clone(), app.hub.clone());
        cfg.route(
            "/",
            web::get().to(move || {
                let index = index.clone();
                async move { asset("text/html; charset=utf-8", &*index) }
            }),
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
            "/ws",
            web::get().to(move |req: ws::Upgrade| {
                let (app, server) = (app.clone(), server.clone());
                async move { server.start(ws::endpoint(app.connection()), &req) }
            }),
        )
        .route(
            "/rooms/{room}/events",
            web::get().to(move |req: HttpRequest, room: web::Path<String>| {
                let (events, hub) = (events.clone(), hub.clone());
                async move { room_events(&events, &hub, &req, &room) }
            }),
        );
    }
}

/// A room's messages as Server-Sent Events: the JSON the WebSocket sends, each
/// with its id (`EPOCH:OFFSET`); the room's name checked as a join checks it.
fn room_events(
    events: &ws::hub::Events,
    hub: &ws::Hub,
    req: &HttpRequest,
    room: &str,
) -> HttpResponse {
    if let Err(refused) = check("room", room, MAX_ROOM) {
        return HttpResponse::BadRequest().body(refused.reason);
    }
    if hub.position(room).is_none() && hub.topics().len() >= MAX_ROOMS {
        return HttpResponse::ServiceUnavailable().body("too many rooms on this server");
    }
    events.respond(req, room)
}

/// The metrics listener's one route, `/metrics` (the Prometheus text).
pub fn metrics_routes(cfg: &mut web::ServiceConfig) {
    cfg.route(
        "/metrics",
        web::get().to(|| async {
            HttpResponse::Ok()
                .content_type("application/openmetrics-text; version=1.0.0; charset=utf-8")
                .body(ws::metrics::encode_text())
        }),
    );
}

/// `url` with its password replaced by `***` (for logs).
pub fn redact(url: &str) -> String {
    let Some(scheme_end) = url.find("://").map(|i| i + 3) else {
        return url.to_owned();
    };
    let authority_end = url[scheme_end..]
        .find(['/', '?', '#'])
        .map_or(url.len(), |i| scheme_end + i);
    let Some(at) = url[scheme_end..authority_end].rfind('@') else {
        return url.to_owned();
    };
    let userinfo = &url[scheme_end..scheme_end + at];
    match userinfo.find(':') {
        Some(colon) => format!(
            "{}{}:***{}",
            &url[..scheme_end],
            &userinfo[..colon],
            &url[scheme_end + at..]
        ),
        // A user name alone is a password to Redis (`redis://secret@host`).
        None => format!("{}***{}", &url[..scheme_end], &url[scheme_end + at..]),
    }
}

/// WebSockets on a listener of their own (`--ws-bind`): the standalone server
/// writes to each socket itself, without actix-web's buffers in the way (less
/// memory and CPU per connection). Returns its port and the running server.
#[cfg(feature = "server")]
pub fn ws_listener(
    app: &Arc<ChatApp>,
    server: &ws::Server,
    addr: &str,
    workers: usize,
) -> std::io::Result<(u16, actix_web::dev::Server)> {
    let app = app.clone();
    let listener = std::net::TcpListener::bind(addr)?;
    let port = listener.local_addr()?.port();
    let running = server.listen_on(listener, workers, move |req| match req.path() {
        "/ws" => Ok(ws::endpoint(app.connection())),
        _ => Err(ws::Refuse::new(404, "not found")),
    })?;
    eprintln!("WebSockets on ws://{addr}/ws");
    Ok((port, running))
}

#[cfg(not(feature = "server"))]
pub fn ws_listener(
    _: &Arc<ChatApp>,
    _: &ws::Server,
    _: &str,
    _: usize,
) -> std::io::Result<(u16, actix_web::dev::Server)> {
    Err(std::io::Error::new(
        std::io::ErrorKind::Unsupported,
        "--ws-bind needs the standalone server (the `server` feature)",
    ))
}

/// Plug the Redis backplane into `hub` (the `redis` feature).
#[cfg(feature = "redis")]
async fn start_backplane(hub: &ws::Hub, settings: &ws::Settings) -> std::io::Result<()> {
    let shown = redact(&settings.redis.url);
    match ws::hub::redis::RedisBackplane::start(hub, settings.redis.clone()).await {
        Ok(_) => {
            eprintln!("hub backplane: {shown}");
            Ok(())
        }
        Err(e) => {
            let message = e.to_string().replace(&settings.redis.url, &shown);
            Err(std::io::Error::new(
                std::io::ErrorKind::ConnectionRefused,
                format!("{shown}: {message}"),
            ))
        }
    }
}

#[cfg(not(feature = "redis"))]
async fn start_backplane(_: &ws::Hub, _: &ws::Settings) -> std::io::Result<()> {
    Err(std::io::Error::new(
        std::io::ErrorKind::Unsupported,
        "built without Redis: cargo run --release --example hub --features redis -- --redis URL",
    ))
}

const USAGE: &str = "usage: hub [--bind ADDR] [--config FILE.toml] [--workers N] [--redis URL]
           [--metrics ADDR] [--ws-bind ADDR] [--rate PER_SECOND] [--burst N] [--flood-close N]
           [--list-limit N] [--tick-ms MS] [--backlog N]";

struct Args {
    bind: String,
    config: Option<String>,
    workers: Option<usize>,
    redis: Option<String>,
    metrics: Option<String>,
    ws_bind: Option<String>,
    backlog: Option<u32>,
    options: ChatOptions,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        bind: "127.0.0.1:8080".into(),
        config: None,
        workers: None,
        redis: None,
        metrics: None,
        ws_bind: None,
        backlog: None,
        options: ChatOptions::default(),
    };
    let mut it = std::env::args().skip(1);
    fn num<T: std::str::FromStr>(arg: &str, value: Option<String>) -> Result<T, String> {
        value
            .ok_or(format!("{arg} needs a value"))?
            .parse()
            .map_err(|_| format!("{arg}: not a number"))
    }
    while let Some(arg) = it.next() {
        let o = &mut args.options;
        match arg.as_str() {
            "--bind" => args.bind = it.next().ok_or("--bind needs ADDR")?,
            "--config" => args.config = Some(it.next().ok_or("--config needs FILE")?),
            "--redis" => args.redis = Some(it.next().ok_or("--redis needs URL")?),
            "--metrics" => args.metrics = Some(it.next().ok_or("--metrics needs ADDR")?),
            "--ws-bind" => args.ws_bind = Some(it.next().ok_or("--ws-bind needs ADDR")?),
            "--workers" => args.workers = Some(num(&arg, it.next())?),
            "--backlog" => args.backlog = Some(num(&arg, it.next())?),
            "--rate" => o.rate = num(&arg, it.next())?,
            "--burst" => o.burst = num(&arg, it.next())?,
            "--flood-close" => o.flood_close = num(&arg, it.next())?,
            "--list-limit" => o.list_limit = num(&arg, it.next())?,
            "--tick-ms" => o.tick = Duration::from_millis(num(&arg, it.next())?),
            "-h" | "--help" => return Err(USAGE.into()),
            other => return Err(format!("unknown argument {other:?}\n{USAGE}")),
        }
    }
    let o = &args.options;
    let at_least = |v: f64, low: f64| v.is_finite() && v >= low;
    if !at_least(o.rate, 0.01) || !at_least(o.burst, 1.0) || !at_least(o.flood_close, 1.0) {
        return Err("--rate must be at least 0.01, --burst and --flood-close at least 1".into());
    }
    if o.tick.is_zero() || o.tick > Duration::from_secs(60) {
        return Err("--tick-ms must be 1 to 60000".into());
    }
    Ok(args)
}

/// Ctrl-C (SIGINT) or SIGTERM.
async fn stop_signal() -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = signal(SignalKind::terminate())?;
        tokio::select! {
            r = tokio::signal::ctrl_c() => r,
            _ = term.recv() => Ok(()),
        }
    }
    #[cfg(not(unix))]
    tokio::signal::ctrl_c().await
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
    // What the chat needs, whatever the file says: member lists need presence,
    // and no message of the protocol is larger than this.
    settings.hub.presence = true;
    if settings.protocol.max_message_size > MAX_MESSAGE_BYTES {
        settings.protocol = settings.protocol.max_message_size(MAX_MESSAGE_BYTES);
    }
    if let Some(url) = &args.redis {
        settings.redis.url = url.clone();
    }
    settings.check().map_err(|e| invalid(e.to_string()))?;
    let app = ChatApp::new("chat", &settings, args.options.clone());
    if !settings.redis.url.is_empty() {
        start_backplane(app.hub(), &settings).await?;
    }
    // The route's opening handshake gets the same time as the standalone path's:
    // actix-web's request head timeout (a slow peer gets 408 and the close).
    let handshake_timeout = settings.connection.handshake_timeout;
    // Signals are this function's (below): it stops the page's server too, which
    // the WebSocket listener's own handling would leave running.
    let server = ws::Server::with_settings(settings).handle_signals(false);
    let ws_listener = match &args.ws_bind {
        Some(addr) => Some(ws_listener(&app, &server, addr, args.workers.unwrap_or(0))?),
        None => None,
    };
    let routes = routes_with(app, server.clone(), ws_listener.as_ref().map(|(p, _)| *p));
    let ws_handle = ws_listener.map(|(_, running)| {
        let handle = running.handle();
        actix_web::rt::spawn(running);
        handle
    });
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
    if let Some(backlog) = args.backlog {
        http = http.backlog(backlog);
    }
    let running = http.bind(&args.bind)?.run();
    let handle = running.handle();
    let metrics = match &args.metrics {
        Some(addr) => {
            let m = HttpServer::new(|| App::new().configure(metrics_routes))
                .workers(1)
                .disable_signals()
                .bind(addr)?
                .run();
            let metrics_handle = m.handle();
            actix_web::rt::spawn(m);
            eprintln!("metrics on http://{addr}/metrics");
            Some(metrics_handle)
        }
        None => None,
    };
    actix_web::rt::spawn(async move {
        if stop_signal().await.is_ok() {
            server.shutdown(Duration::from_secs(5)).await;
            if let Some(metrics) = metrics {
                metrics.stop(true).await;
            }
            if let Some(ws) = ws_handle {
                ws.stop(true).await;
            }
            handle.stop(true).await;
        }
    });
    eprintln!("chat on http://{}/ (WebSocket /ws)", args.bind);
    running.await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_password_of_a_redis_url_is_never_shown() {
        for (url, shown) in [
            ("redis://127.0.0.1:6379", "redis://127.0.0.1:6379"),
            ("redis://:s3cret@host:6379/0", "redis://:***@host:6379/0"),
            ("redis://user:s3cret@host", "redis://user:***@host"),
            ("rediss://s3cret@host/1?x=@", "rediss://***@host/1?x=@"),
            (
                "redis-cluster://u:p@a:1?node=b:2",
                "redis-cluster://u:***@a:1?node=b:2",
            ),
            ("not a url", "not a url"),
        ] {
            assert_eq!(redact(url), shown);
        }
    }
}
