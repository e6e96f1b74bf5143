//! Publications on their way to Redis, and their answers, taken in order: one
//! Redis did not take is delivered on this server only, in its place, and
//! counted.
//!
//! Each runs the publish script on the publications' own connection, in the
//! order they were made (queued on the connection as they are taken, their
//! answers awaited apart). Its fate is always known, from its answer:
//!
//! - Made while the connection lives, it has no time limit of the client's: a
//!   command the client gives up on before writing it is never written, and
//!   whether it was written when the client gave up cannot be known (Redis
//!   slow, or the client's queue behind), so none is given up on. Queued, it is
//!   written in its turn and its answer comes: taken; an error of Redis's; or
//!   its connection closed (it is never written again). One not answered
//!   within `command_timeout` is counted as slow and logged, and still awaited:
//!   it is delivered once, through Redis, when Redis gets to it. If its
//!   connection goes meanwhile before it was written (the client may not
//!   notice at once, and holds what it has not written until the connection
//!   is back), it is delivered here in its place once past `command_timeout`
//!   with the connection seen out, and still awaited: written once the
//!   connection is back, it reaches the others then, and its copy here is
//!   skipped. Everything
//!   queued or on its way counts against `max_in_flight`, past which new ones
//!   are delivered here only: what waits is bounded in number, not in time (a
//!   paused Redis, or a half-open connection until TCP gives up on it, holds
//!   up to `max_in_flight`, each delivered once when it answers or closes).
//! - Made while the connection is being made again, it waits for it up to
//!   `command_timeout` and goes out once it is back; one not written by then is
//!   never written (the client gives up on it), and is delivered here only.
//!   One made while the connection has been out for longer than a command may
//!   take is delivered here at once.
//!
//! Every one that failed (an error of Redis's, its connection closed, or given
//! up on while the connection was out) is delivered here in its place. Redis
//! may have carried it out all the same (just before its connection went, the
//! answer lost with it; or written just as the client gave up on it): then it
//! also comes back through the subscription, or from the topic's stream after a
//! reconnection. Each carries this server's sequence number, and
//! [`Own`](super::own::Own) lets only the first of the two through (counted as
//! `duplicates_avoided`). Only what was on its way when the backplane's task
//! ended has an unknown fate (counted as `abandoned`).

use std::{
    sync::{atomic::Ordering, Arc},
    time::Duration,
};

use fred::{prelude::*, types::CustomCommand};
use tokio::sync::{mpsc, oneshot};

use super::{
    counters::add,
    keys,
    own::{self, Place},
    scripts,
    shared::{lock, Shared},
};
use crate::hub::backplane::Publication;

/// A publication's answer: taken, or not (why).
type Answer = oneshot::Receiver<Result<(), String>>;

/// A publication on its way, its sequence number, when it was sent and its
/// answer.
type Sent = (Publication, u64, std::time::Instant, Answer);

