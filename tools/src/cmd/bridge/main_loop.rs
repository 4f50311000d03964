//! The bridge's main loop, on the NATS client's runtime: it starts the bus threads, says it is
//! ready, then on each turn does one of four things (a tick's housekeeping, one bus message to
//! NATS, one acknowledgement from an importer, one NATS message for the bus) until a stop; then
//! it drains both directions and reports.

use super::bus_side::{ExportReader, ImportWriter};
use super::export::{self, Exporter, Outgoing};
use super::flow;
use super::import::{self, Importer};
use super::stats::Counters;
use crate::signals::StopFlag;
use anyhow::{Context, Result};
use engine_core::Topic;
use futures_util::stream::{SelectAll, StreamExt};
use futures_util::FutureExt;
use std::io::Write;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tokio::task::JoinHandle as Task;

/// Messages queued between a thread and the NATS client, each way.
const QUEUE: usize = 1024;
/// How often the main loop looks at the stop flag.
const TICK: Duration = Duration::from_millis(50);
/// Longest a stop waits for queued messages to reach the server or the bus.
const FLUSH: Duration = Duration::from_secs(5);

/// The NATS side of a bridge, connected and subscribed.
pub struct Bridge {
    /// This bridge's id.
    pub id: String,
    /// The NATS client.
    pub client: async_nats::Client,
    /// What the bridge has carried and lost.
    pub counters: Arc<Counters>,
    /// Where `inspect` reads the counters: stored on every tick by the main loop only.
    pub on_bus: shm_ring::BridgeCounters,
    /// Set by a stop signal.
    pub stop: StopFlag,
    /// Time between stats lines (zero: only at exit).
    pub stats_every: Duration,
    /// What the importers owe this bridge's exports.
    pub window: flow::Window,
    /// The importers' acknowledgements, when this bridge exports.
    pub acks: Option<async_nats::Subscriber>,
    /// What the ready line says is bridged (bus, server, export patterns).
    pub route: String,
}

/// The two ends of each direction: the bus reader and the NATS publisher for the export, the
/// NATS subscriptions and the bus writer for the import.
pub struct Ends {
    /// Reads what is exported (`None`: nothing is).
    pub reader: Option<ExportReader>,
    /// Publishes what is imported (`None`: nothing is).
    pub writer: Option<ImportWriter>,
    /// The import subscriptions.
    pub subscriptions: SelectAll<async_nats::Subscriber>,
    /// Their subjects.
    pub subjects: Vec<String>,
    /// The import patterns.
    pub import: Vec<Topic>,
}

/// The bus threads; either ends early only on an error, reported once it is joined.
struct Threads {
    import: Option<JoinHandle<Result<()>>>,
    export: Option<JoinHandle<Result<()>>>,
}

impl Threads {
    fn one_ended(&self) -> bool {
        let ended =
            |t: &Option<JoinHandle<Result<()>>>| t.as_ref().is_some_and(|t| t.is_finished());
        ended(&self.import) || ended(&self.export)
    }

    /// Waits for both threads: the export's result, then the import's.
    fn join(self) -> (Result<()>, Result<()>) {
        let join = |t: Option<JoinHandle<Result<()>>>| t.map_or(Ok(()), join);
        (join(self.export), join(self.import))
    }
}

/// Waits for a bus thread and returns its result (a panic there is an error here).
fn join(thread: JoinHandle<Result<()>>) -> Result<()> {
    thread
        .join()
        .unwrap_or_else(|_| Err(anyhow::anyhow!("a bridge thread panicked")))
}

/// The main loop's state.
struct Pump<'o> {
    bridge: Bridge,
    exporter: Exporter,
    importer: Importer,
    /// This bridge's acknowledgements to the exporters it imports from, and the task sending
    /// them.
    progress: Arc<flow::Progress>,
    acknowledging: Option<Task<()>>,
    outgoing: mpsc::Receiver<Outgoing>,
    subscriptions: SelectAll<async_nats::Subscriber>,
    exporting: bool,
    importing: bool,
    threads: Threads,
    next_stats: tokio::time::Instant,
    /// The reconnections seen so far.
    reconnects: u64,
    held_once: bool,
    out: &'o mut dyn Write,
}

impl Bridge {
    /// Carries messages between `ends` until a stop signal or a bus thread's error, then
    /// flushes both directions; writes the ready line and the stats lines to `out`.
    pub async fn run(self, ends: Ends, out: &mut dyn Write) -> Result<()> {
        let mut pump = Pump::start(self, ends, out)?;
        pump.pump().await?;
        let flushed = tokio::time::timeout(FLUSH, pump.drain()).await;
        pump.finish(flushed).await
    }

