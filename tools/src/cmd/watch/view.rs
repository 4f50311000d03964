//! The picture `watch` draws, as a pure function of two snapshots and the time between them:
//! publish and delivery rates, blocked publishers and whom they wait for, ring and slab fill
//! bars, the topics that flow (rates, totals, consumers), a lag bar per subscriber and group,
//! and the bridges. What does not fit the screen is shortened (the slab to its fullest class,
//! long lists to their first rows and a `… N more` line), so that it stays readable down to
//! 80 columns by 24 lines. Nothing here touches the bus except reading the command line of a
//! consumer a publisher waits for; it renders the same into a test buffer.

use crate::cmd::inspect::flows;
use crate::cmd::inspect::{command_of, role_name, summary};
use crate::format;
use ratatui::buffer::Buffer;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::symbols;
use ratatui::text::Line;
use ratatui::widgets::{Paragraph, Widget};
use shm_ring::{ProcessRow, Role, Snapshot};
use std::time::Duration;

/// Width of the text column left of each bar.
const LABEL_WIDTH: u16 = 34;
/// Width of the percentage right of each bar.
const PERCENT_WIDTH: u16 = 8;

/// One frame of `watch`: `cur` compared with `prev`, taken `elapsed` earlier.
pub struct Dashboard<'a> {
    /// The earlier snapshot (the same as `cur` for the first frame).
    pub prev: &'a Snapshot,
    /// The latest snapshot.
    pub cur: &'a Snapshot,
    /// Time between the two.
    pub elapsed: Duration,
    /// Whether this is the live view (shows how to quit).
    pub live: bool,
}

/// A bar row: label, fill ratio, and the text right of the bar.
struct Bar {
    label: String,
    ratio: f64,
    right: String,
}

/// Whether `a` and `b` are the same attachment seen in two snapshots.
fn same(a: &ProcessRow, b: &ProcessRow) -> bool {
    a.row == b.row && a.pid == b.pid && a.start_time == b.start_time && a.role == b.role
}

