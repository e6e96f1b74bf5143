//! `ws::Client` over real sockets on loopback: against our own server
//! (`Server::listen_on`), against tokio-tungstenite over TCP and over TLS (rustls,
//! a certificate made here with rcgen), and against raw TCP servers that answer
//! exact bytes, for every way a connection can fail.

#[path = "support/server.rs"]
mod support;

#[path = "support/python.rs"]
mod python;

use std::{
    net::SocketAddr,
    sync::Arc,
    time::{Duration, Instant},
};

use actix::prelude::*;
use futures_util::{SinkExt, StreamExt};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
    sync::mpsc,
};
use tokio_tungstenite::tungstenite;
use websocket_driver as ws;
use ws::{
    client::{rustls, ClientError, Timeout, UrlError},
    handshake::{BuildError, HandshakeError},
    proto::{CloseCode, Event, ProtocolError},
    ReconnectPolicy,
};

// ----- the client's actor -----

/// What the client's actor saw, in order.
#[derive(Debug)]
enum Ev {
    Open(ws::Conn),
    Message(ws::Message),
    Error(ws::Error),
    Close(ws::Close),
}

/// Records every event; stops itself on Close only when `stop_on_close`.
struct Events {
    tx: mpsc::UnboundedSender<Ev>,
    stop_on_close: bool,
}

impl Actor for Events {
    type Context = Context<Self>;
}

impl Handler<ws::Open> for Events {
    type Result = ();
    fn handle(&mut self, open: ws::Open, _: &mut Context<Self>) {
        let _ = self.tx.send(Ev::Open(open.conn));
    }
}

impl Handler<ws::Message> for Events {
    type Result = ();
    fn handle(&mut self, msg: ws::Message, _: &mut Context<Self>) {
        let _ = self.tx.send(Ev::Message(msg));
    }
}

impl Handler<ws::Error> for Events {
    type Result = ();
    fn handle(&mut self, err: ws::Error, _: &mut Context<Self>) {
        let _ = self.tx.send(Ev::Error(err));
    }
}

impl Handler<ws::Close> for Events {
    type Result = ();
    fn handle(&mut self, close: ws::Close, ctx: &mut Context<Self>) {
        let _ = self.tx.send(Ev::Close(close));
        if self.stop_on_close {
            ctx.stop();
        }
    }
}

fn events() -> (Events, mpsc::UnboundedReceiver<Ev>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let actor = Events {
        tx,
        stop_on_close: true,
    };
    (actor, rx)
}

/// The next event within 5 s.
async fn next(rx: &mut mpsc::UnboundedReceiver<Ev>) -> Ev {
    tokio::time::timeout(Duration::from_secs(5), rx.recv())
        .await
        .expect("timed out waiting for the client's actor")
        .expect("the actor is gone")
}

async fn opened(rx: &mut mpsc::UnboundedReceiver<Ev>) -> ws::Conn {
    match next(rx).await {
        Ev::Open(conn) => conn,
        other => panic!("expected Open, saw {other:?}"),
    }
}

async fn closed(rx: &mut mpsc::UnboundedReceiver<Ev>) -> ws::Close {
    match next(rx).await {
        Ev::Close(close) => close,
        other => panic!("expected Close, saw {other:?}"),
    }
}

/// Nothing more arrives: the actor's channel closes (the actor stopped and dropped
/// its sender) within 5 s, with no event before.
async fn ends(rx: &mut mpsc::UnboundedReceiver<Ev>) {
    match tokio::time::timeout(Duration::from_secs(5), rx.recv()).await {
        Ok(None) => {}
        Ok(Some(ev)) => panic!("expected no more events, saw {ev:?}"),
        Err(_) => panic!("the actor did not stop"),
    }
}

fn text_of(size: usize) -> String {
    (0..size)
        .map(|i| char::from(b'a' + (i % 26) as u8))
        .collect()
}

fn binary_of(size: usize) -> Vec<u8> {
    (0..size).map(|i| (i * 7 % 251) as u8).collect()
}

const SIZES: [usize; 6] = [0, 125, 126, 65535, 65536, 1 << 20];

/// Send text and binary messages of every size through `conn` and check each echo.
async fn echo_all_sizes(conn: &ws::Conn, rx: &mut mpsc::UnboundedReceiver<Ev>) {
    for size in SIZES {
        conn.send_text(text_of(size)).into_result().unwrap();
        match next(rx).await {
            Ev::Message(ws::Message::Text(t)) => assert!(*t == *text_of(size), "text of {size}"),
            other => panic!("expected text of {size}, saw {other:?}"),
        }
        conn.send_binary(binary_of(size)).into_result().unwrap();
        match next(rx).await {
            Ev::Message(ws::Message::Binary(b)) => {
                assert!(b[..] == binary_of(size)[..], "binary of {size}")
            }
            other => panic!("expected binary of {size}, saw {other:?}"),
        }
    }
}

/// A client for `ws://{addr}/`.
fn to(addr: SocketAddr) -> ws::Client {
    ws::Client::new(&format!("ws://{addr}/")).unwrap()
}

/// Connect with `client`, which must fail; its error.
async fn fails(client: ws::Client) -> ClientError {
    match client.connect(events().0).await {
        Ok(_) => panic!("connected, expected an error"),
        Err(err) => err,
    }
}

/// Keep a raw server's socket open until the client closes it (5 s at most).
async fn linger(tcp: &mut TcpStream) {
    let _ = tokio::time::timeout(Duration::from_secs(5), tcp.read(&mut [0; 64])).await;
}

// ----- servers -----

/// A tokio-tungstenite echo server over any stream; answers subprotocol `chat` when
/// offered.
// The callback's error type is tungstenite's (an HTTP response), as its API requires.
#[allow(clippy::result_large_err)]
async fn tungstenite_echo<S>(stream: S)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    use tungstenite::handshake::server::{Request, Response};
    let callback = |req: &Request, mut resp: Response| {
        let offered = req
            .headers()
            .get("sec-websocket-protocol")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if offered.split(',').any(|p| p.trim() == "chat") {
            resp.headers_mut()
                .insert("Sec-WebSocket-Protocol", "chat".parse().unwrap());
        }
        Ok(resp)
    };
    let Ok(mut ws) = tokio_tungstenite::accept_hdr_async(stream, callback).await else {
        return;
    };
    while let Some(Ok(msg)) = ws.next().await {
        if (msg.is_text() || msg.is_binary()) && ws.send(msg).await.is_err() {
            return;
        }
    }
}

/// A tokio-tungstenite echo server on 127.0.0.1:0, plain TCP.
async fn tungstenite_server() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            tokio::spawn(tungstenite_echo(tcp));
        }
    });
    addr
}

/// A self-signed certificate for `localhost` and `127.0.0.1`, and a TLS
/// tokio-tungstenite echo server on 127.0.0.1:0 that presents it.
async fn tls_server() -> (SocketAddr, rcgen::CertifiedKey<rcgen::KeyPair>) {
    let certified =
        rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(certified.signing_key.serialize_der().into());
    let config = rustls::ServerConfig::builder_with_provider(ws::tls::crypto_provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![certified.cert.der().clone()], key)
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                if let Ok(tls) = acceptor.accept(tcp).await {
                    tungstenite_echo(tls).await;
                }
            });
        }
    });
    (addr, certified)
}

