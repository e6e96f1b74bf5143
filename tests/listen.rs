//! `Server::listen`: the standalone serving path (no actix-web), against
//! tokio-tungstenite and raw TCP.

#[path = "support/server.rs"]
mod support;

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use support::Seen;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite;
use websocket_driver as ws;

#[actix_rt::test]
async fn listen_echoes_text_and_binary_and_reports_the_peer_close() {
    let (addr, handle, mut seen) = support::listen_recorder(ws::Server::new().protocols(["chat"]));
    let request = tungstenite::client::IntoClientRequest::into_client_request(format!(
        "ws://{addr}/any/path?q=1"
    ))
    .map(|mut r| {
        r.headers_mut()
            .insert("Sec-WebSocket-Protocol", "chat".parse().unwrap());
        r
    })
    .unwrap();
    let (mut client, response) = tokio_tungstenite::connect_async(request).await.unwrap();
    assert_eq!(
        response.headers()["sec-websocket-protocol"]
            .to_str()
            .unwrap(),
        "chat"
    );
    for size in [0usize, 125, 126, 65536, 1 << 20] {
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
    client.close(None).await.unwrap();
    let mut last = None;
    while let Ok(Some(event)) = tokio::time::timeout(Duration::from_secs(5), seen.recv()).await {
        let done = matches!(event, Seen::Close(_));
        last = Some(event);
        if done {
            break;
        }
    }
    match last {
        Some(Seen::Close(close)) => {
            assert_eq!(close.code, ws::CloseCode::NO_STATUS);
            assert!(close.was_clean);
        }
        other => panic!("expected Close last, saw {other:?}"),
    }
    handle.stop(false).await;
}

#[actix_rt::test]
async fn listen_refuses_a_request_without_key_with_400_and_starts_no_actor() {
    let (addr, handle, mut seen) = support::listen_recorder(ws::Server::new());
    let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    tcp.write_all(
        b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
          Sec-WebSocket-Version: 13\r\n\r\n",
    )
    .await
    .unwrap();
    let mut response = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), tcp.read_to_end(&mut response))
        .await
        .unwrap()
        .unwrap();
    let response = String::from_utf8_lossy(&response);
    assert!(
        response.starts_with("HTTP/1.1 400 Bad Request\r\n"),
        "{response}"
    );
    // No actor started: the next events are a probe connection's Open and its
    // message (one worker thread: an actor of the refused request would have
    // reported first).
    let (mut probe, _) = support::RawClient::connect(addr, "").await;
    probe
        .send_frame(true, ws::proto::OpCode::Text, b"probe")
        .await;
    assert!(
        matches!(next(&mut seen).await, Seen::Open(_)),
        "no actor started"
    );
    match next(&mut seen).await {
        Seen::Message(ws::Message::Text(t)) => assert_eq!(t.as_str(), "probe"),
        other => panic!("expected the probe's message, saw {other:?}"),
    }
    handle.stop(false).await;
}

// A peer that neither reads nor sends, with our output stuck in full socket
// buffers: the guard still runs (idle timeout, then the close timeout), the actor
// gets its Error and Close, and the transport is dropped.
#[actix_rt::test]
async fn peer_that_never_reads_is_cut_off_while_output_is_stuck() {
    // The client's receive buffer is small (4 KiB asked, doubled by the kernel,
    // not grown): at the first refused send (`max_send_buffer` queued) most of the
    // output cannot leave the server, and the server's kernel holds some of it.
    let (addr, handle, mut seen) = support::listen_recorder(
        ws::Server::new()
            .ping_interval(None)
            .idle_timeout(Some(Duration::from_millis(300)))
            .close_timeout(Duration::from_millis(300))
            .max_send_buffer(256 * 1024),
    );
    let (mut client, _) = support::RawClient::connect_with(addr, "", Some(4096)).await; // never reads
    let conn = match next(&mut seen).await {
        Seen::Open(conn) => conn,
        other => panic!("expected Open, saw {other:?}"),
    };
    support::send_until_stuck(&conn).await;
    assert!(matches!(
        next(&mut seen).await,
        Seen::Error(ws::Error::IdleTimeout(_))
    ));
    match next(&mut seen).await {
        Seen::Close(close) => assert_eq!(
            (close.code, close.was_clean),
            (ws::CloseCode::GOING_AWAY, false)
        ),
        other => panic!("expected Close, saw {other:?}"),
    }
    // The transport ends: what reached our receive buffer, then the end (EOF,
    // or a reset when the server's kernel still held output for us: the server
    // sets SO_LINGER 0 when it cuts a peer whose socket stopped taking output).
    let mut buf = vec![0u8; 1 << 16];
    loop {
        match tokio::time::timeout(Duration::from_secs(5), client.stream.read(&mut buf))
            .await
            .expect("the server ended the connection")
        {
            Ok(0) => break,
            Ok(_) => continue,
            Err(err) => {
                assert_eq!(err.kind(), std::io::ErrorKind::ConnectionReset);
                break;
            }
        }
    }
    handle.stop(false).await;
}

