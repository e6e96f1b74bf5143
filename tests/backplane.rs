//! The Redis backplane: hubs on two servers act as one. Each test starts its own
//! `redis-server` on a free loopback port (`scripts/test-all.sh` installs it), two
//! standalone servers each with a hub and a backplane, and raw clients.

#[path = "support/member.rs"]
mod member;
#[path = "support/raw_ws.rs"]
mod raw_ws;
#[path = "support/redis.rs"]
mod redis;

use std::{
    collections::HashMap,
    net::SocketAddr,
    process::{Command, Stdio},
    sync::Arc,
    time::Duration,
};

use raw_ws::Client;
use redis::{free_port, listening, Redis};
use tokio::sync::mpsc;
use websocket_driver as ws;
use ws::hub::redis::RedisBackplane;

/// How long a killed server's presence lives in Redis without its refresh, in
/// the test that kills one (the others keep the default).
const PRESENCE_TTL: Duration = Duration::from_millis(1500);

struct Node {
    addr: SocketAddr,
    hub: ws::Hub,
    backplane: Arc<RedisBackplane>,
    handle: actix_server::ServerHandle,
    /// What the hub tells its presence recipients: `joined USER`, `left USER`.
    presence: mpsc::UnboundedReceiver<String>,
}

/// A presence recipient that writes down what it is told.
struct Recorder(mpsc::UnboundedSender<String>);

impl actix::Actor for Recorder {
    type Context = actix::Context<Self>;
}

impl actix::Handler<ws::Presence> for Recorder {
    type Result = ();
    fn handle(&mut self, p: ws::Presence, _: &mut actix::Context<Self>) {
        let kind = match p.kind {
            ws::PresenceKind::Joined => "joined",
            ws::PresenceKind::Left => "left",
        };
        // With metadata (the chat example's nickname): `joined KEY (NAME)`.
        let _ = self.0.send(match p.meta {
            Some(meta) => format!("{kind} {} ({meta})", p.user),
            None => format!("{kind} {}", p.user),
        });
    }
}

impl Node {
    /// The next presence change this node's hub told.
    async fn told(&mut self) -> String {
        tokio::time::timeout(Duration::from_secs(10), self.presence.recv())
            .await
            .expect("a presence change within 10 s")
            .expect("the recorder runs")
    }
}

/// A server with a hub on `redis`: every publication is shown as
/// `OFFSET|TEXT` (the renderer's work).
async fn node(redis: &str) -> Node {
    node_with(redis, ws::RedisSettings::default().presence_ttl, false).await
}

async fn node_with(redis: &str, presence_ttl: Duration, sharded: bool) -> Node {
    let mut settings = ws::Settings::default();
    settings.redis.presence_ttl = presence_ttl;
    settings.redis.sharded = sharded;
    settings.hub.history_size = 1000;
    settings.hub.presence = true;
    settings.redis.url = redis.to_owned();
    // The default command timeout (2 s): a publication on a live connection is
    // awaited past it anyway; while Redis is down, A delivers what its client
    // holds after it.
    settings.redis.reconnect_max = Duration::from_millis(200);
    let hub = ws::Hub::with_settings(&settings);
    hub.set_renderer(|_, position, message| {
        let text = std::str::from_utf8(message.as_bytes()).unwrap_or("");
        ws::Message::from(format!("{}|{text}", position.offset))
    });
    let backplane = RedisBackplane::start(&hub, settings.redis.clone())
        .await
        .expect("the backplane connects");
    let (addr, handle) = member::serve(settings, &hub, "room");
    let (tx, presence) = mpsc::unbounded_channel();
    use actix::Actor as _;
    hub.on_presence(Recorder(tx).start().recipient());
    Node {
        addr,
        hub,
        backplane,
        handle,
        presence,
    }
}

/// A subscriber, once its join is answered: (client, epoch, offset, recovered).
async fn subscriber(node: &Node, query: &str) -> (Client, String, u64, bool) {
    let mut client = Client::connect(node.addr, &format!("/sub{query}")).await;
    let answer = client.text().await;
    let parts: Vec<&str> = answer.split(' ').collect();
    assert_eq!(parts[0], "joined", "{answer}");
    let (epoch, offset, recovered) = (
        parts[1].to_owned(),
        parts[2].parse().unwrap(),
        parts[3] == "true",
    );
    (client, epoch, offset, recovered)
}

