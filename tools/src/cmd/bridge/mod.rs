//! `event-engine bridge BUS --nats URL`: carry chosen topics between a bus and a NATS server,
//! so buses on several machines share them through one broker.
//!
//! Three threads: the export thread reads the bus (`bus_side::ExportReader`) and queues
//! messages for NATS (`export`); the import thread publishes what came from NATS on the bus
//! (`bus_side::ImportWriter`, `import`); the main thread runs a current-thread tokio runtime
//! with the NATS client: the main loop (`main_loop`) publishes the export queue, reads the
//! import subscriptions and the acknowledgements of the importers, and a task sends this
//! bridge's own acknowledgements. `settings` checks the command line before anything starts.
//! Bounded queues between them carry backpressure both ways: a slow or unreachable server
//! holds the bus's publishers back (nothing is overwritten), a full bus slows the import, and
//! an importer a full `--window` behind holds the exporter back (`flow`).

mod bus_side;
mod export;
mod flow;
mod import;
mod main_loop;
mod nats_side;
mod settings;
mod stats;
mod subject;

use crate::signals::StopFlag;
use anyhow::{Context, Result};
use bus_side::{ExportReader, ImportWriter};
use main_loop::{Bridge, Ends};
pub use settings::Args;
use settings::Settings;
use stats::Counters;
use std::io::Write;
use std::sync::Arc;
use tokio::runtime::Runtime;

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

/// Runs the bridge until a stop signal.
pub fn run(args: &Args, out: &mut dyn Write) -> Result<()> {
    let mut settings = Settings::from_args(args)?;
    let stop = StopFlag::install()?;
    // A bus that does not exist yet is created once the server is reached (not before, so a
    // failed start leaves nothing behind), with the geometry Python engines create by default.
    let existing = open_existing(&args.name)?;
    let counters = Arc::new(Counters::default());

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the NATS client's runtime")?;
    let client = runtime.block_on(nats_side::connect(
        std::mem::take(&mut settings.servers),
        &format!("event-engine bridge {}", settings.id),
        settings.connect_timeout,
        args.import_buffer,
        counters.clone(),
    ))?;
    let bus = match existing {
        Some(bus) => bus,
        None => create(&args.name)?,
    };
    let bridge = Bridge {
        id: settings.id.clone(),
        client,
        counters,
        // The counters also go to the bus handle's row, for `inspect` and `watch`.
        on_bus: bus.announce_bridge(&stats::without_credentials(&args.nats)),
        stop,
        stats_every: settings.stats_every,
        window: flow::Window::new(args.window, settings.ack_timeout),
        acks: None,
        route: format!(
            "bus {} <-> {}; exporting [{}]",
            args.name,
            args.nats,
            args.export.join(", ")
        ),
    };
    let summary = attach(&runtime, bridge, &bus, settings)
        .and_then(|(bridge, ends)| runtime.block_on(bridge.run(ends, out)));
    drop(runtime);
    drop(bus);
    summary
}

/// Subscribes on NATS, then makes the bus ends: the bridge and the ends it carries between.
fn attach(
    runtime: &Runtime,
    mut bridge: Bridge,
    bus: &shm_ring::Bus,
    settings: Settings,
) -> Result<(Bridge, Ends)> {
    let Settings { export, import, .. } = settings;
    // Subscribed before the bridge shows on the bus as a subscriber or publisher, so that
    // whoever sees it there can count on it receiving from NATS already.
    let subjects =
        nats_side::disjoint_subjects(import.iter().map(subject::subscription_subject).collect());
    let subscriptions = runtime.block_on(nats_side::subscribe(&bridge.client, &subjects))?;
    // An exporter hears its importers' acknowledgements from the start.
    if !export.is_empty() {
        bridge.acks = Some(subscribe_acks(runtime, &bridge.client, &bridge.id)?);
    }
    // The bus ends are made once connected, so the bus is not held back while connecting.
    let (reader, writer) = bus_ends(bus, export, !import.is_empty())?;
    let ends = Ends {
        reader,
        writer,
        subscriptions,
        subjects,
        import,
    };
    Ok((bridge, ends))
}

/// Bus `name`, `None` when it does not exist.
fn open_existing(name: &str) -> Result<Option<shm_ring::Bus>> {
    match shm_ring::Bus::open(name) {
        Ok(bus) => Ok(Some(bus)),
        Err(shm_ring::BusError::NotFound { .. }) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Bus `name` created with the default geometry (or opened, if another process made it since).
fn create(name: &str) -> Result<shm_ring::Bus> {
    let bus = shm_ring::Bus::open_or_create(name, &shm_ring::BusConfig::default())?;
    eprintln!(
        "event-engine bridge: bus {name} did not exist; created it with the default geometry"
    );
    Ok(bus)
}

/// The subscription to this bridge's acknowledgements, once the server has it.
fn subscribe_acks(
    runtime: &Runtime,
    client: &async_nats::Client,
    id: &str,
) -> Result<async_nats::Subscriber> {
    let subject = flow::ack_subject(id);
    runtime.block_on(async {
        let sub = client
            .subscribe(subject.clone())
            .await
            .with_context(|| format!("subscribing to NATS subject {subject}"))?;
        client.flush().await.context("reaching the NATS server")?;
        Ok(sub)
    })
}

/// The bus reader for the `export` patterns (none without them) and, when `importing`, the
/// bus writer; the reader skips what the writer publishes.
fn bus_ends(
    bus: &shm_ring::Bus,
    export: Vec<engine_core::Topic>,
    importing: bool,
) -> Result<(Option<ExportReader>, Option<ImportWriter>)> {
    let writer = if importing {
        Some(ImportWriter::new(bus)?)
    } else {
        None
    };
    let reader = if export.is_empty() {
        None
    } else {
        Some(ExportReader::new(
            bus,
            export,
            writer.as_ref().map(ImportWriter::id),
        )?)
    };
    Ok((reader, writer))
}
