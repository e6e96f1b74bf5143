//! Connections that forward their events to a shared actor: [`forward`].

use std::sync::{
    atomic::{AtomicUsize, Ordering},
    Arc, OnceLock, Weak,
};

use actix::{dev::ToEnvelope, Actor, ActorContext, Addr, Context, Handler, Recipient};

use super::{
    serve::Control,
    shared::{Request, Shared},
    Close, Conn, ConnId, Error, Message, Open, Serve,
};

/// The default bound on a connection's events waiting in the target's mailbox.
pub const DEFAULT_MAX_PENDING: usize = 16;

/// Forward each connection's events to the actor at `addr` (a room, a game, a
/// hub), tagged with the connection's id, one mailbox hop away: a connection actor
/// forwarding typed messages to user actors. Serves
/// wherever an actor goes (`ws::start(ws::forward(room.clone()), &req)`).
///
/// The target handles [`Tagged`]`<`[`Open`]`>` (keep its `Conn`, keyed by id),
/// `Tagged<Message>`, `Tagged<Error>` and `Tagged<Close>`, in order per
/// connection. A connection stops reading while [`max_pending`](Forward::max_pending)
/// of its events wait in the target's mailbox, so a slow target pushes back on its
/// peers instead of queueing without bound. Pings are answered by the library.
///
/// ```no_run
/// use std::collections::HashMap;
/// use actix::prelude::*;
/// use websocket_driver as ws;
///
/// #[derive(Default)]
/// struct Room { members: HashMap<ws::ConnId, ws::Conn> }
/// impl Actor for Room { type Context = Context<Self>; }
/// impl Handler<ws::Tagged<ws::Open>> for Room {
///     type Result = ();
///     fn handle(&mut self, m: ws::Tagged<ws::Open>, _: &mut Context<Self>) {
///         self.members.insert(m.id, m.event.conn);
///     }
/// }
/// impl Handler<ws::Tagged<ws::Message>> for Room {
///     type Result = ();
///     fn handle(&mut self, m: ws::Tagged<ws::Message>, _: &mut Context<Self>) {
///         for (id, conn) in &self.members {
///             if *id != m.id { conn.send(m.event.clone()); }
///         }
///     }
/// }
/// impl Handler<ws::Tagged<ws::Error>> for Room {
///     type Result = ();
///     fn handle(&mut self, _: ws::Tagged<ws::Error>, _: &mut Context<Self>) {}
/// }
/// impl Handler<ws::Tagged<ws::Close>> for Room {
///     type Result = ();
///     fn handle(&mut self, m: ws::Tagged<ws::Close>, _: &mut Context<Self>) {
///         self.members.remove(&m.id);
///     }
/// }
///
/// async fn route(req: ws::Upgrade, room: actix_web::web::Data<Addr<Room>>) -> impl actix_web::Responder {
///     ws::start(ws::forward(room.get_ref().clone()), &req)
/// }
/// ```
pub fn forward<T>(addr: Addr<T>) -> Forward
where
    T: Actor
        + Handler<Tagged<Open>>
        + Handler<Tagged<Message>>
        + Handler<Tagged<Error>>
        + Handler<Tagged<Close>>,
    T::Context: ToEnvelope<T, Tagged<Open>>
        + ToEnvelope<T, Tagged<Message>>
        + ToEnvelope<T, Tagged<Error>>
        + ToEnvelope<T, Tagged<Close>>,
{
    Forward {
        targets: Arc::new(Targets {
            open: addr.clone().recipient(),
            message: addr.clone().recipient(),
            error: addr.clone().recipient(),
            close: addr.recipient(),
        }),
        max_pending: DEFAULT_MAX_PENDING,
    }
}

/// Where a connection's events go; made by [`forward`], cheap to clone.
#[derive(Clone)]
pub struct Forward {
    targets: Arc<Targets>,
    max_pending: usize,
}

impl std::fmt::Debug for Forward {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Forward")
            .field("max_pending", &self.max_pending)
            .finish_non_exhaustive()
    }
}

impl Forward {
    /// How many of a connection's events may wait in the target's mailbox before
    /// the connection stops reading (at least 1). Default 16.
    pub fn max_pending(mut self, events: usize) -> Self {
        self.max_pending = events.max(1);
        self
    }
}

