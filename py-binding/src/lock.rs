//! Locking this crate's mutexes. Critical sections here never run Python code and leave their
//! data consistent at every step, so a poisoned lock is still usable.

use std::sync::{Mutex, MutexGuard, TryLockError};

/// Locks `m`, waiting for it.
#[inline]
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Locks `m` if nobody holds it.
pub(crate) fn try_lock<T>(m: &Mutex<T>) -> Option<MutexGuard<'_, T>> {
    match m.try_lock() {
        Ok(g) => Some(g),
        Err(TryLockError::Poisoned(p)) => Some(p.into_inner()),
        Err(TryLockError::WouldBlock) => None,
    }
}
