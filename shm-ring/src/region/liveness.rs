//! Is a process still alive? A process is alive while it holds its row's lock: an
//! open-file-description lock (`F_OFD_SETLK`) on the row's byte range of the bus file, taken on a
//! description the process opened itself before the row went live. The kernel releases such a
//! lock when the last reference to its description goes, so at the holder's death whatever its
//! pid namespace (containers sharing `/dev/shm` but not pids see each other's locks, not each
//! other's pids), and a reaper tests it with `F_OFD_GETLK`. The table lock's holder is judged the
//! same way, by a lock on the lock word's bytes.
//!
//! A child made by `fork` shares its parent's descriptions, so it would keep its parent's locks
//! (and so its parent) alive: every description holding a lock is registered here, and a handler
//! run in the child at the fork closes them there. The child takes rows of its own, on
//! descriptions of its own, before it publishes (`publisher.rs`).
//!
//! Liveness fails closed: a row counts as dead only when the kernel says nobody holds its lock.
//! When the test fails (an error), the process counts as alive, because reaping a live process
//! takes its messages and its slots from under it, while sparing a dead one only delays
//! recovery. The pid and start time (field 22 of `/proc/<pid>/stat`) recorded in a row are for
//! display only; they decide nothing.

use std::fs::File;
use std::os::fd::{IntoRawFd, RawFd};
use std::sync::atomic::{AtomicI32, AtomicU64 as StdAtomicU64, Ordering as StdOrdering};
use std::sync::Mutex;

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

/// An `flock` record for bytes `[start, start + len)` of a file, of lock type `kind`.
fn range(kind: libc::c_int, start: u64, len: u64) -> libc::flock {
    // SAFETY: `flock` is a plain C struct of integers, for which all zeros is a valid value
    // (`l_pid` must be 0 for the open-file-description commands).
    let mut fl: libc::flock = unsafe { std::mem::zeroed() };
    fl.l_type = kind as libc::c_short;
    fl.l_whence = libc::SEEK_SET as libc::c_short;
    fl.l_start = start as libc::off_t;
    fl.l_len = len as libc::off_t;
    fl
}

/// Tries to take an exclusive open-file-description lock on bytes `[start, start + len)` of the
/// file behind `fd` (opened for writing), without waiting: `Ok(false)` when another description
/// holds a lock there. Taking it again on the same description succeeds.
pub(crate) fn try_lock_range(fd: RawFd, start: u64, len: u64) -> std::io::Result<bool> {
    let fl = range(libc::F_WRLCK, start, len);
    // SAFETY: `fl` is a valid flock record that outlives the call; the kernel checks `fd`.
    if unsafe { libc::fcntl(fd, libc::F_OFD_SETLK, &fl) } == 0 {
        return Ok(true);
    }
    let e = std::io::Error::last_os_error();
    match e.raw_os_error() {
        Some(libc::EAGAIN | libc::EACCES) => Ok(false),
        _ => Err(e),
    }
}

/// Whether some open file description other than `fd`'s holds a lock on bytes
/// `[start, start + len)`: `None` when the kernel cannot tell (an error), which callers take
/// as "held" (liveness fails closed). `fd` may be read-only.
pub(crate) fn range_locked(fd: RawFd, start: u64, len: u64) -> Option<bool> {
    // A read lock conflicts with every write lock, and the holders' locks are write locks.
    let mut fl = range(libc::F_RDLCK, start, len);
    // SAFETY: `fl` is a valid, writable flock record; the kernel checks `fd`.
    if unsafe { libc::fcntl(fd, libc::F_OFD_GETLK, &mut fl) } != 0 {
        return None;
    }
    Some(fl.l_type != libc::F_UNLCK as libc::c_short)
}

/// Most lock descriptions one process holds at once (one per attached handle, plus one per
/// table-lock section in progress).
const HELD_MAX: usize = 4096;

/// The descriptions this process holds locks on (their fds, -1 when free): closed in a child at
/// `fork` (see the module doc).
static HELD: [AtomicI32; HELD_MAX] = [const { AtomicI32::new(-1) }; HELD_MAX];

