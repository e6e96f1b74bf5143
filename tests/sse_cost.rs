//! What an event-stream subscriber costs the server against a WebSocket one, in
//! one run: one actix-web worker thread serves `SUBSCRIBERS` WebSocket members of a
//! topic, then as many event streams of another, and the test publishes
//! `PUBLICATIONS` messages to each in turn (paced: a batch, then every subscriber
//! has it). The figure is deliveries per CPU-second of the server's worker thread
//! (its `schedstat`: the shard's fan-out, the writes, the HTTP body), printed.
//! Every subscriber gets every publication, in order (asserted).
//!
//! ```sh
//! cargo test --release --test sse_cost -- --ignored --nocapture
//! ```
//!
//! The same method measures conflation against `drop`: `SUBSCRIBERS` WebSocket
//! members of a `drop` topic and as many of a `latest` one, with a budget of
//! `OVER_BUDGET` publications, get bursts of `BURST` publications (more than the
//! budget: most of each burst finds them over it); a burst is done when every
//! publication is accounted for each subscriber (delivered, dropped, or
//! delivered or replaced later). The figures are publications offered to a
//! subscriber, and deliveries, per CPU-second of the worker thread.

use std::{
    io::Read,
    net::{SocketAddr, TcpStream},
    sync::{Arc, Condvar, Mutex},
    time::Duration,
};

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use websocket_driver as ws;

const SUBSCRIBERS: usize = 100;
/// Per round and kind (a tenth in a debug build: `scripts/test-all.sh` runs it
/// for its asserts, the figures are a release build's).
const PUBLICATIONS: usize = if cfg!(debug_assertions) { 500 } else { 5_000 };
const BATCH: usize = 100;
const ROUNDS: usize = 3;

struct Member {
    hub: ws::Hub,
    topic: String,
}

impl ws::Endpoint for Member {
    fn on_open(&mut self, conn: &ws::Conn, _: &mut ws::EndpointContext<Self>) {
        let _ = self.hub.join(conn, &self.topic);
    }
}

/// The server: `/ws` joins topic `ws`, `/events` streams topic `sse`, `/tid` says
/// the worker thread's id.
fn serve(hub: ws::Hub) -> SocketAddr {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        actix_rt::System::new().block_on(async move {
            let events = ws::hub::Events::new(&hub).heartbeat(Duration::ZERO);
            let server = HttpServer::new(move || {
                let (hub, events) = (hub.clone(), events.clone());
                App::new()
                    .route(
                        "/ws/{topic}",
                        web::get().to(move |req: ws::Upgrade, topic: web::Path<String>| {
                            let hub = hub.clone();
                            let topic = topic.into_inner();
                            async move { ws::start(ws::endpoint(Member { hub, topic }), &req) }
                        }),
                    )
                    .route(
                        "/events",
                        web::get().to(move |req: HttpRequest| {
                            let events = events.clone();
                            async move { events.respond(&req, "sse") }
                        }),
                    )
                    .route(
                        "/tid",
                        web::get().to(|| async {
                            let link =
                                std::fs::read_link("/proc/thread-self").expect("thread-self");
                            HttpResponse::Ok().body(link.to_string_lossy().into_owned())
                        }),
                    )
            })
            .on_connect(ws::on_connect)
            .workers(1)
            .disable_signals()
            .bind("127.0.0.1:0")
            .expect("bind");
            tx.send(server.addrs()[0]).expect("test waits");
            server.run().await
        })
    });
    rx.recv().expect("server started")
}

/// The worker thread's CPU time so far, in nanoseconds.
fn cpu_ns(task: &str) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{task}/schedstat")).expect("schedstat");
    stat.split_whitespace()
        .next()
        .and_then(|n| n.parse().ok())
        .expect("run time")
}

/// How many publications every subscriber has received, at least.
#[derive(Default)]
struct Progress {
    counts: Mutex<Vec<usize>>,
    changed: Condvar,
}

impl Progress {
    fn new(n: usize) -> Arc<Progress> {
        Arc::new(Progress {
            counts: Mutex::new(vec![0; n]),
            changed: Condvar::new(),
        })
    }

    fn set(&self, who: usize, count: usize) {
        self.counts.lock().unwrap()[who] = count;
        self.changed.notify_all();
    }

    fn wait_all(&self, at_least: usize) {
        let mut counts = self.counts.lock().unwrap();
        while counts.iter().any(|c| *c < at_least) {
            let (c, timeout) = self
                .changed
                .wait_timeout(counts, Duration::from_secs(60))
                .unwrap();
            assert!(!timeout.timed_out(), "a subscriber stalled (hang guard)");
            counts = c;
        }
    }
}