/// What the server's actor saw next, within 5 s.
async fn next(seen: &mut tokio::sync::mpsc::UnboundedReceiver<Seen>) -> Seen {
    tokio::time::timeout(Duration::from_secs(5), seen.recv())
        .await
        .expect("timed out waiting for the actor")
        .expect("server gone")
}

#[actix_rt::test]
async fn an_unfinished_handshake_is_cut_at_the_handshake_timeout_without_a_response() {
    let timeout = Duration::from_millis(300);
    let (addr, handle, _seen) =
        support::listen_recorder(ws::Server::new().handshake_timeout(timeout));
    let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let start = std::time::Instant::now();
    // A head that never ends.
    tcp.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n")
        .await
        .unwrap();
    let mut response = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), tcp.read_to_end(&mut response))
        .await
        .expect("cut within 5 s")
        .unwrap();
    let took = start.elapsed();
    // Nothing is answered (no actor, no status line): the connection just ends,
    // once the timeout ran out and not before.
    assert_eq!(response, b"");
    assert!(took >= timeout, "cut after {took:?}");
    handle.stop(false).await;
}

/// Echoes, and panics on the text "panic".
struct Panicky;

impl ws::Endpoint for Panicky {
    fn on_message(&mut self, conn: &ws::Conn, msg: ws::Message, _: &mut ws::EndpointContext<Self>) {
        if matches!(&msg, ws::Message::Text(t) if t.as_str() == "panic") {
            panic!("the handler panics (on purpose)");
        }
        conn.send(msg);
    }
}

#[actix_rt::test]
async fn a_handler_that_panics_closes_its_connection_with_1011_and_no_other() {
    use ws::proto::{Event, OpCode};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let running = ws::Server::new()
        .listen_on(listener, 1, |_| Ok(ws::endpoint(Panicky)))
        .unwrap();
    let handle = running.handle();
    actix_rt::spawn(running);
    let (mut victim, _) = support::RawClient::connect(addr, "").await;
    let (mut other, _) = support::RawClient::connect(addr, "").await;
    victim.send_frame(true, OpCode::Text, b"panic").await;
    match victim.next().await {
        // RFC 6455 §7.4.1: 1011, "an unexpected condition that prevented it from
        // fulfilling the request".
        Event::Close(close) => assert_eq!(close.code, ws::CloseCode::INTERNAL_ERROR),
        other => panic!("expected Close 1011, got {other:?}"),
    }
    // The other connection, on the same worker thread, goes on.
    other.send_frame(true, OpCode::Text, b"still here").await;
    match other.next().await {
        Event::Message(ws::Message::Text(t)) => assert_eq!(t.as_str(), "still here"),
        got => panic!("expected the echo, got {got:?}"),
    }
    handle.stop(false).await;
}

// Reads note the peer's activity without reading the clock (the guard turns the
// flag into "active now" when its timer fires, one eighth of the interval after the
// last look): after a busy spell longer than the interval, the keep-alive ping comes
// no sooner than the interval after the last frame, and within an eighth of it
// (plus scheduling slack), not a whole interval late.
#[actix_rt::test]
async fn keepalive_ping_follows_the_last_frame_by_the_interval_after_a_busy_spell() {
    let interval = Duration::from_secs(1);
    let (addr, handle, _seen) = support::listen_recorder(
        ws::Server::new()
            .ping_interval(Some(interval))
            .idle_timeout(None),
    );
    let (mut client, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/"))
        .await
        .unwrap();
    // Busy for 1.5 intervals: a message every 30 ms, each echo awaited (the
    // recorder echoes), so the server has read every frame by the end.
    // The server read the last frame after `last_sent` and before `last_echo`.
    let start = std::time::Instant::now();
    let (mut last_sent, mut last_echo) = (start, start);
    while start.elapsed() < interval * 3 / 2 {
        tokio::time::sleep(Duration::from_millis(30)).await;
        last_sent = std::time::Instant::now();
        client.send(tungstenite::Message::text("x")).await.unwrap();
        match client.next().await.unwrap().unwrap() {
            tungstenite::Message::Text(t) => assert_eq!(t.as_str(), "x"),
            other => panic!("expected the echo, got {other:?}"),
        }
        last_echo = std::time::Instant::now();
    }
    let ping = tokio::time::timeout(interval * 3, client.next())
        .await
        .expect("no keep-alive ping")
        .unwrap()
        .unwrap();
    let (since_sent, after) = (last_sent.elapsed(), last_echo.elapsed());
    assert!(
        matches!(ping, tungstenite::Message::Ping(ref p) if p.is_empty()),
        "{ping:?}"
    );
    assert!(
        since_sent >= interval,
        "the ping came {since_sent:?} after the last frame was sent"
    );
    assert!(
        after < interval + interval / 8 + Duration::from_millis(250),
        "the ping came {after:?} after the last echo"
    );
    handle.stop(false).await;
}
