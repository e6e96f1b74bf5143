//! The hub example's wire protocol (README "The chat's protocol") and policies,
//! against its own routes on port 0, with tokio-tungstenite as the browser would
//! speak it: member lists as batched changes, unique nicknames, the message rate
//! limit (a flooder is refused, then closed; the others miss nothing), the
//! metrics on their own listener.

#[allow(dead_code)]
#[path = "../examples/hub.rs"]
mod chat;

use std::{collections::BTreeSet, net::SocketAddr, sync::Arc, time::Duration};

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::{
    tungstenite::{protocol::frame::coding::CloseCode, Message},
    MaybeTlsStream, WebSocketStream,
};
use websocket_driver as ws;

type Socket = WebSocketStream<MaybeTlsStream<tokio::net::TcpStream>>;

struct Chat {
    addr: SocketAddr,
    handle: actix_web::dev::ServerHandle,
    app: Arc<chat::ChatApp>,
    /// The hub's name (its metrics' label): one per test.
    name: String,
}

async fn start() -> Chat {
    start_with(chat::ChatOptions::default()).await
}

/// A chat server with `options` on a hub of its own name.
async fn start_with(options: chat::ChatOptions) -> Chat {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(1);
    let name = format!(
        "chat-test-{}",
        NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    );
    let settings = chat::chat_settings();
    let app = chat::ChatApp::new(&name, &settings, options);
    let routes = chat::routes(app.clone(), ws::Server::with_settings(settings));
    let (addr, handle) = serve(2, routes);
    Chat {
        addr,
        handle,
        app,
        name,
    }
}