impl Dashboard<'_> {
    fn secs(&self) -> Option<f64> {
        let s = self.elapsed.as_secs_f64();
        (s > 0.0).then_some(s)
    }

    /// Messages per second between the snapshots, `-` on the first frame.
    fn rate(&self, delta: u64) -> String {
        self.secs()
            .map_or_else(|| "-".into(), |s| format!("{:.0}/s", delta as f64 / s))
    }

    fn published_delta(&self) -> u64 {
        self.cur
            .counters
            .published
            .saturating_sub(self.prev.counters.published)
    }

    fn delivered_delta(&self, p: &ProcessRow) -> u64 {
        // An attachment missing from `prev` joined since, so all it delivered is recent.
        let before = self
            .prev
            .processes
            .iter()
            .find(|q| same(p, q))
            .map_or(0, |q| q.delivered);
        p.delivered.saturating_sub(before)
    }

    fn header(&self) -> Vec<Line<'static>> {
        let c = self.cur;
        let s = summary(c);
        let delivered: u64 = c.processes.iter().map(|p| self.delivered_delta(p)).sum();
        let mut title = format!("bus {}  layout v{}", c.name, c.version);
        if self.live {
            title.push_str("  [q quits]");
        }
        vec![
            Line::styled(title, Style::default().add_modifier(Modifier::BOLD)),
            Line::raw(format!(
                "{} ({} alive): {} publishing, {} subscribing, {} in {}",
                format::count(s.processes.into(), "process", "processes"),
                s.alive,
                s.publishing_processes,
                s.subscribing_processes,
                s.member_processes,
                format::count(s.groups.into(), "group", "groups"),
            )),
            Line::raw(format!(
                "publish {}  deliver {}  published {}  unrouted {}",
                self.rate(self.published_delta()),
                self.rate(delivered),
                c.counters.published,
                c.counters.unrouted,
            )),
            Line::raw(format!(
                "full waits {}  redeliveries {}  rows reaped {}",
                c.counters.full_waits, c.counters.redeliveries, c.counters.reaped
            )),
        ]
    }

    fn ring_bar(&self) -> Bar {
        let r = &self.cur.ring;
        Bar {
            label: format!("ring {}/{}", r.occupancy, r.capacity),
            ratio: ratio(r.occupancy, r.capacity),
            right: format::percent(r.occupancy, r.capacity),
        }
    }

    fn slab_bars(&self) -> Vec<Bar> {
        self.cur
            .slab
            .iter()
            .map(|c| Bar {
                label: format!(
                    "{:>9} blocks {}/{}",
                    format::block_size(c.block_size.into()),
                    c.used,
                    c.total
                ),
                ratio: ratio(c.used.into(), c.total.into()),
                right: format::percent(c.used.into(), c.total.into()),
            })
            .collect()
    }

    /// A bar per subscribing process (fan-out and group members) and per group; bar = lag as a
    /// share of the ring (a full bar means publishers are waiting for it).
    fn lag_bars(&self) -> Vec<Bar> {
        let cap = self.cur.ring.capacity;
        let mut bars: Vec<Bar> = self
            .cur
            .processes
            .iter()
            .filter(|p| matches!(p.role, Role::Subscriber | Role::GroupMember))
            .map(|p| {
                let lag = p.lag.unwrap_or(0);
                let who = match &p.group {
                    Some(g) => format!("pid {} in {g}", p.pid),
                    None => format!("pid {} {}", p.pid, role_name(p.role)),
                };
                let dead = if p.alive { "" } else { " DEAD" };
                Bar {
                    label: format!("{who}{dead} lag {lag}"),
                    ratio: ratio(lag, cap),
                    right: self.rate(self.delivered_delta(p)),
                }
            })
            .collect();
        bars.extend(self.cur.groups.iter().map(|g| {
            let lag = self.cur.ring.head.saturating_sub(g.cursor);
            Bar {
                label: format!("group {} ({}) lag {lag}", g.name, g.members),
                ratio: ratio(lag, cap),
                right: format::percent(lag, cap),
            }
        }));
        bars
    }

    /// The slab as one bar: its fullest class (for a screen too short for every class).
    fn slab_summary(&self) -> Vec<Bar> {
        let fullest = self.cur.slab.iter().max_by(|a, b| {
            ratio(a.used.into(), a.total.into()).total_cmp(&ratio(b.used.into(), b.total.into()))
        });
        fullest
            .map(|c| Bar {
                label: format!(
                    "slab fullest {} {}/{}",
                    format::block_size(c.block_size.into()),
                    c.used,
                    c.total
                ),
                ratio: ratio(c.used.into(), c.total.into()),
                right: format::percent(c.used.into(), c.total.into()),
            })
            .into_iter()
            .collect()
    }

    /// A line per publisher waiting for room and consumer it waits for.
    fn blocked_lines(&self) -> Vec<Item> {
        let now = format::now_ns();
        let mut out = Vec::new();
        for b in flows::blocked(self.cur) {
            let since = format::ago(b.since_ns, now);
            if b.waiting_for.is_empty() {
                out.push(Item::Text(format!("  pid {} waits ({since})", b.pid)));
            }
            for c in &b.waiting_for {
                let command = c
                    .pids
                    .first()
                    .and_then(|&pid| command_of(pid))
                    .map(|c| format!(": {c}"))
                    .unwrap_or_default();
                out.push(Item::Text(format!(
                    "  pid {} waits since {since} for {}{command}",
                    b.pid,
                    c.describe()
                )));
            }
        }
        out
    }

    /// A line per topic: rates, total, consumers (as many as fit `width`, then `+N`).
    fn topic_lines(&self, width: usize) -> Vec<Item> {
        let flows = match self.secs() {
            Some(secs) => flows::topics_with_rates(self.prev, self.cur, secs),
            None => flows::topics(self.cur),
        };
        flows
            .iter()
            .map(|t| {
                let mut label = t.label();
                if label.chars().count() > TOPIC_WIDTH {
                    label = label.chars().take(TOPIC_WIDTH - 1).collect::<String>() + "…";
                }
                let line = format!(
                    "  {label:<TOPIC_WIDTH$} {:>8} {:>9} {:>8}  ",
                    flows::rate(t.messages_per_s, ""),
                    flows::rate(t.bytes_per_s, "B"),
                    compact(t.messages),
                );
                let room = width.saturating_sub(line.chars().count());
                Item::Text(line + &consumers_within(t, room))
            })
            .collect()
    }

    /// A line per bridge: counters, then the server (cut at the edge if long).
    fn bridge_lines(&self) -> Vec<Item> {
        flows::bridges(self.cur)
            .iter()
            .map(|b| {
                Item::Text(format!(
                    "  bridge pid {}{}  out {}  in {}  dropped {}  reconnects {}  held {}  forgotten {}  {}",
                    b.pid,
                    if b.alive { "" } else { " DEAD" },
                    b.row.out,
                    b.row.in_,
                    b.row.dropped,
                    b.row.reconnects,
                    b.row.held,
                    b.row.forgotten,
                    b.row.server
                ))
            })
            .collect()
    }

    /// Every section for a screen `width` wide, the slab as a bar per class or as its fullest
    /// class only.
    fn sections(&self, width: usize, whole_slab: bool) -> Vec<Section> {
        let mut out = vec![Section {
            heading: None,
            items: self.header().into_iter().map(Item::Line).collect(),
            cuttable: false,
        }];
        let blocked = self.blocked_lines();
        if !blocked.is_empty() {
            out.push(Section {
                heading: Some("BLOCKED PUBLISHERS (waiting for room on a full ring)"),
                items: blocked,
                cuttable: true,
            });
        }
        let mut fill = vec![Item::Bar(self.ring_bar())];
        let slab = if whole_slab {
            self.slab_bars()
        } else {
            self.slab_summary()
        };
        fill.extend(slab.into_iter().map(Item::Bar));
        out.push(Section {
            heading: Some("RING AND SLAB"),
            items: fill,
            cuttable: false,
        });
        let topics = self.topic_lines(width);
        out.push(Section {
            heading: Some("TOPICS       msg/s, bytes/s, messages, consumers"),
            items: if topics.is_empty() {
                vec![Item::Text("  (none published)".into())]
            } else {
                topics
            },
            cuttable: true,
        });
        let lag: Vec<Item> = self.lag_bars().into_iter().map(Item::Bar).collect();
        out.push(Section {
            heading: Some("SUBSCRIBER LAG (share of the ring; rate = deliveries)"),
            items: if lag.is_empty() {
                vec![Item::Text("  (no subscribers)".into())]
            } else {
                lag
            },
            cuttable: true,
        });
        let bridges = self.bridge_lines();
        if !bridges.is_empty() {
            out.push(Section {
                heading: Some("BRIDGES"),
                items: bridges,
                cuttable: true,
            });
        }
        out
    }

    /// What to draw in `height` rows (`None`: everything): when it does not fit, the slab
    /// shrinks to its fullest class, the blank lines go, then the longest lists are cut,
    /// each ending in a `… N more` line.
    fn items(&self, width: usize, height: Option<usize>) -> Vec<Item> {
        let mut sections = self.sections(width, true);
        let Some(height) = height else {
            return flatten(sections, None, true);
        };
        if lines(&sections, None, true) > height {
            sections = self.sections(width, false);
        }
        let blanks = lines(&sections, None, true) <= height;
        let mut shown: Vec<usize> = sections.iter().map(|s| s.items.len()).collect();
        while lines(&sections, Some(&shown), blanks) > height {
            let longest = (0..sections.len())
                .filter(|&i| sections[i].cuttable && shown[i] > 0)
                .max_by_key(|&i| (shown[i], i));
            match longest {
                Some(i) => shown[i] -= 1,
                None => break,
            }
        }
        flatten(sections, Some(&shown), blanks)
    }

    /// Rows needed to show everything.
    pub fn height(&self) -> u16 {
        self.items(usize::MAX, None).len() as u16
    }
}

