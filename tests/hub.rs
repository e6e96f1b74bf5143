//! The connection manager (`ws::Hub`), through real connections: a standalone
//! server with two worker threads (so fan-out crosses threads), and raw TCP
//! clients that check every frame they receive.

use std::{
    collections::{BTreeMap, HashMap},
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::Duration,
};

use actix::prelude::*;
use rand::{rngs::StdRng, Rng, SeedableRng};
use tokio::{io::AsyncWriteExt, sync::mpsc};
use websocket_driver as ws;

// ----- the server -----

/// Connections the server holds, by the path they came in on, for the test to
/// drive the hub with.
type Conns = Arc<Mutex<Vec<(String, ws::Conn)>>>;

/// The server's endpoint: on `/sub` it joins `room`; a message from any
/// connection is published to `room`.
struct Member {
    hub: ws::Hub,
    path: String,
    conns: Conns,
    errors: mpsc::UnboundedSender<ws::Error>,
}

impl ws::Endpoint for Member {
    fn on_open(&mut self, conn: &ws::Conn, _: &mut ws::EndpointContext<Self>) {
        // Recorded before it joins: a test that sees the join sees the connection.
        self.conns
            .lock()
            .unwrap()
            .push((self.path.clone(), conn.clone()));
        if self.path == "/sub" {
            self.hub.join(conn, "room").unwrap();
        }
    }

    fn on_message(&mut self, _: &ws::Conn, msg: ws::Message, _: &mut ws::EndpointContext<Self>) {
        self.hub.publish("room", msg);
    }

    fn on_error(&mut self, _: &ws::Conn, error: ws::Error, _: &mut ws::EndpointContext<Self>) {
        let _ = self.errors.send(error);
    }
}

struct TestServer {
    addr: SocketAddr,
    handle: actix_server::ServerHandle,
    conns: Conns,
    errors: mpsc::UnboundedReceiver<ws::Error>,
}

fn server(hub: &ws::Hub, settings: ws::Settings) -> TestServer {
    let _ = rlimit::increase_nofile_limit(20_000);
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let conns: Conns = Arc::default();
    let (errors_tx, errors) = mpsc::unbounded_channel();
    let (hub, registered) = (hub.clone(), conns.clone());
    let running = ws::Server::with_settings(settings)
        .listen_on(listener, 2, move |req| {
            Ok(ws::endpoint(Member {
                hub: hub.clone(),
                path: req.path().to_owned(),
                conns: registered.clone(),
                errors: errors_tx.clone(),
            }))
        })
        .unwrap();
    let handle = running.handle();
    actix_rt::spawn(running);
    TestServer {
        addr,
        handle,
        conns,
        errors,
    }
}

