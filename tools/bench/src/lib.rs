//! Benchmark programs of the event engine and the Rust tick producer.
//!
//! * `w4`: workload W4 of `docs/benchmarks.md`, Rust to Rust across two processes on the
//!   shared-memory bus, against `crossbeam`'s `ArrayQueue` between two threads (the in-process
//!   ceiling) and, with the `iceoryx2` feature, iceoryx2 publish-subscribe between two processes.
//! * `tick-producer`: publishes market ticks (raw or pickled) for Python consumers (W3, demos).
//!
//! Every measured process runs as a child of the `w4` coordinator (the same binary started with a
//! hidden `--role`), so each reports its own peak memory and the coordinator can check that
//! exactly the messages sent were received.

pub mod child;
pub mod clock;
pub mod coord;
#[cfg(feature = "iceoryx2")]
pub mod ice;
pub mod inproc;
pub mod params;
pub mod payload;
pub mod report;
pub mod shm;
pub mod stats;
pub mod ticks;
