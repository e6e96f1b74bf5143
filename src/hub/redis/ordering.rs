//! Each subscribed topic's publications, delivered once and in offset order.
//!
//! The subscription brings a topic's publications in order; a jump in offsets (the
//! subscription fell behind, or was cut and made again) has what went by unseen
//! taken from the topic's stream ([`FILL`](super::scripts::FILL)) and delivered
//! in its place, with what arrives meanwhile held back (at most `max_held`; past
//! it the fill is given up). What the stream no longer has is counted as lost
//! when the publication after it is delivered. A publication at or before
//! the last delivered of its epoch is a copy (the channel's of a filled one):
//! skipped. A publication in another epoch (the topic's numbering started again
//! in Redis) is delivered and counted as a reset, after the ones of that epoch
//! before it, taken from the stream when it is not the epoch's first; the last few epochs are each
//! followed (a late publication of the one before, from a fill or a connection
//! that outlived it, is delivered in its place, and never repeats one of the
//! new epoch's). A plain struct, without I/O.
//!
//! Only topics the subscription state machine wants are fed here: a late message
//! for a topic no longer wanted never re-creates its state.

use std::collections::HashMap;

use super::reply::{Envelope, Fill};
use crate::hub::types::Position;

/// How many epochs of a topic are followed at once.
const EPOCHS: usize = 4;

#[derive(Debug, Default)]
struct Topic {
    /// The last publication delivered (in the epoch delivered last).
    delivered: Option<Position>,
    /// The last delivered of the epochs before, most recent last.
    earlier: Vec<Position>,
    /// Where the topic stood when its presence was read (after the subscription
    /// was made): where a fill starts from before anything was delivered.
    baseline: Option<Position>,
    /// A fill on its way: its number and what came meanwhile.
    filling: Option<(u64, Vec<Envelope>)>,
    /// How far the last fill looked: what it did not find up to there is gone
    /// (a later jump within it is counted, not asked for again).
    checked: Option<Position>,
}

/// Whether a join may be answered ([`Ordering::catch_up`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Caught {
    /// Now, at its position.
    Up,
    /// Once more is delivered (or a fill settles it).
    Behind,
    /// Now, at this position (not recovered): the join's lies before it.
    At(Position),
}

/// A fill to ask Redis for: the topic's publications after `since`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct FillRequest {
    pub number: u64,
    pub since: Option<Position>,
}

/// What a step found: publications to deliver now (in order), a fill to ask for,
/// and counts.
#[derive(Debug, Default)]
pub(super) struct Outcome {
    pub deliver: Vec<Envelope>,
    pub fill: Option<FillRequest>,
    /// Publications known missed and not recoverable.
    pub lost: u64,
    /// Publications taken from the stream.
    pub filled: u64,
    /// Times the numbering started again.
    pub resets: u64,
    /// Copies skipped.
    pub duplicates: u64,
}

/// The order of every subscribed topic (see the module docs).
#[derive(Debug)]
pub(super) struct Ordering {
    topics: HashMap<String, Topic>,
    fills: u64,
    max_held: usize,
}

impl Ordering {
    pub fn new(max_held: usize) -> Ordering {
        Ordering {
            topics: HashMap::new(),
            fills: 0,
            max_held: max_held.max(1),
        }
    }

