//! permessage-deflate over real sockets: the actix-web route and `Server::listen`
//! negotiate it and compress, our core client on raw TCP checks the exact answer
//! and the RSV1 bit of every reply; prepared broadcast frames; and a foreign client
//! (python `websockets`, which negotiates deflate by default) exchanging 0 B to
//! 1 MiB both ways.

#[path = "support/server.rs"]
mod support;

#[path = "support/python.rs"]
mod python;

use std::time::Duration;

use bytes::BytesMut;
use support::{RawClient, Seen, TestServer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use websocket_driver as ws;
use ws::proto::{Event, Message};

const ANSWER: &str = "permessage-deflate; server_max_window_bits=12; client_max_window_bits=12";

/// Connect with our offer, check the server's exact answer, install the codec.
async fn connect(addr: std::net::SocketAddr, config: &ws::DeflateSettings) -> (RawClient, String) {
    let (mut client, head) = RawClient::connect(
        addr,
        &format!("Sec-WebSocket-Extensions: {}\r\n", config.offer()),
    )
    .await;
    let answer = head
        .lines()
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("sec-websocket-extensions")
                .then(|| value.trim())
        })
        .unwrap_or_else(|| panic!("no extensions answer in {head:?}"))
        .to_owned();
    let codec = config.accept_response(&answer).expect("acceptable answer");
    client.core.set_extension(Box::new(codec));
    (client, answer)
}

/// Read until the core yields a message; returns it and the first byte of the
/// first frame read (FIN, RSV, opcode).
async fn read_message(client: &mut RawClient) -> (Message, u8) {
    let mut first = None;
    loop {
        match client.core.poll_event() {
            Some(Event::Message(m)) => return (m, first.expect("a frame")),
            Some(other) => panic!("expected a message, got {other:?}"),
            None => {}
        }
        let mut buf = BytesMut::with_capacity(64 * 1024);
        let n = tokio::time::timeout(Duration::from_secs(10), client.stream.read_buf(&mut buf))
            .await
            .expect("timed out")
            .unwrap();
        assert!(n > 0, "server closed");
        first.get_or_insert(buf[0]);
        client.core.receive(&buf);
    }
}

async fn echo_sizes(client: &mut RawClient) {
    for len in [0usize, 1, 125, 126, 65_535, 65_536, 1 << 20] {
        let text: String = (0..len).map(|i| (b'a' + (i % 7) as u8) as char).collect();
        client.core.send_text(&text).unwrap();
        let out = client.core.take_output();
        assert_eq!(out[0], 0xc1, "we compress, len {len}");
        client.stream.write_all(&out).await.unwrap();
        let (message, b0) = read_message(client).await;
        assert_eq!(b0, 0xc1, "the echo is compressed, len {len}");
        assert_eq!(message, Message::from(text), "len {len}");
    }
}

#[actix_rt::test]
async fn route_negotiates_deflate_and_echoes_compressed_0_to_1_mib() {
    let server = TestServer::start(ws::Server::new().deflate(ws::DeflateSettings::on()), true);
    let (mut client, answer) = connect(server.addr, &ws::DeflateSettings::on()).await;
    assert_eq!(answer, ANSWER);
    echo_sizes(&mut client).await;
}

#[actix_rt::test]
async fn listen_negotiates_deflate_and_echoes_compressed_0_to_1_mib() {
    let (addr, handle, _seen) =
        support::listen_recorder(ws::Server::new().deflate(ws::DeflateSettings::on()));
    let (mut client, answer) = connect(addr, &ws::DeflateSettings::on()).await;
    assert_eq!(answer, ANSWER);
    echo_sizes(&mut client).await;
    handle.stop(false).await;
}

#[actix_rt::test]
async fn route_without_deflate_answers_no_extension() {
    let server = TestServer::start(ws::Server::new(), true);
    let (_client, head) = RawClient::connect(
        server.addr,
        &format!(
            "Sec-WebSocket-Extensions: {}\r\n",
            ws::DeflateSettings::on().offer()
        ),
    )
    .await;
    assert!(
        !head
            .to_ascii_lowercase()
            .contains("sec-websocket-extensions"),
        "{head}"
    );
}

