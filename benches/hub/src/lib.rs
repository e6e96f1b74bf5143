//! Shared bits of the hub benchmark's servers (the peers and the raw fan-out
//! reference): the `--bind ADDR` argument and the WebSocket accept key.
//!
//! The protocol every server here implements, and the payload layout, are
//! described in the load generator's documentation (`src/main.rs`).

pub mod broadcast;

use base64::Engine;
use sha1::{Digest, Sha1};

/// The address from `--bind ADDR` (default `127.0.0.1:9001`).
pub fn bind_arg() -> String {
    let mut args = std::env::args().skip(1);
    let mut bind = "127.0.0.1:9001".to_string();
    while let Some(a) = args.next() {
        if a == "--bind" {
            bind = args.next().expect("--bind needs ADDR");
        } else {
            eprintln!(
                "usage: {} [--bind ADDR]",
                std::env::args().next().unwrap_or_default()
            );
            std::process::exit(2);
        }
    }
    bind
}

/// `Sec-WebSocket-Accept` for a `Sec-WebSocket-Key` (RFC 6455 §4.2.2).
pub fn accept_key(key: &str) -> String {
    let mut sha = Sha1::new();
    sha.update(key.trim().as_bytes());
    sha.update(b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11");
    base64::engine::general_purpose::STANDARD.encode(sha.finalize())
}