/// Wait (bounded) until `f` holds, polling the server's state every 5 ms.
async fn until(what: &str, mut f: impl FnMut() -> bool) {
    for _ in 0..2_000 {
        if f() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("timed out waiting for {what}");
}

#[path = "support/raw_ws.rs"]
mod raw_ws;
use raw_ws::Client;

// ----- delivery: every publication exactly once, in each publisher's order -----

#[actix_rt::test]
async fn a_thousand_subscribers_get_every_publication_once_in_each_publishers_order() {
    const SUBSCRIBERS: usize = 1_000;
    const PUBLISHERS: usize = 4;
    const EACH: usize = 250;
    let hub = ws::Hub::new();
    let srv = server(&hub, ws::Settings::default());
    let mut subs = Vec::new();
    for _ in 0..SUBSCRIBERS {
        subs.push(Client::connect(srv.addr, "/sub").await);
    }
    until("every subscriber joined", || {
        hub.count("room") == SUBSCRIBERS
    })
    .await;
    let readers: Vec<_> = subs
        .into_iter()
        .map(|mut sub| {
            actix_rt::spawn(async move {
                let mut next = [0usize; PUBLISHERS];
                for _ in 0..PUBLISHERS * EACH {
                    let text = sub.text().await;
                    let (p, n) = text.split_once('-').unwrap();
                    let (p, n): (usize, usize) = (p.parse().unwrap(), n.parse().unwrap());
                    assert_eq!(n, next[p], "publisher {p}'s order");
                    next[p] += 1;
                }
                next
            })
        })
        .collect();
    let mut pubs = Vec::new();
    for _ in 0..PUBLISHERS {
        pubs.push(Client::connect(srv.addr, "/pub").await);
    }
    // The publishers interleave: one message each in turn.
    for n in 0..EACH {
        for (p, publisher) in pubs.iter_mut().enumerate() {
            publisher.send_text(&format!("{p}-{n}")).await;
        }
    }
    for reader in readers {
        assert_eq!(reader.await.unwrap(), [EACH; PUBLISHERS]);
    }
    assert_eq!(hub.deliveries(), (SUBSCRIBERS * PUBLISHERS * EACH) as u64);
    assert_eq!(hub.dropped() + hub.slow_closes(), 0);
    srv.handle.stop(false).await;
}

// ----- slow consumers -----

/// 1,000 subscribers, one of which never reads (a 4 KiB receive buffer): the
/// others get everything, in order; the slow one is handled by the policy; and what
/// waited for it unwritten never went past its budget plus one publication. Returns
/// the hub, the errors the connections' actors received, the slow peer's client
/// (which read nothing yet) and the server.
async fn one_peer_never_reads(
    policy: ws::SlowConsumer,
) -> (ws::Hub, Vec<ws::Error>, Client, TestServer) {
    const SUBSCRIBERS: usize = 1_000;
    const PUBLICATIONS: usize = 296;
    const SIZE: usize = 1024;
    const BUDGET: usize = 16 * 1024;
    let mut settings = ws::Settings::default();
    settings.hub.send_budget_bytes = BUDGET;
    settings.hub.slow_consumer = policy;
    // The kernel would otherwise take megabytes for the slow peer before our
    // budget is reached.
    settings.connection.socket_send_buffer = Some(8 * 1024);
    let hub = ws::Hub::with_settings(&settings);
    let mut srv = server(&hub, settings);
    let slow = Client::connect_with(srv.addr, "/sub", Some(4096)).await;
    until("the slow subscriber joined", || hub.count("room") == 1).await;
    let slow_conn = srv.conns.lock().unwrap()[0].1.clone();
    let mut subs = Vec::new();
    for _ in 1..SUBSCRIBERS {
        subs.push(Client::connect(srv.addr, "/sub").await);
    }
    until("every subscriber joined", || {
        hub.count("room") == SUBSCRIBERS
    })
    .await;
    let received = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let readers: Vec<_> = subs
        .into_iter()
        .map(|mut sub| {
            let received = received.clone();
            actix_rt::spawn(async move {
                for n in 0..PUBLICATIONS {
                    let text = sub.text().await;
                    assert_eq!(text.len(), SIZE);
                    assert!(text.starts_with(&format!("{n:05}")), "in order");
                    received.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
            })
        })
        .collect();
    let pad = "x".repeat(SIZE - 5);
    let mut most = 0;
    // In batches of 8 (8 KiB, half the budget), each read by every reader before
    // the next: the readers (tasks of this one test thread) keep up, the slow
    // peer does not.
    for batch in 0..PUBLICATIONS / 8 {
        for n in batch * 8..batch * 8 + 8 {
            hub.publish("room", format!("{n:05}{pad}"));
            most = most.max(slow_conn.buffered_amount());
        }
        let want = (batch + 1) * 8 * (SUBSCRIBERS - 1);
        until("the readers caught up", || {
            most = most.max(slow_conn.buffered_amount());
            received.load(std::sync::atomic::Ordering::Relaxed) == want
        })
        .await;
    }
    for reader in readers {
        reader.await.unwrap();
    }
    assert!(
        most < BUDGET + SIZE + 4,
        "held {most} bytes for the slow peer"
    );
    let mut errors = Vec::new();
    while let Ok(error) = srv.errors.try_recv() {
        errors.push(error);
    }
    (hub, errors, slow, srv)
}

#[actix_rt::test]
async fn a_peer_that_never_reads_is_closed_with_1008_and_the_others_get_everything() {
    let (hub, errors, slow, srv) = one_peer_never_reads(ws::SlowConsumer::Close).await;
    drop(slow);
    srv.handle.stop(false).await;
    assert_eq!(hub.slow_closes(), 1);
    assert_eq!(hub.dropped(), 0);
    match errors.as_slice() {
        [ws::Error::SlowPeer {
            buffered,
            limit,
            code,
        }] => {
            assert_eq!((*limit, code.0), (16 * 1024, 1008));
            assert!(*buffered >= 16 * 1024 && *buffered < 16 * 1024 + 1024 + 4);
        }
        other => panic!("expected one SlowPeer error, got {other:?}"),
    }
    // The others got all 296 each; the slow one what fitted before the close.
    assert!(hub.deliveries() >= 296 * 999 && hub.deliveries() < 296 * 1_000);
}

#[actix_rt::test]
async fn a_peer_that_never_reads_has_publications_dropped_and_stays_open() {
    let (hub, errors, mut slow, srv) = one_peer_never_reads(ws::SlowConsumer::Drop).await;
    assert_eq!(hub.slow_closes(), 0);
    assert!(hub.dropped() > 0);
    assert_eq!(hub.deliveries() + hub.dropped(), 296 * 1_000);
    assert!(errors.is_empty(), "{errors:?}");
    // Open: it reads what was queued for it (publications in order, with gaps
    // where they were dropped), and once that is written, it gets a publication
    // made then.
    let got = hub.deliveries() - 296 * 999;
    let mut last = None;
    for _ in 0..got {
        let text = slow.text().await;
        let n: u64 = text[..5].parse().unwrap();
        assert!(last.is_none_or(|l| n > l), "{n} after {last:?}");
        last = Some(n);
    }
    let slow_conn = srv.conns.lock().unwrap()[0].1.clone();
    until("the slow peer's queue was written", || {
        slow_conn.buffered_amount() == 0
    })
    .await;
    hub.publish("room", "still open");
    assert_eq!(slow.text().await, "still open");
    srv.handle.stop(false).await;
}

// ----- presence under churn -----

/// Collects presence events (`None`: the [`End`] the test sent after them).
struct Watcher(mpsc::UnboundedSender<Option<ws::Presence>>);

impl Actor for Watcher {
    type Context = Context<Self>;
}

impl Handler<ws::Presence> for Watcher {
    type Result = ();
    fn handle(&mut self, p: ws::Presence, _: &mut Context<Self>) {
        let _ = self.0.send(Some(p));
    }
}

/// Sent to a [`Watcher`] after every event it is to see.
#[derive(actix::Message)]
#[rtype(result = "()")]
struct End;

impl Handler<End> for Watcher {
    type Result = ();
    fn handle(&mut self, _: End, _: &mut Context<Self>) {
        let _ = self.0.send(None);
    }
}

#[actix_rt::test]
async fn presence_under_churn_reports_exact_first_joins_and_last_leaves() {
    // Four threads join and leave one unconfigured topic (presence on: it is
    // forgotten whenever it empties and made again, often with so few members)
    // for 8 connections of 3 users, users spread over the threads, all at once.
    // Whatever the interleaving, each user's events alternate first join / last
    // leave, and the last one says whether the user is present. (The unit tests
    // force the interleavings; this one runs the real threads.)
    const CONNS: usize = 8;
    const USERS: usize = 3;
    const THREADS: usize = 4;
    let mut settings = ws::Settings::default();
    settings.hub.presence = true;
    let hub = ws::Hub::with_settings(&settings);
    let (tx, mut events) = mpsc::unbounded_channel();
    let watcher = Watcher(tx).start();
    hub.on_presence(watcher.clone().recipient());
    let srv = server(&hub, ws::Settings::default());
    let mut clients = Vec::new();
    for i in 0..CONNS {
        clients.push(Client::connect(srv.addr, "/plain").await);
        // One at a time: the server's i-th connection is the client's i-th.
        until("the connection opened", || {
            srv.conns.lock().unwrap().len() == i + 1
        })
        .await;
    }
    let conns: Vec<ws::Conn> = srv
        .conns
        .lock()
        .unwrap()
        .iter()
        .map(|(_, c)| c.clone())
        .collect();
    let user_of = |i: usize| format!("user{}", i % USERS);
    // Thread t drives the connections i with i % THREADS == t; user i % 50 has
    // connections on every thread.
    let joined: Vec<bool> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..THREADS)
            .map(|t| {
                let (hub, conns) = (hub.clone(), &conns);
                scope.spawn(move || {
                    let mine: Vec<usize> = (t..CONNS).step_by(THREADS).collect();
                    let mut rng = StdRng::seed_from_u64(7 + t as u64);
                    let mut joined = vec![false; CONNS];
                    for _ in 0..20_000 {
                        let i = mine[rng.random_range(0..mine.len())];
                        if joined[i] {
                            assert!(hub.leave(conns[i].id(), "lobby"));
                        } else {
                            let opts = ws::JoinOptions::default()
                                .user(user_of(i))
                                .meta(format!("tab{i}"));
                            hub.join_with(&conns[i], "lobby", opts).unwrap();
                        }
                        joined[i] = !joined[i];
                    }
                    joined
                })
            })
            .collect();
        let mut all = vec![false; CONNS];
        for h in handles {
            for (i, j) in h.join().unwrap().into_iter().enumerate() {
                all[i] |= j;
            }
        }
        all
    });
    let mut joined = joined;
    // Closing connections leaves too: close every other joined one.
    let still: Vec<usize> = (0..CONNS).filter(|&i| joined[i]).collect();
    for i in still.into_iter().step_by(2) {
        let count = hub.count("lobby");
        clients[i].stream.shutdown().await.unwrap();
        until("the closed connection left", || {
            hub.count("lobby") == count - 1
        })
        .await;
        joined[i] = false;
    }
    let present: std::collections::BTreeSet<String> =
        (0..CONNS).filter(|&i| joined[i]).map(user_of).collect();
    // Every event was sent (each join, leave and close returned): one more, sent
    // after them to the same actor, comes after them.
    watcher.do_send(End);
    let mut last: HashMap<String, ws::PresenceKind> = HashMap::new();
    let mut count = 0;
    let mut ended = false;
    until("the end of the presence events", || {
        while let Ok(event) = events.try_recv() {
            let Some(event) = event else {
                ended = true;
                break;
            };
            count += 1;
            // Told with the connection that joined (the user's first) or left
            // (its last): one of that user's.
            let conn = event.conn.expect("a change made here names its connection");
            let at = conns.iter().position(|c| c.id() == conn).unwrap();
            assert_eq!(user_of(at), event.user);
            let before = last.insert(event.user.clone(), event.kind);
            assert_ne!(
                before,
                Some(event.kind),
                "{} told {:?} twice",
                event.user,
                event.kind
            );
            if before.is_none() {
                assert_eq!(
                    event.kind,
                    ws::PresenceKind::Joined,
                    "{} left first",
                    event.user
                );
            }
        }
        ended
    })
    .await;
    let told: std::collections::BTreeSet<String> = last
        .iter()
        .filter(|(_, k)| **k == ws::PresenceKind::Joined)
        .map(|(u, _)| u.clone())
        .collect();
    assert_eq!(told, present);
    assert!(count >= 2 * USERS, "{count} events");
    let users: Vec<String> = present.iter().cloned().collect();
    assert_eq!(hub.users("lobby"), users);
    let members: BTreeMap<String, String> = hub
        .members("lobby")
        .into_iter()
        .map(|m| (m.meta.unwrap(), m.user))
        .collect();
    let expected_members: BTreeMap<String, String> = (0..CONNS)
        .filter(|&i| joined[i])
        .map(|i| (format!("tab{i}"), user_of(i)))
        .collect();
    assert_eq!(members, expected_members);
    srv.handle.stop(false).await;
}

