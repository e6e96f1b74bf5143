//! A shard's subscribers of one topic: the list the fan-out walks, the joins held
//! back until they are answered, and each subscriber's floor (the publications
//! its join already covers). Generic over the handle of a subscriber's
//! connection ([`Sink`]), so that the bookkeeping is tested without connections.

use std::{cell::OnceCell, collections::HashMap, sync::Arc};

use super::delivery::Delivery;
use crate::{
    actor::{ConnId, PreparedBatch},
    settings::SlowConsumer,
};

/// What happened to one delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Outcome {
    Delivered,
    Dropped,
    Closed,
    Gone,
    /// Over the budget of a conflating policy: kept as the subscriber's newest,
    /// written when it has room.
    Conflated,
}

/// A subscriber's connection, as the fan-out sees it: a delivery within its
/// budget, and the policy when it is over it. The flag says the delivery was
/// compressed again for this connection.
pub(super) trait Sink {
    fn deliver(&self, delivery: &Delivery) -> (Outcome, bool);
    fn over_budget(&self, delivery: &Delivery) -> (Outcome, bool);

    /// Deliver `group` in order, as `deliver` one after the other would, up to
    /// the first that is not delivered (the ones after it are not tried).
    /// `whole`: `group` is all of the group being fanned out.
    fn deliver_many(&self, group: &[&Arc<Delivery>], whole: Option<&Whole<'_>>) -> Many {
        let _ = whole;
        let mut many = Many::default();
        for delivery in group {
            let outcome = self.deliver(delivery);
            if outcome.0 != Outcome::Delivered {
                many.stopped = Some(outcome);
                break;
            }
            many.delivered += 1;
            many.recompressed += u64::from(outcome.1);
        }
        many
    }
}

/// A group being fanned out, whole: its frames back to back, made when a sink
/// first asks for them (one copy of them all for each subscriber that gets them
/// all as they are).
pub(super) struct Whole<'a> {
    group: &'a [(Arc<Delivery>, Option<ConnId>)],
    batch: OnceCell<PreparedBatch>,
    /// Every publication of the group has the first one's budget (a topic's
    /// publications do).
    pub one_budget: bool,
}

impl<'a> Whole<'a> {
    fn new(group: &'a [(Arc<Delivery>, Option<ConnId>)]) -> Self {
        let one_budget = group
            .windows(2)
            .all(|pair| pair[0].0.policy.same_budget(&pair[1].0.policy));
        Whole {
            group,
            batch: OnceCell::new(),
            one_budget,
        }
    }

    /// The group's frames, back to back.
    pub fn batch(&self) -> &PreparedBatch {
        self.batch
            .get_or_init(|| PreparedBatch::new(self.group.iter().map(|(d, _)| &d.prepared)))
    }
}

/// What [`Sink::deliver_many`] came to: the first `delivered` were delivered
/// (`recompressed` of them compressed again), and the next one, if any, had
/// the outcome `stopped`.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(super) struct Many {
    pub delivered: usize,
    pub recompressed: u64,
    pub stopped: Option<(Outcome, bool)>,
}

/// Deliveries by outcome.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(super) struct Counts {
    pub delivered: u64,
    pub dropped: u64,
    pub closed: u64,
    pub recompressed: u64,
    /// Publications a newer one replaced for a conflating subscriber.
    pub conflated: u64,
    /// Publications kept for a conflating subscriber, to write later.
    pub pending: u64,
}

impl Counts {
    pub fn add(mut self, outcome: (Outcome, bool)) -> Counts {
        self.count(outcome);
        self
    }

    /// Count `outcome` in place.
    #[inline]
    pub fn count(&mut self, outcome: (Outcome, bool)) {
        match outcome.0 {
            Outcome::Delivered => self.delivered += 1,
            Outcome::Dropped => self.dropped += 1,
            Outcome::Closed => self.closed += 1,
            Outcome::Conflated => self.pending += 1,
            Outcome::Gone => {}
        }
        if outcome.1 {
            self.recompressed += 1;
        }
    }

