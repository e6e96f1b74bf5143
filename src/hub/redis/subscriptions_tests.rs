//! The subscription state machine against a model of the hub and of Redis,
//! without Redis: decisions, answers and faults in every order proptest finds.

use std::collections::VecDeque;

use proptest::prelude::*;

use super::*;

const TOPICS: [&str; 3] = ["a", "b", "c"];
const INITIAL: Duration = Duration::from_millis(100);
const MAX: Duration = Duration::from_millis(800);

fn machine() -> Subscriptions {
    Subscriptions::new(INITIAL, MAX, Duration::from_secs(60))
}

#[test]
fn an_unsubscribe_while_the_subscribe_is_unconfirmed_unsubscribes_once_it_is() {
    let now = Instant::now();
    let mut m = machine();
    assert!(m.ask("room", true, 1));
    let effects = m.flush(now);
    assert_eq!(effects, [Effect::Subscribe(vec![("room".into(), 1)])]);
    assert_eq!(m.state("room"), State::Subscribing(1));
    assert!(m.ask("room", false, 2));
    assert_eq!(m.flush(now), [Effect::Forget("room".into())]);
    assert_eq!(
        m.state("room"),
        State::Subscribing(1),
        "one command at a time"
    );
    m.confirmed("room", Command::Subscribe, 1, true, now);
    assert_eq!(
        m.flush(now),
        [Effect::Unsubscribe(vec![("room".into(), 2)])],
        "not wanted any more: unsubscribed, never made ready"
    );
    assert_eq!(m.state("room"), State::Unsubscribing(2));
    m.confirmed("room", Command::Unsubscribe, 2, true, now);
    assert_eq!(m.flush(now), []);
    assert_eq!(m.state("room"), State::Unsubscribed);
    assert!(!m.wants("room"));
}

#[test]
fn a_late_older_decision_is_ignored_and_counted() {
    let now = Instant::now();
    let mut m = machine();
    // The last leave (generation 2) reaches the backplane after the next first
    // join (generation 3).
    assert!(m.ask("room", true, 1));
    assert!(m.ask("room", true, 3));
    assert!(!m.ask("room", false, 2));
    assert_eq!(m.tally.stale_asks, 1);
    assert!(m.wants("room"));
    assert_eq!(m.flush(now), [Effect::Subscribe(vec![("room".into(), 1)])]);
    m.confirmed("room", Command::Subscribe, 1, true, now);
    assert_eq!(m.flush(now), [Effect::Ready("room".into())]);
    assert_eq!(m.state("room"), State::Subscribed(3));
    assert!(m.is_ready("room"));
}

#[test]
fn an_unsubscribe_the_hub_contradicts_keeps_the_topic_and_is_counted() {
    let now = Instant::now();
    let mut m = machine();
    m.ask("room", true, 3);
    m.flush(now);
    // The hub still holds members: the decision was overtaken.
    m.overtaken("room", 4);
    assert!(m.wants("room"));
    assert_eq!(m.tally.stale_asks, 1);
    assert!(!m.ask("room", false, 4), "its generation is taken as seen");
    assert!(m.ask("room", false, 5));
    assert!(!m.wants("room"));
}

#[test]
fn reconciliation_subscribes_again_a_topic_let_go_by_a_newer_decision() {
    let now = Instant::now();
    let mut m = machine();
    m.ask("room", true, 3);
    m.ask("room", false, 9);
    m.flush(now);
    // The hub lists it with the generation of its own subscribe (older).
    let hub = vec![("room".to_owned(), 3)];
    assert_eq!(m.reconcile(&hub, None, now), 0);
    assert_eq!(m.reconcile(&hub, None, now), 1);
    assert!(m.wants("room"));
}

#[test]
fn left_and_joined_again_while_subscribed_is_made_ready_again_without_a_command() {
    let now = Instant::now();
    let mut m = machine();
    m.ask("room", true, 1);
    m.flush(now);
    m.confirmed("room", Command::Subscribe, 1, true, now);
    assert_eq!(m.flush(now), [Effect::Ready("room".into())]);
    m.ask("room", false, 2);
    m.ask("room", true, 3);
    // Forgotten (the hub forgot its presence), then read again: still subscribed.
    assert_eq!(
        m.flush(now),
        [Effect::Forget("room".into()), Effect::Ready("room".into())]
    );
    assert_eq!(m.state("room"), State::Subscribed(3));
}

