//! The chat example started as the README says: a page on another site cannot
//! open its WebSocket (403), its own page can, and the page is still served.

#[allow(dead_code)]
#[path = "../examples/hub.rs"]
mod chat;

use std::{net::SocketAddr, time::Duration};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use websocket_driver as ws;

async fn start() -> (SocketAddr, actix_web::dev::ServerHandle) {
    let settings = chat::chat_settings();
    let app = chat::ChatApp::new("chat-origin", &settings, chat::ChatOptions::default());
    let routes = chat::routes(app, ws::Server::with_settings(settings));
    let srv = actix_web::HttpServer::new(move || actix_web::App::new().configure(routes.clone()))
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

/// Send `request` and read the answer's head (and, for a refusal, its body).
async fn exchange(addr: SocketAddr, request: String) -> String {
    let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    tcp.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    let read = async {
        let mut chunk = [0u8; 4096];
        loop {
            let n = tcp.read(&mut chunk).await.unwrap();
            answer.extend_from_slice(&chunk[..n]);
            let text = String::from_utf8_lossy(&answer);
            let done = text.starts_with("HTTP/1.1 101") && text.contains("\r\n\r\n")
                || text.ends_with("origin not allowed\n")
                || text.contains("</html>");
            if n == 0 || done {
                return;
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(5), read)
        .await
        .expect("no answer within 5 s");
    String::from_utf8_lossy(&answer).into_owned()
}

fn upgrade(addr: SocketAddr, origin: &str) -> String {
    format!(
        "GET /ws HTTP/1.1\r\nHost: {addr}\r\nOrigin: {origin}\r\nUpgrade: websocket\r\n\
         Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
         Sec-WebSocket-Version: 13\r\n\r\n"
    )
}

#[actix_rt::test]
async fn the_chat_refuses_a_foreign_page_and_serves_its_own() {
    let (addr, handle) = start().await;
    let refused = exchange(addr, upgrade(addr, "http://evil.example")).await;
    assert!(
        refused.starts_with("HTTP/1.1 403 Forbidden\r\n"),
        "{refused}"
    );
    assert!(
        refused.ends_with("\r\n\r\norigin not allowed\n"),
        "{refused}"
    );
    let own = exchange(addr, upgrade(addr, &format!("http://{addr}"))).await;
    assert!(
        own.starts_with("HTTP/1.1 101 Switching Protocols\r\n"),
        "{own}"
    );
    let page = exchange(addr, format!("GET / HTTP/1.1\r\nHost: {addr}\r\n\r\n")).await;
    assert!(page.starts_with("HTTP/1.1 200 OK\r\n"), "{page}");
    handle.stop(false).await;
}