/// Read an HTTP request head from a raw socket, byte by byte (nothing after it is
/// consumed).
async fn read_request(tcp: &mut TcpStream) -> String {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        let n = tokio::time::timeout(Duration::from_secs(5), tcp.read(&mut byte))
            .await
            .expect("request timed out")
            .unwrap();
        assert_eq!(n, 1, "client closed during its request");
        head.push(byte[0]);
    }
    String::from_utf8(head).unwrap()
}

/// The value of header `name` in a request head.
fn header_of(head: &str, name: &str) -> Option<String> {
    head.split("\r\n").skip(1).find_map(|line| {
        let (n, v) = line.split_once(':')?;
        n.eq_ignore_ascii_case(name).then(|| v.trim().to_owned())
    })
}

/// A correct `101` for the request `head`, with `extra` header lines.
fn switching(head: &str, extra: &str) -> String {
    let key = header_of(head, "sec-websocket-key").expect("key");
    format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Accept: {}\r\n{extra}\r\n",
        ws::handshake::accept_key(key.as_bytes())
    )
}

/// A raw server: accepts one connection and hands it, with its request head, to
/// `serve`.
async fn raw_server<F, Fut>(serve: F) -> SocketAddr
where
    F: FnOnce(TcpStream, String) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (mut tcp, _) = listener.accept().await.unwrap();
        let head = read_request(&mut tcp).await;
        serve(tcp, head).await;
    });
    addr
}

/// A raw server that answers every request with `response` and closes.
async fn answering(response: &'static str) -> SocketAddr {
    raw_server(move |mut tcp, _| async move {
        tcp.write_all(response.as_bytes()).await.unwrap();
        let _ = tcp.shutdown().await;
        // Keep the socket until the client is done with it.
        linger(&mut tcp).await;
    })
    .await
}

/// An unmasked server frame.
fn server_frame(opcode: u8, payload: &[u8]) -> Vec<u8> {
    assert!(payload.len() < 126);
    let mut out = vec![0x80 | opcode, payload.len() as u8];
    out.extend_from_slice(payload);
    out
}

/// Decode the client's frames with our server-role core (which fails on unmasked
/// ones): the next event within 5 s; `None` once the client closed TCP.
async fn client_event(tcp: &mut TcpStream, core: &mut ws::proto::Connection) -> Option<Event> {
    loop {
        if let Some(event) = core.poll_event() {
            return Some(event);
        }
        let mut buf = [0u8; 4096];
        let n = tokio::time::timeout(Duration::from_secs(5), tcp.read(&mut buf))
            .await
            .expect("timed out reading the client")
            .unwrap_or(0);
        if n == 0 {
            return None;
        }
        core.receive(&buf[..n]);
    }
}

fn server_core() -> ws::proto::Connection {
    let mut core =
        ws::proto::Connection::new(ws::proto::Role::Server, ws::ProtocolSettings::default());
    core.open();
    assert!(matches!(core.poll_event(), Some(Event::Open)));
    core
}

// ----- echo: our server, tokio-tungstenite, TLS -----

#[actix_rt::test]
async fn echoes_every_size_with_our_server_and_closes_cleanly() {
    let (addr, handle, mut seen) = support::listen_recorder(ws::Server::new().protocols(["chat"]));
    let (actor, mut rx) = events();
    let (_addr, conn) = ws::Client::new(&format!("ws://{addr}/echo?x=1"))
        .unwrap()
        .protocols(["other", "chat"])
        .connect_with_conn(actor)
        .await
        .unwrap();
    assert_eq!(conn.protocol(), Some("chat"));
    let open = opened(&mut rx).await;
    assert_eq!(open.protocol(), Some("chat"));
    echo_all_sizes(&conn, &mut rx).await;
    conn.close(CloseCode::NORMAL, "done").into_result().unwrap();
    let close = closed(&mut rx).await;
    assert_eq!(
        (close.code, close.reason.as_str(), close.was_clean),
        (CloseCode::NORMAL, "", true),
        "the server echoes the code with no reason"
    );
    ends(&mut rx).await;
    // The server's actor saw Open, the 12 messages and the client's Close.
    assert!(matches!(seen.recv().await, Some(support::Seen::Open(_))));
    for _ in 0..12 {
        assert!(matches!(seen.recv().await, Some(support::Seen::Message(_))));
    }
    match seen.recv().await {
        Some(support::Seen::Close(close)) => {
            assert_eq!(
                (close.code, close.reason.as_str()),
                (CloseCode::NORMAL, "done")
            )
        }
        other => panic!("expected the server's Close, saw {other:?}"),
    }
    handle.stop(false).await;
}

/// Sends "hello" when open and closes with 1000 "done" when the echo comes back.
struct HelloOnce(mpsc::UnboundedSender<String>);

impl ws::Endpoint for HelloOnce {
    fn on_open(&mut self, conn: &ws::Conn, _: &mut ws::EndpointContext<Self>) {
        conn.send_text("hello");
    }
    fn on_message(&mut self, conn: &ws::Conn, msg: ws::Message, _: &mut ws::EndpointContext<Self>) {
        let _ = self.0.send(format!("{msg:?}"));
        conn.close(CloseCode::NORMAL, "done");
    }
}

#[actix_rt::test]
async fn run_serves_an_endpoint_to_its_close_and_returns_the_close() {
    let (addr, handle, _seen) = support::listen_recorder(ws::Server::new());
    let (tx, mut rx) = mpsc::unbounded_channel();
    let close = to(addr).run(ws::endpoint(HelloOnce(tx))).await.unwrap();
    assert_eq!(rx.recv().await.unwrap(), "Text(\"hello\")");
    assert_eq!(
        (close.code, close.reason.as_str(), close.was_clean),
        (CloseCode::NORMAL, "", true),
        "the server echoes the code with no reason"
    );
    handle.stop(false).await;
}

#[actix_rt::test]
async fn closed_resolves_on_every_handle_with_the_close_the_actor_got() {
    let (addr, handle, mut seen) = support::listen_recorder(ws::Server::new());
    let (actor, mut rx) = events();
    let (_addr, conn) = to(addr).connect_with_conn(actor).await.unwrap();
    opened(&mut rx).await;
    let server_conn = match seen.recv().await {
        Some(support::Seen::Open(conn)) => conn,
        other => panic!("expected the server's Open, saw {other:?}"),
    };
    // Awaited from another thread before the close, and from here after it.
    let waiting = {
        let conn = conn.clone();
        std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .build()
                .unwrap()
                .block_on(conn.closed())
        })
    };
    server_conn
        .close(CloseCode(4001), "bye")
        .into_result()
        .unwrap();
    let close = closed(&mut rx).await;
    let expected = (CloseCode(4001), "bye".to_owned(), true);
    assert_eq!(
        (close.code, close.reason.clone(), close.was_clean),
        expected
    );
    let from_thread = waiting.join().unwrap();
    assert_eq!(
        (from_thread.code, from_thread.reason, from_thread.was_clean),
        expected
    );
    let again = conn.closed().await;
    assert_eq!((again.code, again.reason, again.was_clean), expected);
    // The server's side too: its Close carries our echo of 4001.
    assert_eq!(server_conn.closed().await.code, CloseCode(4001));
    handle.stop(false).await;
}

