//! Lock-free building blocks that know nothing of the region around them: the ring of slots,
//! the slab free lists, futex calls, and the atomics they are written with (std's, or loom's
//! under `--cfg loom`, so the models run this very code). Nothing here imports from outside
//! `blocks`.

// Under loom only the models use these, and not every item of each.
#[cfg_attr(loom, allow(dead_code))]
pub(crate) mod atomics;
#[cfg_attr(loom, allow(dead_code))]
pub(crate) mod entry;
#[cfg_attr(loom, allow(dead_code))]
pub(crate) mod futex;
#[cfg_attr(loom, allow(dead_code))]
pub(crate) mod group;
#[cfg_attr(loom, allow(dead_code))]
pub(crate) mod holds;
#[cfg_attr(loom, allow(dead_code))]
pub(crate) mod interest;
pub(crate) mod ring;
pub(crate) mod slab;
#[cfg_attr(loom, allow(dead_code))]
pub(crate) mod sleepers;