#[test]
fn a_failed_subscribe_is_tried_again_after_a_back_off_that_doubles() {
    let t0 = Instant::now();
    let mut m = machine();
    m.ask("room", true, 1);
    m.flush(t0);
    m.confirmed("room", Command::Subscribe, 1, false, t0);
    assert_eq!(m.flush(t0), [Effect::Failed("room".into())]);
    assert_eq!(m.next_retry(), Some(t0 + INITIAL));
    assert_eq!(m.flush(t0 + INITIAL / 2), []);
    let t1 = t0 + INITIAL;
    assert_eq!(m.flush(t1), [Effect::Subscribe(vec![("room".into(), 2)])]);
    m.confirmed("room", Command::Subscribe, 2, false, t1);
    m.flush(t1);
    assert_eq!(m.next_retry(), Some(t1 + 2 * INITIAL));
    assert_eq!(m.tally.failures, 2);
    assert_eq!(backoff(INITIAL, MAX, 30), MAX);
}

#[test]
fn a_lost_connection_subscribes_again_what_is_wanted_and_a_stale_answer_is_undone() {
    let now = Instant::now();
    let mut m = machine();
    m.ask("kept", true, 1);
    m.ask("left", true, 2);
    m.flush(now);
    m.connection_lost();
    m.ask("left", false, 3);
    let effects = m.flush(now);
    assert!(effects.contains(&Effect::Subscribe(vec![("kept".into(), 3)])));
    // The subscribe of "left" sent before the loss is answered after it (the
    // client sent it again on the new connection): Redis may hold it.
    m.confirmed("left", Command::Subscribe, 2, true, now);
    assert_eq!(m.tally.stale_confirmations, 1);
    assert_eq!(
        m.flush(now),
        [Effect::Unsubscribe(vec![("left".into(), 4)])]
    );
}

#[test]
fn reconciliation_repairs_a_difference_seen_twice_only() {
    let now = Instant::now();
    let mut m = machine();
    // The hub wants "lost" (its decision never came) and not "ghost".
    m.ask("ghost", true, 1);
    m.flush(now);
    m.confirmed("ghost", Command::Subscribe, 1, true, now);
    m.flush(now);
    let hub = vec![("lost".to_owned(), 5)];
    let tracked: HashSet<String> = ["ghost".to_owned(), "stray".to_owned()].into();
    assert_eq!(m.reconcile(&hub, Some(&tracked), now), 0, "seen once");
    assert_eq!(m.reconcile(&hub, Some(&tracked), now), 3);
    assert_eq!(m.tally.reconciled, 3);
    let mut effects = m.flush(now);
    effects.sort_by_key(|e| format!("{e:?}"));
    assert!(effects.contains(&Effect::Forget("ghost".into())));
    assert!(effects
        .iter()
        .any(|e| matches!(e, Effect::Subscribe(v) if v.len() == 1 && v[0].0 == "lost")));
    let unsubscribed: Vec<String> = effects
        .iter()
        .filter_map(|e| match e {
            Effect::Unsubscribe(v) => Some(v.iter().map(|(t, _)| t.clone())),
            _ => None,
        })
        .flatten()
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    assert_eq!(unsubscribed, ["ghost", "stray"]);
}

#[test]
fn idle_topics_are_forgotten_after_a_while_but_not_before() {
    let t0 = Instant::now();
    let mut m = machine();
    m.ask("room", true, 1);
    m.ask("room", false, 2);
    m.flush(t0);
    m.reconcile(&[], None, t0 + Duration::from_secs(30));
    assert!(
        !m.ask("room", true, 1),
        "still remembered: a late decision is stale"
    );
    m.reconcile(&[], None, t0 + Duration::from_secs(61));
    assert!(m.topics.is_empty());
}

