//! `wss://` on both paths: the standalone server (`Server::listen` with
//! `[server.tls]` or a `rustls::ServerConfig`) and the actix-web route behind
//! actix-web's rustls listener (`bind_rustls_0_23` with `ws::on_connect`). Our
//! client and a raw rustls client connect with a certificate made here, echo,
//! close with 1000; the handshake timeout covers the TLS handshake; and a peer that
//! never reads is cut off with a reset, as on plain TCP.

#[path = "support/server.rs"]
mod support;

use std::{net::SocketAddr, sync::Arc, time::Duration};

use support::{frame, read_head, RawClient, Recorder, Seen};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt, Interest},
    net::TcpStream,
    sync::mpsc,
};
use tokio_rustls::rustls;
use websocket_driver as ws;
use ws::proto::{CloseCode, Event, Message, OpCode};

/// A self-signed certificate for `localhost`.
fn certificate() -> rcgen::CertifiedKey<rcgen::KeyPair> {
    rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap()
}

/// The certificate and its key as PEM files in a directory of their own.
fn pem_files(certified: &rcgen::CertifiedKey<rcgen::KeyPair>, name: &str) -> ws::TlsSettings {
    let dir = std::env::temp_dir().join(format!("wsd-tls-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cert = dir.join("cert.pem");
    let key = dir.join("key.pem");
    std::fs::write(&cert, certified.cert.pem()).unwrap();
    std::fs::write(&key, certified.signing_key.serialize_pem()).unwrap();
    ws::TlsSettings::new(cert.to_str().unwrap(), key.to_str().unwrap())
}

/// A raw TLS client: the TLS handshake (ALPN `http/1.1`, trusting `certified`),
/// the opening handshake, then frames decoded with our core.
type TlsClient = RawClient<tokio_rustls::client::TlsStream<TcpStream>>;

/// Connect a [`TlsClient`] to `addr`, the socket's receive buffer set to `rcvbuf`.
async fn connect_tls(
    addr: SocketAddr,
    certified: &rcgen::CertifiedKey<rcgen::KeyPair>,
    rcvbuf: Option<u32>,
) -> TlsClient {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(certified.cert.der().clone()).unwrap();
    let provider = ws::tls::crypto_provider();
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    if let Some(size) = rcvbuf {
        socket.set_recv_buffer_size(size).unwrap();
    }
    let tcp = socket.connect(addr).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let mut stream = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
        .expect("the TLS handshake");
    assert_eq!(stream.get_ref().1.alpn_protocol(), Some(&b"http/1.1"[..]));
    let request = format!(
        "GET / HTTP/1.1\r\nHost: localhost:{}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
        addr.port()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let head = read_head(&mut stream).await;
    assert!(head.starts_with("HTTP/1.1 101 "), "{head:?}");
    RawClient::opened(stream)
}

/// The next event the server's actor saw, within 5 s.
async fn seen(rx: &mut mpsc::UnboundedReceiver<Seen>) -> Seen {
    tokio::time::timeout(Duration::from_secs(5), rx.recv())
        .await
        .expect("the server's actor saw nothing for 5 s")
        .expect("the server is gone")
}

/// The rustls configuration for `certified`, ALPN `http/1.1`.
fn server_config(certified: &rcgen::CertifiedKey<rcgen::KeyPair>) -> rustls::ServerConfig {
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(certified.signing_key.serialize_der().into());
    let provider = ws::tls::crypto_provider();
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![certified.cert.der().clone()], key)
        .unwrap();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    config
}

/// Which path serves.
#[derive(Clone, Copy, Debug)]
enum Path {
    Standalone,
    Route,
}

/// A server with `server`'s settings on `path`, over TLS with `certified`, whose
/// actors echo and report what they see; stopped when dropped.
struct Running {
    addr: SocketAddr,
    seen: mpsc::UnboundedReceiver<Seen>,
    stop: Option<Box<dyn FnOnce()>>,
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            stop();
        }
    }
}