/// The consumers of `t` in at most `room` characters: as many as fit, then `+N`.
fn consumers_within(t: &flows::TopicFlow, room: usize) -> String {
    let all = t.consumers_text();
    if all.chars().count() <= room || t.consumers.len() < 2 {
        return all;
    }
    let mut shown = String::new();
    for (i, c) in t.consumers.iter().enumerate() {
        let more = format!(" +{}", t.consumers.len() - i);
        let next = if shown.is_empty() {
            c.describe()
        } else {
            format!("{shown}; {}", c.describe())
        };
        let rest_after = t.consumers.len() - i - 1;
        let tail = if rest_after > 0 {
            format!(" +{rest_after}")
        } else {
            String::new()
        };
        if next.chars().count() + tail.chars().count() > room {
            return if shown.is_empty() {
                format!("{} consumers", t.consumers.len())
            } else {
                shown + &more
            };
        }
        shown = next;
    }
    shown
}

/// Width of the topic column in the TOPICS lines.
const TOPIC_WIDTH: usize = 24;

/// A count in at most 8 characters: `12345678`, then `123.5M`.
fn compact(n: u64) -> String {
    match n {
        n if n < 100_000_000 => n.to_string(),
        n if n < 100_000_000_000 => format!("{:.1}M", n as f64 / 1e6),
        n => format!("{:.1}G", n as f64 / 1e9),
    }
}

/// One row of the view.
enum Item {
    Line(Line<'static>),
    Text(String),
    Heading(&'static str),
    Bar(Bar),
    Blank,
}

/// A titled group of rows.
struct Section {
    heading: Option<&'static str>,
    items: Vec<Item>,
    /// Whether its rows may be cut to fit the screen.
    cuttable: bool,
}

/// Rows `sections` take with `shown[i]` items of section `i` (all when `None`), a `… N more`
/// line for each cut one, and blank lines between sections if `blanks`.
fn lines(sections: &[Section], shown: Option<&[usize]>, blanks: bool) -> usize {
    sections
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let n = shown.map_or(s.items.len(), |v| v[i]);
            let more = usize::from(n < s.items.len());
            usize::from(s.heading.is_some()) + n + more + usize::from(blanks && i > 0)
        })
        .sum()
}

