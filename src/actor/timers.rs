//! The connection's timers: keep-alive ping, idle timeout, close timeout.
//!
//! Ready-state and the message limit are enforced by the core
//! ([`Connection`](crate::proto::Connection)); the timers add what needs a clock.

use std::{
    future::Future,
    pin::Pin,
    task::{Context, Poll},
    time::Duration,
};

use tokio::time::Sleep;

use super::{
    clock::{after, disarm, instant, interval, now, Micros, CLOCK, NEVER},
    owned::Owned,
    slab, Error,
};
use crate::settings::ConnectionSettings;

/// What the timers decided when one fired.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Nothing to do.
    Quiet,
    /// It changed the core (queued a ping, failed the connection).
    Acted,
    /// The closing handshake timed out: end the transport.
    CloseTimedOut,
}

/// A connection's timers: its next deadline is armed on its thread's [`Clock`](super::clock::Clock),
/// which marks the connection's state and wakes its driver when it comes. No
/// timer of the runtime's per connection: an idle connection holds its deadline
/// in the clock's table (20 bytes) rather than a `Sleep` (112, in a box of its
/// own).
#[derive(Debug)]
pub(crate) struct Timers {
    ping_interval: Micros,
    idle_timeout: Micros,
    close_timeout: Micros,
    /// When the peer was last known active (see [`activity`](Self::activity)).
    last_activity: Micros,
    last_ping: Micros,
    close_deadline: Micros,
    /// Something arrived since the timer last fired (while `rechecking`).
    active: bool,
    /// The peer is active: reads only set `active`, and the timer fires one
    /// [`step`](Self::step) after `last_activity` to learn whether it went quiet.
    rechecking: bool,
    /// `rechecking` began: `watch` points the timer at the step.
    retarget: bool,
    close_timed_out: bool,
    /// Whether a deadline is armed on the clock.
    armed: bool,
}

impl Timers {
    /// A connection's timers (on its clock, they are named by the connection's
    /// slot in its thread's slab).
    pub fn new(settings: &ConnectionSettings) -> Self {
        let now = now();
        Timers {
            ping_interval: interval(settings.ping_interval),
            idle_timeout: interval(settings.idle_timeout),
            close_timeout: interval(Some(settings.close_timeout)),
            last_activity: now,
            last_ping: now,
            close_deadline: NEVER,
            active: false,
            rechecking: false,
            retarget: false,
            close_timed_out: false,
            armed: false,
        }
    }

    /// Something arrived from the peer. The first read after a quiet spell reads
    /// the clock and points the timer one [`step`](Self::step) ahead; the reads
    /// after it only set a flag, which the timer, when it fires, turns into "active
    /// now" (and looks again a step later) or, unset, into "quiet since the last
    /// look". So the keep-alive ping and the idle timeout never come early and at
    /// most a step (an eighth of the shorter of the two) late, with no clock read
    /// per read; a busy connection's timer fires eight times per interval, an idle
    /// one's no more often than its deadlines.
    #[inline]
    pub fn activity(&mut self) {
        if self.rechecking {
            self.active = true;
        } else {
            self.became_active();
        }
    }

    #[cold]
    fn became_active(&mut self) {
        self.last_activity = now();
        if self.step().is_some() {
            self.rechecking = true;
            // `watch`, right after, points the timer at the step.
            self.retarget = true;
        }
    }

    /// How often the timer looks again while the peer is active.
    fn step(&self) -> Option<Micros> {
        let shortest = self.ping_interval.min(self.idle_timeout);
        (shortest != NEVER).then(|| (shortest / 8).max(1))
    }

    fn next_deadline(&self, open: bool) -> Option<Micros> {
        let mut next = if self.close_timed_out {
            NEVER
        } else {
            self.close_deadline
        };
        if open {
            let ping = after(self.last_activity.max(self.last_ping), self.ping_interval);
            let idle = after(self.last_activity, self.idle_timeout);
            let recheck = match self.step() {
                Some(step) if self.rechecking => after(self.last_activity, step),
                _ => NEVER,
            };
            next = next.min(ping).min(idle).min(recheck);
        }
        (next != NEVER).then_some(next)
    }

    /// Point the timer at the next deadline (one that has passed already fires at
    /// once).
    fn rearm(&mut self, owned: &Owned) {
        self.retarget = false;
        let slot = owned.shared().slot();
        match self.next_deadline(owned.is_open()) {
            None => {
                if std::mem::take(&mut self.armed) {
                    disarm(slot);
                }
            }
            Some(at) => {
                self.armed = true;
                arm(slot, at);
            }
        }
    }

