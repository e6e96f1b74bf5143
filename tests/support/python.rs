//! A foreign WebSocket server for interop tests: python `websockets` (which
//! negotiates permessage-deflate by default) echoing every message, on a port
//! of its own. Tests using it are ignored by default, with a reason;
//! `scripts/test-all.sh` installs the package and runs them.

use std::{net::SocketAddr, time::Duration};

use tokio::{io::AsyncReadExt, process::Child};

const PYTHON_SERVER: &str = r#"
import asyncio, sys
from websockets.asyncio.server import serve

async def echo(ws):
    async for message in ws:
        await ws.send(message)

async def main():
    async with serve(echo, "127.0.0.1", 0, max_size=None) as server:
        port = server.sockets[0].getsockname()[1]
        print(port, flush=True)
        await asyncio.sleep(60)

asyncio.run(main())
"#;

/// Start the echo server; returns the process (killed on drop) and its address.
pub async fn python_echo_server() -> (Child, SocketAddr) {
    let mut child = tokio::process::Command::new("python3")
        .arg("-c")
        .arg(PYTHON_SERVER)
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("python3 runs");
    let mut stdout = child.stdout.take().unwrap();
    let mut port = Vec::new();
    let mut byte = [0u8; 1];
    while !port.ends_with(b"\n") {
        tokio::time::timeout(Duration::from_secs(10), stdout.read_exact(&mut byte))
            .await
            .expect("python server did not start")
            .unwrap();
        port.push(byte[0]);
    }
    let port: u16 = String::from_utf8(port).unwrap().trim().parse().unwrap();
    (child, SocketAddr::from(([127, 0, 0, 1], port)))
}
