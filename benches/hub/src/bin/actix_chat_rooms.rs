//! actix's own WebSocket chat-server pattern (actix/examples, `websockets/chat`),
//! as `actix_chat`, speaking the chat example's JSON protocol (`examples/hub.rs`,
//! `wsd-hubload --chat ROOM`): the peer of the chat example in the room benchmark
//! of `scripts/bench-hub.sh`.
//!
//! One session actor per connection (`WebsocketContext`, the example's heartbeat),
//! one `ChatServer` actor with the sessions' `Recipient`s and the rooms. A session
//! parses each text (`join`, `say`, `leave`, serde_json) and sends it to the
//! `ChatServer`, which answers a join with `joined` and the member list, and sends
//! a `say` as a `message` to every other session of the room, one `String` per
//! recipient (`do_send`), which the session writes with `ctx.text`. The messages
//! are the chat example's, byte for byte in shape (`time`, the room's `offset`
//! counter and `epoch` included), so that both write as much per delivery; there
//! is no history behind them. As the
//! example's "Someone joined" notices, every join and leave of a room of at most
//! 100 members sends the list to every member of the room; a larger room sends
//! nothing to the others (the joiner gets the count): no O(N^2) for big rooms.
//! As the example's `main`, the `ChatServer` runs on the main thread's arbiter and
//! the sessions on the one HTTP worker.
use std::{
    collections::HashMap,
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use actix::prelude::*;
use actix_web::{web, App, Error, HttpRequest, HttpResponse, HttpServer};
use actix_web_actors::ws;
use serde::{Deserialize, Serialize};

/// Rooms up to this many members send their list on every change.
const LIST_LIMIT: usize = 100;

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
enum ClientMsg {
    Join { room: String, name: String },
    Say { room: String, text: String },
    Leave { room: String },
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "lowercase")]
enum ServerMsg<'a> {
    Joined {
        room: &'a str,
        epoch: &'a str,
        offset: u64,
        recovered: bool,
    },
    Message {
        room: &'a str,
        from: &'a str,
        text: &'a str,
        time: u64,
        offset: u64,
        epoch: &'a str,
    },
    Members {
        room: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        members: Option<Vec<&'a str>>,
        count: usize,
    },
    Error {
        reason: String,
    },
}

fn json(msg: &ServerMsg<'_>) -> String {
    serde_json::to_string(msg).unwrap_or_default()
}

mod server {
    use super::*;

    /// The chat server sends this to a session.
    #[derive(Message)]
    #[rtype(result = "()")]
    pub struct Message(pub String);

    /// A new session.
    #[derive(Message)]
    #[rtype(usize)]
    pub struct Connect {
        pub addr: Recipient<Message>,
    }

    /// A session closed.
    #[derive(Message)]
    #[rtype(result = "()")]
    pub struct Disconnect {
        pub id: usize,
    }

    /// A session's message.
    #[derive(Message)]
    #[rtype(result = "()")]
    pub struct Client {
        pub id: usize,
        pub msg: ClientMsg,
    }

    #[derive(Default)]
    pub struct ChatServer {
        sessions: HashMap<usize, Recipient<Message>>,
        /// Room -> session -> name.
        rooms: HashMap<String, HashMap<usize, String>>,
        /// Room -> its epoch and the offset of its latest message.
        positions: HashMap<String, (String, u64)>,
        next_id: usize,
    }

    impl ChatServer {
        /// Send `message` to everyone in `room` but `skip_id`.
        fn send_message(&self, room: &str, message: &str, skip_id: usize) {
            if let Some(sessions) = self.rooms.get(room) {
                for id in sessions.keys() {
                    if *id != skip_id {
                        if let Some(addr) = self.sessions.get(id) {
                            addr.do_send(Message(message.to_owned()));
                        }
                    }
                }
            }
        }

        fn send_to(&self, id: usize, message: String) {
            if let Some(addr) = self.sessions.get(&id) {
                addr.do_send(Message(message));
            }
        }

        /// The room's list, or its count when it is large.
        fn list(&self, room: &str) -> Option<(String, bool)> {
            let sessions = self.rooms.get(room)?;
            let count = sessions.len();
            let names = (count <= LIST_LIMIT).then(|| {
                let mut names: Vec<&str> = sessions.values().map(String::as_str).collect();
                names.sort_unstable();
                names
            });
            let small = names.is_some();
            let msg = json(&ServerMsg::Members {
                room,
                members: names,
                count,
            });
            Some((msg, small))
        }

        /// A small room's list to everyone in it but `skip_id`.
        fn announce(&self, room: &str, skip_id: usize) {
            if let Some((list, true)) = self.list(room) {
                self.send_message(room, &list, skip_id);
            }
        }

        fn leave(&mut self, id: usize, room: &str) -> bool {
            let Some(sessions) = self.rooms.get_mut(room) else {
                return false;
            };
            if sessions.remove(&id).is_none() {
                return false;
            }
            if sessions.is_empty() {
                self.rooms.remove(room);
                self.positions.remove(room);
            } else {
                self.announce(room, 0);
            }
            true
        }
    }

    impl Actor for ChatServer {
        type Context = Context<Self>;
    }

    impl Handler<Connect> for ChatServer {
        type Result = usize;

        fn handle(&mut self, msg: Connect, _: &mut Context<Self>) -> Self::Result {
            self.next_id += 1;
            self.sessions.insert(self.next_id, msg.addr);
            self.next_id
        }
    }

    impl Handler<Disconnect> for ChatServer {
        type Result = ();

        fn handle(&mut self, msg: Disconnect, _: &mut Context<Self>) {
            if self.sessions.remove(&msg.id).is_some() {
                let rooms: Vec<String> = self
                    .rooms
                    .iter()
                    .filter(|(_, s)| s.contains_key(&msg.id))
                    .map(|(r, _)| r.clone())
                    .collect();
                for room in rooms {
                    self.leave(msg.id, &room);
                }
            }
        }
    }

