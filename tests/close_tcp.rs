//! The server closes TCP at once when the WebSocket is done (RFC 6455 §5.5.1: after
//! sending and receiving a Close, "the server MUST close the underlying TCP
//! connection immediately"; §7.1.1: the server closes first), on the actix-web
//! route (with `ws::on_connect`) and on the standalone path: whichever side starts
//! the close, and after a protocol failure. And on the route, a peer that never
//! reads loses its socket when the close times out.
//!
//! Each case waits on events (the Close frame read, the EOF read) with a deadline;
//! the bound is the issue's: EOF within 50 ms of the Close exchange.

#[path = "support/server.rs"]
mod support;

use std::{
    net::SocketAddr,
    time::{Duration, Instant},
};

use support::{frame, RawClient, Seen, TestServer};
use tokio::{
    io::{AsyncReadExt, Interest},
    sync::mpsc,
};
use websocket_driver as ws;
use ws::proto::{CloseCode, OpCode};

/// EOF must follow the Close exchange within this.
const EOF_BOUND: Duration = Duration::from_millis(50);

/// A server on 127.0.0.1:0 with an echoing [`support::Recorder`]: the route (with
/// `ws::on_connect`) or the standalone server.
enum Running {
    Route(TestServer),
    Standalone {
        addr: SocketAddr,
        handle: actix_server::ServerHandle,
        seen: mpsc::UnboundedReceiver<Seen>,
    },
}

impl Running {
    fn start(standalone: bool, server: ws::Server) -> Running {
        if standalone {
            let (addr, handle, seen) = support::listen_recorder(server);
            Running::Standalone { addr, handle, seen }
        } else {
            Running::Route(TestServer::start(server, true))
        }
    }

    fn addr(&self) -> SocketAddr {
        match self {
            Running::Route(s) => s.addr,
            Running::Standalone { addr, .. } => *addr,
        }
    }

    async fn next(&mut self) -> Seen {
        match self {
            Running::Route(s) => s.next().await,
            Running::Standalone { seen, .. } => {
                tokio::time::timeout(Duration::from_secs(5), seen.recv())
                    .await
                    .expect("timed out waiting for the actor")
                    .expect("server gone")
            }
        }
    }

    async fn opened(&mut self) -> ws::Conn {
        match self.next().await {
            Seen::Open(conn) => conn,
            other => panic!("expected Open, saw {other:?}"),
        }
    }

    async fn stop(self) {
        match self {
            Running::Route(s) => s.handle.stop(false).await,
            Running::Standalone { handle, .. } => handle.stop(false).await,
        }
    }
}

