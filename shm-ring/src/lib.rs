//! The shared-memory bus of the event engine: a named region in `/dev/shm` holding a slab of
//! payload blocks, a lock-free multi-producer ring with per-consumer acknowledgement, a process
//! table, groups for work sharing, futex wake-ups and crash recovery.
//!
//! Delivery: every fan-out subscriber gets every message published after it subscribed, in each
//! publisher's order; each group gets every such message once, handled by one of its members;
//! publishers wait (never overwrite) when the slowest consumer is a full ring behind. Any process
//! may be killed at any point: survivors (or [`Bus::reap`]) reclaim what it held, and when the last
//! process leaves every block is free again.
//!
//! Design choices, in brief (each module says more):
//!
//! * The ring follows Vyukov's bounded queue with a `pending` mask of consumer bits per slot: a
//!   full ring is "the slot's previous occupant is not yet released by every consumer", so neither
//!   side ever scans cursors, and the last consumer to clear its bit frees the slot.
//! * Topic plus payload up to 136 bytes travel inside the slot; larger ones take a slab block of
//!   the smallest class that fits (falling back to larger classes before waiting). Topic literals
//!   are stored with each message rather than interned in a region table.
//! * Joining, leaving and reaping run under one table lock held for microseconds and taken over
//!   from a dead owner; publish and receive never take it.
//! * Every slot, row and consumer entry is addressed by index; every value read from the mapping
//!   is range-checked, and the process keeps its own validated copy of the layout.
//! * [`Observer`]s read only messages that some consumer still holds: with no subscriber attached,
//!   a message is dropped at once and an observer counts it as skipped.
//!
//! ```
//! # struct Unlink(String);
//! # impl Drop for Unlink { fn drop(&mut self) { let _ = event_engine_shm::Bus::unlink(&self.0); } }
//! # let name = format!("doc-lib-{}", std::process::id());
//! # let _unlink = Unlink(name.clone());
//! use event_engine_shm::{Bus, BusConfig, Codec, PyValue};
//! let bus = Bus::open_or_create(&name, &BusConfig { max_message: 4096, slab_memory: Some(40 << 10), ring_capacity: 64, ..BusConfig::default() })?;
//! let mut sub = bus.subscribe()?;
//! bus.publisher()?.publish_pickled("md.tick", &[PyValue::Float(1.5)], &[("venue", PyValue::Str("X".into()))], None)?;
//! let msg = sub.recv(None)?.unwrap();
//! assert_eq!(msg.codec, Codec::Pickle as u8);
//! assert_eq!(event_engine_shm::wire::pickle::decode(msg.payload).unwrap().to_string(), "((1.5,), {'venue': 'X'})");
//! # drop(sub); drop(bus);
//! # Ok::<(), event_engine_shm::BusError>(())
//! ```

// Layers, each importing only from those above it in this list (see `docs/design.md`):
// errors and configuration; the wire format; lock-free building blocks; the region; recovery;
// waiting; the API (handle, publisher, subscriber, observer, bus).
mod config;
mod error;
pub mod wire;

mod blocks;
#[cfg(not(loom))]
mod region;

#[cfg(not(loom))]
mod recovery;
#[cfg(not(loom))]
mod wait;

#[cfg(not(loom))]
mod addressing;
#[cfg(not(loom))]
mod bus;
#[cfg(not(loom))]
pub mod fork;
#[cfg(not(loom))]
mod handle;
#[cfg(not(loom))]
mod holder;
#[cfg(not(loom))]
mod interrupt;
#[cfg(not(loom))]
mod observer;
#[cfg(not(loom))]
mod publisher;
#[cfg(not(loom))]
mod seat;
#[cfg(not(loom))]
mod subscriber;
#[cfg(not(loom))]
#[doc(hidden)]
pub mod testing;

#[cfg(not(loom))]
pub use bus::{
    inspect, inspect_with, observe, observe_with, BridgeCounters, Bus, SubscribeOptions,
};
pub use config::{shm_path, validate_name, BusConfig};
pub use error::BusError;
#[cfg(not(loom))]
pub use holder::{holds_at_exit, Hold, Holder, Loan, Refused, DEFAULT_HOLD_LIMIT};
#[cfg(not(loom))]
pub use interrupt::Interrupter;
#[cfg(not(loom))]
pub use observer::Observer;
#[cfg(not(loom))]
pub use publisher::Publisher;
#[cfg(not(loom))]
pub use recovery::snapshot::{
    list_buses, BridgeRow, BusInfo, ConsumerRow, Counters, GroupRow, ProcessRow, RingRow,
    SlabClassRow, Snapshot, TopicCount, Unpublished,
};
#[cfg(not(loom))]
pub use recovery::{take_reaps, ReapReport, ReapedProcess};
#[cfg(not(loom))]
pub use region::layout::{
    default_slab_memory, human_bytes, min_slab_memory, MAX_MESSAGE_LIMIT, SMALL_CLASS_BYTES,
};
#[cfg(not(loom))]
pub use region::liveness;
#[cfg(not(loom))]
pub use region::message::Message;
#[cfg(not(loom))]
pub use region::stats::BridgeCounts;
#[cfg(not(loom))]
pub use region::table::{validate_group, Role};
#[cfg(not(loom))]
pub use subscriber::{InterestHandle, MissedCounter, RecvOptions, Subscriber};
pub use wire::pickle::{DecodeError, PyValue};
pub use wire::{topic_hash, Codec};

/// The README's Rust example, compiled and run as a doctest so that it stays true.
#[cfg(all(doctest, not(loom)))]
#[doc = include_str!("../../README.md")]
struct ReadmeExample;
