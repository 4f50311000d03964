//! A bus in a hostile environment: files planted at bus paths by another user, a `/dev/shm` too
//! small for the region, a stopped process holding the table lock, corruption
//! patched into a live bus, and a mass crash that leaves every process-table row dead. Each
//! failure is an error naming what is wrong, returned at once or after a bounded wait: never a
//! signal, a hang or a silent wrong answer.

mod common;

use common::{kill, say, spawn, BusGuard, Lines, ROLE};
use event_engine_shm::{inspect, shm_path, Bus, BusConfig, BusError, Codec};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const NOBODY: u32 = 65534;

/// Runs `f` in a thread and fails the test if it does not return within `limit` (a hang before
/// the fix becomes a failure here rather than a stuck test run).
fn within<T: Send + 'static>(limit: Duration, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(limit)
        .unwrap_or_else(|_| panic!("did not return within {limit:?}"))
}

/// Owner of a planted file: another user, as someone else on the machine would plant it.
fn give_to_nobody(path: &std::path::Path) {
    std::os::unix::fs::lchown(path, Some(NOBODY), Some(NOBODY)).unwrap();
}

fn expect_not_a_bus_file<T: std::fmt::Debug>(r: Result<T, BusError>, kind: &str) {
    match r {
        Err(e @ BusError::NotABusFile { .. }) => {
            let text = e.to_string();
            assert!(text.contains(kind), "{text}");
            assert!(text.contains("rm --force"), "{text}");
        }
        other => panic!("expected NotABusFile ({kind}), got {other:?}"),
    }
}

#[test]
fn a_fifo_at_a_bus_path_is_refused_at_once_and_can_be_removed() {
    let g = BusGuard::new("fifo");
    let path = shm_path(&g.name);
    nix::unistd::mkfifo(&path, nix::sys::stat::Mode::from_bits_truncate(0o666)).unwrap();
    give_to_nobody(&path);
    let name = g.name.clone();
    within(Duration::from_secs(5), move || {
        expect_not_a_bus_file(inspect(&name), "a FIFO");
        expect_not_a_bus_file(event_engine_shm::observe(&name).map(|_| ()), "a FIFO");
        expect_not_a_bus_file(Bus::open(&name).map(|_| ()), "a FIFO");
        expect_not_a_bus_file(
            Bus::open_or_create(&name, &common::small()).map(|_| ()),
            "a FIFO",
        );
        let listed = event_engine_shm::list_buses().unwrap();
        let me = listed.iter().find(|b| b.name == name).unwrap();
        assert!(me.error.as_deref().unwrap().contains("a FIFO"), "{me:?}");
    });
    Bus::unlink(&g.name).unwrap();
    assert!(!path.exists());
}

#[test]
fn symbolic_links_at_bus_paths_are_never_followed() {
    let payroll = BusGuard::new("payroll");
    let jobs = BusGuard::new("jobs");
    let bus = Bus::create(&payroll.name, &common::small()).unwrap();
    let link = shm_path(&jobs.name);
    std::os::unix::fs::symlink(shm_path(&payroll.name), &link).unwrap();
    give_to_nobody(&link);
    expect_not_a_bus_file(Bus::open(&jobs.name).map(|_| ()), "a symbolic link");
    expect_not_a_bus_file(
        Bus::open_or_create(&jobs.name, &common::small()).map(|_| ()),
        "a symbolic link",
    );
    expect_not_a_bus_file(inspect(&jobs.name), "a symbolic link");
    // Nothing joined payroll through the link.
    assert_eq!(bus.snapshot().processes.len(), 1);

    // A dangling link: refused at once, not retried as "someone else created it".
    std::fs::remove_file(&link).unwrap();
    std::os::unix::fs::symlink("/dev/shm/event_engine.nothing-here", &link).unwrap();
    give_to_nobody(&link);
    let started = Instant::now();
    expect_not_a_bus_file(
        Bus::open_or_create(&jobs.name, &common::small()).map(|_| ()),
        "a symbolic link",
    );
    assert!(started.elapsed() < Duration::from_secs(1));
    assert!(!std::path::Path::new("/dev/shm/event_engine.nothing-here").exists());

    // A link to a device is not opened.
    std::fs::remove_file(&link).unwrap();
    std::os::unix::fs::symlink("/dev/null", &link).unwrap();
    expect_not_a_bus_file(Bus::open(&jobs.name).map(|_| ()), "a symbolic link");
    Bus::unlink(&jobs.name).unwrap();
    assert!(std::fs::symlink_metadata(&link).is_err());
}

