//! The API's promises: pings and pongs visible and answered by the
//! application when it wants them, both roles, byte for byte; the short
//! `Endpoint` form; the standalone factory that sees the request and refuses it;
//! shutdown per server.

#[path = "support/server.rs"]
mod support;

use std::{
    net::SocketAddr,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
    time::Duration,
};

use actix::prelude::*;
use actix_web::{web, App, HttpServer};
use bytes::Bytes;
use support::RawClient;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
    sync::mpsc,
};
use websocket_driver as ws;
use ws::proto::{apply_mask, CloseCode, Event, Message, OpCode};

/// What a control actor saw.
#[derive(Debug, PartialEq)]
enum Saw {
    Open,
    Message(String),
    Ping(Bytes),
    Pong(Bytes),
    Close(u16),
}

/// An actor that takes pings and pongs (served through `ws::WithControl`); with
/// `answer`, it answers each ping itself: a text "answered", then the Pong.
struct Control {
    tx: mpsc::UnboundedSender<Saw>,
    conn: Option<ws::Conn>,
    answer: bool,
}

impl Actor for Control {
    type Context = Context<Self>;
}

impl Handler<ws::Open> for Control {
    type Result = ();
    fn handle(&mut self, open: ws::Open, _: &mut Context<Self>) {
        self.conn = Some(open.conn);
        let _ = self.tx.send(Saw::Open);
    }
}

impl Handler<ws::Message> for Control {
    type Result = ();
    fn handle(&mut self, msg: ws::Message, _: &mut Context<Self>) {
        if let Message::Text(t) = msg {
            let _ = self.tx.send(Saw::Message(t.to_string()));
        }
    }
}

impl Handler<ws::Ping> for Control {
    type Result = ();
    fn handle(&mut self, ping: ws::Ping, _: &mut Context<Self>) {
        if let (true, Some(conn)) = (self.answer, &self.conn) {
            conn.send_text("answered");
            conn.send_pong(&ping.0);
        }
        let _ = self.tx.send(Saw::Ping(ping.0));
    }
}

impl Handler<ws::Pong> for Control {
    type Result = ();
    fn handle(&mut self, pong: ws::Pong, _: &mut Context<Self>) {
        let _ = self.tx.send(Saw::Pong(pong.0));
    }
}

impl Handler<ws::Error> for Control {
    type Result = ();
    fn handle(&mut self, _: ws::Error, _: &mut Context<Self>) {}
}

impl Handler<ws::Close> for Control {
    type Result = ();
    fn handle(&mut self, close: ws::Close, ctx: &mut Context<Self>) {
        let _ = self.tx.send(Saw::Close(close.code.0));
        ctx.stop();
    }
}