/// An actix-web server of `routes` on port 0, with `workers` threads.
fn serve(
    workers: usize,
    routes: impl Fn(&mut actix_web::web::ServiceConfig) + Clone + Send + 'static,
) -> (SocketAddr, actix_web::dev::ServerHandle) {
    let srv = actix_web::HttpServer::new(move || actix_web::App::new().configure(routes.clone()))
        .workers(workers)
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

/// Member changes only when the test says ([`chat::ChatApp::flush_members`]).
fn manual_ticks() -> chat::ChatOptions {
    chat::ChatOptions {
        tick: Duration::from_secs(3600),
        count_interval: Duration::ZERO,
        ..chat::ChatOptions::default()
    }
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
        let msg = tokio::time::timeout(Duration::from_secs(10), socket.next())
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

fn is_member_news(value: &Value) -> bool {
    value["type"] == "members" || value["type"] == "presence"
}

/// The next message that is not about members.
async fn not_members(socket: &mut Socket) -> Value {
    loop {
        let value = next(socket).await;
        if !is_member_news(&value) {
            return value;
        }
    }
}

/// The next chat message (member news skipped), with its `time` and `epoch`
/// checked and removed.
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

/// A room's members as a client keeps them: nothing until the first `members`,
/// then each `presence` applied (names as set operations, the count as is).
#[derive(Debug, Default, PartialEq)]
struct View {
    names: Option<BTreeSet<String>>,
    count: Option<u64>,
}

impl View {
    fn apply(&mut self, value: &Value) {
        let names = |v: &Value| -> Option<Vec<String>> {
            v.as_array()
                .map(|a| a.iter().map(|n| n.as_str().unwrap().to_owned()).collect())
        };
        match value["type"].as_str() {
            Some("members") => {
                self.names = names(&value["members"]).map(|n| n.into_iter().collect());
                self.count = value["count"].as_u64();
            }
            Some("presence") if self.count.is_some() => {
                match (names(&value["joined"]), names(&value["left"])) {
                    (Some(joined), Some(left)) => {
                        let list = self.names.get_or_insert_with(BTreeSet::new);
                        list.extend(joined);
                        for name in left {
                            list.remove(&name);
                        }
                    }
                    _ => self.names = None,
                }
                self.count = value["count"].as_u64();
            }
            _ => {}
        }
    }
}

/// Read member news (nothing else may come) until the view lists `want`.
async fn members(socket: &mut Socket, view: &mut View, room: &str, want: &[&str]) {
    let want_names: BTreeSet<String> = want.iter().map(|n| n.to_string()).collect();
    while view.names.as_ref() != Some(&want_names) {
        let value = next(socket).await;
        assert!(is_member_news(&value), "{value}");
        assert_eq!(value["room"], room);
        view.apply(&value);
    }
    assert_eq!(view.count, Some(want.len() as u64), "{view:?}");
}

/// Leave `room`, and wait until the server has done it (a second leave is
/// answered with an error, after the first one's work).
async fn leave(socket: &mut Socket, room: &str) {
    send(socket, json!({"type": "leave", "room": room})).await;
    send(socket, json!({"type": "leave", "room": room})).await;
    assert_eq!(
        not_members(socket).await,
        json!({"type": "error", "code": "invalid", "reason": format!("not in room {room:?}")})
    );
}

async fn joined(socket: &mut Socket, room: &str, name: &str) -> Value {
    send(socket, json!({"type": "join", "room": room, "name": name})).await;
    let answer = next(socket).await;
    assert_eq!(answer["type"], "joined", "{answer}");
    assert_eq!(answer["room"], room);
    answer
}

#[actix_rt::test]
async fn join_say_and_members_as_the_readme_says() {
    let chat = start().await;
    let mut alice = connect(chat.addr).await;
    let answer = joined(&mut alice, "lobby", "alice").await;
    let epoch = answer["epoch"].as_str().unwrap().to_owned();
    assert_eq!(epoch.len(), 16);
    assert_eq!(
        answer,
        json!({"type": "joined", "room": "lobby", "epoch": epoch, "offset": 0, "recovered": false})
    );
    let mut alice_view = View::default();
    members(&mut alice, &mut alice_view, "lobby", &["alice"]).await;
    let mut bob = connect(chat.addr).await;
    joined(&mut bob, "lobby", "bob").await;
    members(&mut bob, &mut View::default(), "lobby", &["alice", "bob"]).await;
    // Alice hears that bob came.
    assert_eq!(
        next(&mut alice).await,
        json!({"type": "presence", "room": "lobby", "joined": ["bob"], "left": [], "count": 2})
    );
    send(
        &mut alice,
        json!({"type": "say", "room": "lobby", "text": "hi <b>bob</b>"}),
    )
    .await;
    let said = json!({"type": "message", "room": "lobby", "from": "alice", "text": "hi <b>bob</b>", "offset": 1});
    assert_eq!(next_message(&mut alice).await, said);
    assert_eq!(next_message(&mut bob).await, said);
    send(&mut bob, json!({"type": "leave", "room": "lobby"})).await;
    assert_eq!(
        next(&mut alice).await,
        json!({"type": "presence", "room": "lobby", "joined": [], "left": ["bob"], "count": 1})
    );
    chat.handle.stop(false).await;
}

#[actix_rt::test]
async fn member_changes_are_batched_per_tick_and_big_rooms_send_only_the_count() {
    let chat = start_with(chat::ChatOptions {
        list_limit: 10,
        ..manual_ticks()
    })
    .await;
    let mut watcher = connect(chat.addr).await;
    joined(&mut watcher, "hall", "watcher").await;
    chat.app.flush_members();
    let mut view = View::default();
    members(&mut watcher, &mut view, "hall", &["watcher"]).await;

    // Eight join between two ticks: the watcher gets one message with all eight.
    let mut guests = Vec::new();
    for i in 0..8 {
        let mut guest = connect(chat.addr).await;
        joined(&mut guest, "hall", &format!("guest{i}")).await;
        guests.push(guest);
    }
    chat.app.flush_members();
    let eight: Vec<String> = (0..8).map(|i| format!("guest{i}")).collect();
    assert_eq!(
        next(&mut watcher).await,
        json!({"type": "presence", "room": "hall", "joined": eight, "left": [], "count": 9})
    );
    // Each newcomer got the list as it was, then the same change.
    for guest in &mut guests {
        assert_eq!(
            next(guest).await,
            json!({"type": "members", "room": "hall", "members": ["watcher"], "count": 1})
        );
        assert_eq!(
            next(guest).await,
            json!({"type": "presence", "room": "hall", "joined": eight, "left": [], "count": 9})
        );
    }

    // A leave and a join in one tick: one message with both.
    leave(&mut guests[0], "hall").await;
    let mut late = connect(chat.addr).await;
    joined(&mut late, "hall", "late").await;
    chat.app.flush_members();
    assert_eq!(
        next(&mut watcher).await,
        json!({"type": "presence", "room": "hall", "joined": ["late"], "left": ["guest0"], "count": 9})
    );

    // Over the limit of 10: the count only, from then on.
    let mut more = Vec::new();
    for i in 0..3 {
        let mut guest = connect(chat.addr).await;
        joined(&mut guest, "hall", &format!("more{i}")).await;
        more.push(guest);
    }
    chat.app.flush_members();
    assert_eq!(
        next(&mut watcher).await,
        json!({"type": "presence", "room": "hall", "count": 12})
    );
    let mut newcomer = connect(chat.addr).await;
    joined(&mut newcomer, "hall", "newcomer").await;
    chat.app.flush_members();
    assert_eq!(
        next(&mut newcomer).await,
        json!({"type": "members", "room": "hall", "count": 12})
    );
    for socket in [&mut watcher, &mut newcomer] {
        assert_eq!(
            next(socket).await,
            json!({"type": "presence", "room": "hall", "count": 13})
        );
    }
    // Back to 10: the whole list again, to everyone.
    for guest in more.iter_mut() {
        leave(guest, "hall").await;
    }
    chat.app.flush_members();
    let mut ten: Vec<String> = (1..8).map(|i| format!("guest{i}")).collect();
    ten.extend(["late", "newcomer", "watcher"].map(String::from));
    let list = json!({"type": "members", "room": "hall", "members": ten, "count": 10});
    assert_eq!(next(&mut watcher).await, list);
    assert_eq!(next(&mut newcomer).await, list);
    chat.handle.stop(false).await;
}

#[actix_rt::test]
async fn a_second_alice_in_a_room_is_refused_and_keys_are_not_names() {
    let chat = start().await;
    let mut alice = connect(chat.addr).await;
    joined(&mut alice, "lobby", "alice").await;
    let mut mallory = connect(chat.addr).await;
    send(
        &mut mallory,
        json!({"type": "join", "room": "lobby", "name": "alice"}),
    )
    .await;
    assert_eq!(
        next(&mut mallory).await,
        json!({"type": "error", "code": "name-taken", "room": "lobby",
               "reason": "the name \"alice\" is taken in room \"lobby\""})
    );
    // The name is per room; and free again once alice leaves.
    joined(&mut mallory, "other", "alice").await;
    leave(&mut alice, "lobby").await;
    joined(&mut mallory, "lobby", "alice").await;
    // The user key is not the nickname, and starts with a random per-process
    // prefix (two servers on one Redis never share one).
    let members = chat.app.hub().members("lobby");
    assert_eq!(members.len(), 1);
    assert_eq!(members[0].meta.as_deref(), Some("alice"));
    let (prefix, id) = members[0].user.split_once('-').unwrap();
    assert_eq!(prefix.len(), 16);
    assert!(prefix.bytes().all(|b| b.is_ascii_hexdigit()), "{prefix}");
    assert_eq!(id, members[0].id.get().to_string());
    let other = start().await;
    let mut carol = connect(other.addr).await;
    joined(&mut carol, "lobby", "carol").await;
    let theirs = &other.app.hub().members("lobby")[0].user;
    assert_ne!(theirs.split_once('-').unwrap().0, prefix);
    other.handle.stop(false).await;
    chat.handle.stop(false).await;
}

#[actix_rt::test]
async fn a_denied_join_is_answered_with_an_error_naming_the_room() {
    let chat = start().await;
    let mut alice = connect(chat.addr).await;
    send(
        &mut alice,
        json!({"type": "join", "room": "$ops", "name": "alice"}),
    )
    .await;
    assert_eq!(
        next(&mut alice).await,
        json!({"type": "error", "code": "denied", "room": "$ops",
               "reason": "room \"$ops\" is reserved"})
    );
    assert_eq!(chat.app.hub().count("$ops"), 0);
    // The name was not kept, and the connection goes on.
    joined(&mut alice, "lobby", "alice").await;
    chat.handle.stop(false).await;
}

#[actix_rt::test]
async fn bad_input_gets_an_error_and_the_connection_stays_usable() {
    let chat = start().await;
    let mut client = connect(chat.addr).await;
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
        assert_eq!(answer["code"], "invalid", "{answer}");
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
        json!({"type": "error", "code": "invalid", "reason": "text must be 1 to 2000 characters"})
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
    chat.handle.stop(false).await;
}

#[actix_rt::test]
async fn a_message_over_16_kib_closes_with_1009() {
    let chat = start().await;
    let mut client = connect(chat.addr).await;
    let text = "x".repeat(chat::MAX_MESSAGE_BYTES);
    send(
        &mut client,
        json!({"type": "say", "room": "lobby", "text": text}),
    )
    .await;
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(10), client.next())
            .await
            .expect("timed out")
            .expect("closed without a Close frame")
            .unwrap();
        if let Message::Close(close) = msg {
            assert_eq!(close.unwrap().code, CloseCode::Size);
            break;
        }
    }
    chat.handle.stop(false).await;
}

