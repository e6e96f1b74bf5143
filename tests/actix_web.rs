//! The actor layer and the actix-web route against a real server on port 0, with a
//! foreign client (tokio-tungstenite) and with our core driving raw TCP.

#[path = "support/server.rs"]
mod support;

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use support::{frame, RawClient, Seen, TestServer};
use tokio_tungstenite::tungstenite::{self, protocol::frame::coding::CloseCode as TCode};
use websocket_driver as ws;
use ws::{
    proto::{CapacityError, ProtocolError},
    proto::{CloseCode, Event, Message, OpCode},
    SendError,
};

fn close_of(seen: Seen) -> ws::Close {
    match seen {
        Seen::Close(close) => close,
        other => panic!("expected Close, saw {other:?}"),
    }
}

#[actix_rt::test]
async fn echoes_text_and_binary_of_boundary_sizes_to_tungstenite() {
    let mut server = TestServer::start(ws::Server::new(), true);
    let (mut client, _) = tokio_tungstenite::connect_async(server.url())
        .await
        .unwrap();
    server.opened().await;
    for size in [0usize, 125, 126, 65535, 65536, 1 << 20] {
        let text: String = (0..size)
            .map(|i| char::from(b'a' + (i % 26) as u8))
            .collect();
        client
            .send(tungstenite::Message::text(text.clone()))
            .await
            .unwrap();
        match client.next().await.unwrap().unwrap() {
            tungstenite::Message::Text(t) => assert_eq!(t.as_str(), text, "text of {size}"),
            other => panic!("expected text of {size}, got {other:?}"),
        }
        let binary: Vec<u8> = (0..size).map(|i| (i * 7 % 251) as u8).collect();
        client
            .send(tungstenite::Message::binary(binary.clone()))
            .await
            .unwrap();
        match client.next().await.unwrap().unwrap() {
            tungstenite::Message::Binary(b) => assert_eq!(&b[..], &binary[..], "binary of {size}"),
            other => panic!("expected binary of {size}, got {other:?}"),
        }
    }
    for _ in 0..12 {
        assert!(matches!(server.next().await, Seen::Message(_)));
    }
    server.handle.stop(false).await;
}

#[actix_rt::test]
async fn message_in_1000_fragments_arrives_whole_and_echoes() {
    let mut server = TestServer::start(ws::Server::new(), true);
    let (mut client, _) = RawClient::connect(server.addr, "").await;
    server.opened().await;
    let text: String = (0..3000).map(|i| ['a', 'é', '€', '😀'][i % 4]).collect();
    let bytes = text.as_bytes();
    // 1000 fragments of uneven sizes (some empty), cutting through code points.
    let mut cuts: Vec<usize> = (1..1000).map(|i| (i * i * 7919) % bytes.len()).collect();
    cuts.sort_unstable();
    let mut wire = Vec::new();
    let mut at = 0;
    for (i, &cut) in cuts.iter().chain(std::iter::once(&bytes.len())).enumerate() {
        let opcode = if i == 0 {
            OpCode::Text
        } else {
            OpCode::Continuation
        };
        wire.extend(frame(i == 999, opcode, &bytes[at..cut]));
        at = cut;
    }
    client.send_raw(&wire).await;
    match server.next().await {
        Seen::Message(Message::Text(t)) => assert_eq!(t.as_str(), text),
        other => panic!("expected the whole message, saw {other:?}"),
    }
    match client.next().await {
        Event::Message(Message::Text(t)) => assert_eq!(t.as_str(), text),
        other => panic!("expected the echo, got {other:?}"),
    }
    server.handle.stop(false).await;
}

