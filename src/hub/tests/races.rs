//! Membership races with the interleavings forced: two threads run one at a time
//! and switch only at the hub's switch points (between its critical sections),
//! in an order drawn from a schedule number; every number is one interleaving,
//! and each test runs thousands of them and says how many distinct
//! interleavings it saw.

use std::{collections::HashSet, sync::Arc};

use super::{
    super::{sched, sync::lock, topic::Life, Hub, JoinOptions},
    harness::{greeting, join, Harness, Said},
};

const SCHEDULES: u64 = 3_000;

/// One interleaving: each switch point passed, with its thread.
type Trace = Vec<(usize, &'static str)>;

/// Run `bodies` (built by `make` for the harness of each schedule) under every
/// schedule number, checking `after` each time; returns the distinct
/// interleavings that ran.
fn forced(
    mut setup: impl FnMut() -> Harness,
    make: impl Fn(&Harness) -> Vec<Box<dyn FnOnce() + Send + '_>>,
    mut after: impl FnMut(&mut Harness, u64),
) -> HashSet<Trace> {
    let mut seen = HashSet::new();
    for schedule in 0..SCHEDULES {
        let mut h = setup();
        let trace = {
            let bodies = make(&h);
            sched::run(schedule, bodies)
        };
        after(&mut h, schedule);
        seen.insert(trace);
    }
    seen
}

/// Whether thread `thread` passed `point` at least twice in `trace` (a retry).
fn passed_twice(trace: &Trace, thread: usize, point: &str) -> bool {
    trace
        .iter()
        .filter(|(t, p)| *t == thread && *p == point)
        .count()
        >= 2
}

/// The topic `name` of the hub's table, checked live and holding `members`.
fn live(hub: &Hub, name: &str, members: usize) {
    let topics = lock(&hub.inner.topics);
    let topic = topics.get(name).expect("the topic is in the table");
    let state = topic.lock();
    assert_eq!(state.life, Life::Live);
    assert_eq!(state.members.len(), members);
}

/// `h` with c1 (shard 0) a member of `t` and c2 (shard 1) in no topic yet.
fn c1_in_t_and_c2(mut h: Harness) -> Harness {
    let c1 = h.conn(0);
    h.join(c1, "t", JoinOptions::default()).unwrap();
    h.conn(1);
    h
}

#[test]
fn a_join_that_meets_the_last_leave_joins_the_live_topic() {
    // c1 leaves an unconfigured topic (its last member: the topic is removed)
    // while c2 joins it: whatever the interleaving, c2 is a member of the topic in
    // the table, the backplane's last word is a subscription at the topic's
    // generation, and a publication reaches c2.
    let interleavings = forced(
        || c1_in_t_and_c2(Harness::new(2, Some(false))),
        |h| {
            let (c1, c2) = (h.conns[0], h.conns[1]);
            let (a, b) = (h.hub.clone(), h.hub.clone());
            vec![
                Box::new(move || assert!(a.leave(c1, "t"))),
                Box::new(move || {
                    join(&b, c2, "t", greeting("hello c2")).unwrap();
                }),
            ]
        },
        |h, schedule| {
            let c2 = h.conns[1];
            live(&h.hub, "t", 1);
            let topics = lock(&h.hub.inner.topics);
            let in_table = topics.get("t").unwrap().clone();
            drop(topics);
            let entry_topic = lock(&h.hub.inner.conns).get(&c2).unwrap().topics[0].clone();
            assert!(
                Arc::ptr_eq(&in_table, &entry_topic),
                "schedule {schedule}: orphan"
            );
            let generation = in_table.lock().generation;
            let last = h.backplane.last_words();
            assert_eq!(
                last["t"],
                Said::Subscribe("t".into(), generation),
                "schedule {schedule}"
            );
            assert_eq!(h.hub.subscriptions(), [("t".to_string(), generation)]);
            h.hub.publish("t", "after");
            h.pump_all();
            assert_eq!(h.received(c2), ["hello c2", "after"], "schedule {schedule}");
        },
    );
    // The race itself was among them: c2 fetched the topic, c1's leave removed
    // it, and c2's join met it removed and fetched the live one.
    assert!(
        interleavings
            .iter()
            .any(|t| passed_twice(t, 1, "topic fetched")),
        "no join met a removed topic in {} interleavings",
        interleavings.len()
    );
    eprintln!(
        "join against last leave: {} distinct interleavings over {SCHEDULES} schedules",
        interleavings.len()
    );
}

#[test]
fn two_connections_joining_and_leaving_leave_no_topic_and_no_subscription() {
    // Two threads join and leave an unconfigured topic three times each.
    let interleavings = forced(
        || {
            let mut h = Harness::new(2, Some(false));
            h.conn(0);
            h.conn(1);
            h
        },
        |h| {
            let (a, b) = (h.hub.clone(), h.hub.clone());
            let (c1, c2) = (h.conns[0], h.conns[1]);
            let churn = |hub: Hub, id| {
                move || {
                    for _ in 0..3 {
                        join(&hub, id, "t", JoinOptions::default()).unwrap();
                        assert!(hub.leave(id, "t"));
                    }
                }
            };
            vec![Box::new(churn(a, c1)), Box::new(churn(b, c2))]
        },
        |h, schedule| {
            assert!(
                h.hub.topics().is_empty(),
                "schedule {schedule}: {:?}",
                h.hub.topics()
            );
            let last = h.backplane.last_words();
            assert!(
                matches!(last["t"], Said::Unsubscribe(..)),
                "schedule {schedule}"
            );
            assert!(h.hub.subscriptions().is_empty());
            h.pump_all();
            assert_eq!(h.hub.publish("t", "x").shards, 0);
        },
    );
    assert!(
        interleavings
            .iter()
            .any(|t| passed_twice(t, 0, "topic fetched") && passed_twice(t, 1, "topic fetched")),
        "no join met a removed topic"
    );
    assert!(
        interleavings.len() >= 500,
        "{} interleavings",
        interleavings.len()
    );
    eprintln!(
        "two churning connections: {} distinct interleavings over {SCHEDULES} schedules",
        interleavings.len()
    );
}

#[test]
fn a_publication_after_a_join_is_never_lost_to_a_removal() {
    // Without a backplane: c1 leaves (removing the topic) while c2 joins and then
    // publishes. c2's own thread published after its join: c3, a member that
    // joined before, and c2 get it (c1 may or may not, as it left meanwhile).
    let interleavings = forced(
        || c1_in_t_and_c2(Harness::new(2, None)),
        |h| {
            let (c1, c2) = (h.conns[0], h.conns[1]);
            let (a, b) = (h.hub.clone(), h.hub.clone());
            vec![
                Box::new(move || assert!(a.leave(c1, "t"))),
                Box::new(move || {
                    join(&b, c2, "t", JoinOptions::default()).unwrap();
                    // c1's shard too, when it had not left yet.
                    assert!(b.publish("t", "p").shards >= 1);
                }),
            ]
        },
        |h, schedule| {
            h.pump_all();
            assert_eq!(h.received(h.conns[1]), ["p"], "schedule {schedule}");
            live(&h.hub, "t", 1);
        },
    );
    assert!(interleavings
        .iter()
        .any(|t| passed_twice(t, 1, "topic fetched")));
}

#[test]
fn a_join_that_meets_its_connections_close_leaves_nothing_behind() {
    // c1 joins while its connection closes: either the join is refused, or c1 is
    // a member that the close takes out; never a member of a closed connection.
    let interleavings = forced(
        || {
            let mut h = Harness::new(1, Some(false));
            h.conn(0);
            h
        },
        |h| {
            let c1 = h.conns[0];
            let (a, b) = (h.hub.clone(), h.hub.clone());
            vec![
                Box::new(move || {
                    let _ = join(&a, c1, "t", JoinOptions::default());
                }),
                Box::new(move || b.inner.connection_closed(c1)),
            ]
        },
        |h, schedule| {
            assert!(
                h.hub.topics().is_empty(),
                "schedule {schedule}: {:?}",
                h.hub.topics()
            );
            assert!(h.hub.subscriptions().is_empty(), "schedule {schedule}");
            let last = h.backplane.last_words();
            assert!(
                last.get("t")
                    .is_none_or(|s| matches!(s, Said::Unsubscribe(..))),
                "schedule {schedule}"
            );
        },
    );
    assert!(
        interleavings.len() >= 3,
        "{} interleavings",
        interleavings.len()
    );
}

#[test]
fn presence_under_forced_churn_reports_each_users_first_join_and_last_leave() {
    // Two threads, two connections of one user and one of another, joining and
    // leaving a topic (unconfigured, presence on) twice each: per user, the
    // decisions alternate first join / last leave, and the last one says whether
    // the user is present.
    let mut settings = crate::settings::Settings::default();
    settings.hub.presence = true;
    let interleavings = forced(
        || {
            let mut h = Harness::sharing_presence(2, &settings);
            h.conn(0);
            h.conn(1);
            h.conn(1);
            h
        },
        |h| {
            let (a, b) = (h.hub.clone(), h.hub.clone());
            let (c0, c1, c2) = (h.conns[0], h.conns[1], h.conns[2]);
            vec![
                Box::new(move || {
                    for _ in 0..2 {
                        join(&a, c0, "t", JoinOptions::default().user("ann")).unwrap();
                        assert!(a.leave(c0, "t"));
                    }
                    join(&a, c0, "t", JoinOptions::default().user("ann")).unwrap();
                }),
                Box::new(move || {
                    for _ in 0..2 {
                        join(&b, c1, "t", JoinOptions::default().user("ann")).unwrap();
                        join(&b, c2, "t", JoinOptions::default().user("bob")).unwrap();
                        assert!(b.leave(c1, "t"));
                        assert!(b.leave(c2, "t"));
                    }
                }),
            ]
        },
        |h, schedule| {
            let mut present: std::collections::HashMap<String, bool> = Default::default();
            for said in lock(&h.backplane.said).iter() {
                if let Said::Presence(_, user, joined) = said {
                    let was = present.insert(user.clone(), *joined).unwrap_or(false);
                    assert_ne!(
                        was, *joined,
                        "schedule {schedule}: {user} told {joined} twice"
                    );
                }
            }
            assert!(present["ann"], "schedule {schedule}");
            assert!(!present["bob"], "schedule {schedule}");
            assert_eq!(h.hub.users("t"), ["ann"]);
        },
    );
    assert!(
        interleavings.len() >= 500,
        "{} interleavings",
        interleavings.len()
    );
    eprintln!(
        "presence under churn: {} distinct interleavings over {SCHEDULES} schedules",
        interleavings.len()
    );
}

/// A backplane's view of one topic, kept as the seam's documentation says: the
/// latest generation it was told wins; a confirmation for another generation is
/// stale.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct View {
    generation: u64,
    wanted: bool,
    /// What the store confirmed for `generation` (`None`: not yet).
    confirmed: Option<bool>,
}

