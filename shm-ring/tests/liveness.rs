//! Liveness that does not depend on pids (`region/liveness.rs`): a process is alive while it
//! holds its row's lock. Processes in two pid namespaces (made here with `unshare`, as
//! containers sharing `/dev/shm` but not pids are) do not reap each other or take the table
//! lock from each other, and a child made by `fork` that publishes through its parent's handle
//! is reaped on its own when it is killed.

mod common;

use common::{env, say, BusGuard, ChildGuard, Lines, ROLE};
use event_engine_shm::{Bus, BusError, Codec};
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Byte offset of the table lock word in the region header (`docs/region-layout.md`): its
/// holder holds an open-file-description lock on these 8 bytes.
const LOCK_OFF: i64 = 128;

/// Whether this machine lets us make a pid namespace (root, or user namespaces allowed).
fn unshare_works() -> bool {
    Command::new("unshare")
        .args(["--pid", "--fork", "--mount-proc", "true"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Runs test `entry` of this binary with `role` in a new pid namespace (with its own /proc).
fn spawn_in_namespace(entry: &str, role: &str, bus: &str) -> ChildGuard {
    let mut cmd = Command::new("unshare");
    cmd.args(["--pid", "--fork", "--mount-proc", "--kill-child"])
        .arg(std::env::current_exe().unwrap())
        .args([entry, "--exact", "--nocapture", "--test-threads=1", "-q"])
        .env(ROLE, role)
        .env("BUS", bus)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    ChildGuard(cmd.spawn().expect("spawn unshare"))
}

macro_rules! need_unshare {
    () => {
        if !unshare_works() {
            eprintln!("skipped: cannot make a pid namespace here (unshare --pid failed)");
            return;
        }
    };
}

/// Child: attaches a fan-out subscriber, says its pid (as its namespace sees it), then says
/// every payload it receives until one reads "stop".
#[test]
fn subscriber_child() {
    if std::env::var(ROLE).as_deref() != Ok("subscriber") {
        return;
    }
    let bus = Bus::open(&env("BUS")).unwrap();
    let mut sub = bus.subscribe().unwrap();
    say(format!("ready {}", std::process::id()));
    loop {
        if let Some(m) = sub.recv(Some(Duration::from_secs(30))).unwrap() {
            let text = String::from_utf8_lossy(m.payload).into_owned();
            say(&text);
            if text == "stop" {
                return;
            }
        } else {
            return;
        }
    }
}

/// Child: attaches, reaps, and says how many rows the reap took.
#[test]
fn reaper_child() {
    if std::env::var(ROLE).as_deref() != Ok("reaper") {
        return;
    }
    let bus = Bus::open(&env("BUS")).unwrap();
    let report = bus.reap().unwrap();
    say(report.processes.len());
}

/// Child: holds the table lock as a holder stopped mid-change does (the lock on the word's
/// bytes, the word naming it), says so, and sleeps until killed.
#[test]
fn lock_holder_child() {
    if std::env::var(ROLE).as_deref() != Ok("lock_holder") {
        return;
    }
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(event_engine_shm::shm_path(&env("BUS")))
        .unwrap();
    // SAFETY: all zeros is a valid flock record; the fields are set below.
    let mut fl: libc::flock = unsafe { std::mem::zeroed() };
    fl.l_type = libc::F_WRLCK as libc::c_short;
    fl.l_whence = libc::SEEK_SET as libc::c_short;
    fl.l_start = LOCK_OFF;
    fl.l_len = 8;
    // SAFETY: a valid fd and flock record.
    assert_eq!(
        unsafe { libc::fcntl(file.as_raw_fd(), libc::F_OFD_SETLK, &fl) },
        0
    );
    let word = (u64::from(std::process::id()) << 32) | 1;
    file.write_all_at(&word.to_le_bytes(), LOCK_OFF as u64)
        .unwrap();
    say("holding");
    std::thread::sleep(Duration::from_secs(60));
}

fn ready_pid(lines: &mut Lines) -> u32 {
    let line = lines.next().expect("the child ended before it was ready");
    line.strip_prefix("ready ")
        .unwrap_or_else(|| panic!("unexpected line {line:?}"))
        .parse()
        .unwrap()
}

#[test]
fn a_subscriber_in_another_pid_namespace_is_not_reaped_from_the_host() {
    if std::env::var(ROLE).is_ok() {
        return;
    }
    need_unshare!();
    let g = BusGuard::new("ns-sub");
    let bus = Bus::create(&g.name, &common::small()).unwrap();
    let mut child = spawn_in_namespace("subscriber_child", "subscriber", &g.name);
    let mut lines = Lines::of(&mut child);
    let pid = ready_pid(&mut lines);
    // Its pid means nothing here (1 or 2 in its namespace: our init, or nobody).
    assert!(
        pid < 10,
        "the child is not in a namespace of its own (pid {pid})"
    );

    let report = bus.reap().unwrap();
    assert!(
        report.processes.is_empty(),
        "the host reaped a live process: {report:?}"
    );
    let snap = bus.snapshot();
    let theirs: Vec<_> = snap.processes.iter().filter(|p| p.pid == pid).collect();
    assert_eq!(theirs.len(), 2, "{:?}", snap.processes);
    assert!(theirs.iter().all(|p| p.alive), "{:?}", snap.processes);

    // It still receives what the host publishes.
    let mut publisher = bus.publisher().unwrap();
    publisher
        .publish("t", Codec::Raw, b"hello", Some(Duration::from_secs(5)))
        .unwrap();
    assert_eq!(lines.next().as_deref(), Some("hello"));
    publisher
        .publish("t", Codec::Raw, b"stop", Some(Duration::from_secs(5)))
        .unwrap();
    assert_eq!(lines.next().as_deref(), Some("stop"));
    child.wait().unwrap();
    drop(publisher);
    drop(bus);
    common::assert_idle(&g.name);
}

#[test]
fn a_host_subscriber_is_not_reaped_from_another_pid_namespace() {
    if std::env::var(ROLE).is_ok() {
        return;
    }
    need_unshare!();
    let g = BusGuard::new("ns-host");
    let bus = Bus::create(&g.name, &common::small()).unwrap();
    let mut sub = bus.subscribe().unwrap();
    let mut child = spawn_in_namespace("reaper_child", "reaper", &g.name);
    let mut lines = Lines::of(&mut child);
    let reaped = lines.next().expect("the reaper says what it reaped");
    lines.rest();
    child.wait().unwrap();
    assert_eq!(
        reaped, "0",
        "a reap in another namespace took this process's rows"
    );

    let mut publisher = bus.publisher().unwrap();
    publisher
        .publish("t", Codec::Raw, b"still here", Some(Duration::from_secs(5)))
        .unwrap();
    let m = sub.recv(Some(Duration::from_secs(5))).unwrap().unwrap();
    assert_eq!(m.payload, b"still here");
    drop((sub, publisher, bus));
    common::assert_idle(&g.name);
}

#[test]
fn a_dead_process_of_another_namespace_is_reaped() {
    if std::env::var(ROLE).is_ok() {
        return;
    }
    need_unshare!();
    let g = BusGuard::new("ns-dead");
    let bus = Bus::create(&g.name, &common::small()).unwrap();
    let mut child = spawn_in_namespace("subscriber_child", "subscriber", &g.name);
    let mut lines = Lines::of(&mut child);
    ready_pid(&mut lines);
    // Killing `unshare` kills the namespace (--kill-child); its output ends once the subscriber
    // is gone, and the kernel releases its locks as its files close.
    common::kill(&mut child);
    assert_eq!(lines.next(), None);
    let deadline = Instant::now() + Duration::from_secs(5);
    let report = loop {
        let report = bus.reap().unwrap();
        if !report.processes.is_empty() || Instant::now() > deadline {
            break report;
        }
        std::thread::yield_now();
    };
    assert_eq!(report.processes.len(), 1, "{report:?}");
    assert_eq!(report.processes[0].rows.len(), 2, "{report:?}");
    drop(bus);
    common::assert_idle(&g.name);
}

#[test]
fn the_table_lock_of_a_live_holder_in_another_namespace_is_not_taken() {
    if std::env::var(ROLE).is_ok() {
        return;
    }
    need_unshare!();
    let g = BusGuard::new("ns-lock");
    drop(Bus::create(&g.name, &common::small()).unwrap());
    let mut child = spawn_in_namespace("lock_holder_child", "lock_holder", &g.name);
    assert_eq!(Lines::of(&mut child).next().as_deref(), Some("holding"));
    let t = Instant::now();
    let err = Bus::open(&g.name)
        .err()
        .expect("the lock is held by a live process");
    assert!(matches!(err, BusError::LockHeld { .. }), "{err}");
    assert!(t.elapsed() < Duration::from_secs(10), "{:?}", t.elapsed());
    common::kill(&mut child);
    // Its holder is dead now: the next attach takes the lock over.
    let bus = Bus::open(&g.name).unwrap();
    assert_eq!(bus.snapshot().processes.len(), 1);
}

#[test]
fn a_lock_word_nobody_holds_is_taken_over_at_once() {
    if std::env::var(ROLE).is_ok() {
        return;
    }
    let g = BusGuard::new("forged-lock");
    drop(Bus::create(&g.name, &common::small()).unwrap());
    // A word naming this very process (alive), as a damaged file may: nobody holds the lock.
    let word = u64::from(std::process::id()) << 32 | 7;
    std::fs::OpenOptions::new()
        .write(true)
        .open(event_engine_shm::shm_path(&g.name))
        .unwrap()
        .write_all_at(&word.to_le_bytes(), LOCK_OFF as u64)
        .unwrap();
    let t = Instant::now();
    drop(Bus::open(&g.name).unwrap());
    assert!(t.elapsed() < Duration::from_secs(1), "{:?}", t.elapsed());
}

/// Fills a 16-slot ring nobody reads, forks a child that publishes through the parent's
/// publisher and blocks (ring full), and kills it with SIGKILL: the reap must take the child's
/// own row and give back its sleeper count, and the parent's publisher must be unharmed.
#[test]
fn a_forked_child_publishing_through_its_parents_publisher_is_reaped_on_its_own() {
    if std::env::var(ROLE).is_ok() {
        return;
    }
    let g = BusGuard::new("fork-pub");
    let bus = Bus::create(&g.name, &common::small()).unwrap();
    let mut sub = bus.subscribe().unwrap();
    let mut publisher = bus.publisher().unwrap();
    let big = [7u8; 1000]; // in a slab block
    let mut sent = 0;
    while publisher.try_publish("t", Codec::Raw, &big).is_ok() {
        sent += 1;
    }
    assert!(sent > 0);
    let rows_before = bus.snapshot().processes.len();

    // SAFETY: the child only publishes (atomics, a few system calls) and ends with `_exit`.
    let child = match unsafe { nix::unistd::fork() }.unwrap() {
        nix::unistd::ForkResult::Child => {
            let _ = publisher.publish("t", Codec::Raw, &big, None);
            // SAFETY: ends the child without running the parent's destructors.
            unsafe { libc::_exit(0) }
        }
        nix::unistd::ForkResult::Parent { child } => child,
    };
    // Wait until the child sleeps for room (it counted itself as a sleeping publisher).
    let deadline = Instant::now() + Duration::from_secs(10);
    while bus.snapshot().counters.pub_sleepers == 0 {
        assert!(Instant::now() < deadline, "the child never blocked");
        std::thread::sleep(Duration::from_millis(1));
    }
    let snap = bus.snapshot();
    assert_eq!(
        snap.processes.len(),
        rows_before + 1,
        "the child publishes on its parent's row: {:?}",
        snap.processes
    );
    nix::sys::signal::kill(child, nix::sys::signal::Signal::SIGKILL).unwrap();
    nix::sys::wait::waitpid(child, None).unwrap();

    let report = bus.reap().unwrap();
    assert_eq!(
        report.processes.len(),
        1,
        "the dead child was not reaped: {report:?}"
    );
    assert_eq!(report.processes[0].pid, child.as_raw() as u32);
    let snap = bus.snapshot();
    assert_eq!(
        snap.counters.pub_sleepers, 0,
        "the dead child's sleeper count stayed"
    );
    assert_eq!(snap.processes.len(), rows_before);

    // The parent's publisher is still its own and works.
    for _ in 0..sent {
        sub.recv(Some(Duration::from_secs(5))).unwrap().unwrap();
    }
    publisher
        .publish("t", Codec::Raw, &big, Some(Duration::from_secs(5)))
        .unwrap();
    sub.recv(Some(Duration::from_secs(5))).unwrap().unwrap();
    drop((sub, publisher, bus));
    common::assert_idle(&g.name);
}

/// Many forked children publish through their parent's publisher and are killed at random
/// points: every row, block and count they took comes back with the reaps, and none of the
/// parent's state is released by them.
#[test]
fn forked_children_killed_while_publishing_leak_nothing() {
    if std::env::var(ROLE).is_ok() {
        return;
    }
    let g = BusGuard::new("fork-storm");
    let bus = Bus::create(&g.name, &common::small()).unwrap();
    let mut sub = bus.subscribe().unwrap();
    let mut publisher = bus.publisher().unwrap();
    let big = [3u8; 1000];
    for i in 0..40u64 {
        // SAFETY: as above.
        let child = match unsafe { nix::unistd::fork() }.unwrap() {
            nix::unistd::ForkResult::Child => loop {
                let _ = publisher.publish("t", Codec::Raw, &big, None);
            },
            nix::unistd::ForkResult::Parent { child } => child,
        };
        // Let it run a little, draining meanwhile so it is killed at varied points.
        let until = Instant::now() + Duration::from_micros(200 + (i * 379) % 3000);
        while Instant::now() < until {
            let _ = sub.recv(Some(Duration::from_micros(100)));
        }
        nix::sys::signal::kill(child, nix::sys::signal::Signal::SIGKILL).unwrap();
        nix::sys::wait::waitpid(child, None).unwrap();
        bus.reap().unwrap();
    }
    while sub.recv(Some(Duration::ZERO)).unwrap().is_some() {}
    bus.reap().unwrap();
    let snap = bus.snapshot();
    assert_eq!(snap.counters.pub_sleepers, 0);
    assert_eq!(snap.processes.len(), 3, "{:?}", snap.processes);
    // Nothing is in the ring: every block in use is one a child took and nobody gave back. Only
    // a child killed between its pop's CAS and the next instruction (naming the block in its
    // row, `FreeList::pop`) can strand one, until the final sweep.
    let used: u32 = snap.slab.iter().map(|c| c.used).sum();
    assert!(used <= 1, "{used} blocks stranded by killed children");
    publisher
        .publish("t", Codec::Raw, &big, Some(Duration::from_secs(5)))
        .unwrap();
    sub.recv(Some(Duration::from_secs(5))).unwrap().unwrap();
    drop((sub, publisher, bus));
    common::assert_idle(&g.name);
}