/// A route server (one worker) whose connections are served by `make`.
fn route_server<S, F>(server: ws::Server, make: F) -> (SocketAddr, actix_web::dev::ServerHandle)
where
    S: ws::Serve,
    F: Fn() -> S + Clone + Send + 'static,
{
    let server = web::Data::new(server);
    let srv = HttpServer::new(move || {
        let make = make.clone();
        App::new()
            .app_data(server.clone())
            .default_service(web::get().to(
                move |req: ws::Upgrade, server: web::Data<ws::Server>| {
                    let serve = make();
                    async move { server.start(serve, &req) }
                },
            ))
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
    (addr, handle)
}

async fn next<T>(rx: &mut mpsc::UnboundedReceiver<T>) -> T {
    tokio::time::timeout(Duration::from_secs(5), rx.recv())
        .await
        .expect("timed out")
        .expect("channel closed")
}

/// Read exactly `n` bytes from `stream`, within 5 s.
async fn read_exact(stream: &mut TcpStream, n: usize) -> Vec<u8> {
    let mut buf = vec![0u8; n];
    tokio::time::timeout(Duration::from_secs(5), stream.read_exact(&mut buf))
        .await
        .expect("timed out reading")
        .expect("read");
    buf
}

fn control_server(
    auto_pong: bool,
    answer: bool,
) -> (
    SocketAddr,
    actix_web::dev::ServerHandle,
    mpsc::UnboundedReceiver<Saw>,
) {
    let (tx, rx) = mpsc::unbounded_channel();
    let (addr, handle) = route_server(ws::Server::new().auto_pong(auto_pong), move || {
        ws::WithControl(Control {
            tx: tx.clone(),
            conn: None,
            answer,
        })
    });
    (addr, handle, rx)
}

// RFC 6455 §5.5.2: "Upon receipt of a Ping frame, an endpoint MUST send a Pong frame
// in response". With auto-pong off, the application sends it: its text goes out
// before the Pong, which auto-pong (queued as the Ping is read) could not do.
#[actix_rt::test]
async fn server_with_auto_pong_off_lets_the_application_answer_the_ping() {
    let (addr, handle, mut saw) = control_server(false, true);
    let (mut client, _) = RawClient::connect(addr, "").await;
    assert_eq!(next(&mut saw).await, Saw::Open);
    client.send_frame(true, OpCode::Ping, b"abc").await;
    assert_eq!(next(&mut saw).await, Saw::Ping(Bytes::from_static(b"abc")));
    assert_eq!(
        read_exact(&mut client.stream, 15).await,
        b"\x81\x08answered\x8a\x03abc"
    );
    handle.stop(false).await;
}

#[actix_rt::test]
async fn server_with_auto_pong_on_answers_at_once_and_shows_the_ping() {
    let (addr, handle, mut saw) = control_server(true, false);
    let (mut client, _) = RawClient::connect(addr, "").await;
    assert_eq!(next(&mut saw).await, Saw::Open);
    client.send_frame(true, OpCode::Ping, b"abc").await;
    client.send_frame(true, OpCode::Pong, b"hb").await;
    client.send_frame(true, OpCode::Text, b"after").await;
    assert_eq!(read_exact(&mut client.stream, 5).await, b"\x8a\x03abc");
    assert_eq!(next(&mut saw).await, Saw::Ping(Bytes::from_static(b"abc")));
    assert_eq!(next(&mut saw).await, Saw::Pong(Bytes::from_static(b"hb")));
    assert_eq!(next(&mut saw).await, Saw::Message("after".into()));
    handle.stop(false).await;
}

/// A plain actor (no ping handlers) with auto-pong off: the library answers, so a
/// Ping is never left unanswered.
#[actix_rt::test]
async fn server_with_auto_pong_off_and_a_plain_actor_still_answers() {
    let mut server = support::TestServer::start(ws::Server::new().auto_pong(false), false);
    let (mut client, _) = RawClient::connect(server.addr, "").await;
    server.opened().await;
    client.send_frame(true, OpCode::Ping, b"xyz").await;
    assert_eq!(read_exact(&mut client.stream, 5).await, b"\x8a\x03xyz");
    server.handle.stop(false).await;
}

/// A one-connection server of raw bytes: answers the handshake, then runs `then`.
async fn raw_server<F, Fut>(then: F) -> SocketAddr
where
    F: FnOnce(TcpStream) -> Fut + 'static,
    Fut: std::future::Future<Output = ()> + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    actix_rt::spawn(async move {
        let (mut stream, _) = listener.accept().await.unwrap();
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            stream.read_exact(&mut byte).await.unwrap();
            head.push(byte[0]);
        }
        let text = String::from_utf8(head).unwrap();
        let key = text
            .lines()
            .find_map(|l| l.strip_prefix("Sec-WebSocket-Key: "))
            .unwrap()
            .trim();
        let answer = format!(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Accept: {}\r\n\r\n",
            ws::handshake::accept_key(key.as_bytes())
        );
        stream.write_all(answer.as_bytes()).await.unwrap();
        then(stream).await;
    });
    addr
}

/// A client frame read from the server side: its first byte, its payload unmasked.
async fn read_client_frame(stream: &mut TcpStream) -> (u8, Vec<u8>) {
    let head = read_exact(stream, 2).await;
    assert_eq!(head[1] & 0x80, 0x80, "a client's frames are masked");
    let len = (head[1] & 0x7f) as usize;
    let mask = read_exact(stream, 4).await;
    let mut payload = read_exact(stream, len).await;
    apply_mask(&mut payload, [mask[0], mask[1], mask[2], mask[3]], 0);
    (head[0], payload)
}

#[actix_rt::test]
async fn client_with_auto_pong_off_lets_the_application_answer_the_ping() {
    let (done_tx, mut done) = mpsc::unbounded_channel();
    let addr = raw_server(move |mut stream| async move {
        stream.write_all(b"\x89\x03abc").await.unwrap();
        let first = read_client_frame(&mut stream).await;
        let second = read_client_frame(&mut stream).await;
        let _ = done_tx.send((first, second));
    })
    .await;
    let (tx, mut saw) = mpsc::unbounded_channel();
    ws::Client::new(&format!("ws://{addr}/"))
        .unwrap()
        .auto_pong(false)
        .connect(ws::WithControl(Control {
            tx,
            conn: None,
            answer: true,
        }))
        .await
        .unwrap();
    assert_eq!(next(&mut saw).await, Saw::Open);
    assert_eq!(next(&mut saw).await, Saw::Ping(Bytes::from_static(b"abc")));
    assert_eq!(
        next(&mut done).await,
        ((0x81, b"answered".to_vec()), (0x8a, b"abc".to_vec()))
    );
}

