//! `Server::listen` answers SIGTERM: Close 1001 to its connections, then it stops.
//! One test in this binary: the signal goes to the whole test process.

use std::time::Duration;

use futures_util::StreamExt;
use tokio_tungstenite::tungstenite;
use websocket_driver as ws;

struct Quiet;

impl ws::Endpoint for Quiet {}

#[cfg(unix)]
#[actix_rt::test]
async fn sigterm_closes_every_connection_with_1001_then_stops_the_server() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let running = ws::Server::new()
        .listen_on(listener, 1, |_| Ok(ws::endpoint(Quiet)))
        .unwrap();
    let stopped = actix_rt::spawn(running);
    let mut clients = Vec::new();
    for _ in 0..3 {
        let (client, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/"))
            .await
            .unwrap();
        clients.push(client);
    }
    // The handlers were installed by `listen_on`: without them SIGTERM would end
    // this process.
    // SAFETY: kill(2) on our own pid with a signal whose handler is installed.
    assert_eq!(unsafe { libc::kill(libc::getpid(), libc::SIGTERM) }, 0);
    for client in &mut clients {
        match tokio::time::timeout(Duration::from_secs(10), client.next()).await {
            Ok(Some(Ok(tungstenite::Message::Close(Some(frame))))) => {
                assert_eq!(u16::from(frame.code), 1001);
                assert_eq!(frame.reason.as_str(), "server shutting down");
            }
            other => panic!("expected Close 1001, got {other:?}"),
        }
    }
    drop(clients);
    let result = tokio::time::timeout(Duration::from_secs(10), stopped)
        .await
        .expect("the server stops after the drain");
    result.unwrap().unwrap();
}