    /// A publication for `topic` from the subscription.
    pub fn message(&mut self, topic: &str, envelope: Envelope) -> Outcome {
        let mut out = Outcome::default();
        let max_held = self.max_held;
        if !self.topics.contains_key(topic) {
            self.topics.insert(topic.to_owned(), Topic::default());
        }
        let Some(t) = self.topics.get_mut(topic) else {
            return out;
        };
        if let Some((_, held)) = &mut t.filling {
            if held.len() < max_held {
                held.push(envelope);
                return out;
            }
            // The fill takes too long: given up, what was held delivered (the
            // gap stays, counted).
            let (_, held) = t.filling.take().unwrap_or_default();
            for e in held.into_iter().chain(std::iter::once(envelope)) {
                deliver(t, e, &mut out);
            }
            return out;
        }
        let p = &envelope.position;
        // From the last delivered of its epoch, or, for an epoch not delivered
        // yet, from where the topic stood when the subscription was made.
        let from = t
            .last_of(&p.epoch)
            .or_else(|| t.baseline.as_ref().filter(|b| b.epoch == p.epoch))
            .cloned();
        let gap = match &from {
            Some(at) => at.offset.checked_add(1).is_some_and(|next| p.offset > next),
            // A new epoch after another's publications were delivered: what
            // came in it before this one (while the subscription was cut) is
            // asked for too (a fill from another epoch's position brings all
            // of the current one).
            None => t.delivered.is_some() && p.offset > 1,
        } && !t
            .checked
            .as_ref()
            .is_some_and(|c| c.epoch == p.epoch && p.offset.saturating_sub(1) <= c.offset);
        if gap {
            self.fills += 1;
            out.fill = Some(FillRequest {
                number: self.fills,
                since: from.or_else(|| t.delivered.clone()),
            });
            t.filling = Some((self.fills, vec![envelope]));
            return out;
        }
        deliver(t, envelope, &mut out);
        out
    }

    /// The subscription of `topic` was made again (or fell behind): what it may
    /// have missed is asked for, from the last delivered (or the baseline).
    pub fn missed(&mut self, topic: &str) -> Option<FillRequest> {
        let t = self.topics.get_mut(topic)?;
        if t.filling.is_some() {
            return None;
        }
        let since = t.delivered.clone().or_else(|| t.baseline.clone())?;
        self.fills += 1;
        t.filling = Some((self.fills, Vec::new()));
        Some(FillRequest {
            number: self.fills,
            since: Some(since),
        })
    }

    /// The answer to fill `number` of `topic` (`None`: it failed; what was held
    /// is delivered as it came).
    pub fn filled(&mut self, topic: &str, number: u64, fill: Option<Fill>) -> Outcome {
        let mut out = Outcome::default();
        let Some(t) = self.topics.get_mut(topic) else {
            return out;
        };
        if t.filling.as_ref().is_none_or(|(n, _)| *n != number) {
            return out;
        }
        let (_, held) = t.filling.take().unwrap_or_default();
        if let Some(fill) = fill {
            let before = out.deliver.len();
            for e in fill.entries {
                deliver(t, e, &mut out);
            }
            out.filled += (out.deliver.len() - before) as u64;
            if fill.last == 0 && t.last_of(&fill.epoch).is_none() {
                // An epoch with nothing in it yet: what comes next in it is
                // its first, and a jump past that is seen.
                if t.delivered.is_some() {
                    out.resets += 1;
                }
                advance(
                    t,
                    &Position {
                        epoch: fill.epoch.clone(),
                        offset: 0,
                    },
                );
            }
            t.checked = Some(Position {
                epoch: fill.epoch,
                offset: fill.last,
            });
        }
        for e in held {
            deliver(t, e, &mut out);
        }
        out
    }

    /// Whether a join answered at `position` may be answered now: everything of
    /// `topic` up to it was delivered, or (nothing of its epoch delivered yet)
    /// was before the subscription. A topic this server knows nothing of yet
    /// takes `position` as its baseline: what comes after it is owed. A position
    /// before the baseline (read before the subscription was made) is answered
    /// at the baseline instead: what lies between was never delivered here.
    pub fn catch_up(&mut self, topic: &str, position: &Position) -> Caught {
        let t = self.topics.entry(topic.to_owned()).or_default();
        if let Some(at) = t.last_of(&position.epoch) {
            return if at.offset >= position.offset {
                Caught::Up
            } else {
                Caught::Behind
            };
        }
        if t.delivered.is_some() {
            // Another epoch delivered last: this one's are on their way.
            return Caught::Behind;
        }
        match &t.baseline {
            Some(b) if b.epoch == position.epoch => {
                if b.offset <= position.offset {
                    Caught::Up
                } else {
                    Caught::At(b.clone())
                }
            }
            Some(_) => Caught::Behind,
            None => {
                t.baseline = Some(position.clone());
                Caught::Up
            }
        }
    }

