//! The drawing of `watch`, checked on a test terminal: rates from the two snapshots, bars in
//! proportion, what a small screen keeps.

use super::draw::{LABEL_WIDTH, PERCENT_WIDTH};
use super::*;
use crate::model::BusModel;
use ratatui::backend::TestBackend;
use ratatui::Terminal;
use shm_ring::{
    BridgeRow, BusConfig, ConsumerRow, Counters, GroupRow, RingRow, SlabClassRow, TopicCount,
};
use shm_ring::{ProcessRow, Role, Snapshot};
use std::time::Duration;

fn process(
    row: u32,
    pid: u32,
    role: Role,
    group: Option<&str>,
    lag: u64,
    delivered: u64,
) -> ProcessRow {
    let subscribes = matches!(role, Role::Subscriber | Role::GroupMember);
    ProcessRow {
        row,
        pid,
        start_time: 77,
        alive: true,
        group: group.map(Into::into),
        role,
        consumer: subscribes.then_some(0),
        cursor: subscribes.then_some(1000 - lag),
        lag: subscribes.then_some(lag),
        lossy: false,
        missed: 0,
        delivered,
        published: 0,
        unrouted: 0,
        waiting_for: Vec::new(),
        waiting_since_ns: 0,
        unpublished: None,
        redelivered: 0,
        last_heartbeat_ns: 1,
        topics: Vec::new(),
        bridge: None,
        held_blocks: 0,
        held_bytes: 0,
        copies: 0,
    }
}

fn snapshot(published: u64, processes: Vec<ProcessRow>, slab_used: u32) -> Snapshot {
    Snapshot {
        name: "md".into(),
        version: 1,
        geometry: BusConfig {
            ring_capacity: 64,
            ..BusConfig::default()
        },
        file_size: 1 << 20,
        created_ns: 1,
        ring: RingRow {
            head: published,
            tail: published - 32,
            occupancy: 32,
            capacity: 64,
            active_mask: 0b11,
        },
        processes,
        groups: vec![GroupRow {
            name: "workers".into(),
            consumer: 1,
            cursor: published - 8,
            members: 1,
            redelivered: 0,
            kept_for_ms: None,
        }],
        consumers: Vec::new(),
        departed_topics: Vec::new(),
        slab: vec![
            SlabClassRow {
                block_size: 64,
                total: 100,
                free: 100 - slab_used,
                used: slab_used,
                held: 0,
            },
            SlabClassRow {
                block_size: 4096,
                total: 10,
                free: 10,
                used: 0,
                held: 0,
            },
        ],
        counters: Counters {
            published,
            unrouted: 0,
            full_waits: 3,
            redeliveries: 0,
            reaped: 0,
            backlog_dropped: 0,
            sub_sleepers: 0,
            pub_sleepers: 0,
        },
        corruption: Vec::new(),
    }
}

fn draw(d: &Dashboard<'_>, width: u16) -> Buffer {
    let mut terminal = Terminal::new(TestBackend::new(width, d.height())).unwrap();
    terminal.draw(|f| f.render_widget(d, f.area())).unwrap();
    terminal.backend().buffer().clone()
}

fn row_of<'t>(text: &'t str, needle: &str) -> &'t str {
    text.lines()
        .find(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("{needle:?} not in\n{text}"))
}

fn filled(line: &str) -> usize {
    line.chars().filter(|&c| c == '█').count()
}

#[test]
fn rates_come_from_the_two_snapshots() {
    let prev = snapshot(
        1000,
        vec![process(1, 10, Role::Subscriber, None, 32, 500)],
        0,
    );
    let cur = snapshot(
        1200,
        vec![process(1, 10, Role::Subscriber, None, 32, 900)],
        50,
    );
    let m = BusModel::between(&prev, &cur, Duration::from_secs(2));
    let d = Dashboard {
        bus: &m,
        live: true,
    };
    let text = buffer_text(&draw(&d, 120));
    // 200 published and 400 delivered in 2 s.
    assert!(text.contains("publish 100/s"), "{text}");
    assert!(text.contains("deliver 200/s"), "{text}");
    assert!(text.contains("[q quits]"), "{text}");
    assert!(
        row_of(&text, "pid 10 subscriber lag 32").ends_with("200/s"),
        "{text}"
    );
}

