//! The bridge's counters and how an operator sees them: one line on stdout every
//! `--stats-every` seconds and once more at exit, and in the bus: the main loop copies them
//! into the row of the bridge's bus handle every tick (50 ms), with the server it connects
//! to, where `event-engine inspect` and `watch` read them.

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

    /// Copies the counters into the bridge's row on the bus (one thread only: plain stores).
    pub fn store_on(&self, row: &shm_ring::BridgeCounters) {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        row.store(
            get(&self.out),
            get(&self.in_),
            get(&self.dropped),
            get(&self.reconnects),
        );
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

/// `urls` (comma-separated NATS URLs) without user names, passwords or tokens, which must not
/// be written into a bus that every process of the user can read.
pub fn without_credentials(urls: &str) -> String {
    urls.split(',')
        .map(|url| {
            let url = url.trim();
            let (scheme, rest) = match url.split_once("://") {
                Some((scheme, rest)) => (Some(scheme), rest),
                None => (None, url),
            };
            let authority_end = rest.find('/').unwrap_or(rest.len());
            let rest = match rest[..authority_end].rfind('@') {
                Some(at) => &rest[at + 1..],
                None => rest,
            };
            match scheme {
                Some(scheme) => format!("{scheme}://{rest}"),
                None => rest.to_string(),
            }
        })
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_stay_out_of_the_bus() {
        assert_eq!(
            without_credentials("nats://u:p@a:4222, tls://tok@b/x,c:4222"),
            "nats://a:4222,tls://b/x,c:4222"
        );
        assert_eq!(without_credentials("nats://a:4222"), "nats://a:4222");
    }

    #[test]
    fn the_line_names_every_counter() {
        let c = Counters::default();
        Counters::add(&c.out, 3);
        Counters::add(&c.dropped, 1);
        assert_eq!(c.line(), "out 3 in 0 dropped 1 reconnects 0");
    }
}
