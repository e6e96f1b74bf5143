//! The chat's policies: a message rate limit per connection, and nicknames
//! unique per room.

use std::{collections::HashMap, sync::Mutex, time::Instant};

use super::ChatOptions;

/// Nicknames claimed, per room: `name -> user key`. A name is claimed before the
/// join, under this one lock, so two members of a room never share it.
#[derive(Debug, Default)]
pub(super) struct Names(Mutex<HashMap<String, HashMap<String, String>>>);

impl Names {
    /// Claim `name` in `room` for `key`: false when someone else holds it.
    pub(super) fn claim(&self, room: &str, name: &str, key: &str) -> bool {
        let mut rooms = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let names = rooms.entry(room.to_owned()).or_default();
        match names.get(name) {
            Some(holder) => holder == key,
            None => {
                names.insert(name.to_owned(), key.to_owned());
                true
            }
        }
    }

    /// Give `name` in `room` back, if `key` holds it.
    pub(super) fn release(&self, room: &str, name: &str, key: &str) {
        let mut rooms = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(names) = rooms.get_mut(room) {
            if names.get(name).is_some_and(|holder| holder == key) {
                names.remove(name);
            }
            if names.is_empty() {
                rooms.remove(room);
            }
        }
    }
}

/// A token bucket of `burst` messages refilled at `rate` a second; the messages
/// it refuses fill a second bucket of `flood_close`, drained at the same rate,
/// whose overflow closes the connection.
#[derive(Debug)]
pub(super) struct RateLimit {
    tokens: f64,
    strikes: f64,
    at: Instant,
}

#[derive(Debug, PartialEq)]
pub(super) enum Verdict {
    Pass,
    Refuse,
    Close,
}

impl RateLimit {
    pub(super) fn new(options: &ChatOptions, now: Instant) -> RateLimit {
        RateLimit {
            tokens: options.burst,
            strikes: 0.0,
            at: now,
        }
    }

    pub(super) fn check(&mut self, options: &ChatOptions, now: Instant) -> Verdict {
        let refill = now.saturating_duration_since(self.at).as_secs_f64() * options.rate;
        self.at = now;
        self.tokens = (self.tokens + refill).min(options.burst);
        self.strikes = (self.strikes - refill).max(0.0);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            return Verdict::Pass;
        }
        self.strikes += 1.0;
        if self.strikes > options.flood_close {
            Verdict::Close
        } else {
            Verdict::Refuse
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn the_rate_limit_passes_a_burst_refuses_then_closes_and_refills() {
        let options = ChatOptions {
            rate: 10.0,
            burst: 5.0,
            flood_close: 3.0,
            ..ChatOptions::default()
        };
        let t0 = Instant::now();
        let mut limit = RateLimit::new(&options, t0);
        let verdicts: Vec<Verdict> = (0..9).map(|_| limit.check(&options, t0)).collect();
        use Verdict::*;
        assert_eq!(
            verdicts,
            [Pass, Pass, Pass, Pass, Pass, Refuse, Refuse, Refuse, Close]
        );
        // A second later the bucket is full again and the strikes gone.
        let mut limit = RateLimit::new(&options, t0);
        for _ in 0..7 {
            limit.check(&options, t0);
        }
        let t1 = t0 + Duration::from_secs(1);
        let verdicts: Vec<Verdict> = (0..6).map(|_| limit.check(&options, t1)).collect();
        assert_eq!(verdicts, [Pass, Pass, Pass, Pass, Pass, Refuse]);
    }
}