    pub fn is_empty(&self) -> bool {
        self.delivered + self.dropped + self.closed + self.recompressed + self.conflated == 0
            && self.pending == 0
    }

    pub fn plus(self, other: Counts) -> Counts {
        Counts {
            delivered: self.delivered + other.delivered,
            dropped: self.dropped + other.dropped,
            closed: self.closed + other.closed,
            recompressed: self.recompressed + other.recompressed,
            conflated: self.conflated + other.conflated,
            pending: self.pending + other.pending,
        }
    }

    /// The policy of `delivery` applied to `sink`, which missed `count`
    /// publications (each counted as dropped, or one close).
    pub fn missed<L: Sink>(sink: &L, delivery: &Delivery, count: u64) -> Counts {
        let mut counts = Counts::default().add(sink.over_budget(delivery));
        counts.dropped *= count;
        counts
    }
}

/// Where a join starts: the publications of `epoch` up to `offset` are covered
/// by the join's answer (recovered, or before it), and never delivered after it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Floor {
    pub epoch: Arc<str>,
    pub offset: u64,
}

impl Floor {
    /// Whether `delivery` is one the join covers: numbered in the same epoch, at
    /// or below the floor.
    fn covers(&self, delivery: &Delivery) -> bool {
        delivery.offset != 0
            && delivery.offset <= self.offset
            && delivery.epoch.as_deref() == Some(&*self.epoch)
    }
}

struct Subscriber<L> {
    id: ConnId,
    local: L,
    /// Set by its join's answer, cleared by the first delivery of its epoch above it.
    floor: Option<Box<Floor>>,
    /// The newest publication a conflating policy kept for it, to write when it
    /// has room.
    latest: Option<Arc<Delivery>>,
}

/// A join not answered yet: what is held back for it.
struct Held {
    join: u64,
    deliveries: Vec<Arc<Delivery>>,
}

/// A topic's subscribers on one shard.
pub(super) struct Subscribers<L> {
    list: Vec<Subscriber<L>>,
    index: HashMap<ConnId, usize>,
    held: HashMap<ConnId, Held>,
}

impl<L> Default for Subscribers<L> {
    fn default() -> Self {
        Subscribers {
            list: Vec::new(),
            index: HashMap::new(),
            held: HashMap::new(),
        }
    }
}

impl<L: Sink> Subscribers<L> {
    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// `id` joined (join `join`): what the topic delivers is held back for it until
    /// that join's answer.
    pub fn subscribe(&mut self, id: ConnId, local: L, join: u64) {
        if self.index.contains_key(&id) {
            return;
        }
        self.index.insert(id, self.list.len());
        self.list.push(Subscriber {
            id,
            local,
            floor: None,
            latest: None,
        });
        self.held.insert(
            id,
            Held {
                join,
                deliveries: Vec::new(),
            },
        );
    }

    /// `id` left.
    pub fn unsubscribe(&mut self, id: ConnId) {
        self.held.remove(&id);
        let Some(at) = self.index.remove(&id) else {
            return;
        };
        self.list.swap_remove(at);
        if let Some(moved) = self.list.get(at) {
            self.index.insert(moved.id, at);
        }
    }

    /// The answer to join `join` of `id`: `greeting`, `replay`, then what was held
    /// back above `floor` (and above the replay). Ignored when `id` is not held back
    /// for that join (it left, or this answers an earlier join of it).
    pub fn answer(
        &mut self,
        id: ConnId,
        join: u64,
        greeting: Vec<Arc<Delivery>>,
        replay: Vec<Arc<Delivery>>,
        mut floor: Floor,
    ) -> Counts {
        if self.held.get(&id).is_none_or(|h| h.join != join) {
            return Counts::default();
        }
        let Some(held) = self.held.remove(&id) else {
            return Counts::default();
        };
        let Some(&at) = self.index.get(&id) else {
            return Counts::default();
        };
        if let Some(last) = replay.last() {
            floor.offset = floor.offset.max(last.offset);
        }
        let sub = &mut self.list[at];
        sub.floor = Some(Box::new(floor));
        let mut counts = Counts::default();
        for d in greeting.iter().chain(replay.iter()) {
            sub.push(d, &mut counts);
        }
        for d in &held.deliveries {
            sub.offer(d, &mut counts);
        }
        counts
    }

