//! Namespaces (a policy per topic pattern), authorization (join, client
//! publication, presence) and cache topics (the newest publication to each
//! joiner).

use std::{
    sync::{atomic::Ordering, Arc},
    time::Duration,
};

use super::{
    super::{
        sync::lock, Access, AccessError, Action, Decision, Hub, JoinError, JoinOptions, Located,
        Position, PublishError, TopicSettings, Verdict,
    },
    harness::{greeting, Harness, Said},
};
use crate::{
    actor::ConnId,
    settings::{NamespaceSettings, Settings, SlowConsumer},
};

fn with_namespaces(namespaces: &[(&str, NamespaceSettings)]) -> Settings {
    let mut settings = Settings::default();
    for (name, ns) in namespaces {
        settings.hub.namespaces.insert((*name).into(), ns.clone());
    }
    settings
}

fn at(epoch: &str, offset: u64) -> Position {
    Position {
        epoch: epoch.into(),
        offset,
    }
}

fn epoch_of(h: &Harness, topic: &str) -> String {
    h.hub.position(topic).unwrap().epoch
}

// ---- namespaces ----

#[test]
fn a_topic_takes_its_exact_namespace_else_the_longest_prefix_else_the_defaults() {
    let settings = with_namespaces(&[
        (
            "chat",
            NamespaceSettings {
                history_size: Some(2),
                presence: Some(true),
                ..NamespaceSettings::default()
            },
        ),
        (
            "vip",
            NamespaceSettings {
                topics: Some("chat:vip:*".into()),
                history_size: Some(5),
                slow_consumer: Some(SlowConsumer::Drop),
                ..NamespaceSettings::default()
            },
        ),
        (
            "lobby",
            NamespaceSettings {
                topics: Some("chat:lobby".into()),
                client_publish: Some(false),
                ..NamespaceSettings::default()
            },
        ),
    ]);
    assert_eq!(settings.check(), Ok(()));
    let h = Harness::with_settings(1, None, &settings);
    let defaults = h.hub.topic_defaults();
    let chat = h.hub.topic_settings("chat:1");
    assert_eq!((chat.history_size, chat.presence), (2, true));
    assert_eq!(chat.slow_consumer, defaults.slow_consumer);
    let vip = h.hub.topic_settings("chat:vip:1");
    assert_eq!(
        (vip.history_size, vip.slow_consumer),
        (5, SlowConsumer::Drop)
    );
    // The exact name wins; the rest of its settings are the hub's defaults.
    let lobby = h.hub.topic_settings("chat:lobby");
    assert!(!lobby.client_publish);
    assert_eq!(lobby.history_size, 0);
    assert_eq!(h.hub.topic_settings("chat:lobby2").history_size, 2);
    assert_eq!(h.hub.topic_settings("feed:1"), defaults);
}

#[test]
fn a_namespaces_limits_and_policy_hold_for_its_topics_only() {
    let settings = with_namespaces(&[(
        "feed",
        NamespaceSettings {
            max_members: Some(1),
            recovery: Some(false),
            history_size: Some(10),
            send_budget_messages: Some(7),
            ..NamespaceSettings::default()
        },
    )]);
    let mut h = Harness::with_settings(1, None, &settings);
    let (a, b) = (h.conn(0), h.conn(0));
    h.join(a, "feed:x", JoinOptions::default()).unwrap();
    assert_eq!(
        h.join(b, "feed:x", JoinOptions::default()),
        Err(JoinError::TopicFull { limit: 1 })
    );
    h.join(b, "other", JoinOptions::default()).unwrap();
    h.join(a, "other", JoinOptions::default()).unwrap();
    // Each publication carries its topic's budget.
    let feed = h.hub.topic_settings("feed:x");
    let delivery = h.hub.inner.delivery("m".into(), &feed, 0, None);
    assert_eq!(delivery.policy.budget_messages, 7);
    let delivery = h
        .hub
        .inner
        .delivery("m".into(), &h.hub.topic_settings("other"), 0, None);
    assert_eq!(delivery.policy.budget_messages, 1000);
    // Recovery off: kept, but a join with a position is told it was not recovered.
    for n in 1..=3 {
        h.hub.publish("feed:x", format!("m{n}"));
    }
    let epoch = epoch_of(&h, "feed:x");
    assert!(h.hub.leave(a, "feed:x"));
    let joined = h
        .join(a, "feed:x", JoinOptions::default().since(at(&epoch, 1)))
        .unwrap();
    assert_eq!((joined.recovered, joined.replayed), (Some(false), 0));
    h.pump_all();
    assert_eq!(h.received(a), ["m1", "m2", "m3"]);
}

