//! Sleeping and waking across processes: a futex on a word inside the shared mapping.
//!
//! The calls deliberately do not use `FUTEX_PRIVATE_FLAG`: a private futex is keyed by the
//! process's address space and would never wake a sleeper in another process.
//!
//! Under loom the two calls are a condition variable with the same contract (sleep only while the
//! word holds the expected value, checked atomically with respect to a wake), and `wait` ignores
//! its timeout: a model then deadlocks, and fails, where the real code would lose a wake-up and
//! sleep out its time slice.

use crate::blocks::atomics::AtomicU32;
use std::time::Duration;

/// Sleeps while `*word == expected`, for at most `timeout` (spurious wake-ups are possible).
#[cfg(not(loom))]
pub fn wait(word: &AtomicU32, expected: u32, timeout: Duration) {
    let ts = libc::timespec {
        tv_sec: timeout.as_secs().min(i32::MAX as u64) as libc::time_t,
        tv_nsec: timeout.subsec_nanos() as libc::c_long,
    };
    // SAFETY: `word` is a valid, aligned u32 for the duration of the call (it lives in a mapping
    // the caller keeps alive); `ts` is a valid timespec; the remaining arguments are unused by
    // FUTEX_WAIT. The result only tells why we woke, which callers re-check anyway.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAIT,
            expected,
            &ts as *const libc::timespec,
            std::ptr::null::<u32>(),
            0u32,
        );
    }
}

/// Wakes every process sleeping on `word`.
#[cfg(not(loom))]
pub fn wake_all(word: &AtomicU32) {
    // SAFETY: `word` is a valid, aligned u32; FUTEX_WAKE only uses the address as a key.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAKE,
            i32::MAX,
            0usize,
            0usize,
            0u32,
        );
    }
}

#[cfg(loom)]
loom::lazy_static! {
    /// One lock and condition variable stand in for every futex word of a model (a wake of one
    /// word may wake sleepers of another: spurious wake-ups, which the callers allow for).
    static ref FUTEX: (loom::sync::Mutex<()>, loom::sync::Condvar) = Default::default();
}

/// Loom's stand-in for FUTEX_WAIT: sleeps (without a timeout) while `*word == expected`.
#[cfg(loom)]
pub fn wait(word: &AtomicU32, expected: u32, _timeout: Duration) {
    use crate::blocks::atomics::Ordering;
    let (lock, cond) = &*FUTEX;
    let g = lock.lock().unwrap();
    if word.load(Ordering::SeqCst) == expected {
        drop(cond.wait(g).unwrap());
    }
}

/// Loom's stand-in for FUTEX_WAKE of every sleeper.
#[cfg(loom)]
pub fn wake_all(_word: &AtomicU32) {
    let (lock, cond) = &*FUTEX;
    drop(lock.lock().unwrap());
    cond.notify_all();
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use std::sync::atomic::Ordering;
    use std::sync::Arc;

    #[test]
    fn wait_returns_on_value_change_and_wake() {
        let w = Arc::new(AtomicU32::new(0));
        // A stale expected value returns at once.
        wait(&w, 1, Duration::from_secs(10));
        let w2 = w.clone();
        let t = std::thread::spawn(move || {
            while w2.load(Ordering::SeqCst) == 0 {
                wait(&w2, 0, Duration::from_secs(10));
            }
        });
        w.store(1, Ordering::SeqCst);
        wake_all(&w);
        t.join().unwrap();
    }
}
