//! A topic's life cycle under random operations (joins, leaves, closes,
//! publications, shards running at random moments; with a numbering backplane,
//! its answers and deliveries coming late): every member receives its join's
//! greeting, then every publication made (or, numbered, delivered above its
//! join's position) while it was a member, exactly once, in order; and the
//! backplane's last word per topic is "subscribed" exactly when the topic has
//! members here.

use std::collections::HashMap;

use proptest::prelude::*;

use super::{
    super::{sync::lock, Position},
    harness::{greeting, Harness, Said},
};
use crate::actor::ConnId;

const CONNS: usize = 4;
const TOPICS: [&str; 3] = ["a", "b", "c"];

#[derive(Debug, Clone, Copy)]
enum Op {
    Join(usize, usize),
    Leave(usize, usize),
    Close(usize),
    Publish(usize),
    Pump(usize),
    /// The numbering backplane answers its oldest waiting join.
    Answer,
    /// The numbering backplane delivers its oldest publication.
    Deliver,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (0..CONNS, 0..TOPICS.len()).prop_map(|(c, t)| Op::Join(c, t)),
        2 => (0..CONNS, 0..TOPICS.len()).prop_map(|(c, t)| Op::Leave(c, t)),
        1 => (0..CONNS).prop_map(Op::Close),
        3 => (0..TOPICS.len()).prop_map(Op::Publish),
        2 => (0..2usize).prop_map(Op::Pump),
        2 => Just(Op::Answer),
        3 => Just(Op::Deliver),
    ]
}

/// One membership of a connection in a topic.
#[derive(Debug)]
struct Interval {
    conn: usize,
    topic: usize,
    greeting: String,
    /// The op index of the join, and of the leave (or close).
    from: usize,
    to: Option<usize>,
    /// With a numbering backplane: the position its join was answered with, if
    /// answered while it lasted.
    answered: Option<u64>,
}

/// Run `ops` and check every connection's deliveries and the backplane's words.
fn check(ops: &[Op], numbered: bool) {
    let mut h = Harness::new(2, Some(numbered));
    let ids: Vec<ConnId> = (0..CONNS).map(|c| h.conn(c % 2)).collect();
    let mut closed = [false; CONNS];
    let mut intervals: Vec<Interval> = Vec::new();
    let mut current: HashMap<(usize, usize), usize> = HashMap::new();
    // Publications per topic: (op index made or delivered, offset, text).
    let mut published: Vec<Vec<(usize, u64, String)>> = vec![Vec::new(); TOPICS.len()];
    let mut numbered_so_far = [0u64; TOPICS.len()];
    let mut in_flight: Vec<(usize, u64, String)> = Vec::new();
    let mut waiting: Vec<usize> = Vec::new(); // intervals whose join awaits its answer
    let mut joins = 0;
    let end = ops.len();
    let all = ops
        .iter()
        .cloned()
        .chain([Op::Answer; 64])
        .chain([Op::Deliver; 256]);
    for (at, op) in all.enumerate() {
        match op {
            Op::Join(c, t) => {
                joins += 1;
                let text = format!("{}:hello{joins}", TOPICS[t]);
                let joined = h.join(ids[c], TOPICS[t], greeting(&text));
                match (closed[c], current.contains_key(&(c, t))) {
                    (true, _) => assert!(joined.is_err()),
                    (false, true) => assert!(joined.unwrap().already),
                    (false, false) => {
                        assert!(!joined.unwrap().already);
                        current.insert((c, t), intervals.len());
                        if numbered {
                            waiting.push(intervals.len());
                        }
                        intervals.push(Interval {
                            conn: c,
                            topic: t,
                            greeting: text,
                            from: at,
                            to: None,
                            answered: (!numbered).then_some(0),
                        });
                    }
                }
            }
            Op::Leave(c, t) => {
                let left = h.hub.leave(ids[c], TOPICS[t]);
                let i = current.remove(&(c, t));
                assert_eq!(left, i.is_some());
                if let Some(i) = i {
                    intervals[i].to = Some(at);
                }
            }
            Op::Close(c) => {
                h.hub.inner.connection_closed(ids[c]);
                closed[c] = true;
                for t in 0..TOPICS.len() {
                    if let Some(i) = current.remove(&(c, t)) {
                        intervals[i].to = Some(at);
                    }
                }
            }
            Op::Publish(t) => {
                let text = format!("{}:p{at}", TOPICS[t]);
                h.hub.publish(TOPICS[t], text.as_str());
                if numbered {
                    numbered_so_far[t] += 1;
                    in_flight.push((t, numbered_so_far[t], text));
                } else {
                    published[t].push((at, 0, text));
                }
            }
            Op::Pump(s) => h.pump(s),
            Op::Answer => {
                if !numbered || waiting.is_empty() {
                    continue;
                }
                let i = waiting.remove(0);
                let t = intervals[i].topic;
                let offset = numbered_so_far[t];
                let mut locates = lock(&h.backplane.locates);
                let (topic, _, done) = locates.remove(0);
                drop(locates);
                assert_eq!(topic, TOPICS[t]);
                done(super::super::Located::new(position(offset), None));
                if intervals[i].to.is_none() {
                    intervals[i].answered = Some(offset);
                }
            }
            Op::Deliver => {
                if !numbered || in_flight.is_empty() {
                    continue;
                }
                let (t, offset, text) = in_flight.remove(0);
                h.hub
                    .deliver_numbered(TOPICS[t], &position(offset), text.as_str().into(), None);
                published[t].push((at, offset, text));
            }
        }
        if at + 1 == end {
            // The backplane's last word per topic, before the late answers.
            words(&h, &current);
        }
    }
    h.pump_all();
    for (c, id) in ids.iter().enumerate() {
        let got = h.received(*id);
        for (t, name) in TOPICS.iter().enumerate() {
            let got: Vec<&String> = got
                .iter()
                .filter(|m| m.starts_with(&format!("{name}:")))
                .collect();
            let mut want: Vec<&String> = Vec::new();
            for i in intervals.iter().filter(|i| i.conn == c && i.topic == t) {
                let Some(floor) = i.answered else {
                    continue;
                };
                want.push(&i.greeting);
                let to = i.to.unwrap_or(usize::MAX);
                want.extend(
                    published[t]
                        .iter()
                        .filter(|(at, offset, _)| {
                            *at > i.from && *at < to && (!numbered || *offset > floor)
                        })
                        .map(|(_, _, text)| text),
                );
            }
            assert_eq!(got, want, "connection {c}, topic {name}");
        }
    }
}

