//! What a shard delivers: a publication framed once, with the slow-consumer
//! policy of its topic and its place in the topic's stream.

use std::sync::Arc;

use crate::{proto::PreparedMessage, settings::SlowConsumer};

/// What a shard needs of a publication: the frame prepared once, the topic's
/// policy for slow subscribers.
#[derive(Debug)]
pub(super) struct Delivery {
    pub(super) prepared: PreparedMessage,
    pub(super) policy: Policy,
    /// The publication's offset (0: unnumbered).
    pub(super) offset: u64,
    /// The epoch of its offset (`None`: unnumbered).
    pub(super) epoch: Option<Arc<str>>,
}

impl Delivery {
    /// The memory it holds: the payload, its frame, and the compressed frame.
    pub(super) fn memory(&self) -> usize {
        let p = &self.prepared;
        p.payload().len() + p.frame().len() + p.compressed_frame().map_or(0, |f| f.len())
    }
}

/// A subscriber's budget, and what happens to it past the budget.
#[derive(Debug, Clone, Copy)]
pub(super) struct Policy {
    pub(super) budget_bytes: usize,
    pub(super) budget_messages: usize,
    pub(super) slow_consumer: SlowConsumer,
    pub(super) close_code: u16,
}

impl Policy {
    /// Whether `other` gives the same budget.
    pub(super) fn same_budget(&self, other: &Policy) -> bool {
        self.budget_bytes == other.budget_bytes && self.budget_messages == other.budget_messages
    }
}
