//! `event-engine bridge BUS --nats URL`: carry chosen topics between a bus and a NATS server,
//! so buses on several machines share them through one broker.
//!
//! Three threads: the export thread reads the bus (`bus_side::ExportReader`) and queues
//! messages for NATS; the import thread publishes what came from NATS on the bus
//! (`bus_side::ImportWriter`); the main thread runs a current-thread tokio runtime with the NATS
//! client: the main loop publishes the export queue, reads the import subscriptions and the
//! acknowledgements of the importers, and a task sends this bridge's own acknowledgements.
//! Bounded queues between them carry backpressure both ways: a slow or unreachable server
//! holds the bus's publishers back (nothing is overwritten), a full bus slows the import, and
//! an importer a full `--window` behind holds the exporter back (`flow`).

mod bus_side;
mod flow;
mod nats_side;
mod stats;
mod subject;

use crate::error::UsageError;
use crate::signals::StopFlag;
use crate::topic_filter::TopicFilter;
use anyhow::{Context, Result};
use async_nats::HeaderValue;
use bus_side::{ExportReader, ImportWriter, Refused};
use bytes::Bytes;
use futures_util::stream::{SelectAll, StreamExt};
use futures_util::FutureExt;
use nats_side::{GapCounter, Numbering};
use stats::Counters;
use std::io::Write;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// Messages queued between a thread and the NATS client, each way.
const QUEUE: usize = 1024;
/// How often the main loop looks at the stop flag.
const TICK: Duration = Duration::from_millis(50);
/// Longest a stop waits for queued messages to reach the server or the bus.
const FLUSH: Duration = Duration::from_secs(5);

/// The long help of the subcommand (`event-engine bridge --help`).
pub const LONG_ABOUT: &str = "Carry messages between the bus and a NATS server: every bus \
message whose topic matches an --export pattern is published to NATS, every NATS message whose \
subject matches an --import pattern is published on the bus. A topic is its own subject \
(Market.Data.AAPL travels as Market.Data.AAPL); wildcards subscribe as NATS '*', ranges and \
regular expressions are filtered here. The payload crosses unchanged (codec tag in a header), \
so a Python handler on the far bus gets the same arguments.

A message that came in from NATS is never exported again, and a bridge never imports its own \
messages, so buses whose bridges import and export the same pattern over one server get each \
message exactly once. Delivery is core NATS: in order per publisher and nothing lost while the \
buses, the bridges and the server are up; what the server loses (a restart) is found from \
sequence numbers and counted as dropped. The bridge reconnects by itself.

Flow control runs end to end: each importing bridge acknowledges to each exporter what it has \
put on its bus, and an exporter sends at most --window messages that one importer has not \
acknowledged; then it stops reading its bus, whose publishers wait (counted as held). So a far \
bus that is slower for good holds the local publishers back instead of losing messages. An \
importer silent for --ack-timeout while it is waited for (killed, or gone) is forgotten \
(counted as forgotten). Imported messages wait in this bridge, up to --import-buffer per \
subscription, while the bus is full: keep it at least twice the sum of the windows of the \
exporters this bridge imports from (the defaults leave room for eight); past it, NATS messages \
are lost and counted as dropped. --window 0 turns flow control off for this bridge's exports.

Prints a ready line once connected and subscribed, then a stats line (out, in, dropped, \
reconnects, held, forgotten) every --stats-every seconds and at exit; the same counters, with \
the server (its URL without credentials), are kept in the bus, where `event-engine inspect` and \
`watch` show them. Runs until SIGINT or SIGTERM, then flushes what it holds and exits 0 (1 if \
the server could not take it within 5 s).";

