//! Presence: the members and users of a topic, first joins and last leaves told
//! to the application's recipients, or shared across servers by a backplane.

use std::sync::Arc;

use actix::Recipient;

use super::{
    inner::Hub,
    sync::lock,
    topic::{Life, Topic},
    types::{Member, Presence, PresenceKind, UserMeta},
};

impl Hub {
    /// The users present on this server, per topic with presence on (each with
    /// the metadata of one of its connections): what a backplane that shares
    /// presence announces again after its store lost it.
    pub fn local_presence(&self) -> Vec<(String, Vec<UserMeta>)> {
        let topics: Vec<Arc<Topic>> = lock(&self.inner.topics).values().cloned().collect();
        let mut out = Vec::new();
        for topic in topics {
            let state = topic.lock();
            if state.life == Life::Removed || !state.settings.presence || state.users.is_empty() {
                continue;
            }
            out.push((topic.name.to_string(), state.user_metas()));
        }
        out
    }

    /// Send [`Presence`] events to `recipient` (an actor of the application's), in
    /// order per topic.
    pub fn on_presence(&self, recipient: Recipient<Presence>) {
        lock(&self.inner.presence).push(recipient);
    }

    /// The members of `topic`, by connection id.
    pub fn members(&self, topic: &str) -> Vec<Member> {
        let Some(topic) = lock(&self.inner.topics).get(topic).cloned() else {
            return Vec::new();
        };
        let state = topic.lock();
        let mut members: Vec<Member> = state
            .members
            .iter()
            .map(|(id, m)| Member {
                id: *id,
                user: m.user.to_string(),
                meta: m.meta.as_deref().map(str::to_owned),
            })
            .collect();
        members.sort_by_key(|m| m.id);
        members
    }

    /// The users present in `topic` (distinct user keys), sorted.
    pub fn users(&self, topic: &str) -> Vec<String> {
        let Some(topic) = lock(&self.inner.topics).get(topic).cloned() else {
            return Vec::new();
        };
        let state = topic.lock();
        // Across servers when a backplane shares presence: what it said, and this
        // server's own users (present here whether or not that came back yet).
        let mut users: Vec<String> = state.users.keys().map(|u| u.to_string()).collect();
        if let Some(global) = &state.global_users {
            users.extend(
                global
                    .keys()
                    .filter(|u| !state.users.contains_key(*u))
                    .map(|u| u.to_string()),
            );
        }
        users.sort();
        users
    }

    /// A presence change across servers, from a backplane that shares presence:
    /// the topic's users are updated and the presence recipients told.
    pub fn deliver_presence(
        &self,
        topic: &str,
        user: &str,
        meta: Option<&str>,
        kind: PresenceKind,
    ) {
        let Some(t) = lock(&self.inner.topics).get(topic).cloned() else {
            return;
        };
        let mut state = t.lock();
        if state.members.is_empty() {
            return;
        }
        let global = state.global_users.get_or_insert_with(Default::default);
        let user: Arc<str> = user.into();
        let meta: Option<Arc<str>> = meta.map(Into::into);
        // Told once per change of the shared view.
        let changed = match kind {
            PresenceKind::Joined => global.insert(user.clone(), meta.clone()).is_none(),
            PresenceKind::Left => global.remove(&user).is_some(),
        };
        if changed && state.settings.presence {
            // Under the topic's lock: in order.
            self.inner.report_presence(topic, &user, &meta, kind);
        }
    }

    /// Every user present in `topic` across servers, from a backplane that shares
    /// presence (when this server starts holding the topic, and again after the
    /// backplane reconnects): the presence recipients are told who came and who
    /// went since what this server knew.
    pub fn set_presence(&self, topic: &str, users: Vec<(String, Option<String>)>) {
        let Some(t) = lock(&self.inner.topics).get(topic).cloned() else {
            return;
        };
        let mut state = t.lock();
        if state.members.is_empty() {
            // No longer held here: not kept up to date.
            return;
        }
        let now: std::collections::BTreeMap<Arc<str>, Option<Arc<str>>> = users
            .into_iter()
            .map(|(u, m)| (Arc::from(u), m.map(Arc::from)))
            .collect();
        // What the recipients were told so far (nothing before the first snapshot:
        // this server's own joins are told when the backplane says so).
        let before = state.global_users.take().unwrap_or_default();
        if state.settings.presence {
            for (user, meta) in &before {
                if !now.contains_key(user) {
                    self.inner
                        .report_presence(topic, user, meta, PresenceKind::Left);
                }
            }
            for (user, meta) in &now {
                if !before.contains_key(user) {
                    self.inner
                        .report_presence(topic, user, meta, PresenceKind::Joined);
                }
            }
        }
        state.global_users = Some(now);
    }
}