    /// Fan out `group`, publications each for every subscriber but its `except`:
    /// delivered, or held back for an unanswered join (bounded like a send
    /// buffer: past its budget, the policy applies as it would on delivery).
    /// Subscriber by subscriber: each gets them all, in order, before the next is
    /// visited, as if they came one after the other (a subscriber's run of them
    /// sent in one pass, and as one copy of their frames when it gets them all).
    pub fn publish_many(&mut self, group: &[(Arc<Delivery>, Option<ConnId>)]) -> Counts {
        let mut counts = Counts::default();
        let any_held = !self.held.is_empty();
        let held_all = &mut self.held;
        // The group's publications one subscriber gets, in order.
        let mut mine = Vec::with_capacity(if group.len() > 1 { group.len() } else { 0 });
        let whole = Whole::new(group);
        // All of them, for a subscriber without a floor that sent none of them.
        let all: Vec<_> = match group.len() {
            0 | 1 => Vec::new(),
            _ => group.iter().map(|(d, _)| d).collect(),
        };
        let mut senders: Vec<ConnId> = group.iter().filter_map(|(_, except)| *except).collect();
        senders.sort_unstable();
        senders.dedup();
        for sub in &mut self.list {
            let mut held = if any_held {
                held_all.get_mut(&sub.id)
            } else {
                None
            };
            if held.is_none() && group.len() > 1 {
                if sub.floor.is_none() && !senders.contains(&sub.id) {
                    sub.push_many(&all, Some(&whole), &mut counts);
                    continue;
                }
                mine.clear();
                for (delivery, except) in group {
                    if Some(sub.id) != *except && sub.admits(delivery) {
                        mine.push(delivery);
                    }
                }
                let whole = (mine.len() == group.len()).then_some(&whole);
                sub.push_many(&mine, whole, &mut counts);
                continue;
            }
            for (delivery, except) in group {
                if Some(sub.id) == *except {
                    continue;
                }
                if let Some(held) = held.as_mut() {
                    if held.deliveries.len() < delivery.policy.budget_messages {
                        held.deliveries.push(delivery.clone());
                    } else if delivery.policy.slow_consumer == SlowConsumer::Latest {
                        // Conflated: the newest held makes way for this one.
                        held.deliveries.pop();
                        held.deliveries.push(delivery.clone());
                        counts.conflated += 1;
                    } else {
                        counts = counts.add(sub.local.over_budget(delivery));
                    }
                    continue;
                }
                sub.offer(delivery, &mut counts);
            }
        }
        counts
    }

    /// Write what conflating policies kept for subscribers that have room now.
    pub fn retry_latest(&mut self) -> Counts {
        let mut counts = Counts::default();
        for sub in &mut self.list {
            if let Some(latest) = sub.latest.take() {
                sub.push(&latest, &mut counts);
            }
        }
        counts
    }

    /// Whether a subscriber has a publication kept by a conflating policy.
    pub fn has_latest(&self) -> bool {
        self.list.iter().any(|sub| sub.latest.is_some())
    }
}

impl<L: Sink> Subscribers<L> {
    /// Every subscriber but `except` missed `count` publications (they found the
    /// shard's queue full): the policy of `delivery` applies to each.
    pub fn missed(&self, delivery: &Delivery, except: Option<ConnId>, count: u64) -> Counts {
        self.list
            .iter()
            .filter(|sub| Some(sub.id) != except)
            .fold(Counts::default(), |counts, sub| {
                counts.plus(Counts::missed(&sub.local, delivery, count))
            })
    }
}

impl<L: Sink> Subscriber<L> {
    /// Deliver unless the join's floor covers it (inlined: the counts stay in
    /// the fan-out loop's registers).
    #[inline(always)]
    fn offer(&mut self, delivery: &Arc<Delivery>, counts: &mut Counts) {
        if self.admits(delivery) {
            self.push(delivery, counts);
        }
    }

