//! Which topics this server's subscription connection should carry, and what it
//! carries: one state per topic, driven by the hub's decisions (each stamped with
//! a generation), the confirmations of the commands sent, the connection's losses
//! and a periodic reconciliation. A plain struct, without I/O: the backplane's
//! task feeds it and carries out what it asks ([`Effect`]).
//!
//! Per topic, a topic is *unsubscribed*, *subscribing(g)* (a `SUBSCRIBE` on its
//! way for the decision of generation `g`), *subscribed(g)* or *unsubscribing(g)*.
//! At most one command per topic is on its way; what the hub decides meanwhile is
//! kept (the latest decision only) and acted on once it is answered:
//! - a decision older than the latest one seen for the topic is stale: ignored;
//! - a confirmation that is not for the command on its way (sent before a
//!   reconnection, or crossed by another) is stale: what Redis holds for the
//!   topic is then unknown, and settled by a command of the kind the latest
//!   decision needs (`SUBSCRIBE` and `UNSUBSCRIBE` may be repeated harmlessly);
//! - a command that failed is tried again after a back-off (doubling from
//!   `initial` up to `max`), until it succeeds or is no longer needed;
//! - a lost connection took every subscription with it: what is wanted is
//!   subscribed again.
//!
//! A topic that is unsubscribed and not wanted is forgotten after a while (its
//! latest generation is kept until then, to recognise a late, stale decision).

use std::{
    collections::{HashMap, HashSet},
    time::{Duration, Instant},
};

/// A topic's state, as the module docs name them.
#[cfg(test)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum State {
    Unsubscribed,
    Subscribing(u64),
    Subscribed(u64),
    Unsubscribing(u64),
}

/// A command on the subscription connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) enum Command {
    Subscribe,
    Unsubscribe,
}

/// What Redis holds for a topic on this server's subscription connection, as far
/// as the confirmations tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Held {
    No,
    Yes,
    /// A command failed or crossed another: either, until a command settles it.
    Unknown,
}

/// What the backplane's task is asked to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Effect {
    /// Send one `SUBSCRIBE` for these topics; confirm each with its command id.
    Subscribe(Vec<(String, u64)>),
    /// Send one `UNSUBSCRIBE` for these topics; confirm each with its command id.
    Unsubscribe(Vec<(String, u64)>),
    /// Subscribed for the decision the hub made last: read the topic's presence,
    /// fill what may have been missed, answer the joins waiting.
    Ready(String),
    /// No longer wanted: forget the topic's order and presence, answer the joins
    /// waiting (not recovered).
    Forget(String),
    /// A `SUBSCRIBE` for a wanted topic failed (tried again later): answer the
    /// joins waiting from here.
    Failed(String),
}

/// A difference the reconciliation found between what the hub wants, what the
/// state machine holds and what the Redis client tracks.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Drift {
    /// The hub wants the topic (for a decision the machine never heard of, or
    /// after one that let it go).
    Missing(String, u64),
    /// The machine wants a topic the hub does not.
    Unwanted(String, u64),
    /// The client tracks a subscription the machine holds none of.
    Leaked(String),
    /// The machine holds a subscription the client does not track.
    Lost(String),
}

#[derive(Debug)]
struct Entry {
    /// The latest generation heard of (a decision, or a repair).
    latest: u64,
    /// The generation of the subscribe decision in force; `None`: not wanted.
    wanted: Option<u64>,
    held: Held,
    /// The generation the subscription was made or made ready for.
    subscribed_as: u64,
    /// The command on its way: kind, generation, id.
    in_flight: Option<(Command, u64, u64)>,
    /// A stale confirmation crossed the command on its way: what Redis holds is
    /// unknown once that one is answered.
    doubt: bool,
    /// The generation `Ready` was given for (on the current connection).
    ready: Option<u64>,
    failures: u32,
    retry_at: Option<Instant>,
    /// Since when the topic is unsubscribed and not wanted.
    idle_since: Option<Instant>,
}

impl Entry {
    fn new() -> Entry {
        Entry {
            latest: 0,
            wanted: None,
            held: Held::No,
            subscribed_as: 0,
            in_flight: None,
            doubt: false,
            ready: None,
            failures: 0,
            retry_at: None,
            idle_since: None,
        }
    }
}