fn start(
    path: Path,
    server: ws::Server,
    certified: &rcgen::CertifiedKey<rcgen::KeyPair>,
) -> Running {
    match path {
        Path::Standalone => {
            let server = server.tls_config(Arc::new(server_config(certified)));
            let (addr, handle, seen) = support::listen_recorder(server);
            Running {
                addr,
                seen,
                stop: Some(Box::new(move || {
                    actix_rt::spawn(async move { handle.stop(false).await });
                })),
            }
        }
        Path::Route => {
            use actix_web::{web, App, HttpServer};
            let (tx, seen) = mpsc::unbounded_channel();
            let server = web::Data::new(server);
            let srv = HttpServer::new(move || {
                let tx = tx.clone();
                App::new()
                    .app_data(server.clone())
                    .default_service(web::get().to(
                        move |req: ws::Upgrade, server: web::Data<ws::Server>| {
                            let actor = Recorder {
                                tx: tx.clone(),
                                conn: None,
                                echo: true,
                            };
                            async move { server.start(actor, &req) }
                        },
                    ))
            })
            .on_connect(ws::on_connect)
            .workers(1)
            .disable_signals()
            .shutdown_timeout(1)
            .bind_rustls_0_23("127.0.0.1:0", server_config(certified))
            .unwrap();
            let addr = srv.addrs()[0];
            let running = srv.run();
            let handle = running.handle();
            actix_rt::spawn(running);
            Running {
                addr,
                seen,
                stop: Some(Box::new(move || {
                    actix_rt::spawn(async move { handle.stop(false).await });
                })),
            }
        }
    }
}

#[actix_rt::test]
async fn our_client_echoes_over_wss_from_pem_files_and_closes_with_1000() {
    let certified = certificate();
    let server = ws::Server::new().tls(pem_files(&certified, "client"));
    let (addr, handle, mut server_seen) = support::listen_recorder(server);
    client_echoes_and_closes(addr, &certified, &mut server_seen).await;
    handle.stop(false).await;
}

#[actix_rt::test]
async fn our_client_echoes_over_wss_on_the_route_and_closes_with_1000() {
    let certified = certificate();
    let mut running = start(Path::Route, ws::Server::new(), &certified);
    client_echoes_and_closes(running.addr, &certified, &mut running.seen).await;
}

/// Our client, over `wss://localhost:{port}/`: echo, close 1000, on both ends.
async fn client_echoes_and_closes(
    addr: SocketAddr,
    certified: &rcgen::CertifiedKey<rcgen::KeyPair>,
    server_seen: &mut mpsc::UnboundedReceiver<Seen>,
) {
    let (tx, mut client_seen) = mpsc::unbounded_channel();
    let client = ws::Client::new(&format!("wss://localhost:{}/", addr.port()))
        .unwrap()
        .root_certificate_pem(certified.cert.pem());
    let (_, conn) = client
        .connect_with_conn(Recorder {
            tx,
            conn: None,
            echo: false,
        })
        .await
        .expect("connected over wss://");
    assert!(matches!(seen(&mut client_seen).await, Seen::Open(_)));
    assert!(matches!(seen(server_seen).await, Seen::Open(_)));
    conn.send_text("hello over tls");
    match seen(&mut client_seen).await {
        Seen::Message(ws::Message::Text(text)) => assert_eq!(text, "hello over tls"),
        other => panic!("expected the echo, got {other:?}"),
    }
    conn.close(CloseCode::NORMAL, "done").await.unwrap();
    match seen(&mut client_seen).await {
        Seen::Close(close) => assert_eq!((close.code, close.was_clean), (CloseCode::NORMAL, true)),
        other => panic!("expected the Close, got {other:?}"),
    }
    assert!(matches!(seen(server_seen).await, Seen::Message(_)));
    match seen(server_seen).await {
        Seen::Close(close) => assert_eq!(
            (close.code, close.reason.as_str(), close.was_clean),
            (CloseCode::NORMAL, "done", true)
        ),
        other => panic!("expected the Close, got {other:?}"),
    }
}

#[actix_rt::test]
async fn a_server_config_given_whole_serves_wss_with_alpn_http_1_1() {
    let certified = certificate();
    let server = ws::Server::new().tls_config(Arc::new(server_config(&certified)));
    let (addr, handle, mut server_seen) = support::listen_recorder(server);
    let mut client = connect_tls(addr, &certified, None).await;
    client
        .stream
        .write_all(&frame(true, OpCode::Binary, &[1, 2, 3]))
        .await
        .unwrap();
    match client.next().await {
        Event::Message(Message::Binary(bytes)) => assert_eq!(&bytes[..], [1, 2, 3]),
        other => panic!("expected the echo, got {other:?}"),
    }
    client
        .stream
        .write_all(&frame(true, OpCode::Close, &[0x03, 0xe8]))
        .await
        .unwrap();
    assert!(matches!(client.next().await, Event::Close(c) if c.code == CloseCode::NORMAL));
    assert!(matches!(seen(&mut server_seen).await, Seen::Open(_)));
    assert!(matches!(seen(&mut server_seen).await, Seen::Message(_)));
    assert!(matches!(seen(&mut server_seen).await, Seen::Close(c) if c.was_clean));
    // After the server's Close: its close_notify, then EOF.
    let mut rest = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), client.stream.read_to_end(&mut rest));
    assert_eq!(read.await.expect("EOF within 5 s").unwrap(), 0);
    handle.stop(false).await;
}

