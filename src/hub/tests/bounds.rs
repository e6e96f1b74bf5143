//! Every bound of the hub: past it, a typed refusal or a counted drop, and
//! nothing kept that should not be.

use std::{
    sync::atomic::Ordering,
    time::{Duration, Instant},
};

use super::{
    super::{sync::lock, JoinError, JoinOptions, Position},
    harness::Harness,
};
use crate::settings::{Settings, SlowConsumer};

fn settings(f: impl FnOnce(&mut crate::settings::HubSettings)) -> Settings {
    let mut settings = Settings::default();
    f(&mut settings.hub);
    settings
}

fn refused(h: &Harness) -> u64 {
    h.hub.inner.metrics.joins_refused.load(Ordering::Relaxed)
}

#[test]
fn a_connection_joins_at_most_max_topics_per_connection() {
    let mut h = Harness::with_settings(1, None, &settings(|s| s.max_topics_per_connection = 3));
    let c = h.conn(0);
    for t in ["a", "b", "c"] {
        h.join(c, t, JoinOptions::default()).unwrap();
    }
    assert_eq!(
        h.join(c, "d", JoinOptions::default()),
        Err(JoinError::TooManyTopics { limit: 3 })
    );
    // The refused join left no topic behind.
    assert_eq!(h.hub.topics(), ["a", "b", "c"]);
    assert_eq!(refused(&h), 1);
    // Joining one it is in already is no new topic; after a leave, one more fits.
    assert!(h.join(c, "a", JoinOptions::default()).unwrap().already);
    assert!(h.hub.leave(c, "a"));
    h.join(c, "d", JoinOptions::default()).unwrap();
}

#[test]
fn topic_names_are_bounded_and_never_hold_braces() {
    let mut h = Harness::with_settings(1, Some(false), &settings(|s| s.max_topic_bytes = 8));
    let c = h.conn(0);
    for (name, error) in [
        ("123456789", JoinError::TopicTooLong { limit: 8 }),
        ("", JoinError::InvalidTopic),
        ("}x", JoinError::InvalidTopic),
        ("a{b}", JoinError::InvalidTopic),
    ] {
        assert_eq!(h.join(c, name, JoinOptions::default()), Err(error.clone()));
        assert_eq!(h.hub.check_topic(name), Err(error));
        assert_eq!(h.hub.publish(name, "x").position, None);
    }
    h.join(c, "12345678", JoinOptions::default()).unwrap();
    h.join(c, "é\0x", JoinOptions::default()).unwrap();
    assert_eq!(refused(&h), 4);
    let m = &h.hub.inner.metrics;
    assert_eq!(m.publications_refused.load(Ordering::Relaxed), 4);
    // None of them reached the backplane.
    assert!(lock(&h.backplane.said)
        .iter()
        .all(|s| !matches!(s, super::harness::Said::Publish(..))));
}

#[test]
fn user_keys_and_metadata_are_bounded() {
    let mut h = Harness::with_settings(
        1,
        None,
        &settings(|s| {
            s.max_user_bytes = 4;
            s.max_meta_bytes = 6;
        }),
    );
    let c = h.conn(0);
    assert_eq!(
        h.join(c, "t", JoinOptions::default().user("12345")),
        Err(JoinError::UserTooLong { limit: 4 })
    );
    assert_eq!(
        h.join(c, "t", JoinOptions::default().meta("1234567")),
        Err(JoinError::MetaTooLong { limit: 6 })
    );
    assert!(h.hub.topics().is_empty());
    h.join(c, "t", JoinOptions::default().user("1234").meta("123456"))
        .unwrap();
    // Updating the metadata of a member is bounded too.
    assert_eq!(
        h.join(c, "t", JoinOptions::default().meta("1234567")),
        Err(JoinError::MetaTooLong { limit: 6 })
    );
    assert_eq!(h.hub.members("t")[0].meta.as_deref(), Some("123456"));
}

#[test]
fn a_topic_holds_at_most_max_members_per_topic() {
    let mut h = Harness::with_settings(2, None, &settings(|s| s.max_members_per_topic = 2));
    let (a, b, c) = (h.conn(0), h.conn(1), h.conn(0));
    h.join(a, "t", JoinOptions::default()).unwrap();
    h.join(b, "t", JoinOptions::default()).unwrap();
    assert_eq!(
        h.join(c, "t", JoinOptions::default()),
        Err(JoinError::TopicFull { limit: 2 })
    );
    h.join(c, "u", JoinOptions::default()).unwrap();
    assert!(h.hub.leave(a, "t"));
    h.join(c, "t", JoinOptions::default()).unwrap();
    assert_eq!(h.hub.count("t"), 2);
}

/// 100-byte texts: each kept publication holds 100 (payload) + 102 (frame) bytes.
const KEPT: usize = 202;

fn text(n: usize) -> String {
    format!("{n:0100}")
}

