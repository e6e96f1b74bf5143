//! The per-connection inbound rate limit (`[connection.rate_limit]`): a flooding
//! peer gets the policy right past its burst, one within its limit is never
//! touched, and each time is counted.

#[path = "support/server.rs"]
mod support;

use support::{frame, RawClient, Seen};
use websocket_driver as ws;
use ws::proto::{CloseCode, Event, Message, OpCode};

/// The tests run one at a time: they read the process's `ws_rate_limited_total`.
static COUNTING: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn rate_limited_total() -> u64 {
    ws::metrics::encode_text()
        .lines()
        .find_map(|l| l.strip_prefix("ws_rate_limited_total "))
        .map_or(0, |v| v.trim().parse().unwrap())
}

fn server(limit: ws::RateLimit) -> ws::Server {
    let mut settings = ws::Settings::default();
    settings.connection.rate_limit = Some(limit);
    ws::Server::with_settings(settings)
}

/// `count` text frames `0`, `1`, ... of `size` bytes each, in one write.
fn flood(count: usize, size: usize) -> Vec<u8> {
    (0..count)
        .flat_map(|i| {
            let mut text = i.to_string().into_bytes();
            text.resize(size.max(text.len()), b'.');
            frame(true, OpCode::Text, &text)
        })
        .collect()
}

/// The text of the next message the client gets.
async fn echo(client: &mut RawClient) -> String {
    match client.next().await {
        Event::Message(Message::Text(text)) => text.as_str().trim_end_matches('.').to_owned(),
        other => panic!("expected an echo, got {other:?}"),
    }
}

/// What the server's actor saw, up to its Close.
async fn seen_until_close(seen: &mut tokio::sync::mpsc::UnboundedReceiver<Seen>) -> Vec<String> {
    let mut out = Vec::new();
    for _ in 0..1000 {
        let event = tokio::time::timeout(std::time::Duration::from_secs(5), seen.recv())
            .await
            .expect("the server's actor saw nothing for 5 s")
            .expect("the server is gone");
        let (text, last) = match event {
            Seen::Open(_) => ("open".to_owned(), false),
            Seen::Message(m) => (
                format!(
                    "message {}",
                    String::from_utf8_lossy(m.as_bytes()).trim_end_matches('.')
                ),
                false,
            ),
            Seen::Error(e) => (format!("error {e}"), false),
            Seen::Close(c) => (format!("close {} {:?}", c.code.0, c.reason), true),
        };
        out.push(text);
        if last {
            return out;
        }
    }
    panic!("no Close: {out:?}");
}

/// The flood's first `burst` messages are handed over and echoed; the next one
/// fails the connection with 1008 "rate limit exceeded".
async fn flood_is_closed_after(limit: ws::RateLimit, burst: usize, size: usize) {
    let _counting = COUNTING.lock().await;
    let before = rate_limited_total();
    let (addr, handle, mut seen) = support::listen_recorder(server(limit));
    let (mut client, _) = RawClient::connect(addr, "").await;
    client.send_raw(&flood(30, size)).await;
    for i in 0..burst {
        assert_eq!(echo(&mut client).await, i.to_string(), "echo {i}");
    }
    match client.next().await {
        Event::Close(close) => assert_eq!(
            (close.code, close.reason.as_str()),
            (CloseCode::POLICY_VIOLATION, "rate limit exceeded")
        ),
        other => panic!("expected the Close, got {other:?}"),
    }
    let mut expected = vec!["open".to_owned()];
    expected.extend((0..burst).map(|i| format!("message {i}")));
    expected.push("error rate limit exceeded".into());
    expected.push("close 1008 \"rate limit exceeded\"".into());
    assert_eq!(seen_until_close(&mut seen).await, expected);
    assert_eq!(rate_limited_total() - before, 1, "counted once");
    handle.stop(false).await;
}

#[actix_rt::test]
async fn a_message_flood_is_closed_with_1008_right_past_the_burst() {
    // 1 a second with a burst of 5: the 30 frames arrive in one read, microseconds
    // apart, so no token comes back meanwhile.
    flood_is_closed_after(ws::RateLimit::messages(1).burst(5, 0), 5, 1).await;
}

#[actix_rt::test]
async fn a_byte_flood_is_closed_with_1008_right_past_the_burst() {
    // 1 byte a second with a burst of 500: five 100-byte messages.
    flood_is_closed_after(ws::RateLimit::messages(0).bytes(1).burst(0, 500), 5, 100).await;
}

#[actix_rt::test]
async fn a_peer_within_its_limit_is_never_touched() {
    let _counting = COUNTING.lock().await;
    let before = rate_limited_total();
    let limit = ws::RateLimit::messages(1).bytes(1).burst(20, 20 * 100);
    let (addr, handle, mut seen) = support::listen_recorder(server(limit));
    let (mut client, _) = RawClient::connect(addr, "").await;
    // The burst exactly: 20 messages of 100 bytes.
    client.send_raw(&flood(20, 100)).await;
    for i in 0..20 {
        assert_eq!(echo(&mut client).await, i.to_string(), "echo {i}");
    }
    client
        .send_raw(&frame(true, OpCode::Close, &[0x03, 0xe8]))
        .await;
    match client.next().await {
        Event::Close(close) => assert_eq!(close.code, CloseCode::NORMAL),
        other => panic!("expected the Close, got {other:?}"),
    }
    let seen = seen_until_close(&mut seen).await;
    assert_eq!(seen.len(), 22, "{seen:?}");
    assert_eq!(seen.last().unwrap(), "close 1000 \"\"");
    assert_eq!(rate_limited_total(), before, "never counted");
    handle.stop(false).await;
}

#[actix_rt::test]
async fn pausing_delivers_every_message_in_order_and_keeps_the_connection() {
    let _counting = COUNTING.lock().await;
    let before = rate_limited_total();
    // 50 a second with a burst of 2: the third message of the flood pauses reading.
    let limit = ws::RateLimit::messages(50).burst(2, 0).pause();
    let (addr, handle, mut seen) = support::listen_recorder(server(limit));
    let (mut client, _) = RawClient::connect(addr, "").await;
    client.send_raw(&flood(10, 1)).await;
    for i in 0..10 {
        assert_eq!(echo(&mut client).await, i.to_string(), "echo {i}");
    }
    client
        .send_raw(&frame(true, OpCode::Close, &[0x03, 0xe8]))
        .await;
    assert!(matches!(client.next().await, Event::Close(c) if c.code == CloseCode::NORMAL));
    let seen = seen_until_close(&mut seen).await;
    assert_eq!(seen.len(), 12, "every message, no error: {seen:?}");
    assert!(rate_limited_total() > before, "the pauses are counted");
    handle.stop(false).await;
}

#[test]
fn the_limit_comes_from_toml() {
    let settings: ws::Settings = toml::from_str(
        r#"
        [connection.rate_limit]
        messages_per_second = 20
        burst_messages = 40
        over = "pause"
        "#,
    )
    .unwrap();
    let limit = settings.connection.rate_limit.unwrap();
    assert_eq!(
        limit,
        ws::RateLimit::messages(20)
            .bytes(1 << 20)
            .burst(40, 0)
            .pause()
    );
    assert_eq!(ws::Settings::default().connection.rate_limit, None);
}
