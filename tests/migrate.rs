//! The programs of the migration guide (docs/migrating.md): each before/after pair
//! in `examples/migrate_*.rs` serves `/ws` alike. The examples' `routes` functions
//! (what their `main` serves) run on 127.0.0.1:0, and a foreign client
//! (tokio-tungstenite) checks that each echoes text and binary, pings a client
//! that stays quiet for the heartbeat interval (5 s), and answers a Close; the
//! actix-ws after-program keeps its frame and message limits; and the guide quotes
//! the four files as they are.

#[allow(dead_code)]
#[path = "../examples/migrate_actix_web_actors_before.rs"]
mod actix_web_actors_before;

#[allow(dead_code)]
#[path = "../examples/migrate_actix_web_actors_after.rs"]
mod actix_web_actors_after;

#[allow(dead_code)]
#[path = "../examples/migrate_actix_ws_before.rs"]
mod actix_ws_before;

#[allow(dead_code)]
#[path = "../examples/migrate_actix_ws_after.rs"]
mod actix_ws_after;

use std::time::{Duration, Instant};

use actix_web::{dev::ServerHandle, web, App, HttpServer};
use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::{
    tungstenite::{protocol::frame::coding::CloseCode, Message},
    MaybeTlsStream, WebSocketStream,
};

type Client = WebSocketStream<MaybeTlsStream<tokio::net::TcpStream>>;

/// Serve `routes` (an example's) on 127.0.0.1:0 with one worker; connect to `/ws`.
async fn connect(routes: fn(&mut web::ServiceConfig)) -> (Client, ServerHandle) {
    let server = HttpServer::new(move || App::new().configure(routes))
        .workers(1)
        .disable_signals()
        .shutdown_timeout(1)
        .bind("127.0.0.1:0")
        .expect("bind");
    let addr = server.addrs()[0];
    let running = server.run();
    let handle = running.handle();
    actix_rt::spawn(running);
    let (client, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/ws"))
        .await
        .expect("handshake");
    (client, handle)
}

/// The next frame from the server, within `secs`.
async fn next(client: &mut Client, secs: u64) -> Message {
    tokio::time::timeout(Duration::from_secs(secs), client.next())
        .await
        .expect("timed out")
        .expect("stream ended")
        .expect("read failed")
}

/// The next frame other than a Ping or Pong (a heartbeat may come at any time).
async fn next_data(client: &mut Client) -> Message {
    loop {
        match next(client, 5).await {
            Message::Ping(_) | Message::Pong(_) => continue,
            other => return other,
        }
    }
}

async fn echoes_pings_and_closes(routes: fn(&mut web::ServiceConfig)) {
    let (mut client, handle) = connect(routes).await;
    client.send(Message::text("hello")).await.unwrap();
    assert_eq!(next_data(&mut client).await, Message::text("hello"));
    client
        .send(Message::binary(vec![0, 1, 2, 255]))
        .await
        .unwrap();
    assert_eq!(
        next_data(&mut client).await,
        Message::binary(vec![0, 1, 2, 255])
    );
    // Quiet from here: the heartbeat's timer pings within its 5 s interval (plus
    // slack); a ping sooner than 3 s is the actix-ws loop's first, immediate tick.
    // tungstenite answers each with a Pong on its next read.
    let quiet = Instant::now();
    loop {
        match next(&mut client, 8).await {
            Message::Ping(_) if quiet.elapsed() >= Duration::from_secs(3) => break,
            Message::Ping(_) => continue,
            other => panic!("expected a Ping, got {other:?}"),
        }
    }
    client.send(Message::text("still here")).await.unwrap();
    assert_eq!(next_data(&mut client).await, Message::text("still here"));
    client.close(None).await.unwrap();
    assert!(matches!(next_data(&mut client).await, Message::Close(_)));
    handle.stop(false).await;
}

#[actix_rt::test]
async fn actix_web_actors_before_echoes_pings_and_closes() {
    echoes_pings_and_closes(actix_web_actors_before::routes).await;
}

#[actix_rt::test]
async fn actix_web_actors_after_echoes_pings_and_closes() {
    echoes_pings_and_closes(actix_web_actors_after::routes).await;
}

#[actix_rt::test]
async fn actix_ws_before_echoes_pings_and_closes() {
    echoes_pings_and_closes(actix_ws_before::routes).await;
}

#[actix_rt::test]
async fn actix_ws_after_echoes_pings_and_closes() {
    echoes_pings_and_closes(actix_ws_after::routes).await;
}

/// Send `data` as one binary message in fragments of `size` bytes.
async fn send_fragmented(client: &mut Client, data: &[u8], size: usize) {
    use tokio_tungstenite::tungstenite::protocol::frame::{
        coding::{Data, OpCode},
        Frame,
    };
    let count = data.len().div_ceil(size);
    for (i, chunk) in data.chunks(size).enumerate() {
        let opcode = OpCode::Data(if i == 0 { Data::Binary } else { Data::Continue });
        let frame = Frame::message(chunk.to_vec(), opcode, i + 1 == count);
        client.send(Message::Frame(frame)).await.unwrap();
    }
}

/// The Close the server sends next, with its code.
async fn close_code(client: &mut Client) -> CloseCode {
    match next_data(client).await {
        Message::Close(Some(close)) => close.code,
        other => panic!("expected a Close with a code, got {other:?}"),
    }
}

/// The actix-ws after-program keeps the before-program's limits: a message of
/// 1.5 MiB in 64 KiB fragments echoes whole; a frame over 128 KiB, or a message
/// over 2 MiB, fails the connection with 1009.
#[actix_rt::test]
async fn actix_ws_after_keeps_the_frame_and_message_limits() {
    let (mut client, handle) = connect(actix_ws_after::routes).await;
    let big: Vec<u8> = (0..3 << 19).map(|i: u32| (i % 251) as u8).collect();
    send_fragmented(&mut client, &big, 64 * 1024).await;
    assert_eq!(next_data(&mut client).await, Message::binary(big));
    let frame = Message::binary(vec![7; 128 * 1024 + 1]);
    client.send(frame).await.unwrap();
    assert_eq!(close_code(&mut client).await, CloseCode::Size);
    handle.stop(false).await;

    let (mut client, handle) = connect(actix_ws_after::routes).await;
    send_fragmented(&mut client, &vec![7; (2 << 20) + 1], 64 * 1024).await;
    assert_eq!(close_code(&mut client).await, CloseCode::Size);
    handle.stop(false).await;
}

/// docs/migrating.md quotes the four programs as they are, with their line counts.
#[test]
fn the_guide_quotes_the_examples_unchanged() {
    let guide = include_str!("../docs/migrating.md");
    let examples = [
        (
            "migrate_actix_web_actors_before",
            include_str!("../examples/migrate_actix_web_actors_before.rs"),
        ),
        (
            "migrate_actix_web_actors_after",
            include_str!("../examples/migrate_actix_web_actors_after.rs"),
        ),
        (
            "migrate_actix_ws_before",
            include_str!("../examples/migrate_actix_ws_before.rs"),
        ),
        (
            "migrate_actix_ws_after",
            include_str!("../examples/migrate_actix_ws_after.rs"),
        ),
    ];
    for (name, text) in examples {
        let heading = format!("`examples/{name}.rs` ({} lines)", text.lines().count());
        let quoted = format!("{heading}\n\n```rust\n{text}```\n");
        assert!(
            guide.contains(&quoted),
            "docs/migrating.md does not quote examples/{name}.rs as it is, under {heading}"
        );
    }
}