/// One step of a run: the hub decides, messages cross, Redis answers or fails.
#[derive(Debug, Clone)]
enum Step {
    /// The hub changes its mind about a topic (a new generation); the decision
    /// is queued for the backplane.
    Decide(usize),
    /// A queued decision reaches the machine (any of them: they may cross).
    Deliver(usize),
    /// A queued decision is lost (reconciliation must find it).
    LoseDecision(usize),
    Flush,
    /// Redis carries out the oldest command on the connection.
    Execute,
    /// The oldest command fails; carried out by Redis or not (a timeout).
    Fail(bool),
    /// An answer reaches the machine (any of them).
    Confirm(usize),
    /// The connection is lost: Redis forgets its subscriptions; the commands on
    /// it are failed, or sent again on the new connection.
    LoseConnection(bool),
    /// Time passes: retries become due.
    Advance,
    Reconcile,
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        4 => (0..TOPICS.len()).prop_map(Step::Decide),
        4 => any::<usize>().prop_map(Step::Deliver),
        1 => any::<usize>().prop_map(Step::LoseDecision),
        3 => Just(Step::Flush),
        4 => Just(Step::Execute),
        1 => any::<bool>().prop_map(Step::Fail),
        4 => any::<usize>().prop_map(Step::Confirm),
        1 => any::<bool>().prop_map(Step::LoseConnection),
        1 => Just(Step::Advance),
        1 => Just(Step::Reconcile),
    ]
}

/// The hub, the connection and Redis, as the machine sees them.
struct World {
    m: Subscriptions,
    now: Instant,
    generation: u64,
    /// What the hub decided last per topic: wanted, generation.
    hub: [(bool, u64); 3],
    decisions: Vec<(usize, bool, u64)>,
    /// Commands sent, not carried out yet: topic, command, id.
    wire: VecDeque<(String, Command, u64)>,
    /// Answers not yet delivered: topic, command, id, ok.
    answers: Vec<(String, Command, u64, bool)>,
    /// What Redis holds on the subscription connection.
    redis: HashSet<String>,
    /// What the client tracks (it adds on a successful subscribe's answer and
    /// removes on a successful unsubscribe's).
    tracked: HashSet<String>,
    /// The last of Ready / Forget per topic.
    last_word: HashMap<String, Effect>,
}

impl World {
    fn new() -> World {
        World {
            m: machine(),
            now: Instant::now(),
            generation: 0,
            hub: [(false, 0); 3],
            decisions: Vec::new(),
            wire: VecDeque::new(),
            answers: Vec::new(),
            redis: HashSet::new(),
            tracked: HashSet::new(),
            last_word: HashMap::new(),
        }
    }

    fn flush(&mut self) {
        for effect in self.m.flush(self.now) {
            match effect {
                Effect::Subscribe(batch) => {
                    for (t, id) in batch {
                        self.wire.push_back((t, Command::Subscribe, id));
                    }
                }
                Effect::Unsubscribe(batch) => {
                    for (t, id) in batch {
                        self.wire.push_back((t, Command::Unsubscribe, id));
                    }
                }
                Effect::Ready(ref t) | Effect::Forget(ref t) => {
                    self.last_word.insert(t.clone(), effect.clone());
                }
                Effect::Failed(_) => {}
            }
        }
    }

    fn execute(&mut self, ok: bool, carried_out: bool) {
        let Some((t, c, id)) = self.wire.pop_front() else {
            return;
        };
        if carried_out {
            match c {
                Command::Subscribe => self.redis.insert(t.clone()),
                Command::Unsubscribe => self.redis.remove(&t),
            };
        }
        if ok {
            match c {
                Command::Subscribe => self.tracked.insert(t.clone()),
                Command::Unsubscribe => self.tracked.remove(&t),
            };
        }
        self.answers.push((t, c, id, ok));
    }

    fn confirm(&mut self, i: usize) {
        if self.answers.is_empty() {
            return;
        }
        let (t, c, id, ok) = self.answers.remove(i % self.answers.len());
        self.m.confirmed(&t, c, id, ok, self.now);
    }

