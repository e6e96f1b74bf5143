//! The connection's timers: keep-alive ping, idle timeout, close timeout.
//!
//! Ready-state and the message limit are enforced by the core
//! ([`Connection`](crate::proto::Connection)); the timers add what needs a clock.

use std::{
    future::Future,
    pin::Pin,
    task::Context,
    time::{Duration, Instant},
};

use tokio::time::Sleep;

use super::{owned::Owned, Error};
use crate::settings::ConnectionSettings;

/// `at + d`, or as far after `at` as an `Instant` goes (a duration from the
/// configuration never makes a deadline overflow).
fn after(at: Instant, d: Duration) -> Instant {
    at.checked_add(d)
        .or_else(|| at.checked_add(Duration::from_secs(365 * 24 * 3600)))
        .unwrap_or(at)
}

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

/// A connection's timers, in one `Sleep` pointed at the next deadline.
#[derive(Debug)]
pub(crate) struct Timers {
    ping_interval: Option<Duration>,
    idle_timeout: Option<Duration>,
    close_timeout: Duration,
    /// When the peer was last known active (see [`activity`](Self::activity)).
    last_activity: Instant,
    /// Something arrived since the timer last fired (while `rechecking`).
    active: bool,
    /// The peer is active: reads only set `active`, and the timer fires one
    /// [`step`](Self::step) after `last_activity` to learn whether it went quiet.
    rechecking: bool,
    /// `rechecking` began: `watch` points the timer at the step.
    retarget: bool,
    last_ping: Instant,
    close_deadline: Option<Instant>,
    close_timed_out: bool,
    /// Whether `sleep` holds a deadline worth waiting for.
    armed: bool,
    sleep: Pin<Box<Sleep>>,
}

impl Timers {
    pub fn new(settings: &ConnectionSettings) -> Self {
        let now = Instant::now();
        Timers {
            ping_interval: settings.ping_interval,
            idle_timeout: settings.idle_timeout,
            close_timeout: settings.close_timeout,
            last_activity: now,
            active: false,
            rechecking: false,
            retarget: false,
            last_ping: now,
            close_deadline: None,
            close_timed_out: false,
            armed: false,
            sleep: Box::pin(tokio::time::sleep_until(now.into())),
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
        self.last_activity = Instant::now();
        if self.step().is_some() {
            self.rechecking = true;
            // `watch`, right after, points the timer at the step.
            self.retarget = true;
        }
    }

    /// How often the timer looks again while the peer is active.
    fn step(&self) -> Option<Duration> {
        let shortest = match (self.ping_interval, self.idle_timeout) {
            (Some(a), Some(b)) => a.min(b),
            (a, b) => a.or(b)?,
        };
        Some(shortest / 8)
    }

    fn next_deadline(&self, open: bool) -> Option<Instant> {
        let mut next = self.close_deadline.filter(|_| !self.close_timed_out);
        if open {
            let ping = self
                .ping_interval
                .map(|i| after(self.last_activity.max(self.last_ping), i));
            let idle = self.idle_timeout.map(|t| after(self.last_activity, t));
            let recheck = self
                .step()
                .filter(|_| self.rechecking)
                .map(|step| after(self.last_activity, step));
            next = [next, ping, idle, recheck].into_iter().flatten().min();
        }
        next
    }

    /// Point the timer at the next deadline; true when that deadline has passed
    /// already (the caller polls again).
    fn rearm(&mut self, open: bool, cx: &mut Context<'_>) -> bool {
        self.retarget = false;
        match self.next_deadline(open) {
            None => {
                self.armed = false;
                false
            }
            Some(at) => {
                self.armed = true;
                self.sleep.as_mut().reset(at.into());
                self.sleep.as_mut().poll(cx).is_ready()
            }
        }
    }

    /// Start the timers (once the core is open) and arm the close timer when the core
    /// waits for the peer to close. Cheap when there is nothing new.
    #[inline]
    pub fn watch(&mut self, owned: &Owned, cx: &mut Context<'_>) {
        let open = owned.is_open();
        let arm_close = self.close_deadline.is_none() && owned.close_expected();
        if arm_close {
            self.close_deadline = Some(after(Instant::now(), self.close_timeout));
        }
        if (arm_close || self.retarget || (!self.armed && open)) && self.rearm(open, cx) {
            cx.waker().wake_by_ref();
        }
    }

    /// Poll the timer; when it fires, apply whatever is due to the connection.
    #[inline]
    pub fn poll(&mut self, owned: &mut Owned, cx: &mut Context<'_>) -> Verdict {
        if !self.armed || !self.sleep.is_elapsed() {
            // Not due (the timer driver marks the entry when it fires, so this reads
            // no clock): the timer's waker, registered when it was armed, wakes us.
            return Verdict::Quiet;
        }
        self.fired(owned, cx)
    }

    #[inline(never)]
    fn fired(&mut self, owned: &mut Owned, cx: &mut Context<'_>) -> Verdict {
        let mut verdict = Verdict::Quiet;
        while self.armed && self.sleep.as_mut().poll(cx).is_ready() {
            let now = Instant::now();
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
            if !self.close_timed_out && self.close_deadline.is_some_and(|d| now >= d) {
                self.close_timed_out = true;
                verdict = Verdict::CloseTimedOut;
            } else if let Some(t) = self
                .idle_timeout
                .filter(|t| open && now >= after(self.last_activity, *t))
            {
                // Nothing arrived, not even the Pong of our keep-alive ping.
                owned.fail(Error::IdleTimeout(t));
                verdict = Verdict::Acted;
            } else if let Some(interval) = self.ping_interval.filter(|_| open) {
                if now >= after(self.last_activity.max(self.last_ping), interval) {
                    // A keep-alive ping; its Pong (any frame, really) counts as
                    // activity.
                    if owned.keepalive_ping(now) && verdict == Verdict::Quiet {
                        verdict = Verdict::Acted;
                    }
                    self.last_ping = now;
                }
            }
            let open = owned.is_open();
            if !self.rearm(open, cx) {
                break;
            }
        }
        verdict
    }
}