/// Read until a whole Close frame from the server (unmasked, so `0x88`, a 7-bit
/// length, the payload) is in; skip any frame before it. Returns the Close's code.
async fn read_close(client: &mut RawClient) -> u16 {
    let mut buf = Vec::new();
    loop {
        // Frames before the Close: small (nothing here sends more than 125 bytes).
        while buf.len() >= 2 && buf.len() >= 2 + (buf[1] & 0x7f) as usize {
            let len = 2 + (buf[1] & 0x7f) as usize;
            if buf[0] == 0x88 {
                let payload = &buf[2..len];
                return if payload.len() >= 2 {
                    u16::from_be_bytes([payload[0], payload[1]])
                } else {
                    1005
                };
            }
            buf.drain(..len);
        }
        let mut chunk = [0u8; 1024];
        let n = tokio::time::timeout(Duration::from_secs(5), client.stream.read(&mut chunk))
            .await
            .expect("timed out waiting for the server's Close")
            .expect("read");
        assert!(n > 0, "EOF before the server's Close");
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// Read until EOF (the server's FIN), at most until `EOF_BOUND` after `since`;
/// returns how long after `since` it came. Any byte after the Close, or a reset,
/// fails.
async fn eof_after(client: &mut RawClient, since: Instant) -> Duration {
    let mut chunk = [0u8; 1024];
    let deadline = tokio::time::Instant::from_std(since + EOF_BOUND);
    match tokio::time::timeout_at(deadline, client.stream.read(&mut chunk)).await {
        Ok(Ok(0)) => since.elapsed(),
        Ok(Ok(n)) => panic!("{n} bytes after the Close: {:?}", &chunk[..n]),
        Ok(Err(e)) => panic!("reset instead of FIN: {e}"),
        Err(_) => panic!("no EOF within {EOF_BOUND:?} of the Close exchange"),
    }
}

async fn client_starts_the_close(standalone: bool) {
    let mut server = Running::start(standalone, ws::Server::new());
    let (mut client, _) = RawClient::connect(server.addr(), "").await;
    server.opened().await;
    client
        .send_frame(true, OpCode::Close, &1000u16.to_be_bytes())
        .await;
    assert_eq!(read_close(&mut client).await, 1000);
    let took = eof_after(&mut client, Instant::now()).await;
    eprintln!("standalone={standalone}: EOF {took:?} after the server's Close");
    assert!(matches!(server.next().await, Seen::Close(c) if c.was_clean));
    server.stop().await;
}

async fn server_starts_the_close(standalone: bool) {
    let mut server = Running::start(standalone, ws::Server::new());
    let (mut client, _) = RawClient::connect(server.addr(), "").await;
    let conn = server.opened().await;
    conn.close(CloseCode::NORMAL, "bye").into_result().unwrap();
    assert_eq!(read_close(&mut client).await, 1000);
    client
        .send_frame(true, OpCode::Close, &1000u16.to_be_bytes())
        .await;
    let took = eof_after(&mut client, Instant::now()).await;
    eprintln!("standalone={standalone}: EOF {took:?} after our Close");
    assert!(matches!(server.next().await, Seen::Close(c) if c.was_clean));
    server.stop().await;
}

async fn after_a_protocol_failure(standalone: bool) {
    let mut server = Running::start(standalone, ws::Server::new());
    let (mut client, _) = RawClient::connect(server.addr(), "").await;
    server.opened().await;
    // Reserved opcode 3: the server fails the connection with 1002 (RFC 6455 §5.2).
    let mut bad = frame(true, OpCode::Text, b"x");
    bad[0] = 0x83;
    client.send_raw(&bad).await;
    assert_eq!(read_close(&mut client).await, 1002);
    let took = eof_after(&mut client, Instant::now()).await;
    eprintln!("standalone={standalone}: EOF {took:?} after the failure's Close");
    assert!(matches!(server.next().await, Seen::Error(_)));
    assert!(matches!(server.next().await, Seen::Close(c) if !c.was_clean));
    server.stop().await;
}

#[actix_rt::test]
async fn route_closes_tcp_at_once_when_the_client_starts_the_close() {
    client_starts_the_close(false).await;
}

#[actix_rt::test]
async fn standalone_closes_tcp_at_once_when_the_client_starts_the_close() {
    client_starts_the_close(true).await;
}

#[actix_rt::test]
async fn route_closes_tcp_at_once_when_the_server_starts_the_close() {
    server_starts_the_close(false).await;
}

#[actix_rt::test]
async fn standalone_closes_tcp_at_once_when_the_server_starts_the_close() {
    server_starts_the_close(true).await;
}

#[actix_rt::test]
async fn route_closes_tcp_at_once_after_a_protocol_failure() {
    after_a_protocol_failure(false).await;
}

#[actix_rt::test]
async fn standalone_closes_tcp_at_once_after_a_protocol_failure() {
    after_a_protocol_failure(true).await;
}

/// The most a TCP socket's send buffer grows to (tcp_wmem's third field).
fn kernel_send_buffer_max() -> usize {
    let wmem = std::fs::read_to_string("/proc/sys/net/ipv4/tcp_wmem").expect("tcp_wmem");
    wmem.split_whitespace()
        .nth(2)
        .and_then(|max| max.parse().ok())
        .expect("tcp_wmem: three numbers")
}

/// Whether the kernel still has a TCP socket from `local` to `remote` (IPv4),
/// from `/proc/net/tcp`.
fn socket_exists(local: SocketAddr, remote: SocketAddr) -> bool {
    fn hex(addr: SocketAddr) -> String {
        let SocketAddr::V4(v4) = addr else {
            unreachable!("IPv4 only")
        };
        // The address as the kernel's native-endian u32, the port big-endian.
        format!(
            "{:08X}:{:04X}",
            u32::from_ne_bytes(v4.ip().octets()),
            v4.port()
        )
    }
    let (local, remote) = (hex(local), hex(remote));
    let table = std::fs::read_to_string("/proc/net/tcp").expect("/proc/net/tcp");
    table.lines().skip(1).any(|line| {
        let mut fields = line.split_whitespace().skip(1);
        fields.next() == Some(local.as_str()) && fields.next() == Some(remote.as_str())
    })
}

// A peer that never reads while the server sends: the send buffer fills, the idle
// timeout fails the connection, the Close cannot reach the peer, and when the close
// times out the connection resets the socket (RFC 6455 §7.1.1: the endpoint closes
// the TCP connection itself when the peer does not). The bound: the reset comes
// within the close timeout + 50 ms of the failure (the actor's `Error`), and the
// server's socket is gone then.
#[actix_rt::test]
async fn route_frees_the_socket_of_a_peer_that_never_reads() {
    let close_timeout = Duration::from_millis(300);
    let settings = ws::Server::new()
        .ping_interval(None)
        .idle_timeout(Some(Duration::from_millis(300)))
        .close_timeout(close_timeout)
        // More than the kernel's send buffer can take (tcp_wmem's maximum): once
        // sends are refused, what waits in ours cannot all have reached the
        // kernel, and the Close queued behind it cannot reach the peer.
        .max_send_buffer(2 * kernel_send_buffer_max());
    let mut server = Running::start(false, settings);
    // Reads nothing yet, through a small fixed receive buffer.
    let (mut client, _) = RawClient::connect_with(server.addr(), "", Some(4096)).await;
    let client_addr = client.stream.local_addr().unwrap();
    let conn = server.opened().await;
    support::send_until_stuck(&conn).await;
    assert!(socket_exists(server.addr(), client_addr));
    assert!(matches!(
        server.next().await,
        Seen::Error(ws::Error::IdleTimeout(_))
    ));
    let failed = Instant::now();
    assert!(matches!(server.next().await, Seen::Close(c) if !c.was_clean));
    // The reset: an error on the client's socket (its unread bytes still wait).
    let deadline = tokio::time::Instant::from_std(failed + close_timeout + EOF_BOUND);
    let ready = tokio::time::timeout_at(deadline, client.stream.ready(Interest::ERROR))
        .await
        .unwrap_or_else(|_| {
            panic!(
                "the server still holds the socket {:?} after the failure",
                failed.elapsed()
            )
        })
        .unwrap();
    assert!(ready.is_error());
    eprintln!("socket reset {:?} after the failure", failed.elapsed());
    assert!(!socket_exists(server.addr(), client_addr));
    // What the client reads now ends in the reset, not in more data and a FIN.
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        match tokio::time::timeout(Duration::from_secs(5), client.stream.read(&mut chunk)).await {
            Ok(Ok(0)) => panic!("FIN instead of a reset"),
            Ok(Ok(_)) => continue,
            Ok(Err(e)) => {
                assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset, "{e}");
                break;
            }
            Err(_) => panic!("neither EOF nor a reset"),
        }
    }
    server.stop().await;
}
