//! Every open connection of the process, for a graceful shutdown.

use std::{
    collections::HashMap,
    sync::{
        atomic::{AtomicU64, Ordering},
        Mutex, OnceLock, Weak,
    },
    time::{Duration, Instant},
};

use super::shared::{Shared, SharedRef};
use crate::proto::{CloseCode, ReadyState};

type Registry = Mutex<HashMap<u64, Weak<Mutex<Shared>>>>;

fn registry() -> &'static Registry {
    static REGISTRY: OnceLock<Registry> = OnceLock::new();
    REGISTRY.get_or_init(Default::default)
}

fn lock() -> std::sync::MutexGuard<'static, HashMap<u64, Weak<Mutex<Shared>>>> {
    registry().lock().unwrap_or_else(|e| e.into_inner())
}

pub(crate) fn register(shared: &SharedRef) -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    let id = NEXT.fetch_add(1, Ordering::Relaxed);
    lock().insert(id, std::sync::Arc::downgrade(shared));
    id
}

pub(crate) fn unregister(id: u64) {
    lock().remove(&id);
}

/// How many connections of this process are still running.
pub fn open_connections() -> usize {
    lock().len()
}

fn each(mut f: impl FnMut(&mut Shared)) {
    let all: Vec<_> = lock().values().filter_map(Weak::upgrade).collect();
    for shared in all {
        let mut s = Shared::lock(&shared);
        f(&mut s);
        s.wake_writer();
        s.wake_driver();
    }
}

/// Close every open connection of the process with 1001 (going away) and wait up to
/// `drain` for their closing handshakes; whatever is left then is cut off. Each
/// user actor receives its [`Close`](super::Close). Clients among them do not
/// reconnect.
///
/// Call it before stopping the server (`ServerHandle::stop`), as
/// `examples/echo.rs` does on Ctrl-C: actix-web's own graceful stop waits for
/// connections to end but does not tell WebSocket peers to go.
pub async fn shutdown(drain: Duration) {
    let deadline = Instant::now() + drain;
    each(|s| {
        #[cfg(feature = "client")]
        {
            // A client going away does not reconnect.
            s.close_requested = true;
        }
        let core = s.core();
        match core.ready_state() {
            ReadyState::Open => {
                let _ = core.close(CloseCode::GOING_AWAY, "server shutting down");
            }
            ReadyState::Connecting => core.fail(CloseCode::GOING_AWAY, ""),
            _ => {}
        }
    });
    while open_connections() > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    each(|s| {
        s.force_close = true;
        s.core().receive_eof();
    });
    // Let the drivers deliver their Close before the server stops.
    let settle = Instant::now() + Duration::from_millis(100);
    while open_connections() > 0 && Instant::now() < settle {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}
