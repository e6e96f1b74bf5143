//! The Redis backplane under churn and faults: three servers on one Redis (two in
//! this process, one a child process of this test binary, killed and started
//! again), members joining, leaving, dropping their connection and coming back
//! with `since`, publications from every server, while Redis is paused
//! (SIGSTOP), restarted, and its subscription connections killed. A checker then
//! reads what every member got: each publication at most once, in offset order,
//! without a gap unless the member was told (not recovered, a close, or a counted
//! drop or loss); the members there throughout got every publication of the two
//! servers here but what those counted. Once every member has gone, Redis holds
//! no subscription and no presence, and every key left has a time to live.
//!
//! `WSD_CHURN_SEED=N` replays a run; `WSD_CHURN_OPS` sets its length;
//! `WSD_CHURN_DUMP=FILE` writes every member's deliveries and the timeline there
//! when the check fails; `WSD_CHURN_CHILD_LOG=FILE` appends the child server's
//! standard error there.
#![cfg(all(feature = "redis", feature = "server"))]

use std::{
    collections::{BTreeMap, HashMap, HashSet},
    io::{BufRead, BufReader},
    net::SocketAddr,
    process::{Child, Command, Stdio},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use futures_util::{SinkExt, StreamExt};
use rand::{rngs::StdRng, Rng, SeedableRng};
use tokio::sync::oneshot;
use tokio_tungstenite::tungstenite::{protocol::CloseFrame, Message as WsMessage};
use websocket_driver as ws;
use ws::hub::redis::{BackplaneStats, RedisBackplane};

#[path = "support/member.rs"]
mod member;
#[path = "support/redis.rs"]
mod redis_server;
use redis_server::{free_port, Redis};

const ROOMS: [&str; 3] = ["r0", "r1", "r2"];

// ---------------------------------------------------------------- servers

fn settings(redis: &str) -> ws::Settings {
    let mut s = ws::Settings::default();
    s.hub.presence = true;
    s.hub.history_size = 100_000;
    s.redis.url = redis.to_owned();
    s.redis.command_timeout = Duration::from_millis(400);
    s.redis.presence_ttl = Duration::from_millis(1500);
    s.redis.reconnect_initial = Duration::from_millis(20);
    s.redis.reconnect_max = Duration::from_millis(300);
    s.redis.reconcile_interval = Duration::from_millis(250);
    s
}

struct Node {
    addr: SocketAddr,
    hub: ws::Hub,
    backplane: Arc<RedisBackplane>,
    handle: actix_server::ServerHandle,
}

async fn serve(
    redis: &str,
) -> (
    SocketAddr,
    ws::Hub,
    Arc<RedisBackplane>,
    actix_server::ServerHandle,
) {
    let settings = settings(redis);
    let hub = ws::Hub::with_settings(&settings);
    hub.set_renderer(|_, p, m| {
        let text = std::str::from_utf8(m.as_bytes()).unwrap_or("?");
        ws::Message::from(format!("{}|{}|{text}", p.epoch, p.offset))
    });
    let backplane = RedisBackplane::start(&hub, settings.redis.clone())
        .await
        .expect("the backplane connects");
    let (addr, handle) = member::serve(settings, &hub, "r0");
    (addr, hub, backplane, handle)
}

/// The third server: this test binary again, running `child_server`.
struct ChildServer {
    child: Child,
    addr: SocketAddr,
    stats: Arc<Mutex<String>>,
}

impl ChildServer {
    fn start(redis: &str) -> ChildServer {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([
                "--ignored",
                "--exact",
                "child_server",
                "--nocapture",
                "--test-threads",
                "1",
            ])
            .env("WSD_CHURN_CHILD", redis)
            .stdout(Stdio::piped())
            .stderr(match std::env::var("WSD_CHURN_CHILD_LOG") {
                Ok(p) => Stdio::from(
                    std::fs::OpenOptions::new()
                        .create(true)
                        .append(true)
                        .open(p)
                        .unwrap(),
                ),
                Err(_) => Stdio::null(),
            })
            .spawn()
            .expect("start the child server");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let addr = loop {
            let line = lines
                .next()
                .expect("the child server says where it listens")
                .unwrap();
            // (After libtest's `test child_server ... `.)
            if let Some(at) = line.find("listening ") {
                break line[at + "listening ".len()..].trim().parse().unwrap();
            }
        };
        let stats = Arc::new(Mutex::new(String::new()));
        let s = stats.clone();
        std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                if let Some(rest) = line.strip_prefix("stats ") {
                    *s.lock().unwrap() = rest.to_owned();
                }
            }
        });
        ChildServer { child, addr, stats }
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for ChildServer {
    fn drop(&mut self) {
        self.kill();
    }
}

