//! The origin policy on both serving paths (the actix-web route and
//! `Server::listen`): a browser's handshake from another site is refused with 403
//! unless listed, the server's own origin and non-browser clients are accepted,
//! and each refusal is counted.

#[path = "support/server.rs"]
mod support;

use std::{net::SocketAddr, time::Duration};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use websocket_driver as ws;

/// The tests that count refusals run one at a time (the counter is the process's).
static COUNTING: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The standalone server's whole refusal, byte for byte.
const STANDALONE_403: &str = "HTTP/1.1 403 Forbidden\r\n\
    Content-Type: text/plain; charset=utf-8\r\n\
    Content-Length: 19\r\n\
    Connection: close\r\n\
    \r\n\
    origin not allowed\n";

#[derive(Clone, Copy, Debug)]
enum Path {
    Route,
    Standalone,
}

/// Start `server` on `path`; returns its address and a way to stop it.
fn start(path: Path, server: ws::Server) -> (SocketAddr, Box<dyn FnOnce()>) {
    match path {
        Path::Route => {
            let support::TestServer { addr, handle, .. } = support::TestServer::start(server, true);
            (
                addr,
                Box::new(move || {
                    actix_rt::spawn(async move { handle.stop(false).await });
                }),
            )
        }
        Path::Standalone => {
            let (addr, handle, _) = support::listen_recorder(server);
            (
                addr,
                Box::new(move || {
                    actix_rt::spawn(async move { handle.stop(false).await });
                }),
            )
        }
    }
}

/// A response: its status line, its body, and every byte of it.
struct Response {
    status: String,
    body: String,
    raw: String,
}