// ----- history and recovery -----

/// What a recovering subscriber sees: the offsets of the texts it receives.
async fn offsets(client: &mut Client, n: usize) -> Vec<u64> {
    let mut seen = Vec::new();
    for _ in 0..n {
        seen.push(client.text().await.parse().unwrap());
    }
    seen
}

/// Publish `n` messages to `topic`, each its own offset as text.
fn publish_offsets(hub: &ws::Hub, topic: &str, n: usize) {
    for _ in 0..n {
        hub.publish_with(topic, None, |p| ws::Message::from(p.offset.to_string()));
    }
}

/// Connect on `/plain` and return the client and its server-side `Conn`.
async fn plain(srv: &TestServer) -> (Client, ws::Conn) {
    let before = srv.conns.lock().unwrap().len();
    let client = Client::connect(srv.addr, "/plain").await;
    until("the connection opened", || {
        srv.conns.lock().unwrap().len() == before + 1
    })
    .await;
    let conn = srv.conns.lock().unwrap()[before].1.clone();
    (client, conn)
}

/// A subscriber receives 5, goes away while 100 go by, and comes back with the
/// position of the last one it received: `history` publications are kept.
async fn come_back(
    history: usize,
    epoch_of: impl FnOnce(&str) -> String,
) -> (ws::Joined, Vec<u64>) {
    let hub = ws::Hub::new();
    hub.configure("news", hub.topic_defaults().history_size(history));
    let srv = server(&hub, ws::Settings::default());
    let (mut first, conn) = plain(&srv).await;
    let joined = hub.join(&conn, "news").unwrap();
    assert_eq!(joined.position.offset, 0);
    publish_offsets(&hub, "news", 5);
    assert_eq!(offsets(&mut first, 5).await, [1, 2, 3, 4, 5]);
    first.stream.shutdown().await.unwrap();
    until("the subscriber left", || hub.count("news") == 0).await;
    publish_offsets(&hub, "news", 100);
    let (mut back, conn) = plain(&srv).await;
    let since = ws::Position {
        epoch: epoch_of(&joined.position.epoch),
        offset: 5,
    };
    let rejoined = hub
        .join_with(&conn, "news", ws::JoinOptions::default().since(since))
        .unwrap();
    publish_offsets(&hub, "news", 3);
    let n = rejoined.replayed + 3;
    let seen = offsets(&mut back, n).await;
    srv.handle.stop(false).await;
    (rejoined, seen)
}

