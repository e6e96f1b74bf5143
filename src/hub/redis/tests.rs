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
    // Room for a burst of large publications (the test that queues them)
    // while the test reads them.
    settings.hub.send_budget_bytes = 32 << 20;
    settings.connection.max_send_buffer = 32 << 20;
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

/// How many publications are queued behind a connection that Redis does not
/// read, and how large each is: together far more than the sockets' buffers
/// hold, so that most wait in the client's queue, unwritten.
const QUEUED: usize = 64;
const QUEUED_BYTES: usize = 128 * 1024;

/// The `n`th of them: its number, then filler.
fn queued(n: usize) -> String {
    let mut text = format!("{n:02}|");
    text.push_str(&"x".repeat(QUEUED_BYTES));
    text
}

/// The next `n` texts on `ws`, each cut to its number.
async fn numbers(ws: &mut Ws, n: usize) -> Vec<String> {
    let mut got = Vec::with_capacity(n);
    for _ in 0..n {
        let t = text(ws).await;
        got.push(t.split('|').next().unwrap_or_default().to_owned());
    }
    got
}

#[actix_rt::test]
#[ignore = "needs redis-server; scripts/test-all.sh runs it"]
async fn publications_queued_past_the_command_timeout_on_a_live_connection_reach_every_server_once()
{
    let redis = Redis::start().await;
    let cut = Cut::start(redis.port).await;
    // A publishes through the relay; B reads Redis directly.
    let (hub, backplane, mut on_a, handle_a) = setup_at(cut.port, Duration::from_millis(100)).await;
    let (_hub_b, backplane_b, mut on_b, handle_b) = setup(&redis, Duration::from_millis(100)).await;
    // Redis reads none of A's publications (its connection lives): the first
    // fill the sockets' buffers, the rest wait in the client's queue, all past
    // the command timeout (500 ms), then Redis reads them all.
    cut.hold_requests(PUBLISH_MARK);
    for n in 0..QUEUED {
        hub.publish("room", queued(n));
    }
    until("every one past the command timeout", || {
        backplane.stats().slow == QUEUED as u64
    })
    .await;
    assert_eq!(backplane.stats().published, 0, "none answered yet");
    cut.pass_requests();
    // Every one reaches both servers, once, in order: none given up on.
    let expected: Vec<String> = (0..QUEUED).map(|n| format!("{n:02}")).collect();
    let (a, b) = tokio::join!(numbers(&mut on_a, QUEUED), numbers(&mut on_b, QUEUED));
    assert_eq!((a, b), (expected.clone(), expected));
    hub.publish("room", "after");
    let (a, b) = tokio::join!(text(&mut on_a), text(&mut on_b));
    assert_eq!((a.as_str(), b.as_str()), ("after", "after"), "no copy");
    // (A publication may come back before its answer is taken.)
    until("every answer taken", || {
        backplane.stats().published == QUEUED as u64 + 1
    })
    .await;
    let s = backplane.stats();
    assert_eq!(
        (
            s.published,
            s.dropped,
            s.abandoned,
            s.duplicates_avoided,
            s.slow
        ),
        (QUEUED as u64 + 1, 0, 0, 0, QUEUED as u64)
    );
    assert_eq!(backplane_b.stats().received, QUEUED as u64 + 1);
    drop((on_a, on_b));
    handle_a.stop(false).await;
    handle_b.stop(false).await;
}
