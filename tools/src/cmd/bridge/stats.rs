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
    /// Times the export side stopped taking bus messages because an importer had a full window
    /// of them unacknowledged (`flow`): while held, the bus holds its publishers back.
    pub held: AtomicU64,
    /// Importers forgotten because they stayed silent for `--ack-timeout` while this bridge
    /// waited for them.
    pub forgotten: AtomicU64,
    /// Times the NATS client dropped messages of an import subscription (its buffer was full):
    /// the importer then tells the exporters to stop waiting for what was lost.
    pub overflows: AtomicU64,
}

impl Counters {
    /// Adds `n` to `counter`.
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    /// Copies the counters into the bridge's row on the bus (one thread only: plain stores).
    pub fn store_on(&self, row: &shm_ring::BridgeCounters) {
        row.store(&self.counts());
    }

    /// The counters an operator sees, as they are now.
    pub fn counts(&self) -> shm_ring::BridgeCounts {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        shm_ring::BridgeCounts {
            out: get(&self.out),
            in_: get(&self.in_),
            dropped: get(&self.dropped),
            reconnects: get(&self.reconnects),
            held: get(&self.held),
            forgotten: get(&self.forgotten),
        }
    }

    /// The counters as the stats line shows them:
    /// `out N in N dropped N reconnects N held N forgotten N`.
    pub fn line(&self) -> String {
        let c = self.counts();
        format!(
            "out {} in {} dropped {} reconnects {} held {} forgotten {}",
            c.out, c.in_, c.dropped, c.reconnects, c.held, c.forgotten
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
        Counters::add(&c.held, 2);
        assert_eq!(
            c.line(),
            "out 3 in 0 dropped 1 reconnects 0 held 2 forgotten 0"
        );
    }
}
