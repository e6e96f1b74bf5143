//! A raw WebSocket client for the hub tests: it decodes the server's (unmasked)
//! frames itself, so that 1,000 of them cost little, and checks every frame.
#![allow(dead_code)]

use std::{net::SocketAddr, time::Duration};

use bytes::{Buf, BytesMut};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpSocket, TcpStream},
};

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
            if self.buf.len() >= 2 {
                let (b0, b1) = (self.buf[0], self.buf[1]);
                assert_eq!(b1 & 0x80, 0, "server frames are not masked");
                let (len, header) = match b1 & 0x7f {
                    126 if self.buf.len() >= 4 => {
                        (u16::from_be_bytes([self.buf[2], self.buf[3]]) as usize, 4)
                    }
                    127 if self.buf.len() >= 10 => {
                        let mut n = [0u8; 8];
                        n.copy_from_slice(&self.buf[2..10]);
                        (u64::from_be_bytes(n) as usize, 10)
                    }
                    126 | 127 => (usize::MAX, 0),
                    n => (n as usize, 2),
                };
                if header > 0 && self.buf.len() >= header + len {
                    self.buf.advance(header);
                    let payload = self.buf.split_to(len).to_vec();
                    assert_eq!(b0 & 0x80, 0x80, "whole frames");
                    return Some((b0 & 0x0f, payload));
                }
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
        let mut frame = vec![0x81];
        let len = text.len();
        if len < 126 {
            frame.push(0x80 | len as u8);
        } else {
            frame.push(0x80 | 126);
            frame.extend_from_slice(&(len as u16).to_be_bytes());
        }
        frame.extend_from_slice(&[0, 0, 0, 0]); // a zero mask: the payload as is
        frame.extend_from_slice(text.as_bytes());
        self.stream.write_all(&frame).await.unwrap();
    }
}