#[actix_rt::test]
async fn a_peer_that_does_not_finish_the_tls_handshake_is_dropped_at_the_handshake_timeout() {
    let certified = certificate();
    let server = ws::Server::new()
        .tls(pem_files(&certified, "timeout"))
        .handshake_timeout(Duration::from_millis(200));
    let (addr, handle, _) = support::listen_recorder(server);
    // Connects and sends nothing: the TLS handshake never starts.
    let mut silent = TcpStream::connect(addr).await.unwrap();
    let mut buf = [0u8; 64];
    let read = tokio::time::timeout(Duration::from_secs(5), silent.read(&mut buf)).await;
    assert_eq!(
        read.expect("closed within 5 s").unwrap(),
        0,
        "closed, nothing written"
    );
    // Sends what is not TLS: dropped at once.
    let mut plain = TcpStream::connect(addr).await.unwrap();
    plain
        .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let read = tokio::time::timeout(Duration::from_secs(5), plain.read(&mut buf)).await;
    assert!(read
        .expect("closed within 5 s")
        .map_or(true, |n| n == 0 || buf[0] == 0x15));
    handle.stop(false).await;
}

/// The most a TCP socket's send buffer grows to (tcp_wmem's third field).
fn kernel_send_buffer_max() -> usize {
    let wmem = std::fs::read_to_string("/proc/sys/net/ipv4/tcp_wmem").expect("tcp_wmem");
    wmem.split_whitespace()
        .nth(2)
        .and_then(|max| max.parse().ok())
        .expect("tcp_wmem: three numbers")
}

#[actix_rt::test]
async fn a_peer_that_never_reads_is_reset_under_tls_on_the_standalone_server() {
    never_reads(Path::Standalone).await;
}

#[actix_rt::test]
async fn a_peer_that_never_reads_is_reset_under_tls_on_the_route() {
    never_reads(Path::Route).await;
}

/// A peer that never reads after the handshake: the send buffer fills, the idle
/// timeout fails the connection, its Close cannot reach the peer, and when the
/// close times out the TCP socket under the TLS stream is reset.
async fn never_reads(path: Path) {
    let certified = certificate();
    let close_timeout = Duration::from_millis(300);
    let server = ws::Server::new()
        .ping_interval(None)
        .idle_timeout(Some(Duration::from_millis(300)))
        .close_timeout(close_timeout)
        // More than the kernel's send buffer can take: the Close queued behind it
        // cannot reach the peer.
        .max_send_buffer(2 * kernel_send_buffer_max());
    let mut running = start(path, server, &certified);
    // Reads nothing after the handshake, through a small fixed receive buffer.
    let mut client = connect_tls(running.addr, &certified, Some(4096)).await;
    let conn = match seen(&mut running.seen).await {
        Seen::Open(conn) => conn,
        other => panic!("expected Open, got {other:?}"),
    };
    support::send_until_stuck(&conn).await;
    assert!(matches!(
        seen(&mut running.seen).await,
        Seen::Error(ws::Error::IdleTimeout(_))
    ));
    assert!(matches!(seen(&mut running.seen).await, Seen::Close(c) if !c.was_clean));
    // The reset reaches the TCP socket under the TLS stream: an error on the
    // client's socket while its unread bytes still wait.
    let tcp = client.stream.get_ref().0;
    let ready = tokio::time::timeout(Duration::from_secs(5), tcp.ready(Interest::ERROR))
        .await
        .expect("the server still holds the socket 5 s after the close timed out")
        .unwrap();
    assert!(ready.is_error(), "{path:?}");
    // What the client reads ends in the reset, not in a close_notify and a FIN.
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        let read = tokio::time::timeout(Duration::from_secs(5), client.stream.read(&mut chunk));
        match read.await.expect("neither EOF nor a reset") {
            Ok(0) => panic!("EOF instead of a reset ({path:?})"),
            Ok(_) => continue,
            Err(e) => {
                assert_eq!(
                    e.kind(),
                    std::io::ErrorKind::ConnectionReset,
                    "{path:?}: {e}"
                );
                break;
            }
        }
    }
}
