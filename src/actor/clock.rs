//! The connections' clock: times as microseconds since its epoch, and each
//! thread's deadlines (one per connection with a timer armed, by slab slot). The
//! task that waits for them and tells the connections is the timers' (it needs
//! the slab); this module needs nothing of the actor layer, so that the slab and
//! the connection's state can use it.

use std::{
    cell::RefCell,
    sync::OnceLock,
    task::Waker,
    time::{Duration, Instant},
};

/// A time on the connections' clock: microseconds since its epoch (the first
/// time it was read), 8 bytes where an `Instant` takes 16. [`NEVER`] is none.
pub(crate) type Micros = u64;

/// No time: a deadline not set, a duration not configured.
pub(crate) const NEVER: Micros = u64::MAX;

fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

/// The time now on the connections' clock.
pub(crate) fn now() -> Micros {
    micros(Instant::now().saturating_duration_since(epoch()))
}

/// `d` in microseconds (at least 1: a deadline is always after the time it
/// counts from), [`NEVER`] past what a `u64` holds.
pub(super) fn micros(d: Duration) -> Micros {
    u64::try_from(d.as_micros()).unwrap_or(NEVER)
}

pub(super) fn interval(d: Option<Duration>) -> Micros {
    d.map_or(NEVER, |d| micros(d).max(1))
}

/// The `Instant` of `at` (a far one for a time an `Instant` cannot hold).
pub(super) fn instant(at: Micros) -> Instant {
    let epoch = epoch();
    epoch
        .checked_add(Duration::from_micros(at))
        .or_else(|| epoch.checked_add(Duration::from_secs(365 * 24 * 3600)))
        .unwrap_or(epoch)
}

/// `at + d`, [`NEVER`] if either is.
pub(super) fn after(at: Micros, d: Micros) -> Micros {
    at.saturating_add(d)
}

/// The time from `at` to now.
pub(crate) fn since(at: Micros) -> Duration {
    Duration::from_micros(now().saturating_sub(at))
}

/// Each thread's deadlines, one per connection with a timer armed, by slab slot:
/// a binary heap of slots ordered by deadline, with each slot's position in it,
/// so that a connection's deadline moves in place (no stale entries). One task
/// per thread, the timers' ticker, sleeps until the earliest.
pub(super) struct Clock {
    /// Armed slots and their deadlines, a min-heap by deadline.
    pub(super) heap: Vec<(Micros, u32)>,
    /// Each slot's position in `heap` (`u32::MAX`: not armed).
    pub(super) position: Vec<u32>,
    /// The ticker's waker, while it sleeps.
    pub(super) ticker: Option<Waker>,
    /// A ticker task runs on this thread.
    pub(super) running: bool,
    /// The deadline the ticker sleeps until.
    pub(super) sleeping_until: Micros,
}

const UNARMED: u32 = u32::MAX;

thread_local! {
    pub(super) static CLOCK: RefCell<Clock> = const {
        RefCell::new(Clock {
            heap: Vec::new(),
            position: Vec::new(),
            ticker: None,
            running: false,
            sleeping_until: NEVER,
        })
    };
}

impl Clock {
    fn set(&mut self, i: usize, entry: (Micros, u32)) {
        self.heap[i] = entry;
        self.position[entry.1 as usize] = i as u32;
    }

    fn sift_up(&mut self, mut i: usize) {
        let entry = self.heap[i];
        while i > 0 {
            let parent = (i - 1) / 2;
            if self.heap[parent].0 <= entry.0 {
                break;
            }
            self.set(i, self.heap[parent]);
            i = parent;
        }
        self.set(i, entry);
    }

    fn sift_down(&mut self, mut i: usize) {
        let entry = self.heap[i];
        let len = self.heap.len();
        loop {
            let left = 2 * i + 1;
            if left >= len {
                break;
            }
            let right = left + 1;
            let child = if right < len && self.heap[right].0 < self.heap[left].0 {
                right
            } else {
                left
            };
            if self.heap[child].0 >= entry.0 {
                break;
            }
            self.set(i, self.heap[child]);
            i = child;
        }
        self.set(i, entry);
    }

    pub(super) fn arm(&mut self, slot: u32, at: Micros) {
        let s = slot as usize;
        if self.position.len() <= s {
            self.position.resize(s + 1, UNARMED);
        }
        match self.position[s] {
            UNARMED => {
                self.heap.push((at, slot));
                let last = self.heap.len() - 1;
                self.sift_up(last);
            }
            i => {
                let i = i as usize;
                let was = self.heap[i].0;
                self.heap[i].0 = at;
                if at < was {
                    self.sift_up(i);
                } else {
                    self.sift_down(i);
                }
            }
        }
    }

    fn remove_at(&mut self, i: usize) -> (Micros, u32) {
        let removed = self.heap.swap_remove(i);
        self.position[removed.1 as usize] = UNARMED;
        if i < self.heap.len() {
            let moved = self.heap[i];
            self.set(i, moved);
            if moved.0 < removed.0 {
                self.sift_up(i);
            } else {
                self.sift_down(i);
            }
        }
        removed
    }

    fn disarm(&mut self, slot: u32) {
        match self.position.get(slot as usize) {
            Some(&i) if i != UNARMED => {
                self.remove_at(i as usize);
            }
            _ => {}
        }
        if self.heap.is_empty() && self.heap.capacity() > 64 {
            // No deadline left on this thread: give the memory back.
            self.heap = Vec::new();
            self.position = Vec::new();
        }
    }

    /// The slot of a deadline at or before `now`, taken off.
    pub(super) fn pop_due(&mut self, now: Micros) -> Option<u32> {
        match self.heap.first() {
            Some(&(at, _)) if at <= now => Some(self.remove_at(0).1),
            _ => None,
        }
    }
}

/// Arm the deadline of the connection in `slot` of this thread's slab at `at`
/// (moving it if one was armed); true when no ticker runs on this thread and one
/// must be started.
pub(super) fn arm(slot: usize, at: Micros) -> bool {
    let Ok(slot) = u32::try_from(slot) else {
        return false;
    };
    CLOCK.with(|clock| {
        let mut clock = clock.borrow_mut();
        clock.arm(slot, at);
        if at >= clock.sleeping_until {
            return false;
        }
        clock.sleeping_until = at;
        if let Some(ticker) = clock.ticker.take() {
            ticker.wake();
        }
        !std::mem::replace(&mut clock.running, true)
    })
}

/// Take the deadline of the connection in `slot` off this thread's clock (the
/// connection left the slab).
pub(crate) fn disarm(slot: usize) {
    let Ok(slot) = u32::try_from(slot) else {
        return;
    };
    let _ = CLOCK.try_with(|clock| clock.borrow_mut().disarm(slot));
}
