//! A real actix-web server on 127.0.0.1:0 whose actor reports every event, and a raw
//! TCP client driven by our core, for the actor-layer tests.
#![allow(dead_code)]

use std::{net::SocketAddr, time::Duration};

use actix::prelude::*;
use actix_web::{web, App, HttpServer};
use bytes::BytesMut;
use tokio::{
    io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt},
    net::TcpStream,
    sync::mpsc,
};
use websocket_driver as ws;
use ws::proto::{apply_mask, Connection, Event, FrameHeader, OpCode, Role};

/// What the server's actor saw, in order.
#[derive(Debug)]
pub enum Seen {
    Open(ws::Conn),
    Message(ws::Message),
    Error(ws::Error),
    Close(ws::Close),
}

/// The server's actor: records events, echoes messages when `echo`.
pub struct Recorder {
    pub tx: mpsc::UnboundedSender<Seen>,
    pub conn: Option<ws::Conn>,
    pub echo: bool,
}

impl Actor for Recorder {
    type Context = Context<Self>;
}

impl Handler<ws::Open> for Recorder {
    type Result = ();
    fn handle(&mut self, open: ws::Open, _: &mut Context<Self>) {
        self.conn = Some(open.conn.clone());
        let _ = self.tx.send(Seen::Open(open.conn));
    }
}

impl Handler<ws::Message> for Recorder {
    type Result = ();
    fn handle(&mut self, msg: ws::Message, _: &mut Context<Self>) {
        if self.echo {
            if let Some(conn) = &self.conn {
                conn.send(msg.clone());
            }
        }
        let _ = self.tx.send(Seen::Message(msg));
    }
}

impl Handler<ws::Error> for Recorder {
    type Result = ();
    fn handle(&mut self, err: ws::Error, _: &mut Context<Self>) {
        let _ = self.tx.send(Seen::Error(err));
    }
}

impl Handler<ws::Close> for Recorder {
    type Result = ();
    fn handle(&mut self, close: ws::Close, ctx: &mut Context<Self>) {
        let _ = self.tx.send(Seen::Close(close));
        ctx.stop();
    }
}

pub struct TestServer {
    pub addr: SocketAddr,
    pub handle: actix_web::dev::ServerHandle,
    pub seen: mpsc::UnboundedReceiver<Seen>,
}

impl TestServer {
    /// Start a one-worker server whose route serves `server` with a `Recorder`.
    pub fn start(server: ws::Server, echo: bool) -> TestServer {
        let (tx, seen) = mpsc::unbounded_channel();
        let server = web::Data::new(server);
        let srv = HttpServer::new(move || {
            let tx = tx.clone();
            App::new()
                .app_data(server.clone())
                .default_service(web::get().to(
                    move |req: ws::Upgrade, server: web::Data<ws::Server>| {
                        let actor = Recorder {
                            tx: tx.clone(),
                            conn: None,
                            echo,
                        };
                        async move { server.start(actor, &req) }
                    },
                ))
        })
        // The setup the README asks for: the connection ends its socket itself.
        .on_connect(ws::on_connect)
        .workers(1)
        .disable_signals()
        .shutdown_timeout(1)
        .bind("127.0.0.1:0")
        .expect("bind");
        let addr = srv.addrs()[0];
        let running = srv.run();
        let handle = running.handle();
        actix_rt::spawn(running);
        TestServer { addr, handle, seen }
    }

    pub fn url(&self) -> String {
        format!("ws://{}/", self.addr)
    }

    /// The next event the actor saw, within 5 s.
    pub async fn next(&mut self) -> Seen {
        tokio::time::timeout(Duration::from_secs(5), self.seen.recv())
            .await
            .expect("timed out waiting for the actor")
            .expect("server gone")
    }

    /// Wait for Open and return its `Conn`.
    pub async fn opened(&mut self) -> ws::Conn {
        match self.next().await {
            Seen::Open(conn) => conn,
            other => panic!("expected Open, saw {other:?}"),
        }
    }
}

/// A raw client (over TCP, or any stream: TLS in tests/tls.rs): sends exact
/// bytes, decodes what comes back with our core.
pub struct RawClient<S = TcpStream> {
    pub stream: S,
    pub core: Connection,
}

/// Read an HTTP response head (up to the blank line) from `stream`, within 5 s.
pub async fn read_head<S: AsyncRead + Unpin>(stream: &mut S) -> String {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut byte))
            .await
            .expect("handshake timed out")
            .unwrap();
        assert_eq!(
            n,
            1,
            "connection closed during the handshake: {:?}",
            String::from_utf8_lossy(&head)
        );
        head.push(byte[0]);
    }
    String::from_utf8(head).unwrap()
}