    /// Whether `delivery` is to be delivered: the join's floor does not cover it
    /// (the floor goes once passed).
    #[inline(always)]
    fn admits(&mut self, delivery: &Delivery) -> bool {
        if let Some(floor) = &self.floor {
            if floor.covers(delivery) {
                return false;
            }
            // Numbered above the floor in its epoch: later ones of it are too. A
            // delivery of another epoch says nothing of the floor's (the hub's
            // local epoch of publications Redis did not take, or a late one of an
            // earlier epoch, comes between the floor's own): the floor stays.
            if delivery.epoch.as_deref() == Some(&*floor.epoch) {
                self.floor = None;
            }
        }
        true
    }

    /// Deliver `group` in order, as `push` one after the other would, with one
    /// visit of the connection for those its budget takes (`whole`: `group` is
    /// all of the group being fanned out).
    #[inline(always)]
    fn push_many(
        &mut self,
        group: &[&Arc<Delivery>],
        whole: Option<&Whole<'_>>,
        counts: &mut Counts,
    ) {
        if self.latest.is_some() || group.len() < 2 {
            for delivery in group {
                self.push(delivery, counts);
            }
            return;
        }
        let many = self.local.deliver_many(group, whole);
        counts.delivered += many.delivered as u64;
        counts.recompressed += many.recompressed;
        if let Some(outcome) = many.stopped {
            self.refused(group, many.delivered, outcome, counts);
        }
    }

    /// `group[at]` had `outcome` (not delivered): kept if conflated, counted, and
    /// the rest pushed one by one.
    #[cold]
    fn refused(
        &mut self,
        group: &[&Arc<Delivery>],
        at: usize,
        outcome: (Outcome, bool),
        counts: &mut Counts,
    ) {
        if outcome.0 == Outcome::Conflated {
            self.keep(group[at]);
        }
        counts.count(outcome);
        for delivery in &group[at + 1..] {
            self.push(delivery, counts);
        }
    }

    /// Deliver `delivery`, which supersedes what a conflating policy kept (counted
    /// as conflated); kept instead when it is refused for the budget.
    #[inline(always)]
    fn push(&mut self, delivery: &Arc<Delivery>, counts: &mut Counts) {
        if self.latest.is_some() {
            self.supersede(counts);
        }
        let outcome = self.local.deliver(delivery);
        if outcome.0 == Outcome::Conflated {
            self.keep(delivery);
        }
        counts.count(outcome);
    }

    /// What a conflating policy kept is replaced by a newer publication.
    #[cold]
    fn supersede(&mut self, counts: &mut Counts) {
        self.latest = None;
        counts.conflated += 1;
    }

    /// Keep `delivery` to write when the subscriber has room.
    #[cold]
    fn keep(&mut self, delivery: &Arc<Delivery>) {
        self.latest = Some(delivery.clone());
    }
}

#[cfg(test)]
mod tests {
    use std::{
        cell::{Cell, RefCell},
        rc::Rc,
    };

    use super::*;
    use crate::{
        hub::delivery::Policy,
        proto::PreparedMessage,
        settings::{DeflateSettings, SlowConsumer},
    };

    /// Records "id:text" per delivery, "id:over" per policy applied.
    #[derive(Clone)]
    struct Log(u64, Rc<RefCell<Vec<String>>>);

    impl Sink for Log {
        fn deliver(&self, d: &Delivery) -> (Outcome, bool) {
            let text = String::from_utf8(d.prepared.payload().to_vec()).unwrap();
            self.1.borrow_mut().push(format!("{}:{text}", self.0));
            (Outcome::Delivered, false)
        }
        fn over_budget(&self, _: &Delivery) -> (Outcome, bool) {
            self.1.borrow_mut().push(format!("{}:over", self.0));
            (Outcome::Dropped, false)
        }
    }