/// Hands its `Conn` over and stops its actor at once.
struct StopsAtOnce(mpsc::UnboundedSender<ws::Conn>);

impl ws::Endpoint for StopsAtOnce {
    fn on_open(&mut self, conn: &ws::Conn, ctx: &mut ws::EndpointContext<Self>) {
        let _ = self.0.send(conn.clone());
        actix::ActorContext::stop(ctx);
    }
}

#[actix_rt::test]
async fn closed_says_going_away_when_the_actor_stopped_before_the_close() {
    let (tx, mut conns) = mpsc::unbounded_channel();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let running = ws::Server::new()
        .listen_on(listener, 1, move |_| {
            Ok(ws::endpoint(StopsAtOnce(tx.clone())))
        })
        .unwrap();
    let handle = running.handle();
    actix_rt::spawn(running);
    let (actor, mut rx) = events();
    to(addr).connect(actor).await.unwrap();
    let server_conn = conns.recv().await.unwrap();
    let close = server_conn.closed().await;
    assert_eq!(
        (close.code, close.reason.as_str(), close.was_clean),
        (CloseCode::GOING_AWAY, "", false)
    );
    // The client is told 1001 by the Close frame the server sent as it went.
    opened(&mut rx).await;
    assert_eq!(closed(&mut rx).await.code, CloseCode::GOING_AWAY);
    handle.stop(false).await;
}

#[actix_rt::test]
async fn server_close_reaches_the_actor_after_the_messages_before_it() {
    let (addr, handle, mut seen) = support::listen_recorder(ws::Server::new());
    let (actor, mut rx) = events();
    to(addr).connect(actor).await.unwrap();
    opened(&mut rx).await;
    let server_conn = match seen.recv().await {
        Some(support::Seen::Open(conn)) => conn,
        other => panic!("expected the server's Open, saw {other:?}"),
    };
    server_conn.send_text("one").into_result().unwrap();
    server_conn.send_binary([2u8, 2]).into_result().unwrap();
    server_conn
        .close(CloseCode(4001), "bye")
        .into_result()
        .unwrap();
    match next(&mut rx).await {
        Ev::Message(ws::Message::Text(t)) => assert_eq!(&*t, "one"),
        other => panic!("expected text, saw {other:?}"),
    }
    match next(&mut rx).await {
        Ev::Message(ws::Message::Binary(b)) => assert_eq!(&b[..], [2, 2]),
        other => panic!("expected binary, saw {other:?}"),
    }
    let close = closed(&mut rx).await;
    assert_eq!(
        (close.code, close.reason.as_str(), close.was_clean),
        (CloseCode(4001), "bye", true)
    );
    ends(&mut rx).await;
    handle.stop(false).await;
}

#[actix_rt::test]
async fn echoes_every_size_with_tungstenite_and_agrees_on_the_subprotocol() {
    let addr = tungstenite_server().await;
    let (actor, mut rx) = events();
    let (_addr, conn) = ws::Client::new(&format!("ws://{addr}"))
        .unwrap()
        .protocols(["chat"])
        .connect_with_conn(actor)
        .await
        .unwrap();
    assert_eq!(conn.protocol(), Some("chat"));
    opened(&mut rx).await;
    echo_all_sizes(&conn, &mut rx).await;
    conn.close(CloseCode::NORMAL, "").into_result().unwrap();
    let close = closed(&mut rx).await;
    assert_eq!((close.code, close.was_clean), (CloseCode::NORMAL, true));
    ends(&mut rx).await;
}

#[actix_rt::test]
async fn wss_echoes_every_size_with_a_pem_root_certificate() {
    let (addr, certified) = tls_server().await;
    let (actor, mut rx) = events();
    let (_addr, conn) = ws::Client::new(&format!("wss://localhost:{}/secure", addr.port()))
        .unwrap()
        .root_certificate_pem(certified.cert.pem())
        .connect_with_conn(actor)
        .await
        .unwrap();
    opened(&mut rx).await;
    echo_all_sizes(&conn, &mut rx).await;
    conn.close(CloseCode::NORMAL, "").into_result().unwrap();
    let close = closed(&mut rx).await;
    assert_eq!((close.code, close.was_clean), (CloseCode::NORMAL, true));
    ends(&mut rx).await;
}

#[actix_rt::test]
async fn wss_connects_to_an_ip_address_with_a_der_root_or_a_whole_tls_config() {
    let (addr, certified) = tls_server().await;
    let der = certified.cert.der().to_vec();
    let (actor, mut rx) = events();
    let (_addr, conn) = ws::Client::new(&format!("wss://{addr}/"))
        .unwrap()
        .root_certificate_der(der.clone())
        .connect_with_conn(actor)
        .await
        .unwrap();
    opened(&mut rx).await;
    conn.send_text("over tls").into_result().unwrap();
    assert!(matches!(next(&mut rx).await, Ev::Message(ws::Message::Text(t)) if &*t == "over tls"));

    let mut roots = rustls::RootCertStore::empty();
    roots.add(der.into()).unwrap();
    let config = rustls::ClientConfig::builder_with_provider(ws::tls::crypto_provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let (actor, mut rx) = events();
    let (_addr, conn) = ws::Client::new(&format!("wss://localhost:{}/", addr.port()))
        .unwrap()
        .tls_config(Arc::new(config))
        .connect_with_conn(actor)
        .await
        .unwrap();
    opened(&mut rx).await;
    conn.send_binary([1u8, 2, 3]).into_result().unwrap();
    assert!(
        matches!(next(&mut rx).await, Ev::Message(ws::Message::Binary(b)) if b[..] == [1, 2, 3])
    );
}

// ----- the request on the wire -----

#[actix_rt::test]
async fn request_has_host_with_port_target_query_options_and_a_fresh_key() {
    let (tx, mut heads) = mpsc::unbounded_channel();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        for _ in 0..2 {
            let (mut tcp, _) = listener.accept().await.unwrap();
            let head = read_request(&mut tcp).await;
            tx.send(head).unwrap();
            tcp.write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
                .await
                .unwrap();
        }
    });
    let client = ws::Client::new(&format!("ws://127.0.0.1:{}/a/b?room=1&x=%20", addr.port()))
        .unwrap()
        .protocols(["v2", "v1"])
        .origin("https://example.com")
        .header("Authorization", "Bearer t0k3n");
    for _ in 0..2 {
        let err = fails(client.clone()).await;
        assert!(
            matches!(err, ClientError::Status { status: 404, .. }),
            "{err:?}"
        );
    }
    let first = heads.recv().await.unwrap();
    let second = heads.recv().await.unwrap();
    let key = header_of(&first, "sec-websocket-key").unwrap();
    let lines: Vec<&str> = first.split("\r\n").collect();
    assert_eq!(
        lines,
        [
            "GET /a/b?room=1&x=%20 HTTP/1.1",
            &format!("Host: 127.0.0.1:{}", addr.port()),
            "Upgrade: websocket",
            "Connection: Upgrade",
            &format!("Sec-WebSocket-Key: {key}"),
            "Sec-WebSocket-Version: 13",
            "Sec-WebSocket-Protocol: v2, v1",
            "Origin: https://example.com",
            "Authorization: Bearer t0k3n",
            "",
            "",
        ]
    );
    use base64::Engine;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(&key)
        .unwrap();
    assert_eq!(decoded.len(), 16, "RFC 6455 §4.1: a 16-byte key");
    assert_ne!(
        header_of(&second, "sec-websocket-key").unwrap(),
        key,
        "a fresh key per connection"
    );
}

