//! Asynchronous admission on the standalone server (`Server::listen_async`), with
//! the auth example's bearer-token check: the exact refusals (status, headers,
//! body), a token in the header or the query admitted, and an admission that takes
//! longer than the handshake timeout answered with 503.

#[allow(dead_code)]
#[path = "../examples/auth.rs"]
mod auth;

use std::{net::SocketAddr, time::Duration};

use actix::Actor;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use websocket_driver as ws;

/// The auth example's admission on 127.0.0.1:0.
fn start() -> (SocketAddr, actix_server::ServerHandle) {
    let tokens = auth::Tokens::new([("alice-token", "alice")]).start();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let server = ws::Server::new()
        .listen_on_async(listener, 1, move |req: ws::Request| {
            auth::admit(tokens.clone(), req)
        })
        .unwrap();
    let handle = server.handle();
    actix_rt::spawn(server);
    (addr, handle)
}

/// Send a handshake for `target` with `extra` header lines; everything the server
/// answers until it closes (a refusal), or the 101's head and the first frame.
async fn request(addr: SocketAddr, target: &str, extra: &str) -> String {
    let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    tcp.write_all(
        format!(
            "GET {target} HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n{extra}\r\n"
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    let mut answer = Vec::new();
    let read = async {
        let mut chunk = [0u8; 1024];
        loop {
            let n = tcp.read(&mut chunk).await.unwrap();
            answer.extend_from_slice(&chunk[..n]);
            let upgraded = answer.starts_with(b"HTTP/1.1 101");
            // The greeting: "hello alice" in one text frame after the head.
            let greeted = upgraded && answer.ends_with(b"hello alice");
            if n == 0 || greeted {
                return;
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(5), read)
        .await
        .expect("no whole answer within 5 s");
    String::from_utf8_lossy(&answer).into_owned()
}

#[actix_rt::test]
async fn no_token_gets_401_with_the_bearer_challenge() {
    let (addr, handle) = start();
    assert_eq!(
        request(addr, "/", "").await,
        "HTTP/1.1 401 Unauthorized\r\n\
         Content-Type: text/plain; charset=utf-8\r\n\
         Content-Length: 21\r\n\
         Connection: close\r\n\
         WWW-Authenticate: Bearer realm=\"chat\"\r\n\
         \r\n\
         missing bearer token\n"
    );
    handle.stop(false).await;
}

#[actix_rt::test]
async fn an_unknown_token_gets_401_with_a_json_body() {
    let (addr, handle) = start();
    for (target, extra) in [
        ("/", "Authorization: Bearer mallory-token\r\n"),
        ("/?access_token=mallory-token", ""),
    ] {
        assert_eq!(
            request(addr, target, extra).await,
            "HTTP/1.1 401 Unauthorized\r\n\
             Content-Type: application/json\r\n\
             Content-Length: 25\r\n\
             Connection: close\r\n\
             WWW-Authenticate: Bearer realm=\"chat\", error=\"invalid_token\"\r\n\
             \r\n\
             {\"error\":\"invalid_token\"}",
            "{target} {extra}"
        );
    }
    handle.stop(false).await;
}

#[actix_rt::test]
async fn a_known_token_in_the_header_or_the_query_is_admitted() {
    let (addr, handle) = start();
    for (target, extra) in [
        ("/", "Authorization: Bearer alice-token\r\n"),
        ("/chat?access_token=alice-token", ""),
    ] {
        let answer = request(addr, target, extra).await;
        assert!(
            answer.starts_with("HTTP/1.1 101 Switching Protocols\r\n"),
            "{answer}"
        );
        // The greeting, one unmasked text frame of 11 bytes (0x81, not UTF-8, reads
        // as U+FFFD here).
        assert!(
            answer.ends_with("\r\n\r\n\u{fffd}\u{b}hello alice"),
            "{answer:?}"
        );
    }
    handle.stop(false).await;
}

#[actix_rt::test]
async fn an_admission_past_the_handshake_timeout_gets_503() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    struct Never;
    impl ws::Endpoint for Never {}
    // The service never answers: the deadline does.
    let server = ws::Server::new()
        .handshake_timeout(Duration::from_millis(200))
        .listen_on_async(listener, 1, |_: ws::Request| async {
            std::future::pending::<()>().await;
            Ok(ws::endpoint(Never))
        })
        .unwrap();
    let handle = server.handle();
    actix_rt::spawn(server);
    assert_eq!(
        request(addr, "/", "").await,
        "HTTP/1.1 503 Service Unavailable\r\n\
         Content-Type: text/plain; charset=utf-8\r\n\
         Content-Length: 20\r\n\
         Connection: close\r\n\
         \r\n\
         admission timed out\n"
    );
    handle.stop(false).await;
}

#[actix_rt::test]
async fn the_synchronous_factory_still_works() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let server = ws::Server::new()
        .listen_on(listener, 1, |req: &ws::Request| {
            match req.bearer_token().as_deref() {
                Some("alice-token") => Ok(ws::endpoint(auth::Greeter::for_user("alice"))),
                _ => Err(ws::Refuse::new(401, "no")),
            }
        })
        .unwrap();
    let handle = server.handle();
    actix_rt::spawn(server);
    let answer = request(addr, "/?access_token=alice-token", "").await;
    assert!(answer.ends_with("hello alice"), "{answer:?}");
    assert!(request(addr, "/", "")
        .await
        .starts_with("HTTP/1.1 401 Unauthorized\r\n"));
    handle.stop(false).await;
}
