//! Everything the bridge does on the bus, and nothing else: read the messages to export, and
//! publish the imported ones. The export side is a fan-out subscriber whose interest is the
//! export patterns, so the bus addresses it only what it exports (and a bridge never holds back
//! publishers of other topics); the local filter stays as a second check.
//!
//! Loop prevention on this side: every slot names the process-table row and pid of its
//! publisher, so the reader skips what the bridge's own [`ImportWriter`] published. That holds
//! even when the same pattern is both imported and exported.

use crate::signals::StopFlag;
use crate::topic_filter::TopicFilter;
use engine_core::Topic;
use shm_ring::{Bus, BusError, Codec, Publisher, SubscribeOptions, Subscriber};
use std::time::{Duration, Instant};

/// How long one wait for bus messages (or for room on the bus) lasts before the stop flag is
/// looked at again.
const POLL: Duration = Duration::from_millis(100);
/// Most messages handled per receive call.
const BATCH: usize = 256;

/// The identity a slot records for the bridge's own publisher.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PublisherId {
    row: u32,
    pid: u32,
}

/// Reads the bus messages whose topic matches an export pattern.
pub struct ExportReader {
    subscriber: Subscriber,
    filter: TopicFilter,
    skip: Option<PublisherId>,
}

impl ExportReader {
    /// A fan-out subscriber on `bus` that yields what `patterns` match, except messages
    /// published by `skip` (the bridge's own import publisher).
    pub fn new(
        bus: &Bus,
        patterns: Vec<Topic>,
        skip: Option<PublisherId>,
    ) -> Result<ExportReader, BusError> {
        let topics = patterns.iter().map(|p| p.literal().to_string()).collect();
        Ok(ExportReader {
            subscriber: bus.subscribe_with(&SubscribeOptions {
                topics: Some(topics),
                ..SubscribeOptions::default()
            })?,
            filter: TopicFilter::new(patterns),
            skip,
        })
    }

    /// Until `stop` is set, hands each matching message to `export` as (topic, codec tag,
    /// payload); `export` may block, which holds the bus's publishers back once the ring is full
    /// (nothing is overwritten). Returns when `stop` is set or `export` returns false.
    pub fn run(
        &mut self,
        stop: &StopFlag,
        mut export: impl FnMut(&str, u8, &[u8]) -> bool,
    ) -> Result<(), BusError> {
        let mut going = true;
        while going && !stop.is_set() {
            let (filter, skip) = (&mut self.filter, self.skip);
            self.subscriber.recv_batch(BATCH, Some(POLL), |m| {
                let own = skip
                    == Some(PublisherId {
                        row: m.publisher,
                        pid: m.publisher_pid,
                    });
                if going && !own && filter.accepts(m.topic) {
                    going = export(m.topic, m.codec, m.payload);
                }
            })?;
        }
        Ok(())
    }
}

/// Why an imported message was not published.
#[derive(Debug)]
pub enum Refused {
    /// No codec has this tag.
    Codec(u8),
    /// Larger than the bus takes.
    TooLarge { size: usize, max: usize },
    /// A topic longer than any bus takes.
    TopicTooLong { size: usize, max: usize },
    /// The bridge is stopping and the bus stayed full.
    Stopping,
}

/// Publishes imported messages on the bus.
pub struct ImportWriter {
    publisher: Publisher,
    /// When this writer first saw the stop flag set: from then on, all the messages it still
    /// gets share one last [`POLL`] of waiting for room.
    stop_seen: Option<Instant>,
}

impl ImportWriter {
    /// A publisher on `bus`.
    pub fn new(bus: &Bus) -> Result<ImportWriter, BusError> {
        Ok(ImportWriter {
            publisher: bus.publisher()?,
            stop_seen: None,
        })
    }

    /// What the bus records as this writer's identity in each slot it fills.
    pub fn id(&self) -> PublisherId {
        PublisherId {
            row: self.publisher.row(),
            pid: std::process::id(),
        }
    }

    /// Publishes one message, waiting while the bus is full; once `stop` is set, this and the
    /// later messages wait one more [`POLL`] at most in all (a bus that stays full does not keep
    /// a stopping bridge for a poll per message). `Ok(Err(_))` for a message that cannot be
    /// published.
    pub fn publish(
        &mut self,
        topic: &str,
        codec: u8,
        payload: &[u8],
        stop: &StopFlag,
    ) -> Result<Result<(), Refused>, BusError> {
        let Ok(codec) = Codec::try_from(codec) else {
            return Ok(Err(Refused::Codec(codec)));
        };
        loop {
            let stopping = stop.is_set();
            if stopping && self.stop_seen.is_none() {
                self.stop_seen = Some(Instant::now());
            }
            let wait = match self.stop_seen {
                Some(seen) => POLL.saturating_sub(seen.elapsed()),
                None => POLL,
            };
            match self.publisher.publish(topic, codec, payload, Some(wait)) {
                Ok(_) => return Ok(Ok(())),
                // A wait of zero says Full rather than Timeout.
                Err(BusError::Timeout | BusError::Full) if stopping => {
                    return Ok(Err(Refused::Stopping))
                }
                Err(BusError::Timeout) => continue,
                Err(BusError::PayloadTooLarge { size, max }) => {
                    return Ok(Err(Refused::TooLarge { size, max }))
                }
                Err(BusError::TopicTooLong { size, max }) => {
                    return Ok(Err(Refused::TopicTooLong { size, max }))
                }
                Err(e) => return Err(e),
            }
        }
    }
}
