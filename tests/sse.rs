//! Server-Sent Events of a hub's topics (`ws::hub::Events`), through a raw HTTP
//! client over a `TcpStream`: the response's headers, each event's exact lines,
//! heartbeats, resume with `Last-Event-ID` (or `?since=`) exactly after the given
//! offset, `event: reset` when the history no longer reaches back, a malformed id
//! answered with 400, and the bounds answered with 503; the chat example's
//! `/rooms/{room}/events`, whose events are the JSON its WebSocket sends.

#[allow(dead_code)]
#[path = "../examples/hub.rs"]
mod chat;

#[path = "support/sse.rs"]
mod support;

use std::{
    net::{SocketAddr, TcpStream},
    time::Duration,
};

use support::{message, offset_of, serve, serve_routes, Client, Server};
use websocket_driver as ws;

/// A hub whose topic `room` keeps `history` publications.
fn hub_with_room(history: usize) -> ws::Hub {
    let hub = ws::Hub::new();
    hub.configure("room", hub.topic_defaults().history_size(history));
    hub
}

fn epoch(hub: &ws::Hub) -> String {
    hub.position("room").expect("configured").epoch
}

/// A room keeping `history` publications, served, with `m1`..`mN` published:
/// the hub, the server and the room's epoch.
fn served_room(history: usize, published: u64) -> (ws::Hub, Server, String) {
    let hub = hub_with_room(history);
    let server = serve(ws::hub::Events::new(&hub));
    let e = epoch(&hub);
    for n in 1..=published {
        hub.publish("room", format!("m{n}"));
    }
    (hub, server, e)
}

/// A stream of the room resumed with `Last-Event-ID: ID`.
fn resumed(addr: SocketAddr, id: &str) -> Client {
    Client::get(addr, "/t/room/events", &format!("Last-Event-ID: {id}\r\n"))
}

#[test]
fn a_stream_has_the_event_stream_headers_and_each_publication_as_an_event() {
    let hub = hub_with_room(10);
    let server = serve(ws::hub::Events::new(&hub));
    let e = epoch(&hub);
    let mut client = Client::get(server.addr, "/t/room/events", "");
    assert_eq!(client.status, 200);
    assert_eq!(client.header("content-type"), Some("text/event-stream"));
    assert_eq!(client.header("cache-control"), Some("no-cache"));
    assert_eq!(client.header("x-accel-buffering"), Some("no"));
    // Where it starts: an id alone (a browser resumes from it).
    assert_eq!(client.event(), format!("id: {e}:0"));
    hub.publish("room", "hello");
    hub.publish("room", "two\nlines");
    hub.publish("room", "crlf\r\nand cr\rend");
    hub.publish_transient("room", "unnumbered", None);
    assert_eq!(client.event(), message(&e, 1, "hello"));
    assert_eq!(client.event(), message(&e, 2, "two\nlines"));
    assert_eq!(client.event(), message(&e, 3, "crlf\nand cr\nend"));
    assert_eq!(client.event(), "event: message\ndata: unnumbered");
    assert_eq!(hub.count("room"), 1);
}

#[test]
fn a_quiet_stream_gets_heartbeat_comments() {
    let hub = hub_with_room(10);
    let events = ws::hub::Events::new(&hub).heartbeat(Duration::from_millis(20));
    let server = serve(events);
    let e = epoch(&hub);
    let mut client = Client::get(server.addr, "/t/room/events", "");
    assert_eq!(client.event(), format!("id: {e}:0"));
    assert_eq!(client.event(), ": ping");
    assert_eq!(client.event(), ": ping");
    hub.publish("room", "after pings");
    // Pings may come between: the publication is the next event that is not one.
    let next = loop {
        let event = client.event();
        if event != ": ping" {
            break event;
        }
    };
    assert_eq!(next, message(&e, 1, "after pings"));
}

#[test]
fn last_event_id_resumes_exactly_after_its_offset() {
    let (hub, server, e) = served_room(10, 5);
    let mut client = resumed(server.addr, &format!("{e}:2"));
    assert_eq!(client.status, 200);
    for n in 3..=5 {
        assert_eq!(client.event(), message(&e, n, &format!("m{n}")));
    }
    hub.publish("room", "m6");
    assert_eq!(client.event(), message(&e, 6, "m6"));
    // Resumed at the latest: nothing replayed, the next one live.
    let mut latest = resumed(server.addr, &format!("{e}:6"));
    hub.publish("room", "m7");
    assert_eq!(latest.event(), message(&e, 7, "m7"));
    assert_eq!(client.event(), message(&e, 7, "m7"));
}

