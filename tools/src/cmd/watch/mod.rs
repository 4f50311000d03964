//! `event-engine watch NAME`: a live terminal view of a bus, refreshed in place until `q` or
//! Ctrl-C. Each refresh reads a snapshot (the bus is not joined), builds the bus model from it
//! and the previous one, and draws [`view::Dashboard`] from the model; `--once` prints a single
//! frame as plain text instead.

pub mod view;

use crate::model::BusModel;
use crate::signals::StopFlag;
use anyhow::{bail, Result};
use ratatui::backend::CrosstermBackend;
use ratatui::buffer::Buffer;
use ratatui::crossterm::event::{self, Event, KeyCode, KeyEvent, KeyEventKind, KeyModifiers};
use ratatui::crossterm::{cursor, execute, terminal};
use ratatui::layout::Rect;
use ratatui::widgets::Widget;
use ratatui::Terminal;
use shm_ring::Snapshot;
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
        return print_once(&args.name, &first, interval, out);
    }
    if !std::io::stdout().is_terminal() {
        bail!("watch needs a terminal on stdout (use --once for a plain one-shot view)");
    }
    live(&args.name, first, interval, out)
}

/// One frame as plain text, its rates measured over `interval` from `first`.
fn print_once(name: &str, first: &Snapshot, interval: Duration, out: &mut dyn Write) -> Result<()> {
    std::thread::sleep(interval);
    let cur = shm_ring::inspect(name)?;
    let bus = BusModel::between(first, &cur, interval);
    let view = Dashboard {
        bus: &bus,
        live: false,
    };
    let width = terminal::size().map_or(100, |(w, _)| w.clamp(80, 160));
    let mut buf = Buffer::empty(Rect::new(0, 0, width, view.height()));
    (&view).render(buf.area, &mut buf);
    write!(out, "{}", view::buffer_text(&buf))?;
    Ok(())
}

/// The live view: a frame drawn now (without rates), then one per `interval` with the rates
/// since the previous, until a stop signal or a quit key.
fn live(name: &str, first: Snapshot, interval: Duration, out: &mut dyn Write) -> Result<()> {
    let stop = StopFlag::install()?;
    let _screen = Screen::enter()?;
    let mut term = Terminal::new(CrosstermBackend::new(out))?;
    let mut bus = BusModel::between(&first, &first, Duration::ZERO);
    let mut prev = first;
    let mut prev_at = Instant::now();
    loop {
        term.draw(|f| {
            f.render_widget(
                &Dashboard {
                    bus: &bus,
                    live: true,
                },
                f.area(),
            )
        })?;
        let due = prev_at + interval;
        if wait(&stop, due)? == Wake::Quit {
            return Ok(());
        }
        if Instant::now() >= due {
            let cur = shm_ring::inspect(name)?;
            bus = BusModel::between(&prev, &cur, prev_at.elapsed());
            prev = cur;
            prev_at = Instant::now();
        }
    }
}

/// Why [`wait`] returned.
#[derive(PartialEq, Eq)]
enum Wake {
    /// The refresh is due, or the terminal was resized (draw again at once).
    Draw,
    /// A stop signal, `q`, Esc or Ctrl-C.
    Quit,
}

/// Waits until `due`, a key, or a resize.
fn wait(stop: &StopFlag, due: Instant) -> Result<Wake> {
    loop {
        if stop.is_set() {
            return Ok(Wake::Quit);
        }
        let now = Instant::now();
        if now >= due {
            return Ok(Wake::Draw);
        }
        if !event::poll((due - now).min(Duration::from_millis(100)))? {
            continue;
        }
        match event::read()? {
            Event::Key(k) if k.kind != KeyEventKind::Release && quits(k) => return Ok(Wake::Quit),
            Event::Resize(..) => return Ok(Wake::Draw),
            _ => {}
        }
    }
}

/// Whether key `k` quits: q, Esc or Ctrl-C.
fn quits(k: KeyEvent) -> bool {
    let ctrl_c = k.code == KeyCode::Char('c') && k.modifiers.contains(KeyModifiers::CONTROL);
    ctrl_c || matches!(k.code, KeyCode::Char('q' | 'Q') | KeyCode::Esc)
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