    /// Start the timers (once the core is open) and arm the close timer when the core
    /// waits for the peer to close. Cheap when there is nothing new.
    #[inline]
    pub fn watch(&mut self, owned: &Owned) {
        let open = owned.is_open();
        let arm_close = self.close_deadline == NEVER && owned.close_expected();
        if arm_close {
            self.close_deadline = after(now(), self.close_timeout);
        }
        if arm_close || self.retarget || (!self.armed && open) {
            self.rearm(owned);
        }
    }

    /// When the timer fired, apply whatever is due to the connection.
    #[inline]
    pub fn poll(&mut self, owned: &mut Owned) -> Verdict {
        if !owned.take_timer_due() {
            // Not due: the clock wakes the driver when it is.
            return Verdict::Quiet;
        }
        self.fired(owned)
    }

    #[inline(never)]
    fn fired(&mut self, owned: &mut Owned) -> Verdict {
        // The clock took the deadline off when it fired.
        self.armed = false;
        let mut verdict = Verdict::Quiet;
        let now = now();
        if self.rechecking {
            if std::mem::take(&mut self.active) {
                self.last_activity = now;
            } else {
                // Quiet since the last look: `last_activity` is at most a step
                // after the last read; the next read reads the clock again.
                self.rechecking = false;
            }
        }
        let open = owned.is_open();
        if !self.close_timed_out && now >= self.close_deadline {
            self.close_timed_out = true;
            verdict = Verdict::CloseTimedOut;
        } else if open && now >= after(self.last_activity, self.idle_timeout) {
            // Nothing arrived, not even the Pong of our keep-alive ping.
            let timeout = Duration::from_micros(self.idle_timeout);
            owned.fail(Error::IdleTimeout(timeout));
            verdict = Verdict::Acted;
        } else if open && now >= after(self.last_activity.max(self.last_ping), self.ping_interval) {
            // A keep-alive ping; its Pong (any frame, really) counts as activity.
            if owned.keepalive_ping(now) {
                verdict = Verdict::Acted;
            }
            self.last_ping = now;
        }
        self.rearm(owned);
        verdict
    }
}

/// Arm the deadline of the connection in `slot` at `at`, starting this thread's
/// ticker if none runs.
fn arm(slot: usize, at: Micros) {
    if super::clock::arm(slot, at) {
        tokio::task::spawn_local(Ticker {
            sleep: None,
            done: false,
        });
    }
}

/// The thread's timer task: sleeps until the earliest deadline of the thread's
/// connections, and tells each connection whose deadline came (it marks its state
/// and wakes its driver). It ends when no deadline is left, and is started again
/// by the next one.
struct Ticker {
    /// Made on the first wait.
    sleep: Option<Pin<Box<Sleep>>>,
    done: bool,
}

impl Future for Ticker {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        loop {
            let now = now();
            while let Some(slot) = CLOCK.with(|clock| clock.borrow_mut().pop_due(now)) {
                if !slab::timer_fired(slot as usize) {
                    // The connection's state is in use (it never is between
                    // tasks): look again in a millisecond.
                    CLOCK.with(|clock| clock.borrow_mut().arm(slot, now + 1000));
                }
            }
            let next = CLOCK.with(|clock| {
                let mut clock = clock.borrow_mut();
                match clock.heap.first() {
                    None => {
                        clock.running = false;
                        clock.ticker = None;
                        clock.sleeping_until = NEVER;
                        None
                    }
                    Some(&(at, _)) => {
                        clock.sleeping_until = at;
                        clock.ticker = Some(cx.waker().clone());
                        Some(at)
                    }
                }
            });
            let Some(next) = next else {
                this.done = true;
                return Poll::Ready(());
            };
            let deadline = tokio::time::Instant::from_std(instant(next));
            let sleep = match &mut this.sleep {
                Some(sleep) => {
                    sleep.as_mut().reset(deadline);
                    sleep
                }
                None => this
                    .sleep
                    .insert(Box::pin(tokio::time::sleep_until(deadline))),
            };
            if sleep.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
        }
    }
}

impl Drop for Ticker {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        // Dropped with its runtime: the next deadline armed starts another.
        let _ = CLOCK.try_with(|clock| {
            let mut clock = clock.borrow_mut();
            clock.running = false;
            clock.ticker = None;
            clock.sleeping_until = NEVER;
        });
    }
}