/// [`read`] within 20 s, or a failure that says what each node counted.
async fn read_all(client: &mut Client, n: usize, nodes: [&Node; 2]) -> Vec<(u64, String)> {
    match tokio::time::timeout(Duration::from_secs(20), read(client, n)).await {
        Ok(seen) => seen,
        Err(_) => panic!(
            "not all {n} within 20 s: A {:?}, B {:?}",
            nodes[0].backplane.stats(),
            nodes[1].backplane.stats()
        ),
    }
}

/// Read `n` publications: (offset, text).
async fn read(client: &mut Client, n: usize) -> Vec<(u64, String)> {
    let mut seen = Vec::new();
    for _ in 0..n {
        let text = client.text().await;
        let (offset, body) = text.split_once('|').unwrap();
        seen.push((offset.parse().unwrap(), body.to_owned()));
    }
    seen
}

#[actix_rt::test]
#[ignore = "needs redis-server; scripts/test-all.sh runs it"]
async fn publications_from_both_servers_reach_every_client_once_in_one_order() {
    let redis = Redis::start().await;
    let (a, b) = (node(&redis.url()).await, node(&redis.url()).await);
    let mut subs = Vec::new();
    for node in [&a, &b, &a, &b, &a, &b] {
        subs.push(subscriber(node, "").await.0);
    }
    let mut pub_a = Client::connect(a.addr, "/pub").await;
    let mut pub_b = Client::connect(b.addr, "/pub").await;
    const EACH: usize = 200;
    for n in 0..EACH {
        pub_a.send_text(&format!("a{n}")).await;
        pub_b.send_text(&format!("b{n}")).await;
    }
    let mut orders = Vec::new();
    for sub in &mut subs {
        let seen = read_all(sub, 2 * EACH, [&a, &b]).await;
        // One order: offsets 1, 2, 3, ... on every client.
        let offsets: Vec<u64> = seen.iter().map(|(o, _)| *o).collect();
        assert_eq!(offsets, (1..=2 * EACH as u64).collect::<Vec<_>>());
        // Each sender's in its order, none missing, none twice.
        for sender in ["a", "b"] {
            let mine: Vec<&str> = seen
                .iter()
                .filter(|(_, t)| t.starts_with(sender))
                .map(|(_, t)| t.as_str())
                .collect();
            let expected: Vec<String> = (0..EACH).map(|n| format!("{sender}{n}")).collect();
            assert_eq!(mine, expected);
        }
        orders.push(seen);
    }
    assert!(
        orders.windows(2).all(|w| w[0] == w[1]),
        "the same order everywhere"
    );
    assert_eq!((a.backplane.dropped(), b.backplane.dropped()), (0, 0));
    a.handle.stop(false).await;
    b.handle.stop(false).await;
}

#[actix_rt::test]
#[ignore = "needs redis-server; scripts/test-all.sh runs it"]
async fn a_client_that_moves_to_the_other_server_recovers_what_it_missed() {
    let redis = Redis::start().await;
    let (a, b) = (node(&redis.url()).await, node(&redis.url()).await);
    let (mut witness, _, _, _) = subscriber(&b, "").await;
    let (mut moving, epoch, offset, _) = subscriber(&a, "").await;
    assert_eq!(offset, 0);
    let mut publisher = Client::connect(a.addr, "/pub").await;
    for n in 0..10 {
        publisher.send_text(&format!("m{n}")).await;
    }
    let first = read(&mut moving, 10).await;
    assert_eq!(first.last().unwrap().0, 10);
    drop(moving);
    // 20 go by while it is away, from both servers.
    let mut other = Client::connect(b.addr, "/pub").await;
    for n in 10..20 {
        publisher.send_text(&format!("m{n}")).await;
        other.send_text(&format!("o{n}")).await;
    }
    // A witness on B, there from the start, sees the 20 land before the move.
    let seen_by_witness = read(&mut witness, 30).await;
    assert_eq!(seen_by_witness.last().unwrap().0, 30);
    let (mut back, e, at, recovered) = subscriber(&b, &format!("?since={epoch}:10")).await;
    assert!(recovered, "recovered");
    assert_eq!(e, epoch);
    publisher.send_text("live").await;
    let seen = read(&mut back, (at - 10) as usize + 1).await;
    let offsets: Vec<u64> = seen.iter().map(|(o, _)| *o).collect();
    assert_eq!(
        offsets,
        (11..=at + 1).collect::<Vec<_>>(),
        "no gap, no duplicate"
    );
    assert_eq!(seen.last().unwrap().1, "live");
    assert_eq!(read(&mut witness, 1).await[0].1, "live");
    // Asking from another epoch (or a trimmed history) is answered honestly.
    let (_, _, _, recovered) = subscriber(&b, "?since=0000000000000000:3").await;
    assert!(!recovered);
    a.handle.stop(false).await;
    b.handle.stop(false).await;
}