/// Forks this process has been the child of: a [`Held`] taken before the last one is the
/// parent's, closed in this process at the fork.
static FORKS: StdAtomicU64 = StdAtomicU64::new(0);

/// Runs in the child of every `fork` (registered with `pthread_atfork`): only async-signal-safe
/// work (atomics and `close`).
extern "C" fn after_fork_in_child() {
    FORKS.fetch_add(1, StdOrdering::SeqCst);
    for h in &HELD {
        let fd = h.swap(-1, StdOrdering::SeqCst);
        if fd >= 0 {
            // SAFETY: `fd` was registered by `hold`, which gave up its ownership to the registry;
            // the swap makes this the only close of it.
            unsafe { libc::close(fd) };
        }
    }
}

/// How many times this process has been made by `fork` since it first held a lock: changes in
/// a child, so that a handle can tell it was inherited (one relaxed load).
pub(crate) fn fork_generation() -> u64 {
    FORKS.load(StdOrdering::Relaxed)
}

/// Registers [`after_fork_in_child`] once per process.
fn watch_forks() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // SAFETY: registers a handler with the C library; the handler is a plain function that
        // lives for the whole program and only runs async-signal-safe code.
        unsafe { libc::pthread_atfork(None, None, Some(after_fork_in_child)) };
    });
}

/// A lock description this process holds, named by its place in the registry (index + 1, 0 for
/// none) and the fork generation it was taken in. Packed into one word (`from`/`value`) so that
/// a region can keep one per row in an atomic.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Held {
    /// Index in the registry + 1; 0: nothing held.
    pub slot: u16,
    /// [`fork_generation`] when it was taken (48 bits).
    pub forks: u64,
}

impl Held {
    pub(crate) fn from(word: u64) -> Held {
        Held {
            slot: (word & 0xffff) as u16,
            forks: word >> 16,
        }
    }

    pub(crate) fn value(self) -> u64 {
        (self.forks << 16) | u64::from(self.slot)
    }

    /// The description's fd while this process (not a parent before a fork) holds it.
    pub(crate) fn fd(self) -> Option<RawFd> {
        if self.slot == 0 || self.forks != fork_generation() & 0xffff_ffff_ffff {
            return None;
        }
        let fd = HELD[self.slot as usize - 1].load(StdOrdering::SeqCst);
        (fd >= 0).then_some(fd)
    }
}

/// Registers `file` (a description this process opened, about to hold or holding a lock) so
/// that a child made by `fork` closes it; the registry owns it from now on. An error when this
/// process already holds [`HELD_MAX`] of them.
pub(crate) fn hold(file: File) -> std::io::Result<Held> {
    watch_forks();
    let forks = fork_generation() & 0xffff_ffff_ffff;
    let fd = file.into_raw_fd();
    for (i, h) in HELD.iter().enumerate() {
        if h.compare_exchange(-1, fd, StdOrdering::SeqCst, StdOrdering::SeqCst)
            .is_ok()
        {
            return Ok(Held {
                slot: i as u16 + 1,
                forks,
            });
        }
    }
    // SAFETY: `fd` came from `into_raw_fd` above and was not registered: we still own it.
    unsafe { libc::close(fd) };
    Err(std::io::Error::other(format!(
        "this process holds {HELD_MAX} bus locks already (one per attached handle): close \
         handles it no longer uses"
    )))
}

