//! sockudo-ws: its README's and `examples/simple_echo.rs`' echo server (the crate's
//! handshake helpers, then `WebSocketStream::server` with `Config::default()`, echo
//! every text and binary message), on one current-thread runtime.
use bytes::BytesMut;
use futures_util::{SinkExt, StreamExt};
use sockudo_ws::handshake::{build_response, generate_accept_key, parse_request};
use sockudo_ws::{Config, Message, WebSocketStream};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

async fn handshake(mut stream: TcpStream) -> sockudo_ws::Result<TcpStream> {
    let mut buf = BytesMut::with_capacity(4096);
    loop {
        if stream.read_buf(&mut buf).await? == 0 {
            return Err(sockudo_ws::Error::ConnectionClosed);
        }
        if let Some((req, _)) = parse_request(&buf)? {
            let accept = generate_accept_key(req.key);
            stream
                .write_all(&build_response(&accept, None, None))
                .await?;
            stream.flush().await?;
            return Ok(stream);
        }
    }
}

async fn serve(stream: TcpStream) -> sockudo_ws::Result<()> {
    let mut ws = WebSocketStream::server(handshake(stream).await?, Config::default());
    while let Some(msg) = ws.next().await {
        match msg? {
            Message::Text(t) => ws.send(Message::Text(t)).await?,
            Message::Binary(b) => ws.send(Message::Binary(b)).await?,
            Message::Close(_) => break,
            // Pings are answered by the stream itself.
            Message::Ping(_) | Message::Pong(_) => {}
        }
    }
    Ok(())
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(wsd_peers::bind_arg()).await?;
    loop {
        let (s, _) = listener.accept().await?;
        s.set_nodelay(true)?;
        tokio::spawn(async move {
            let _ = serve(s).await;
        });
    }
}
