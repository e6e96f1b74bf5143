//! The task's requests to Redis: what the subscription state machine asks for
//! (SUBSCRIBE, UNSUBSCRIBE and their confirmations), presence snapshots, fills of
//! a topic's gaps from its stream, the answers to joins (`locate`), and the
//! reconciliation of the subscriptions with the hub's topics.

use fred::{interfaces::ClusterInterface, types::config::Options};

use super::*;

impl Task {
    /// Carry out what the subscription state machine asks for.
    pub(super) fn apply(&mut self, effects: Vec<Effect>) {
        for effect in effects {
            match effect {
                Effect::Subscribe(batch) => self.command(Command::Subscribe, batch),
                Effect::Unsubscribe(batch) => self.command(Command::Unsubscribe, batch),
                Effect::Ready(topic) => {
                    // What the subscription may have missed (it was made again),
                    // then who is present; the joins are answered after that.
                    if let Some(request) = self.order.missed(&topic) {
                        self.fill(&topic, request);
                    }
                    self.snapshot(&topic);
                }
                Effect::Forget(topic) => {
                    self.release(&topic, true);
                    self.order.forget(&topic);
                    self.pstate.forget(&topic);
                    for (_, pending) in self.waiting.remove(&topic).unwrap_or_default() {
                        pending.answer_here();
                    }
                }
                Effect::Failed(topic) => {
                    // Not subscribed (Redis gone): answered from here; tried
                    // again after a back-off.
                    for (_, pending) in self.waiting.remove(&topic).unwrap_or_default() {
                        pending.answer_here();
                    }
                }
            }
        }
        add_gauge(&self.shared, self.subs.count());
    }

    /// Send one subscription command per batch (per slot, with sharded pub/sub:
    /// `SSUBSCRIBE` takes channels of one slot); each topic's answer comes back
    /// as an event.
    pub(super) fn command(&self, command: Command, batch: Vec<(String, u64)>) {
        let mut groups: HashMap<u16, Vec<(String, u64)>> = HashMap::new();
        for (topic, id) in batch {
            let slot = if self.sharded {
                fred::util::redis_keyslot(keys::channel(&self.prefix, &topic).as_bytes())
            } else {
                0
            };
            groups.entry(slot).or_default().push((topic, id));
        }
        for (slot, group) in groups {
            let channels: Vec<String> = group
                .iter()
                .map(|(t, _)| keys::channel(&self.prefix, t))
                .collect();
            let (subscriber, events, sharded, timeout) = (
                self.subscriber.clone(),
                self.events.clone(),
                self.sharded,
                self.command_timeout,
            );
            tokio::spawn(async move {
                let result = match (command, sharded) {
                    (Command::Subscribe, false) => subscriber.subscribe(channels).await,
                    (Command::Subscribe, true) => subscriber.ssubscribe(channels).await,
                    (Command::Unsubscribe, false) => subscriber.unsubscribe(channels).await,
                    (Command::Unsubscribe, true) => subscriber.sunsubscribe(channels).await,
                };
                // The client answers SUBSCRIBE and UNSUBSCRIBE once written,
                // not once Redis carried them out. A PING after them on the
                // same connection is answered after they were: only then is a
                // topic ready (what a fill or a presence read on another
                // connection finds, and what the subscription brings, then
                // meet; before, a change published between them was in
                // neither). With sharded pub/sub the PING goes to the node
                // that owns the channels' slot, on the connection that carried
                // the command.
                let result = match result {
                    Ok(()) if !sharded => subscriber.ping::<()>(None).await,
                    Ok(()) => match subscriber
                        .cached_cluster_state()
                        .and_then(|state| state.get_server(slot).cloned())
                    {
                        Some(node) => {
                            let to_node = Options {
                                cluster_node: Some(node),
                                timeout: Some(timeout),
                                ..Default::default()
                            };
                            let ping = subscriber.with_options(&to_node).ping::<()>(None).await;
                            if let Err(err) = ping {
                                // The node moved or did not answer in time: taken
                                // as done once written, as without the PING.
                                tracing::debug!(%err, "redis: no answer to the PING after SSUBSCRIBE");
                            }
                            Ok(())
                        }
                        // No routing known (the connection is being made
                        // again): the resubscription after it settles it.
                        None => Ok(()),
                    },
                    other => other,
                };
                if let Err(err) = &result {
                    tracing::debug!(%err, ?command, "redis subscription command failed");
                }
                for (topic, id) in group {
                    let ok = result.is_ok();
                    let _ = events.send(Event::Confirmed {
                        topic,
                        command,
                        id,
                        ok,
                    });
                }
            });
        }
    }

