//! Lock-free building blocks that know nothing of the region around them: the ring of slots,
//! the slab free lists, futex calls, and the atomics they are written with (std's, or loom's
//! under `--cfg loom`, so the models run this very code). Nothing here imports from outside
//! `blocks`.

pub(crate) mod atomics;
#[cfg(not(loom))]
pub(crate) mod futex;
pub(crate) mod ring;
pub(crate) mod slab;
