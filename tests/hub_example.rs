//! The hub example's wire protocol (README "The chat's protocol"), against its own
//! routes on port 0, with tokio-tungstenite as the browser would speak it.

#[allow(dead_code)]
#[path = "../examples/hub.rs"]
mod chat;

use std::{net::SocketAddr, time::Duration};

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::{tungstenite::Message, MaybeTlsStream, WebSocketStream};
use websocket_driver as ws;

type Socket = WebSocketStream<MaybeTlsStream<tokio::net::TcpStream>>;

async fn start() -> (SocketAddr, actix_web::dev::ServerHandle) {
    let settings = chat::chat_settings();
    let hub = chat::chat_hub(&settings);
    let routes = chat::routes(hub, ws::Server::with_settings(settings));
    let srv = actix_web::HttpServer::new(move || actix_web::App::new().configure(routes.clone()))
        .workers(2)
        .disable_signals()
        .shutdown_timeout(1)
        .bind("127.0.0.1:0")
        .unwrap();
    let addr = srv.addrs()[0];
    let running = srv.run();
    let handle = running.handle();
    actix_rt::spawn(running);
    (addr, handle)
}

async fn connect(addr: SocketAddr) -> Socket {
    tokio_tungstenite::connect_async(format!("ws://{addr}/ws"))
        .await
        .unwrap()
        .0
}

async fn send(socket: &mut Socket, value: Value) {
    socket.send(Message::text(value.to_string())).await.unwrap();
}

/// The next JSON message (pings skipped).
async fn next(socket: &mut Socket) -> Value {
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(5), socket.next())
            .await
            .expect("timed out")
            .expect("closed")
            .unwrap();
        match msg {
            Message::Text(t) => return serde_json::from_str(&t).unwrap(),
            Message::Ping(_) | Message::Pong(_) => continue,
            other => panic!("unexpected {other:?}"),
        }
    }
}

/// The next chat message (member lists, which may come more than once, skipped),
/// with its `time` field checked and removed.
async fn next_message(socket: &mut Socket) -> Value {
    let mut value = not_members(socket).await;
    assert_eq!(value["type"], "message", "{value}");
    let time = value["time"].as_u64().expect("a time");
    assert!(time > 1_700_000_000_000, "milliseconds since the epoch");
    let epoch = value["epoch"].as_str().expect("an epoch");
    assert_eq!(epoch.len(), 16);
    value.as_object_mut().unwrap().remove("time");
    value.as_object_mut().unwrap().remove("epoch");
    value
}

/// The next message that is not a member list.
async fn not_members(socket: &mut Socket) -> Value {
    loop {
        let value = next(socket).await;
        if value["type"] != "members" {
            return value;
        }
    }
}

/// Read member lists until one is `members` (a joiner gets the list at once, and
/// again when the others hear of it).
async fn members(socket: &mut Socket, room: &str, members: Value) {
    loop {
        let value = next(socket).await;
        assert_eq!(value["type"], "members", "{value}");
        assert_eq!(value["room"], room);
        if value["members"] == members {
            return;
        }
    }
}

async fn joined(socket: &mut Socket, room: &str, name: &str) -> Value {
    send(socket, json!({"type": "join", "room": room, "name": name})).await;
    let answer = next(socket).await;
    assert_eq!(answer["type"], "joined");
    assert_eq!(answer["room"], room);
    answer
}

#[actix_rt::test]
async fn join_say_and_members_as_the_readme_says() {
    let (addr, handle) = start().await;
    let mut alice = connect(addr).await;
    let answer = joined(&mut alice, "lobby", "alice").await;
    let epoch = answer["epoch"].as_str().unwrap().to_owned();
    assert_eq!(epoch.len(), 16);
    assert_eq!(
        answer,
        json!({"type": "joined", "room": "lobby", "epoch": epoch, "offset": 0, "recovered": false})
    );
    assert_eq!(
        next(&mut alice).await,
        json!({"type": "members", "room": "lobby", "members": ["alice"]})
    );
    let mut bob = connect(addr).await;
    joined(&mut bob, "lobby", "bob").await;
    members(&mut bob, "lobby", json!(["alice", "bob"])).await;
    // Alice hears that bob came.
    members(&mut alice, "lobby", json!(["alice", "bob"])).await;
    send(
        &mut alice,
        json!({"type": "say", "room": "lobby", "text": "hi <b>bob</b>"}),
    )
    .await;
    let said = json!({"type": "message", "room": "lobby", "from": "alice", "text": "hi <b>bob</b>", "offset": 1});
    assert_eq!(next_message(&mut alice).await, said);
    assert_eq!(next_message(&mut bob).await, said);
    send(&mut bob, json!({"type": "leave", "room": "lobby"})).await;
    members(&mut alice, "lobby", json!(["alice"])).await;
    handle.stop(false).await;
}

