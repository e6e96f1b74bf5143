//! A chat in rooms, in one file: `ws://127.0.0.1:8080/ws?name=ada` (and `&room=`,
//! default `lobby`). Lines of text: anything is said to the room; `/join ROOM`
//! moves to another room, `/who` lists its users, `/msg NAME TEXT` goes to NAME
//! alone (all of NAME's connections). Joins and leaves are announced once per
//! user, however many tabs: the joiner is told who is there, the others who came.
//! `examples/hub.rs` is the full chat (JSON, history, a browser page).
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

impl Member {
    /// Join the room as `name` (which makes the connection `name`'s: a
    /// `send_to_user(name, ..)` reaches it).
    fn enter(&self, conn: &ws::Conn) {
        let options = ws::JoinOptions::default().user(&self.name);
        if let Err(err) = self.hub.join_with(conn, &self.room, options) {
            conn.close(ws::CloseCode::POLICY_VIOLATION, &err.to_string());
        }
    }
}

impl ws::Endpoint for Member {
    fn on_open(&mut self, conn: &ws::Conn, _: &mut ws::EndpointContext<Self>) {
        self.enter(conn);
    }

    fn on_message(&mut self, conn: &ws::Conn, msg: ws::Message, _: &mut ws::EndpointContext<Self>) {
        let Some(text) = msg.as_text() else { return };
        if let Some(room) = text.strip_prefix("/join ").map(str::trim) {
            if !valid(room) {
                conn.send_text(format!("* no such room: {room}"));
                return;
            }
            self.hub.leave(conn.id(), &self.room);
            self.room = room.to_owned();
            self.enter(conn);
        } else if text == "/who" {
            let users = self.hub.users(&self.room).join(", ");
            conn.send_text(format!("* in {}: {users}", self.room));
        } else if let Some(rest) = text.strip_prefix("/msg ") {
            let (to, body) = rest.split_once(' ').unwrap_or((rest, ""));
            let whisper = format!("[{} to you] {body}", self.name);
            if self.hub.send_to_user(to, whisper) == 0 {
                conn.send_text(format!("* {to} is not here"));
            }
        } else {
            self.hub
                .publish(&self.room, format!("{}: {text}", self.name));
        }
    }
    // No on_close: a closing connection leaves its room, and presence says so.
}

/// The hub, announcing joins and leaves in every room (rooms are made on the fly).
pub fn hub() -> std::io::Result<ws::Hub> {
    let mut settings = ws::Settings::default();
    settings.hub.presence = true; // for every topic, from its first join
    let hub = ws::Hub::with_settings(&settings);
    let weak = hub.downgrade();
    hub.on_presence_fn(move |p: &ws::Presence| {
        let Some(hub) = weak.upgrade() else { return };
        let verb = match p.kind {
            ws::PresenceKind::Joined => "joined",
            ws::PresenceKind::Left => "left",
        };
        // To everyone in the room but the connection that joined (or left) ...
        hub.publish_transient(&p.topic, format!("* {} {verb} {}", p.user, p.topic), p.conn);
        // ... which, joining, is told who is there.
        if let (ws::PresenceKind::Joined, Some(id)) = (p.kind, p.conn) {
            hub.send_to(
                id,
                format!("* in {}: {}", p.topic, hub.users(&p.topic).join(", ")),
            );
        }
    })?;
    Ok(hub)
}

/// `/ws?name=NAME[&room=ROOM]`: 400 without a valid name or room.
pub async fn chat(req: ws::Upgrade, hub: web::Data<ws::Hub>) -> impl Responder {
    let name = req.query_param("name").unwrap_or_default().into_owned();
    let room = req
        .query_param("room")
        .unwrap_or("lobby".into())
        .into_owned();
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
    let hub = web::Data::new(hub()?);
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
