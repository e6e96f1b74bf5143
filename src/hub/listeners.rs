//! Who hears of presence changes: the application's actors (each a
//! `Recipient`, sent each change under the topic's lock, so in order) and its
//! closures, called in the same order on the hub's presence thread
//! (`ws-hub-presence`), with no lock of the hub held: a closure may call the hub.

use std::{
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        mpsc::{sync_channel, Receiver, SyncSender, TrySendError},
        Arc, Mutex,
    },
    thread,
};

use actix::Recipient;

use super::{sync::lock, types::Presence};

/// A closure told of presence changes.
pub(super) type OnPresence = dyn Fn(&Presence) + Send + Sync;

/// The closures, as the presence thread reads them (replaced whole when one is
/// added, so the thread calls them without holding the lock).
type Callbacks = Arc<Mutex<Arc<Vec<Arc<OnPresence>>>>>;

/// The presence listeners of one hub.
#[derive(Default)]
pub(super) struct Listeners {
    /// Whether there is any listener: the common case does nothing.
    any: AtomicBool,
    recipients: Mutex<Vec<Recipient<Presence>>>,
    callbacks: Callbacks,
    /// The presence thread's queue (its thread ends when this is dropped).
    thread: Mutex<Option<SyncSender<Presence>>>,
    /// Changes not queued for the closures: the queue was full.
    pub dropped: AtomicU64,
}

impl Listeners {
    /// Whether anyone listens.
    pub fn any(&self) -> bool {
        self.any.load(Ordering::Acquire)
    }

    /// Send each change to `recipient`.
    pub fn add_recipient(&self, recipient: Recipient<Presence>) {
        lock(&self.recipients).push(recipient);
        self.any.store(true, Ordering::Release);
    }

    /// Call `f` with each change on the presence thread (started now if it does
    /// not run), which holds at most `queue` changes waiting and counts the
    /// closures' panics in `panics`. `hub` names the hub in the logs.
    pub fn add_callback(
        &self,
        f: Arc<OnPresence>,
        queue: usize,
        panics: &Arc<AtomicU64>,
        hub: &str,
    ) -> std::io::Result<()> {
        let mut thread = lock(&self.thread);
        if thread.is_none() {
            let (tx, rx) = sync_channel(queue);
            let (callbacks, panics, hub) = (self.callbacks.clone(), panics.clone(), hub.to_owned());
            thread::Builder::new()
                .name("ws-hub-presence".into())
                .spawn(move || run(rx, &callbacks, &panics, &hub))?;
            *thread = Some(tx);
        }
        let mut callbacks = lock(&self.callbacks);
        let mut more = Vec::clone(&callbacks);
        more.push(f);
        *callbacks = Arc::new(more);
        self.any.store(true, Ordering::Release);
        Ok(())
    }

    /// Tell every listener of `presence`: the recipients now, the closures on
    /// the presence thread (a change that finds its queue full is dropped for
    /// them, counted and logged). Called under the topic's lock: never waits.
    pub fn tell(&self, presence: Presence, hub: &str) {
        for r in lock(&self.recipients).iter() {
            r.do_send(presence.clone());
        }
        if let Some(tx) = &*lock(&self.thread) {
            match tx.try_send(presence) {
                Ok(()) => {}
                Err(TrySendError::Full(p)) => {
                    self.dropped.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(%hub, topic = %p.topic, "presence change dropped for the closures: their queue is full");
                }
                Err(TrySendError::Disconnected(_)) => {}
            }
        }
    }
}

/// The presence thread: each change to each closure, in order, a panic in one
/// caught and counted.
fn run(rx: Receiver<Presence>, callbacks: &Callbacks, panics: &AtomicU64, hub: &str) {
    while let Ok(presence) = rx.recv() {
        let now = lock(callbacks).clone();
        for f in now.iter() {
            let call = std::panic::AssertUnwindSafe(|| f(&presence));
            if std::panic::catch_unwind(call).is_err() {
                panics.fetch_add(1, Ordering::Relaxed);
                tracing::error!(%hub, topic = %presence.topic, "a presence closure panicked");
            }
        }
    }
}