#[test]
fn a_namespace_set_later_applies_to_live_topics_but_not_to_configured_ones() {
    let mut h = Harness::new(1, None);
    let c = h.conn(0);
    h.join(c, "news:1", JoinOptions::default()).unwrap();
    h.hub
        .configure("news:2", h.hub.topic_defaults().history_size(9));
    let ns = h.hub.topic_defaults().history_size(3).presence(true);
    h.hub.set_namespace("news", "news:*", ns.clone());
    assert_eq!(h.hub.topic_settings("news:1"), ns);
    assert_eq!(h.hub.topic_settings("news:2").history_size, 9);
    assert_eq!(h.hub.topic_settings("news:3"), ns);
    // From a namespace's settings, as in the TOML table.
    h.hub.set_namespace_settings(
        "news",
        &NamespaceSettings {
            history_size: Some(4),
            ..NamespaceSettings::default()
        },
    );
    assert_eq!(h.hub.topic_settings("news:1").history_size, 4);
}

// ---- authorization ----

/// `$` topics and the `staff` namespace need the "admin" claim; `#NAME` is
/// NAME's alone; publishing to `ro:` topics is refused.
fn authorizer(access: &Access) -> Decision {
    let topic = access.topic.as_str();
    let admin = access
        .claims::<Vec<&'static str>>()
        .is_some_and(|c| c.contains(&"admin"));
    if (topic.starts_with('$') || access.namespace.as_deref() == Some("staff")) && !admin {
        return Decision::deny(format!("{topic} is private"));
    }
    if let Some(owner) = topic.strip_prefix('#') {
        if owner != access.user {
            return Decision::deny(format!("{topic} is {owner}'s"));
        }
    }
    if access.action == Action::Publish && topic.starts_with("ro:") {
        return Decision::deny("read only");
    }
    Decision::allow()
}

fn claim(h: &Harness, id: ConnId, claims: Vec<&'static str>) {
    lock(&h.hub.inner.conns).get_mut(&id).unwrap().claims = Some(Arc::new(claims));
}

#[test]
fn private_topics_are_refused_without_the_admin_claim() {
    let mut h = Harness::new(1, None);
    h.hub
        .set_namespace("staff", "staff:*", h.hub.topic_defaults());
    h.hub.set_authorizer(authorizer);
    let (guest, admin) = (h.conn(0), h.conn(0));
    claim(&h, guest, vec!["reader"]);
    claim(&h, admin, vec!["reader", "admin"]);
    for topic in ["$ops", "staff:room"] {
        assert_eq!(
            h.join(guest, topic, JoinOptions::default()),
            Err(JoinError::Denied {
                reason: format!("{topic} is private")
            })
        );
        h.join(admin, topic, JoinOptions::default()).unwrap();
        assert_eq!(h.hub.count(topic), 1);
    }
    h.join(guest, "lobby", JoinOptions::default()).unwrap();
    assert_eq!(h.hub.inner.metrics.joins_refused.load(Ordering::Relaxed), 2);
    // A denied join leaves nothing behind.
    assert_eq!(h.hub.topics(), ["$ops", "lobby", "staff:room"]);
}