/// Child: in a private 64 MiB /dev/shm, a default bus is created, a bus that cannot fit is
/// refused with the sizes, and the first bus carries large messages after the rest of the
/// file system was filled.
#[test]
fn small_dev_shm_child() {
    if std::env::var(ROLE).as_deref() != Ok("small-shm") {
        return;
    }
    let bus = Bus::create("small-shm", &BusConfig::default()).unwrap();
    let err = Bus::create(
        "too-big",
        &BusConfig {
            slab_memory: Some(1 << 30),
            ..BusConfig::default()
        },
    )
    .err()
    .unwrap();
    match &err {
        BusError::NoSpace { needed, free, .. } => assert!(needed > free, "{err}"),
        other => panic!("expected NoSpace, got {other:?}"),
    }
    say(&err);
    assert!(!shm_path("too-big").exists());
    // Fill the rest of the file system, as other programs would.
    let mut filler = std::fs::File::create("/dev/shm/filler").unwrap();
    let chunk = vec![1u8; 1 << 20];
    while filler.write_all(&chunk).is_ok() {}
    let mut sub = bus.subscribe().unwrap();
    let mut publisher = bus.publisher().unwrap();
    let big = vec![7u8; 1 << 20];
    for i in 0..300u32 {
        publisher
            .publish("big", Codec::Raw, &big, Some(Duration::from_secs(5)))
            .unwrap();
        let m = sub.recv(Some(Duration::from_secs(5))).unwrap().unwrap();
        assert_eq!(m.payload.len(), big.len(), "message {i}");
    }
    say("ok");
}

#[test]
fn a_small_dev_shm_gives_an_error_at_creation_never_sigbus() {
    let exe = std::env::current_exe().unwrap();
    let script = "mount -t tmpfs -o size=64m tmpfs /dev/shm && exec \"$0\" small_dev_shm_child \
                  --exact --nocapture --test-threads=1 -q";
    let mut child = Command::new("unshare")
        .args(["-m", "--propagation", "private", "sh", "-c", script])
        .arg(&exe)
        .env(ROLE, "small-shm")
        .stdout(Stdio::piped())
        .spawn()
        .expect("unshare (needs root)");
    let mut lines = Lines::of(&mut child);
    let out = lines.rest();
    let status = child.wait().unwrap();
    assert!(status.success(), "child failed: {status:?} {out:?}");
    let err = &out[0];
    assert!(err.contains("needs") && err.contains("free"), "{err}");
    assert!(
        err.contains("--shm-size") || err.contains("remount"),
        "{err}"
    );
    assert_eq!(out.last().map(String::as_str), Some("ok"));
}