#[actix_rt::test]
async fn a_subscriber_that_comes_back_recovers_exactly_what_it_missed_then_live() {
    let (joined, seen) = come_back(200, str::to_owned).await;
    assert_eq!((joined.recovered, joined.replayed), (Some(true), 100));
    assert_eq!(joined.position.offset, 105);
    // 6..=105 replayed, then 106..=108 live: no gap, no duplicate.
    assert_eq!(seen, (6..=108).collect::<Vec<u64>>());
}

#[actix_rt::test]
async fn a_history_too_short_says_not_recovered_and_replays_nothing() {
    let (joined, seen) = come_back(50, str::to_owned).await;
    assert_eq!((joined.recovered, joined.replayed), (Some(false), 0));
    assert_eq!(seen, [106, 107, 108], "live publications only");
}

#[actix_rt::test]
async fn another_epoch_says_not_recovered() {
    let (joined, seen) = come_back(200, |_| "0000000000000000".into()).await;
    assert_eq!((joined.recovered, joined.replayed), (Some(false), 0));
    assert_eq!(seen, [106, 107, 108]);
}

// ----- encode once -----

/// A client actor that reports each text it receives.
struct Texts(mpsc::UnboundedSender<String>);

impl ws::Endpoint for Texts {
    fn on_message(&mut self, _: &ws::Conn, msg: ws::Message, _: &mut ws::EndpointContext<Self>) {
        if let ws::Message::Text(t) = msg {
            let _ = self.0.send(t.to_string());
        }
    }
}

