//! The hub's history across topics: the bytes kept in all (bounded by
//! [`HubSettings::max_history_bytes`], the oldest publications of any topic
//! evicted first: see `expiry`), and the index of each topic's oldest
//! publication.
//!
//! Each topic's oldest publication is indexed by its place in the hub's order
//! (`seq`), updated under the topic's lock whenever it changes: the index has one
//! entry per topic with a history, and its first entry is the oldest publication
//! of the hub.
//!
//! [`HubSettings::max_history_bytes`]: crate::settings::HubSettings::max_history_bytes

use std::{
    collections::BTreeMap,
    sync::{
        atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering},
        Arc, Mutex,
    },
};

use super::{
    sync::lock,
    topic::{Topic, TopicState},
};

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
    pub sweeping: AtomicBool,
}

impl Histories {
    /// The place of the next publication kept.
    pub fn next_seq(&self) -> u64 {
        self.seq.fetch_add(1, Ordering::Relaxed)
    }

    /// The bytes kept, all topics together.
    pub fn bytes(&self) -> usize {
        self.bytes.load(Ordering::Relaxed)
    }

    /// Change `topic`'s history with `f` (under its lock: `state`), keeping the
    /// hub's bytes and its index of oldest publications up to date.
    pub fn edit<R>(
        &self,
        topic: &Arc<Topic>,
        state: &mut TopicState,
        f: impl FnOnce(&mut TopicState) -> R,
    ) -> R {
        let (oldest, bytes) = (state.oldest_seq(), state.history_bytes);
        let out = f(state);
        let (now_oldest, now_bytes) = (state.oldest_seq(), state.history_bytes);
        if now_bytes > bytes {
            self.bytes.fetch_add(now_bytes - bytes, Ordering::Relaxed);
        } else if bytes > now_bytes {
            self.bytes.fetch_sub(bytes - now_bytes, Ordering::Relaxed);
        }
        if oldest != now_oldest {
            let mut index = lock(&self.oldest);
            if let Some(seq) = oldest {
                index.remove(&seq);
            }
            if let Some(seq) = now_oldest {
                index.insert(seq, topic.clone());
            }
        }
        out
    }

    /// The hub's oldest publication: its place, and its topic.
    pub fn oldest(&self) -> Option<(u64, Arc<Topic>)> {
        lock(&self.oldest)
            .first_key_value()
            .map(|(seq, t)| (*seq, t.clone()))
    }

    /// The topics with a history.
    pub fn topics(&self) -> Vec<Arc<Topic>> {
        lock(&self.oldest).values().cloned().collect()
    }
}
