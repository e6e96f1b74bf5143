//! The hub's history across topics: the bytes kept in all (bounded by
//! [`HubSettings::max_history_bytes`], the oldest publications of any topic
//! evicted first), and the sweep that drops expired publications and forgets
//! the topics left with nothing.
//!
//! Each topic's oldest publication is indexed by its place in the hub's order
//! (`seq`), updated under the topic's lock whenever it changes: the index has one
//! entry per topic with a history, and its first entry is the oldest publication
//! of the hub.
//!
//! [`HubSettings::max_history_bytes`]: crate::HubSettings::max_history_bytes

use std::{
    collections::BTreeMap,
    sync::{
        atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering},
        Arc, Mutex, Weak,
    },
    time::{Duration, Instant},
};

use super::{
    lock,
    topic::{Topic, TopicState},
    HubInner,
};

/// How often the sweep runs.
pub(super) const SWEEP_EVERY: Duration = Duration::from_secs(1);

/// Evictions made at most per publication that finds the hub over its bound.
const EVICT_AT_ONCE: usize = 1024;

/// The hub's history bookkeeping.
#[derive(Debug, Default)]
pub(super) struct Histories {
    /// Each topic's oldest publication, by its place in the hub's order.
    oldest: Mutex<BTreeMap<u64, Arc<Topic>>>,
    /// The bytes kept, all topics together.
    pub bytes: AtomicUsize,
    /// The next place in the hub's order.
    seq: AtomicU64,
    /// Whether the sweep task runs.
    sweeping: AtomicBool,
}

impl Histories {
    /// The place of the next publication kept.
    pub fn next_seq(&self) -> u64 {
        self.seq.fetch_add(1, Ordering::Relaxed)
    }
}

impl HubInner {
    /// Change `topic`'s history with `f` (under its lock), keeping the hub's
    /// bytes and its index of oldest publications up to date.
    pub(super) fn edit_history<R>(
        &self,
        topic: &Arc<Topic>,
        state: &mut TopicState,
        f: impl FnOnce(&mut TopicState) -> R,
    ) -> R {
        let (oldest, bytes) = (state.oldest_seq(), state.history_bytes);
        let out = f(state);
        let (now_oldest, now_bytes) = (state.oldest_seq(), state.history_bytes);
        let h = &self.histories;
        if now_bytes > bytes {
            h.bytes.fetch_add(now_bytes - bytes, Ordering::Relaxed);
        } else if bytes > now_bytes {
            h.bytes.fetch_sub(bytes - now_bytes, Ordering::Relaxed);
        }
        if oldest != now_oldest {
            let mut index = lock(&h.oldest);
            if let Some(seq) = oldest {
                index.remove(&seq);
            }
            if let Some(seq) = now_oldest {
                index.insert(seq, topic.clone());
            }
        }
        out
    }

    /// Past the hub's bound on history bytes: evict the oldest publications of
    /// any topic until under it (at most [`EVICT_AT_ONCE`] at a time). Called
    /// with no topic's lock held.
    pub(super) fn evict_history(&self) {
        let h = &self.histories;
        for _ in 0..EVICT_AT_ONCE {
            if h.bytes.load(Ordering::Relaxed) <= self.settings.max_history_bytes {
                return;
            }
            let first = lock(&h.oldest)
                .first_key_value()
                .map(|(seq, t)| (*seq, t.clone()));
            let Some((seq, topic)) = first else {
                return;
            };
            let mut state = topic.lock();
            // Changed meanwhile (the index was updated with it): look again.
            if state.oldest_seq() != Some(seq) {
                continue;
            }
            self.edit_history(&topic, &mut state, TopicState::pop_oldest);
            self.metrics.history_evicted.fetch_add(1, Ordering::Relaxed);
            let idle = state.is_idle();
            drop(state);
            if idle {
                self.remove_if_idle(&topic);
            }
        }
    }

    /// Drop the publications past their topic's age bound, and forget the
    /// topics left idle (no member, nothing kept, not configured).
    pub(super) fn sweep(&self, now: Instant) {
        let topics: Vec<Arc<Topic>> = lock(&self.histories.oldest).values().cloned().collect();
        for topic in topics {
            let mut state = topic.lock();
            self.edit_history(&topic, &mut state, |s| s.expire(now));
            let idle = state.is_idle();
            drop(state);
            if idle {
                self.remove_if_idle(&topic);
            }
        }
    }

    /// Start the sweep on this thread (a worker thread's runtime) unless it runs.
    pub(super) fn start_sweeping(self: &Arc<Self>) {
        if self.histories.sweeping.swap(true, Ordering::AcqRel) {
            return;
        }
        actix_rt::spawn(sweeper(Arc::downgrade(self)));
    }
}

/// The sweep, every [`SWEEP_EVERY`], while the hub lives (and its thread's
/// runtime: a later shard starts it again if that one stops).
async fn sweeper(hub: Weak<HubInner>) {
    /// Lets a later shard start the sweep again once this task ends.
    struct Ended(Weak<HubInner>);
    impl Drop for Ended {
        fn drop(&mut self) {
            if let Some(hub) = self.0.upgrade() {
                hub.histories.sweeping.store(false, Ordering::Release);
            }
        }
    }
    let _ended = Ended(hub.clone());
    let mut tick = tokio::time::interval(SWEEP_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(hub) = hub.upgrade() else {
            return;
        };
        hub.sweep(Instant::now());
    }
}