#[actix_rt::test]
async fn frame_over_max_length_fails_1009_before_its_payload_arrives() {
    let mut server = TestServer::start(ws::Server::new().max_length(1024), true);
    let (mut client, _) = RawClient::connect(server.addr, "").await;
    server.opened().await;
    // Only the header of a 1 MiB binary frame: the payload is never sent.
    let mut header = frame(true, OpCode::Binary, &[]);
    header[1] = 0x80 | 127;
    header.splice(2..2, (1u64 << 20).to_be_bytes());
    client.send_raw(&header).await;
    match client.next().await {
        Event::Close(close) => assert_eq!(close.code, CloseCode::MESSAGE_TOO_BIG),
        other => panic!("expected Close 1009, got {other:?}"),
    }
    match server.next().await {
        Seen::Error(ws::Error::Capacity(CapacityError::FrameTooLarge { size, max })) => {
            assert_eq!((size, max), (1 << 20, 1024))
        }
        other => panic!("expected a capacity error, saw {other:?}"),
    }
    assert_eq!(
        close_of(server.next().await).code,
        CloseCode::MESSAGE_TOO_BIG
    );
    server.handle.stop(false).await;
}

#[actix_rt::test]
async fn invalid_utf8_fails_1007() {
    let mut server = TestServer::start(ws::Server::new(), true);
    let (mut client, _) = RawClient::connect(server.addr, "").await;
    server.opened().await;
    client
        .send_frame(true, OpCode::Text, &[b'o', b'k', 0xff])
        .await;
    match client.next().await {
        Event::Close(close) => assert_eq!(close.code, CloseCode::INVALID_PAYLOAD),
        other => panic!("expected Close 1007, got {other:?}"),
    }
    assert!(matches!(
        server.next().await,
        Seen::Error(ws::Error::Protocol(ProtocolError::InvalidUtf8))
    ));
    assert_eq!(
        close_of(server.next().await).code,
        CloseCode::INVALID_PAYLOAD
    );
    server.handle.stop(false).await;
}

#[actix_rt::test]
async fn valid_message_before_a_bad_frame_is_echoed_before_the_close() {
    let mut server = TestServer::start(ws::Server::new(), true);
    let (mut client, _) = RawClient::connect(server.addr, "").await;
    server.opened().await;
    let mut wire = frame(true, OpCode::Text, b"hello");
    wire.extend(frame(true, OpCode::Reserved(3), b""));
    client.send_raw(&wire).await;
    match client.next().await {
        Event::Message(Message::Text(t)) => assert_eq!(t.as_str(), "hello"),
        other => panic!("expected the echo first, got {other:?}"),
    }
    match client.next().await {
        Event::Close(close) => assert_eq!(close.code, CloseCode::PROTOCOL_ERROR),
        other => panic!("expected Close 1002, got {other:?}"),
    }
    assert!(matches!(server.next().await, Seen::Message(_)));
    assert!(matches!(
        server.next().await,
        Seen::Error(ws::Error::Protocol(ProtocolError::ReservedOpcode(3)))
    ));
    assert_eq!(
        close_of(server.next().await).code,
        CloseCode::PROTOCOL_ERROR
    );
    server.handle.stop(false).await;
}

#[actix_rt::test]
async fn ping_from_conn_resolves_with_the_round_trip_time() {
    let mut server = TestServer::start(ws::Server::new(), false);
    let (mut client, _) = tokio_tungstenite::connect_async(server.url())
        .await
        .unwrap();
    let conn = server.opened().await;
    let pong = conn.send_ping(b"are you there");
    assert!(pong.error().is_none());
    // tungstenite answers pings while it reads.
    let reader = tokio::spawn(async move { while let Some(Ok(_)) = client.next().await {} });
    let rtt = tokio::time::timeout(Duration::from_secs(5), pong)
        .await
        .unwrap()
        .unwrap();
    assert!(rtt < Duration::from_secs(5));
    reader.abort();
    server.handle.stop(false).await;
}