#[actix_rt::test]
async fn ipv6_literal_connects_with_a_bracketed_host_header() {
    let listener = match TcpListener::bind("[::1]:0").await {
        Ok(listener) => listener,
        Err(err) => panic!("IPv6 loopback is needed for this test: {err}"),
    };
    let addr = listener.local_addr().unwrap();
    let (tx, mut hosts) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let (mut tcp, _) = listener.accept().await.unwrap();
        let head = read_request(&mut tcp).await;
        tx.send(header_of(&head, "host").unwrap()).unwrap();
        tcp.write_all(switching(&head, "").as_bytes())
            .await
            .unwrap();
        tcp.write_all(&server_frame(0x1, b"v6")).await.unwrap();
        linger(&mut tcp).await;
    });
    let (actor, mut rx) = events();
    ws::Client::new(&format!("ws://[::1]:{}/", addr.port()))
        .unwrap()
        .connect(actor)
        .await
        .unwrap();
    assert_eq!(
        hosts.recv().await.unwrap(),
        format!("[::1]:{}", addr.port())
    );
    opened(&mut rx).await;
    assert!(matches!(next(&mut rx).await, Ev::Message(ws::Message::Text(t)) if &*t == "v6"));
}

#[actix_rt::test]
async fn frames_in_the_same_read_as_the_response_arrive_after_open() {
    let addr = raw_server(|mut tcp, head| async move {
        let mut bytes = switching(&head, "").into_bytes();
        bytes.extend(server_frame(0x1, b"first"));
        bytes.extend(server_frame(0x2, b"\x00\x01"));
        tcp.write_all(&bytes).await.unwrap();
        linger(&mut tcp).await;
    })
    .await;
    let (actor, mut rx) = events();
    to(addr).connect(actor).await.unwrap();
    opened(&mut rx).await;
    assert!(matches!(next(&mut rx).await, Ev::Message(ws::Message::Text(t)) if &*t == "first"));
    assert!(matches!(next(&mut rx).await, Ev::Message(ws::Message::Binary(b)) if b[..] == [0, 1]));
}

// RFC 6455 §5.3: every client frame is masked, with a fresh key.
#[actix_rt::test]
async fn client_frames_are_masked_with_fresh_keys_on_the_wire() {
    let (tx, mut frames) = mpsc::unbounded_channel();
    let addr = raw_server(move |mut tcp, head| async move {
        tcp.write_all(switching(&head, "").as_bytes())
            .await
            .unwrap();
        let mut wire = Vec::new();
        let mut buf = [0u8; 256];
        // Three 5-byte text frames: 2 header + 4 key + 5 payload bytes each.
        while wire.len() < 33 {
            let n = tcp.read(&mut buf).await.unwrap();
            assert!(n > 0);
            wire.extend_from_slice(&buf[..n]);
        }
        tx.send(wire).unwrap();
    })
    .await;
    let (actor, mut rx) = events();
    let (_addr, conn) = to(addr).connect_with_conn(actor).await.unwrap();
    opened(&mut rx).await;
    for text in ["one..", "two..", "three"] {
        conn.send_text(text).into_result().unwrap();
    }
    let wire = frames.recv().await.unwrap();
    let mut keys = Vec::new();
    for (i, text) in ["one..", "two..", "three"].iter().enumerate() {
        let frame = &wire[i * 11..(i + 1) * 11];
        assert_eq!(frame[..2], [0x81, 0x85], "FIN, text, MASK bit, length 5");
        let key = &frame[2..6];
        let payload: Vec<u8> = frame[6..]
            .iter()
            .enumerate()
            .map(|(j, b)| b ^ key[j % 4])
            .collect();
        assert_eq!(payload, text.as_bytes());
        keys.push(key.to_vec());
    }
    keys.dedup();
    assert_eq!(keys.len(), 3, "a fresh masking key per frame");
}

// ----- closing (RFC 6455 §7.1.1: the client waits for the server to close TCP) ----

#[actix_rt::test]
async fn after_its_close_the_client_waits_for_the_server_to_close_tcp() {
    let (tx, mut report) = mpsc::unbounded_channel();
    let addr = raw_server(move |mut tcp, head| async move {
        tcp.write_all(switching(&head, "").as_bytes())
            .await
            .unwrap();
        let mut core = server_core();
        match client_event(&mut tcp, &mut core).await {
            Some(Event::Close(close)) => tx.send(format!("close {}", close.code.0)).unwrap(),
            other => panic!("expected the client's Close, got {other:?}"),
        }
        // The core queued the answering Close (code echoed).
        let answer = core.take_output();
        tcp.write_all(&answer).await.unwrap();
        // The client must not close TCP first.
        let early = tokio::time::timeout(Duration::from_millis(300), tcp.read(&mut [0; 16])).await;
        tx.send(format!("client closed first: {}", early.is_ok()))
            .unwrap();
        drop(tcp);
    })
    .await;
    let (actor, mut rx) = events();
    let (_addr, conn) = to(addr).connect_with_conn(actor).await.unwrap();
    opened(&mut rx).await;
    conn.close(CloseCode::NORMAL, "bye").into_result().unwrap();
    assert_eq!(report.recv().await.unwrap(), "close 1000");
    assert_eq!(report.recv().await.unwrap(), "client closed first: false");
    let close = closed(&mut rx).await;
    assert_eq!((close.code, close.was_clean), (CloseCode::NORMAL, true));
    ends(&mut rx).await;
}

#[actix_rt::test]
async fn a_server_that_never_closes_tcp_is_cut_off_after_the_close_timeout() {
    let (tx, mut report) = mpsc::unbounded_channel();
    let addr = raw_server(move |mut tcp, head| async move {
        tcp.write_all(switching(&head, "").as_bytes())
            .await
            .unwrap();
        let mut core = server_core();
        assert!(matches!(
            client_event(&mut tcp, &mut core).await,
            Some(Event::Close(_))
        ));
        tcp.write_all(&core.take_output()).await.unwrap();
        let start = Instant::now();
        // Keeps TCP open: the client closes it when its close timeout runs out.
        let eof = client_event(&mut tcp, &mut core).await;
        tx.send((eof.is_none(), start.elapsed())).unwrap();
    })
    .await;
    let (actor, mut rx) = events();
    let (_addr, conn) = to(addr)
        .close_timeout(Duration::from_millis(300))
        .connect_with_conn(actor)
        .await
        .unwrap();
    opened(&mut rx).await;
    conn.close(CloseCode::NORMAL, "").into_result().unwrap();
    let (eof, waited) = report.recv().await.unwrap();
    assert!(eof, "the client closed TCP");
    assert!(
        waited >= Duration::from_millis(200) && waited < Duration::from_secs(3),
        "after about the close timeout: {waited:?}"
    );
    let close = closed(&mut rx).await;
    assert_eq!(close.code, CloseCode::NORMAL);
    ends(&mut rx).await;
}

