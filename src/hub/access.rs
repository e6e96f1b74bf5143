//! The values of authorization: what is asked ([`Access`]), what is answered
//! ([`Decision`], [`Verdict`]), who answers ([`Authorizer`]), and why a request
//! was refused ([`AccessError`]).

use std::{any::Any, fmt, future::Future, pin::Pin, sync::Arc};

use super::types::{JoinError, PublishError};
use crate::actor::ConnId;

/// What the application captured of a connection at its handshake (a token's
/// claims, a session), kept with it in the hub for the [`Authorizer`].
pub type Claims = Arc<dyn Any + Send + Sync>;

/// What a connection asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Action {
    /// Join the topic ([`Hub::join_with`](super::Hub::join_with), [`Hub::join_async`](super::Hub::join_async)).
    Join,
    /// Publish to it ([`Hub::publish_from`](super::Hub::publish_from), [`Hub::publish_from_async`](super::Hub::publish_from_async)).
    Publish,
    /// See its members ([`Hub::members_for`](super::Hub::members_for)).
    Presence,
}

/// A request to authorize: which connection (with its user and claims) asks
/// for what on which topic.
#[derive(Clone)]
#[non_exhaustive]
pub struct Access {
    /// What is asked.
    pub action: Action,
    /// The connection.
    pub conn: ConnId,
    /// Its user: the join's [`JoinOptions::user`](super::JoinOptions::user), else the one the hub knows
    /// it by ([`Hub::register`](super::Hub::register)), else its id.
    pub user: String,
    /// The topic.
    pub topic: String,
    /// The topic's namespace ([`Hub::set_namespace`](super::Hub::set_namespace), `[hub.namespaces]`).
    pub namespace: Option<String>,
    pub(super) claims: Option<Claims>,
}

impl Access {
    /// The connection's claims, if it was registered with claims of type `T`.
    pub fn claims<T: Any>(&self) -> Option<&T> {
        self.claims.as_deref()?.downcast_ref()
    }
}

impl fmt::Debug for Access {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Access")
            .field("action", &self.action)
            .field("conn", &self.conn)
            .field("user", &self.user)
            .field("topic", &self.topic)
            .field("namespace", &self.namespace)
            .field("claims", &self.claims.is_some())
            .finish()
    }
}

/// An authorizer's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Allowed.
    Allow,
    /// Refused, with the reason the client is told.
    Deny(String),
}

impl Verdict {
    /// [`Verdict::Deny`] with `reason`.
    pub fn deny(reason: impl Into<String>) -> Verdict {
        Verdict::Deny(reason.into())
    }
}

/// A [`Verdict`] now, or later (a lookup).
pub enum Decision {
    /// Decided.
    Now(Verdict),
    /// Decided when the future completes (at most
    /// [`authorize_timeout`](crate::settings::HubSettings::authorize_timeout)).
    Later(Pin<Box<dyn Future<Output = Verdict> + Send>>),
}

impl Decision {
    /// Allowed now.
    pub fn allow() -> Decision {
        Decision::Now(Verdict::Allow)
    }

    /// Refused now, with `reason`.
    pub fn deny(reason: impl Into<String>) -> Decision {
        Decision::Now(Verdict::deny(reason))
    }

    /// Decided by `future`.
    pub fn later(future: impl Future<Output = Verdict> + Send + 'static) -> Decision {
        Decision::Later(Box::pin(future))
    }
}

impl From<Verdict> for Decision {
    fn from(verdict: Verdict) -> Self {
        Decision::Now(verdict)
    }
}

impl fmt::Debug for Decision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Decision::Now(v) => f.debug_tuple("Now").field(v).finish(),
            Decision::Later(_) => f.write_str("Later(..)"),
        }
    }
}

/// Decides each [`Access`] ([`Hub::set_authorizer`](super::Hub::set_authorizer)); a closure
/// `Fn(&Access) -> Decision` is one. It runs on the caller's thread (keep a
/// synchronous answer short; a lookup goes in [`Decision::later`]); a panic in
/// it is caught, counted (`ws_hub_callback_panics_total`) and refuses.
pub trait Authorizer: Send + Sync + 'static {
    /// The decision on `access`.
    fn authorize(&self, access: &Access) -> Decision;
}

impl<F: Fn(&Access) -> Decision + Send + Sync + 'static> Authorizer for F {
    fn authorize(&self, access: &Access) -> Decision {
        self(access)
    }
}

/// Why an authorization refused (see [`Hub::members_for`](super::Hub::members_for), [`Hub::authorize`](super::Hub::authorize)).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AccessError {
    /// The authorizer refused.
    #[error("denied: {reason}")]
    Denied {
        /// Its reason.
        reason: String,
    },
    /// The authorizer answers asynchronously: use the asynchronous method.
    #[error("authorization is asynchronous")]
    Asynchronous,
    /// The authorizer did not answer in time.
    #[error("authorization timed out")]
    TimedOut,
}

impl From<AccessError> for JoinError {
    fn from(e: AccessError) -> Self {
        match e {
            AccessError::Denied { reason } => JoinError::Denied { reason },
            AccessError::Asynchronous => JoinError::Asynchronous,
            AccessError::TimedOut => JoinError::AuthorizationTimedOut,
        }
    }
}

impl From<AccessError> for PublishError {
    fn from(e: AccessError) -> Self {
        match e {
            AccessError::Denied { reason } => PublishError::Denied { reason },
            AccessError::Asynchronous => PublishError::Asynchronous,
            AccessError::TimedOut => PublishError::AuthorizationTimedOut,
        }
    }
}
