//! One model of a bus, computed from `shm_ring` snapshots, that every view renders: `inspect`
//! as tables or as JSON (the model serialized is the `inspect --json` document, schema 1) and
//! `watch` as a live dashboard.
//!
//! [`BusModel`] holds, for one snapshot: the geometry and ring positions, the processes with
//! their role and command line, the groups and consumers, the topics that flow and whom they
//! reach, who waits for whom (blocked publishers, unpublished claims), the bridges, the slab
//! and the counters; with an earlier snapshot, the rates between the two ([`Activity`]).
//!
//! It is defined here, apart from the snapshot, because its field names are an API that
//! scripts rely on and must not move when the bus internals do; `inspect --help` documents
//! every field. Everything in it comes from the region and is only shown: text is whatever the
//! snapshot validated, and an index that names nothing live is shown as such.

pub mod activity;
pub mod consumers;
pub mod processes;
pub mod region;
pub mod topics;
pub mod waits;

pub use activity::Activity;
pub use consumers::{Consumer, ConsumerRef, Group};
pub use processes::{command_of, per_process, role_name, Bridge, Process, ProcessSummary, Summary};
pub use region::{Counters, Geometry, Ring, SlabClass};
pub use topics::TopicFlow;
pub use waits::{Blocked, Holder, Holding};

use serde::Serialize;
use shm_ring::Snapshot;
use std::time::Duration;

/// Version of the JSON shape of [`BusModel`]; bumped only for changes that break readers.
pub const SCHEMA_VERSION: u32 = 1;

/// A bus as `inspect` and `watch` show it (serialized: `inspect --json`).
#[derive(Serialize, Debug)]
pub struct BusModel {
    /// [`SCHEMA_VERSION`].
    pub schema: u32,
    /// Bus name.
    pub name: String,
    /// Region layout version.
    pub layout_version: u32,
    /// File size in bytes.
    pub file_size: u64,
    /// Creation time, ns since the Unix epoch.
    pub created_ns: u64,
    /// Geometry stored in the header.
    pub geometry: Geometry,
    /// Ring positions.
    pub ring: Ring,
    /// Counts by kind of attachment.
    pub summary: Summary,
    /// One entry per process-table row in use.
    pub processes: Vec<Process>,
    /// One entry per group.
    pub groups: Vec<Group>,
    /// One entry per live consumer (fan-out subscriber or group).
    pub consumers: Vec<Consumer>,
    /// The topics published, summed over publishers (including those that left).
    pub topics: Vec<TopicFlow>,
    /// Milliseconds between the two snapshots the topic rates come from (null: one snapshot).
    pub rates_over_ms: Option<u64>,
    /// Publishers waiting for room, and whom they wait for.
    pub blocked: Vec<Blocked>,
    /// Publishers holding positions they claimed and have not published.
    pub holding: Vec<Holding>,
    /// Bridges attached to the bus.
    pub bridges: Vec<Bridge>,
    /// One entry per slab size class.
    pub slab: Vec<SlabClass>,
    /// Bus-wide counters.
    pub counters: Counters,
    /// What is corrupt in the region, one sentence each; empty for a sound bus.
    pub corruption: Vec<String>,
    /// The traffic since an earlier snapshot (`None`: one snapshot). Not in the JSON: its
    /// topic rates are.
    #[serde(skip)]
    pub activity: Option<Activity>,
}

impl BusModel {
    /// The model of `cur`, with rates since `prev`, taken `elapsed` earlier.
    pub fn between(prev: &Snapshot, cur: &Snapshot, elapsed: Duration) -> BusModel {
        let mut m = BusModel::of(cur);
        m.topics = topics::topics_with_rates(prev, cur, elapsed.as_secs_f64());
        m.rates_over_ms = Some(elapsed.as_millis() as u64);
        m.activity = Some(Activity::between(prev, cur, elapsed));
        m
    }

    /// The model of one snapshot (no rates).
    pub fn of(s: &Snapshot) -> BusModel {
        BusModel {
            schema: SCHEMA_VERSION,
            name: s.name.clone(),
            layout_version: s.version,
            file_size: s.file_size,
            created_ns: s.created_ns,
            geometry: region::geometry(s),
            ring: region::ring(s),
            summary: processes::summary(s),
            processes: processes::processes(s),
            groups: consumers::groups(s),
            consumers: consumers::consumers(s),
            topics: topics::topics(s),
            rates_over_ms: None,
            blocked: waits::blocked(s),
            holding: waits::holding(s),
            bridges: processes::bridges(s),
            slab: region::slab(s),
            counters: region::counters(s),
            corruption: s.corruption.clone(),
            activity: None,
        }
    }

    /// The command line of process `pid`, as its rows give it (`None`: dead, unreadable, or
    /// not attached).
    pub fn command(&self, pid: u32) -> Option<&str> {
        self.processes
            .iter()
            .filter(|p| p.pid == pid)
            .find_map(|p| p.command.as_deref())
    }

    /// The seconds between the two snapshots the rates come from, `None` without rates.
    pub fn rate_secs(&self) -> Option<f64> {
        self.activity.as_ref().and_then(Activity::secs)
    }
}