impl RawClient {
    pub async fn connect(addr: SocketAddr, extra_headers: &str) -> (RawClient, String) {
        RawClient::connect_with(addr, extra_headers, None).await
    }

    /// [`connect`](Self::connect), with the socket's receive buffer set to
    /// `rcvbuf` (fixed: the kernel grows it no more), so that a client that reads
    /// nothing holds little of the server's output.
    pub async fn connect_with(
        addr: SocketAddr,
        extra_headers: &str,
        rcvbuf: Option<u32>,
    ) -> (RawClient, String) {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        if let Some(size) = rcvbuf {
            socket.set_recv_buffer_size(size).unwrap();
        }
        let mut stream = socket.connect(addr).await.expect("connect");
        stream.set_nodelay(true).unwrap();
        let request = format!(
            "GET / HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n{extra_headers}\r\n"
        );
        stream.write_all(request.as_bytes()).await.unwrap();
        let head = read_head(&mut stream).await;
        (RawClient::opened(stream), head)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> RawClient<S> {
    /// A client over `stream`, whose opening handshake is done: the core open.
    pub fn opened(stream: S) -> RawClient<S> {
        let mut core = Connection::new(Role::Client, ws::ProtocolSettings::default());
        core.open();
        assert!(matches!(core.poll_event(), Some(Event::Open)));
        RawClient { stream, core }
    }

    /// Send one frame with the given header fields, masked with a fixed key.
    pub async fn send_frame(&mut self, fin: bool, opcode: OpCode, payload: &[u8]) {
        let bytes = frame(fin, opcode, payload);
        self.stream.write_all(&bytes).await.unwrap();
    }

    pub async fn send_raw(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.unwrap();
    }

    /// The next event decoded from the server's bytes, within 5 s; `Close` once the
    /// server closed TCP.
    pub async fn next(&mut self) -> Event {
        loop {
            if let Some(event) = self.core.poll_event() {
                return event;
            }
            let mut buf = BytesMut::with_capacity(64 * 1024);
            let n = tokio::time::timeout(Duration::from_secs(5), self.stream.read_buf(&mut buf))
                .await
                .expect("timed out reading from the server")
                .unwrap_or(0);
            if n == 0 {
                self.core.receive_eof();
            } else {
                self.core.receive(&buf);
            }
        }
    }

    /// Whether the server closed TCP (reads EOF within 5 s).
    pub async fn server_closed_tcp(&mut self) -> bool {
        let mut buf = [0u8; 1024];
        loop {
            match tokio::time::timeout(Duration::from_secs(5), self.stream.read(&mut buf)).await {
                Ok(Ok(0)) | Ok(Err(_)) => return true,
                Ok(Ok(_)) => continue,
                Err(_) => return false,
            }
        }
    }
}

/// A masked frame, exactly as a client sends it.
pub fn frame(fin: bool, opcode: OpCode, payload: &[u8]) -> Vec<u8> {
    let mask = [0x12, 0x34, 0x56, 0x78];
    let header = FrameHeader {
        fin,
        rsv: 0,
        opcode,
        mask: Some(mask),
        payload_len: payload.len() as u64,
    };
    let mut out = BytesMut::new();
    header.encode_into(&mut out);
    let start = out.len();
    out.extend_from_slice(payload);
    apply_mask(&mut out[start..], mask, 0);
    out.to_vec()
}

/// Our standalone server (`Server::listen_on`) on 127.0.0.1:0, one worker, with a
/// [`Recorder`] that echoes: its address, its handle, and what its actors saw.
pub fn listen_recorder(
    server: ws::Server,
) -> (
    SocketAddr,
    actix_server::ServerHandle,
    mpsc::UnboundedReceiver<Seen>,
) {
    let (tx, seen) = mpsc::unbounded_channel();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let running = server
        .listen_on(listener, 1, move |_| {
            Ok(Recorder {
                tx: tx.clone(),
                conn: None,
                echo: true,
            })
        })
        .unwrap();
    let handle = running.handle();
    actix_rt::spawn(running);
    (addr, handle, seen)
}

/// Send 64 KiB messages on `conn` until one is refused with `Backpressure`: the
/// peer reads nothing and `max_send_buffer` bytes wait to be written (an event:
/// the refusal, not a silence). Bounded: 1,024 sends at most; a refusal for
/// another reason (the connection is closing) ends it too.
pub async fn send_until_stuck(conn: &ws::Conn) {
    let chunk = vec![7u8; 64 * 1024];
    for _ in 0..1_024 {
        match conn.send_binary(&chunk).into_result() {
            Ok(_) => tokio::task::yield_now().await,
            Err(_) => return,
        }
    }
    panic!("1,024 sends of 64 KiB and no back-pressure");
}
