//! actix's own WebSocket chat-server pattern (actix/examples, `websockets/chat`),
//! on `actix-web-actors`: one session actor per connection (`WebsocketContext`,
//! with the example's heartbeat: a Ping every 5 s through `run_interval`, dropped
//! after 10 s without a Ping or Pong from the client), and one `ChatServer` actor
//! holding `HashMap<usize, Recipient<Message>>` and the rooms. A session forwards
//! each text to the `ChatServer`, which `do_send`s it to every other session of
//! the room, which writes it with `ctx.text`.
//!
//! Kept from the example: its messages (`Connect`, `Disconnect`, `ClientMessage`,
//! `Message(String)`), the room map with everyone in "main", the trimmed text and
//! the optional name prefix, one `String` per recipient. Left out, because the
//! benchmark's protocol forbids anything but the publications: the "Someone
//! joined" notices and the `/list`, `/join`, `/name` commands; the visitor count;
//! random ids (a counter instead). As the example's `main`, the `ChatServer` runs
//! on the main thread's arbiter and the sessions on the one HTTP worker.
use std::{
    collections::{HashMap, HashSet},
    time::{Duration, Instant},
};

use actix::prelude::*;
use actix_web::{web, App, Error, HttpRequest, HttpResponse, HttpServer};
use actix_web_actors::ws;

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

    /// A message for a room.
    #[derive(Message)]
    #[rtype(result = "()")]
    pub struct ClientMessage {
        pub id: usize,
        pub msg: String,
        pub room: String,
    }

    pub struct ChatServer {
        sessions: HashMap<usize, Recipient<Message>>,
        rooms: HashMap<String, HashSet<usize>>,
        next_id: usize,
    }

    impl ChatServer {
        pub fn new() -> ChatServer {
            let mut rooms = HashMap::new();
            rooms.insert("main".to_owned(), HashSet::new());
            ChatServer {
                sessions: HashMap::new(),
                rooms,
                next_id: 1,
            }
        }

        /// Send `message` to everyone in `room` but `skip_id`.
        fn send_message(&self, room: &str, message: &str, skip_id: usize) {
            if let Some(sessions) = self.rooms.get(room) {
                for id in sessions {
                    if *id != skip_id {
                        if let Some(addr) = self.sessions.get(id) {
                            addr.do_send(Message(message.to_owned()));
                        }
                    }
                }
            }
        }
    }

    impl Actor for ChatServer {
        type Context = Context<Self>;
    }

    impl Handler<Connect> for ChatServer {
        type Result = usize;

        fn handle(&mut self, msg: Connect, _: &mut Context<Self>) -> Self::Result {
            let id = self.next_id;
            self.next_id += 1;
            self.sessions.insert(id, msg.addr);
            self.rooms.entry("main".to_owned()).or_default().insert(id);
            id
        }
    }

    impl Handler<Disconnect> for ChatServer {
        type Result = ();

        fn handle(&mut self, msg: Disconnect, _: &mut Context<Self>) {
            if self.sessions.remove(&msg.id).is_some() {
                for sessions in self.rooms.values_mut() {
                    sessions.remove(&msg.id);
                }
            }
        }
    }

    impl Handler<ClientMessage> for ChatServer {
        type Result = ();

        fn handle(&mut self, msg: ClientMessage, _: &mut Context<Self>) {
            self.send_message(&msg.room, msg.msg.as_str(), msg.id);
        }
    }
}

const HEARTBEAT_INTERVAL: Duration = Duration::from_secs(5);
const CLIENT_TIMEOUT: Duration = Duration::from_secs(10);

struct WsChatSession {
    id: usize,
    hb: Instant,
    room: String,
    name: Option<String>,
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
            ws::Message::Text(text) => {
                let m = text.trim();
                let msg = if let Some(ref name) = self.name {
                    format!("{name}: {m}")
                } else {
                    m.to_owned()
                };
                self.addr.do_send(server::ClientMessage {
                    id: self.id,
                    msg,
                    room: self.room.clone(),
                })
            }
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
            room: "main".to_owned(),
            name: None,
            addr: srv.get_ref().clone(),
        },
        &req,
        stream,
    )
}

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    let server = server::ChatServer::new().start();
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