#[actix_rt::test]
#[ignore = "needs redis-server; scripts/test-all.sh runs it"]
async fn while_redis_is_down_local_delivery_goes_on_and_the_lost_are_counted() {
    let mut redis = Redis::start().await;
    let (a, b) = (node(&redis.url()).await, node(&redis.url()).await);
    let (mut on_a, epoch_before, _, _) = subscriber(&a, "").await;
    let (mut on_b, _, _, _) = subscriber(&b, "").await;
    let mut publisher = Client::connect(a.addr, "/pub").await;
    for n in 0..100 {
        publisher.send_text(&format!("before{n}")).await;
    }
    assert_eq!(read(&mut on_a, 100).await.len(), 100);
    assert_eq!(read(&mut on_b, 100).await.len(), 100);

    redis.stop();
    for n in 0..50 {
        publisher.send_text(&format!("during{n}")).await;
    }
    // Local delivery never stops.
    let during = match tokio::time::timeout(Duration::from_secs(10), read(&mut on_a, 50)).await {
        Ok(d) => d,
        Err(_) => panic!("not delivered here within 10 s: {:?}", a.backplane.stats()),
    };
    let texts: Vec<&str> = during.iter().map(|(_, t)| t.as_str()).collect();
    let expected: Vec<String> = (0..50).map(|n| format!("during{n}")).collect();
    assert_eq!(texts, expected);
    assert_eq!(a.backplane.dropped(), 50, "each one counted, none queued");

    redis.run().await;
    // Cross-server delivery resumes by itself: probe until Redis takes A's
    // publications again and B's subscription came back (what B's subscription
    // misses meanwhile is filled from the stream).
    let mut resumed = false;
    for n in 0..200 {
        publisher.send_text(&format!("probe{n}")).await;
        tokio::time::sleep(Duration::from_millis(20)).await;
        if a.backplane.stats().published > 100 && b.backplane.reconnects() > 0 {
            resumed = true;
            break;
        }
    }
    assert!(resumed, "A publishes through Redis again, B reconnected");
    // What B got after the outage are probes and then the rest, all from after
    // it; and, at most once each, publications made as Redis went, before A's
    // client saw its connection go (held in its queue, delivered on A in their
    // place, and written once the connection was back).
    for n in 0..100 {
        publisher.send_text(&format!("after{n}")).await;
    }
    let mut after_on_b = Vec::new();
    let mut during_on_b = std::collections::HashSet::new();
    while after_on_b.len() < 100 {
        let (_, text) =
            match tokio::time::timeout(Duration::from_secs(10), read(&mut on_b, 1)).await {
                Ok(mut d) => d.remove(0),
                Err(_) => panic!(
                    "B got {} of the 100 within 10 s: A {:?}, B {:?}",
                    after_on_b.len(),
                    a.backplane.stats(),
                    b.backplane.stats()
                ),
            };
        if text.starts_with("during") {
            assert!(during_on_b.insert(text.clone()), "{text} twice on B");
        }
        if text.starts_with("after") {
            after_on_b.push(text);
        }
    }
    let expected: Vec<String> = (0..100).map(|n| format!("after{n}")).collect();
    assert_eq!(after_on_b, expected);
    // A delivered each one of the outage once: none came back.
    loop {
        let (_, text) =
            match tokio::time::timeout(Duration::from_secs(10), read(&mut on_a, 1)).await {
                Ok(mut d) => d.remove(0),
                Err(_) => panic!("A did not get after99 within 10 s"),
            };
        assert!(!text.starts_with("during"), "{text} twice on A");
        if text == "after99" {
            break;
        }
    }
    // A client that recovers across the gap is told it was not recovered: Redis
    // (no persistence) came back with a new epoch.
    let (_, epoch_after, _, recovered) =
        subscriber(&b, &format!("?since={epoch_before}:100")).await;
    assert!(!recovered);
    assert_ne!(epoch_after, epoch_before);
    a.handle.stop(false).await;
    b.handle.stop(false).await;
}

