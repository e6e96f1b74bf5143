//! A raw WebSocket client for the hub tests: it decodes the server's (unmasked)
//! frames itself, so that 1,000 of them cost little, and checks every frame. The
//! frame code ([`frame`], [`header_64`], [`parse_server_frame`]) is shared with the
//! hostile suite's peer (tests/hostile/harness.rs), which writes frames no client
//! library would.
#![allow(dead_code)]

use std::{net::SocketAddr, time::Duration};

use bytes::{Buf, BytesMut};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpSocket, TcpStream},
};

/// The key every frame here is masked with (RFC 6455 §5.3: a client masks; a
/// fixed key keeps the bytes on the wire reproducible).
pub const MASK: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

/// A frame as a client sends it, masked with [`MASK`]: FIN and RSV1 as given,
/// the payload length in its shortest form.
pub fn frame(fin: bool, rsv1: bool, opcode: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + 14);
    out.push((u8::from(fin) << 7) | (u8::from(rsv1) << 6) | opcode);
    push_len(&mut out, payload.len() as u64);
    out.extend_from_slice(&MASK);
    out.extend(payload.iter().enumerate().map(|(i, b)| b ^ MASK[i % 4]));
    out
}

/// A masked frame header (FIN, `opcode`) declaring `len` payload bytes in the
/// 64-bit form (RFC 6455 §5.2), without any payload.
pub fn header_64(opcode: u8, len: u64) -> Vec<u8> {
    let mut out = vec![0x80 | opcode, 0x80 | 127];
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(&MASK);
    out
}

/// The mask bit and the length, in the shortest of the three forms.
fn push_len(out: &mut Vec<u8>, len: u64) {
    if len < 126 {
        out.push(0x80 | len as u8);
    } else if len <= 0xffff {
        out.push(0x80 | 126);
        out.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        out.push(0x80 | 127);
        out.extend_from_slice(&len.to_be_bytes());
    }
}

/// Take one whole server frame off the front of `buf`: its first byte (FIN, RSV,
/// opcode) and its payload; `None` while it is incomplete. Panics on a masked
/// frame (a server never masks, RFC 6455 §5.1).
pub fn parse_server_frame(buf: &mut BytesMut) -> Option<(u8, Vec<u8>)> {
    if buf.len() < 2 {
        return None;
    }
    let (b0, b1) = (buf[0], buf[1]);
    assert_eq!(b1 & 0x80, 0, "server frames are not masked (RFC 6455 §5.1)");
    let (len, header) = match b1 & 0x7f {
        126 if buf.len() >= 4 => (u16::from_be_bytes([buf[2], buf[3]]) as usize, 4),
        127 if buf.len() >= 10 => {
            let mut n = [0u8; 8];
            n.copy_from_slice(&buf[2..10]);
            (u64::from_be_bytes(n) as usize, 10)
        }
        126 | 127 => return None,
        n => (n as usize, 2),
    };
    if buf.len() < header + len {
        return None;
    }
    buf.advance(header);
    Some((b0, buf.split_to(len).to_vec()))
}

/// A client connection that decodes the server's (unmasked) frames itself.
pub struct Client {
    pub stream: TcpStream,
    buf: BytesMut,
}

/// A frame from the server: opcode, payload.
pub type Frame = (u8, Vec<u8>);

impl Client {
    pub async fn connect(addr: SocketAddr, path: &str) -> Client {
        Client::connect_with(addr, path, None).await
    }

    /// Connect; `rcvbuf` shrinks the socket's receive buffer (a peer that reads
    /// nothing then stops the server's writes sooner).
    pub async fn connect_with(addr: SocketAddr, path: &str, rcvbuf: Option<u32>) -> Client {
        let socket = TcpSocket::new_v4().unwrap();
        if let Some(size) = rcvbuf {
            socket.set_recv_buffer_size(size).unwrap();
        }
        let mut stream = socket.connect(addr).await.unwrap();
        stream.set_nodelay(true).unwrap();
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        );
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut client = Client {
            stream,
            buf: BytesMut::new(),
        };
        loop {
            if let Some(end) = client.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                assert!(client.buf.starts_with(b"HTTP/1.1 101 "));
                client.buf.advance(end + 4);
                return client;
            }
            client.fill().await;
        }
    }

    pub async fn fill(&mut self) -> usize {
        self.buf.reserve(64 * 1024);
        let n = tokio::time::timeout(Duration::from_secs(20), self.stream.read_buf(&mut self.buf))
            .await
            .expect("timed out reading from the server")
            .unwrap_or(0);
        n
    }

    /// The next whole frame, or `None` at EOF.
    pub async fn frame(&mut self) -> Option<Frame> {
        loop {
            if let Some((b0, payload)) = parse_server_frame(&mut self.buf) {
                assert_eq!(b0 & 0x80, 0x80, "whole frames");
                return Some((b0 & 0x0f, payload));
            }
            if self.fill().await == 0 {
                return None;
            }
        }
    }

    /// The next text message's text (keep-alive pings skipped).
    pub async fn text(&mut self) -> String {
        loop {
            match self.frame().await {
                Some((1, payload)) => return String::from_utf8(payload).unwrap(),
                Some((9, _)) => continue,
                other => panic!("expected a text frame, got {other:?}"),
            }
        }
    }

    /// A masked text frame.
    pub async fn send_text(&mut self, text: &str) {
        let frame = frame(true, false, 0x1, text.as_bytes());
        self.stream.write_all(&frame).await.unwrap();
    }
}
