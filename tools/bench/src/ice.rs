//! The iceoryx2 peer of W4 (feature `iceoryx2`): publish-subscribe between two processes with the
//! same 64-byte payload, lossless: safe overflow off, the publisher retries until delivered, a
//! subscriber buffer as deep as the bus ring.
//!
//! iceoryx2 silently drops samples sent before a subscriber's end of the connection exists, so the
//! publisher is created first, then the subscriber, and only then does the publisher update its
//! connections and check that it sees exactly one subscriber; every `send` must report one
//! recipient. iceoryx2 has no blocking receive for publish-subscribe: in parked mode the subscriber
//! sleeps on a listener of a companion event service and the publisher notifies it after each send
//! (the iceoryx2 way to wake a subscriber); in the other modes the subscriber polls.

use crate::child::{say, wait_word};
use crate::clock::{now_ns, peak_rss_bytes, spin_until};
use crate::params::{Mode, RunParams};
use crate::payload::{self, OrderCheck};
use crate::report::SideReport;
use crate::stats::Percentiles;
use anyhow::{anyhow, bail, Result};
use iceoryx2::port::update_connections::UpdateConnections;
use iceoryx2::prelude::*;
use iceoryx2::service::port_factory::publish_subscribe::PortFactory;
use iceoryx2::service::port_factory::PortFactory as _;

/// Subscriber buffer and the matching service limit (the bus ring's default capacity).
pub const BUFFER: usize = 4096;

type Msg = [u8; payload::SIZE];

/// File prefix of every iceoryx2 file one benchmark run (`tag`: the coordinator's pid) creates.
fn prefix(tag: &str) -> String {
    format!("iox2w4x{tag}_")
}

/// Directory of iceoryx2's node and service files for benchmark run `tag`.
fn root(tag: &str) -> String {
    format!("/tmp/event-engine-w4-iox-{tag}/")
}

/// An iceoryx2 configuration private to benchmark run `tag`, so its files can be found and
/// removed afterwards without touching anyone else's iceoryx2 files.
fn config(tag: &str) -> Result<Config> {
    let mut c = Config::default();
    c.global.prefix = FileName::new(prefix(tag).as_bytes())
        .map_err(|e| anyhow!("iceoryx2 prefix for {tag:?}: {e:?}"))?;
    c.global.set_root_path(
        &Path::new(root(tag).as_bytes())
            .map_err(|e| anyhow!("iceoryx2 root for {tag:?}: {e:?}"))?,
    );
    Ok(c)
}