fn position(offset: u64) -> Position {
    Position {
        epoch: "e".into(),
        offset,
    }
}

/// The backplane was last told "subscribed" for exactly the topics with members.
fn words(h: &Harness, current: &HashMap<(usize, usize), usize>) {
    let last = h.backplane.last_words();
    let subscriptions = h.hub.subscriptions();
    for name in TOPICS {
        let t = TOPICS.iter().position(|n| *n == name).unwrap();
        let held = current.keys().any(|(_, topic)| *topic == t);
        let subscribed = matches!(last.get(name), Some(Said::Subscribe(..)));
        assert_eq!(subscribed, held, "topic {name}: {:?}", last.get(name));
        assert_eq!(
            subscriptions.iter().any(|(n, _)| n == name),
            held,
            "{subscriptions:?}"
        );
    }
    let mut topics = h.hub.topics();
    topics.sort();
    let mut held: Vec<String> = current.keys().map(|(_, t)| TOPICS[*t].to_owned()).collect();
    held.sort();
    held.dedup();
    assert_eq!(topics, held, "topics kept");
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 512,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn members_get_every_publication_of_their_membership_once_in_order(
        ops in proptest::collection::vec(op(), 1..80)
    ) {
        check(&ops, false);
    }

    #[test]
    fn with_a_numbering_backplane_late_answers_and_deliveries_lose_nothing_and_repeat_nothing(
        ops in proptest::collection::vec(op(), 1..80)
    ) {
        check(&ops, true);
    }
}

#[test]
fn a_late_answer_to_a_join_left_since_releases_nothing_of_the_next_join() {
    // c joins (its answer waits), leaves, joins again; the first answer comes
    // late: it is ignored, and what the topic delivers stays held for the second
    // join until its own answer.
    let mut h = Harness::new(1, Some(true));
    let c = h.conn(0);
    h.join(c, "t", greeting("t:first")).unwrap();
    assert!(h.hub.leave(c, "t"));
    h.join(c, "t", greeting("t:second")).unwrap();
    h.hub
        .deliver_numbered("t", &position(1), "t:1".into(), None);
    let mut locates = std::mem::take(&mut *lock(&h.backplane.locates));
    let (_, _, first) = locates.remove(0);
    first(super::super::Located::new(position(0), None));
    h.pump_all();
    assert_eq!(
        h.received(c),
        Vec::<String>::new(),
        "held for the second join"
    );
    let (_, _, second) = locates.remove(0);
    second(super::super::Located::new(position(2), None));
    // Publications up to the join's position that reach this server after its
    // answer (a subscription that lagged, a gap filled late) are not delivered:
    // they came before the join.
    h.hub
        .deliver_numbered("t", &position(2), "t:2".into(), None);
    h.hub
        .deliver_numbered("t", &position(3), "t:3".into(), None);
    h.pump_all();
    assert_eq!(h.received(c), ["t:second", "t:3"]);
}
