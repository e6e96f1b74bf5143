//! Who holds which connections, for a graceful shutdown: one [`Registry`] per
//! server (a `ws::Server` and its clones), one for the clients, and the list of all
//! of them for the process-wide [`shutdown`].

use std::{
    collections::{HashMap, HashSet},
    future::poll_fn,
    hash::{Hash, Hasher},
    sync::{Arc, Mutex, MutexGuard, OnceLock, Weak},
    task::{Poll, Waker},
    time::Duration,
};

use super::shared::{Request, Shared};

/// A set of open connections that can be shut down together.
#[derive(Clone, Default)]
pub(crate) struct Registry {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("open", &self.len())
            .finish()
    }
}

struct Inner {
    /// Its key in [`all`].
    id: u64,
    state: Mutex<State>,
}

impl Default for Inner {
    fn default() -> Self {
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        Inner {
            id: NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            state: Mutex::default(),
        }
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        all().remove(&self.id);
    }
}

/// A connection in a registry, known by the address of its shared state (8 bytes
/// a connection in the table, where its id beside it would take 16): the
/// address is its own while it is listed, as the `Weak` keeps the allocation.
struct Member(Weak<Shared>);

impl Member {
    fn address(&self) -> *const Shared {
        self.0.as_ptr()
    }
}

impl PartialEq for Member {
    fn eq(&self, other: &Member) -> bool {
        self.address() == other.address()
    }
}

impl Eq for Member {}

impl Hash for Member {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.address().hash(state);
    }
}

#[derive(Default)]
struct State {
    conns: HashSet<Member>,
    /// Shutdowns waiting for the set to empty.
    waiters: Vec<Waker>,
    listed: bool,
    /// Shutdowns in progress: a connection added meanwhile (its handshake
    /// finished just after the shutdown told the others) is told at once.
    shutting_down: usize,
}

/// Every registry that has held a connection, by id: a registry leaves when it is
/// dropped, so there is nothing to scan on the way in.
fn all() -> MutexGuard<'static, HashMap<u64, Weak<Inner>>> {
    static ALL: OnceLock<Mutex<HashMap<u64, Weak<Inner>>>> = OnceLock::new();
    ALL.get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner())
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Registry {
    /// The clients' registry.
    #[cfg(feature = "client")]
    pub fn clients() -> Registry {
        static CLIENTS: OnceLock<Registry> = OnceLock::new();
        CLIENTS.get_or_init(Registry::default).clone()
    }

    pub fn add(&self, shared: &Arc<Shared>) {
        let mut state = self.inner.lock();
        state.conns.insert(Member(Arc::downgrade(shared)));
        let shutting_down = state.shutting_down > 0;
        let first = !std::mem::replace(&mut state.listed, true);
        drop(state);
        if shutting_down {
            let _ = shared.push(Request::Shutdown, 0);
        }
        if first {
            all().insert(self.inner.id, Arc::downgrade(&self.inner));
            count_with_metrics();
        }
    }

    pub fn remove(&self, shared: &Arc<Shared>) {
        let member = Member(Arc::downgrade(shared));
        let mut state = self.inner.lock();
        if state.conns.remove(&member) {
            let waiters = std::mem::take(&mut state.waiters);
            drop(state);
            waiters.into_iter().for_each(Waker::wake);
        }
    }

    pub fn len(&self) -> usize {
        self.inner.lock().conns.len()
    }

    fn each(&self, request: fn() -> Request) {
        self.each_marking(request, false);
    }

    /// [`each`](Self::each), marking a shutdown in progress (`mark`) under the
    /// same lock as the set is read.
    fn each_marking(&self, request: fn() -> Request, mark: bool) {
        let shared: Vec<_> = {
            let mut state = self.inner.lock();
            if mark {
                state.shutting_down += 1;
            }
            state.conns.iter().filter_map(|m| m.0.upgrade()).collect()
        };
        for shared in shared {
            let _ = shared.push(request(), 0);
        }
    }

    /// Resolves once no connection is left (woken by the connections as they go).
    async fn emptied(&self) {
        poll_fn(|cx| {
            let mut state = self.inner.lock();
            if state.conns.is_empty() {
                return Poll::Ready(());
            }
            state.waiters.push(cx.waker().clone());
            Poll::Pending
        })
        .await
    }

    /// Close every connection with 1001 (going away) and wait up to `drain` for
    /// their closing handshakes; then cut off whatever is left, and wait for those
    /// to deliver their `Close` (at most 1 s more).
    ///
    /// A connection added while it is in progress is told to close at once: the
    /// set is read and the shutdown marked under one lock, so none falls between.
    pub async fn shutdown(&self, drain: Duration) {
        /// Unmarks the shutdown however it ends (also when its future is dropped).
        struct Marked<'a>(&'a Inner);
        impl Drop for Marked<'_> {
            fn drop(&mut self) {
                self.0.lock().shutting_down -= 1;
            }
        }
        let _marked = Marked(&self.inner);
        self.each_marking(|| Request::Shutdown, true);
        if tokio::time::timeout(drain, self.emptied()).await.is_ok() {
            return;
        }
        self.each(|| Request::Cut);
        let _ = tokio::time::timeout(Duration::from_secs(1), self.emptied()).await;
    }
}