#[test]
fn since_in_the_query_resumes_and_last_event_id_wins_over_it() {
    let (_hub, server, e) = served_room(10, 4);
    let mut query = Client::get(server.addr, &format!("/t/room/events?since={e}%3A3"), "");
    assert_eq!(query.event(), message(&e, 4, "m4"));
    // A browser reconnecting sends the URL again, with the id it last received.
    let mut both = Client::get(
        server.addr,
        &format!("/t/room/events?since={e}:1"),
        &format!("Last-Event-ID: {e}:3\r\n"),
    );
    assert_eq!(both.event(), message(&e, 4, "m4"));
}

#[test]
fn a_resume_the_history_no_longer_reaches_is_a_reset_to_the_latest_position() {
    let (hub, server, e) = served_room(2, 5);
    // 4 and 5 are kept: after 3 is served, after 2 is not.
    let mut kept = resumed(server.addr, &format!("{e}:3"));
    assert_eq!(kept.event(), message(&e, 4, "m4"));
    assert_eq!(kept.event(), message(&e, 5, "m5"));
    let mut old = resumed(server.addr, &format!("{e}:2"));
    assert_eq!(old.event(), format!("event: reset\nid: {e}:5\ndata: {e}:5"));
    let mut other_epoch = Client::get(server.addr, "/t/room/events?since=ffff:5", "");
    assert_eq!(
        other_epoch.event(),
        format!("event: reset\nid: {e}:5\ndata: {e}:5")
    );
    hub.publish("room", "m6");
    assert_eq!(old.event(), message(&e, 6, "m6"));
    assert_eq!(other_epoch.event(), message(&e, 6, "m6"));
}

#[test]
fn a_malformed_event_id_is_answered_with_400() {
    let hub = hub_with_room(10);
    let server = serve(ws::hub::Events::new(&hub));
    for extra in [
        "Last-Event-ID: nonsense\r\n",
        "Last-Event-ID: e:-1\r\n",
        "Last-Event-ID: :5\r\n",
    ] {
        let mut client = Client::get(server.addr, "/t/room/events", extra);
        assert_eq!(client.status, 400, "{extra:?}");
        assert_eq!(
            client.text_body(),
            "malformed event id (EPOCH:OFFSET expected)"
        );
    }
    let query = Client::get(server.addr, "/t/room/events?since=5", "");
    assert_eq!(query.status, 400);
    assert_eq!(hub.count("room"), 0);
}

#[test]
fn streams_count_against_the_bounds() {
    let mut settings = ws::Settings::default();
    settings.hub.max_members_per_topic = 1;
    let hub = ws::Hub::named("sse-bounds", &settings);
    let events = ws::hub::Events::new(&hub).max_streams(2);
    let server = serve(events.clone());
    let mut first = Client::get(server.addr, "/t/a/events", "");
    assert_eq!(first.status, 200);
    first.event();
    // The topic's member bound, as for a connection.
    let mut full_topic = Client::get(server.addr, "/t/a/events", "");
    assert_eq!(full_topic.status, 503);
    assert_eq!(full_topic.text_body(), "topic has 1 members already");
    let mut bad_topic = Client::get(server.addr, "/t/%7Bx%7D/events", "");
    assert_eq!(bad_topic.status, 400);
    assert_eq!(
        bad_topic.text_body(),
        "invalid topic name (empty, or with a brace)"
    );
    let mut second = Client::get(server.addr, "/t/b/events", "");
    second.event();
    assert_eq!(events.open_streams(), 2);
    // Their own count: not among the WebSocket connections.
    assert_eq!(hub.event_streams(), 2);
    assert_eq!(hub.connections(), ws::ReadyStateCounts::default());
    let text = ws::metrics::encode_text();
    assert!(text.contains("ws_hub_event_streams{hub=\"sse-bounds\"} 2\n"));
    let mut third = Client::get(server.addr, "/t/c/events", "");
    assert_eq!(third.status, 503);
    assert_eq!(third.text_body(), "2 event streams open already");
}

