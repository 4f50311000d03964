//! Putting a frame's rows on the terminal: text rows, bold headings, and fill bars (a label,
//! a bar of block characters coloured by how full it is, a figure right of it).

use ratatui::buffer::Buffer;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::symbols;
use ratatui::text::Line;
use ratatui::widgets::{Paragraph, Widget};

/// Width of the text column left of each bar.
pub const LABEL_WIDTH: u16 = 34;
/// Width of the percentage right of each bar.
pub const PERCENT_WIDTH: u16 = 8;

/// A bar row: label, fill ratio, and the text right of the bar.
pub struct Bar {
    /// What the bar measures, left of it.
    pub label: String,
    /// How full, 0 to 1.
    pub ratio: f64,
    /// The figure right of it.
    pub right: String,
}

/// `part` of `whole` between 0 and 1 (0 when `whole` is 0).
pub fn ratio(part: u64, whole: u64) -> f64 {
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

/// Draws `bar` into the one-row `area`.
pub fn render_bar(bar: &Bar, area: Rect, buf: &mut Buffer) {
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

/// A section heading, in bold.
pub fn heading(text: &str) -> Paragraph<'_> {
    Paragraph::new(Line::styled(
        text,
        Style::default().add_modifier(Modifier::BOLD),
    ))
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
