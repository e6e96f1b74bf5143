//! Server-Sent Events across two servers on one Redis: an event stream on
//! server B gets what is published on server A, and a reader that reconnects
//! with `Last-Event-ID` resumes from the topic's Redis stream, exactly after its
//! id; the stream, a hidden member, is not announced in presence
//! (`scripts/test-all.sh` installs `redis-server` and runs it).

#![cfg(all(feature = "redis", feature = "server"))]

use std::time::Duration;

use websocket_driver::{
    hub::{redis::RedisBackplane, Events},
    settings::{NamespaceSettings, Settings},
    Hub,
};

#[path = "support/redis.rs"]
mod redis_server;
use redis_server::Redis;

#[path = "support/sse.rs"]
mod sse;
use sse::{message, serve, Client};

fn settings(redis: &Redis) -> Settings {
    let mut settings = Settings::default();
    settings.redis.url = redis.url();
    let mut feeds = NamespaceSettings::default();
    feeds.topics = Some("feed:*".into());
    feeds.history_size = Some(100);
    feeds.presence = Some(true);
    settings.hub.namespaces.insert("feeds".into(), feeds);
    settings
}

/// `f` on a blocking thread (the raw client blocks; the backplanes' tasks run
/// on this test's thread).
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f).await.expect("no panic")
}

/// Wait (bounded) until Redis numbered `offset` publications of `feed:x`.
async fn numbered(redis: &Redis, offset: u64) {
    let at = || redis.cli(&["GET", "ws:{feed:x}:offset"]);
    for _ in 0..1_000 {
        if at() == offset.to_string() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("offset {} in Redis, not {offset}", at());
}

#[actix_rt::test]
#[ignore = "needs redis-server; scripts/test-all.sh runs it"]
async fn an_event_stream_on_one_server_gets_anothers_publications_and_resumes_from_redis() {
    let redis = Redis::start().await;
    let settings = settings(&redis);
    let (a, b) = (Hub::with_settings(&settings), Hub::with_settings(&settings));
    let _backplane_a = RedisBackplane::start(&a, settings.redis.clone())
        .await
        .unwrap();
    let _backplane_b = RedisBackplane::start(&b, settings.redis.clone())
        .await
        .unwrap();
    let server = serve(Events::new(&b).heartbeat(Duration::ZERO));
    let addr = server.addr;
    // Its start, once B is subscribed (the join's answer comes from Redis).
    let (mut reader, start) = blocking(move || {
        let mut reader = Client::get(addr, "/t/feed:x/events", "");
        let start = reader.event();
        (reader, start)
    })
    .await;
    let e = start
        .strip_prefix("id: ")
        .and_then(|id| id.strip_suffix(":0"))
        .unwrap_or_else(|| panic!("a start at offset 0: {start:?}"))
        .to_owned();
    // A reader, not a participant: no member listed, nothing announced (B's
    // view of the topic's users comes from Redis).
    assert_eq!((b.count("feed:x"), b.members("feed:x")), (1, vec![]));
    assert_eq!(b.users("feed:x"), Vec::<String>::new());
    assert_eq!(redis.cli(&["HLEN", "ws:{feed:x}:pcount"]), "0");
    for n in 1..=3 {
        a.publish("feed:x", format!("m{n}"));
    }
    let got = blocking(move || {
        let got: Vec<String> = (0..3).map(|_| reader.event()).collect();
        drop(reader);
        got
    })
    .await;
    let expected: Vec<String> = (1..=3).map(|n| message(&e, n, &format!("m{n}"))).collect();
    assert_eq!(got, expected);
    // Missed while away: kept in the topic's Redis stream.
    for n in 4..=5 {
        a.publish("feed:x", format!("m{n}"));
    }
    numbered(&redis, 5).await;
    let last = format!("Last-Event-ID: {e}:3\r\n");
    let mut again = blocking(move || {
        let mut again = Client::get(addr, "/t/feed:x/events", &last);
        assert_eq!(again.status, 200);
        assert_eq!(again.event(), message(&e, 4, "m4"));
        assert_eq!(again.event(), message(&e, 5, "m5"));
        (again, e)
    })
    .await;
    a.publish("feed:x", "m6");
    blocking(move || {
        let (again, e) = &mut again;
        assert_eq!(again.event(), message(e, 6, "m6"));
    })
    .await;
}
