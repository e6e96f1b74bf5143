//! Each thread's connections, by slot: how a [`Conn`](super::Conn) (which is `Send`
//! and holds only the [`Shared`] half) finds the [`Owned`] half when it is used on
//! the connection's own thread.

use std::{
    cell::{Cell, RefCell},
    rc::Rc,
    sync::atomic::{AtomicU64, Ordering},
};

use super::{id::ConnId, owned::Owned, shared::Shared};

/// The thread-owned half of a connection, as its thread holds it.
pub(crate) type OwnedRef = Rc<RefCell<Owned>>;

thread_local! {
    static NUMBER: Cell<u64> = const { Cell::new(0) };
    static SLAB: RefCell<Slab> = const { RefCell::new(Slab { entries: Vec::new(), free: Vec::new() }) };
}

/// A number unique to the calling thread (cheaper to read than its `ThreadId`).
pub(crate) fn thread_number() -> u64 {
    NUMBER.with(|t| {
        let number = t.get();
        if number != 0 {
            return number;
        }
        static NEXT: AtomicU64 = AtomicU64::new(1);
        let number = NEXT.fetch_add(1, Ordering::Relaxed);
        t.set(number);
        number
    })
}

/// This thread's connections, by slot.
struct Slab {
    entries: Vec<Option<(ConnId, OwnedRef)>>,
    free: Vec<usize>,
}

/// Make the owned half of connection `id` with `make`, which is given the slot
/// the connection takes in this thread's slab, and put it there.
pub(crate) fn insert(id: ConnId, make: impl FnOnce(usize) -> Owned) -> OwnedRef {
    SLAB.with(|slab| {
        let mut slab = slab.borrow_mut();
        let slot = match slab.free.pop() {
            Some(slot) => slot,
            None => {
                slab.entries.push(None);
                slab.entries.len() - 1
            }
        };
        let owned = Rc::new(RefCell::new(make(slot)));
        slab.entries[slot] = Some((id, owned.clone()));
        owned
    })
}

/// The connection of `shared` leaves this thread's slab.
pub(crate) fn remove(shared: &Shared) {
    let (slot, id) = (shared.slot(), shared.id());
    // Dropped outside the slab's borrow: the connection's state may hold hooks.
    let _removed = SLAB.with(|slab| {
        let mut slab = slab.borrow_mut();
        let entry = slab.entries.get_mut(slot)?;
        if entry.as_ref().is_none_or(|(i, _)| *i != id) {
            return None;
        }
        let removed = entry.take();
        super::clock::disarm(slot);
        slab.free.push(slot);
        if slab.free.len() == slab.entries.len() && slab.entries.capacity() > 64 {
            // No connection left on this thread: give the memory back.
            slab.entries = Vec::new();
            slab.free = Vec::new();
        }
        removed
    });
}

/// The owned half of `shared`'s connection, when called on its thread and the
/// connection is still there.
pub(crate) fn owned_of(shared: &Shared) -> Option<OwnedRef> {
    if shared.owner() != thread_number() {
        return None;
    }
    SLAB.with(|slab| match slab.borrow().entries.get(shared.slot()) {
        Some(Some((id, owned))) if *id == shared.id() => Some(owned.clone()),
        _ => None,
    })
}

/// Run `f` on the owned half of `shared`'s connection, when called on its thread,
/// the connection is still there and its state is not borrowed already (a send
/// from inside the connection's own task or driver); `None` otherwise.
#[inline]
pub(crate) fn with_owned<T>(shared: &Shared, f: impl FnOnce(&mut Owned) -> T) -> Option<T> {
    let owned = owned_of(shared)?;
    let mut owned = owned.try_borrow_mut().ok()?;
    Some(f(&mut owned))
}

/// The timer of the connection in `slot` of this thread's slab fired (its thread's
/// clock says so): its state is marked and its driver woken. False when the state
/// is in use (never between tasks), so the clock looks again later.
pub(crate) fn timer_fired(slot: usize) -> bool {
    let owned = SLAB.with(|slab| match slab.borrow().entries.get(slot) {
        Some(Some((_, owned))) => Some(owned.clone()),
        _ => None,
    });
    let Some(owned) = owned else {
        return true;
    };
    let Ok(mut owned) = owned.try_borrow_mut() else {
        return false;
    };
    owned.timer_fired();
    true
}
