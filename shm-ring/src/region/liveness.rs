//! Is a process still the one that attached? A pid plus its start time (field 22 of
//! `/proc/<pid>/stat`, in clock ticks since boot) identifies a process; a recycled pid has a
//! different start time, and a zombie (killed, not yet waited for) counts as dead.
//!
//! Liveness fails closed: a process counts as dead only on a definite answer (`kill(pid, 0)`
//! says there is no such process, or `/proc/<pid>/stat` shows another start time or a zombie).
//! When the answer cannot be had (`/proc` hidden, out of file descriptors, a pid of another
//! namespace) the process counts as alive, because reaping a live process takes its messages
//! and its slots from under it, while sparing a dead one only delays recovery.

use std::sync::Mutex;

/// What is known of a process.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Liveness {
    /// It runs and started at the recorded time.
    Alive,
    /// It is gone: no such pid, a zombie, or the pid now belongs to a process started later.
    Dead,
    /// It cannot be told (`/proc/<pid>/stat` unreadable for a pid that exists).
    Unknown,
}

/// Start time and state of `pid` read from `/proc`, or the error that prevented it.
fn stat(pid: u32) -> std::io::Result<(u64, char)> {
    let bad = || std::io::Error::new(std::io::ErrorKind::InvalidData, "unexpected stat format");
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // The command name (field 2) may contain spaces and parentheses; fields after it are plain.
    let rest = &text[text.rfind(')').ok_or_else(bad)? + 1..];
    let mut fields = rest.split_ascii_whitespace();
    let state = fields
        .next()
        .and_then(|f| f.chars().next())
        .ok_or_else(bad)?;
    // `rest` starts at field 3, so field 22 is the 20th from here.
    let start = fields
        .nth(18)
        .and_then(|f| f.parse().ok())
        .ok_or_else(bad)?;
    Ok((start, state))
}

/// Whether a process with this pid exists at all, as `kill(pid, 0)` tells: `Some(false)` only
/// for a definite "no such process".
fn exists(pid: u32) -> Option<bool> {
    let Ok(pid) = i32::try_from(pid) else {
        return Some(false);
    };
    match nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None) {
        Ok(()) | Err(nix::errno::Errno::EPERM) => Some(true),
        Err(nix::errno::Errno::ESRCH) => Some(false),
        Err(_) => None,
    }
}

/// Start time of process `pid`, if it exists and `/proc` can be read.
pub fn start_time(pid: u32) -> Option<u64> {
    stat(pid).ok().map(|(s, _)| s)
}

/// This process's start time. Cached per pid: a child made by `fork` inherits the cache and
/// must not stamp its rows with its parent's start time.
pub fn own_start_time() -> u64 {
    static CACHE: Mutex<(u32, u64)> = Mutex::new((0, 0));
    let pid = std::process::id();
    let mut cache = CACHE.lock().unwrap_or_else(|e| e.into_inner());
    if cache.0 != pid {
        *cache = (pid, start_time(pid).unwrap_or(0));
    }
    cache.1
}

/// What is known of process `(pid, start)`; see the module doc.
pub fn liveness(pid: u32, start: u64) -> Liveness {
    if pid == 0 || exists(pid) == Some(false) {
        return Liveness::Dead;
    }
    match stat(pid) {
        Ok((s, state)) if s == start && state != 'Z' && state != 'X' => Liveness::Alive,
        Ok(_) => Liveness::Dead,
        // It existed a moment ago: gone since, unless kill says otherwise now.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => match exists(pid) {
            Some(false) => Liveness::Dead,
            _ => Liveness::Unknown,
        },
        Err(_) => Liveness::Unknown,
    }
}

/// True unless process `(pid, start)` is definitely gone (liveness fails closed).
pub fn is_alive(pid: u32, start: u64) -> bool {
    liveness(pid, start) != Liveness::Dead
}

/// True when `pid` exists and is stopped (SIGSTOP, job control or a tracer): it will not make
/// progress until someone resumes it.
pub fn is_stopped(pid: u32) -> bool {
    matches!(stat(pid), Ok((_, 'T' | 't')))
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
    fn a_forked_child_reads_its_own_start_time() {
        let parent = own_start_time();
        let (mut rx, mut tx) = nix::unistd::pipe()
            .map(|(r, w)| (std::fs::File::from(r), std::fs::File::from(w)))
            .unwrap();
        // SAFETY: the child only reads /proc, writes to a pipe and calls `_exit`.
        match unsafe { nix::unistd::fork() }.unwrap() {
            nix::unistd::ForkResult::Child => {
                use std::io::Write;
                let own = own_start_time();
                let real = start_time(std::process::id()).unwrap_or(0);
                let _ = tx.write_all(&[u8::from(own == real && own != 0)]);
                // SAFETY: ends the child at once, running nothing of the parent's.
                unsafe { libc::_exit(0) }
            }
            nix::unistd::ForkResult::Parent { child } => {
                use std::io::Read;
                drop(tx);
                let mut ok = [0u8];
                rx.read_exact(&mut ok).unwrap();
                nix::sys::wait::waitpid(child, None).unwrap();
                assert_eq!(ok, [1], "the child took its parent's start time");
                assert_eq!(own_start_time(), parent);
            }
        }
    }

    #[test]
    fn unreadable_proc_is_not_death() {
        // A pid that exists but whose start time we got wrong is dead (the pid was recycled);
        // pid 1 exists whatever /proc shows, so it is never declared dead for want of /proc.
        assert_ne!(liveness(1, start_time(1).unwrap_or(0)), Liveness::Dead);
        assert_eq!(liveness(u32::MAX, 0), Liveness::Dead);
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