    /// Starts sending this bridge's acknowledgements, when it imports.
    fn acknowledge(&self, subjects: &[String], progress: &Arc<flow::Progress>) -> Option<Task<()>> {
        (!subjects.is_empty()).then(|| {
            tokio::spawn(flow::acknowledge(
                self.client.clone(),
                self.id.clone(),
                subjects.to_vec(),
                progress.clone(),
                self.counters.clone(),
            ))
        })
    }
}

impl<'o> Pump<'o> {
    /// Starts the acknowledgements and the bus threads, and says the bridge is ready.
    fn start(bridge: Bridge, ends: Ends, out: &'o mut dyn Write) -> Result<Pump<'o>> {
        let Ends {
            reader,
            writer,
            subscriptions,
            subjects,
            import,
        } = ends;
        let (stop, counters) = (&bridge.stop, &bridge.counters);
        let progress = Arc::new(flow::Progress::default());
        let acknowledging = bridge.acknowledge(&subjects, &progress);
        let (in_tx, in_rx) = mpsc::channel(QUEUE);
        let import_thread = writer.map(|writer| {
            import::spawn(
                writer,
                in_rx,
                stop.clone(),
                counters.clone(),
                progress.clone(),
            )
        });
        let (out_tx, outgoing) = mpsc::channel(QUEUE);
        let export_thread =
            reader.map(|reader| export::spawn(reader, out_tx, stop.clone(), counters.clone()));
        write_ready(&bridge, &import, &subjects, out)?;
        Ok(Pump {
            exporter: Exporter::new(&bridge.client, &bridge.id, counters),
            importer: Importer::new(&bridge.id, import, counters, &progress, in_tx),
            progress,
            acknowledging,
            outgoing,
            subscriptions,
            exporting: export_thread.is_some(),
            importing: !subjects.is_empty(),
            threads: Threads {
                import: import_thread,
                export: export_thread,
            },
            next_stats: tokio::time::Instant::now() + bridge.stats_every,
            reconnects: counters.reconnects.load(Ordering::Relaxed),
            held_once: false,
            out,
            bridge,
        })
    }

    /// The main loop: returns on a stop, or when a bus thread has ended.
    async fn pump(&mut self) -> Result<()> {
        let mut tick = tokio::time::interval(TICK);
        loop {
            let credit = self.credit();
            tokio::select! {
                _ = tick.tick() => if !self.on_tick()? {
                    return Ok(());
                },
                m = self.outgoing.recv(), if self.exporting && credit => match m {
                    Some(m) => if !self.send(m).await {
                        return Ok(());
                    },
                    // The export thread ended before a stop: it failed, and says why later.
                    None => return Ok(()),
                },
                a = next_ack(&mut self.bridge.acks) => self.on_ack(a),
                m = self.subscriptions.next(), if self.importing => match m {
                    Some(m) => self.importer.take(m).await,
                    None => self.importing = false,
                },
            }
        }
    }

    /// Whether the importers leave room for one more export; the first time the window is
    /// full, says so on stderr, and counts each time as held.
    fn credit(&mut self) -> bool {
        let window = &mut self.bridge.window;
        let (credit, began) = window.credit(Instant::now());
        if began {
            Counters::add(&self.bridge.counters.held, 1);
            if !self.held_once {
                self.held_once = true;
                eprintln!(
                    "event-engine bridge: importer {} has a full window of messages \
                     unacknowledged; this bridge stops reading the bus until it catches up \
                     (counted as held)",
                    window.holding().join(", ")
                );
            }
        }
        credit
    }

    /// A tick: forgive what a reconnection lost, forget silent importers, store the counters
    /// on the bus, write the stats line when due. False when the loop is to stop.
    fn on_tick(&mut self) -> Result<bool> {
        let b = &mut self.bridge;
        // After a reconnect, what was in flight may be lost: it is not waited for.
        let reconnects = b.counters.reconnects.load(Ordering::Relaxed);
        if reconnects != self.reconnects {
            self.reconnects = reconnects;
            b.window.forgive_all();
        }
        for (importer, silent) in b.window.forget_silent(Instant::now()) {
            Counters::add(&b.counters.forgotten, 1);
            eprintln!(
                "event-engine bridge: importer {importer} sent no acknowledgement for {:.1} s \
                 while this bridge waited for it; forgotten (counted as forgotten)",
                silent.as_secs_f64()
            );
        }
        b.counters.store_on(&b.on_bus);
        if b.stop.is_set() || self.threads.one_ended() {
            return Ok(false);
        }
        if !b.stats_every.is_zero() && tokio::time::Instant::now() >= self.next_stats {
            self.next_stats += b.stats_every;
            writeln!(self.out, "bridge {}: {}", b.id, b.counters.line())?;
            self.out.flush()?;
        }
        Ok(true)
    }

    /// Publishes one bus message to NATS. False when a stop came while it waited (the server
    /// unreachable): it is counted as dropped.
    async fn send(&mut self, m: Outgoing) -> bool {
        let stop = self.bridge.stop.clone();
        tokio::select! {
            // A message that can go at once goes, even when a stop has begun.
            biased;
            _ = self.exporter.publish(&mut self.bridge.window, m) => true,
            // Only while the server is unreachable does publishing wait long.
            _ = stopped(&stop) => {
                Counters::add(&self.bridge.counters.dropped, 1);
                false
            }
        }
    }

    /// An importer's acknowledgement (`None`: the subscription ended, and no more come).
    fn on_ack(&mut self, a: Option<async_nats::Message>) {
        match a {
            Some(a) => {
                if let Some(ack) = flow::Ack::decode(a.headers.as_ref(), &a.payload) {
                    self.bridge.window.ack(ack, Instant::now());
                }
            }
            None => self.bridge.acks = None,
        }
    }

    /// On a stop: the import subscriptions drained onto the bus, the export queue to the
    /// server, and the server's confirmation that it has everything.
    async fn drain(&mut self) -> Result<(), async_nats::client::FlushError> {
        let client = self.bridge.client.clone();
        if self.importing {
            for sub in self.subscriptions.iter_mut() {
                let _ = sub.drain().await;
            }
            // The server answers the ping after everything it sent before the unsubscribe,
            // and the client queues each message on its subscription as it reads it: once
            // the flush returns, every message left is already queued here.
            let _ = client.flush().await;
            while let Some(Some(m)) = self.subscriptions.next().now_or_never() {
                let _ = self.importer.receive(m).await;
            }
        }
        // What is queued goes out whatever the window: the stop must not wait for importers.
        while let Some(m) = self.outgoing.recv().await {
            self.exporter.publish(&mut self.bridge.window, m).await;
        }
        client.flush().await
    }

    /// Ends both threads, tells the exporters this bridge leaves, writes the last stats line,
    /// and returns the first failure: a bus thread's, or the server's not taking the last
    /// messages (`flushed`).
    async fn finish(
        self,
        flushed: Result<Result<(), async_nats::client::FlushError>, tokio::time::error::Elapsed>,
    ) -> Result<()> {
        let Pump {
            bridge: b,
            importer,
            mut outgoing,
            threads,
            acknowledging,
            progress,
            out,
            ..
        } = self;
        // Closing the queues ends both threads (a blocked export send fails at once).
        drop(importer);
        outgoing.close();
        let mut unsent = 0;
        while outgoing.try_recv().is_ok() {
            unsent += 1;
        }
        Counters::add(&b.counters.dropped, unsent);
        b.counters.store_on(&b.on_bus);
        let (export_result, import_result) = threads.join();
        // The exporters stop waiting for this bridge at once.
        if let Some(task) = acknowledging {
            task.abort();
            let leaving = flow::leave(&b.client, &b.id, &progress, &b.counters);
            let _ = tokio::time::timeout(FLUSH, leaving).await;
        }
        writeln!(out, "bridge {}: stopped; {}", b.id, b.counters.line())?;
        out.flush()?;
        export_result.context("reading the bus")?;
        import_result.context("publishing on the bus")?;
        match flushed {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(anyhow::anyhow!(
                "stopped, but the NATS server did not confirm the last messages: {e}"
            )),
            Err(_) => Err(anyhow::anyhow!(
                "stopped, but could not hand every message to the NATS server within {} s \
                 ({unsent} counted as dropped); is it running?",
                FLUSH.as_secs()
            )),
        }
    }
}

/// The line that says the bridge is connected, subscribed, and carrying.
fn write_ready(
    b: &Bridge,
    import: &[Topic],
    subjects: &[String],
    out: &mut dyn Write,
) -> Result<()> {
    let import: Vec<&str> = import.iter().map(Topic::literal).collect();
    let subjects = if subjects.is_empty() {
        "none".to_string()
    } else {
        subjects.join(", ")
    };
    writeln!(
        out,
        "bridge {}: {}, importing [{}] (subjects {subjects}); ready",
        b.id,
        b.route,
        import.join(", ")
    )?;
    out.flush()?;
    Ok(())
}

/// Resolves once the stop flag is set.
async fn stopped(stop: &StopFlag) {
    while !stop.is_set() {
        tokio::time::sleep(TICK).await;
    }
}

/// The next acknowledgement, or never when this bridge does not export.
async fn next_ack(acks: &mut Option<async_nats::Subscriber>) -> Option<async_nats::Message> {
    match acks {
        Some(acks) => acks.next().await,
        None => std::future::pending().await,
    }
}
