//! Fitting a frame to the screen: the frame is a list of sections, each a heading and rows;
//! when they do not fit, blank lines between sections go first, then the longest lists that may
//! be cut lose rows from their end, each ending in a `… N more` line.

use super::draw::Bar;
use ratatui::text::Line;

/// One row of the view.
pub enum Item {
    /// Styled text.
    Line(Line<'static>),
    /// Plain text.
    Text(String),
    /// A section heading.
    Heading(&'static str),
    /// A fill bar.
    Bar(Bar),
    /// Nothing (between sections).
    Blank,
}

/// A titled group of rows.
pub struct Section {
    /// Its heading (none for the header lines).
    pub heading: Option<&'static str>,
    /// Its rows.
    pub items: Vec<Item>,
    /// Whether its rows may be cut to fit the screen.
    pub cuttable: bool,
}

/// Rows `sections` take with `shown[i]` items of section `i` (all when `None`), a `… N more`
/// line for each cut one, and blank lines between sections if `blanks`.
pub fn lines(sections: &[Section], shown: Option<&[usize]>, blanks: bool) -> usize {
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

/// The rows of `sections`, every one of them, with blank lines between sections.
pub fn everything(sections: Vec<Section>) -> Vec<Item> {
    flatten(sections, None, true)
}

/// The rows of `sections` in at most `height` rows: without the blank lines if they do not
/// fit, then with the longest cuttable sections cut, one row at a time.
pub fn within(sections: Vec<Section>, height: usize) -> Vec<Item> {
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