#[actix_rt::test]
async fn client_with_auto_pong_on_answers_at_once_and_shows_ping_and_pong() {
    let (done_tx, mut done) = mpsc::unbounded_channel();
    let addr = raw_server(move |mut stream| async move {
        stream.write_all(b"\x89\x03abc\x8a\x02hb").await.unwrap();
        let _ = done_tx.send(read_client_frame(&mut stream).await);
    })
    .await;
    let (tx, mut saw) = mpsc::unbounded_channel();
    ws::Client::new(&format!("ws://{addr}/"))
        .unwrap()
        .connect(ws::WithControl(Control {
            tx,
            conn: None,
            answer: false,
        }))
        .await
        .unwrap();
    assert_eq!(next(&mut done).await, (0x8a, b"abc".to_vec()));
    assert_eq!(next(&mut saw).await, Saw::Open);
    assert_eq!(next(&mut saw).await, Saw::Ping(Bytes::from_static(b"abc")));
    assert_eq!(next(&mut saw).await, Saw::Pong(Bytes::from_static(b"hb")));
}

/// The short form: one method per event, the library's actor around it.
struct Recorded {
    tx: mpsc::UnboundedSender<Saw>,
}

impl ws::Endpoint for Recorded {
    fn on_open(&mut self, _: &ws::Conn, _: &mut ws::EndpointContext<Self>) {
        let _ = self.tx.send(Saw::Open);
    }
    fn on_message(&mut self, conn: &ws::Conn, msg: ws::Message, _: &mut ws::EndpointContext<Self>) {
        if let Message::Text(t) = &msg {
            let _ = self.tx.send(Saw::Message(t.to_string()));
        }
        conn.send(msg);
    }
    fn on_ping(&mut self, _: &ws::Conn, payload: Bytes, _: &mut ws::EndpointContext<Self>) {
        let _ = self.tx.send(Saw::Ping(payload));
    }
    fn on_close(&mut self, _: &ws::Conn, close: ws::Close, _: &mut ws::EndpointContext<Self>) {
        let _ = self.tx.send(Saw::Close(close.code.0));
    }
}

#[actix_rt::test]
async fn endpoint_form_echoes_and_sees_each_event_in_order() {
    let (tx, mut saw) = mpsc::unbounded_channel();
    let (addr, handle) = route_server(ws::Server::new(), move || {
        ws::endpoint(Recorded { tx: tx.clone() })
    });
    let (mut client, _) = RawClient::connect(addr, "").await;
    client.send_frame(true, OpCode::Text, b"hi").await;
    assert_eq!(read_exact(&mut client.stream, 4).await, b"\x81\x02hi");
    client.send_frame(true, OpCode::Ping, b"p").await;
    assert_eq!(read_exact(&mut client.stream, 3).await, b"\x8a\x01p");
    client
        .send_raw(&support::frame(true, OpCode::Close, b"\x03\xe8"))
        .await;
    assert_eq!(next(&mut saw).await, Saw::Open);
    assert_eq!(next(&mut saw).await, Saw::Message("hi".into()));
    assert_eq!(next(&mut saw).await, Saw::Ping(Bytes::from_static(b"p")));
    assert_eq!(next(&mut saw).await, Saw::Close(1000));
    handle.stop(false).await;
}

/// Counts the actors started: none may start for a refused handshake.
struct Counted {
    started: Arc<AtomicUsize>,
}

impl ws::Endpoint for Counted {
    fn on_open(&mut self, conn: &ws::Conn, _: &mut ws::EndpointContext<Self>) {
        self.started.fetch_add(1, Ordering::SeqCst);
        conn.send_text("welcome");
    }
}

async fn raw_handshake(addr: SocketAddr, target: &str) -> (TcpStream, String) {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let request = format!(
        "GET {target} HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\
         Cookie: theme=dark; sid=42\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut byte))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(n, 1, "closed during the handshake");
        head.push(byte[0]);
    }
    (stream, String::from_utf8(head).unwrap())
}

