//! The picture `watch` draws, as a pure function of two snapshots and the time between them:
//! publish and delivery rates, ring and slab fill bars, a lag bar per subscriber and group.
//! Nothing here touches the terminal or the bus, so it renders the same into a test buffer.

use crate::cmd::inspect::{role_name, summary};
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
/// Lines of the header above the bars (each fits 80 columns).
const HEADER_LINES: u16 = 4;
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
                "publish {}  deliver {}  published {}",
                self.rate(self.published_delta()),
                self.rate(delivered),
                c.counters.published,
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

    /// Rows needed to show everything.
    pub fn height(&self) -> u16 {
        let lag = self.lag_bars().len().max(1);
        // Header, blank, RING, bar, blank, SLAB, classes, blank, lag heading, lag rows.
        HEADER_LINES + (4 + 1 + self.cur.slab.len() + 2 + lag) as u16
    }
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
        let slab = self.slab_bars();
        let lag = self.lag_bars();
        let mut rows = vec![Constraint::Length(HEADER_LINES), Constraint::Length(1)];
        rows.extend([Constraint::Length(1); 2]); // RING heading + bar
        rows.push(Constraint::Length(1));
        rows.push(Constraint::Length(1)); // SLAB heading
        rows.extend(std::iter::repeat_n(Constraint::Length(1), slab.len()));
        rows.push(Constraint::Length(1));
        rows.push(Constraint::Length(1)); // LAG heading
        rows.extend(std::iter::repeat_n(Constraint::Length(1), lag.len().max(1)));
        rows.push(Constraint::Min(0));
        let areas = Layout::vertical(rows).split(area);

        let mut i = 0;
        let mut next = || {
            i += 1;
            areas[i - 1]
        };
        Paragraph::new(self.header()).render(next(), buf);
        next();
        heading("RING").render(next(), buf);
        render_bar(&self.ring_bar(), next(), buf);
        next();
        heading("SLAB").render(next(), buf);
        for bar in &slab {
            render_bar(bar, next(), buf);
        }
        next();
        heading("SUBSCRIBER LAG (share of the ring; rate = deliveries)").render(next(), buf);
        if lag.is_empty() {
            Paragraph::new("  (no subscribers)").render(next(), buf);
        }
        for bar in &lag {
            render_bar(bar, next(), buf);
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
    use shm_ring::{BusConfig, Counters, GroupRow, RingRow, SlabClassRow};

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
            delivered,
            published: 0,
            unrouted: 0,
            waiting_for: Vec::new(),
            waiting_since_ns: 0,
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
}