/// Child: takes bus `BUS`'s table lock as a holder stopped mid-join holds it (the lock on the
/// lock word's bytes, `docs/region-layout.md`), prints its pid and sleeps until killed.
#[test]
fn sleeper_child() {
    if std::env::var(ROLE).as_deref() != Ok("sleeper") {
        return;
    }
    let file = file_of(&common::env("BUS"));
    // SAFETY: all zeros is a valid flock record; the fields are set below.
    let mut fl: libc::flock = unsafe { std::mem::zeroed() };
    fl.l_type = libc::F_WRLCK as libc::c_short;
    fl.l_whence = libc::SEEK_SET as libc::c_short;
    fl.l_start = LOCK_OFF as libc::off_t;
    fl.l_len = 8;
    // SAFETY: a valid fd and flock record.
    let rc = unsafe {
        libc::fcntl(
            std::os::fd::AsRawFd::as_raw_fd(&file),
            libc::F_OFD_SETLK,
            &fl,
        )
    };
    assert_eq!(rc, 0);
    let word = (std::process::id() as u64) << 32 | (start_time(std::process::id()) & 0xffff_ffff);
    file.write_all_at(&word.to_le_bytes(), LOCK_OFF).unwrap();
    say(std::process::id());
    std::thread::sleep(Duration::from_secs(60));
}

/// Field 22 of /proc/<pid>/stat (start time), as the table lock word records it.
fn start_time(pid: u32) -> u64 {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let rest = &text[text.rfind(')').unwrap() + 1..];
    rest.split_whitespace().nth(19).unwrap().parse().unwrap()
}

/// Byte offsets in the region header (see `layout::Header`).
const LOCK_OFF: u64 = 128;
const HEAD_OFF: u64 = 256;
const SLOTS_OFF_FIELD: u64 = 72;
const CLASSES_OFF_FIELD: u64 = 80;
const LINKS_OFF_FIELD: u64 = 88;

fn file_of(name: &str) -> std::fs::File {
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(shm_path(name))
        .unwrap()
}

fn read_u64(f: &std::fs::File, off: u64) -> u64 {
    let mut b = [0u8; 8];
    f.read_exact_at(&mut b, off).unwrap();
    u64::from_le_bytes(b)
}

fn read_u32(f: &std::fs::File, off: u64) -> u32 {
    let mut b = [0u8; 4];
    f.read_exact_at(&mut b, off).unwrap();
    u32::from_le_bytes(b)
}

#[test]
fn a_table_lock_held_by_a_live_process_is_waited_for_with_a_bound() {
    let g = BusGuard::new("lock");
    drop(Bus::create(&g.name, &common::small()).unwrap());
    // A live process holding the lock, as a holder stopped mid-join does.
    let mut child = spawn("sleeper_child", "sleeper", &[("BUS", g.name.clone())]);
    let pid: u32 = Lines::of(&mut child).next().unwrap().parse().unwrap();

    // Running holder: the full bound, then an error naming it.
    let name = g.name.clone();
    let (err, took) = within(Duration::from_secs(20), move || {
        let t = Instant::now();
        (Bus::open(&name).err(), t.elapsed())
    });
    let err = err.expect("attach must fail while the lock is held");
    assert!(
        matches!(err, BusError::LockHeld { pid: p, .. } if p == pid),
        "{err}"
    );
    assert!(err.to_string().contains(&format!("pid {pid}")), "{err}");
    assert!(took < Duration::from_secs(10), "{took:?}");

    // Stopped holder: it cannot release the lock, so the wait is short and says why.
    let nix_pid = nix::unistd::Pid::from_raw(pid as i32);
    nix::sys::signal::kill(nix_pid, nix::sys::signal::Signal::SIGSTOP).unwrap();
    while !std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .unwrap()
        .contains(") T")
    {
        std::thread::yield_now();
    }
    let name = g.name.clone();
    let (err, took) = within(Duration::from_secs(20), move || {
        let t = Instant::now();
        (Bus::open(&name).err(), t.elapsed())
    });
    let text = err.expect("attach must fail").to_string();
    assert!(
        text.contains("stopped") && text.contains("kill -CONT"),
        "{text}"
    );
    assert!(took < Duration::from_secs(2), "{took:?}");
    nix::sys::signal::kill(nix_pid, nix::sys::signal::Signal::SIGCONT).unwrap();
    kill(&mut child);
    // The holder is dead now: the next attach takes the lock over.
    let bus = Bus::open(&g.name).unwrap();
    assert_eq!(bus.snapshot().processes.len(), 1);
}

