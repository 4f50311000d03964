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
//! ```
//! # let name = format!("doc-lib-{}", std::process::id());
//! use shm_ring::{Bus, BusConfig, Codec, PyValue};
//! let bus = Bus::open_or_create(&name, &BusConfig { max_message: 4096, slab_blocks: 32, ring_capacity: 64, ..BusConfig::default() })?;
//! let mut sub = bus.subscribe()?;
//! bus.publisher()?.publish_pickled("md.tick", &[PyValue::Float(1.5)], &[("venue", PyValue::Str("X".into()))], None)?;
//! let msg = sub.recv(None)?.unwrap();
//! assert_eq!(msg.codec, Codec::Pickle as u8);
//! assert_eq!(shm_ring::pickle::decode(msg.payload).unwrap().to_string(), "((1.5,), {'venue': 'X'})");
//! # drop(sub); drop(bus);
//! # Bus::unlink(&name)?;
//! # Ok::<(), shm_ring::BusError>(())
//! ```

pub(crate) mod atomics;
#[cfg(not(loom))]
mod bus;
pub mod compact;
mod config;
mod error;
#[cfg(not(loom))]
mod futex;
#[cfg(not(loom))]
mod interrupt;
#[cfg(not(loom))]
mod layout;
pub mod liveness;
#[cfg(not(loom))]
mod observer;
pub mod pickle;
#[cfg(not(loom))]
mod publisher;
#[cfg(not(loom))]
mod recovery;
#[cfg(not(loom))]
mod region;
mod ring;
mod slab;
#[cfg(not(loom))]
mod snapshot;
#[cfg(not(loom))]
mod subscriber;
#[cfg(not(loom))]
mod table;
#[cfg(not(loom))]
mod wait;

#[cfg(not(loom))]
pub use bus::{inspect, inspect_with, Bus, Codec};
pub use config::{shm_path, validate_name, BusConfig};
pub use error::BusError;
#[cfg(not(loom))]
pub use interrupt::Interrupter;
#[cfg(not(loom))]
pub use observer::Observer;
pub use pickle::{DecodeError, PyValue};
#[cfg(not(loom))]
pub use publisher::{topic_hash, Publisher};
#[cfg(not(loom))]
pub use recovery::ReapReport;
#[cfg(not(loom))]
pub use snapshot::{
    list_buses, BusInfo, Counters, GroupRow, ProcessRow, RingRow, SlabClassRow, Snapshot,
};
#[cfg(not(loom))]
pub use subscriber::{Message, Subscriber};
#[cfg(not(loom))]
pub use table::Role;