/// Arguments of `bridge`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Bus name.
    pub name: String,
    /// NATS server URL, e.g. nats://127.0.0.1:4222 (several: comma-separated).
    #[arg(long, value_name = "URL")]
    pub nats: String,
    /// Publish bus messages matching this topic pattern to NATS (repeatable).
    #[arg(long = "export", value_name = "PATTERN")]
    pub export: Vec<String>,
    /// Publish NATS messages matching this topic pattern on the bus (repeatable).
    #[arg(long = "import", value_name = "PATTERN")]
    pub import: Vec<String>,
    /// Give up connecting after this many seconds.
    #[arg(long, default_value_t = 5.0, value_name = "SECS")]
    pub connect_timeout: f64,
    /// Imported messages held (per subscription) while the bus is full, before NATS messages
    /// are lost; at least twice the sum of the --window of the exporters imported from.
    #[arg(long, default_value_t = 262_144, value_name = "MESSAGES")]
    pub import_buffer: usize,
    /// Most exported messages one importer may not have acknowledged; then this bridge stops
    /// reading the bus until it catches up (0: no flow control).
    #[arg(long, default_value_t = 16_384, value_name = "MESSAGES")]
    pub window: usize,
    /// Forget an importer that sends no acknowledgement for this many seconds while this bridge
    /// waits for it (a killed bridge, or one cut off).
    #[arg(long, default_value_t = 5.0, value_name = "SECS")]
    pub ack_timeout: f64,
    /// Seconds between stats lines (0: only at exit).
    #[arg(long, default_value_t = 10.0, value_name = "SECS")]
    pub stats_every: f64,
    /// This bridge's id in the messages it exports (default: host, pid and start time);
    /// 1 to 64 characters of [A-Za-z0-9_.-], unique among the bridges on a server.
    #[arg(long, value_name = "ID")]
    pub id: Option<String>,
}

fn seconds(flag: &str, value: f64, zero_ok: bool) -> Result<Duration, UsageError> {
    if value.is_finite() && (value > 0.0 || (zero_ok && value == 0.0)) && value < 1e9 {
        return Ok(Duration::from_secs_f64(value));
    }
    Err(UsageError(format!(
        "{flag} {value} is not a number of seconds{}",
        if zero_ok {
            " (0 or more)"
        } else {
            " greater than 0"
        }
    )))
}

fn bridge_id(given: Option<&str>) -> Result<String, UsageError> {
    if let Some(id) = given {
        // The id is part of a subject (its acknowledgements'): no empty part.
        let ok = (1..=64).contains(&id.len())
            && id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
            && id.split('.').all(|part| !part.is_empty());
        if !ok {
            return Err(UsageError(format!(
                "--id {id:?} is not a bridge id: use 1 to 64 characters of [A-Za-z0-9_.-], \
                 without a dot at either end or two in a row"
            )));
        }
        return Ok(id.to_string());
    }
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    let host: String = host
        .trim()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
        .take(32)
        .collect();
    let started = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos();
    Ok(format!(
        "{host}-{}-{:x}",
        std::process::id(),
        started as u64
    ))
}

/// A bus message on its way to NATS.
struct Outgoing {
    subject: String,
    codec: u8,
    payload: Bytes,
}