    /// Read `topic`'s presence (and where its publications stand).
    pub(super) fn snapshot(&mut self, topic: &str) {
        if let Some(number) = self.pstate.start_snapshot(topic) {
            self.presence.snapshot(topic, number, &self.events);
        }
    }

    pub(super) fn apply_presence(&self, topic: &str, change: &reply::PresenceChange) {
        if let Some(hub) = self.shared.hub.upgrade() {
            hub.deliver_presence(topic, &change.user, change.meta.as_deref(), change.kind);
        }
    }

    /// The joins waiting for `topic`, once it is subscribed and its presence read.
    pub(super) fn serve_waiting(&mut self, topic: &str) {
        if !self.subs.is_ready(topic) || self.pstate.snapshotting(topic) {
            return;
        }
        for (since, pending) in self.waiting.remove(topic).unwrap_or_default() {
            self.locate(pending, since);
        }
    }

    /// The subscription may have missed anything (it fell behind): every
    /// subscribed topic is filled and its presence read again.
    pub(super) fn resync(&mut self) {
        let topics: Vec<String> = self.subs.subscribed().map(str::to_owned).collect();
        for topic in topics {
            if let Some(request) = self.order.missed(&topic) {
                self.fill(&topic, request);
            }
            self.snapshot(&topic);
        }
    }

    /// Ask Redis what `topic` missed; the answer comes back as an event.
    pub(super) fn fill(&self, topic: &str, request: FillRequest) {
        let k = keys::Keys::new(&self.prefix, topic);
        let (epoch, offset) = request
            .since
            .map_or((String::new(), 0), |p| (p.epoch, p.offset));
        let args: Vec<Value> = vec![epoch.into(), offset.to_string().into()];
        let (client, events, topic) = (self.control.clone(), self.events.clone(), topic.to_owned());
        tokio::spawn(async move {
            let answer: Result<Value, _> = client
                .eval(scripts::FILL, vec![k.epoch, k.offset, k.stream], args)
                .await;
            let fill = match answer {
                Ok(value) => reply::fill(value).or_else(|| {
                    tracing::warn!("unexpected answer from the fill script");
                    None
                }),
                Err(err) => {
                    tracing::debug!(%err, "redis fill failed");
                    None
                }
            };
            let _ = events.send(Event::Filled(topic, request.number, fill));
        });
    }

    /// Where `pending`'s topic stands and what came after `since`.
    pub(super) fn locate(&self, pending: Pending, since: Option<Position>) {
        let k = keys::Keys::new(&self.prefix, &pending.topic);
        let (epoch, offset, asked) = match &since {
            Some(p) => (p.epoch.clone(), p.offset.to_string(), "1"),
            None => (String::new(), "0".into(), "0"),
        };
        let args: Vec<Value> = vec![
            fresh_epoch().into(),
            epoch.into(),
            offset.into(),
            asked.into(),
            self.topic_ttl_ms.into(),
        ];
        let (client, script) = (self.control.clone(), self.locate.clone());
        let events = self.events.clone();
        tokio::spawn(async move {
            let answer: Result<Value, _> = script
                .evalsha_with_reload(&client, vec![k.epoch, k.offset, k.stream], args)
                .await;
            match answer.map(reply::located) {
                Ok(Some(located)) => {
                    if let Err(mpsc::error::SendError(Event::Located(pending, located))) =
                        events.send(Event::Located(pending, located))
                    {
                        pending.answer(located);
                    }
                }
                Ok(None) => {
                    tracing::warn!("unexpected answer from the locate script");
                    pending.answer_here();
                }
                Err(err) => {
                    tracing::debug!(%err, "redis locate failed: not recovered");
                    pending.answer_here();
                }
            }
        });
    }

    /// Compare the subscriptions with what the hub wants and what the client
    /// tracks; repair what differs twice in a row.
    pub(super) fn reconcile(&mut self) {
        let Some(hub) = self.shared.hub.upgrade() else {
            return;
        };
        let wanted = hub.subscriptions();
        let channels = if self.sharded {
            self.subscriber.tracked_shard_channels()
        } else {
            self.subscriber.tracked_channels()
        };
        let tracked: HashSet<String> = channels
            .iter()
            .filter_map(|c| keys::topic_of(&self.prefix, c).map(|t| t.into_owned()))
            .collect();
        let repaired = self.subs.reconcile(&wanted, Some(&tracked), Instant::now());
        if repaired > 0 {
            tracing::warn!(repaired, "redis backplane subscriptions repaired");
        }
    }
}