    fn run(&mut self, step: &Step) {
        match *step {
            Step::Decide(i) => {
                self.generation += 1;
                let wanted = !self.hub[i].0;
                self.hub[i] = (wanted, self.generation);
                self.decisions.push((i, wanted, self.generation));
            }
            Step::Deliver(i) if !self.decisions.is_empty() => {
                let (t, wanted, g) = self.decisions.remove(i % self.decisions.len());
                self.m.ask(TOPICS[t], wanted, g);
            }
            Step::LoseDecision(i) if !self.decisions.is_empty() => {
                self.decisions.remove(i % self.decisions.len());
            }
            Step::Deliver(_) | Step::LoseDecision(_) => {}
            Step::Flush => self.flush(),
            Step::Execute => self.execute(true, true),
            Step::Fail(carried_out) => self.execute(false, carried_out),
            Step::Confirm(i) => self.confirm(i),
            Step::LoseConnection(resent) => {
                self.redis.clear();
                if !resent {
                    while !self.wire.is_empty() {
                        self.execute(false, false);
                    }
                }
                self.m.connection_lost();
            }
            Step::Advance => self.now += MAX,
            Step::Reconcile => self.reconcile(),
        }
    }

    fn reconcile(&mut self) {
        let hub: Vec<(String, u64)> = (0..TOPICS.len())
            .filter(|i| self.hub[*i].0)
            .map(|i| (TOPICS[i].to_owned(), self.hub[i].1))
            .collect();
        let tracked = self.tracked.clone();
        self.m.reconcile(&hub, Some(&tracked), self.now);
    }

    /// Everything in flight is carried out and answered, retries included.
    fn settle(&mut self) {
        for _ in 0..1000 {
            self.flush();
            if self.wire.is_empty() && self.answers.is_empty() && !self.m.has_work() {
                return;
            }
            while !self.wire.is_empty() {
                self.execute(true, true);
            }
            while !self.answers.is_empty() {
                self.confirm(0);
            }
            self.now += MAX;
        }
        panic!("did not settle");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// Whatever the order of decisions and answers, failures and lost
    /// connections: once every decision has arrived and Redis answers again,
    /// Redis holds exactly what the hub wants, each wanted topic was made ready
    /// after it was last forgotten, and the client tracks what Redis holds.
    #[test]
    fn redis_ends_holding_exactly_what_the_hub_wants(steps in prop::collection::vec(step(), 0..80)) {
        let mut w = World::new();
        let mut lost = false;
        for s in &steps {
            lost |= matches!(s, Step::LoseDecision(_)) && !w.decisions.is_empty();
            w.run(s);
        }
        while !w.decisions.is_empty() {
            w.run(&Step::Deliver(0));
        }
        w.settle();
        if lost {
            // A decision that never came is found by two reconciliations.
            w.reconcile();
            w.settle();
            w.reconcile();
            w.settle();
        }
        // The client's tracking of what it was left holding is put right too.
        w.reconcile();
        w.settle();
        w.reconcile();
        w.settle();
        for (i, topic) in TOPICS.iter().enumerate() {
            let (wanted, g) = w.hub[i];
            prop_assert_eq!(w.redis.contains(*topic), wanted, "{} in Redis", topic);
            prop_assert_eq!(w.m.wants(topic), wanted);
            if wanted {
                prop_assert_eq!(w.m.state(topic), State::Subscribed(g));
                prop_assert!(w.m.is_ready(topic));
                prop_assert_eq!(w.last_word.get(*topic), Some(&Effect::Ready((*topic).into())));
            } else {
                prop_assert_eq!(w.m.state(topic), State::Unsubscribed);
                prop_assert!(!matches!(w.last_word.get(*topic), Some(Effect::Ready(_))));
            }
        }
        prop_assert_eq!(&w.tracked, &w.redis);
    }

    /// Without lost decisions or faults, nothing is repaired and nothing is stale
    /// but what crossed.
    #[test]
    fn in_order_without_faults_nothing_is_repaired(toggles in prop::collection::vec(0..TOPICS.len(), 0..40)) {
        let mut w = World::new();
        for t in toggles {
            w.run(&Step::Decide(t));
            w.run(&Step::Deliver(0));
            w.run(&Step::Flush);
            w.run(&Step::Execute);
            w.run(&Step::Confirm(0));
            w.run(&Step::Reconcile);
        }
        w.settle();
        w.reconcile();
        w.reconcile();
        prop_assert_eq!(w.m.tally, Tally::default());
    }
}
