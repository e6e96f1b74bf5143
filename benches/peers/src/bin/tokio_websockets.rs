//! tokio-websockets: ServerBuilder::accept, echo every text and binary message (its
//! README's echo server), on one current-thread runtime.
use futures_util::{SinkExt, StreamExt};
use tokio_websockets::ServerBuilder;

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(wsd_peers::bind_arg()).await?;
    loop {
        let (s, _) = listener.accept().await?;
        s.set_nodelay(true)?;
        tokio::spawn(async move {
            let Ok((_request, mut ws)) = ServerBuilder::new().accept(s).await else {
                return;
            };
            while let Some(Ok(msg)) = ws.next().await {
                if (msg.is_text() || msg.is_binary()) && ws.send(msg).await.is_err() {
                    break;
                }
            }
        });
    }
}