#[test]
fn a_user_topic_admits_its_user_only() {
    let mut h = Harness::new(1, None);
    h.hub.set_authorizer(authorizer);
    let (alice, bob) = (h.conn(0), h.conn(0));
    // As `Hub::join_with` names them (the harness joins below it).
    for (id, user) in [(alice, "alice"), (bob, "bob")] {
        lock(&h.hub.inner.conns)
            .set_user(id, user.into(), 100)
            .unwrap();
    }
    h.join(alice, "#alice", JoinOptions::default().user("alice"))
        .unwrap();
    assert_eq!(
        h.join(bob, "#alice", JoinOptions::default().user("bob")),
        Err(JoinError::Denied {
            reason: "#alice is alice's".into()
        })
    );
    // Presence and client publications are asked too.
    assert_eq!(
        h.hub.members_for(bob, "#alice"),
        Err(AccessError::Denied {
            reason: "#alice is alice's".into()
        })
    );
    assert_eq!(h.hub.members_for(alice, "#alice").unwrap().len(), 1);
    assert_eq!(
        h.hub.publish_from(bob, "#alice", "hi"),
        Err(PublishError::Denied {
            reason: "#alice is alice's".into()
        })
    );
    let published = h.hub.publish_from(alice, "#alice", "note").unwrap();
    assert_eq!(published.position.map(|p| p.offset), Some(1));
    h.pump_all();
    assert_eq!(h.received(alice), ["note"]);
    assert!(h.received(bob).is_empty());
}

#[test]
fn client_publications_follow_the_topics_policy_before_the_authorizer() {
    let mut h = Harness::new(1, None);
    h.hub.set_namespace(
        "prices",
        "price:*",
        h.hub.topic_defaults().client_publish(false),
    );
    h.hub.set_namespace(
        "chat",
        "chat:*",
        h.hub.topic_defaults().max_message_bytes(Some(4)),
    );
    h.hub.set_authorizer(authorizer);
    let c = h.conn(0);
    h.join(c, "chat:1", JoinOptions::default()).unwrap();
    assert_eq!(
        h.hub.publish_from(c, "price:x", "1"),
        Err(PublishError::NotAllowed)
    );
    assert_eq!(
        h.hub.publish_from(c, "chat:1", "12345"),
        Err(PublishError::TooLarge { limit: 4 })
    );
    assert_eq!(
        h.hub.publish_from(c, "ro:1", "1"),
        Err(PublishError::Denied {
            reason: "read only".into()
        })
    );
    assert!(matches!(
        h.hub.publish_from(c, "a{b}", "1"),
        Err(PublishError::InvalidTopic(JoinError::InvalidTopic))
    ));
    h.hub.publish_from(c, "chat:1", "1234").unwrap();
    h.pump_all();
    assert_eq!(h.received(c), ["1234"]);
}

#[test]
fn an_asynchronous_authorizer_is_awaited_and_bounded_by_its_timeout() {
    let mut settings = Settings::default();
    settings.hub.authorize_timeout = Duration::from_millis(20);
    let mut h = Harness::with_settings(1, None, &settings);
    h.hub.set_authorizer(|access: &Access| {
        let topic = access.topic.clone();
        Decision::later(async move {
            match topic.as_str() {
                "never" => std::future::pending().await,
                "open" => Verdict::Allow,
                _ => Verdict::deny("looked up: no"),
            }
        })
    });
    let c = h.conn(0);
    // The synchronous join cannot wait: it says so.
    assert_eq!(
        h.join(c, "open", JoinOptions::default()),
        Err(JoinError::Asynchronous)
    );
    assert_eq!(h.hub.count("open"), 0);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    runtime.block_on(async {
        assert_eq!(h.hub.authorize(Action::Join, c, "open").await, Ok(()));
        assert_eq!(
            h.hub.authorize(Action::Presence, c, "shut").await,
            Err(AccessError::Denied {
                reason: "looked up: no".into()
            })
        );
        assert_eq!(
            h.hub.authorize(Action::Join, c, "never").await,
            Err(AccessError::TimedOut)
        );
        assert_eq!(
            h.hub.publish_from_async(c, "never", "m").await,
            Err(PublishError::AuthorizationTimedOut)
        );
    });
}

#[test]
fn a_panicking_authorizer_refuses_and_is_counted() {
    let mut h = Harness::new(1, None);
    h.hub
        .set_authorizer(|_: &Access| -> Decision { panic!("the authorizer fails") });
    let c = h.conn(0);
    assert_eq!(
        h.join(c, "t", JoinOptions::default()),
        Err(JoinError::Denied {
            reason: "authorization failed".into()
        })
    );
    assert_eq!(
        h.hub.inner.metrics.callback_panics.load(Ordering::Relaxed),
        1
    );
}

