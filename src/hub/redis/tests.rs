//! The backplane's supervision and its stop, against a `redis-server` of the
//! test's own (`scripts/test-all.sh` installs it and runs these).

use std::{sync::Arc, time::Duration};

use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message as WsMessage;

use super::RedisBackplane;
use crate::{
    actor::{endpoint, Conn, Endpoint, EndpointContext, Message},
    hub::{inner::Hub, types::JoinOptions},
    server::Server,
    settings::Settings,
};

#[path = "../../../tests/support/redis.rs"]
mod redis_server;
use redis_server::Redis;

#[path = "../../../tests/support/cut.rs"]
mod cut;
use cut::Cut;

/// Joins `room` as `alice` on open, answering `joined`.
struct Member(Hub);

impl Endpoint for Member {
    fn on_open(&mut self, conn: &Conn, _: &mut EndpointContext<Self>) {
        let options = JoinOptions::default()
            .user("alice")
            .on_joined(|_| vec![Message::from("joined")]);
        self.0.join_with(conn, "room", options).unwrap();
    }
}

/// Wait (bounded) until `f` holds.
async fn until(what: &str, mut f: impl FnMut() -> bool) {
    for _ in 0..500 {
        if f() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("{what}: not within 5 s");
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn text(ws: &mut Ws) -> String {
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

async fn setup(
    redis: &Redis,
    restart_wait: Duration,
) -> (Hub, Arc<RedisBackplane>, Ws, actix_server::ServerHandle) {
    setup_at(redis.port, restart_wait).await
}

/// [`setup`] with Redis at `port` (a relay's).
async fn setup_at(
    port: u16,
    restart_wait: Duration,
) -> (Hub, Arc<RedisBackplane>, Ws, actix_server::ServerHandle) {
    let mut settings = Settings::default();
    settings.redis.url = format!("redis://127.0.0.1:{port}");
    settings.redis.command_timeout = Duration::from_millis(500);
    settings.redis.reconnect_initial = restart_wait;
    settings.redis.reconnect_max = restart_wait;
    settings.hub.presence = true;
    let hub = Hub::with_settings(&settings);
    hub.set_renderer(|_, _, m| {
        assert_ne!(m.as_bytes(), b"boom", "a renderer that panics");
        m
    });
    let backplane = RedisBackplane::start(&hub, settings.redis.clone())
        .await
        .unwrap();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let h = hub.clone();
    let running = Server::with_settings(settings)
        .listen_on(listener, 1, move |_| Ok(endpoint(Member(h.clone()))))
        .unwrap();
    let handle = running.handle();
    actix_rt::spawn(running);
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/"))
        .await
        .unwrap();
    assert_eq!(text(&mut ws).await, "joined");
    (hub, backplane, ws, handle)
}

#[actix_rt::test]
#[ignore = "needs redis-server; scripts/test-all.sh runs it"]
async fn a_crashed_task_restarts_subscribed_and_meanwhile_publications_stay_here_counted() {
    let redis = Redis::start().await;
    let (hub, backplane, mut ws, handle) = setup(&redis, Duration::from_millis(1500)).await;
    assert_eq!(
        redis.cli(&["PUBSUB", "NUMSUB", "ws:{room}"]),
        "ws:{room}\n1"
    );
    hub.publish("room", "before");
    assert_eq!(text(&mut ws).await, "before");

    backplane.crash();
    until("down", || !backplane.is_up()).await;
    hub.publish("room", "during");
    assert_eq!(text(&mut ws).await, "during", "delivered here while down");
    let stats = backplane.stats();
    assert_eq!((stats.dropped, stats.dropped_while_down), (1, 1));
    assert_eq!(stats.restarts, 1);

    until("up again", || backplane.is_up()).await;
    // Subscribed again (with the hub's generation), presence announced again.
    until("subscribed again", || {
        redis.cli(&["PUBSUB", "NUMSUB", "ws:{room}"]) == "ws:{room}\n1"
    })
    .await;
    until("present again", || {
        redis.cli(&["HGET", "ws:{room}:pcount", "alice"]) == "1"
    })
    .await;
    hub.publish("room", "after");
    assert_eq!(text(&mut ws).await, "after", "through Redis again");

    // A renderer's panic on the task is caught and counted by the hub (its
    // callbacks run under catch_unwind): the task goes on, no restart.
    hub.publish("room", "boom");
    hub.publish("room", "next");
    assert_eq!(text(&mut ws).await, "next");
    assert_eq!(
        hub.inner
            .metrics
            .callback_panics
            .load(std::sync::atomic::Ordering::Relaxed),
        1
    );
    assert_eq!(backplane.stats().panics, 0);
    assert_eq!(backplane.stats().restarts, 1);

    ws.send(WsMessage::Close(None)).await.unwrap();
    drop(ws);
    handle.stop(false).await;
}

#[actix_rt::test]
#[ignore = "needs redis-server; scripts/test-all.sh runs it"]
async fn stop_leaves_no_subscription_and_no_presence_and_then_publications_stay_here() {
    let redis = Redis::start().await;
    let (hub, backplane, mut ws, handle) = setup(&redis, Duration::from_millis(100)).await;
    assert_eq!(redis.cli(&["HGET", "ws:{room}:pcount", "alice"]), "1");
    backplane.stop(Duration::from_secs(1)).await;
    assert!(!backplane.is_up());
    assert_eq!(redis.cli(&["PUBSUB", "CHANNELS"]), "");
    assert_eq!(redis.cli(&["HGET", "ws:{room}:pcount", "alice"]), "");
    assert_eq!(redis.cli(&["ZCARD", "ws:servers"]), "0");
    // Every key left has a time to live.
    let keys = redis.cli(&["KEYS", "*"]);
    for key in keys.lines().filter(|k| !k.is_empty()) {
        let ttl: i64 = redis.cli(&["PTTL", key]).parse().unwrap();
        assert!(ttl > 0, "{key} has no time to live ({ttl})");
    }
    hub.publish("room", "after the stop");
    assert_eq!(text(&mut ws).await, "after the stop");
    assert_eq!(backplane.stats().dropped_while_down, 1);
    backplane.stop(Duration::ZERO).await;
    drop(ws);
    handle.stop(false).await;
}

/// Once the backplane is up again, the next publication is what `ws` gets next
/// (not a copy of the one before).
async fn next_is_after(hub: &Hub, backplane: &RedisBackplane, ws: &mut Ws) {
    until("up again", || backplane.is_up()).await;
    hub.publish("room", "after");
    assert_eq!(text(ws).await, "after", "not \"once\" again");
}

/// The publish script's first line: what marks its request on the wire.
const PUBLISH_MARK: &[u8] = b"Number, keep, publish";

#[actix_rt::test]
#[ignore = "needs redis-server; scripts/test-all.sh runs it"]
async fn a_publication_carried_out_whose_answer_was_lost_after_it_came_back_is_delivered_once() {
    let redis = Redis::start().await;
    let cut = Cut::start(redis.port).await;
    let (hub, backplane, mut ws, handle) = setup_at(cut.port, Duration::from_millis(100)).await;
    // Redis carries it out; its answer is held until it came back through
    // the subscription, then lost with the connection.
    cut.cut_after(PUBLISH_MARK, true);
    hub.publish("room", "once");
    assert_eq!(text(&mut ws).await, "once");
    cut.go();
    cut.cut_count(1).await;
    until("the lost answer taken", || {
        backplane.stats().duplicates_avoided == 1
    })
    .await;
    next_is_after(&hub, &backplane, &mut ws).await;
    let s = backplane.stats();
    assert_eq!((s.published, s.dropped, s.duplicates_avoided), (2, 0, 1));
    drop(ws);
    handle.stop(false).await;
}

#[actix_rt::test]
#[ignore = "needs redis-server; scripts/test-all.sh runs it"]
async fn a_publication_carried_out_whose_answer_was_lost_before_it_came_back_is_delivered_once() {
    let redis = Redis::start().await;
    let cut = Cut::start(redis.port).await;
    let (hub, backplane, mut ws, handle) = setup_at(cut.port, Duration::from_millis(100)).await;
    // Its answer lost at once, its copy held on the subscription: delivered
    // here in its place first.
    cut.hold(true);
    cut.cut_after(PUBLISH_MARK, false);
    hub.publish("room", "once");
    assert_eq!(text(&mut ws).await, "once");
    assert_eq!(backplane.stats().dropped, 1);
    // The copy through Redis comes and is not delivered.
    cut.hold(false);
    until("the copy skipped", || {
        backplane.stats().duplicates_avoided == 1
    })
    .await;
    next_is_after(&hub, &backplane, &mut ws).await;
    let s = backplane.stats();
    assert_eq!((s.published, s.dropped, s.duplicates_avoided), (1, 1, 1));
    drop(ws);
    handle.stop(false).await;
}