#[actix_rt::test]
async fn send_prepared_writes_the_same_compressed_frame_to_every_connection() {
    let config = ws::DeflateSettings::on().server_no_context_takeover(true);
    let ws_server = ws::Server::new().deflate(config.clone());
    let mut server = TestServer::start(ws_server.clone(), false);
    let client_config = ws::DeflateSettings::on();
    let (mut a, answer) = connect(server.addr, &client_config).await;
    assert_eq!(
        answer,
        "permessage-deflate; server_no_context_takeover; server_max_window_bits=12; client_max_window_bits=12"
    );
    let conn_a = server.opened().await;
    let (mut b, _) = connect(server.addr, &client_config).await;
    let conn_b = server.opened().await;
    let text = "{\"event\":\"tick\",\"value\":42}".repeat(40);
    let prepared = ws_server.prepare(text.clone());
    let frame = prepared
        .compressed_frame()
        .expect("compression pays")
        .clone();
    conn_a.send_prepared(&prepared).await.unwrap();
    conn_b.send_prepared(&prepared).await.unwrap();
    for client in [&mut a, &mut b] {
        let mut got = vec![0u8; frame.len()];
        tokio::time::timeout(Duration::from_secs(5), client.stream.read_exact(&mut got))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(got, frame);
        client.core.receive(&got);
        match client.core.poll_event() {
            Some(Event::Message(m)) => assert_eq!(m, Message::from(text.clone())),
            other => panic!("expected the message, got {other:?}"),
        }
    }
    assert!(matches!(server.seen.try_recv(), Err(_) | Ok(Seen::Open(_))));
}

const PYTHON_CLIENT: &str = r#"
import asyncio, sys
from websockets.asyncio.client import connect

async def main(url):
    async with connect(url, max_size=None) as ws:
        ext = [type(e).__name__ for e in ws.protocol.extensions]
        assert ext == ["PerMessageDeflate"], ext
        for n in [0, 1, 125, 126, 65535, 65536, 1 << 20]:
            text = "".join(chr(97 + i % 7) for i in range(n))
            await ws.send(text)
            assert await ws.recv() == text, n
            data = bytes((i * 7) % 251 for i in range(n))
            await ws.send(data)
            assert await ws.recv() == data, n
    print("ok", ext)

asyncio.run(asyncio.wait_for(main(sys.argv[1]), 20))
"#;

#[actix_rt::test]
#[ignore = "needs python3 websockets; scripts/test-all.sh runs it"]
async fn python_websockets_client_exchanges_0_to_1_mib_with_deflate() {
    let server = TestServer::start(ws::Server::new().deflate(ws::DeflateSettings::on()), true);
    // A blocking wait on a thread of its own: the test's runtime has no signal
    // driver to see the child exit.
    let url = server.url();
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new("python3")
            .arg("-c")
            .arg(PYTHON_CLIENT)
            .arg(url)
            .output()
    });
    let output = tokio::time::timeout(Duration::from_secs(60), output)
        .await
        .expect("python client timed out")
        .unwrap()
        .expect("python3 runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let mut server = server;
    while let Ok(seen) = server.seen.try_recv() {
        eprintln!("seen: {seen:?}");
    }
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(stdout.trim(), "ok ['PerMessageDeflate']");
}

#[actix_rt::test]
#[ignore = "needs python3 websockets; scripts/test-all.sh runs it"]
async fn core_client_role_against_python_websockets_server_with_deflate() {
    let (mut child, addr) = python::python_echo_server().await;
    let (mut client, answer) = connect(addr, &ws::DeflateSettings::on()).await;
    assert_eq!(answer, ANSWER);
    echo_sizes(&mut client).await;
    child.kill().await.unwrap();
}
