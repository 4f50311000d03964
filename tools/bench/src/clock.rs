//! A clock shared by every process on the machine: `CLOCK_MONOTONIC` read through
//! `clock_gettime` (a vDSO call), so a timestamp taken in the publisher process can be compared
//! with one taken in the subscriber process. `std::time::Instant` is not usable for that: its
//! values are opaque and only comparable within one process.

/// Nanoseconds of `CLOCK_MONOTONIC`.
#[inline]
pub fn now_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; CLOCK_MONOTONIC is always available on Linux.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// Busy-waits until [`now_ns`] reaches `deadline_ns` (pacing a publisher without a syscall).
#[inline]
pub fn spin_until(deadline_ns: u64) {
    while now_ns() < deadline_ns {
        std::hint::spin_loop();
    }
}

/// Peak resident set size of this process in bytes (`getrusage`; includes touched pages of
/// shared mappings).
pub fn peak_rss_bytes() -> u64 {
    // SAFETY: an all-zero rusage is a valid value to be overwritten.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `ru` is a valid, writable rusage.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    ru.ru_maxrss as u64 * 1024
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn monotonic_and_spins_past_deadline() {
        let a = now_ns();
        spin_until(a + 10_000);
        let b = now_ns();
        assert!(b >= a + 10_000);
        assert!(peak_rss_bytes() > 0);
    }
}