/// A NATS message on its way to the bus.
struct Incoming {
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

/// Runs the bridge until a stop signal.
pub fn run(args: &Args, out: &mut dyn Write) -> Result<()> {
    let servers = nats_side::parse_servers(&args.nats).map_err(UsageError)?;
    let export = args
        .export
        .iter()
        .map(|p| subject::parse_pattern("--export", p))
        .collect::<Result<Vec<_>, _>>()?;
    let import = args
        .import
        .iter()
        .map(|p| subject::parse_pattern("--import", p))
        .collect::<Result<Vec<_>, _>>()?;
    if export.is_empty() && import.is_empty() {
        return Err(UsageError(
            "nothing to carry: give at least one --export or --import pattern".into(),
        )
        .into());
    }
    let connect_timeout = seconds("--connect-timeout", args.connect_timeout, false)?;
    let stats_every = seconds("--stats-every", args.stats_every, true)?;
    let id = bridge_id(args.id.as_deref())?;
    if args.import_buffer == 0 {
        return Err(UsageError("--import-buffer must be at least 1".into()).into());
    }
    let ack_timeout = seconds("--ack-timeout", args.ack_timeout, false)?;
    if ack_timeout < 4 * flow::HEARTBEAT {
        return Err(UsageError(format!(
            "--ack-timeout {} is too short: importers show they are alive every {} ms; give \
             at least {} s",
            args.ack_timeout,
            flow::HEARTBEAT.as_millis(),
            (4 * flow::HEARTBEAT).as_secs_f64()
        ))
        .into());
    }
    let stop = StopFlag::install()?;
    // A bus that does not exist yet is created once the server is reached (not before, so a
    // failed start leaves nothing behind), with the geometry Python engines create by default.
    let existing = match shm_ring::Bus::open(&args.name) {
        Ok(bus) => Some(bus),
        Err(shm_ring::BusError::NotFound { .. }) => None,
        Err(e) => return Err(e.into()),
    };
    let counters = Arc::new(Counters::default());

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the NATS client's runtime")?;
    let client = runtime.block_on(nats_side::connect(
        servers,
        &format!("event-engine bridge {id}"),
        connect_timeout,
        args.import_buffer,
        counters.clone(),
    ))?;

    let bus = match existing {
        Some(bus) => bus,
        None => {
            let bus = shm_ring::Bus::open_or_create(&args.name, &shm_ring::BusConfig::default())?;
            eprintln!(
                "event-engine bridge: bus {} did not exist; created it with the default geometry",
                args.name
            );
            bus
        }
    };

    // The counters also go to the bus handle's row, for `inspect` and `watch`.
    let on_bus = bus.announce_bridge(&stats::without_credentials(&args.nats));

    // Subscribed before the bridge shows on the bus as a subscriber or publisher, so that
    // whoever sees it there can count on it receiving from NATS already.
    let subjects =
        nats_side::disjoint_subjects(import.iter().map(subject::subscription_subject).collect());
    let subscriptions = runtime.block_on(nats_side::subscribe(&client, &subjects))?;
    // An exporter hears its importers' acknowledgements from the start.
    let acks = if export.is_empty() {
        None
    } else {
        let subject = flow::ack_subject(&id);
        Some(runtime.block_on(async {
            let sub = client
                .subscribe(subject.clone())
                .await
                .with_context(|| format!("subscribing to NATS subject {subject}"))?;
            client.flush().await.context("reaching the NATS server")?;
            anyhow::Ok(sub)
        })?)
    };

    // The bus ends are made once connected, so the bus is not held back while connecting.
    let writer = if import.is_empty() {
        None
    } else {
        Some(ImportWriter::new(&bus)?)
    };
    let reader = if export.is_empty() {
        None
    } else {
        Some(ExportReader::new(
            &bus,
            export,
            writer.as_ref().map(ImportWriter::id),
        )?)
    };

    let bridge = Bridge {
        id,
        client,
        counters,
        on_bus,
        stop,
        stats_every,
        window: flow::Window::new(args.window, ack_timeout),
        acks,
        route: format!(
            "bus {} <-> {}; exporting [{}]",
            args.name,
            args.nats,
            args.export.join(", ")
        ),
    };
    let summary =
        runtime.block_on(bridge.run(reader, writer, subscriptions, subjects, import, out));
    drop(runtime);
    drop(bus);
    summary
}

struct Bridge {
    id: String,
    client: async_nats::Client,
    counters: Arc<Counters>,
    /// Where `inspect` reads the counters: stored on every tick by the main loop only.
    on_bus: shm_ring::BridgeCounters,
    stop: StopFlag,
    stats_every: Duration,
    /// What the importers owe this bridge's exports.
    window: flow::Window,
    /// The importers' acknowledgements, when this bridge exports.
    acks: Option<async_nats::Subscriber>,
    /// What the ready line says is bridged (bus, server, export patterns).
    route: String,
}

impl Bridge {
    async fn run(
        self,
        reader: Option<ExportReader>,
        writer: Option<ImportWriter>,
        mut subscriptions: SelectAll<async_nats::Subscriber>,
        subjects: Vec<String>,
        import: Vec<engine_core::Topic>,
        out: &mut dyn Write,
    ) -> Result<()> {
        let Bridge {
            id,
            client,
            counters,
            on_bus,
            stop,
            stats_every,
            mut window,
            acks,
            route,
        } = self;

        // This bridge's acknowledgements to the exporters it imports from.
        let progress = Arc::new(flow::Progress::default());
        let acknowledging = (!subjects.is_empty()).then(|| {
            tokio::spawn(flow::acknowledge(
                client.clone(),
                id.clone(),
                subjects.clone(),
                progress.clone(),
                counters.clone(),
            ))
        });

        let (in_tx, mut in_rx) = mpsc::channel::<Incoming>(QUEUE);
        let import_thread = writer.map(|mut writer| {
            let (stop, counters, progress) = (stop.clone(), counters.clone(), progress.clone());
            std::thread::spawn(move || -> Result<()> {
                let mut refused_once = false;
                while let Some(m) = in_rx.blocking_recv() {
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
        });

        let (out_tx, mut out_rx) = mpsc::channel::<Outgoing>(QUEUE);
        let export_thread = reader.map(|mut reader| {
            let (stop, counters) = (stop.clone(), counters.clone());
            std::thread::spawn(move || -> Result<()> {
                let mut unfit_once = false;
                reader.run(&stop, |topic, codec, payload| {
                    let unfit = subject::unfit_subject(topic).or_else(|| {
                        flow::is_control(topic)
                            .then_some("subjects under _EVENT_ENGINE. are the bridges' own")
                    });
                    if let Some(why) = unfit {
                        Counters::add(&counters.dropped, 1);
                        if !unfit_once {
                            unfit_once = true;
                            eprintln!(
                                "event-engine bridge: topic {topic:?} cannot travel as a NATS \
                                 subject ({why}); such messages are counted as dropped"
                            );
                        }
                        return true;
                    }
                    let m = Outgoing {
                        subject: topic.to_string(),
                        codec,
                        payload: Bytes::copy_from_slice(payload),
                    };
                    out_tx.blocking_send(m).is_ok()
                })?;
                Ok(())
            })
        });

        writeln!(
            out,
            "bridge {id}: {route}, importing [{}] (subjects {}); ready",
            import
                .iter()
                .map(|t| t.literal().to_string())
                .collect::<Vec<_>>()
                .join(", "),
            if subjects.is_empty() {
                "none".to_string()
            } else {
                subjects.join(", ")
            },
        )?;
        out.flush()?;

        let origin = HeaderValue::from(id.as_str());
        let mut numbering = Numbering::default();
        let mut serial = 0u64;
        let mut gaps = GapCounter::default();
        // The subscriptions may be broader than the patterns (ranges, regular expressions,
        // merged overlaps): this keeps exactly what the patterns match.
        let mut accepted = TopicFilter::new(import);
        let mut bad_once = false;
        let max_payload = client.server_info().max_payload;
        let mut tick = tokio::time::interval(TICK);
        let mut next_stats = tokio::time::Instant::now() + stats_every;
        let exporting = export_thread.is_some();
        let mut importing = !subjects.is_empty();
        let mut acks = acks;
        let mut reconnects = counters
            .reconnects
            .load(std::sync::atomic::Ordering::Relaxed);
        let mut held_once = false;
        loop {
            let (credit, began) = window.credit(std::time::Instant::now());
            if began {
                Counters::add(&counters.held, 1);
                if !held_once {
                    held_once = true;
                    eprintln!(
                        "event-engine bridge: importer {} has a full window of messages \
                         unacknowledged; this bridge stops reading the bus until it catches up \
                         (counted as held)",
                        window.holding().join(", ")
                    );
                }
            }
            tokio::select! {
                _ = tick.tick() => {
                    // After a reconnect, what was in flight may be lost: it is not waited for.
                    let now_reconnects =
                        counters.reconnects.load(std::sync::atomic::Ordering::Relaxed);
                    if now_reconnects != reconnects {
                        reconnects = now_reconnects;
                        window.forgive_all();
                    }
                    for (importer, silent) in window.forget_silent(std::time::Instant::now()) {
                        Counters::add(&counters.forgotten, 1);
                        eprintln!(
                            "event-engine bridge: importer {importer} sent no acknowledgement for \
                             {:.1} s while this bridge waited for it; forgotten (counted as \
                             forgotten)",
                            silent.as_secs_f64()
                        );
                    }
                    counters.store_on(&on_bus);
                    // A bus thread ends early only on an error, reported once it is joined.
                    let failed = |t: &Option<std::thread::JoinHandle<Result<()>>>| {
                        t.as_ref().is_some_and(|t| t.is_finished())
                    };
                    if stop.is_set() || failed(&import_thread) || failed(&export_thread) {
                        break;
                    }
                    if !stats_every.is_zero() && tokio::time::Instant::now() >= next_stats {
                        next_stats += stats_every;
                        writeln!(out, "bridge {id}: {}", counters.line())?;
                        out.flush()?;
                    }
                }
                m = out_rx.recv(), if exporting && credit => match m {
                    Some(m) => {
                        let mut out = Out {
                            client: &client,
                            origin: &origin,
                            numbering: &mut numbering,
                            serial: &mut serial,
                            window: &mut window,
                            max_payload,
                            counters: &counters,
                        };
                        tokio::select! {
                            // A message that can go at once goes, even when a stop has begun.
                            biased;
                            _ = out.publish(m) => {}
                            // Only while the server is unreachable does publishing wait long.
                            _ = stopped(&stop) => {
                                Counters::add(&counters.dropped, 1);
                                break;
                            }
                        }
                    }
                    // The export thread ended before a stop: it failed, and says why below.
                    None => break,
                },
                a = next_ack(&mut acks) => match a {
                    Some(a) => {
                        if let Some(ack) = flow::Ack::decode(a.headers.as_ref(), &a.payload) {
                            window.ack(ack, std::time::Instant::now());
                        }
                    }
                    None => acks = None,
                },
                m = subscriptions.next(), if importing => match m {
                    Some(m) => {
                        let received =
                            receive(&id, &mut accepted, &mut gaps, &counters, &progress, &in_tx, m);
                        if let Err(why) = received.await {
                            Counters::add(&counters.dropped, 1);
                            if !bad_once {
                                bad_once = true;
                                eprintln!(
                                    "event-engine bridge: {why}; such messages are counted as \
                                     dropped"
                                );
                            }
                        }
                    }
                    None => importing = false,
                },
            }
        }

        // Stop: drain the import subscriptions onto the bus and the export queue to the server.
        let flushed = tokio::time::timeout(FLUSH, async {
            if importing {
                for sub in subscriptions.iter_mut() {
                    let _ = sub.drain().await;
                }
                // The server answers the ping after everything it sent before the unsubscribe,
                // and the client queues each message on its subscription as it reads it: once
                // the flush returns, every message left is already queued here.
                let _ = client.flush().await;
                while let Some(Some(m)) = subscriptions.next().now_or_never() {
                    let _ = receive(
                        &id,
                        &mut accepted,
                        &mut gaps,
                        &counters,
                        &progress,
                        &in_tx,
                        m,
                    )
                    .await;
                }
            }
            // What is queued goes out whatever the window: the stop must not wait for importers.
            let mut out = Out {
                client: &client,
                origin: &origin,
                numbering: &mut numbering,
                serial: &mut serial,
                window: &mut window,
                max_payload,
                counters: &counters,
            };
            while let Some(m) = out_rx.recv().await {
                out.publish(m).await;
            }
            client.flush().await
        })
        .await;
        // Closing the queues ends both threads (a blocked export send fails at once).
        drop(in_tx);
        out_rx.close();
        let mut unsent = 0;
        while out_rx.try_recv().is_ok() {
            unsent += 1;
        }
        Counters::add(&counters.dropped, unsent);
        counters.store_on(&on_bus);
        let export_result = export_thread.map(join).unwrap_or(Ok(()));
        let import_result = import_thread.map(join).unwrap_or(Ok(()));
        // The exporters stop waiting for this bridge at once.
        if let Some(task) = acknowledging {
            task.abort();
            let _ =
                tokio::time::timeout(FLUSH, flow::leave(&client, &id, &progress, &counters)).await;
        }
        writeln!(out, "bridge {id}: stopped; {}", counters.line())?;
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

/// What publishing bus messages to NATS needs.
struct Out<'a> {
    client: &'a async_nats::Client,
    origin: &'a HeaderValue,
    numbering: &'a mut Numbering,
    /// The last serial number given.
    serial: &'a mut u64,
    window: &'a mut flow::Window,
    max_payload: usize,
    counters: &'a Counters,
}

impl Out<'_> {
    /// Publishes one bus message to NATS (waiting while the client's queue is full, which is
    /// while the server is unreachable).
    async fn publish(&mut self, m: Outgoing) {
        let o = self;
        let (client, origin, max_payload, counters) =
            (o.client, o.origin, o.max_payload, o.counters);
        if m.payload.len() > max_payload {
            Counters::add(&counters.dropped, 1);
            eprintln!(
            "event-engine bridge: a message on {} has {} bytes, more than the NATS server takes \
             ({max_payload}); counted as dropped",
            m.subject,
            m.payload.len()
        );
            return;
        }
        let seq = o.numbering.next(&m.subject);
        *o.serial += 1;
        let serial = *o.serial;
        let headers = nats_side::headers(origin, m.codec, seq, serial);
        o.window.sent(&m.subject, serial);
        match client
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

/// Checks one NATS message and queues it for the bus. Messages this bridge exported itself,
/// the bridges' control messages, and those no import pattern matches, are not published (the
/// last are still queued, to be acknowledged in order); an error says why the message cannot
/// be imported.
async fn receive(
    id: &str,
    accepted: &mut TopicFilter,
    gaps: &mut GapCounter,
    counters: &Counters,
    progress: &flow::Progress,
    queue: &mpsc::Sender<Incoming>,
    m: async_nats::Message,
) -> Result<(), String> {
    if flow::is_control(&m.subject) {
        return Ok(());
    }
    let envelope = nats_side::envelope(m.headers.as_ref())
        .map_err(|why| format!("a message on {} has a bad envelope: {why}", m.subject))?;
    if envelope.origin == Some(id) {
        return Ok(());
    }
    let from = envelope
        .origin
        .zip(envelope.serial)
        .map(|(origin, serial)| (origin.to_string(), serial));
    if let Some((origin, _)) = &from {
        progress.seen(origin);
    }
    let publish = accepted.accepts(&m.subject);
    if !publish && from.is_none() {
        return Ok(());
    }
    if publish {
        if let (Some(origin), Some(seq)) = (envelope.origin, envelope.seq) {
            Counters::add(&counters.dropped, gaps.missed(origin, &m.subject, seq));
        }
    }
    let codec = envelope.codec;
    let incoming = Incoming {
        topic: m.subject,
        codec,
        payload: m.payload,
        from,
        publish,
    };
    queue
        .send(incoming)
        .await
        .map_err(|_| "the bus side has stopped".to_string())
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

/// Waits for a bus thread and returns its result (a panic there is an error here).
fn join(thread: std::thread::JoinHandle<Result<()>>) -> Result<()> {
    thread
        .join()
        .unwrap_or_else(|_| Err(anyhow::anyhow!("a bridge thread panicked")))
}