#[actix_rt::test]
async fn bad_input_gets_an_error_and_the_connection_stays_usable() {
    let (addr, handle) = start().await;
    let mut client = connect(addr).await;
    let long = "x".repeat(chat::MAX_TEXT + 1);
    let cases: Vec<(Message, &str)> = vec![
        (Message::text("not json"), "invalid message: expected ident"),
        (
            Message::text("{\"type\":\"dance\"}"),
            "invalid message: unknown variant `dance`",
        ),
        (
            Message::text("{\"type\":\"join\",\"name\":\"x\"}"),
            "invalid message: missing field `room`",
        ),
        (
            Message::text("{\"room\":\"lobby\"}"),
            "invalid message: missing field `type`",
        ),
        (
            Message::text("{\"type\":\"say\",\"room\":\"lobby\",\"text\":\"hi\"}"),
            "not in room \"lobby\": join it first",
        ),
        (
            Message::text("{\"type\":\"join\",\"room\":\"\",\"name\":\"x\"}"),
            "room must be 1 to 64 characters",
        ),
        (
            Message::text("{\"type\":\"join\",\"room\":\"a\",\"name\":\"x\\u0007\"}"),
            "name may not hold control characters",
        ),
        (
            Message::text("{\"type\":\"join\",\"room\":\"a\",\"name\":\"x\",\"admin\":true}"),
            "invalid message: unknown field `admin`",
        ),
        (
            Message::text("{\"type\":\"leave\",\"room\":\"a\"}"),
            "not in room \"a\"",
        ),
        (
            Message::binary(vec![1u8, 2, 3]),
            "binary messages are not part of the protocol",
        ),
    ];
    for (bad, reason) in cases {
        client.send(bad).await.unwrap();
        let answer = next(&mut client).await;
        assert_eq!(answer["type"], "error", "{answer}");
        let got = answer["reason"].as_str().unwrap();
        assert!(
            got.starts_with(reason),
            "{got:?} should start with {reason:?}"
        );
    }
    joined(&mut client, "lobby", "carol").await;
    send(
        &mut client,
        json!({"type": "say", "room": "lobby", "text": long}),
    )
    .await;
    assert_eq!(
        not_members(&mut client).await,
        json!({"type": "error", "reason": "text must be 1 to 2000 characters"})
    );
    // Still open and working.
    send(
        &mut client,
        json!({"type": "say", "room": "lobby", "text": "still here"}),
    )
    .await;
    assert_eq!(
        next_message(&mut client).await,
        json!({"type": "message", "room": "lobby", "from": "carol", "text": "still here", "offset": 1})
    );
    handle.stop(false).await;
}

#[actix_rt::test]
async fn a_client_that_comes_back_with_since_gets_what_it_missed_first() {
    let (addr, handle) = start().await;
    let mut stay = connect(addr).await;
    joined(&mut stay, "news", "stay").await;
    let mut away = connect(addr).await;
    let answer = joined(&mut away, "news", "away").await;
    let epoch = answer["epoch"].as_str().unwrap().to_owned();
    members(&mut stay, "news", json!(["away", "stay"])).await;
    send(
        &mut stay,
        json!({"type": "say", "room": "news", "text": "one"}),
    )
    .await;
    assert_eq!(next_message(&mut away).await["offset"], 1);
    assert_eq!(next_message(&mut stay).await["offset"], 1);
    away.close(None).await.unwrap();
    drop(away);
    members(&mut stay, "news", json!(["stay"])).await;
    for n in 2..=4 {
        send(
            &mut stay,
            json!({"type": "say", "room": "news", "text": format!("m{n}")}),
        )
        .await;
    }
    for _ in 2..=4 {
        next_message(&mut stay).await;
    }
    let mut back = connect(addr).await;
    send(
        &mut back,
        json!({"type": "join", "room": "news", "name": "away", "since": {"epoch": epoch, "offset": 1}}),
    )
    .await;
    assert_eq!(
        next(&mut back).await,
        json!({"type": "joined", "room": "news", "epoch": epoch, "offset": 4, "recovered": true})
    );
    for n in 2..=4 {
        let m = next_message(&mut back).await;
        assert_eq!(
            (m["offset"].as_u64(), m["text"].as_str()),
            (Some(n), Some(format!("m{n}").as_str()))
        );
    }
    send(
        &mut stay,
        json!({"type": "say", "room": "news", "text": "live"}),
    )
    .await;
    assert_eq!(next_message(&mut back).await["offset"], 5);
    handle.stop(false).await;
}

#[actix_rt::test]
async fn metrics_are_served_in_the_prometheus_text_format() {
    let (addr, handle) = start().await;
    let mut client = connect(addr).await;
    joined(&mut client, "lobby", "m").await;
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    assert!(response.starts_with("HTTP/1.1 200 OK\r\n"), "{response}");
    assert!(
        response.contains("content-type: application/openmetrics-text"),
        "{response}"
    );
    assert!(
        response.contains("ws_hub_subscriptions{hub=\"chat\"} 2"),
        "{response}"
    );
    assert!(
        response.contains("# TYPE ws_connections gauge"),
        "{response}"
    );
    handle.stop(false).await;
}
