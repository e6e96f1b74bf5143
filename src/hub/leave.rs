//! Leaving: a connection taken out of a topic, or out of the hub when it
//! closes. The last member's leave is decided under the topic's lock and told to
//! the backplane there, stamped with its generation (see `join`).

use std::sync::Arc;

use super::{
    inner::{Hub, HubInner},
    queue::Cmd,
    sched,
    sync::lock,
    topic::{self, Topic},
    types::PresenceKind,
};
use crate::actor::ConnId;

impl Hub {
    /// Take connection `id` out of `topic`; false when it was not a member.
    pub fn leave(&self, id: ConnId, topic: &str) -> bool {
        let topic = {
            let mut conns = lock(&self.inner.conns);
            let Some(entry) = conns.get_mut(&id) else {
                return false;
            };
            let Some(at) = entry.topics.iter().position(|t| &*t.name == topic) else {
                return false;
            };
            entry.topics.swap_remove(at)
        };
        sched::point("leaving");
        self.inner.leave_topic(id, &topic);
        true
    }
}

impl HubInner {
    /// Take `id` out of `topic` (its entry already updated); the last member's
    /// leave tells the backplane, under the topic's lock.
    pub(super) fn leave_topic(&self, id: ConnId, topic: &Arc<Topic>) {
        let mut state = topic.lock();
        let Some(member) = state.members.remove(&id) else {
            return;
        };
        state.remove_from_shard(member.shard);
        let gone = !member.hidden && state.remove_user(&member.user, id);
        if gone && state.settings.presence {
            self.presence(
                &topic.name,
                &member.user,
                &member.meta,
                PresenceKind::Left,
                id,
            );
        }
        self.send(
            member.shard,
            Cmd::Unsubscribe {
                topic: topic.name.clone(),
                id,
            },
        );
        if state.members.is_empty() {
            state.generation = topic::next_generation();
            if let Some(backplane) = lock(&self.backplane).clone() {
                backplane.unsubscribe(&topic.name, state.generation);
            }
            // Not held here any more: what the backplane said goes stale. The
            // leaving user's own leave will not come back (this server stops
            // listening): it is told here.
            if let Some(global) = state.global_users.take() {
                if gone && state.settings.presence && global.contains_key(&member.user) {
                    self.report_presence(
                        &topic.name,
                        &member.user,
                        &member.meta,
                        PresenceKind::Left,
                        Some(id),
                    );
                }
            }
        }
        let idle = state.is_idle();
        drop(state);
        if idle {
            self.remove_if_idle(topic);
        }
    }

    /// Connection `id` closed: it leaves every topic and the hub.
    pub(super) fn connection_closed(&self, id: ConnId) {
        let Some(entry) = lock(&self.conns).remove(&id) else {
            return;
        };
        for topic in &entry.topics {
            sched::point("closing");
            self.leave_topic(id, topic);
        }
        self.send(entry.shard, Cmd::Unregister { id });
    }
}
