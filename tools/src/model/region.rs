//! The parts of a bus that are the region's own rather than a process's: geometry, ring
//! positions, slab size classes and the bus-wide counters.

use serde::Serialize;
use shm_ring::Snapshot;

/// Geometry stored in the header.
#[derive(Serialize, Debug)]
pub struct Geometry {
    /// Ring slots.
    pub ring_capacity: u32,
    /// Largest payload in bytes.
    pub max_message: u32,
    /// Bytes of payload blocks across all size classes (the slab's memory budget).
    pub slab_memory: u64,
    /// Payload blocks across all size classes (derived from `slab_memory` and `max_message`).
    pub slab_blocks: u32,
    /// Process-table rows.
    pub max_processes: u32,
    /// Fan-out subscribers plus groups.
    pub max_subscribers: u32,
}

/// Ring positions.
#[derive(Serialize, Debug)]
pub struct Ring {
    /// Messages ever published.
    pub head: u64,
    /// Lowest live consumer cursor (`head` when there is none).
    pub tail: u64,
    /// `head - tail`.
    pub occupancy: u64,
    /// Slots.
    pub capacity: u64,
}

/// One slab size class.
#[derive(Serialize, Debug)]
pub struct SlabClass {
    /// Block size in bytes.
    pub block_size: u32,
    /// Blocks in the class.
    pub total: u32,
    /// Blocks holding a message.
    pub used: u32,
    /// Blocks free.
    pub free: u32,
    /// Holds on its blocks (views of received buffers, loans; one per holder and block).
    pub held: u32,
}

/// Bus-wide counters.
#[derive(Serialize, Debug)]
pub struct Counters {
    /// Messages published.
    pub published: u64,
    /// Messages no consumer wanted, since the bus was created.
    pub unrouted: u64,
    /// Publishes that found the ring or slab full and waited.
    pub full_waits: u64,
    /// Messages handed to another group member after a member died.
    pub redeliveries: u64,
    /// Dead process-table rows reclaimed.
    pub reaped: u64,
    /// Messages dropped with groups kept past the group retention without a member.
    pub backlog_dropped: u64,
    /// Subscribers asleep waiting for messages.
    pub sleeping_subscribers: u32,
    /// Publishers asleep waiting for room.
    pub sleeping_publishers: u32,
}

/// The geometry of `s`.
pub fn geometry(s: &Snapshot) -> Geometry {
    let g = &s.geometry;
    Geometry {
        ring_capacity: g.ring_capacity,
        max_message: g.max_message,
        // A snapshot's geometry always holds the region's resolved memory.
        slab_memory: g.slab_memory.unwrap_or(0),
        slab_blocks: s.slab.iter().map(|c| c.total).sum(),
        max_processes: g.max_processes,
        max_subscribers: g.max_subscribers,
    }
}

/// The ring positions of `s`.
pub fn ring(s: &Snapshot) -> Ring {
    Ring {
        head: s.ring.head,
        tail: s.ring.tail,
        occupancy: s.ring.occupancy,
        capacity: s.ring.capacity,
    }
}

/// The slab size classes of `s`, smallest first.
pub fn slab(s: &Snapshot) -> Vec<SlabClass> {
    s.slab
        .iter()
        .map(|c| SlabClass {
            block_size: c.block_size,
            total: c.total,
            used: c.used,
            free: c.free,
            held: c.held,
        })
        .collect()
}

/// The bus-wide counters of `s`.
pub fn counters(s: &Snapshot) -> Counters {
    let c = &s.counters;
    Counters {
        published: c.published,
        unrouted: c.unrouted,
        full_waits: c.full_waits,
        redeliveries: c.redeliveries,
        reaped: c.reaped,
        backlog_dropped: c.backlog_dropped,
        sleeping_subscribers: c.sub_sleepers,
        sleeping_publishers: c.pub_sleepers,
    }
}
