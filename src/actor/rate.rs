//! A connection's inbound rate limit ([`RateLimit`]): two token buckets (messages,
//! bytes) that the driver charges for every message the peer sends, and the pause
//! that [`OverLimit::Pause`] brings.
//!
//! The driver holds one only when a limit is set, so a connection without one pays
//! a single branch per message.

use std::{
    future::Future,
    pin::Pin,
    task::Context,
    time::{Duration, Instant},
};

use tokio::time::Sleep;

use crate::settings::{OverLimit, RateLimit};

/// One token bucket: up to `burst` tokens, refilled at `rate` a second.
#[derive(Debug)]
struct Bucket {
    /// Tokens a second; 0: this bucket is off.
    rate: f64,
    burst: f64,
    /// Below zero after a message larger than the burst: a debt.
    tokens: f64,
}

impl Bucket {
    fn new(rate: u64, burst: u64) -> Self {
        let burst = if burst == 0 { rate } else { burst } as f64;
        Bucket {
            rate: rate as f64,
            burst,
            tokens: burst,
        }
    }

    fn refill(&mut self, secs: f64) {
        if self.rate > 0.0 {
            self.tokens = (self.tokens + secs * self.rate).min(self.burst);
        }
    }

    /// Whether a message costing `cost` finds too few tokens (one larger than the
    /// burst needs a full bucket).
    fn short(&self, cost: f64) -> bool {
        self.rate > 0.0 && self.tokens < cost.min(self.burst)
    }

    fn take(&mut self, cost: f64) {
        if self.rate > 0.0 {
            self.tokens -= cost;
        }
    }

    /// How long until the tokens are back to zero.
    fn wait(&self) -> Duration {
        if self.rate > 0.0 && self.tokens < 0.0 {
            Duration::from_secs_f64(-self.tokens / self.rate)
        } else {
            Duration::ZERO
        }
    }
}

/// What the limit says of a message.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Verdict {
    /// Within the limit: hand it over.
    Within,
    /// Over the limit, which closes: fail the connection with 1008, drop the
    /// message.
    Close,
    /// The limit closed the connection already: drop the message.
    Drop,
    /// Hand it over, then read nothing for this long.
    Pause(Duration),
}

/// A connection's inbound limit: its buckets, and the pause in progress.
#[derive(Debug)]
pub(crate) struct Limiter {
    messages: Bucket,
    bytes: Bucket,
    /// When the buckets were last refilled.
    last: Instant,
    over: OverLimit,
    /// The limit closed the connection.
    tripped: bool,
    /// Reading waits for this, while paused (made on the first pause).
    resume: Option<Pin<Box<Sleep>>>,
    paused: bool,
}

impl Limiter {
    /// The limiter for `limit`, or `None` when it limits nothing.
    pub fn new(limit: Option<&crate::settings::RateLimit>) -> Option<Box<Limiter>> {
        let limit: &RateLimit = limit.filter(|l| !l.is_off())?;
        Some(Box::new(Limiter {
            messages: Bucket::new(
                limit.messages_per_second.into(),
                limit.burst_messages.into(),
            ),
            bytes: Bucket::new(limit.bytes_per_second, limit.burst_bytes),
            last: Instant::now(),
            over: limit.over,
            tripped: false,
            resume: None,
            paused: false,
        }))
    }

    /// Charge a message of `len` payload bytes, arrived at `now`.
    pub fn charge(&mut self, len: usize, now: Instant) -> Verdict {
        if self.tripped {
            return Verdict::Drop;
        }
        let secs = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.messages.refill(secs);
        self.bytes.refill(secs);
        let len = len as f64;
        if self.over == OverLimit::Close && (self.messages.short(1.0) || self.bytes.short(len)) {
            self.tripped = true;
            crate::metrics::rate_limited();
            return Verdict::Close;
        }
        self.messages.take(1.0);
        self.bytes.take(len);
        let wait = self.messages.wait().max(self.bytes.wait());
        // Closing: a debt (a message larger than the burst) is paid by the next
        // message going over.
        if wait.is_zero() || self.over == OverLimit::Close {
            Verdict::Within
        } else {
            crate::metrics::rate_limited();
            Verdict::Pause(wait)
        }
    }

