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
