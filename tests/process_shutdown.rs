//! `ws::shutdown`, which closes every connection of the process: alone in its test
//! binary, so that no other test's connection is closed by it.

#[path = "support/server.rs"]
mod support;

use std::time::Duration;

use futures_util::StreamExt;
use support::{Seen, TestServer};
use tokio_tungstenite::tungstenite::{self, protocol::frame::coding::CloseCode as TCode};
use websocket_driver as ws;
use ws::proto::CloseCode;

fn close_of(seen: Seen) -> ws::Close {
    match seen {
        Seen::Close(close) => close,
        other => panic!("expected Close, saw {other:?}"),
    }
}

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
    let close = close_of(server.next().await);
    assert_eq!(close.code, CloseCode::GOING_AWAY);
    server.handle.stop(true).await;
}