#[test]
fn first_frame_has_no_rates() {
    let cur = snapshot(1000, vec![], 0);
    let m = BusModel::between(&cur, &cur, Duration::ZERO);
    let d = Dashboard {
        bus: &m,
        live: false,
    };
    let text = buffer_text(&draw(&d, 120));
    assert!(text.contains("publish -  deliver -"), "{text}");
    assert!(!text.contains("q quits"), "{text}");
}

#[test]
fn bars_fill_in_proportion() {
    let procs = vec![
        process(1, 10, Role::Subscriber, None, 64, 0),
        process(2, 11, Role::GroupMember, Some("workers"), 16, 0),
        process(3, 12, Role::Publisher, None, 0, 0),
    ];
    let s = snapshot(1000, procs, 50);
    let m = BusModel::between(&s, &s, Duration::ZERO);
    let d = Dashboard {
        bus: &m,
        live: true,
    };
    let width = 100;
    let text = buffer_text(&draw(&d, width));
    let bar = (width - LABEL_WIDTH - PERCENT_WIDTH) as usize;
    // A full ring behind: full bar; a quarter: a quarter bar; the ring half full.
    assert_eq!(filled(row_of(&text, "pid 10 subscriber lag 64")), bar);
    assert_eq!(filled(row_of(&text, "pid 11 in workers lag 16")), bar / 4);
    assert_eq!(filled(row_of(&text, "ring 32/64")), bar / 2);
    assert_eq!(filled(row_of(&text, "blocks 50/100")), bar / 2);
    assert_eq!(filled(row_of(&text, "blocks 0/10")), 0);
    assert!(row_of(&text, "ring 32/64").ends_with("50.0%"));
    assert!(row_of(&text, "group workers (1) lag 8").ends_with("12.5%"));
    // Publishers get no lag bar.
    assert!(!text.contains("pid 12"), "{text}");
}

#[test]
fn a_process_that_left_does_not_make_rates_negative() {
    let prev = snapshot(
        1000,
        vec![process(1, 10, Role::Subscriber, None, 0, 900)],
        0,
    );
    let cur = snapshot(1000, vec![process(1, 20, Role::Subscriber, None, 0, 5)], 0);
    let m = BusModel::between(&prev, &cur, Duration::from_secs(1));
    let d = Dashboard {
        bus: &m,
        live: false,
    };
    let text = buffer_text(&draw(&d, 120));
    assert!(text.contains("deliver 5/s"), "{text}");
}

#[test]
fn the_header_fits_80_columns() {
    let procs = vec![
        process(1, 4_000_000, Role::Publisher, None, 0, 0),
        process(2, 4_000_000, Role::Publisher, None, 0, 0),
        process(
            3,
            4_000_001,
            Role::GroupMember,
            Some("workers"),
            10,
            99_999_999,
        ),
    ];
    let prev = snapshot(10_000_000_000, procs.clone(), 0);
    let mut cur = snapshot(10_000_900_000, procs, 0);
    cur.counters.full_waits = 123_456_789;
    cur.counters.redeliveries = 123_456;
    cur.counters.reaped = 12_345;
    let m = BusModel::between(&prev, &cur, Duration::from_secs(1));
    let d = Dashboard {
        bus: &m,
        live: true,
    };
    let text = buffer_text(&draw(&d, 80));
    for whole in [
        "2 processes (2 alive): 1 publishing, 0 subscribing, 1 in 1 group",
        "publish 900000/s  deliver 0/s  published 10000900000",
        "full waits 123456789  redeliveries 123456  rows reaped 12345",
    ] {
        assert!(text.contains(whole), "{whole:?} cut or missing in\n{text}");
    }
}