#[actix_rt::test]
#[ignore = "needs redis-server; scripts/test-all.sh runs it"]
async fn presence_is_one_across_servers_and_each_change_is_told_once() {
    let redis = Redis::start().await;
    let (mut a, mut b) = (node(&redis.url()).await, node(&redis.url()).await);
    let _bob = subscriber(&b, "?user=bob").await;
    assert_eq!(b.told().await, "joined bob");
    let alice_on_a = subscriber(&a, "?user=alice").await;
    // A learns both: Bob from Redis's snapshot, Alice as Redis saw her join.
    assert_eq!(a.told().await, "joined alice");
    assert_eq!(a.told().await, "joined bob");
    assert_eq!(b.told().await, "joined alice");
    assert_eq!(a.hub.users("room"), ["alice", "bob"]);
    assert_eq!(b.hub.users("room"), ["alice", "bob"]);

    // Alice on two servers is one user: her second connection is no change, and
    // closing her first is none either, for B, where she stays.
    let alice_on_b = subscriber(&b, "?user=alice").await;
    drop(alice_on_a);
    // A stops holding the room and tells its own recipients she left it here.
    assert_eq!(a.told().await, "left alice");
    let _carol = subscriber(&a, "?user=carol").await;
    assert_eq!(a.told().await, "joined alice");
    assert_eq!(a.told().await, "joined bob");
    assert_eq!(a.told().await, "joined carol");
    // Changes reach B in Redis's order: nothing came between (Alice stayed).
    assert_eq!(b.told().await, "joined carol");
    drop(alice_on_b);
    assert_eq!(b.told().await, "left alice");
    assert_eq!(a.told().await, "left alice");
    assert_eq!(a.hub.users("room"), ["bob", "carol"]);
    assert_eq!(b.hub.users("room"), ["bob", "carol"]);
    a.handle.stop(false).await;
    b.handle.stop(false).await;
}

/// A server taken off the list of live servers whose sweep was cut short (the
/// sweeping server died right after taking it off) is swept by another server at
/// its next heartbeat: its users leave everywhere, and the set of servers to
/// sweep is left empty. Server A is cut from Redis for good by disabling its ACL
/// user, so that it can neither refresh nor take its own users out.
#[actix_rt::test]
#[ignore = "needs redis-server; scripts/test-all.sh runs it"]
async fn a_sweep_cut_short_is_finished_by_another_server_at_its_heartbeat() {
    let redis = Redis::start().await;
    redis.cli(&["ACL", "SETUSER", "a", "on", ">pw", "~*", "&*", "+@all"]);
    let a_url = format!("redis://a:pw@127.0.0.1:{}", redis.port);
    let a = node(&a_url).await;
    let origin_a = redis.cli(&["ZRANGE", "ws:servers", "0", "-1"]);
    assert!(
        origin_a.parse::<u64>().is_ok(),
        "one server listed: {origin_a}"
    );
    let mut b = node(&redis.url()).await;
    let _bob = subscriber(&b, "?user=bob").await;
    assert_eq!(b.told().await, "joined bob");
    let _carol = subscriber(&a, "?user=carol").await;
    assert_eq!(b.told().await, "joined carol");

    // A is gone for Redis, and taken off the list by a sweeper that then died.
    redis.cli(&["ACL", "SETUSER", "a", "off"]);
    redis.cli(&["CLIENT", "KILL", "USER", "a"]);
    assert_eq!(redis.cli(&["ZREM", "ws:servers", &origin_a]), "1");
    assert_eq!(redis.cli(&["SADD", "{ws:servers}:unswept", &origin_a]), "1");

    // B finishes the sweep at its next heartbeat (every presence_ttl / 3).
    assert_eq!(b.told().await, "left carol");
    assert_eq!(b.hub.users("room"), ["bob"]);
    let mut left = String::from("?");
    for _ in 0..400 {
        left = redis.cli(&["SMEMBERS", "{ws:servers}:unswept"]);
        if left.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(left, "", "nothing left to sweep");
    let key = format!("ws:server:{origin_a}:topics");
    assert_eq!(redis.cli(&["EXISTS", &key]), "0");
    a.handle.stop(false).await;
    b.handle.stop(false).await;
}

/// The chat example's binary (`scripts/test-all.sh` builds it with `redis`).
fn example_hub() -> std::path::PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target"));
    let path = target.join("debug/examples/hub");
    assert!(
        path.exists(),
        "{} is missing: cargo build --example hub --features redis",
        path.display()
    );
    path
}