/// Counts of what the machine ignored or repaired.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(super) struct Tally {
    /// Decisions older than the latest seen for their topic.
    pub stale_asks: u64,
    /// Confirmations of a command that was not the one on its way.
    pub stale_confirmations: u64,
    /// Commands that failed (each tried again).
    pub failures: u64,
    /// Differences the reconciliation repaired.
    pub reconciled: u64,
}

/// The per-topic subscription state machine (see the module docs).
#[derive(Debug)]
pub(super) struct Subscriptions {
    topics: HashMap<String, Entry>,
    dirty: HashSet<String>,
    effects: Vec<Effect>,
    next_id: u64,
    initial: Duration,
    max: Duration,
    /// How long an idle topic's latest generation is kept.
    keep: Duration,
    /// What the last reconciliation found (repaired when found again).
    suspects: HashSet<Drift>,
    /// Topics held (subscribed) now.
    held: usize,
    pub tally: Tally,
}

/// `e.held = new`, keeping the count of topics held.
fn hold(e: &mut Entry, new: Held, count: &mut usize) {
    match (e.held == Held::Yes, new == Held::Yes) {
        (false, true) => *count += 1,
        (true, false) => *count -= 1,
        _ => {}
    }
    e.held = new;
}

impl Subscriptions {
    /// A machine retrying failed commands after `initial`, doubled up to `max`,
    /// and forgetting idle topics after `keep`.
    pub fn new(initial: Duration, max: Duration, keep: Duration) -> Subscriptions {
        Subscriptions {
            topics: HashMap::new(),
            dirty: HashSet::new(),
            effects: Vec::new(),
            next_id: 0,
            initial,
            max: max.max(initial),
            keep,
            suspects: HashSet::new(),
            held: 0,
            tally: Tally::default(),
        }
    }

    /// The hub decided to subscribe (`subscribe`) or unsubscribe `topic`, at
    /// `generation`. False when the decision is stale (ignored).
    pub fn ask(&mut self, topic: &str, subscribe: bool, generation: u64) -> bool {
        let e = entry(&mut self.topics, topic);
        if generation <= e.latest {
            self.tally.stale_asks += 1;
            return false;
        }
        e.latest = generation;
        e.idle_since = None;
        if subscribe {
            e.wanted = Some(generation);
        } else if e.wanted.take().is_some() {
            e.ready = None;
            self.effects.push(Effect::Forget(topic.to_owned()));
        }
        self.dirty.insert(topic.to_owned());
        true
    }

    /// An unsubscribe decision of `generation` that the hub's current state
    /// contradicts (it holds members of `topic`): counted as stale, and the
    /// topic kept wanted (the decision's generation is taken as seen).
    pub fn overtaken(&mut self, topic: &str, generation: u64) {
        self.tally.stale_asks += 1;
        let e = entry(&mut self.topics, topic);
        if generation > e.latest {
            e.latest = generation;
            e.idle_since = None;
            if e.wanted.is_none() {
                e.wanted = Some(generation);
                self.dirty.insert(topic.to_owned());
            }
        }
    }

    /// The command `id` (a `command`) for `topic` was answered: `ok` or not.
    pub fn confirmed(&mut self, topic: &str, command: Command, id: u64, ok: bool, now: Instant) {
        let e = entry(&mut self.topics, topic);
        let current = matches!(e.in_flight, Some((c, _, i)) if i == id && c == command);
        if !current {
            self.tally.stale_confirmations += 1;
            // Carried out or not (a failure may be a timeout), it may have
            // changed what Redis holds: unknown, once the command on its way (if
            // of the other kind) is answered.
            match e.in_flight {
                Some((c, _, _)) if c != command => e.doubt = true,
                Some(_) => {}
                None => {
                    let changed = match command {
                        Command::Subscribe => e.held != Held::Yes,
                        Command::Unsubscribe => e.held != Held::No,
                    };
                    if changed {
                        hold(e, Held::Unknown, &mut self.held);
                        e.ready = None;
                        e.idle_since = None;
                        self.dirty.insert(topic.to_owned());
                    }
                }
            }
            return;
        }
        let Some((_, generation, _)) = e.in_flight.take() else {
            return;
        };
        if ok {
            e.failures = 0;
            let held = match command {
                Command::Subscribe => {
                    e.subscribed_as = generation;
                    Held::Yes
                }
                Command::Unsubscribe => Held::No,
            };
            hold(e, held, &mut self.held);
        } else {
            self.tally.failures += 1;
            hold(e, Held::Unknown, &mut self.held);
            e.failures = e.failures.saturating_add(1);
            e.retry_at = Some(now + backoff(self.initial, self.max, e.failures));
            if command == Command::Subscribe && e.wanted.is_some() {
                self.effects.push(Effect::Failed(topic.to_owned()));
            }
        }
        if std::mem::take(&mut e.doubt) {
            hold(e, Held::Unknown, &mut self.held);
        }
        if e.held != Held::Yes {
            e.ready = None;
        }
        self.dirty.insert(topic.to_owned());
    }