// RFC 6455 §5.1: "A client MUST close a connection if it detects a masked frame."
#[actix_rt::test]
async fn masked_server_frame_gives_error_then_close_1002() {
    let (tx, mut report) = mpsc::unbounded_channel();
    let addr = raw_server(move |mut tcp, head| async move {
        let mut bytes = switching(&head, "").into_bytes();
        bytes.extend(server_frame(0x1, b"fine"));
        // A masked text frame "hi", key 1 2 3 4.
        bytes.extend([0x81, 0x82, 1, 2, 3, 4, b'h' ^ 1, b'i' ^ 2]);
        tcp.write_all(&bytes).await.unwrap();
        let mut core = server_core();
        let first = client_event(&mut tcp, &mut core).await;
        let eof = client_event(&mut tcp, &mut core).await;
        tx.send((first, eof)).unwrap();
    })
    .await;
    let (actor, mut rx) = events();
    to(addr).connect(actor).await.unwrap();
    opened(&mut rx).await;
    assert!(matches!(next(&mut rx).await, Ev::Message(ws::Message::Text(t)) if &*t == "fine"));
    match next(&mut rx).await {
        Ev::Error(ws::Error::Protocol(ProtocolError::MaskedFrameFromServer)) => {}
        other => panic!("expected the masked-frame error, saw {other:?}"),
    }
    let close = closed(&mut rx).await;
    assert_eq!(
        (close.code, close.was_clean),
        (CloseCode::PROTOCOL_ERROR, false)
    );
    ends(&mut rx).await;
    let (first, eof) = report.recv().await.unwrap();
    match first {
        Some(Event::Close(close)) => assert_eq!(close.code, CloseCode::PROTOCOL_ERROR),
        other => panic!("expected the client's Close 1002 on the wire, got {other:?}"),
    }
    assert!(eof.is_none(), "then the client closed TCP");
}

#[actix_rt::test]
async fn tcp_dropped_by_the_server_gives_close_1006_and_no_error() {
    let addr = raw_server(|mut tcp, head| async move {
        tcp.write_all(switching(&head, "").as_bytes())
            .await
            .unwrap();
    })
    .await;
    let (actor, mut rx) = events();
    to(addr).connect(actor).await.unwrap();
    opened(&mut rx).await;
    let close = closed(&mut rx).await;
    assert_eq!((close.code, close.was_clean), (CloseCode::ABNORMAL, false));
    ends(&mut rx).await;
}

// ----- the connection's options -----

#[actix_rt::test]
async fn keepalive_pings_then_the_idle_timeout_fails_with_1001() {
    let (tx, mut report) = mpsc::unbounded_channel();
    let addr = raw_server(move |mut tcp, head| async move {
        tcp.write_all(switching(&head, "").as_bytes())
            .await
            .unwrap();
        // Silent: the client's frames are read, never answered.
        let mut core = server_core();
        while let Some(event) = client_event(&mut tcp, &mut core).await {
            tx.send(event).unwrap();
        }
    })
    .await;
    let (actor, mut rx) = events();
    let start = Instant::now();
    to(addr)
        .ping_interval(Some(Duration::from_millis(100)))
        .idle_timeout(Some(Duration::from_millis(400)))
        .connect(actor)
        .await
        .unwrap();
    opened(&mut rx).await;
    match next(&mut rx).await {
        Ev::Error(ws::Error::IdleTimeout(_)) => {}
        other => panic!("expected the idle timeout, saw {other:?}"),
    }
    let close = closed(&mut rx).await;
    assert_eq!(close.code, CloseCode::GOING_AWAY);
    let waited = start.elapsed();
    assert!(
        waited >= Duration::from_millis(400) && waited < Duration::from_secs(3),
        "{waited:?}"
    );
    ends(&mut rx).await;
    assert!(
        matches!(report.recv().await, Some(Event::Ping(_))),
        "a keep-alive ping first"
    );
    let mut last = None;
    while let Some(event) = report.recv().await {
        last = Some(event);
    }
    match last {
        Some(Event::Close(close)) => assert_eq!(close.code, CloseCode::GOING_AWAY),
        other => panic!("expected the client's Close 1001 last, got {other:?}"),
    }
}

#[actix_rt::test]
async fn a_frame_past_max_length_fails_with_1009_before_its_payload() {
    let addr = raw_server(|mut tcp, head| async move {
        let mut bytes = switching(&head, "").into_bytes();
        // A binary frame header declaring 200 bytes, and only 10 of them.
        bytes.extend([0x82, 126, 0, 200]);
        bytes.extend([0u8; 10]);
        tcp.write_all(&bytes).await.unwrap();
        linger(&mut tcp).await;
    })
    .await;
    let (actor, mut rx) = events();
    to(addr).max_length(100).connect(actor).await.unwrap();
    opened(&mut rx).await;
    match next(&mut rx).await {
        Ev::Error(err) => {
            assert!(matches!(err, ws::Error::Capacity(_)), "{err:?}");
            assert_eq!(err.close_code(), CloseCode::MESSAGE_TOO_BIG);
        }
        other => panic!("expected the limit's error, saw {other:?}"),
    }
    assert_eq!(closed(&mut rx).await.code, CloseCode::MESSAGE_TOO_BIG);
    ends(&mut rx).await;
}

// ----- every failure kind -----

#[actix_rt::test]
async fn a_name_under_invalid_fails_with_dns_at_once() {
    let start = Instant::now();
    let err = fails(ws::Client::new("ws://nonexistent.invalid/").unwrap()).await;
    match &err {
        ClientError::Dns { host, source } => {
            assert_eq!(host, "nonexistent.invalid");
            assert_eq!(source.kind(), std::io::ErrorKind::NotFound);
        }
        other => panic!("expected Dns, got {other:?}"),
    }
    assert!(err.is_transient());
    assert!(
        start.elapsed() < Duration::from_secs(1),
        "{:?}",
        start.elapsed()
    );
}

#[actix_rt::test]
async fn a_closed_port_fails_with_connect_refused() {
    let addr = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    let err = fails(to(addr)).await;
    match err {
        ClientError::Connect {
            addr: tried,
            source,
        } => {
            assert_eq!(tried, addr);
            assert_eq!(source.kind(), std::io::ErrorKind::ConnectionRefused);
        }
        other => panic!("expected Connect, got {other:?}"),
    }
}

