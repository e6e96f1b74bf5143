//! Authorization: who may join a topic, publish to it from a client
//! ([`Hub::publish_from`]) and see its presence ([`Hub::members_for`]). One
//! [`Authorizer`] answers each [`Access`] at once or with a future (a lookup),
//! given the connection, its user and the claims the application registered
//! for it at the handshake ([`Hub::register_with_claims`]); an asynchronous
//! answer is awaited before the join or publication takes effect, at most
//! [`authorize_timeout`](crate::settings::HubSettings::authorize_timeout).

use std::{any::Any, future::Future, sync::Arc, time::Duration};

use super::{
    access::{Access, AccessError, Action, Authorizer, Decision, Verdict},
    inner::{Hub, HubInner},
    sync::lock,
    types::{JoinError, JoinOptions, Joined, Member, PublishError, Published, TopicSettings},
};
use crate::{
    actor::{Conn, ConnId},
    proto::Message,
};

impl Hub {
    /// Decide who may join, publish from a client and see presence: every join
    /// ([`join_with`](Self::join_with), [`join_async`](Self::join_async)),
    /// [`publish_from`](Self::publish_from) and [`members_for`](Self::members_for)
    /// asks `authorizer` first; a refusal is a typed error with its reason
    /// ([`JoinError::Denied`]). Without one, everything is allowed. The
    /// application's own [`publish`](Self::publish) and [`members`](Self::members)
    /// are not asked.
    ///
    /// ```
    /// use websocket_driver::{hub::{Action, Decision}, Hub};
    ///
    /// let hub = Hub::new();
    /// // Topics `#NAME` are NAME's alone; `$`-topics need the "admin" claim.
    /// hub.set_authorizer(|access: &websocket_driver::hub::Access| {
    ///     let t = access.topic.as_str();
    ///     if let Some(owner) = t.strip_prefix('#') {
    ///         if owner != access.user {
    ///             return Decision::deny(format!("{t} is {owner}'s"));
    ///         }
    ///     }
    ///     if t.starts_with('$') && access.claims::<Vec<String>>().is_none_or(|c| !c.iter().any(|c| c == "admin")) {
    ///         return Decision::deny(format!("{t} is private"));
    ///     }
    ///     Decision::allow()
    /// });
    /// ```
    pub fn set_authorizer(&self, authorizer: impl Authorizer) {
        *lock(&self.inner.authorizer) = Some(Arc::new(authorizer));
    }

    /// [`register`](Self::register) `conn` as `user`, with what the
    /// application captured at its handshake (the claims of its token): the
    /// [`Authorizer`] reads them ([`Access::claims`]).
    pub fn register_with_claims(
        &self,
        conn: &Conn,
        user: impl Into<String>,
        claims: impl Any + Send + Sync,
    ) -> Result<(), JoinError> {
        self.register(conn, user)?;
        if let Some(entry) = lock(&self.inner.conns).get_mut(&conn.id()) {
            entry.claims = Some(Arc::new(claims));
        }
        Ok(())
    }

