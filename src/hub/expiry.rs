//! What makes history go: the hub's bound on history bytes (the oldest
//! publications of any topic evicted first), and the sweep that drops expired
//! publications and forgets the topics left with nothing.

use std::{
    sync::{atomic::Ordering, Arc, Weak},
    time::{Duration, Instant},
};

use super::{inner::HubInner, topic::TopicState};

/// How often the sweep runs.
pub(super) const SWEEP_EVERY: Duration = Duration::from_secs(1);

/// Evictions made at most per publication that finds the hub over its bound.
const EVICT_AT_ONCE: usize = 1024;

impl HubInner {
    /// Past the hub's bound on history bytes: evict the oldest publications of
    /// any topic until under it (at most [`EVICT_AT_ONCE`] at a time). Called
    /// with no topic's lock held.
    pub(super) fn evict_history(&self) {
        let h = &self.histories;
        for _ in 0..EVICT_AT_ONCE {
            if h.bytes() <= self.settings.max_history_bytes {
                return;
            }
            let Some((seq, topic)) = h.oldest() else {
                return;
            };
            let mut state = topic.lock();
            // Changed meanwhile (the index was updated with it): look again.
            if state.oldest_seq() != Some(seq) {
                continue;
            }
            h.edit(&topic, &mut state, TopicState::pop_oldest);
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
        for topic in self.histories.topics() {
            let mut state = topic.lock();
            self.histories.edit(&topic, &mut state, |s| s.expire(now));
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
