//! A connection's state reached on its own thread ([`OnThread`]), and the key of
//! that thread ([`ThreadKey`]): the seam for a per-thread fan-out such as the
//! [`Hub`](crate::Hub)'s, which writes one prepared frame into each local
//! subscriber's send buffer without a lock.

use std::fmt;

use bytes::{Bytes, BytesMut};

use super::{
    id::ConnId,
    owned::{OverBudget, Queued, QueuedMany},
    slab::{thread_number, OwnedRef},
    Error,
};
use crate::proto::PreparedMessage;

/// A thread that connections live on ([`Conn::thread`](super::Conn::thread)):
/// equal for two connections of one thread, usable as a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ThreadKey(u64);

impl ThreadKey {
    pub(crate) fn new(number: u64) -> ThreadKey {
        ThreadKey(number)
    }

    /// The calling thread's key.
    pub fn current() -> ThreadKey {
        ThreadKey(thread_number())
    }
}

/// The limits of a [budgeted send](OnThread::send_within): what a connection may
/// hold queued before more is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    /// Refused while the send buffer holds this many bytes or more.
    pub bytes: usize,
    /// Refused while this many budgeted sends wait to be written (at least 1).
    pub messages: usize,
}

/// Why a [budgeted send](OnThread::send_within) was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Refused {
    /// The connection is closing, closed, or gone.
    #[error("connection is closed")]
    Closed,
    /// The send buffer holds `buffered` bytes, at or over the byte budget.
    #[error("{buffered} bytes waiting, at the byte budget")]
    Bytes {
        /// The bytes buffered.
        buffered: usize,
    },
    /// `queued` budgeted sends wait to be written, at the message budget.
    #[error("{queued} messages waiting, at the message budget")]
    Messages {
        /// The budgeted sends waiting.
        queued: usize,
    },
}

/// A budgeted send that was taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Accepted {
    /// Whether the prepared frame was compressed again for this connection (its
    /// permessage-deflate agreement could not take the frame compressed once).
    pub recompressed: bool,
}

/// What a [grouped budgeted send](OnThread::send_many_within) came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct AcceptedMany {
    /// How many were taken: the first ones, in order.
    pub taken: usize,
    /// How many of those were compressed again for this connection.
    pub recompressed: usize,
    /// Why the next one (the one at `taken`) was refused; `None` when all were
    /// taken. Those after it were not tried.
    pub refused: Option<Refused>,
}

/// Prepared messages framed back to back, for a fan-out that sends the same
/// several messages to many connections: a connection that would send each
/// one's plain [frame](PreparedMessage::frame) takes them all in one copy
/// ([`OnThread::send_batch_within`]).
#[derive(Debug, Clone)]
pub struct PreparedBatch {
    frames: Bytes,
    /// Where each message's frame ends in `frames`.
    ends: Vec<usize>,
    /// Whether a message has a compressed frame (which a connection with
    /// permessage-deflate would send instead).
    compressed: bool,
}

impl PreparedBatch {
    /// The frames of `messages`, in order.
    pub fn new<'a>(messages: impl IntoIterator<Item = &'a PreparedMessage>) -> PreparedBatch {
        let mut frames = BytesMut::new();
        let mut ends = Vec::new();
        let mut compressed = false;
        for message in messages {
            frames.extend_from_slice(message.frame());
            ends.push(frames.len());
            compressed |= message.compressed_frame().is_some();
        }
        PreparedBatch {
            frames: frames.freeze(),
            ends,
            compressed,
        }
    }

    /// How many messages it holds.
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }
}

/// A connection's state on its own thread, from [`Conn::on_thread`](super::Conn::on_thread):
/// not `Send`, and cheap to clone. Every operation takes no lock; each keeps the
/// connection's rules (ready-state, the mirror other threads read, waking its
/// writer) as a send through [`Conn`](super::Conn) does.
#[derive(Clone)]
pub struct OnThread {
    owned: OwnedRef,
    id: ConnId,
}

impl fmt::Debug for OnThread {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OnThread").field("id", &self.id).finish()
    }
}

impl OnThread {
    pub(crate) fn new(owned: OwnedRef) -> OnThread {
        let id = owned.borrow().id();
        OnThread { owned, id }
    }

