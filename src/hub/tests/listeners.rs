//! Presence told to closures: on the hub's presence thread, in order, with the
//! connection that joined or left, never under a lock of the hub (a closure that
//! calls the hub goes on), a panic in one caught and counted.

use std::{
    sync::{atomic::Ordering, mpsc},
    time::Duration,
};

use super::{
    super::{JoinOptions, Presence, PresenceKind},
    harness::{join, Harness},
};
use crate::{actor::ConnId, settings::Settings};

/// A bound on each wait for an event, so that a deadlock fails the test.
const WAIT: Duration = Duration::from_secs(20);

fn presence_on() -> Settings {
    let mut settings = Settings::default();
    settings.hub.presence = true;
    settings
}

type Told = (String, PresenceKind, Option<ConnId>, Vec<ConnId>, String);

/// A closure that records each change with the members it read from the hub,
/// and the name of the thread it ran on.
fn record(h: &Harness) -> mpsc::Receiver<Told> {
    let (tx, rx) = mpsc::channel();
    let weak = h.hub.downgrade();
    let tx = std::sync::Mutex::new(tx);
    h.hub
        .on_presence_fn(move |p: &Presence| {
            let hub = weak.upgrade().expect("the hub lives");
            let members = hub.members(&p.topic).iter().map(|m| m.id).collect();
            let thread = std::thread::current().name().unwrap_or("").to_owned();
            let told = (p.user.clone(), p.kind, p.conn, members, thread);
            let _ = tx.lock().unwrap().send(told);
        })
        .unwrap();
    rx
}

#[test]
fn a_presence_closure_that_calls_the_hub_gets_each_change_in_order_with_its_connection() {
    let mut h = Harness::with_settings(1, None, &presence_on());
    let (a, b) = (h.conn(0), h.conn(0));
    let told = record(&h);
    // The hub's operations on another thread: if the closure ran under a lock of
    // the hub, its call back into the hub would block them, and the waits below
    // would fail instead of the test hanging.
    let hub = h.hub.clone();
    let ops = std::thread::spawn(move || {
        join(&hub, a, "t", JoinOptions::default().user("ann")).unwrap();
        join(&hub, b, "t", JoinOptions::default().user("bob")).unwrap();
        assert!(hub.leave(a, "t"));
        hub.inner.connection_closed(b);
    });
    let mut seen = Vec::new();
    for _ in 0..4 {
        let (user, kind, conn, members, thread) = told.recv_timeout(WAIT).expect("told");
        assert_eq!(thread, "ws-hub-presence");
        // What the closure read is a state of the topic at or after the change
        // (the operations go on meanwhile).
        assert!(members.iter().all(|m| [a, b].contains(m)), "{members:?}");
        seen.push((user, kind, conn));
    }
    ops.join().unwrap();
    assert_eq!(
        seen,
        [
            ("ann".into(), PresenceKind::Joined, Some(a)),
            ("bob".into(), PresenceKind::Joined, Some(b)),
            ("ann".into(), PresenceKind::Left, Some(a)),
            ("bob".into(), PresenceKind::Left, Some(b)),
        ]
    );
}

#[test]
fn a_user_with_two_connections_is_told_with_the_one_still_there() {
    let mut h = Harness::sharing_presence(1, &presence_on());
    let (a1, a2) = (h.conn(0), h.conn(0));
    let told = record(&h);
    for c in [a1, a2] {
        h.join(c, "t", JoinOptions::default().user("ann")).unwrap();
    }
    assert!(h.hub.leave(a1, "t"));
    // Across servers: the backplane says ann joined (its first server), then
    // zed, who has no connection here.
    h.hub
        .deliver_presence("t", "ann", None, PresenceKind::Joined);
    h.hub
        .deliver_presence("t", "zed", None, PresenceKind::Joined);
    let first = told.recv_timeout(WAIT).expect("told");
    assert_eq!((first.0.as_str(), first.2), ("ann", Some(a2)));
    let second = told.recv_timeout(WAIT).expect("told");
    assert_eq!((second.0.as_str(), second.2), ("zed", None));
}

#[test]
fn a_panicking_presence_closure_is_counted_and_the_next_change_still_comes() {
    let mut h = Harness::with_settings(1, None, &presence_on());
    let (a, b) = (h.conn(0), h.conn(0));
    h.hub
        .on_presence_fn(|p: &Presence| assert_ne!(p.user, "ann", "fails on ann"))
        .unwrap();
    let told = record(&h);
    h.join(a, "t", JoinOptions::default().user("ann")).unwrap();
    h.join(b, "t", JoinOptions::default().user("bob")).unwrap();
    assert_eq!(told.recv_timeout(WAIT).expect("told").0, "ann");
    assert_eq!(told.recv_timeout(WAIT).expect("told").0, "bob");
    assert_eq!(
        h.hub.inner.metrics.callback_panics.load(Ordering::Relaxed),
        1
    );
}