    /// The subscription connection was lost (and made again): Redis holds none
    /// of its subscriptions; the commands on their way are abandoned (their
    /// answers will be stale).
    pub fn connection_lost(&mut self) {
        for (topic, e) in &mut self.topics {
            e.in_flight = None;
            e.doubt = false;
            hold(e, Held::No, &mut self.held);
            e.ready = None;
            e.failures = 0;
            e.retry_at = None;
            self.dirty.insert(topic.clone());
        }
    }

    /// What to do now: the commands to send (batched) and the effects of what
    /// happened since the last call.
    pub fn flush(&mut self, now: Instant) -> Vec<Effect> {
        let mut subscribe = Vec::new();
        let mut unsubscribe = Vec::new();
        let mut later = Vec::new();
        for topic in std::mem::take(&mut self.dirty) {
            let Some(e) = self.topics.get_mut(&topic) else {
                continue;
            };
            if e.in_flight.is_some() {
                // Its answer marks it again.
                continue;
            }
            if let Some(at) = e.retry_at {
                if at > now {
                    later.push(topic);
                    continue;
                }
                e.retry_at = None;
            }
            match (e.wanted, e.held) {
                (Some(w), Held::Yes) => {
                    e.subscribed_as = w;
                    if e.ready != Some(w) {
                        e.ready = Some(w);
                        self.effects.push(Effect::Ready(topic));
                    }
                }
                (Some(w), _) => {
                    self.next_id += 1;
                    e.in_flight = Some((Command::Subscribe, w, self.next_id));
                    subscribe.push((topic, self.next_id));
                }
                (None, Held::Yes | Held::Unknown) => {
                    self.next_id += 1;
                    e.in_flight = Some((Command::Unsubscribe, e.latest, self.next_id));
                    unsubscribe.push((topic, self.next_id));
                }
                (None, Held::No) => {
                    e.idle_since.get_or_insert(now);
                }
            }
        }
        self.dirty.extend(later);
        let mut effects = std::mem::take(&mut self.effects);
        if !subscribe.is_empty() {
            effects.push(Effect::Subscribe(subscribe));
        }
        if !unsubscribe.is_empty() {
            effects.push(Effect::Unsubscribe(unsubscribe));
        }
        effects
    }

    /// Whether a call to [`flush`](Self::flush) has something to do now.
    pub fn has_work(&self) -> bool {
        !self.dirty.is_empty() || !self.effects.is_empty()
    }

    /// When the next failed command is due to be tried again.
    pub fn next_retry(&self) -> Option<Instant> {
        self.dirty
            .iter()
            .filter_map(|t| self.topics.get(t)?.retry_at)
            .min()
    }

    /// Whether the hub wants `topic` subscribed (its messages are delivered).
    pub fn wants(&self, topic: &str) -> bool {
        self.topics.get(topic).is_some_and(|e| e.wanted.is_some())
    }

    /// Whether `topic` is subscribed for the hub's latest decision and was made
    /// ready (its joins may be answered).
    pub fn is_ready(&self, topic: &str) -> bool {
        self.topics
            .get(topic)
            .is_some_and(|e| e.wanted.is_some() && e.ready == e.wanted && e.held == Held::Yes)
    }

    /// How many topics are subscribed now.
    pub fn count(&self) -> usize {
        self.held
    }

    /// The topics subscribed now.
    pub fn subscribed(&self) -> impl Iterator<Item = &str> {
        self.topics
            .iter()
            .filter(|(_, e)| e.held == Held::Yes)
            .map(|(t, _)| t.as_str())
    }

    /// `topic`'s state.
    #[cfg(test)]
    pub fn state(&self, topic: &str) -> State {
        let Some(e) = self.topics.get(topic) else {
            return State::Unsubscribed;
        };
        match (e.in_flight, e.held, e.wanted) {
            (Some((Command::Subscribe, g, _)), _, _) => State::Subscribing(g),
            (Some((Command::Unsubscribe, g, _)), _, _) => State::Unsubscribing(g),
            (None, Held::Yes, _) => State::Subscribed(e.subscribed_as),
            (None, Held::Unknown, Some(w)) => State::Subscribing(w),
            (None, Held::Unknown, None) => State::Unsubscribing(e.latest),
            (None, Held::No, _) => State::Unsubscribed,
        }
    }

