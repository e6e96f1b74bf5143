//! A cache topic across two servers on one Redis: the newest publication made
//! on one, with no member anywhere, reaches a joiner on the other from the
//! topic's stream (`scripts/test-all.sh` installs `redis-server` and runs it).

#![cfg(all(feature = "redis", feature = "server"))]

use std::time::Duration;

use futures_util::StreamExt;
use tokio_tungstenite::tungstenite::Message as WsMessage;

use websocket_driver::{
    endpoint,
    hub::redis::RedisBackplane,
    settings::{NamespaceSettings, Settings},
    Conn, Endpoint, EndpointContext, Hub, JoinOptions, Message, Server,
};

#[path = "support/redis.rs"]
mod redis_server;
use redis_server::Redis;

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
    settings.redis.url = redis.url();
    let mut prices = NamespaceSettings::default();
    prices.topics = Some("price:*".into());
    prices.cache = Some(true);
    settings.hub.namespaces.insert("prices".into(), prices);
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
    let offset = || redis.cli(&["GET", "ws:{price:x}:offset"]);
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