#[actix_rt::test]
async fn peer_close_is_answered_and_reported_once() {
    let mut server = TestServer::start(ws::Server::new(), false);
    let (mut client, _) = tokio_tungstenite::connect_async(server.url())
        .await
        .unwrap();
    server.opened().await;
    client
        .close(Some(tungstenite::protocol::CloseFrame {
            code: TCode::Normal,
            reason: "bye".into(),
        }))
        .await
        .unwrap();
    match client.next().await {
        Some(Ok(tungstenite::Message::Close(Some(frame)))) => assert_eq!(frame.code, TCode::Normal),
        other => panic!("expected the server's Close, got {other:?}"),
    }
    let close = close_of(server.next().await);
    assert_eq!(
        (close.code, close.reason.as_str(), close.was_clean),
        (CloseCode::NORMAL, "bye", true)
    );
    // Reported once: the next event of the (one-worker) server is the Open of a
    // connection made after the close, not a second Close or an Error.
    assert_next_is_a_new_open(&mut server).await;
    server.handle.stop(false).await;
}

/// Open a new connection to `server` and assert that its `Open` is the next event
/// the server's actors report: whatever an earlier connection would still report
/// would come first (one worker thread: the earlier connection's driver ran to its
/// end before this one's handshake was read). An event to wait for, not a silence.
async fn assert_next_is_a_new_open(server: &mut TestServer) {
    let (client, _) = RawClient::connect(server.addr, "").await;
    match server.next().await {
        Seen::Open(_) => {}
        other => panic!("expected only the new connection's Open, saw {other:?}"),
    }
    drop(client);
}

#[actix_rt::test]
async fn our_close_reaches_the_peer_and_sends_fail_afterwards() {
    let mut server = TestServer::start(ws::Server::new(), false);
    let (mut client, _) = RawClient::connect(server.addr, "").await;
    let conn = server.opened().await;
    conn.close(CloseCode(4000), "done").into_result().unwrap();
    assert_eq!(conn.ready_state(), ws::ReadyState::Closing);
    assert_eq!(conn.send_text("late").error(), Some(&SendError::Closed));
    match client.next().await {
        Event::Close(close) => assert_eq!(
            (close.code, close.reason.as_str()),
            (CloseCode(4000), "done")
        ),
        other => panic!("expected Close 4000, got {other:?}"),
    }
    // Our core (client role) answered; the server closes TCP and reports the close.
    let reply = client.core.take_output();
    client.send_raw(&reply).await;
    let close = close_of(server.next().await);
    assert_eq!((close.code, close.was_clean), (CloseCode(4000), true));
    assert!(client.server_closed_tcp().await);
    assert_eq!(conn.ready_state(), ws::ReadyState::Closed);
    server.handle.stop(false).await;
}

#[actix_rt::test]
async fn idle_timeout_fails_1001_and_reports_the_timeout() {
    let settings = ws::Server::new()
        .ping_interval(None)
        .idle_timeout(Some(Duration::from_millis(300)));
    let mut server = TestServer::start(settings, false);
    let (mut client, _) = RawClient::connect(server.addr, "").await;
    server.opened().await;
    match client.next().await {
        Event::Close(close) => assert_eq!(close.code, CloseCode::GOING_AWAY),
        other => panic!("expected Close 1001, got {other:?}"),
    }
    assert!(matches!(
        server.next().await,
        Seen::Error(ws::Error::IdleTimeout(_))
    ));
    let close = close_of(server.next().await);
    assert_eq!(
        (close.code, close.was_clean),
        (CloseCode::GOING_AWAY, false)
    );
    server.handle.stop(false).await;
}

#[actix_rt::test]
async fn keep_alive_ping_is_sent_when_the_line_is_quiet() {
    let settings = ws::Server::new()
        .ping_interval(Some(Duration::from_millis(200)))
        .idle_timeout(Some(Duration::from_secs(5)));
    let mut server = TestServer::start(settings, false);
    let (mut client, _) = RawClient::connect(server.addr, "").await;
    server.opened().await;
    match client.next().await {
        Event::Ping(payload) => assert!(payload.is_empty()),
        other => panic!("expected a keep-alive Ping, got {other:?}"),
    }
    server.handle.stop(false).await;
}