/// Send a handshake with `Host: host` and, when given, `Origin: origin`; read the
/// answer (the head, and the body its `Content-Length` announces).
async fn handshake(addr: SocketAddr, host: &str, origin: Option<&str>) -> Response {
    let mut request = format!(
        "GET /chat HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
    );
    if let Some(origin) = origin {
        request += &format!("Origin: {origin}\r\n");
    }
    request += "\r\n";
    let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    tcp.write_all(request.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    let read = async {
        loop {
            let mut chunk = [0u8; 1024];
            let n = tcp.read(&mut chunk).await.unwrap();
            buf.extend_from_slice(&chunk[..n]);
            let text = String::from_utf8_lossy(&buf).into_owned();
            if let Some(end) = text.find("\r\n\r\n") {
                let length = text[..end]
                    .lines()
                    .find_map(|l| {
                        let (name, value) = l.split_once(':')?;
                        name.eq_ignore_ascii_case("content-length")
                            .then(|| value.trim().parse::<usize>().unwrap())
                    })
                    .unwrap_or(0);
                if buf.len() >= end + 4 + length {
                    return;
                }
            }
            assert!(n > 0, "the server closed before a whole response: {text:?}");
        }
    };
    tokio::time::timeout(Duration::from_secs(5), read)
        .await
        .expect("no response within 5 s");
    let raw = String::from_utf8(buf).unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap();
    Response {
        status: head.lines().next().unwrap().to_owned(),
        body: body.to_owned(),
        raw: raw.clone(),
    }
}

/// The value of `ws_handshakes_refused_total{reason="origin"}`.
fn origin_refusals() -> u64 {
    ws::metrics::encode_text()
        .lines()
        .find_map(|l| l.strip_prefix("ws_handshakes_refused_total{reason=\"origin\"} "))
        .map_or(0, |v| v.trim().parse().unwrap())
}

/// Assert an accepted handshake.
fn accepted(response: &Response, case: &str) {
    assert_eq!(
        response.status, "HTTP/1.1 101 Switching Protocols",
        "{case}: {}",
        response.raw
    );
}

/// Assert the origin refusal, exactly.
fn refused(path: Path, response: &Response, case: &str) {
    assert_eq!(response.status, "HTTP/1.1 403 Forbidden", "{case}");
    assert_eq!(response.body, "origin not allowed\n", "{case}");
    if let Path::Standalone = path {
        assert_eq!(response.raw, STANDALONE_403, "{case}");
    }
}

/// Every case of the policy on one path, with the default settings and with a list.
async fn policy_on(path: Path) {
    let _counting = COUNTING.lock().await;
    let before = origin_refusals();

    let (addr, stop) = start(path, ws::Server::new());
    let own = format!("127.0.0.1:{}", addr.port());
    // Same origin: the page the server itself served.
    accepted(
        &handshake(addr, &own, Some(&format!("http://{own}"))).await,
        "same origin",
    );
    // No Origin: not a browser.
    accepted(&handshake(addr, &own, None).await, "no origin");
    // Another site: refused, 403, exact body.
    refused(
        path,
        &handshake(addr, &own, Some("http://evil.example")).await,
        "cross-site",
    );
    // Same host, another port: another origin.
    let other_port = format!("http://127.0.0.1:{}", addr.port() ^ 1);
    refused(
        path,
        &handshake(addr, &own, Some(&other_port)).await,
        "other port",
    );
    // Default ports are the same as none, both ways.
    accepted(
        &handshake(addr, "example.com", Some("http://example.com:80")).await,
        ":80 in Origin",
    );
    accepted(
        &handshake(addr, "example.com:80", Some("http://example.com")).await,
        ":80 in Host",
    );
    accepted(
        &handshake(addr, "example.com:443", Some("https://example.com")).await,
        ":443 in Host",
    );
    refused(
        path,
        &handshake(addr, "example.com:443", Some("http://example.com")).await,
        "http on :443",
    );
    // IPv6 hosts, with their brackets.
    accepted(
        &handshake(addr, "[::1]:8080", Some("http://[::1]:8080")).await,
        "IPv6",
    );
    refused(
        path,
        &handshake(addr, "[::1]:8080", Some("http://[::1]:8081")).await,
        "IPv6, other port",
    );
    stop();

    let listed = ws::Server::new().origins(["https://app.example.com", "https://*.example.org"]);
    let (addr, stop) = start(path, listed);
    let host = "api.example.net";
    accepted(
        &handshake(addr, host, Some("https://app.example.com")).await,
        "listed",
    );
    accepted(
        &handshake(addr, host, Some("https://APP.example.com:443")).await,
        "listed, any case, :443",
    );
    refused(
        path,
        &handshake(addr, host, Some("http://app.example.com")).await,
        "listed host, other scheme",
    );
    accepted(
        &handshake(addr, host, Some("https://chat.example.org")).await,
        "wildcard",
    );
    accepted(
        &handshake(addr, host, Some("https://a.b.example.org")).await,
        "wildcard, two labels",
    );
    refused(
        path,
        &handshake(addr, host, Some("https://example.org")).await,
        "wildcard's own domain",
    );
    refused(
        path,
        &handshake(addr, host, Some("https://evil-example.org")).await,
        "wildcard lookalike",
    );
    accepted(
        &handshake(addr, host, Some(&format!("https://{host}"))).await,
        "own origin with a list",
    );
    stop();

    let (addr, stop) = start(path, ws::Server::new().allow_any_origin());
    accepted(
        &handshake(addr, "x", Some("http://evil.example")).await,
        "any origin",
    );
    stop();

    // Each refusal above counted once: 4 with the defaults, 3 with the list.
    assert_eq!(origin_refusals() - before, 7, "refusals counted");
}

#[actix_rt::test]
async fn route_applies_the_origin_policy() {
    policy_on(Path::Route).await;
}

#[actix_rt::test]
async fn standalone_applies_the_origin_policy() {
    policy_on(Path::Standalone).await;
}

#[test]
fn origins_come_from_toml() {
    let settings: ws::Settings = toml::from_str(
        r#"
        [server]
        origins = ["https://*.example.com", "http://localhost:3000"]
        "#,
    )
    .unwrap();
    assert_eq!(
        settings.server.origins,
        ["https://*.example.com", "http://localhost:3000"]
    );
    assert!(ws::handshake::origin_allowed(
        Some("https://a.example.com"),
        "api.example.net",
        &settings.server.origins
    ));
}