    /// Compare with what the hub wants (`hub`: topic and generation) and, when
    /// given, the topics the Redis client tracks as subscribed; a difference seen
    /// at two reconciliations in a row (not one in passing: a decision or an
    /// answer on its way) is repaired. Also forgets topics idle for long. Returns
    /// how many were repaired.
    pub fn reconcile(
        &mut self,
        hub: &[(String, u64)],
        tracked: Option<&HashSet<String>>,
        now: Instant,
    ) -> usize {
        let keep = self.keep;
        self.topics.retain(|_, e| {
            !(e.wanted.is_none()
                && e.held == Held::No
                && e.in_flight.is_none()
                && e.idle_since
                    .is_some_and(|t| now.saturating_duration_since(t) >= keep))
        });
        let mut seen = HashSet::new();
        let desired: HashMap<&str, u64> = hub.iter().map(|(t, g)| (t.as_str(), *g)).collect();
        for (topic, g) in hub {
            if self
                .topics
                .get(topic)
                .is_none_or(|e| e.latest < *g || e.wanted.is_none())
            {
                seen.insert(Drift::Missing(topic.clone(), *g));
            }
        }
        for (topic, e) in &self.topics {
            if let Some(w) = e.wanted {
                if !desired.contains_key(topic.as_str()) {
                    seen.insert(Drift::Unwanted(topic.clone(), w));
                }
            }
            if let Some(tracked) = tracked {
                if e.in_flight.is_none() && e.held == Held::Yes && !tracked.contains(topic) {
                    seen.insert(Drift::Lost(topic.clone()));
                }
            }
        }
        for topic in tracked.into_iter().flatten() {
            if self
                .topics
                .get(topic)
                .is_none_or(|e| e.in_flight.is_none() && e.held == Held::No)
            {
                seen.insert(Drift::Leaked(topic.clone()));
            }
        }
        let repeated: Vec<Drift> = seen.intersection(&self.suspects).cloned().collect();
        for drift in &repeated {
            seen.remove(drift);
            self.repair(drift);
        }
        self.suspects = seen;
        self.tally.reconciled += repeated.len() as u64;
        repeated.len()
    }

    fn repair(&mut self, drift: &Drift) {
        match drift {
            Drift::Missing(topic, g) => {
                let e = entry(&mut self.topics, topic);
                if e.latest < *g || e.wanted.is_none() {
                    e.latest = e.latest.max(*g);
                    e.wanted = Some(e.latest);
                    e.idle_since = None;
                    self.dirty.insert(topic.clone());
                }
            }
            Drift::Unwanted(topic, w) => {
                let e = entry(&mut self.topics, topic);
                if e.wanted == Some(*w) {
                    e.wanted = None;
                    e.ready = None;
                    self.effects.push(Effect::Forget(topic.clone()));
                    self.dirty.insert(topic.clone());
                }
            }
            Drift::Leaked(topic) => {
                let e = entry(&mut self.topics, topic);
                if e.in_flight.is_none() && e.held == Held::No {
                    hold(e, Held::Unknown, &mut self.held);
                    e.idle_since = None;
                    self.dirty.insert(topic.clone());
                }
            }
            Drift::Lost(topic) => {
                let e = entry(&mut self.topics, topic);
                if e.in_flight.is_none() && e.held == Held::Yes {
                    hold(e, Held::Unknown, &mut self.held);
                    e.ready = None;
                    self.dirty.insert(topic.clone());
                }
            }
        }
    }
}

fn entry<'a>(topics: &'a mut HashMap<String, Entry>, topic: &str) -> &'a mut Entry {
    if !topics.contains_key(topic) {
        topics.insert(topic.to_owned(), Entry::new());
    }
    topics.get_mut(topic).expect("inserted")
}

/// The wait before the `failures`-th try again: `initial`, doubled each time, at
/// most `max`.
pub(super) fn backoff(initial: Duration, max: Duration, failures: u32) -> Duration {
    let doublings = failures.saturating_sub(1).min(20);
    initial.saturating_mul(1 << doublings).min(max)
}

#[cfg(test)]
#[path = "subscriptions_tests.rs"]
mod tests;