    fn d(text: &str, offset: u64, epoch: Option<&str>) -> Arc<Delivery> {
        Arc::new(Delivery {
            prepared: PreparedMessage::new(text.to_owned(), &DeflateSettings::default()),
            policy: Policy {
                budget_bytes: 1 << 20,
                budget_messages: 2,
                slow_consumer: SlowConsumer::Drop,
                close_code: 1008,
            },
            offset,
            epoch: epoch.map(Into::into),
        })
    }

    impl<L: Sink> Subscribers<L> {
        /// One publication alone.
        fn publish(&mut self, delivery: &Arc<Delivery>, except: Option<ConnId>) -> Counts {
            self.publish_many(&[(delivery.clone(), except)])
        }
    }

    fn floor(epoch: &str, offset: u64) -> Floor {
        Floor {
            epoch: epoch.into(),
            offset,
        }
    }

    #[test]
    fn a_held_join_is_bounded_by_the_budget_and_released_above_its_floor() {
        let log = Rc::new(RefCell::new(Vec::new()));
        let mut subs = Subscribers::default();
        let id = ConnId::from_raw(1);
        subs.subscribe(id, Log(1, log.clone()), 7);
        for (n, text) in ["a", "b", "c"].iter().enumerate() {
            subs.publish(&d(text, n as u64 + 1, Some("e")), None);
        }
        // Two held (the budget), the third over it.
        assert_eq!(*log.borrow(), ["1:over"]);
        subs.answer(id, 7, vec![d("hi", 0, None)], vec![], floor("e", 1));
        assert_eq!(*log.borrow(), ["1:over", "1:hi", "1:b"]);
    }

    #[test]
    fn a_floor_covers_only_its_own_epoch_and_goes_once_passed_in_it() {
        let log = Rc::new(RefCell::new(Vec::new()));
        let mut subs = Subscribers::default();
        let id = ConnId::from_raw(1);
        subs.subscribe(id, Log(1, log.clone()), 1);
        subs.answer(id, 1, vec![], vec![], floor("e", 5));
        subs.publish(&d("e5", 5, Some("e")), None);
        // Another epoch (a local one, say) between the floor's own: delivered,
        // and the floor stays.
        subs.publish(&d("f1", 1, Some("f")), None);
        subs.publish(&d("e4", 4, Some("e")), None);
        subs.publish(&d("e6", 6, Some("e")), None);
        subs.publish(&d("unnumbered", 0, None), None);
        assert_eq!(*log.borrow(), ["1:f1", "1:e6", "1:unnumbered"]);
    }

    /// A join answered at `e`:5 while the deliveries held back for it are a
    /// local epoch's and then `e`'s from its start: none of `e` up to 5 after the
    /// answer.
    #[test]
    fn held_deliveries_of_another_epoch_do_not_lift_the_floor() {
        let log = Rc::new(RefCell::new(Vec::new()));
        let mut subs = Subscribers::default();
        let id = ConnId::from_raw(1);
        subs.subscribe(id, Log(1, log.clone()), 3);
        subs.publish(&d("local1", 1, Some("local")), None);
        subs.publish(&d("e1", 1, Some("e")), None);
        subs.answer(id, 3, vec![d("hi", 0, None)], vec![], floor("e", 5));
        for n in 2..=6 {
            subs.publish(&d(&format!("e{n}"), n, Some("e")), None);
        }
        assert_eq!(*log.borrow(), ["1:hi", "1:local1", "1:e6"]);
    }

    /// What each subscriber got, in order.
    fn per_subscriber(log: &[String]) -> Vec<Vec<String>> {
        let mut each = vec![Vec::new(); 4];
        for line in log {
            let (id, what) = line.split_once(':').unwrap();
            each[id.parse::<usize>().unwrap()].push(what.to_owned());
        }
        each
    }