// ---- cache topics ----

fn cache_hub(backplane: Option<bool>) -> Harness {
    let settings = with_namespaces(&[(
        "prices",
        NamespaceSettings {
            topics: Some("price:*".into()),
            cache: Some(true),
            ..NamespaceSettings::default()
        },
    )]);
    Harness::with_settings(1, backplane, &settings)
}

#[test]
fn a_cache_topic_gives_each_joiner_its_newest_publication_right_after_the_answer() {
    let mut h = cache_hub(None);
    // Kept with no member: the publisher comes first.
    for n in 1..=3 {
        h.hub.publish("price:x", format!("p{n}"));
    }
    // A topic of no cache namespace keeps nothing without members.
    h.hub.publish("other", "o1");
    assert_eq!(h.hub.topics(), ["price:x"]);
    let (a, b) = (h.conn(0), h.conn(0));
    let joined = h.join(a, "price:x", greeting("joined")).unwrap();
    assert_eq!((joined.position.offset, joined.replayed), (3, 1));
    assert_eq!(joined.recovered, None);
    h.hub.publish("price:x", "p4");
    h.join(b, "price:x", greeting("joined")).unwrap();
    h.hub.publish("price:x", "p5");
    h.pump_all();
    assert_eq!(h.received(a), ["joined", "p3", "p4", "p5"]);
    assert_eq!(h.received(b), ["joined", "p4", "p5"]);
    // A joiner that recovers everything gets no extra copy; one that cannot
    // recover gets the newest.
    let epoch = epoch_of(&h, "price:x");
    let (c, d) = (h.conn(0), h.conn(0));
    let joined = h
        .join(c, "price:x", greeting("joined").since(at(&epoch, 5)))
        .unwrap();
    assert_eq!((joined.recovered, joined.replayed), (Some(true), 0));
    let joined = h
        .join(d, "price:x", greeting("joined").since(at("old", 2)))
        .unwrap();
    assert_eq!((joined.recovered, joined.replayed), (Some(false), 1));
    h.pump_all();
    assert_eq!(h.received(c), ["joined"]);
    assert_eq!(h.received(d), ["joined", "p5"]);
}

#[test]
fn a_cache_topic_by_configure_keeps_one_publication() {
    let mut h = Harness::new(1, None);
    h.hub.configure(
        "now-playing",
        TopicSettings::from(&h.hub.inner.settings).cache(true),
    );
    h.hub.publish("now-playing", "song 1");
    h.hub.publish("now-playing", "song 2");
    let topic = lock(&h.hub.inner.topics)
        .get("now-playing")
        .unwrap()
        .clone();
    assert_eq!(topic.lock().history.len(), 1);
    let c = h.conn(0);
    h.join(c, "now-playing", JoinOptions::default()).unwrap();
    h.pump_all();
    assert_eq!(h.received(c), ["song 2"]);
}

#[test]
fn with_a_numbering_backplane_a_cache_joiner_gets_the_newest_from_its_stream() {
    let mut h = cache_hub(Some(true));
    let c = h.conn(0);
    h.join(c, "price:x", greeting("joined")).unwrap();
    // Where the topic stands (nothing asked)...
    let (topic, since, done) = lock(&h.backplane.locates).remove(0);
    assert_eq!((topic.as_str(), since), ("price:x", None));
    done(Located::new(at("e", 5), None));
    // ... then the newest, as what came after the one before it.
    let (_, since, done) = lock(&h.backplane.locates).remove(0);
    assert_eq!(since, Some(at("e", 4)));
    done(Located::new(
        at("e", 5),
        Some(vec![(at("e", 5), "p5".into())]),
    ));
    h.hub
        .deliver_numbered("price:x", &at("e", 6), "p6".into(), None);
    h.pump_all();
    assert_eq!(h.received(c), ["joined", "p5", "p6"]);
    // An empty topic: one locate, nothing sent.
    let d = h.conn(0);
    h.join(d, "price:y", greeting("joined")).unwrap();
    let (_, _, done) = lock(&h.backplane.locates).remove(0);
    done(Located::new(at("f", 0), None));
    assert!(lock(&h.backplane.locates).is_empty());
    h.pump_all();
    assert_eq!(h.received(d), ["joined"]);
}