/// Sends publications to Redis (see the module docs).
pub(super) struct Publisher {
    client: Client,
    prefix: String,
    origin: String,
    sharded: bool,
    ttl_ms: i64,
    timeout: Duration,
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
        timeout: Duration,
        shared: Arc<Shared>,
    ) -> (Publisher, tokio::task::JoinHandle<()>) {
        let (answers, mut rx) = mpsc::unbounded_channel::<Sent>();
        let task = {
            let (shared, client) = (shared.clone(), client.clone());
            tokio::spawn(async move {
                'next: while let Some((publication, seq, sent_at, mut answer)) = rx.recv().await {
                    // Awaited; past `timeout`, placed here once the connection
                    // is seen out (checked every quarter of it), and its answer
                    // awaited apart (the next ones go on).
                    let mut check = tokio::time::Instant::from_std(sent_at) + timeout;
                    let result = loop {
                        tokio::select! {
                            biased;
                            result = &mut answer => break result,
                            _ = tokio::time::sleep_until(check) => {
                                check += (timeout / 4).max(Duration::from_millis(1));
                                if !client.is_connected() {
                                    let here = lock(&shared.own).place(seq);
                                    if here {
                                        tracing::debug!("a publication's connection is out: delivered here in its place (and to the others if it is written once the connection is back)");
                                        add(&shared.counters.dropped, 1);
                                        shared.local(publication);
                                    }
                                    let shared = shared.clone();
                                    tokio::spawn(async move {
                                        settle(&shared, seq, answer.await, None, here);
                                    });
                                    continue 'next;
                                }
                            }
                        }
                    };
                    settle(&shared, seq, result, Some(publication), false);
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
        // The script by `EVAL` through `custom`: the client's `eval` does not
        // take the per-command options (its `with_options` wrapper has no
        // scripting interface and hands the call to the bare client, whose
        // default timeout then applies).
        let slot = fred::util::redis_keyslot(k.epoch.as_bytes());
        let command = CustomCommand::new_static("EVAL", Some(slot), false);
        let mut command_args: Vec<Value> = Vec::with_capacity(5 + args.len());
        command_args.push(scripts::PUBLISH.into());
        command_args.push(3_i64.into());
        command_args.extend([k.epoch.into(), k.offset.into(), k.stream.into()]);
        command_args.extend(args);
        // On a live connection, no time limit of the client's (see the module
        // docs); while it is made again, `command_timeout`.
        let connected = self.client.is_connected();
        let options = Options {
            timeout: Some(if connected {
                Duration::ZERO
            } else {
                self.timeout
            }),
            ..Default::default()
        };
        let (client, shared, timeout) = (self.client.clone(), self.shared.clone(), self.timeout);
        let (tx, rx) = oneshot::channel();
        // Spawned now, polled in this order: the command is queued on the
        // connection in the publications' order; its answer is awaited apart.
        tokio::spawn(async move {
            let client = client.with_options(&options);
            let eval = client.custom::<Value, Value>(command, command_args);
            tokio::pin!(eval);
            let result = if connected {
                tokio::select! {
                    biased;
                    result = &mut eval => result,
                    _ = tokio::time::sleep(timeout) => {
                        slow(&shared, timeout);
                        eval.await
                    }
                }
            } else {
                eval.await
            };
            let _ = tx.send(result.map(drop).map_err(|e| e.to_string()));
        });
        self.shared.awaiting.fetch_add(1, Ordering::AcqRel);
        if let Err(mpsc::error::SendError((publication, seq, _, _))) =
            self.answers
                .send((publication, seq, std::time::Instant::now(), rx))
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

/// `seq`'s answer taken: counted, and `publication` (unless placed here
/// already: `placed`, or `None`) delivered here if Redis did not take it.
fn settle(
    shared: &Shared,
    seq: u64,
    answer: Result<Result<(), String>, oneshot::error::RecvError>,
    publication: Option<Publication>,
    placed: bool,
) {
    let result = answer.unwrap_or_else(|_| Err("dropped".into()));
    let taken = if result.is_ok() {
        own::Answer::Taken
    } else {
        own::Answer::NotTaken
    };
    let place = lock(&shared.own).answered(seq, taken);
    let _ = shared
        .awaiting
        .fetch_update(Ordering::AcqRel, Ordering::Acquire, |v| {
            Some(v.saturating_sub(1))
        });
    shared.release(1);
    match (result, place) {
        (Ok(()), _) => add(&shared.counters.published, 1),
        // Delivered here in its place already.
        (Err(_), Place::Placed) if placed => {}
        (Err(err), Place::CameBack | Place::Placed) => {
            tracing::debug!(%err, "redis did not answer a publication it carried out: delivered once, through redis");
            add(&shared.counters.published, 1);
            add(&shared.counters.duplicates_avoided, 1);
        }
        (Err(err), Place::Here) => {
            tracing::debug!(%err, "redis did not take a publication: delivered here only");
            add(&shared.counters.dropped, 1);
            if let Some(publication) = publication {
                shared.local(publication);
            }
        }
    }
}

/// A publication Redis did not answer within `timeout` (still awaited):
/// counted, and logged at the first and then at every power of two.
fn slow(shared: &Shared, timeout: Duration) {
    let n = shared
        .counters
        .slow
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        + 1;
    if n.is_power_of_two() {
        tracing::warn!(
            slow = n,
            timeout_ms = u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX),
            "redis did not answer a publication within command_timeout: still awaited, delivered once when it does"
        );
    }
}

/// A fresh epoch: 16 random hex digits.
pub(super) fn fresh_epoch() -> String {
    format!("{:016x}", rand::random::<u64>())
}
