//! Publications on their way to Redis, and their answers, taken in order: one
//! Redis did not take is delivered on this server only, in its place, and
//! counted.
//!
//! Each runs the publish script on the publications' own connection, in the
//! order they were made (queued on the connection as they are taken, their
//! answers awaited apart), with `command_timeout`. While the connection is made
//! again it waits (and goes out once it is back); one that times out before it
//! was written is never written, and is delivered here (dropped for the
//! others); so is one Redis answered with an error, one whose connection closed
//! before its answer came (never written again), and, at once, one made while
//! the connection has been out for longer than a command may take. But one
//! that timed out while its connection lives (Redis slow, or paused) may still
//! be carried out, and then delivered to every server through the
//! subscriptions: it is not delivered here (it would be twice) and is counted as
//! abandoned, its fate unknown. Everything queued or on its way counts against
//! `max_in_flight`.
//!
//! A publication Redis carried out, and published, just before its connection
//! went (Redis killed, the connection reset: the answer is lost with it) comes
//! back through the subscription, or from the topic's stream after a
//! reconnection, as well as being delivered here in its place: each carries
//! this server's sequence number, and [`Own`](super::own::Own) lets only the
//! first of the two through (counted as `duplicates_avoided`).

use std::sync::{atomic::Ordering, Arc};

use fred::prelude::*;
use tokio::sync::{mpsc, oneshot};

use super::{
    counters::add,
    keys,
    own::{self, Place},
    scripts,
    shared::{lock, Shared},
};
use crate::hub::backplane::Publication;

/// A publication's answer: taken, or not taken (`true`: it may still be).
type Answer = oneshot::Receiver<Result<(), (String, bool)>>;

/// A publication on its way, its sequence number and its answer.
type Sent = (Publication, u64, Answer);

/// Sends publications to Redis (see the module docs).
pub(super) struct Publisher {
    client: Client,
    prefix: String,
    origin: String,
    sharded: bool,
    ttl_ms: i64,
    timeout: std::time::Duration,
    answers: mpsc::UnboundedSender<Sent>,
    shared: Arc<Shared>,
    /// The connection is out (down for longer than a command may take).
    out: bool,
}

impl Publisher {
    /// A publisher on `client`, and the task that takes its answers in order
    /// (it ends when the publisher is dropped and every answer is in).
    pub fn start(
        client: Client,
        prefix: String,
        origin: u64,
        sharded: bool,
        ttl_ms: i64,
        timeout: std::time::Duration,
        shared: Arc<Shared>,
    ) -> (Publisher, tokio::task::JoinHandle<()>) {
        let (answers, mut rx) = mpsc::unbounded_channel::<Sent>();
        let task = {
            let shared = shared.clone();
            tokio::spawn(async move {
                while let Some((publication, seq, answer)) = rx.recv().await {
                    let result = answer
                        .await
                        .unwrap_or_else(|_| Err(("dropped".into(), false)));
                    let taken = if matches!(result, Err((_, false))) {
                        own::Answer::NotTaken
                    } else {
                        own::Answer::Taken
                    };
                    let place = lock(&shared.own).answered(seq, taken);
                    let _ =
                        shared
                            .awaiting
                            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |v| {
                                Some(v.saturating_sub(1))
                            });
                    shared.release(1);
                    match result {
                        Ok(()) => add(&shared.counters.published, 1),
                        Err((err, true)) => {
                            tracing::warn!(%err, "a publication timed out on a live connection: Redis may still carry it out (not delivered here)");
                            add(&shared.counters.abandoned, 1);
                        }
                        Err((err, false)) if place == Place::CameBack => {
                            tracing::debug!(%err, "redis did not answer a publication it carried out: delivered once, through redis");
                            add(&shared.counters.published, 1);
                            add(&shared.counters.duplicates_avoided, 1);
                        }
                        Err((err, false)) => {
                            tracing::debug!(%err, "redis did not take a publication: delivered here only");
                            add(&shared.counters.dropped, 1);
                            shared.local(publication);
                        }
                    }
                }
            })
        };
        let publisher = Publisher {
            client,
            prefix,
            origin: origin.to_string(),
            sharded,
            ttl_ms,
            timeout,
            answers,
            shared,
            out: false,
        };
        (publisher, task)
    }

    /// Whether the connection is out: what is published meanwhile is delivered
    /// here at once, not after waiting for it.
    pub fn set_out(&mut self, out: bool) {
        self.out = out;
    }

    /// Send `publication` (counted in `in_flight` already).
    pub fn send(&self, publication: Publication) {
        if self.out && !self.client.is_connected() {
            // Not written anywhere: here only, at once.
            self.shared.release(1);
            add(&self.shared.counters.dropped, 1);
            self.shared.local(publication);
            return;
        }
        let k = keys::Keys::new(&self.prefix, &publication.topic);
        let (kind, payload) = crate::hub_wire::encode_message(&publication.message);
        let except = publication.except.map_or(0, |id| id.get());
        let seq = self.shared.seq.fetch_add(1, Ordering::Relaxed) + 1;
        lock(&self.shared.own).sent(seq);
        let args: Vec<Value> = vec![
            k.channel.into(),
            fresh_epoch().into(),
            i64::try_from(publication.history)
                .unwrap_or(i64::MAX)
                .into(),
            self.origin.clone().into(),
            except.to_string().into(),
            kind.into(),
            Value::Bytes(payload),
            if self.sharded { "1" } else { "0" }.into(),
            self.ttl_ms.into(),
            seq.to_string().into(),
        ];
        let (client, keys) = (self.client.clone(), vec![k.epoch, k.offset, k.stream]);
        let (tx, rx) = oneshot::channel();
        // Spawned now, polled in this order: the command is queued on the
        // connection in the publications' order; its answer is awaited apart.
        // Failed at once when the connection is not there to take it.
        let options = fred::types::config::Options {
            timeout: Some(self.timeout),
            ..Default::default()
        };
        tokio::spawn(async move {
            let result: Result<i64, _> = client
                .with_options(&options)
                .eval(scripts::PUBLISH, keys, args)
                .await;
            let answer = result.map(drop).map_err(|e| {
                // No answer yet on a live connection: it may still be carried out.
                let maybe = *e.kind() == fred::error::ErrorKind::Timeout && client.is_connected();
                (e.to_string(), maybe)
            });
            let _ = tx.send(answer);
        });
        self.shared.awaiting.fetch_add(1, Ordering::AcqRel);
        if let Err(mpsc::error::SendError((publication, seq, _))) =
            self.answers.send((publication, seq, rx))
        {
            // The answers' task is gone (the backplane's task is ending): its
            // fate is unknown.
            self.shared.awaiting.fetch_sub(1, Ordering::AcqRel);
            self.shared.release(1);
            lock(&self.shared.own).answered(seq, own::Answer::Taken);
            add(&self.shared.counters.abandoned, 1);
            drop(publication);
        }
    }
}

/// A fresh epoch: 16 random hex digits.
pub(super) fn fresh_epoch() -> String {
    format!("{:016x}", rand::random::<u64>())
}