#[test]
fn height_fits_everything() {
    let s = snapshot(1000, vec![], 0);
    let m = BusModel::between(&s, &s, Duration::ZERO);
    let d = Dashboard {
        bus: &m,
        live: false,
    };
    let text = buffer_text(&draw(&d, 120));
    let last = text.lines().last().unwrap();
    assert!(last.contains("group workers"), "{text}");
}

fn topic(name: &str, messages: u64) -> TopicCount {
    TopicCount {
        topic: Some(name.into()),
        cut: false,
        hash: shm_ring::topic_hash(name),
        messages,
        bytes: messages * 64,
        unrouted: 0,
    }
}

/// A busy bus: 8 slab classes, 12 topics, 6 subscribers, a blocked publisher, a bridge.
fn busy(published: u64, per_topic: u64) -> Snapshot {
    let mut publisher = process(1, 100, Role::Publisher, None, 0, 0);
    publisher.topics = (0..12)
        .map(|i| topic(&format!("Market.Data.SYM{i:02}"), per_topic * (i + 1)))
        .collect();
    publisher.waiting_for = vec![0];
    publisher.waiting_since_ns = 1;
    let mut procs = vec![publisher];
    for i in 0..6 {
        let mut p = process(2 + i, 200 + i, Role::Subscriber, None, 64, 10 * published);
        p.consumer = Some(i);
        procs.push(p);
    }
    let mut bus_row = process(9, 300, Role::Bus, None, 0, 0);
    bus_row.bridge = Some(BridgeRow {
        server: "nats://broker.example:4222".into(),
        out: 7,
        in_: 8,
        dropped: 1,
        reconnects: 2,
        held: 3,
        forgotten: 1,
    });
    procs.push(bus_row);
    let mut s = snapshot(published, procs, 10);
    s.slab = (0..8)
        .map(|i| SlabClassRow {
            block_size: 256 << (2 * i),
            total: 100,
            free: 100 - 10 * i,
            used: 10 * i,
            held: 0,
        })
        .collect();
    s.consumers = (0..6)
        .map(|i| ConsumerRow {
            consumer: i,
            group: None,
            topics: Some(vec!["Market.Data.{symbol}".into()]),
        })
        .collect();
    s.counters.unrouted = 42;
    s
}

#[test]
fn a_busy_bus_stays_readable_at_80_by_24() {
    let prev = busy(1000, 10);
    let cur = busy(3000, 30);
    let m = BusModel::between(&prev, &cur, Duration::from_secs(1));
    let d = Dashboard {
        bus: &m,
        live: true,
    };
    let mut terminal = Terminal::new(TestBackend::new(80, 24)).unwrap();
    terminal.draw(|f| f.render_widget(&d, f.area())).unwrap();
    let text = buffer_text(terminal.backend().buffer());
    assert_eq!(text.lines().count(), 24);
    for whole in [
        "publish 2000/s  deliver 120000/s  published 3000  unrouted 42",
        "BLOCKED PUBLISHERS",
        "pid 100 waits since",
        "for pid 200",
        "slab fullest 4 MiB 70/100",
        "TOPICS",
        "SUBSCRIBER LAG",
        "more",
        "BRIDGES",
        "bridge pid 300  out 7  in 8  dropped 1  reconnects 2  held 3  forgotten 1",
    ] {
        assert!(text.contains(whole), "{whole:?} cut or missing in\n{text}");
    }
    // The busiest topic first, with its rate (12 x 20 more messages in one second) and
    // its consumers.
    let first = row_of(&text, "Market.Data.SYM11");
    assert!(
        first.contains("240/s") && first.contains("15.4kB/s"),
        "{first}"
    );
    assert!(first.ends_with("pid 200; pid 201 +4"), "{first}");
    // Taller, everything shows: every slab class, every topic, no cuts.
    let full = buffer_text(&draw(&d, 80));
    assert!(!full.contains("more"), "{full}");
    assert!(
        full.contains("Market.Data.SYM00") && full.contains("blocks 70/100"),
        "{full}"
    );
}
