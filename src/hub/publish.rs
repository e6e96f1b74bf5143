//! Publishing: a publication framed once and sent to each thread (shard) that
//! holds subscribers of its topic, kept in the topic's history, and told to the
//! backplane.

use std::{
    sync::{atomic::Ordering, Arc},
    time::Instant,
};

use super::{
    backplane::{Backplane, Publication},
    delivery::Delivery,
    inner::{Hub, HubInner, Make},
    queue::Cmd,
    sync::lock,
    topic::{Topic, TopicState},
    types::{Position, Published},
};
use crate::{actor::ConnId, proto::Message};

impl Hub {
    /// Publish `message` to every member of `topic`.
    pub fn publish(&self, topic: &str, message: impl Into<Message>) -> Published {
        let message = message.into();
        self.inner.publish(topic, None, move |_| message, true)
    }

    /// Publish `message` to every member of `topic` with a conflation key (the
    /// instrument of a price): a subscriber conflated under
    /// [`SlowConsumer::Latest`](crate::SlowConsumer::Latest) keeps the newest
    /// publication per key, not per topic, and writes them oldest first once it
    /// has room (at most [`TopicSettings::conflation_keys`](super::TopicSettings::conflation_keys)
    /// keys). Otherwise a publication like [`publish`](Self::publish). The key is
    /// this server's: what comes back from a numbering backplane (Redis) is
    /// conflated per topic.
    pub fn publish_keyed(&self, topic: &str, key: &str, message: impl Into<Message>) -> Published {
        let message = message.into();
        self.inner
            .publish_keyed(topic, Some(key), None, move |_| message, true)
    }

    /// Publish `message` to every member of `topic` but `except` (its sender).
    pub fn publish_except(
        &self,
        topic: &str,
        message: impl Into<Message>,
        except: ConnId,
    ) -> Published {
        let message = message.into();
        self.inner
            .publish(topic, Some(except), move |_| message, true)
    }

    /// Stamp every publication with its position before it is framed: `render(topic,
    /// position, message)` gives what is sent (the chat example puts the offset in
    /// its JSON). It runs once per publication on each server (with a numbering
    /// backplane, where the position is known: on delivery), under the topic's
    /// lock: keep it short. Default: the message as published. A panic in it is
    /// caught and counted (`ws_hub_callback_panics_total`): that publication is
    /// not delivered on this server (a missed one being recovered makes the
    /// recovery incomplete).
    pub fn set_renderer(
        &self,
        render: impl Fn(&str, &Position, Message) -> Message + Send + Sync + 'static,
    ) {
        *lock(&self.inner.renderer) = Some(Arc::new(render));
    }

    /// Publish the message `make` builds from the publication's position (to put
    /// its offset in it, for clients that recover), to every member of `topic`
    /// but `except`. `make` runs under the topic's lock: keep it short. With a
    /// numbering backplane the position is not known here: `make` gets the topic's
    /// local one, so use [`set_renderer`](Self::set_renderer) instead.
    pub fn publish_with(
        &self,
        topic: &str,
        except: Option<ConnId>,
        make: impl FnOnce(&Position) -> Message,
    ) -> Published {
        self.inner.publish(topic, except, make, true)
    }

    /// Send `message` to the members of `topic` (but `except`) like a publication,
    /// but unnumbered and not kept in the history (presence lists, typing
    /// indicators): offsets count only the publications.
    pub fn publish_transient(
        &self,
        topic: &str,
        message: impl Into<Message>,
        except: Option<ConnId>,
    ) -> usize {
        let message = message.into();
        let inner = &self.inner;
        inner
            .with_live_topic(topic, Make::No, |topic, state| {
                let delivery = inner.delivery(message, &state.settings, 0, None);
                inner.fan_out(topic, state, &delivery, except)
            })
            .unwrap_or_else(|| inner.unrouted())
    }

    /// Deliver a publication that another server made (a [`Backplane`]'s that does
    /// not number them): to the local members only, not back to the backplane.
    pub fn deliver_remote(&self, topic: &str, message: Message) -> Published {
        self.inner
            .metrics
            .remote_delivered
            .fetch_add(1, Ordering::Relaxed);
        self.inner.publish(topic, None, move |_| message, false)
    }

    /// Deliver a publication numbered by the backplane at `position` (any
    /// server's, this one's included): rendered, framed once and sent to the local
    /// members (but `except`), in the order the backplane calls this for the
    /// topic. Returns how many threads it went to.
    pub fn deliver_numbered(
        &self,
        topic: &str,
        position: &Position,
        message: Message,
        except: Option<ConnId>,
    ) -> usize {
        self.inner
            .metrics
            .remote_delivered
            .fetch_add(1, Ordering::Relaxed);
        let inner = &self.inner;
        inner
            .with_live_topic(topic, Make::No, |topic, state| {
                // A renderer that panicked: not delivered here (counted).
                let Some(message) = inner.render(&topic.name, position, message) else {
                    return 0;
                };
                let epoch = state.numbered_epoch(&position.epoch);
                let delivery =
                    inner.delivery(message, &state.settings, position.offset, Some(epoch));
                inner.metrics.publications.fetch_add(1, Ordering::Relaxed);
                inner.fan_out(topic, state, &delivery, except)
            })
            .unwrap_or_else(|| inner.unrouted())
    }