#[actix_rt::test]
async fn a_full_accept_queue_fails_with_the_connect_timeout() {
    // A listener with a backlog of 0 that never accepts: once its queue is full,
    // Linux drops further SYNs and the connection attempt hangs.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let listener = socket.listen(0).unwrap();
    let addr = listener.local_addr().unwrap();
    let mut held = Vec::new();
    let mut full = false;
    for _ in 0..16 {
        match tokio::time::timeout(Duration::from_millis(200), TcpStream::connect(addr)).await {
            Ok(Ok(stream)) => held.push(stream),
            Ok(Err(err)) => panic!("connect failed: {err}"),
            Err(_) => {
                full = true;
                break;
            }
        }
    }
    assert!(full, "the accept queue never filled");
    let start = Instant::now();
    let err = fails(to(addr).connect_timeout(Duration::from_millis(300))).await;
    assert!(
        matches!(err, ClientError::Timeout(Timeout::Connect)),
        "{err:?}"
    );
    let waited = start.elapsed();
    assert!(
        waited >= Duration::from_millis(300) && waited < Duration::from_secs(3),
        "{waited:?}"
    );
    drop(listener);
}

#[actix_rt::test]
async fn a_server_that_never_answers_fails_with_the_handshake_timeout() {
    let addr = raw_server(|tcp, _| async move {
        tokio::time::sleep(Duration::from_secs(5)).await;
        drop(tcp);
    })
    .await;
    let start = Instant::now();
    let err = fails(to(addr).handshake_timeout(Duration::from_millis(300))).await;
    assert!(
        matches!(err, ClientError::Timeout(Timeout::Handshake)),
        "{err:?}"
    );
    let waited = start.elapsed();
    assert!(
        waited >= Duration::from_millis(300) && waited < Duration::from_secs(3),
        "{waited:?}"
    );
}

#[actix_rt::test]
async fn a_non_101_status_fails_with_the_status_and_its_headers() {
    let addr = answering(
        "HTTP/1.1 403 Forbidden\r\nContent-Length: 7\r\nX-Reason: no entry\r\n\r\nnope!\r\n",
    )
    .await;
    let err = fails(to(addr)).await;
    match &err {
        ClientError::Status {
            status,
            headers,
            body,
        } => {
            assert_eq!(*status, 403);
            assert_eq!(body, "nope!\r\n");
            assert_eq!(
                headers,
                &[
                    ("Content-Length".to_owned(), "7".to_owned()),
                    ("X-Reason".to_owned(), "no entry".to_owned())
                ]
            );
        }
        other => panic!("expected Status, got {other:?}"),
    }
    assert!(!err.is_transient());
    assert_eq!(err.to_string(), "server answered with status 403, not 101");
}

#[actix_rt::test]
async fn a_refusal_body_written_after_its_head_is_read_whole() {
    let addr = raw_server(|mut tcp, _| async move {
        tcp.write_all(b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 10\r\n\r\n")
            .await
            .unwrap();
        tcp.flush().await.unwrap();
        tcp.write_all(b"bad token\n").await.unwrap();
        linger(&mut tcp).await;
    })
    .await;
    match fails(to(addr)).await {
        ClientError::Status {
            status: 401, body, ..
        } => assert_eq!(body, "bad token\n"),
        other => panic!("expected Status 401, got {other:?}"),
    }
}

#[actix_rt::test]
async fn a_chunked_refusal_body_is_decoded() {
    let addr = answering(
        "HTTP/1.1 429 Too Many Requests\r\nTransfer-Encoding: chunked\r\n\r\n\
         5\r\nslow \r\n5;x=y\r\ndown!\r\n0\r\n\r\n",
    )
    .await;
    match fails(to(addr)).await {
        ClientError::Status {
            status: 429, body, ..
        } => assert_eq!(body, "slow down!"),
        other => panic!("expected Status 429, got {other:?}"),
    }
}

#[actix_rt::test]
async fn a_refusal_body_is_kept_to_its_first_4_kib() {
    let long: &'static str = Box::leak(
        format!(
            "HTTP/1.1 400 Bad Request\r\nContent-Length: 10000\r\n\r\n{}",
            "x".repeat(10000)
        )
        .into_boxed_str(),
    );
    let addr = answering(long).await;
    match fails(to(addr)).await {
        ClientError::Status { body, .. } => assert_eq!(body, "x".repeat(4096)),
        other => panic!("expected Status 400, got {other:?}"),
    }
}

#[actix_rt::test]
async fn the_standalone_servers_refusal_reaches_the_client_with_its_reason() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let server = ws::Server::new()
        .listen_on(listener, 1, |req: &ws::Request| {
            match req.query_param("token").as_deref() {
                Some("secret") => Ok(events().0),
                _ => Err(ws::Refuse::new(401, "bad token")),
            }
        })
        .unwrap();
    let handle = server.handle();
    actix_rt::spawn(server);
    match fails(ws::Client::new(&format!("ws://{addr}/?token=guess")).unwrap()).await {
        ClientError::Status {
            status: 401, body, ..
        } => assert_eq!(body, "bad token\n"),
        other => panic!("expected Status 401, got {other:?}"),
    }
    handle.stop(false).await;
}

#[actix_rt::test]
async fn a_wrong_accept_key_fails_the_handshake() {
    let addr = answering(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n",
    )
    .await;
    let err = fails(to(addr)).await;
    assert!(
        matches!(
            err,
            ClientError::Handshake(HandshakeError::InvalidAcceptKey)
        ),
        "{err:?}"
    );
}

#[actix_rt::test]
async fn an_unoffered_subprotocol_or_extension_fails_the_handshake() {
    let addr = raw_server(|mut tcp, head| async move {
        let answer = switching(&head, "Sec-WebSocket-Protocol: other\r\n");
        tcp.write_all(answer.as_bytes()).await.unwrap();
        linger(&mut tcp).await;
    })
    .await;
    let err = fails(to(addr).protocols(["chat"])).await;
    assert!(
        matches!(&err, ClientError::Handshake(HandshakeError::UnofferedProtocol(p)) if p == "other"),
        "{err:?}"
    );
    let addr = raw_server(|mut tcp, head| async move {
        let answer = switching(&head, "Sec-WebSocket-Extensions: permessage-deflate\r\n");
        tcp.write_all(answer.as_bytes()).await.unwrap();
        linger(&mut tcp).await;
    })
    .await;
    let err = fails(to(addr)).await;
    assert!(
        matches!(&err, ClientError::Handshake(HandshakeError::UnofferedExtension(e)) if e == "permessage-deflate"),
        "{err:?}"
    );
}

#[actix_rt::test]
async fn a_server_closing_during_the_handshake_fails_with_unexpected_eof() {
    let addr = answering("HTTP/1.1 101 Switching").await;
    let err = fails(to(addr)).await;
    match err {
        ClientError::Io(source) => assert_eq!(source.kind(), std::io::ErrorKind::UnexpectedEof),
        other => panic!("expected Io, got {other:?}"),
    }
}

#[actix_rt::test]
async fn an_endless_response_head_fails_at_the_size_limit() {
    let addr = raw_server(|mut tcp, _| async move {
        let _ = tcp.write_all(b"HTTP/1.1 101 Switching Protocols\r\n").await;
        let line = format!("X-Filler: {}\r\n", "a".repeat(1000));
        for _ in 0..64 {
            if tcp.write_all(line.as_bytes()).await.is_err() {
                return;
            }
        }
        linger(&mut tcp).await;
    })
    .await;
    let err = fails(to(addr)).await;
    assert!(
        matches!(err, ClientError::Handshake(HandshakeError::HeadTooLarge)),
        "{err:?}"
    );
}