#[actix_rt::test]
#[ignore = "a server process of the churn test's own (it starts it); scripts/test-all.sh runs it"]
async fn child_server() {
    let Ok(redis) = std::env::var("WSD_CHURN_CHILD") else {
        return;
    };
    let (addr, _hub, backplane, _handle) = serve(&redis).await;
    println!("listening {addr}");
    // Until killed (at most five minutes): what it counted, for the checker.
    for _ in 0..15_000 {
        println!("stats {:?}", backplane.stats());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

// ---------------------------------------------------------------- members

#[derive(Debug, Clone)]
enum Seen {
    Joined(String, u64, Option<bool>),
    Msg(String, u64, String),
    Closed(String),
}

#[derive(Debug)]
struct MemberLog {
    node: usize,
    room: &'static str,
    since: Option<(String, u64)>,
    seen: Vec<Seen>,
}

type Log = Arc<Mutex<MemberLog>>;

struct Member {
    log: Log,
    /// Tell it to leave: `true` with a close handshake, `false` by dropping the
    /// connection.
    leave: Option<oneshot::Sender<bool>>,
    task: tokio::task::JoinHandle<()>,
    witness: bool,
}

fn member(
    addr: SocketAddr,
    node: usize,
    room: &'static str,
    user: &str,
    since: Option<(String, u64)>,
    witness: bool,
) -> Member {
    let log = Arc::new(Mutex::new(MemberLog {
        node,
        room,
        since: since.clone(),
        seen: Vec::new(),
    }));
    let (leave, mut leave_rx) = oneshot::channel::<bool>();
    let l = log.clone();
    let mut path = format!("ws://{addr}/sub?topic={room}&user={user}");
    if let Some((e, o)) = &since {
        path.push_str(&format!("&since={e}:{o}"));
    }
    let task = tokio::spawn(async move {
        let ws = match tokio::time::timeout(
            Duration::from_secs(10),
            tokio_tungstenite::connect_async(path),
        )
        .await
        {
            Ok(Ok((ws, _))) => ws,
            other => {
                l.lock()
                    .unwrap()
                    .seen
                    .push(Seen::Closed(format!("connect: {other:?}")));
                return;
            }
        };
        let (mut tx, mut rx) = ws.split();
        loop {
            tokio::select! {
                how = &mut leave_rx => {
                    if how.unwrap_or(false) {
                        let _ = tx.send(WsMessage::Close(Some(CloseFrame { code: 1000u16.into(), reason: "".into() }))).await;
                    }
                    return;
                }
                frame = rx.next() => match frame {
                    Some(Ok(WsMessage::Text(t))) => {
                        let seen = parse(&t);
                        l.lock().unwrap().seen.push(seen);
                    }
                    Some(Ok(WsMessage::Close(c))) => {
                        l.lock().unwrap().seen.push(Seen::Closed(format!("{c:?}")));
                        return;
                    }
                    Some(Ok(_)) => {}
                    other => {
                        l.lock().unwrap().seen.push(Seen::Closed(format!("{other:?}")));
                        return;
                    }
                }
            }
        }
    });
    Member {
        log,
        leave: Some(leave),
        task,
        witness,
    }
}

fn parse(t: &str) -> Seen {
    if let Some(rest) = t.strip_prefix("joined ") {
        let p: Vec<&str> = rest.split(' ').collect();
        let recovered = match p[2] {
            "true" => Some(true),
            "false" => Some(false),
            _ => None,
        };
        return Seen::Joined(p[0].to_owned(), p[1].parse().unwrap(), recovered);
    }
    let mut p = t.splitn(3, '|');
    let (e, o, text) = (p.next().unwrap(), p.next().unwrap(), p.next().unwrap());
    Seen::Msg(e.to_owned(), o.parse().unwrap(), text.to_owned())
}

impl Member {
    fn last_position(&self) -> Option<(String, u64)> {
        let log = self.log.lock().unwrap();
        log.seen.iter().rev().find_map(|s| match s {
            Seen::Msg(e, o, _) => Some((e.clone(), *o)),
            Seen::Joined(e, o, _) => Some((e.clone(), *o)),
            Seen::Closed(_) => None,
        })
    }

    async fn leave(&mut self, clean: bool) {
        if let Some(l) = self.leave.take() {
            let _ = l.send(clean);
        }
        let _ = tokio::time::timeout(Duration::from_secs(10), &mut self.task).await;
    }
}

// ---------------------------------------------------------------- the run

/// A publication made through one of the servers (the child's as its client sent it):
/// its text, server, room and time.
struct Published {
    text: String,
    origin: usize,
    room: &'static str,
    at: Instant,
    op: usize,
}

/// What the run did, for the summary.
#[derive(Debug, Default)]
struct Tally {
    publications: usize,
    publications_on_child: usize,
    joins: usize,
    leaves: usize,
    drops: usize,
    rejoins: usize,
    pauses: usize,
    restarts: usize,
    pubsub_kills: usize,
    server_kills: usize,
}

/// One of the child server's stats lines (`BackplaneStats { .. }`), read back.
fn child_stats(line: &str) -> BackplaneStats {
    let mut stats = BackplaneStats::default();
    let field = |name: &str| -> u64 {
        line.split(&format!("{name}: "))
            .nth(1)
            .and_then(|rest| rest.split([',', ' ', '}']).next())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    };
    stats.dropped = field("dropped");
    stats.abandoned = field("abandoned");
    stats.lost = field("lost");
    stats.resets = field("resets");
    stats
}

#[actix_rt::test]
#[ignore = "needs redis-server and redis-cli; scripts/test-all.sh runs it"]
async fn churn_and_faults_lose_nothing_silently_and_leave_nothing_behind() {
    let seed: u64 = std::env::var("WSD_CHURN_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random);
    let ops: usize = std::env::var("WSD_CHURN_OPS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1500);
    eprintln!("churn: WSD_CHURN_SEED={seed} WSD_CHURN_OPS={ops}");
    let mut rng = StdRng::seed_from_u64(seed);
    let port = free_port();
    let mut redis = Redis::start_on(port).await;
    let url = redis.url();
    let mut nodes = Vec::new();
    for _ in 0..2 {
        let (addr, hub, backplane, handle) = serve(&url).await;
        nodes.push(Node {
            addr,
            hub,
            backplane,
            handle,
        });
    }
    // Node 2: the child server; node 3: the one started after it was killed.
    let mut child = Some(ChildServer::start(&url));
    let mut child_node = 2;
    let mut child_stats_lines: HashMap<usize, Arc<Mutex<String>>> = HashMap::new();
    child_stats_lines.insert(2, child.as_ref().unwrap().stats.clone());

    let mut members: Vec<Member> = Vec::new();
    for (i, node) in nodes.iter().enumerate() {
        for room in ROOMS {
            members.push(member(
                node.addr,
                i,
                room,
                &format!("w{i}{room}"),
                None,
                true,
            ));
        }
    }
    let all_joined = |members: &[Member]| {
        members.iter().all(|m| {
            m.log
                .lock()
                .unwrap()
                .seen
                .iter()
                .any(|s| matches!(s, Seen::Joined(..)))
        })
    };
    for _ in 0..1000 {
        if all_joined(&members) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(all_joined(&members), "the witnesses joined");

    // The faults, each at a point of the run.
    let at =
        |rng: &mut StdRng, from: f64, to: f64| (ops as f64 * rng.random_range(from..to)) as usize;
    let pauses = [at(&mut rng, 0.10, 0.20), at(&mut rng, 0.55, 0.65)];
    let restart = at(&mut rng, 0.35, 0.45);
    let pubsub_kills = [at(&mut rng, 0.25, 0.32), at(&mut rng, 0.70, 0.80)];
    let server_kill = at(&mut rng, 0.45, 0.52);
    let server_restart = at(&mut rng, 0.66, 0.70);

    let mut tally = Tally::default();
    let t0 = Instant::now();
    let mut timeline: Vec<String> = Vec::new();
    let mut published: Vec<Published> = Vec::new();
    let mut restart_windows: Vec<(Instant, Instant)> = Vec::new();
    let mut left: Vec<Member> = Vec::new();
    let mut child_pubs: HashMap<&'static str, _> = HashMap::new();
    let mut paused_until: Option<Instant> = None;
    let mut paused_since: Option<Instant> = None;
    let mut n = 0usize;
    for op in 0..ops {
        if let Some(until) = paused_until {
            if Instant::now() >= until {
                paused_since = None;
                redis.signal(libc::SIGCONT);
                timeline.push(format!(
                    "{:>7}ms op {op}: Redis resumed",
                    t0.elapsed().as_millis()
                ));
                paused_until = None;
            }
        }
        if pauses.contains(&op) && paused_until.is_none() {
            tally.pauses += 1;
            timeline.push(format!(
                "{:>7}ms op {op}: Redis paused",
                t0.elapsed().as_millis()
            ));
            redis.signal(libc::SIGSTOP);
            paused_since = Some(Instant::now());
            paused_until =
                Some(Instant::now() + Duration::from_millis(rng.random_range(200..1200)));
        }
        if op == restart {
            tally.restarts += 1;
            // What Redis held back while paused is lost with it too; and a
            // publication is on its way (its fate unknown when the connection
            // goes) until its command times out, even one made during a pause
            // that ended just before.
            let command_timeout = settings("").redis.command_timeout;
            let from = paused_since
                .unwrap_or_else(Instant::now)
                .min(Instant::now() - command_timeout);
            timeline.push(format!(
                "{:>7}ms op {op}: Redis killed",
                t0.elapsed().as_millis()
            ));
            redis.stop();
            tokio::time::sleep(Duration::from_millis(rng.random_range(50..400))).await;
            paused_since = None;
            redis = Redis::start_on(port).await;
            timeline.push(format!(
                "{:>7}ms op {op}: Redis started",
                t0.elapsed().as_millis()
            ));
            paused_until = None;
            restart_windows.push((
                from - Duration::from_millis(200),
                Instant::now() + Duration::from_secs(2),
            ));
        }
        if pubsub_kills.contains(&op) && paused_until.is_none() {
            tally.pubsub_kills += 1;
            timeline.push(format!(
                "{:>7}ms op {op}: pub/sub clients killed",
                t0.elapsed().as_millis()
            ));
            redis.cli(&["CLIENT", "KILL", "TYPE", "pubsub"]);
        }
        if op == server_kill {
            tally.server_kills += 1;
            timeline.push(format!(
                "{:>7}ms op {op}: child server killed",
                t0.elapsed().as_millis()
            ));
            if let Some(mut c) = child.take() {
                c.kill();
            }
            child_pubs.clear();
        }
        if op == server_restart && child.is_none() {
            // A server starts only with Redis there to answer.
            if paused_until.take().is_some() {
                paused_since = None;
                redis.signal(libc::SIGCONT);
            }
            child = Some(ChildServer::start(&url));
            child_node = 3;
            child_stats_lines.insert(3, child.as_ref().unwrap().stats.clone());
        }
        let roll = rng.random_range(0..100);
        let room = ROOMS[rng.random_range(0..ROOMS.len())];
        match roll {
            0..35 => {
                n += 1;
                let origin = rng.random_range(0..2);
                let text = format!("p{n}");
                published.push(Published {
                    text: text.clone(),
                    origin,
                    room,
                    at: Instant::now(),
                    op,
                });
                nodes[origin].hub.publish(room, text);
                tally.publications += 1;
            }
            35..40 => {
                if let Some(c) = &child {
                    n += 1;
                    if !child_pubs.contains_key(room) {
                        if let Ok(Ok((ws, _))) = tokio::time::timeout(
                            Duration::from_secs(5),
                            tokio_tungstenite::connect_async(format!(
                                "ws://{}/pub?topic={room}",
                                c.addr
                            )),
                        )
                        .await
                        {
                            child_pubs.insert(room, ws);
                        }
                    }
                    if let Some(ws) = child_pubs.get_mut(room) {
                        let text = format!("c{n}");
                        let at = Instant::now();
                        if ws.send(WsMessage::text(text.clone())).await.is_ok() {
                            tally.publications_on_child += 1;
                            published.push(Published {
                                text,
                                origin: child_node,
                                room,
                                at,
                                op,
                            });
                        }
                    }
                }
            }
            40..60 => {
                let (node, addr) = match rng.random_range(0..3) {
                    2 if child.is_some() => (child_node, child.as_ref().unwrap().addr),
                    i => (i % 2, nodes[i % 2].addr),
                };
                members.push(member(
                    addr,
                    node,
                    room,
                    &format!("u{}", rng.random_range(0..20)),
                    None,
                    false,
                ));
                tally.joins += 1;
            }
            60..78 => {
                let candidates: Vec<usize> = (0..members.len())
                    .filter(|i| !members[*i].witness)
                    .collect();
                if !candidates.is_empty() {
                    let mut m =
                        members.swap_remove(candidates[rng.random_range(0..candidates.len())]);
                    let clean = roll < 72;
                    m.leave(clean).await;
                    if clean {
                        tally.leaves += 1
                    } else {
                        tally.drops += 1
                    }
                    left.push(m);
                }
            }
            78..90 if !left.is_empty() => {
                let old = left.swap_remove(rng.random_range(0..left.len()));
                let since = old.last_position();
                let (room, old_node) = {
                    let l = old.log.lock().unwrap();
                    (l.room, l.node)
                };
                let (node, addr) = if old_node >= 2 {
                    match &child {
                        Some(c) => (child_node, c.addr),
                        None => (0, nodes[0].addr),
                    }
                } else {
                    let i = rng.random_range(0..2);
                    (i, nodes[i].addr)
                };
                members.push(member(
                    addr,
                    node,
                    room,
                    &format!("u{}", rng.random_range(0..20)),
                    since,
                    false,
                ));
                left.push(old);
                tally.rejoins += 1;
            }
            _ => {}
        }
        if op % 8 == 0 {
            tokio::time::sleep(Duration::from_millis(2)).await;
        } else {
            tokio::task::yield_now().await;
        }
    }
    if paused_until.take().is_some() {
        redis.signal(libc::SIGCONT);
    }

    // Quiet: every in-process server publishes a last marker per room; once the
    // witnesses have them, they have everything before them that will come.
    for _ in 0..500 {
        if nodes.iter().all(|n| n.backplane.is_up()) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    for (origin, node) in nodes.iter().enumerate() {
        for room in ROOMS {
            let text = format!("end-{origin}-{room}");
            published.push(Published {
                text: text.clone(),
                origin,
                room,
                at: Instant::now(),
                op: ops,
            });
            node.hub.publish(room, text);
        }
    }
    let has_markers = |m: &Member| {
        let log = m.log.lock().unwrap();
        let closed = log.seen.iter().any(|s| matches!(s, Seen::Closed(_)));
        closed
            || (0..2).all(|o| {
                let marker = format!("end-{o}-{}", log.room);
                log.seen
                    .iter()
                    .any(|s| matches!(s, Seen::Msg(_, _, t) if *t == marker))
            })
    };
    let mut settled = false;
    for _ in 0..3000 {
        if members.iter().filter(|m| m.witness).all(has_markers) {
            settled = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let stats: Vec<BackplaneStats> = nodes.iter().map(|n| n.backplane.stats()).collect();
    eprintln!("churn: {tally:?}");
    eprintln!(
        "churn: faults at ops: pauses {pauses:?}, Redis restart {restart}, pubsub kills {pubsub_kills:?}, server kill {server_kill}, server start {server_restart}"
    );
    eprintln!("churn: A {:?}", stats[0]);
    eprintln!("churn: B {:?}", stats[1]);
    for (node, line) in &child_stats_lines {
        eprintln!("churn: child {node} {}", line.lock().unwrap());
    }
    assert!(settled, "the witnesses got the last markers within 30 s");

    // Everyone leaves; the child server is killed (the others sweep its presence).
    if let Some(mut c) = child.take() {
        c.kill();
    }
    drop(child_pubs);
    for m in &mut members {
        m.leave(true).await;
    }
    let mut logs: Vec<MemberLog> = Vec::new();
    let mut witness_flags = Vec::new();
    for m in members.into_iter().chain(left) {
        witness_flags.push(m.witness);
        let log = std::mem::replace(
            &mut *m.log.lock().unwrap(),
            MemberLog {
                node: 0,
                room: "r0",
                since: None,
                seen: Vec::new(),
            },
        );
        logs.push(log);
    }
    let mut all_stats: HashMap<usize, BackplaneStats> = HashMap::new();
    all_stats.insert(0, stats[0]);
    all_stats.insert(1, stats[1]);
    for (node, line) in &child_stats_lines {
        all_stats.insert(*node, child_stats(&line.lock().unwrap()));
    }
    for p in &published {
        timeline.push(format!(
            "{:>7}ms op {}: {} on node {} in {}",
            (p.at - t0).as_millis(),
            p.op,
            p.text,
            p.origin,
            p.room
        ));
    }
    timeline.sort();
    let checked = check(
        &logs,
        &witness_flags,
        &published,
        &all_stats,
        &restart_windows,
        &timeline,
    );
    eprintln!("churn: checked {checked}");

    // Nothing left behind in Redis: no subscription, no presence.
    let presence_keys = |redis: &Redis| {
        ["*:pusers:*", "*:pcount", "*:pmeta", "*:server:*:topics"]
            .iter()
            .flat_map(|p| {
                redis
                    .cli(&["--scan", "--pattern", p])
                    .lines()
                    .map(str::to_owned)
                    .collect::<Vec<_>>()
            })
            .filter(|k| !k.is_empty())
            .collect::<Vec<_>>()
    };
    let mut clean = false;
    for _ in 0..300 {
        let channels = redis.cli(&["PUBSUB", "CHANNELS"]);
        let shard = redis.cli(&["PUBSUB", "SHARDCHANNELS"]);
        let servers = redis.cli(&["ZCARD", "ws:servers"]);
        if channels.is_empty()
            && shard.is_empty()
            && presence_keys(&redis).is_empty()
            && servers == "2"
        {
            clean = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        clean,
        "left behind: channels {:?}, shard channels {:?}, presence {:?}, servers {}",
        redis.cli(&["PUBSUB", "CHANNELS"]),
        redis.cli(&["PUBSUB", "SHARDCHANNELS"]),
        presence_keys(&redis),
        redis.cli(&["ZCARD", "ws:servers"])
    );
    for node in &nodes {
        node.backplane.stop(Duration::from_secs(1)).await;
    }
    assert_eq!(redis.cli(&["ZCARD", "ws:servers"]), "0");
    for key in redis.cli(&["--scan"]).lines().filter(|k| !k.is_empty()) {
        let ttl: i64 = redis.cli(&["PTTL", key]).parse().unwrap_or(-3);
        assert!(ttl > 0, "{key} has no time to live ({ttl})");
    }
    for node in nodes {
        node.handle.stop(false).await;
    }
}

/// Check every member's deliveries (see the module docs); returns a summary.
fn check(
    logs: &[MemberLog],
    witness: &[bool],
    published: &[Published],
    stats: &HashMap<usize, BackplaneStats>,
    restarts: &[(Instant, Instant)],
    timeline: &[String],
) -> String {
    let mut problems = Vec::new();
    let mut at_position: HashMap<(&str, &str, u64), &str> = HashMap::new();
    let (mut deliveries, mut gaps_told, mut not_recovered, mut closed) =
        (0usize, 0u64, 0usize, 0usize);
    // A publication of a member's own server still on its way when Redis was
    // killed (made less than a command timeout before) may come twice: in its
    // place (its answer was lost with the connection) and back through Redis
    // (which had carried it out). Counted, and only there.
    let origin_of: HashMap<&str, &Published> =
        published.iter().map(|p| (p.text.as_str(), p)).collect();
    let in_restart = |p: &Published| restarts.iter().any(|(a, b)| p.at >= *a && p.at <= *b);
    let mut twice_at_kill = 0usize;
    for (i, log) in logs.iter().enumerate() {
        let allowance = stats.get(&log.node).map_or(0, |s| s.lost);
        let mut texts = HashSet::new();
        let mut last: BTreeMap<&str, u64> = BTreeMap::new();
        let mut gaps = 0u64;
        for seen in &log.seen {
            match seen {
                Seen::Joined(e, o, recovered) => match (&log.since, recovered) {
                    (Some((se, so)), Some(true)) => {
                        if se != e {
                            problems
                                .push(format!("member {i}: recovered across epochs {se} -> {e}"));
                        }
                        last.insert(se, *so);
                    }
                    (_, r) => {
                        if *r == Some(false) {
                            not_recovered += 1;
                        }
                        last.insert(e, *o);
                    }
                },
                Seen::Msg(e, o, text) => {
                    deliveries += 1;
                    if !texts.insert(text.as_str()) {
                        let at_kill = origin_of.get(text.as_str()).is_some_and(|p| {
                            p.origin == log.node && in_restart(p) && stats[&p.origin].dropped > 0
                        });
                        if at_kill {
                            twice_at_kill += 1;
                        } else {
                            problems.push(format!(
                                "member {i} (node {}, {}): {text} twice",
                                log.node, log.room
                            ));
                        }
                    }
                    if let Some(other) = at_position.insert((log.room, e, *o), text) {
                        if other != text {
                            problems.push(format!("{} {e}:{o} is {other} and {text}", log.room));
                        }
                    }
                    if let Some(p) = last.get(e.as_str()) {
                        if o <= p {
                            problems.push(format!(
                                "member {i} (node {}, {}): {e}:{o} after {e}:{p}",
                                log.node, log.room
                            ));
                        } else {
                            gaps += o - p - 1;
                        }
                    }
                    last.insert(e, *o);
                }
                Seen::Closed(_) => {
                    closed += 1;
                    break;
                }
            }
        }
        gaps_told += gaps;
        if gaps > allowance {
            problems.push(format!(
                "member {i} (node {}, {}): {gaps} missed in offset order, {allowance} counted lost",
                log.node, log.room
            ));
        }
    }
    // The members there throughout got every publication of the servers here,
    // but what was counted.
    let mut witnessed = 0usize;
    for (i, log) in logs.iter().enumerate().filter(|(i, _)| witness[*i]) {
        if log
            .seen
            .iter()
            .any(|s| matches!(s, Seen::Closed(c) if !c.contains("1000")))
        {
            continue;
        }
        let got: HashSet<&str> = log
            .seen
            .iter()
            .filter_map(|s| match s {
                Seen::Msg(_, _, t) => Some(t.as_str()),
                _ => None,
            })
            .collect();
        let x = log.node;
        let sx = stats[&x];
        for y in 0..2 {
            let sy = stats[&y];
            let missing: Vec<&str> = published
                .iter()
                .filter(|p| p.origin == y && p.room == log.room && !got.contains(p.text.as_str()))
                .filter(|p| !(sx.resets > 0 && in_restart(p)))
                .map(|p| p.text.as_str())
                .collect();
            let allowance = if x != y { sy.dropped } else { 0 } + sy.abandoned + sx.lost;
            witnessed += published
                .iter()
                .filter(|p| p.origin == y && p.room == log.room)
                .count();
            if missing.len() as u64 > allowance {
                problems.push(format!(
                    "witness {i} (node {x}, {}): {} of node {y}'s missing ({allowance} counted): {:?}",
                    log.room,
                    missing.len(),
                    &missing[..missing.len().min(10)]
                ));
            }
        }
    }
    if !problems.is_empty() {
        if let Ok(path) = std::env::var("WSD_CHURN_DUMP") {
            let mut out = String::new();
            for (i, log) in logs.iter().enumerate() {
                out.push_str(&format!(
                    "member {i} node {} room {} since {:?}\n",
                    log.node, log.room, log.since
                ));
                for s in &log.seen {
                    out.push_str(&format!("  {s:?}\n"));
                }
            }
            for line in timeline {
                out.push_str(line);
                out.push('\n');
            }
            out.push_str(&format!("{stats:?}\n"));
            let _ = std::fs::write(path, out);
        }
    }
    assert!(
        problems.is_empty(),
        "{} problems:\n{}",
        problems.len(),
        problems.join("\n")
    );
    format!(
        "{} members, {deliveries} deliveries (each once, in order), {witnessed} publications a witness had to get, \
         {gaps_told} missed and counted lost, {not_recovered} told not recovered, {closed} closed, \
         {twice_at_kill} twice (published as Redis was killed)",
        logs.len()
    )
}