    /// Publish `message` on this server only, numbered by this hub (its local
    /// epoch), not through the backplane: what a numbering backplane falls back to
    /// while it cannot reach its store (a client that recovers across that gap is
    /// told `recovered: false`).
    pub fn publish_local(
        &self,
        topic: &str,
        message: Message,
        except: Option<ConnId>,
    ) -> Published {
        self.inner.publish(topic, except, move |_| message, false)
    }
}

impl HubInner {
    pub(super) fn publish(
        &self,
        name: &str,
        except: Option<ConnId>,
        make: impl FnOnce(&Position) -> Message,
        to_backplane: bool,
    ) -> Published {
        self.publish_keyed(name, None, except, make, to_backplane)
    }

    /// [`publish`](Self::publish) with a conflation key.
    pub(super) fn publish_keyed(
        &self,
        name: &str,
        key: Option<&str>,
        except: Option<ConnId>,
        make: impl FnOnce(&Position) -> Message,
        to_backplane: bool,
    ) -> Published {
        if self.check_topic(name).is_err() {
            // Never a topic's (no member here), and a backplane could not place
            // it: not made.
            self.metrics
                .publications_refused
                .fetch_add(1, Ordering::Relaxed);
            return Published {
                position: None,
                shards: 0,
            };
        }
        let backplane = lock(&self.backplane).clone().filter(|_| to_backplane);
        if let Some(backplane) = backplane.as_ref().filter(|b| b.numbers()) {
            // Numbered on its way, and delivered here when it comes back.
            let position = self.topic_position(name);
            let message = make(&position);
            self.metrics
                .backplane_published
                .fetch_add(1, Ordering::Relaxed);
            backplane.publish(Publication {
                topic: name.to_owned(),
                message,
                except,
                history: self.topic_history(name),
            });
            return Published {
                position: None,
                shards: 0,
            };
        }
        let mut make = Some(make);
        let done = self.with_live_topic(name, Make::IfKept, |topic, state| {
            let make = make.take()?;
            let position = Position {
                epoch: state.epoch.to_string(),
                offset: state.last_offset + 1,
            };
            // Numbered once `make` and the renderer returned: a panic in either
            // leaves no gap in the offsets (the renderer's is caught and counted).
            let message = make(&position);
            let rendered = self.render(&topic.name, &position, message.clone())?;
            state.last_offset = position.offset;
            let mut delivery = self.delivery(
                rendered,
                &state.settings,
                position.offset,
                Some(state.epoch.clone()),
            );
            if let (Some(key), Some(fresh)) = (key, Arc::get_mut(&mut delivery)) {
                fresh.key = Some(key.into());
            }
            self.metrics.publications.fetch_add(1, Ordering::Relaxed);
            if state.settings.kept() > 0 || !state.history.is_empty() {
                let seq = self.histories.next_seq();
                self.histories
                    .edit(topic, state, |s| s.remember(Instant::now(), seq, &delivery));
            }
            let shards = self.fan_out(topic, state, &delivery, except);
            Some((position, shards, message))
        });
        let (position, shards, message) = match done {
            Some(Some(done)) => done,
            // The renderer panicked (counted): not published.
            Some(None) => {
                return Published {
                    position: None,
                    shards: 0,
                }
            }
            None => {
                // No member, no history here: nothing to deliver or keep, but the
                // message still goes to the other servers.
                self.unrouted();
                let position = Position::start();
                let Some(make) = make.take() else {
                    return Published {
                        position: None,
                        shards: 0,
                    };
                };
                let message = make(&position);
                self.to_backplane(backplane, name, message, except);
                return Published {
                    position: Some(position),
                    shards: 0,
                };
            }
        };
        if self.histories.bytes() > self.settings.max_history_bytes {
            self.evict_history();
        }
        self.to_backplane(backplane, name, message, except);
        Published {
            position: Some(position),
            shards,
        }
    }

    /// Send `delivery` to every shard holding members of `topic` (but `except`);
    /// called under the topic's lock, so that every shard sees the topic's
    /// publications (and its joins) in one order. A topic without members here
    /// counts it as unrouted. Returns how many shards it went to.
    pub(super) fn fan_out(
        &self,
        topic: &Topic,
        state: &TopicState,
        delivery: &Arc<Delivery>,
        except: Option<ConnId>,
    ) -> usize {
        if state.members.is_empty() {
            self.unrouted();
            return 0;
        }
        let mut shards = 0;
        for shard in state.shards() {
            shards += 1;
            self.send(
                shard,
                Cmd::Publish {
                    topic: topic.name.clone(),
                    delivery: delivery.clone(),
                    except,
                },
            );
        }
        shards
    }

    /// How many publications `topic` keeps (the hub's default for a topic it does
    /// not hold).
    pub(super) fn topic_history(&self, name: &str) -> usize {
        lock(&self.topics)
            .get(name)
            .map(|t| t.lock().settings.kept())
            .unwrap_or_else(|| self.settings_for(name).kept())
    }

    /// The topic's local position (an empty epoch when there is no such topic).
    pub(super) fn topic_position(&self, name: &str) -> Position {
        lock(&self.topics)
            .get(name)
            .map(|t| t.lock().position())
            .unwrap_or_else(Position::start)
    }

    pub(super) fn to_backplane(
        &self,
        backplane: Option<Arc<dyn Backplane>>,
        topic: &str,
        message: Message,
        except: Option<ConnId>,
    ) {
        if let Some(backplane) = backplane {
            self.metrics
                .backplane_published
                .fetch_add(1, Ordering::Relaxed);
            backplane.publish(Publication {
                topic: topic.to_owned(),
                message,
                except,
                history: self.topic_history(topic),
            });
        }
    }
}
