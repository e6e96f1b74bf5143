//! What the backplane's handle, its supervisor and its task share (across the
//! task's restarts): the state, the counters, the in-flight count, the joins
//! waiting for an answer, and running hub code under `catch_unwind`.

use std::{
    any::Any,
    panic::{catch_unwind, AssertUnwindSafe},
    sync::{
        atomic::{AtomicU64, AtomicU8, AtomicUsize, Ordering},
        Arc, Mutex, MutexGuard,
    },
};

use tokio::sync::Notify;

use super::{
    counters::{add, Counters},
    own::Own,
};
use crate::hub::{
    backplane::{Located, Publication},
    inner::WeakHub,
    types::Position,
};

/// What a locate answers into.
pub(super) type LocateDone = Box<dyn FnOnce(Located) + Send>;

// The backplane's task: connecting, serving, restarting, stopping, ended.
pub(super) const STARTING: u8 = 0;
pub(super) const UP: u8 = 1;
pub(super) const DOWN: u8 = 2;
pub(super) const STOPPING: u8 = 3;
pub(super) const STOPPED: u8 = 4;

/// What the backplane's handle and its task share (across the task's restarts).
pub(super) struct Shared {
    pub counters: Counters,
    pub state: AtomicU8,
    /// Publications queued for the task or on their way to Redis.
    pub in_flight: AtomicUsize,
    /// Of those: sent to Redis, not yet answered.
    pub awaiting: AtomicUsize,
    /// The last sequence number given to a publication of this server's.
    pub seq: AtomicU64,
    /// This server's publications told apart when they come back.
    pub own: Mutex<Own>,
    /// Joins whose answer was dropped with a task (answered from here).
    pub orphans: Mutex<Vec<(String, LocateDone)>>,
    /// Wakes the supervisor's back-off for a stop.
    pub stop: Notify,
    pub hub: WeakHub,
}

pub(super) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A panic's message, for the log.
pub(super) fn panic_message(panic: &(dyn Any + Send)) -> &str {
    panic
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("(not a string)")
}

impl Shared {
    pub fn state(&self) -> u8 {
        self.state.load(Ordering::Acquire)
    }

    pub fn set_state(&self, state: u8) {
        self.state.store(state, Ordering::Release);
    }

    pub fn set_state_unless_stopping(&self, state: u8) {
        let _ = self
            .state
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |s| {
                (s != STOPPING && s != STOPPED).then_some(state)
            });
    }

    /// `from` one of `from` to `to`: false when the state was another.
    pub fn set_state_from(&self, from: &[u8], to: u8) -> bool {
        self.state
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |s| {
                from.contains(&s).then_some(to)
            })
            .is_ok()
    }

    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Acquire)
    }

    /// `n` publications left the in-flight count.
    pub fn release(&self, n: usize) {
        let _ = self
            .in_flight
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |v| {
                Some(v.saturating_sub(n))
            });
    }

    /// Run hub code (a user's renderer or join answer may be in it) so that a
    /// panic in it is counted and logged, not the end of the task.
    pub fn guarded<R>(&self, f: impl FnOnce() -> R) -> Option<R> {
        match catch_unwind(AssertUnwindSafe(f)) {
            Ok(r) => Some(r),
            Err(panic) => {
                add(&self.counters.panics, 1);
                tracing::error!(
                    panic = panic_message(&*panic),
                    "hub code panicked on the redis backplane's task"
                );
                None
            }
        }
    }

    /// Deliver `publication` on this server only.
    pub fn local(&self, publication: Publication) {
        if let Some(hub) = self.hub.upgrade() {
            self.guarded(|| {
                hub.publish_local(&publication.topic, publication.message, publication.except)
            });
        }
    }

    /// Answer a join from here: the topic's local position, not recovered.
    pub fn answer_here(&self, topic: &str, done: LocateDone) {
        let position = self
            .hub
            .upgrade()
            .and_then(|h| h.position(topic))
            .unwrap_or_else(Position::start);
        self.guarded(|| done(Located::new(position, None)));
    }

    /// Answer the joins a task dropped.
    pub fn answer_orphans(&self) {
        let orphans = std::mem::take(&mut *lock(&self.orphans));
        for (topic, done) in orphans {
            self.answer_here(&topic, done);
        }
    }
}

/// A join waiting for its answer. Answered once; dropped unanswered (its task
/// ended), it is kept for the supervisor to answer from here: a join is never
/// left without an answer.
pub(super) struct Pending {
    pub topic: String,
    pub done: Option<LocateDone>,
    pub shared: Arc<Shared>,
}

impl Pending {
    pub fn answer(mut self, located: Located) {
        if let Some(done) = self.done.take() {
            self.shared.guarded(|| done(located));
        }
    }

    pub fn answer_here(mut self) {
        if let Some(done) = self.done.take() {
            self.shared.answer_here(&self.topic, done);
        }
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        if let Some(done) = self.done.take() {
            lock(&self.shared.orphans).push((std::mem::take(&mut self.topic), done));
        }
    }
}