/// A chat client of the example: join `room` as `name`, then read until its
/// member list (the `members` it gets, then each `presence` change) equals
/// `members`.
async fn chat_member(addr: SocketAddr, name: &str, members: &[&str]) -> Client {
    let mut client = Client::connect(addr, "/ws").await;
    client
        .send_text(&format!(
            r#"{{"type":"join","room":"room","name":"{name}"}}"#
        ))
        .await;
    let want: std::collections::BTreeSet<String> = members.iter().map(|m| m.to_string()).collect();
    let names = |v: &serde_json::Value| -> Vec<String> {
        v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|n| n.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    };
    let mut list: Option<std::collections::BTreeSet<String>> = None;
    loop {
        let value: serde_json::Value = serde_json::from_str(&client.text().await).unwrap();
        match (value["type"].as_str(), &mut list) {
            (Some("members"), _) => list = Some(names(&value["members"]).into_iter().collect()),
            (Some("presence"), Some(list)) => {
                list.extend(names(&value["joined"]));
                for gone in names(&value["left"]) {
                    list.remove(&gone);
                }
            }
            _ => {}
        }
        if list.as_ref() == Some(&want) {
            return client;
        }
    }
}

#[actix_rt::test]
#[ignore = "needs redis-server and the example built with redis; scripts/test-all.sh runs it"]
async fn a_killed_servers_members_leave_the_others_once_its_presence_expires() {
    let redis = Redis::start().await;
    let mut b = node_with(&redis.url(), PRESENCE_TTL, false).await;
    let _dave = subscriber(&b, "?user=dave").await;
    assert_eq!(b.told().await, "joined dave");

    // The chat example, on Redis, with this test's presence_ttl.
    let dir = std::env::temp_dir().join(format!("wsd-backplane-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("chat.toml");
    std::fs::write(
        &config,
        format!(
            "[hub]\npresence = true\nhistory_size = 100\n[redis]\nurl = \"{}\"\npresence_ttl_ms = {}\n",
            redis.url(),
            PRESENCE_TTL.as_millis()
        ),
    )
    .unwrap();
    let port = free_port();
    let mut child = Command::new(example_hub())
        .args(["--bind", &format!("127.0.0.1:{port}"), "--workers", "1"])
        .arg("--config")
        .arg(&config)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the example");
    assert!(listening(port).await, "the example listens");
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    // Carol, on the example, sees Dave, on the other server.
    let _carol = chat_member(addr, "carol", &["carol", "dave"]).await;
    // Carol's user key is the example's own (a random per-process prefix and her
    // connection's id), not her nickname.
    let told = b.told().await;
    let carol = told
        .strip_prefix("joined ")
        .and_then(|t| t.strip_suffix(" (carol)"))
        .unwrap_or_else(|| panic!("{told}"))
        .to_owned();
    assert_ne!(carol, "carol");
    let mut users = vec![carol.clone(), "dave".to_owned()];
    users.sort();
    assert_eq!(b.hub.users("room"), users);

    // No goodbye: SIGKILL.
    child.kill().unwrap();
    child.wait().unwrap();
    let killed = std::time::Instant::now();
    // Swept: Redis kept no metadata for it.
    assert_eq!(b.told().await, format!("left {carol}"));
    // Swept once its refresh is older than the TTL, at B's next heartbeat.
    eprintln!(
        "left {:?} after the kill (presence_ttl {PRESENCE_TTL:?})",
        killed.elapsed()
    );
    assert_eq!(b.hub.users("room"), ["dave"]);
    let _ = std::fs::remove_dir_all(&dir);
    b.handle.stop(false).await;
}

#[actix_rt::test]
#[ignore = "needs redis-server; scripts/test-all.sh runs it"]
async fn a_subscription_cut_mid_stream_misses_nothing_the_stream_still_has() {
    let redis = Redis::start().await;
    let (a, b) = (node(&redis.url()).await, node(&redis.url()).await);
    let (mut on_a, _, _, _) = subscriber(&a, "").await;
    let (mut on_b, _, _, _) = subscriber(&b, "").await;
    let mut publisher = Client::connect(a.addr, "/pub").await;
    const N: usize = 600;
    for n in 0..N {
        if n == N / 3 {
            // Every subscription connection is cut by Redis; the publishing
            // connections stay, so publications go on being numbered meanwhile.
            let killed = Command::new("redis-cli")
                .args([
                    "-p",
                    &redis.port.to_string(),
                    "CLIENT",
                    "KILL",
                    "TYPE",
                    "pubsub",
                ])
                .output()
                .expect("redis-cli");
            assert!(killed.status.success());
        }
        publisher.send_text(&format!("m{n}")).await;
    }
    for client in [&mut on_a, &mut on_b] {
        let seen = read(client, N).await;
        let offsets: Vec<u64> = seen.iter().map(|(o, _)| *o).collect();
        assert_eq!(
            offsets,
            (1..=N as u64).collect::<Vec<_>>(),
            "no gap, no duplicate"
        );
        let texts: Vec<String> = seen.into_iter().map(|(_, t)| t).collect();
        assert_eq!(texts, (0..N).map(|n| format!("m{n}")).collect::<Vec<_>>());
    }
    assert_eq!((a.backplane.lost(), b.backplane.lost()), (0, 0));
    eprintln!(
        "filled from the stream: {} on A, {} on B",
        a.backplane.filled(),
        b.backplane.filled()
    );
    a.handle.stop(false).await;
    b.handle.stop(false).await;
}

/// A Redis Cluster of three masters (no replicas), each a `redis-server` of this
/// test's, made one with `redis-cli --cluster create`.
struct Cluster {
    nodes: Vec<Redis>,
}

impl Cluster {
    async fn start() -> Cluster {
        let dir = std::env::temp_dir().join(format!("wsd-cluster-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut nodes = Vec::new();
        for _ in 0..3 {
            let port = free_port();
            let node = Redis::start_with(
                port,
                &[
                    "--cluster-enabled".into(),
                    "yes".into(),
                    "--cluster-config-file".into(),
                    dir.join(format!("nodes-{port}.conf")).display().to_string(),
                ],
            )
            .await;
            nodes.push(node);
        }
        let mut create = Command::new("redis-cli");
        create.args(["--cluster", "create"]);
        for node in &nodes {
            create.arg(format!("127.0.0.1:{}", node.port));
        }
        let created = create
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .output()
            .expect("redis-cli");
        assert!(created.status.success(), "{created:?}");
        // Every node agrees the cluster is up.
        for node in &nodes {
            let mut ok = false;
            for _ in 0..200 {
                let info = Command::new("redis-cli")
                    .args(["-p", &node.port.to_string(), "CLUSTER", "INFO"])
                    .output()
                    .unwrap();
                if String::from_utf8_lossy(&info.stdout).contains("cluster_state:ok") {
                    ok = true;
                    break;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            assert!(ok, "cluster_state:ok on {}", node.port);
        }
        Cluster { nodes }
    }

    fn url(&self) -> String {
        let mut url = format!("redis-cluster://127.0.0.1:{}", self.nodes[0].port);
        for (i, node) in self.nodes.iter().enumerate().skip(1) {
            url.push(if i == 1 { '?' } else { '&' });
            url.push_str(&format!("node=127.0.0.1:{}", node.port));
        }
        url
    }
}

#[actix_rt::test]
#[ignore = "needs redis-server (cluster mode) and redis-cli; scripts/test-all.sh runs it"]
async fn on_a_cluster_with_sharded_pub_sub_topics_on_every_shard_keep_one_order() {
    let cluster = Cluster::start().await;
    let (a, b) = (
        node_with(
            &cluster.url(),
            ws::RedisSettings::default().presence_ttl,
            true,
        )
        .await,
        node_with(
            &cluster.url(),
            ws::RedisSettings::default().presence_ttl,
            true,
        )
        .await,
    );
    // Topics whose slots spread over the three masters.
    let topics: Vec<String> = (0..6).map(|n| format!("topic{n}")).collect();
    let mut subs = Vec::new();
    for topic in &topics {
        for node in [&a, &b] {
            subs.push((
                topic.clone(),
                subscriber(node, &format!("?topic={topic}")).await.0,
            ));
        }
    }
    const EACH: usize = 50;
    for topic in &topics {
        let mut on_a = Client::connect(a.addr, &format!("/pub?topic={topic}")).await;
        let mut on_b = Client::connect(b.addr, &format!("/pub?topic={topic}")).await;
        for n in 0..EACH {
            on_a.send_text(&format!("{topic}-a{n}")).await;
            on_b.send_text(&format!("{topic}-b{n}")).await;
        }
    }
    let mut orders: HashMap<String, Vec<(u64, String)>> = HashMap::new();
    for (topic, sub) in &mut subs {
        let seen = read_all(sub, 2 * EACH, [&a, &b]).await;
        let offsets: Vec<u64> = seen.iter().map(|(o, _)| *o).collect();
        assert_eq!(
            offsets,
            (1..=2 * EACH as u64).collect::<Vec<_>>(),
            "{topic}"
        );
        for sender in ["a", "b"] {
            let mine: Vec<&str> = seen
                .iter()
                .map(|(_, t)| t.as_str())
                .filter(|t| t.starts_with(&format!("{topic}-{sender}")))
                .collect();
            let expected: Vec<String> = (0..EACH).map(|n| format!("{topic}-{sender}{n}")).collect();
            assert_eq!(mine, expected);
        }
        // One order per topic, on both servers.
        match orders.get(topic.as_str()) {
            Some(first) => assert_eq!(first, &seen, "{topic}: the same order on A and B"),
            None => {
                orders.insert(topic.clone(), seen);
            }
        }
    }
    // The topics' keys really are on more than one master.
    let mut masters_with_keys = 0;
    for node in &cluster.nodes {
        let keys = Command::new("redis-cli")
            .args(["-p", &node.port.to_string(), "DBSIZE"])
            .output()
            .unwrap();
        let n: u64 = String::from_utf8_lossy(&keys.stdout)
            .trim()
            .parse()
            .unwrap_or(0);
        if n > 0 {
            masters_with_keys += 1;
        }
    }
    assert!(
        masters_with_keys >= 2,
        "keys on {masters_with_keys} masters"
    );
    // Recovery from a shard: a client back on the other server gets the rest.
    let (_, epoch, _, _) = subscriber(&b, "?topic=topic3").await;
    let (mut back, _, at, recovered) =
        subscriber(&b, &format!("?topic=topic3&since={epoch}:{}", 2 * EACH - 5)).await;
    assert!(recovered);
    assert_eq!(at, 2 * EACH as u64);
    let mut publisher = Client::connect(a.addr, "/pub?topic=topic3").await;
    publisher.send_text("live").await;
    let seen = read(&mut back, 6).await;
    let offsets: Vec<u64> = seen.iter().map(|(o, _)| *o).collect();
    assert_eq!(
        offsets,
        (2 * EACH as u64 - 4..=2 * EACH as u64 + 1).collect::<Vec<_>>()
    );
    assert_eq!(seen.last().unwrap().1, "live");
    assert_eq!((a.backplane.dropped(), b.backplane.dropped()), (0, 0));
    a.handle.stop(false).await;
    b.handle.stop(false).await;
}

/// A topic's only member leaves and another joins at once, 50 times: the
/// unsubscribe and the subscribe may reach the backplane in either order, and the
/// unsubscribe may still be on its way when the subscribe comes; each time a
/// publication from B must reach the new member through Redis.
#[actix_rt::test]
#[ignore = "needs redis-server; scripts/test-all.sh runs it"]
async fn a_topic_left_and_joined_again_at_once_stays_subscribed() {
    let redis = Redis::start().await;
    let (a, b) = (node(&redis.url()).await, node(&redis.url()).await);
    let mut pub_b = Client::connect(b.addr, "/pub").await;
    // 50 times: A's only subscriber leaves (A unsubscribes from the topic) and
    // another joins at once (A subscribes again): each time a publication from B
    // must reach the new one through Redis, so A ended subscribed, in Redis too.
    let mut sub = subscriber(&a, "").await.0;
    for n in 0..50 {
        drop(sub);
        sub = subscriber(&a, "").await.0;
        pub_b.send_text(&format!("m{n}")).await;
        let text = tokio::time::timeout(Duration::from_secs(10), sub.text())
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "publication {n} did not reach A within 10 s: A's hub {:?}, A {:?}, B {:?}",
                    a.hub.subscriptions(),
                    a.backplane.stats(),
                    b.backplane.stats()
                )
            });
        assert!(text.ends_with(&format!("|m{n}")), "{text}");
    }
    a.handle.stop(false).await;
    b.handle.stop(false).await;
}

/// 20 clients each join a fresh room on both servers and leave it at once (the
/// connections close before their joins are answered), 10 rooms each, 200 in
/// all; then every client is gone. No room's channel is left subscribed in
/// Redis and no presence is left, and the backplanes' own unsubscriptions did it
/// (nothing was repaired by reconciliation).
#[actix_rt::test]
#[ignore = "needs redis-server and redis-cli; scripts/test-all.sh runs it"]
async fn rooms_joined_and_left_at_once_leave_no_subscription_behind() {
    let redis = Redis::start().await;
    let (a, b) = (node(&redis.url()).await, node(&redis.url()).await);
    let (at_a, at_b) = (a.addr, b.addr);
    let clients: Vec<_> = (0..20)
        .map(|c| {
            tokio::spawn(async move {
                for r in 0..10 {
                    let path = format!("/sub?topic=leak{c}-{r}&user=u{c}");
                    let both =
                        tokio::join!(Client::connect(at_a, &path), Client::connect(at_b, &path));
                    drop(both);
                }
            })
        })
        .collect();
    for client in clients {
        client.await.unwrap();
    }
    // Once both backplanes count no subscription (each unsubscription confirmed
    // by Redis), Redis lists no channel of theirs; presence leaves follow on the
    // publications' connection. (Bounded: a hang fails, it is not waited out.)
    let settled = || {
        a.hub.subscriptions().is_empty()
            && b.hub.subscriptions().is_empty()
            && a.backplane.stats().subscriptions == 0
            && b.backplane.stats().subscriptions == 0
    };
    for _ in 0..600 {
        if settled() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        settled(),
        "A {:?}, B {:?}",
        a.backplane.stats(),
        b.backplane.stats()
    );
    assert_eq!(redis.cli(&["PUBSUB", "CHANNELS", "ws:*"]), "");
    let presence_left = || {
        ["*:pusers:*", "*:pcount", "*:pmeta"]
            .iter()
            .flat_map(|pattern| {
                redis
                    .cli(&["--scan", "--pattern", pattern])
                    .lines()
                    .filter(|l| !l.is_empty())
                    .map(str::to_owned)
                    .collect::<Vec<_>>()
            })
            .collect::<Vec<_>>()
    };
    let mut left = presence_left();
    for _ in 0..600 {
        if left.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        left = presence_left();
    }
    assert!(left.is_empty(), "presence left behind: {left:?}");
    let (sa, sb) = (a.backplane.stats(), b.backplane.stats());
    assert_eq!(
        (sa.reconciled, sb.reconciled),
        (0, 0),
        "not repaired: {sa:?} {sb:?}"
    );
    a.handle.stop(false).await;
    b.handle.stop(false).await;
}