    /// Where `topic` stood when its presence was read. Within an epoch it never
    /// moves forward (the joins answered from an earlier one are owed what came
    /// after it: a subscription made again fills it from there).
    pub fn set_baseline(&mut self, topic: &str, position: Position) {
        let t = self.topics.entry(topic.to_owned()).or_default();
        match &mut t.baseline {
            Some(b) if b.epoch == position.epoch => b.offset = b.offset.min(position.offset),
            _ => t.baseline = Some(position),
        }
    }

    /// `topic` is no longer subscribed: its state goes.
    pub fn forget(&mut self, topic: &str) {
        self.topics.remove(topic);
    }

    /// Topics with state.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.topics.len()
    }
}

impl Topic {
    /// The last delivered of `epoch`, if it is followed.
    fn last_of(&self, epoch: &str) -> Option<&Position> {
        self.delivered
            .iter()
            .chain(self.earlier.iter().rev())
            .find(|p| p.epoch == epoch)
    }
}

/// Deliver `e` unless it is at or before what was delivered in its epoch.
fn deliver(t: &mut Topic, e: Envelope, out: &mut Outcome) {
    if let Some(at) = t.last_of(&e.position.epoch) {
        if e.position.offset <= at.offset {
            out.duplicates += 1;
            return;
        }
        // A jump the fill could not close (given up, or the stream was
        // trimmed): counted.
        if let Some(next) = at.offset.checked_add(1) {
            out.lost += e.position.offset.saturating_sub(next);
        }
    } else if t.delivered.is_some() {
        out.resets += 1;
    }
    advance(t, &e.position);
    out.deliver.push(e);
}