#[actix_rt::test]
async fn standalone_factory_sees_the_request_and_refuses_with_its_status() {
    let started = Arc::new(AtomicUsize::new(0));
    let (seen_tx, mut seen) = mpsc::unbounded_channel();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let counter = started.clone();
    let running = ws::Server::new()
        .listen_on(listener, 1, move |req: &ws::Request| {
            let _ = seen_tx.send((
                req.path().to_owned(),
                req.query_param("token").map(|t| t.into_owned()),
                req.cookie("sid").map(str::to_owned),
                req.peer_addr().is_some_and(|a| a.ip().is_loopback()),
                req.local_addr(),
            ));
            match req.query_param("token").as_deref() {
                Some("s3cret") => Ok(ws::endpoint(Counted {
                    started: counter.clone(),
                })),
                _ => Err(ws::Refuse::new(401, "bad token").header("WWW-Authenticate", "Bearer")),
            }
        })
        .unwrap();
    let handle = running.handle();
    actix_rt::spawn(running);

    let (mut refused, head) = raw_handshake(addr, "/chat?token=wrong").await;
    assert_eq!(
        head,
        "HTTP/1.1 401 Unauthorized\r\nContent-Type: text/plain; charset=utf-8\r\n\
         Content-Length: 10\r\nConnection: close\r\nWWW-Authenticate: Bearer\r\n\r\n"
    );
    let mut rest = Vec::new();
    refused.read_to_end(&mut rest).await.unwrap();
    assert_eq!(
        rest, b"bad token\n",
        "the reason, then the connection is closed"
    );
    assert_eq!(
        next(&mut seen).await,
        (
            "/chat".into(),
            Some("wrong".into()),
            Some("42".into()),
            true,
            Some(addr)
        )
    );

    let (mut accepted, head) = raw_handshake(addr, "/chat?token=s3cret").await;
    assert!(
        head.starts_with("HTTP/1.1 101 Switching Protocols\r\n"),
        "{head}"
    );
    assert_eq!(read_exact(&mut accepted, 9).await, b"\x81\x07welcome");
    assert_eq!(next(&mut seen).await.1.as_deref(), Some("s3cret"));
    // Exactly one actor ran: the one accepted.
    assert_eq!(started.load(Ordering::SeqCst), 1);
    handle.stop(false).await;
}

/// Echo through any path: the route's or the standalone server's.
struct Echo;

impl ws::Endpoint for Echo {
    fn on_message(&mut self, conn: &ws::Conn, msg: ws::Message, _: &mut ws::EndpointContext<Self>) {
        conn.send(msg);
    }
}

#[actix_rt::test]
async fn two_servers_in_one_process_shut_down_separately() {
    let a = ws::Server::new();
    let b = ws::Server::new();
    let (addr_a, handle_a) = route_server(a.clone(), || ws::endpoint(Echo));
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr_b = listener.local_addr().unwrap();
    let running_b = b
        .listen_on(listener, 1, |_| Ok(ws::endpoint(Echo)))
        .unwrap();
    let handle_b = running_b.handle();
    actix_rt::spawn(running_b);

    let (mut a1, _) = RawClient::connect(addr_a, "").await;
    let (mut a2, _) = RawClient::connect(addr_a, "").await;
    let (mut b1, _) = RawClient::connect(addr_b, "").await;
    // Each connection echoes once, so each is open on its server.
    for client in [&mut a1, &mut a2, &mut b1] {
        client.send_frame(true, OpCode::Text, b"up").await;
        assert!(matches!(client.next().await, Event::Message(Message::Text(t)) if t == "up"));
    }
    assert_eq!((a.open_connections(), b.open_connections()), (2, 1));

    let shutdown = actix_rt::spawn({
        let a = a.clone();
        async move { a.shutdown(Duration::from_secs(5)).await }
    });
    for client in [&mut a1, &mut a2] {
        match client.next().await {
            Event::Close(close) => assert_eq!(close.code, CloseCode::GOING_AWAY),
            other => panic!("expected Close 1001, got {other:?}"),
        }
        let reply = client.core.take_output();
        client.send_raw(&reply).await;
    }
    tokio::time::timeout(Duration::from_secs(5), shutdown)
        .await
        .expect("the shutdown resolves once its connections closed")
        .unwrap();
    assert_eq!((a.open_connections(), b.open_connections()), (0, 1));
    // B's connection is untouched.
    b1.send_frame(true, OpCode::Text, b"still here").await;
    assert!(matches!(b1.next().await, Event::Message(Message::Text(t)) if t == "still here"));
    handle_a.stop(false).await;
    handle_b.stop(false).await;
}
