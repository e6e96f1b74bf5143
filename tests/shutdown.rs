//! `ws::shutdown`, the process-wide shutdown: in a test binary of its own, since it
//! closes every connection of the process (a test running beside it in the same
//! binary would lose its connections).

#[path = "support/server.rs"]
mod support;

use std::time::Duration;

use futures_util::StreamExt;
use support::{Seen, TestServer};
use tokio_tungstenite::tungstenite::{self, protocol::frame::coding::CloseCode as TCode};
use websocket_driver as ws;
use ws::proto::CloseCode;

#[actix_rt::test]
async fn server_shutdown_sends_1001_to_every_connection() {
    let mut server = TestServer::start(ws::Server::new(), false);
    let (mut client, _) = tokio_tungstenite::connect_async(server.url())
        .await
        .unwrap();
    server.opened().await;
    let peer = tokio::spawn(async move {
        // tungstenite answers the Close and reports it.
        let mut code = None;
        while let Some(Ok(msg)) = client.next().await {
            if let tungstenite::Message::Close(Some(frame)) = msg {
                code = Some(frame.code);
            }
        }
        code
    });
    ws::shutdown(Duration::from_secs(2)).await;
    assert_eq!(peer.await.unwrap(), Some(TCode::Away));
    match server.next().await {
        Seen::Close(close) => assert_eq!(close.code, CloseCode::GOING_AWAY),
        other => panic!("expected Close, saw {other:?}"),
    }
    server.handle.stop(true).await;
}