    /// Subscribers 1 (answered above a floor), 2 (answered), 3 (held back, for
    /// join 9) get publications of two epochs, some with an `except`: fanned out
    /// together, each gets what one publication after the other gives it.
    #[test]
    fn a_group_fanned_out_together_gives_each_subscriber_what_one_by_one_does() {
        let group: Vec<(Arc<Delivery>, Option<ConnId>)> = vec![
            (d("e1", 1, Some("e")), None),
            (d("e2", 2, Some("e")), Some(ConnId::from_raw(2))),
            (d("f1", 1, Some("f")), None),
            (d("e3", 3, Some("e")), Some(ConnId::from_raw(1))),
            (d("e4", 4, Some("e")), None),
        ];
        let setup = |log: &Rc<RefCell<Vec<String>>>| {
            let mut subs = Subscribers::default();
            for n in 1..=3 {
                subs.subscribe(ConnId::from_raw(n), Log(n, log.clone()), n + 6);
            }
            subs.answer(ConnId::from_raw(1), 7, vec![], vec![], floor("e", 2));
            subs.answer(ConnId::from_raw(2), 8, vec![], vec![], floor("e", 0));
            subs
        };
        let one_by_one = Rc::new(RefCell::new(Vec::new()));
        let mut subs = setup(&one_by_one);
        let mut counts = Counts::default();
        for (delivery, except) in &group {
            counts = counts.plus(subs.publish(delivery, *except));
        }
        subs.answer(ConnId::from_raw(3), 9, vec![], vec![], floor("e", 0));
        let together = Rc::new(RefCell::new(Vec::new()));
        let mut subs = setup(&together);
        assert_eq!(subs.publish_many(&group), counts);
        subs.answer(ConnId::from_raw(3), 9, vec![], vec![], floor("e", 0));
        let expected = per_subscriber(&one_by_one.borrow());
        assert_eq!(per_subscriber(&together.borrow()), expected);
        assert_eq!(expected[1], ["f1", "e4"]);
        assert_eq!(expected[2], ["e1", "f1", "e3", "e4"]);
        // Held back: two (the budget), the rest over it, then released in order.
        assert_eq!(expected[3], ["over", "over", "over", "e1", "e2"]);
    }

    /// A sink with a budget of `limit` deliveries: past it, the policy of the
    /// delivery ("over" for drop, "closed" once for close, then nothing: gone;
    /// conflated for latest). Deliveries at odd offsets count as compressed again.
    #[derive(Clone)]
    struct Budgeted(
        u64,
        Rc<RefCell<Vec<String>>>,
        Rc<Cell<usize>>,
        Rc<Cell<bool>>,
    );

    impl Sink for Budgeted {
        fn deliver(&self, d: &Delivery) -> (Outcome, bool) {
            if self.3.get() {
                return (Outcome::Gone, false);
            }
            if self.2.get() == 0 {
                if d.policy.slow_consumer == SlowConsumer::Latest {
                    return (Outcome::Conflated, false);
                }
                return self.over_budget(d);
            }
            self.2.set(self.2.get() - 1);
            let text = String::from_utf8(d.prepared.payload().to_vec()).unwrap();
            self.1.borrow_mut().push(format!("{}:{text}", self.0));
            (Outcome::Delivered, d.offset % 2 == 1)
        }
        fn over_budget(&self, d: &Delivery) -> (Outcome, bool) {
            if d.policy.slow_consumer == SlowConsumer::Close {
                self.3.set(true);
                self.1.borrow_mut().push(format!("{}:closed", self.0));
                return (Outcome::Closed, false);
            }
            self.1.borrow_mut().push(format!("{}:over", self.0));
            (Outcome::Dropped, false)
        }
    }

