//! What `inspect` (text and JSON) and `watch` print for a fixed bus, compared whole with the
//! files under `tests/render/`: a busy bus (blocked and holding publishers, a dead row, a
//! lossy subscriber, a kept group, a bridge, cut and other topics, a corruption report) and a
//! quiet one. The JSON file is the schema-1 contract byte for byte; the text files are what an
//! operator reads. After a deliberate change of the output, `RENDER_WRITE=1 cargo test --test
//! render` writes the files anew, to be reviewed in the diff.

use event_engine_cli::cmd::inspect::write_text;
use event_engine_cli::cmd::watch::view::{buffer_text, Dashboard};
use event_engine_cli::model::BusModel;
use ratatui::backend::TestBackend;
use ratatui::Terminal;
use shm_ring::{
    BridgeRow, BusConfig, ConsumerRow, Counters, GroupRow, ProcessRow, RingRow, Role, SlabClassRow,
    Snapshot, TopicCount, Unpublished,
};
use std::path::PathBuf;
use std::time::Duration;

/// A fixed instant, ns since the epoch, that the fixtures' times are relative to.
const T0: u64 = 1_780_000_000_000_000_000;
const SEC: u64 = 1_000_000_000;
/// Pids above the kernel's limit (2^22): no /proc entry, so no command line, on any machine.
const PID: u32 = 4_194_400;

fn row(row: u32, pid: u32, role: Role, t0: u64) -> ProcessRow {
    ProcessRow {
        row,
        pid,
        start_time: 1000 + u64::from(pid),
        alive: true,
        group: None,
        role,
        consumer: None,
        cursor: None,
        lag: None,
        lossy: false,
        missed: 0,
        delivered: 0,
        published: 0,
        unrouted: 0,
        waiting_for: Vec::new(),
        waiting_since_ns: 0,
        unpublished: None,
        redelivered: 0,
        last_heartbeat_ns: t0 - 3 * SEC,
        topics: Vec::new(),
        bridge: None,
        held_blocks: 0,
        held_bytes: 0,
        copies: 0,
    }
}

fn subscriber(r: u32, pid: u32, consumer: u32, cursor: u64, head: u64, t0: u64) -> ProcessRow {
    ProcessRow {
        consumer: Some(consumer),
        cursor: Some(cursor),
        lag: Some(head - cursor),
        ..row(r, pid, Role::Subscriber, t0)
    }
}

fn topic(name: Option<&str>, cut: bool, messages: u64) -> TopicCount {
    TopicCount {
        topic: name.map(Into::into),
        cut,
        hash: name.map_or(0, shm_ring::topic_hash),
        messages,
        bytes: messages * 100,
        unrouted: messages / 10,
    }
}

/// A busy bus after `n` rounds of traffic, its times relative to `t0`.
fn busy(n: u64, t0: u64) -> Snapshot {
    let head = 1000 * n;
    let mut bus_handle = row(0, PID, Role::Bus, t0);
    bus_handle.bridge = Some(BridgeRow {
        server: "nats://127.0.0.1:4222".into(),
        out: 10 * n,
        in_: 7 * n,
        dropped: 1,
        reconnects: 2,
        held: 3,
        forgotten: 1,
    });
    let mut publisher = row(1, PID, Role::Publisher, t0);
    publisher.published = 900 * n;
    publisher.unrouted = 12;
    publisher.topics = vec![
        topic(Some("Market.Data.AAPL"), false, 600 * n),
        topic(Some("orders.new"), false, 200 * n),
        topic(
            Some("Market.Data.AVeryLongSymbolNameThatGetsC"),
            true,
            50 * n,
        ),
        topic(None, false, 50 * n),
    ];
    let mut blocked = row(2, PID + 1, Role::Publisher, t0);
    blocked.published = 100 * n;
    blocked.waiting_for = vec![0, 1];
    blocked.waiting_since_ns = t0 - 4 * SEC;
    blocked.topics = vec![topic(Some("orders.new"), false, 100 * n)];
    let mut holder = row(3, PID + 2, Role::Publisher, t0);
    holder.alive = false;
    holder.unpublished = Some(Unpublished {
        first: head - 64,
        count: 2,
        addressed: vec![1],
    });
    let mut deciding = row(4, PID + 3, Role::Publisher, t0);
    deciding.unpublished = Some(Unpublished {
        first: head - 1,
        count: 1,
        addressed: Vec::new(),
    });
    let mut lossy = subscriber(5, PID + 4, 0, head - 64, head, t0);
    lossy.lossy = true;
    lossy.missed = 17;
    lossy.delivered = 800 * n;
    let mut member = subscriber(6, PID + 5, 1, head - 64, head, t0);
    member.role = Role::GroupMember;
    member.group = Some("workers".into());
    member.delivered = 300 * n;
    member.redelivered = 4;
    let mut member2 = subscriber(7, PID + 6, 1, head - 64, head, t0);
    member2.role = Role::GroupMember;
    member2.group = Some("workers".into());
    member2.delivered = 200 * n;
    let mut dead = subscriber(8, PID + 7, 3, head - 10, head, t0);
    dead.alive = false;
    dead.delivered = 5;
    dead.last_heartbeat_ns = t0 - 600 * SEC;
    let mut member_too = subscriber(9, PID, 1, head - 30, head, t0);
    member_too.role = Role::GroupMember;
    member_too.group = Some("workers".into());
    member_too.delivered = 50 * n;
    Snapshot {
        name: "render".into(),
        version: 12,
        geometry: BusConfig {
            ring_capacity: 64,
            max_message: 4096,
            // The classes below: 32 blocks of 256 B and 32 of 4 KiB.
            slab_memory: Some(136 << 10),
            max_processes: 16,
            max_subscribers: 8,
            ..BusConfig::default()
        },
        file_size: 123_456,
        created_ns: t0 - 3 * 86_400 * SEC,
        ring: RingRow {
            head,
            tail: head - 64,
            occupancy: 64,
            capacity: 64,
            active_mask: 0b1011,
        },
        processes: vec![
            bus_handle, publisher, blocked, holder, deciding, lossy, member, member2, dead,
            member_too,
        ],
        groups: vec![
            GroupRow {
                name: "workers".into(),
                consumer: 1,
                cursor: head - 64,
                members: 3,
                redelivered: 4,
                kept_for_ms: None,
            },
            GroupRow {
                name: "idle".into(),
                consumer: 2,
                cursor: head - 20,
                members: 0,
                redelivered: 0,
                kept_for_ms: Some(2500),
            },
        ],
        consumers: vec![
            ConsumerRow {
                consumer: 0,
                group: None,
                topics: None,
            },
            ConsumerRow {
                consumer: 1,
                group: Some("workers".into()),
                topics: Some(vec!["Market.Data.{symbol}".into()]),
            },
            ConsumerRow {
                consumer: 2,
                group: Some("idle".into()),
                topics: Some(vec!["orders.new".into()]),
            },
            ConsumerRow {
                consumer: 3,
                group: None,
                topics: Some(vec!["orders.*".into()]),
            },
        ],
        departed_topics: vec![topic(Some("orders.old"), false, 30)],
        slab: vec![
            SlabClassRow {
                block_size: 256,
                total: 32,
                free: 8,
                used: 24,
                held: 0,
            },
            SlabClassRow {
                block_size: 4096,
                total: 32,
                free: 32,
                used: 0,
                held: 0,
            },
        ],
        counters: Counters {
            published: head,
            unrouted: 42,
            full_waits: 9,
            redeliveries: 4,
            reaped: 2,
            backlog_dropped: 6,
            sub_sleepers: 1,
            pub_sleepers: 1,
        },
        corruption: vec!["slot 3 names block 99 of a class with 32".into()],
    }
}

