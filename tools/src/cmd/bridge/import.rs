//! The import direction: the main loop checks each NATS message and queues it (`Importer`); a
//! thread publishes the queued messages on the bus and records how far each exporter's
//! messages have got, for the acknowledgements (`spawn`).

use super::bus_side::{ImportWriter, Refused};
use super::flow;
use super::nats_side::{self, GapCounter};
use super::stats::Counters;
use crate::signals::StopFlag;
use crate::topic_filter::TopicFilter;
use anyhow::Result;
use bytes::Bytes;
use engine_core::Topic;
use std::sync::Arc;
use std::thread::JoinHandle;
use tokio::sync::mpsc;

/// A NATS message on its way to the bus.
pub struct Incoming {
    topic: async_nats::Subject,
    codec: u8,
    payload: Bytes,
    /// The exporting bridge and its serial number for the message, to acknowledge once it is on
    /// the bus.
    from: Option<(String, u64)>,
    /// False for a message the import patterns do not match: it only passes through the queue
    /// to be acknowledged in order.
    publish: bool,
}

/// Starts the thread that publishes the queued messages on the bus through `writer`, until the
/// queue is closed. A message the bus refuses is counted as dropped (and said on stderr once,
/// and at every refusal while stopping).
pub fn spawn(
    mut writer: ImportWriter,
    mut queue: mpsc::Receiver<Incoming>,
    stop: StopFlag,
    counters: Arc<Counters>,
    progress: Arc<flow::Progress>,
) -> JoinHandle<Result<()>> {
    std::thread::spawn(move || -> Result<()> {
        let mut refused_once = false;
        while let Some(m) = queue.blocking_recv() {
            if m.publish {
                match writer.publish(&m.topic, m.codec, &m.payload, &stop)? {
                    Ok(()) => Counters::add(&counters.in_, 1),
                    Err(why) => {
                        Counters::add(&counters.dropped, 1);
                        if !refused_once || matches!(why, Refused::Stopping) {
                            refused_once = true;
                            warn_refused(&m.topic, &why);
                        }
                    }
                }
            }
            if let Some((exporter, serial)) = &m.from {
                progress.done(exporter, *serial);
            }
        }
        Ok(())
    })
}

fn warn_refused(topic: &str, why: &Refused) {
    let what = match why {
        Refused::Codec(c) => format!("its codec tag {c} is unknown to this bus"),
        Refused::TooLarge { size, max } => {
            format!("its payload has {size} bytes, more than the bus takes ({max})")
        }
        Refused::TopicTooLong { size, max } => {
            format!("its topic has {size} bytes, more than a bus takes ({max})")
        }
        Refused::Stopping => "the bridge is stopping and the bus stayed full".into(),
    };
    eprintln!(
        "event-engine bridge: a message on {topic} cannot be published on the bus ({what}); \
         counted as dropped"
    );
}

/// What checking NATS messages for the bus needs: this bridge's id, the import patterns, the
/// sequence numbers seen, and the queue to the import thread.
pub struct Importer {
    id: String,
    /// The subscriptions may be broader than the patterns (ranges, regular expressions,
    /// merged overlaps): this keeps exactly what the patterns match.
    accepted: TopicFilter,
    gaps: GapCounter,
    counters: Arc<Counters>,
    progress: Arc<flow::Progress>,
    queue: mpsc::Sender<Incoming>,
    bad_once: bool,
}

impl Importer {
    /// An importer for bridge `id` and the patterns `import`, queueing on `queue`.
    pub fn new(
        id: &str,
        import: Vec<Topic>,
        counters: &Arc<Counters>,
        progress: &Arc<flow::Progress>,
        queue: mpsc::Sender<Incoming>,
    ) -> Importer {
        Importer {
            id: id.to_string(),
            accepted: TopicFilter::new(import),
            gaps: GapCounter::default(),
            counters: counters.clone(),
            progress: progress.clone(),
            queue,
            bad_once: false,
        }
    }

    /// Takes one NATS message: queues it, or counts it as dropped (and says why, once).
    pub async fn take(&mut self, m: async_nats::Message) {
        if let Err(why) = self.receive(m).await {
            Counters::add(&self.counters.dropped, 1);
            if !self.bad_once {
                self.bad_once = true;
                eprintln!("event-engine bridge: {why}; such messages are counted as dropped");
            }
        }
    }

    /// Checks one NATS message and queues it for the bus. Messages this bridge exported itself,
    /// the bridges' control messages, and those no import pattern matches, are not published
    /// (the last are still queued, to be acknowledged in order); an error says why the message
    /// cannot be imported.
    pub async fn receive(&mut self, m: async_nats::Message) -> Result<(), String> {
        if flow::is_control(&m.subject) {
            return Ok(());
        }
        let envelope = nats_side::envelope(m.headers.as_ref())
            .map_err(|why| format!("a message on {} has a bad envelope: {why}", m.subject))?;
        if envelope.origin == Some(self.id.as_str()) {
            return Ok(());
        }
        let from = envelope
            .origin
            .zip(envelope.serial)
            .map(|(origin, serial)| (origin.to_string(), serial));
        if let Some((origin, _)) = &from {
            self.progress.seen(origin);
        }
        let publish = self.accepted.accepts(&m.subject);
        if !publish && from.is_none() {
            return Ok(());
        }
        if publish {
            if let (Some(origin), Some(seq)) = (envelope.origin, envelope.seq) {
                let missed = self.gaps.missed(origin, &m.subject, seq);
                Counters::add(&self.counters.dropped, missed);
            }
        }
        let incoming = Incoming {
            topic: m.subject,
            codec: envelope.codec,
            payload: m.payload,
            from,
            publish,
        };
        self.queue
            .send(incoming)
            .await
            .map_err(|_| "the bus side has stopped".to_string())
    }
}