    /// Subscribers with room for 0 to 6 deliveries get a group of five under
    /// each policy, some with an `except`, one above a floor: fanned out
    /// together (each subscriber's run taken up to its budget at once), each
    /// gets, and each count is, what one publication after the other gives;
    /// and what a conflating policy kept is the same one.
    #[test]
    fn a_group_refused_partway_gives_what_one_by_one_does_under_each_policy() {
        for policy in [
            SlowConsumer::Drop,
            SlowConsumer::Close,
            SlowConsumer::Latest,
        ] {
            let dp = |text: &str, offset: u64| {
                Arc::new(Delivery {
                    prepared: PreparedMessage::new(text.to_owned(), &DeflateSettings::default()),
                    policy: Policy {
                        budget_bytes: 1 << 20,
                        budget_messages: 8,
                        slow_consumer: policy,
                        close_code: 1008,
                    },
                    offset,
                    epoch: Some("e".into()),
                })
            };
            let group: Vec<(Arc<Delivery>, Option<ConnId>)> = vec![
                (dp("e1", 1), None),
                (dp("e2", 2), Some(ConnId::from_raw(3))),
                (dp("e3", 3), None),
                (dp("e4", 4), Some(ConnId::from_raw(6))),
                (dp("e5", 5), None),
            ];
            let run = |together: bool| {
                let log = Rc::new(RefCell::new(Vec::new()));
                let room: Vec<_> = (0..7).map(|n| Rc::new(Cell::new(n))).collect();
                let mut subs = Subscribers::default();
                for n in 0..7u64 {
                    let id = ConnId::from_raw(n);
                    let sink = Budgeted(n, log.clone(), room[n as usize].clone(), Rc::default());
                    subs.subscribe(id, sink, n);
                    let above = if n == 4 { 1 } else { 0 };
                    subs.answer(id, n, vec![], vec![], floor("e", above));
                }
                let counts = if together {
                    subs.publish_many(&group)
                } else {
                    group.iter().fold(Counts::default(), |counts, (d, except)| {
                        counts.plus(subs.publish(d, *except))
                    })
                };
                // Room again: what a conflating policy kept is written.
                room.iter().for_each(|r| r.set(10));
                let later = subs.retry_latest();
                let log = per_subscriber_of(&log.borrow(), 7);
                (counts, later, log)
            };
            let (counts, later, log) = run(true);
            assert_eq!(
                (counts, later, &log),
                (run(false).0, run(false).1, &run(false).2)
            );
            match policy {
                SlowConsumer::Drop => {
                    assert_eq!(log[0], ["over", "over", "over", "over", "over"]);
                    assert_eq!(log[2], ["e1", "e2", "over", "over", "over"]);
                    assert_eq!(log[3], ["e1", "e3", "e4", "over"]);
                    assert_eq!(log[4], ["e2", "e3", "e4", "e5"]);
                    assert_eq!(counts.delivered, 19);
                    assert_eq!(counts.dropped, 13);
                }
                SlowConsumer::Close => {
                    assert_eq!(log[2], ["e1", "e2", "closed"]);
                    assert_eq!(counts.closed, 4);
                }
                _ => {
                    assert_eq!(log[2], ["e1", "e2", "e5"]);
                    assert_eq!(log[3], ["e1", "e3", "e4", "e5"]);
                    assert_eq!(later.delivered, 4);
                }
            }
            assert_eq!(log[6], ["e1", "e2", "e3", "e5"]);
            assert_eq!(log[5], ["e1", "e2", "e3", "e4", "e5"]);
        }
    }

    /// What each of `n` subscribers got, in order.
    fn per_subscriber_of(log: &[String], n: usize) -> Vec<Vec<String>> {
        let mut each = vec![Vec::new(); n];
        for line in log {
            let (id, what) = line.split_once(':').unwrap();
            each[id.parse::<usize>().unwrap()].push(what.to_owned());
        }
        each
    }

    #[test]
    fn leaving_keeps_the_others_reachable_and_except_is_skipped() {
        let log = Rc::new(RefCell::new(Vec::new()));
        let mut subs = Subscribers::default();
        for n in 1..=3 {
            let id = ConnId::from_raw(n);
            subs.subscribe(id, Log(n, log.clone()), n);
            subs.answer(id, n, vec![], vec![], floor("e", 0));
        }
        subs.unsubscribe(ConnId::from_raw(1));
        subs.publish(&d("x", 0, None), Some(ConnId::from_raw(2)));
        subs.unsubscribe(ConnId::from_raw(3));
        subs.publish(&d("y", 0, None), None);
        assert_eq!(*log.borrow(), ["3:x", "2:y"]);
        subs.unsubscribe(ConnId::from_raw(2));
        assert!(subs.is_empty());
    }
}
