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
    /// order per topic. Without an actor, see [`on_presence_fn`](Self::on_presence_fn).
    pub fn on_presence(&self, recipient: Recipient<Presence>) {
        self.inner.presence.add_recipient(recipient);
    }

    /// Call `f` with each [`Presence`] event, in order per topic, on the hub's
    /// presence thread (`ws-hub-presence`, one per hub, started by the first
    /// call; it ends with the hub). No lock of the hub is held while `f` runs: it
    /// may call the hub (`members`, `send_to`, `publish`, a join); it delays only
    /// the events after it. At most
    /// [`max_queued_per_thread`](crate::settings::HubSettings::max_queued_per_thread)
    /// events wait for it; past that an event is not given to the closures
    /// (counted in `ws_hub_presence_dropped_total`, and logged). A panic in `f` is
    /// caught and counted (`ws_hub_callback_panics_total`). `f` is kept by the
    /// hub: hold the hub in it through [`Hub::downgrade`], or the hub (and its
    /// thread) lives as long as the process.
    ///
    /// Fails only when the thread cannot be started.
    ///
    /// ```
    /// use websocket_driver as ws;
    ///
    /// let hub = ws::Hub::new();
    /// let weak = hub.downgrade();
    /// hub.on_presence_fn(move |p: &ws::Presence| {
    ///     let Some(hub) = weak.upgrade() else { return };
    ///     let text = format!("{} {:?} ({} here)", p.user, p.kind, hub.members(&p.topic).len());
    ///     // To the topic's members but the connection that joined or left.
    ///     hub.publish_transient(&p.topic, text, p.conn);
    /// })?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn on_presence_fn(
        &self,
        f: impl Fn(&Presence) + Send + Sync + 'static,
    ) -> std::io::Result<()> {
        let inner = &self.inner;
        let queue = inner.settings.max_queued_per_thread;
        let panics = &inner.metrics.callback_panics;
        inner
            .presence
            .add_callback(Arc::new(f), queue, panics, &inner.name)
    }

    /// The members of `topic`, by connection id (not the hidden ones:
    /// [`JoinOptions::hidden`](super::JoinOptions::hidden)).
    pub fn members(&self, topic: &str) -> Vec<Member> {
        let Some(topic) = lock(&self.inner.topics).get(topic).cloned() else {
            return Vec::new();
        };
        let state = topic.lock();
        let mut members: Vec<Member> = state
            .members
            .iter()
            .filter(|(_, m)| !m.hidden)
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
    /// the topic's users are updated and the presence listeners told.
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
            let here = state.users.get(&user).map(|u| u.conn);
            self.inner.report_presence(topic, &user, &meta, kind, here);
        }
    }

    /// Every user present in `topic` across servers, from a backplane that shares
    /// presence (when this server starts holding the topic, and again after the
    /// backplane reconnects): the presence listeners are told who came and who
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
                    let here = state.users.get(user).map(|u| u.conn);
                    self.inner
                        .report_presence(topic, user, meta, PresenceKind::Left, here);
                }
            }
            for (user, meta) in &now {
                if !before.contains_key(user) {
                    let here = state.users.get(user).map(|u| u.conn);
                    self.inner
                        .report_presence(topic, user, meta, PresenceKind::Joined, here);
                }
            }
        }
        state.global_users = Some(now);
    }
}