#[actix_rt::test]
async fn an_untrusted_certificate_fails_with_a_tls_error() {
    let (addr, _certified) = tls_server().await;
    let err = fails(ws::Client::new(&format!("wss://localhost:{}/", addr.port())).unwrap()).await;
    assert!(
        matches!(
            err,
            ClientError::Tls(rustls::Error::InvalidCertificate(
                rustls::CertificateError::UnknownIssuer
            ))
        ),
        "{err:?}"
    );
    assert!(!err.is_transient());
}

#[actix_rt::test]
async fn invalid_options_and_roots_fail_before_any_io() {
    let err = fails(
        ws::Client::new("ws://127.0.0.1:9/")
            .unwrap()
            .header("Upgrade", "h2c"),
    )
    .await;
    assert!(
        matches!(&err, ClientError::Request(BuildError::ReservedHeader(h)) if h == "Upgrade"),
        "{err:?}"
    );
    let err = fails(
        ws::Client::new("ws://127.0.0.1:9/")
            .unwrap()
            .protocols(["a b"]),
    )
    .await;
    assert!(
        matches!(&err, ClientError::Request(BuildError::InvalidProtocol(p)) if p == "a b"),
        "{err:?}"
    );
    let err = fails(
        ws::Client::new("wss://127.0.0.1:9/")
            .unwrap()
            .root_certificate_pem("not a certificate"),
    )
    .await;
    assert!(matches!(err, ClientError::RootCertificate(_)), "{err:?}");
    let err = ws::Client::new("http://example.com/").unwrap_err();
    assert!(
        matches!(&err, ClientError::Url(UrlError::UnsupportedScheme(s)) if s == "http"),
        "{err:?}"
    );
}

// ----- reconnect -----

fn quick_policy(max_attempts: Option<u32>) -> ReconnectPolicy {
    ReconnectPolicy {
        initial: Duration::from_millis(20),
        max: Duration::from_millis(100),
        factor: 2.0,
        jitter: 0.5,
        max_attempts,
    }
}

#[actix_rt::test]
async fn reconnects_after_the_server_drops_and_the_actor_sees_open_close_open() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, mut accepted) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        // The first connection is dropped right after the handshake; the second
        // says hello and stays until the client closes.
        for n in 0..2 {
            let (mut tcp, _) = listener.accept().await.unwrap();
            let head = read_request(&mut tcp).await;
            tcp.write_all(switching(&head, "").as_bytes())
                .await
                .unwrap();
            tx.send(n).unwrap();
            if n == 1 {
                tcp.write_all(&server_frame(0x1, b"again")).await.unwrap();
                let mut core = server_core();
                assert!(matches!(
                    client_event(&mut tcp, &mut core).await,
                    Some(Event::Close(_))
                ));
                tcp.write_all(&core.take_output()).await.unwrap();
            }
        }
        // No third connection: the client's own close is final.
        let third = tokio::time::timeout(Duration::from_millis(500), listener.accept()).await;
        tx.send(if third.is_ok() { 99 } else { 2 }).unwrap();
    });
    let (mut actor, mut rx) = events();
    actor.stop_on_close = false;
    let addr_actor = to(addr)
        .reconnect(quick_policy(None))
        .connect(actor)
        .await
        .unwrap();
    let first = opened(&mut rx).await;
    let close = closed(&mut rx).await;
    assert_eq!(close.code, CloseCode::ABNORMAL);
    assert!(
        first.send_text("late").error().is_some(),
        "the old Conn is closed"
    );
    let second = opened(&mut rx).await;
    assert!(matches!(next(&mut rx).await, Ev::Message(ws::Message::Text(t)) if &*t == "again"));
    second
        .close(CloseCode::NORMAL, "done")
        .into_result()
        .unwrap();
    let close = closed(&mut rx).await;
    assert_eq!((close.code, close.was_clean), (CloseCode::NORMAL, true));
    ends(&mut rx).await;
    assert!(!addr_actor.connected(), "the client stopped its actor");
    assert_eq!(accepted.recv().await, Some(0));
    assert_eq!(accepted.recv().await, Some(1));
    assert_eq!(
        accepted.recv().await,
        Some(2),
        "no reconnect after the user's close"
    );
}

#[actix_rt::test]
async fn reconnecting_gives_up_after_max_attempts_and_stops_the_actor() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (mut tcp, _) = listener.accept().await.unwrap();
        let head = read_request(&mut tcp).await;
        tcp.write_all(switching(&head, "").as_bytes())
            .await
            .unwrap();
        // Gone: the connection and the port (attempts are refused).
    });
    let (mut actor, mut rx) = events();
    actor.stop_on_close = false;
    let start = Instant::now();
    let addr_actor = to(addr)
        .reconnect(quick_policy(Some(3)))
        .connect(actor)
        .await
        .unwrap();
    opened(&mut rx).await;
    assert_eq!(closed(&mut rx).await.code, CloseCode::ABNORMAL);
    ends(&mut rx).await;
    assert!(!addr_actor.connected());
    // Three attempts waited at most 20 + 40 + 80 ms.
    assert!(
        start.elapsed() < Duration::from_secs(3),
        "{:?}",
        start.elapsed()
    );
}

#[actix_rt::test]
async fn without_a_policy_a_dropped_connection_stops_the_actor() {
    let addr = raw_server(|mut tcp, head| async move {
        tcp.write_all(switching(&head, "").as_bytes())
            .await
            .unwrap();
    })
    .await;
    let (mut actor, mut rx) = events();
    actor.stop_on_close = false;
    let addr_actor = to(addr).connect(actor).await.unwrap();
    opened(&mut rx).await;
    assert_eq!(closed(&mut rx).await.code, CloseCode::ABNORMAL);
    ends(&mut rx).await;
    assert!(!addr_actor.connected());
}

// ----- settings -----

#[test]
fn config_client_toml_lists_the_defaults() {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/config/client.toml"))
        .unwrap();
    let settings: ws::Settings = toml::from_str(&text).unwrap();
    let mut defaults = ws::Settings::default();
    defaults.client.url = "ws://127.0.0.1:9001/".into();
    assert_eq!(settings, defaults);
}

#[test]
fn settings_from_toml_reach_the_client() {
    let settings: ws::Settings = toml::from_str(
        r#"
        [protocol]
        max_message_size = 4096
        [client]
        url = "wss://example.com:8443/feed?v=2"
        connect_timeout_ms = 1500
        protocols = ["feed.v2"]
        origin = "https://example.com"
        headers = { Authorization = "Bearer x" }
        [connection]
        handshake_timeout_ms = 2500
        ping_interval_ms = 0
        [client.reconnect]
        initial_ms = 100
        max_ms = 2000
        factor = 1.5
        jitter = 0.0
        max_attempts = 0
        "#,
    )
    .unwrap();
    let client = ws::Client::with_settings(settings).unwrap();
    assert_eq!(client.url().host_header(), "example.com:8443");
    assert_eq!(client.url().target(), "/feed?v=2");
    let s = client.settings();
    assert_eq!(s.client.connect_timeout, Duration::from_millis(1500));
    assert_eq!(s.protocol.max_message_size, 4096);
    assert_eq!(s.client.protocols, ["feed.v2"]);
    assert_eq!(s.client.origin.as_deref(), Some("https://example.com"));
    assert_eq!(s.client.headers["Authorization"], "Bearer x");
    assert_eq!(s.connection.handshake_timeout, Duration::from_millis(2500));
    assert_eq!(s.connection.ping_interval, None);
    assert_eq!(
        s.client.reconnect,
        Some(ReconnectPolicy {
            initial: Duration::from_millis(100),
            max: Duration::from_secs(2),
            factor: 1.5,
            jitter: 0.0,
            max_attempts: None,
        })
    );
    let unknown = toml::from_str::<ws::Settings>("[client]\nurll = \"ws://x/\"");
    assert!(unknown.is_err(), "unknown keys are refused");
    let err = ws::Client::with_settings(ws::Settings::default()).unwrap_err();
    assert!(
        matches!(err, ClientError::Url(UrlError::MissingScheme)),
        "{err:?}"
    );
}