/// How many connections of this process are open (servers and clients).
pub fn open_connections() -> usize {
    let registries: Vec<_> = all().values().filter_map(Weak::upgrade).collect();
    registries.iter().map(|r| r.lock().conns.len()).sum()
}

/// Close every open connection of the process (every server's and every client's)
/// with 1001 (going away) and wait up to `drain` for their closing handshakes;
/// whatever is left then is cut off. Each actor receives its
/// [`Close`](super::Close); clients do not reconnect. To stop one server and not
/// the others, use its own `Server::shutdown`.
///
/// Call it before stopping the server (`ServerHandle::stop`), as
/// `examples/echo.rs` does on Ctrl-C: actix-web's own graceful stop waits for
/// connections to end but does not tell WebSocket peers to go.
pub async fn shutdown(drain: Duration) {
    let registries: Vec<Registry> = all()
        .values()
        .filter_map(Weak::upgrade)
        .map(|inner| Registry { inner })
        .collect();
    let each = registries.iter().map(|r| r.shutdown(drain));
    join_all(each).await;
}

/// Await every future of `futures` (a handful: one per server), together.
async fn join_all<F: std::future::Future<Output = ()>>(futures: impl Iterator<Item = F>) {
    let mut futures: Vec<_> = futures.map(Box::pin).map(Some).collect();
    poll_fn(|cx| {
        let mut pending = false;
        for slot in futures.iter_mut() {
            if let Some(f) = slot {
                if f.as_mut().poll(cx).is_ready() {
                    *slot = None;
                } else {
                    pending = true;
                }
            }
        }
        if pending {
            Poll::Pending
        } else {
            Poll::Ready(())
        }
    })
    .await
}

/// Open connections of the process (servers' and clients'), by ready-state
/// ([`ReadyState::as_u8`](crate::proto::ReadyState::as_u8) the index; closed: the close is done, the connection's
/// last work is in progress).
fn count_by_state() -> [u64; 4] {
    let registries: Vec<_> = all().values().filter_map(Weak::upgrade).collect();
    let mut counts = [0u64; 4];
    for registry in registries {
        let shared: Vec<_> = registry
            .lock()
            .conns
            .iter()
            .filter_map(|m| m.0.upgrade())
            .collect();
        for shared in shared {
            counts[usize::from(shared.ready_state().as_u8())] += 1;
        }
    }
    counts
}

/// The metrics count the connections by state with [`count_by_state`] (once per
/// process, when the first registry lists itself).
fn count_with_metrics() {
    static ONCE: OnceLock<()> = OnceLock::new();
    ONCE.get_or_init(|| crate::metrics::set_connection_counter(count_by_state));
}
