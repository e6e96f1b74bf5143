//! A raw HTTP/1.1 client of Server-Sent Events over a `TcpStream` (chunked
//! transfer coding decoded, events split), and an actix-web server of a hub's
//! `ws::hub::Events` on 127.0.0.1, for `tests/sse*.rs` and `tests/backplane_sse.rs`.
#![allow(dead_code)]

use std::{
    io::{Read, Write},
    net::{SocketAddr, TcpStream},
    time::Duration,
};

use actix_web::{web, App, HttpRequest, HttpServer};
use websocket_driver as ws;

/// A server of `events` on 127.0.0.1 (`/t/{topic}/events`), stopped when dropped.
pub struct Server {
    pub addr: SocketAddr,
    handle: actix_web::dev::ServerHandle,
}

impl Drop for Server {
    fn drop(&mut self) {
        // The command is sent now; its completion is not awaited.
        drop(self.handle.stop(false));
    }
}

pub fn serve(events: ws::hub::Events) -> Server {
    serve_routes(move || {
        move |cfg: &mut web::ServiceConfig| {
            let events = events.clone();
            cfg.route(
                "/t/{topic}/events",
                web::get().to(move |req: HttpRequest, topic: web::Path<String>| {
                    let events = events.clone();
                    async move { events.respond(&req, &topic) }
                }),
            );
        }
    })
}

/// A server of the routes `make` gives (called on the server's thread, in its
/// actix system), on 127.0.0.1, one worker.
pub fn serve_routes<F, R>(make: F) -> Server
where
    F: FnOnce() -> R + Send + 'static,
    R: Fn(&mut web::ServiceConfig) + Clone + Send + 'static,
{
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        actix_rt::System::new().block_on(async move {
            let routes = make();
            let server = HttpServer::new(move || App::new().configure(routes.clone()))
                .workers(1)
                .disable_signals()
                .bind("127.0.0.1:0")
                .expect("bind");
            let addr = server.addrs()[0];
            let server = server.run();
            tx.send((addr, server.handle())).expect("test waits");
            server.await
        })
    });
    let (addr, handle) = rx.recv().expect("server started");
    Server { addr, handle }
}

/// A raw HTTP/1.1 client of one event stream.
pub struct Client {
    stream: TcpStream,
    /// Undecoded bytes (chunked transfer coding).
    raw: Vec<u8>,
    /// The decoded body not yet returned.
    body: Vec<u8>,
    /// The last chunk came: the body ended.
    ended: bool,
    pub status: u16,
    headers: Vec<(String, String)>,
}

impl Client {
    /// `GET path` with `extra` header lines (each ending in CRLF); returns once
    /// the response's head is read.
    pub fn get(addr: SocketAddr, path: &str, extra: &str) -> Client {
        Client::get_on(TcpStream::connect(addr).expect("connect"), path, extra)
    }

    /// [`get`](Self::get) on a connected `stream`.
    pub fn get_on(mut stream: TcpStream, path: &str, extra: &str) -> Client {
        // A hang guard only: every read below waits for bytes the server sends.
        stream
            .set_read_timeout(Some(Duration::from_secs(20)))
            .expect("timeout");
        write!(stream, "GET {path} HTTP/1.1\r\nHost: test\r\n{extra}\r\n").expect("request");
        let mut client = Client {
            stream,
            raw: Vec::new(),
            body: Vec::new(),
            ended: false,
            status: 0,
            headers: Vec::new(),
        };
        let end = loop {
            if let Some(at) = find(&client.raw, b"\r\n\r\n") {
                break at;
            }
            client.fill();
        };
        let head = String::from_utf8(client.raw[..end].to_vec()).expect("utf-8 head");
        client.raw.drain(..end + 4);
        let mut lines = head.split("\r\n");
        let status_line = lines.next().expect("status line");
        client.status = status_line
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .expect("status");
        client.headers = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
            .collect();
        client
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn fill(&mut self) {
        let mut buf = [0u8; 8192];
        let n = self.stream.read(&mut buf).expect("read (hang guard)");
        assert!(n > 0, "the server closed the stream");
        self.raw.extend_from_slice(&buf[..n]);
    }

    /// Decode the whole chunks received.
    pub fn dechunk(&mut self) {
        while let Some(line_end) = find(&self.raw, b"\r\n") {
            let size = std::str::from_utf8(&self.raw[..line_end]).expect("chunk size");
            let size = usize::from_str_radix(size, 16).expect("hex chunk size");
            if size == 0 {
                self.ended = true;
            }
            let start = line_end + 2;
            if self.raw.len() < start + size + 2 {
                return;
            }
            self.body.extend_from_slice(&self.raw[start..start + size]);
            self.raw.drain(..start + size + 2);
        }
    }

    /// The next event block (its lines, without the blank line ending it).
    pub fn event(&mut self) -> String {
        loop {
            self.dechunk();
            if let Some(at) = find(&self.body, b"\n\n") {
                let block = String::from_utf8(self.body[..at].to_vec()).expect("utf-8 event");
                self.body.drain(..at + 2);
                return block;
            }
            self.fill();
        }
    }

    /// Every event until the body ends.
    pub fn events_to_end(&mut self) -> Vec<String> {
        let mut events = Vec::new();
        loop {
            self.dechunk();
            while let Some(at) = find(&self.body, b"\n\n") {
                events.push(String::from_utf8(self.body[..at].to_vec()).expect("utf-8 event"));
                self.body.drain(..at + 2);
            }
            if self.ended {
                assert!(self.body.is_empty(), "a whole event last");
                return events;
            }
            self.fill();
        }
    }

    /// The body of a response with a length (an error).
    pub fn text_body(&mut self) -> String {
        let len: usize = self
            .header("content-length")
            .and_then(|v| v.parse().ok())
            .expect("content-length");
        while self.raw.len() < len {
            self.fill();
        }
        String::from_utf8(self.raw[..len].to_vec()).expect("utf-8 body")
    }
}

pub fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

pub fn message(epoch: &str, offset: u64, data: &str) -> String {
    let lines: Vec<String> = data.split('\n').map(|l| format!("data: {l}")).collect();
    format!("id: {epoch}:{offset}\nevent: message\n{}", lines.join("\n"))
}

/// The offset in an event's `id:` line.
pub fn offset_of(event: &str) -> u64 {
    let id = event.lines().next().and_then(|l| l.strip_prefix("id: "));
    let offset = id.and_then(|id| id.rsplit_once(':')).map(|(_, o)| o);
    offset.and_then(|o| o.parse().ok()).expect("an id")
}
