//! How the hub takes its locks.

use std::sync::{Mutex, MutexGuard};

/// Take `m`, poisoned or not: the hub's tables stay consistent across a panic
/// (every callback of the application runs under `catch_unwind`), so one thread's
/// panic never locks the others out.
pub(super) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