/// Unlocks and closes a description registered by [`hold`]; nothing for an empty word (slot 0) or for
/// a description inherited from the parent (closed at the fork already).
pub(crate) fn release(held: Held) {
    if held.fd().is_none() {
        return;
    }
    let fd = HELD[held.slot as usize - 1].swap(-1, StdOrdering::SeqCst);
    if fd >= 0 {
        // Unlock first: a reference this process did not know of (a child made without the fork
        // handler, by `clone`) must not keep the lock.
        let fl = range(libc::F_UNLCK, 0, 0);
        // SAFETY: `fd` is ours (taken out of the registry by the swap); `fl` is valid.
        unsafe {
            libc::fcntl(fd, libc::F_OFD_SETLK, &fl);
            libc::close(fd);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;

    fn scratch() -> (tempfile_path::Path, File) {
        let path = tempfile_path::Path::new();
        let f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path.0)
            .unwrap();
        (path, f)
    }

    mod tempfile_path {
        /// A file under /dev/shm removed when dropped.
        pub struct Path(pub std::path::PathBuf);
        impl Path {
            pub fn new() -> Path {
                static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
                let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                Path(std::path::PathBuf::from(format!(
                    "/dev/shm/event_engine_liveness_test.{}.{n}",
                    std::process::id()
                )))
            }
        }
        impl Drop for Path {
            fn drop(&mut self) {
                let _ = std::fs::remove_file(&self.0);
            }
        }
    }

    fn reopen(path: &tempfile_path::Path) -> File {
        std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path.0)
            .unwrap()
    }

    #[test]
    fn a_lock_is_seen_from_another_description_and_goes_with_it() {
        let (path, probe) = scratch();
        let holder = reopen(&path);
        assert_eq!(range_locked(probe.as_raw_fd(), 128, 128), Some(false));
        assert!(try_lock_range(holder.as_raw_fd(), 128, 128).unwrap());
        assert_eq!(range_locked(probe.as_raw_fd(), 128, 128), Some(true));
        // Its own description does not conflict with it; another one does.
        assert_eq!(range_locked(holder.as_raw_fd(), 128, 128), Some(false));
        assert!(!try_lock_range(reopen(&path).as_raw_fd(), 200, 8).unwrap());
        // Bytes beside it are free.
        assert_eq!(range_locked(probe.as_raw_fd(), 256, 128), Some(false));
        let held = hold(holder).unwrap();
        assert!(held.fd().is_some());
        assert_eq!(Held::from(held.value()), held);
        release(held);
        assert_eq!(range_locked(probe.as_raw_fd(), 128, 128), Some(false));
        // A read-only description can test too.
        let ro = std::fs::File::open(&path.0).unwrap();
        assert_eq!(range_locked(ro.as_raw_fd(), 0, 8), Some(false));
    }

    #[test]
    fn a_forked_child_does_not_keep_its_parents_locks() {
        let (path, probe) = scratch();
        let holder = reopen(&path);
        assert!(try_lock_range(holder.as_raw_fd(), 0, 64).unwrap());
        let held = hold(holder).unwrap();
        let (mut rx, mut tx) = nix::unistd::pipe()
            .map(|(r, w)| (std::fs::File::from(r), std::fs::File::from(w)))
            .unwrap();
        let (mut go_rx, mut go_tx) = nix::unistd::pipe()
            .map(|(r, w)| (std::fs::File::from(r), std::fs::File::from(w)))
            .unwrap();
        // SAFETY: the child only uses atomics, fcntl, pipes and `_exit`.
        match unsafe { nix::unistd::fork() }.unwrap() {
            nix::unistd::ForkResult::Child => {
                use std::io::{Read, Write};
                // The parent's lock is not this process's to give back or to use.
                let ok = held.fd().is_none();
                let _ = tx.write_all(&[u8::from(ok)]);
                let mut b = [0u8];
                let _ = go_rx.read(&mut b);
                // SAFETY: ends the child at once, running nothing of the parent's.
                unsafe { libc::_exit(0) }
            }
            nix::unistd::ForkResult::Parent { child } => {
                use std::io::{Read, Write};
                drop(tx);
                let mut ok = [0u8];
                rx.read_exact(&mut ok).unwrap();
                assert_eq!(ok, [1], "the child could use its parent's lock");
                assert!(held.fd().is_some());
                assert_eq!(range_locked(probe.as_raw_fd(), 0, 64), Some(true));
                // The parent gives the lock up while the child still runs: nobody holds it.
                release(held);
                assert_eq!(range_locked(probe.as_raw_fd(), 0, 64), Some(false));
                // Let the child end.
                go_tx.write_all(&[1]).unwrap();
                nix::sys::wait::waitpid(child, None).unwrap();
            }
        }
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
    fn coarse_clock_is_within_a_tick_or_so_of_the_precise_one() {
        let (a, b, c) = (now_ns(), coarse_now_ns(), now_ns());
        // The coarse clock lags by up to one kernel tick (at most 10 ms even at HZ=100).
        assert!(b <= c && b + 10_000_000 >= a, "{a} {b} {c}");
    }
}
