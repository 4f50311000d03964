//! What each section of the `watch` frame shows, read from the bus model: the header lines
//! (who is attached, publish and delivery rates, counters), the ring and slab bars, a line per
//! blocked publisher and consumer it waits for, per topic and per bridge, and a lag bar per
//! subscriber and group.

use super::draw::{ratio, Bar};
use super::fit::Item;
use super::Dashboard;
use crate::format;
use crate::model::{Activity, TopicFlow};
use ratatui::style::{Modifier, Style};
use ratatui::text::Line;

/// Width of the topic column in the TOPICS lines.
const TOPIC_WIDTH: usize = 24;

impl Dashboard<'_> {
    /// Messages per second between the snapshots, `-` without rates.
    fn rate(&self, delta: u64) -> String {
        self.bus
            .rate_secs()
            .map_or_else(|| "-".into(), |s| format!("{:.0}/s", delta as f64 / s))
    }

    /// Messages row `i` of the model delivered between the snapshots.
    fn delivered_by(&self, i: usize) -> u64 {
        let activity = self.bus.activity.as_ref();
        activity
            .and_then(|a| a.delivered.get(i).copied())
            .unwrap_or(0)
    }

    pub(super) fn header(&self) -> Vec<Line<'static>> {
        let (m, s, c) = (self.bus, &self.bus.summary, &self.bus.counters);
        let activity = m.activity.as_ref();
        let published = activity.map_or(0, |a| a.published);
        let delivered = activity.map_or(0, Activity::delivered_total);
        let mut title = format!("bus {}  layout v{}", m.name, m.layout_version);
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
                self.rate(published),
                self.rate(delivered),
                c.published,
                c.unrouted,
            )),
            Line::raw(format!(
                "full waits {}  redeliveries {}  rows reaped {}",
                c.full_waits, c.redeliveries, c.reaped
            )),
        ]
    }

    pub(super) fn ring_bar(&self) -> Bar {
        let r = &self.bus.ring;
        Bar {
            label: format!("ring {}/{}", r.occupancy, r.capacity),
            ratio: ratio(r.occupancy, r.capacity),
            right: format::percent(r.occupancy, r.capacity),
        }
    }

    /// A bar per slab size class.
    pub(super) fn slab_bars(&self) -> Vec<Bar> {
        self.bus
            .slab
            .iter()
            .map(|c| Bar {
                label: format!(
                    "{:>9} blocks {}/{}{}",
                    format::block_size(c.block_size.into()),
                    c.used,
                    c.total,
                    // Kept by handlers' views and producers' loans.
                    if c.held > 0 {
                        format!(" ({} held)", c.held)
                    } else {
                        String::new()
                    }
                ),
                ratio: ratio(c.used.into(), c.total.into()),
                right: format::percent(c.used.into(), c.total.into()),
            })
            .collect()
    }

    /// The slab as one bar: its fullest class (for a screen too short for every class).
    pub(super) fn slab_summary(&self) -> Vec<Bar> {
        let fullest = self.bus.slab.iter().max_by(|a, b| {
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

    /// A bar per subscribing process (fan-out and group members) and per group; bar = lag as a
    /// share of the ring (a full bar means publishers are waiting for it).
    pub(super) fn lag_bars(&self) -> Vec<Bar> {
        let cap = self.bus.ring.capacity;
        let rows = self.bus.processes.iter().enumerate();
        let mut bars: Vec<Bar> = rows
            .filter(|(_, p)| p.subscribes())
            .map(|(i, p)| {
                let lag = p.lag.unwrap_or(0);
                let who = match &p.group {
                    Some(g) => format!("pid {} in {g}", p.pid),
                    None => format!("pid {} {}", p.pid, p.role),
                };
                let dead = if p.alive { "" } else { " DEAD" };
                Bar {
                    label: format!("{who}{dead} lag {lag}"),
                    ratio: ratio(lag, cap),
                    right: self.rate(self.delivered_by(i)),
                }
            })
            .collect();
        bars.extend(self.bus.groups.iter().map(|g| Bar {
            label: format!("group {} ({}) lag {}", g.name, g.members, g.lag),
            ratio: ratio(g.lag, cap),
            right: format::percent(g.lag, cap),
        }));
        bars
    }

    /// A line per publisher waiting for room and consumer it waits for.
    pub(super) fn blocked_lines(&self) -> Vec<Item> {
        let now = format::now_ns();
        let mut out = Vec::new();
        for b in &self.bus.blocked {
            let since = format::ago(b.since_ns, now);
            if b.waiting_for.is_empty() {
                out.push(Item::Text(format!("  pid {} waits ({since})", b.pid)));
            }
            for c in &b.waiting_for {
                let command = c
                    .pids
                    .first()
                    .and_then(|&pid| self.bus.command(pid))
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
    pub(super) fn topic_lines(&self, width: usize) -> Vec<Item> {
        self.bus
            .topics
            .iter()
            .map(|t| {
                let mut label = t.label();
                if label.chars().count() > TOPIC_WIDTH {
                    label = label.chars().take(TOPIC_WIDTH - 1).collect::<String>() + "…";
                }
                let line = format!(
                    "  {label:<TOPIC_WIDTH$} {:>8} {:>9} {:>8}  ",
                    format::rate(t.messages_per_s, ""),
                    format::rate(t.bytes_per_s, "B"),
                    compact(t.messages),
                );
                let room = width.saturating_sub(line.chars().count());
                Item::Text(line + &consumers_within(t, room))
            })
            .collect()
    }

    /// A line per bridge: counters, then the server (cut at the edge if long).
    pub(super) fn bridge_lines(&self) -> Vec<Item> {
        self.bus
            .bridges
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
}

/// The consumers of `t` in at most `room` characters: as many as fit, then `+N`.
fn consumers_within(t: &TopicFlow, room: usize) -> String {
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

/// A count in at most 8 characters: `12345678`, then `123.5M`.
fn compact(n: u64) -> String {
    match n {
        n if n < 100_000_000 => n.to_string(),
        n if n < 100_000_000_000 => format!("{:.1}M", n as f64 / 1e6),
        n => format!("{:.1}G", n as f64 / 1e9),
    }
}