struct Targets {
    open: Recipient<Tagged<Open>>,
    message: Recipient<Tagged<Message>>,
    error: Recipient<Tagged<Error>>,
    close: Recipient<Tagged<Close>>,
}

/// An event of one connection, forwarded to a shared actor (a room, a hub, a game)
/// with the connection's id: see [`forward`]. `M` is [`Open`],
/// [`Message`], [`Error`] or [`Close`].
///
/// Dropping it (or the rest of it, once `id` and `event` are moved out) tells the
/// connection that its event was handled: a connection stops reading while too
/// many of its events wait in the target's mailbox.
#[derive(Debug)]
pub struct Tagged<M> {
    /// The connection the event belongs to.
    pub id: ConnId,
    /// The event.
    pub event: M,
    pub(crate) _receipt: Receipt,
}

impl<M: actix::Message<Result = ()>> actix::Message for Tagged<M> {
    type Result = ();
}

/// Counts a connection's events in the target's mailbox.
#[derive(Debug)]
struct Gauge {
    pending: AtomicUsize,
    max: usize,
    shared: OnceLock<Weak<Shared>>,
}

/// Carried by each [`Tagged`] event: dropped once the target is done with it.
#[derive(Debug)]
pub(crate) struct Receipt(Arc<Gauge>);

impl Drop for Receipt {
    fn drop(&mut self) {
        let gauge = &self.0;
        if gauge.pending.fetch_sub(1, Ordering::AcqRel) == gauge.max {
            // Back under the bound: the connection may read again.
            if let Some(shared) = gauge.shared.get().and_then(Weak::upgrade) {
                let _ = shared.push(Request::Resume, 0);
            }
        }
    }
}

/// The library's actor behind a forwarding connection (see [`forward`]).
pub struct Forwarder {
    targets: Arc<Targets>,
    gauge: Arc<Gauge>,
    conn: Option<Conn>,
}

impl std::fmt::Debug for Forwarder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Forwarder")
            .field("conn", &self.conn.as_ref().map(Conn::id))
            .field("pending", &self.gauge.pending.load(Ordering::Relaxed))
            .finish()
    }
}

impl Serve for Forward {
    type Actor = Forwarder;

    fn into_parts(self) -> (Forwarder, Control<Forwarder>) {
        let forwarder = Forwarder {
            targets: self.targets,
            gauge: Arc::new(Gauge {
                pending: AtomicUsize::new(0),
                max: self.max_pending,
                shared: OnceLock::new(),
            }),
            conn: None,
        };
        (forwarder, Control::none())
    }
}

impl Forwarder {
    /// Tag `event` and count it; past the bound, stop reading.
    fn tag<M>(&self, event: M) -> Option<Tagged<M>> {
        let conn = self.conn.as_ref()?;
        let pending = self.gauge.pending.fetch_add(1, Ordering::AcqRel) + 1;
        if pending >= self.gauge.max {
            conn.pause_reading();
        }
        Some(Tagged {
            id: conn.id(),
            event,
            _receipt: Receipt(self.gauge.clone()),
        })
    }
}

impl Actor for Forwarder {
    type Context = Context<Self>;
}

impl Handler<Open> for Forwarder {
    type Result = ();
    fn handle(&mut self, open: Open, _: &mut Context<Self>) {
        let _ = self.gauge.shared.set(Arc::downgrade(open.conn.shared()));
        self.conn = Some(open.conn.clone());
        if let Some(tagged) = self.tag(open) {
            // `do_send` queues at once, in order, whatever the mailbox holds: the
            // gauge is what bounds it.
            self.targets.open.do_send(tagged);
        }
    }
}

impl Handler<Message> for Forwarder {
    type Result = ();
    fn handle(&mut self, message: Message, _: &mut Context<Self>) {
        if let Some(tagged) = self.tag(message) {
            self.targets.message.do_send(tagged);
        }
    }
}

impl Handler<Error> for Forwarder {
    type Result = ();
    fn handle(&mut self, error: Error, _: &mut Context<Self>) {
        if let Some(tagged) = self.tag(error) {
            self.targets.error.do_send(tagged);
        }
    }
}

impl Handler<Close> for Forwarder {
    type Result = ();
    fn handle(&mut self, close: Close, ctx: &mut Context<Self>) {
        if let Some(tagged) = self.tag(close) {
            self.targets.close.do_send(tagged);
        }
        ctx.stop();
    }
}