// ---- hidden members ----

#[test]
fn a_hidden_member_gets_the_topic_but_makes_no_presence_and_is_not_listed() {
    let mut settings = Settings::default();
    settings.hub.presence = true;
    settings.hub.max_members_per_topic = 2;
    let mut h = Harness::sharing_presence(1, &settings);
    let (alice, reader, third) = (h.conn(0), h.conn(0), h.conn(0));
    h.join(alice, "t", JoinOptions::default().user("alice"))
        .unwrap();
    // Hidden, even as a connection of a present user.
    let hidden = JoinOptions::default().user("alice").hidden(true);
    h.join(reader, "t", hidden).unwrap();
    let presence = |h: &Harness| -> Vec<Said> {
        lock(&h.backplane.said)
            .iter()
            .filter(|s| matches!(s, Said::Presence(..)))
            .cloned()
            .collect()
    };
    let said = |user: &str, joined| Said::Presence("t".into(), user.into(), joined);
    assert_eq!(presence(&h), [said("alice", true)]);
    let listed: Vec<ConnId> = h.hub.members("t").iter().map(|m| m.id).collect();
    assert_eq!(listed, [alice]);
    assert_eq!(h.hub.users("t"), ["alice"]);
    // Counted among the topic's connections and against its bound.
    assert_eq!(h.hub.count("t"), 2);
    assert_eq!(
        h.join(third, "t", JoinOptions::default()),
        Err(JoinError::TopicFull { limit: 2 })
    );
    h.hub.publish("t", "x");
    h.pump_all();
    assert_eq!(
        (h.received(alice), h.received(reader)),
        (vec!["x".to_owned()], vec!["x".to_owned()])
    );
    // The visible connection was the user's last in presence.
    assert!(h.hub.leave(alice, "t"));
    assert_eq!(presence(&h), [said("alice", true), said("alice", false)]);
    assert_eq!(h.hub.local_presence(), []);
    assert!(h.hub.leave(reader, "t"));
    assert_eq!(presence(&h).len(), 2);
}

// ---- conflation ----

/// A fast and a slow member of `tick:x` under `latest`, fed 10,000
/// publications by `publish(hub, n)`: the slow one takes one delivery every 97
/// publications (and the shard's timer comes every 250), then reads
/// everything, and the timer writes the newest. Returns both members.
fn feed_fast_and_slow(h: &mut Harness, mut publish: impl FnMut(&Hub, u32)) -> (ConnId, ConnId) {
    h.hub.set_namespace(
        "ticks",
        "tick:*",
        h.hub.topic_defaults().slow_consumer(SlowConsumer::Latest),
    );
    let (fast, slow) = (h.conn(0), h.conn(0));
    h.join(fast, "tick:x", JoinOptions::default()).unwrap();
    h.join(slow, "tick:x", JoinOptions::default()).unwrap();
    h.pump_all();
    h.rooms.borrow_mut().insert(slow, 0);
    for n in 1..=10_000u32 {
        publish(&h.hub, n);
        if n % 97 == 0 {
            *h.rooms.borrow_mut().get_mut(&slow).unwrap() += 1;
        }
        if n % 250 == 0 {
            h.pump_all();
            h.retry_latest(0);
        }
    }
    h.pump_all();
    h.rooms.borrow_mut().remove(&slow);
    assert!(!h.retry_latest(0), "nothing kept once written");
    (fast, slow)
}

#[test]
fn a_slow_reader_of_a_conflated_feed_gets_an_increasing_subsequence_ending_with_the_last() {
    let mut h = Harness::new(1, None);
    let (fast, slow) = feed_fast_and_slow(&mut h, |hub, n| {
        hub.publish("tick:x", n.to_string());
    });
    let numbers = |id| -> Vec<u32> { h.received(id).iter().map(|t| t.parse().unwrap()).collect() };
    assert_eq!(numbers(fast), (1..=10_000).collect::<Vec<_>>());
    let got = numbers(slow);
    assert!(got.windows(2).all(|w| w[0] < w[1]), "strictly increasing");
    assert_eq!(got.last(), Some(&10_000));
    assert!(got.len() < 200, "{} of 10,000", got.len());
    // Every one it did not get was replaced by a newer one, and counted.
    assert_eq!(h.hub.conflated(), 10_000 - got.len() as u64);
    assert_eq!(h.hub.dropped(), 0);
}