/// `position` is the last delivered of its epoch, and its epoch the current one.
fn advance(t: &mut Topic, position: &Position) {
    match &mut t.delivered {
        Some(at) if at.epoch == position.epoch => at.offset = position.offset,
        Some(at) => {
            // Another epoch: the current one joins the earlier ones (its own
            // entry there, if any, replaced).
            let previous = std::mem::replace(at, position.clone());
            t.earlier
                .retain(|p| p.epoch != previous.epoch && p.epoch != position.epoch);
            t.earlier.push(previous);
            if t.earlier.len() > EPOCHS - 1 {
                t.earlier.remove(0);
            }
        }
        None => t.delivered = Some(position.clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{actor::ConnId, proto::Message};

    fn env(epoch: &str, offset: u64) -> Envelope {
        Envelope {
            origin: 1,
            seq: 0,
            except: None::<ConnId>,
            position: Position {
                epoch: epoch.into(),
                offset,
            },
            message: Message::from(format!("{offset}")),
        }
    }

    fn offsets(out: &Outcome) -> Vec<u64> {
        out.deliver.iter().map(|e| e.position.offset).collect()
    }

    #[test]
    fn a_gap_is_filled_from_the_stream_in_its_place() {
        let mut o = Ordering::new(100);
        assert_eq!(offsets(&o.message("t", env("e", 1))), [1]);
        let out = o.message("t", env("e", 4));
        assert!(out.deliver.is_empty());
        let request = out.fill.unwrap();
        assert_eq!(request.since.unwrap().offset, 1);
        assert!(o.message("t", env("e", 5)).deliver.is_empty(), "held");
        let fill = Fill {
            epoch: "e".into(),
            last: 5,
            entries: vec![env("e", 2), env("e", 3), env("e", 4), env("e", 5)],
        };
        let out = o.filled("t", request.number, Some(fill));
        assert_eq!(offsets(&out), [2, 3, 4, 5]);
        assert_eq!((out.filled, out.lost, out.duplicates), (4, 0, 2));
    }

    #[test]
    fn what_the_stream_no_longer_had_is_counted_once() {
        let mut o = Ordering::new(100);
        o.message("t", env("e", 1));
        let request = o.message("t", env("e", 9)).fill.unwrap();
        // Entries 2..=5 were trimmed; 6..=8 are there; 9 is the one held; 10 is
        // on its way on the subscription.
        let fill = Fill {
            epoch: "e".into(),
            last: 10,
            entries: vec![
                env("e", 6),
                env("e", 7),
                env("e", 8),
                env("e", 9),
                env("e", 10),
            ],
        };
        let out = o.filled("t", request.number, Some(fill));
        assert_eq!(offsets(&out), [6, 7, 8, 9, 10]);
        assert_eq!((out.lost, out.duplicates), (4, 1));
        assert_eq!(o.message("t", env("e", 10)).duplicates, 1);
        // After a reconnection, a topic without history: 11..=13 went by unseen
        // and are gone; 14 comes by the new subscription.
        let request = o.missed("t").unwrap();
        let fill = Fill {
            epoch: "e".into(),
            last: 14,
            entries: vec![],
        };
        assert!(o.filled("t", request.number, Some(fill)).deliver.is_empty());
        let out = o.message("t", env("e", 14));
        assert_eq!(
            (offsets(&out), out.lost),
            (vec![14], 3),
            "counted, not asked again"
        );
        assert!(out.fill.is_none());
        let out = o.message("t", env("e", 15));
        assert_eq!((offsets(&out), out.lost), (vec![15], 0));
    }

    #[test]
    fn an_offset_at_the_end_of_the_range_is_no_panic() {
        let mut o = Ordering::new(100);
        o.message("t", env("e", u64::MAX));
        let out = o.message("t", env("e", u64::MAX));
        assert_eq!(out.duplicates, 1);
        let out = o.message("t", env("e", 3));
        assert_eq!(out.duplicates, 1);
        o.message("u", env("e", u64::MAX - 2));
        assert!(o.message("u", env("e", u64::MAX)).fill.is_some());
    }

    #[test]
    fn a_fill_that_takes_too_long_is_given_up_and_the_gap_counted() {
        let mut o = Ordering::new(2);
        o.message("t", env("e", 1));
        assert!(o.message("t", env("e", 5)).fill.is_some());
        o.message("t", env("e", 6));
        let out = o.message("t", env("e", 7));
        assert_eq!(offsets(&out), [5, 6, 7]);
        assert_eq!(out.lost, 3);
    }

    #[test]
    fn a_stale_fill_answer_and_a_forgotten_topic_change_nothing() {
        let mut o = Ordering::new(10);
        o.message("t", env("e", 1));
        let first = o.message("t", env("e", 3)).fill.unwrap();
        o.forget("t");
        assert_eq!(o.len(), 0);
        let out = o.filled("t", first.number, None);
        assert!(out.deliver.is_empty());
        assert_eq!(o.len(), 0, "not re-created");
        assert_eq!(o.missed("t"), None);
    }

    #[test]
    fn a_late_publication_of_the_epoch_before_never_repeats_the_new_one() {
        let mut o = Ordering::new(10);
        o.message("t", env("old", 32));
        assert_eq!(offsets(&o.message("t", env("new", 1))), [1]);
        // A late one of the old epoch (held in a fill), then the new epoch's
        // first again (from a fill of the new Redis).
        assert_eq!(offsets(&o.message("t", env("old", 33))), [33]);
        let out = o.message("t", env("new", 1));
        assert_eq!((out.deliver.len(), out.duplicates), (0, 1));
        assert_eq!(offsets(&o.message("t", env("new", 2))), [2]);
        assert_eq!(o.message("t", env("old", 33)).duplicates, 1);
    }

    #[test]
    fn a_jump_in_an_epoch_not_delivered_yet_is_filled_from_where_it_began() {
        // Redis started again: the fill after the subscription was made found
        // the new epoch empty; its first publications then went by unseen.
        let mut o = Ordering::new(10);
        o.message("t", env("old", 5));
        let request = o.missed("t").unwrap();
        let fill = Fill {
            epoch: "new".into(),
            last: 0,
            entries: vec![],
        };
        let out = o.filled("t", request.number, Some(fill));
        assert_eq!((out.deliver.len(), out.resets), (0, 1));
        let out = o.message("t", env("new", 9));
        assert_eq!(out.fill.unwrap().since.unwrap().offset, 0);
        // So for one read from the subscription's baseline.
        let mut o = Ordering::new(10);
        o.set_baseline(
            "u",
            Position {
                epoch: "e".into(),
                offset: 3,
            },
        );
        assert_eq!(
            o.message("u", env("e", 6))
                .fill
                .unwrap()
                .since
                .unwrap()
                .offset,
            3
        );
        assert_eq!(
            offsets(&o.message("v", env("e", 6))),
            [6],
            "nothing known: as it comes"
        );
    }

    fn at(epoch: &str, offset: u64) -> Position {
        Position {
            epoch: epoch.into(),
            offset,
        }
    }

    #[test]
    fn a_join_is_answered_from_what_this_server_owes() {
        let mut o = Ordering::new(10);
        // Nothing known: its position becomes the baseline, owed from there.
        assert_eq!(o.catch_up("t", &at("e", 1)), Caught::Up);
        // The subscription made again reads a later position: the baseline
        // stays, and what came between is filled.
        o.set_baseline("t", at("e", 8));
        assert_eq!(o.missed("t").unwrap().since, Some(at("e", 1)));

        // A join located before the baseline is answered at it.
        let mut o = Ordering::new(10);
        o.set_baseline("u", at("e", 5));
        assert_eq!(o.catch_up("u", &at("e", 3)), Caught::At(at("e", 5)));
        assert_eq!(o.catch_up("u", &at("e", 6)), Caught::Up);
        assert_eq!(offsets(&o.message("u", env("e", 6))), [6]);
        // Past what was delivered: once it is.
        assert_eq!(o.catch_up("u", &at("e", 7)), Caught::Behind);
        assert_eq!(offsets(&o.message("u", env("e", 7))), [7]);
        assert_eq!(o.catch_up("u", &at("e", 7)), Caught::Up);
        // In an epoch not delivered yet, after another: once it is.
        assert_eq!(o.catch_up("u", &at("f", 2)), Caught::Behind);
        assert_eq!(offsets(&o.message("u", env("f", 1))), [1]);
        assert_eq!(o.catch_up("u", &at("f", 1)), Caught::Up);
    }

    #[test]
    fn a_new_epoch_is_delivered_and_counted_as_a_reset() {
        let mut o = Ordering::new(10);
        o.message("t", env("e", 7));
        let out = o.message("t", env("f", 1));
        assert_eq!((offsets(&out), out.resets), (vec![1], 1));
        o.set_baseline(
            "u",
            Position {
                epoch: "e".into(),
                offset: 4,
            },
        );
        assert_eq!(o.missed("u").unwrap().since.unwrap().offset, 4);
    }

    #[test]
    fn a_new_epoch_seen_past_its_first_publication_is_filled_from_its_start() {
        // Redis started again while the subscription was cut: the first of the
        // new epoch seen is its 4th; 1..=3 come from the stream, before it.
        let mut o = Ordering::new(10);
        o.message("t", env("old", 7));
        let out = o.message("t", env("new", 4));
        assert!(out.deliver.is_empty());
        let request = out.fill.unwrap();
        assert_eq!(request.since, Some(at("old", 7)));
        assert!(o.message("t", env("new", 5)).deliver.is_empty(), "held");
        let fill = Fill {
            epoch: "new".into(),
            last: 4,
            entries: vec![env("new", 1), env("new", 2), env("new", 3), env("new", 4)],
        };
        let out = o.filled("t", request.number, Some(fill));
        assert_eq!(offsets(&out), [1, 2, 3, 4, 5]);
        assert_eq!((out.filled, out.resets, out.lost), (4, 1, 0));
    }
}