#[test]
fn a_ring_head_moved_back_is_reported_as_corruption() {
    let g = BusGuard::new("head");
    let bus = Bus::create(&g.name, &common::small()).unwrap();
    let mut sub = bus.subscribe().unwrap();
    let mut publisher = bus.publisher().unwrap();
    for _ in 0..3 {
        publisher.publish("t", Codec::Raw, b"x", None).unwrap();
        sub.recv(Some(Duration::ZERO)).unwrap().unwrap();
    }
    assert!(inspect(&g.name).unwrap().corruption.is_empty());
    let f = file_of(&g.name);
    assert_eq!(read_u64(&f, HEAD_OFF), 3);
    f.write_all_at(&2u64.to_le_bytes(), HEAD_OFF).unwrap();

    let err = publisher
        .publish("t", Codec::Raw, b"x", Some(Duration::from_millis(200)))
        .unwrap_err();
    assert!(matches!(err, BusError::Corrupt { .. }), "{err}");
    assert!(err.to_string().contains("ring head"), "{err}");
    let snap = inspect(&g.name).unwrap();
    assert!(
        snap.corruption.iter().any(|p| p.contains("ring head")),
        "{:?}",
        snap.corruption
    );
}

#[test]
fn a_free_list_cycle_never_hands_one_block_to_two_messages() {
    let g = BusGuard::new("cycle");
    let bus = Bus::create(&g.name, &common::small()).unwrap();
    let mut sub = bus.subscribe().unwrap();
    let mut publisher = bus.publisher().unwrap();
    let f = file_of(&g.name);
    // Class 0 of a fresh bus: head -> 0 -> 1 -> 2 ...; one 4-byte write makes 1 link back to 0.
    let links_off = read_u64(&f, LINKS_OFF_FIELD);
    let classes_off = read_u64(&f, CLASSES_OFF_FIELD);
    assert_eq!(read_u32(&f, classes_off), 0, "class 0 starts at block 0");
    assert_eq!(read_u32(&f, links_off), 1);
    f.write_all_at(&0u32.to_le_bytes(), links_off + 4).unwrap();

    // 200 bytes: too large for the slot, fits class 0 (256-byte blocks).
    let msg = |i: u8| vec![i; 200];
    publisher.publish("m1", Codec::Raw, &msg(1), None).unwrap();
    publisher.publish("m2", Codec::Raw, &msg(2), None).unwrap();
    let err = publisher
        .publish("m3", Codec::Raw, &msg(3), Some(Duration::ZERO))
        .unwrap_err();
    assert!(matches!(err, BusError::Corrupt { .. }), "{err}");
    assert!(err.to_string().contains("free list"), "{err}");
    let snap = inspect(&g.name).unwrap();
    assert!(
        snap.corruption.iter().any(|p| p.contains("free list")),
        "{:?}",
        snap.corruption
    );
    // The two messages published are intact.
    for (topic, i) in [("m1", 1), ("m2", 2)] {
        let m = sub.recv(Some(Duration::ZERO)).unwrap().unwrap();
        assert_eq!((m.topic, m.payload), (topic, &msg(i)[..]));
    }
}

#[test]
fn a_damaged_slot_is_reported_by_inspect_and_the_subscriber() {
    let g = BusGuard::new("slot");
    let bus = Bus::create(&g.name, &common::small()).unwrap();
    let mut sub = bus.subscribe().unwrap();
    bus.publisher()
        .unwrap()
        .publish("t", Codec::Raw, b"x", None)
        .unwrap();
    let f = file_of(&g.name);
    let slots_off = read_u64(&f, SLOTS_OFF_FIELD);
    // Slot 0's meta word (topic length | codec << 16) at byte 48 of the slot: a 600-byte topic.
    f.write_all_at(&600u64.to_le_bytes(), slots_off + 48)
        .unwrap();
    let snap = inspect(&g.name).unwrap();
    assert!(
        snap.corruption.iter().any(|p| p.contains("topic length")),
        "{:?}",
        snap.corruption
    );
    let err = sub.recv(Some(Duration::ZERO)).unwrap_err();
    assert!(matches!(err, BusError::Corrupt { .. }), "{err}");
}