    /// [`join_with`](Self::join_with), awaiting an asynchronous authorizer
    /// first (at most [`authorize_timeout`](crate::settings::HubSettings::authorize_timeout):
    /// then [`JoinError::AuthorizationTimedOut`]). The join takes effect only
    /// once allowed.
    pub fn join_async(
        &self,
        conn: &Conn,
        topic: &str,
        options: JoinOptions,
    ) -> impl Future<Output = Result<Joined, JoinError>> + Send + 'static {
        let decision = self
            .inner
            .decide(Action::Join, conn.id(), topic, options.user.as_deref());
        let (hub, conn, topic) = (self.clone(), conn.clone(), topic.to_owned());
        async move {
            let timeout = hub.inner.settings.authorize_timeout;
            if let Err(e) = settle(decision, timeout).await {
                return Err(hub.inner.refuse(e.into()));
            }
            hub.join_conn(&conn, &topic, options, false)
        }
    }

    /// Publish a client's `message` to `topic` for connection `id`, to every
    /// member (the sender too): refused when the topic's
    /// [`client_publish`](TopicSettings::client_publish) is off, when the message
    /// is longer than its [`max_message_bytes`](TopicSettings::max_message_bytes),
    /// or when the authorizer denies it (an asynchronous one:
    /// [`PublishError::Asynchronous`], use [`publish_from_async`](Self::publish_from_async)).
    pub fn publish_from(
        &self,
        id: ConnId,
        topic: &str,
        message: impl Into<Message>,
    ) -> Result<Published, PublishError> {
        let message = message.into();
        self.inner.check_publish(topic, &message)?;
        settle_now(self.inner.decide(Action::Publish, id, topic, None))?;
        Ok(self.publish(topic, message))
    }

    /// [`publish_from`](Self::publish_from), awaiting an asynchronous
    /// authorizer first (at most [`authorize_timeout`](crate::settings::HubSettings::authorize_timeout)).
    pub fn publish_from_async(
        &self,
        id: ConnId,
        topic: &str,
        message: impl Into<Message>,
    ) -> impl Future<Output = Result<Published, PublishError>> + Send + 'static {
        let message = message.into();
        let checked = self.inner.check_publish(topic, &message);
        let decision = checked
            .is_ok()
            .then(|| self.inner.decide(Action::Publish, id, topic, None))
            .flatten();
        let (hub, topic) = (self.clone(), topic.to_owned());
        async move {
            checked?;
            settle(decision, hub.inner.settings.authorize_timeout).await?;
            Ok(hub.publish(&topic, message))
        }
    }

    /// The members of `topic` ([`members`](Self::members)), if the authorizer
    /// lets connection `viewer` see them ([`Action::Presence`]; an asynchronous
    /// answer: [`AccessError::Asynchronous`], use [`authorize`](Self::authorize)).
    pub fn members_for(&self, viewer: ConnId, topic: &str) -> Result<Vec<Member>, AccessError> {
        settle_now(self.inner.decide(Action::Presence, viewer, topic, None))?;
        Ok(self.members(topic))
    }

    /// Ask the authorizer whether connection `id` may do `action` on `topic`,
    /// awaiting an asynchronous answer (at most
    /// [`authorize_timeout`](crate::settings::HubSettings::authorize_timeout)).
    pub fn authorize(
        &self,
        action: Action,
        id: ConnId,
        topic: &str,
    ) -> impl Future<Output = Result<(), AccessError>> + Send + 'static {
        let decision = self.inner.decide(action, id, topic, None);
        let timeout = self.inner.settings.authorize_timeout;
        settle(decision, timeout)
    }

    /// The settings of `topic`: the live topic's, or those it would be made
    /// with (its namespace's, or the hub's defaults).
    pub fn topic_settings(&self, topic: &str) -> TopicSettings {
        self.inner.topic_settings(topic)
    }
}

impl HubInner {
    /// The authorizer's decision on `action` (`None`: no authorizer); `user`
    /// overrides the one the hub knows the connection by.
    pub(super) fn decide(
        &self,
        action: Action,
        id: ConnId,
        topic: &str,
        user: Option<&str>,
    ) -> Option<Decision> {
        let authorizer = lock(&self.authorizer).clone()?;
        let (known, claims) = lock(&self.conns)
            .get(&id)
            .map(|e| (Some(e.user.to_string()), e.claims.clone()))
            .unwrap_or_default();
        let access = Access {
            action,
            conn: id,
            user: user
                .map(str::to_owned)
                .or(known)
                .unwrap_or_else(|| id.to_string()),
            topic: topic.to_owned(),
            namespace: self.namespace_of(topic).map(|n| n.to_string()),
            claims,
        };
        Some(
            self.guarded("authorizer", topic, || authorizer.authorize(&access))
                .unwrap_or_else(|| Decision::deny("authorization failed")),
        )
    }

    /// The live topic's settings, or a new one's.
    pub(super) fn topic_settings(&self, name: &str) -> TopicSettings {
        let live = lock(&self.topics).get(name).cloned();
        match live {
            Some(t) => t.lock().settings.clone(),
            None => self.settings_for(name),
        }
    }

    /// What a client's publication must pass before the authorizer.
    fn check_publish(&self, topic: &str, message: &Message) -> Result<(), PublishError> {
        self.check_topic(topic)
            .map_err(PublishError::InvalidTopic)?;
        let settings = self.topic_settings(topic);
        if !settings.client_publish {
            return Err(PublishError::NotAllowed);
        }
        match settings.max_message_bytes {
            Some(limit) if message.as_bytes().len() > limit => {
                Err(PublishError::TooLarge { limit })
            }
            _ => Ok(()),
        }
    }
}

/// A decision known now: a future is [`AccessError::Asynchronous`].
pub(super) fn settle_now(decision: Option<Decision>) -> Result<(), AccessError> {
    match decision {
        None | Some(Decision::Now(Verdict::Allow)) => Ok(()),
        Some(Decision::Now(Verdict::Deny(reason))) => Err(AccessError::Denied { reason }),
        Some(Decision::Later(_)) => Err(AccessError::Asynchronous),
    }
}

/// A decision, awaited at most `timeout`.
async fn settle(decision: Option<Decision>, timeout: Duration) -> Result<(), AccessError> {
    match decision {
        Some(Decision::Later(future)) => match tokio::time::timeout(timeout, future).await {
            Ok(verdict) => settle_now(Some(Decision::Now(verdict))),
            Err(_) => {
                tracing::debug!("hub: an authorization timed out");
                Err(AccessError::TimedOut)
            }
        },
        now => settle_now(now),
    }
}
