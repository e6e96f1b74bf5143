//! A hub without sockets for the unit tests: connections on shards whose
//! commands the test runs itself (through the real shard code, with recording
//! connections), and a backplane that records what the hub tells it.

use std::{
    cell::RefCell,
    collections::HashMap,
    rc::Rc,
    sync::{Arc, Mutex},
};

use tokio::sync::mpsc;

use super::super::{
    delivery::Delivery,
    queue::Cmd,
    shard::Shard,
    subscribers::{Outcome, Sink},
    sync::lock,
    Backplane, Hub, JoinError, JoinOptions, Joined, Located, Position, PresenceKind, Publication,
};
use crate::{actor::ConnId, settings::Settings};

/// What the hub told the backplane.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Said {
    Subscribe(String, u64),
    Unsubscribe(String, u64),
    Publish(String, String),
    /// A user's first join (`true`) or last leave on this server.
    Presence(String, String, bool),
}

/// A join waiting for the backplane's answer.
pub(crate) type Locate = (String, Option<Position>, Box<dyn FnOnce(Located) + Send>);

/// A backplane that records what it is told; a numbering one keeps the joins'
/// `locate` for the test to answer.
#[derive(Default)]
pub(crate) struct Recording {
    pub said: Mutex<Vec<Said>>,
    pub numbers: bool,
    /// Presence shared through it (what the hub decides is recorded).
    pub shares: bool,
    pub locates: Mutex<Vec<Locate>>,
}

impl Backplane for Recording {
    fn publish(&self, publication: Publication) {
        let text = String::from_utf8(publication.message.as_bytes().to_vec()).unwrap();
        lock(&self.said).push(Said::Publish(publication.topic, text));
    }
    fn subscribe(&self, topic: &str, generation: u64) {
        lock(&self.said).push(Said::Subscribe(topic.into(), generation));
    }
    fn unsubscribe(&self, topic: &str, generation: u64) {
        lock(&self.said).push(Said::Unsubscribe(topic.into(), generation));
    }
    fn numbers(&self) -> bool {
        self.numbers
    }
    fn shares_presence(&self) -> bool {
        self.shares
    }
    fn presence_changed(&self, topic: &str, user: &str, _: Option<&str>, kind: PresenceKind) {
        let joined = kind == PresenceKind::Joined;
        lock(&self.said).push(Said::Presence(topic.into(), user.into(), joined));
    }
    fn locate(&self, topic: &str, since: Option<Position>, done: Box<dyn FnOnce(Located) + Send>) {
        if self.numbers {
            lock(&self.locates).push((topic.into(), since, done));
        } else {
            done(Located::new(Position::start(), None));
        }
    }
}

impl Recording {
    /// The last subscription decision per topic, checking on the way that each
    /// topic's decisions alternate and carry increasing generations.
    pub fn last_words(&self) -> HashMap<String, Said> {
        let mut last: HashMap<String, Said> = HashMap::new();
        for said in lock(&self.said).iter() {
            let (topic, generation) = match said {
                Said::Subscribe(t, g) | Said::Unsubscribe(t, g) => (t, *g),
                Said::Publish(..) | Said::Presence(..) => continue,
            };
            if let Some(before) = last.get(topic) {
                let (Said::Subscribe(_, g) | Said::Unsubscribe(_, g)) = before else {
                    unreachable!()
                };
                assert!(generation > *g, "{topic}: {said:?} after {before:?}");
                assert_ne!(
                    std::mem::discriminant(before),
                    std::mem::discriminant(said),
                    "{topic}: two {said:?} in a row"
                );
            } else {
                assert!(
                    matches!(said, Said::Subscribe(..)),
                    "{topic}: first word {said:?}"
                );
            }
            last.insert(topic.clone(), said.clone());
        }
        last
    }
}

/// What a connection received: the texts of its deliveries, in order.
pub(crate) type Inbox = Rc<RefCell<HashMap<ConnId, Vec<String>>>>;

/// The room of slow connections: how many more deliveries each takes (a
/// connection not in it takes every one).
pub(crate) type Rooms = Rc<RefCell<HashMap<ConnId, usize>>>;

/// A connection as a shard sees it: it records every delivery.
#[derive(Clone)]
pub(crate) struct Recorder {
    id: ConnId,
    inbox: Inbox,
    rooms: Rooms,
}