/// Child: attaches with every row of a 4-row table, says so, and waits to be killed.
#[test]
fn row_filler_child() {
    if std::env::var(ROLE).as_deref() != Ok("fill-rows") {
        return;
    }
    let bus = Bus::open(&common::env("BUS")).unwrap();
    let publishers: Vec<_> = (0..3).map(|_| bus.publisher().unwrap()).collect();
    say(publishers.len());
    std::thread::sleep(Duration::from_secs(60));
}

#[test]
fn the_first_attach_after_a_mass_crash_reaps_instead_of_refusing() {
    let g = BusGuard::new("mass");
    let cfg = BusConfig {
        max_processes: 4,
        ..common::small()
    };
    drop(Bus::create(&g.name, &cfg).unwrap());
    let mut child = spawn("row_filler_child", "fill-rows", &[("BUS", g.name.clone())]);
    assert_eq!(Lines::of(&mut child).next().as_deref(), Some("3"));
    kill(&mut child);
    let snap = inspect(&g.name).unwrap();
    assert_eq!(snap.processes.len(), 4);
    assert!(snap.processes.iter().all(|p| !p.alive));
    let bus = Bus::open(&g.name).unwrap();
    let snap = bus.snapshot();
    assert_eq!(snap.processes.len(), 1);
    assert!(snap.processes[0].alive);
}

#[test]
fn a_sparse_bus_file_is_reserved_when_attached() {
    let g = BusGuard::new("sparse");
    drop(Bus::create(&g.name, &common::small()).unwrap());
    // Punch the blocks out as a hand-extended or older file would have them: copy the header
    // into a new sparse file of the same size.
    let path = shm_path(&g.name);
    let mut header = vec![0u8; 4096];
    std::fs::File::open(&path)
        .unwrap()
        .read_exact(&mut header)
        .unwrap();
    let size = std::fs::metadata(&path).unwrap().len();
    let mut f = std::fs::File::create(&path).unwrap();
    f.write_all(&header).unwrap();
    f.set_len(size).unwrap();
    f.seek(SeekFrom::Start(0)).unwrap();
    use std::os::unix::fs::MetadataExt;
    assert!(f.metadata().unwrap().blocks() * 512 < size);
    drop(Bus::open(&g.name).unwrap());
    assert!(std::fs::metadata(&path).unwrap().blocks() * 512 >= size);
}

#[test]
fn a_busy_sound_bus_is_never_reported_corrupt() {
    let g = BusGuard::new("busy");
    let bus = Bus::create(&g.name, &common::small()).unwrap();
    let mut sub = bus.subscribe().unwrap();
    let mut member = bus.subscribe_group("workers").unwrap();
    let mut publisher = bus.publisher().unwrap();
    let stop = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|s| {
        s.spawn(|| {
            let mut i = 0u32;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                // Inline messages and slab blocks of two classes, so the free lists move too.
                let len = [8, 300, 1500][i as usize % 3];
                let _ = publisher.publish("busy", Codec::Raw, &vec![1; len], Some(Duration::ZERO));
                i = i.wrapping_add(1);
            }
        });
        for reader in [&mut sub, &mut member] {
            let stop = &stop;
            s.spawn(move || {
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let _ = reader.recv_batch(8, Some(Duration::from_millis(1)), |_| {});
                }
            });
        }
        for _ in 0..500 {
            let snap = inspect(&g.name).unwrap();
            assert!(snap.corruption.is_empty(), "{:?}", snap.corruption);
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
    });
    assert!(bus.snapshot().counters.published > 0);
}
