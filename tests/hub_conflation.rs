//! Conflation with real connections (`slow_consumer = "latest"`): a subscriber
//! that reads nothing while 10,000 updates go out gets, once it reads, a
//! strictly increasing subsequence of them ending with the last, while one that
//! keeps up gets every one in order.

#![cfg(feature = "server")]

use std::{
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
    time::Duration,
};

use websocket_driver as ws;

#[path = "support/raw_ws.rs"]
mod raw_ws;
use raw_ws::Client;

/// Joins `tick` on open.
struct Ticker(ws::Hub);

impl ws::Endpoint for Ticker {
    fn on_open(&mut self, conn: &ws::Conn, _: &mut ws::EndpointContext<Self>) {
        self.0.join(conn, "tick").unwrap();
    }
}

/// Wait (bounded: 20 s) until `f` holds.
async fn until(what: &str, mut f: impl FnMut() -> bool) {
    for _ in 0..20_000 {
        if f() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    panic!("{what}: not within 20 s");
}

#[actix_rt::test]
async fn a_slow_reader_of_a_conflated_feed_gets_the_newest_and_a_fast_one_everything() {
    const UPDATES: u32 = 10_000;
    let mut settings = ws::Settings::default();
    settings.hub.slow_consumer = ws::SlowConsumer::Latest;
    settings.hub.send_budget_bytes = 2048;
    // The kernel would otherwise take megabytes for the slow peer first.
    settings.connection.socket_send_buffer = Some(4096);
    let hub = ws::Hub::with_settings(&settings);
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let h = hub.clone();
    let running = ws::Server::with_settings(settings)
        .listen_on(listener, 1, move |_| Ok(ws::endpoint(Ticker(h.clone()))))
        .unwrap();
    let handle = running.handle();
    actix_rt::spawn(running);
    let mut slow = Client::connect_with(addr, "/", Some(4096)).await;
    let mut fast = Client::connect(addr, "/").await;
    until("both joined", || hub.count("tick") == 2).await;
    let received = Arc::new(AtomicUsize::new(0));
    let counter = received.clone();
    let reader = actix_rt::spawn(async move {
        for n in 1..=UPDATES {
            assert_eq!(fast.text().await, format!("{n:08}"), "in order");
            counter.fetch_add(1, Ordering::Relaxed);
        }
    });
    // In batches of 16 the fast reader takes before the next.
    for batch in 0..UPDATES / 16 {
        for n in batch * 16 + 1..=batch * 16 + 16 {
            hub.publish("tick", format!("{n:08}"));
        }
        let want = (batch as usize + 1) * 16;
        until("the fast reader caught up", || {
            received.load(Ordering::Relaxed) == want
        })
        .await;
    }
    reader.await.unwrap();
    // The slow one reads now: what was buffered, then the newest.
    let mut got: Vec<u32> = Vec::new();
    while got.last() != Some(&UPDATES) {
        got.push(slow.text().await.parse().unwrap());
    }
    assert!(got.windows(2).all(|w| w[0] < w[1]), "strictly increasing");
    assert!(
        got.len() < UPDATES as usize / 2,
        "{} of {UPDATES}",
        got.len()
    );
    until("counted", || {
        hub.conflated() == u64::from(UPDATES) - got.len() as u64
    })
    .await;
    assert_eq!(hub.dropped(), 0);
    assert_eq!(hub.slow_closes(), 0);
    handle.stop(false).await;
}