/// Two instruments published in turn, 5,000 prices each, to a fast reader and
/// one that takes one delivery in 97: the slow one gets each instrument's last
/// price, each instrument's prices strictly increasing, and the others counted
/// as conflated.
#[test]
fn a_slow_reader_of_keyed_publications_gets_the_last_of_each_key() {
    let mut h = Harness::new(1, None);
    let (fast, slow) = feed_fast_and_slow(&mut h, |hub, n| {
        let key = if n % 2 == 0 { "b" } else { "a" };
        hub.publish_keyed("tick:x", key, format!("{key} {n}"));
    });
    let parsed = |id| -> Vec<(String, u32)> {
        h.received(id)
            .iter()
            .map(|t| {
                let (k, n) = t.split_once(' ').unwrap();
                (k.to_owned(), n.parse().unwrap())
            })
            .collect()
    };
    let all: Vec<u32> = parsed(fast).iter().map(|(_, n)| *n).collect();
    assert_eq!(all, (1..=10_000).collect::<Vec<_>>());
    let got = parsed(slow);
    for key in ["a", "b"] {
        let of_key: Vec<u32> = got
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, n)| *n)
            .collect();
        assert!(
            of_key.windows(2).all(|w| w[0] < w[1]),
            "{key}: strictly increasing"
        );
        let last = if key == "a" { 9_999 } else { 10_000 };
        assert_eq!(of_key.last(), Some(&last), "{key}: its last");
    }
    // Written oldest first: the whole sequence increases too.
    assert!(got.windows(2).all(|w| w[0].1 < w[1].1));
    assert!(got.len() < 400, "{} of 10,000", got.len());
    assert_eq!(h.hub.conflated(), 10_000 - got.len() as u64);
    assert_eq!(h.hub.dropped(), 0);
}

#[test]
fn past_its_keys_a_conflating_subscriber_drops_the_oldest_value_kept() {
    let mut h = Harness::new(1, None);
    h.hub.configure(
        "t",
        h.hub
            .topic_defaults()
            .slow_consumer(SlowConsumer::Latest)
            .conflation_keys(2),
    );
    let c = h.conn(0);
    h.join(c, "t", JoinOptions::default()).unwrap();
    h.pump_all();
    h.rooms.borrow_mut().insert(c, 0);
    for (key, text) in [("a", "a1"), ("b", "b1"), ("a", "a2"), ("c", "c1")] {
        h.hub.publish_keyed("t", key, text);
    }
    h.pump_all();
    h.rooms.borrow_mut().remove(&c);
    assert!(!h.retry_latest(0));
    // a1 replaced by a2; b1 the oldest kept when c came.
    assert_eq!(h.received(c), ["a2", "c1"]);
    assert_eq!((h.hub.conflated(), h.hub.dropped()), (1, 1));
}

#[test]
fn a_conflating_join_held_for_its_answer_keeps_the_newest_within_its_budget() {
    let mut h = Harness::new(1, Some(true));
    h.hub.set_namespace(
        "ticks",
        "tick:*",
        h.hub
            .topic_defaults()
            .slow_consumer(SlowConsumer::Latest)
            .send_budget(1 << 20, 2),
    );
    let c = h.conn(0);
    h.join(c, "tick:x", JoinOptions::default()).unwrap();
    for n in 1..=5 {
        h.hub
            .deliver_numbered("tick:x", &at("e", n), n.to_string().into(), None);
    }
    let (_, _, done) = lock(&h.backplane.locates).remove(0);
    done(Located::new(at("e", 0), None));
    h.pump_all();
    assert_eq!(h.received(c), ["1", "5"]);
    assert_eq!(h.hub.conflated(), 3);
}