    /// Pause reading for `wait`; `cx` is woken when it is over.
    pub fn pause(&mut self, wait: Duration, cx: &mut Context<'_>) {
        let at = tokio::time::Instant::now() + wait;
        let sleep = self
            .resume
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(at)));
        sleep.as_mut().reset(at);
        self.paused = sleep.as_mut().poll(cx).is_pending();
    }

    pub fn is_paused(&self) -> bool {
        self.paused
    }

    /// Whether the pause is over (true when there was none).
    pub fn poll_resume(&mut self, cx: &mut Context<'_>) -> bool {
        if self.paused {
            if let Some(sleep) = &mut self.resume {
                self.paused = sleep.as_mut().poll(cx).is_pending();
            }
        }
        !self.paused
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limiter(limit: RateLimit) -> (Box<Limiter>, Instant) {
        let limiter = Limiter::new(Some(&limit)).unwrap();
        let start = limiter.last;
        (limiter, start)
    }

    #[test]
    fn off_unless_a_rate_is_set() {
        assert!(Limiter::new(None).is_none());
        assert!(Limiter::new(Some(&RateLimit::messages(0))).is_none());
        assert!(Limiter::new(Some(&RateLimit::default())).is_some());
    }

    #[test]
    fn a_flood_is_closed_on_the_first_message_past_the_burst() {
        let (mut l, t) = limiter(RateLimit::messages(10).burst(5, 0));
        let verdicts: Vec<Verdict> = (0..8).map(|_| l.charge(3, t)).collect();
        assert_eq!(
            verdicts,
            [
                Verdict::Within,
                Verdict::Within,
                Verdict::Within,
                Verdict::Within,
                Verdict::Within,
                Verdict::Close,
                Verdict::Drop,
                Verdict::Drop,
            ]
        );
    }

    #[test]
    fn a_peer_under_the_rate_is_never_touched() {
        // 10 a second with a burst of 1: a message every 100 ms, for 1,000
        // messages; then 20 a second on average, in pairs 100 ms apart, with a
        // burst of 2.
        let (mut l, t) = limiter(RateLimit::messages(10).burst(1, 0).bytes(1000));
        for i in 1..=1000u32 {
            let now = t + Duration::from_millis(100) * i;
            assert_eq!(l.charge(100, now), Verdict::Within, "message {i}");
        }
        let (mut l, t) = limiter(RateLimit::messages(20).burst(2, 0));
        for i in 1..=500u32 {
            let now = t + Duration::from_millis(100) * i;
            assert_eq!(
                (l.charge(0, now), l.charge(0, now)),
                (Verdict::Within, Verdict::Within)
            );
        }
    }

    #[test]
    fn bytes_are_limited_too_and_a_large_message_needs_a_full_bucket() {
        let (mut l, t) = limiter(RateLimit::messages(0).bytes(1000).burst(0, 500));
        assert_eq!(l.charge(400, t), Verdict::Within);
        assert_eq!(l.charge(200, t), Verdict::Close, "100 left, 200 asked");
        let (mut l, t) = limiter(RateLimit::messages(0).bytes(1000).burst(0, 500));
        assert_eq!(l.charge(2000, t), Verdict::Within, "a full bucket takes it");
        // 1,500 in debt: back to 500 after 2 s.
        let later = t + Duration::from_millis(1999);
        assert_eq!(l.charge(500, later), Verdict::Close);
    }

    #[test]
    fn pause_hands_over_and_waits_out_the_debt() {
        let (mut l, t) = limiter(RateLimit::messages(10).burst(2, 0).pause());
        assert_eq!(l.charge(0, t), Verdict::Within);
        assert_eq!(l.charge(0, t), Verdict::Within);
        assert_eq!(l.charge(0, t), Verdict::Pause(Duration::from_millis(100)));
        // After the pause, one more token came back, spent at once.
        let after = t + Duration::from_millis(100);
        assert_eq!(
            l.charge(0, after),
            Verdict::Pause(Duration::from_millis(100))
        );
        let (mut l, t) = limiter(RateLimit::messages(0).bytes(1000).pause());
        assert_eq!(
            l.charge(1500, t),
            Verdict::Pause(Duration::from_millis(500))
        );
    }
}
