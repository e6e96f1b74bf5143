//! A chat in rooms, in one file: `ws://127.0.0.1:8080/ws?name=ada` (and `&room=`,
//! default `lobby`). Lines of text: anything is said to the room; `/join ROOM`
//! moves to another room, `/who` lists its users, `/msg NAME TEXT` goes to NAME
//! alone (all of NAME's connections). Joins and leaves are announced (once per
//! user, however many tabs). `examples/hub.rs` is the full chat (JSON, history,
//! a browser page).
//!
//! ```sh
//! cargo run --example rooms                     # then, e.g., websocat 'ws://127.0.0.1:8080/ws?name=ada'
//! cargo run --example rooms -- --bind 127.0.0.1:9002
//! ```

use actix_web::{web, App, HttpResponse, HttpServer, Responder};
use websocket_driver as ws;

/// One connection of user `name`, in `room`.
struct Member {
    hub: ws::Hub,
    name: String,
    room: String,
}

/// A name or a room: 1 to 32 letters, digits, `-` or `_`.
fn valid(word: &str) -> bool {
    (1..=32).contains(&word.len())
        && word
            .chars()
            .all(|c| c.is_alphanumeric() || c == '-' || c == '_')
}

/// Each user also has a topic of their own, which every one of their connections
/// joins: a private message is a publication there.
fn inbox(name: &str) -> String {
    format!("@{name}")
}

impl Member {
    fn enter(&self, conn: &ws::Conn) {
        let first = !self.hub.users(&self.room).contains(&self.name);
        let _ = self.hub.join_with(
            conn,
            &self.room,
            ws::JoinOptions::default().user(&self.name),
        );
        if first {
            self.hub
                .publish(&self.room, format!("* {} joined {}", self.name, self.room));
        }
    }

    fn leave(&self, conn: &ws::Conn) {
        self.hub.leave(conn.id(), &self.room);
        if !self.hub.users(&self.room).contains(&self.name) {
            self.hub
                .publish(&self.room, format!("* {} left {}", self.name, self.room));
        }
    }
}

impl ws::Endpoint for Member {
    fn on_open(&mut self, conn: &ws::Conn, _: &mut ws::EndpointContext<Self>) {
        let _ = self.hub.join_with(
            conn,
            &inbox(&self.name),
            ws::JoinOptions::default().user(&self.name),
        );
        self.enter(conn);
    }

    fn on_message(&mut self, conn: &ws::Conn, msg: ws::Message, _: &mut ws::EndpointContext<Self>) {
        let Some(text) = msg.as_text() else { return };
        if let Some(room) = text.strip_prefix("/join ").map(str::trim) {
            if !valid(room) {
                conn.send_text(format!("* no such room: {room}"));
                return;
            }
            self.leave(conn);
            self.room = room.to_owned();
            self.enter(conn);
        } else if text == "/who" {
            conn.send_text(format!(
                "* in {}: {}",
                self.room,
                self.hub.users(&self.room).join(", ")
            ));
        } else if let Some(rest) = text.strip_prefix("/msg ") {
            let (to, body) = rest.split_once(' ').unwrap_or((rest, ""));
            if !valid(to) || self.hub.count(&inbox(to)) == 0 {
                conn.send_text(format!("* {to} is not here"));
            } else {
                self.hub
                    .publish(&inbox(to), format!("[{} to you] {body}", self.name));
            }
        } else {
            self.hub
                .publish(&self.room, format!("{}: {text}", self.name));
        }
    }

    fn on_close(&mut self, conn: &ws::Conn, _: ws::Close, _: &mut ws::EndpointContext<Self>) {
        self.hub.leave(conn.id(), &inbox(&self.name));
        self.leave(conn);
    }
}

/// `/ws?name=NAME[&room=ROOM]`: 400 without a valid name or room.
pub async fn chat(req: ws::Upgrade, hub: web::Data<ws::Hub>) -> impl Responder {
    let name = req.query_param("name").unwrap_or_default().into_owned();
    let room = req
        .query_param("room")
        .map_or("lobby".into(), |r| r.into_owned());
    if !valid(&name) || !valid(&room) {
        return HttpResponse::BadRequest()
            .body("?name= (and &room=): 1 to 32 letters, digits, - or _\n");
    }
    let hub = hub.get_ref().clone();
    ws::start(ws::endpoint(Member { hub, name, room }), &req)
}

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    let bind = std::env::args().skip_while(|a| a != "--bind").nth(1);
    let bind = bind.unwrap_or_else(|| "127.0.0.1:8080".into());
    let hub = web::Data::new(ws::Hub::new());
    eprintln!("rooms on ws://{bind}/ws?name=NAME");
    HttpServer::new(move || {
        App::new()
            .app_data(hub.clone())
            .route("/ws", web::get().to(chat))
    })
    .on_connect(ws::on_connect)
    .bind(bind)?
    .run()
    .await
}