fn flatten(sections: Vec<Section>, shown: Option<&[usize]>, blanks: bool) -> Vec<Item> {
    let mut out = Vec::new();
    for (i, s) in sections.into_iter().enumerate() {
        if blanks && i > 0 {
            out.push(Item::Blank);
        }
        if let Some(h) = s.heading {
            out.push(Item::Heading(h));
        }
        let total = s.items.len();
        let n = shown.map_or(total, |v| v[i]);
        out.extend(s.items.into_iter().take(n));
        if n < total {
            out.push(Item::Text(format!("  … {} more", total - n)));
        }
    }
    out
}

fn ratio(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        (part as f64 / whole as f64).clamp(0.0, 1.0)
    }
}

fn color(ratio: f64) -> Color {
    match ratio {
        r if r < 0.5 => Color::Green,
        r if r < 0.8 => Color::Yellow,
        _ => Color::Red,
    }
}

/// A horizontal bar filled to `ratio` of `area`'s width with block characters (eighths at the
/// edge), coloured by how full it is.
fn fill(ratio: f64, area: Rect, buf: &mut Buffer) {
    let style = Style::default().fg(color(ratio));
    let exact = f64::from(area.width) * ratio;
    let full = exact.floor() as u16;
    for x in area.left()..area.left() + full.min(area.width) {
        buf[(x, area.top())]
            .set_symbol(symbols::block::FULL)
            .set_style(style);
    }
    let eighths = ((exact - f64::from(full)) * 8.0).floor() as usize;
    if full < area.width && eighths > 0 {
        const PARTIAL: [&str; 8] = [
            " ",
            symbols::block::ONE_EIGHTH,
            symbols::block::ONE_QUARTER,
            symbols::block::THREE_EIGHTHS,
            symbols::block::HALF,
            symbols::block::FIVE_EIGHTHS,
            symbols::block::THREE_QUARTERS,
            symbols::block::SEVEN_EIGHTHS,
        ];
        buf[(area.left() + full, area.top())]
            .set_symbol(PARTIAL[eighths])
            .set_style(style);
    }
}

fn render_bar(bar: &Bar, area: Rect, buf: &mut Buffer) {
    let [label, gauge, right] = Layout::horizontal([
        Constraint::Length(LABEL_WIDTH),
        Constraint::Min(4),
        Constraint::Length(PERCENT_WIDTH),
    ])
    .areas(area);
    Paragraph::new(bar.label.as_str()).render(label, buf);
    fill(bar.ratio, gauge, buf);
    Paragraph::new(format!(" {}", bar.right)).render(right, buf);
}

fn heading(text: &str) -> Paragraph<'_> {
    Paragraph::new(Line::styled(
        text,
        Style::default().add_modifier(Modifier::BOLD),
    ))
}

impl Widget for &Dashboard<'_> {
    fn render(self, area: Rect, buf: &mut Buffer) {
        let items = self.items(area.width as usize, Some(area.height as usize));
        for (y, item) in (area.top()..area.bottom()).zip(&items) {
            let row = Rect::new(area.left(), y, area.width, 1);
            match item {
                Item::Line(line) => Paragraph::new(line.clone()).render(row, buf),
                Item::Text(text) => Paragraph::new(text.as_str()).render(row, buf),
                Item::Heading(text) => heading(text).render(row, buf),
                Item::Bar(bar) => render_bar(bar, row, buf),
                Item::Blank => {}
            }
        }
    }
}

/// The text of `buf`, one line per row, trailing blanks removed.
pub fn buffer_text(buf: &Buffer) -> String {
    let area = buf.area;
    let mut out = String::new();
    for y in area.top()..area.bottom() {
        let mut line = String::new();
        for x in area.left()..area.right() {
            line.push_str(buf[(x, y)].symbol());
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use ratatui::backend::TestBackend;
    use ratatui::Terminal;
    use shm_ring::{
        BridgeRow, BusConfig, ConsumerRow, Counters, GroupRow, RingRow, SlabClassRow, TopicCount,
    };

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
                },
                SlabClassRow {
                    block_size: 4096,
                    total: 10,
                    free: 10,
                    used: 0,
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
        let d = Dashboard {
            prev: &prev,
            cur: &cur,
            elapsed: Duration::from_secs(2),
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
        let d = Dashboard {
            prev: &cur,
            cur: &cur,
            elapsed: Duration::ZERO,
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
        let d = Dashboard {
            prev: &s,
            cur: &s,
            elapsed: Duration::ZERO,
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
        let d = Dashboard {
            prev: &prev,
            cur: &cur,
            elapsed: Duration::from_secs(1),
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
        let d = Dashboard {
            prev: &prev,
            cur: &cur,
            elapsed: Duration::from_secs(1),
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
        let d = Dashboard {
            prev: &s,
            cur: &s,
            elapsed: Duration::ZERO,
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
        let d = Dashboard {
            prev: &prev,
            cur: &cur,
            elapsed: Duration::from_secs(1),
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
}