#[actix_rt::test]
async fn tcp_drop_reports_1006() {
    let mut server = TestServer::start(ws::Server::new(), false);
    let (client, _) = RawClient::connect(server.addr, "").await;
    server.opened().await;
    drop(client);
    let close = close_of(server.next().await);
    assert_eq!((close.code, close.was_clean), (CloseCode::ABNORMAL, false));
    server.handle.stop(false).await;
}

/// Send a handshake with the header `without` left out and `add` added; returns the
/// response head and whether an actor was started.
async fn refused(without: &str, add: Option<(&str, &str)>) -> (String, bool) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut server = TestServer::start(ws::Server::new().origins(["https://good.example"]), false);
    let mut headers = vec![
        ("Host", "x"),
        ("Upgrade", "websocket"),
        ("Connection", "Upgrade"),
        ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
        ("Sec-WebSocket-Version", "13"),
        ("Origin", "https://good.example"),
    ];
    headers.retain(|(name, _)| *name != without);
    headers.extend(add);
    let mut request = String::from("GET / HTTP/1.1\r\n");
    for (name, value) in headers {
        request += &format!("{name}: {value}\r\n");
    }
    request += "\r\n";
    let mut tcp = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    tcp.write_all(request.as_bytes()).await.unwrap();
    let mut response = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(5), tcp.read(&mut response))
        .await
        .unwrap()
        .unwrap();
    // Whether an actor started for the refused request: it would have reported its
    // Open before that of a connection made after the refusal (one worker thread).
    // The probe connection's Open, then its message: anything else first means
    // an actor started for the refused request.
    let (mut probe, _) = RawClient::connect(server.addr, "Origin: https://good.example\r\n").await;
    probe.send_frame(true, OpCode::Text, b"probe").await;
    let first = server.next().await;
    let second = server.next().await;
    let actor_started = !matches!(
        (&first, &second),
        (Seen::Open(_), Seen::Message(Message::Text(t))) if t.as_str() == "probe"
    );
    server.handle.stop(false).await;
    (
        String::from_utf8_lossy(&response[..n]).into_owned(),
        actor_started,
    )
}

#[actix_rt::test]
async fn handshake_without_key_is_refused_with_400_and_no_actor() {
    let (response, started) = refused("Sec-WebSocket-Key", None).await;
    assert!(
        response.starts_with("HTTP/1.1 400 Bad Request\r\n"),
        "{response}"
    );
    assert!(!started);
}

#[actix_rt::test]
async fn handshake_with_version_8_is_refused_with_426_and_version_13() {
    let (response, started) = refused(
        "Sec-WebSocket-Version",
        Some(("Sec-WebSocket-Version", "8")),
    )
    .await;
    assert!(
        response.starts_with("HTTP/1.1 426 Upgrade Required\r\n"),
        "{response}"
    );
    assert!(
        response
            .to_ascii_lowercase()
            .contains("sec-websocket-version: 13\r\n"),
        "{response}"
    );
    assert!(!started);
}

#[actix_rt::test]
async fn handshake_from_a_foreign_origin_is_refused_with_403() {
    let (response, started) = refused("Origin", Some(("Origin", "https://evil.example"))).await;
    assert!(
        response.starts_with("HTTP/1.1 403 Forbidden\r\n"),
        "{response}"
    );
    assert!(!started);
}