// ----- permessage-deflate (RFC 7692) -----

// RFC 7692 §5 and §7.2.3.1: the client offers what its configuration says, accepts
// the server's answer, inflates a compressed frame ("Hello", the RFC's example
// bytes) and sends its own messages compressed, RSV1 on the frame.
#[actix_rt::test]
async fn deflate_is_offered_negotiated_and_used_both_ways() {
    let (request_tx, request_rx) = tokio::sync::oneshot::channel();
    let (frame_tx, frame_rx) = tokio::sync::oneshot::channel();
    let addr = raw_server(|mut tcp, head| async move {
        let mut bytes = switching(
            &head,
            "Sec-WebSocket-Extensions: permessage-deflate; server_max_window_bits=12\r\n",
        )
        .into_bytes();
        bytes.extend_from_slice(&[0xc1, 0x07, 0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00]);
        tcp.write_all(&bytes).await.unwrap();
        request_tx.send(head).unwrap();
        // The client's first frame, unmasked with its key.
        let mut header = [0u8; 6];
        tcp.read_exact(&mut header).await.unwrap();
        let mut payload = vec![0u8; usize::from(header[1] & 0x7f)];
        tcp.read_exact(&mut payload).await.unwrap();
        for (i, b) in payload.iter_mut().enumerate() {
            *b ^= header[2 + i % 4];
        }
        frame_tx.send((header[0], payload)).unwrap();
        linger(&mut tcp).await;
    })
    .await;
    let (actor, mut rx) = events();
    let (_addr, conn) = to(addr)
        .deflate(ws::DeflateSettings::on())
        .connect_with_conn(actor)
        .await
        .unwrap();
    let head = request_rx.await.unwrap();
    assert_eq!(
        header_of(&head, "sec-websocket-extensions").as_deref(),
        // The browsers' offer (any window); the server may still answer a window
        // it chose (RFC 7692 §7.1.2.1: the response "MAY include" it).
        Some("permessage-deflate; client_max_window_bits")
    );
    opened(&mut rx).await;
    assert!(matches!(next(&mut rx).await, Ev::Message(ws::Message::Text(t)) if &*t == "Hello"));
    conn.send_text("Hello").into_result().unwrap();
    let (first_byte, payload) = frame_rx.await.unwrap();
    assert_eq!(first_byte, 0xc1, "FIN, RSV1, text");
    // The client's compressed "Hello" inflates back (RFC 7692 §7.2.2: with the
    // trailing 00 00 ff ff restored).
    let mut inflated = Vec::new();
    let mut input = payload.clone();
    input.extend_from_slice(&[0x00, 0x00, 0xff, 0xff]);
    flate_inflate(&input, &mut inflated);
    assert_eq!(inflated, b"Hello");
}

/// Inflate a client's compressed payload (`input`, with the restored tail) into
/// `out` through a client-role core that negotiated deflate.
fn flate_inflate(input: &[u8], out: &mut Vec<u8>) {
    let mut core =
        ws::proto::Connection::new(ws::proto::Role::Client, ws::ProtocolSettings::default());
    let deflate = ws::DeflateSettings::on()
        .server_max_window_bits(15)
        .client_max_window_bits(15)
        .accept_response("permessage-deflate")
        .unwrap();
    core.set_extension(Box::new(deflate));
    core.open();
    // A server frame carrying the payload (without the restored tail), as a client
    // core reads it.
    let payload = &input[..input.len() - 4];
    let mut frame = vec![0xc1, payload.len() as u8];
    frame.extend_from_slice(payload);
    core.receive(&frame);
    while let Some(event) = core.poll_event() {
        if let Event::Message(message) = event {
            out.extend_from_slice(message.as_bytes());
        }
    }
}

// RFC 7692 §7.1: an answer the client cannot accept fails the connection: here a
// server window larger than the 12 bits we asked for.
#[actix_rt::test]
async fn a_deflate_answer_we_cannot_accept_fails_the_handshake() {
    let addr = raw_server(|mut tcp, head| async move {
        let response = switching(
            &head,
            "Sec-WebSocket-Extensions: permessage-deflate; server_max_window_bits=14\r\n",
        );
        tcp.write_all(response.as_bytes()).await.unwrap();
        linger(&mut tcp).await;
    })
    .await;
    // Larger than the window asked for (RFC 7692 §7.1.2.1).
    let config = ws::DeflateSettings::on().server_max_window_bits(12);
    match fails(to(addr).deflate(config)).await {
        ClientError::Handshake(HandshakeError::InvalidDeflateAnswer(_)) => {}
        other => panic!("expected InvalidDeflateAnswer, got {other:?}"),
    }
}

// Our client and our server, both with deflate: every size from 0 B to 1 MiB.
#[actix_rt::test]
async fn deflate_echoes_every_size_with_our_server() {
    let (addr, handle, mut seen) =
        support::listen_recorder(ws::Server::new().deflate(ws::DeflateSettings::on()));
    let (actor, mut rx) = events();
    let (_addr, conn) = to(addr)
        .deflate(ws::DeflateSettings::on())
        .connect_with_conn(actor)
        .await
        .unwrap();
    opened(&mut rx).await;
    assert_eq!(conn.extensions(), "permessage-deflate");
    match seen.recv().await {
        Some(support::Seen::Open(server_conn)) => {
            assert_eq!(server_conn.extensions(), "permessage-deflate")
        }
        other => panic!("expected the server's Open, saw {other:?}"),
    }
    echo_all_sizes(&conn, &mut rx).await;
    handle.stop(false).await;
}

// Interop: our client, deflate on, against a foreign server (python websockets,
// which accepts the offer): every size from 0 B to 1 MiB both ways.
#[actix_rt::test]
#[ignore = "needs python3 websockets; scripts/test-all.sh runs it"]
async fn deflate_echoes_every_size_with_python_websockets() {
    let (mut child, addr) = python::python_echo_server().await;
    let (actor, mut rx) = events();
    let (_addr, conn) = to(addr)
        .deflate(ws::DeflateSettings::on())
        .connect_with_conn(actor)
        .await
        .unwrap();
    opened(&mut rx).await;
    assert_eq!(conn.extensions(), "permessage-deflate");
    echo_all_sizes(&conn, &mut rx).await;
    child.kill().await.unwrap();
}
