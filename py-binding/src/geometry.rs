//! The geometry keywords of `create_bus` and `init_allocator` (`slots`, `max_message`, `memory`,
//! `max_processes`, `group_retention`): checked and turned into a [`BusConfig`], and the message
//! of a bus that exists with another geometry, in those keywords' terms.

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use shm_ring::{human_bytes, min_slab_memory, BusConfig};

/// The geometry a Python caller asks for, as the keywords read.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Geometry {
    pub slots: i64,
    pub max_message: i64,
    /// `None`: derived from `max_message`.
    pub memory: Option<i64>,
    pub max_processes: i64,
    /// Seconds.
    pub group_retention: f64,
}

fn bad(what: String) -> PyErr {
    PyValueError::new_err(what)
}

/// `value` as a `T`, or a ValueError naming the keyword and the range.
fn int<T: TryFrom<i64>>(keyword: &str, value: i64, range: &str) -> PyResult<T> {
    T::try_from(value).map_err(|_| bad(format!("{keyword} must be {range}, got {value}")))
}

impl Geometry {
    /// The config to create or attach with. Values of the right type but out of range are
    /// ValueErrors naming the keyword (the finer checks, a power of two, the smallest memory,
    /// are `Layout::compute`'s, reported by `bus_err`).
    pub(crate) fn config(&self) -> PyResult<BusConfig> {
        let ring_capacity = u32::try_from(self.slots)
            .ok()
            .filter(|n| (2..=1 << 24).contains(n) && n.is_power_of_two())
            .ok_or_else(|| {
                bad(format!(
                    "slots must be a power of two from 2 to 16777216, got {}",
                    self.slots
                ))
            })?;
        let max_message = int::<u32>(
            "max_message",
            self.max_message,
            "between 1 and 1073741824 bytes (1 GiB)",
        )?;
        let slab_memory = match self.memory {
            None => None,
            Some(m) => Some(int::<u64>("memory", m, "a positive number of bytes")?),
        };
        let max_processes = int::<u32>("max_processes", self.max_processes, "between 1 and 4096")?;
        let seconds = self.group_retention;
        if !(seconds.is_finite() && (0.0..=1e12).contains(&seconds)) {
            return Err(bad(format!(
                "group_retention must be a number of seconds from 0 to 1e12, got {seconds}"
            )));
        }
        Ok(BusConfig {
            ring_capacity,
            max_message,
            slab_memory,
            max_processes,
            group_retention_ms: (seconds * 1000.0).round() as u64,
            ..BusConfig::default()
        })
    }
}

/// The slab memory `init_allocator(capacity=n)` gives (the slab size of earlier versions, in
/// blocks): 4 KiB a block, and at least the smallest slab a bus of `max_message` accepts.
pub(crate) fn memory_of_capacity(capacity: u64, max_message: u32) -> u64 {
    capacity.saturating_mul(4096).max(min_slab_memory(
        max_message.clamp(1, shm_ring::MAX_MESSAGE_LIMIT),
    ))
}

/// One field of a geometry as the keyword that sets it, with a value as that keyword takes it.
fn keyword_values(cfg: &BusConfig) -> [(&'static str, String); 5] {
    let memory = cfg
        .slab_memory
        .unwrap_or_else(|| shm_ring::default_slab_memory(cfg.max_message));
    [
        ("slots", cfg.ring_capacity.to_string()),
        ("max_message", cfg.max_message.to_string()),
        ("memory", memory.to_string()),
        ("max_processes", cfg.max_processes.to_string()),
        (
            "group_retention",
            format!("{:?}", cfg.group_retention_ms as f64 / 1000.0),
        ),
    ]
}

/// `memory=16779264 (16.0 MiB)`, sizes also in binary units.
fn shown(keyword: &str, value: &str) -> String {
    match (keyword, value.parse::<u64>()) {
        ("max_message" | "memory", Ok(n)) => format!("{keyword}={n} ({})", human_bytes(n)),
        _ => format!("{keyword}={value}"),
    }
}

/// The error for a call that asked for `want` where bus `name` exists with another geometry:
/// every keyword that differs with both values, and the ways out. `None` when the bus cannot be
/// read (the caller then reports the bare mismatch).
pub(crate) fn mismatch(name: &str, want: &BusConfig) -> Option<PyErr> {
    let have = shm_ring::inspect(name).ok()?.geometry;
    let (want_kw, have_kw) = (keyword_values(want), keyword_values(&have));
    let differs: Vec<String> = want_kw
        .iter()
        .zip(&have_kw)
        .filter(|(w, h)| w.1 != h.1)
        .map(|(w, h)| format!("{} there, {} asked for", shown(h.0, &h.1), shown(w.0, &w.1)))
        .collect();
    if differs.is_empty() {
        return None;
    }
    let as_is: Vec<String> = have_kw.iter().map(|(k, v)| format!("{k}={v}")).collect();
    Some(bad(format!(
        "bus \"{name}\" exists with another geometry: {}; it is never resized. To use it as it \
         is, ask for its geometry (create_bus(\"{name}\", {})) or attach with \
         EventEngine(bus=\"{name}\"), which takes any; otherwise pick another bus name, or \
         remove this one with unlink_bus(\"{name}\") once no process uses it",
        differs.join("; "),
        as_is.join(", ")
    )))
}