#[actix_rt::test]
async fn backpressure_bounds_the_send_buffer_when_the_peer_never_reads() {
    let limit = 64 * 1024;
    let mut server = TestServer::start(ws::Server::new().max_send_buffer(limit), false);
    let (_client, _) = RawClient::connect(server.addr, "").await; // never reads
    let conn = server.opened().await;
    let chunk = vec![7u8; 16 * 1024];
    let mut refused = None;
    // Bounded: the kernel's socket buffers take a few MiB at most before we refuse.
    for _ in 0..20_000 {
        match conn.send_binary(&chunk).into_result() {
            Ok(_) => {
                assert!(conn.buffered_amount() < limit + chunk.len() + 14);
                tokio::task::yield_now().await;
            }
            Err(err) => {
                refused = Some(err);
                break;
            }
        }
    }
    match refused {
        Some(SendError::Backpressure { buffered, limit: l }) => {
            assert_eq!(l, limit);
            assert!(
                buffered >= limit && buffered < limit + chunk.len() + 14,
                "{buffered}"
            );
        }
        other => panic!("expected Backpressure, got {other:?}"),
    }
    assert!(conn.buffered_amount() < limit + chunk.len() + 14);
    server.handle.stop(false).await;
}

#[actix_rt::test]
async fn chosen_subprotocol_and_extra_headers_reach_the_client() {
    let mut server = TestServer::start(
        ws::Server::new()
            .protocols(["superchat", "chat"])
            .header("X-Served-By", "websocket-driver"),
        true,
    );
    let (_client, head) =
        support::RawClient::connect(server.addr, "Sec-WebSocket-Protocol: chat, superchat\r\n")
            .await;
    let conn = server.opened().await;
    let head = head.to_ascii_lowercase();
    assert!(
        head.starts_with("http/1.1 101 switching protocols\r\n"),
        "{head}"
    );
    // RFC 6455 §4.2.2: the server's choice, one of the client's offers; ours is the
    // first of the server's list that the client offered.
    assert!(
        head.contains("\r\nsec-websocket-protocol: superchat\r\n"),
        "{head}"
    );
    assert!(
        head.contains("\r\nx-served-by: websocket-driver\r\n"),
        "{head}"
    );
    assert_eq!(conn.protocol(), Some("superchat"));
    assert_eq!(conn.version(), "hybi-13");
    assert_eq!(conn.ready_state(), ws::ReadyState::Open);
    server.handle.stop(false).await;
}

