//! This server's own publications, told apart when they come back from Redis,
//! so that none is delivered here twice.
//!
//! A publication Redis did not answer (its connection closed first, or Redis
//! answered an error) is delivered on this server in its place. But Redis may
//! have carried it out before the connection went (or as the client gave up on
//! it: see [`publish`](super::publish)): then it comes back through
//! the subscription (before or after the failed answer is known) or, after a
//! reconnection, from the topic's stream. Each publication carries its origin's
//! sequence number (the envelope's `SEQ`), and this table remembers:
//!
//! - the publications sent and not answered yet, and whether each came back
//!   already: one that came back is not delivered here again when its answer
//!   fails;
//! - the last [`MAX_PLACED`] delivered here in their place: one of these that
//!   comes back after all is not delivered again.
//!
//! Both are bounded: the first by the backplane's `max_in_flight` (and emptied
//! when its task starts again: what was on its way then is abandoned, never
//! delivered here), the second by [`MAX_PLACED`] (older ones are forgotten: one
//! of those coming back after [`MAX_PLACED`] newer failures is delivered twice).

use std::collections::{HashMap, VecDeque};

/// How many publications delivered here in their place are remembered.
pub(super) const MAX_PLACED: usize = 4096;

/// What became of a publication sent to Redis.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Answer {
    /// Redis took it (answered it), or its fate is unknown (the answers'
    /// task ended): not delivered here.
    Taken,
    /// Redis did not answer it (its connection closed first, or it was given
    /// up on unwritten), or answered an error.
    NotTaken,
}

/// What to do with a publication Redis did not take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Place {
    /// Deliver it here, in its place.
    Here,
    /// It came back from Redis already (Redis carried it out): delivered.
    CameBack,
    /// It was delivered here in its place before its answer came
    /// ([`Own::place`]).
    Placed,
}

/// The table (see the module docs).
#[derive(Debug, Default)]
pub(super) struct Own {
    /// Sent and not answered: whether it came back already.
    open: HashMap<u64, bool>,
    /// Delivered here in their place, oldest first (their numbers go up: the
    /// answers are taken in the publications' order).
    placed: VecDeque<u64>,
}

impl Own {
    /// `seq` is on its way to Redis.
    pub fn sent(&mut self, seq: u64) {
        self.open.insert(seq, false);
    }

    /// `seq` came back from Redis (through the subscription, or from the
    /// stream): whether to deliver it.
    pub fn came_back(&mut self, seq: u64) -> bool {
        if let Some(back) = self.open.get_mut(&seq) {
            *back = true;
            return true;
        }
        if let Ok(at) = self.placed.binary_search(&seq) {
            self.placed.remove(at);
            return false;
        }
        true
    }

    /// `seq`, not answered yet, is delivered here in its place now (its
    /// connection is out): true, unless it came back already. A copy that
    /// comes back later is not delivered.
    pub fn place(&mut self, seq: u64) -> bool {
        match self.open.remove(&seq) {
            Some(false) => {
                self.remember(seq);
                true
            }
            Some(true) => {
                // Came back: nothing more to deliver, whatever its answer.
                false
            }
            None => false,
        }
    }

    /// `seq`'s answer; for one not taken, where it is delivered.
    pub fn answered(&mut self, seq: u64, answer: Answer) -> Place {
        let Some(back) = self.open.remove(&seq) else {
            return Place::Placed;
        };
        if answer == Answer::Taken || back {
            return Place::CameBack;
        }
        self.remember(seq);
        Place::Here
    }

    /// `seq` is delivered here in its place.
    fn remember(&mut self, seq: u64) {
        if self.placed.len() == MAX_PLACED {
            self.placed.pop_front();
        }
        // In order nearly always; a number out of order is put in its place.
        let at = self.placed.partition_point(|&s| s < seq);
        self.placed.insert(at, seq);
    }

    /// The backplane's task starts again: what was on its way is abandoned.
    pub fn restart(&mut self) {
        self.open.clear();
    }

    /// Publications remembered (sent, placed).
    #[cfg(test)]
    pub fn len(&self) -> (usize, usize) {
        (self.open.len(), self.placed.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_that_came_back_before_its_failed_answer_is_not_delivered_here() {
        let mut own = Own::default();
        own.sent(1);
        assert!(own.came_back(1));
        assert_eq!(own.answered(1, Answer::NotTaken), Place::CameBack);
        assert_eq!(own.len(), (0, 0));
    }

    #[test]
    fn one_delivered_here_is_not_delivered_again_when_it_comes_back_after() {
        let mut own = Own::default();
        own.sent(1);
        own.sent(2);
        assert_eq!(own.answered(1, Answer::NotTaken), Place::Here);
        assert_eq!(own.answered(2, Answer::NotTaken), Place::Here);
        assert!(!own.came_back(2));
        assert!(!own.came_back(1));
        assert_eq!(own.len(), (0, 0));
        // Once only: a third coming (it cannot, but) is delivered.
        assert!(own.came_back(1));
    }

    #[test]
    fn one_taken_is_delivered_once_whichever_comes_first() {
        let mut own = Own::default();
        own.sent(1);
        own.sent(2);
        assert!(own.came_back(1));
        assert_eq!(own.answered(1, Answer::Taken), Place::CameBack);
        assert_eq!(own.answered(2, Answer::Taken), Place::CameBack);
        assert!(own.came_back(2));
        assert_eq!(own.len(), (0, 0));
    }

    #[test]
    fn one_placed_before_its_answer_is_delivered_once_whatever_comes_after() {
        let mut own = Own::default();
        own.sent(1);
        own.sent(2);
        own.sent(3);
        assert!(own.came_back(3));
        assert!(own.place(1));
        assert!(own.place(2));
        assert!(!own.place(3), "it came back already");
        // Their answers change nothing.
        assert_eq!(own.answered(1, Answer::Taken), Place::Placed);
        assert_eq!(own.answered(2, Answer::NotTaken), Place::Placed);
        assert_eq!(own.answered(3, Answer::Taken), Place::Placed);
        // A copy of 1 comes back: not delivered.
        assert!(!own.came_back(1));
        assert_eq!(own.len(), (0, 1));
    }

    #[test]
    fn the_placed_are_bounded_and_the_oldest_forgotten() {
        let mut own = Own::default();
        for seq in 1..=MAX_PLACED as u64 + 10 {
            own.sent(seq);
            assert_eq!(own.answered(seq, Answer::NotTaken), Place::Here);
        }
        assert_eq!(own.len(), (0, MAX_PLACED));
        // Forgotten: delivered (twice, as counted in the docs).
        assert!(own.came_back(10));
        assert!(!own.came_back(11));
        assert!(!own.came_back(MAX_PLACED as u64 + 10));
    }

    #[test]
    fn a_restart_forgets_what_was_on_its_way_but_not_the_placed() {
        let mut own = Own::default();
        own.sent(1);
        own.sent(2);
        assert_eq!(own.answered(1, Answer::NotTaken), Place::Here);
        own.restart();
        assert_eq!(own.len(), (0, 1));
        assert!(own.came_back(2));
        assert!(!own.came_back(1));
    }
}