fn get(addr: SocketAddr, path: &str) -> (TcpStream, Vec<u8>) {
    use std::io::Write;
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .expect("timeout");
    write!(stream, "GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").expect("request");
    let mut raw = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        if let Some(at) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
            raw.drain(..at + 4);
            return (stream, raw);
        }
        let n = stream.read(&mut buf).expect("read");
        assert!(n > 0, "closed");
        raw.extend_from_slice(&buf[..n]);
    }
}

fn worker_task(addr: SocketAddr) -> String {
    let (mut stream, mut body) = get(addr, "/tid");
    let mut buf = [0u8; 256];
    while !body.ends_with(b"\r\n0\r\n\r\n") && !body.windows(5).any(|w| w == b"/task") {
        let n = stream.read(&mut buf).expect("read");
        body.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8_lossy(&body).into_owned();
    // "PID/task/TID", maybe with a chunk frame around it.
    text.split_whitespace()
        .find(|w| w.contains("/task/"))
        .expect("a task path")
        .to_owned()
}

/// A WebSocket subscriber: counts the publications ("N" in order).
fn ws_subscriber(addr: SocketAddr, who: usize, progress: Arc<Progress>, joined: Arc<Progress>) {
    let (mut socket, _) =
        tokio_tungstenite::tungstenite::connect(format!("ws://{addr}/ws/ws")).expect("connect");
    joined.set(who, 1);
    let mut count = 0;
    while count < PUBLICATIONS * ROUNDS {
        if let tokio_tungstenite::tungstenite::Message::Text(text) = socket.read().expect("read") {
            let n: usize = text[..text.find(' ').expect("numbered")]
                .parse()
                .expect("n");
            assert_eq!(n, count + 1, "in order, nothing missed");
            count = n;
            if count % BATCH == 0 {
                progress.set(who, count);
            }
        }
    }
}

/// An event-stream subscriber: counts the events ("id:" lines), in order.
fn sse_subscriber(addr: SocketAddr, who: usize, progress: Arc<Progress>, joined: Arc<Progress>) {
    let (mut stream, mut raw) = get(addr, "/events");
    joined.set(who, 1);
    let mut count = 0;
    let mut buf = vec![0u8; 65536];
    let mut body = Vec::new();
    while count < PUBLICATIONS * ROUNDS {
        // Dechunk what is whole.
        while let Some(end) = raw.windows(2).position(|w| w == b"\r\n") {
            let size = usize::from_str_radix(std::str::from_utf8(&raw[..end]).unwrap(), 16)
                .expect("chunk size");
            if raw.len() < end + 2 + size + 2 {
                break;
            }
            body.extend_from_slice(&raw[end + 2..end + 2 + size]);
            raw.drain(..end + 2 + size + 2);
        }
        let mut used = 0;
        while let Some(at) = body[used..].windows(2).position(|w| w == b"\n\n") {
            let event = &body[used..used + at];
            used += at + 2;
            if let Some(rest) = event.strip_prefix(b"id: ") {
                let line = &rest[..rest.iter().position(|b| *b == b'\n').unwrap_or(rest.len())];
                let offset = line.rsplit(|b| *b == b':').next().expect("offset");
                let n: usize = std::str::from_utf8(offset).unwrap().parse().expect("n");
                if n == 0 {
                    continue; // where the stream starts
                }
                assert_eq!(n, count + 1, "in order, nothing missed");
                count = n;
                if count % BATCH == 0 {
                    progress.set(who, count);
                }
            }
        }
        body.drain(..used);
        if count >= PUBLICATIONS * ROUNDS {
            break;
        }
        let n = stream.read(&mut buf).expect("read");
        assert!(n > 0, "closed");
        raw.extend_from_slice(&buf[..n]);
    }
}

#[test]
#[ignore = "a measurement, 200 client threads; scripts/test-all.sh runs it (the figures: --release)"]
fn an_event_stream_subscriber_costs_against_a_websocket_one() {
    let mut settings = ws::Settings::default();
    settings.hub.history_size = 0;
    let hub = ws::Hub::with_settings(&settings);
    let addr = serve(hub.clone());
    let task = worker_task(addr);
    type Client = fn(SocketAddr, usize, Arc<Progress>, Arc<Progress>);
    let kinds: [(&str, &str, Client); 2] = [
        ("websocket", "ws", ws_subscriber),
        ("event stream", "sse", sse_subscriber),
    ];
    let mut progress = Vec::new();
    let mut threads = Vec::new();
    for (_, _, client) in kinds {
        let (p, joined) = (Progress::new(SUBSCRIBERS), Progress::new(SUBSCRIBERS));
        for who in 0..SUBSCRIBERS {
            let (p, joined) = (p.clone(), joined.clone());
            threads.push(std::thread::spawn(move || client(addr, who, p, joined)));
        }
        joined.wait_all(1);
        progress.push(p);
    }
    // A WebSocket's join runs once it is open, after its client saw the handshake.
    let guard = std::time::Instant::now() + Duration::from_secs(60);
    while hub.count("ws") < SUBSCRIBERS || hub.count("sse") < SUBSCRIBERS {
        assert!(std::time::Instant::now() < guard, "joins (hang guard)");
        std::thread::yield_now();
    }
    let payload = "x".repeat(100);
    // Rounds alternate the kinds: each round's figure for both, side by side.
    for round in 0..ROUNDS {
        for (k, (name, topic, _)) in kinds.iter().enumerate() {
            let before = cpu_ns(&task);
            let first = round * PUBLICATIONS;
            for batch in (first..first + PUBLICATIONS).step_by(BATCH) {
                for n in batch + 1..=batch + BATCH {
                    hub.publish(topic, format!("{n} {payload}"));
                }
                progress[k].wait_all(batch + BATCH);
            }
            let cpu = (cpu_ns(&task) - before) as f64 / 1e9;
            let deliveries = (SUBSCRIBERS * PUBLICATIONS) as f64;
            println!(
                "round {round} {name:>12}: {deliveries} deliveries, server worker {cpu:.3} CPU-s, \
                 {:.0} deliveries per CPU-second",
                deliveries / cpu
            );
        }
    }
    for t in threads {
        t.join().expect("subscriber");
    }
}

const OVER_BUDGET: usize = 8;
const BURST: usize = 64;
const BURSTS: usize = if cfg!(debug_assertions) { 10 } else { 100 };

/// A WebSocket subscriber of `topic` that reads everything, as fast as it can,
/// until the server goes away (the test's end).
fn reader(addr: SocketAddr, topic: &str, joined: Arc<Progress>, who: usize) {
    let (mut socket, _) =
        tokio_tungstenite::tungstenite::connect(format!("ws://{addr}/ws/{topic}"))
            .expect("connect");
    joined.set(who, 1);
    while socket.read().is_ok() {}
}

#[test]
#[ignore = "a measurement, 200 client threads; scripts/test-all.sh runs it (the figures: --release)"]
fn conflation_costs_against_drop() {
    let mut settings = ws::Settings::default();
    settings.hub.history_size = 0;
    let hub = ws::Hub::with_settings(&settings);
    for (topic, policy) in [
        ("drop", ws::SlowConsumer::Drop),
        ("latest", ws::SlowConsumer::Latest),
    ] {
        let topic_settings = hub
            .topic_defaults()
            .slow_consumer(policy)
            .send_budget(1 << 20, OVER_BUDGET);
        hub.configure(topic, topic_settings);
    }
    let addr = serve(hub.clone());
    let task = worker_task(addr);
    for topic in ["drop", "latest"] {
        let joined = Progress::new(SUBSCRIBERS);
        for who in 0..SUBSCRIBERS {
            let joined = joined.clone();
            std::thread::spawn(move || reader(addr, topic, joined, who));
        }
        joined.wait_all(1);
    }
    let guard = std::time::Instant::now() + Duration::from_secs(60);
    while hub.count("drop") < SUBSCRIBERS || hub.count("latest") < SUBSCRIBERS {
        assert!(std::time::Instant::now() < guard, "joins (hang guard)");
        std::thread::yield_now();
    }
    let payload = "x".repeat(100);
    // Every publication offered to every subscriber, accounted.
    let accounted = |hub: &ws::Hub| hub.deliveries() + hub.dropped() + hub.conflated();
    for round in 0..ROUNDS {
        for topic in ["drop", "latest"] {
            let (before, delivered_before, start) =
                (cpu_ns(&task), hub.deliveries(), accounted(&hub));
            for burst in 0..BURSTS {
                for n in 0..BURST {
                    hub.publish(topic, format!("{} {payload}", burst * BURST + n));
                }
                let target = start + ((burst + 1) * BURST * SUBSCRIBERS) as u64;
                let guard = std::time::Instant::now() + Duration::from_secs(60);
                while accounted(&hub) < target {
                    assert!(std::time::Instant::now() < guard, "a burst (hang guard)");
                    std::thread::yield_now();
                }
            }
            let cpu = (cpu_ns(&task) - before) as f64 / 1e9;
            let offered = (BURSTS * BURST * SUBSCRIBERS) as f64;
            let delivered = (hub.deliveries() - delivered_before) as f64;
            println!(
                "round {round} {topic:>6}: {offered} offered, {delivered} delivered, server worker \
                 {cpu:.3} CPU-s: {:.0} offered and {:.0} delivered per CPU-second",
                offered / cpu,
                delivered / cpu
            );
        }
    }
    assert_eq!(hub.slow_closes(), 0);
}