/// A bus nobody uses.
fn quiet(t0: u64) -> Snapshot {
    let mut s = busy(1, t0);
    s.processes.clear();
    s.groups.clear();
    s.consumers.clear();
    s.departed_topics.clear();
    s.corruption.clear();
    s.ring.tail = s.ring.head;
    s.ring.occupancy = 0;
    s.slab.iter_mut().for_each(|c| {
        c.free = c.total;
        c.used = 0;
    });
    s
}

/// Compares `actual` with the file `name` under tests/render (or writes it, with RENDER_WRITE).
fn check(name: &str, actual: &str) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/render")
        .join(name);
    if std::env::var_os("RENDER_WRITE").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    if actual != expected {
        let first = actual
            .lines()
            .zip(expected.lines())
            .position(|(a, e)| a != e)
            .unwrap_or(actual.lines().count().min(expected.lines().count()));
        panic!(
            "{name} differs from {} at line {}:\n--- actual\n{actual}\n--- expected\n{expected}",
            path.display(),
            first + 1
        );
    }
}

fn text(report: &BusModel, verbose: bool) -> String {
    let mut out = Vec::new();
    write_text(report, T0, verbose, &mut out).unwrap();
    String::from_utf8(out).unwrap()
}

fn json(report: &BusModel) -> String {
    serde_json::to_string_pretty(report).unwrap() + "\n"
}

#[test]
fn inspect_prints_a_busy_bus() {
    let report = BusModel::between(&busy(1, T0), &busy(3, T0), Duration::from_secs(2));
    check("inspect-busy.txt", &text(&report, false));
    check("inspect-busy-verbose.txt", &text(&report, true));
    check("inspect-busy.json", &json(&report));
}

#[test]
fn inspect_prints_a_quiet_bus() {
    let report = BusModel::of(&quiet(T0));
    check("inspect-quiet.txt", &text(&report, true));
    check("inspect-quiet.json", &json(&report));
}

fn watch(prev: &Snapshot, cur: &Snapshot, width: u16, height: Option<u16>) -> String {
    let bus = BusModel::between(prev, cur, Duration::from_secs(2));
    let view = Dashboard {
        bus: &bus,
        live: true,
    };
    let height = height.unwrap_or_else(|| view.height());
    let mut terminal = Terminal::new(TestBackend::new(width, height)).unwrap();
    terminal.draw(|f| f.render_widget(&view, f.area())).unwrap();
    buffer_text(terminal.backend().buffer())
}

#[test]
fn watch_draws_a_busy_bus() {
    // `watch` measures waits against the clock: the fixture is placed now, its waits days old.
    let t0 = now_ns() - 5 * 86_400 * SEC;
    let (prev, cur) = (busy(1, t0), busy(3, t0));
    check("watch-busy.txt", &watch(&prev, &cur, 110, None));
    check("watch-busy-80x24.txt", &watch(&prev, &cur, 80, Some(24)));
    let still = quiet(t0);
    check("watch-quiet.txt", &watch(&still, &still, 80, None));
}

fn now_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
}