#[actix_rt::test]
async fn a_client_that_comes_back_with_since_gets_what_it_missed_first() {
    let chat = start().await;
    let mut stay = connect(chat.addr).await;
    joined(&mut stay, "news", "stay").await;
    let mut stay_view = View::default();
    members(&mut stay, &mut stay_view, "news", &["stay"]).await;
    let mut away = connect(chat.addr).await;
    let answer = joined(&mut away, "news", "away").await;
    let epoch = answer["epoch"].as_str().unwrap().to_owned();
    members(&mut stay, &mut stay_view, "news", &["away", "stay"]).await;
    send(
        &mut stay,
        json!({"type": "say", "room": "news", "text": "one"}),
    )
    .await;
    assert_eq!(next_message(&mut away).await["offset"], 1);
    assert_eq!(next_message(&mut stay).await["offset"], 1);
    away.close(None).await.unwrap();
    drop(away);
    members(&mut stay, &mut stay_view, "news", &["stay"]).await;
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
    let mut back = connect(chat.addr).await;
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
    chat.handle.stop(false).await;
}

/// One member of a room of 20 says 3,000 texts of 1.9 KB as fast as it can: it
/// gets `rate` errors, then its own close (1008); the 19 others get every
/// message that was accepted, in order with no gap, and stay open.
#[actix_rt::test]
async fn a_flooder_is_refused_then_closed_and_the_others_miss_nothing() {
    let chat = start().await;
    let mut others = Vec::new();
    let mut from = Vec::new();
    for i in 0..19 {
        let mut socket = connect(chat.addr).await;
        let answer = joined(&mut socket, "busy", &format!("member{i}")).await;
        from.push(answer["offset"].as_u64().unwrap());
        others.push(socket);
    }
    let flooder = connect(chat.addr).await;
    let (mut sink, mut stream) = flooder.split();
    sink.send(Message::text(
        json!({"type": "join", "room": "busy", "name": "flooder"}).to_string(),
    ))
    .await
    .unwrap();
    let text = "f".repeat(1900);
    let say = Message::text(json!({"type": "say", "room": "busy", "text": text}).to_string());
    let writer = actix_rt::spawn(async move {
        let mut sent = 0;
        for _ in 0..3000 {
            if sink.feed(say.clone()).await.is_err() {
                break;
            }
            sent += 1;
        }
        let _ = sink.flush().await;
        sent
    });
    // The flooder reads everything until its close.
    let mut rate_errors = 0;
    let close = loop {
        let msg = tokio::time::timeout(Duration::from_secs(20), stream.next())
            .await
            .expect("the flooder was not closed")
            .expect("closed without a Close frame")
            .expect("a reset before the Close frame");
        match msg {
            Message::Text(t) => {
                let value: Value = serde_json::from_str(&t).unwrap();
                if value["type"] == "error" {
                    assert_eq!(value["code"], "rate", "{value}");
                    rate_errors += 1;
                }
            }
            Message::Close(close) => break close.unwrap(),
            _ => {}
        }
    };
    assert_eq!(close.code, CloseCode::Policy);
    assert_eq!(close.reason, "too many messages");
    assert!(rate_errors > 0);
    let sent = writer.await.unwrap();
    // Then one of the others speaks: everyone gets everything up to it, in order.
    send(
        &mut others[0],
        json!({"type": "say", "room": "busy", "text": "done"}),
    )
    .await;
    let mut accepted = None;
    for (socket, from) in others.iter_mut().zip(from) {
        let mut offset = from;
        let mut flooded = 0u64;
        loop {
            let m = next_message(socket).await;
            offset += 1;
            assert_eq!(m["offset"], offset, "a gap: {m}");
            if m["text"] == "done" {
                break;
            }
            assert_eq!(m["from"], "flooder");
            flooded += 1;
        }
        assert!(flooded > 0);
        assert_eq!(*accepted.get_or_insert(flooded), flooded);
    }
    let accepted = accepted.unwrap();
    // At least the burst (40, the join included) went through, and the close
    // came only once the refused ones overflowed their bucket (100); what the
    // rate refilled meanwhile adds to both.
    let options = chat::ChatOptions::default();
    assert!(
        accepted as f64 >= options.burst - 1.0,
        "{accepted} of {sent}"
    );
    assert!(rate_errors as f64 >= options.flood_close, "{rate_errors}");
    assert_eq!(chat.app.hub().slow_closes(), 0);
    assert_eq!(chat.app.hub().dropped(), 0);
    chat.handle.stop(false).await;
}