/// 20 compressing subscribers, 10 publications: how many frames were prepared and
/// how many deliveries were compressed again for one connection.
async fn compressed_fan_out(no_context_takeover: bool) -> (u64, u64) {
    const SUBSCRIBERS: usize = 20;
    let mut settings = ws::Settings::default();
    settings.deflate = ws::DeflateSettings::on().server_no_context_takeover(no_context_takeover);
    let hub = ws::Hub::with_settings(&settings);
    let srv = server(&hub, settings);
    let (tx, mut texts) = mpsc::unbounded_channel();
    let url = format!("ws://{}/sub", srv.addr);
    for _ in 0..SUBSCRIBERS {
        let (_, conn) = ws::Client::new(&url)
            .unwrap()
            .deflate(ws::DeflateSettings::on())
            .connect_with_conn(ws::endpoint(Texts(tx.clone())))
            .await
            .unwrap();
        assert_eq!(conn.extensions(), "permessage-deflate");
    }
    until("every subscriber joined", || {
        hub.count("room") == SUBSCRIBERS
    })
    .await;
    let text =
        "a JSON-like text that compresses: {\"room\":\"lobby\",\"text\":\"hello hello hello\"}";
    for _ in 0..10 {
        hub.publish("room", text);
    }
    for _ in 0..SUBSCRIBERS * 10 {
        let got = tokio::time::timeout(Duration::from_secs(10), texts.recv())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(got, text);
    }
    srv.handle.stop(false).await;
    (hub.encodes(), hub.recompressions())
}

