//! The bridge's counters and how an operator sees them: one line on stdout every
//! `--stats-every` seconds and once more at exit. They live in the bridge process, not in the
//! bus's shared memory, so reading them needs nothing from the bus layout.

use std::sync::atomic::{AtomicU64, Ordering};

/// Counters shared by the bridge's threads (each only ever grows).
#[derive(Default, Debug)]
pub struct Counters {
    /// Bus messages handed to NATS.
    pub out: AtomicU64,
    /// NATS messages published on the bus.
    pub in_: AtomicU64,
    /// Messages known not to have arrived: gaps in another bridge's sequence numbers seen on
    /// import (lost by the server or the network, for example across a server restart),
    /// messages that cannot cross (a topic that is no NATS subject, a payload too large for the
    /// far side, an unknown codec), and those still queued when a stop could not flush them.
    pub dropped: AtomicU64,
    /// Times the connection to the server was made again after it was lost.
    pub reconnects: AtomicU64,
}

impl Counters {
    /// Adds `n` to `counter`.
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    /// The counters as the stats line shows them: `out N in N dropped N reconnects N`.
    pub fn line(&self) -> String {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        format!(
            "out {} in {} dropped {} reconnects {}",
            get(&self.out),
            get(&self.in_),
            get(&self.dropped),
            get(&self.reconnects)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_line_names_every_counter() {
        let c = Counters::default();
        Counters::add(&c.out, 3);
        Counters::add(&c.dropped, 1);
        assert_eq!(c.line(), "out 3 in 0 dropped 1 reconnects 0");
    }
}
