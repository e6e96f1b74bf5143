//! examples/rooms.rs, served in-process on 127.0.0.1:0 and driven by
//! tokio-tungstenite clients: names from the query, announcements, rooms, `/who`,
//! private messages, the leave on close, and the 400 without a name.

#[allow(dead_code)]
#[path = "../examples/rooms.rs"]
mod rooms;

use std::{net::SocketAddr, time::Duration};

use actix_web::{web, App, HttpServer};
use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::{tungstenite, MaybeTlsStream, WebSocketStream};

type Client = WebSocketStream<MaybeTlsStream<tokio::net::TcpStream>>;

fn serve() -> (SocketAddr, actix_web::dev::ServerHandle) {
    let hub = web::Data::new(rooms::hub().unwrap());
    let server = HttpServer::new(move || {
        App::new()
            .app_data(hub.clone())
            .route("/ws", web::get().to(rooms::chat))
    })
    .workers(2)
    .disable_signals()
    .bind("127.0.0.1:0")
    .unwrap();
    let addr = server.addrs()[0];
    let server = server.run();
    let handle = server.handle();
    actix_rt::spawn(server);
    (addr, handle)
}

async fn connect(addr: SocketAddr, query: &str) -> Client {
    tokio_tungstenite::connect_async(format!("ws://{addr}/ws?{query}"))
        .await
        .unwrap()
        .0
}

/// The next text the client receives (10 s at most).
async fn next(client: &mut Client) -> String {
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(10), client.next())
            .await
            .expect("a message within 10 s")
            .expect("the connection is open")
            .unwrap();
        if let tungstenite::Message::Text(text) = msg {
            return text.as_str().to_owned();
        }
    }
}

async fn say(client: &mut Client, text: &str) {
    client.send(tungstenite::Message::text(text)).await.unwrap();
}

#[actix_rt::test]
async fn rooms_announce_relay_list_and_whisper() {
    let (addr, handle) = serve();
    // The joiner is told who is there; the others, who came.
    let mut ada = connect(addr, "name=ada").await;
    assert_eq!(next(&mut ada).await, "* in lobby: ada");
    let mut bob = connect(addr, "name=bob&room=lobby").await;
    assert_eq!(next(&mut bob).await, "* in lobby: ada, bob");
    assert_eq!(next(&mut ada).await, "* bob joined lobby");

    // A second tab of ada's is not announced (its `/who` answer shows it joined;
    // the others' next message is ada's, not an announcement).
    let mut ada2 = connect(addr, "name=ada").await;
    say(&mut ada2, "/who").await;
    assert_eq!(next(&mut ada2).await, "* in lobby: ada, bob");
    say(&mut ada, "hi all").await;
    for client in [&mut ada, &mut bob, &mut ada2] {
        assert_eq!(next(client).await, "ada: hi all");
    }

    // A private message reaches every connection of its addressee.
    say(&mut bob, "/msg ada psst").await;
    assert_eq!(next(&mut ada).await, "[bob to you] psst");
    assert_eq!(next(&mut ada2).await, "[bob to you] psst");
    say(&mut bob, "/msg carol hello?").await;
    assert_eq!(next(&mut bob).await, "* carol is not here");

    // Rooms: bob moves; the lobby hears him leave.
    say(&mut bob, "/join kitchen").await;
    assert_eq!(next(&mut bob).await, "* in kitchen: bob");
    assert_eq!(next(&mut ada).await, "* bob left lobby");
    assert_eq!(next(&mut ada2).await, "* bob left lobby");
    say(&mut ada, "/join kitchen").await;
    assert_eq!(next(&mut ada).await, "* in kitchen: ada, bob");
    assert_eq!(next(&mut bob).await, "* ada joined kitchen");
    // ada2 is still in the lobby: ada did not leave it.
    say(&mut ada2, "/who").await;
    assert_eq!(next(&mut ada2).await, "* in lobby: ada");

    // bob closing is heard in the kitchen.
    bob.close(None).await.unwrap();
    assert_eq!(next(&mut ada).await, "* bob left kitchen");
    say(&mut ada, "/who").await;
    assert_eq!(next(&mut ada).await, "* in kitchen: ada");
    handle.stop(false).await;
}

#[actix_rt::test]
async fn a_connection_without_a_valid_name_is_refused_with_400() {
    let (addr, handle) = serve();
    for query in ["", "name=", "name=a%20b", "name=ada&room=@bob"] {
        let err = tokio_tungstenite::connect_async(format!("ws://{addr}/ws?{query}"))
            .await
            .unwrap_err();
        match err {
            tungstenite::Error::Http(response) => assert_eq!(response.status(), 400, "{query}"),
            other => panic!("{query}: expected 400, got {other:?}"),
        }
    }
    handle.stop(false).await;
}
