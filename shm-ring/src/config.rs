//! Bus geometry and options, bus-name validation and the path of a bus file.

use crate::BusError;
#[cfg(doc)]
use crate::{default_slab_memory, min_slab_memory};
use std::path::PathBuf;

/// Geometry and options of a bus. The geometry fields are stored in the region header; attaching
/// with a different geometry is a [`BusError::Mismatch`].
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct BusConfig {
    /// Ring slots, a power of two, at least 2 (default 4096).
    pub ring_capacity: u32,
    /// Largest payload in bytes, 1..=1 GiB (default 1 MiB); slab size classes go up to it.
    pub max_message: u32,
    /// Bytes of payload blocks across all size classes (the slab's memory budget); `None`
    /// derives it from `max_message` ([`default_slab_memory`]: room for 4 messages of
    /// `max_message` plus the small classes, about 16 MiB for 1 MiB messages, so the default bus
    /// is about 18 MiB). At least [`min_slab_memory`]. How it is split into size classes:
    /// `class_counts` in `region/layout.rs`. A region stores the resolved value, so attaching
    /// with `None` matches a bus created with the value `None` derives.
    pub slab_memory: Option<u64>,
    /// Rows in the process table; every publisher, subscriber and attached bus handle takes one
    /// (default 256: a Python engine holds three, so 85 engines fit; 128 bytes a row).
    pub max_processes: u32,
    /// Fan-out subscribers plus groups, at most 64 (one bit each in a slot's pending mask).
    pub max_subscribers: u32,
    /// File mode of a newly created region (default `0o600`).
    pub mode: u32,
    /// Attach to a region file owned by another uid.
    pub allow_foreign_owner: bool,
    /// How long a work-sharing group with no live member keeps its backlog and goes on receiving,
    /// so that a restarted worker picks up where the last one stopped (default 60,000 ms). While
    /// it is kept, publishers that fill the ring wait for it as for a member. Set by the creator.
    pub group_retention_ms: u64,
}

impl Default for BusConfig {
    fn default() -> Self {
        BusConfig {
            ring_capacity: 4096,
            max_message: 1 << 20,
            slab_memory: None,
            max_processes: 256,
            max_subscribers: 64,
            mode: 0o600,
            allow_foreign_owner: false,
            group_retention_ms: 60_000,
        }
    }
}

#[cfg(not(loom))]
impl BusConfig {
    /// Checks the geometry without touching any bus: [`BusError::BadConfig`] names a value that
    /// no bus can have (slots not a power of two, memory too small for one message...).
    pub fn check(&self) -> Result<(), BusError> {
        crate::region::layout::Layout::compute("", self).map(|_| ())
    }
}

/// Longest bus name accepted.
pub const MAX_NAME_LEN: usize = 200;

/// Checks a bus name: 1..=200 characters from `[A-Za-z0-9_.-]`, not containing `..`.
pub fn validate_name(name: &str) -> Result<(), BusError> {
    let bad = |reason| {
        Err(BusError::BadName {
            name: name.to_string(),
            reason,
        })
    };
    if name.is_empty() {
        return bad("the name is empty");
    }
    if name.len() > MAX_NAME_LEN {
        return bad("the name is longer than 200 characters");
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
    {
        return bad("only letters, digits, '_', '.' and '-' are allowed");
    }
    if name.contains("..") {
        return bad("the name must not contain \"..\"");
    }
    Ok(())
}

/// Directory holding bus files.
pub const SHM_DIR: &str = "/dev/shm";
/// File-name prefix of bus files.
pub const FILE_PREFIX: &str = "event_engine.";

/// The file backing bus `name`: `/dev/shm/event_engine.<name>`.
pub fn shm_path(name: &str) -> PathBuf {
    PathBuf::from(SHM_DIR).join(format!("{FILE_PREFIX}{name}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(validate_name("market_data-1.v2").is_ok());
        for bad in ["", "a/b", "..", "a..b", "x y", "é", &"a".repeat(201)] {
            assert!(
                matches!(validate_name(bad), Err(BusError::BadName { .. })),
                "{bad:?}"
            );
        }
        assert!(validate_name(&"a".repeat(200)).is_ok());
        assert_eq!(shm_path("x"), PathBuf::from("/dev/shm/event_engine.x"));
    }
}