async fn get(addr: SocketAddr, path: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(
            format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .await
        .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    response
}

#[actix_rt::test]
async fn metrics_are_served_on_their_own_listener_only() {
    let chat = start().await;
    let mut client = connect(chat.addr).await;
    joined(&mut client, "lobby", "m").await;
    let public = get(chat.addr, "/metrics").await;
    assert!(public.starts_with("HTTP/1.1 404 Not Found\r\n"), "{public}");
    let (metrics_addr, metrics_handle) = serve(1, chat::metrics_routes);
    let response = get(metrics_addr, "/metrics").await;
    assert!(response.starts_with("HTTP/1.1 200 OK\r\n"), "{response}");
    assert!(
        response.contains("content-type: application/openmetrics-text"),
        "{response}"
    );
    let line = format!("ws_hub_subscriptions{{hub=\"{}\"}} 1\n", chat.name);
    assert!(response.contains(&line), "{line} in {response}");
    assert!(
        response.contains("# TYPE ws_connections gauge"),
        "{response}"
    );
    metrics_handle.stop(false).await;
    chat.handle.stop(false).await;
}

#[actix_rt::test]
async fn with_a_websocket_listener_of_its_own_the_page_connects_there() {
    let chat = start().await;
    let server = ws::Server::with_settings(chat::chat_settings());
    let (port, running) = chat::ws_listener(&chat.app, &server, "127.0.0.1:0", 1).unwrap();
    let ws_handle = running.handle();
    actix_rt::spawn(running);
    // The standalone listener speaks the same protocol, to the same rooms.
    let ws_addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let mut there = connect(ws_addr).await;
    joined(&mut there, "lobby", "there").await;
    let mut here = connect(chat.addr).await;
    joined(&mut here, "lobby", "here").await;
    send(
        &mut here,
        json!({"type": "say", "room": "lobby", "text": "hi"}),
    )
    .await;
    assert_eq!(next_message(&mut there).await["text"], "hi");
    // Its page names the port; the default page does not.
    let (page_addr, page_handle) =
        serve(1, chat::routes_with(chat.app.clone(), server, Some(port)));
    let page = get(page_addr, "/").await;
    assert!(
        page.contains(&format!("<meta name=\"ws-port\" content=\"{port}\">")),
        "{page}"
    );
    let default = get(chat.addr, "/").await;
    assert!(
        default.contains("<meta name=\"ws-port\" content=\"\">"),
        "{default}"
    );
    page_handle.stop(false).await;
    ws_handle.stop(false).await;
    chat.handle.stop(false).await;
}

/// A backplane that shares presence, as Redis does, with no other server behind
/// it: this server's changes come back to it (from another thread: the hub tells
/// a backplane under the topic's lock), and the test plays the other servers.
struct SharedPresence(std::sync::OnceLock<ws::hub::WeakHub>);

impl ws::hub::Backplane for SharedPresence {
    fn publish(&self, _: ws::hub::Publication) {}
    fn subscribe(&self, _: &str, _: u64) {}
    fn unsubscribe(&self, _: &str, _: u64) {}
    fn shares_presence(&self) -> bool {
        true
    }
    fn presence_changed(
        &self,
        topic: &str,
        user: &str,
        meta: Option<&str>,
        kind: ws::PresenceKind,
    ) {
        let hub = self.0.get().cloned();
        let (topic, user, meta) = (topic.to_owned(), user.to_owned(), meta.map(str::to_owned));
        std::thread::spawn(move || {
            if let Some(hub) = hub.and_then(|h| h.upgrade()) {
                hub.deliver_presence(&topic, &user, meta.as_deref(), kind);
            }
        });
    }
}

#[actix_rt::test]
async fn a_name_held_on_another_server_is_refused_until_that_member_leaves() {
    let chat = start().await;
    let backplane = Arc::new(SharedPresence(std::sync::OnceLock::new()));
    let _ = backplane.0.set(chat.app.hub().downgrade());
    chat.app.hub().set_backplane(backplane);
    let mut watcher = connect(chat.addr).await;
    joined(&mut watcher, "lobby", "watcher").await;
    let mut view = View::default();
    members(&mut watcher, &mut view, "lobby", &["watcher"]).await;
    // Bob joins on another server.
    let hub = chat.app.hub();
    hub.deliver_presence(
        "lobby",
        "elsewhere-7",
        Some("bob"),
        ws::PresenceKind::Joined,
    );
    members(&mut watcher, &mut view, "lobby", &["bob", "watcher"]).await;
    let mut here = connect(chat.addr).await;
    send(
        &mut here,
        json!({"type": "join", "room": "lobby", "name": "bob"}),
    )
    .await;
    assert_eq!(next(&mut here).await["code"], "name-taken");
    // That server is swept: its member's leave comes without the nickname.
    hub.deliver_presence("lobby", "elsewhere-7", None, ws::PresenceKind::Left);
    members(&mut watcher, &mut view, "lobby", &["watcher"]).await;
    joined(&mut here, "lobby", "bob").await;
    chat.handle.stop(false).await;
}
