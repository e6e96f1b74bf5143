//! `ws::AsyncEndpoint`: handlers that `.await`, served in order (or up to N at
//! once), against tokio-tungstenite on the standalone server.

use std::{
    net::SocketAddr,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
    time::Duration,
};

use futures_util::{SinkExt, StreamExt};
use tokio::sync::{mpsc, Semaphore};
use tokio_tungstenite::tungstenite;
use websocket_driver as ws;

/// A small deterministic generator (xorshift64*), one per connection.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

/// Counts the futures running at once, and the most seen.
#[derive(Default)]
struct Gauge {
    now: AtomicUsize,
    max: AtomicUsize,
}

impl Gauge {
    fn enter(&self) {
        let now = self.now.fetch_add(1, Ordering::SeqCst) + 1;
        self.max.fetch_max(now, Ordering::SeqCst);
    }

    fn leave(&self) {
        self.now.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Sleeps 0-2 ms (seeded) in every handler, then echoes.
struct Sleepy {
    rng: Rng,
    gauge: Arc<Gauge>,
    slept: Arc<AtomicUsize>,
}

impl ws::AsyncEndpoint for Sleepy {
    async fn on_message(&mut self, conn: &ws::Conn, msg: ws::Message) {
        self.gauge.enter();
        let micros = self.rng.next() % 2001;
        if micros > 0 {
            self.slept.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_micros(micros)).await;
        }
        self.gauge.leave();
        conn.send(msg);
    }
}

fn listener() -> std::net::TcpListener {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap()
}

async fn connect(
    addr: SocketAddr,
) -> tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>> {
    tokio_tungstenite::connect_async(format!("ws://{addr}/"))
        .await
        .unwrap()
        .0
}

async fn replies_in_order(seed: u64) {
    let gauge = Arc::new(Gauge::default());
    let slept = Arc::new(AtomicUsize::new(0));
    let listener = listener();
    let addr = listener.local_addr().unwrap();
    let (g, s) = (gauge.clone(), slept.clone());
    let server = ws::Server::new()
        .listen_on(listener, 1, move |_| {
            Ok(ws::async_endpoint(Sleepy {
                rng: Rng(seed),
                gauge: g.clone(),
                slept: s.clone(),
            }))
        })
        .unwrap();
    let handle = server.handle();
    actix_rt::spawn(server);
    let mut client = connect(addr).await;
    // All 1,000 go out at once: the server reads them while handlers sleep.
    for i in 0..1000 {
        client
            .feed(tungstenite::Message::text(i.to_string()))
            .await
            .unwrap();
    }
    client.flush().await.unwrap();
    for i in 0..1000 {
        match client.next().await.unwrap().unwrap() {
            tungstenite::Message::Text(t) => assert_eq!(t.as_str(), i.to_string(), "reply {i}"),
            other => panic!("expected text {i}, got {other:?}"),
        }
    }
    assert_eq!(gauge.max.load(Ordering::SeqCst), 1, "one handler at a time");
    assert!(slept.load(Ordering::SeqCst) > 900, "the handlers waited");
    client.close(None).await.unwrap();
    handle.stop(false).await;
}

#[actix_rt::test]
async fn a_thousand_handlers_sleeping_0_to_2_ms_reply_in_order() {
    for seed in [1, 0x9e37_79b9_7f4a_7c15] {
        replies_in_order(seed).await;
    }
}

/// What the gated endpoint did, in order.
#[derive(Debug, PartialEq, Eq)]
enum Step {
    Open,
    Start(String),
    End(String),
    Close(u16, bool),
}

/// Each message waits for a permit of `gate` before it is echoed.
#[derive(Clone)]
struct Gated {
    log: mpsc::UnboundedSender<Step>,
    gate: Arc<Semaphore>,
    gauge: Arc<Gauge>,
    close_first: bool,
}

impl ws::AsyncEndpoint for Gated {
    async fn on_open(&mut self, _: &ws::Conn) {
        let _ = self.log.send(Step::Open);
    }

