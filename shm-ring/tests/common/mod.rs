//! Helpers shared by the integration tests: unique bus names removed on drop, small geometries,
//! child processes re-executing the test binary in a given role.
#![allow(dead_code)]

use event_engine_shm::{inspect, Bus, BusConfig};
use std::io::{BufRead, BufReader};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

/// A unique bus name whose file is removed when the guard drops, even if the test fails.
pub struct BusGuard {
    pub name: String,
}

impl BusGuard {
    pub fn new(tag: &str) -> BusGuard {
        static N: AtomicU32 = AtomicU32::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        let name = format!(
            "test-{tag}-{}-{}-{nanos}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        );
        BusGuard { name }
    }
}

impl Drop for BusGuard {
    fn drop(&mut self) {
        let _ = Bus::unlink(&self.name);
    }
}

/// A small geometry so tests hit full rings and exhausted classes quickly.
pub fn small() -> BusConfig {
    BusConfig {
        ring_capacity: 16,
        max_message: 4096,
        slab_memory: Some(20 << 10),
        max_processes: 32,
        ..BusConfig::default()
    }
}

/// Asserts invariant 2 on a bus nobody is attached to.
pub fn assert_idle(name: &str) {
    let s = inspect(name).expect("inspect");
    assert!(s.is_idle(), "bus not idle: {s:#?}");
}

/// Environment variable selecting a child role.
pub const ROLE: &str = "SHM_RING_TEST_ROLE";

/// A child process that is killed when the guard drops, so a failing test leaves no process behind.
pub struct ChildGuard(pub Child);

impl std::ops::Deref for ChildGuard {
    type Target = Child;
    fn deref(&self) -> &Child {
        &self.0
    }
}

impl std::ops::DerefMut for ChildGuard {
    fn deref_mut(&mut self) -> &mut Child {
        &mut self.0
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// Runs test `entry` of this test binary in a child process with `role` and extra environment.
pub fn spawn(entry: &str, role: &str, env: &[(&str, String)]) -> ChildGuard {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args([entry, "--exact", "--nocapture", "--test-threads=1", "-q"])
        .env(ROLE, role)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    for (k, v) in env {
        cmd.env(k, v);
    }
    ChildGuard(cmd.spawn().expect("spawn child"))
}

/// Line-oriented reader of a child's stdout (children print one result per line, prefixed `@`).
pub struct Lines {
    reader: BufReader<ChildStdout>,
}

impl Lines {
    pub fn of(child: &mut Child) -> Lines {
        Lines {
            reader: BufReader::new(child.stdout.take().unwrap()),
        }
    }
    /// The next `@`-prefixed line without the prefix, `None` at end of output.
    pub fn next(&mut self) -> Option<String> {
        let mut line = String::new();
        loop {
            line.clear();
            if self.reader.read_line(&mut line).ok()? == 0 {
                return None;
            }
            if let Some(rest) = line.trim_end().strip_prefix('@') {
                return Some(rest.to_string());
            }
        }
    }
    /// Every remaining `@` line.
    pub fn rest(&mut self) -> Vec<String> {
        std::iter::from_fn(|| self.next()).collect()
    }
}

/// Prints a result line from a child.
pub fn say(s: impl std::fmt::Display) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    writeln!(out, "@{s}").unwrap();
    out.flush().unwrap();
}

pub fn env(key: &str) -> String {
    std::env::var(key).unwrap_or_else(|_| panic!("child needs {key}"))
}

/// Kills a child with SIGKILL and waits for it.
pub fn kill(child: &mut Child) {
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    child.wait().unwrap();
}

/// Encodes a test payload: publisher id and sequence.
pub fn payload(publisher: u32, i: u64) -> [u8; 12] {
    let mut b = [0u8; 12];
    b[..4].copy_from_slice(&publisher.to_le_bytes());
    b[4..].copy_from_slice(&i.to_le_bytes());
    b
}

/// Decodes a test payload (the first 12 bytes).
pub fn unpayload(p: &[u8]) -> (u32, u64) {
    (
        u32::from_le_bytes(p[..4].try_into().unwrap()),
        u64::from_le_bytes(p[4..12].try_into().unwrap()),
    )
}