#[actix_rt::test]
async fn a_publication_is_compressed_once_for_every_subscriber_without_context_takeover() {
    assert_eq!(compressed_fan_out(true).await, (10, 0));
}

#[actix_rt::test]
async fn with_context_takeover_each_connection_compresses_for_itself() {
    assert_eq!(compressed_fan_out(false).await, (10, 200));
}

// ----- the publish seam, metrics -----

/// A backplane that records what the hub tells it.
#[derive(Default)]
struct Recording(Mutex<Vec<String>>);

impl ws::Backplane for Recording {
    fn publish(&self, publication: ws::hub::Publication) {
        let text = std::str::from_utf8(publication.message.as_bytes()).unwrap();
        self.0
            .lock()
            .unwrap()
            .push(format!("publish {} {text}", publication.topic));
    }
    fn subscribe(&self, topic: &str, _generation: u64) {
        self.0.lock().unwrap().push(format!("subscribe {topic}"));
    }
    fn unsubscribe(&self, topic: &str, _generation: u64) {
        self.0.lock().unwrap().push(format!("unsubscribe {topic}"));
    }
}

#[actix_rt::test]
async fn the_backplane_learns_topics_and_publications_and_remote_ones_stay_local() {
    let hub = ws::Hub::named("seam", &ws::Settings::default());
    let backplane = Arc::new(Recording::default());
    hub.set_backplane(backplane.clone());
    let srv = server(&hub, ws::Settings::default());
    let (mut a, conn_a) = plain(&srv).await;
    let (mut b, conn_b) = plain(&srv).await;
    hub.join(&conn_a, "t").unwrap();
    hub.join(&conn_b, "t").unwrap();
    hub.publish("t", "local");
    hub.deliver_remote("t", ws::Message::from("remote"));
    // Both connections received both (so the four deliveries were counted before
    // the metrics are read: the event, not a race with b's thread).
    for peer in [&mut a, &mut b] {
        assert_eq!(peer.text().await, "local");
        assert_eq!(peer.text().await, "remote");
    }
    hub.leave(conn_a.id(), "t");
    hub.leave(conn_b.id(), "t");
    assert_eq!(
        *backplane.0.lock().unwrap(),
        ["subscribe t", "publish t local", "unsubscribe t"]
    );
    // Each server's metrics carry the hub's name and counts.
    let text = ws::metrics::encode_text();
    assert!(
        text.contains("ws_hub_publications_total{hub=\"seam\"} 2\n"),
        "{text}"
    );
    assert!(
        text.contains("ws_hub_deliveries_total{hub=\"seam\"} 4\n"),
        "{text}"
    );
    assert!(
        text.contains("ws_hub_backplane_published_total{hub=\"seam\"} 1\n"),
        "{text}"
    );
    assert!(
        text.contains("ws_hub_remote_delivered_total{hub=\"seam\"} 1\n"),
        "{text}"
    );
    // Nothing went unrouted: every publication found its members.
    assert!(
        text.contains("ws_hub_unrouted_total{hub=\"seam\"} 0\n"),
        "{text}"
    );
    srv.handle.stop(false).await;
}