/// Removes what iceoryx2 left behind for benchmark run `tag` (its global management segment
/// outlives the nodes by design).
pub fn cleanup(tag: &str) {
    let prefix = prefix(tag);
    if let Ok(dir) = std::fs::read_dir("/dev/shm") {
        for e in dir.flatten() {
            if e.file_name().to_string_lossy().starts_with(&prefix) {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
    let _ = std::fs::remove_dir_all(root(tag));
}

fn open(tag: &str, name: &str) -> Result<(Node<ipc::Service>, PortFactory<ipc::Service, Msg, ()>)> {
    set_log_level(LogLevel::Error);
    let node = NodeBuilder::new()
        .config(&config(tag)?)
        .create::<ipc::Service>()
        .map_err(|e| anyhow!("creating an iceoryx2 node: {e:?}"))?;
    let service_name: ServiceName = name
        .try_into()
        .map_err(|e| anyhow!("iceoryx2 service name {name:?}: {e:?}"))?;
    let service = node
        .service_builder(&service_name)
        .publish_subscribe::<Msg>()
        .enable_safe_overflow(false)
        .subscriber_max_buffer_size(BUFFER)
        .history_size(0)
        .max_publishers(1)
        .max_subscribers(1)
        .open_or_create()
        .map_err(|e| anyhow!("opening iceoryx2 service {name:?}: {e:?}"))?;
    Ok((node, service))
}

/// The event service that wakes a parked subscriber of service `name`.
fn wake_service(
    node: &Node<ipc::Service>,
    name: &str,
) -> Result<iceoryx2::service::port_factory::event::PortFactory<ipc::Service>> {
    let wake = format!("{name}/wake");
    let service_name: ServiceName = wake
        .as_str()
        .try_into()
        .map_err(|e| anyhow!("iceoryx2 service name {wake:?}: {e:?}"))?;
    node.service_builder(&service_name)
        .event()
        .open_or_create()
        .map_err(|e| anyhow!("opening iceoryx2 event service {wake:?}: {e:?}"))
}

/// The publisher role: created before the subscriber; sends after `go`.
pub fn publisher(tag: &str, name: &str, p: &RunParams) -> Result<()> {
    let (node, service) = open(tag, name)?;
    let notifier = if p.mode == Mode::Parked {
        let n = wake_service(&node, name)?
            .notifier_builder()
            .create()
            .map_err(|e| anyhow!("creating an iceoryx2 notifier: {e:?}"))?;
        Some(n)
    } else {
        None
    };
    let publisher = service
        .publisher_builder()
        .backpressure_strategy(BackpressureStrategy::RetryUntilDelivered)
        .create()
        .map_err(|e| anyhow!("creating an iceoryx2 publisher: {e:?}"))?;
    say("ready");
    wait_word("go")?;
    publisher
        .update_connections()
        .map_err(|e| anyhow!("updating iceoryx2 connections: {e:?}"))?;
    let subs = service.dynamic_config().number_of_subscribers();
    if subs != 1 {
        bail!("the iceoryx2 publisher sees {subs} subscribers, expected 1");
    }
    let start_ns = now_ns();
    let mut next = start_ns;
    for seq in 0..p.messages {
        let t = match p.mode {
            Mode::BusyPoll => {
                next += p.interval_ns;
                spin_until(next);
                now_ns()
            }
            Mode::Parked => {
                std::thread::sleep(std::time::Duration::from_nanos(p.pause_ns));
                now_ns()
            }
            Mode::Throughput => 0,
        };
        let sample = publisher
            .loan_uninit()
            .map_err(|e| anyhow!("iceoryx2 loan: {e:?}"))?;
        let sample = sample.write_payload(payload::make(seq, t).bytes);
        let reached = sample.send().map_err(|e| anyhow!("iceoryx2 send: {e:?}"))?;
        if reached != 1 {
            bail!("iceoryx2 delivered message {seq} to {reached} subscribers, expected 1");
        }
        if let Some(n) = &notifier {
            let woken = n.notify().map_err(|e| anyhow!("iceoryx2 notify: {e:?}"))?;
            if woken != 1 {
                bail!("iceoryx2 notified {woken} listeners for message {seq}, expected 1");
            }
        }
    }
    SideReport {
        start_ns: Some(start_ns),
        messages: p.messages,
        peak_rss: peak_rss_bytes(),
        ..SideReport::default()
    }
    .emit();
    Ok(())
}

/// The subscriber role: polls, checks every message, reports.
pub fn subscriber(tag: &str, name: &str, p: &RunParams) -> Result<()> {
    let (node, service) = open(tag, name)?;
    let listener = if p.mode == Mode::Parked {
        let l = wake_service(&node, name)?
            .listener_builder()
            .create()
            .map_err(|e| anyhow!("creating an iceoryx2 listener: {e:?}"))?;
        Some(l)
    } else {
        None
    };
    let subscriber = service
        .subscriber_builder()
        .buffer_size(BUFFER)
        .create()
        .map_err(|e| anyhow!("creating an iceoryx2 subscriber: {e:?}"))?;
    let mut check = OrderCheck::default();
    let mut lat = Vec::with_capacity(if p.mode == Mode::Throughput {
        0
    } else {
        p.messages as usize
    });
    say("ready");
    let stall = 30_000_000_000u64;
    let mut idle_since = now_ns();
    while check.next < p.messages {
        match subscriber
            .receive()
            .map_err(|e| anyhow!("iceoryx2 receive: {e:?}"))?
        {
            Some(sample) => {
                let now = now_ns();
                let (seq, sent) = payload::read(sample.payload()).map_err(anyhow::Error::msg)?;
                check.accept(seq).map_err(anyhow::Error::msg)?;
                if p.mode != Mode::Throughput && seq >= p.warmup {
                    lat.push(now.saturating_sub(sent));
                }
                idle_since = now;
            }
            None => {
                if now_ns() - idle_since > stall {
                    bail!("no iceoryx2 sample for 30 s after {}", check.next);
                }
                match &listener {
                    Some(l) => {
                        l.timed_wait(|_| {}, std::time::Duration::from_secs(1))
                            .map_err(|e| anyhow!("iceoryx2 listener wait: {e:?}"))?;
                    }
                    None => std::hint::spin_loop(),
                }
            }
        }
    }
    let end_ns = now_ns();
    say("received");
    wait_word("check")?;
    if subscriber
        .receive()
        .map_err(|e| anyhow!("iceoryx2 receive: {e:?}"))?
        .is_some()
    {
        bail!("an iceoryx2 sample beyond the {} sent arrived", p.messages);
    }
    SideReport {
        end_ns: Some(end_ns),
        messages: check.next,
        latency: (p.mode != Mode::Throughput).then(|| Percentiles::of(&mut lat)),
        peak_rss: peak_rss_bytes(),
        ..SideReport::default()
    }
    .emit();
    Ok(())
}
