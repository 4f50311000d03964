//! Is a process still the one that attached? A pid plus its start time (field 22 of
//! `/proc/<pid>/stat`, in clock ticks since boot) identifies a process; a recycled pid has a
//! different start time, and a zombie (killed, not yet waited for) counts as dead.

use std::sync::OnceLock;

/// Start time and state of `pid`, or `None` if there is no such process.
fn stat(pid: u32) -> Option<(u64, char)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may contain spaces and parentheses; fields after it are plain.
    let rest = &text[text.rfind(')')? + 1..];
    let mut fields = rest.split_ascii_whitespace();
    let state = fields.next()?.chars().next()?;
    // `rest` starts at field 3, so field 22 is the 20th from here.
    let start = fields.nth(18)?.parse().ok()?;
    Some((start, state))
}

/// Start time of process `pid`, if it exists.
pub fn start_time(pid: u32) -> Option<u64> {
    stat(pid).map(|(s, _)| s)
}

/// This process's start time (cached).
pub fn own_start_time() -> u64 {
    static START: OnceLock<u64> = OnceLock::new();
    *START.get_or_init(|| start_time(std::process::id()).unwrap_or(0))
}

/// True when `pid` runs, is not a zombie, and started at `start`.
pub fn is_alive(pid: u32, start: u64) -> bool {
    if pid == 0 {
        return false;
    }
    match stat(pid) {
        Some((s, state)) => s == start && state != 'Z' && state != 'X',
        None => false,
    }
}

/// Nanoseconds since the Unix epoch.
pub fn now_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

/// Nanoseconds since the Unix epoch from the kernel's coarse clock: a few nanoseconds to read
/// (no clock-source access), with the resolution of the kernel tick (1 to 4 ms). Publishing
/// stamps every message with it, where a precise clock read would cost a fifth of the message.
pub fn coarse_now_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; the clock id is a constant the kernel knows.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_REALTIME_COARSE, &mut ts) };
    if rc != 0 {
        return now_ns();
    }
    (ts.tv_sec as u64)
        .wrapping_mul(1_000_000_000)
        .wrapping_add(ts.tv_nsec as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn self_is_alive_and_a_wrong_start_time_is_not() {
        let pid = std::process::id();
        let st = own_start_time();
        assert!(st > 0);
        assert!(is_alive(pid, st));
        assert!(!is_alive(pid, st + 1));
        assert!(!is_alive(0, 0));
    }

    #[test]
    fn coarse_clock_is_within_a_tick_or_so_of_the_precise_one() {
        let (a, b, c) = (now_ns(), coarse_now_ns(), now_ns());
        // The coarse clock lags by up to one kernel tick (at most 10 ms even at HZ=100).
        assert!(b <= c && b + 10_000_000 >= a, "{a} {b} {c}");
    }

    #[test]
    fn reaped_child_is_dead() {
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        let st = start_time(pid);
        child.wait().unwrap();
        if let Some(st) = st {
            assert!(!is_alive(pid, st));
        }
    }
}