// ----- forwarding to a shared actor -----

/// A room: every connection's events, tagged, in one actor; it welcomes each
/// connection once it is a member, and relays each message to the others.
#[derive(Default)]
struct Room {
    members: HashMap<ws::ConnId, ws::Conn>,
    log: Vec<String>,
    report: Option<mpsc::UnboundedSender<Vec<String>>>,
}

impl Actor for Room {
    type Context = Context<Self>;
}

impl Handler<ws::Tagged<ws::Open>> for Room {
    type Result = ();
    fn handle(&mut self, m: ws::Tagged<ws::Open>, _: &mut Context<Self>) {
        self.log.push(format!("open {}", self.members.len()));
        m.event.conn.send_text("welcome");
        self.members.insert(m.id, m.event.conn);
    }
}

impl Handler<ws::Tagged<ws::Message>> for Room {
    type Result = ();
    fn handle(&mut self, m: ws::Tagged<ws::Message>, _: &mut Context<Self>) {
        let text = std::str::from_utf8(m.event.as_bytes()).unwrap().to_owned();
        for (id, conn) in &self.members {
            if *id != m.id {
                conn.send(m.event.clone());
            }
        }
        self.log.push(format!("message {text}"));
    }
}

impl Handler<ws::Tagged<ws::Error>> for Room {
    type Result = ();
    fn handle(&mut self, _: ws::Tagged<ws::Error>, _: &mut Context<Self>) {}
}

impl Handler<ws::Tagged<ws::Close>> for Room {
    type Result = ();
    fn handle(&mut self, m: ws::Tagged<ws::Close>, _: &mut Context<Self>) {
        self.members.remove(&m.id);
        self.log.push(format!("close {}", m.event.code.0));
        if self.members.is_empty() {
            if let Some(report) = self.report.take() {
                let _ = report.send(std::mem::take(&mut self.log));
            }
        }
    }
}

#[actix_rt::test]
async fn forwarded_connections_reach_a_shared_actor_in_order_with_their_ids() {
    let (tx, mut report) = mpsc::unbounded_channel();
    let room = Room {
        report: Some(tx),
        ..Room::default()
    }
    .start();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let running = ws::Server::new()
        .listen_on(listener, 2, move |_| {
            Ok(ws::forward(room.clone()).max_pending(4))
        })
        .unwrap();
    let handle = running.handle();
    actix_rt::spawn(running);
    // Each in the room once welcomed (the two connections may live on two
    // threads: a's Open is not otherwise ordered before b's message).
    let mut a = Client::connect(addr, "/").await;
    assert_eq!(a.text().await, "welcome");
    let mut b = Client::connect(addr, "/").await;
    assert_eq!(b.text().await, "welcome");
    b.send_text("b-ready").await;
    assert_eq!(a.text().await, "b-ready");
    for n in 0..50 {
        a.send_text(&format!("a{n}")).await;
    }
    for n in 0..50 {
        assert_eq!(b.text().await, format!("a{n}"));
    }
    a.stream.shutdown().await.unwrap();
    b.stream.shutdown().await.unwrap();
    let log = tokio::time::timeout(Duration::from_secs(10), report.recv())
        .await
        .unwrap()
        .unwrap();
    let mut expected = vec![
        "open 0".to_string(),
        "open 1".to_string(),
        "message b-ready".to_string(),
    ];
    expected.extend((0..50).map(|n| format!("message a{n}")));
    expected.extend(["close 1006".to_string(), "close 1006".to_string()]);
    assert_eq!(log, expected);
    handle.stop(false).await;
}