#[actix_rt::test]
async fn start_with_three_arguments_serves_like_start() {
    use actix_web::{web, App, HttpRequest, HttpServer};
    let (tx, mut seen) = tokio::sync::mpsc::unbounded_channel();
    let srv = HttpServer::new(move || {
        let tx = tx.clone();
        App::new().default_service(
            web::get().to(move |req: HttpRequest, payload: web::Payload| {
                let actor = support::Recorder {
                    tx: tx.clone(),
                    conn: None,
                    echo: true,
                };
                async move { ws::start_with(actor, &req, payload) }
            }),
        )
    })
    .workers(1)
    .disable_signals()
    .shutdown_timeout(1)
    .bind("127.0.0.1:0")
    .unwrap();
    let addr = srv.addrs()[0];
    let running = srv.run();
    let handle = running.handle();
    actix_rt::spawn(running);
    let (mut client, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/"))
        .await
        .unwrap();
    client
        .send(tungstenite::Message::text("migrated"))
        .await
        .unwrap();
    match client.next().await.unwrap().unwrap() {
        tungstenite::Message::Text(t) => assert_eq!(t.as_str(), "migrated"),
        other => panic!("expected the echo, got {other:?}"),
    }
    let first = tokio::time::timeout(Duration::from_secs(5), seen.recv()).await;
    assert!(matches!(first, Ok(Some(Seen::Open(_)))), "{first:?}");
    let second = tokio::time::timeout(Duration::from_secs(5), seen.recv()).await;
    match second.unwrap().unwrap() {
        Seen::Message(Message::Text(t)) => assert_eq!(t.as_str(), "migrated"),
        other => panic!("expected the message, saw {other:?}"),
    }
    handle.stop(false).await;
}

#[test]
fn config_default_toml_holds_exactly_the_defaults() {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/config/default.toml"))
        .unwrap();
    let parsed: ws::Settings = toml::from_str(&text).unwrap();
    assert_eq!(parsed, ws::Settings::default());
    // Every option is listed (not merely defaulted by serde): each key appears.
    for key in [
        "max_message_size",
        "max_frame_size",
        "max_fragments",
        "auto_pong",
        "protocols",
        "origins",
        "[server.headers]",
        "ping_interval_ms",
        "idle_timeout_ms",
        "close_timeout_ms",
        "handshake_timeout_ms",
        "max_send_buffer",
        "close_on_backpressure",
        "max_events_per_poll",
        "[connection.rate_limit]",
        "messages_per_second",
        "bytes_per_second",
        "burst_messages",
        "burst_bytes",
        "over",
        "enabled",
        "server_no_context_takeover",
        "client_no_context_takeover",
        "server_max_window_bits",
        "client_max_window_bits",
        "level",
        "mem_level",
        "threshold",
        "send_budget_bytes",
        "send_budget_messages",
        "slow_consumer",
        "slow_close_code",
        "history_size",
        "history_ttl_ms",
        "presence",
    ] {
        assert!(text.contains(key), "config/default.toml lacks {key}");
    }
}

#[test]
fn settings_refuse_unknown_keys() {
    let err = toml::from_str::<ws::Settings>("[connection]\nping_interval = 5\n")
        .unwrap_err()
        .to_string();
    assert!(err.contains("unknown field `ping_interval`"), "{err}");
}

#[actix_rt::test]
async fn sent_resolves_when_written_and_fails_when_the_transport_is_gone() {
    let mut server = TestServer::start(ws::Server::new().max_send_buffer(1 << 30), false);
    let (mut client, _) = RawClient::connect(server.addr, "").await;
    let conn = server.opened().await;
    // A small message reaches the transport at once.
    let sent = conn.send(Message::from("ack me"));
    tokio::time::timeout(Duration::from_secs(5), sent)
        .await
        .expect("Sent resolves")
        .expect("written");
    match client.next().await {
        Event::Message(Message::Text(t)) => assert_eq!(t.as_str(), "ack me"),
        other => panic!("expected the message, got {other:?}"),
    }
    // With the peer not reading, 64 MiB cannot all reach the socket; when the peer
    // goes away, the Sent of the last message fails instead of hanging.
    let big = vec![1u8; 1 << 20];
    let mut last = None;
    for _ in 0..64 {
        last = Some(
            conn.send(Message::Binary(big.clone().into()))
                .into_result()
                .unwrap(),
        );
    }
    drop(client);
    let result = tokio::time::timeout(Duration::from_secs(10), last.unwrap())
        .await
        .expect("Sent settles once the transport is gone");
    assert!(matches!(result, Err(SendError::Closed)), "{result:?}");
    server.handle.stop(false).await;
}

// A peer that neither reads nor sends, with our output stuck in full socket
// buffers: actix-http stops polling the response body, yet the guard still runs
// (idle timeout, then the close timeout), the actor gets its Error and Close, and
// what waited for the peer is dropped. (The socket is actix-http's: with
// `ws::on_connect`, as the test server has it, it is reset at the close timeout;
// tests/close_tcp.rs checks that.)
#[actix_rt::test]
async fn peer_that_never_reads_is_cut_off_while_output_is_stuck() {
    let settings = ws::Server::new()
        .ping_interval(None)
        .idle_timeout(Some(Duration::from_millis(300)))
        .close_timeout(Duration::from_millis(300))
        .max_send_buffer(256 * 1024);
    let mut server = TestServer::start(settings, false);
    let (_client, _) = RawClient::connect(server.addr, "").await; // never reads
    let conn = server.opened().await;
    support::send_until_stuck(&conn).await;
    assert!(matches!(
        server.next().await,
        Seen::Error(ws::Error::IdleTimeout(_))
    ));
    let close = close_of(server.next().await);
    assert_eq!(
        (close.code, close.was_clean),
        (CloseCode::GOING_AWAY, false)
    );
    server.handle.stop(false).await;
}
