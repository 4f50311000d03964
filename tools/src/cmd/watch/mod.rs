//! `event-engine watch NAME`: a live terminal view of a bus, refreshed in place until `q` or
//! Ctrl-C. Each refresh reads a snapshot (the bus is not joined) and draws [`view::Dashboard`]
//! from it and the previous one; `--once` prints a single frame as plain text instead.

pub mod view;

use crate::signals::StopFlag;
use anyhow::{bail, Result};
use ratatui::backend::CrosstermBackend;
use ratatui::buffer::Buffer;
use ratatui::crossterm::event::{self, Event, KeyCode, KeyEventKind, KeyModifiers};
use ratatui::crossterm::{cursor, execute, terminal};
use ratatui::layout::Rect;
use ratatui::widgets::Widget;
use ratatui::Terminal;
use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};
use view::Dashboard;

/// The long help of the subcommand (`event-engine watch --help`).
pub const LONG_ABOUT: &str = "A live view of the bus, refreshed in place until q, Esc or Ctrl-C: \
publish and delivery rates and the count of unrouted messages (no consumer wanted them); the \
publishers blocked on a full ring, each with the consumer it waits for (pid or group, command \
line) and since when; ring and slab fill bars; the topics that flow, busiest first, with \
messages and bytes per second, total messages and the consumers whose interest matches; a lag \
bar per subscriber and group (the share of the ring it is behind; a full bar means publishers \
wait for it); and each bridge (out, in, dropped, reconnects, held, forgotten, NATS server).

What does not fit the terminal is shortened, so that 80 columns by 24 lines stay readable: the \
slab becomes its fullest class, blank lines go, then the longest lists keep their first rows \
and end in a '… N more' line (`inspect` shows everything).

Needs a terminal on stdout; --once instead prints one frame as plain text, with everything \
(rates measured over one interval), and exits, which works anywhere.";

/// Arguments of `watch`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Bus name.
    pub name: String,
    /// Milliseconds between refreshes (at least 50).
    #[arg(long, value_name = "MS", default_value_t = 1000,
          value_parser = clap::value_parser!(u64).range(50..))]
    pub interval: u64,
    /// Print one plain-text frame and exit.
    #[arg(long)]
    pub once: bool,
}

/// Watches the bus.
pub fn run(args: &Args, out: &mut dyn Write) -> Result<()> {
    let interval = Duration::from_millis(args.interval);
    let first = shm_ring::inspect(&args.name)?;
    if args.once {
        std::thread::sleep(interval);
        let cur = shm_ring::inspect(&args.name)?;
        let view = Dashboard {
            prev: &first,
            cur: &cur,
            elapsed: interval,
            live: false,
        };
        let width = terminal::size().map_or(100, |(w, _)| w.clamp(80, 160));
        let mut buf = Buffer::empty(Rect::new(0, 0, width, view.height()));
        (&view).render(buf.area, &mut buf);
        write!(out, "{}", view::buffer_text(&buf))?;
        return Ok(());
    }
    if !std::io::stdout().is_terminal() {
        bail!("watch needs a terminal on stdout (use --once for a plain one-shot view)");
    }
    let stop = StopFlag::install()?;
    let _screen = Screen::enter()?;
    let mut term = Terminal::new(CrosstermBackend::new(out))?;
    let mut prev = first;
    let mut prev_at = Instant::now();
    let mut cur = prev.clone();
    let mut elapsed = Duration::ZERO;
    loop {
        term.draw(|f| {
            let view = Dashboard {
                prev: &prev,
                cur: &cur,
                elapsed,
                live: true,
            };
            f.render_widget(&view, f.area());
        })?;
        let due = prev_at + interval;
        // Wait for the next refresh, a key, or a resize (which redraws at once).
        loop {
            if stop.is_set() {
                return Ok(());
            }
            let now = Instant::now();
            if now >= due {
                break;
            }
            if event::poll((due - now).min(Duration::from_millis(100)))? {
                match event::read()? {
                    Event::Key(k) if k.kind != KeyEventKind::Release => {
                        let ctrl_c = k.code == KeyCode::Char('c')
                            && k.modifiers.contains(KeyModifiers::CONTROL);
                        if ctrl_c || matches!(k.code, KeyCode::Char('q' | 'Q') | KeyCode::Esc) {
                            return Ok(());
                        }
                    }
                    Event::Resize(..) => break,
                    _ => {}
                }
            }
        }
        if Instant::now() >= due {
            prev = std::mem::replace(&mut cur, shm_ring::inspect(&args.name)?);
            elapsed = prev_at.elapsed();
            prev_at = Instant::now();
        }
    }
}

/// The terminal in raw mode on the alternate screen; put back as it was on drop, including when
/// the view stops on an error.
struct Screen;

impl Screen {
    fn enter() -> Result<Screen> {
        terminal::enable_raw_mode()?;
        let screen = Screen;
        execute!(
            std::io::stdout(),
            terminal::EnterAlternateScreen,
            cursor::Hide
        )?;
        Ok(screen)
    }
}

impl Drop for Screen {
    fn drop(&mut self) {
        let _ = execute!(
            std::io::stdout(),
            cursor::Show,
            terminal::LeaveAlternateScreen
        );
        let _ = terminal::disable_raw_mode();
    }
}