impl Sink for Recorder {
    fn deliver(&self, delivery: &Delivery) -> (Outcome, bool) {
        if let Some(room) = self.rooms.borrow_mut().get_mut(&self.id) {
            if *room == 0 {
                if delivery.policy.slow_consumer == crate::settings::SlowConsumer::Latest {
                    return (Outcome::Conflated, false);
                }
                return self.over_budget(delivery);
            }
            *room -= 1;
        }
        let text = String::from_utf8(delivery.prepared.payload().to_vec()).unwrap();
        self.inbox
            .borrow_mut()
            .entry(self.id)
            .or_default()
            .push(text);
        (Outcome::Delivered, false)
    }
    fn over_budget(&self, _: &Delivery) -> (Outcome, bool) {
        self.inbox
            .borrow_mut()
            .entry(self.id)
            .or_default()
            .push("!over budget".into());
        (Outcome::Dropped, false)
    }
}

/// A hub whose shards the test runs.
pub(crate) struct Harness {
    pub hub: Hub,
    pub backplane: Arc<Recording>,
    pub inbox: Inbox,
    /// Slow connections' room (see [`Rooms`]).
    pub rooms: Rooms,
    /// The connections made, in order.
    pub conns: Vec<ConnId>,
    shards: Vec<(usize, mpsc::UnboundedReceiver<Cmd>, Shard<Recorder>)>,
}

impl Harness {
    /// `shards` shards; a backplane (numbering or not) when `backplane` says so.
    pub fn new(shards: usize, backplane: Option<bool>) -> Harness {
        Harness::with_settings(shards, backplane, &Settings::default())
    }

    pub fn with_settings(shards: usize, backplane: Option<bool>, settings: &Settings) -> Harness {
        Harness::build(shards, backplane, false, settings)
    }

    /// With a backplane that shares presence (recording the hub's decisions).
    pub fn sharing_presence(shards: usize, settings: &Settings) -> Harness {
        Harness::build(shards, Some(false), true, settings)
    }

    fn build(shards: usize, backplane: Option<bool>, shares: bool, settings: &Settings) -> Harness {
        let hub = Hub::named("unit", settings);
        let recording = Arc::new(Recording {
            numbers: backplane == Some(true),
            shares,
            ..Recording::default()
        });
        if backplane.is_some() {
            hub.set_backplane(recording.clone());
        }
        let shards = (0..shards)
            .map(|_| {
                let (index, rx, queue) = hub.inner.test_shard();
                (index, rx, Shard::new(Arc::downgrade(&hub.inner), queue))
            })
            .collect();
        Harness {
            hub,
            backplane: recording,
            inbox: Inbox::default(),
            rooms: Rooms::default(),
            conns: Vec::new(),
            shards,
        }
    }

    /// A new connection on shard `shard` (of this harness).
    pub fn conn(&mut self, shard: usize) -> ConnId {
        let id = ConnId::next();
        self.conns.push(id);
        let (index, _, runner) = &mut self.shards[shard];
        self.hub.inner.test_conn(id, *index);
        runner.conns.insert(
            id,
            Recorder {
                id,
                inbox: self.inbox.clone(),
                rooms: self.rooms.clone(),
            },
        );
        id
    }

    /// Join `id` (a connection of this harness) to `topic`.
    pub fn join(&self, id: ConnId, topic: &str, options: JoinOptions) -> Result<Joined, JoinError> {
        join(&self.hub, id, topic, options)
    }

    /// Run what shard `shard` was sent so far.
    pub fn pump(&mut self, shard: usize) {
        let (_, rx, runner) = &mut self.shards[shard];
        // As a shard's task takes them: all that is queued, publications grouped.
        let mut cmds = Vec::new();
        while let Ok(cmd) = rx.try_recv() {
            cmds.push(cmd);
        }
        runner.handle_all(&mut cmds, Shard::handle);
    }

    /// Let shard `shard` write what conflating policies kept (its timer's work).
    pub fn retry_latest(&mut self, shard: usize) -> bool {
        let (_, _, runner) = &mut self.shards[shard];
        runner.retry_latest();
        runner.has_latest()
    }

    /// Run every shard until none has anything left.
    pub fn pump_all(&mut self) {
        for shard in 0..self.shards.len() {
            self.pump(shard);
        }
    }

    /// What `id` received so far.
    pub fn received(&self, id: ConnId) -> Vec<String> {
        self.inbox.borrow().get(&id).cloned().unwrap_or_default()
    }
}

/// Join connection `id` (registered on a test shard) to `topic`.
pub(crate) fn join(
    hub: &Hub,
    id: ConnId,
    topic: &str,
    options: JoinOptions,
) -> Result<Joined, JoinError> {
    let shard = lock(&hub.inner.conns)
        .get(&id)
        .map(|e| e.shard)
        .ok_or(JoinError::Closed)?;
    hub.inner.join(id, shard, topic, options)
}

/// A greeting: `on_joined` answering `text`.
pub(crate) fn greeting(text: &str) -> JoinOptions {
    let text = text.to_owned();
    JoinOptions::default().on_joined(move |_| vec![text.into()])
}