#[test]
fn a_topics_history_keeps_at_most_history_bytes() {
    let mut h = Harness::with_settings(
        1,
        None,
        &settings(|s| {
            s.history_size = 100;
            s.history_bytes = 1000;
        }),
    );
    let c = h.conn(0);
    h.join(c, "t", JoinOptions::default()).unwrap();
    for n in 0..10 {
        h.hub.publish("t", text(n));
    }
    let topic = lock(&h.hub.inner.topics).get("t").unwrap().clone();
    let state = topic.lock();
    assert_eq!(state.history.len(), 1000 / KEPT);
    assert_eq!(state.history_bytes, 4 * KEPT);
    let epoch = state.epoch.to_string();
    drop(state);
    assert_eq!(
        h.hub.inner.histories.bytes.load(Ordering::Relaxed),
        4 * KEPT
    );
    // Offsets 7..=10 are kept: from 6 it recovers, from 5 it does not.
    let d = h.conn(0);
    let since = |offset| {
        JoinOptions::default().since(Position {
            epoch: epoch.clone(),
            offset,
        })
    };
    let joined = h.join(d, "t", since(6)).unwrap();
    assert_eq!((joined.recovered, joined.replayed), (Some(true), 4));
    assert!(h.hub.leave(d, "t"));
    let joined = h.join(d, "t", since(5)).unwrap();
    assert_eq!((joined.recovered, joined.replayed), (Some(false), 0));
    // One publication larger than the bound cannot be kept: the history empties.
    h.hub.publish("t", "x".repeat(600));
    assert_eq!(topic.lock().history.len(), 0);
    assert_eq!(h.hub.inner.histories.bytes.load(Ordering::Relaxed), 0);
}

#[test]
fn past_max_history_bytes_the_oldest_publications_of_any_topic_go_first() {
    let mut h = Harness::with_settings(
        1,
        None,
        &settings(|s| {
            s.history_size = 100;
            s.max_history_bytes = 2000;
        }),
    );
    let c = h.conn(0);
    for t in ["a", "b", "c"] {
        h.join(c, t, JoinOptions::default()).unwrap();
    }
    let names = ["a", "b", "c"];
    for n in 0..30 {
        h.hub.publish(names[n % 3], text(n));
    }
    let kept = 2000 / KEPT;
    let hist = &h.hub.inner.histories;
    assert_eq!(hist.bytes.load(Ordering::Relaxed), kept * KEPT);
    assert_eq!(
        h.hub.inner.metrics.history_evicted.load(Ordering::Relaxed),
        (30 - kept) as u64
    );
    // What is kept is the latest publications, whatever their topic.
    let mut texts: Vec<String> = Vec::new();
    for t in names {
        let topic = lock(&h.hub.inner.topics).get(t).unwrap().clone();
        let state = topic.lock();
        texts.extend(
            state
                .history
                .iter()
                .map(|k| String::from_utf8(k.delivery.prepared.payload().to_vec()).unwrap()),
        );
    }
    texts.sort();
    let latest: Vec<String> = (30 - kept..30).map(text).collect();
    assert_eq!(texts, latest);
}

#[test]
fn the_sweep_drops_expired_history_and_forgets_topics_left_empty() {
    let ttl = Duration::from_secs(10);
    let mut h = Harness::with_settings(
        1,
        None,
        &settings(|s| {
            s.history_size = 10;
            s.history_ttl = Some(ttl);
        }),
    );
    let c = h.conn(0);
    h.join(c, "t", JoinOptions::default()).unwrap();
    h.hub.configure("kept", h.hub.topic_defaults());
    for n in 0..3 {
        h.hub.publish("t", text(n));
        h.hub.publish("kept", text(n));
    }
    assert!(h.hub.leave(c, "t"));
    let start = Instant::now();
    // Idle but keeping a history: still there, until it expires.
    h.hub.inner.sweep(start + ttl / 2);
    assert_eq!(h.hub.topics(), ["kept", "t"]);
    h.hub.inner.sweep(start + ttl + Duration::from_secs(1));
    // A configured topic stays (its history expired too).
    assert_eq!(h.hub.topics(), ["kept"]);
    assert_eq!(h.hub.inner.histories.bytes.load(Ordering::Relaxed), 0);
    let kept = lock(&h.hub.inner.topics).get("kept").unwrap().clone();
    assert!(kept.lock().history.is_empty());
}

#[test]
fn a_publisher_that_outruns_a_thread_gets_its_publications_counted_as_dropped() {
    let mut h = Harness::with_settings(
        1,
        None,
        &settings(|s| {
            s.max_queued_per_thread = 4;
            s.slow_consumer = SlowConsumer::Drop;
        }),
    );
    let (a, b) = (h.conn(0), h.conn(0));
    h.join(a, "t", JoinOptions::default()).unwrap();
    h.join(b, "t", JoinOptions::default()).unwrap();
    h.pump_all();
    for n in 0..10 {
        h.hub.publish_except("t", format!("m{n}"), b);
    }
    let hub = h.hub.clone();
    let full = || hub.inner.metrics.queue_full.load(Ordering::Relaxed);
    assert_eq!(full(), 6);
    h.pump_all();
    // The policy applies before the next publication: each subscriber that missed
    // them is told (here: counted as dropped, six times); b was not their target.
    assert_eq!(h.received(a), ["!over budget", "m0", "m1", "m2", "m3"]);
    assert_eq!(h.received(b), Vec::<String>::new());
    assert_eq!(h.hub.dropped(), 6);
    assert_eq!(h.hub.deliveries(), 4);
    // The queue drained: publications are queued again.
    h.hub.publish("t", "m10");
    h.pump_all();
    assert_eq!(h.received(a).last().map(String::as_str), Some("m10"));
    assert_eq!(full(), 6);
}