#[test]
fn confirmations_out_of_order_leave_a_backplane_that_follows_the_generations_right() {
    // Two threads join and leave; a third plays the store, confirming the
    // decisions the hub told in a random order (late, stale ones included). A
    // backplane that keeps the latest generation per topic and ignores the
    // confirmations of others ends with exactly what `Hub::subscriptions` says,
    // at its generations.
    use std::sync::{
        atomic::{AtomicUsize, Ordering},
        Mutex,
    };
    let views: Arc<Mutex<std::collections::HashMap<String, View>>> = Arc::default();
    let stale = Arc::new(AtomicUsize::new(0));
    let interleavings = forced(
        || {
            let mut h = Harness::new(2, Some(false));
            h.conn(0);
            h.conn(1);
            lock(&views).clear();
            h
        },
        |h| {
            let (a, b) = (h.hub.clone(), h.hub.clone());
            let (c1, c2) = (h.conns[0], h.conns[1]);
            let backplane = h.backplane.clone();
            let (views, stale) = (views.clone(), stale.clone());
            let churn = |hub: Hub, id, topics: [&'static str; 2]| {
                move || {
                    for t in topics {
                        join(&hub, id, t, JoinOptions::default()).unwrap();
                    }
                    for t in topics {
                        assert!(hub.leave(id, t));
                        join(&hub, id, t, JoinOptions::default()).unwrap();
                    }
                    assert!(hub.leave(id, topics[0]));
                }
            };
            let store = move || {
                // Takes what the hub told so far and confirms one of the pending
                // decisions (any of them) at each step.
                let mut seen = 0;
                let mut pending: Vec<(String, u64, bool)> = Vec::new();
                for step in 0..40u64 {
                    sched::point("store");
                    let said = lock(&backplane.said);
                    for s in &said[seen..] {
                        let (t, g, on) = match s {
                            Said::Subscribe(t, g) => (t.clone(), *g, true),
                            Said::Unsubscribe(t, g) => (t.clone(), *g, false),
                            _ => continue,
                        };
                        let mut views = lock(&views);
                        let view = views.entry(t.clone()).or_default();
                        if g > view.generation {
                            *view = View {
                                generation: g,
                                wanted: on,
                                confirmed: None,
                            };
                        }
                        pending.push((t, g, on));
                    }
                    seen = said.len();
                    drop(said);
                    if !pending.is_empty() {
                        let (t, g, on) = pending.remove((step * 7 % 5) as usize % pending.len());
                        let mut views = lock(&views);
                        let view = views.get_mut(&t).unwrap();
                        if view.generation == g {
                            view.confirmed = Some(on);
                        } else {
                            stale.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
            };
            vec![
                Box::new(churn(a, c1, ["x", "y"])),
                Box::new(churn(b, c2, ["y", "x"])),
                Box::new(store),
            ]
        },
        |h, schedule| {
            // The rest told and confirmed (the store caught up).
            for s in lock(&h.backplane.said).iter() {
                let (t, g, on) = match s {
                    Said::Subscribe(t, g) => (t, *g, true),
                    Said::Unsubscribe(t, g) => (t, *g, false),
                    _ => continue,
                };
                let mut views = lock(&views);
                let view = views.entry(t.clone()).or_default();
                if g > view.generation {
                    *view = View {
                        generation: g,
                        wanted: on,
                        confirmed: Some(on),
                    };
                }
            }
            let views = lock(&views);
            let mut subscribed: Vec<(String, u64)> = views
                .iter()
                .filter(|(_, v)| v.wanted)
                .map(|(t, v)| (t.clone(), v.generation))
                .collect();
            subscribed.sort();
            assert_eq!(subscribed, h.hub.subscriptions(), "schedule {schedule}");
        },
    );
    let stale = stale.load(Ordering::Relaxed);
    assert!(stale > 0, "no confirmation came stale");
    assert!(
        interleavings.len() >= 1_000,
        "{} interleavings",
        interleavings.len()
    );
    eprintln!(
        "confirmations out of order: {} distinct interleavings over {SCHEDULES} schedules, {stale} stale confirmations ignored",
        interleavings.len()
    );
}