#[test]
fn a_stream_past_its_budget_is_closed_and_its_reconnection_resumes_without_loss() {
    let mut settings = ws::Settings::default();
    settings.hub.send_budget_messages = 4;
    let hub = ws::Hub::with_settings(&settings);
    let feed = hub
        .topic_defaults()
        .history_size(10_000)
        .history_bytes(48 << 20)
        .slow_consumer(ws::SlowConsumer::Close);
    hub.configure("feed", feed);
    let server = serve(ws::hub::Events::new(&hub).heartbeat(Duration::ZERO));
    let e = hub.position("feed").expect("configured").epoch;
    // A reader with a small receive window, which stops reading.
    let socket =
        socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).expect("socket");
    socket.set_recv_buffer_size(4096).expect("rcvbuf");
    socket.connect(&server.addr.into()).expect("connect");
    let mut slow = Client::get_on(socket.into(), "/t/feed/events", "");
    assert_eq!(slow.event(), format!("id: {e}:0"));
    let text = "x".repeat(16 << 10);
    let mut published = 0;
    // Bounded: the kernel's buffers and the server's hold some megabytes, the
    // history (within the hub's 64 MiB) all of them.
    while hub.slow_closes() == 0 && published < 1_200 {
        published += 1;
        hub.publish("feed", format!("{published} {text}"));
        // Each one taken by the shard (delivered, or the close) before the next.
        let guard = std::time::Instant::now() + Duration::from_secs(20);
        while hub.deliveries() + hub.slow_closes() < published {
            assert!(std::time::Instant::now() < guard, "hang guard");
            std::thread::yield_now();
        }
    }
    assert_eq!(hub.slow_closes(), 1, "closed by the policy");
    // What it holds, then the end; in order, from the first.
    let got = slow.events_to_end();
    assert!(!got.is_empty());
    for (n, event) in got.iter().enumerate() {
        assert_eq!(offset_of(event), n as u64 + 1);
    }
    let last = got.len() as u64;
    assert!(last < published, "closed before the end");
    // The reconnection (a browser's, with its last id) gets the rest, exactly.
    let mut again = Client::get(
        server.addr,
        "/t/feed/events",
        &format!("Last-Event-ID: {e}:{last}\r\n"),
    );
    for n in last + 1..=published {
        let event = again.event();
        assert_eq!(event, message(&e, n, &format!("{n} {text}")));
    }
}

type Socket = tokio_tungstenite::tungstenite::WebSocket<
    tokio_tungstenite::tungstenite::stream::MaybeTlsStream<TcpStream>,
>;

/// The next chat message of type `kind` (member news skipped): its text, parsed.
fn next_of(socket: &mut Socket, kind: &str) -> (String, serde_json::Value) {
    loop {
        if let tokio_tungstenite::tungstenite::Message::Text(text) = socket.read().expect("read") {
            let value: serde_json::Value = serde_json::from_str(&text).expect("json");
            if value["type"] == kind {
                return (text.to_string(), value);
            }
        }
    }
}

fn send(socket: &mut Socket, value: serde_json::Value) {
    socket
        .send(tokio_tungstenite::tungstenite::Message::text(
            value.to_string(),
        ))
        .expect("send");
}

/// The next event with an id (the chat's member news has none).
fn next_numbered(client: &mut Client) -> String {
    loop {
        let event = client.event();
        if event.starts_with("id: ") {
            return event;
        }
    }
}

/// A WebSocket of the chat served at `addr`.
fn chat_socket(addr: SocketAddr) -> Socket {
    let (mut socket, _) =
        tokio_tungstenite::tungstenite::connect(format!("ws://{addr}/ws")).expect("connect");
    if let tokio_tungstenite::tungstenite::stream::MaybeTlsStream::Plain(tcp) = socket.get_mut() {
        // A hang guard only.
        tcp.set_read_timeout(Some(Duration::from_secs(20)))
            .expect("timeout");
    }
    socket
}

fn chat_server() -> Server {
    serve_routes(|| {
        let settings = chat::chat_settings();
        let app = chat::ChatApp::new("chat-sse", &settings, chat::ChatOptions::default());
        chat::routes(app, ws::Server::with_settings(settings))
    })
}

#[test]
fn the_chat_streams_a_room_as_the_json_its_websocket_sends() {
    let server = chat_server();
    let mut socket = chat_socket(server.addr);
    send(
        &mut socket,
        serde_json::json!({"type": "join", "room": "r", "name": "alice"}),
    );
    let (_, joined) = next_of(&mut socket, "joined");
    let e = joined["epoch"].as_str().expect("epoch").to_owned();

    let mut events = Client::get(server.addr, "/rooms/r/events", "");
    assert_eq!(events.status, 200);
    assert_eq!(events.event(), format!("id: {e}:0"));
    send(
        &mut socket,
        serde_json::json!({"type": "say", "room": "r", "text": "hello there"}),
    );
    let (text, message) = next_of(&mut socket, "message");
    assert_eq!(message["offset"], 1);
    // The same JSON, with its position.
    let expected = format!("id: {e}:1\nevent: message\ndata: {text}");
    assert_eq!(next_numbered(&mut events), expected);
    // A browser that reconnects resumes after its last id.
    let mut resumed = Client::get(
        server.addr,
        "/rooms/r/events",
        &format!("Last-Event-ID: {e}:0\r\n"),
    );
    assert_eq!(next_numbered(&mut resumed), expected);
    let bad = Client::get(server.addr, "/rooms/%7Bx%7D/events", "");
    assert_eq!(bad.status, 400);
}