    async fn on_message(&mut self, conn: &ws::Conn, msg: ws::Message) {
        let text = msg.as_text().unwrap_or_default().to_owned();
        self.gauge.enter();
        let _ = self.log.send(Step::Start(text.clone()));
        if self.close_first {
            conn.close(ws::CloseCode::NORMAL, "bye");
        }
        self.gate.acquire().await.unwrap().forget();
        self.gauge.leave();
        let _ = self.log.send(Step::End(text.clone()));
        conn.send_text(text);
    }

    async fn on_close(&mut self, _: &ws::Conn, close: ws::Close) {
        let _ = self.log.send(Step::Close(close.code.0, close.was_clean));
    }
}

struct Setup {
    addr: SocketAddr,
    handle: actix_server::ServerHandle,
    log: mpsc::UnboundedReceiver<Step>,
    gate: Arc<Semaphore>,
    gauge: Arc<Gauge>,
}

fn gated(server: ws::Server, concurrent: usize, close_first: bool) -> Setup {
    let (tx, log) = mpsc::unbounded_channel();
    let gate = Arc::new(Semaphore::new(0));
    let gauge = Arc::new(Gauge::default());
    let endpoint = Gated {
        log: tx,
        gate: gate.clone(),
        gauge: gauge.clone(),
        close_first,
    };
    let listener = listener();
    let addr = listener.local_addr().unwrap();
    let running = server
        .listen_on(listener, 1, move |_| {
            Ok(ws::async_endpoint(endpoint.clone()).concurrent(concurrent))
        })
        .unwrap();
    let handle = running.handle();
    actix_rt::spawn(running);
    Setup {
        addr,
        handle,
        log,
        gate,
        gauge,
    }
}

async fn next(log: &mut mpsc::UnboundedReceiver<Step>) -> Step {
    tokio::time::timeout(Duration::from_secs(10), log.recv())
        .await
        .expect("a step within 10 s")
        .expect("the endpoint is alive")
}

#[actix_rt::test]
async fn concurrent_4_runs_at_most_4_messages_at_once_and_on_close_after_all() {
    let mut s = gated(ws::Server::new(), 4, false);
    let mut client = connect(s.addr).await;
    assert_eq!(next(&mut s.log).await, Step::Open);
    for i in 0..12 {
        client
            .send(tungstenite::Message::text(i.to_string()))
            .await
            .unwrap();
    }
    let mut started = Vec::new();
    for _ in 0..4 {
        match next(&mut s.log).await {
            Step::Start(t) => started.push(t),
            other => panic!("expected a start, got {other:?}"),
        }
    }
    assert_eq!(started, ["0", "1", "2", "3"]);
    // Free one slot at a time: each end lets exactly one more start (the bound is
    // checked by the gauge on every start).
    let mut ended = Vec::new();
    let mut replies = Vec::new();
    while ended.len() < 12 {
        s.gate.add_permits(1);
        loop {
            match next(&mut s.log).await {
                Step::End(t) => {
                    ended.push(t);
                    break;
                }
                Step::Start(t) => started.push(t),
                other => panic!("unexpected {other:?}"),
            }
        }
        if let tungstenite::Message::Text(t) = client.next().await.unwrap().unwrap() {
            replies.push(t.as_str().to_owned());
        }
    }
    while started.len() < 12 {
        match next(&mut s.log).await {
            Step::Start(t) => started.push(t),
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(s.gauge.max.load(Ordering::SeqCst), 4);
    let all: Vec<String> = (0..12).map(|i| i.to_string()).collect();
    assert_eq!(started, all, "started in arrival order");
    let mut sorted = replies.clone();
    sorted.sort_by_key(|t| t.parse::<u32>().unwrap());
    assert_eq!(sorted, all, "every message answered once");
    client.close(None).await.unwrap();
    assert_eq!(next(&mut s.log).await, Step::Close(1005, true));
    s.handle.stop(false).await;
}

#[actix_rt::test]
async fn the_peers_close_waits_for_the_running_handler_and_on_close_comes_last() {
    let mut s = gated(ws::Server::new(), 1, false);
    let mut client = connect(s.addr).await;
    assert_eq!(next(&mut s.log).await, Step::Open);
    client.send(tungstenite::Message::text("a")).await.unwrap();
    client.send(tungstenite::Message::text("b")).await.unwrap();
    assert_eq!(next(&mut s.log).await, Step::Start("a".into()));
    // The Close is sent while "a" runs; the server reads nothing meanwhile.
    client
        .send(tungstenite::Message::Close(Some(
            tungstenite::protocol::CloseFrame {
                code: tungstenite::protocol::frame::coding::CloseCode::Normal,
                reason: "done".into(),
            },
        )))
        .await
        .unwrap();
    s.gate.add_permits(2);
    assert_eq!(next(&mut s.log).await, Step::End("a".into()));
    assert_eq!(next(&mut s.log).await, Step::Start("b".into()));
    assert_eq!(next(&mut s.log).await, Step::End("b".into()));
    assert_eq!(next(&mut s.log).await, Step::Close(1000, true));
    // Both replies came before the server's Close.
    let mut texts = Vec::new();
    while let Some(Ok(msg)) = client.next().await {
        match msg {
            tungstenite::Message::Text(t) => texts.push(t.as_str().to_owned()),
            tungstenite::Message::Close(frame) => {
                assert_eq!(u16::from(frame.unwrap().code), 1000);
                break;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(texts, ["a", "b"]);
    s.handle.stop(false).await;
}

#[actix_rt::test]
async fn on_close_follows_the_running_handler_when_the_close_timed_out_meanwhile() {
    // The handler closes, then waits; the peer never answers the Close, so the
    // close timeout cuts the transport while the handler still runs.
    let server = ws::Server::new().close_timeout(Duration::from_millis(100));
    let mut s = gated(server, 1, true);
    let mut tcp = support_raw::connect(s.addr).await;
    assert_eq!(next(&mut s.log).await, Step::Open);
    support_raw::send_text(&mut tcp, "a").await;
    assert_eq!(next(&mut s.log).await, Step::Start("a".into()));
    // The server's Close arrives, then the transport ends (reset or EOF).
    support_raw::read_to_end(&mut tcp).await;
    s.gate.add_permits(1);
    assert_eq!(next(&mut s.log).await, Step::End("a".into()));
    // How `Conn::closed()` reports it: the connection ended without the
    // closing handshake done.
    assert_eq!(next(&mut s.log).await, Step::Close(1001, false));
    s.handle.stop(false).await;
}

/// Panics in its handler.
struct Panicky;

impl ws::AsyncEndpoint for Panicky {
    async fn on_message(&mut self, _: &ws::Conn, msg: ws::Message) {
        tokio::task::yield_now().await;
        if msg.as_text() == Some("boom") {
            panic!("handler panics on purpose");
        }
    }
}

#[actix_rt::test]
async fn a_handler_that_panics_after_waiting_closes_its_connection_with_1011() {
    let listener = listener();
    let addr = listener.local_addr().unwrap();
    let server = ws::Server::new()
        .listen_on(listener, 1, |_| Ok(ws::async_endpoint(Panicky)))
        .unwrap();
    let handle = server.handle();
    actix_rt::spawn(server);
    let mut client = connect(addr).await;
    client
        .send(tungstenite::Message::text("boom"))
        .await
        .unwrap();
    match client.next().await.unwrap().unwrap() {
        tungstenite::Message::Close(Some(frame)) => assert_eq!(u16::from(frame.code), 1011),
        other => panic!("expected Close 1011, got {other:?}"),
    }
    handle.stop(false).await;
}

/// Raw TCP for the peer that never answers a Close.
mod support_raw {
    use std::net::SocketAddr;

    use tokio::{
        io::{AsyncReadExt, AsyncWriteExt},
        net::TcpStream,
    };

    pub async fn connect(addr: SocketAddr) -> TcpStream {
        let mut tcp = TcpStream::connect(addr).await.unwrap();
        tcp.write_all(
            b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
              Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
        )
        .await
        .unwrap();
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            tcp.read_exact(&mut byte).await.unwrap();
            head.push(byte[0]);
        }
        assert!(head.starts_with(b"HTTP/1.1 101"));
        tcp
    }

    /// A masked text frame (key 0: the payload is unchanged).
    pub async fn send_text(tcp: &mut TcpStream, text: &str) {
        let mut frame = vec![0x81, 0x80 | text.len() as u8, 0, 0, 0, 0];
        frame.extend_from_slice(text.as_bytes());
        tcp.write_all(&frame).await.unwrap();
    }

    /// Read until the server ends the transport.
    pub async fn read_to_end(tcp: &mut TcpStream) {
        let mut buf = [0u8; 1024];
        loop {
            match tcp.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    }
}

/// The server's side of the reconnect test: echoes, and on the first connection
/// then closes with 1012 (service restart).
struct Restarting {
    connections: Arc<AtomicUsize>,
}

impl ws::AsyncEndpoint for Restarting {
    async fn on_message(&mut self, conn: &ws::Conn, msg: ws::Message) {
        conn.send(msg);
        if self.connections.fetch_add(1, Ordering::SeqCst) == 0 {
            conn.close(ws::CloseCode(1012), "restart");
        }
    }
}

/// The client's side: greets on each open, closes itself on the second.
struct Redialer {
    log: mpsc::UnboundedSender<String>,
    opens: u32,
}

impl ws::AsyncEndpoint for Redialer {
    async fn on_open(&mut self, conn: &ws::Conn) {
        self.opens += 1;
        let _ = self.log.send(format!("open {}", self.opens));
        conn.send_text(format!("hello {}", self.opens));
    }

    async fn on_message(&mut self, conn: &ws::Conn, msg: ws::Message) {
        let _ = self.log.send(msg.as_text().unwrap_or_default().to_owned());
        tokio::task::yield_now().await;
        if self.opens == 2 {
            conn.close(ws::CloseCode::NORMAL, "done");
        }
    }

    async fn on_close(&mut self, _: &ws::Conn, close: ws::Close) {
        let _ = self.log.send(format!("close {}", close.code.0));
    }
}

#[actix_rt::test]
async fn a_reconnecting_client_opens_the_same_async_endpoint_again() {
    let listener = listener();
    let addr = listener.local_addr().unwrap();
    let connections = Arc::new(AtomicUsize::new(0));
    let running = ws::Server::new()
        .listen_on(listener, 1, move |_| {
            Ok(ws::async_endpoint(Restarting {
                connections: connections.clone(),
            }))
        })
        .unwrap();
    let handle = running.handle();
    actix_rt::spawn(running);
    let (tx, mut log) = mpsc::unbounded_channel();
    let close = ws::Client::new(&format!("ws://{addr}/"))
        .unwrap()
        .reconnect(ws::ReconnectPolicy {
            initial: Duration::from_millis(10),
            max: Duration::from_millis(50),
            factor: 2.0,
            jitter: 0.0,
            max_attempts: Some(5),
        })
        .run(ws::async_endpoint(Redialer { log: tx, opens: 0 }))
        .await
        .unwrap();
    assert_eq!(close.code, ws::CloseCode::NORMAL);
    let mut steps = Vec::new();
    while let Ok(step) = log.try_recv() {
        steps.push(step);
    }
    assert_eq!(
        steps,
        [
            "open 1",
            "hello 1",
            "close 1012",
            "open 2",
            "hello 2",
            "close 1000"
        ]
    );
    handle.stop(false).await;
}
