//! A cache topic across two servers on one Redis: the newest publication made
//! on one, with no member anywhere, reaches a joiner on the other from the
//! topic's stream (`scripts/test-all.sh` installs `redis-server` and runs it).

use std::{
    process::{Child, Command, Stdio},
    time::Duration,
};

use futures_util::StreamExt;
use tokio_tungstenite::tungstenite::Message as WsMessage;

use crate::{
    actor::{endpoint, Conn, Endpoint, EndpointContext, Message},
    hub::{redis::RedisBackplane, Hub, JoinOptions},
    server::Server,
    settings::{NamespaceSettings, Settings},
};

/// A `redis-server` of the test's own, killed when dropped.
struct Redis(Child, u16);

impl Redis {
    async fn start() -> Redis {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start redis-server (apt-get install -y redis-server)");
        let redis = Redis(child, port);
        for _ in 0..400 {
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                return redis;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("redis-server did not listen within 10 s");
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Joins `price:x` on open, answering `joined`.
struct Watcher(Hub);

impl Endpoint for Watcher {
    fn on_open(&mut self, conn: &Conn, _: &mut EndpointContext<Self>) {
        let options = JoinOptions::default().on_joined(|_| vec![Message::from("joined")]);
        self.0.join_with(conn, "price:x", options).unwrap();
    }
}

fn settings(redis: &Redis) -> Settings {
    let mut settings = Settings::default();
    settings.redis.url = format!("redis://127.0.0.1:{}", redis.1);
    settings.hub.namespaces.insert(
        "prices".into(),
        NamespaceSettings {
            topics: Some("price:*".into()),
            cache: Some(true),
            ..NamespaceSettings::default()
        },
    );
    settings
}

async fn text(
    ws: &mut tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
) -> String {
    loop {
        let frame = tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .expect("a message within 10 s")
            .expect("open")
            .expect("a frame");
        if let WsMessage::Text(t) = frame {
            return t.to_string();
        }
    }
}

#[actix_rt::test]
#[ignore = "needs redis-server; scripts/test-all.sh runs it"]
async fn a_cache_topics_newest_publication_reaches_a_joiner_on_another_server() {
    let redis = Redis::start().await;
    let settings = settings(&redis);
    let (a, b) = (Hub::with_settings(&settings), Hub::with_settings(&settings));
    let _backplane_a = RedisBackplane::start(&a, settings.redis.clone())
        .await
        .unwrap();
    let _backplane_b = RedisBackplane::start(&b, settings.redis.clone())
        .await
        .unwrap();
    // Published on A, a member nowhere: kept in the topic's stream.
    for n in 1..=3 {
        a.publish("price:x", format!("p{n}"));
    }
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let hub = b.clone();
    let running = Server::with_settings(settings)
        .listen_on(listener, 1, move |_| Ok(endpoint(Watcher(hub.clone()))))
        .unwrap();
    let handle = running.handle();
    actix_rt::spawn(running);
    // The publications reach Redis asynchronously: wait (bounded) until the
    // third is numbered.
    let offset = || {
        let out = Command::new("redis-cli")
            .args(["-p", &redis.1.to_string(), "GET", "ws:{price:x}:offset"])
            .output()
            .expect("redis-cli (apt-get install -y redis-tools)");
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    };
    for _ in 0..500 {
        if offset() == "3" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(offset(), "3");
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/"))
        .await
        .unwrap();
    assert_eq!(text(&mut ws).await, "joined");
    assert_eq!(text(&mut ws).await, "p3");
    a.publish("price:x", "p4");
    assert_eq!(text(&mut ws).await, "p4");
    handle.stop(false).await;
}