    /// The connection's id.
    pub fn id(&self) -> ConnId {
        self.id
    }

    /// Send `message` unless the connection holds `budget` or more: refused while
    /// its send buffer holds `budget.bytes` or more, or `budget.messages` budgeted
    /// sends wait to be written. One message is always taken below the marks,
    /// however large: a connection holds at most its budget plus one message.
    #[inline]
    pub fn send_within(
        &self,
        message: &PreparedMessage,
        budget: Budget,
    ) -> Result<Accepted, Refused> {
        let Ok(mut owned) = self.owned.try_borrow_mut() else {
            // Borrowed by the connection's own task: not reachable from there.
            return Err(Refused::Closed);
        };
        match owned.send_within(message, budget.bytes, budget.messages.max(1)) {
            Ok(Queued { recompressed, .. }) => Ok(Accepted { recompressed }),
            Err(OverBudget::Closed) => Err(Refused::Closed),
            Err(OverBudget::Bytes { buffered }) => Err(Refused::Bytes { buffered }),
            Err(OverBudget::Messages { queued }) => Err(Refused::Messages { queued }),
        }
    }

    /// Send `messages` in order, each as [`send_within`](Self::send_within) would
    /// (the budget checked before each), stopping at the first refused; the
    /// connection's other threads' view is updated and its writer woken once for
    /// them all.
    #[inline]
    pub fn send_many_within<'a>(
        &self,
        messages: impl IntoIterator<Item = &'a PreparedMessage>,
        budget: Budget,
    ) -> AcceptedMany {
        let Ok(mut owned) = self.owned.try_borrow_mut() else {
            // Borrowed by the connection's own task: not reachable from there.
            return AcceptedMany {
                taken: 0,
                recompressed: 0,
                refused: Some(Refused::Closed),
            };
        };
        accepted_many(owned.send_many_within(messages, budget.bytes, budget.messages.max(1)))
    }

    /// Send the messages of `batch` as [`send_many_within`](Self::send_many_within)
    /// would, their frames copied at once; `None` (nothing sent) when this
    /// connection would send them otherwise (it compresses them, or it is a
    /// client): send them with `send_many_within`.
    #[inline]
    pub fn send_batch_within(&self, batch: &PreparedBatch, budget: Budget) -> Option<AcceptedMany> {
        let Ok(mut owned) = self.owned.try_borrow_mut() else {
            // Borrowed by the connection's own task: not reachable from there.
            return Some(AcceptedMany {
                taken: 0,
                recompressed: 0,
                refused: Some(Refused::Closed),
            });
        };
        let many = owned.send_frames_within(
            &batch.frames,
            &batch.ends,
            batch.compressed,
            budget.bytes,
            budget.messages.max(1),
        )?;
        Some(accepted_many(many))
    }

    /// Bytes the connection holds for its peer, not yet handed to the transport.
    pub fn buffered_amount(&self) -> usize {
        self.owned.try_borrow().map_or(0, |o| o.shared().buffered())
    }

    /// Fail the connection with `error`'s close code: its actor receives `error`,
    /// then its `Close`. Nothing once closed.
    pub fn fail(&self, error: Error) {
        if let Ok(mut owned) = self.owned.try_borrow_mut() {
            owned.fail(error);
        }
    }

    /// Call `hook` with the connection's id once it is gone (its `Close` handed
    /// over, or its actor stopped). False, and `hook` dropped, when it is gone
    /// already.
    pub fn on_close(&self, hook: impl FnOnce(ConnId) + 'static) -> bool {
        match self.owned.try_borrow_mut() {
            Ok(mut owned) => owned.on_close(Box::new(hook)),
            Err(_) => false,
        }
    }

    /// Whether the connection is gone (its driver finished).
    pub fn is_gone(&self) -> bool {
        self.owned.try_borrow().is_ok_and(|o| o.is_finished())
    }
}

fn accepted_many(many: QueuedMany) -> AcceptedMany {
    AcceptedMany {
        taken: many.taken,
        recompressed: many.recompressed,
        refused: many.refused.map(|refused| match refused {
            OverBudget::Closed => Refused::Closed,
            OverBudget::Bytes { buffered } => Refused::Bytes { buffered },
            OverBudget::Messages { queued } => Refused::Messages { queued },
        }),
    }
}
