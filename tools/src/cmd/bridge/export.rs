//! The export direction: a thread reads the bus messages the export patterns match and queues
//! them (`spawn`); the main loop publishes them to NATS, each in its envelope with its sequence
//! and serial numbers (`Exporter`).

use super::bus_side::ExportReader;
use super::stats::Counters;
use super::{flow, nats_side, subject};
use crate::signals::StopFlag;
use anyhow::Result;
use async_nats::HeaderValue;
use bytes::Bytes;
use nats_side::Numbering;
use std::sync::Arc;
use std::thread::JoinHandle;
use tokio::sync::mpsc;

/// A bus message on its way to NATS.
pub struct Outgoing {
    subject: String,
    codec: u8,
    payload: Bytes,
}

/// Starts the thread that reads the bus through `reader` and queues each message for NATS,
/// until `stop` or until the queue is closed. A topic that cannot be a NATS subject is counted
/// as dropped (and said once on stderr).
pub fn spawn(
    mut reader: ExportReader,
    queue: mpsc::Sender<Outgoing>,
    stop: StopFlag,
    counters: Arc<Counters>,
) -> JoinHandle<Result<()>> {
    std::thread::spawn(move || -> Result<()> {
        let mut unfit_once = false;
        reader.run(&stop, |topic, codec, payload| {
            let Some(why) = unfit(topic) else {
                let m = Outgoing {
                    subject: topic.to_string(),
                    codec,
                    payload: Bytes::copy_from_slice(payload),
                };
                return queue.blocking_send(m).is_ok();
            };
            Counters::add(&counters.dropped, 1);
            if !unfit_once {
                unfit_once = true;
                eprintln!(
                    "event-engine bridge: topic {topic:?} cannot travel as a NATS subject \
                     ({why}); such messages are counted as dropped"
                );
            }
            true
        })?;
        Ok(())
    })
}

/// Why `topic` cannot be exported, if it cannot.
fn unfit(topic: &str) -> Option<&'static str> {
    subject::unfit_subject(topic).or_else(|| {
        flow::is_control(topic).then_some("subjects under _EVENT_ENGINE. are the bridges' own")
    })
}

/// What publishing bus messages to NATS needs: the client, this bridge's id as the envelope's
/// origin, and the numbers the envelopes carry.
pub struct Exporter {
    client: async_nats::Client,
    origin: HeaderValue,
    numbering: Numbering,
    /// The last serial number given.
    serial: u64,
    max_payload: usize,
    counters: Arc<Counters>,
}

impl Exporter {
    /// An exporter publishing through `client` as bridge `id`.
    pub fn new(client: &async_nats::Client, id: &str, counters: &Arc<Counters>) -> Exporter {
        Exporter {
            client: client.clone(),
            origin: HeaderValue::from(id),
            numbering: Numbering::default(),
            serial: 0,
            max_payload: client.server_info().max_payload,
            counters: counters.clone(),
        }
    }

    /// Publishes one bus message to NATS, noting it in `window` (waiting while the client's
    /// queue is full, which is while the server is unreachable).
    pub async fn publish(&mut self, window: &mut flow::Window, m: Outgoing) {
        let counters = &self.counters;
        if m.payload.len() > self.max_payload {
            Counters::add(&counters.dropped, 1);
            eprintln!(
                "event-engine bridge: a message on {} has {} bytes, more than the NATS server \
                 takes ({}); counted as dropped",
                m.subject,
                m.payload.len(),
                self.max_payload
            );
            return;
        }
        let seq = self.numbering.next(&m.subject);
        self.serial += 1;
        let headers = nats_side::headers(&self.origin, m.codec, seq, self.serial);
        window.sent(&m.subject, self.serial);
        match self
            .client
            .publish_with_headers(m.subject, headers, m.payload)
            .await
        {
            Ok(()) => Counters::add(&counters.out, 1),
            Err(e) => {
                Counters::add(&counters.dropped, 1);
                eprintln!(
                    "event-engine bridge: publishing to NATS failed: {e}; counted as dropped"
                );
            }
        }
    }
}
