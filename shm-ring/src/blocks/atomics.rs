//! Atomics used by the lock-free parts (slab free lists, ring slots).
//!
//! Under `--cfg loom` these are loom's model-checked atomics, so the same algorithm code runs in
//! the loom models; otherwise they are the std atomics, which have the same in-memory layout as
//! the plain integers and can therefore live in the shared mapping.

#[cfg(loom)]
#[allow(unused_imports)]
pub(crate) use loom::sync::atomic::{fence, AtomicU32, AtomicU64, Ordering};
#[cfg(not(loom))]
pub(crate) use std::sync::atomic::{fence, AtomicU32, AtomicU64, Ordering};

/// Spin hint inside retry loops; under loom a yield so the model checker can switch threads.
#[inline]
pub(crate) fn spin_hint() {
    #[cfg(loom)]
    loom::thread::yield_now();
    #[cfg(not(loom))]
    std::hint::spin_loop();
}

/// Marks a store-then-load on two different words that relies on both being `SeqCst` (the
/// store-buffering pattern: "either I see your store or you see mine"). The C11 model gives that
/// to `SeqCst` accesses on their own, and so do the processors we run on, so this is nothing in
/// a real build. Loom models `SeqCst` accesses as `AcqRel`, under which both sides may miss each
/// other (tokio-rs/loom#180), but it does model `fence(SeqCst)`: the fence makes the models
/// check the guarantee the real build has.
#[inline(always)]
pub(crate) fn sc_store_load() {
    #[cfg(loom)]
    fence(Ordering::SeqCst);
}

/// Decrements a count, never below zero (a count a dead process left half-updated must not wrap).
pub(crate) fn saturating_dec(w: &AtomicU32) {
    let _ = w.fetch_update(Ordering::AcqRel, Ordering::Relaxed, |v| v.checked_sub(1));
}