    impl Handler<Client> for ChatServer {
        type Result = ();

        fn handle(&mut self, msg: Client, _: &mut Context<Self>) {
            let id = msg.id;
            match msg.msg {
                ClientMsg::Join { room, name } => {
                    let sessions = self.rooms.entry(room.clone()).or_default();
                    let fresh = sessions.insert(id, name).is_none();
                    let (epoch, offset) = self
                        .positions
                        .entry(room.clone())
                        .or_insert_with(|| (format!("{:016x}", self.next_id * 7919), 0));
                    let joined = json(&ServerMsg::Joined {
                        room: &room,
                        epoch,
                        offset: *offset,
                        recovered: false,
                    });
                    self.send_to(id, joined);
                    if let Some((list, _)) = self.list(&room) {
                        self.send_to(id, list);
                    }
                    if fresh {
                        // The others hear of it ("Someone joined"), in small rooms.
                        self.announce(&room, id);
                    }
                }
                ClientMsg::Say { room, text } => {
                    let Some(from) = self.rooms.get(&room).and_then(|s| s.get(&id)) else {
                        return self.send_to(
                            id,
                            json(&ServerMsg::Error {
                                reason: format!("not in room {room:?}"),
                            }),
                        );
                    };
                    let Some((epoch, offset)) = self.positions.get_mut(&room) else {
                        return;
                    };
                    *offset += 1;
                    let time = SystemTime::now()
                        .duration_since(UNIX_EPOCH)
                        .map_or(0, |d| d.as_millis() as u64);
                    let msg = json(&ServerMsg::Message {
                        room: &room,
                        from,
                        text: &text,
                        time,
                        offset: *offset,
                        epoch,
                    });
                    self.send_message(&room, &msg, id);
                }
                ClientMsg::Leave { room } => {
                    if !self.leave(id, &room) {
                        self.send_to(
                            id,
                            json(&ServerMsg::Error {
                                reason: format!("not in room {room:?}"),
                            }),
                        );
                    }
                }
            }
        }
    }
}

const HEARTBEAT_INTERVAL: Duration = Duration::from_secs(5);
const CLIENT_TIMEOUT: Duration = Duration::from_secs(10);

struct WsChatSession {
    id: usize,
    hb: Instant,
    addr: Addr<server::ChatServer>,
}

impl WsChatSession {
    fn hb(&self, ctx: &mut ws::WebsocketContext<Self>) {
        ctx.run_interval(HEARTBEAT_INTERVAL, |act, ctx| {
            if Instant::now().duration_since(act.hb) > CLIENT_TIMEOUT {
                act.addr.do_send(server::Disconnect { id: act.id });
                ctx.stop();
                return;
            }
            ctx.ping(b"");
        });
    }
}

impl Actor for WsChatSession {
    type Context = ws::WebsocketContext<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        self.hb(ctx);
        let addr = ctx.address();
        self.addr
            .send(server::Connect {
                addr: addr.recipient(),
            })
            .into_actor(self)
            .then(|res, act, ctx| {
                match res {
                    Ok(res) => act.id = res,
                    _ => ctx.stop(),
                }
                fut::ready(())
            })
            .wait(ctx);
    }

    fn stopping(&mut self, _: &mut Self::Context) -> Running {
        self.addr.do_send(server::Disconnect { id: self.id });
        Running::Stop
    }
}

impl Handler<server::Message> for WsChatSession {
    type Result = ();

    fn handle(&mut self, msg: server::Message, ctx: &mut Self::Context) {
        ctx.text(msg.0);
    }
}

impl StreamHandler<Result<ws::Message, ws::ProtocolError>> for WsChatSession {
    fn handle(&mut self, msg: Result<ws::Message, ws::ProtocolError>, ctx: &mut Self::Context) {
        let msg = match msg {
            Err(_) => {
                ctx.stop();
                return;
            }
            Ok(msg) => msg,
        };
        match msg {
            ws::Message::Ping(msg) => {
                self.hb = Instant::now();
                ctx.pong(&msg);
            }
            ws::Message::Pong(_) => {
                self.hb = Instant::now();
            }
            ws::Message::Text(text) => match serde_json::from_str::<ClientMsg>(&text) {
                Ok(msg) => self.addr.do_send(server::Client { id: self.id, msg }),
                Err(e) => ctx.text(json(&ServerMsg::Error {
                    reason: format!("invalid message: {e}"),
                })),
            },
            ws::Message::Binary(_) => {}
            ws::Message::Close(reason) => {
                ctx.close(reason);
                ctx.stop();
            }
            ws::Message::Continuation(_) => {
                ctx.stop();
            }
            ws::Message::Nop => (),
        }
    }
}

async fn chat_route(
    req: HttpRequest,
    stream: web::Payload,
    srv: web::Data<Addr<server::ChatServer>>,
) -> Result<HttpResponse, Error> {
    ws::start(
        WsChatSession {
            id: 0,
            hb: Instant::now(),
            addr: srv.get_ref().clone(),
        },
        &req,
        stream,
    )
}

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    let server = server::ChatServer::default().start();
    HttpServer::new(move || {
        App::new()
            .app_data(web::Data::new(server.clone()))
            .route("/ws", web::get().to(chat_route))
    })
    .on_connect(|conn, _| {
        if let Some(tcp) = conn.downcast_ref::<actix_web::rt::net::TcpStream>() {
            let _ = tcp.set_nodelay(true);
        }
    })
    .workers(1)
    .bind(wsd_hub_bench::bind_arg())?
    .run()
    .await
}