#[test]
fn a_stream_opened_outside_an_actix_worker_thread_is_refused_with_a_typed_error() {
    let hub = hub_with_room(10);
    let events = ws::hub::Events::new(&hub);
    let opened = std::thread::spawn({
        let events = events.clone();
        move || {
            events
                .subscribe("room", ws::JoinOptions::default())
                .map(|s| s.id())
        }
    })
    .join()
    .expect("no panic");
    assert_eq!(opened, Err(ws::hub::StreamError::NoRuntime));
    assert_eq!(events.open_streams(), 0);
    assert_eq!(hub.count("room"), 0);
}

/// An event stream reads a room without being one of its members: the room's
/// member news tells the next joiner alone, the count without the reader.
#[test]
fn the_chats_member_list_does_not_show_an_event_stream_reader() {
    let server = chat_server();
    let mut alice = chat_socket(server.addr);
    send(
        &mut alice,
        serde_json::json!({"type": "join", "room": "r", "name": "alice"}),
    );
    let (_, news) = next_of(&mut alice, "presence");
    assert_eq!(
        news,
        serde_json::json!({"type": "presence", "room": "r", "joined": ["alice"], "left": [], "count": 1})
    );
    let mut reader = Client::get(server.addr, "/rooms/r/events", "");
    assert_eq!(reader.status, 200);
    // Its start: it is in the room now.
    assert!(reader.event().starts_with("id: "));
    let mut bob = chat_socket(server.addr);
    send(
        &mut bob,
        serde_json::json!({"type": "join", "room": "r", "name": "bob"}),
    );
    let (_, members) = next_of(&mut bob, "members");
    assert_eq!(members["members"], serde_json::json!(["alice"]));
    let (_, news) = next_of(&mut alice, "presence");
    assert_eq!(
        news,
        serde_json::json!({"type": "presence", "room": "r", "joined": ["bob"], "left": [], "count": 2})
    );
}

/// A topic under `latest` (a budget of 4 publications) and a reader with a
/// small receive window that reads nothing while 16 KiB publications come
/// until one is conflated: then it reads, and gets a strictly increasing
/// subsequence ending with the last publication, the stream open.
#[test]
fn a_slow_reader_of_a_conflated_stream_gets_an_increasing_subsequence_ending_with_the_last() {
    let mut settings = ws::Settings::default();
    settings.hub.send_budget_messages = 4;
    let hub = ws::Hub::with_settings(&settings);
    hub.configure(
        "feed",
        hub.topic_defaults().slow_consumer(ws::SlowConsumer::Latest),
    );
    let server = serve(ws::hub::Events::new(&hub).heartbeat(Duration::ZERO));
    let e = hub.position("feed").expect("configured").epoch;
    let socket =
        socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).expect("socket");
    socket.set_recv_buffer_size(4096).expect("rcvbuf");
    socket.connect(&server.addr.into()).expect("connect");
    let mut slow = Client::get_on(socket.into(), "/t/feed/events", "");
    assert_eq!(slow.event(), format!("id: {e}:0"));
    let text = "x".repeat(16 << 10);
    let mut published = 0u64;
    // Bounded: the kernel's buffers and the server's hold some megabytes.
    while hub.conflated() < 10 && published < 2_000 {
        published += 1;
        hub.publish("feed", format!("{published} {text}"));
        // The shard at most one behind (one publication may be kept): the
        // thread queue never fills.
        let guard = std::time::Instant::now() + Duration::from_secs(20);
        while hub.deliveries() + hub.conflated() + 1 < published {
            assert!(std::time::Instant::now() < guard, "hang guard");
            std::thread::yield_now();
        }
    }
    assert!(hub.conflated() >= 10, "conflated within 2,000 publications");
    published += 1;
    hub.publish("feed", format!("{published} last"));
    let mut offsets = Vec::new();
    loop {
        let event = slow.event();
        let offset = offset_of(&event);
        let expected = if offset == published {
            message(&e, offset, &format!("{offset} last"))
        } else {
            message(&e, offset, &format!("{offset} {text}"))
        };
        assert_eq!(event, expected);
        offsets.push(offset);
        if offset == published {
            break;
        }
    }
    assert!(
        offsets.windows(2).all(|w| w[0] < w[1]),
        "strictly increasing"
    );
    assert!((offsets.len() as u64) < published, "some conflated");
    assert_eq!((hub.slow_closes(), hub.dropped()), (0, 0));
    // Every publication is delivered or was replaced by a newer one.
    assert_eq!(hub.deliveries() + hub.conflated(), published);
}
