//! The picture `watch` draws, as a pure function of the bus model (two snapshots and the time
//! between them): publish and delivery rates, blocked publishers and whom they wait for, ring
//! and slab fill bars, the topics that flow (rates, totals, consumers), a lag bar per
//! subscriber and group, and the bridges. What does not fit the screen is shortened (the slab
//! to its fullest class, long lists to their first rows and a `… N more` line), so that it
//! stays readable down to 80 columns by 24 lines. Nothing here touches the bus; it renders the
//! same into a test buffer.
//!
//! `parts` says what each section shows, `fit` fits the sections to the screen, `draw` puts
//! the rows on it.

mod draw;
mod fit;
mod parts;
#[cfg(test)]
mod tests;

use crate::model::BusModel;
pub use draw::buffer_text;
use draw::{heading, render_bar};
use fit::{Item, Section};
use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::widgets::{Paragraph, Widget};

/// One frame of `watch`: the bus as its model shows it.
pub struct Dashboard<'a> {
    /// The bus, with the rates since the previous snapshot (none on the first frame).
    pub bus: &'a BusModel,
    /// Whether this is the live view (shows how to quit).
    pub live: bool,
}

/// The slab as a bar per size class, or as its fullest class only (for a short screen).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Slab {
    Whole,
    Fullest,
}

impl Dashboard<'_> {
    /// Every section for a screen `width` wide, in the order drawn.
    fn sections(&self, width: usize, slab: Slab) -> Vec<Section> {
        let header = self.header().into_iter().map(Item::Line).collect();
        let mut out = vec![section(None, header, false)];
        let blocked = self.blocked_lines();
        if !blocked.is_empty() {
            let title = "BLOCKED PUBLISHERS (waiting for room on a full ring)";
            out.push(section(Some(title), blocked, true));
        }
        out.push(section(Some("RING AND SLAB"), self.fill_bars(slab), false));
        out.push(section(
            Some("TOPICS       msg/s, bytes/s, messages, consumers"),
            or_else(self.topic_lines(width), "  (none published)"),
            true,
        ));
        let lag = self.lag_bars().into_iter().map(Item::Bar).collect();
        out.push(section(
            Some("SUBSCRIBER LAG (share of the ring; rate = deliveries)"),
            or_else(lag, "  (no subscribers)"),
            true,
        ));
        let bridges = self.bridge_lines();
        if !bridges.is_empty() {
            out.push(section(Some("BRIDGES"), bridges, true));
        }
        out
    }

    /// The ring's bar, then the slab's.
    fn fill_bars(&self, slab: Slab) -> Vec<Item> {
        let slab = match slab {
            Slab::Whole => self.slab_bars(),
            Slab::Fullest => self.slab_summary(),
        };
        std::iter::once(self.ring_bar())
            .chain(slab)
            .map(Item::Bar)
            .collect()
    }

    /// What to draw in `height` rows (`None`: everything): when it does not fit, the slab
    /// shrinks to its fullest class, the blank lines go, then the longest lists are cut,
    /// each ending in a `… N more` line.
    fn items(&self, width: usize, height: Option<usize>) -> Vec<Item> {
        let sections = self.sections(width, Slab::Whole);
        let Some(height) = height else {
            return fit::everything(sections);
        };
        if fit::lines(&sections, None, true) <= height {
            return fit::within(sections, height);
        }
        fit::within(self.sections(width, Slab::Fullest), height)
    }

    /// Rows needed to show everything.
    pub fn height(&self) -> u16 {
        self.items(usize::MAX, None).len() as u16
    }
}

fn section(heading: Option<&'static str>, items: Vec<Item>, cuttable: bool) -> Section {
    Section {
        heading,
        items,
        cuttable,
    }
}

/// `items`, or one line saying there are none.
fn or_else(items: Vec<Item>, none: &str) -> Vec<Item> {
    if items.is_empty() {
        vec![Item::Text(none.into())]
    } else {
        items
    }
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
